//! Parses the EventBridge documents that Amazon ECS emits ("ECS Task State
//! Change", "ECS Container Instance State Change") into observations.
//!
//! The Lambda functions and the simulator share this parser, so every
//! simulated run exercises it. A document that is not JSON, or that lacks a
//! field the engine needs, is an [`EventError`] naming the field. A valid
//! event that the engine does not act on (another cluster, a Fargate task, a
//! status in between) is [`Parsed::Skipped`] with the reason.

use gpu_recovery_domain::Timestamp;
use gpu_recovery_domain::observation::{
    HealthCheckResult, InstanceChange, Observation, TaskRun, TaskStop,
};
use serde_json::Value;

pub const TASK_STATE_CHANGE: &str = "ECS Task State Change";
pub const INSTANCE_STATE_CHANGE: &str = "ECS Container Instance State Change";

/// What the parser needs to know to route an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Cluster name; events of other clusters are skipped.
    pub cluster_name: String,
    /// Task definition family of the health-check task.
    pub health_check_family: String,
}

impl RouteConfig {
    /// Builds a route from a cluster name or ARN and a health-check task
    /// definition given as a family, `family:revision` or an ARN.
    #[must_use]
    pub fn new(cluster: &str, health_check_task: &str) -> RouteConfig {
        RouteConfig {
            cluster_name: cluster.rsplit('/').next().unwrap_or(cluster).to_owned(),
            health_check_family: family_of(health_check_task),
        }
    }
}

/// The parser's result for a well-formed event.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Observation(Observation),
    Skipped(String),
}

/// A malformed event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is not valid JSON: {0}")]
    Json(String),
    #[error("event field {field} is missing; an ECS {kind} event always has it")]
    Missing { field: String, kind: &'static str },
    #[error("event field {field} is {value}: expected {expected}")]
    Invalid {
        field: String,
        value: String,
        expected: &'static str,
    },
}

/// Parses one EventBridge document.
pub fn parse_event(text: &str, route: &RouteConfig) -> Result<Parsed, EventError> {
    let value: Value = serde_json::from_str(text).map_err(|e| EventError::Json(e.to_string()))?;
    parse_value(&value, route)
}

/// Parses one EventBridge document that is already JSON.
pub fn parse_value(event: &Value, route: &RouteConfig) -> Result<Parsed, EventError> {
    if !event.is_object() {
        return Err(EventError::Invalid {
            field: "(event)".to_owned(),
            value: kind_of(event),
            expected: "a JSON object",
        });
    }
    let source = event
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let detail_type = event
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if source != "aws.ecs" {
        return Ok(Parsed::Skipped(format!(
            "event source {source:?} is not aws.ecs"
        )));
    }
    let kind = match detail_type {
        TASK_STATE_CHANGE => "task state change",
        INSTANCE_STATE_CHANGE => "container instance state change",
        other => {
            return Ok(Parsed::Skipped(format!(
                "detail-type {other:?} is not handled"
            )));
        }
    };
    let detail = event
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or(EventError::Missing {
            field: "detail".to_owned(),
            kind,
        })?;
    let fields = Fields { detail, kind };
    let cluster = fields.text("clusterArn")?;
    let cluster_name = cluster.rsplit('/').next().unwrap_or(cluster);
    if cluster_name != route.cluster_name {
        return Ok(Parsed::Skipped(format!(
            "cluster {cluster_name} is not the configured cluster {}",
            route.cluster_name
        )));
    }
    let fallback_time = event.get("time").and_then(Value::as_str);
    if detail_type == TASK_STATE_CHANGE {
        parse_task(&fields, route, fallback_time)
    } else {
        parse_instance(&fields, fallback_time)
    }
}

fn parse_task(
    fields: &Fields<'_>,
    route: &RouteConfig,
    fallback_time: Option<&str>,
) -> Result<Parsed, EventError> {
    let task_arn = fields.text("taskArn")?.to_owned();
    let last_status = fields.text("lastStatus")?;
    let version = fields.version()?;
    let Some(container_instance_arn) = fields.optional_text("containerInstanceArn")? else {
        return Ok(Parsed::Skipped(format!(
            "task {task_arn} has no container instance (not an EC2 task)"
        )));
    };
    let container_instance_arn = container_instance_arn.to_owned();
    let task_definition_arn = fields
        .optional_text("taskDefinitionArn")?
        .unwrap_or_default()
        .to_owned();
    let family = match fields.optional_text("group")? {
        Some(group) if group.starts_with("family:") => group["family:".len()..].to_owned(),
        _ => family_of(&task_definition_arn),
    };
    let at = fields.time(&["stoppedAt", "updatedAt"], fallback_time)?;
    let stop_code = fields.optional_text("stopCode")?.map(str::to_owned);
    let stopped_reason = fields.optional_text("stoppedReason")?.map(str::to_owned);
    let exit_codes = fields.exit_codes()?;
    let desired = fields.optional_text("desiredStatus")?.unwrap_or_default();

    if family == route.health_check_family {
        if last_status != "STOPPED" {
            return Ok(Parsed::Skipped(format!(
                "health check {task_arn} is {last_status}, not STOPPED"
            )));
        }
        return Ok(Parsed::Observation(Observation::HealthCheckFinished(
            HealthCheckResult {
                task_arn,
                container_instance_arn,
                exit_code: exit_codes.first().copied(),
                stop_code,
                stopped_reason,
                report: None,
                version,
                at,
            },
        )));
    }
    // ECS can report the stop code and exit codes while the task is still
    // deprovisioning; acting then saves minutes, and the later STOPPED event
    // is a duplicate by version.
    let stopping = last_status == "STOPPED"
        || (desired == "STOPPED"
            && stop_code.is_some()
            && (!exit_codes.is_empty()
                || stop_code.as_deref() != Some("EssentialContainerExited")));
    if stopping {
        return Ok(Parsed::Observation(Observation::TaskStopped(TaskStop {
            task_arn,
            container_instance_arn,
            task_definition_arn,
            stop_code,
            exit_codes,
            stopped_reason,
            version,
            at,
        })));
    }
    if last_status == "RUNNING" && desired != "STOPPED" {
        let overrides = fields
            .detail
            .get("overrides")
            .cloned()
            .unwrap_or(Value::Null);
        return Ok(Parsed::Observation(Observation::TaskRunning(TaskRun {
            task_arn,
            container_instance_arn,
            task_definition_arn,
            started_by: fields.optional_text("startedBy")?.map(str::to_owned),
            overrides,
            tags: None,
            ec2_instance_id: None,
            version,
            at,
        })));
    }
    Ok(Parsed::Skipped(format!(
        "task {task_arn} is {last_status} (desired {desired}); nothing to act on yet"
    )))
}

fn parse_instance(fields: &Fields<'_>, fallback_time: Option<&str>) -> Result<Parsed, EventError> {
    let container_instance_arn = fields.text("containerInstanceArn")?.to_owned();
    let agent_connected = match fields.detail.get("agentConnected") {
        Some(Value::Bool(connected)) => *connected,
        Some(other) => {
            return Err(EventError::Invalid {
                field: "detail.agentConnected".to_owned(),
                value: other.to_string(),
                expected: "true or false",
            });
        }
        None => {
            return Err(EventError::Missing {
                field: "detail.agentConnected".to_owned(),
                kind: fields.kind,
            });
        }
    };
    Ok(Parsed::Observation(Observation::InstanceChanged(
        InstanceChange {
            container_instance_arn,
            ec2_instance_id: fields.optional_text("ec2InstanceId")?.map(str::to_owned),
            agent_connected,
            status: fields
                .optional_text("status")?
                .unwrap_or_default()
                .to_owned(),
            version: fields.version()?,
            updated_at: fields.time(&["updatedAt"], fallback_time)?,
        },
    )))
}

/// The family of a task definition given as an ARN, `family:revision` or a family.
#[must_use]
pub fn family_of(task_definition: &str) -> String {
    let name = task_definition
        .rsplit('/')
        .next()
        .unwrap_or(task_definition);
    match name.rsplit_once(':') {
        Some((family, revision)) if revision.chars().all(|c| c.is_ascii_digit()) => {
            family.to_owned()
        }
        _ => name.to_owned(),
    }
}

struct Fields<'a> {
    detail: &'a Value,
    kind: &'static str,
}

impl<'a> Fields<'a> {
    fn text(&self, name: &str) -> Result<&'a str, EventError> {
        self.optional_text(name)?
            .ok_or_else(|| EventError::Missing {
                field: format!("detail.{name}"),
                kind: self.kind,
            })
    }

    fn optional_text(&self, name: &str) -> Result<Option<&'a str>, EventError> {
        match self.detail.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(other) => Err(EventError::Invalid {
                field: format!("detail.{name}"),
                value: other.to_string(),
                expected: "a string",
            }),
        }
    }

    fn version(&self) -> Result<u64, EventError> {
        match self.detail.get("version") {
            Some(value) => value.as_u64().ok_or_else(|| EventError::Invalid {
                field: "detail.version".to_owned(),
                value: value.to_string(),
                expected: "a whole non-negative number",
            }),
            None => Err(EventError::Missing {
                field: "detail.version".to_owned(),
                kind: self.kind,
            }),
        }
    }

    fn time(&self, names: &[&str], fallback: Option<&str>) -> Result<Timestamp, EventError> {
        for name in names {
            if let Some(text) = self.optional_text(name)? {
                return Timestamp::parse_rfc3339(text).map_err(|_| EventError::Invalid {
                    field: format!("detail.{name}"),
                    value: format!("{text:?}"),
                    expected: "an RFC 3339 time such as 2026-11-20T09:14:21.770Z",
                });
            }
        }
        let text = fallback.ok_or_else(|| EventError::Missing {
            field: format!("detail.{}", names[0]),
            kind: self.kind,
        })?;
        Timestamp::parse_rfc3339(text).map_err(|_| EventError::Invalid {
            field: "time".to_owned(),
            value: format!("{text:?}"),
            expected: "an RFC 3339 time such as 2026-11-20T09:14:21Z",
        })
    }

    fn exit_codes(&self) -> Result<Vec<i32>, EventError> {
        let Some(containers) = self.detail.get("containers") else {
            return Ok(Vec::new());
        };
        let Some(containers) = containers.as_array() else {
            return Err(EventError::Invalid {
                field: "detail.containers".to_owned(),
                value: kind_of(containers),
                expected: "a list",
            });
        };
        let mut codes = Vec::new();
        for (index, container) in containers.iter().enumerate() {
            match container.get("exitCode") {
                None | Some(Value::Null) => {}
                Some(value) => {
                    let code = value
                        .as_i64()
                        .and_then(|c| i32::try_from(c).ok())
                        .ok_or_else(|| EventError::Invalid {
                            field: format!("detail.containers[{index}].exitCode"),
                            value: value.to_string(),
                            expected: "an integer",
                        })?;
                    codes.push(code);
                }
            }
        }
        Ok(codes)
    }
}

fn kind_of(value: &Value) -> String {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
    .to_owned()
}

#[cfg(test)]
mod tests;
