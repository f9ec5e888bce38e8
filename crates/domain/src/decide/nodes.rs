//! Node-level steps: reboots and their safety limits, telling a real return
//! from a reboot apart from routine agent reconnects, and quarantine.

use crate::effect::{Effect, MetricEvent, NotificationKind};
use crate::observation::InstanceChange;
use crate::policy::UnfixableAction;
use crate::records::{CheckPhase, NodeAction, RebootRun};
use crate::status::NodeStatus;
use crate::verdict::Verdict;

use super::progress;
use super::tasks::request_health_check;
use super::working::{Working, token};

/// Returns whether too many health checks failed within the window for automatic
/// reboots to go on. A broken check image fails on every node, and this
/// stops it from rebooting a fleet.
pub(super) fn breaker_open(work: &mut Working<'_>) -> bool {
    prune_failed_checks(work);
    work.safety.failed_checks.len() >= work.env.policy.breaker_failures as usize
}

pub(super) fn prune_failed_checks(work: &mut Working<'_>) {
    let window_start = work.now - work.env.policy.breaker_window;
    work.safety.failed_checks.retain(|at| *at > window_start);
    if work.safety.failed_checks.len() < work.env.policy.breaker_failures as usize {
        work.safety.breaker_open_since = None;
    }
}

/// Counts a failed health check and opens the breaker when it reaches the limit.
pub(super) fn count_failed_check(work: &mut Working<'_>) {
    prune_failed_checks(work);
    let now = work.now;
    work.safety.failed_checks.push(now);
    let limit = work.env.policy.breaker_failures as usize;
    if work.safety.failed_checks.len() >= limit && work.safety.breaker_open_since.is_none() {
        work.safety.breaker_open_since = Some(now);
        let window = work.env.policy.breaker_window;
        work.notice(
            NotificationKind::SafetyStop,
            format!(
                "The circuit breaker opened: {} health checks failed within {window}. Automatic reboots are paused until fewer than {limit} failures fall within the window.",
                work.safety.failed_checks.len()
            ),
        );
    }
}

/// Frees slots held longer than any reboot may take, so a record lost to a
/// crash or a manual edit cannot block reboots for ever.
fn prune_reboot_slots(work: &mut Working<'_>) {
    let policy = work.env.policy;
    let oldest = work.now - (policy.reboot_timeout + policy.reboot_timeout);
    work.safety.rebooting.retain(|_, since| *since > oldest);
}

/// Requests a reboot of a node, or queues it when every reboot slot is taken.
/// At most one reboot per node per episode.
pub(super) fn start_reboot(work: &mut Working<'_>, name: &str, cause: Verdict) {
    let Some(episode_id) = work.episode_id() else {
        return;
    };
    let Some(node) = work.nodes.get(name) else {
        work.note(format!("node {name} has no record; it cannot be rebooted"));
        return;
    };
    if node
        .reboot
        .as_ref()
        .is_some_and(|r| r.episode_id == episode_id)
    {
        work.note(format!(
            "node {name} was already rebooted in episode {episode_id}"
        ));
        return;
    }
    prune_reboot_slots(work);
    let policy = work.env.policy;
    let in_use = work.safety.rebooting.len();
    let now = work.now;
    if in_use >= policy.max_concurrent_reboots as usize && !work.safety.rebooting.contains_key(name)
    {
        let node = work.nodes.get_mut(name).expect("node present");
        if node.reboot_queued_at.is_none() {
            // The wait gets its own deadline, counted from when it began.
            node.reboot_queued_at = Some(now);
            node.deadline = Some(now + policy.reboot_timeout);
            node.health_check = None;
            let reason = format!(
                "waiting for a reboot slot: {in_use} of {} in use",
                policy.max_concurrent_reboots
            );
            let status = node.node_status;
            work.set_node_status(name, NodeStatus::Pending, &reason);
            if status == NodeStatus::Pending {
                work.record_event(format!("node {name}"), status.to_string(), &reason);
            }
        }
        return;
    }
    work.safety.rebooting.insert(name.to_owned(), now);
    let node = work.nodes.get_mut(name).expect("node present");
    node.reboot_queued_at = None;
    node.reboot = Some(RebootRun {
        episode_id: episode_id.clone(),
        requested_at: now,
        cause,
        command_id: None,
        sent_at: None,
        disconnected_at: None,
        disconnect_version: None,
        back_at: None,
    });
    node.health_check = None;
    node.deadline = Some(now + policy.reboot_timeout);
    let container_instance_arn = node.container_instance_arn.clone();
    work.set_node_status(
        name,
        NodeStatus::Rebooting,
        &format!("reboot requested: health check verdict {cause}"),
    );
    work.metrics.push(MetricEvent::Reboot);
    work.push_intent(
        format!("reboot:{name}:{episode_id}"),
        Effect::Reboot {
            node_name: name.to_owned(),
            container_instance_arn,
            episode_id: episode_id.clone(),
            token: token("grboot", &[&episode_id, name]),
        },
    );
}

/// Gives queued reboots the slots that have freed up, oldest request first.
pub(super) fn fill_reboot_slots(work: &mut Working<'_>) {
    let Some(episode) = work.job.as_ref().and_then(|j| j.episode.clone()) else {
        return;
    };
    for (name, entry) in &episode.nodes {
        if entry.action != Some(NodeAction::Reboot) {
            continue;
        }
        let Some(node) = work.nodes.get(name) else {
            continue;
        };
        let queued = node.reboot_queued_at.is_some()
            && node
                .reboot
                .as_ref()
                .is_none_or(|r| r.episode_id != episode.id);
        if queued {
            let cause = entry
                .initial
                .as_ref()
                .map_or(Verdict::Inconclusive, |v| v.verdict);
            start_reboot(work, name, cause);
        }
    }
}

/// Takes a node out of service: FAILED, drained when the policy requires it, its
/// reboot slot freed, and a notice for the operators.
pub(super) fn quarantine_node(
    work: &mut Working<'_>,
    name: &str,
    reason: &str,
    kind: NotificationKind,
) {
    let Some(node) = work.nodes.get_mut(name) else {
        return;
    };
    if node.node_status == NodeStatus::Failed {
        return;
    }
    node.deadline = None;
    node.health_check = None;
    node.reboot_queued_at = None;
    node.job_id = None;
    let container_instance_arn = node.container_instance_arn.clone();
    work.safety.rebooting.remove(name);
    progress::set_action(
        work,
        name,
        match kind {
            NotificationKind::SafetyStop => NodeAction::Held,
            _ => NodeAction::Quarantine,
        },
    );
    work.set_node_status(name, NodeStatus::Failed, reason);
    work.metrics.push(MetricEvent::Quarantine);
    let drained = work.env.policy.unfixable_action == UnfixableAction::Quarantine;
    if drained {
        work.push_intent(
            format!("drain:{name}"),
            Effect::Drain {
                node_name: name.to_owned(),
                container_instance_arn,
            },
        );
    }
    let what = if drained {
        "quarantined (FAILED and DRAINING)"
    } else {
        "marked FAILED"
    };
    work.notice(kind, format!("Node {name} {what}: {reason}."));
}

pub(super) fn on_instance_changed(work: &mut Working<'_>, change: &InstanceChange) {
    let Some(name) = work.node_by_container_instance(&change.container_instance_arn) else {
        work.note(format!(
            "container instance {} is not a known node",
            change.container_instance_arn
        ));
        return;
    };
    let node = work.nodes.get(&name).expect("node present");
    if node.node_status != NodeStatus::Rebooting {
        work.note(format!(
            "node {name} is {}, not rebooting; change ignored",
            node.node_status
        ));
        return;
    }
    if change.version <= node.instance_event_version {
        work.note(format!(
            "stale event for node {name}: version {} is not above {}",
            change.version, node.instance_event_version
        ));
        return;
    }
    let Some(reboot) = node.reboot.clone() else {
        work.note(format!(
            "node {name} is rebooting without a recorded reboot"
        ));
        return;
    };
    if !change.agent_connected {
        // Only a disconnect after the command went out can be the reboot:
        // a routine reconnect while the command waits in the outbox is not.
        let Some(sent_at) = reboot.sent_at else {
            work.note(format!(
                "node {name}: agent disconnect before the reboot command was sent"
            ));
            return;
        };
        if change.updated_at < sent_at {
            work.note(format!(
                "node {name}: agent disconnect from before the reboot command"
            ));
            return;
        }
        if reboot.disconnected_at.is_some() {
            work.note(format!("node {name}: disconnect already recorded"));
            return;
        }
        let node = work.nodes.get_mut(&name).expect("node present");
        node.instance_event_version = change.version;
        if let Some(run) = node.reboot.as_mut() {
            run.disconnected_at = Some(change.updated_at);
            run.disconnect_version = Some(change.version);
        }
        work.record_event(
            format!("node {name}"),
            NodeStatus::Rebooting.to_string(),
            "agent disconnected after the reboot command",
        );
        return;
    }
    match reboot.disconnect_version {
        Some(disconnect) if change.version > disconnect => {
            work.nodes.get_mut(&name).expect("node present").instance_event_version = change.version;
            node_back(work, &name, "its agent reconnected after disconnecting for the reboot");
        }
        _ => work.note(format!(
            "node {name}: agent connected with no disconnect after the reboot request; a routine reconnect or an effect of our own calls, so it does not count as back"
        )),
    }
}

/// Marks a node back from its reboot and requests the post-reboot check.
pub(super) fn node_back(work: &mut Working<'_>, name: &str, how: &str) {
    let now = work.now;
    let Some(node) = work.nodes.get_mut(name) else {
        return;
    };
    let Some(run) = node.reboot.as_mut() else {
        return;
    };
    run.back_at = Some(now);
    let episode_id = run.episode_id.clone();
    work.safety.rebooting.remove(name);
    work.record_event(
        format!("node {name}"),
        NodeStatus::Rebooting.to_string(),
        &format!("back from reboot: {how}"),
    );
    request_health_check(work, name, &episode_id, CheckPhase::PostReboot);
}
