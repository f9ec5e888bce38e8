//! Launching a multi-node job: the job, task and node records, and one task
//! per node with the tags the engine uses to recognise it later.
//!
//! A failure part way through stops the tasks already started and writes
//! nothing, so no half-registered job is left behind.

use std::collections::BTreeMap;

use gpu_recovery_domain::records::{
    LaunchSpec, RankLaunch, TaskKind, TaskRecord, last_arn_segment,
};
use gpu_recovery_domain::{
    JobRecord, JobStatus, NodeRecord, NodeStatus, Policy, Record, TaskStatus, Timestamp, Write,
};
use gpu_recovery_ports::{
    CallError, Cluster, RecordStore, StartTaskOutcome, StartTaskRequest, StoreError,
};

/// One rank of a job to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct RankSubmission {
    pub node_name: String,
    pub container_instance_arn: String,
    /// EC2 instance id, when the caller knows it.
    pub ec2_instance_id: Option<String>,
    /// ECS `TaskOverride` JSON for this rank.
    pub overrides: serde_json::Value,
}

/// A job to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSubmission {
    pub job_id: String,
    pub cluster_name: String,
    pub task_definition: String,
    /// Ranks in order: rank 0 first.
    pub ranks: Vec<RankSubmission>,
    /// Tags added to every task besides the engine's own.
    pub tags: BTreeMap<String, String>,
}

/// What a submission started.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmittedJob {
    pub job_id: String,
    /// Task ARNs in rank order.
    pub task_arns: Vec<String>,
}

/// Why a submission failed; nothing was left registered.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("job {job_id} already exists; choose another job id")]
    Exists { job_id: String },
    #[error("node {node} is {status}, not AVAILABLE; wait for it or choose another node")]
    NodeBusy { node: String, status: NodeStatus },
    #[error(
        "job {job_id}: rank {rank} on node {node} could not start: {reason}; the tasks already started were stopped"
    )]
    Rejected {
        job_id: String,
        rank: usize,
        node: String,
        reason: String,
    },
    #[error("job {job_id}: {source}; the tasks already started were stopped")]
    Call { job_id: String, source: CallError },
    #[error("job {job_id}: {source}; the tasks already started were stopped")]
    Store { job_id: String, source: StoreError },
}

/// Tags that mark a task as one rank of a job.
#[must_use]
pub fn rank_tags(
    job_id: &str,
    rank: usize,
    num_nodes: usize,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut tags = extra.clone();
    tags.insert("jobtype".to_owned(), "training_job".to_owned());
    tags.insert("job_id".to_owned(), job_id.to_owned());
    tags.insert("job_num_nodes".to_owned(), num_nodes.to_string());
    tags.insert("node_index_in_job".to_owned(), rank.to_string());
    tags
}

/// Starts every rank of a job and registers it.
///
/// # Errors
/// [`SubmitError`]; on any error after the first StartTask, the started tasks
/// are stopped and no record is written.
pub async fn submit_job<S: RecordStore, C: Cluster>(
    store: &S,
    cluster: &C,
    policy: &Policy,
    job: &JobSubmission,
    now: Timestamp,
) -> Result<SubmittedJob, SubmitError> {
    if store
        .get_job(&job.job_id)
        .await
        .map_err(|source| SubmitError::Store {
            job_id: job.job_id.clone(),
            source,
        })?
        .is_some()
    {
        return Err(SubmitError::Exists {
            job_id: job.job_id.clone(),
        });
    }
    let mut existing_nodes = BTreeMap::new();
    for rank in &job.ranks {
        let node = store
            .get_node(&rank.node_name)
            .await
            .map_err(|source| SubmitError::Store {
                job_id: job.job_id.clone(),
                source,
            })?;
        if let Some(node) = &node
            && node.node_status != NodeStatus::Available
        {
            return Err(SubmitError::NodeBusy {
                node: node.node_name.clone(),
                status: node.node_status,
            });
        }
        existing_nodes.insert(rank.node_name.clone(), node);
    }

    let mut started: Vec<String> = Vec::new();
    let started_by = format!("gpu-recovery-{}", short(&job.job_id));
    for (index, rank) in job.ranks.iter().enumerate() {
        let request = StartTaskRequest {
            container_instance_arn: rank.container_instance_arn.clone(),
            task_definition: job.task_definition.clone(),
            overrides: rank.overrides.clone(),
            tags: rank_tags(&job.job_id, index, job.ranks.len(), &job.tags),
            started_by: started_by.clone(),
        };
        let outcome = match cluster.start_task(&request).await {
            Ok(outcome) => outcome,
            Err(source) => {
                stop_started(cluster, &started, &job.job_id).await;
                return Err(SubmitError::Call {
                    job_id: job.job_id.clone(),
                    source,
                });
            }
        };
        match outcome {
            StartTaskOutcome::Started { task_arn } => started.push(task_arn),
            StartTaskOutcome::Rejected { reason } => {
                stop_started(cluster, &started, &job.job_id).await;
                return Err(SubmitError::Rejected {
                    job_id: job.job_id.clone(),
                    rank: index,
                    node: rank.node_name.clone(),
                    reason,
                });
            }
        }
    }

    // NOTE: a RUNNING event handled before this write registers the job from
    // the task's tags first; this write then conflicts and the submission
    // stops its tasks. ECS reports RUNNING seconds after StartTask returns.
    let writes = records_for(job, &started, &existing_nodes, policy, now);
    if let Err(source) = store.commit(&writes).await {
        stop_started(cluster, &started, &job.job_id).await;
        return Err(SubmitError::Store {
            job_id: job.job_id.clone(),
            source,
        });
    }
    Ok(SubmittedJob {
        job_id: job.job_id.clone(),
        task_arns: started,
    })
}

fn records_for(
    job: &JobSubmission,
    started: &[String],
    existing: &BTreeMap<String, Option<NodeRecord>>,
    policy: &Policy,
    now: Timestamp,
) -> Vec<Write> {
    let num_nodes = u32::try_from(job.ranks.len()).unwrap_or(u32::MAX);
    let mut record = JobRecord::new(&job.job_id, JobStatus::InProgress);
    record.cluster_name.clone_from(&job.cluster_name);
    record.num_nodes = num_nodes;
    record.assigned_nodes = job.ranks.iter().map(|r| r.node_name.clone()).collect();
    record.submitted_container_inst_ids = job
        .ranks
        .iter()
        .map(|r| last_arn_segment(&r.container_instance_arn).to_owned())
        .collect();
    record.submitted_ecs_task_ids = started
        .iter()
        .map(|arn| last_arn_segment(arn).to_owned())
        .collect();
    record.launch = Some(LaunchSpec {
        task_definition: job.task_definition.clone(),
        tags: job.tags.clone(),
        ranks: job
            .ranks
            .iter()
            .enumerate()
            .map(|(index, r)| RankLaunch {
                rank: u32::try_from(index).unwrap_or(u32::MAX),
                node_name: r.node_name.clone(),
                container_instance_arn: r.container_instance_arn.clone(),
                overrides: r.overrides.clone(),
            })
            .collect(),
    });
    record.deadline = Some(now + policy.running_poll_interval);
    record.status_reason = Some("submitted".to_owned());
    record.version = 1;
    record.created_at = Some(now);
    record.updated_at = Some(now);
    let mut writes = vec![Write {
        record: Record::Job(record),
        expected_version: None,
    }];

    for (index, (rank, task_arn)) in job.ranks.iter().zip(started).enumerate() {
        let id = last_arn_segment(task_arn).to_owned();
        writes.push(Write {
            record: Record::Task(TaskRecord {
                ecs_task_id: id,
                task_arn: task_arn.clone(),
                job_id: job.job_id.clone(),
                kind: TaskKind::Training,
                task_status: TaskStatus::InProgress,
                node_name: rank.node_name.clone(),
                node_index_in_job: u32::try_from(index).unwrap_or(u32::MAX),
                job_num_nodes: num_nodes,
                container_instance_arn: rank.container_instance_arn.clone(),
                container_inst_id: last_arn_segment(&rank.container_instance_arn).to_owned(),
                cluster_name: job.cluster_name.clone(),
                task_def_arn: job.task_definition.clone(),
                retry: 0,
                episode_id: None,
                phase: None,
                event_version: 0,
                running: false,
                stop_requested: None,
                stop: None,
                version: 1,
                created_at: Some(now),
                updated_at: Some(now),
            }),
            expected_version: None,
        });
        let before = existing.get(&rank.node_name).cloned().flatten();
        let expected = before.as_ref().map(|n| n.version);
        let mut node = before
            .unwrap_or_else(|| NodeRecord::new(&rank.node_name, &rank.container_instance_arn));
        node.container_instance_arn
            .clone_from(&rank.container_instance_arn);
        last_arn_segment(&rank.container_instance_arn).clone_into(&mut node.container_instance_id);
        if rank.ec2_instance_id.is_some() {
            node.ec2_instance_id.clone_from(&rank.ec2_instance_id);
        }
        node.cluster_name.clone_from(&job.cluster_name);
        node.node_status = NodeStatus::InProgress;
        node.job_id = Some(job.job_id.clone());
        node.status_reason = Some(format!("runs rank {index} of job {}", job.job_id));
        node.version = expected.map_or(1, |v| v + 1);
        node.updated_at = Some(now);
        node.created_at.get_or_insert(now);
        writes.push(Write {
            record: Record::Node(node),
            expected_version: expected,
        });
    }
    writes
}

async fn stop_started<C: Cluster>(cluster: &C, started: &[String], job_id: &str) {
    for arn in started {
        let reason =
            format!("gpu-recovery: submission of job {job_id} failed part way; stopping its tasks");
        if let Err(error) = cluster.stop_task(arn, &reason).await {
            tracing::error!(job_id, task_arn = %arn, error = %error, "could not stop a task of the failed submission; stop it by hand");
        }
    }
}

/// ECS allows at most 36 characters in `startedBy`.
fn short(job_id: &str) -> String {
    job_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(23)
        .collect()
}
