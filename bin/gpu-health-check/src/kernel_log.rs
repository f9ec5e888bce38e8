//! Reads the running kernel's log since boot, where the NVIDIA driver writes its NVRM
//! Xid lines.
//!
//! Sources, in order: `journalctl -k -o cat` (the journal keeps every line since boot,
//! given the host journal is mounted into the container), then `/dev/kmsg` read
//! without blocking, then `dmesg`. The last two read the kernel ring buffer, which
//! drops its oldest lines once full.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

use crate::process::run_with_timeout;

/// Time limit for `journalctl` and `dmesg`.
const COMMAND_TIMEOUT: Duration = Duration::from_mins(1);
/// Time limit for reading `/dev/kmsg`.
const KMSG_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of one `/dev/kmsg` read; the kernel returns one record per read and fails a
/// read into a buffer smaller than the record.
const KMSG_RECORD_BYTES: usize = 16 * 1024;

/// The kernel log text, or why no source could be read.
#[derive(Debug)]
pub enum KernelLog {
    /// Text read from `source`.
    Read {
        /// "journalctl", "/dev/kmsg" or "dmesg".
        source: &'static str,
        /// One log message per line.
        text: String,
    },
    /// Every source failed; one entry per source with its error.
    Unavailable(Vec<String>),
}

/// Reads the kernel log from the first source that works. `journal_dir` is passed to
/// `journalctl --directory`, for a host journal mounted into the container.
pub fn read_kernel_log(journal_dir: Option<&Path>) -> KernelLog {
    let mut failures = Vec::new();
    match read_journal(journal_dir) {
        Ok(text) => {
            return KernelLog::Read {
                source: "journalctl",
                text,
            };
        }
        Err(error) => failures.push(format!("journalctl: {error}")),
    }
    match read_kmsg(Path::new("/dev/kmsg")) {
        Ok(text) => {
            return KernelLog::Read {
                source: "/dev/kmsg",
                text,
            };
        }
        Err(error) => failures.push(format!("/dev/kmsg: {error}")),
    }
    match read_dmesg() {
        Ok(text) => {
            return KernelLog::Read {
                source: "dmesg",
                text,
            };
        }
        Err(error) => failures.push(format!("dmesg: {error}")),
    }
    KernelLog::Unavailable(failures)
}

fn read_journal(journal_dir: Option<&Path>) -> Result<String, String> {
    let mut args = vec!["-k", "-o", "cat", "--no-pager", "-q"];
    let directory;
    if let Some(dir) = journal_dir {
        directory = dir.to_string_lossy().into_owned();
        args.extend(["--directory", directory.as_str()]);
    }
    let finished = run_with_timeout("journalctl", &args, COMMAND_TIMEOUT)
        .map_err(|error| format!("could not start: {error}"))?;
    if !finished.succeeded() {
        return Err(finished.failure_summary());
    }
    non_empty(finished.stdout)
}

fn read_dmesg() -> Result<String, String> {
    let finished = run_with_timeout("dmesg", &[], COMMAND_TIMEOUT)
        .map_err(|error| format!("could not start: {error}"))?;
    if !finished.succeeded() {
        return Err(finished.failure_summary());
    }
    non_empty(finished.stdout)
}

/// Returns the text unless it has no log line. An empty log means that the source saw
/// nothing of this boot (a journal of another machine, say), so the next source is tried.
fn non_empty(text: String) -> Result<String, String> {
    let has_entries = text
        .lines()
        .any(|line| !line.trim().is_empty() && line.trim() != "-- No entries --");
    if has_entries {
        Ok(text)
    } else {
        Err("no log lines".to_owned())
    }
}

/// Reads every record of `/dev/kmsg` without blocking: each read returns one record,
/// and EAGAIN means the end of the buffer. A record overwritten while reading (EPIPE)
/// is skipped. Returns the message part of each record, one per line.
fn read_kmsg(path: &Path) -> Result<String, String> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| std::io::Error::from(errno).to_string())?;
    let mut file = File::from(fd);
    let mut buffer = vec![0_u8; KMSG_RECORD_BYTES];
    let mut text = String::new();
    let deadline = Instant::now() + KMSG_TIMEOUT;
    while Instant::now() < deadline {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                let record = String::from_utf8_lossy(&buffer[..read]);
                text.push_str(kmsg_message(&record));
                text.push('\n');
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            Err(error)
                if matches!(error.kind(), ErrorKind::BrokenPipe | ErrorKind::Interrupted) => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    non_empty(text)
}

/// Returns the message of a `/dev/kmsg` record "priority,sequence,microseconds,flags;message",
/// without the continuation lines (" KEY=value") that follow it.
fn kmsg_message(record: &str) -> &str {
    let message = record
        .split_once(';')
        .map_or(record, |(_, message)| message);
    message.split('\n').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_message_drops_header_and_dictionary() {
        let record = "4,1021,8421553120,-;NVRM: Xid (PCI:0000:53:00): 79, GPU has fallen off the bus.\n SUBSYSTEM=pci\n DEVICE=+pci:0000:53:00.0\n";
        assert_eq!(
            kmsg_message(record),
            "NVRM: Xid (PCI:0000:53:00): 79, GPU has fallen off the bus."
        );
        assert_eq!(kmsg_message("no header"), "no header");
    }

    #[test]
    fn kmsg_missing_device_is_error() {
        let error = read_kmsg(Path::new("/nonexistent/kmsg")).expect_err("no such device");
        assert!(error.contains("No such file"), "{error}");
    }

    #[test]
    fn non_empty_rejects_no_entries_marker() {
        assert!(non_empty("-- No entries --\n".to_owned()).is_err());
        assert!(non_empty("\n \n".to_owned()).is_err());
        assert_eq!(non_empty("line\n".to_owned()), Ok("line\n".to_owned()));
    }
}
