//! The mutable copy of the records that a decision works on, and the
//! helpers that change it while keeping the history and outbox in step.

use std::collections::BTreeMap;

use crate::effect::{ClaimedEffect, Effect, Intent, MetricEvent, NotificationKind};
use crate::observation::Observation;
use crate::records::{
    HISTORY_LIMIT, HistoryEntry, JobRecord, NodeRecord, SafetyRecord, TaskRecord,
};
use crate::status::{JobStatus, NodeStatus, TaskStatus};
use crate::time::Timestamp;

use super::{Context, Decision, Env, Record, Write, notify};

/// One fact for the operators' notification of this decision.
#[derive(Debug, Clone)]
pub(super) struct Notice {
    pub kind: NotificationKind,
    pub text: String,
}

pub(super) struct Working<'a> {
    pub env: &'a Env<'a>,
    pub now: Timestamp,
    original: &'a Context,
    observation: String,
    pub job: Option<JobRecord>,
    pub tasks: BTreeMap<String, TaskRecord>,
    pub nodes: BTreeMap<String, NodeRecord>,
    pub safety: SafetyRecord,
    pub history: Vec<HistoryEntry>,
    pub metrics: Vec<MetricEvent>,
    pub notes: Vec<String>,
    pub notices: Vec<Notice>,
}

impl<'a> Working<'a> {
    pub fn new(context: &'a Context, observation: &Observation, env: &'a Env<'a>) -> Working<'a> {
        Working {
            env,
            now: env.now,
            original: context,
            observation: observation.summary(),
            job: context.job.clone(),
            tasks: context
                .tasks
                .iter()
                .map(|t| (t.ecs_task_id.clone(), t.clone()))
                .collect(),
            nodes: context
                .nodes
                .iter()
                .map(|n| (n.node_name.clone(), n.clone()))
                .collect(),
            safety: context.safety.clone(),
            history: Vec::new(),
            metrics: Vec::new(),
            notes: Vec::new(),
            notices: Vec::new(),
        }
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn notice(&mut self, kind: NotificationKind, text: impl Into<String>) {
        self.notices.push(Notice {
            kind,
            text: text.into(),
        });
    }

    /// The job; decisions that reach this point always have one.
    pub fn job(&self) -> &JobRecord {
        self.job.as_ref().expect("decision needs a job record")
    }

    pub fn job_mut(&mut self) -> &mut JobRecord {
        self.job.as_mut().expect("decision needs a job record")
    }

    pub fn job_id(&self) -> String {
        self.job().job_id.clone()
    }

    pub fn job_status(&self) -> JobStatus {
        self.job().job_status
    }

    pub fn episode_id(&self) -> Option<String> {
        self.job
            .as_ref()?
            .episode
            .as_ref()
            .map(|episode| episode.id.clone())
    }

    fn record_history(&mut self, subject: String, from: String, to: String, reason: &str) {
        let entry = HistoryEntry {
            at: self.now,
            observation: self.observation.clone(),
            subject,
            from,
            to,
            reason: reason.to_owned(),
        };
        self.history.push(entry.clone());
        if let Some(job) = self.job.as_mut() {
            job.history.push(entry);
            if job.history.len() > HISTORY_LIMIT {
                let excess = job.history.len() - HISTORY_LIMIT;
                job.history.drain(..excess);
            }
        }
    }

    /// Adds a history entry for an event that changes no status.
    pub fn record_event(&mut self, subject: String, status: String, reason: &str) {
        self.record_history(subject, status.clone(), status, reason);
    }

    pub fn set_job_status(&mut self, to: JobStatus, reason: &str) {
        let from = self.job_status();
        if from == to {
            return;
        }
        let job = self.job_mut();
        job.job_status = to;
        job.status_reason = Some(reason.to_owned());
        self.record_history("job".to_owned(), from.to_string(), to.to_string(), reason);
    }

    /// Changes a node's status, records why, and mirrors the status into the
    /// container instance attribute.
    pub fn set_node_status(&mut self, name: &str, to: NodeStatus, reason: &str) {
        let Some(node) = self.nodes.get_mut(name) else {
            self.note(format!(
                "node {name} has no record; status {to} not applied"
            ));
            return;
        };
        let from = node.node_status;
        node.status_reason = Some(reason.to_owned());
        if from == to {
            return;
        }
        node.node_status = to;
        let container_instance_arn = node.container_instance_arn.clone();
        self.record_history(
            format!("node {name}"),
            from.to_string(),
            to.to_string(),
            reason,
        );
        self.push_intent(
            format!("attribute:{name}"),
            Effect::SetNodeAttribute {
                node_name: name.to_owned(),
                container_instance_arn,
                value: to,
            },
        );
    }

    pub fn set_task_status(&mut self, id: &str, to: TaskStatus, reason: &str) {
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        let from = task.task_status;
        if from == to {
            return;
        }
        task.task_status = to;
        self.record_history(
            format!("task {id}"),
            from.to_string(),
            to.to_string(),
            reason,
        );
    }

    /// Adds an intent to the outbox. An intent with the same key replaces the
    /// pending one, so the newest attribute value wins.
    pub fn push_intent(&mut self, key: String, effect: Effect) {
        let now = self.now;
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let intent = Intent {
            key,
            effect,
            created_at: now,
            claimed_at: None,
            attempts: 0,
            last_error: None,
            not_before: None,
        };
        if let Some(existing) = job.outbox.iter_mut().find(|i| i.key == intent.key) {
            *existing = intent;
        } else {
            job.outbox.push(intent);
        }
    }

    /// Node names of the job in rank order.
    pub fn job_nodes(&self) -> Vec<String> {
        self.job
            .as_ref()
            .map(|job| job.assigned_nodes.clone())
            .unwrap_or_default()
    }

    pub fn node_by_container_instance(&self, arn: &str) -> Option<String> {
        self.nodes
            .values()
            .find(|n| n.container_instance_arn == arn)
            .map(|n| n.node_name.clone())
    }

    /// Consumes the work and produces the writes and claimed effects.
    pub fn finish(mut self) -> Decision {
        notify::flush(&mut self);
        let effects = self.claim_effects();
        let mut writes = Vec::new();

        if let Some(job) = self.job.take() {
            let before = self
                .original
                .job
                .as_ref()
                .filter(|j| j.job_id == job.job_id);
            if before != Some(&job) {
                let expected = before.map(|b| b.version);
                let mut job = job;
                job.version = expected.map_or(1, |v| v + 1);
                job.updated_at = Some(self.now);
                job.created_at.get_or_insert(self.now);
                writes.push(Write {
                    record: Record::Job(job),
                    expected_version: expected,
                });
            }
        }
        for (id, task) in std::mem::take(&mut self.tasks) {
            let before = self.original.tasks.iter().find(|t| t.ecs_task_id == id);
            if before != Some(&task) {
                let expected = before.map(|b| b.version);
                let mut task = task;
                task.version = expected.map_or(1, |v| v + 1);
                task.updated_at = Some(self.now);
                task.created_at.get_or_insert(self.now);
                writes.push(Write {
                    record: Record::Task(task),
                    expected_version: expected,
                });
            }
        }
        for (name, node) in std::mem::take(&mut self.nodes) {
            let before = self.original.nodes.iter().find(|n| n.node_name == name);
            if before != Some(&node) {
                let expected = before.map(|b| b.version);
                let mut node = node;
                node.version = expected.map_or(1, |v| v + 1);
                node.updated_at = Some(self.now);
                node.created_at.get_or_insert(self.now);
                writes.push(Write {
                    record: Record::Node(node),
                    expected_version: expected,
                });
            }
        }
        if self.safety != self.original.safety {
            let expected = self
                .original
                .safety_exists
                .then_some(self.original.safety.version);
            let mut safety = self.safety.clone();
            safety.version = expected.map_or(1, |v| v + 1);
            writes.push(Write {
                record: Record::Safety(safety),
                expected_version: expected,
            });
        }

        Decision {
            writes,
            effects,
            history: self.history,
            metrics: self.metrics,
            notes: self.notes,
        }
    }

    /// Claims every outbox intent this entry point may run that is unclaimed
    /// or whose claim has outlived the lease.
    fn claim_effects(&mut self) -> Vec<ClaimedEffect> {
        let now = self.now;
        let lease = self.env.policy.effect_lease;
        let scope = self.env.scope;
        let Some(job) = self.job.as_mut() else {
            return Vec::new();
        };
        let job_id = job.job_id.clone();
        let restarting = job.job_status == JobStatus::Restarting;
        let mut claimed = Vec::new();
        for intent in &mut job.outbox {
            // NOTE: a start claimed before the job gave up, whose result never
            // came back, stays in the outbox unclaimed; a task it may have
            // started is found only by the job's owner.
            if matches!(intent.effect, Effect::StartTrainingTask { .. }) && !restarting {
                continue;
            }
            let free = intent.claimed_at.is_none_or(|at| at + lease <= now)
                && intent.not_before.is_none_or(|at| at <= now);
            if free && scope.contains(&intent.effect.kind()) {
                intent.claimed_at = Some(now);
                intent.attempts += 1;
                claimed.push(ClaimedEffect {
                    job_id: job_id.clone(),
                    key: intent.key.clone(),
                    effect: intent.effect.clone(),
                });
            }
        }
        claimed
    }
}

/// A short deterministic token from the given parts, for ECS `startedBy`
/// (at most 36 letters, digits, hyphens and underscores) and SSM comments.
/// FNV-1a over the parts; collisions only matter within one job's episode.
pub(super) fn token(prefix: &str, parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{prefix}-{hash:016x}")
}
