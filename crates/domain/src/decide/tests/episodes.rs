//! Open episodes: one per failure, and what the verdicts decide.

use crate::effect::NotificationKind;
use crate::policy::{InconclusiveAction, UnfixableAction};
use crate::records::NodeAction;

use super::*;

fn action_of(world: &World, node: &str) -> Option<NodeAction> {
    world.episode().nodes.get(node).and_then(|n| n.action)
}

#[test]
fn duplicate_failure_opens_one_episode() {
    let mut world = World::new(2);
    let stop = world.task_stop(
        FIRST_TASKS[0],
        Some("EssentialContainerExited"),
        &[1],
        Some("Essential container in task exited"),
    );
    world.observe(&Observation::TaskStopped(stop.clone()));
    let opened = world.episode().id.clone();
    let again = world.observe(&Observation::TaskStopped(stop));
    assert!(
        again.writes.is_empty(),
        "duplicate event wrote {:?}",
        again.writes
    );
    assert_eq!(world.job().episodes_opened, 1, "episodes opened");
    assert_eq!(world.episode().id, opened, "open episode");
}

#[test]
fn concurrent_failures_open_one_episode() {
    for first in [0, 1] {
        let second = 1 - first;
        let mut world = World::new(2);
        let stop_first = world.task_stop(
            FIRST_TASKS[first],
            Some("EssentialContainerExited"),
            &[1],
            None,
        );
        let stop_second = world.task_stop(
            FIRST_TASKS[second],
            Some("EssentialContainerExited"),
            &[1],
            None,
        );
        // Both invocations read the same records before either writes.
        let decision_first = world.decide(&Observation::TaskStopped(stop_first));
        let decision_second = world.decide(&Observation::TaskStopped(stop_second.clone()));
        world.apply(&decision_first).expect("first write");
        let conflict = world.apply(&decision_second);
        assert!(
            conflict.is_err(),
            "second concurrent write accepted (first rank {first})"
        );
        // The loser re-reads and decides again.
        world.observe(&Observation::TaskStopped(stop_second));
        assert_eq!(
            world.job().episodes_opened,
            1,
            "episodes opened (first rank {first})"
        );
        assert_eq!(
            world.episode().trigger_task,
            FIRST_TASKS[first],
            "trigger task (first rank {first})"
        );
        let checks = world.outbox_of(EffectKind::StartTask).len();
        assert_eq!(checks, 2, "health checks queued (first rank {first})");
        for (rank, id) in FIRST_TASKS.iter().take(2).enumerate() {
            assert_eq!(
                world.task(id).task_status,
                TaskStatus::Terminated,
                "rank {rank} (first rank {first})"
            );
        }
    }
}

#[test]
fn second_failure_during_episode_ignored() {
    // Rank 1 fails on its own before the engine's StopTask reaches it.
    let mut world = World::new(3);
    world.open_episode();
    let episode = world.episode().id.clone();
    let stop = world.task_stop(FIRST_TASKS[1], Some("EssentialContainerExited"), &[1], None);
    world.observe(&Observation::TaskStopped(stop));
    assert_eq!(world.job().episodes_opened, 1, "episodes opened");
    assert_eq!(world.episode().id, episode, "open episode");
    assert_eq!(
        world.job().job_status,
        JobStatus::PendingHealthcheck,
        "job status"
    );
}

#[test]
fn reboot_verdict_pends_restart() {
    let mut world = World::new(2);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1)]);
    assert_eq!(
        world.job().job_status,
        JobStatus::PendingHealthcheck,
        "job with one verdict missing"
    );
    assert_eq!(
        world.node_status("node-a"),
        NodeStatus::Pending,
        "node-a with its verdict"
    );
    assert!(
        world.reboots_claimed("node-a").is_empty(),
        "reboot before every verdict"
    );

    world.deliver_verdicts(&[("node-b", 0)]);
    assert_eq!(
        world.job().job_status,
        JobStatus::PendingRestart,
        "job status"
    );
    assert_eq!(world.node_status("node-a"), NodeStatus::Rebooting, "node-a");
    assert_eq!(
        world.node_status("node-b"),
        NodeStatus::Pending,
        "node-b held"
    );
    assert_eq!(
        action_of(&world, "node-a"),
        Some(NodeAction::Reboot),
        "node-a action"
    );
    assert_eq!(
        action_of(&world, "node-b"),
        Some(NodeAction::Keep),
        "node-b action"
    );
    assert_eq!(
        world.reboots_claimed("node-a").len(),
        1,
        "reboots of node-a"
    );
    assert!(
        world.reboots_claimed("node-b").is_empty(),
        "reboots of node-b"
    );
    assert!(
        world.context.safety.rebooting.contains_key("node-a"),
        "reboot slot of node-a: {:?}",
        world.context.safety.rebooting
    );
    let reboot = world.node("node-a").reboot.clone().expect("reboot run");
    assert!(
        reboot.command_id.is_some(),
        "command id recorded: {reboot:?}"
    );
}

#[test]
fn all_healthy_fails_job() {
    let mut world = World::new(2);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 0), ("node-b", 0)]);
    assert_eq!(world.job().job_status, JobStatus::Failed, "job status");
    let reason = world.job().status_reason.clone().unwrap_or_default();
    assert!(reason.contains("application"), "reason {reason:?}");
    for node in ["node-a", "node-b"] {
        assert_eq!(world.node_status(node), NodeStatus::Available, "{node}");
        assert!(world.reboots_claimed(node).is_empty(), "reboot of {node}");
    }
}

#[test]
fn replace_verdict_fails_and_quarantines() {
    let mut world = World::new(2);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 2), ("node-b", 0)]);
    assert_eq!(world.job().job_status, JobStatus::Failed, "job status");
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    assert_eq!(world.node_status("node-b"), NodeStatus::Available, "node-b");
    assert_eq!(
        action_of(&world, "node-a"),
        Some(NodeAction::Quarantine),
        "action"
    );
    let drains: Vec<&ClaimedEffect> = world
        .claim_log
        .iter()
        .filter(|c| matches!(c.effect, Effect::Drain { .. }))
        .collect();
    assert_eq!(drains.len(), 1, "drains {drains:?}");
    assert!(
        matches!(&drains[0].effect, Effect::Drain { node_name, .. } if node_name == "node-a"),
        "drained {:?}",
        drains[0]
    );
    assert!(
        world.reboots_claimed("node-a").is_empty(),
        "reboot of node-a"
    );
}

#[test]
fn mark_failed_policy_skips_drain() {
    let policy = Policy {
        unfixable_action: UnfixableAction::MarkFailed,
        ..Policy::default()
    };
    let mut world = World::with_policy(2, policy);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 2), ("node-b", 0)]);
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    let drains = world
        .claim_log
        .iter()
        .filter(|c| matches!(c.effect, Effect::Drain { .. }))
        .count();
    assert_eq!(drains, 0, "drains under mark_failed");
    assert!(
        world.outbox_of(EffectKind::Drain).is_empty(),
        "drain intents"
    );
}

#[test]
fn spent_budget_fails_but_reboots() {
    let mut world = World::new(2);
    world.context.job.as_mut().expect("job").retry = 1;
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1), ("node-b", 0)]);
    assert_eq!(world.job().job_status, JobStatus::Failed, "job status");
    assert_eq!(world.job().retry, 1, "retry");
    let reason = world.job().status_reason.clone().unwrap_or_default();
    assert!(reason.contains("retry budget"), "reason {reason:?}");
    assert_eq!(world.node_status("node-a"), NodeStatus::Rebooting, "node-a");
    assert_eq!(world.node_status("node-b"), NodeStatus::Available, "node-b");
    assert!(
        world.job().deadline.is_some(),
        "deadline while node-a recovers"
    );

    world.reboot_and_return("node-a");
    world.finish_check("node-a", 0);
    world.run_effects();
    assert_eq!(
        world.node_status("node-a"),
        NodeStatus::Available,
        "node-a after its reboot"
    );
    assert_eq!(
        world.job().job_status,
        JobStatus::Failed,
        "job stays failed"
    );
    assert_eq!(world.job().retry, 1, "retry after the reboot");
    assert!(
        world.outbox_of(EffectKind::StartTask).is_empty(),
        "no restart queued"
    );
}

#[test]
fn open_breaker_holds_reboots() {
    let policy = Policy {
        breaker_failures: 2,
        ..Policy::default()
    };
    let mut world = World::with_policy(2, policy);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1)]);
    let before = world.claim_log.len();
    world.deliver_verdicts(&[("node-b", 1)]);

    assert!(
        world.context.safety.breaker_open_since.is_some(),
        "breaker {:?}",
        world.context.safety
    );
    assert_eq!(world.job().job_status, JobStatus::Failed, "job status");
    for node in ["node-a", "node-b"] {
        assert_eq!(world.node_status(node), NodeStatus::Failed, "{node}");
        assert_eq!(
            action_of(&world, node),
            Some(NodeAction::Held),
            "{node} action"
        );
        assert!(world.reboots_claimed(node).is_empty(), "reboot of {node}");
    }
    let notices: Vec<&crate::effect::Notification> = world.claim_log[before..]
        .iter()
        .filter_map(|c| match &c.effect {
            Effect::Notify(n) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "notifications {notices:#?}");
    assert_eq!(notices[0].kind, NotificationKind::SafetyStop, "kind");
}

#[test]
fn breaker_opened_earlier_holds_reboot() {
    let mut world = World::new(2);
    let recent = world.now - Span::minutes(10);
    world.context.safety.failed_checks = vec![recent; 5];
    world.context.safety.breaker_open_since = Some(recent);
    world.context.safety.version = 7;
    world.context.safety_exists = true;
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1), ("node-b", 0)]);
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    assert_eq!(
        action_of(&world, "node-a"),
        Some(NodeAction::Held),
        "action"
    );
    assert!(
        world.reboots_claimed("node-a").is_empty(),
        "reboot of node-a"
    );
    assert_eq!(world.job().job_status, JobStatus::Failed, "job status");
}

#[test]
fn old_failures_leave_breaker_closed() {
    let mut world = World::new(2);
    let old = world.now - Span::minutes(61);
    world.context.safety.failed_checks = vec![old; 5];
    world.context.safety.breaker_open_since = Some(old);
    world.context.safety_exists = true;
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1), ("node-b", 0)]);
    assert_eq!(world.node_status("node-a"), NodeStatus::Rebooting, "node-a");
    assert_eq!(
        world.job().job_status,
        JobStatus::PendingRestart,
        "job status"
    );
    assert_eq!(
        world.context.safety.failed_checks.len(),
        1,
        "failed checks in the window: {:?}",
        world.context.safety.failed_checks
    );
}

#[test]
fn inconclusive_reboots_once_then_quarantines() {
    let mut world = World::new(2);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 3), ("node-b", 0)]);
    assert_eq!(
        world.job().job_status,
        JobStatus::PendingRestart,
        "job status"
    );
    assert_eq!(world.node_status("node-a"), NodeStatus::Rebooting, "node-a");
    assert_eq!(
        action_of(&world, "node-a"),
        Some(NodeAction::Reboot),
        "action"
    );
    world.reboot_and_return("node-a");
    world.finish_check("node-a", 3);
    world.run_effects();
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    assert_eq!(world.job().job_status, JobStatus::Failed, "job status");
    assert_eq!(
        world.reboots_claimed("node-a").len(),
        1,
        "reboots of node-a"
    );
    let drained = world
        .claim_log
        .iter()
        .any(|c| matches!(&c.effect, Effect::Drain { node_name, .. } if node_name == "node-a"));
    assert!(drained, "node-a drained");
}

#[test]
fn inconclusive_quarantine_policy_acts_at_once() {
    let policy = Policy {
        inconclusive_action: InconclusiveAction::Quarantine,
        ..Policy::default()
    };
    let mut world = World::with_policy(2, policy);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 3), ("node-b", 0)]);
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    assert_eq!(
        action_of(&world, "node-a"),
        Some(NodeAction::Quarantine),
        "action"
    );
    assert!(
        world.reboots_claimed("node-a").is_empty(),
        "reboot of node-a"
    );
    assert_eq!(world.job().job_status, JobStatus::Failed, "job status");
}

#[test]
fn unknown_check_exit_is_inconclusive() {
    for code in [4, 137, 226, -1] {
        let mut world = World::new(1);
        world.open_episode();
        world.deliver_verdicts(&[("node-a", code)]);
        assert_eq!(
            verdict_of(&world, "node-a", CheckPhase::Initial),
            Some(Verdict::Inconclusive),
            "verdict of exit {code}"
        );
    }
}

#[test]
fn check_without_exit_is_inconclusive() {
    let mut world = World::new(1);
    world.open_episode();
    let mut result = world.check_result("node-a", 0);
    result.exit_code = None;
    result.stop_code = Some("TaskFailedToStart".to_owned());
    result.stopped_reason = Some("CannotStartContainerError: nvml error".to_owned());
    world.observe(&Observation::HealthCheckFinished(result));
    assert_eq!(
        verdict_of(&world, "node-a", CheckPhase::Initial),
        Some(Verdict::Inconclusive),
        "verdict of a check that never ran"
    );
}

#[test]
fn report_line_never_overrides_exit() {
    let mut world = World::new(1);
    world.open_episode();
    let mut result = world.check_result("node-a", 1);
    result.report = Some(crate::observation::ReportSummary {
        verdict: Verdict::Healthy,
        summary: "all tests passed".to_owned(),
    });
    world.observe(&Observation::HealthCheckFinished(result));
    assert_eq!(
        verdict_of(&world, "node-a", CheckPhase::Initial),
        Some(Verdict::Reboot),
        "verdict decided by exit 1"
    );
}

#[test]
fn check_deadline_gives_inconclusive() {
    let mut world = World::new(2);
    world.open_episode();
    world.deliver_verdicts(&[("node-b", 0)]);
    let check = world.check_task("node-a");
    world.advance(Span::minutes(28));
    world.tick();
    assert_eq!(
        world.job().job_status,
        JobStatus::PendingHealthcheck,
        "job before the deadline"
    );

    world.advance(Span::minutes(1));
    let decision = world.tick();
    assert_eq!(
        verdict_of(&world, "node-a", CheckPhase::Initial),
        Some(Verdict::Inconclusive),
        "verdict of the overdue check"
    );
    let stopped = decision.effects.iter().any(
        |c| matches!(&c.effect, Effect::StopTask { task_arn, .. } if short(task_arn) == check),
    );
    assert!(
        stopped,
        "overdue check task stopped: {:?}",
        decision.effects
    );
    // Inconclusive reboots once under the default policy.
    assert_eq!(
        world.job().job_status,
        JobStatus::PendingRestart,
        "job status"
    );
    assert_eq!(world.node_status("node-a"), NodeStatus::Rebooting, "node-a");
}

/// Formats the records after every verdict is in, leaving out what depends
/// on the order of the steps (versions, update times, history).
fn outcome(world: &World) -> String {
    let mut job = world.job().clone();
    job.version = 0;
    job.updated_at = None;
    job.history.clear();
    for intent in &mut job.outbox {
        intent.claimed_at = None;
        intent.attempts = 0;
    }
    job.outbox.sort_by(|a, b| a.key.cmp(&b.key));
    let mut nodes = world.context.nodes.clone();
    for node in &mut nodes {
        node.version = 0;
        node.updated_at = None;
    }
    nodes.sort_by(|a, b| a.node_name.cmp(&b.node_name));
    let mut safety = world.context.safety.clone();
    safety.version = 0;
    format!("{job:#?}\n{nodes:#?}\n{safety:#?}")
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, *first);
            all.push(tail);
        }
    }
    all
}

/// Delivers the initial health-check exit codes in every order and returns
/// the outcome of each. Every result arrives at the same instant, so that
/// only the order differs between the runs.
fn outcomes_by_order(policy: &Policy, codes: &[i32]) -> Vec<(Vec<usize>, String)> {
    let ranks = codes.len();
    let mut outcomes = Vec::new();
    let order: Vec<usize> = (0..ranks).collect();
    for order in permutations(&order) {
        let mut world = World::with_policy(ranks, policy.clone());
        world.open_episode();
        world.advance(Span::minutes(5));
        for rank in &order {
            world.finish_check(node_name(*rank), codes[*rank]);
        }
        world.run_effects();
        outcomes.push((order, outcome(&world)));
    }
    outcomes
}

#[test]
fn breaker_outcome_ignores_verdict_order() {
    let policy = Policy {
        breaker_failures: 2,
        ..Policy::default()
    };
    for codes in [&[1, 1, 0][..], &[1, 3, 2]] {
        let outcomes = outcomes_by_order(&policy, codes);
        let (first_order, first) = &outcomes[0];
        for (order, other) in &outcomes[1..] {
            assert_eq!(
                other, first,
                "exit codes {codes:?}: order {order:?} differs from order {first_order:?}"
            );
        }
    }
}

#[test]
fn verdict_order_never_changes_outcome() {
    let cases: [&[i32]; 8] = [
        &[1, 0],
        &[2, 1],
        &[3, 0],
        &[0, 0],
        &[1, 0, 0],
        &[1, 2, 0],
        &[1, 1, 3],
        &[0, 2, 3],
    ];
    for codes in cases {
        let outcomes = outcomes_by_order(&Policy::default(), codes);
        let (first_order, first) = &outcomes[0];
        for (order, other) in &outcomes[1..] {
            assert_eq!(
                other, first,
                "exit codes {codes:?}: order {order:?} differs from order {first_order:?}"
            );
        }
    }
}
