//! Training task stops while the job runs: which ones open an episode, and
//! how the others end the job.

use super::*;

/// Checks the decision of a GPU-suspect stop of rank 0 in a job of `ranks`.
fn assert_episode_opened(world: &mut World, decision: &Decision, ranks: usize) {
    let job = written_job(decision).expect("the failure writes the job");
    assert_eq!(
        job.job_status,
        JobStatus::PendingHealthcheck,
        "job status in the write"
    );
    let episode = job.episode.as_ref().expect("episode in the write");
    assert_eq!(
        episode.trigger_task, FIRST_TASKS[0],
        "trigger task of {episode:?}"
    );
    assert_eq!(episode.nodes.len(), ranks, "episode nodes {episode:?}");
    assert_eq!(job.episodes_opened, 1, "episodes opened");
    for sibling in FIRST_TASKS.iter().take(ranks).skip(1) {
        let sibling = *sibling;
        let stop = job
            .outbox
            .iter()
            .find(|i| matches!(&i.effect, Effect::StopTask { task_arn, .. } if short(task_arn) == sibling));
        assert!(
            stop.is_some(),
            "StopTask of sibling {sibling} queued in the same write as the status: {:?}",
            job.outbox
        );
        let task = written_tasks(decision)
            .into_iter()
            .find(|t| t.ecs_task_id == sibling)
            .expect("sibling task written");
        assert_eq!(
            task.task_status,
            TaskStatus::Terminated,
            "sibling status in the write"
        );
        assert!(
            task.stop_requested.is_some(),
            "sibling stop_requested in the write: {task:?}"
        );
    }
    let queued = |world: &World, name: &str| {
        world.job().outbox.iter().any(|i| {
            matches!(&i.effect, Effect::StartHealthCheck { node_name, phase, .. }
                if node_name == name && *phase == CheckPhase::Initial)
        })
    };
    for rank in 0..ranks {
        let name = node_name(rank);
        assert_eq!(
            world.node_status(name),
            NodeStatus::PendingHealthcheck,
            "status of {name}"
        );
        // The failed rank's node is free at once; a sibling's node waits
        // until ECS confirms the engine's stop, because its GPUs are held.
        assert_eq!(
            queued(world, name),
            rank == 0,
            "health check queued for {name} before the sibling stops"
        );
    }
    world.confirm_sibling_stops();
    for rank in 0..ranks {
        let name = node_name(rank);
        let started = world
            .node(name)
            .health_check
            .as_ref()
            .is_some_and(|h| h.queued);
        assert!(
            started,
            "health check queued for {name} after the sibling stops"
        );
    }
    assert_eq!(
        world.task(FIRST_TASKS[0]).task_status,
        TaskStatus::Terminated,
        "failed task status"
    );
}

#[test]
fn health_check_exit_code_opens_episode() {
    for ranks in [1, 2, 3] {
        let mut world = World::new(ranks);
        let decision = world.exit_rank(0, 1);
        assert_episode_opened(&mut world, &decision, ranks);
    }
}

#[test]
fn configured_exit_code_opens_episode() {
    let policy = Policy {
        health_check_exit_codes: BTreeSet::from([1, 134]),
        ..Policy::default()
    };
    let mut world = World::with_policy(2, policy);
    let decision = world.exit_rank(0, 134);
    assert_episode_opened(&mut world, &decision, 2);
}

#[test]
fn infrastructure_health_opens_episode() {
    let mut world = World::new(2);
    let stop = world.task_stop(
        FIRST_TASKS[0],
        Some("InfrastructureHealth"),
        &[137],
        Some("Task stopped due to unhealthy infrastructure"),
    );
    let decision = world.observe(&Observation::TaskStopped(stop));
    assert_episode_opened(&mut world, &decision, 2);
}

#[test]
fn nvml_start_failure_opens_episode() {
    let mut world = World::new(2);
    let stop = world.task_stop(
        FIRST_TASKS[0],
        Some("TaskFailedToStart"),
        &[],
        Some(
            "CannotStartContainerError: Error response from daemon: failed to create task for \
             container: error running hook #0: nvidia-container-cli: initialization error: \
             nvml error: unknown error: unknown",
        ),
    );
    let decision = world.observe(&Observation::TaskStopped(stop));
    assert_episode_opened(&mut world, &decision, 2);
}

#[test]
fn sibling_own_stop_changes_nothing() {
    let mut world = World::new(2);
    world.open_episode();
    let job_before = world.job().clone();
    let nodes_before = world.context.nodes.clone();
    let stop = world.task_stop(
        FIRST_TASKS[1],
        Some("UserInitiated"),
        &[137],
        Some("gpu-recovery: job llm-pretrain-20261120 stopped because task b4e7a2d9c3f14e0b8a6d5c2e1f0a9b8c failed"),
    );
    let decision = world.observe(&Observation::TaskStopped(stop));
    assert!(
        written_job(&decision).is_none(),
        "the sibling's stop rewrote the job: {:?}",
        written_job(&decision)
    );
    assert!(
        written_nodes(&decision).is_empty(),
        "the sibling's stop wrote nodes: {:?}",
        written_nodes(&decision)
    );
    assert!(
        decision.effects.is_empty(),
        "the sibling's stop claimed effects: {:?}",
        decision.effects
    );

    assert_eq!(
        world.job(),
        &job_before,
        "job record after the sibling stop"
    );
    assert_eq!(
        world.context.nodes, nodes_before,
        "nodes after the sibling stop"
    );
    assert_eq!(
        world.task(FIRST_TASKS[1]).task_status,
        TaskStatus::Terminated,
        "sibling status"
    );
}

#[test]
fn sibling_stop_without_prefix_still_own() {
    // ECS may cut or rewrite the reason text, so the recorded
    // stop_requested alone marks the stop as the engine's.
    let mut world = World::new(2);
    world.open_episode();
    let stop = world.task_stop(
        FIRST_TASKS[1],
        Some("UserInitiated"),
        &[137],
        Some("Task stopped by user"),
    );
    let decision = world.observe(&Observation::TaskStopped(stop));
    assert!(
        written_job(&decision).is_none(),
        "the sibling's stop rewrote the job: {:?}",
        written_job(&decision).map(|j| j.job_status)
    );
    assert_eq!(
        world.job().job_status,
        JobStatus::PendingHealthcheck,
        "job status"
    );
}

#[test]
fn every_rank_exit_zero_completes() {
    let mut world = World::new(2);
    world.exit_rank(0, 0);
    assert_eq!(
        world.task(FIRST_TASKS[0]).task_status,
        TaskStatus::Complete,
        "rank 0 status"
    );
    assert_eq!(
        world.job().job_status,
        JobStatus::InProgress,
        "job status with rank 1 still running"
    );
    world.exit_rank(1, 0);
    assert_eq!(
        world.task(FIRST_TASKS[1]).task_status,
        TaskStatus::Complete,
        "rank 1 status"
    );
    assert_eq!(world.job().job_status, JobStatus::Complete, "job status");
    assert_eq!(world.job().deadline, None, "deadline of a complete job");
    for rank in 0..2 {
        let node = world.node(node_name(rank));
        assert_eq!(
            node.node_status,
            NodeStatus::Available,
            "{} after completion",
            node.node_name
        );
        assert_eq!(node.job_id, None, "{} job_id", node.node_name);
    }
}

#[test]
fn user_stop_stops_other_ranks() {
    let mut world = World::new(3);
    let stop = world.task_stop(
        FIRST_TASKS[1],
        Some("UserInitiated"),
        &[0],
        Some("Task stopped by user"),
    );
    let decision = world.observe(&Observation::TaskStopped(stop));
    assert_eq!(world.job().job_status, JobStatus::UserStopped, "job status");
    for rank in [0, 2] {
        let id = FIRST_TASKS[rank];
        assert_eq!(
            world.task(id).task_status,
            TaskStatus::Terminated,
            "rank {rank} status"
        );
        let stopped = decision.effects.iter().any(
            |c| matches!(&c.effect, Effect::StopTask { task_arn, .. } if short(task_arn) == id),
        );
        assert!(stopped, "rank {rank} stop claimed: {:?}", decision.effects);
    }
    for rank in 0..3 {
        assert_eq!(
            world.node_status(node_name(rank)),
            NodeStatus::Available,
            "node of rank {rank}"
        );
    }
    // The StopTask calls come back as UserInitiated stops of our own.
    world.run_effects();
    for rank in [0, 2] {
        let stop = world.task_stop(
            FIRST_TASKS[rank],
            Some("UserInitiated"),
            &[137],
            Some("gpu-recovery: job ended USER_STOPPED"),
        );
        let decision = world.observe(&Observation::TaskStopped(stop));
        assert!(
            written_job(&decision).is_none(),
            "own stop of rank {rank} rewrote the job"
        );
    }
    assert_eq!(
        world.job().job_status,
        JobStatus::UserStopped,
        "final status"
    );
}

/// A stop of rank 0 that must end the job FAILED without an episode.
fn assert_fails_without_episode(
    stop_code: Option<&str>,
    exit_codes: &[i32],
    reason: Option<&str>,
) -> World {
    let mut world = World::new(2);
    let stop = world.task_stop(FIRST_TASKS[0], stop_code, exit_codes, reason);
    let decision = world.observe(&Observation::TaskStopped(stop));

    let case = format!("{stop_code:?} {exit_codes:?}");
    assert_eq!(
        world.job().job_status,
        JobStatus::Failed,
        "job after {case}"
    );
    assert_eq!(world.job().episodes_opened, 0, "episodes after {case}");
    assert_eq!(
        world.task(FIRST_TASKS[0]).task_status,
        TaskStatus::Terminated,
        "failed task after {case}"
    );
    assert_eq!(
        world.task(FIRST_TASKS[1]).task_status,
        TaskStatus::Terminated,
        "sibling after {case}"
    );
    let sibling_stopped = decision.effects.iter().any(
        |c| matches!(&c.effect, Effect::StopTask { task_arn, .. } if short(task_arn) == FIRST_TASKS[1]),
    );
    assert!(
        sibling_stopped,
        "sibling stop after {case}: {:?}",
        decision.effects
    );
    let notified = decision
        .effects
        .iter()
        .filter(|c| matches!(c.effect, Effect::Notify(_)))
        .count();
    assert_eq!(notified, 1, "notifications after {case}");
    world
}

#[test]
fn other_exit_code_fails_job() {
    for code in [2, 137, 139, -1] {
        assert_fails_without_episode(
            Some("EssentialContainerExited"),
            &[code],
            Some("Essential container in task exited"),
        );
    }
}

#[test]
fn scheduler_stop_fails_job() {
    assert_fails_without_episode(
        Some("ServiceSchedulerInitiated"),
        &[143],
        Some("Scaling activity initiated by deployment"),
    );
}

#[test]
fn unknown_stop_code_fails_job() {
    assert_fails_without_episode(Some("HostMaintenanceRetired"), &[137], None);
}

#[test]
fn missing_exit_code_fails_job() {
    assert_fails_without_episode(
        Some("EssentialContainerExited"),
        &[],
        Some("Essential container in task exited"),
    );
    assert_fails_without_episode(None, &[], None);
}

#[test]
fn non_gpu_start_failure_fails_job() {
    assert_fails_without_episode(
        Some("TaskFailedToStart"),
        &[],
        Some("CannotPullContainerError: pull image manifest has been retried 5 time(s)"),
    );
}

#[test]
fn host_loss_fails_and_quarantines() {
    for code in ["SpotInterruption", "TerminationNotice"] {
        let world = assert_fails_without_episode(
            Some(code),
            &[143],
            Some("Your Spot Task was interrupted."),
        );
        let lost = world.node("node-a");
        assert_eq!(
            lost.node_status,
            NodeStatus::Failed,
            "lost node after {code}"
        );
        assert_eq!(
            world.node_status("node-b"),
            NodeStatus::Available,
            "other node after {code}"
        );
        let drained = world
            .outbox_of(EffectKind::Drain)
            .iter()
            .any(|i| matches!(&i.effect, Effect::Drain { node_name, .. } if node_name == "node-a"));
        let drain_claimed = world
            .claim_log
            .iter()
            .any(|c| matches!(&c.effect, Effect::Drain { node_name, .. } if node_name == "node-a"));
        assert!(
            drained || drain_claimed,
            "drain of the lost node after {code}"
        );
    }
}

#[test]
fn completed_rank_in_failed_job() {
    // A rank that exits 0 after the job failed is COMPLETE, and the job
    // stays FAILED.
    let mut world = World::new(2);
    world.exit_rank(0, 2);
    let id = FIRST_TASKS[1];
    let job_status = world.job().job_status;
    assert_eq!(job_status, JobStatus::Failed, "job after exit 2");
    // Rank 1 was already stopped by the engine, so its exit changes nothing.
    let stop = world.task_stop(id, Some("EssentialContainerExited"), &[0], None);
    world.observe(&Observation::TaskStopped(stop));
    assert_eq!(
        world.job().job_status,
        JobStatus::Failed,
        "job after rank 1"
    );
    assert_eq!(
        world.task(id).task_status,
        TaskStatus::Terminated,
        "rank 1 stays as the engine left it"
    );
}

#[test]
fn watchdog_poll_finds_lost_stop() {
    let mut world = World::new(2);
    world.advance(world.policy.running_poll_interval);
    let stop = world.task_stop(
        FIRST_TASKS[1],
        Some("EssentialContainerExited"),
        &[1],
        Some("Essential container in task exited"),
    );
    let tick = Tick {
        nodes: BTreeMap::new(),
        tasks: BTreeMap::from([
            (
                FIRST_TASKS[0].to_owned(),
                crate::observation::TaskProbe::Running,
            ),
            (
                FIRST_TASKS[1].to_owned(),
                crate::observation::TaskProbe::Stopped(stop),
            ),
        ]),
    };
    world.observe(&Observation::Tick(tick));
    assert_eq!(
        world.job().job_status,
        JobStatus::PendingHealthcheck,
        "job after the poll"
    );
    assert_eq!(world.episode().trigger_task, FIRST_TASKS[1], "trigger task");
}

#[test]
fn watchdog_poll_fails_missing_task() {
    let mut world = World::new(2);
    world.advance(Span(world.policy.running_poll_interval.0 - 1));
    let tick = Tick {
        nodes: BTreeMap::new(),
        tasks: BTreeMap::from([(
            FIRST_TASKS[0].to_owned(),
            crate::observation::TaskProbe::Missing,
        )]),
    };
    world.observe(&Observation::Tick(tick.clone()));
    assert_eq!(
        world.job().job_status,
        JobStatus::InProgress,
        "job before the poll is due"
    );
    world.advance(Span(1));
    world.observe(&Observation::Tick(tick));
    assert_eq!(
        world.job().job_status,
        JobStatus::Failed,
        "job after the poll"
    );
    assert_eq!(world.job().episodes_opened, 0, "episodes");
}

#[test]
fn lost_sibling_stop_delays_check() {
    let mut world = World::new(2);
    world.exit_rank(0, 1);
    world.run_effects();
    let queued = |world: &World| {
        world
            .node("node-b")
            .health_check
            .as_ref()
            .is_some_and(|h| h.queued)
    };
    assert!(
        !queued(&world),
        "node-b check queued while its task still stops"
    );
    world.advance(Span::minutes(2));
    world.tick();
    assert!(
        !queued(&world),
        "node-b check queued before the stop wait ended"
    );
    world.advance(Span::minutes(2));
    world.tick();
    assert!(
        queued(&world),
        "node-b check still waiting after the stop wait ended"
    );
}
