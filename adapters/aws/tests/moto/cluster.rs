//! The ECS adapter against moto.

use std::collections::BTreeMap;

use gpu_recovery_aws::EcsCluster;
use gpu_recovery_ports::{CallError, Cluster, StartTaskOutcome, StartTaskRequest};
use serde_json::json;

use crate::world::World;

fn request(world: &World, node: usize, started_by: &str) -> StartTaskRequest {
    StartTaskRequest {
        container_instance_arn: world.nodes[node].container_instance_arn.clone(),
        task_definition: world.training_arn.clone(),
        overrides: json!({"containerOverrides": [{
            "name": "trainer",
            "environment": [{"name": "NODE_RANK", "value": "0"}]
        }]}),
        tags: BTreeMap::from([
            ("jobtype".to_owned(), "training_job".to_owned()),
            ("job_id".to_owned(), "llm-1".to_owned()),
        ]),
        started_by: started_by.to_owned(),
    }
}

async fn start(cluster: &EcsCluster, request: &StartTaskRequest) -> String {
    match cluster.start_task(request).await.expect("StartTask") {
        StartTaskOutcome::Started { task_arn } => task_arn,
        StartTaskOutcome::Rejected { reason } => panic!("StartTask rejected: {reason}"),
    }
}

#[tokio::test]
async fn ecs_start_describe_stop_task() {
    let world = World::new("ecs-tasks", 1).await;
    let cluster = EcsCluster::new(world.clients.ecs.clone(), &world.cluster_name);
    let request = request(&world, 0, "grjob-0123456789abcdef");
    let arn = start(&cluster, &request).await;

    let tagged = cluster
        .describe_task(&arn, true)
        .await
        .unwrap()
        .expect("task exists");
    assert_eq!(tagged.task_arn, arn);
    assert_eq!(tagged.last_status, "RUNNING");
    assert_eq!(
        tagged.container_instance_arn,
        world.nodes[0].container_instance_arn
    );
    assert_eq!(tagged.task_definition_arn, world.training_arn);
    assert_eq!(tagged.started_by.as_deref(), Some("grjob-0123456789abcdef"));
    assert_eq!(tagged.tags, request.tags);
    assert_eq!(tagged.overrides, request.overrides);

    let untagged = cluster.describe_task(&arn, false).await.unwrap().unwrap();
    assert!(
        untagged.tags.is_empty(),
        "tags without include=TAGS: {:?}",
        untagged.tags
    );

    let found = cluster
        .tasks_started_by(
            &world.nodes[0].container_instance_arn,
            "grjob-0123456789abcdef",
        )
        .await
        .unwrap();
    assert_eq!(found, vec![arn.clone()]);
    let none = cluster
        .tasks_started_by(&world.nodes[0].container_instance_arn, "grjob-other")
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");

    cluster
        .stop_task(
            &arn,
            &format!("gpu-recovery: test stop {}", "x".repeat(300)),
        )
        .await
        .unwrap();
    let stopped = cluster.describe_task(&arn, false).await.unwrap().unwrap();
    assert_eq!(stopped.last_status, "STOPPED");
    let reason = stopped.stopped_reason.unwrap_or_default();
    assert!(reason.starts_with("gpu-recovery: test stop"), "{reason}");
    assert_eq!(reason.chars().count(), 255);
    // A stopped task still counts as started, so StartTask stays idempotent.
    let after_stop = cluster
        .tasks_started_by(
            &world.nodes[0].container_instance_arn,
            "grjob-0123456789abcdef",
        )
        .await
        .unwrap();
    assert_eq!(after_stop, vec![arn]);
}

#[tokio::test]
async fn ecs_describe_missing_task_none() {
    let world = World::new("ecs-missing", 1).await;
    let cluster = EcsCluster::new(world.clients.ecs.clone(), &world.cluster_name);
    let missing = format!(
        "arn:aws:ecs:us-east-1:123456789012:task/{}/0123456789abcdef0123456789abcdef",
        world.cluster_name
    );
    assert_eq!(cluster.describe_task(&missing, true).await.unwrap(), None);
}

#[tokio::test]
async fn ecs_start_rejects_bad_overrides() {
    let world = World::new("ecs-overrides", 1).await;
    let cluster = EcsCluster::new(world.clients.ecs.clone(), &world.cluster_name);
    let mut bad = request(&world, 0, "grjob-bad");
    bad.overrides = json!({"containerOverrides": [{"name": "trainer", "gpus": 8}]});
    let error = cluster.start_task(&bad).await.unwrap_err();
    let CallError::Rejected { operation, message } = error else {
        panic!("expected Rejected, got {error:?}");
    };
    assert_eq!(operation, "StartTask");
    assert!(
        message.starts_with("invalid task overrides: unknown field `gpus`"),
        "{message}"
    );
    let started = cluster
        .tasks_started_by(&world.nodes[0].container_instance_arn, "grjob-bad")
        .await
        .unwrap();
    assert!(
        started.is_empty(),
        "a task started despite bad overrides: {started:?}"
    );
}

#[tokio::test]
async fn ecs_unknown_cluster_is_rejected() {
    let world = World::new("ecs-no-cluster", 1).await;
    let cluster = EcsCluster::new(world.clients.ecs.clone(), "no-such-cluster");
    let error = cluster
        .describe_container_instance(&world.nodes[0].container_instance_arn)
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Rejected { .. }), "{error:?}");
    assert!(
        error.to_string().contains("ClusterNotFoundException"),
        "{error}"
    );
}

#[tokio::test]
async fn ecs_attribute_and_drain() {
    let world = World::new("ecs-attributes", 1).await;
    let cluster = EcsCluster::new(world.clients.ecs.clone(), &world.cluster_name);
    let arn = &world.nodes[0].container_instance_arn;

    let instance = cluster
        .describe_container_instance(arn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(instance.ec2_instance_id, world.nodes[0].ec2_instance_id);
    assert!(instance.agent_connected);
    assert_eq!(instance.status, "ACTIVE");

    cluster
        .put_attribute(arn, "status", "PENDING_HEALTHCHECK")
        .await
        .unwrap();
    let described = world
        .clients
        .ecs
        .describe_container_instances()
        .cluster(&world.cluster_name)
        .container_instances(arn)
        .send()
        .await
        .unwrap();
    let attributes = described.container_instances()[0].attributes();
    let status = attributes.iter().find(|a| a.name() == "status");
    assert_eq!(status.and_then(|a| a.value()), Some("PENDING_HEALTHCHECK"));

    cluster.drain(arn).await.unwrap();
    let drained = cluster
        .describe_container_instance(arn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(drained.status, "DRAINING");

    let missing = format!(
        "arn:aws:ecs:us-east-1:123456789012:container-instance/{}/00000000000000000000000000000000",
        world.cluster_name
    );
    assert_eq!(
        cluster.describe_container_instance(&missing).await.unwrap(),
        None
    );
    let error = cluster.drain(&missing).await.unwrap_err();
    assert!(error.to_string().contains("MISSING"), "{error}");
}
