//! EventBridge documents of the shapes Amazon ECS emits, built from the
//! simulated cluster's state: "ECS Task State Change" and "ECS Container
//! Instance State Change", field for field as the service publishes them.

use gpu_recovery_domain::Timestamp;
use serde_json::{Value, json};

use crate::cluster::{ACCOUNT, REGION, SimInstance, SimTask};

fn envelope(id: u64, detail_type: &str, at: Timestamp, resource: &str, detail: &Value) -> Value {
    json!({
        "version": "0",
        "id": format!("{:08x}-0000-4000-8000-{:012x}", id >> 16, id),
        "detail-type": detail_type,
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": format!("{}Z", &at.to_rfc3339()[..19]),
        "region": REGION,
        "resources": [resource],
        "detail": detail,
    })
}

/// Builds a task state change for the task as it is now.
#[must_use]
pub fn task_event(id: u64, cluster_arn: &str, task: &SimTask, at: Timestamp) -> Value {
    let mut container = json!({
        "containerArn": format!("{}/{}", task.arn.replace(":task/", ":container/"), task.container_name),
        "lastStatus": if task.last_status == "STOPPED" { "STOPPED" } else if task.last_status == "RUNNING" { "RUNNING" } else { "PENDING" },
        "name": task.container_name,
        "image": task.image,
        "taskArn": task.arn,
        "networkInterfaces": [],
        "cpu": "0",
        "gpuIds": ["0", "1", "2", "3", "4", "5", "6", "7"],
    });
    if let Some(code) = task.exit_code {
        container["exitCode"] = json!(code);
    }
    let mut detail = json!({
        "attachments": [],
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "availabilityZone": "us-west-2a",
        "clusterArn": cluster_arn,
        "connectivity": "CONNECTED",
        "containerInstanceArn": task.container_instance_arn,
        "containers": [container],
        "cpu": "94208",
        "memory": "1100000",
        "createdAt": task.created_at.to_rfc3339(),
        "desiredStatus": task.desired_status,
        "enableExecuteCommand": false,
        "group": format!("family:{}", task.family),
        "launchType": "EC2",
        "lastStatus": task.last_status,
        "overrides": if task.overrides.is_null() { json!({"containerOverrides": [{"name": task.container_name}]}) } else { task.overrides.clone() },
        "startedBy": task.started_by,
        "taskArn": task.arn,
        "taskDefinitionArn": task.task_definition_arn,
        "updatedAt": at.to_rfc3339(),
        "version": task.version,
    });
    if let Some(started) = task.started_at {
        detail["startedAt"] = json!(started.to_rfc3339());
    }
    if let Some(code) = &task.stop_code {
        detail["stopCode"] = json!(code);
    }
    if let Some(reason) = &task.stopped_reason {
        detail["stoppedReason"] = json!(reason);
    }
    if task.last_status == "STOPPED" {
        detail["stoppingAt"] = json!(at.to_rfc3339());
        detail["executionStoppedAt"] = json!(at.to_rfc3339());
        detail["stoppedAt"] = json!(at.to_rfc3339());
    }
    envelope(id, "ECS Task State Change", at, &task.arn, &detail)
}

/// Builds a container instance state change for the instance as it is now.
#[must_use]
pub fn instance_event(id: u64, cluster_arn: &str, instance: &SimInstance, at: Timestamp) -> Value {
    let mut attributes = vec![
        json!({"name": "ecs.capability.nvidia-driver-version.550.127.08"}),
        json!({"name": "ecs.instance-type", "value": "p4d.24xlarge"}),
    ];
    attributes.extend(
        instance
            .attributes
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value})),
    );
    let gpus: Vec<String> = (0..8)
        .map(|i| format!("GPU-{:08x}-0000-4000-8000-{:012x}", instance.index, i))
        .collect();
    let detail = json!({
        "agentConnected": instance.agent_connected,
        "attributes": attributes,
        "clusterArn": cluster_arn,
        "containerInstanceArn": instance.arn,
        "ec2InstanceId": instance.ec2_instance_id,
        "registeredResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": 98304},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 1_133_000},
            {"name": "GPU", "type": "STRINGSET", "stringSetValue": gpus},
        ],
        "remainingResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": 98304},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 1_133_000},
        ],
        "status": instance.status,
        "version": instance.version,
        "versionInfo": {"agentVersion": "1.89.2", "agentHash": "a1b2c3d", "dockerVersion": "DockerVersion: 25.0.8"},
        "updatedAt": at.to_rfc3339(),
    });
    envelope(
        id,
        "ECS Container Instance State Change",
        at,
        &instance.arn,
        &detail,
    )
}
