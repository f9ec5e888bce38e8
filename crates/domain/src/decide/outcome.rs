//! Effect results: recording what a call returned, and what a rejected
//! call means for the job.

use crate::effect::{Effect, EffectResult, NotificationKind};
use crate::records::{CheckPhase, TaskKind, TaskRecord, last_arn_segment};
use crate::status::{JobStatus, TaskStatus};
use crate::verdict::Verdict;

use super::checks::record_verdict;
use super::nodes;
use super::progress;
use super::working::Working;

pub(super) fn on_result(work: &mut Working<'_>, key: &str, result: &EffectResult) {
    let now = work.now;
    let lease = work.env.policy.effect_lease;
    let Some(job) = work.job.as_mut() else {
        return;
    };
    let Some(position) = job.outbox.iter().position(|i| i.key == key) else {
        work.note(format!(
            "effect {key} is not in the outbox; its result was already recorded"
        ));
        return;
    };
    if let EffectResult::Failed { error } = result {
        let intent = &mut job.outbox[position];
        intent.claimed_at = None;
        intent.last_error = Some(error.clone());
        intent.not_before = Some(now + crate::effect::retry_backoff(intent.attempts, lease));
        work.note(format!("effect {key} failed and will be retried: {error}"));
        return;
    }
    let intent = job.outbox.remove(position);
    match result {
        EffectResult::TaskStarted { task_arn } => on_started(work, intent.effect, task_arn),
        EffectResult::CommandSent { command_id } => {
            if let Effect::Reboot { node_name, .. } = &intent.effect
                && let Some(run) = work
                    .nodes
                    .get_mut(node_name)
                    .and_then(|n| n.reboot.as_mut())
            {
                run.command_id = Some(command_id.clone());
                run.sent_at = Some(now);
            }
        }
        EffectResult::Rejected { reason } => on_rejected(work, intent.effect, reason),
        EffectResult::Done | EffectResult::Failed { .. } => {}
    }
}

/// Records the task a `StartTask` effect started.
fn on_started(work: &mut Working<'_>, effect: Effect, task_arn: &str) {
    match effect {
        Effect::StartHealthCheck {
            node_name,
            container_instance_arn,
            episode_id,
            phase,
            ..
        } => {
            record_check_task(
                work,
                &node_name,
                &container_instance_arn,
                &episode_id,
                phase,
                task_arn,
            );
        }
        Effect::StartTrainingTask {
            node_name,
            rank,
            container_instance_arn,
            task_definition,
            ..
        } => {
            record_training_task(
                work,
                &node_name,
                rank,
                &container_instance_arn,
                &task_definition,
                task_arn,
            );
        }
        other => work.note(format!("{} reported a started task", other.describe())),
    }
}

/// Decides what a call that will never succeed means for the job.
fn on_rejected(work: &mut Working<'_>, effect: Effect, reason: &str) {
    match effect {
        Effect::StartHealthCheck {
            node_name,
            episode_id,
            phase,
            ..
        } if work.episode_id().as_deref() == Some(episode_id.as_str()) => {
            let detail = format!("the health-check task could not start: {reason}");
            record_verdict(work, &node_name, phase, Verdict::Inconclusive, &detail);
        }
        Effect::StartTrainingTask {
            node_name, rank, ..
        } if work.job_status() == JobStatus::Restarting => {
            let why =
                format!("the restart could not start rank {rank} on node {node_name}: {reason}");
            progress::fail_job(work, &why);
        }
        Effect::Reboot { node_name, .. } => {
            let why = format!("its reboot command was rejected: {reason}");
            nodes::quarantine_node(work, &node_name, &why, NotificationKind::Quarantine);
            if work.job_status() == JobStatus::PendingRestart {
                progress::fail_job(work, &format!("node {node_name} could not be rebooted"));
            }
        }
        other => work.note(format!("{} was rejected: {reason}", other.describe())),
    }
}

fn record_check_task(
    work: &mut Working<'_>,
    node_name: &str,
    container_instance_arn: &str,
    episode_id: &str,
    phase: CheckPhase,
    task_arn: &str,
) {
    let id = last_arn_segment(task_arn).to_owned();
    if let Some(run) = work
        .nodes
        .get_mut(node_name)
        .and_then(|n| n.health_check.as_mut())
        && run.episode_id == episode_id
        && run.phase == phase
    {
        run.task_id = Some(id.clone());
    }
    if work.tasks.contains_key(&id) {
        return;
    }
    let job_id = work.job_id();
    let retry = work.job().retry;
    let mut task = new_task(
        &id,
        task_arn,
        &job_id,
        TaskKind::HealthCheck,
        node_name,
        container_instance_arn,
    );
    task.retry = retry;
    task.episode_id = Some(episode_id.to_owned());
    task.phase = Some(phase);
    work.tasks.insert(id, task);
}

fn record_training_task(
    work: &mut Working<'_>,
    node_name: &str,
    rank: u32,
    container_instance_arn: &str,
    task_definition: &str,
    task_arn: &str,
) {
    let id = last_arn_segment(task_arn).to_owned();
    let job = work.job_mut();
    let slot = rank as usize;
    if job.submitted_ecs_task_ids.len() <= slot {
        job.submitted_ecs_task_ids.resize(slot + 1, String::new());
    }
    job.submitted_ecs_task_ids[slot].clone_from(&id);
    let retry = job.retry;
    let num_nodes = job.num_nodes;
    let job_id = job.job_id.clone();
    if work.tasks.contains_key(&id) {
        return;
    }
    let mut task = new_task(
        &id,
        task_arn,
        &job_id,
        TaskKind::Training,
        node_name,
        container_instance_arn,
    );
    task.node_index_in_job = rank;
    task.job_num_nodes = num_nodes;
    task_definition.clone_into(&mut task.task_def_arn);
    task.retry = retry;
    let status = work.job_status();
    let late = status != JobStatus::Restarting && status != JobStatus::InProgress;
    work.tasks.insert(id.clone(), task);
    if late {
        // The job gave up while this StartTask was under way: the task must
        // not keep a node that was already released.
        let reason = format!(
            "{} job {job_id} is {status}; stopping rank {rank}, which started after it ended",
            super::STOP_REASON_PREFIX
        );
        if let Some(task) = work.tasks.get_mut(&id) {
            task.stop_requested = Some(reason.clone());
        }
        work.set_task_status(&id, TaskStatus::Terminated, "started after the job ended");
        work.push_intent(
            format!("stop:{id}"),
            Effect::StopTask {
                task_arn: task_arn.to_owned(),
                reason,
            },
        );
    }
}

pub(super) fn new_task(
    id: &str,
    task_arn: &str,
    job_id: &str,
    kind: TaskKind,
    node_name: &str,
    container_instance_arn: &str,
) -> TaskRecord {
    TaskRecord {
        ecs_task_id: id.to_owned(),
        task_arn: task_arn.to_owned(),
        job_id: job_id.to_owned(),
        kind,
        task_status: TaskStatus::InProgress,
        node_name: node_name.to_owned(),
        node_index_in_job: 0,
        job_num_nodes: 0,
        container_instance_arn: container_instance_arn.to_owned(),
        container_inst_id: last_arn_segment(container_instance_arn).to_owned(),
        cluster_name: String::new(),
        task_def_arn: String::new(),
        retry: 0,
        episode_id: None,
        phase: None,
        event_version: 0,
        running: false,
        stop_requested: None,
        stop: None,
        version: 0,
        created_at: None,
        updated_at: None,
    }
}
