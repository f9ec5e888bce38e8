//! Performing one claimed effect through the ports, idempotently.

use std::collections::BTreeMap;

use gpu_recovery_domain::records::CheckPhase;
use gpu_recovery_domain::{ClaimedEffect, Effect, EffectResult};
use gpu_recovery_ports::{
    CallError, Cluster, HostControl, Metrics, Notifier, RebootOutcome, RecordStore,
    StartTaskOutcome, StartTaskRequest,
};

use crate::Engine;
use crate::context::{TAG_EPISODE, TAG_JOB_ID, TAG_PHASE};

/// Performs one effect and reports its result; never panics on a failed call.
pub(crate) async fn perform<S, C, H, N, M>(
    engine: &Engine<S, C, H, N, M>,
    claimed: &ClaimedEffect,
) -> EffectResult
where
    S: RecordStore,
    C: Cluster,
    H: HostControl,
    N: Notifier,
    M: Metrics,
{
    match run(engine, claimed).await {
        Ok(result) => result,
        Err(CallError::Rejected { operation, message }) => EffectResult::Rejected {
            reason: format!("{operation}: {message}"),
        },
        Err(CallError::Transient { operation, message }) => EffectResult::Failed {
            error: format!("{operation}: {message}"),
        },
    }
}

async fn run<S, C, H, N, M>(
    engine: &Engine<S, C, H, N, M>,
    claimed: &ClaimedEffect,
) -> Result<EffectResult, CallError>
where
    S: RecordStore,
    C: Cluster,
    H: HostControl,
    N: Notifier,
    M: Metrics,
{
    let cluster = &engine.ports.cluster;
    match &claimed.effect {
        Effect::StopTask { task_arn, reason } => match cluster.stop_task(task_arn, reason).await {
            // A task that is gone is as stopped as it gets.
            Ok(()) | Err(CallError::Rejected { .. }) => Ok(EffectResult::Done),
            Err(error) => Err(error),
        },
        Effect::StartHealthCheck {
            container_instance_arn,
            episode_id,
            phase,
            started_by,
            ..
        } => {
            let phase_tag = match phase {
                CheckPhase::Initial => "initial",
                CheckPhase::PostReboot => "post_reboot",
            };
            let tags = BTreeMap::from([
                (TAG_JOB_ID.to_owned(), claimed.job_id.clone()),
                (TAG_EPISODE.to_owned(), episode_id.clone()),
                (TAG_PHASE.to_owned(), phase_tag.to_owned()),
            ]);
            let request = StartTaskRequest {
                container_instance_arn: container_instance_arn.clone(),
                task_definition: engine.config.health_check_task.clone(),
                overrides: serde_json::Value::Null,
                tags,
                started_by: started_by.clone(),
            };
            start_once(cluster, &request).await
        }
        Effect::StartTrainingTask {
            container_instance_arn,
            task_definition,
            overrides,
            tags,
            started_by,
            ..
        } => {
            let request = StartTaskRequest {
                container_instance_arn: container_instance_arn.clone(),
                task_definition: task_definition.clone(),
                overrides: overrides.clone(),
                tags: tags.clone(),
                started_by: started_by.clone(),
            };
            start_once(cluster, &request).await
        }
        Effect::Reboot {
            node_name,
            container_instance_arn,
            token,
            ..
        } => reboot(engine, node_name, container_instance_arn, token).await,
        Effect::SetNodeAttribute {
            container_instance_arn,
            value,
            ..
        } => {
            cluster
                .put_attribute(
                    container_instance_arn,
                    &engine.policy.node_status_attribute,
                    value.as_str(),
                )
                .await?;
            Ok(EffectResult::Done)
        }
        Effect::Drain {
            container_instance_arn,
            ..
        } => {
            cluster.drain(container_instance_arn).await?;
            Ok(EffectResult::Done)
        }
        Effect::Notify(notification) => {
            engine.ports.notifier.publish(notification).await?;
            Ok(EffectResult::Done)
        }
    }
}

/// Sends the reboot command unless one was sent with the same token.
async fn reboot<S, C, H, N, M>(
    engine: &Engine<S, C, H, N, M>,
    node_name: &str,
    container_instance_arn: &str,
    token: &str,
) -> Result<EffectResult, CallError>
where
    S: RecordStore,
    C: Cluster,
    H: HostControl,
    N: Notifier,
    M: Metrics,
{
    let cluster = &engine.ports.cluster;
    // The instance id comes from ECS, never from an event field, and
    // must look like an EC2 id before it reaches SSM.
    let Some(instance) = cluster
        .describe_container_instance(container_instance_arn)
        .await?
    else {
        return Ok(EffectResult::Rejected {
            reason: format!("container instance of node {node_name} no longer exists"),
        });
    };
    let instance_id = instance.ec2_instance_id;
    if !is_ec2_instance_id(&instance_id) {
        return Ok(EffectResult::Rejected {
            reason: format!(
                "ECS reported instance id {instance_id:?} for node {node_name}, which is not an EC2 instance id"
            ),
        });
    }
    let host = &engine.ports.host;
    if let Some(command_id) = host.find_reboot(&instance_id, token).await? {
        return Ok(EffectResult::CommandSent { command_id });
    }
    if !host.is_reachable(&instance_id).await? {
        return Ok(EffectResult::Rejected {
            reason: format!(
                "SSM cannot reach instance {instance_id} of node {node_name} (not managed or offline)"
            ),
        });
    }
    match host.reboot(&instance_id, token).await? {
        RebootOutcome::Sent { command_id } => Ok(EffectResult::CommandSent { command_id }),
        RebootOutcome::Rejected { reason } => Ok(EffectResult::Rejected { reason }),
    }
}

/// Starts a task unless one was already started with the same token.
async fn start_once<C: Cluster>(
    cluster: &C,
    request: &StartTaskRequest,
) -> Result<EffectResult, CallError> {
    let existing = cluster
        .tasks_started_by(&request.container_instance_arn, &request.started_by)
        .await?;
    if let Some(task_arn) = existing.into_iter().next() {
        return Ok(EffectResult::TaskStarted { task_arn });
    }
    match cluster.start_task(request).await? {
        StartTaskOutcome::Started { task_arn } => Ok(EffectResult::TaskStarted { task_arn }),
        StartTaskOutcome::Rejected { reason } => Ok(EffectResult::Rejected { reason }),
    }
}

/// Whether a string has the EC2 instance id form: `i-` and 8 or 17 hex digits.
#[must_use]
pub fn is_ec2_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

#[cfg(test)]
mod tests {
    use super::is_ec2_instance_id;

    #[test]
    fn instance_id_format_checked() {
        assert!(is_ec2_instance_id("i-0a1b2c3d4e5f60718"));
        assert!(is_ec2_instance_id("i-f3a8506b"));
        assert!(!is_ec2_instance_id("i-0A1B2C3D4E5F60718"));
        assert!(!is_ec2_instance_id("i-0a1b; reboot"));
        assert!(!is_ec2_instance_id("mi-0a1b2c3d4e5f60718"));
        assert!(!is_ec2_instance_id(""));
    }
}
