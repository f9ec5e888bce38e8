//! The clock tick: moves overdue records forward, and reads what the
//! watchdog probed from ECS and SSM where an event may have been lost.

use crate::effect::NotificationKind;
use crate::observation::{CommandStatus, TaskProbe, TaskStop, Tick};
use crate::records::{CheckPhase, TaskKind};
use crate::status::{JobStatus, NodeStatus, TaskStatus};
use crate::verdict::Verdict;

use super::checks::record_verdict;
use super::nodes;
use super::progress;
use super::tasks;
use super::working::Working;

pub(super) fn on_tick(work: &mut Working<'_>, tick: &Tick) {
    if work.job.is_none() {
        return;
    }
    for name in work.job_nodes() {
        tick_node(work, &name, tick);
    }
    let now = work.now;
    let overdue = work.job().deadline.is_some_and(|d| d <= now);
    match work.job_status() {
        JobStatus::InProgress if overdue => poll_running(work, tick),
        JobStatus::PendingHealthcheck if overdue => {
            let timeout = work.env.policy.health_check_timeout;
            expire_missing_verdicts(work, &format!("no verdict within {timeout}"));
        }
        JobStatus::PendingRestart if overdue => {
            let policy = work.env.policy;
            let span = policy.reboot_timeout + policy.health_check_timeout;
            progress::fail_job(
                work,
                &format!("the rebooted nodes were not back and healthy within {span}"),
            );
        }
        JobStatus::Restarting if overdue => {
            let timeout = work.env.policy.restart_timeout;
            progress::fail_job(
                work,
                &format!("the restart did not bring every rank to RUNNING within {timeout}"),
            );
        }
        status if status.is_terminal() && overdue => {
            // A finished job keeps a deadline only while its nodes recover.
            let recovering = work.job_nodes().iter().any(|n| {
                work.nodes.get(n).is_some_and(|node| {
                    node.node_status.is_recovering()
                        && node.job_id.as_deref() == Some(work.job().job_id.as_str())
                })
            });
            if !recovering {
                work.job_mut().deadline = None;
            }
        }
        _ => {}
    }
}

fn tick_node(work: &mut Working<'_>, name: &str, tick: &Tick) {
    let now = work.now;
    let Some(node) = work.nodes.get(name).cloned() else {
        return;
    };
    if node.job_id.as_deref() != Some(work.job().job_id.as_str()) {
        return;
    }
    let overdue = node.deadline.is_some_and(|d| d <= now);
    match node.node_status {
        NodeStatus::Rebooting => {
            let Some(run) = node.reboot.clone() else {
                return;
            };
            let probe = tick.nodes.get(name);
            let connected = probe.and_then(|p| p.agent_connected) == Some(true);
            let newer = match (
                run.disconnect_version,
                probe.and_then(|p| p.instance_version),
            ) {
                (Some(disconnect), Some(current)) => current > disconnect,
                _ => false,
            };
            let command_done = probe.and_then(|p| p.reboot_command) == Some(CommandStatus::Success);
            if run.disconnected_at.is_some() && connected && newer {
                nodes::node_back(
                    work,
                    name,
                    "the watchdog found its agent connected again after the disconnect",
                );
            } else if run.disconnected_at.is_none() && connected && command_done {
                nodes::node_back(
                    work,
                    name,
                    "the watchdog found the reboot command finished and the agent connected; no disconnect event arrived",
                );
            } else if overdue {
                let timeout = work.env.policy.reboot_timeout;
                nodes::quarantine_node(
                    work,
                    name,
                    &format!("it did not come back from its reboot within {timeout}"),
                    NotificationKind::Quarantine,
                );
                if work.job_status() == JobStatus::PendingRestart {
                    progress::fail_job(
                        work,
                        &format!("node {name} did not come back from its reboot"),
                    );
                }
            }
        }
        NodeStatus::PendingHealthcheck if overdue => {
            let phase = node
                .health_check
                .as_ref()
                .map_or(CheckPhase::Initial, |h| h.phase);
            let timeout = work.env.policy.health_check_timeout;
            stop_check_task(work, name);
            if phase == CheckPhase::PostReboot || work.job_status() == JobStatus::PendingHealthcheck
            {
                record_verdict(
                    work,
                    name,
                    phase,
                    Verdict::Inconclusive,
                    &format!("no verdict within {timeout}"),
                );
            }
        }
        // Only a node queued for a reboot slot has a deadline of its own
        // here; a node held for the restart follows the job's deadline.
        NodeStatus::Pending if overdue && node.reboot_queued_at.is_some() => {
            let timeout = work.env.policy.reboot_timeout;
            nodes::quarantine_node(
                work,
                name,
                &format!("no reboot slot freed up within {timeout} (MAX_CONCURRENT_REBOOTS)"),
                NotificationKind::SafetyStop,
            );
            if work.job_status() == JobStatus::PendingRestart {
                progress::fail_job(work, &format!("node {name} could not be rebooted in time"));
            }
        }
        _ => {}
    }
}

/// Gives every node still without an initial verdict an inconclusive one.
fn expire_missing_verdicts(work: &mut Working<'_>, detail: &str) {
    let missing: Vec<String> = work
        .job()
        .episode
        .as_ref()
        .map(|e| {
            e.nodes
                .iter()
                .filter(|(_, n)| n.initial.is_none())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    for name in missing {
        stop_check_task(work, &name);
        record_verdict(
            work,
            &name,
            CheckPhase::Initial,
            Verdict::Inconclusive,
            detail,
        );
    }
}

fn stop_check_task(work: &mut Working<'_>, name: &str) {
    let running: Vec<(String, String)> = work
        .tasks
        .values()
        .filter(|t| {
            t.kind == TaskKind::HealthCheck
                && t.node_name == name
                && t.task_status == TaskStatus::InProgress
        })
        .map(|t| (t.ecs_task_id.clone(), t.task_arn.clone()))
        .collect();
    for (id, arn) in running {
        let reason = format!(
            "{} health check on {name} overran its deadline",
            super::STOP_REASON_PREFIX
        );
        if let Some(task) = work.tasks.get_mut(&id) {
            task.stop_requested = Some(reason.clone());
        }
        work.set_task_status(
            &id,
            TaskStatus::Terminated,
            "health check overran its deadline",
        );
        work.push_intent(
            format!("stop:{id}"),
            crate::effect::Effect::StopTask {
                task_arn: arn,
                reason,
            },
        );
    }
}

/// Reads the probed state of a running job's tasks, in case a stop event
/// was lost, and sets the next poll.
fn poll_running(work: &mut Working<'_>, tick: &Tick) {
    let now = work.now;
    let poll = work.env.policy.running_poll_interval;
    work.job_mut().deadline = Some(now + poll);
    let running: Vec<(String, String, String, u64)> = work
        .tasks
        .values()
        .filter(|t| t.kind == TaskKind::Training && t.task_status == TaskStatus::InProgress)
        .map(|t| {
            (
                t.ecs_task_id.clone(),
                t.task_arn.clone(),
                t.container_instance_arn.clone(),
                t.event_version,
            )
        })
        .collect();
    for (id, arn, container_instance_arn, version) in running {
        let stop = match tick.tasks.get(&id) {
            Some(TaskProbe::Stopped(stop)) => TaskStop {
                version: stop.version.max(version + 1),
                ..stop.clone()
            },
            Some(TaskProbe::Missing) => TaskStop {
                task_arn: arn,
                container_instance_arn,
                task_definition_arn: String::new(),
                stop_code: None,
                exit_codes: Vec::new(),
                stopped_reason: Some(
                    "ECS no longer knows the task; its stop event was missed".to_owned(),
                ),
                version: version + 1,
                at: now,
            },
            Some(TaskProbe::Running) | None => continue,
        };
        tasks::on_stopped(work, &stop);
        if work.job_status() != JobStatus::InProgress {
            break;
        }
    }
}
