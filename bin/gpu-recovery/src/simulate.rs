//! The `simulate` subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use gpu_recovery_simulator::{RunOptions, simulate_file};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML); DCGM report paths in it are relative to it.
    pub scenario: PathBuf,
    /// Seed for delivery delays and duplicates; replaces the scenario's `delivery.seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Runs the scenario. Exits 0 when every expectation holds, 1 when one
/// fails or an invariant broke, and 2 for an invalid scenario.
pub fn run(args: &SimulateArgs) -> ExitCode {
    let options = RunOptions {
        seed: args.seed,
        crash_after_calls: None,
    };
    let report = match simulate_file(&args.scenario, &options) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match args.format {
        Format::Text => print!("{}", report.render_text()),
        Format::Json => match serde_json::to_string_pretty(&report.to_json()) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("error: cannot render the report as JSON: {error}");
                return ExitCode::from(1);
            }
        },
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
