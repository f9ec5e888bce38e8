//! `gpu-recovery submit JOB.toml`: launches a multi-node job.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use gpu_recovery_aws::config::{ECS_CLUSTER_NAME, TableNames};
use gpu_recovery_aws::submit::{JobSpec, SubmitContext, submit};
use gpu_recovery_aws::{Clients, DynamoStore, EcsCluster};
use gpu_recovery_domain::{Policy, Timestamp};

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Job file (TOML): job_id, task_definition, [tags] and one [[ranks]]
    /// table per node in rank order; see examples/jobs/.
    pub job_file: PathBuf,
    /// Cluster name or ARN; defaults to ECS_CLUSTER_NAME.
    #[arg(long)]
    pub cluster: Option<String>,
}

pub fn run(args: &SubmitArgs) -> ExitCode {
    super::block_on(submit_file(args))
}

async fn submit_file(args: &SubmitArgs) -> anyhow::Result<()> {
    let cluster = match &args.cluster {
        Some(cluster) => cluster.clone(),
        None => std::env::var(ECS_CLUSTER_NAME)
            .ok()
            .filter(|value| !value.trim().is_empty())
            .with_context(|| {
                format!("no cluster given: pass --cluster NAME or set {ECS_CLUSTER_NAME}")
            })?,
    };
    let cluster_name = cluster.rsplit('/').next().unwrap_or(&cluster).to_owned();
    let file = args.job_file.display().to_string();
    let text = std::fs::read_to_string(&args.job_file)
        .with_context(|| format!("failed to read job file {file}"))?;
    let spec = JobSpec::parse(&text, &file, &cluster_name)?;
    let tables = TableNames::from_env()?;
    let policy = Policy::from_lookup(|name| std::env::var(name).ok())?;

    let clients = Clients::load().await;
    let store = DynamoStore::new(clients.dynamodb.clone(), tables);
    let ecs = EcsCluster::new(clients.ecs.clone(), &cluster);
    let submitted = submit(
        &SubmitContext {
            store: &store,
            cluster: &ecs,
            cluster_name: &cluster_name,
            policy: &policy,
            now: Timestamp::now(),
        },
        &spec,
    )
    .await
    .with_context(|| format!("failed to submit job {} from {file}", spec.job_id))?;

    let mut text = format!(
        "submitted job {} with {} task(s)\n",
        submitted.job_id,
        submitted.task_arns.len()
    );
    for ((rank, spec_rank), arn) in spec.ranks.iter().enumerate().zip(&submitted.task_arns) {
        let task_id = arn.rsplit('/').next().unwrap_or(arn);
        let _ = writeln!(text, "rank {rank}  {}  {task_id}", spec_rank.node_name);
    }
    super::emit(&text)?;
    for warning in &submitted.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}
