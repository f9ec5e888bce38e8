//! Observations: everything the engine can learn, one at a time.
//!
//! Entry points turn ECS events, clock ticks and effect results into these
//! types. They carry only the fields a decision reads, already validated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::effect::EffectResult;
use crate::records::last_arn_segment;
use crate::time::Timestamp;
use crate::verdict::Verdict;

/// One input to [`crate::decide`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "observation", rename_all = "snake_case")]
pub enum Observation {
    /// A training task stopped, or ECS reported its stop code while it was
    /// still deprovisioning.
    TaskStopped(TaskStop),
    /// A training task reached RUNNING.
    TaskRunning(TaskRun),
    /// A health-check task stopped.
    HealthCheckFinished(HealthCheckResult),
    /// A container instance changed; only the fields the engine reads.
    InstanceChanged(InstanceChange),
    /// The watchdog's clock tick, with what it probed from ECS and SSM.
    Tick(Tick),
    /// The result of an effect that an earlier decision claimed.
    EffectApplied { key: String, result: EffectResult },
}

/// A task stop as ECS reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStop {
    pub task_arn: String,
    pub container_instance_arn: String,
    #[serde(default)]
    pub task_definition_arn: String,
    #[serde(default)]
    pub stop_code: Option<String>,
    /// Exit codes of the containers that reported one.
    #[serde(default)]
    pub exit_codes: Vec<i32>,
    #[serde(default)]
    pub stopped_reason: Option<String>,
    /// ECS `detail.version`, which grows with each change of the task.
    pub version: u64,
    pub at: Timestamp,
}

/// A task that reached RUNNING, with its tags when the entry point had to
/// look them up because the task was not yet in the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRun {
    pub task_arn: String,
    pub container_instance_arn: String,
    #[serde(default)]
    pub task_definition_arn: String,
    #[serde(default)]
    pub started_by: Option<String>,
    /// ECS `TaskOverride` JSON from the event.
    #[serde(default)]
    pub overrides: serde_json::Value,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    /// EC2 instance id of the container instance, where the entry point knows it.
    #[serde(default)]
    pub ec2_instance_id: Option<String>,
    pub version: u64,
    pub at: Timestamp,
}

/// A finished health-check task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheckResult {
    pub task_arn: String,
    pub container_instance_arn: String,
    /// Exit code of the check container; missing when it never ran.
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub stop_code: Option<String>,
    #[serde(default)]
    pub stopped_reason: Option<String>,
    /// The runner's JSON line, when the entry point could read it.
    #[serde(default)]
    pub report: Option<ReportSummary>,
    pub version: u64,
    pub at: Timestamp,
}

/// What the health-check runner printed about its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    pub verdict: Verdict,
    pub summary: String,
}

/// A container instance change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceChange {
    pub container_instance_arn: String,
    #[serde(default)]
    pub ec2_instance_id: Option<String>,
    pub agent_connected: bool,
    #[serde(default)]
    pub status: String,
    /// ECS `detail.version` of the container instance.
    pub version: u64,
    pub updated_at: Timestamp,
}

/// The watchdog's tick and what it probed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tick {
    /// Current state of nodes that are rebooting, by node name.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeProbe>,
    /// Current state of running tasks whose job is due a poll, by task id.
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskProbe>,
}

/// A rebooting node's state, read from ECS and SSM by the watchdog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeProbe {
    /// Whether the ECS agent is connected now; unknown when the call failed.
    pub agent_connected: Option<bool>,
    /// Container instance `version` now.
    #[serde(default)]
    pub instance_version: Option<u64>,
    /// Status of the reboot command in SSM.
    pub reboot_command: Option<CommandStatus>,
}

/// Status of an SSM command on one instance, in SSM's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    Pending,
    InProgress,
    /// The command finished; for a reboot command this means the agent
    /// reported back after the reboot.
    Success,
    Failed,
}

/// A task's state, read from ECS by the watchdog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskProbe {
    Running,
    Stopped(TaskStop),
    /// ECS no longer knows the task: it stopped over an hour ago.
    Missing,
}

impl Observation {
    /// A few words naming the observation, for the decision history.
    #[must_use]
    pub fn summary(&self) -> String {
        match self {
            Observation::TaskStopped(stop) => {
                let code = stop.stop_code.as_deref().unwrap_or("no stop code");
                let exits = if stop.exit_codes.is_empty() {
                    "no exit code".to_owned()
                } else {
                    let codes: Vec<String> = stop.exit_codes.iter().map(i32::to_string).collect();
                    format!("exit {}", codes.join(","))
                };
                format!(
                    "task {} stopped ({code}, {exits})",
                    last_arn_segment(&stop.task_arn)
                )
            }
            Observation::TaskRunning(run) => {
                format!("task {} running", last_arn_segment(&run.task_arn))
            }
            Observation::HealthCheckFinished(check) => {
                let exit = check
                    .exit_code
                    .map_or_else(|| "no exit code".to_owned(), |code| format!("exit {code}"));
                format!(
                    "health check {} finished ({exit})",
                    last_arn_segment(&check.task_arn)
                )
            }
            Observation::InstanceChanged(change) => format!(
                "container instance {} agent {} (version {})",
                last_arn_segment(&change.container_instance_arn),
                if change.agent_connected {
                    "connected"
                } else {
                    "disconnected"
                },
                change.version
            ),
            Observation::Tick(_) => "watchdog tick".to_owned(),
            Observation::EffectApplied { key, result } => {
                let outcome = match result {
                    EffectResult::Done => "done".to_owned(),
                    EffectResult::TaskStarted { task_arn } => {
                        format!("started {}", last_arn_segment(task_arn))
                    }
                    EffectResult::CommandSent { command_id } => format!("sent {command_id}"),
                    EffectResult::Rejected { reason } => format!("rejected: {reason}"),
                    EffectResult::Failed { error } => format!("failed: {error}"),
                };
                format!("effect {key} {outcome}")
            }
        }
    }
}
