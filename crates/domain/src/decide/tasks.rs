//! Training task events: how a stop is classified, and what it does to the job.

use std::collections::BTreeMap;

use crate::effect::{Effect, MetricEvent};
use crate::observation::{TaskRun, TaskStop};
use crate::records::{
    CheckPhase, Episode, EpisodeNode, HealthCheckRun, JobRecord, LaunchSpec, NodeRecord,
    RankLaunch, StopRecord, TaskKind, TaskRecord, last_arn_segment,
};
use crate::status::{JobStatus, NodeStatus, TaskStatus};
use crate::time::Span;

use super::STOP_REASON_PREFIX;
use super::progress;
use super::working::{Working, token};

/// The meaning of a task stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StopClass {
    /// Every container exited 0.
    Completed,
    /// May be a GPU fault: health-check the job's nodes.
    GpuSuspect(String),
    /// The application failed in a way no health check can explain.
    AppFailure(String),
    /// Someone other than the engine stopped the task.
    UserStop(String),
    /// The engine's own `StopTask`.
    OwnStop,
    /// EC2 is taking the instance away.
    HostLost(String),
    /// ECS could not start the task, for a reason that is not the GPU.
    StartFailure(String),
    /// An ECS service scheduler stopped the task.
    SchedulerStop(String),
}

impl StopClass {
    fn label(&self) -> &'static str {
        match self {
            StopClass::Completed => "completed",
            StopClass::GpuSuspect(_) => "gpu_suspect",
            StopClass::AppFailure(_) => "application_failure",
            StopClass::UserStop(_) => "user_stop",
            StopClass::OwnStop => "own_stop",
            StopClass::HostLost(_) => "host_lost",
            StopClass::StartFailure(_) => "start_failure",
            StopClass::SchedulerStop(_) => "scheduler_stop",
        }
    }
}

/// Words in a `TaskFailedToStart` reason that point at the GPU stack, as in
/// `nvidia-container-cli: initialization error: nvml error`.
const GPU_START_ERRORS: [&str; 5] = ["nvml", "nvidia", "gpu", "cuda", "xid"];

pub(super) fn classify(stop: &TaskStop, task: &TaskRecord, work: &Working<'_>) -> StopClass {
    let reason = stop.stopped_reason.clone().unwrap_or_default();
    let code = stop.stop_code.as_deref();
    match code {
        Some("UserInitiated") => {
            if task.stop_requested.is_some() || reason.starts_with(STOP_REASON_PREFIX) {
                StopClass::OwnStop
            } else {
                let said = if reason.is_empty() {
                    "no reason given".to_owned()
                } else {
                    reason
                };
                StopClass::UserStop(format!(
                    "task {} stopped by a user ({said})",
                    task.ecs_task_id
                ))
            }
        }
        Some(code @ ("SpotInterruption" | "TerminationNotice")) => StopClass::HostLost(format!(
            "EC2 is reclaiming node {} ({code}), so the job cannot restart on its nodes",
            task.node_name
        )),
        Some("ServiceSchedulerInitiated") => StopClass::SchedulerStop(format!(
            "an ECS service scheduler stopped task {} (ServiceSchedulerInitiated)",
            task.ecs_task_id
        )),
        Some("InfrastructureHealth") => StopClass::GpuSuspect(format!(
            "ECS stopped task {} because the infrastructure of node {} is unhealthy",
            task.ecs_task_id, task.node_name
        )),
        Some("TaskFailedToStart") => {
            let lower = reason.to_ascii_lowercase();
            if GPU_START_ERRORS.iter().any(|word| lower.contains(word)) {
                StopClass::GpuSuspect(format!(
                    "task {} failed to start with a GPU error on node {}: {}",
                    task.ecs_task_id,
                    task.node_name,
                    truncate(&reason, 160)
                ))
            } else {
                StopClass::StartFailure(format!(
                    "task {} failed to start on node {}: {}",
                    task.ecs_task_id,
                    task.node_name,
                    truncate(&reason, 160)
                ))
            }
        }
        other => classify_exit(stop, task, other, work),
    }
}

fn classify_exit(
    stop: &TaskStop,
    task: &TaskRecord,
    code: Option<&str>,
    work: &Working<'_>,
) -> StopClass {
    let unknown = match code {
        Some("EssentialContainerExited") => String::new(),
        Some(other) => format!(" (unknown stop code {other})"),
        None => " (no stop code)".to_owned(),
    };
    let codes = &work.env.policy.health_check_exit_codes;
    if stop.exit_codes.is_empty() {
        return StopClass::AppFailure(format!(
            "task {} stopped without an exit code{unknown}",
            task.ecs_task_id
        ));
    }
    if let Some(code) = stop.exit_codes.iter().find(|c| codes.contains(c)) {
        return StopClass::GpuSuspect(format!(
            "task {} on node {} exited {code}, an exit code that may mean a GPU fault{unknown}",
            task.ecs_task_id, task.node_name
        ));
    }
    if stop.exit_codes.iter().all(|c| *c == 0) {
        return StopClass::Completed;
    }
    let code = stop
        .exit_codes
        .iter()
        .find(|c| **c != 0)
        .copied()
        .unwrap_or_default();
    StopClass::AppFailure(format!(
        "task {} on node {} exited {code}, which is not a health-check exit code{unknown}",
        task.ecs_task_id, task.node_name
    ))
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}...")
    }
}

pub(super) fn on_stopped(work: &mut Working<'_>, stop: &TaskStop) {
    let id = last_arn_segment(&stop.task_arn).to_owned();
    let Some(task) = work.tasks.get(&id).cloned() else {
        work.note(format!("task {id} is not in the task table; stop ignored"));
        return;
    };
    if task.kind == TaskKind::HealthCheck {
        work.note(format!(
            "task {id} is a health check; its stop is read as a verdict"
        ));
        return;
    }
    if stop.version <= task.event_version {
        work.note(format!(
            "stale event for task {id}: version {} is not above {}",
            stop.version, task.event_version
        ));
        return;
    }
    if work.job.is_none() {
        work.note(format!("task {id} has no job record; stop ignored"));
        return;
    }
    let class = classify(stop, &task, work);
    let record = work.tasks.get_mut(&id).expect("task present");
    record.event_version = stop.version;
    if task.task_status.is_terminal() {
        // The first stop event of a task the engine already marked records
        // that ECS has released its GPUs, which a waiting check needs.
        if record.stop.is_none() {
            record.stop = Some(StopRecord {
                stop_code: stop.stop_code.clone(),
                exit_codes: stop.exit_codes.clone(),
                stopped_reason: stop.stopped_reason.clone(),
                at: stop.at,
                classified_as: class.label().to_owned(),
            });
        }
        work.note(format!(
            "task {id} is already {}; nothing to do",
            task.task_status
        ));
        return;
    }
    record.stop = Some(StopRecord {
        stop_code: stop.stop_code.clone(),
        exit_codes: stop.exit_codes.clone(),
        stopped_reason: stop.stopped_reason.clone(),
        at: stop.at,
        classified_as: class.label().to_owned(),
    });
    apply_stop(work, &task, class, stop);
}

fn apply_stop(work: &mut Working<'_>, task: &TaskRecord, class: StopClass, stop: &TaskStop) {
    let id = task.ecs_task_id.as_str();
    let status = work.job_status();
    if status.is_terminal() {
        let to = if class == StopClass::Completed {
            TaskStatus::Complete
        } else {
            TaskStatus::Terminated
        };
        work.set_task_status(id, to, &format!("job is already {status}"));
        return;
    }
    if matches!(
        status,
        JobStatus::PendingHealthcheck | JobStatus::PendingRestart
    ) {
        let episode = work.episode_id().unwrap_or_default();
        let reason = match &class {
            StopClass::OwnStop => format!("stopped by the engine for episode {episode}"),
            _ => format!("stopped while episode {episode} is open; no second episode"),
        };
        work.set_task_status(id, TaskStatus::Terminated, &reason);
        return;
    }
    let restarting = status == JobStatus::Restarting;
    let failed_to_start = stop.stop_code.as_deref() == Some("TaskFailedToStart");
    match class {
        StopClass::Completed => {
            work.set_task_status(id, TaskStatus::Complete, "every container exited 0");
            progress::complete_if_done(work);
        }
        StopClass::OwnStop => {
            work.set_task_status(id, TaskStatus::Terminated, "stopped by the engine");
        }
        StopClass::GpuSuspect(reason) if restarting && failed_to_start => {
            work.set_task_status(id, TaskStatus::Terminated, &reason);
            progress::fail_job(
                work,
                &format!("the restart could not start its tasks: {reason}"),
            );
        }
        StopClass::GpuSuspect(reason) => open_episode(work, task, &reason),
        StopClass::UserStop(reason) => {
            work.set_task_status(id, TaskStatus::Terminated, &reason);
            progress::stop_job(
                work,
                JobStatus::UserStopped,
                &format!("{reason}; the other ranks cannot make progress without it"),
            );
        }
        StopClass::HostLost(reason) => {
            work.set_task_status(id, TaskStatus::Terminated, &reason);
            let node = task.node_name.clone();
            super::nodes::quarantine_node(
                work,
                &node,
                &reason,
                crate::effect::NotificationKind::GaveUp,
            );
            progress::fail_job(work, &reason);
        }
        StopClass::StartFailure(reason) if restarting => {
            work.set_task_status(id, TaskStatus::Terminated, &reason);
            progress::fail_job(
                work,
                &format!("the restart could not start its tasks: {reason}"),
            );
        }
        StopClass::AppFailure(reason)
        | StopClass::StartFailure(reason)
        | StopClass::SchedulerStop(reason) => {
            work.set_task_status(id, TaskStatus::Terminated, &reason);
            progress::fail_job(work, &reason);
        }
    }
}

/// Opens a recovery episode: the job's status changes first, in this same
/// write, so the `UserInitiated` stops of the siblings that follow read as the
/// engine's own; then the siblings are stopped and every node is checked.
pub(super) fn open_episode(work: &mut Working<'_>, task: &TaskRecord, reason: &str) {
    let now = work.now;
    let timeout = work.env.policy.health_check_timeout;
    let nodes = work.job_nodes();
    let job = work.job_mut();
    job.episodes_opened += 1;
    let episode_id = format!("{}-e{}", job.job_id, job.episodes_opened);
    job.episode = Some(Episode {
        id: episode_id.clone(),
        opened_at: now,
        trigger_task: task.ecs_task_id.clone(),
        trigger_reason: reason.to_owned(),
        nodes: nodes
            .iter()
            .map(|n| (n.clone(), EpisodeNode::default()))
            .collect(),
        outcome: None,
    });
    job.deadline = Some(now + timeout);
    let job_id = job.job_id.clone();

    work.set_task_status(&task.ecs_task_id, TaskStatus::Terminated, reason);
    work.set_job_status(
        JobStatus::PendingHealthcheck,
        &format!("episode {episode_id} opened: {reason}"),
    );
    work.metrics.push(MetricEvent::EpisodeOpened);
    progress::stop_tasks(
        work,
        &format!(
            "{STOP_REASON_PREFIX} job {job_id} stopped because task {} failed",
            task.ecs_task_id
        ),
        false,
    );
    for name in nodes {
        request_health_check(work, &name, &episode_id, CheckPhase::Initial);
    }
}

/// Marks a node as waiting for a health check and queues the `StartTask`.
pub(super) fn request_health_check(
    work: &mut Working<'_>,
    name: &str,
    episode_id: &str,
    phase: CheckPhase,
) {
    let now = work.now;
    let timeout = work.env.policy.health_check_timeout;
    let Some(node) = work.nodes.get_mut(name) else {
        work.note(format!("node {name} has no record; it cannot be checked"));
        super::checks::record_verdict(
            work,
            name,
            phase,
            crate::verdict::Verdict::Inconclusive,
            "the node has no record in the node table",
        );
        return;
    };
    node.episode_id = Some(episode_id.to_owned());
    node.health_check = Some(HealthCheckRun {
        episode_id: episode_id.to_owned(),
        phase,
        requested_at: now,
        task_id: None,
        queued: false,
    });
    node.deadline = Some(now + timeout);
    let which = match phase {
        CheckPhase::Initial => "health check",
        CheckPhase::PostReboot => "post-reboot health check",
    };
    work.set_node_status(
        name,
        NodeStatus::PendingHealthcheck,
        &format!("{which} requested for episode {episode_id}"),
    );
    queue_ready_checks(work);
}

/// How long a health check waits for the engine's `StopTask` of the node's
/// training task to be confirmed before it is started anyway. ECS places a
/// GPU task only once the stopped task has released the node's GPUs.
pub(super) const STOP_WAIT: Span = Span::minutes(3);

/// Queues the `StartTask` of every requested check whose node is free: no
/// training task on it that the engine asked to stop and ECS has not yet
/// reported stopped, or the wait for one is over.
pub(super) fn queue_ready_checks(work: &mut Working<'_>) {
    let now = work.now;
    let waiting: Vec<(String, HealthCheckRun, String)> = work
        .nodes
        .values()
        .filter_map(|n| {
            let run = n.health_check.as_ref()?;
            (!run.queued).then(|| {
                (
                    n.node_name.clone(),
                    run.clone(),
                    n.container_instance_arn.clone(),
                )
            })
        })
        .collect();
    for (name, run, container_instance_arn) in waiting {
        let stopping = work.tasks.values().any(|t| {
            t.kind == TaskKind::Training
                && t.node_name == name
                && t.stop_requested.is_some()
                && t.stop.is_none()
        });
        if stopping && run.requested_at + STOP_WAIT > now {
            continue;
        }
        if let Some(check) = work
            .nodes
            .get_mut(&name)
            .and_then(|n| n.health_check.as_mut())
        {
            check.queued = true;
        }
        let phase_name = match run.phase {
            CheckPhase::Initial => "initial",
            CheckPhase::PostReboot => "post_reboot",
        };
        let episode_id = run.episode_id.as_str();
        work.push_intent(
            format!("health_check:{name}:{episode_id}:{phase_name}"),
            Effect::StartHealthCheck {
                node_name: name.clone(),
                container_instance_arn,
                episode_id: episode_id.to_owned(),
                phase: run.phase,
                started_by: token("grhc", &[episode_id, &name, phase_name]),
            },
        );
    }
}

pub(super) fn on_running(work: &mut Working<'_>, run: &TaskRun) {
    let id = last_arn_segment(&run.task_arn).to_owned();
    if let Some(task) = work.tasks.get(&id) {
        if run.version <= task.event_version {
            work.note(format!(
                "stale event for task {id}: version {} is not above {}",
                run.version, task.event_version
            ));
            return;
        }
        if task.task_status.is_terminal() {
            work.note(format!(
                "task {id} is already {}; RUNNING ignored",
                task.task_status
            ));
            return;
        }
        let task = work.tasks.get_mut(&id).expect("task present");
        task.event_version = run.version;
        task.running = true;
        return;
    }
    register_task(work, run, &id);
}

/// Registers a running task that is not in the table: a task launched by
/// another tool, or one of ours whose `StartTask` result was not recorded.
fn register_task(work: &mut Working<'_>, run: &TaskRun, id: &str) {
    let tags = run.tags.clone().unwrap_or_default();
    if tags.get("jobtype").map(String::as_str) != Some("training_job") {
        work.note(format!(
            "task {id} has no jobtype=training_job tag; not a training task"
        ));
        return;
    }
    let Some(job_id) = tags.get("job_id").cloned() else {
        work.note(format!(
            "task {id} has no job_id tag; it cannot be registered"
        ));
        return;
    };
    let num_nodes = tag_count(&tags, "job_num_nodes").unwrap_or(1).max(1);
    let rank = tag_count(&tags, "node_index_in_job").unwrap_or(0);
    if rank >= num_nodes {
        work.note(format!(
            "task {id} has node_index_in_job {rank} but job_num_nodes {num_nodes}; not registered"
        ));
        return;
    }
    if work.job.is_none() {
        work.job = Some(registered_job(work, run, id, &job_id, num_nodes, &tags));
    }
    if work.job_id() != job_id {
        work.note(format!(
            "task {id} belongs to job {job_id}, not {}",
            work.job_id()
        ));
        return;
    }
    let status = work.job_status();
    if status.is_terminal() {
        work.note(format!(
            "task {id} belongs to job {job_id}, which is already {status}"
        ));
        return;
    }
    let node_name = work
        .node_by_container_instance(&run.container_instance_arn)
        .unwrap_or_else(|| {
            let name = run
                .ec2_instance_id
                .clone()
                .unwrap_or_else(|| last_arn_segment(&run.container_instance_arn).to_owned());
            let mut node = NodeRecord::new(&name, &run.container_instance_arn);
            node.ec2_instance_id.clone_from(&run.ec2_instance_id);
            work.nodes.insert(name.clone(), node);
            name
        });
    let job = work.job_mut();
    place_rank(job, run, id, rank, num_nodes, &node_name);
    let retry = job.retry;
    let node = work.nodes.get_mut(&node_name).expect("node present");
    node.job_id = Some(job_id.clone());
    let mut task = super::outcome::new_task(
        id,
        &run.task_arn,
        &job_id,
        TaskKind::Training,
        &node_name,
        &run.container_instance_arn,
    );
    task.node_index_in_job = rank;
    task.job_num_nodes = num_nodes;
    task.task_def_arn.clone_from(&run.task_definition_arn);
    task.retry = retry;
    task.event_version = run.version;
    task.running = true;
    work.tasks.insert(id.to_owned(), task);
    work.set_node_status(
        &node_name,
        NodeStatus::InProgress,
        &format!("runs rank {rank} of job {job_id}"),
    );
    work.record_event(
        format!("task {id}"),
        "IN_PROGRESS".to_owned(),
        &format!("registered as rank {rank}"),
    );
}

/// Puts a registered task into its rank's slot of the job record.
fn place_rank(
    job: &mut JobRecord,
    run: &TaskRun,
    id: &str,
    rank: u32,
    num_nodes: u32,
    node_name: &str,
) {
    let slots = num_nodes as usize;
    let slot = rank as usize;
    for list in [
        &mut job.assigned_nodes,
        &mut job.submitted_ecs_task_ids,
        &mut job.submitted_container_inst_ids,
    ] {
        if list.len() < slots {
            list.resize(slots, String::new());
        }
    }
    node_name.clone_into(&mut job.assigned_nodes[slot]);
    id.clone_into(&mut job.submitted_ecs_task_ids[slot]);
    last_arn_segment(&run.container_instance_arn)
        .clone_into(&mut job.submitted_container_inst_ids[slot]);
    job.num_nodes = job.num_nodes.max(num_nodes);
    if let Some(launch) = job.launch.as_mut()
        && !launch.ranks.iter().any(|r| r.node_name == node_name)
    {
        launch.ranks.push(RankLaunch {
            rank,
            node_name: node_name.to_owned(),
            container_instance_arn: run.container_instance_arn.clone(),
            overrides: run.overrides.clone(),
        });
        launch.ranks.sort_by_key(|r| r.rank);
    }
}

/// Builds the record of a job first seen through a RUNNING event.
fn registered_job(
    work: &Working<'_>,
    run: &TaskRun,
    id: &str,
    job_id: &str,
    num_nodes: u32,
    tags: &BTreeMap<String, String>,
) -> JobRecord {
    let mut job = JobRecord::new(job_id, JobStatus::InProgress);
    job.num_nodes = num_nodes;
    job.status_reason = Some(format!("registered from the RUNNING event of task {id}"));
    job.deadline = Some(work.now + work.env.policy.running_poll_interval);
    let extra: BTreeMap<String, String> = tags
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "jobtype" | "job_id" | "job_num_nodes" | "node_index_in_job"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    job.launch = Some(LaunchSpec {
        task_definition: run.task_definition_arn.clone(),
        tags: extra,
        ranks: Vec::new(),
    });
    job
}

fn tag_count(tags: &BTreeMap<String, String>, key: &str) -> Option<u32> {
    tags.get(key).and_then(|v| v.trim().parse().ok())
}
