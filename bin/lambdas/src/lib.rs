//! The composition root of the four Lambda functions.
//!
//! [`run`] reads the configuration and builds the SDK clients once per cold
//! start, builds an [`Engine`] with the function's effect scope, and serves
//! invocations. Each invocation parses its event strictly. A malformed event
//! is an error that names the field. An event for another function or
//! cluster is logged and skipped. A failed AWS call or store write makes the
//! invocation fail, so EventBridge retries the event and a dead-letter queue
//! catches one that keeps failing.
//!
//! Logs are JSON lines from `tracing`, one span per invocation carrying the
//! request id and the ids the event names; metrics are EMF lines.

mod logging;
mod response;
mod route;

use gpu_recovery_aws::{
    Clients, Config, DynamoStore, EcsCluster, EmfMetrics, HealthCheckLogReader, SnsNotifier,
    SsmHostControl,
};
use gpu_recovery_domain::Timestamp;
use gpu_recovery_domain::observation::{HealthCheckResult, Observation};
use gpu_recovery_domain::records::last_arn_segment;
use gpu_recovery_ports::{Cluster, HostControl, Metrics, Notifier, RecordStore};
use gpu_recovery_service::functions::EntryPoint;
use gpu_recovery_service::{Engine, EngineConfig, EngineError, Ports};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::Instrument;

pub use route::{Route, route};

/// An error that fails an invocation.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Diagnostic {
        let error_type = match &error {
            HandlerError::Malformed(_) | HandlerError::Engine(EngineError::Event(_)) => {
                "MalformedEvent"
            }
            HandlerError::Engine(EngineError::Store(_)) => "StoreUnavailable",
            HandlerError::Engine(EngineError::Contended { .. }) => "Conflict",
            HandlerError::Engine(EngineError::Effects { .. } | EngineError::Call(_)) => {
                "SideEffectFailed"
            }
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// One function's engine and what its handler needs besides.
pub struct Handler<S, C, H, N, M> {
    pub entry: EntryPoint,
    pub engine: Engine<S, C, H, N, M>,
    /// The reader of health-check reports, for the DCGM Task Monitor when
    /// `HEALTH_CHECK_LOG_GROUP` is set.
    pub logs: Option<HealthCheckLogReader>,
}

/// Runs one function: configuration, clients and engine once, then the
/// Lambda runtime loop.
///
/// # Errors
/// A missing or invalid configuration value, or a runtime failure.
pub async fn run(entry: EntryPoint) -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(function = entry.name(), error = %error, "invalid configuration; the function cannot start");
            return Err(error.into());
        }
    };
    let topic = match config.require_topic() {
        Ok(topic) => topic.to_owned(),
        Err(error) => {
            tracing::error!(function = entry.name(), error = %error, "invalid configuration; the function cannot start");
            return Err(error.into());
        }
    };
    let clients = Clients::load().await;
    let logs = match (&config.health_check_logs, entry) {
        (Some(logs), EntryPoint::DcgmTaskMonitor) => Some(HealthCheckLogReader::new(
            clients.logs.clone(),
            logs.clone(),
        )),
        _ => None,
    };
    let engine = Engine::new(
        Ports {
            store: DynamoStore::new(clients.dynamodb.clone(), config.tables.clone()),
            cluster: EcsCluster::new(clients.ecs.clone(), &config.cluster),
            host: SsmHostControl::new(clients.ssm.clone()),
            notifier: SnsNotifier::new(clients.sns.clone(), &topic),
            metrics: EmfMetrics::stdout(),
        },
        config.policy.clone(),
        EngineConfig {
            cluster_name: config.cluster_name().to_owned(),
            health_check_task: config.health_check_task.clone(),
            function: entry.name().to_owned(),
            scope: entry.scope(),
        },
    );
    tracing::info!(
        function = entry.name(),
        cluster = config.cluster_name(),
        policy = %config.policy,
        report_logs = logs.is_some(),
        "function started"
    );
    let handler = Handler {
        entry,
        engine,
        logs,
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let span = tracing::info_span!(
            "invocation",
            request_id = %event.context.request_id,
            function = handler.entry.name(),
            job_id = tracing::field::Empty,
            task_id = tracing::field::Empty,
            container_instance = tracing::field::Empty,
            node = tracing::field::Empty,
            episode = tracing::field::Empty,
        );
        // Boxed because the engine's futures nest the SDK's so deeply that
        // the runtime loop's future would exceed the compiler's query depth.
        Box::pin(
            handler
                .handle(&event.payload, Timestamp::now())
                .instrument(span),
        )
        .await
    }))
    .await
}

impl<S, C, H, N, M> Handler<S, C, H, N, M>
where
    S: RecordStore,
    C: Cluster,
    H: HostControl,
    N: Notifier,
    M: Metrics,
{
    /// Handles one event and returns a summary of what the invocation did.
    ///
    /// # Errors
    /// [`HandlerError::Malformed`] for an event that is not what ECS or
    /// EventBridge send, and [`HandlerError::Engine`] when a store write or a
    /// side effect failed, so the event is retried.
    pub async fn handle(&self, payload: &Value, now: Timestamp) -> Result<Value, HandlerError> {
        let routed = match route(self.entry, payload, &self.engine.config.route()) {
            Ok(routed) => routed,
            Err(error) => {
                tracing::error!(error = %error, "malformed event; the invocation fails");
                return Err(error);
            }
        };
        let steps = match routed {
            Route::Skip(reason) => {
                tracing::info!(reason = %reason, "event skipped");
                return Ok(response::skipped(self.entry, &reason));
            }
            Route::Tick => self.engine.tick(now).await,
            Route::Observe(mut observation) => {
                self.record_ids(&observation).await;
                if let Observation::HealthCheckFinished(result) = &mut observation {
                    self.attach_report(result, payload).await;
                }
                self.engine.handle_observation(observation, now).await
            }
        };
        match steps {
            Ok(steps) => {
                let summary = response::handled(self.entry, &steps);
                if let Some(job_id) = response::job_ids(&steps).first() {
                    tracing::Span::current().record("job_id", job_id.as_str());
                }
                tracing::info!(steps = steps.len(), "invocation finished");
                Ok(summary)
            }
            Err(error) => {
                tracing::error!(error = %error, "invocation failed; the event will be retried");
                Err(error.into())
            }
        }
    }

    /// Puts the ids the event names on the invocation span, so every log
    /// line of the invocation carries them. The record reads here are the
    /// ones the engine makes next; a failed read only leaves a field empty.
    async fn record_ids(&self, observation: &Observation) {
        let span = tracing::Span::current();
        let store = &self.engine.ports.store;
        let task_arn = match observation {
            Observation::TaskStopped(stop) => Some(&stop.task_arn),
            Observation::TaskRunning(run) => Some(&run.task_arn),
            Observation::HealthCheckFinished(result) => Some(&result.task_arn),
            _ => None,
        };
        if let Some(arn) = task_arn {
            let id = last_arn_segment(arn);
            span.record("task_id", id);
            if let Ok(Some(task)) = store.get_task(id).await {
                span.record("job_id", task.job_id.as_str());
                span.record("node", task.node_name.as_str());
                if let Some(episode) = &task.episode_id {
                    span.record("episode", episode.as_str());
                }
            }
        }
        if let Observation::InstanceChanged(change) = observation {
            span.record(
                "container_instance",
                last_arn_segment(&change.container_instance_arn),
            );
            if let Ok(Some(node)) = store
                .node_by_container_instance(&change.container_instance_arn)
                .await
            {
                span.record("node", node.node_name.as_str());
                if let Some(job) = &node.job_id {
                    span.record("job_id", job.as_str());
                }
                if let Some(episode) = &node.episode_id {
                    span.record("episode", episode.as_str());
                }
            }
        }
    }

    /// Adds the runner's report from CloudWatch Logs to a health-check result.
    /// A failed read is a warning: the exit code is the verdict either way.
    async fn attach_report(&self, result: &mut HealthCheckResult, payload: &Value) {
        let Some(reader) = &self.logs else {
            return;
        };
        let Some(container) = route::check_container_name(payload) else {
            tracing::warn!("health-check event names no container; deciding without the report");
            return;
        };
        let task_id = last_arn_segment(&result.task_arn).to_owned();
        match reader.read_report(&container, &task_id).await {
            Ok(Some(report)) => {
                tracing::info!(verdict = %report.verdict, summary = %report.summary, "read the health-check report");
                result.report = Some(report);
            }
            Ok(None) => {
                tracing::warn!(stream = %reader.stream_name(&container, &task_id), "no health-check report line in the log stream; deciding by exit code");
            }
            Err(error) => {
                tracing::warn!(error = %error, "could not read the health-check report; deciding by exit code");
            }
        }
    }
}
