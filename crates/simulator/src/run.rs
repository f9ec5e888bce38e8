//! The simulation loop: a simulated clock, a queue of timed events, the four
//! entry points of the engine, and at-least-once, unordered delivery.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use gpu_recovery_dcgm::Assessment;
use gpu_recovery_domain::observation::{Observation, ReportSummary};
use gpu_recovery_domain::{NodeRecord, NodeStatus, Span, Timestamp};
use gpu_recovery_eventbridge::{Parsed, RouteConfig};
use gpu_recovery_memory::{MemoryMetrics, MemoryNotifier, MemoryStore};
use gpu_recovery_service::functions::EntryPoint;
use gpu_recovery_service::submit::{JobSubmission, RankSubmission, submit_job};
use gpu_recovery_service::{Engine, EngineConfig, Ports, Step};
use serde_json::{Value, json};

use crate::cluster::{CLUSTER, HEALTH_CHECK_FAMILY, Internal, SimCluster};
use crate::invariants::Checker;
use crate::report::{Line, SimReport};
use crate::scenario::{FaultKind, Scenario};

/// The simulated start of every run: the job's first tasks start here.
pub const START: Timestamp = Timestamp(1_795_680_000_000);
/// The watchdog's schedule, as in the deployed stack.
const TICK_EVERY: Span = Span::minutes(5);
/// How often each node's agent reconnects on its own.
const ROUTINE_RECONNECT_EVERY: Span = Span::minutes(41);
/// Retries of a failed invocation before its event is dead-lettered, as
/// EventBridge and Lambda do with the stack's retry policy.
const DELIVERY_ATTEMPTS: u32 = 3;

type SimEngine = Engine<MemoryStore, SimCluster, SimCluster, MemoryNotifier, MemoryMetrics>;

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Internal(Internal),
    Deliver {
        to: EntryPoint,
        document: Value,
        attempt: u32,
    },
    Fault(usize),
    Tick,
    Routine {
        node: String,
    },
}

impl Item {
    /// Items that keep the run alive; ticks and routine reconnects do not.
    fn is_activity(&self) -> bool {
        matches!(
            self,
            Item::Internal(_) | Item::Deliver { .. } | Item::Fault(_)
        )
    }
}

#[derive(Debug)]
struct Scheduled {
    at: Timestamp,
    seq: u64,
    item: Item,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// `SplitMix64`: a small, fast generator, so a seed replays a run exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound`, or 0 for a bound of 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}

/// Options for one run besides the scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replaces the scenario's delivery seed.
    pub seed: Option<u64>,
    /// Crash the effect runner after this many cluster-changing calls; the
    /// observation is then delivered again.
    pub crash_after_calls: Option<u32>,
}

pub struct Simulation {
    scenario: Scenario,
    now: Timestamp,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    rng: Rng,
    store: MemoryStore,
    cluster: SimCluster,
    notifier: MemoryNotifier,
    engines: BTreeMap<EntryPoint, SimEngine>,
    route: RouteConfig,
    lines: Vec<Line>,
    emitted: u64,
    seed: u64,
    checker: Checker,
    /// Envelope ids of the documents delivered so far.
    delivered: std::collections::HashSet<String>,
    /// Envelope ids whose delivery changed the records.
    applied: std::collections::HashSet<String>,
}

/// Runs a future of the in-memory engine to completion. No adapter here
/// waits on anything, so the first poll always finishes it.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => unreachable!("an in-memory port future waited"),
    }
}

impl Simulation {
    #[must_use]
    pub fn new(scenario: Scenario, options: &RunOptions) -> Simulation {
        let seed = options.seed.unwrap_or(scenario.delivery.seed);
        let store = MemoryStore::new();
        let cluster = SimCluster::new(&scenario, store.clone(), START);
        cluster.lock().crash_countdown = options.crash_after_calls;
        let notifier = MemoryNotifier::default();
        let metrics = MemoryMetrics::default();
        let mut engines = BTreeMap::new();
        for entry in EntryPoint::ALL {
            let ports = Ports {
                store: store.clone(),
                cluster: cluster.clone(),
                host: cluster.clone(),
                notifier: notifier.clone(),
                metrics: metrics.clone(),
            };
            let config = EngineConfig {
                cluster_name: CLUSTER.to_owned(),
                health_check_task: format!("{HEALTH_CHECK_FAMILY}:3"),
                function: entry.name().to_owned(),
                scope: entry.scope(),
            };
            engines.insert(entry, Engine::new(ports, scenario.policy.clone(), config));
        }
        let checker = Checker::new(&scenario);
        Simulation {
            route: RouteConfig::new(CLUSTER, HEALTH_CHECK_FAMILY),
            scenario,
            now: START,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: Rng(seed ^ 0x5eed),
            store,
            cluster,
            notifier,
            engines,
            lines: Vec::new(),
            emitted: 0,
            seed,
            checker,
            delivered: std::collections::HashSet::new(),
            applied: std::collections::HashSet::new(),
        }
    }

    fn schedule(&mut self, at: Timestamp, item: Item) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            item,
        }));
    }

    fn line(&mut self, kind: &'static str, text: impl Into<String>) {
        self.lines.push(Line {
            at: self.now.since(START),
            kind,
            text: text.into(),
        });
    }

    /// Runs the scenario to its end and reports what happened.
    #[must_use]
    pub fn run(mut self) -> SimReport {
        self.register_nodes();
        self.submit();
        self.drain_cluster();
        for index in 0..self.scenario.faults.len() {
            let at = START + self.scenario.faults[index].at;
            self.schedule(at, Item::Fault(index));
        }
        self.schedule(START + TICK_EVERY, Item::Tick);
        let names: Vec<String> = self.scenario.nodes.iter().map(|n| n.name.clone()).collect();
        for (index, node) in names.into_iter().enumerate() {
            let offset = Span::minutes(13 + 7 * i64::try_from(index).unwrap_or(0));
            self.schedule(START + offset, Item::Routine { node });
        }
        let limit = START
            + Span(
                self.scenario
                    .job
                    .runs_for
                    .0
                    .saturating_mul(i64::from(self.scenario.policy.max_retries) + 2),
            )
            + Span::minutes(48 * 60);

        while let Some(Reverse(next)) = self.queue.pop() {
            if next.at > limit {
                self.line("stop", "simulation stopped at its time limit");
                break;
            }
            self.now = next.at;
            self.cluster.lock().now = next.at;
            self.step(next.item);
            self.drain_cluster();
            self.checker
                .after_step(self.now, &self.store, &self.cluster, &self.scenario);
            if self.finished() {
                break;
            }
        }
        self.checker.at_end(&self.store, &self.notifier);
        SimReport::build(
            &self.scenario,
            self.seed,
            self.lines,
            &self.store,
            &self.cluster,
            &self.notifier,
            self.checker.violations,
        )
    }

    fn finished(&self) -> bool {
        if self.queue.iter().any(|s| s.0.item.is_activity()) {
            return false;
        }
        let jobs = self.store.jobs();
        let settled_nodes = self
            .store
            .nodes()
            .iter()
            .all(|n| matches!(n.node_status, NodeStatus::Available | NodeStatus::Failed));
        jobs.iter()
            .all(|j| j.job_status.is_terminal() && j.outbox.is_empty())
            && settled_nodes
    }

    fn register_nodes(&mut self) {
        let instances: Vec<_> = self.cluster.lock().instances.values().cloned().collect();
        for instance in instances {
            let mut node = NodeRecord::new(&instance.node, &instance.arn);
            node.ec2_instance_id = Some(instance.ec2_instance_id.clone());
            CLUSTER.clone_into(&mut node.cluster_name);
            node.version = 1;
            node.created_at = Some(START);
            node.updated_at = Some(START);
            self.store.insert(gpu_recovery_domain::Record::Node(node));
        }
    }

    fn submit(&mut self) {
        let job = &self.scenario.job;
        let instances = self.cluster.lock().instances.clone();
        let count = job.nodes.len();
        let ranks = job
            .nodes
            .iter()
            .enumerate()
            .map(|(rank, name)| {
                let instance = &instances[name];
                RankSubmission {
                    node_name: name.clone(),
                    container_instance_arn: instance.arn.clone(),
                    ec2_instance_id: Some(instance.ec2_instance_id.clone()),
                    overrides: json!({"containerOverrides": [{"name": "trainer", "environment": [
                        {"name": "NODE_RANK", "value": rank.to_string()},
                        {"name": "NNODES", "value": count.to_string()},
                        {"name": "MASTER_ADDR", "value": "10.0.12.34"},
                    ]}]}),
                }
            })
            .collect();
        let submission = JobSubmission {
            job_id: job.id.clone(),
            cluster_name: CLUSTER.to_owned(),
            task_definition: job.task_definition.clone(),
            ranks,
            tags: BTreeMap::from([("team".to_owned(), "pretraining".to_owned())]),
        };
        let engine = &self.engines[&EntryPoint::EcsTaskHandler];
        match block_on(submit_job(
            &engine.ports.store,
            &engine.ports.cluster,
            &engine.policy,
            &submission,
            self.now,
        )) {
            Ok(submitted) => {
                let ids: Vec<&str> = submitted
                    .task_arns
                    .iter()
                    .map(|a| gpu_recovery_domain::records::last_arn_segment(a))
                    .collect();
                self.line(
                    "submit",
                    format!(
                        "job {} submitted on {}: tasks {}",
                        submitted.job_id,
                        self.scenario.job.nodes.join(", "),
                        ids.join(", ")
                    ),
                );
            }
            Err(error) => self.line("error", format!("submission failed: {error}")),
        }
    }

    /// Moves what the cluster emitted and scheduled into the queue, with
    /// delivery delays and duplicates from the scenario's delivery settings.
    fn drain_cluster(&mut self) {
        let (scheduled, emitted) = {
            let mut state = self.cluster.lock();
            (
                std::mem::take(&mut state.scheduled),
                std::mem::take(&mut state.emitted),
            )
        };
        for (at, change) in scheduled {
            self.schedule(at, Item::Internal(change));
        }
        let delivery = self.scenario.delivery.clone();
        for document in emitted {
            let Some(to) = Self::route_of(&document) else {
                continue;
            };
            self.emitted += 1;
            let delay = Span(
                i64::try_from(
                    self.rng
                        .below(u64::try_from(delivery.reorder_within.0).unwrap_or(0) + 1),
                )
                .unwrap_or(0),
            );
            let at = self.now + delay;
            self.schedule(
                at,
                Item::Deliver {
                    to,
                    document: document.clone(),
                    attempt: 1,
                },
            );
            if delivery.duplicate_every > 0
                && self
                    .emitted
                    .is_multiple_of(u64::from(delivery.duplicate_every))
            {
                let again = Span(
                    i64::try_from(
                        self.rng
                            .below(u64::try_from(delivery.reorder_within.0).unwrap_or(0) + 1),
                    )
                    .unwrap_or(0),
                );
                self.schedule(
                    self.now + again,
                    Item::Deliver {
                        to,
                        document,
                        attempt: 1,
                    },
                );
            }
        }
    }

    /// The function whose EventBridge rule matches the document, as the
    /// deployed rules route them.
    fn route_of(document: &Value) -> Option<EntryPoint> {
        match document["detail-type"].as_str()? {
            "ECS Container Instance State Change" => Some(EntryPoint::EcsInstanceMonitor),
            "ECS Task State Change" => {
                let group = document["detail"]["group"].as_str().unwrap_or_default();
                let status = document["detail"]["lastStatus"]
                    .as_str()
                    .unwrap_or_default();
                if group == format!("family:{HEALTH_CHECK_FAMILY}") {
                    (status == "STOPPED").then_some(EntryPoint::DcgmTaskMonitor)
                } else {
                    matches!(status, "RUNNING" | "DEPROVISIONING" | "STOPPED")
                        .then_some(EntryPoint::EcsTaskHandler)
                }
            }
            _ => None,
        }
    }

    fn step(&mut self, item: Item) {
        match item {
            Item::Internal(change) => self.cluster.lock().apply(&change),
            Item::Fault(index) => self.apply_fault(index),
            Item::Deliver {
                to,
                document,
                attempt,
            } => self.deliver(to, &document, attempt),
            Item::Tick => {
                self.tick();
                self.schedule(self.now + TICK_EVERY, Item::Tick);
            }
            Item::Routine { node } => {
                let busy = self
                    .cluster
                    .lock()
                    .instances
                    .get(&node)
                    .is_none_or(|i| i.reboot_pending || !i.agent_connected);
                if !busy {
                    self.schedule(
                        self.now,
                        Item::Internal(Internal::AgentDown {
                            node: node.clone(),
                            reboot: false,
                        }),
                    );
                    self.schedule(
                        self.now + Span::seconds(2),
                        Item::Internal(Internal::AgentUp {
                            node: node.clone(),
                            reboot: false,
                        }),
                    );
                }
                self.schedule(self.now + ROUTINE_RECONNECT_EVERY, Item::Routine { node });
            }
        }
    }

    fn apply_fault(&mut self, index: usize) {
        let fault = self.scenario.faults[index].clone();
        match fault.kind {
            FaultKind::AgentReconnect => {
                self.line(
                    "fault",
                    format!("{}: routine agent disconnect and reconnect", fault.node),
                );
                self.schedule(
                    self.now,
                    Item::Internal(Internal::AgentDown {
                        node: fault.node.clone(),
                        reboot: false,
                    }),
                );
                self.schedule(
                    self.now + Span::seconds(3),
                    Item::Internal(Internal::AgentUp {
                        node: fault.node,
                        reboot: false,
                    }),
                );
            }
            FaultKind::UserStop | FaultKind::TaskExit { .. } => {
                let task = self.cluster.lock().running_training_task(&fault.node);
                let Some(arn) = task else {
                    self.line(
                        "fault",
                        format!(
                            "{}: no training task runs there, so the fault changes nothing",
                            fault.node
                        ),
                    );
                    return;
                };
                self.checker.fault_applied();
                let change = match fault.kind {
                    FaultKind::UserStop => {
                        self.line(
                            "fault",
                            format!("{}: a user stops the training task", fault.node),
                        );
                        Internal::TaskStopped {
                            arn,
                            exit_code: Some(0),
                            stop_code: "UserInitiated".to_owned(),
                            reason: "Task stopped by user".to_owned(),
                        }
                    }
                    FaultKind::TaskExit {
                        code,
                        stop_code,
                        stopped_reason,
                    } => {
                        let stop_code =
                            stop_code.unwrap_or_else(|| "EssentialContainerExited".to_owned());
                        let exit =
                            code.map_or_else(|| "no exit code".to_owned(), |c| format!("exit {c}"));
                        self.line(
                            "fault",
                            format!("{}: training task stops ({stop_code}, {exit})", fault.node),
                        );
                        let reason = stopped_reason
                            .unwrap_or_else(|| "Essential container in task exited".to_owned());
                        Internal::TaskStopped {
                            arn,
                            exit_code: code,
                            stop_code,
                            reason,
                        }
                    }
                    FaultKind::AgentReconnect => unreachable!("handled above"),
                };
                self.cluster.lock().apply(&change);
            }
        }
    }

    fn deliver(&mut self, to: EntryPoint, document: &Value, attempt: u32) {
        let envelope = document["id"].as_str().unwrap_or_default().to_owned();
        let duplicate = !self.delivered.insert(envelope.clone());
        let parsed = gpu_recovery_eventbridge::parse_value(document, &self.route);
        let summary = match &parsed {
            Ok(Parsed::Observation(observation)) => observation.summary(),
            Ok(Parsed::Skipped(reason)) => format!("skipped: {reason}"),
            Err(error) => format!("malformed: {error}"),
        };
        let before = self.checker.fingerprint(&self.store);
        let engine = &self.engines[&to];
        let result = match parsed {
            Ok(Parsed::Observation(Observation::HealthCheckFinished(mut check))) => {
                check.report = self.report_line(&check.task_arn);
                block_on(
                    engine.handle_observation(Observation::HealthCheckFinished(check), self.now),
                )
            }
            _ => block_on(engine.handle_event(document, self.now)),
        };
        let mut shown = Vec::new();
        match result {
            Ok(steps) => {
                shown = Self::describe_steps(&steps);
                // A copy of an event that was already applied must change
                // nothing. A first copy that was ignored (a reconnect that
                // overtook its disconnect) leaves no version behind, so its
                // second copy is new to the engine.
                if duplicate && self.applied.contains(&envelope) {
                    self.checker
                        .after_duplicate(before.clone(), &self.store, &summary);
                }
                if before.is_some() && before != self.checker.fingerprint(&self.store) {
                    self.applied.insert(envelope);
                }
            }
            Err(error) => {
                let crashed = self.cluster.lock().crashed;
                if crashed {
                    self.cluster.lock().recover();
                    self.line("crash", format!("{} crashed while handling {summary}; the same event is delivered again", to.name()));
                    self.schedule(
                        self.now,
                        Item::Deliver {
                            to,
                            document: document.clone(),
                            attempt,
                        },
                    );
                } else if attempt < DELIVERY_ATTEMPTS {
                    self.line(
                        "error",
                        format!("{} failed: {error}; EventBridge retries in 1m", to.name()),
                    );
                    self.schedule(
                        self.now + Span::minutes(1),
                        Item::Deliver {
                            to,
                            document: document.clone(),
                            attempt: attempt + 1,
                        },
                    );
                } else {
                    self.line(
                        "error",
                        format!(
                            "{} failed: {error}; the event goes to the dead-letter queue",
                            to.name()
                        ),
                    );
                }
            }
        }
        // Container instance changes that decide nothing are routine noise.
        let routine = shown.is_empty()
            && (summary.starts_with("container instance") || summary.starts_with("skipped"));
        if !routine {
            let copy = if duplicate { " (delivered again)" } else { "" };
            self.line("event", format!("{} <- {summary}{copy}", to.name()));
        }
        for (kind, text) in shown {
            self.line(kind, text);
        }
    }

    /// Returns the summary the DCGM Task Monitor reads from the check's log
    /// stream: the runner's JSON line, for checks that ran a DCGM report.
    fn report_line(&self, task_arn: &str) -> Option<ReportSummary> {
        let state = self.cluster.lock();
        let task = state.tasks.get(task_arn)?;
        let spec = state.nodes.iter().find(|n| n.name == task.node)?;
        let rebooted = state
            .instances
            .get(&task.node)
            .is_some_and(|i| i.completed_reboots.iter().any(|at| *at <= task.created_at));
        let health = if rebooted {
            &spec.after_reboot
        } else {
            &spec.health
        };
        let assessment = Assessment::from_log_line(&health.summary)?;
        Some(ReportSummary {
            verdict: assessment.verdict,
            summary: assessment
                .reasons
                .first()
                .cloned()
                .unwrap_or_else(|| format!("verdict {}", assessment.verdict)),
        })
    }

    fn tick(&mut self) {
        let engine = &self.engines[&EntryPoint::RecoveryWatchdog];
        match block_on(engine.tick(self.now)) {
            Ok(steps) => {
                let shown = Self::describe_steps(&steps);
                if !shown.is_empty() {
                    self.line("event", "recovery-watchdog <- scheduled tick");
                }
                for (kind, text) in shown {
                    self.line(kind, text);
                }
            }
            Err(error) => {
                if self.cluster.lock().crashed {
                    self.cluster.lock().recover();
                    self.line(
                        "crash",
                        "recovery-watchdog crashed; the next tick runs again",
                    );
                } else {
                    self.line("error", format!("recovery-watchdog failed: {error}"));
                }
            }
        }
    }

    fn describe_steps(steps: &[Step]) -> Vec<(&'static str, String)> {
        let mut shown = Vec::new();
        for step in steps {
            match step {
                Step::Skipped { .. } => {}
                Step::Decided {
                    job_id,
                    history,
                    dry_run,
                    effects,
                    ..
                } => {
                    for entry in history {
                        let change = if entry.from == entry.to {
                            entry.to.clone()
                        } else {
                            format!("{} -> {}", entry.from, entry.to)
                        };
                        shown.push((
                            "decision",
                            format!("{job_id} {}: {change}: {}", entry.subject, entry.reason),
                        ));
                    }
                    if *dry_run && !effects.is_empty() {
                        shown.push(("dry-run", format!("would run: {}", effects.join("; "))));
                    }
                }
                Step::Effect {
                    description,
                    result,
                    ..
                } => {
                    let outcome = match result {
                        gpu_recovery_domain::EffectResult::Done => "done".to_owned(),
                        gpu_recovery_domain::EffectResult::TaskStarted { task_arn } => format!(
                            "started {}",
                            gpu_recovery_domain::records::last_arn_segment(task_arn)
                        ),
                        gpu_recovery_domain::EffectResult::CommandSent { command_id } => {
                            format!("command {command_id}")
                        }
                        gpu_recovery_domain::EffectResult::Rejected { reason } => {
                            format!("rejected: {reason}")
                        }
                        gpu_recovery_domain::EffectResult::Failed { error } => {
                            format!("failed: {error}")
                        }
                    };
                    shown.push(("effect", format!("{description}: {outcome}")));
                }
            }
        }
        shown
    }
}
