//! ECS `TaskOverride` between its JSON form and the SDK types.
//!
//! Records keep overrides as the JSON that ECS events and the DescribeTasks
//! API use (`containerOverrides`, `environment`, ...). A StartTask call needs
//! the SDK types, so this module parses that JSON strictly: an unknown field,
//! a wrong type or an unknown enum value is an [`OverrideError`] before any
//! call is made, never a silently dropped setting. Elastic Inference
//! accelerator overrides are rejected too: ECS no longer offers them.

use aws_sdk_ecs::types::{
    ContainerOverride, EnvironmentFile, EnvironmentFileType, EphemeralStorage, KeyValuePair,
    ResourceRequirement, ResourceType, TaskOverride,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Invalid override JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid task overrides: {0}")]
pub struct OverrideError(pub String);

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TaskOverrideJson {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    container_overrides: Vec<ContainerOverrideJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    execution_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ephemeral_storage: Option<EphemeralStorageJson>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ContainerOverrideJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    environment: Vec<KeyValueJson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    environment_files: Vec<TypedValueJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_reservation: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    resource_requirements: Vec<TypedValueJson>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyValueJson {
    name: String,
    #[serde(default)]
    value: String,
}

/// The `{"value": ..., "type": ...}` shape of environment files and
/// resource requirements.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypedValueJson {
    value: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EphemeralStorageJson {
    #[serde(rename = "sizeInGiB")]
    size_in_gib: i32,
}

/// Parses override JSON into the SDK type; `null` means no overrides.
pub fn to_sdk(value: &Value) -> Result<Option<TaskOverride>, OverrideError> {
    if value.is_null() {
        return Ok(None);
    }
    if !value.is_object() {
        return Err(OverrideError(format!(
            "expected a JSON object with fields such as containerOverrides, found {value}"
        )));
    }
    let parsed: TaskOverrideJson =
        serde_json::from_value(value.clone()).map_err(|e| OverrideError(e.to_string()))?;

    let mut containers = Vec::new();
    for (index, container) in parsed.container_overrides.into_iter().enumerate() {
        containers.push(container_to_sdk(container, index)?);
    }
    let storage = parsed.ephemeral_storage.map(|storage| {
        EphemeralStorage::builder()
            .size_in_gib(storage.size_in_gib)
            .build()
    });
    Ok(Some(
        TaskOverride::builder()
            .set_container_overrides(non_empty(containers))
            .set_cpu(parsed.cpu)
            .set_memory(parsed.memory)
            .set_execution_role_arn(parsed.execution_role_arn)
            .set_task_role_arn(parsed.task_role_arn)
            .set_ephemeral_storage(storage)
            .build(),
    ))
}

fn container_to_sdk(
    container: ContainerOverrideJson,
    index: usize,
) -> Result<ContainerOverride, OverrideError> {
    let at = |field: &str| format!("containerOverrides[{index}].{field}");
    let environment = container
        .environment
        .into_iter()
        .map(|pair| {
            KeyValuePair::builder()
                .name(pair.name)
                .value(pair.value)
                .build()
        })
        .collect();
    let mut files = Vec::new();
    for (file_index, file) in container.environment_files.into_iter().enumerate() {
        if file.kind != "s3" {
            return Err(OverrideError(format!(
                "{} is {:?}: expected \"s3\"",
                at(&format!("environmentFiles[{file_index}].type")),
                file.kind
            )));
        }
        files.push(
            EnvironmentFile::builder()
                .value(file.value)
                .r#type(EnvironmentFileType::S3)
                .build()
                .map_err(|e| OverrideError(format!("{}: {e}", at("environmentFiles"))))?,
        );
    }
    let mut requirements = Vec::new();
    for (requirement_index, requirement) in container.resource_requirements.into_iter().enumerate()
    {
        let kind = match requirement.kind.as_str() {
            "GPU" => ResourceType::Gpu,
            "InferenceAccelerator" => ResourceType::InferenceAccelerator,
            other => {
                return Err(OverrideError(format!(
                    "{} is {other:?}: expected \"GPU\" or \"InferenceAccelerator\"",
                    at(&format!("resourceRequirements[{requirement_index}].type"))
                )));
            }
        };
        requirements.push(
            ResourceRequirement::builder()
                .value(requirement.value)
                .r#type(kind)
                .build()
                .map_err(|e| OverrideError(format!("{}: {e}", at("resourceRequirements"))))?,
        );
    }
    Ok(ContainerOverride::builder()
        .set_name(container.name)
        .set_command(container.command)
        .set_environment(non_empty(environment))
        .set_environment_files(non_empty(files))
        .set_cpu(container.cpu)
        .set_memory(container.memory)
        .set_memory_reservation(container.memory_reservation)
        .set_resource_requirements(non_empty(requirements))
        .build())
}

/// Converts the SDK type back into override JSON, as ECS events show it.
#[must_use]
pub fn to_json(overrides: Option<&TaskOverride>) -> Value {
    let Some(overrides) = overrides else {
        return Value::Null;
    };
    let json = TaskOverrideJson {
        container_overrides: overrides
            .container_overrides()
            .iter()
            .map(container_to_json)
            .collect(),
        cpu: overrides.cpu().map(str::to_owned),
        memory: overrides.memory().map(str::to_owned),
        execution_role_arn: overrides.execution_role_arn().map(str::to_owned),
        task_role_arn: overrides.task_role_arn().map(str::to_owned),
        ephemeral_storage: overrides.ephemeral_storage().map(|s| EphemeralStorageJson {
            size_in_gib: s.size_in_gib(),
        }),
    };
    serde_json::to_value(json).unwrap_or(Value::Null)
}

fn container_to_json(container: &ContainerOverride) -> ContainerOverrideJson {
    ContainerOverrideJson {
        name: container.name().map(str::to_owned),
        command: container
            .command
            .clone()
            .filter(|command| !command.is_empty()),
        environment: container
            .environment()
            .iter()
            .map(|pair| KeyValueJson {
                name: pair.name().unwrap_or_default().to_owned(),
                value: pair.value().unwrap_or_default().to_owned(),
            })
            .collect(),
        environment_files: container
            .environment_files()
            .iter()
            .map(|file| TypedValueJson {
                value: file.value().to_owned(),
                kind: file.r#type().as_str().to_owned(),
            })
            .collect(),
        cpu: container.cpu(),
        memory: container.memory(),
        memory_reservation: container.memory_reservation(),
        resource_requirements: container
            .resource_requirements()
            .iter()
            .map(|requirement| TypedValueJson {
                value: requirement.value().to_owned(),
                kind: requirement.r#type().as_str().to_owned(),
            })
            .collect(),
    }
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Value {
        json!({
            "containerOverrides": [{
                "name": "trainer",
                "command": ["torchrun", "train.py"],
                "environment": [
                    {"name": "NODE_RANK", "value": "0"},
                    {"name": "NNODES", "value": "2"}
                ],
                "resourceRequirements": [{"value": "8", "type": "GPU"}],
                "memoryReservation": 4096
            }],
            "taskRoleArn": "arn:aws:iam::111122223333:role/train",
            "ephemeralStorage": {"sizeInGiB": 100}
        })
    }

    #[test]
    fn overrides_round_trip_json() {
        let sdk = to_sdk(&sample()).unwrap().unwrap();
        let container = &sdk.container_overrides()[0];
        assert_eq!(container.name(), Some("trainer"));
        assert_eq!(container.environment()[0].value(), Some("0"));
        assert_eq!(
            container.resource_requirements()[0].r#type(),
            &ResourceType::Gpu
        );
        assert_eq!(sdk.ephemeral_storage().unwrap().size_in_gib(), 100);
        assert_eq!(to_json(Some(&sdk)), sample());
    }

    #[test]
    fn overrides_null_means_none() {
        assert!(to_sdk(&Value::Null).unwrap().is_none());
        assert_eq!(to_json(None), Value::Null);
    }

    #[test]
    fn overrides_reject_unknown_field() {
        let error = to_sdk(&json!({"containerOverride": []})).unwrap_err();
        assert!(error.to_string().contains("containerOverride"), "{error}");
    }

    #[test]
    fn overrides_reject_wrong_types() {
        let error = to_sdk(&json!({"containerOverrides": [{"cpu": "1024"}]})).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid task overrides:"),
            "{error}"
        );
        let error = to_sdk(&json!(["not", "an", "object"])).unwrap_err();
        assert!(error.to_string().contains("JSON object"), "{error}");
    }

    #[test]
    fn overrides_reject_unknown_resource() {
        let value = json!({"containerOverrides": [
            {"name": "t", "resourceRequirements": [{"value": "1", "type": "TPU"}]}
        ]});
        let error = to_sdk(&value).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("containerOverrides[0].resourceRequirements[0].type is \"TPU\""),
            "{error}"
        );
    }
}
