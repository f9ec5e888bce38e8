//! Health-check results: recording each node's verdict for its episode, and
//! what a post-reboot verdict means for the node.

use std::fmt::Write as _;

use crate::effect::{MetricEvent, NotificationKind};
use crate::observation::HealthCheckResult;
use crate::records::{CheckPhase, TaskKind, VerdictRecord, last_arn_segment};
use crate::status::{JobStatus, NodeStatus, TaskStatus};
use crate::verdict::Verdict;

use super::nodes;
use super::progress;
use super::working::Working;

pub(super) fn on_finished(work: &mut Working<'_>, result: &HealthCheckResult) {
    let id = last_arn_segment(&result.task_arn).to_owned();
    let Some(task) = work.tasks.get(&id).cloned() else {
        work.note(format!(
            "health-check task {id} is not in the task table; result ignored"
        ));
        return;
    };
    if task.kind != TaskKind::HealthCheck {
        work.note(format!("task {id} is not a health-check task"));
        return;
    }
    if result.version <= task.event_version {
        work.note(format!(
            "stale event for health check {id}: version {} is not above {}",
            result.version, task.event_version
        ));
        return;
    }
    if task.task_status.is_terminal() {
        work.note(format!("health check {id} already recorded"));
        return;
    }
    let (verdict, detail) = verdict_of(result);
    let record = work.tasks.get_mut(&id).expect("task present");
    record.event_version = result.version;
    let to = if result.exit_code.is_some() {
        TaskStatus::Complete
    } else {
        TaskStatus::Terminated
    };
    work.set_task_status(&id, to, &format!("verdict {verdict}: {detail}"));
    work.metrics.push(MetricEvent::HealthCheck { verdict });
    let current = work.episode_id();
    if task.episode_id.is_none() || task.episode_id != current {
        // A late check still says something about the check image.
        if verdict != Verdict::Healthy {
            nodes::count_failed_check(work);
        }
        work.note(format!(
            "health check {id} belongs to episode {}, not the open one; verdict kept on the task only",
            task.episode_id.as_deref().unwrap_or("unknown")
        ));
        return;
    }
    let phase = task.phase.unwrap_or(CheckPhase::Initial);
    record_verdict(work, &task.node_name, phase, verdict, &detail);
}

/// The verdict from the exit code, which is the protocol; the runner's JSON
/// line, when present, only adds detail.
fn verdict_of(result: &HealthCheckResult) -> (Verdict, String) {
    let Some(code) = result.exit_code else {
        let why = result
            .stopped_reason
            .clone()
            .or_else(|| result.stop_code.clone())
            .unwrap_or_else(|| "no reason given".to_owned());
        return (
            Verdict::Inconclusive,
            format!("the check stopped without an exit code ({why})"),
        );
    };
    let verdict = Verdict::from_exit_code(code);
    let mut detail = format!("exit code {code}");
    if let Some(report) = &result.report {
        detail.push_str(": ");
        detail.push_str(&report.summary);
        if report.verdict != verdict {
            let _ = write!(
                detail,
                " (the report line said {}, the exit code decides)",
                report.verdict
            );
        }
    }
    (verdict, detail)
}

/// Records a verdict for a node in the open episode, once per phase.
pub(super) fn record_verdict(
    work: &mut Working<'_>,
    name: &str,
    phase: CheckPhase,
    verdict: Verdict,
    detail: &str,
) {
    let now = work.now;
    let Some(entry) = work
        .job_mut()
        .episode
        .as_mut()
        .and_then(|e| e.nodes.get_mut(name))
    else {
        work.note(format!("node {name} is not part of the open episode"));
        return;
    };
    let slot = match phase {
        CheckPhase::Initial => &mut entry.initial,
        CheckPhase::PostReboot => &mut entry.post_reboot,
    };
    if slot.is_some() {
        work.note(format!("node {name} already has a verdict for this phase"));
        return;
    }
    *slot = Some(VerdictRecord {
        verdict,
        at: now,
        detail: detail.to_owned(),
    });
    // Every verdict that is not a pass counts towards the circuit breaker,
    // whether the check failed, could not start or never finished: a broken
    // or hanging check image shows up in all three ways.
    if verdict != Verdict::Healthy {
        nodes::count_failed_check(work);
    }
    if let Some(node) = work.nodes.get_mut(name) {
        node.health_check = None;
        node.deadline = None;
    }
    match phase {
        CheckPhase::Initial => {
            let deadline = work.job().deadline;
            if let Some(node) = work.nodes.get_mut(name) {
                node.deadline = deadline;
            }
            work.set_node_status(
                name,
                NodeStatus::Pending,
                &format!("verdict {verdict} ({detail}); waiting for every node's verdict"),
            );
        }
        CheckPhase::PostReboot => after_post_reboot(work, name, verdict, detail),
    }
}

fn after_post_reboot(work: &mut Working<'_>, name: &str, verdict: Verdict, detail: &str) {
    if verdict == Verdict::Healthy {
        if work.job_status() == JobStatus::PendingRestart {
            progress::hold_for_restart(
                work,
                name,
                "passed its post-reboot health check; held for the job's restart",
            );
        } else {
            progress::release_node(work, name, "passed its post-reboot health check");
        }
        return;
    }
    let reason =
        format!("the fault remains after a reboot (post-reboot verdict {verdict}: {detail})");
    nodes::quarantine_node(work, name, &reason, NotificationKind::Quarantine);
    if work.job_status() == JobStatus::PendingRestart {
        progress::fail_job(
            work,
            &format!("node {name} is still faulty after its reboot"),
        );
    }
}
