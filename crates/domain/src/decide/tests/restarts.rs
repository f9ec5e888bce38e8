//! Restarts: what a restart starts, and how it ends.

use super::*;

fn started_ranks(world: &World) -> Vec<ClaimedEffect> {
    world
        .claim_log
        .iter()
        .filter(|c| matches!(c.effect, Effect::StartTrainingTask { .. }))
        .cloned()
        .collect()
}

#[test]
fn restart_reuses_launch_spec() {
    let mut world = World::new(2);
    world.recover_to_restart();
    assert_eq!(world.job().retry, 1, "retry after the restart");
    let starts = started_ranks(&world);
    assert_eq!(starts.len(), 2, "StartTask effects {starts:#?}");
    let mut tokens = BTreeSet::new();
    for (rank, claimed) in starts.iter().enumerate() {
        let Effect::StartTrainingTask {
            node_name: node,
            rank: started_rank,
            container_instance_arn,
            task_definition,
            overrides,
            tags,
            started_by,
        } = &claimed.effect
        else {
            unreachable!("filtered on StartTrainingTask");
        };
        let launch = &world.job().launch.as_ref().expect("launch spec").ranks[rank];
        assert_eq!(*started_rank as usize, rank, "rank of {}", claimed.key);
        assert_eq!(node, node_name(rank), "node of rank {rank}");
        assert_eq!(
            container_instance_arn, &launch.container_instance_arn,
            "container instance of rank {rank}"
        );
        assert_eq!(
            task_definition, TASK_DEFINITION,
            "task definition of rank {rank}"
        );
        assert_eq!(
            overrides,
            &rank_overrides(rank, 2),
            "overrides of rank {rank}"
        );
        let expected_tags = [
            ("team", "pretrain".to_owned()),
            ("jobtype", "training_job".to_owned()),
            ("job_id", JOB_ID.to_owned()),
            ("job_num_nodes", "2".to_owned()),
            ("node_index_in_job", rank.to_string()),
        ];
        for (key, value) in expected_tags {
            assert_eq!(
                tags.get(key),
                Some(&value),
                "tag {key} of rank {rank}: {tags:?}"
            );
        }
        assert!(
            started_by.len() <= 36,
            "startedBy {started_by:?} is longer than ECS allows"
        );
        tokens.insert(started_by.clone());
    }
    assert_eq!(tokens.len(), 2, "distinct startedBy tokens {tokens:?}");
    world.run_effects();
    for (rank, first_id) in FIRST_TASKS.iter().take(2).enumerate() {
        let id = world.rank_task(rank);
        let task = world.task(&id);
        assert_ne!(&id, first_id, "rank {rank} has a new task");
        assert_eq!(task.retry, 1, "retry of the new rank {rank}");
        assert_eq!(task.node_index_in_job as usize, rank, "rank of {id}");
        assert_eq!(task.node_name, node_name(rank), "node of {id}");
        assert_eq!(
            task.task_def_arn, TASK_DEFINITION,
            "task definition of {id}"
        );
    }
}

#[test]
fn running_ranks_resume_job() {
    let mut world = World::new(2);
    world.recover_to_restart();
    world.run_effects();
    let first = world.rank_task(0);
    let run = world.task_run(&first);
    world.observe(&Observation::TaskRunning(run));
    assert_eq!(
        world.job().job_status,
        JobStatus::Restarting,
        "job with rank 1 starting"
    );
    let second = world.rank_task(1);
    let run = world.task_run(&second);
    world.observe(&Observation::TaskRunning(run));
    assert_eq!(world.job().job_status, JobStatus::InProgress, "job");
    assert_eq!(
        world.job().deadline,
        Some(world.now + world.policy.running_poll_interval),
        "next poll"
    );
    for node in ["node-a", "node-b"] {
        assert_eq!(world.node_status(node), NodeStatus::InProgress, "{node}");
    }
}

#[test]
fn restarted_job_completes() {
    let mut world = World::new(2);
    world.recover_to_restart();
    world.run_effects();
    world.run_ranks();
    world.exit_rank(0, 0);
    world.exit_rank(1, 0);
    assert_eq!(world.job().job_status, JobStatus::Complete, "job");
    assert_eq!(world.job().retry, 1, "retry");
}

#[test]
fn start_failure_fails_restart() {
    let reasons = [
        "CannotStartContainerError: nvidia-container-cli: initialization error: nvml error: unknown error",
        "ResourceInitializationError: unable to pull secrets or registry auth",
    ];
    for reason in reasons {
        let mut world = World::new(2);
        world.recover_to_restart();
        world.run_effects();
        let id = world.rank_task(1);
        let stop = world.task_stop(&id, Some("TaskFailedToStart"), &[], Some(reason));
        world.observe(&Observation::TaskStopped(stop));
        assert_eq!(
            world.job().job_status,
            JobStatus::Failed,
            "job after {reason:?}"
        );
        assert_eq!(world.job().episodes_opened, 1, "episodes after {reason:?}");
        assert_eq!(world.job().retry, 1, "retry after {reason:?}");
    }
}

#[test]
fn rejected_start_fails_restart() {
    let mut world = World::new(2);
    world.recover_to_restart();
    let key = world.claimed_key(&format!("start:{JOB_ID}:1:1"));
    world.answer(
        &key,
        EffectResult::Rejected {
            reason: "RESOURCE:GPU".to_owned(),
        },
    );
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
    let reason = world.job().status_reason.clone().unwrap_or_default();
    assert!(reason.contains("RESOURCE:GPU"), "reason {reason:?}");
}

#[test]
fn restart_deadline_fails_job() {
    let mut world = World::new(2);
    world.recover_to_restart();
    world.run_effects();
    let first = world.rank_task(0);
    let run = world.task_run(&first);
    world.observe(&Observation::TaskRunning(run));
    world.advance(Span(world.policy.restart_timeout.0 - 1000));
    world.tick();
    assert_eq!(
        world.job().job_status,
        JobStatus::Restarting,
        "job before the deadline"
    );
    world.advance(Span::seconds(1));
    world.tick();
    assert_eq!(
        world.job().job_status,
        JobStatus::Failed,
        "job at the deadline"
    );
    let stopped = world.claim_log.iter().any(
        |c| matches!(&c.effect, Effect::StopTask { task_arn, .. } if short(task_arn) == first),
    );
    assert!(stopped, "running rank 0 stopped");
}

#[test]
fn budget_spent_at_restart_fails() {
    let mut world = World::new(2);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1), ("node-b", 0)]);
    assert_eq!(world.job().job_status, JobStatus::PendingRestart, "job");
    // The budget shrank while node-a rebooted, for example by a redeploy.
    world.policy.max_retries = 0;
    world.reboot_and_return("node-a");
    world.finish_check("node-a", 0);
    world.run_effects();
    assert_eq!(world.job().job_status, JobStatus::Failed, "job");
    assert_eq!(world.job().retry, 0, "retry");
    assert!(
        started_ranks(&world).is_empty(),
        "ranks started: {:?}",
        started_ranks(&world)
    );
}

#[test]
fn retry_never_exceeds_max() {
    for max_retries in [0, 1, 2] {
        let policy = Policy {
            max_retries,
            ..Policy::default()
        };
        let mut world = World::with_policy(2, policy);
        for attempt in 0..max_retries {
            world.recover_to_restart();
            world.run_effects();
            world.run_ranks();
            assert_eq!(
                world.job().job_status,
                JobStatus::InProgress,
                "after restart {attempt}"
            );
            assert_eq!(
                world.job().retry,
                attempt + 1,
                "retry after restart {attempt}"
            );
            world.advance(Span::minutes(30));
        }
        world.open_episode();
        world.deliver_verdicts(&[("node-a", 1), ("node-b", 0)]);
        assert_eq!(
            world.job().job_status,
            JobStatus::Failed,
            "job after {max_retries} restarts"
        );
        assert_eq!(world.job().retry, max_retries, "final retry");
        assert_eq!(
            world.job().episodes_opened,
            max_retries + 1,
            "episodes opened"
        );
        assert_eq!(
            started_ranks(&world).len(),
            2 * max_retries as usize,
            "ranks started"
        );
    }
}

#[test]
fn running_before_start_result_counts() {
    // The RUNNING event of a restarted rank can arrive before the StartTask
    // result is recorded, and the entry point then adds the task's tags.
    let mut world = World::new(2);
    world.recover_to_restart();
    let rank0 = world.claimed_key(&format!("start:{JOB_ID}:1:0"));
    world.answer(
        &rank0,
        EffectResult::TaskStarted {
            task_arn: task_arn("5d6e7f8091a24b3c9d0e1f2a3b4c5d6e"),
        },
    );
    let first = world.rank_task(0);
    let run = world.task_run(&first);
    world.observe(&Observation::TaskRunning(run));
    let rank1 = world.claimed_key(&format!("start:{JOB_ID}:1:1"));
    let Some(Effect::StartTrainingTask { tags, .. }) = world
        .claimed
        .iter()
        .find(|c| c.key == rank1)
        .map(|c| c.effect.clone())
    else {
        panic!("rank 1 start not claimed");
    };

    let early = "e4f5a6b7c8d94e0f8a1b2c3d4e5f6a7b";
    let run = TaskRun {
        task_arn: task_arn(early),
        container_instance_arn: world.node("node-b").container_instance_arn.clone(),
        task_definition_arn: TASK_DEFINITION.to_owned(),
        started_by: None,
        overrides: rank_overrides(1, 2),
        tags: Some(tags),
        ec2_instance_id: world.node("node-b").ec2_instance_id.clone(),
        version: 2,
        at: world.now,
    };
    world.observe(&Observation::TaskRunning(run));
    assert_eq!(world.job().job_status, JobStatus::InProgress, "job");
    assert_eq!(world.rank_task(1), early, "rank 1 task");
    world.answer(
        &rank1,
        EffectResult::TaskStarted {
            task_arn: task_arn(early),
        },
    );
    assert_eq!(
        world.job().job_status,
        JobStatus::InProgress,
        "job after the result"
    );
    assert_eq!(world.task(early).retry, 1, "retry of rank 1");
    assert!(world.task(early).running, "rank 1 running");
}

/// Registers a two-node job from RUNNING events that arrive in `order`.
pub(super) fn registered_world(order: [usize; 2]) -> World {
    let mut world = World::new(2);
    world.context.job = None;
    world.context.tasks.clear();
    for node in &mut world.context.nodes {
        node.node_status = NodeStatus::Available;
        node.job_id = None;
    }
    for rank in order {
        let tags = BTreeMap::from([
            ("jobtype".to_owned(), "training_job".to_owned()),
            ("job_id".to_owned(), JOB_ID.to_owned()),
            ("job_num_nodes".to_owned(), "2".to_owned()),
            ("node_index_in_job".to_owned(), rank.to_string()),
            ("team".to_owned(), "pretrain".to_owned()),
        ]);
        let node = world.node(node_name(rank)).clone();
        let run = TaskRun {
            task_arn: task_arn(FIRST_TASKS[rank]),
            container_instance_arn: node.container_instance_arn.clone(),
            task_definition_arn: TASK_DEFINITION.to_owned(),
            started_by: None,
            overrides: rank_overrides(rank, 2),
            tags: Some(tags),
            ec2_instance_id: node.ec2_instance_id.clone(),
            version: 3,
            at: world.now,
        };
        world.observe(&Observation::TaskRunning(run));
    }
    world
}

#[test]
fn registered_job_restarts_with_tags() {
    // Ranks whose RUNNING events arrive in rank order.
    let mut world = registered_world([0, 1]);
    assert_eq!(world.job().job_status, JobStatus::InProgress, "job");
    assert_eq!(
        world.job().assigned_nodes,
        ["node-a", "node-b"],
        "assigned nodes"
    );
    world.recover_to_restart();
    let pending: Vec<&ClaimedEffect> = world
        .claimed
        .iter()
        .filter(|c| matches!(c.effect, Effect::StartTrainingTask { .. }))
        .collect();
    assert_eq!(pending.len(), 2, "StartTask effects {pending:#?}");
    for claimed in pending {
        let Effect::StartTrainingTask {
            node_name: node,
            rank,
            task_definition,
            overrides,
            tags,
            ..
        } = &claimed.effect
        else {
            unreachable!("filtered on StartTrainingTask");
        };
        let expected = usize::from(node != "node-a");
        assert_eq!(*rank as usize, expected, "rank started on {node}");
        assert_eq!(
            task_definition, TASK_DEFINITION,
            "task definition on {node}"
        );
        assert_eq!(
            overrides,
            &rank_overrides(expected, 2),
            "overrides on {node}"
        );
        assert_eq!(
            tags.get("team").map(String::as_str),
            Some("pretrain"),
            "tags on {node}: {tags:?}"
        );
    }
}
