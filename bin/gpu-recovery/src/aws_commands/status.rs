//! `gpu-recovery status [JOB_ID]`: the job table, or one job with its
//! tasks, nodes, open episode and decision history.
//!
//! The job list queries the `job_status-index` once per status, so it needs
//! Query on that index and no Scan.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use gpu_recovery_aws::config::TableNames;
use gpu_recovery_aws::{Clients, DynamoStore};
use gpu_recovery_domain::records::{Episode, TaskKind, VerdictRecord};
use gpu_recovery_domain::{JobRecord, JobStatus, NodeRecord, TaskRecord};
use gpu_recovery_ports::RecordStore;
use serde_json::json;

use super::emit;
use super::render::{clip, table};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    /// Aligned columns for a terminal.
    Text,
    /// The records as JSON, for scripts.
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Job to show in full; without it, every job is listed.
    pub job_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text", visible_alias = "format")]
    pub output: Output,
}

pub fn run(args: &StatusArgs) -> ExitCode {
    super::block_on(status(args))
}

async fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let tables = TableNames::from_env()?;
    let clients = Clients::load().await;
    let store = DynamoStore::new(clients.dynamodb.clone(), tables.clone());
    match &args.job_id {
        None => {
            let mut jobs = Vec::new();
            for status in JobStatus::ALL {
                jobs.extend(store.jobs_by_status(status).await?);
            }
            jobs.sort_by(|a, b| a.job_id.cmp(&b.job_id));
            match args.output {
                Output::Json => emit(&format!("{}\n", serde_json::to_string_pretty(&jobs)?))?,
                Output::Text => emit(&job_list(&jobs))?,
            }
        }
        Some(job_id) => {
            let Some(job) = store.get_job(job_id).await? else {
                anyhow::bail!(
                    "job {job_id} not found in table {}; run `gpu-recovery status` to list jobs",
                    tables.job
                );
            };
            let mut tasks = store.tasks_by_job(job_id).await?;
            tasks.sort_by(|a, b| {
                (
                    a.retry,
                    a.kind == TaskKind::HealthCheck,
                    a.node_index_in_job,
                    &a.ecs_task_id,
                )
                    .cmp(&(
                        b.retry,
                        b.kind == TaskKind::HealthCheck,
                        b.node_index_in_job,
                        &b.ecs_task_id,
                    ))
            });
            let names: BTreeSet<&str> = job
                .assigned_nodes
                .iter()
                .map(String::as_str)
                .chain(tasks.iter().map(|t| t.node_name.as_str()))
                .filter(|name| !name.is_empty())
                .collect();
            let mut nodes = Vec::new();
            for name in names {
                if let Some(node) = store.get_node(name).await? {
                    nodes.push(node);
                }
            }
            match args.output {
                Output::Json => {
                    let document = json!({"job": job, "tasks": tasks, "nodes": nodes});
                    emit(&format!("{}\n", serde_json::to_string_pretty(&document)?))?;
                }
                Output::Text => emit(&job_detail(&job, &tasks, &nodes))?,
            }
        }
    }
    Ok(())
}

fn job_list(jobs: &[JobRecord]) -> String {
    if jobs.is_empty() {
        return "no jobs\n".to_owned();
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            vec![
                job.job_id.clone(),
                job.job_status.to_string(),
                job.retry.to_string(),
                job.num_nodes.to_string(),
                job.episode
                    .as_ref()
                    .map_or("-".to_owned(), |e| e.id.clone()),
                job.updated_at
                    .map_or("-".to_owned(), gpu_recovery_domain::Timestamp::to_rfc3339),
                clip(job.status_reason.as_deref().unwrap_or(""), 60),
            ]
        })
        .collect();
    table(
        &[
            "JOB", "STATUS", "RETRY", "NODES", "EPISODE", "UPDATED", "REASON",
        ],
        &rows,
    )
}

fn job_detail(job: &JobRecord, tasks: &[TaskRecord], nodes: &[NodeRecord]) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        let _ = writeln!(out, "{label:<10} {value}");
    };
    line("job", &job.job_id);
    line("status", job.job_status.as_str());
    line("reason", job.status_reason.as_deref().unwrap_or("-"));
    line("retry", &job.retry.to_string());
    line("nodes", &job.assigned_nodes.join(", "));
    if let Some(deadline) = job.deadline {
        line("deadline", &deadline.to_rfc3339());
    }
    if let Some(launch) = &job.launch {
        line("task def", &launch.task_definition);
    }
    if let Some(episode) = &job.episode {
        line(
            "episode",
            &format!("{} opened {}", episode.id, episode.opened_at),
        );
        line("trigger", &episode.trigger_reason);
        out.push('\n');
        out.push_str(&episode_table(episode));
    }
    out.push_str("\ntasks\n");
    out.push_str(&task_table(tasks));
    out.push_str("\nnodes\n");
    out.push_str(&node_table(nodes));
    if !job.outbox.is_empty() {
        out.push_str("\npending effects\n");
        out.push_str(&outbox_table(job));
    }
    out.push_str("\nhistory\n");
    out.push_str(&history_table(job));
    out
}

fn episode_table(episode: &Episode) -> String {
    let verdict = |record: &Option<VerdictRecord>| {
        record
            .as_ref()
            .map_or("-".to_owned(), |r| r.verdict.to_string())
    };
    let rows: Vec<Vec<String>> = episode
        .nodes
        .iter()
        .map(|(name, entry)| {
            vec![
                name.clone(),
                verdict(&entry.initial),
                entry
                    .action
                    .map_or("-".to_owned(), |a| format!("{a:?}").to_lowercase()),
                verdict(&entry.post_reboot),
            ]
        })
        .collect();
    table(&["NODE", "VERDICT", "ACTION", "AFTER REBOOT"], &rows)
}

fn task_table(tasks: &[TaskRecord]) -> String {
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|task| {
            let kind = match task.kind {
                TaskKind::Training => format!("rank {}", task.node_index_in_job),
                TaskKind::HealthCheck => task.phase.map_or("check".to_owned(), |p| {
                    format!("check {p:?}").to_lowercase()
                }),
            };
            let stop = task.stop.as_ref().map_or("-".to_owned(), |stop| {
                let codes: Vec<String> = stop.exit_codes.iter().map(i32::to_string).collect();
                let codes = if codes.is_empty() {
                    "-".to_owned()
                } else {
                    codes.join(",")
                };
                format!("{} exit {codes}", stop.stop_code.as_deref().unwrap_or("-"))
            });
            vec![
                task.ecs_task_id.clone(),
                kind,
                task.node_name.clone(),
                task.retry.to_string(),
                task.task_status.to_string(),
                stop,
            ]
        })
        .collect();
    table(&["TASK", "KIND", "NODE", "RETRY", "STATUS", "STOP"], &rows)
}

fn node_table(nodes: &[NodeRecord]) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|node| {
            vec![
                node.node_name.clone(),
                node.node_status.to_string(),
                node.ec2_instance_id
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
                node.container_instance_id.clone(),
                clip(node.status_reason.as_deref().unwrap_or(""), 60),
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "STATUS",
            "EC2 INSTANCE",
            "CONTAINER INSTANCE",
            "REASON",
        ],
        &rows,
    )
}

fn outbox_table(job: &JobRecord) -> String {
    let rows: Vec<Vec<String>> = job
        .outbox
        .iter()
        .map(|intent| {
            vec![
                intent.effect.describe(),
                intent.attempts.to_string(),
                intent.last_error.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    table(&["EFFECT", "ATTEMPTS", "LAST ERROR"], &rows)
}

fn history_table(job: &JobRecord) -> String {
    let rows: Vec<Vec<String>> = job
        .history
        .iter()
        .map(|entry| {
            let from = if entry.from.is_empty() {
                "-"
            } else {
                &entry.from
            };
            vec![
                entry.at.to_rfc3339(),
                entry.subject.clone(),
                format!("{from} -> {}", entry.to),
                clip(&entry.reason, 80),
            ]
        })
        .collect();
    table(&["AT", "SUBJECT", "CHANGE", "REASON"], &rows)
}

#[cfg(test)]
mod tests {
    use gpu_recovery_domain::records::HistoryEntry;
    use gpu_recovery_domain::{NodeStatus, Timestamp};

    use super::*;

    #[test]
    fn job_list_shows_each_job() {
        let mut job = JobRecord::new("llm-1", JobStatus::Failed);
        job.retry = 1;
        job.status_reason = Some("the retry budget is spent".to_owned());
        let text = job_list(&[job]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("JOB"), "{text}");
        assert!(lines[1].starts_with("llm-1"), "{text}");
        assert!(lines[1].contains("FAILED"), "{text}");
        assert!(lines[1].contains("the retry budget is spent"), "{text}");
        assert_eq!(job_list(&[]), "no jobs\n");
    }

    #[test]
    fn job_detail_lists_history_and_nodes() {
        let mut job = JobRecord::new("llm-1", JobStatus::PendingRestart);
        job.assigned_nodes = vec!["gpu-node-a".to_owned()];
        job.history.push(HistoryEntry {
            at: Timestamp(1_796_000_000_000),
            observation: "health check finished".to_owned(),
            subject: "node gpu-node-a".to_owned(),
            from: "PENDING_HEALTHCHECK".to_owned(),
            to: "REBOOTING".to_owned(),
            reason: "reboot requested".to_owned(),
        });
        let mut node = NodeRecord::new(
            "gpu-node-a",
            "arn:aws:ecs:us-east-1:1:container-instance/c/ci-1",
        );
        node.node_status = NodeStatus::Rebooting;
        let text = job_detail(&job, &[], &[node]);
        assert!(text.contains("status     PENDING_RESTART"), "{text}");
        assert!(text.contains("PENDING_HEALTHCHECK -> REBOOTING"), "{text}");
        assert!(text.contains("gpu-node-a  REBOOTING"), "{text}");
        assert!(text.contains("ci-1"), "{text}");
    }
}
