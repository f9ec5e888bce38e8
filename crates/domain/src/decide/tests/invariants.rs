//! Properties of every decision: stale events change nothing, writes are
//! conditional on the version read, and the same inputs decide the same.

use super::*;

#[test]
fn stale_task_stop_writes_nothing() {
    let mut world = World::new(2);
    world.exit_rank(0, 2);
    world.run_effects();
    let recorded = world.task(FIRST_TASKS[0]).event_version;
    for version in [recorded, recorded - 1] {
        let mut stop =
            world.task_stop(FIRST_TASKS[0], Some("EssentialContainerExited"), &[1], None);
        stop.version = version;
        let decision = world.observe(&Observation::TaskStopped(stop));
        assert!(
            decision.writes.is_empty(),
            "stop at version {version} wrote {:?}",
            decision.writes
        );
        assert!(
            decision.effects.is_empty(),
            "stop at version {version} claimed effects"
        );
    }
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
    assert_eq!(world.job().episodes_opened, 0, "episodes");
}

#[test]
fn stale_stop_opens_no_episode() {
    // A stop whose version is not above the RUNNING event already applied
    // is older than what the record holds.
    let mut world = World::new(2);
    let recorded = world.task(FIRST_TASKS[0]).event_version;
    let mut stop = world.task_stop(FIRST_TASKS[0], Some("EssentialContainerExited"), &[1], None);
    stop.version = recorded;
    let decision = world.observe(&Observation::TaskStopped(stop));
    assert!(
        decision.writes.is_empty(),
        "stale stop wrote {:?}",
        decision.writes
    );
    assert_eq!(world.job().job_status, JobStatus::InProgress, "job");
}

#[test]
fn stale_running_event_writes_nothing() {
    let mut world = World::new(2);
    world.recover_to_restart();
    world.run_effects();
    let id = world.rank_task(0);
    let run = world.task_run(&id);
    world.observe(&Observation::TaskRunning(run.clone()));
    let again = world.observe(&Observation::TaskRunning(run));
    assert!(
        again.writes.is_empty(),
        "duplicate RUNNING wrote {:?}",
        again.writes
    );
}

#[test]
fn stale_check_result_writes_nothing() {
    let mut world = World::new(2);
    world.open_episode();
    let result = world.check_result("node-a", 1);
    world.observe(&Observation::HealthCheckFinished(result.clone()));
    world.run_effects();
    for version in [result.version, result.version - 1] {
        let stale = HealthCheckResult {
            version,
            exit_code: Some(0),
            ..result.clone()
        };
        let decision = world.observe(&Observation::HealthCheckFinished(stale));
        assert!(
            decision.writes.is_empty(),
            "check result at version {version} wrote {:?}",
            decision.writes
        );
    }
    assert_eq!(
        verdict_of(&world, "node-a", CheckPhase::Initial),
        Some(Verdict::Reboot),
        "first verdict kept"
    );
}

#[test]
fn writes_expect_version_read() {
    let mut world = World::new(2);
    let before = world.context.clone();
    let stop = world.stop_of_rank(0, 1);
    let decision = world.decide(&Observation::TaskStopped(stop));
    assert!(!decision.writes.is_empty(), "the failure writes records");
    for write in &decision.writes {
        let read = match &write.record {
            Record::Job(_) => before.job.as_ref().map(|j| j.version),
            Record::Task(task) => before
                .tasks
                .iter()
                .find(|t| t.ecs_task_id == task.ecs_task_id)
                .map(|t| t.version),
            Record::Node(node) => before
                .nodes
                .iter()
                .find(|n| n.node_name == node.node_name)
                .map(|n| n.version),
            Record::Safety(_) => before.safety_exists.then_some(before.safety.version),
        };
        assert_eq!(
            write.expected_version,
            read,
            "expected version of {}",
            write.record.describe()
        );
        assert_eq!(
            record_version(&write.record),
            read.map_or(1, |v| v + 1),
            "written version of {}",
            write.record.describe()
        );
    }
}

#[test]
fn new_records_expect_no_version() {
    let mut world = World::new(2);
    world.exit_rank(0, 1);
    let key = world.claimed_key("health_check:node-a:");
    let decision = world.answer(
        &key,
        EffectResult::TaskStarted {
            task_arn: task_arn("e4f5a6b7c8d94e0f8a1b2c3d4e5f6a7b"),
        },
    );
    let created = decision
        .writes
        .iter()
        .find(|w| matches!(&w.record, Record::Task(t) if t.ecs_task_id == "e4f5a6b7c8d94e0f8a1b2c3d4e5f6a7b"))
        .expect("health-check task record written");
    assert_eq!(
        created.expected_version, None,
        "expected version of a new task"
    );
    let Record::Task(task) = &created.record else {
        unreachable!("matched a task above");
    };
    assert_eq!(task.kind, TaskKind::HealthCheck, "kind of the new task");
    assert_eq!(
        task.phase,
        Some(CheckPhase::Initial),
        "phase of the new task"
    );

    // The safety record does not exist until the first failed check.
    assert!(
        !world.context.safety_exists,
        "safety record before a failed check"
    );
    world.run_effects();
    world.confirm_sibling_stops();
    world.advance(Span::minutes(1));
    let result = world.check_result("node-a", 1);
    let decision = world.observe(&Observation::HealthCheckFinished(result));
    let safety = decision
        .writes
        .iter()
        .find(|w| matches!(w.record, Record::Safety(_)))
        .expect("safety record written when a check fails");
    assert_eq!(
        safety.expected_version, None,
        "expected version of a new safety record"
    );
    world.deliver_verdicts(&[("node-b", 0)]);
    world.reboot_and_return("node-a");
    let latest = world.context.safety.version;
    assert!(
        latest > 1,
        "safety record rewritten when the slot was freed: {latest}"
    );
}

#[test]
fn decide_is_deterministic() {
    let mut world = World::new(3);
    world.open_episode();
    world.advance(Span::minutes(3));
    let result = world.check_result("node-b", 1);
    let observation = Observation::HealthCheckFinished(result);
    let first = world.decide(&observation);
    let second = world.decide(&observation);
    assert_eq!(first, second, "two decisions on the same inputs");
}

impl World {
    fn stop_of_rank(&mut self, rank: usize, code: i32) -> TaskStop {
        let id = self.rank_task(rank);
        self.task_stop(&id, Some("EssentialContainerExited"), &[code], None)
    }
}
