//! Job-level steps: the level-triggered [`advance`] that moves a job forward
//! when its conditions hold, and the transitions it and the event handlers
//! share (complete, fail, stop, restart).

use crate::effect::{Effect, MetricEvent, NotificationKind};
use crate::records::{NodeAction, TaskKind};
use crate::status::{JobStatus, NodeStatus, TaskStatus};
use crate::verdict::Verdict;

use super::STOP_REASON_PREFIX;
use super::nodes;
use super::working::{Working, token};

/// Moves the job forward while a condition for the next step holds.
pub(super) fn advance(work: &mut Working<'_>) {
    // Each pass makes at most one job transition; four passes cover the
    // longest chain (verdicts in -> reboot slots -> restart -> running).
    super::tasks::queue_ready_checks(work);
    for _ in 0..4 {
        let before = work.job_status();
        match before {
            JobStatus::PendingHealthcheck => {
                if all_initial_verdicts_in(work) {
                    act_on_verdicts(work);
                }
            }
            JobStatus::PendingRestart => {
                nodes::fill_reboot_slots(work);
                if all_rebooted_nodes_passed(work) {
                    restart_or_fail(work);
                }
            }
            JobStatus::Restarting => {
                if all_ranks_running(work) {
                    let poll = work.env.policy.running_poll_interval;
                    let now = work.now;
                    work.job_mut().deadline = Some(now + poll);
                    work.set_job_status(
                        JobStatus::InProgress,
                        "every rank of the restart is RUNNING",
                    );
                }
            }
            _ => nodes::fill_reboot_slots(work),
        }
        if work.job_status() == before {
            break;
        }
    }
}

fn all_initial_verdicts_in(work: &Working<'_>) -> bool {
    work.job()
        .episode
        .as_ref()
        .is_some_and(|e| e.nodes.values().all(|n| n.initial.is_some()))
}

fn all_rebooted_nodes_passed(work: &Working<'_>) -> bool {
    let Some(episode) = work.job().episode.as_ref() else {
        return false;
    };
    episode.nodes.values().all(|n| match n.action {
        Some(NodeAction::Reboot) => n
            .post_reboot
            .as_ref()
            .is_some_and(|v| v.verdict == Verdict::Healthy),
        Some(NodeAction::Keep) => true,
        _ => false,
    })
}

fn all_ranks_running(work: &Working<'_>) -> bool {
    let job = work.job();
    let retry = job.retry;
    (0..job.num_nodes.max(1)).all(|rank| {
        work.tasks.values().any(|t| {
            t.kind == TaskKind::Training
                && t.retry == retry
                && t.node_index_in_job == rank
                && t.running
                && t.task_status == TaskStatus::InProgress
        })
    })
}

/// Decides what each node needs once every verdict is in, then the job's fate.
fn act_on_verdicts(work: &mut Working<'_>) {
    let policy = work.env.policy;
    let breaker_open = nodes::breaker_open(work);
    let verdicts: Vec<(String, Verdict)> = work
        .job()
        .episode
        .as_ref()
        .map(|e| {
            e.nodes
                .iter()
                .filter_map(|(n, v)| Some((n.clone(), v.initial.as_ref()?.verdict)))
                .collect()
        })
        .unwrap_or_default();

    let mut reboot = Vec::new();
    let mut quarantine = Vec::new();
    let mut held = Vec::new();
    for (name, verdict) in &verdicts {
        let action = action_for(*verdict, policy, breaker_open);
        set_action(work, name, action);
        match action {
            NodeAction::Reboot => reboot.push((name.clone(), *verdict)),
            NodeAction::Quarantine => quarantine.push((name.clone(), *verdict)),
            NodeAction::Held => held.push(name.clone()),
            NodeAction::Keep => {}
        }
    }

    for (name, verdict) in &reboot {
        nodes::start_reboot(work, name, *verdict);
    }
    for (name, verdict) in &quarantine {
        let reason = match verdict {
            Verdict::Replace => {
                "its health check found a fault that a reboot cannot clear".to_owned()
            }
            _ => format!("its health check was {verdict} and the policy quarantines such nodes"),
        };
        nodes::quarantine_node(work, name, &reason, NotificationKind::Quarantine);
    }
    for name in &held {
        let reason = format!(
            "a reboot was due, but the circuit breaker is open ({} failed health checks within {}), so automatic reboots are paused",
            work.safety.failed_checks.len(),
            policy.breaker_window
        );
        nodes::quarantine_node(work, name, &reason, NotificationKind::SafetyStop);
    }

    let retry = work.job().retry;
    if !quarantine.is_empty() || !held.is_empty() {
        let names: Vec<&str> = quarantine
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(held.iter().map(String::as_str))
            .collect();
        fail_job(
            work,
            &format!(
                "node {} cannot be recovered automatically",
                names.join(", ")
            ),
        );
    } else if reboot.is_empty() {
        fail_job(
            work,
            "every node passed its health check, so the failure is the application's",
        );
    } else if retry >= policy.max_retries {
        fail_job(
            work,
            &format!(
                "the retry budget is spent (retry {retry} of {}); faulty nodes are rebooted to return them to service",
                policy.max_retries
            ),
        );
    } else {
        let now = work.now;
        let deadline = now + policy.reboot_timeout + policy.health_check_timeout;
        work.job_mut().deadline = Some(deadline);
        for (name, verdict) in &verdicts {
            if *verdict == Verdict::Healthy {
                hold_for_restart(work, name, "healthy; held for the job's restart");
            }
        }
        let names: Vec<&str> = reboot.iter().map(|(n, _)| n.as_str()).collect();
        work.set_job_status(
            JobStatus::PendingRestart,
            &format!(
                "rebooting {}; the job restarts when they are back and healthy",
                names.join(", ")
            ),
        );
    }
}

/// Returns the action a verdict calls for under the policy, before slots are counted.
fn action_for(verdict: Verdict, policy: &crate::policy::Policy, breaker_open: bool) -> NodeAction {
    let action = match verdict {
        Verdict::Healthy => NodeAction::Keep,
        Verdict::Reboot => NodeAction::Reboot,
        Verdict::Replace => NodeAction::Quarantine,
        Verdict::Inconclusive => match policy.inconclusive_action {
            crate::policy::InconclusiveAction::RebootOnce => NodeAction::Reboot,
            crate::policy::InconclusiveAction::Quarantine => NodeAction::Quarantine,
        },
    };
    if action == NodeAction::Reboot && breaker_open {
        NodeAction::Held
    } else {
        action
    }
}

pub(super) fn set_action(work: &mut Working<'_>, name: &str, action: NodeAction) {
    if let Some(entry) = work
        .job_mut()
        .episode
        .as_mut()
        .and_then(|e| e.nodes.get_mut(name))
    {
        entry.action = Some(action);
    }
}

pub(super) fn hold_for_restart(work: &mut Working<'_>, name: &str, reason: &str) {
    let deadline = work.job().deadline;
    if let Some(node) = work.nodes.get_mut(name) {
        node.deadline = deadline;
        node.health_check = None;
    }
    work.set_node_status(name, NodeStatus::Pending, reason);
}

/// Completes the job once every rank of the current attempt exited 0.
pub(super) fn complete_if_done(work: &mut Working<'_>) {
    let job = work.job();
    let retry = job.retry;
    let ranks = job.num_nodes.max(1);
    let done = (0..ranks).all(|rank| {
        work.tasks.values().any(|t| {
            t.kind == TaskKind::Training
                && t.retry == retry
                && t.node_index_in_job == rank
                && t.task_status == TaskStatus::Complete
        })
    });
    if done {
        work.job_mut().deadline = None;
        work.set_job_status(JobStatus::Complete, "every rank exited 0");
        release_nodes(work, "the job completed");
    }
}

/// Ends the job FAILED: stops what still runs, releases the nodes that need
/// nothing more, and notifies the operators.
pub(super) fn fail_job(work: &mut Working<'_>, reason: &str) {
    if work.job_status().is_terminal() {
        return;
    }
    stop_job(work, JobStatus::Failed, reason);
    work.metrics.push(MetricEvent::JobFailed);
    let job_id = work.job_id();
    work.notice(
        NotificationKind::GaveUp,
        format!("Job {job_id} failed: {reason}."),
    );
}

/// Ends the job with a terminal status, stops its tasks and releases its nodes.
pub(super) fn stop_job(work: &mut Working<'_>, status: JobStatus, reason: &str) {
    let job_id = work.job_id();
    let recovering = work.job().episode.as_ref().is_some_and(|e| {
        e.nodes
            .values()
            .any(|n| n.action == Some(NodeAction::Reboot))
    });
    let job = work.job_mut();
    job.deadline = None;
    // A restart that has not started yet must not start once the job ended.
    // A claimed one may be under way: it stays, so that its result can stop
    // the task it started.
    job.outbox.retain(|intent| {
        !matches!(intent.effect, Effect::StartTrainingTask { .. }) || intent.claimed_at.is_some()
    });
    if let Some(episode) = job.episode.as_mut() {
        episode
            .outcome
            .get_or_insert_with(|| format!("{status}: {reason}"));
    }
    // A job whose nodes still reboot keeps a deadline, so the watchdog keeps
    // visiting it until the last node is back or given up.
    if recovering {
        let now = work.now;
        let span = work.env.policy.reboot_timeout + work.env.policy.health_check_timeout;
        work.job_mut().deadline = Some(now + span);
    }
    work.set_job_status(status, reason);
    stop_tasks(
        work,
        &format!("{STOP_REASON_PREFIX} job {job_id} ended {status}: {reason}"),
        true,
    );
    release_nodes(work, &format!("job {job_id} ended {status}"));
}

/// Stops every task of the job that still runs. Health-check tasks are
/// stopped too when `include_checks` is set, for a job that is ending.
pub(super) fn stop_tasks(work: &mut Working<'_>, reason: &str, include_checks: bool) {
    let reason = truncate_reason(reason);
    let running: Vec<(String, String)> = work
        .tasks
        .values()
        .filter(|t| t.task_status == TaskStatus::InProgress)
        .filter(|t| include_checks || t.kind == TaskKind::Training)
        .filter(|t| t.kind == TaskKind::Training || !check_still_needed(work, &t.node_name))
        .map(|t| (t.ecs_task_id.clone(), t.task_arn.clone()))
        .collect();
    for (id, arn) in running {
        if let Some(task) = work.tasks.get_mut(&id) {
            task.stop_requested = Some(reason.clone());
        }
        work.set_task_status(&id, TaskStatus::Terminated, "stopped by the engine");
        if !arn.is_empty() {
            work.push_intent(
                format!("stop:{id}"),
                Effect::StopTask {
                    task_arn: arn,
                    reason: reason.clone(),
                },
            );
        }
    }
}

/// Whether a node's running health check still decides something: a
/// post-reboot check of a node that is being returned to service.
fn check_still_needed(work: &Working<'_>, name: &str) -> bool {
    work.nodes.get(name).is_some_and(|n| {
        n.node_status == NodeStatus::PendingHealthcheck
            && n.health_check
                .as_ref()
                .is_some_and(|h| h.phase == crate::records::CheckPhase::PostReboot)
    })
}

/// ECS limits a stop reason to 255 characters.
fn truncate_reason(reason: &str) -> String {
    reason.chars().take(255).collect()
}

/// Returns the job's nodes to AVAILABLE, except those still recovering
/// (rebooting, rechecking, waiting for a slot) or out of service.
pub(super) fn release_nodes(work: &mut Working<'_>, reason: &str) {
    let job_id = work.job_id();
    let episode = work.job().episode.clone();
    for name in work.job_nodes() {
        let Some(node) = work.nodes.get(&name) else {
            continue;
        };
        if node.job_id.as_deref().is_some_and(|j| j != job_id) {
            continue;
        }
        let action = episode
            .as_ref()
            .and_then(|e| e.nodes.get(&name))
            .and_then(|n| n.action);
        let rebooting = action == Some(NodeAction::Reboot) && !node_done_recovering(work, &name);
        if node.node_status == NodeStatus::Failed || rebooting {
            continue;
        }
        release_node(work, &name, reason);
    }
}

fn node_done_recovering(work: &Working<'_>, name: &str) -> bool {
    work.job()
        .episode
        .as_ref()
        .and_then(|e| e.nodes.get(name))
        .is_some_and(|n| {
            n.post_reboot
                .as_ref()
                .is_some_and(|v| v.verdict == Verdict::Healthy)
        })
}

pub(super) fn release_node(work: &mut Working<'_>, name: &str, reason: &str) {
    if let Some(node) = work.nodes.get_mut(name) {
        node.job_id = None;
        node.episode_id = None;
        node.health_check = None;
        node.reboot_queued_at = None;
        node.deadline = None;
    }
    work.set_node_status(name, NodeStatus::Available, reason);
}

/// Restarts every rank, or fails the job when the retry budget is spent.
fn restart_or_fail(work: &mut Working<'_>) {
    let policy = work.env.policy;
    let retry = work.job().retry;
    if retry >= policy.max_retries {
        fail_job(
            work,
            &format!(
                "the retry budget is spent (retry {retry} of {})",
                policy.max_retries
            ),
        );
        return;
    }
    let Some(launch) = work.job().launch.clone() else {
        fail_job(
            work,
            "the job's launch details (task definition, overrides) were never recorded, so it cannot be restarted",
        );
        return;
    };
    let ranks_known: Vec<u32> = launch.ranks.iter().map(|r| r.rank).collect();
    let missing: Vec<String> = (0..work.job().num_nodes.max(1))
        .filter(|r| !ranks_known.contains(r))
        .map(|r| r.to_string())
        .collect();
    if !missing.is_empty() {
        fail_job(
            work,
            &format!(
                "the launch details of rank {} were never recorded, so the job cannot be restarted",
                missing.join(", ")
            ),
        );
        return;
    }
    let now = work.now;
    let job_id = work.job_id();
    let episode = work.job().episode.clone();
    let attempt = retry + 1;
    let ranks = work.job().num_nodes.max(1) as usize;
    {
        let job = work.job_mut();
        job.retry = attempt;
        job.deadline = Some(now + policy.restart_timeout);
        job.submitted_ecs_task_ids = vec![String::new(); ranks];
        job.episode = None;
    }
    let since = episode
        .as_ref()
        .map_or(0, |e| now.since(e.opened_at).as_seconds());
    work.metrics.push(MetricEvent::Restart {
        seconds_since_failure: since,
    });
    let episode_id = episode.as_ref().map(|e| e.id.clone()).unwrap_or_default();
    work.set_job_status(
        JobStatus::Restarting,
        &format!(
            "episode {episode_id} recovered every node; restart {attempt} of {}",
            policy.max_retries
        ),
    );
    let num_nodes = ranks.to_string();
    for spec in &launch.ranks {
        let rank = spec.rank;
        let Some(node) = work.nodes.get_mut(&spec.node_name) else {
            continue;
        };
        node.episode_id = None;
        node.health_check = None;
        node.reboot = None;
        node.deadline = None;
        node.job_id = Some(job_id.clone());
        let rank_text = rank.to_string();
        let mut tags = launch.tags.clone();
        tags.insert("jobtype".to_owned(), "training_job".to_owned());
        tags.insert("job_id".to_owned(), job_id.clone());
        tags.insert("job_num_nodes".to_owned(), num_nodes.clone());
        tags.insert("node_index_in_job".to_owned(), rank_text.clone());
        let attempt_text = attempt.to_string();
        work.set_node_status(
            &spec.node_name,
            NodeStatus::InProgress,
            &format!("runs rank {rank} of restart {attempt}"),
        );
        work.push_intent(
            format!("start:{job_id}:{attempt}:{rank}"),
            Effect::StartTrainingTask {
                node_name: spec.node_name.clone(),
                rank,
                container_instance_arn: spec.container_instance_arn.clone(),
                task_definition: launch.task_definition.clone(),
                overrides: spec.overrides.clone(),
                tags,
                started_by: token("grjob", &[&job_id, &attempt_text, &rank_text]),
            },
        );
    }
}
