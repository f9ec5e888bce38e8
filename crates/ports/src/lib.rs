//! Ports: one small trait per outside system, holding only the calls the
//! engine makes. Adapters implement them for AWS (DynamoDB, ECS, SSM, SNS,
//! CloudWatch logs) and in memory for the simulator and tests.
//!
//! Methods return futures that are `Send`, so the Lambda runtime can drive
//! them on any thread. Adapters turn their client errors into [`StoreError`]
//! and [`CallError`], so the engine can tell a lost condition, a call worth
//! retrying and a call that will never succeed apart.

use std::collections::BTreeMap;
use std::future::Future;

use gpu_recovery_domain::observation::CommandStatus;
use gpu_recovery_domain::{
    JobRecord, JobStatus, MetricEvent, NodeRecord, NodeStatus, Notification, SafetyRecord,
    TaskRecord, Write,
};

/// An error from the record store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: another writer changed the record since it
    /// was read. The engine re-reads and decides again.
    #[error("conflict on {record}: it changed since it was read")]
    Conflict { record: String },
    /// The store could not be reached or refused the call; worth retrying.
    #[error("{operation} failed: {message}")]
    Unavailable { operation: String, message: String },
    /// A stored record could not be read into its type.
    #[error("{record} is malformed: {message}")]
    Malformed { record: String, message: String },
}

/// An error from ECS, SSM or SNS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Throttling, a timeout or a service error: the same call may succeed later.
    #[error("{operation} failed and may succeed on retry: {message}")]
    Transient { operation: String, message: String },
    /// The service rejected the request itself; retrying will not help.
    #[error("{operation} was rejected: {message}")]
    Rejected { operation: String, message: String },
}

impl CallError {
    #[must_use]
    pub fn transient(operation: &str, message: impl Into<String>) -> CallError {
        CallError::Transient {
            operation: operation.to_owned(),
            message: message.into(),
        }
    }

    #[must_use]
    pub fn rejected(operation: &str, message: impl Into<String>) -> CallError {
        CallError::Rejected {
            operation: operation.to_owned(),
            message: message.into(),
        }
    }
}

/// The three tables and the safety record.
///
/// Reads are GetItem or Query on an index; no method scans a table, so the
/// cost of one event does not grow with the number of records.
pub trait RecordStore: Send + Sync {
    fn get_job(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send;
    fn get_task(
        &self,
        task_id: &str,
    ) -> impl Future<Output = Result<Option<TaskRecord>, StoreError>> + Send;
    fn get_node(
        &self,
        node_name: &str,
    ) -> impl Future<Output = Result<Option<NodeRecord>, StoreError>> + Send;
    fn tasks_by_job(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Vec<TaskRecord>, StoreError>> + Send;
    fn node_by_container_instance(
        &self,
        container_instance_arn: &str,
    ) -> impl Future<Output = Result<Option<NodeRecord>, StoreError>> + Send;
    fn get_safety(&self) -> impl Future<Output = Result<Option<SafetyRecord>, StoreError>> + Send;
    fn jobs_by_status(
        &self,
        status: JobStatus,
    ) -> impl Future<Output = Result<Vec<JobRecord>, StoreError>> + Send;
    fn nodes_by_status(
        &self,
        status: NodeStatus,
    ) -> impl Future<Output = Result<Vec<NodeRecord>, StoreError>> + Send;
    /// Writes every record or none. Each write is conditional on its
    /// `expected_version`: `None` means the record must not exist, and a
    /// version of 0 also matches a record written without a version.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when any condition fails; nothing is written then.
    fn commit(&self, writes: &[Write]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A task as ECS describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskDescription {
    pub task_arn: String,
    pub last_status: String,
    pub container_instance_arn: String,
    pub task_definition_arn: String,
    pub started_by: Option<String>,
    /// Present only when asked for.
    pub tags: BTreeMap<String, String>,
    pub stop_code: Option<String>,
    pub exit_codes: Vec<i32>,
    pub stopped_reason: Option<String>,
    pub version: u64,
    pub overrides: serde_json::Value,
}

/// A container instance as ECS describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerInstance {
    pub container_instance_arn: String,
    pub ec2_instance_id: String,
    pub agent_connected: bool,
    pub status: String,
    pub version: u64,
}

/// A StartTask call on one container instance.
#[derive(Debug, Clone, PartialEq)]
pub struct StartTaskRequest {
    pub container_instance_arn: String,
    pub task_definition: String,
    /// ECS `TaskOverride` JSON; `null` for none.
    pub overrides: serde_json::Value,
    pub tags: BTreeMap<String, String>,
    pub started_by: String,
}

/// What StartTask returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartTaskOutcome {
    Started {
        task_arn: String,
    },
    /// ECS accepted the call but could not place the task (its `failures`).
    Rejected {
        reason: String,
    },
}

/// The ECS calls the engine makes, all on the configured cluster.
pub trait Cluster: Send + Sync {
    fn describe_task(
        &self,
        task_arn: &str,
        include_tags: bool,
    ) -> impl Future<Output = Result<Option<TaskDescription>, CallError>> + Send;
    /// Task ARNs on a container instance that were started with `started_by`,
    /// which makes StartTask idempotent.
    fn tasks_started_by(
        &self,
        container_instance_arn: &str,
        started_by: &str,
    ) -> impl Future<Output = Result<Vec<String>, CallError>> + Send;
    fn start_task(
        &self,
        request: &StartTaskRequest,
    ) -> impl Future<Output = Result<StartTaskOutcome, CallError>> + Send;
    /// Stops a task; stopping a task that already stopped succeeds.
    fn stop_task(
        &self,
        task_arn: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    fn put_attribute(
        &self,
        container_instance_arn: &str,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    /// Sets the container instance to DRAINING.
    fn drain(
        &self,
        container_instance_arn: &str,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    fn describe_container_instance(
        &self,
        container_instance_arn: &str,
    ) -> impl Future<Output = Result<Option<ContainerInstance>, CallError>> + Send;
}

/// What a reboot request returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebootOutcome {
    Sent { command_id: String },
    Rejected { reason: String },
}

/// Reboots through SSM Run Command.
pub trait HostControl: Send + Sync {
    /// Whether SSM can reach the instance now (managed and online).
    fn is_reachable(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<bool, CallError>> + Send;
    /// The id of a reboot command already sent to the instance with `token`.
    fn find_reboot(
        &self,
        instance_id: &str,
        token: &str,
    ) -> impl Future<Output = Result<Option<String>, CallError>> + Send;
    fn reboot(
        &self,
        instance_id: &str,
        token: &str,
    ) -> impl Future<Output = Result<RebootOutcome, CallError>> + Send;
    fn reboot_status(
        &self,
        instance_id: &str,
        command_id: &str,
    ) -> impl Future<Output = Result<Option<CommandStatus>, CallError>> + Send;
}

/// Publishes notifications to operators.
pub trait Notifier: Send + Sync {
    fn publish(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
}

/// Records metrics. Synchronous and infallible: the AWS adapter writes
/// embedded-metric-format lines to the log, which needs no call.
pub trait Metrics: Send + Sync {
    fn record(&self, function: &str, events: &[MetricEvent]);
}
