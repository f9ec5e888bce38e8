//! Nodes through a reboot: when a node counts as back, reboot slots, and
//! what happens to nodes that do not come back healthy.

use crate::observation::CommandStatus;

use super::*;

/// Drives a two-node job to `PENDING_RESTART` with node-a rebooting.
fn rebooting_world() -> World {
    let mut world = World::new(2);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1), ("node-b", 0)]);
    assert_eq!(world.node_status("node-a"), NodeStatus::Rebooting, "node-a");
    world
}

/// Asserts that node-a still waits for its reboot, with no check requested.
fn assert_not_back(world: &World, case: &str) {
    let node = world.node("node-a");
    assert_eq!(
        node.node_status,
        NodeStatus::Rebooting,
        "node-a after {case}"
    );
    assert_eq!(node.health_check, None, "health check after {case}");
    let back = node.reboot.as_ref().and_then(|r| r.back_at);
    assert_eq!(back, None, "back_at after {case}");
    assert!(
        world.context.safety.rebooting.contains_key("node-a"),
        "reboot slot after {case}"
    );
}

fn assert_back(world: &World, case: &str) {
    let node = world.node("node-a");
    assert_eq!(
        node.node_status,
        NodeStatus::PendingHealthcheck,
        "node-a after {case}"
    );
    let phase = node.health_check.as_ref().map(|h| h.phase);
    assert_eq!(phase, Some(CheckPhase::PostReboot), "check after {case}");
    assert!(
        !world.context.safety.rebooting.contains_key("node-a"),
        "reboot slot freed after {case}: {:?}",
        world.context.safety.rebooting
    );
    assert_eq!(
        world.job().job_status,
        JobStatus::PendingRestart,
        "job after {case}"
    );
}

#[test]
fn node_walks_reboot_graph() {
    let mut world = World::new(3);
    let mut seen = vec![world.node_status("node-a")];
    let record = |world: &World, seen: &mut Vec<NodeStatus>| {
        let status = world.node_status("node-a");
        if seen.last() != Some(&status) {
            seen.push(status);
        }
    };

    world.exit_rank(0, 1);
    world.run_effects();
    world.confirm_sibling_stops();
    record(&world, &mut seen);
    world.deliver_verdicts(&[("node-a", 1)]);
    record(&world, &mut seen);
    world.deliver_verdicts(&[("node-b", 1), ("node-c", 0)]);
    record(&world, &mut seen);
    world.reboot_and_return("node-a");
    record(&world, &mut seen);
    world.finish_check("node-a", 0);
    world.run_effects();
    record(&world, &mut seen);
    assert_eq!(
        world.job().job_status,
        JobStatus::PendingRestart,
        "job while node-b reboots"
    );

    world.reboot_and_return("node-b");
    world.finish_check("node-b", 0);
    world.run_effects();
    record(&world, &mut seen);
    assert_eq!(
        seen,
        [
            NodeStatus::InProgress,
            NodeStatus::PendingHealthcheck,
            NodeStatus::Pending,
            NodeStatus::Rebooting,
            NodeStatus::PendingHealthcheck,
            NodeStatus::Pending,
            NodeStatus::InProgress,
        ],
        "statuses of node-a"
    );
    assert_eq!(world.job().job_status, JobStatus::Restarting, "job");
    for node in ["node-a", "node-b", "node-c"] {
        assert_eq!(world.node_status(node), NodeStatus::InProgress, "{node}");
    }
}

#[test]
fn available_node_gets_health_check() {
    let mut world = World::new(2);
    world.context.nodes[1].node_status = NodeStatus::Available;
    world.exit_rank(0, 1);
    assert_eq!(
        world.node_status("node-b"),
        NodeStatus::PendingHealthcheck,
        "node-b"
    );
}

#[test]
fn reconnect_and_disconnect_bring_node_back() {
    let mut world = rebooting_world();
    world.advance(Span::minutes(1));
    world.agent_event("node-a", false);
    assert_not_back(&world, "the disconnect");
    world.advance(Span::minutes(4));
    world.agent_event("node-a", true);
    assert_back(&world, "the reconnect");
}

#[test]
fn reconnect_without_disconnect_not_back() {
    let mut world = rebooting_world();
    world.advance(Span::minutes(1));
    let decision = world.agent_event("node-a", true);
    assert!(
        decision.writes.is_empty(),
        "a routine reconnect wrote {:?}",
        decision.writes
    );
    assert_not_back(&world, "a reconnect with no disconnect");
}

#[test]
fn disconnect_before_request_not_back() {
    let mut world = rebooting_world();
    let requested = world
        .node("node-a")
        .reboot
        .as_ref()
        .expect("reboot run")
        .requested_at;
    let mut early = world.instance_change("node-a", false);
    early.updated_at = requested - Span::seconds(30);
    world.observe(&Observation::InstanceChanged(early));
    world.advance(Span::minutes(3));
    world.agent_event("node-a", true);
    assert_not_back(&world, "a disconnect from before the request");
}

#[test]
fn stale_reconnect_not_back() {
    let mut world = rebooting_world();
    world.advance(Span::minutes(1));
    world.agent_event("node-a", false);
    let disconnect = world.instance_version("node-a");
    for version in [disconnect, disconnect - 1] {
        world.advance(Span::minutes(1));
        let mut change = world.instance_change("node-a", true);
        change.version = version;
        let decision = world.observe(&Observation::InstanceChanged(change));
        assert!(
            decision.writes.is_empty(),
            "reconnect at version {version} wrote {:?}",
            decision.writes
        );
        assert_not_back(&world, &format!("a reconnect at version {version}"));
    }
}

#[test]
fn reordered_reconnect_not_back() {
    let mut world = rebooting_world();
    world.advance(Span::minutes(1));
    let disconnect = world.instance_change("node-a", false);
    world.advance(Span::minutes(3));
    let reconnect = world.instance_change("node-a", true);
    world.observe(&Observation::InstanceChanged(reconnect.clone()));
    assert_not_back(&world, "the reconnect delivered first");
    world.observe(&Observation::InstanceChanged(disconnect));
    assert_not_back(&world, "the disconnect delivered second");
    // The watchdog later finds the agent connected at a newer version.
    world.advance(Span::minutes(5));
    world.tick_with_probe(
        "node-a",
        probe(
            Some(true),
            Some(reconnect.version),
            Some(CommandStatus::Success),
        ),
    );
    assert_back(&world, "the watchdog probe");
}

#[test]
fn watchdog_accepts_missed_disconnect() {
    let mut world = rebooting_world();
    world.advance(Span::minutes(6));
    let version = world.instance_version("node-a") + 2;
    world.tick_with_probe(
        "node-a",
        probe(Some(true), Some(version), Some(CommandStatus::Success)),
    );
    assert_back(&world, "a probe with the command done");
    // Being back is not enough: the post-reboot check has to pass.
    world.run_effects();
    world.advance(Span::minutes(2));
    world.finish_check("node-a", 1);
    world.run_effects();
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
    assert!(
        world.outbox_of(EffectKind::StartTask).is_empty(),
        "no restart queued: {:?}",
        world.job().outbox
    );
}

#[test]
fn watchdog_needs_success_and_agent() {
    let cases = [
        (Some(true), Some(CommandStatus::Pending)),
        (Some(true), Some(CommandStatus::InProgress)),
        (Some(true), Some(CommandStatus::Failed)),
        (Some(true), None),
        (Some(false), Some(CommandStatus::Success)),
        (None, Some(CommandStatus::Success)),
    ];
    for (agent, command) in cases {
        let mut world = rebooting_world();
        world.advance(Span::minutes(6));
        let version = world.instance_version("node-a") + 2;
        world.tick_with_probe("node-a", probe(agent, Some(version), command));
        assert_not_back(
            &world,
            &format!("a probe of agent {agent:?}, command {command:?}"),
        );
    }
}

#[test]
fn node_never_back_fails_job() {
    let mut world = rebooting_world();
    world.advance(Span::minutes(19));
    world.tick();
    assert_not_back(&world, "19 minutes");
    world.advance(Span::minutes(1));
    world.tick();
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
    assert_eq!(
        world.node_status("node-b"),
        NodeStatus::Available,
        "node-b released"
    );
    assert!(
        !world.context.safety.rebooting.contains_key("node-a"),
        "reboot slot freed"
    );
}

#[test]
fn post_reboot_fault_quarantines_node() {
    let mut world = rebooting_world();
    world.reboot_and_return("node-a");
    world.finish_check("node-a", 1);
    world.run_effects();
    assert_eq!(
        verdict_of(&world, "node-a", CheckPhase::PostReboot),
        Some(Verdict::Reboot),
        "post-reboot verdict"
    );
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
    assert_eq!(world.node_status("node-b"), NodeStatus::Available, "node-b");
    assert_eq!(
        world.reboots_claimed("node-a").len(),
        1,
        "reboots of node-a"
    );
}

#[test]
fn post_reboot_timeout_quarantines_node() {
    let mut world = rebooting_world();
    world.reboot_and_return("node-a");
    world.advance(Span::minutes(30));
    world.tick();
    assert_eq!(
        verdict_of(&world, "node-a", CheckPhase::PostReboot),
        Some(Verdict::Inconclusive),
        "post-reboot verdict"
    );
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
}

#[test]
fn reboot_slots_queue_extra_nodes() {
    let policy = Policy {
        max_concurrent_reboots: 1,
        ..Policy::default()
    };
    let mut world = World::with_policy(3, policy);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1), ("node-b", 1), ("node-c", 1)]);
    assert_eq!(world.job().job_status, JobStatus::PendingRestart, "job");
    let rebooting: Vec<&str> = ["node-a", "node-b", "node-c"]
        .into_iter()
        .filter(|n| world.node_status(n) == NodeStatus::Rebooting)
        .collect();
    assert_eq!(rebooting.len(), 1, "rebooting nodes {rebooting:?}");
    let first = rebooting[0];
    let queued: Vec<&str> = ["node-a", "node-b", "node-c"]
        .into_iter()
        .filter(|n| *n != first)
        .collect();
    for node in &queued {
        assert_eq!(
            world.node_status(node),
            NodeStatus::Pending,
            "{node} queued"
        );
        assert!(world.reboots_claimed(node).is_empty(), "reboot of {node}");
    }
    assert_eq!(world.context.safety.rebooting.len(), 1, "slots in use");

    // The decision that frees the slot starts the next reboot.
    world.reboot_and_return(first);
    let second: Vec<&str> = queued
        .iter()
        .copied()
        .filter(|n| world.node_status(n) == NodeStatus::Rebooting)
        .collect();
    assert_eq!(
        second.len(),
        1,
        "rebooting after {first} came back: {second:?}"
    );
    assert_eq!(world.context.safety.rebooting.len(), 1, "slots in use");
    assert_eq!(
        world.reboots_claimed(second[0]).len(),
        1,
        "reboot of {}",
        second[0]
    );
    let third = queued
        .iter()
        .copied()
        .find(|n| *n != second[0])
        .expect("third node");
    assert_eq!(
        world.node_status(third),
        NodeStatus::Pending,
        "{third} still queued"
    );

    world.finish_check(first, 0);
    world.run_effects();
    world.reboot_and_return(second[0]);
    assert_eq!(world.node_status(third), NodeStatus::Rebooting, "{third}");
    world.finish_check(second[0], 0);
    world.run_effects();
    world.reboot_and_return(third);
    world.finish_check(third, 0);
    world.run_effects();
    assert_eq!(world.job().job_status, JobStatus::Restarting, "job");
    for node in ["node-a", "node-b", "node-c"] {
        assert_eq!(world.reboots_claimed(node).len(), 1, "reboots of {node}");
    }
}

#[test]
fn slot_freed_elsewhere_starts_reboot() {
    let policy = Policy {
        max_concurrent_reboots: 1,
        ..Policy::default()
    };
    let mut world = World::with_policy(2, policy);
    let other_job_node = "gpu-node-17";
    world
        .context
        .safety
        .rebooting
        .insert(other_job_node.to_owned(), world.now);
    world.context.safety_exists = true;
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1), ("node-b", 0)]);
    assert_eq!(
        world.node_status("node-a"),
        NodeStatus::Pending,
        "node-a queued"
    );
    assert_eq!(world.job().job_status, JobStatus::PendingRestart, "job");

    // The other job's node came back and freed its slot.
    world.context.safety.rebooting.remove(other_job_node);
    world.context.safety.version += 1;
    world.advance(Span::minutes(5));
    world.tick();
    assert_eq!(world.node_status("node-a"), NodeStatus::Rebooting, "node-a");
    assert_eq!(
        world.reboots_claimed("node-a").len(),
        1,
        "reboots of node-a"
    );
}

#[test]
fn queued_node_never_freed_quarantines() {
    let policy = Policy {
        max_concurrent_reboots: 1,
        ..Policy::default()
    };
    let mut world = World::with_policy(2, policy);
    world
        .context
        .safety
        .rebooting
        .insert("gpu-node-17".to_owned(), world.now);
    world.context.safety_exists = true;
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1), ("node-b", 0)]);
    assert_eq!(
        world.node_status("node-a"),
        NodeStatus::Pending,
        "node-a queued"
    );
    world.advance(Span::minutes(60));
    world.tick();
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
    assert!(
        world.reboots_claimed("node-a").is_empty(),
        "reboot of node-a"
    );
}

#[test]
fn second_reboot_continues_after_give_up() {
    let mut world = World::new(2);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1), ("node-b", 1)]);
    world.reboot_and_return("node-a");
    world.finish_check("node-a", 2);
    world.run_effects();
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
    assert_eq!(
        world.node_status("node-b"),
        NodeStatus::Rebooting,
        "node-b still rebooting"
    );
    assert!(
        world.job().deadline.is_some(),
        "job deadline while node-b recovers"
    );
    world.reboot_and_return("node-b");
    world.finish_check("node-b", 0);
    world.run_effects();
    assert_eq!(world.node_status("node-b"), NodeStatus::Available, "node-b");
    assert_eq!(world.node("node-b").job_id, None, "node-b job");
    world.advance(Span::minutes(60));
    world.tick();
    assert_eq!(
        world.job().deadline,
        None,
        "job deadline once every node is done"
    );
}
