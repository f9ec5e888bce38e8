//! The pure decision function: records + one observation + policy + now ->
//! the conditional writes to make and the side effects to run.
//!
//! [`decide`] never performs I/O. It works on a copy of the records, and
//! [`Decision::writes`] lists every record that changed, each conditional on
//! the version that was read. Side effects go into the job's outbox in the
//! same write and come back out as [`Decision::effects`] once claimed, so the
//! runner performs them only after the state that explains them is stored.
//!
//! The function is level-triggered: after applying the observation it looks
//! at the whole job (are all verdicts in, are all rebooted nodes back) and
//! moves it forward. So the order in which observations arrive never changes
//! the outcome, and a duplicate observation finds nothing left to do.

mod checks;
mod nodes;
mod notify;
mod outcome;
mod progress;
mod tasks;
mod watchdog;
mod working;

use std::collections::BTreeSet;

use crate::effect::{ClaimedEffect, EffectKind, MetricEvent};
use crate::observation::Observation;
use crate::policy::Policy;
use crate::records::{HistoryEntry, JobRecord, NodeRecord, SafetyRecord, TaskRecord};
use crate::time::Timestamp;

use working::Working;

/// Prefix of every stop reason the engine gives ECS, so its own stops are
/// recognisable in events even without the task table.
pub const STOP_REASON_PREFIX: &str = "gpu-recovery:";

/// The records a decision reads: one job with its tasks and nodes, and the
/// cluster's safety record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Context {
    /// Missing only when a RUNNING task of an unknown job may register it.
    pub job: Option<JobRecord>,
    /// The job's tasks, training and health-check, of every attempt.
    pub tasks: Vec<TaskRecord>,
    /// The job's nodes, and for a registration the node of the task.
    pub nodes: Vec<NodeRecord>,
    pub safety: SafetyRecord,
    /// Whether `safety` was read from the store rather than defaulted.
    pub safety_exists: bool,
}

/// What a decision depends on besides the records.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    pub policy: &'a Policy,
    pub now: Timestamp,
    /// The effects this entry point may run; others wait for the watchdog.
    pub scope: &'a BTreeSet<EffectKind>,
}

/// One record to write, conditional on the version read.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub record: Record,
    /// The version the decision read, or `None` for a record that must not
    /// exist yet.
    pub expected_version: Option<u64>,
}

/// A record of any table.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Job(JobRecord),
    Task(TaskRecord),
    Node(NodeRecord),
    Safety(SafetyRecord),
}

impl Record {
    /// Table and key, such as `job llm-1`, for messages.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Record::Job(job) => format!("job {}", job.job_id),
            Record::Task(task) => format!("task {}", task.ecs_task_id),
            Record::Node(node) => format!("node {}", node.node_name),
            Record::Safety(_) => "safety record".to_owned(),
        }
    }
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    /// Records to write in one transaction, each at its version + 1.
    pub writes: Vec<Write>,
    /// Effects claimed by this decision, to run after the writes succeed.
    pub effects: Vec<ClaimedEffect>,
    /// History entries this decision added to the job.
    pub history: Vec<HistoryEntry>,
    pub metrics: Vec<MetricEvent>,
    /// Why nothing changed, or other facts worth a debug log line.
    pub notes: Vec<String>,
}

impl Decision {
    /// True when the decision writes nothing and runs nothing.
    #[must_use]
    pub fn is_noop(&self) -> bool {
        self.writes.is_empty() && self.effects.is_empty()
    }
}

/// Decides what one observation means for one job.
///
/// # Guarantees
/// - Pure: the same inputs give the same decision.
/// - A stale or duplicate event (ECS version not above the one recorded)
///   changes no state; it may still claim outbox intents left unclaimed.
/// - Every write is conditional on the version read, so two invocations
///   racing on one job cannot both win: the loser re-reads and decides again.
#[must_use]
pub fn decide(context: &Context, observation: &Observation, env: &Env<'_>) -> Decision {
    let mut work = Working::new(context, observation, env);
    match observation {
        Observation::TaskStopped(stop) => tasks::on_stopped(&mut work, stop),
        Observation::TaskRunning(run) => tasks::on_running(&mut work, run),
        Observation::HealthCheckFinished(result) => checks::on_finished(&mut work, result),
        Observation::InstanceChanged(change) => nodes::on_instance_changed(&mut work, change),
        Observation::Tick(tick) => watchdog::on_tick(&mut work, tick),
        Observation::EffectApplied { key, result } => outcome::on_result(&mut work, key, result),
    }
    if work.job.is_some() {
        progress::advance(&mut work);
    }
    work.finish()
}

#[cfg(test)]
mod tests;
