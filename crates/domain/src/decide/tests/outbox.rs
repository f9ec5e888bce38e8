//! The outbox: claims, scopes, leases and what each effect result does.

use super::*;

fn intent<'a>(world: &'a World, key: &str) -> &'a crate::effect::Intent {
    world
        .job()
        .outbox
        .iter()
        .find(|i| i.key == key)
        .unwrap_or_else(|| panic!("no intent {key} in {:?}", world.job().outbox))
}

/// Drives a two-node job until its verdicts are in (node-a reboot, node-b
/// healthy) and its Reboot effect is claimed with no result reported.
fn reboot_claimed() -> (World, String) {
    let mut world = World::new(2);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1)]);
    world.advance(Span::minutes(1));
    world.finish_check("node-b", 0);
    let key = world.claimed_key("reboot:node-a:");
    (world, key)
}

fn reboot_token(effect: &Effect) -> String {
    match effect {
        Effect::Reboot { token, .. } => token.clone(),
        other => panic!("not a reboot: {other:?}"),
    }
}

#[test]
fn narrow_scope_leaves_other_intents() {
    let mut world = World::new(2);
    world.scope = BTreeSet::from([EffectKind::StopTask]);
    let decision = world.exit_rank(0, 1);
    assert_eq!(decision.effects.len(), 1, "claimed {:?}", decision.effects);
    assert_eq!(
        decision.effects[0].effect.kind(),
        EffectKind::StopTask,
        "claimed {:?}",
        decision.effects[0]
    );
    let unclaimed: Vec<crate::effect::Intent> = world
        .job()
        .outbox
        .iter()
        .filter(|i| i.effect.kind() != EffectKind::StopTask)
        .cloned()
        .collect();
    assert!(
        unclaimed
            .iter()
            .any(|i| i.effect.kind() == EffectKind::StartTask),
        "health checks wait in the outbox: {unclaimed:?}"
    );
    for waiting in &unclaimed {
        assert_eq!(waiting.claimed_at, None, "claim of {}", waiting.key);
    }

    // A wider scope claims them on its next decision.
    world.scope = EffectKind::ALL.into_iter().collect();
    world.advance(Span::seconds(5));
    let decision = world.tick();
    let claimed: BTreeSet<&str> = decision.effects.iter().map(|c| c.key.as_str()).collect();
    for waiting in &unclaimed {
        assert!(
            claimed.contains(waiting.key.as_str()),
            "{} claimed by the wider scope: {claimed:?}",
            waiting.key
        );
    }
    assert!(
        !claimed.iter().any(|k| k.starts_with("stop:")),
        "the StopTask claimed again within its lease: {claimed:?}"
    );
}

#[test]
fn claim_not_retaken_within_lease() {
    let mut world = World::new(2);
    let first = world.exit_rank(0, 1);
    assert!(!first.effects.is_empty(), "effects of the failure");
    let lease = world.policy.effect_lease;
    world.advance(Span(lease.0 - 1));
    let early = world.tick();
    assert!(
        early.effects.is_empty(),
        "claimed again within the lease: {:?}",
        early.effects
    );
    world.advance(Span(1));
    let late = world.tick();
    let first_keys: BTreeSet<&str> = first.effects.iter().map(|c| c.key.as_str()).collect();
    let late_keys: BTreeSet<&str> = late.effects.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(late_keys, first_keys, "claimed after the lease");
    for key in &first_keys {
        assert_eq!(intent(&world, key).attempts, 2, "attempts of {key}");
    }
}

#[test]
fn failed_result_releases_claim() {
    let mut world = World::new(2);
    world.exit_rank(0, 1);
    let key = world.claimed_key("health_check:node-a:");
    let decision = world.answer(
        &key,
        EffectResult::Failed {
            error: "ThrottlingException: Rate exceeded".to_owned(),
        },
    );
    let waiting = intent(&world, &key);
    assert_eq!(
        waiting.last_error.as_deref(),
        Some("ThrottlingException: Rate exceeded"),
        "last error"
    );
    // Not retried in the decision that saw it fail, so the runner cannot
    // loop on a failing call, but released well before the lease ends.
    assert!(
        !decision.effects.iter().any(|c| c.key == key),
        "{key} claimed again in the same decision"
    );
    world.advance(crate::effect::RETRY_BACKOFF_BASE);
    let claimed_again = world.tick().effects.iter().any(|c| c.key == key);
    assert!(claimed_again, "{key} claimed again after the backoff");
    assert_eq!(
        world.node_status("node-a"),
        NodeStatus::PendingHealthcheck,
        "node-a"
    );
}

#[test]
fn lost_reboot_result_keeps_token() {
    let (mut world, key) = reboot_claimed();
    let token = reboot_token(&intent(&world, &key).effect.clone());
    // The invocation crashed after the claim: its result never comes.
    world.claimed.clear();
    world.advance(Span(world.policy.effect_lease.0 - 1));
    let early = world.tick();
    assert!(
        !early.effects.iter().any(|c| c.key == key),
        "reboot claimed again within the lease"
    );
    world.advance(Span(1));
    let late = world.tick();
    let again: Vec<&ClaimedEffect> = late.effects.iter().filter(|c| c.key == key).collect();
    assert_eq!(
        again.len(),
        1,
        "reboot claimed after the lease: {:?}",
        late.effects
    );
    assert_eq!(reboot_token(&again[0].effect), token, "token of the retry");
    let reboots = world.outbox_of(EffectKind::Reboot);
    assert_eq!(reboots.len(), 1, "reboot intents {reboots:?}");
    let tokens: BTreeSet<String> = world
        .reboots_claimed("node-a")
        .iter()
        .map(|c| reboot_token(&c.effect))
        .collect();
    assert_eq!(tokens.len(), 1, "tokens of every claim {tokens:?}");
}

#[test]
fn duplicate_verdict_sends_one_reboot() {
    let mut world = World::new(2);
    world.open_episode();
    let fault = world.check_result("node-a", 1);
    world.observe(&Observation::HealthCheckFinished(fault.clone()));
    world.run_effects();
    world.advance(Span::minutes(1));
    let healthy = world.check_result("node-b", 0);
    world.observe(&Observation::HealthCheckFinished(healthy.clone()));
    assert_eq!(
        world.reboots_claimed("node-a").len(),
        1,
        "reboots after the verdicts"
    );

    // Both verdicts delivered again while the reboot is claimed.
    for verdict in [&fault, &healthy] {
        let again = world.observe(&Observation::HealthCheckFinished(verdict.clone()));
        assert!(
            again.writes.is_empty(),
            "duplicate verdict wrote {:?}",
            again.writes
        );
    }

    // And again, with newer versions, after the reboot command was sent.
    world.run_effects();
    for verdict in [fault, healthy] {
        let newer = HealthCheckResult {
            version: verdict.version + 1,
            ..verdict
        };
        let decision = world.observe(&Observation::HealthCheckFinished(newer));
        assert!(
            decision.effects.is_empty(),
            "a newer copy of a verdict claimed {:?}",
            decision.effects
        );
    }
    assert_eq!(
        world.reboots_claimed("node-a").len(),
        1,
        "reboots of node-a"
    );
    assert!(
        world.outbox_of(EffectKind::Reboot).is_empty(),
        "reboot intents left"
    );
    assert_eq!(world.node_status("node-a"), NodeStatus::Rebooting, "node-a");
}

#[test]
fn rejected_check_start_is_inconclusive() {
    let mut world = World::new(2);
    world.exit_rank(0, 1);
    let key = world.claimed_key("health_check:node-a:");
    world.answer(
        &key,
        EffectResult::Rejected {
            reason: "RESOURCE:GPU".to_owned(),
        },
    );
    assert_eq!(
        verdict_of(&world, "node-a", CheckPhase::Initial),
        Some(Verdict::Inconclusive),
        "verdict of a check that could not start"
    );
    assert_eq!(world.node_status("node-a"), NodeStatus::Pending, "node-a");
    assert_eq!(
        world.context.safety.failed_checks.len(),
        1,
        "failed checks {:?}",
        world.context.safety.failed_checks
    );
}

#[test]
fn rejected_reboot_quarantines_node() {
    let (mut world, key) = reboot_claimed();
    world.answer(
        &key,
        EffectResult::Rejected {
            reason: "InvalidInstanceId: instance is not in a valid state".to_owned(),
        },
    );
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
    assert!(
        !world.context.safety.rebooting.contains_key("node-a"),
        "reboot slot freed"
    );
    let drained = world
        .claim_log
        .iter()
        .any(|c| matches!(&c.effect, Effect::Drain { node_name, .. } if node_name == "node-a"));
    assert!(drained, "node-a drained");
}

#[test]
fn command_sent_records_command_id() {
    let (mut world, key) = reboot_claimed();
    world.answer(
        &key,
        EffectResult::CommandSent {
            command_id: "0b9a8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d".to_owned(),
        },
    );
    let run = world.node("node-a").reboot.clone().expect("reboot run");
    assert_eq!(
        run.command_id.as_deref(),
        Some("0b9a8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"),
        "command id"
    );
    assert!(
        world.outbox_of(EffectKind::Reboot).is_empty(),
        "reboot intent removed"
    );
}

#[test]
fn repeated_result_changes_nothing() {
    let mut world = World::new(2);
    world.exit_rank(0, 1);
    let key = world.claimed_key("stop:");
    world.answer(&key, EffectResult::Done);
    assert!(
        !world.job().outbox.iter().any(|i| i.key == key),
        "{key} removed after Done"
    );
    let again = world.observe(&Observation::EffectApplied {
        key: key.clone(),
        result: EffectResult::Done,
    });
    assert!(
        again.writes.is_empty(),
        "repeated result wrote {:?}",
        again.writes
    );
}
