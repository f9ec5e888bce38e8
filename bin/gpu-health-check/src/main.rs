//! `gpu-health-check`: the program inside the health-check ECS task on a GPU node.
//!
//! It runs `dcgmi diag` under a hard timeout (or reads a saved report), reads the
//! kernel's NVRM Xid lines since boot, optionally counts the GPUs with `nvidia-smi -L`,
//! and hands all of it to [`gpu_recovery_dcgm::assess`]. It prints the assessment as
//! one JSON line on stdout, progress on stderr, and exits with the verdict's code:
//! 0 healthy, 1 reboot, 2 replace, 3 inconclusive. An invalid option or an unreadable
//! input file is inconclusive (3), never healthy.

mod kernel_log;
mod nvidia;
mod process;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::error::ErrorKind;
use clap::{ArgAction, Parser};
use gpu_recovery_dcgm::{
    AssessInput, Assessment, DcgmiRun, GpuCount, Verdict, assess, parse_kernel_log, parse_report,
};

use crate::kernel_log::{KernelLog, read_kernel_log};

/// Runs DCGM diagnostics and exits with the health-check verdict.
///
/// Prints one JSON line on stdout and exits 0 (healthy), 1 (GPU fault a reboot can
/// clear), 2 (GPU fault a reboot cannot clear) or 3 (inconclusive).
#[derive(Debug, Parser)]
#[command(name = "gpu-health-check", version)]
struct Cli {
    /// DCGM diagnostic level: 1 (seconds), 2 (about 2 minutes), 3 (about 15 minutes) or 4
    /// (longer).
    #[arg(
        short = 'r',
        long,
        env = "DCGM_DIAG_LEVEL",
        default_value_t = 2,
        value_parser = clap::value_parser!(u8).range(1..=4)
    )]
    level: u8,

    /// Hard time limit for dcgmi diag, in seconds [default: 300, 900, 3600 or 10800 for
    /// levels 1 to 4].
    #[arg(
        long,
        value_name = "SECONDS",
        env = "DCGM_DIAG_TIMEOUT",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    timeout: Option<u64>,

    /// Read a saved `dcgmi diag -j` report from FILE instead of running dcgmi.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,

    /// Read NVRM Xid lines from FILE instead of the running kernel's log.
    #[arg(long, value_name = "FILE", conflicts_with = "no_kernel_log")]
    kernel_log: Option<PathBuf>,

    /// Do not read the kernel log; Xid events are then not checked.
    #[arg(long)]
    no_kernel_log: bool,

    /// Directory of the host's journal, mounted into the container, for journalctl
    /// --directory.
    #[arg(long, value_name = "DIR", env = "HEALTH_CHECK_JOURNAL_DIR")]
    journal_dir: Option<PathBuf>,

    /// Number of GPUs this node should have; compared with what nvidia-smi -L lists.
    #[arg(
        long,
        value_name = "N",
        env = "EXPECTED_GPUS",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    expected_gpus: Option<u32>,

    /// Start nv-hostengine, which dcgmi connects to, before running dcgmi diag.
    #[arg(
        long,
        env = "DCGM_START_HOSTENGINE",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    start_hostengine: bool,

    /// The dcgmi program to run.
    #[arg(long, value_name = "PATH", env = "DCGMI", default_value = "dcgmi")]
    dcgmi: String,
}

/// Default time limit for `dcgmi diag -r LEVEL`: several times NVIDIA's typical
/// duration (seconds, about 2 minutes, about 15 minutes, longer), because a run also
/// starts the host engine and its length grows with the GPU count.
fn default_timeout(level: u8) -> Duration {
    let seconds = match level {
        1 => 300,
        2 => 900,
        3 => 3600,
        // NOTE: NVIDIA publishes no typical duration for level 4; three hours is a guess.
        _ => 10_800,
    };
    Duration::from_secs(seconds)
}

/// An input the check cannot use; the verdict is then inconclusive.
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error(
        "cannot read the report file {path}: {source}; check the path and its permissions, \
         or drop --report to run dcgmi diag"
    )]
    Report { path: PathBuf, source: io::Error },
    #[error(
        "cannot read the kernel log file {path}: {source}; check the path and its \
         permissions, or drop --kernel-log to read the running kernel's log"
    )]
    KernelLog { path: PathBuf, source: io::Error },
}

macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!("gpu-health-check: {}", format_args!($($arg)*))
    };
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            // Printing help can only fail on a closed stdout, which changes nothing here.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let _ = error.print();
            let rendered = error.render().to_string();
            let first_line = rendered.lines().next().unwrap_or("invalid command line");
            let message = first_line.strip_prefix("error: ").unwrap_or(first_line);
            let reason = format!("{message}; run gpu-health-check --help for the options");
            return finish(&Assessment::inconclusive(reason));
        }
    };
    match check(&cli) {
        Ok(assessment) => finish(&assessment),
        Err(error) => {
            progress!("error: {error}");
            finish(&Assessment::inconclusive(error.to_string()))
        }
    }
}

/// Prints the assessment line and returns its exit code.
fn finish(assessment: &Assessment) -> ExitCode {
    let mut stdout = io::stdout().lock();
    let printed = writeln!(stdout, "{}", assessment.to_json_line()).and_then(|()| stdout.flush());
    if let Err(error) = printed {
        progress!("error: cannot write the assessment to stdout: {error}");
        return ExitCode::from(exit_byte(Verdict::Inconclusive.exit_code()));
    }
    progress!(
        "verdict {} (exit {})",
        assessment.verdict,
        assessment.exit_code
    );
    ExitCode::from(exit_byte(assessment.exit_code))
}

fn exit_byte(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(3)
}

fn check(cli: &Cli) -> Result<Assessment, InputError> {
    let mut notes = Vec::new();

    let (report_text, dcgmi) = match &cli.report {
        Some(path) => {
            progress!("reading the report {}", path.display());
            (
                Some(read_text(path).map_err(|source| InputError::Report {
                    path: path.clone(),
                    source,
                })?),
                DcgmiRun::NotRun,
            )
        }
        None => run_diagnostic(cli, &mut notes),
    };

    let xid_events = match (&cli.kernel_log, cli.no_kernel_log) {
        (_, true) => {
            notes.push(
                "the kernel log was not read (--no-kernel-log), so Xid events are not checked"
                    .to_owned(),
            );
            Vec::new()
        }
        (Some(path), false) => {
            let text = read_text(path).map_err(|source| InputError::KernelLog {
                path: path.clone(),
                source,
            })?;
            parse_kernel_log(&text)
        }
        (None, false) => match read_kernel_log(cli.journal_dir.as_deref()) {
            KernelLog::Read { source, text } => {
                let events = parse_kernel_log(&text);
                progress!(
                    "read the kernel log from {source}: {} Xid lines",
                    events.len()
                );
                events
            }
            KernelLog::Unavailable(failures) => {
                let reason = format!(
                    "the kernel log could not be read, so Xid events are not checked ({}); \
                     map /dev/kmsg with CAP_SYSLOG or mount the host journal",
                    failures.join("; ")
                );
                progress!("{reason}");
                notes.push(reason);
                Vec::new()
            }
        },
    };

    let gpu_count = cli.expected_gpus.map(|expected| {
        let seen = match nvidia::count_gpus() {
            Ok(seen) => Some(seen),
            Err(error) => {
                notes.push(format!("the GPUs could not be counted: {error}"));
                None
            }
        };
        GpuCount { expected, seen }
    });

    let report = report_text.map(|text| {
        let parsed = parse_report(&text);
        if let Err(error) = &parsed {
            progress!("the report is not usable: {error}");
        }
        parsed
    });
    Ok(assess(&AssessInput {
        report,
        xid_events,
        gpu_count,
        dcgmi,
        notes,
    }))
}

/// Runs `dcgmi diag` and returns its standard output (or `None` when it printed
/// nothing) and how it ended.
fn run_diagnostic(cli: &Cli, notes: &mut Vec<String>) -> (Option<String>, DcgmiRun) {
    if cli.start_hostengine {
        progress!("starting nv-hostengine");
        if let Err(error) = nvidia::start_hostengine() {
            progress!("{error}");
            notes.push(error);
        }
    }
    let timeout = cli
        .timeout
        .map_or_else(|| default_timeout(cli.level), Duration::from_secs);
    progress!(
        "running {} diag -r {} -j (timeout {} s)",
        cli.dcgmi,
        cli.level,
        timeout.as_secs()
    );
    let diag = nvidia::run_diag(&cli.dcgmi, cli.level, timeout);
    for line in diag
        .stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .take(50)
    {
        progress!("dcgmi: {line}");
    }
    progress!("dcgmi {}", diag.run);
    let stdout = (!diag.stdout.trim().is_empty()).then_some(diag.stdout);
    (stdout, diag.run)
}

/// Reads a file as text; bytes that are not UTF-8 are replaced.
fn read_text(path: &Path) -> io::Result<String> {
    fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timeout_grows_with_level() {
        let timeouts: Vec<u64> = (1..=4)
            .map(|level| default_timeout(level).as_secs())
            .collect();
        assert_eq!(timeouts, vec![300, 900, 3600, 10_800]);
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
