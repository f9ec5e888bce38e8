//! The cluster port on Amazon ECS, every call on the configured cluster.
//!
//! Errors follow [`crate::errors`]: InvalidParameterException and
//! ClientException are rejected, throttling, 5xx and timeouts are transient.
//! StartTask's own `failures` (no room on the instance, an instance that is
//! not ACTIVE) are a [`StartTaskOutcome::Rejected`], not an error.

pub mod overrides;

use std::collections::BTreeMap;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    Attribute, ContainerInstanceStatus, DesiredStatus, Failure, Tag, Task, TaskField,
};
use gpu_recovery_ports::{
    CallError, Cluster, ContainerInstance, StartTaskOutcome, StartTaskRequest, TaskDescription,
};

use crate::errors::call_error;

/// ECS limits a StopTask reason to 255 characters.
const MAX_STOP_REASON: usize = 255;

/// The ECS calls of the engine, on one cluster.
#[derive(Debug, Clone)]
pub struct EcsCluster {
    client: Client,
    cluster: String,
}

impl EcsCluster {
    /// An adapter for `cluster`, a cluster name or ARN.
    #[must_use]
    pub fn new(client: Client, cluster: &str) -> EcsCluster {
        EcsCluster {
            client,
            cluster: cluster.to_owned(),
        }
    }

    #[must_use]
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    async fn list_started_by(
        &self,
        container_instance_arn: &str,
        started_by: &str,
        desired: DesiredStatus,
    ) -> Result<Vec<String>, CallError> {
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let output = self
                .client
                .list_tasks()
                .cluster(&self.cluster)
                .container_instance(container_instance_arn)
                .started_by(started_by)
                .desired_status(desired.clone())
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| call_error("ListTasks", &e))?;
            arns.extend(output.task_arns().iter().cloned());
            match output.next_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(arns),
            }
        }
    }
}

/// The failures of a call as one sentence, such as
/// `arn:...: RESOURCE:GPU (not enough GPUs)`.
fn describe_failures(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(|failure| {
            let subject = failure.arn().unwrap_or("(no ARN)");
            let reason = failure.reason().unwrap_or("no reason given");
            match failure.detail() {
                Some(detail) => format!("{subject}: {reason} ({detail})"),
                None => format!("{subject}: {reason}"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn only_missing(failures: &[Failure]) -> bool {
    failures.iter().all(|f| f.reason() == Some("MISSING"))
}

fn describe_task_output(task: &Task) -> TaskDescription {
    let tags: BTreeMap<String, String> = task
        .tags()
        .iter()
        .filter_map(|tag| {
            Some((
                tag.key()?.to_owned(),
                tag.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    TaskDescription {
        task_arn: task.task_arn().unwrap_or_default().to_owned(),
        last_status: task.last_status().unwrap_or_default().to_owned(),
        container_instance_arn: task.container_instance_arn().unwrap_or_default().to_owned(),
        task_definition_arn: task.task_definition_arn().unwrap_or_default().to_owned(),
        started_by: task.started_by().map(str::to_owned),
        tags,
        stop_code: task.stop_code().map(|code| code.as_str().to_owned()),
        exit_codes: task
            .containers()
            .iter()
            .filter_map(aws_sdk_ecs::types::Container::exit_code)
            .collect(),
        stopped_reason: task.stopped_reason().map(str::to_owned),
        version: u64::try_from(task.version()).unwrap_or_default(),
        overrides: overrides::to_json(task.overrides()),
    }
}

impl Cluster for EcsCluster {
    async fn describe_task(
        &self,
        task_arn: &str,
        include_tags: bool,
    ) -> Result<Option<TaskDescription>, CallError> {
        let mut request = self
            .client
            .describe_tasks()
            .cluster(&self.cluster)
            .tasks(task_arn);
        if include_tags {
            request = request.include(TaskField::Tags);
        }
        let output = request
            .send()
            .await
            .map_err(|e| call_error("DescribeTasks", &e))?;
        if let Some(task) = output.tasks().first() {
            return Ok(Some(describe_task_output(task)));
        }
        if only_missing(output.failures()) {
            return Ok(None);
        }
        Err(CallError::rejected(
            "DescribeTasks",
            format!("task {task_arn}: {}", describe_failures(output.failures())),
        ))
    }

    async fn tasks_started_by(
        &self,
        container_instance_arn: &str,
        started_by: &str,
    ) -> Result<Vec<String>, CallError> {
        // ListTasks returns only tasks whose desired status is RUNNING unless
        // told otherwise; a task that already stopped was started all the same.
        let mut arns = self
            .list_started_by(container_instance_arn, started_by, DesiredStatus::Running)
            .await?;
        arns.extend(
            self.list_started_by(container_instance_arn, started_by, DesiredStatus::Stopped)
                .await?,
        );
        Ok(arns)
    }

    async fn start_task(&self, request: &StartTaskRequest) -> Result<StartTaskOutcome, CallError> {
        let task_overrides = overrides::to_sdk(&request.overrides).map_err(|error| {
            CallError::rejected(
                "StartTask",
                format!(
                    "{error} (task definition {} on {})",
                    request.task_definition, request.container_instance_arn
                ),
            )
        })?;
        let tags: Vec<Tag> = request
            .tags
            .iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect();
        let output = self
            .client
            .start_task()
            .cluster(&self.cluster)
            .task_definition(&request.task_definition)
            .container_instances(&request.container_instance_arn)
            .started_by(&request.started_by)
            .set_overrides(task_overrides)
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| call_error("StartTask", &e))?;
        if let Some(arn) = output.tasks().first().and_then(Task::task_arn) {
            return Ok(StartTaskOutcome::Started {
                task_arn: arn.to_owned(),
            });
        }
        if !output.failures().is_empty() {
            return Ok(StartTaskOutcome::Rejected {
                reason: describe_failures(output.failures()),
            });
        }
        Err(CallError::transient(
            "StartTask",
            format!(
                "ECS returned neither a task nor a failure for {} on {}",
                request.task_definition, request.container_instance_arn
            ),
        ))
    }

    async fn stop_task(&self, task_arn: &str, reason: &str) -> Result<(), CallError> {
        let reason: String = reason.chars().take(MAX_STOP_REASON).collect();
        self.client
            .stop_task()
            .cluster(&self.cluster)
            .task(task_arn)
            .reason(reason)
            .send()
            .await
            .map_err(|e| call_error("StopTask", &e))?;
        Ok(())
    }

    async fn put_attribute(
        &self,
        container_instance_arn: &str,
        name: &str,
        value: &str,
    ) -> Result<(), CallError> {
        // With the full container instance ARN as targetId, ECS needs no
        // targetType: it is required only for the short id.
        let attribute = Attribute::builder()
            .name(name)
            .value(value)
            .target_id(container_instance_arn)
            .build()
            .map_err(|e| CallError::rejected("PutAttributes", e.to_string()))?;
        self.client
            .put_attributes()
            .cluster(&self.cluster)
            .attributes(attribute)
            .send()
            .await
            .map_err(|e| call_error("PutAttributes", &e))?;
        Ok(())
    }

    async fn drain(&self, container_instance_arn: &str) -> Result<(), CallError> {
        let output = self
            .client
            .update_container_instances_state()
            .cluster(&self.cluster)
            .container_instances(container_instance_arn)
            .status(ContainerInstanceStatus::Draining)
            .send()
            .await
            .map_err(|e| call_error("UpdateContainerInstancesState", &e))?;
        if output.failures().is_empty() {
            Ok(())
        } else {
            Err(CallError::rejected(
                "UpdateContainerInstancesState",
                describe_failures(output.failures()),
            ))
        }
    }

    async fn describe_container_instance(
        &self,
        container_instance_arn: &str,
    ) -> Result<Option<ContainerInstance>, CallError> {
        let output = self
            .client
            .describe_container_instances()
            .cluster(&self.cluster)
            .container_instances(container_instance_arn)
            .send()
            .await
            .map_err(|e| call_error("DescribeContainerInstances", &e))?;
        if let Some(instance) = output.container_instances().first() {
            return Ok(Some(ContainerInstance {
                container_instance_arn: instance
                    .container_instance_arn()
                    .unwrap_or(container_instance_arn)
                    .to_owned(),
                ec2_instance_id: instance.ec2_instance_id().unwrap_or_default().to_owned(),
                agent_connected: instance.agent_connected(),
                status: instance.status().unwrap_or_default().to_owned(),
                version: u64::try_from(instance.version()).unwrap_or_default(),
            }));
        }
        if only_missing(output.failures()) {
            return Ok(None);
        }
        Err(CallError::rejected(
            "DescribeContainerInstances",
            format!(
                "container instance {container_instance_arn}: {}",
                describe_failures(output.failures())
            ),
        ))
    }
}
