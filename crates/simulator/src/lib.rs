//! The local simulator: runs the recovery engine on in-memory adapters
//! against a simulated ECS cluster and a simulated clock.

pub mod scenario;
