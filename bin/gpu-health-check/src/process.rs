//! Runs an external command (`dcgmi`, `nvidia-smi`, `journalctl`, ...) under a hard
//! timeout and captures its output.
//!
//! The command runs in its own process group, so that on timeout the whole group is
//! signalled: SIGTERM first, then SIGKILL after a grace period. A diagnostic that
//! hangs on a failing GPU therefore cannot keep the health check alive.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

/// Time between SIGTERM and SIGKILL for a command that timed out.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long to wait for the output pipes to close after the command ended. A
/// grandchild that left the process group can hold them open for ever.
const PIPE_DRAIN: Duration = Duration::from_secs(2);
/// How often the command's exit is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Captured output beyond this many bytes per stream is dropped.
const MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024;

/// The ending of a command: an exit status, a signal or the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it (not one sent for the timeout).
    Signaled(i32),
    /// It ran past the timeout and its process group was killed.
    TimedOut,
}

/// A finished command's ending and output.
#[derive(Debug)]
pub struct Finished {
    /// The command's ending.
    pub ending: Ending,
    /// Its standard output, decoded lossily as UTF-8.
    pub stdout: String,
    /// Its standard error, decoded lossily as UTF-8.
    pub stderr: String,
}

impl Finished {
    /// Returns whether the command exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.ending == Ending::Exited(0)
    }

    /// Describes a failed run for messages: its ending and the first line of its error
    /// output.
    pub fn failure_summary(&self) -> String {
        let ending = match self.ending {
            Ending::Exited(code) => format!("exited with status {code}"),
            Ending::Signaled(signal) => format!("was ended by signal {signal}"),
            Ending::TimedOut => "timed out".to_owned(),
        };
        let detail = self
            .stderr
            .lines()
            .chain(self.stdout.lines())
            .map(str::trim)
            .find(|line| !line.is_empty());
        match detail {
            Some(line) => format!("{ending}: {line}"),
            None => ending,
        }
    }
}

/// Runs `program` with `args`, no standard input, and output captured; kills its
/// process group when it runs longer than `timeout`. Returns the error of starting it
/// (for example `NotFound` when the program is not on `PATH`).
pub fn run_with_timeout(program: &str, args: &[&str], timeout: Duration) -> io::Result<Finished> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let ending = wait_until(&mut child, timeout)?;
    Ok(Finished {
        ending,
        stdout: collect(&stdout),
        stderr: collect(&stderr),
    })
}

fn wait_until(child: &mut Child, timeout: Duration) -> io::Result<Ending> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(match (status.code(), status.signal()) {
                (Some(code), _) => Ending::Exited(code),
                (None, Some(signal)) => Ending::Signaled(signal),
                (None, None) => Ending::Exited(-1),
            });
        }
        if Instant::now() >= deadline {
            kill_group(child);
            return Ok(Ending::TimedOut);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Sends SIGTERM to the child's process group, then SIGKILL if it is still running
/// after [`TERM_GRACE`], and reaps the child.
fn kill_group(child: &mut Child) {
    let group = Pid::from_child(child);
    // The group may already be gone; a failed signal then changes nothing.
    let _ = kill_process_group(group, Signal::TERM);
    let grace_end = Instant::now() + TERM_GRACE;
    while Instant::now() < grace_end {
        if matches!(child.try_wait(), Ok(Some(_))) {
            // The leader is gone; end any member of the group that ignored SIGTERM.
            let _ = kill_process_group(group, Signal::KILL);
            return;
        }
        thread::sleep(POLL_INTERVAL);
    }
    let _ = kill_process_group(group, Signal::KILL);
    let _ = child.wait();
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    if let Some(pipe) = pipe {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            // A read error ends the capture; what was read so far is kept.
            let _ = pipe.take(MAX_OUTPUT_BYTES).read_to_end(&mut bytes);
            let _ = sender.send(bytes);
        });
    }
    receiver
}

fn collect(receiver: &Receiver<Vec<u8>>) -> String {
    let bytes = receiver.recv_timeout(PIPE_DRAIN).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_captures_output_and_status() {
        let finished = run_with_timeout(
            "sh",
            &["-c", "echo out; echo err >&2; exit 7"],
            Duration::from_secs(10),
        )
        .expect("sh starts");
        assert_eq!(finished.ending, Ending::Exited(7));
        assert_eq!(finished.stdout, "out\n");
        assert_eq!(finished.stderr, "err\n");
        assert_eq!(finished.failure_summary(), "exited with status 7: err");
    }

    #[test]
    fn run_kills_group_on_timeout() {
        let started = Instant::now();
        // The shell's child sleep is in the same process group and is killed too;
        // otherwise it would hold the output pipe open for 30 s.
        let finished = run_with_timeout(
            "sh",
            &["-c", "sleep 30; echo late"],
            Duration::from_millis(300),
        )
        .expect("sh starts");
        assert_eq!(finished.ending, Ending::TimedOut);
        assert_eq!(finished.stdout, "");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn run_reports_signal_ending() {
        let finished = run_with_timeout("sh", &["-c", "kill -SEGV $$"], Duration::from_secs(10))
            .expect("sh starts");
        assert_eq!(finished.ending, Ending::Signaled(11));
    }

    #[test]
    fn run_missing_program_is_not_found() {
        let error = run_with_timeout("/nonexistent/dcgmi", &[], Duration::from_secs(1))
            .expect_err("no such program");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}
