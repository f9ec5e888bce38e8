//! Launching a multi-node job from a job file, for `gpu-recovery submit`.
//!
//! A job file names the job, its task definition, its container instances in
//! rank order and each rank's ECS overrides. [`JobSpec::parse`] validates all
//! of it before any call. [`submit`] then checks the container instances in
//! ECS and hands the job to the service's `submit_job`. That starts one task
//! per rank with the tags the engine reads, then writes the job, task and
//! node records; the job record keeps the launch details, so the engine can
//! restart it. When a step fails, it stops what it started and writes nothing.
//!
//! It is written against the ports, so it runs on the AWS adapters and on
//! the in-memory ones alike.

use std::collections::{BTreeMap, BTreeSet};

use gpu_recovery_domain::records::SAFETY_RECORD_KEY;
use gpu_recovery_domain::{NodeStatus, Policy, Timestamp};
use gpu_recovery_ports::{CallError, Cluster, RecordStore, StoreError};
use gpu_recovery_service::submit::{JobSubmission, RankSubmission, submit_job};
use serde::Deserialize;
use serde_json::Value;

use crate::ecs::overrides;

/// Tags the engine sets on every training task; a job file may not set them.
pub const ENGINE_TAGS: [&str; 4] = ["jobtype", "job_id", "job_num_nodes", "node_index_in_job"];
/// ECS allows 50 tags per task; the engine's four come out of that.
const MAX_EXTRA_TAGS: usize = 50 - ENGINE_TAGS.len();

/// A validated job file.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub job_id: String,
    pub task_definition: String,
    /// Tags put on every task besides the engine's own.
    pub tags: BTreeMap<String, String>,
    /// One entry per node, in rank order.
    pub ranks: Vec<RankSpec>,
}

/// One rank of a job file.
#[derive(Debug, Clone, PartialEq)]
pub struct RankSpec {
    pub node_name: String,
    pub container_instance_arn: String,
    /// ECS `TaskOverride` JSON; `null` for none.
    pub overrides: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    job_id: String,
    task_definition: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    ranks: Vec<RawRank>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRank {
    node_name: String,
    container_instance: String,
    #[serde(default)]
    overrides: Option<Value>,
}

/// An error that stopped a submit.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: invalid {field}: expected {expected}, found {found}")]
    Invalid {
        file: String,
        field: String,
        expected: String,
        found: String,
    },
    #[error(
        "container instance {arn} is already recorded as node {existing}, not {node}; use that node name"
    )]
    NodeNameMismatch {
        arn: String,
        existing: String,
        node: String,
    },
    #[error("container instance {arn} of rank {rank}: {problem}")]
    Instance {
        arn: String,
        rank: usize,
        problem: String,
    },
    #[error(transparent)]
    Launch(#[from] gpu_recovery_service::submit::SubmitError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// The tasks a successful submit started.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub job_id: String,
    /// Task ARNs in rank order.
    pub task_arns: Vec<String>,
    /// Problems that did not stop the submit, such as a node attribute
    /// that could not be set.
    pub warnings: Vec<String>,
}

impl JobSpec {
    /// Parses and validates a job file; `file` names it in errors.
    pub fn parse(text: &str, file: &str, cluster_name: &str) -> Result<JobSpec, SubmitError> {
        let raw: RawJob = toml::from_str(text).map_err(|error| SubmitError::Syntax {
            file: file.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })?;
        let invalid = |field: &str, expected: &str, found: &str| SubmitError::Invalid {
            file: file.to_owned(),
            field: field.to_owned(),
            expected: expected.to_owned(),
            found: found.to_owned(),
        };

        if !is_job_id(&raw.job_id) {
            return Err(invalid(
                "job_id",
                "1 to 128 letters, digits, '.', '_' or '-'",
                &format!("{:?}", raw.job_id),
            ));
        }
        if !is_task_definition(&raw.task_definition) {
            return Err(invalid(
                "task_definition",
                "a task definition family, family:revision or task definition ARN",
                &format!("{:?}", raw.task_definition),
            ));
        }
        check_tags(&raw.tags, &invalid)?;
        let ranks = check_ranks(raw.ranks, cluster_name, &invalid)?;
        Ok(JobSpec {
            job_id: raw.job_id,
            task_definition: raw.task_definition,
            tags: raw.tags,
            ranks,
        })
    }
}

/// Builds the error for one invalid field of a job file.
type Invalid<'a> = dyn Fn(&str, &str, &str) -> SubmitError + 'a;

fn check_tags(tags: &BTreeMap<String, String>, invalid: &Invalid<'_>) -> Result<(), SubmitError> {
    if tags.len() > MAX_EXTRA_TAGS {
        return Err(invalid(
            "tags",
            &format!("at most {MAX_EXTRA_TAGS} tags"),
            &format!("{} tags", tags.len()),
        ));
    }
    for (key, value) in tags {
        let field = format!("tags.{key}");
        if ENGINE_TAGS.contains(&key.as_str()) || key.starts_with("recovery_") {
            return Err(invalid(
                &field,
                "a tag key the engine does not set itself (not jobtype, job_id, \
                 job_num_nodes, node_index_in_job or recovery_*)",
                &format!("{key:?}"),
            ));
        }
        if key.is_empty() || key.chars().count() > 128 || key.starts_with("aws:") {
            return Err(invalid(
                &field,
                "a tag key of 1 to 128 characters that does not start with aws:",
                &format!("{key:?}"),
            ));
        }
        if value.chars().count() > 256 {
            return Err(invalid(
                &field,
                "a tag value of at most 256 characters",
                &format!("{} characters", value.chars().count()),
            ));
        }
    }
    Ok(())
}

fn check_ranks(
    raw_ranks: Vec<RawRank>,
    cluster_name: &str,
    invalid: &Invalid<'_>,
) -> Result<Vec<RankSpec>, SubmitError> {
    if raw_ranks.is_empty() {
        return Err(invalid(
            "ranks",
            "one [[ranks]] table per node, in rank order",
            "none",
        ));
    }

    let mut names = BTreeSet::new();
    let mut instances = BTreeSet::new();
    let mut ranks = Vec::new();
    for (index, rank) in raw_ranks.into_iter().enumerate() {
        let field = |name: &str| format!("ranks[{index}].{name}");
        if !is_node_name(&rank.node_name) {
            return Err(invalid(
                &field("node_name"),
                "1 to 255 letters, digits, '.', '_' or '-'",
                &format!("{:?}", rank.node_name),
            ));
        }
        if !names.insert(rank.node_name.clone()) {
            return Err(invalid(
                &field("node_name"),
                "a node name that no other rank uses",
                &format!("{:?} again", rank.node_name),
            ));
        }
        if let Err(problem) = check_container_instance(&rank.container_instance, cluster_name) {
            return Err(invalid(
                &field("container_instance"),
                &problem,
                &format!("{:?}", rank.container_instance),
            ));
        }
        if !instances.insert(rank.container_instance.clone()) {
            return Err(invalid(
                &field("container_instance"),
                "a container instance that no other rank uses",
                &format!("{:?} again", rank.container_instance),
            ));
        }
        let overrides = rank.overrides.unwrap_or(Value::Null);
        if let Err(error) = overrides::to_sdk(&overrides) {
            return Err(invalid(
                &field("overrides"),
                "an ECS TaskOverride (containerOverrides, cpu, memory, taskRoleArn, ...)",
                &error.0,
            ));
        }
        ranks.push(RankSpec {
            node_name: rank.node_name,
            container_instance_arn: rank.container_instance,
            overrides,
        });
    }
    Ok(ranks)
}

fn is_job_id(text: &str) -> bool {
    (1..=128).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn is_node_name(text: &str) -> bool {
    text != SAFETY_RECORD_KEY
        && (1..=255).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn is_family(text: &str) -> bool {
    (1..=255).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_task_definition(text: &str) -> bool {
    let name = if text.starts_with("arn:") {
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        match parts.as_slice() {
            [_, _, "ecs", _, _, rest] => match rest.strip_prefix("task-definition/") {
                Some(name) => name,
                None => return false,
            },
            _ => return false,
        }
    } else {
        text
    };
    match name.rsplit_once(':') {
        Some((family, revision)) => {
            is_family(family)
                && !revision.is_empty()
                && revision.chars().all(|c| c.is_ascii_digit())
        }
        None => is_family(name),
    }
}

/// Checks a container instance ARN, and that it belongs to the cluster when
/// it names one. Returns the expected form on error.
fn check_container_instance(arn: &str, cluster_name: &str) -> Result<(), String> {
    let expected = "a container instance ARN such as \
                    arn:aws:ecs:us-west-2:111122223333:container-instance/CLUSTER/ID";
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_word, _, "ecs", _, _, resource] = parts.as_slice() else {
        return Err(expected.to_owned());
    };
    if *arn_word != "arn" {
        return Err(expected.to_owned());
    }
    let Some(path) = resource.strip_prefix("container-instance/") else {
        return Err(expected.to_owned());
    };
    match path.split('/').collect::<Vec<_>>().as_slice() {
        [id] if !id.is_empty() => Ok(()),
        [cluster, id] if !id.is_empty() => {
            if *cluster == cluster_name {
                Ok(())
            } else {
                Err(format!(
                    "a container instance of the configured cluster {cluster_name}, not of {cluster}"
                ))
            }
        }
        _ => Err(expected.to_owned()),
    }
}

/// The ports a submit needs, with the settings it reads.
pub struct SubmitContext<'a, S, C> {
    pub store: &'a S,
    pub cluster: &'a C,
    pub cluster_name: &'a str,
    pub policy: &'a Policy,
    pub now: Timestamp,
}

/// Launches a job: checks its container instances in ECS and its nodes in
/// the table, then starts and registers it with
/// [`gpu_recovery_service::submit::submit_job`], and finally mirrors the
/// nodes' new status into their container instance attribute.
///
/// # Errors
/// A check that fails stops the submit before anything starts. After that,
/// `submit_job` stops the tasks it started when a later step fails, and
/// writes no record.
pub async fn submit<S: RecordStore, C: Cluster>(
    context: &SubmitContext<'_, S, C>,
    spec: &JobSpec,
) -> Result<Submitted, SubmitError> {
    let instances = check_instances(context, spec).await?;
    let submission = JobSubmission {
        job_id: spec.job_id.clone(),
        cluster_name: context.cluster_name.to_owned(),
        task_definition: spec.task_definition.clone(),
        ranks: spec
            .ranks
            .iter()
            .zip(instances)
            .map(|(rank, ec2_instance_id)| RankSubmission {
                node_name: rank.node_name.clone(),
                container_instance_arn: rank.container_instance_arn.clone(),
                ec2_instance_id,
                overrides: rank.overrides.clone(),
            })
            .collect(),
        tags: spec.tags.clone(),
    };
    let submitted = submit_job(
        context.store,
        context.cluster,
        context.policy,
        &submission,
        context.now,
    )
    .await?;

    // The attribute mirrors the node status for placement constraints; the
    // records are already right, so a failure here is a warning.
    let mut warnings = Vec::new();
    for rank in &spec.ranks {
        if let Err(error) = context
            .cluster
            .put_attribute(
                &rank.container_instance_arn,
                &context.policy.node_status_attribute,
                NodeStatus::InProgress.as_str(),
            )
            .await
        {
            warnings.push(format!(
                "could not set attribute {} of node {} to IN_PROGRESS: {error}",
                context.policy.node_status_attribute, rank.node_name
            ));
        }
    }
    Ok(Submitted {
        job_id: submitted.job_id,
        task_arns: submitted.task_arns,
        warnings,
    })
}

/// Checks that every container instance is ACTIVE with its agent connected
/// and is not recorded under another node name. Returns each rank's EC2
/// instance id.
async fn check_instances<S: RecordStore, C: Cluster>(
    context: &SubmitContext<'_, S, C>,
    spec: &JobSpec,
) -> Result<Vec<Option<String>>, SubmitError> {
    let mut instance_ids = Vec::new();
    for (rank, rank_spec) in spec.ranks.iter().enumerate() {
        let arn = &rank_spec.container_instance_arn;
        let problem = |problem: String| SubmitError::Instance {
            arn: arn.clone(),
            rank,
            problem,
        };
        let Some(instance) = context.cluster.describe_container_instance(arn).await? else {
            return Err(problem(format!(
                "not found in cluster {}",
                context.cluster_name
            )));
        };
        if instance.status != "ACTIVE" {
            return Err(problem(format!(
                "its status is {}, and tasks start only on ACTIVE instances",
                instance.status
            )));
        }
        if !instance.agent_connected {
            return Err(problem(
                "its ECS agent is disconnected, so no task can start on it".to_owned(),
            ));
        }
        if let Some(other) = context.store.node_by_container_instance(arn).await?
            && other.node_name != rank_spec.node_name
        {
            return Err(SubmitError::NodeNameMismatch {
                arn: arn.clone(),
                existing: other.node_name,
                node: rank_spec.node_name.clone(),
            });
        }
        instance_ids.push(Some(instance.ec2_instance_id).filter(|id| !id.is_empty()));
    }
    Ok(instance_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "gpu-training";
    const ARN_A: &str =
        "arn:aws:ecs:us-west-2:111122223333:container-instance/gpu-training/0f1e2d3c4b5a4978";
    const ARN_B: &str =
        "arn:aws:ecs:us-west-2:111122223333:container-instance/gpu-training/1a2b3c4d5e6f4a0b";

    fn job_file(ranks: &str) -> String {
        format!(
            "job_id = \"llm-1\"\ntask_definition = \"llm-train:7\"\n\
             [tags]\nteam = \"research\"\n{ranks}"
        )
    }

    fn two_ranks() -> String {
        job_file(&format!(
            "[[ranks]]\nnode_name = \"node-a\"\ncontainer_instance = \"{ARN_A}\"\n\
             [[ranks.overrides.containerOverrides]]\nname = \"trainer\"\n\
             environment = [{{ name = \"NODE_RANK\", value = \"0\" }}]\n\
             [[ranks]]\nnode_name = \"node-b\"\ncontainer_instance = \"{ARN_B}\"\n"
        ))
    }

    #[test]
    fn job_file_parses_ranks_in_order() {
        let spec = JobSpec::parse(&two_ranks(), "job.toml", CLUSTER).unwrap();
        assert_eq!(spec.job_id, "llm-1");
        assert_eq!(spec.ranks.len(), 2);
        assert_eq!(spec.ranks[0].node_name, "node-a");
        assert_eq!(spec.ranks[1].container_instance_arn, ARN_B);
        assert_eq!(
            spec.ranks[0].overrides["containerOverrides"][0]["environment"][0]["value"],
            "0"
        );
        assert!(spec.ranks[1].overrides.is_null());
        assert_eq!(spec.tags["team"], "research");
    }

    #[test]
    fn job_file_errors_name_field() {
        let cases = [
            (
                two_ranks().replace("llm-1", "llm 1"),
                "job.toml: invalid job_id: expected 1 to 128",
            ),
            (
                two_ranks().replace("llm-train:7", "llm-train:x"),
                "job.toml: invalid task_definition: expected",
            ),
            (
                two_ranks().replace("team", "job_id"),
                "job.toml: invalid tags.job_id: expected a tag key the engine does not set",
            ),
            (
                two_ranks().replace("node-b", "node-a"),
                "job.toml: invalid ranks[1].node_name: expected a node name that no other rank uses",
            ),
            (
                two_ranks().replace("gpu-training/1a2b", "other-cluster/1a2b"),
                "job.toml: invalid ranks[1].container_instance: expected a container instance of the configured cluster",
            ),
            (
                two_ranks().replace("name = \"trainer\"", "nam = \"trainer\""),
                "job.toml: invalid ranks[0].overrides: expected an ECS TaskOverride",
            ),
            (
                job_file(""),
                "job.toml: invalid ranks: expected one [[ranks]] table per node",
            ),
        ];
        for (text, start) in cases {
            let error = JobSpec::parse(&text, "job.toml", CLUSTER)
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(start), "{error}");
        }
    }

    #[test]
    fn job_file_rejects_unknown_key() {
        let text = two_ranks().replace("[tags]", "priority = 1\n[tags]");
        let error = JobSpec::parse(&text, "job.toml", CLUSTER)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("job.toml: "), "{error}");
        assert!(error.contains("priority"), "{error}");
    }
}
