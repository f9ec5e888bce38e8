//! Unit tests of [`decide`], driven through a small in-memory world.
//!
//! [`World`] contains the records of one job as the record store would. It
//! applies each decision's writes only when every `expected_version`
//! matches what it contains, bumps the versions, and feeds effect results back
//! as [`Observation::EffectApplied`]. After every step it checks the
//! invariants that hold at all times (deadlines, the retry budget, one
//! notification per give-up), so each scenario checks them at every step.

mod episodes;
mod found_bugs;
mod invariants;
mod nodes;
mod notifications;
mod outbox;
mod restarts;
mod stops;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{Context, Decision, Env, Record, decide};
use crate::effect::{ClaimedEffect, Effect, EffectKind, EffectResult};
use crate::observation::{
    CommandStatus, HealthCheckResult, InstanceChange, NodeProbe, Observation, TaskRun, TaskStop,
    Tick,
};
use crate::policy::Policy;
use crate::records::{
    CheckPhase, Episode, JobRecord, LaunchSpec, NodeRecord, RankLaunch, TaskKind, TaskRecord,
    last_arn_segment,
};
use crate::status::{JobStatus, NodeStatus, TaskStatus};
use crate::time::{Span, Timestamp};
use crate::verdict::Verdict;

pub(super) const JOB_ID: &str = "llm-pretrain-20261120";
pub(super) const CLUSTER: &str = "gpu-training";
pub(super) const TASK_DEFINITION: &str =
    "arn:aws:ecs:us-west-2:111122223333:task-definition/llm-pretrain:3";

/// Node name, container instance id and EC2 instance id of each rank.
const NODES: [(&str, &str, &str); 3] = [
    (
        "node-a",
        "0f1e2d3c4b5a49788796a5b4c3d2e1f0",
        "i-0a1b2c3d4e5f60718",
    ),
    (
        "node-b",
        "9a8b7c6d5e4f40211203f4e5d6c7b8a9",
        "i-0b2c3d4e5f6071829",
    ),
    (
        "node-c",
        "5e4f3a2b1c0d48e79f6a5b4c3d2e1f0a",
        "i-0c3d4e5f607182930",
    ),
];

/// Task ids of the first attempt, by rank.
const FIRST_TASKS: [&str; 3] = [
    "b4e7a2d9c3f14e0b8a6d5c2e1f0a9b8c",
    "a9b8c7d6e5f44a3b8c2d1e0f9a8b7c6d",
    "c0d1e2f3a4b54c6d8e7f9a0b1c2d3e4f",
];

/// 2026-11-20T09:14:21Z, the time of the sample failure event.
const START: Timestamp = Timestamp(1_795_166_061_000);

pub(super) fn task_arn(id: &str) -> String {
    format!("arn:aws:ecs:us-west-2:111122223333:task/{CLUSTER}/{id}")
}

pub(super) fn instance_arn(id: &str) -> String {
    format!("arn:aws:ecs:us-west-2:111122223333:container-instance/{CLUSTER}/{id}")
}

pub(super) fn node_name(rank: usize) -> &'static str {
    NODES[rank].0
}

/// Builds the ECS task overrides of one rank, as `gpu-recovery submit` records them.
fn rank_overrides(rank: usize, ranks: usize) -> serde_json::Value {
    json!({
        "containerOverrides": [{
            "name": "trainer",
            "environment": [
                {"name": "NODE_RANK", "value": rank.to_string()},
                {"name": "NNODES", "value": ranks.to_string()},
                {"name": "MASTER_ADDR", "value": "10.0.12.34"}
            ]
        }]
    })
}

/// A store holding one job, its tasks and nodes, and the safety record,
/// with a clock that moves only when a test moves it.
pub(super) struct World {
    pub context: Context,
    pub policy: Policy,
    pub scope: BTreeSet<EffectKind>,
    pub now: Timestamp,
    /// Effects claimed by decisions whose results are not reported yet.
    pub claimed: Vec<ClaimedEffect>,
    /// Every effect claimed so far, in claim order.
    pub claim_log: Vec<ClaimedEffect>,
    /// Latest ECS `detail.version` sent per task id or container instance arn.
    ecs_versions: BTreeMap<String, u64>,
    started_tasks: u32,
    sent_commands: u32,
}

impl World {
    /// Creates a job of `ranks` ranks (1 to 3) running on node-a, node-b and
    /// node-c, under the default policy and a scope of every effect kind.
    pub fn new(ranks: usize) -> World {
        World::with_policy(ranks, Policy::default())
    }

    pub fn with_policy(ranks: usize, policy: Policy) -> World {
        assert!((1..=NODES.len()).contains(&ranks), "ranks {ranks}");
        let now = START;
        let mut job = JobRecord::new(JOB_ID, JobStatus::InProgress);
        job.cluster_name = CLUSTER.to_owned();
        job.num_nodes = u32::try_from(ranks).expect("small rank count");
        job.version = 1;
        job.deadline = Some(now + policy.running_poll_interval);
        job.created_at = Some(now - Span::minutes(75));

        let mut tasks = Vec::new();
        let mut nodes = Vec::new();
        let mut launch = LaunchSpec {
            task_definition: TASK_DEFINITION.to_owned(),
            tags: BTreeMap::from([("team".to_owned(), "pretrain".to_owned())]),
            ranks: Vec::new(),
        };
        let mut ecs_versions = BTreeMap::new();
        for (rank, (name, instance, ec2)) in NODES.iter().take(ranks).enumerate() {
            let rank_u32 = u32::try_from(rank).expect("small rank");
            job.assigned_nodes.push((*name).to_owned());
            job.submitted_container_inst_ids
                .push((*instance).to_owned());
            job.submitted_ecs_task_ids
                .push(FIRST_TASKS[rank].to_owned());
            launch.ranks.push(RankLaunch {
                rank: rank_u32,
                node_name: (*name).to_owned(),
                container_instance_arn: instance_arn(instance),
                overrides: rank_overrides(rank, ranks),
            });
            tasks.push(TaskRecord {
                ecs_task_id: FIRST_TASKS[rank].to_owned(),
                task_arn: task_arn(FIRST_TASKS[rank]),
                job_id: JOB_ID.to_owned(),
                kind: TaskKind::Training,
                task_status: TaskStatus::InProgress,
                node_name: (*name).to_owned(),
                node_index_in_job: rank_u32,
                job_num_nodes: job.num_nodes,
                container_instance_arn: instance_arn(instance),
                container_inst_id: (*instance).to_owned(),
                cluster_name: CLUSTER.to_owned(),
                task_def_arn: TASK_DEFINITION.to_owned(),
                retry: 0,
                episode_id: None,
                phase: None,
                event_version: 3,
                running: true,
                stop_requested: None,
                stop: None,
                version: 1,
                created_at: job.created_at,
                updated_at: job.created_at,
            });
            ecs_versions.insert(FIRST_TASKS[rank].to_owned(), 3);
            let mut node = NodeRecord::new(name, &instance_arn(instance));
            node.node_status = NodeStatus::InProgress;
            node.ec2_instance_id = Some((*ec2).to_owned());
            node.cluster_name = CLUSTER.to_owned();
            node.job_id = Some(JOB_ID.to_owned());
            node.version = 1;
            nodes.push(node);
            ecs_versions.insert(instance_arn(instance), 48_213);
        }

        job.launch = Some(launch);
        World {
            context: Context {
                job: Some(job),
                tasks,
                nodes,
                safety: crate::records::SafetyRecord::default(),
                safety_exists: false,
            },
            policy,
            scope: EffectKind::ALL.into_iter().collect(),
            now,
            claimed: Vec::new(),
            claim_log: Vec::new(),
            ecs_versions,
            started_tasks: 0,
            sent_commands: 0,
        }
    }

    // ----- reading the records -----

    pub fn job(&self) -> &JobRecord {
        self.context.job.as_ref().expect("the world holds a job")
    }

    pub fn episode(&self) -> &Episode {
        self.job()
            .episode
            .as_ref()
            .unwrap_or_else(|| panic!("job has no open episode: {:?}", self.job().job_status))
    }

    pub fn node(&self, name: &str) -> &NodeRecord {
        self.context
            .nodes
            .iter()
            .find(|n| n.node_name == name)
            .unwrap_or_else(|| panic!("no node record {name}"))
    }

    pub fn node_status(&self, name: &str) -> NodeStatus {
        self.node(name).node_status
    }

    pub fn task(&self, id: &str) -> &TaskRecord {
        self.context
            .tasks
            .iter()
            .find(|t| t.ecs_task_id == id)
            .unwrap_or_else(|| panic!("no task record {id}"))
    }

    /// Returns the task id of `rank` in the current attempt.
    pub fn rank_task(&self, rank: usize) -> String {
        self.job().submitted_ecs_task_ids[rank].clone()
    }

    /// Returns the outbox intents whose effect is of `kind`.
    pub fn outbox_of(&self, kind: EffectKind) -> Vec<&crate::effect::Intent> {
        self.job()
            .outbox
            .iter()
            .filter(|i| i.effect.kind() == kind)
            .collect()
    }

    /// Returns every Reboot effect claimed so far for `node`.
    pub fn reboots_claimed(&self, node: &str) -> Vec<&ClaimedEffect> {
        self.claim_log
            .iter()
            .filter(|c| matches!(&c.effect, Effect::Reboot { node_name, .. } if node_name == node))
            .collect()
    }

    // ----- the clock -----

    pub fn advance(&mut self, span: Span) {
        self.now = self.now + span;
    }

    // ----- deciding and storing -----

    /// Decides on the current records without storing anything.
    pub fn decide(&self, observation: &Observation) -> Decision {
        let env = Env {
            policy: &self.policy,
            now: self.now,
            scope: &self.scope,
        };
        decide(&self.context, observation, &env)
    }

    /// Decides, stores the writes, keeps the claimed effects and checks the
    /// invariants.
    pub fn observe(&mut self, observation: &Observation) -> Decision {
        let decision = self.decide(observation);
        let before = self.context.clone();
        if let Err(conflict) = self.apply(&decision) {
            panic!("write of a fresh decision rejected: {conflict}\n{decision:#?}");
        }
        self.after_decision(&before, &decision, observation);
        decision
    }

    /// Applies the writes as one conditional transaction, or rejects them
    /// all when a version does not match, like the record store.
    pub fn apply(&mut self, decision: &Decision) -> Result<(), String> {
        for write in &decision.writes {
            let stored = self.stored_version(&write.record);
            if stored != write.expected_version {
                return Err(format!(
                    "{}: expected version {:?}, store contains {stored:?}",
                    write.record.describe(),
                    write.expected_version
                ));
            }
            let written = record_version(&write.record);
            let next = write.expected_version.map_or(1, |v| v + 1);
            if written != next {
                return Err(format!(
                    "{}: written with version {written}, expected {next}",
                    write.record.describe()
                ));
            }
        }
        for write in &decision.writes {
            match &write.record {
                Record::Job(job) => self.context.job = Some(job.clone()),
                Record::Task(task) => {
                    match self
                        .context
                        .tasks
                        .iter_mut()
                        .find(|t| t.ecs_task_id == task.ecs_task_id)
                    {
                        Some(slot) => *slot = task.clone(),
                        None => self.context.tasks.push(task.clone()),
                    }
                }
                Record::Node(node) => {
                    match self
                        .context
                        .nodes
                        .iter_mut()
                        .find(|n| n.node_name == node.node_name)
                    {
                        Some(slot) => *slot = node.clone(),
                        None => self.context.nodes.push(node.clone()),
                    }
                }
                Record::Safety(safety) => {
                    self.context.safety = safety.clone();
                    self.context.safety_exists = true;
                }
            }
        }
        Ok(())
    }

    fn stored_version(&self, record: &Record) -> Option<u64> {
        match record {
            Record::Job(job) => self
                .context
                .job
                .as_ref()
                .filter(|j| j.job_id == job.job_id)
                .map(|j| j.version),
            Record::Task(task) => self
                .context
                .tasks
                .iter()
                .find(|t| t.ecs_task_id == task.ecs_task_id)
                .map(|t| t.version),
            Record::Node(node) => self
                .context
                .nodes
                .iter()
                .find(|n| n.node_name == node.node_name)
                .map(|n| n.version),
            Record::Safety(_) => self
                .context
                .safety_exists
                .then_some(self.context.safety.version),
        }
    }

    /// Keeps the claimed effects and checks what must hold after every step.
    fn after_decision(&mut self, before: &Context, decision: &Decision, observation: &Observation) {
        self.claimed.extend(decision.effects.iter().cloned());
        self.claim_log.extend(decision.effects.iter().cloned());
        check_deadlines(&self.context, observation);
        check_retry_budget(&self.context, &self.policy);
        check_one_notification(before, &self.context, observation);
        check_claims_in_scope(decision, &self.scope);
    }

    // ----- effects -----

    /// Reports `result` as the result of one claimed effect.
    pub fn answer(&mut self, key: &str, result: EffectResult) -> Decision {
        let position = self
            .claimed
            .iter()
            .position(|c| c.key == key)
            .unwrap_or_else(|| {
                let keys: Vec<&str> = self.claimed.iter().map(|c| c.key.as_str()).collect();
                panic!("effect {key} is not claimed; claimed: {keys:?}")
            });
        self.claimed.remove(position);
        self.observe(&Observation::EffectApplied {
            key: key.to_owned(),
            result,
        })
    }

    /// Returns the key of the claimed effect whose key starts with `prefix`.
    pub fn claimed_key(&self, prefix: &str) -> String {
        self.claimed
            .iter()
            .find(|c| c.key.starts_with(prefix))
            .map_or_else(
                || {
                    let keys: Vec<&str> = self.claimed.iter().map(|c| c.key.as_str()).collect();
                    panic!("no claimed effect {prefix}*; claimed: {keys:?}")
                },
                |c| c.key.clone(),
            )
    }

    /// Performs every claimed effect successfully, and the effects that
    /// those results lead to, until none is left. Returns what ran.
    pub fn run_effects(&mut self) -> Vec<ClaimedEffect> {
        let mut ran = Vec::new();
        for _ in 0..100 {
            if self.claimed.is_empty() {
                return ran;
            }
            let effect = self.claimed.remove(0);
            let result = self.success_of(&effect.effect);
            self.observe(&Observation::EffectApplied {
                key: effect.key.clone(),
                result,
            });
            ran.push(effect);
        }
        panic!("effects keep coming after 100 results: {:?}", self.claimed);
    }

    /// Returns the result of a call to ECS, SSM or SNS that succeeded.
    fn success_of(&mut self, effect: &Effect) -> EffectResult {
        match effect {
            Effect::StartHealthCheck { .. } | Effect::StartTrainingTask { .. } => {
                self.started_tasks += 1;
                let id = format!("{:032x}", 0xd0d0_0000_u64 + u64::from(self.started_tasks));
                self.ecs_versions.insert(id.clone(), 1);
                EffectResult::TaskStarted {
                    task_arn: task_arn(&id),
                }
            }
            Effect::Reboot { .. } => {
                self.sent_commands += 1;
                EffectResult::CommandSent {
                    command_id: format!(
                        "0b9a8c7d-{:04}-4e5f-8a6b-111122223333",
                        self.sent_commands
                    ),
                }
            }
            _ => EffectResult::Done,
        }
    }

    // ----- events -----

    fn next_version(&mut self, key: &str) -> u64 {
        let version = self.ecs_versions.entry(key.to_owned()).or_insert(0);
        *version += 1;
        *version
    }

    /// Builds a stop event of a task, with the next ECS version of that task.
    pub fn task_stop(
        &mut self,
        id: &str,
        stop_code: Option<&str>,
        exit_codes: &[i32],
        reason: Option<&str>,
    ) -> TaskStop {
        let task = self.task(id).clone();
        TaskStop {
            task_arn: task.task_arn.clone(),
            container_instance_arn: task.container_instance_arn.clone(),
            task_definition_arn: task.task_def_arn.clone(),
            stop_code: stop_code.map(str::to_owned),
            exit_codes: exit_codes.to_vec(),
            stopped_reason: reason.map(str::to_owned),
            version: self.next_version(id),
            at: self.now,
        }
    }

    /// Stops the container of `rank` with exit code `code` (`EssentialContainerExited`).
    pub fn exit_rank(&mut self, rank: usize, code: i32) -> Decision {
        let id = self.rank_task(rank);
        let stop = self.task_stop(
            &id,
            Some("EssentialContainerExited"),
            &[code],
            Some("Essential container in task exited"),
        );
        self.observe(&Observation::TaskStopped(stop))
    }

    /// Returns the id of the health-check task started on `node`.
    pub fn check_task(&self, node: &str) -> String {
        let run =
            self.node(node).health_check.as_ref().unwrap_or_else(|| {
                panic!("node {node} has no health check: {:?}", self.node(node))
            });
        run.task_id
            .clone()
            .unwrap_or_else(|| panic!("health check on {node} has no task yet: {run:?}"))
    }

    /// Builds the stop event of the health check on `node`, exiting `code`.
    pub fn check_result(&mut self, node: &str, code: i32) -> HealthCheckResult {
        let id = self.check_task(node);
        HealthCheckResult {
            task_arn: task_arn(&id),
            container_instance_arn: self.node(node).container_instance_arn.clone(),
            exit_code: Some(code),
            stop_code: Some("EssentialContainerExited".to_owned()),
            stopped_reason: Some("Essential container in task exited".to_owned()),
            report: None,
            version: self.next_version(&id),
            at: self.now,
        }
    }

    /// Finishes the health check on `node` with exit code `code`.
    pub fn finish_check(&mut self, node: &str, code: i32) -> Decision {
        let result = self.check_result(node, code);
        self.observe(&Observation::HealthCheckFinished(result))
    }

    /// Builds a container instance event of `node` with the next version.
    pub fn instance_change(&mut self, node: &str, agent_connected: bool) -> InstanceChange {
        let record = self.node(node).clone();
        InstanceChange {
            container_instance_arn: record.container_instance_arn.clone(),
            ec2_instance_id: record.ec2_instance_id.clone(),
            agent_connected,
            status: "ACTIVE".to_owned(),
            version: self.next_version(&record.container_instance_arn),
            updated_at: self.now,
        }
    }

    pub fn agent_event(&mut self, node: &str, agent_connected: bool) -> Decision {
        let change = self.instance_change(node, agent_connected);
        self.observe(&Observation::InstanceChanged(change))
    }

    /// Returns the latest container instance version sent for `node`.
    pub fn instance_version(&self, node: &str) -> u64 {
        self.ecs_versions[&self.node(node).container_instance_arn]
    }

    /// Sends the RUNNING events of every rank of the current attempt.
    pub fn run_ranks(&mut self) {
        for rank in 0..self.job().num_nodes as usize {
            let id = self.rank_task(rank);
            let run = self.task_run(&id);
            self.observe(&Observation::TaskRunning(run));
        }
    }

    pub fn task_run(&mut self, id: &str) -> TaskRun {
        let task = self.task(id).clone();
        TaskRun {
            task_arn: task.task_arn.clone(),
            container_instance_arn: task.container_instance_arn.clone(),
            task_definition_arn: task.task_def_arn.clone(),
            started_by: None,
            overrides: serde_json::Value::Null,
            tags: None,
            ec2_instance_id: None,
            version: self.next_version(id),
            at: self.now,
        }
    }

    pub fn tick(&mut self) -> Decision {
        self.observe(&Observation::Tick(Tick::default()))
    }

    pub fn tick_with_probe(&mut self, node: &str, probe: NodeProbe) -> Decision {
        let tick = Tick {
            nodes: BTreeMap::from([(node.to_owned(), probe)]),
            tasks: BTreeMap::new(),
        };
        self.observe(&Observation::Tick(tick))
    }

    // ----- scenario steps -----

    /// Fails rank 0 with exit code 1 and runs every resulting effect, so the
    /// siblings stop and a health check starts on every node.
    pub fn open_episode(&mut self) {
        self.exit_rank(0, 1);
        self.run_effects();
        self.confirm_sibling_stops();
        assert_eq!(
            self.job().job_status,
            JobStatus::PendingHealthcheck,
            "job after the failure"
        );
    }

    /// Delivers the stop events of the siblings the engine stopped, which
    /// frees their nodes' GPUs for the health checks, and runs the effects.
    pub fn confirm_sibling_stops(&mut self) {
        let stopping: Vec<String> = self
            .context
            .tasks
            .iter()
            .filter(|t| t.stop_requested.is_some() && t.stop.is_none())
            .map(|t| t.ecs_task_id.clone())
            .collect();
        for id in stopping {
            let reason = format!("gpu-recovery: job {JOB_ID} stopped because a task failed");
            let stop = self.task_stop(&id, Some("UserInitiated"), &[137], Some(&reason));
            self.observe(&Observation::TaskStopped(stop));
            self.run_effects();
        }
    }

    /// Delivers the health-check exit codes in the given order, one minute
    /// apart, running the effects after each.
    pub fn deliver_verdicts(&mut self, codes: &[(&str, i32)]) {
        for (node, code) in codes {
            self.advance(Span::minutes(1));
            self.finish_check(node, *code);
            self.run_effects();
        }
    }

    /// Disconnects and reconnects the node's agent, which starts the
    /// post-reboot health check.
    pub fn reboot_and_return(&mut self, node: &str) {
        self.advance(Span::minutes(2));
        self.agent_event(node, false);
        self.advance(Span::minutes(3));
        self.agent_event(node, true);
        self.run_effects();
    }

    /// Drives the job from a failure of rank 0 to RESTARTING: node-a needs
    /// a reboot and the others are healthy. The `StartTask` effects of the
    /// restart are claimed and not run yet.
    pub fn recover_to_restart(&mut self) {
        self.open_episode();
        let mut codes = vec![(node_name(0), 1)];
        for rank in 1..self.job().num_nodes as usize {
            codes.push((node_name(rank), 0));
        }
        self.deliver_verdicts(&codes);
        assert_eq!(
            self.job().job_status,
            JobStatus::PendingRestart,
            "job after the verdicts"
        );
        self.reboot_and_return(node_name(0));
        self.advance(Span::minutes(2));
        self.finish_check(node_name(0), 0);
        assert_eq!(
            self.job().job_status,
            JobStatus::Restarting,
            "job after the post-reboot check"
        );
    }
}

fn record_version(record: &Record) -> u64 {
    match record {
        Record::Job(job) => job.version,
        Record::Task(task) => task.version,
        Record::Node(node) => node.version,
        Record::Safety(safety) => safety.version,
    }
}

/// Checks that every non-terminal job status and every recovering node
/// status carries a deadline, so the watchdog moves it on.
fn check_deadlines(context: &Context, observation: &Observation) {
    let step = observation.summary();
    if let Some(job) = &context.job
        && !job.job_status.is_terminal()
    {
        assert!(
            job.deadline.is_some(),
            "job {} is {} without a deadline after {step}",
            job.job_id,
            job.job_status
        );
    }
    for node in &context.nodes {
        if node.node_status.is_recovering() {
            assert!(
                node.deadline.is_some(),
                "node {} is {} without a deadline after {step}",
                node.node_name,
                node.node_status
            );
        }
    }
}

fn check_retry_budget(context: &Context, policy: &Policy) {
    if let Some(job) = &context.job {
        assert!(
            job.retry <= policy.max_retries,
            "retry {} exceeds max_retries {}",
            job.retry,
            policy.max_retries
        );
    }
}

/// Checks that a decision which gives up on the job, takes a node out of
/// service or opens the circuit breaker queues exactly one notification.
/// Any other decision queues none.
fn check_one_notification(before: &Context, after: &Context, observation: &Observation) {
    let (Some(old), Some(new)) = (&before.job, &after.job) else {
        return;
    };
    let gave_up = old.job_status != JobStatus::Failed && new.job_status == JobStatus::Failed;
    let quarantined: Vec<&str> = after
        .nodes
        .iter()
        .filter(|n| n.node_status == NodeStatus::Failed)
        .filter(|n| {
            before
                .nodes
                .iter()
                .find(|b| b.node_name == n.node_name)
                .is_none_or(|b| b.node_status != NodeStatus::Failed)
        })
        .map(|n| n.node_name.as_str())
        .collect();
    let breaker_opened =
        before.safety.breaker_open_since.is_none() && after.safety.breaker_open_since.is_some();
    let queued: Vec<&crate::effect::Intent> = new
        .outbox
        .iter()
        .filter(|i| matches!(i.effect, Effect::Notify(_)))
        .filter(|i| {
            old.outbox
                .iter()
                .find(|o| o.key == i.key)
                .is_none_or(|o| o.effect != i.effect)
        })
        .collect();
    let expected = usize::from(gave_up || !quarantined.is_empty() || breaker_opened);
    assert_eq!(
        queued.len(),
        expected,
        "notifications queued after {} (gave up {gave_up}, quarantined {quarantined:?}, breaker opened {breaker_opened}): {queued:#?}",
        observation.summary()
    );
}

fn check_claims_in_scope(decision: &Decision, scope: &BTreeSet<EffectKind>) {
    for claimed in &decision.effects {
        assert!(
            scope.contains(&claimed.effect.kind()),
            "claimed {} outside the scope {scope:?}",
            claimed.key
        );
    }
}

/// Builds the watchdog's probe of one node.
pub(super) fn probe(
    agent_connected: Option<bool>,
    instance_version: Option<u64>,
    reboot_command: Option<CommandStatus>,
) -> NodeProbe {
    NodeProbe {
        agent_connected,
        instance_version,
        reboot_command,
    }
}

/// Returns the episode verdict of `node` for `phase`.
pub(super) fn verdict_of(world: &World, node: &str, phase: CheckPhase) -> Option<Verdict> {
    let entry = world.episode().nodes.get(node)?;
    let record = match phase {
        CheckPhase::Initial => entry.initial.as_ref(),
        CheckPhase::PostReboot => entry.post_reboot.as_ref(),
    };
    record.map(|r| r.verdict)
}

/// Ids of the tasks written by a decision.
pub(super) fn written_tasks(decision: &Decision) -> Vec<&TaskRecord> {
    decision
        .writes
        .iter()
        .filter_map(|w| match &w.record {
            Record::Task(task) => Some(task),
            _ => None,
        })
        .collect()
}

pub(super) fn written_job(decision: &Decision) -> Option<&JobRecord> {
    decision.writes.iter().find_map(|w| match &w.record {
        Record::Job(job) => Some(job),
        _ => None,
    })
}

pub(super) fn written_nodes(decision: &Decision) -> Vec<&NodeRecord> {
    decision
        .writes
        .iter()
        .filter_map(|w| match &w.record {
            Record::Node(node) => Some(node),
            _ => None,
        })
        .collect()
}

/// Returns the task id in a task ARN.
pub(super) fn short(arn: &str) -> &str {
    last_arn_segment(arn)
}
