//! `gpu-recovery tables create`: the three tables with their indexes.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use gpu_recovery_aws::Clients;
use gpu_recovery_aws::config::TableNames;
use gpu_recovery_aws::dynamodb::tables::{TableOutcome, create_tables, table_specs};

#[derive(Debug, Args)]
pub struct TablesArgs {
    #[command(subcommand)]
    pub command: TablesCommand,
}

#[derive(Debug, Subcommand)]
pub enum TablesCommand {
    /// Create the task, job and node tables with their indexes (on-demand
    /// billing), or report the ones that exist. Names come from
    /// TASK_TABLE_NAME, JOB_TABLE_NAME and NODE_TABLE_NAME (defaults
    /// ecs_task, ecs_job, ecs_node).
    Create,
}

pub fn run(args: &TablesArgs) -> ExitCode {
    match args.command {
        TablesCommand::Create => super::block_on(create()),
    }
}

async fn create() -> anyhow::Result<()> {
    let names = TableNames::from_env()?;
    let clients = Clients::load().await;
    let reports = create_tables(&clients.dynamodb, &names)
        .await
        .context("tables create stopped")?;
    let mut incomplete = Vec::new();
    let mut text = String::new();
    for (report, spec) in reports.iter().zip(table_specs(&names)) {
        let indexes: Vec<&str> = spec.indexes.iter().map(|index| index.name).collect();
        match &report.outcome {
            TableOutcome::Created => writeln!(
                text,
                "created table {} (key {}, indexes {})",
                report.name,
                spec.key,
                indexes.join(", ")
            )?,
            TableOutcome::Exists { missing_indexes } if missing_indexes.is_empty() => {
                writeln!(text, "table {} exists with every index", report.name)?;
            }
            TableOutcome::Exists { missing_indexes } => {
                writeln!(
                    text,
                    "table {} exists but lacks {}",
                    report.name,
                    missing_indexes.join(", ")
                )?;
                incomplete.push(format!("{} ({})", report.name, missing_indexes.join(", ")));
            }
        }
    }
    super::emit(&text)?;
    if incomplete.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "tables without the indexes the engine queries: {}; add each as a global secondary \
             index with a string partition key of the same name and projection ALL",
            incomplete.join("; ")
        )
    }
}
