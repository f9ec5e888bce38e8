//! The effect runner: the one place that reads records, asks the pure
//! [`decide`](gpu_recovery_domain::decide) function what to do, writes the
//! result conditionally and performs the side effects.
//!
//! Every entry point (the four Lambda functions, the simulator, the command
//! line tool) drives an [`Engine`] built on its own adapters.
//!
//! # Guarantees
//! - Writes come before side effects, and each side effect is recorded as a
//!   claimed outbox intent in the same write as the decision that explains it.
//! - A lost write condition re-reads the records and decides again, up to
//!   [`MAX_CONFLICT_RETRIES`] times.
//! - A side effect that fails with a transient error releases its claim and
//!   makes [`Engine::handle`] return an error, so the event is retried and,
//!   if it keeps failing, dead-lettered. Its result is never recorded as done.
//! - With `DRY_RUN`, nothing is written and nothing is called: the decision is
//!   logged and returned as it would have been made.

pub mod context;
pub mod effects;
pub mod functions;
pub mod submit;

use std::collections::{BTreeSet, VecDeque};

use gpu_recovery_domain::observation::Observation;
use gpu_recovery_domain::records::HistoryEntry;
use gpu_recovery_domain::{
    ClaimedEffect, Decision, EffectKind, EffectResult, Env, Policy, Timestamp,
};
use gpu_recovery_eventbridge::{Parsed, RouteConfig};
use gpu_recovery_ports::{
    CallError, Cluster, HostControl, Metrics, Notifier, RecordStore, StoreError,
};

pub use context::JobRef;

/// How often a conflicting write is re-read and decided again before the
/// invocation gives up and lets the event be retried.
pub const MAX_CONFLICT_RETRIES: usize = 8;

/// Upper bound on decisions in one invocation (the observation, then one per
/// effect result), so a bug can never loop for ever.
const MAX_DECISIONS_PER_INVOCATION: usize = 200;

/// Settings of the engine besides the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    pub cluster_name: String,
    /// Task definition of the health check: family, `family:revision` or ARN.
    pub health_check_task: String,
    /// Name of the entry point, for logs and metrics, such as `ecs-task-handler`.
    pub function: String,
    /// Effects this entry point may run; the watchdog runs the rest.
    pub scope: BTreeSet<EffectKind>,
}

impl EngineConfig {
    #[must_use]
    pub fn route(&self) -> RouteConfig {
        RouteConfig::new(&self.cluster_name, &self.health_check_task)
    }
}

/// An error that makes the invocation fail, so the event is retried.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("malformed event: {0}")]
    Event(#[from] gpu_recovery_eventbridge::EventError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("job {job_id}: writes kept conflicting after {MAX_CONFLICT_RETRIES} attempts")]
    Contended { job_id: String },
    #[error("{failed} side effect(s) failed and will be retried: {first}")]
    Effects { failed: usize, first: String },
    #[error(transparent)]
    Call(#[from] CallError),
}

/// One line of what an invocation did, for timelines and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The event was valid but not for this engine.
    Skipped { reason: String },
    /// A decision for a job: what changed and why.
    Decided {
        job_id: String,
        history: Vec<HistoryEntry>,
        notes: Vec<String>,
        dry_run: bool,
        writes: usize,
        effects: Vec<String>,
    },
    /// A side effect and its result.
    Effect {
        job_id: String,
        key: String,
        description: String,
        result: EffectResult,
    },
}

/// The ports an engine runs on.
pub struct Ports<S, C, H, N, M> {
    pub store: S,
    pub cluster: C,
    pub host: H,
    pub notifier: N,
    pub metrics: M,
}

/// The effect runner over one set of ports.
pub struct Engine<S, C, H, N, M> {
    pub ports: Ports<S, C, H, N, M>,
    pub policy: Policy,
    pub config: EngineConfig,
}

impl<S, C, H, N, M> Engine<S, C, H, N, M>
where
    S: RecordStore,
    C: Cluster,
    H: HostControl,
    N: Notifier,
    M: Metrics,
{
    pub fn new(ports: Ports<S, C, H, N, M>, policy: Policy, config: EngineConfig) -> Self {
        Engine {
            ports,
            policy,
            config,
        }
    }

    /// Handles one EventBridge document.
    ///
    /// # Errors
    /// A malformed event, a store that cannot be reached, or a side effect
    /// that failed: each should make the invocation fail so it is retried.
    pub async fn handle_event(
        &self,
        event: &serde_json::Value,
        now: Timestamp,
    ) -> Result<Vec<Step>, EngineError> {
        match gpu_recovery_eventbridge::parse_value(event, &self.config.route())? {
            Parsed::Skipped(reason) => {
                tracing::info!(reason = %reason, "event skipped");
                Ok(vec![Step::Skipped { reason }])
            }
            Parsed::Observation(observation) => self.handle_observation(observation, now).await,
        }
    }

    /// Handles one observation from an event.
    pub async fn handle_observation(
        &self,
        observation: Observation,
        now: Timestamp,
    ) -> Result<Vec<Step>, EngineError> {
        let Some((job, observation)) = context::resolve(self, observation).await? else {
            return Ok(vec![Step::Skipped {
                reason: "the event concerns no job the engine tracks".to_owned(),
            }]);
        };
        self.run(job, observation, now).await
    }

    /// The watchdog: visits every job that is not finished or has nodes
    /// recovering, with a tick that carries what it probed.
    pub async fn tick(&self, now: Timestamp) -> Result<Vec<Step>, EngineError> {
        let mut steps = Vec::new();
        let mut failures = Vec::new();
        for job in context::jobs_to_visit(self, now).await? {
            let tick = context::probe(self, &job, now).await?;
            match self.run(job.clone(), Observation::Tick(tick), now).await {
                Ok(more) => steps.extend(more),
                Err(error) => {
                    tracing::warn!(job_id = %job.job_id, error = %error, "watchdog visit failed; the next tick retries");
                    failures.push(error.to_string());
                }
            }
        }
        if let Some(first) = failures.first() {
            return Err(EngineError::Effects {
                failed: failures.len(),
                first: first.clone(),
            });
        }
        Ok(steps)
    }

    /// Decides, writes and performs effects for one job until nothing is left.
    async fn run(
        &self,
        job: JobRef,
        observation: Observation,
        now: Timestamp,
    ) -> Result<Vec<Step>, EngineError> {
        let mut steps = Vec::new();
        let mut queue = VecDeque::from([observation]);
        let mut failures: Vec<String> = Vec::new();
        let mut decisions = 0;
        while let Some(observation) = queue.pop_front() {
            decisions += 1;
            if decisions > MAX_DECISIONS_PER_INVOCATION {
                tracing::error!(job_id = %job.job_id, "stopped after {MAX_DECISIONS_PER_INVOCATION} decisions in one invocation");
                break;
            }
            let decision = self.decide_and_write(&job, &observation, now).await?;
            steps.push(Step::Decided {
                job_id: job.job_id.clone(),
                history: decision.history.clone(),
                notes: decision.notes.clone(),
                dry_run: self.policy.dry_run,
                writes: decision.writes.len(),
                effects: decision
                    .effects
                    .iter()
                    .map(|e| e.effect.describe())
                    .collect(),
            });
            if self.policy.dry_run {
                continue;
            }
            for claimed in decision.effects {
                let result = effects::perform(self, &claimed).await;
                log_effect(&claimed, &result);
                if let EffectResult::Failed { error } = &result {
                    failures.push(format!("{}: {error}", claimed.effect.describe()));
                }
                steps.push(Step::Effect {
                    job_id: claimed.job_id.clone(),
                    key: claimed.key.clone(),
                    description: claimed.effect.describe(),
                    result: result.clone(),
                });
                queue.push_back(Observation::EffectApplied {
                    key: claimed.key,
                    result,
                });
            }
        }
        if let Some(first) = failures.first() {
            return Err(EngineError::Effects {
                failed: failures.len(),
                first: first.clone(),
            });
        }
        Ok(steps)
    }

    async fn decide_and_write(
        &self,
        job: &JobRef,
        observation: &Observation,
        now: Timestamp,
    ) -> Result<Decision, EngineError> {
        let env = Env {
            policy: &self.policy,
            now,
            scope: &self.config.scope,
        };
        for attempt in 1..=MAX_CONFLICT_RETRIES {
            let context = context::load(self, job).await?;
            let decision = gpu_recovery_domain::decide(&context, observation, &env);
            log_decision(&job.job_id, observation, &decision, self.policy.dry_run);
            if self.policy.dry_run || decision.writes.is_empty() {
                return Ok(decision);
            }
            match self.ports.store.commit(&decision.writes).await {
                Ok(()) => {
                    self.ports
                        .metrics
                        .record(&self.config.function, &decision.metrics);
                    return Ok(decision);
                }
                Err(StoreError::Conflict { record }) => {
                    tracing::warn!(job_id = %job.job_id, record = %record, attempt, "write conflict; reading again");
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::Contended {
            job_id: job.job_id.clone(),
        })
    }
}

fn log_decision(job_id: &str, observation: &Observation, decision: &Decision, dry_run: bool) {
    for note in &decision.notes {
        tracing::debug!(job_id, note = %note, "decision note");
    }
    for entry in &decision.history {
        tracing::info!(job_id, subject = %entry.subject, from = %entry.from, to = %entry.to, reason = %entry.reason, dry_run, "transition");
    }
    if dry_run && !decision.is_noop() {
        let effects: Vec<String> = decision
            .effects
            .iter()
            .map(|e| e.effect.describe())
            .collect();
        tracing::info!(job_id, observation = %observation.summary(), writes = decision.writes.len(), effects = ?effects, "dry run: decision not applied");
    }
}

fn log_effect(claimed: &ClaimedEffect, result: &EffectResult) {
    let description = claimed.effect.describe();
    match result {
        EffectResult::Failed { error } => {
            tracing::warn!(job_id = %claimed.job_id, effect = %description, error = %error, "side effect failed; will retry");
        }
        EffectResult::Rejected { reason } => {
            tracing::warn!(job_id = %claimed.job_id, effect = %description, reason = %reason, "side effect rejected");
        }
        _ => tracing::info!(job_id = %claimed.job_id, effect = %description, "side effect done"),
    }
}
