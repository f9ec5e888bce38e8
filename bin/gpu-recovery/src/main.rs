//! `gpu-recovery`: the command line tool. `simulate` rehearses a recovery
//! against a simulated cluster; the other commands operate a deployment.

mod aws_commands;
mod simulate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Automated recovery for multi-node GPU training jobs on Amazon ECS.
#[derive(Debug, Parser)]
#[command(name = "gpu-recovery", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a recovery scenario against a simulated ECS cluster and clock.
    Simulate(simulate::SimulateArgs),
    /// Create the DynamoDB tables the engine uses.
    Tables(aws_commands::tables::TablesArgs),
    /// Launch a multi-node training job from a job file.
    Submit(aws_commands::submit::SubmitArgs),
    /// Show the job table, or one job with its tasks, nodes and history.
    Status(aws_commands::status::StatusArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate(args) => simulate::run(&args),
        Command::Tables(args) => aws_commands::tables::run(&args),
        Command::Submit(args) => aws_commands::submit::run(&args),
        Command::Status(args) => aws_commands::status::run(&args),
    }
}
