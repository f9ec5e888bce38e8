//! End-to-end runs of the built `gpu-health-check` binary, with saved reports and with
//! stub `dcgmi` and `nvidia-smi` scripts on `PATH`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_gpu-health-check");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/dcgm/tests/fixtures")
        .join(name)
}

/// A temporary directory for stub programs, removed on drop.
struct StubDir(PathBuf);

impl StubDir {
    fn new() -> StubDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gpu-health-check-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).expect("create the stub directory");
        StubDir(dir)
    }

    /// Writes an executable shell script named `name`.
    fn script(&self, name: &str, body: &str) -> &StubDir {
        let path = self.0.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write the stub");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod the stub");
        self
    }

    /// Returns a `PATH` with the stub directory first, then the system directories for
    /// sh, sleep and cat.
    fn path_env(&self) -> String {
        format!("{}:/usr/bin:/bin", self.0.display())
    }
}

impl Drop for StubDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary with `args` and `PATH`, and no inherited health-check variables.
fn run(args: &[&str], path: &str) -> Output {
    Command::new(BINARY)
        .args(args)
        .env("PATH", path)
        .env_remove("DCGM_DIAG_LEVEL")
        .env_remove("DCGM_DIAG_TIMEOUT")
        .env_remove("EXPECTED_GPUS")
        .env_remove("DCGM_START_HOSTENGINE")
        .env_remove("DCGMI")
        .env_remove("HEALTH_CHECK_JOURNAL_DIR")
        .output()
        .expect("run gpu-health-check")
}

/// Checks that stdout is exactly one JSON line and returns it parsed.
fn json_line(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout must be one line: {stdout:?}");
    serde_json::from_str(lines[0]).expect("stdout is a JSON line")
}

fn exit_code(output: &Output) -> i32 {
    output.status.code().expect("the binary exits with a code")
}

fn report_arg(name: &str) -> String {
    fixture(name).display().to_string()
}

#[test]
fn report_file_pass_exits_zero() {
    let report = report_arg("diag-r2-h100-8gpu-pass.json");
    let output = run(&["--report", &report, "--no-kernel-log"], "/usr/bin:/bin");
    assert_eq!(exit_code(&output), 0);
    let line = json_line(&output);
    assert_eq!(line["verdict"], "healthy");
    assert_eq!(line["exit_code"], 0);
    assert_eq!(line["dcgmi"]["state"], "not_run");
    assert_eq!(line["dcgm_version"], "4.2.3");
}

#[test]
fn report_file_dbe_exits_one() {
    let report = report_arg("diag-r2-h100-8gpu-dbe-fail.json");
    let output = run(&["--report", &report, "--no-kernel-log"], "/usr/bin:/bin");
    assert_eq!(exit_code(&output), 1);
    let line = json_line(&output);
    assert_eq!(line["verdict"], "reboot");
    assert_eq!(line["failing_gpus"][0]["gpu"], 3);
}

#[test]
fn report_file_config_only_exits_three() {
    let report = report_arg("diag-r1-gb10-persistence-fail.json");
    let output = run(&["--report", &report, "--no-kernel-log"], "/usr/bin:/bin");
    assert_eq!(exit_code(&output), 3);
    assert_eq!(json_line(&output)["verdict"], "inconclusive");
}

#[test]
fn kernel_log_file_xids_reported() {
    let report = report_arg("diag-r2-h100-8gpu-pass.json");
    let kernel_log = report_arg("kernel-xid-lines.txt");
    let output = run(
        &["--report", &report, "--kernel-log", &kernel_log],
        "/usr/bin:/bin",
    );
    assert_eq!(exit_code(&output), 1);
    let line = json_line(&output);
    assert_eq!(line["verdict"], "reboot");
    let xids = line["xids"].as_array().expect("xids is an array");
    assert_eq!(xids.len(), 12);
    assert_eq!(xids[0]["code"], 79);
    assert_eq!(xids[0]["pci_bus_id"], "0000:53:00");
    assert_eq!(xids[0]["action"], "RESTART_BM");
    assert_eq!(xids[1]["recovery_action"], "node_reboot");
}

#[test]
fn unreadable_report_exits_three() {
    let output = run(
        &["--report", "/nonexistent/report.json", "--no-kernel-log"],
        "/usr/bin:/bin",
    );
    assert_eq!(exit_code(&output), 3);
    let line = json_line(&output);
    assert_eq!(line["verdict"], "inconclusive");
    let reason = line["reasons"][0].as_str().expect("a reason");
    assert!(reason.contains("/nonexistent/report.json"), "{reason}");
    assert!(reason.contains("check the path"), "{reason}");
}

#[test]
fn unreadable_kernel_log_exits_three() {
    let report = report_arg("diag-r2-h100-8gpu-pass.json");
    let output = run(
        &["--report", &report, "--kernel-log", "/nonexistent/kmsg.txt"],
        "/usr/bin:/bin",
    );
    assert_eq!(exit_code(&output), 3);
    let reason = json_line(&output)["reasons"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("/nonexistent/kmsg.txt"), "{reason}");
}

#[test]
fn invalid_flag_values_exit_three() {
    for args in [
        &["--level", "7"][..],
        &["--level", "two"],
        &["--timeout", "0"],
        &["--expected-gpus", "-1"],
        &["--no-such-flag"],
    ] {
        let output = run(args, "/usr/bin:/bin");
        assert_eq!(exit_code(&output), 3, "{args:?}");
        let line = json_line(&output);
        assert_eq!(line["verdict"], "inconclusive", "{args:?}");
        let reason = line["reasons"][0].as_str().unwrap_or_default();
        assert!(reason.contains("--help"), "{args:?}: {reason}");
    }
}

#[test]
fn invalid_level_env_exits_three() {
    let output = Command::new(BINARY)
        .args(["--no-kernel-log"])
        .env("PATH", "/usr/bin:/bin")
        .env("DCGM_DIAG_LEVEL", "9")
        .output()
        .expect("run gpu-health-check");
    assert_eq!(exit_code(&output), 3);
    let reason = json_line(&output)["reasons"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("'9'"), "{reason}");
}

#[test]
fn help_exits_zero() {
    let output = run(&["--help"], "/usr/bin:/bin");
    assert_eq!(exit_code(&output), 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains("--expected-gpus"));
}

#[test]
fn hanging_dcgmi_times_out_inconclusive() {
    let stubs = StubDir::new();
    stubs.script("dcgmi", "sleep 30");
    let started = Instant::now();
    let output = run(&["--timeout", "1", "--no-kernel-log"], &stubs.path_env());
    let elapsed = started.elapsed();
    assert_eq!(exit_code(&output), 3);
    let line = json_line(&output);
    assert_eq!(line["verdict"], "inconclusive");
    assert_eq!(line["dcgmi"]["state"], "timed_out");
    assert_eq!(line["dcgmi"]["seconds"], 1);
    assert!(
        elapsed < Duration::from_secs(15),
        "the timeout did not stop dcgmi: {elapsed:?}"
    );
}

#[test]
fn failing_dcgmi_report_exits_one() {
    let stubs = StubDir::new();
    let report = report_arg("diag-r2-h100-8gpu-dbe-fail.json");
    // dcgmi must be called as `dcgmi diag -r 2 -j`; any other call fails the test.
    stubs.script(
        "dcgmi",
        &format!(
            "[ \"$*\" = \"diag -r 2 -j\" ] || {{ echo \"unexpected arguments: $*\" >&2; exit 99; }}\n\
             echo 'Successfully ran diagnostic for group.'\ncat '{report}'\nexit 226"
        ),
    );
    let output = run(&["--no-kernel-log"], &stubs.path_env());
    assert_eq!(
        exit_code(&output),
        1,
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = json_line(&output);
    assert_eq!(line["verdict"], "reboot");
    assert_eq!(
        line["dcgmi"],
        serde_json::json!({"state": "exited", "code": 226})
    );
    assert_eq!(line["failing_gpus"][0]["gpu"], 3);
}

#[test]
fn level_flag_reaches_dcgmi() {
    let stubs = StubDir::new();
    let report = report_arg("diag-r1-gb10-persistence-fail.json");
    stubs.script(
        "dcgmi",
        &format!("[ \"$*\" = \"diag -r 1 -j\" ] || exit 99\ncat '{report}'\nexit 226"),
    );
    let output = run(&["--level", "1", "--no-kernel-log"], &stubs.path_env());
    assert_eq!(exit_code(&output), 3);
    let line = json_line(&output);
    assert_eq!(
        line["dcgmi"]["code"], 226,
        "the stub saw other arguments: {line}"
    );
    assert_eq!(
        line["failing_gpus"][0]["tests"][0]["errors"][0]["error_id"],
        29
    );
}

#[test]
fn killed_suite_exit_203_inconclusive() {
    let stubs = StubDir::new();
    stubs.script("dcgmi", "exit 203");
    let output = run(&["--no-kernel-log"], &stubs.path_env());
    assert_eq!(exit_code(&output), 3);
    let line = json_line(&output);
    assert_eq!(line["verdict"], "inconclusive");
    assert_eq!(line["dcgmi"]["code"], 203);
    let reasons = line["reasons"].to_string();
    assert!(reasons.contains("validation suite was killed"), "{reasons}");
}

#[test]
fn crashing_dcgmi_inconclusive() {
    let stubs = StubDir::new();
    let report = report_arg("diag-r2-h100-8gpu-pass.json");
    stubs.script("dcgmi", &format!("cat '{report}'\nkill -SEGV $$"));
    let output = run(&["--no-kernel-log"], &stubs.path_env());
    assert_eq!(exit_code(&output), 3);
    let line = json_line(&output);
    assert_eq!(
        line["dcgmi"],
        serde_json::json!({"state": "killed", "signal": 11})
    );
}

#[test]
fn passing_dcgmi_with_gpu_count_exits_zero() {
    let stubs = StubDir::new();
    let report = report_arg("diag-r2-h100-8gpu-pass.json");
    stubs.script("dcgmi", &format!("cat '{report}'"));
    let listing = (0..8)
        .map(|i| format!("echo 'GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i:08x})'"))
        .collect::<Vec<_>>()
        .join("\n");
    stubs.script("nvidia-smi", &listing);
    let output = run(
        &["--expected-gpus", "8", "--no-kernel-log"],
        &stubs.path_env(),
    );
    assert_eq!(
        exit_code(&output),
        0,
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let line = json_line(&output);
    assert_eq!(
        line["gpu_count"],
        serde_json::json!({"expected": 8, "seen": 8})
    );
}

#[test]
fn missing_gpu_exits_one() {
    let stubs = StubDir::new();
    let report = report_arg("diag-r2-h100-8gpu-pass.json");
    stubs.script("dcgmi", &format!("cat '{report}'"));
    stubs.script(
        "nvidia-smi",
        "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)'",
    );
    let output = run(
        &["--expected-gpus", "2", "--no-kernel-log"],
        &stubs.path_env(),
    );
    assert_eq!(exit_code(&output), 1);
    let line = json_line(&output);
    assert_eq!(
        line["gpu_count"],
        serde_json::json!({"expected": 2, "seen": 1})
    );
}

#[test]
fn missing_dcgmi_inconclusive() {
    let stubs = StubDir::new();
    let output = run(&["--no-kernel-log"], &stubs.path_env());
    assert_eq!(exit_code(&output), 3);
    let line = json_line(&output);
    assert_eq!(line["dcgmi"]["state"], "spawn_failed");
}
