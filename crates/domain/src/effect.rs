//! Side effects the engine decides on, and the outbox entries that carry them.
//!
//! A decision never calls anything. It writes each side effect into the job's
//! outbox as an [`Intent`] in the same conditional write as the state change
//! that called for it, and claims it. The effect runner then performs the
//! claimed effects and reports each result back as an observation, which
//! removes the intent. An intent whose claim is older than the lease is
//! claimed again, so a crash between the write and the call converges.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::records::CheckPhase;
use crate::status::NodeStatus;
use crate::time::{Span, Timestamp};
use crate::verdict::Verdict;

/// One side effect on ECS, SSM or SNS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// Stops a task. Idempotent: stopping a stopped task succeeds.
    StopTask { task_arn: String, reason: String },
    /// Starts a health-check task on a node. Idempotent through `started_by`:
    /// the runner first looks for a task already started with that token.
    StartHealthCheck {
        node_name: String,
        container_instance_arn: String,
        episode_id: String,
        phase: CheckPhase,
        started_by: String,
    },
    /// Starts one rank of a job. Idempotent through `started_by`, as above.
    StartTrainingTask {
        node_name: String,
        rank: u32,
        container_instance_arn: String,
        task_definition: String,
        overrides: serde_json::Value,
        tags: BTreeMap<String, String>,
        started_by: String,
    },
    /// Reboots a node through SSM. Guarded by `token`: the runner first looks
    /// for a command already sent with it, so one episode sends at most one.
    Reboot {
        node_name: String,
        container_instance_arn: String,
        episode_id: String,
        token: String,
    },
    /// Mirrors a node status into the container instance attribute.
    SetNodeAttribute {
        node_name: String,
        container_instance_arn: String,
        value: NodeStatus,
    },
    /// Sets a container instance to DRAINING so that ECS places no new work on it.
    Drain {
        node_name: String,
        container_instance_arn: String,
    },
    /// Publishes a notification to operators. At least once: a crash after
    /// the publish and before its result is recorded sends it again.
    Notify(Notification),
}

/// The kinds of [`Effect`], used to scope what each entry point may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectKind {
    StopTask,
    StartTask,
    Reboot,
    SetNodeAttribute,
    Drain,
    Notify,
}

impl EffectKind {
    pub const ALL: [EffectKind; 6] = [
        EffectKind::StopTask,
        EffectKind::StartTask,
        EffectKind::Reboot,
        EffectKind::SetNodeAttribute,
        EffectKind::Drain,
        EffectKind::Notify,
    ];
}

impl Effect {
    #[must_use]
    pub fn kind(&self) -> EffectKind {
        match self {
            Effect::StopTask { .. } => EffectKind::StopTask,
            Effect::StartHealthCheck { .. } | Effect::StartTrainingTask { .. } => {
                EffectKind::StartTask
            }
            Effect::Reboot { .. } => EffectKind::Reboot,
            Effect::SetNodeAttribute { .. } => EffectKind::SetNodeAttribute,
            Effect::Drain { .. } => EffectKind::Drain,
            Effect::Notify(_) => EffectKind::Notify,
        }
    }

    /// A short description for timelines and logs.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Effect::StopTask { task_arn, .. } => {
                format!("stop task {}", crate::records::last_arn_segment(task_arn))
            }
            Effect::StartHealthCheck {
                node_name, phase, ..
            } => {
                let which = match phase {
                    CheckPhase::Initial => "health check",
                    CheckPhase::PostReboot => "post-reboot health check",
                };
                format!("start {which} on {node_name}")
            }
            Effect::StartTrainingTask {
                node_name, rank, ..
            } => {
                format!("start rank {rank} on {node_name}")
            }
            Effect::Reboot { node_name, .. } => format!("reboot {node_name} through SSM"),
            Effect::SetNodeAttribute {
                node_name, value, ..
            } => {
                format!("set attribute of {node_name} to {value}")
            }
            Effect::Drain { node_name, .. } => format!("drain {node_name}"),
            Effect::Notify(notification) => {
                format!("notify {}: {}", notification.kind, notification.subject)
            }
        }
    }
}

/// An outbox entry: an effect decided in an earlier write and not yet confirmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// Deterministic key, such as `reboot:node-b:job-1:e1`; a new intent with
    /// the key of a pending one replaces it.
    pub key: String,
    pub effect: Effect,
    pub created_at: Timestamp,
    /// When an invocation last took this intent to run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<Timestamp>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// After a failed attempt, the earliest time the intent may be claimed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
}

/// Base of the backoff after a failed effect: 10 s, doubling per attempt.
pub const RETRY_BACKOFF_BASE: Span = Span::seconds(10);

/// Delay before retrying an effect that failed `attempts` times: capped,
/// exponential, and never zero, so a failed call is not retried in the same
/// invocation that saw it fail.
#[must_use]
pub fn retry_backoff(attempts: u32, cap: Span) -> Span {
    let factor = 1_i64 << attempts.saturating_sub(1).min(16);
    Span(
        RETRY_BACKOFF_BASE
            .0
            .saturating_mul(factor)
            .min(cap.0)
            .max(RETRY_BACKOFF_BASE.0),
    )
}

/// An effect that this decision claimed, for the runner to perform now.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedEffect {
    pub job_id: String,
    pub key: String,
    pub effect: Effect,
}

/// The result of performing one effect, fed back to the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum EffectResult {
    /// The effect is done and returned nothing worth recording.
    Done,
    /// A `StartTask` call started (or had already started) this task.
    TaskStarted { task_arn: String },
    /// `SendCommand` sent (or had already sent) this command.
    CommandSent { command_id: String },
    /// The call was rejected for good, for example a placement failure.
    Rejected { reason: String },
    /// The call failed and may succeed when retried.
    Failed { error: String },
}

/// What kind of notification, carried as a message attribute so that
/// subscriptions can filter on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The engine gave up on a job.
    GaveUp,
    /// A node was taken out of service.
    Quarantine,
    /// A safety limit stopped automatic recovery.
    SafetyStop,
}

impl NotificationKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::GaveUp => "gave_up",
            NotificationKind::Quarantine => "quarantine",
            NotificationKind::SafetyStop => "safety_stop",
        }
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message to operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub kind: NotificationKind,
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode_id: Option<String>,
    /// At most 100 characters, as SNS requires for email subjects.
    pub subject: String,
    pub message: String,
}

/// A counter or timing for the metrics port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "metric", rename_all = "snake_case")]
pub enum MetricEvent {
    EpisodeOpened,
    HealthCheck { verdict: Verdict },
    Reboot,
    Restart { seconds_since_failure: i64 },
    JobFailed,
    Quarantine,
}
