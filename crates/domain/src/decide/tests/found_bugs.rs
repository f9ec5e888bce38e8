//! Regression tests for defects found by the scenario tests: queued reboot deadlines,
//! hung checks and the breaker, restarts that land after a give-up, and ranks of
//! registered jobs.

use super::*;

#[test]
fn queued_node_waits_reboot_timeout() {
    let policy = Policy {
        max_concurrent_reboots: 1,
        ..Policy::default()
    };
    let mut world = World::with_policy(2, policy);
    world.open_episode();
    // The verdicts arrive 25 and 26 minutes after the failure.
    world.advance(Span::minutes(24));
    world.deliver_verdicts(&[("node-a", 1), ("node-b", 1)]);
    let queued_at = world.now;
    assert_eq!(
        world.node_status("node-b"),
        NodeStatus::Pending,
        "node-b queued"
    );
    let deadline = world.node("node-b").deadline;
    assert!(
        deadline.is_some_and(|d| d >= queued_at + world.policy.reboot_timeout),
        "deadline of the queued node {deadline:?}, queued at {queued_at}"
    );
    world.advance(Span::minutes(5));
    world.tick();
    assert_eq!(
        world.node_status("node-b"),
        NodeStatus::Pending,
        "node-b 5 minutes after it was queued"
    );
}

#[test]
fn hung_checks_count_toward_breaker() {
    // A check image that hangs on every node must open the breaker just as
    // one that exits 3 does, before it reboots the fleet.
    let policy = Policy {
        breaker_failures: 2,
        ..Policy::default()
    };
    let mut world = World::with_policy(2, policy);
    world.open_episode();
    world.advance(world.policy.health_check_timeout);
    world.tick();
    world.run_effects();
    for node in ["node-a", "node-b"] {
        assert_eq!(
            verdict_of(&world, node, CheckPhase::Initial),
            Some(Verdict::Inconclusive),
            "verdict of {node}"
        );
    }
    assert_eq!(
        world.context.safety.failed_checks.len(),
        2,
        "failed checks counted: {:?}",
        world.context.safety
    );
    for node in ["node-a", "node-b"] {
        assert!(world.reboots_claimed(node).is_empty(), "reboot of {node}");
    }
}

#[test]
fn failed_restart_starts_no_rank() {
    let mut world = World::new(2);
    world.recover_to_restart();
    let rank0 = world.claimed_key(&format!("start:{JOB_ID}:1:0"));
    let rank1 = world.claimed_key(&format!("start:{JOB_ID}:1:1"));
    world.answer(
        &rank0,
        EffectResult::Rejected {
            reason: "RESOURCE:GPU".to_owned(),
        },
    );
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
    // The invocation that claimed rank 1 crashed before calling ECS.
    world.claimed.retain(|c| c.key != rank1);
    world.advance(world.policy.effect_lease);
    let decision = world.tick();
    let restarted: Vec<&ClaimedEffect> = decision
        .effects
        .iter()
        .filter(|c| matches!(c.effect, Effect::StartTrainingTask { .. }))
        .collect();
    assert!(
        restarted.is_empty(),
        "a FAILED job claimed StartTask again: {restarted:#?}"
    );
}

#[test]
fn late_start_of_failed_restart_stopped() {
    let mut world = World::new(2);
    world.recover_to_restart();
    let rank0 = world.claimed_key(&format!("start:{JOB_ID}:1:0"));
    let rank1 = world.claimed_key(&format!("start:{JOB_ID}:1:1"));
    world.answer(
        &rank0,
        EffectResult::Rejected {
            reason: "RESOURCE:GPU".to_owned(),
        },
    );
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
    // The StartTask of rank 1 had already gone out and succeeded.
    let late = "f1a2b3c4d5e64f708192a3b4c5d6e7f8";
    world.answer(
        &rank1,
        EffectResult::TaskStarted {
            task_arn: task_arn(late),
        },
    );
    let stopping =
        world.job().outbox.iter().any(
            |i| matches!(&i.effect, Effect::StopTask { task_arn, .. } if short(task_arn) == late),
        );
    let stop_claimed = world
        .claim_log
        .iter()
        .any(|c| matches!(&c.effect, Effect::StopTask { task_arn, .. } if short(task_arn) == late));
    assert!(
        stopping || stop_claimed,
        "rank 1 of the FAILED job keeps running: task {:?}",
        world.context.tasks.iter().find(|t| t.ecs_task_id == late)
    );
}

#[test]
fn registered_job_restarts_same_ranks() {
    for order in [[0, 1], [1, 0]] {
        let mut world = super::restarts::registered_world(order);
        assert_eq!(
            world.job().job_status,
            JobStatus::InProgress,
            "job ({order:?})"
        );
        assert_eq!(
            world.job().assigned_nodes,
            ["node-a", "node-b"],
            "assigned nodes ({order:?})"
        );
        world.recover_to_restart();
        for claimed in &world.claimed {
            let Effect::StartTrainingTask {
                node_name: node,
                rank,
                overrides,
                tags,
                ..
            } = &claimed.effect
            else {
                continue;
            };
            let expected = u32::from(node != "node-a");
            assert_eq!(*rank, expected, "rank started on {node} ({order:?})");
            assert_eq!(
                tags.get("node_index_in_job").map(String::as_str),
                Some(expected.to_string().as_str()),
                "rank tag on {node} ({order:?})"
            );
            assert_eq!(
                overrides,
                &rank_overrides(expected as usize, 2),
                "overrides on {node} ({order:?})"
            );
        }
    }
}
