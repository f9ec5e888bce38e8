//! The recovery domain: records, statuses, policy and the pure decision
//! function. Nothing here performs I/O or knows about AWS types.

pub mod verdict;

pub use verdict::Verdict;
