//! In-memory adapters: a record store with the same conditional-write
//! semantics as the DynamoDB one, a notifier and a metrics sink that keep what
//! they receive. The simulator and the engine's tests run on these.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use gpu_recovery_domain::records::SAFETY_RECORD_KEY;
use gpu_recovery_domain::{
    JobRecord, JobStatus, MetricEvent, NodeRecord, NodeStatus, Notification, Record, SafetyRecord,
    TaskRecord, Write,
};
use gpu_recovery_ports::{CallError, Metrics, Notifier, RecordStore, StoreError};

#[derive(Debug, Default)]
struct Tables {
    jobs: BTreeMap<String, JobRecord>,
    tasks: BTreeMap<String, TaskRecord>,
    nodes: BTreeMap<String, NodeRecord>,
    safety: Option<SafetyRecord>,
    /// While set, every call fails as an unreachable store would.
    unavailable: bool,
    commits: u64,
}

/// The three tables and the safety record, in memory.
///
/// `commit` is atomic: every condition is checked before anything is
/// written, as DynamoDB's TransactWriteItems does. Clones share the tables.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
}

impl MemoryStore {
    #[must_use]
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check(&self) -> Result<MutexGuard<'_, Tables>, StoreError> {
        let tables = self.lock();
        if tables.unavailable {
            return Err(StoreError::Unavailable {
                operation: "memory store".to_owned(),
                message: "the store is marked unavailable".to_owned(),
            });
        }
        Ok(tables)
    }

    /// Makes every later call fail until it is cleared, as a crashed or
    /// unreachable store would.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    /// Writes records directly, with no condition, as an operator tool would.
    pub fn insert(&self, record: Record) {
        let mut tables = self.lock();
        apply(&mut tables, record);
    }

    #[must_use]
    pub fn jobs(&self) -> Vec<JobRecord> {
        self.lock().jobs.values().cloned().collect()
    }

    #[must_use]
    pub fn tasks(&self) -> Vec<TaskRecord> {
        self.lock().tasks.values().cloned().collect()
    }

    #[must_use]
    pub fn nodes(&self) -> Vec<NodeRecord> {
        self.lock().nodes.values().cloned().collect()
    }

    #[must_use]
    pub fn safety(&self) -> Option<SafetyRecord> {
        self.lock().safety.clone()
    }

    /// Number of successful commits so far.
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }
}

fn apply(tables: &mut Tables, record: Record) {
    match record {
        Record::Job(job) => {
            tables.jobs.insert(job.job_id.clone(), job);
        }
        Record::Task(task) => {
            tables.tasks.insert(task.ecs_task_id.clone(), task);
        }
        Record::Node(node) => {
            tables.nodes.insert(node.node_name.clone(), node);
        }
        Record::Safety(safety) => tables.safety = Some(safety),
    }
}

fn current_version(tables: &Tables, record: &Record) -> Option<u64> {
    match record {
        Record::Job(job) => tables.jobs.get(&job.job_id).map(|j| j.version),
        Record::Task(task) => tables.tasks.get(&task.ecs_task_id).map(|t| t.version),
        Record::Node(node) => tables.nodes.get(&node.node_name).map(|n| n.version),
        Record::Safety(_) => tables.safety.as_ref().map(|s| s.version),
    }
}

impl RecordStore for MemoryStore {
    async fn get_job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.check()?.jobs.get(job_id).cloned())
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self.check()?.tasks.get(task_id).cloned())
    }

    async fn get_node(&self, node_name: &str) -> Result<Option<NodeRecord>, StoreError> {
        if node_name == SAFETY_RECORD_KEY {
            return Ok(None);
        }
        Ok(self.check()?.nodes.get(node_name).cloned())
    }

    async fn tasks_by_job(&self, job_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        Ok(self
            .check()?
            .tasks
            .values()
            .filter(|t| t.job_id == job_id)
            .cloned()
            .collect())
    }

    async fn node_by_container_instance(
        &self,
        container_instance_arn: &str,
    ) -> Result<Option<NodeRecord>, StoreError> {
        Ok(self
            .check()?
            .nodes
            .values()
            .find(|n| n.container_instance_arn == container_instance_arn)
            .cloned())
    }

    async fn get_safety(&self) -> Result<Option<SafetyRecord>, StoreError> {
        Ok(self.check()?.safety.clone())
    }

    async fn jobs_by_status(&self, status: JobStatus) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self
            .check()?
            .jobs
            .values()
            .filter(|j| j.job_status == status)
            .cloned()
            .collect())
    }

    async fn nodes_by_status(&self, status: NodeStatus) -> Result<Vec<NodeRecord>, StoreError> {
        Ok(self
            .check()?
            .nodes
            .values()
            .filter(|n| n.node_status == status)
            .cloned()
            .collect())
    }

    async fn commit(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut tables = self.check()?;
        for write in writes {
            let current = current_version(&tables, &write.record);
            let holds = match (write.expected_version, current) {
                // A version of 0 also matches a record that is missing, like
                // DynamoDB's `attribute_not_exists(version)`.
                (None | Some(0), None) => true,
                (Some(expected), Some(found)) => expected == found,
                _ => false,
            };
            if !holds {
                return Err(StoreError::Conflict {
                    record: write.record.describe(),
                });
            }
        }
        for write in writes {
            apply(&mut tables, write.record.clone());
        }
        tables.commits += 1;
        Ok(())
    }
}

/// A notifier that keeps every notification it is given.
#[derive(Debug, Clone, Default)]
pub struct MemoryNotifier {
    sent: Arc<Mutex<Vec<Notification>>>,
}

impl MemoryNotifier {
    #[must_use]
    pub fn sent(&self) -> Vec<Notification> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Notifier for MemoryNotifier {
    async fn publish(&self, notification: &Notification) -> Result<(), CallError> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(notification.clone());
        Ok(())
    }
}

/// A metrics sink that keeps every event with the function that sent it.
#[derive(Debug, Clone, Default)]
pub struct MemoryMetrics {
    events: Arc<Mutex<Vec<(String, MetricEvent)>>>,
}

impl MemoryMetrics {
    #[must_use]
    pub fn events(&self) -> Vec<(String, MetricEvent)> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Metrics for MemoryMetrics {
    fn record(&self, function: &str, events: &[MetricEvent]) {
        let mut kept = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.extend(events.iter().map(|e| (function.to_owned(), e.clone())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        // The store never awaits, so one poll finishes every future.
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => panic!("memory store future did not finish"),
        }
    }

    fn job_write(version: u64, expected: Option<u64>) -> Write {
        let mut job = JobRecord::new("job-1", JobStatus::InProgress);
        job.version = version;
        Write {
            record: Record::Job(job),
            expected_version: expected,
        }
    }

    #[test]
    fn commit_rejects_stale_version() {
        let store = MemoryStore::new();
        block_on(store.commit(&[job_write(1, None)])).unwrap();
        block_on(store.commit(&[job_write(2, Some(1))])).unwrap();
        let error = block_on(store.commit(&[job_write(2, Some(1))])).unwrap_err();
        assert_eq!(
            error,
            StoreError::Conflict {
                record: "job job-1".to_owned()
            }
        );
        assert_eq!(
            block_on(store.get_job("job-1")).unwrap().unwrap().version,
            2
        );
    }

    #[test]
    fn commit_is_all_or_nothing() {
        let store = MemoryStore::new();
        block_on(store.commit(&[job_write(1, None)])).unwrap();
        let node = NodeRecord::new("node-a", "arn:ci/a");
        let writes = [
            Write {
                record: Record::Node(node),
                expected_version: None,
            },
            job_write(2, Some(7)),
        ];
        assert!(block_on(store.commit(&writes)).is_err());
        assert!(
            block_on(store.get_node("node-a")).unwrap().is_none(),
            "node written despite the conflict"
        );
    }

    #[test]
    fn create_conflicts_when_present() {
        let store = MemoryStore::new();
        block_on(store.commit(&[job_write(1, None)])).unwrap();
        assert!(matches!(
            block_on(store.commit(&[job_write(1, None)])),
            Err(StoreError::Conflict { .. })
        ));
    }

    #[test]
    fn unavailable_store_fails_calls() {
        let store = MemoryStore::new();
        store.set_unavailable(true);
        assert!(matches!(
            block_on(store.get_job("x")),
            Err(StoreError::Unavailable { .. })
        ));
        store.set_unavailable(false);
        assert!(block_on(store.get_job("x")).unwrap().is_none());
    }
}
