//! Finding the job an observation concerns, and loading its records.

use std::collections::BTreeSet;

use gpu_recovery_domain::observation::{NodeProbe, Observation, TaskProbe, TaskStop, Tick};
use gpu_recovery_domain::records::{CheckPhase, TaskKind, TaskRecord, last_arn_segment};
use gpu_recovery_domain::{Context, JobStatus, NodeStatus, TaskStatus, Timestamp};
use gpu_recovery_ports::{Cluster, HostControl, Metrics, Notifier, RecordStore};

use crate::{Engine, EngineError};

/// Tag keys the engine puts on the health-check tasks it starts.
pub const TAG_JOB_ID: &str = "job_id";
pub const TAG_EPISODE: &str = "recovery_episode";
pub const TAG_PHASE: &str = "recovery_phase";

/// A job to decide for, with records that the store does not hold yet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobRef {
    pub job_id: String,
    /// Container instances whose node records belong in the context.
    pub container_instances: Vec<String>,
    /// Task records built from an event, for tasks not yet in the table.
    pub provisional_tasks: Vec<TaskRecord>,
}

impl JobRef {
    fn new(job_id: &str) -> JobRef {
        JobRef {
            job_id: job_id.to_owned(),
            ..JobRef::default()
        }
    }
}

/// Finds the job an observation concerns; `None` when it concerns none.
pub(crate) async fn resolve<S, C, H, N, M>(
    engine: &Engine<S, C, H, N, M>,
    observation: Observation,
) -> Result<Option<(JobRef, Observation)>, EngineError>
where
    S: RecordStore,
    C: Cluster,
    H: HostControl,
    N: Notifier,
    M: Metrics,
{
    let store = &engine.ports.store;
    match observation {
        Observation::TaskStopped(ref stop) => {
            let id = last_arn_segment(&stop.task_arn);
            if let Some(task) = store.get_task(id).await? {
                Ok(Some((JobRef::new(&task.job_id), observation)))
            } else {
                tracing::info!(
                    task_id = id,
                    "stopped task is not in the task table; skipped"
                );
                Ok(None)
            }
        }
        Observation::TaskRunning(mut run) => {
            let id = last_arn_segment(&run.task_arn).to_owned();
            if let Some(task) = store.get_task(&id).await? {
                return Ok(Some((
                    JobRef::new(&task.job_id),
                    Observation::TaskRunning(run),
                )));
            }
            // Task events carry no tags: read them only for tasks the table
            // does not know, because DescribeTasks with tags costs a call.
            let Some(description) = engine
                .ports
                .cluster
                .describe_task(&run.task_arn, true)
                .await?
            else {
                tracing::info!(task_id = %id, "running task is not known to ECS any more; skipped");
                return Ok(None);
            };
            let Some(job_id) = description.tags.get(TAG_JOB_ID).cloned() else {
                tracing::info!(task_id = %id, "running task has no job_id tag; skipped");
                return Ok(None);
            };
            if let Some(instance) = engine
                .ports
                .cluster
                .describe_container_instance(&run.container_instance_arn)
                .await?
            {
                run.ec2_instance_id = Some(instance.ec2_instance_id);
            }
            run.tags = Some(description.tags);
            let mut job = JobRef::new(&job_id);
            job.container_instances
                .push(run.container_instance_arn.clone());
            Ok(Some((job, Observation::TaskRunning(run))))
        }
        Observation::HealthCheckFinished(ref result) => {
            let job = resolve_check(engine, result).await?;
            Ok(job.map(|job| (job, observation)))
        }
        Observation::InstanceChanged(ref change) => {
            let Some(node) = store
                .node_by_container_instance(&change.container_instance_arn)
                .await?
            else {
                tracing::debug!(container_instance = %change.container_instance_arn, "container instance is not a known node");
                return Ok(None);
            };
            let Some(job_id) = node.job_id.clone() else {
                tracing::debug!(node = %node.node_name, "node is not assigned to a job; change ignored");
                return Ok(None);
            };
            let mut job = JobRef::new(&job_id);
            job.container_instances
                .push(change.container_instance_arn.clone());
            Ok(Some((job, observation)))
        }
        Observation::Tick(_) | Observation::EffectApplied { .. } => Ok(None),
    }
}

/// Finds the job of a finished health check, reading the task's tags when
/// the check finished before its `StartTask` result was recorded.
async fn resolve_check<S, C, H, N, M>(
    engine: &Engine<S, C, H, N, M>,
    result: &gpu_recovery_domain::observation::HealthCheckResult,
) -> Result<Option<JobRef>, EngineError>
where
    S: RecordStore,
    C: Cluster,
    H: HostControl,
    N: Notifier,
    M: Metrics,
{
    let store = &engine.ports.store;
    let id = last_arn_segment(&result.task_arn).to_owned();
    if let Some(task) = store.get_task(&id).await? {
        return Ok(Some(JobRef::new(&task.job_id)));
    }
    // The check finished before its StartTask result was recorded:
    // its tags say which job and episode it belongs to.
    let Some(description) = engine
        .ports
        .cluster
        .describe_task(&result.task_arn, true)
        .await?
    else {
        tracing::warn!(task_id = %id, "health-check task is unknown to the table and to ECS; skipped");
        return Ok(None);
    };
    let (Some(job_id), Some(episode)) = (
        description.tags.get(TAG_JOB_ID),
        description.tags.get(TAG_EPISODE),
    ) else {
        tracing::info!(task_id = %id, "health-check task has no job_id or recovery_episode tag; not started by the engine");
        return Ok(None);
    };
    let phase = match description.tags.get(TAG_PHASE).map(String::as_str) {
        Some("post_reboot") => CheckPhase::PostReboot,
        _ => CheckPhase::Initial,
    };
    let node = store
        .node_by_container_instance(&result.container_instance_arn)
        .await?;
    let mut job = JobRef::new(job_id);
    job.container_instances
        .push(result.container_instance_arn.clone());
    job.provisional_tasks.push(TaskRecord {
        ecs_task_id: id.clone(),
        task_arn: result.task_arn.clone(),
        job_id: job_id.clone(),
        kind: TaskKind::HealthCheck,
        task_status: TaskStatus::InProgress,
        node_name: node.map(|n| n.node_name).unwrap_or_default(),
        node_index_in_job: 0,
        job_num_nodes: 0,
        container_instance_arn: result.container_instance_arn.clone(),
        container_inst_id: last_arn_segment(&result.container_instance_arn).to_owned(),
        cluster_name: engine.config.cluster_name.clone(),
        task_def_arn: description.task_definition_arn,
        retry: 0,
        episode_id: Some(episode.clone()),
        phase: Some(phase),
        event_version: 0,
        running: false,
        stop_requested: None,
        stop: None,
        version: 0,
        created_at: None,
        updated_at: None,
    });
    Ok(Some(job))
}

/// Loads the job, its tasks and nodes, and the safety record.
pub(crate) async fn load<S, C, H, N, M>(
    engine: &Engine<S, C, H, N, M>,
    job: &JobRef,
) -> Result<Context, EngineError>
where
    S: RecordStore,
    C: Cluster,
    H: HostControl,
    N: Notifier,
    M: Metrics,
{
    let store = &engine.ports.store;
    let record = store.get_job(&job.job_id).await?;
    let mut tasks = store.tasks_by_job(&job.job_id).await?;
    for provisional in &job.provisional_tasks {
        if !tasks
            .iter()
            .any(|t| t.ecs_task_id == provisional.ecs_task_id)
        {
            tasks.push(provisional.clone());
        }
    }
    let mut names: BTreeSet<String> = record
        .iter()
        .flat_map(|j| j.assigned_nodes.iter().cloned())
        .filter(|n| !n.is_empty())
        .collect();
    names.extend(
        tasks
            .iter()
            .map(|t| t.node_name.clone())
            .filter(|n| !n.is_empty()),
    );
    let mut nodes = Vec::new();
    for name in &names {
        if let Some(node) = store.get_node(name).await? {
            nodes.push(node);
        }
    }
    for arn in &job.container_instances {
        if let Some(node) = store.node_by_container_instance(arn).await?
            && !nodes.iter().any(|n| n.node_name == node.node_name)
        {
            nodes.push(node);
        }
    }
    let safety = store.get_safety().await?;
    Ok(Context {
        job: record,
        tasks,
        nodes,
        safety_exists: safety.is_some(),
        safety: safety.unwrap_or_default(),
    })
}

/// Jobs the watchdog visits: every unfinished job, and every job whose
/// nodes are still recovering.
pub(crate) async fn jobs_to_visit<S, C, H, N, M>(
    engine: &Engine<S, C, H, N, M>,
    _now: Timestamp,
) -> Result<Vec<JobRef>, EngineError>
where
    S: RecordStore,
    C: Cluster,
    H: HostControl,
    N: Notifier,
    M: Metrics,
{
    let store = &engine.ports.store;
    let mut ids = BTreeSet::new();
    for status in JobStatus::ALL.into_iter().filter(|s| !s.is_terminal()) {
        ids.extend(
            store
                .jobs_by_status(status)
                .await?
                .into_iter()
                .map(|j| j.job_id),
        );
    }
    for status in NodeStatus::ALL.into_iter().filter(|s| s.is_recovering()) {
        ids.extend(
            store
                .nodes_by_status(status)
                .await?
                .into_iter()
                .filter_map(|n| n.job_id),
        );
    }
    // NOTE: a finished job whose last outbox intent failed is visited only
    // through its nodes; its event's retry or dead-letter queue covers the rest.
    Ok(ids.into_iter().map(|id| JobRef::new(&id)).collect())
}

/// Probes ECS and SSM for what a tick needs: rebooting nodes, and the tasks
/// of running jobs that are due a poll.
pub(crate) async fn probe<S, C, H, N, M>(
    engine: &Engine<S, C, H, N, M>,
    job: &JobRef,
    now: Timestamp,
) -> Result<Tick, EngineError>
where
    S: RecordStore,
    C: Cluster,
    H: HostControl,
    N: Notifier,
    M: Metrics,
{
    let context = load(engine, job).await?;
    let mut tick = Tick::default();
    for node in context
        .nodes
        .iter()
        .filter(|n| n.node_status == NodeStatus::Rebooting)
    {
        let instance = match engine
            .ports
            .cluster
            .describe_container_instance(&node.container_instance_arn)
            .await
        {
            Ok(instance) => instance,
            Err(error) => {
                tracing::warn!(node = %node.node_name, error = %error, "could not describe the rebooting node");
                None
            }
        };
        let command = node.reboot.as_ref().and_then(|r| r.command_id.clone());
        let mut reboot_command = None;
        if let (Some(instance), Some(command)) = (&instance, command) {
            match engine
                .ports
                .host
                .reboot_status(&instance.ec2_instance_id, &command)
                .await
            {
                Ok(status) => reboot_command = status,
                Err(error) => {
                    tracing::warn!(node = %node.node_name, error = %error, "could not read the reboot command status");
                }
            }
        }
        tick.nodes.insert(
            node.node_name.clone(),
            NodeProbe {
                agent_connected: instance.as_ref().map(|i| i.agent_connected),
                instance_version: instance.as_ref().map(|i| i.version),
                reboot_command,
            },
        );
    }
    let due = context.job.as_ref().is_some_and(|j| {
        j.job_status == JobStatus::InProgress && j.deadline.is_some_and(|d| d <= now)
    });
    if due {
        for task in context
            .tasks
            .iter()
            .filter(|t| t.kind == TaskKind::Training && t.task_status == TaskStatus::InProgress)
        {
            let probe = match engine
                .ports
                .cluster
                .describe_task(&task.task_arn, false)
                .await
            {
                Ok(None) => TaskProbe::Missing,
                Ok(Some(description)) if description.last_status == "STOPPED" => {
                    TaskProbe::Stopped(TaskStop {
                        task_arn: description.task_arn,
                        container_instance_arn: description.container_instance_arn,
                        task_definition_arn: description.task_definition_arn,
                        stop_code: description.stop_code,
                        exit_codes: description.exit_codes,
                        stopped_reason: description.stopped_reason,
                        version: description.version,
                        at: now,
                    })
                }
                Ok(Some(_)) => TaskProbe::Running,
                Err(error) => {
                    tracing::warn!(task_id = %task.ecs_task_id, error = %error, "could not describe the task; the next poll retries");
                    continue;
                }
            };
            tick.tasks.insert(task.ecs_task_id.clone(), probe);
        }
    }
    Ok(tick)
}
