//! The report of a run: the timeline, the final job and node tables, and the
//! result of each expectation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use gpu_recovery_domain::{JobRecord, NodeRecord, Notification, Span};
use gpu_recovery_memory::{MemoryNotifier, MemoryStore};
use serde::Serialize;
use serde_json::json;

use crate::cluster::SimCluster;
use crate::scenario::Scenario;

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// Offset from the job's first start.
    pub at: Span,
    /// `event`, `decision`, `effect`, `fault`, `crash`, `error`, `submit`, `dry-run` or `stop`.
    pub kind: &'static str,
    pub text: String,
}

/// One `[expect]` entry and whether it held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub expected: String,
    pub actual: String,
    pub passed: bool,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct SimReport {
    pub file: String,
    pub description: String,
    pub seed: u64,
    pub lines: Vec<Line>,
    pub jobs: Vec<JobRecord>,
    pub nodes: Vec<NodeRecord>,
    pub notifications: Vec<Notification>,
    /// SSM reboot commands per node.
    pub reboots: BTreeMap<String, u32>,
    pub checks: Vec<Check>,
    /// Invariants the run broke; empty for a correct engine.
    pub violations: Vec<String>,
}

fn clock(span: Span) -> String {
    let total = span.0 / 1000;
    format!(
        "+{:02}:{:02}:{:02}",
        total / 3600,
        (total / 60) % 60,
        total % 60
    )
}

impl SimReport {
    pub(crate) fn build(
        scenario: &Scenario,
        seed: u64,
        lines: Vec<Line>,
        store: &MemoryStore,
        cluster: &SimCluster,
        notifier: &MemoryNotifier,
        violations: Vec<String>,
    ) -> SimReport {
        let mut reboots: BTreeMap<String, u32> =
            scenario.nodes.iter().map(|n| (n.name.clone(), 0)).collect();
        for command in &cluster.lock().commands {
            *reboots.entry(command.node.clone()).or_default() += 1;
        }
        let mut report = SimReport {
            file: scenario.file.clone(),
            description: scenario.description.clone(),
            seed,
            lines,
            jobs: store.jobs(),
            nodes: store.nodes(),
            notifications: notifier.sent(),
            reboots,
            checks: Vec::new(),
            violations,
        };
        report.checks = report.evaluate(scenario);
        report
    }

    fn evaluate(&self, scenario: &Scenario) -> Vec<Check> {
        let Some(expect) = &scenario.expect else {
            return Vec::new();
        };
        let job = self.jobs.iter().find(|j| j.job_id == scenario.job.id);
        let mut checks = Vec::new();
        let mut check = |name: String, expected: String, actual: String| {
            let passed = expected == actual;
            checks.push(Check {
                name,
                expected,
                actual,
                passed,
            });
        };
        if let Some(status) = expect.job_status {
            check(
                "job_status".to_owned(),
                status.to_string(),
                job.map_or("missing".to_owned(), |j| j.job_status.to_string()),
            );
        }
        if let Some(retry) = expect.retry {
            check(
                "retry".to_owned(),
                retry.to_string(),
                job.map_or("missing".to_owned(), |j| j.retry.to_string()),
            );
        }
        if let Some(episodes) = expect.episodes {
            check(
                "episodes".to_owned(),
                episodes.to_string(),
                job.map_or("missing".to_owned(), |j| j.episodes_opened.to_string()),
            );
        }
        for (node, count) in &expect.reboots {
            check(
                format!("reboots.{node}"),
                count.to_string(),
                self.reboots.get(node).copied().unwrap_or(0).to_string(),
            );
        }
        for (node, status) in &expect.node_status {
            let actual = self
                .nodes
                .iter()
                .find(|n| &n.node_name == node)
                .map_or("missing".to_owned(), |n| n.node_status.to_string());
            check(format!("node_status.{node}"), status.to_string(), actual);
        }
        if let Some(count) = expect.notifications {
            check(
                "notifications".to_owned(),
                count.to_string(),
                self.notifications.len().to_string(),
            );
        }
        checks
    }

    /// True when every expectation held and no invariant broke.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// Renders the report for a terminal.
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "scenario {} (seed {})", self.file, self.seed);
        if !self.description.is_empty() {
            let _ = writeln!(out, "  {}", self.description);
        }
        let _ = writeln!(out, "\ntimeline");
        for line in &self.lines {
            let _ = writeln!(out, "  {} {:<8} {}", clock(line.at), line.kind, line.text);
        }
        let _ = writeln!(out, "\njobs");
        let _ = writeln!(
            out,
            "  {:<24} {:<20} {:>5} {:>8}  reason",
            "job_id", "job_status", "retry", "episodes"
        );
        for job in &self.jobs {
            let _ = writeln!(
                out,
                "  {:<24} {:<20} {:>5} {:>8}  {}",
                job.job_id,
                job.job_status.to_string(),
                job.retry,
                job.episodes_opened,
                job.status_reason.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(out, "\nnodes");
        let _ = writeln!(
            out,
            "  {:<12} {:<20} {:>7}  reason",
            "node_name", "node_status", "reboots"
        );
        for node in &self.nodes {
            let reboots = self.reboots.get(&node.node_name).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "  {:<12} {:<20} {:>7}  {}",
                node.node_name,
                node.node_status.to_string(),
                reboots,
                node.status_reason.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(out, "\nnotifications: {}", self.notifications.len());
        for notification in &self.notifications {
            let _ = writeln!(out, "  [{}] {}", notification.kind, notification.subject);
        }
        if !self.checks.is_empty() {
            let _ = writeln!(out, "\nexpectations");
            for check in &self.checks {
                let mark = if check.passed { "ok  " } else { "FAIL" };
                let _ = writeln!(
                    out,
                    "  {mark} {} = {} (expected {})",
                    check.name, check.actual, check.expected
                );
            }
        }
        for violation in &self.violations {
            let _ = writeln!(out, "  FAIL {violation}");
        }
        let failed = self.checks.iter().filter(|c| !c.passed).count() + self.violations.len();
        let passed = self.checks.iter().filter(|c| c.passed).count();
        let _ = writeln!(out, "\n{passed} passed, {failed} failed");
        out
    }

    /// Renders the report as one JSON document.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "scenario": self.file,
            "description": self.description,
            "seed": self.seed,
            "passed": self.passed(),
            "timeline": self.lines.iter().map(|l| json!({"at": clock(l.at), "at_ms": l.at.0, "kind": l.kind, "text": l.text})).collect::<Vec<_>>(),
            "jobs": self.jobs,
            "nodes": self.nodes,
            "notifications": self.notifications,
            "reboots": self.reboots,
            "expectations": self.checks,
            "violations": self.violations,
        })
    }
}
