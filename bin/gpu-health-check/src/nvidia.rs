//! Calls to NVIDIA's command-line tools: `dcgmi diag`, `nv-hostengine` and
//! `nvidia-smi -L`.

use std::io;
use std::time::Duration;

use gpu_recovery_dcgm::DcgmiRun;

use crate::process::{Ending, run_with_timeout};

/// Time limit for `nvidia-smi -L` and for starting `nv-hostengine`.
const TOOL_TIMEOUT: Duration = Duration::from_mins(1);

/// Output of one `dcgmi diag` run.
pub struct DiagRun {
    /// The ending of `dcgmi`.
    pub run: DcgmiRun,
    /// Its standard output: the JSON report, possibly after a banner.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `dcgmi diag -r LEVEL -j` under `timeout`.
pub fn run_diag(dcgmi: &str, level: u8, timeout: Duration) -> DiagRun {
    let level = level.to_string();
    match run_with_timeout(dcgmi, &["diag", "-r", &level, "-j"], timeout) {
        Ok(finished) => {
            let run = match finished.ending {
                Ending::Exited(code) => DcgmiRun::Exited { code },
                Ending::Signaled(signal) => DcgmiRun::Killed { signal },
                Ending::TimedOut => DcgmiRun::TimedOut {
                    seconds: timeout.as_secs(),
                },
            };
            DiagRun {
                run,
                stdout: finished.stdout,
                stderr: finished.stderr,
            }
        }
        Err(error) => DiagRun {
            run: DcgmiRun::SpawnFailed {
                message: spawn_message(dcgmi, &error),
            },
            stdout: String::new(),
            stderr: String::new(),
        },
    }
}

/// Starts the DCGM host engine that `dcgmi` connects to. `nv-hostengine` forks a
/// daemon and returns. Returns a sentence for the assessment when it fails; `dcgmi`
/// may still reach an engine that is already running.
pub fn start_hostengine() -> Result<(), String> {
    match run_with_timeout("nv-hostengine", &[], TOOL_TIMEOUT) {
        Ok(finished) if finished.succeeded() => Ok(()),
        Ok(finished) => Err(format!("nv-hostengine {}", finished.failure_summary())),
        Err(error) => Err(spawn_message("nv-hostengine", &error)),
    }
}

/// Counts the GPUs that `nvidia-smi -L` lists (lines "GPU 0: ..."; MIG device lines
/// are not counted).
pub fn count_gpus() -> Result<u32, String> {
    let finished = run_with_timeout("nvidia-smi", &["-L"], TOOL_TIMEOUT)
        .map_err(|error| spawn_message("nvidia-smi", &error))?;
    if !finished.succeeded() {
        return Err(format!("nvidia-smi -L {}", finished.failure_summary()));
    }
    Ok(count_gpu_lines(&finished.stdout))
}

fn count_gpu_lines(listing: &str) -> u32 {
    let count = listing
        .lines()
        .filter(|line| line.starts_with("GPU "))
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn spawn_message(program: &str, error: &io::Error) -> String {
    if error.kind() == io::ErrorKind::NotFound {
        format!("{program} was not found; check that it is installed and on PATH")
    } else {
        format!("{program} could not be started: {error}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_lines_counted_without_mig() {
        let listing = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)\n\
                       \x20 MIG 3g.40gb     Device  0: (UUID: MIG-bbbb)\n\
                       GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-cccc)\n";
        assert_eq!(count_gpu_lines(listing), 2);
        assert_eq!(count_gpu_lines("No devices found.\n"), 0);
    }

    #[test]
    fn missing_dcgmi_is_spawn_failure() {
        let run = run_diag("/nonexistent/dcgmi", 1, Duration::from_secs(1));
        let DcgmiRun::SpawnFailed { message } = run.run else {
            panic!("expected a spawn failure, got {:?}", run.run);
        };
        assert!(
            message.contains("/nonexistent/dcgmi was not found"),
            "{message}"
        );
    }
}
