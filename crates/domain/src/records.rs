//! The three table records (job, task, node) and the cluster safety record.
//!
//! Attribute names of the earlier Python schema are kept as field names, so
//! that its records read and existing tooling keeps working. Everything the
//! engine added (`version`, the open episode, verdicts, reboot intents,
//! deadlines, the outbox of side effects and the decision history) is new
//! attributes next to them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::effect::Intent;
use crate::legacy;
use crate::status::{JobStatus, NodeStatus, TaskStatus};
use crate::time::Timestamp;
use crate::verdict::Verdict;

/// Maximum number of entries kept in a job's decision history; older entries
/// are dropped first.
pub const HISTORY_LIMIT: usize = 100;

/// Key under which the cluster-wide safety record is kept in the node table.
/// A `#` cannot appear in a host name, so no real node can collide with it.
pub const SAFETY_RECORD_KEY: &str = "#safety";

/// One training job: a set of tasks, one per node, in rank order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub job_status: JobStatus,
    /// Restarts made so far; never exceeds the policy's `max_retries`.
    #[serde(default, deserialize_with = "legacy::count")]
    pub retry: u32,
    #[serde(default)]
    pub cluster_name: String,
    #[serde(default, deserialize_with = "legacy::count")]
    pub num_nodes: u32,
    /// Node names in rank order.
    #[serde(default, deserialize_with = "legacy::string_list")]
    pub assigned_nodes: Vec<String>,
    #[serde(default, deserialize_with = "legacy::string_list")]
    pub submitted_container_inst_ids: Vec<String>,
    /// Task ids of the current attempt, in rank order where known.
    #[serde(default, deserialize_with = "legacy::string_list")]
    pub submitted_ecs_task_ids: Vec<String>,
    /// How to start the job's tasks again; missing for jobs whose launch
    /// details were never recorded, which then cannot be restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchSpec>,
    /// Record version for conditional writes; records without one read as 0.
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<Episode>,
    /// Episodes opened so far, used to name the next one.
    #[serde(default)]
    pub episodes_opened: u32,
    /// When the watchdog must look at the job again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
    /// Why the job is in its current status, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Side effects decided but not yet confirmed, in the order to run them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Intent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

/// What the engine needs to start every rank of a job again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// Task definition ARN or `family:revision`.
    pub task_definition: String,
    /// Tags put on every task, besides the ones the engine adds per rank.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub ranks: Vec<RankLaunch>,
}

/// The launch of one rank: where it runs and its ECS task overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankLaunch {
    /// The rank (`node_index_in_job`) this launch starts.
    #[serde(default)]
    pub rank: u32,
    pub node_name: String,
    pub container_instance_arn: String,
    /// ECS `TaskOverride` JSON (`containerOverrides` and the rest), as given.
    #[serde(default)]
    pub overrides: serde_json::Value,
}

/// One recovery episode: from the first failure to a restart or a give-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub id: String,
    pub opened_at: Timestamp,
    /// Task whose stop opened the episode.
    pub trigger_task: String,
    pub trigger_reason: String,
    /// Per node of the job: its verdicts and what was done.
    pub nodes: BTreeMap<String, EpisodeNode>,
    /// Set once the job's outcome is decided; nodes may still be recovering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// A node's part in an episode.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EpisodeNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<VerdictRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_reboot: Option<VerdictRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<NodeAction>,
}

/// A verdict with when and why it was reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    pub verdict: Verdict,
    pub at: Timestamp,
    /// Where the verdict came from: the exit code, the report summary, or the
    /// deadline that expired.
    pub detail: String,
}

/// What the engine chose for a node once its verdict was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeAction {
    /// Healthy: kept for the restart or released.
    Keep,
    Reboot,
    Quarantine,
    /// A reboot was due but a safety limit stopped it.
    Held,
}

/// One task of a job, or one health-check task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task id: the last segment of the task ARN.
    pub ecs_task_id: String,
    #[serde(default)]
    pub task_arn: String,
    pub job_id: String,
    #[serde(default)]
    pub kind: TaskKind,
    pub task_status: TaskStatus,
    #[serde(default)]
    pub node_name: String,
    #[serde(default, deserialize_with = "legacy::count")]
    pub node_index_in_job: u32,
    #[serde(default, deserialize_with = "legacy::count")]
    pub job_num_nodes: u32,
    #[serde(default)]
    pub container_instance_arn: String,
    /// The container instance id: the last segment of its ARN.
    #[serde(default)]
    pub container_inst_id: String,
    #[serde(default)]
    pub cluster_name: String,
    #[serde(default)]
    pub task_def_arn: String,
    /// The job's `retry` when this task was started.
    #[serde(default, deserialize_with = "legacy::count")]
    pub retry: u32,
    /// Episode a health-check task belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CheckPhase>,
    /// Highest ECS `detail.version` applied to this record.
    #[serde(default)]
    pub event_version: u64,
    /// Set once ECS reported the task RUNNING.
    #[serde(default)]
    pub running: bool,
    /// Reason the engine gave when it asked ECS to stop this task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_requested: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopRecord>,
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

/// Whether a task is a rank of the job or a health check on one of its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    #[default]
    Training,
    HealthCheck,
}

/// Which health check of an episode a check task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckPhase {
    /// The first check, right after the failure.
    Initial,
    /// The check after the node came back from a reboot.
    PostReboot,
}

/// How a task stopped, as ECS reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<String>,
    #[serde(default)]
    pub exit_codes: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    pub at: Timestamp,
    /// What the engine made of it.
    pub classified_as: String,
}

/// One GPU node: an EC2 instance registered as an ECS container instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_name: String,
    pub node_status: NodeStatus,
    #[serde(default)]
    pub container_instance_arn: String,
    /// The container instance id: the last segment of its ARN.
    #[serde(default)]
    pub container_instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_instance_id: Option<String>,
    #[serde(default)]
    pub cluster_name: String,
    /// Job the node is assigned to, while it runs or recovers for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode_id: Option<String>,
    /// The health check running or requested on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckRun>,
    /// The reboot of the current episode, once requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<RebootRun>,
    /// When the node started waiting for a reboot slot, while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_queued_at: Option<Timestamp>,
    /// Highest ECS container instance `detail.version` applied while rebooting.
    #[serde(default)]
    pub instance_event_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

/// A health check on a node, from request to verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheckRun {
    pub episode_id: String,
    pub phase: CheckPhase,
    pub requested_at: Timestamp,
    /// Set when ECS accepted the `StartTask` call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Whether its `StartTask` is in the outbox. A check waits while the
    /// node's training task is still stopping, because ECS cannot place it
    /// on GPUs that task still holds.
    #[serde(default)]
    pub queued: bool,
}

/// A reboot, from the recorded intent to the node's return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebootRun {
    pub episode_id: String,
    pub requested_at: Timestamp,
    /// The verdict that called for the reboot.
    pub cause: Verdict,
    /// SSM command id, once `SendCommand` succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Start of the invocation that sent the command: no later than the send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    /// When the agent was seen disconnected after the command was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_version: Option<u64>,
    /// When the node counted as back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_at: Option<Timestamp>,
}

/// Cluster-wide safety state: reboot slots in use and recent failed checks.
///
/// Every decision that takes or frees a reboot slot, or counts a failed
/// check, writes this record conditionally, so two jobs recovering at once
/// cannot both take the last slot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SafetyRecord {
    /// Node name to the time its reboot slot was taken.
    #[serde(default)]
    pub rebooting: BTreeMap<String, Timestamp>,
    /// Times of health checks that did not pass, within the breaker window.
    #[serde(default)]
    pub failed_checks: Vec<Timestamp>,
    /// When the circuit breaker last opened, while it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_open_since: Option<Timestamp>,
    #[serde(default)]
    pub version: u64,
}

/// One entry of a job's decision history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    /// The observation that led to the decision, in a few words.
    pub observation: String,
    /// What changed: `job`, `node NAME` or `task ID`.
    pub subject: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

impl JobRecord {
    /// A job record with the given id and status and every other field empty.
    #[must_use]
    pub fn new(job_id: &str, job_status: JobStatus) -> JobRecord {
        JobRecord {
            job_id: job_id.to_owned(),
            job_status,
            retry: 0,
            cluster_name: String::new(),
            num_nodes: 0,
            assigned_nodes: Vec::new(),
            submitted_container_inst_ids: Vec::new(),
            submitted_ecs_task_ids: Vec::new(),
            launch: None,
            version: 0,
            episode: None,
            episodes_opened: 0,
            deadline: None,
            status_reason: None,
            outbox: Vec::new(),
            history: Vec::new(),
            created_at: None,
            updated_at: None,
        }
    }
}

impl NodeRecord {
    /// An available node record with the given name and container instance.
    #[must_use]
    pub fn new(node_name: &str, container_instance_arn: &str) -> NodeRecord {
        NodeRecord {
            node_name: node_name.to_owned(),
            node_status: NodeStatus::Available,
            container_instance_arn: container_instance_arn.to_owned(),
            container_instance_id: last_arn_segment(container_instance_arn).to_owned(),
            ec2_instance_id: None,
            cluster_name: String::new(),
            job_id: None,
            episode_id: None,
            health_check: None,
            reboot: None,
            reboot_queued_at: None,
            instance_event_version: 0,
            deadline: None,
            status_reason: None,
            version: 0,
            created_at: None,
            updated_at: None,
        }
    }
}

/// The part of an ARN after its last `/`, which ECS uses as the short id.
#[must_use]
pub fn last_arn_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_job_record_reads() {
        let legacy = serde_json::json!({
            "job_id": "job-1",
            "job_timestamp": "20261120",
            "cluster_name": "gpu-training",
            "num_nodes": "2",
            "assigned_nodes": "node-a,node-b",
            "submitted_container_inst_ids": ["c1", "c2"],
            "submitted_ecs_task_ids": "t1,t2",
            "retry": "0",
            "job_status": "IN_PROGRESS",
            "created_at": "2026-11-20T08:00:00.000000",
            "updated_at": "2026-11-20T08:00:00.000000"
        });
        let job: JobRecord = serde_json::from_value(legacy).unwrap();
        assert_eq!(job.version, 0);
        assert_eq!(job.retry, 0);
        assert_eq!(job.num_nodes, 2);
        assert_eq!(job.assigned_nodes, ["node-a", "node-b"]);
        assert_eq!(job.submitted_ecs_task_ids, ["t1", "t2"]);
        assert_eq!(job.job_status, JobStatus::InProgress);
    }

    #[test]
    fn legacy_task_record_reads() {
        let legacy = serde_json::json!({
            "ecs_task_id": "t1",
            "node_name": "node-a",
            "node_index_in_job": "1",
            "job_id": "job-1",
            "job_num_nodes": "2",
            "task_def_arn": "arn:aws:ecs:us-west-2:111122223333:task-definition/train:3",
            "container_inst_id": "c1",
            "retry": 0,
            "task_status": "FAILED"
        });
        let task: TaskRecord = serde_json::from_value(legacy).unwrap();
        assert_eq!(task.node_index_in_job, 1);
        assert_eq!(task.kind, TaskKind::Training);
        assert_eq!(task.task_status, TaskStatus::Terminated);
    }

    #[test]
    fn job_record_round_trips() {
        let mut job = JobRecord::new("job-1", JobStatus::PendingHealthcheck);
        job.version = 4;
        job.deadline = Some(Timestamp(1_000));
        let text = serde_json::to_string(&job).unwrap();
        let back: JobRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, job);
    }

    #[test]
    fn last_arn_segment_takes_id() {
        let arn = "arn:aws:ecs:us-west-2:111122223333:container-instance/gpu-training/0f1e";
        assert_eq!(last_arn_segment(arn), "0f1e");
        assert_eq!(last_arn_segment("plain"), "plain");
    }
}
