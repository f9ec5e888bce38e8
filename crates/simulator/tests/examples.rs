//! Every scenario in `examples/` runs with its expectations, and invalid
//! scenarios fail with the file, the field and the expected form.

use std::path::{Path, PathBuf};

use gpu_recovery_simulator::{RunOptions, Scenario, ScenarioError, simulate_file};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn run_example(name: &str) -> gpu_recovery_simulator::SimReport {
    let path = examples().join(name);
    simulate_file(&path, &RunOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_example_meets_expectations() {
    let mut count = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        count += 1;
        let report = simulate_file(&path, &RunOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            report.passed(),
            "{} failed:\n{}",
            path.display(),
            report.render_text()
        );
        assert!(
            !report.checks.is_empty(),
            "{} has no [expect] table",
            path.display()
        );
    }
    assert!(count >= 5, "only {count} example scenarios found");
}

#[test]
fn examples_hold_under_other_seeds() {
    for name in [
        "gpu-fault-reboot.toml",
        "application-fault.toml",
        "fault-survives-reboot.toml",
    ] {
        for seed in [1, 2, 99, 12345] {
            let path = examples().join(name);
            let report = simulate_file(
                &path,
                &RunOptions {
                    seed: Some(seed),
                    crash_after_calls: None,
                },
            )
            .unwrap();
            assert!(
                report.passed(),
                "{name} with seed {seed}:\n{}",
                report.render_text()
            );
        }
    }
}

#[test]
fn reboot_example_restarts_same_ranks() {
    let report = run_example("gpu-fault-reboot.toml");
    let job = &report.jobs[0];
    let launch = job.launch.as_ref().expect("launch recorded");
    assert_eq!(job.assigned_nodes, ["node-a", "node-b"], "ranks");
    for (rank, spec) in launch.ranks.iter().enumerate() {
        let expected = rank.to_string();
        let env = &spec.overrides["containerOverrides"][0]["environment"][0];
        assert_eq!(
            env["value"].as_str(),
            Some(expected.as_str()),
            "NODE_RANK override of rank {rank}"
        );
    }
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.text.contains("RESTARTING -> IN_PROGRESS")),
        "restart reached RUNNING"
    );
}

#[test]
fn user_stop_opens_no_episode() {
    let report = run_example("user-stop.toml");
    assert!(
        report
            .lines
            .iter()
            .all(|l| !l.text.contains("PENDING_HEALTHCHECK")),
        "a user stop read as a GPU fault"
    );
}

#[test]
fn one_day_runs_quickly() {
    // Not a timing assertion: the benchmark measures speed. This checks that
    // a scenario of a day of simulated time finishes at all.
    let report = run_example("gpu-fault-reboot.toml");
    let last = report.lines.last().expect("timeline");
    assert!(
        last.at.0 >= 10 * 3_600_000,
        "timeline ends at {:?}",
        last.at
    );
}

fn invalid(text: &str) -> String {
    match Scenario::from_text(text, "bad.toml", &examples()) {
        Ok(_) => panic!("scenario accepted:\n{text}"),
        Err(error) => error.to_string(),
    }
}

const NODES: &str = "[[node]]\nname = \"node-a\"\n";
const JOB: &str = "[job]\nid = \"j1\"\nnodes = [\"node-a\"]\nruns_for = \"1h\"\n";

#[test]
fn invalid_scenarios_name_field() {
    let cases = [
        (
            format!("{NODES}{JOB}[policy]\nmax_retries = -1\n"),
            "policy.max_retries",
        ),
        (
            format!("{NODES}{JOB}[policy]\nreboot_budget = 3\n"),
            "policy.reboot_budget",
        ),
        (
            format!("[[node]]\nname = \"node-a\"\nhealth = \"sick\"\n{JOB}"),
            "node[0].health",
        ),
        (
            format!("[[node]]\nname = \"node-a\"\nhealth = \"dcgm/missing.json\"\n{JOB}"),
            "node[0].health",
        ),
        (
            format!("[[node]]\nname = \"node-a\"\nreboot_seconds = 0\n{JOB}"),
            "node[0].reboot_seconds",
        ),
        (
            format!("{NODES}[job]\nid = \"j1\"\nnodes = [\"node-z\"]\nruns_for = \"1h\"\n"),
            "job.nodes[0]",
        ),
        (
            format!("{NODES}[job]\nid = \"j1\"\nnodes = [\"node-a\"]\nruns_for = \"soon\"\n"),
            "job.runs_for",
        ),
        (
            format!("{NODES}{JOB}[[event]]\nat = \"1h\"\nnode = \"node-a\"\n"),
            "event[0]",
        ),
        (
            format!("{NODES}{JOB}[[event]]\nat = \"1h\"\nnode = \"node-b\"\ntask_exit = 1\n"),
            "event[0].node",
        ),
        (
            format!("{NODES}{JOB}[expect]\njob_status = \"DONE\"\n"),
            "expect.job_status",
        ),
        (
            format!("{NODES}{JOB}[expect]\nnode_status = {{ \"node-a\" = \"BROKEN\" }}\n"),
            "expect.node_status.node-a",
        ),
        (
            format!("{NODES}{JOB}[delivery]\nreorder_within = \"a while\"\n"),
            "delivery.reorder_within",
        ),
        (JOB.to_owned(), "node"),
        (NODES.to_owned(), "job"),
    ];
    for (text, field) in cases {
        let message = invalid(&text);
        assert!(
            message.starts_with("bad.toml: "),
            "message lacks the file: {message}"
        );
        assert!(
            message.contains(&format!("field {field}:")) || message.contains(field),
            "message for {field} does not name it: {message}"
        );
        assert!(
            message.contains("expected"),
            "message for {field} gives no expected form: {message}"
        );
    }
}

#[test]
fn unknown_key_rejected_with_line() {
    let message = invalid(&format!("{NODES}{JOB}colour = \"red\"\n"));
    assert!(message.contains("unknown field `colour`"), "{message}");
}

#[test]
fn unreadable_file_names_path() {
    let error = simulate_file(
        Path::new("/nonexistent/scenario.toml"),
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(error, ScenarioError::Read { .. }), "{error}");
    assert!(
        error.to_string().contains("/nonexistent/scenario.toml"),
        "{error}"
    );
}

#[test]
fn dry_run_changes_nothing() {
    let path = examples().join("gpu-fault-reboot.toml");
    let mut scenario = Scenario::from_file(&path).unwrap();
    scenario.policy.dry_run = true;
    let report = gpu_recovery_simulator::Simulation::new(scenario, &RunOptions::default()).run();
    assert_eq!(
        report.reboots.values().sum::<u32>(),
        0,
        "reboot commands sent in a dry run"
    );
    assert!(
        report.notifications.is_empty(),
        "notifications sent in a dry run"
    );
    let job = &report.jobs[0];
    assert_eq!(job.version, 1, "job record written in a dry run: {job:?}");
    assert_eq!(
        job.job_status,
        gpu_recovery_domain::JobStatus::InProgress,
        "job status"
    );
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.kind == "dry-run" && l.text.contains("stop task")),
        "the decision to stop the sibling is not logged"
    );
}
