//! Builds the one notification a decision sends, from the notices its steps
//! collected: a give-up, a quarantine and a safety stop decided together
//! reach the operators as one message.

use std::fmt::Write as _;

use crate::effect::{Effect, Notification, NotificationKind};
use crate::records::NodeAction;

use super::working::Working;

pub(super) fn flush(work: &mut Working<'_>) {
    if work.notices.is_empty() || work.job.is_none() {
        return;
    }
    let notices = std::mem::take(&mut work.notices);
    let kind = notices
        .iter()
        .map(|n| n.kind)
        .max()
        .unwrap_or(NotificationKind::GaveUp);
    let job = work.job();
    let job_id = job.job_id.clone();
    let episode = job.episode.clone();
    let headline = match kind {
        NotificationKind::SafetyStop => "automatic recovery paused by a safety limit",
        NotificationKind::Quarantine => "node taken out of service",
        NotificationKind::GaveUp => "job failed, recovery gave up",
    };
    let subject: String = format!("[gpu-recovery] {job_id}: {headline}")
        .chars()
        .take(100)
        .collect();

    let mut message = String::new();
    let _ = writeln!(
        message,
        "Job: {job_id} ({}; retry {})",
        job.job_status, job.retry
    );
    if let Some(episode) = &episode {
        let _ = writeln!(
            message,
            "Episode: {} opened {} by task {}: {}",
            episode.id, episode.opened_at, episode.trigger_task, episode.trigger_reason
        );
        let _ = writeln!(message, "Nodes:");
        for (name, entry) in &episode.nodes {
            let initial = entry.initial.as_ref().map_or("no verdict".to_owned(), |v| {
                format!("{} ({})", v.verdict, v.detail)
            });
            let _ = write!(message, "  {name}: initial check {initial}");
            if let Some(post) = &entry.post_reboot {
                let _ = write!(message, "; after reboot {} ({})", post.verdict, post.detail);
            }
            let status = work
                .nodes
                .get(name)
                .map_or("unknown".to_owned(), |n| n.node_status.to_string());
            let action = match entry.action {
                Some(NodeAction::Keep) => "kept",
                Some(NodeAction::Reboot) => "rebooted",
                Some(NodeAction::Quarantine) => "quarantined",
                Some(NodeAction::Held) => "held by a safety limit",
                None => "undecided",
            };
            let _ = writeln!(message, "; {action}; now {status}");
        }
    } else {
        let _ = writeln!(message, "Nodes: {}", job.assigned_nodes.join(", "));
    }
    let _ = writeln!(message, "What happened:");
    for notice in &notices {
        let _ = writeln!(message, "  - {}", notice.text);
    }
    let _ = writeln!(message, "What to do:");
    for advice in advice_for(&notices.iter().map(|n| n.kind).collect::<Vec<_>>()) {
        let _ = writeln!(message, "  - {advice}");
    }

    let episode_id = episode.map(|e| e.id);
    let key = format!(
        "notify:{job_id}:{}:{}",
        episode_id.as_deref().unwrap_or("-"),
        work.now.0
    );
    work.push_intent(
        key,
        Effect::Notify(Notification {
            kind,
            job_id,
            episode_id,
            subject,
            message,
        }),
    );
}

fn advice_for(kinds: &[NotificationKind]) -> Vec<&'static str> {
    let mut advice = Vec::new();
    if kinds.contains(&NotificationKind::GaveUp) {
        advice.push("Read the job's decision history with `gpu-recovery status JOB_ID` and the failed task's logs; resubmit the job once the cause is fixed.");
    }
    if kinds.contains(&NotificationKind::Quarantine) {
        advice.push("Repair or replace the quarantined node, then set its container instance back to ACTIVE and its node_status to AVAILABLE.");
    }
    if kinds.contains(&NotificationKind::SafetyStop) {
        advice.push("Check the health-check image and the recent verdicts before trusting them; nodes held by the safety limit are not rebooted automatically.");
    }
    advice
}
