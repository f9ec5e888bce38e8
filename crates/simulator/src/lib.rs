//! The local simulator: runs the recovery engine on in-memory adapters
//! against a simulated ECS cluster and a simulated clock, so a whole
//! recovery (failure, diagnosis, reboot, restart) can be rehearsed on a
//! laptop in well under a second.
//!
//! The simulated cluster emits EventBridge documents of the shapes ECS
//! emits, and the engine reads them through the same parser the Lambda
//! functions use.

pub mod cluster;
pub mod events;
pub mod invariants;
pub mod report;
pub mod run;
pub mod scenario;

pub use report::SimReport;
pub use run::{RunOptions, Simulation};
pub use scenario::{Scenario, ScenarioError};

/// Reads a scenario file and runs it.
pub fn simulate_file(
    path: &std::path::Path,
    options: &RunOptions,
) -> Result<SimReport, ScenarioError> {
    let scenario = Scenario::from_file(path)?;
    Ok(Simulation::new(scenario, options).run())
}
