//! Status values of jobs, tasks and nodes.
//!
//! The names are the ones the earlier Python implementation wrote to the
//! tables, so records it left behind still read. Values that it wrote but this
//! engine no longer uses are accepted as aliases of their nearest meaning.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Status of a job (`job_status` in the job table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// The job's tasks are running.
    InProgress,
    /// A recovery episode is open and health checks are running on its nodes.
    PendingHealthcheck,
    /// Every verdict is in and the chosen nodes are rebooting or being rechecked.
    // The earlier implementation wrote PENDING for a job waiting to restart.
    #[serde(alias = "PENDING")]
    PendingRestart,
    /// The job's tasks have been started again and are not all running yet.
    Restarting,
    /// Every task exited 0.
    Complete,
    /// The engine gave up on the job.
    Failed,
    /// Someone stopped a task of the job.
    UserStopped,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        JobStatus::InProgress,
        JobStatus::PendingHealthcheck,
        JobStatus::PendingRestart,
        JobStatus::Restarting,
        JobStatus::Complete,
        JobStatus::Failed,
        JobStatus::UserStopped,
    ];

    /// Statuses that no event moves forward.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Complete | JobStatus::Failed | JobStatus::UserStopped
        )
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::InProgress => "IN_PROGRESS",
            JobStatus::PendingHealthcheck => "PENDING_HEALTHCHECK",
            JobStatus::PendingRestart => "PENDING_RESTART",
            JobStatus::Restarting => "RESTARTING",
            JobStatus::Complete => "COMPLETE",
            JobStatus::Failed => "FAILED",
            JobStatus::UserStopped => "USER_STOPPED",
        }
    }
}

/// Status of a task (`task_status` in the task table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Started and not known to have stopped.
    InProgress,
    /// Exited 0.
    Complete,
    /// Stopped for any other reason: a failure, a user, or the engine itself.
    // The earlier implementation copied job statuses onto stopped tasks.
    #[serde(
        alias = "FAILED",
        alias = "USER_STOPPED",
        alias = "PENDING_HEALTHCHECK",
        alias = "PENDING"
    )]
    Terminated,
}

impl TaskStatus {
    #[must_use]
    pub fn is_terminal(self) -> bool {
        !matches!(self, TaskStatus::InProgress)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::InProgress => "IN_PROGRESS",
            TaskStatus::Complete => "COMPLETE",
            TaskStatus::Terminated => "TERMINATED",
        }
    }
}

/// Status of a node (`node_status` in the node table), mirrored into a
/// container instance attribute so placement constraints can avoid it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeStatus {
    /// Free for new work.
    Available,
    /// Running a task of a job.
    // The earlier implementation wrote ASSIGNED for a node given to a job.
    #[serde(alias = "ASSIGNED")]
    InProgress,
    /// Held for its job: waiting for the job's restart or for a reboot slot.
    Pending,
    /// A health check runs or is about to run on it.
    PendingHealthcheck,
    /// A reboot was requested and the node is not back yet.
    Rebooting,
    /// Out of service: quarantined, lost or not back from a reboot.
    Failed,
}

impl NodeStatus {
    pub const ALL: [NodeStatus; 6] = [
        NodeStatus::Available,
        NodeStatus::InProgress,
        NodeStatus::Pending,
        NodeStatus::PendingHealthcheck,
        NodeStatus::Rebooting,
        NodeStatus::Failed,
    ];

    /// Statuses in which the node takes part in a recovery.
    #[must_use]
    pub fn is_recovering(self) -> bool {
        matches!(
            self,
            NodeStatus::Pending | NodeStatus::PendingHealthcheck | NodeStatus::Rebooting
        )
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Available => "AVAILABLE",
            NodeStatus::InProgress => "IN_PROGRESS",
            NodeStatus::Pending => "PENDING",
            NodeStatus::PendingHealthcheck => "PENDING_HEALTHCHECK",
            NodeStatus::Rebooting => "REBOOTING",
            NodeStatus::Failed => "FAILED",
        }
    }
}

macro_rules! display_as_str {
    ($($kind:ty),*) => {$(
        impl fmt::Display for $kind {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

display_as_str!(JobStatus, TaskStatus, NodeStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_statuses_read_as_aliases() {
        let job: JobStatus = serde_json::from_str("\"PENDING\"").unwrap();
        assert_eq!(job, JobStatus::PendingRestart);
        let task: TaskStatus = serde_json::from_str("\"USER_STOPPED\"").unwrap();
        assert_eq!(task, TaskStatus::Terminated);
        let node: NodeStatus = serde_json::from_str("\"ASSIGNED\"").unwrap();
        assert_eq!(node, NodeStatus::InProgress);
    }

    #[test]
    fn statuses_serialize_with_table_names() {
        for status in JobStatus::ALL {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
        for status in NodeStatus::ALL {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
    }
}
