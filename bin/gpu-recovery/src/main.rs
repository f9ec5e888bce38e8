//! `gpu-recovery`: the command line tool. `simulate` rehearses a recovery
//! against a simulated cluster; the other commands operate a deployment.

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate(args) => simulate::run(&args),
    }
}
