//! Start-up configuration from environment variables.
//!
//! The variable names are those of the earlier Python implementation
//! (`TASK_TABLE_NAME`, `ECS_CLUSTER_NAME`, ...), so a deployment of it can
//! move over. Each value is read once, checked against the form AWS accepts,
//! and a missing or invalid value is a [`ConfigError`] that names the variable
//! and the expected form.

use gpu_recovery_domain::Policy;
use gpu_recovery_domain::policy::PolicyError;

pub const TASK_TABLE_NAME: &str = "TASK_TABLE_NAME";
pub const JOB_TABLE_NAME: &str = "JOB_TABLE_NAME";
pub const NODE_TABLE_NAME: &str = "NODE_TABLE_NAME";
pub const ECS_CLUSTER_NAME: &str = "ECS_CLUSTER_NAME";
pub const DCGM_HEALTH_CHECK_TASK: &str = "DCGM_HEALTH_CHECK_TASK";
pub const SNS_TOPIC_ARN: &str = "SNS_TOPIC_ARN";
pub const HEALTH_CHECK_LOG_GROUP: &str = "HEALTH_CHECK_LOG_GROUP";
pub const HEALTH_CHECK_LOG_STREAM_PREFIX: &str = "HEALTH_CHECK_LOG_STREAM_PREFIX";

/// Table names of the original schema.
pub const DEFAULT_TASK_TABLE: &str = "ecs_task";
pub const DEFAULT_JOB_TABLE: &str = "ecs_job";
pub const DEFAULT_NODE_TABLE: &str = "ecs_node";
/// Default `awslogs-stream-prefix` of the health-check task definition.
pub const DEFAULT_LOG_STREAM_PREFIX: &str = "health-check";

/// A missing or invalid configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set: expected {expected}")]
    Missing { name: String, expected: String },
    #[error("invalid {name}={value:?}: expected {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: String,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// Names of the three tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub task: String,
    pub job: String,
    pub node: String,
}

impl Default for TableNames {
    fn default() -> TableNames {
        TableNames {
            task: DEFAULT_TASK_TABLE.to_owned(),
            job: DEFAULT_JOB_TABLE.to_owned(),
            node: DEFAULT_NODE_TABLE.to_owned(),
        }
    }
}

impl TableNames {
    /// Reads the table names, each defaulting to the original name.
    pub fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<TableNames, ConfigError> {
        Ok(TableNames {
            task: table_name(lookup, TASK_TABLE_NAME, DEFAULT_TASK_TABLE)?,
            job: table_name(lookup, JOB_TABLE_NAME, DEFAULT_JOB_TABLE)?,
            node: table_name(lookup, NODE_TABLE_NAME, DEFAULT_NODE_TABLE)?,
        })
    }

    /// Reads the table names from the process environment.
    pub fn from_env() -> Result<TableNames, ConfigError> {
        TableNames::from_lookup(&env_lookup)
    }
}

/// Where the DCGM Task Monitor reads the health-check runner's JSON line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckLogs {
    pub log_group: String,
    /// The task definition's `awslogs-stream-prefix`; streams are named
    /// `<prefix>/<container name>/<task id>`.
    pub stream_prefix: String,
}

/// Everything a Lambda function or the `submit` command reads at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub tables: TableNames,
    /// Cluster name or ARN, as given.
    pub cluster: String,
    /// Health-check task definition: family, `family:revision` or ARN.
    pub health_check_task: String,
    /// Required by the functions, which all publish; see [`Config::require_topic`].
    pub topic_arn: Option<String>,
    pub health_check_logs: Option<HealthCheckLogs>,
    pub policy: Policy,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(&env_lookup)
    }

    /// Reads the configuration from a lookup; empty values count as unset.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| non_empty(lookup, name);
        let tables = TableNames::from_lookup(lookup)?;

        let cluster_expected = "a cluster name (1 to 255 letters, digits, hyphens or \
                                underscores) or a cluster ARN";
        let cluster =
            get(ECS_CLUSTER_NAME).ok_or_else(|| missing(ECS_CLUSTER_NAME, cluster_expected))?;
        if !is_cluster(&cluster) {
            return Err(invalid(ECS_CLUSTER_NAME, &cluster, cluster_expected));
        }

        let task_expected = "a task definition family, family:revision or task definition ARN";
        let health_check_task = get(DCGM_HEALTH_CHECK_TASK)
            .ok_or_else(|| missing(DCGM_HEALTH_CHECK_TASK, task_expected))?;
        if !is_task_definition(&health_check_task) {
            return Err(invalid(
                DCGM_HEALTH_CHECK_TASK,
                &health_check_task,
                task_expected,
            ));
        }

        let topic_arn = match get(SNS_TOPIC_ARN) {
            Some(arn) if is_topic_arn(&arn) => Some(arn),
            Some(arn) => {
                return Err(invalid(
                    SNS_TOPIC_ARN,
                    &arn,
                    "an SNS topic ARN such as arn:aws:sns:us-east-1:111122223333:gpu-recovery",
                ));
            }
            None => None,
        };

        let health_check_logs = match get(HEALTH_CHECK_LOG_GROUP) {
            None => None,
            Some(group) if is_log_group(&group) => {
                let stream_prefix = get(HEALTH_CHECK_LOG_STREAM_PREFIX)
                    .unwrap_or_else(|| DEFAULT_LOG_STREAM_PREFIX.to_owned());
                if !is_stream_prefix(&stream_prefix) {
                    return Err(invalid(
                        HEALTH_CHECK_LOG_STREAM_PREFIX,
                        &stream_prefix,
                        "1 to 400 characters without ':' or '*'",
                    ));
                }
                Some(HealthCheckLogs {
                    log_group: group,
                    stream_prefix,
                })
            }
            Some(group) => {
                return Err(invalid(
                    HEALTH_CHECK_LOG_GROUP,
                    &group,
                    "a log group name of 1 to 512 letters, digits, '_', '-', '/', '.' or '#'",
                ));
            }
        };

        let policy = Policy::from_lookup(|name| lookup(name))?;
        Ok(Config {
            tables,
            cluster,
            health_check_task,
            topic_arn,
            health_check_logs,
            policy,
        })
    }

    /// The cluster name, also when the configuration gives its ARN.
    #[must_use]
    pub fn cluster_name(&self) -> &str {
        self.cluster.rsplit('/').next().unwrap_or(&self.cluster)
    }

    /// The SNS topic, which every function that publishes needs.
    pub fn require_topic(&self) -> Result<&str, ConfigError> {
        self.topic_arn.as_deref().ok_or_else(|| {
            missing(
                SNS_TOPIC_ARN,
                "the ARN of the SNS topic that receives operator notifications",
            )
        })
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn non_empty(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn missing(name: &str, expected: &str) -> ConfigError {
    ConfigError::Missing {
        name: name.to_owned(),
        expected: expected.to_owned(),
    }
}

fn invalid(name: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

fn table_name(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: &str,
) -> Result<String, ConfigError> {
    let value = non_empty(lookup, name).unwrap_or_else(|| default.to_owned());
    // DynamoDB table names: 3 to 255 characters of a-z, A-Z, 0-9, '_', '-', '.'.
    let valid = (3..=255).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if valid {
        Ok(value)
    } else {
        Err(invalid(
            name,
            &value,
            "a DynamoDB table name of 3 to 255 letters, digits, '_', '-' or '.'",
        ))
    }
}

fn is_name(text: &str) -> bool {
    (1..=255).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_arn_of(text: &str, service: &str, resource: &str) -> Option<String> {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let [arn, _partition, found_service, _region, _account, rest] = parts.as_slice() else {
        return None;
    };
    let name = rest.strip_prefix(resource)?;
    (*arn == "arn" && *found_service == service).then(|| name.to_owned())
}

fn is_cluster(text: &str) -> bool {
    if text.starts_with("arn:") {
        return is_arn_of(text, "ecs", "cluster/").is_some_and(|name| is_name(&name));
    }
    is_name(text)
}

fn is_task_definition(text: &str) -> bool {
    let name = if text.starts_with("arn:") {
        match is_arn_of(text, "ecs", "task-definition/") {
            Some(name) => name,
            None => return false,
        }
    } else {
        text.to_owned()
    };
    match name.rsplit_once(':') {
        Some((family, revision)) => {
            is_name(family) && !revision.is_empty() && revision.chars().all(|c| c.is_ascii_digit())
        }
        None => is_name(&name),
    }
}

fn is_topic_arn(text: &str) -> bool {
    // Topic names are letters, digits, hyphens and underscores; FIFO topics
    // end in `.fifo`.
    is_arn_of(text, "sns", "")
        .is_some_and(|name| is_name(name.strip_suffix(".fifo").unwrap_or(&name)))
}

fn is_log_group(text: &str) -> bool {
    (1..=512).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-/.#".contains(c))
}

fn is_stream_prefix(text: &str) -> bool {
    (1..=400).contains(&text.len()) && !text.contains(':') && !text.contains('*')
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(&|name| map.get(name).cloned())
    }

    const REQUIRED: [(&str, &str); 2] = [
        (ECS_CLUSTER_NAME, "gpu-training"),
        (DCGM_HEALTH_CHECK_TASK, "gpu-dcgm-health-check"),
    ];

    #[test]
    fn config_defaults_original_table_names() {
        let config = config_from(&REQUIRED).unwrap();
        assert_eq!(config.tables, TableNames::default());
        assert_eq!(config.tables.task, "ecs_task");
        assert_eq!(config.cluster_name(), "gpu-training");
        assert!(config.topic_arn.is_none());
        assert!(config.health_check_logs.is_none());
        assert_eq!(config.policy, Policy::default());
    }

    #[test]
    fn config_missing_cluster_names_variable() {
        let error = config_from(&[(DCGM_HEALTH_CHECK_TASK, "hc")]).unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("ECS_CLUSTER_NAME is not set"), "{text}");
        assert!(text.contains("cluster name"), "{text}");
    }

    #[test]
    fn config_missing_health_check_task() {
        let error = config_from(&[(ECS_CLUSTER_NAME, "c")]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("DCGM_HEALTH_CHECK_TASK is not set"),
            "{error}"
        );
    }

    #[test]
    fn config_rejects_invalid_values() {
        for (name, value) in [
            (ECS_CLUSTER_NAME, "has space"),
            (
                ECS_CLUSTER_NAME,
                "arn:aws:sns:us-east-1:111122223333:cluster/x",
            ),
            (DCGM_HEALTH_CHECK_TASK, "family:rev"),
            (SNS_TOPIC_ARN, "gpu-recovery"),
            (TASK_TABLE_NAME, "ab"),
            (JOB_TABLE_NAME, "bad name"),
            (HEALTH_CHECK_LOG_GROUP, "bad group!"),
        ] {
            let mut pairs = REQUIRED.to_vec();
            pairs.retain(|(key, _)| *key != name);
            pairs.push((name, value));
            let error = config_from(&pairs).unwrap_err();
            let text = error.to_string();
            assert!(
                text.starts_with(&format!("invalid {name}={value:?}: expected ")),
                "{text}"
            );
        }
    }

    #[test]
    fn config_reads_arns_and_logs() {
        let mut pairs = vec![
            (
                ECS_CLUSTER_NAME,
                "arn:aws:ecs:us-west-2:111122223333:cluster/gpu-training",
            ),
            (
                DCGM_HEALTH_CHECK_TASK,
                "arn:aws:ecs:us-west-2:111122223333:task-definition/gpu-dcgm-health-check:3",
            ),
            (
                SNS_TOPIC_ARN,
                "arn:aws:sns:us-west-2:111122223333:gpu-recovery",
            ),
            (HEALTH_CHECK_LOG_GROUP, "/ecs/gpu-dcgm-health-check"),
        ];
        let config = config_from(&pairs).unwrap();
        assert_eq!(config.cluster_name(), "gpu-training");
        assert_eq!(
            config.require_topic().unwrap(),
            "arn:aws:sns:us-west-2:111122223333:gpu-recovery"
        );
        let logs = config.health_check_logs.unwrap();
        assert_eq!(logs.log_group, "/ecs/gpu-dcgm-health-check");
        assert_eq!(logs.stream_prefix, DEFAULT_LOG_STREAM_PREFIX);

        pairs.push((HEALTH_CHECK_LOG_STREAM_PREFIX, "bad:prefix"));
        let error = config_from(&pairs).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid HEALTH_CHECK_LOG_STREAM_PREFIX"),
            "{error}"
        );
    }

    #[test]
    fn require_topic_names_variable() {
        let config = config_from(&REQUIRED).unwrap();
        let error = config.require_topic().unwrap_err();
        assert!(
            error.to_string().starts_with("SNS_TOPIC_ARN is not set"),
            "{error}"
        );
    }

    #[test]
    fn config_passes_policy_errors() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("MAX_RETRIES", "many"));
        let error = config_from(&pairs).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid MAX_RETRIES="),
            "{error}"
        );
    }
}
