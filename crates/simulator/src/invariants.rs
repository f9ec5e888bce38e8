//! Checks of the engine's invariants after every step of a run. A run that
//! breaks one reports it as a violation, and `simulate` then fails.

use std::collections::BTreeMap;

use gpu_recovery_domain::{JobStatus, NodeStatus, Timestamp};
use gpu_recovery_memory::{MemoryNotifier, MemoryStore};

use crate::cluster::SimCluster;
use crate::scenario::Scenario;

pub struct Checker {
    pub violations: Vec<String>,
    faults: u32,
    max_retries: u32,
}

impl Checker {
    #[must_use]
    pub fn new(scenario: &Scenario) -> Checker {
        Checker {
            violations: Vec::new(),
            faults: 0,
            max_retries: scenario.policy.max_retries,
        }
    }

    fn violation(&mut self, text: String) {
        if !self.violations.contains(&text) {
            self.violations.push(text);
        }
    }

    /// Counts a fault that hit a running training task.
    pub fn fault_applied(&mut self) {
        self.faults += 1;
    }

    /// The state a duplicate event must leave unchanged, or `None` when the
    /// outbox contains work that any delivery may legitimately pick up.
    #[must_use]
    pub fn fingerprint(&self, store: &MemoryStore) -> Option<String> {
        let jobs = store.jobs();
        if jobs.iter().any(|j| !j.outbox.is_empty()) {
            return None;
        }
        let jobs: Vec<_> = jobs
            .iter()
            .map(|j| {
                (
                    j.job_id.clone(),
                    j.job_status,
                    j.retry,
                    j.episodes_opened,
                    j.episode.clone(),
                )
            })
            .collect();
        let nodes: Vec<_> = store
            .nodes()
            .iter()
            .map(|n| (n.node_name.clone(), n.node_status, n.reboot.clone()))
            .collect();
        let tasks: Vec<_> = store
            .tasks()
            .iter()
            .map(|t| (t.ecs_task_id.clone(), t.task_status, t.running))
            .collect();
        Some(format!("{jobs:?}{nodes:?}{tasks:?}"))
    }

    /// Invariant 6: a duplicate delivery changes nothing.
    pub fn after_duplicate(&mut self, before: Option<String>, store: &MemoryStore, summary: &str) {
        if let Some(before) = before
            && Some(before) != self.fingerprint(store)
        {
            self.violation(format!(
                "invariant 6: the duplicate delivery of \"{summary}\" changed the records"
            ));
        }
    }

    pub fn after_step(
        &mut self,
        now: Timestamp,
        store: &MemoryStore,
        cluster: &SimCluster,
        _scenario: &Scenario,
    ) {
        let jobs = store.jobs();
        let nodes = store.nodes();
        for job in &jobs {
            // Invariant 1: each fault opens at most one episode.
            if job.episodes_opened > self.faults {
                self.violation(format!(
                    "invariant 1: job {} opened {} episodes for {} faults",
                    job.job_id, job.episodes_opened, self.faults
                ));
            }
            // Invariant 4: the retry budget holds.
            if job.retry > self.max_retries {
                self.violation(format!(
                    "invariant 4: job {} has retry {} above MAX_RETRIES {}",
                    job.job_id, job.retry, self.max_retries
                ));
            }
            // Invariant 5: every unfinished job has a deadline.
            if !job.job_status.is_terminal() && job.deadline.is_none() {
                self.violation(format!(
                    "invariant 5: job {} is {} with no deadline at {now}",
                    job.job_id, job.job_status
                ));
            }
        }
        let state = cluster.lock();
        // Invariant 2: at most one reboot command per node per episode; the
        // token is derived from the episode and the node.
        let mut per_token: BTreeMap<&str, u32> = BTreeMap::new();
        for command in &state.commands {
            *per_token.entry(command.token.as_str()).or_default() += 1;
        }
        let doubled: Vec<String> = per_token
            .iter()
            .filter(|(_, count)| **count > 1)
            .map(|(token, count)| format!("{token} x{count}"))
            .collect();
        for token in doubled {
            self.violation(format!(
                "invariant 2: more than one reboot command with token {token}"
            ));
        }
        for node in &nodes {
            // Invariant 3: back only after a real reboot completed.
            if let Some(run) = &node.reboot
                && let Some(back) = run.back_at
            {
                let real = state.instances.get(&node.node_name).is_some_and(|i| {
                    i.completed_reboots
                        .iter()
                        .any(|at| *at >= run.requested_at && *at <= back)
                });
                if !real {
                    self.violation(format!("invariant 3: node {} counted as back at {back} with no completed reboot since {}", node.node_name, run.requested_at));
                }
            }
            // Invariant 5: every recovering node has a deadline, and a busy
            // node's job has one.
            if node.node_status.is_recovering() && node.deadline.is_none() {
                self.violation(format!(
                    "invariant 5: node {} is {} with no deadline at {now}",
                    node.node_name, node.node_status
                ));
            }
            if node.node_status == NodeStatus::InProgress {
                let job = node
                    .job_id
                    .as_ref()
                    .and_then(|id| jobs.iter().find(|j| &j.job_id == id));
                if job.is_none_or(|j| j.job_status.is_terminal() || j.deadline.is_none()) {
                    self.violation(format!(
                        "invariant 5: node {} is IN_PROGRESS for no unfinished job with a deadline",
                        node.node_name
                    ));
                }
            }
        }
    }

    /// At the end: every job finished or has a deadline pending, and every
    /// failed job notified the operators (invariant 4).
    pub fn at_end(&mut self, store: &MemoryStore, notifier: &MemoryNotifier) {
        let sent = notifier.sent();
        for job in store.jobs() {
            if !job.job_status.is_terminal() && job.deadline.is_none() {
                self.violation(format!(
                    "job {} ended the run {} with no deadline",
                    job.job_id, job.job_status
                ));
            }
            if job.job_status == JobStatus::Failed && !sent.iter().any(|n| n.job_id == job.job_id) {
                self.violation(format!(
                    "invariant 4: job {} FAILED without a notification",
                    job.job_id
                ));
            }
        }
    }
}
