//! The health-check verdict: [`assess`] combines a DCGM report, the kernel's Xid events,
//! the GPU count and the way `dcgmi` ended into one [`Assessment`]. The assessment is
//! the one JSON line the runner prints; [`Assessment::from_log_line`] reads it back.
//!
//! The node's verdict is the worst finding by [`Verdict::worst`]: a confirmed fault
//! outranks a check that could not finish, which outranks a pass. A timeout, a crash of
//! `dcgmi`, a missing or unparseable report, or a run in which no test ran is therefore
//! never healthy.

use std::collections::BTreeMap;
use std::fmt;

use gpu_recovery_domain::Verdict;
use serde::{Deserialize, Serialize};

use crate::classify::{Severity, classify_error};
use crate::report::{
    DiagError, DiagReport, EntityResult, ReportError, TestRun, TestStatus, TestSummary,
    parse_report,
};
use crate::xid::{CatalogAction, RecoveryAction, XidEvent, xid_verdict};

/// Value of [`Assessment::schema`]; [`Assessment::from_log_line`] accepts no other.
pub const SCHEMA: &str = "gpu-health-check/v1";

/// `dcgmi diag` exit status when a test failed: `DCGM_ST_NVVS_ERROR` (-30) modulo 256.
pub const DCGMI_EXIT_TEST_FAILED: i32 = 226;
/// `dcgmi diag` exit status for an error of ISOLATE severity:
/// `DCGM_ST_NVVS_ISOLATE_ERROR` (-51) modulo 256.
pub const DCGMI_EXIT_ISOLATE: i32 = 205;
/// `dcgmi diag` exit status when the validation suite was killed by a signal:
/// `DCGM_ST_NVVS_KILLED` (-53) modulo 256.
pub const DCGMI_EXIT_KILLED: i32 = 203;
/// `dcgmi diag` exit status when no test ran: DCGM return code -14 modulo 256.
pub const DCGMI_EXIT_NO_TESTS: i32 = 242;

/// The ending of the `dcgmi diag` process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DcgmiRun {
    /// `dcgmi` did not run here: the report came from a file.
    #[default]
    NotRun,
    /// `dcgmi` exited with this status.
    Exited {
        /// Exit status, 0 to 255.
        code: i32,
    },
    /// `dcgmi` ran past the timeout and its process group was killed.
    TimedOut {
        /// The timeout, in seconds.
        seconds: u64,
    },
    /// `dcgmi` was ended by a signal it did not ask for (a crash or an outside kill).
    Killed {
        /// Signal number.
        signal: i32,
    },
    /// `dcgmi` could not be started.
    SpawnFailed {
        /// The operating system's error.
        message: String,
    },
}

impl fmt::Display for DcgmiRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DcgmiRun::NotRun => f.write_str("not run"),
            DcgmiRun::Exited { code } => write!(f, "exited with status {code}"),
            DcgmiRun::TimedOut { seconds } => write!(f, "timed out after {seconds} s"),
            DcgmiRun::Killed { signal } => write!(f, "ended by signal {signal}"),
            DcgmiRun::SpawnFailed { message } => write!(f, "did not start: {message}"),
        }
    }
}

/// GPUs the node should have against GPUs found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuCount {
    /// GPUs the node should have.
    pub expected: u32,
    /// GPUs `nvidia-smi -L` listed; `None` when they could not be counted.
    pub seen: Option<u32>,
}

/// Everything [`assess`] judges.
#[derive(Debug, Clone, Default)]
pub struct AssessInput {
    /// The parsed report, the reason it could not be parsed, or `None` when there was
    /// no report text at all.
    pub report: Option<Result<DiagReport, ReportError>>,
    /// NVRM Xid events from the kernel log since boot.
    pub xid_events: Vec<XidEvent>,
    /// The GPU count check, when an expected count was given.
    pub gpu_count: Option<GpuCount>,
    /// The ending of `dcgmi`.
    pub dcgmi: DcgmiRun,
    /// Sentences to pass on as reasons without changing the verdict, such as a kernel
    /// log source that could not be read.
    pub notes: Vec<String>,
}

/// The health-check result: the one JSON line the runner prints on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// Format marker, always [`SCHEMA`].
    pub schema: String,
    /// The node's verdict.
    pub verdict: Verdict,
    /// The exit code of the verdict, which the runner exits with.
    pub exit_code: i32,
    /// Findings as sentences, the verdict-deciding ones first in input order.
    pub reasons: Vec<String>,
    /// GPUs (and non-GPU entities) with a failed test or a non-healthy error.
    pub failing_gpus: Vec<FailingGpu>,
    /// Xid events since boot, grouped by PCI address and code.
    pub xids: Vec<XidFinding>,
    /// The GPU count check, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_count: Option<GpuCount>,
    /// The ending of `dcgmi`.
    #[serde(default)]
    pub dcgmi: DcgmiRun,
    /// DCGM version from the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dcgm_version: Option<String>,
    /// Driver version from the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
}

/// One GPU, or one non-GPU finding of the report, that failed a test or carries an
/// error DCGM rates above MONITOR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingGpu {
    /// DCGM GPU id; `None` for a non-GPU entity or a test summary error.
    pub gpu: Option<u32>,
    /// "GPU", another DCGM entity group name, or "test summary".
    pub entity_group: String,
    /// Non-GPU entity id, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<u32>,
    /// The worst verdict of this entity's errors.
    pub verdict: Verdict,
    /// The tests it failed or got errors in.
    pub tests: Vec<FailedTest>,
}

/// One test result of a [`FailingGpu`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedTest {
    /// Test name, such as "memory".
    pub name: String,
    /// Zero-based iteration, for reports of `dcgmi diag --iterations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<usize>,
    /// The entity's status in this test.
    pub status: TestStatus,
    /// DCGM errors of this result.
    pub errors: Vec<ErrorDetail>,
}

/// One DCGM error with its severity name and verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `error_id` (`dcgmError_t`).
    pub error_id: Option<u32>,
    /// `error_category` (`dcgmErrorCategory_t`).
    pub category: Option<u32>,
    /// `error_severity` (`dcgmErrorSeverity_t`).
    pub severity: Option<u32>,
    /// Severity name, such as "isolate", when the value is a known severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_name: Option<Severity>,
    /// DCGM's message.
    pub message: String,
    /// The verdict this error alone gives.
    pub verdict: Verdict,
}

/// Xid events of one code on one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XidFinding {
    /// PCI address, as in the kernel line.
    pub pci_bus_id: String,
    /// Xid code.
    pub code: u32,
    /// How many lines had this address, code and (for Xid 154) recovery action.
    pub count: usize,
    /// Message of the first such line.
    pub message: String,
    /// Immediate action of NVIDIA's Xid catalog.
    pub action: CatalogAction,
    /// Recovery action of an Xid 154.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_action: Option<RecoveryAction>,
    /// The verdict this Xid gives.
    pub verdict: Verdict,
}

impl Assessment {
    /// Reads an assessment from one log line. Text before the first `{` (a timestamp
    /// prefix, say) is skipped. Returns `None` unless the rest is an assessment with
    /// [`SCHEMA`] and an exit code that matches its verdict.
    #[must_use]
    pub fn from_log_line(line: &str) -> Option<Assessment> {
        let start = line.find('{')?;
        let assessment: Assessment = serde_json::from_str(line[start..].trim_end()).ok()?;
        let consistent =
            assessment.schema == SCHEMA && assessment.exit_code == assessment.verdict.exit_code();
        consistent.then_some(assessment)
    }

    /// Reads the last assessment line of a log (such as a whole `CloudWatch` log stream).
    #[must_use]
    pub fn from_log(text: &str) -> Option<Assessment> {
        text.lines().rev().find_map(Assessment::from_log_line)
    }

    /// Builds an inconclusive assessment with one reason, for a check that could not
    /// start (an invalid option, an unreadable input file).
    #[must_use]
    pub fn inconclusive(reason: String) -> Assessment {
        Assessment {
            schema: SCHEMA.to_owned(),
            verdict: Verdict::Inconclusive,
            exit_code: Verdict::Inconclusive.exit_code(),
            reasons: vec![reason],
            failing_gpus: Vec::new(),
            xids: Vec::new(),
            gpu_count: None,
            dcgmi: DcgmiRun::NotRun,
            dcgm_version: None,
            driver_version: None,
        }
    }

    /// Serializes the assessment as one JSON line, without a line break.
    #[must_use]
    pub fn to_json_line(&self) -> String {
        // serde_json fails only on a map with non-string keys, and these types contain no map.
        serde_json::to_string(self).unwrap_or_else(|error| {
            format!(
                "{{\"schema\":\"{SCHEMA}\",\"verdict\":\"inconclusive\",\"exit_code\":3,\
                 \"reasons\":[\"the assessment could not be serialized: {error}\"],\
                 \"failing_gpus\":[],\"xids\":[]}}"
            )
        })
    }
}

/// Assesses one report file alone: an unparseable report is inconclusive, with the
/// parse error as its reason.
#[must_use]
pub fn assess_report_text(text: &str) -> Assessment {
    assess(&AssessInput {
        report: Some(parse_report(text)),
        ..AssessInput::default()
    })
}

/// Collects findings: each raises the verdict to at least its own.
struct Findings {
    verdict: Verdict,
    reasons: Vec<String>,
    notes: Vec<String>,
}

impl Findings {
    fn add(&mut self, verdict: Verdict, reason: String) {
        self.verdict = self.verdict.worst(verdict);
        self.reasons.push(reason);
    }

    fn note(&mut self, reason: String) {
        self.notes.push(reason);
    }
}

/// Turns the inputs into the node's verdict and the JSON line's content.
#[must_use]
pub fn assess(input: &AssessInput) -> Assessment {
    let mut findings = Findings {
        verdict: Verdict::Healthy,
        reasons: Vec::new(),
        notes: Vec::new(),
    };

    let mut failing_gpus = Vec::new();
    let mut dcgm_version = None;
    let mut driver_version = None;
    let mut summary = None;
    match &input.report {
        Some(Ok(report)) => {
            let outcome = assess_report(report, &mut findings);
            check_exit_status(&input.dcgmi, Some(&outcome), &mut findings);
            if let Some(count) = input.gpu_count
                && !report.gpu_ids.is_empty()
                && report.gpu_ids.len() < count.expected as usize
            {
                findings.add(
                    Verdict::Reboot,
                    format!(
                        "DCGM tested {} GPUs but {} are expected; NVIDIA's first action for \
                         a GPU that fell off the bus (Xid 79) is to restart the node",
                        report.gpu_ids.len(),
                        count.expected
                    ),
                );
            }
            summary = Some(outcome.summary);
            failing_gpus = outcome.failing_gpus;
            dcgm_version.clone_from(&report.dcgm_version);
            driver_version.clone_from(&report.driver_version);
        }
        Some(Err(error)) => {
            check_exit_status(&input.dcgmi, None, &mut findings);
            findings.add(
                Verdict::Inconclusive,
                format!("the diagnostic report could not be used: {error}"),
            );
        }
        None => {
            check_exit_status(&input.dcgmi, None, &mut findings);
            findings.add(
                Verdict::Inconclusive,
                "no diagnostic report was produced".to_owned(),
            );
        }
    }

    let xids = assess_xids(&input.xid_events, &mut findings);
    if let Some(count) = input.gpu_count {
        assess_gpu_count(count, &mut findings);
    }
    for note in &input.notes {
        findings.note(note.clone());
    }

    let verdict = findings.verdict;
    let mut reasons = Vec::new();
    if verdict == Verdict::Healthy
        && let Some(summary) = summary
    {
        reasons.push(summary);
    }
    reasons.append(&mut findings.reasons);
    reasons.append(&mut findings.notes);

    Assessment {
        schema: SCHEMA.to_owned(),
        verdict,
        exit_code: verdict.exit_code(),
        reasons,
        failing_gpus,
        xids,
        gpu_count: input.gpu_count,
        dcgmi: input.dcgmi.clone(),
        dcgm_version,
        driver_version,
    }
}

/// Facts about the report that the exit status check needs.
struct ReportOutcome {
    failing_gpus: Vec<FailingGpu>,
    any_failed_result: bool,
    any_isolate_error: bool,
    summary: String,
}

/// Key of an entity: (entity group, GPU id or entity id).
type EntityKey = (String, Option<u32>);

/// State gathered while walking the report's results.
#[derive(Default)]
struct ReportScan {
    entities: BTreeMap<EntityKey, FailingGpu>,
    result_count: usize,
    skipped: usize,
    any_failed_result: bool,
    any_isolate_error: bool,
}

fn assess_report(report: &DiagReport, findings: &mut Findings) -> ReportOutcome {
    for error in &report.runtime_errors {
        findings.add(
            Verdict::Inconclusive,
            format!("DCGM could not run the diagnostic: {error}"),
        );
    }

    let mut scan = ReportScan::default();
    for test in &report.tests {
        let iteration = (report.iterations > 1).then_some(test.iteration);
        let test_label = match iteration {
            Some(i) => format!("{} test (iteration {})", test.name, i + 1),
            None => format!("{} test", test.name),
        };
        let mut test_had_failure = false;
        for result in &test.results {
            test_had_failure |= result.status == TestStatus::Fail;
            scan.add_result(result, test, iteration, &test_label, findings);
        }
        if let Some(summary) = &test.summary {
            scan.add_summary(
                summary,
                test,
                iteration,
                &test_label,
                test_had_failure,
                findings,
            );
        }
    }

    let ReportScan {
        entities,
        result_count,
        skipped,
        any_failed_result,
        any_isolate_error,
    } = scan;
    if result_count == 0 {
        findings.add(
            Verdict::Inconclusive,
            "the diagnostic report lists no test results".into(),
        );
    } else if skipped == result_count {
        findings.add(
            Verdict::Inconclusive,
            format!("all {result_count} test results were skipped, so no GPU was tested"),
        );
    }
    if report.overall_result.as_deref().map(TestStatus::parse) == Some(TestStatus::Fail) {
        let warning = report
            .overall_warning
            .as_deref()
            .unwrap_or("no reason given");
        let reason =
            format!("the diagnostic iterations stopped with overall result Fail: {warning}");
        if any_failed_result {
            findings.note(reason);
        } else {
            findings.add(Verdict::Inconclusive, reason);
        }
    }

    let version = report
        .dcgm_version
        .as_deref()
        .map_or(String::new(), |v| format!(" {v}"));
    let summary = format!(
        "DCGM{version} diagnostics passed: {result_count} test results on {} GPUs, \
         {skipped} of them skipped",
        report.gpu_ids.len(),
    );
    ReportOutcome {
        failing_gpus: entities.into_values().collect(),
        any_failed_result,
        any_isolate_error,
        summary,
    }
}

impl ReportScan {
    fn add_result(
        &mut self,
        result: &EntityResult,
        test: &TestRun,
        iteration: Option<usize>,
        test_label: &str,
        findings: &mut Findings,
    ) {
        self.result_count += 1;
        if result.status == TestStatus::Skip {
            self.skipped += 1;
        }
        let failed = result.status == TestStatus::Fail;
        self.any_failed_result |= failed;
        self.any_isolate_error |= has_isolate_error(&result.errors);

        let subject = entity_label(&result.entity_group, result.entity_id);
        let details = judge_errors(
            &result.errors,
            &subject,
            test_label,
            &result.status,
            findings,
        );
        let mut verdict = worst_of(&details);
        if failed && result.errors.is_empty() {
            verdict = verdict.worst(Verdict::Inconclusive);
            findings.add(
                Verdict::Inconclusive,
                format!("{subject} failed the {test_label} without an error code"),
            );
        }
        let listed = failed || result.status == TestStatus::Warn;
        if !listed && verdict == Verdict::Healthy {
            return;
        }
        let key = (result.entity_group.clone(), result.entity_id);
        let entity = self.entities.entry(key).or_insert_with(|| FailingGpu {
            gpu: result.gpu_id(),
            entity_group: result.entity_group.clone(),
            entity_id: if result.is_gpu() {
                None
            } else {
                result.entity_id
            },
            verdict: Verdict::Healthy,
            tests: Vec::new(),
        });
        entity.verdict = entity.verdict.worst(verdict);
        entity.tests.push(FailedTest {
            name: test.name.clone(),
            iteration,
            status: result.status.clone(),
            errors: details,
        });
    }

    fn add_summary(
        &mut self,
        summary: &TestSummary,
        test: &TestRun,
        iteration: Option<usize>,
        test_label: &str,
        test_had_failure: bool,
        findings: &mut Findings,
    ) {
        let subject = format!("the {test_label} as a whole");
        let details = judge_errors(
            &summary.errors,
            &subject,
            test_label,
            &summary.status,
            findings,
        );
        self.any_isolate_error |= has_isolate_error(&summary.errors);
        if summary.status == TestStatus::Fail && !test_had_failure && details.is_empty() {
            findings.add(
                Verdict::Inconclusive,
                format!("the {test_label} failed as a whole, but no entity result failed"),
            );
        }
        if details.is_empty() {
            return;
        }
        let entity = self
            .entities
            .entry(("test summary".to_owned(), None))
            .or_insert_with(|| FailingGpu {
                gpu: None,
                entity_group: "test summary".to_owned(),
                entity_id: None,
                verdict: Verdict::Healthy,
                tests: Vec::new(),
            });
        entity.verdict = entity.verdict.worst(worst_of(&details));
        entity.tests.push(FailedTest {
            name: test.name.clone(),
            iteration,
            status: summary.status.clone(),
            errors: details,
        });
    }
}

fn has_isolate_error(errors: &[DiagError]) -> bool {
    errors
        .iter()
        .any(|e| e.severity.and_then(Severity::from_code) == Some(Severity::Isolate))
}

fn worst_of(details: &[ErrorDetail]) -> Verdict {
    details
        .iter()
        .fold(Verdict::Healthy, |verdict, d| verdict.worst(d.verdict))
}

/// Classifies each error of one result and adds a reason for every error that is not
/// healthy, and for a failed or warned result whose errors are all healthy.
fn judge_errors(
    errors: &[DiagError],
    subject: &str,
    test_label: &str,
    status: &TestStatus,
    findings: &mut Findings,
) -> Vec<ErrorDetail> {
    let mut details = Vec::new();
    for error in errors {
        let class = classify_error(error);
        let severity = class.severity.map_or_else(
            || {
                error
                    .severity
                    .map_or("no severity".to_owned(), |s| format!("severity {s}"))
            },
            |s| format!("severity {s}"),
        );
        let id = error
            .error_id
            .map_or("no error id".to_owned(), |id| format!("error {id}"));
        let verb = if *status == TestStatus::Fail {
            "failed"
        } else {
            "reported an error in"
        };
        let finding = format!(
            "{subject} {verb} the {test_label} with {id} ({severity}): \"{}\"",
            error.message.trim()
        );
        if class.verdict != Verdict::Healthy {
            let verdict = capitalized(class.verdict);
            findings.add(
                class.verdict,
                format!("{finding} {verdict}: {}.", class.rule),
            );
        } else if matches!(status, TestStatus::Fail | TestStatus::Warn) {
            findings.note(format!("{finding} Not a fault alone: {}.", class.rule));
        }
        details.push(ErrorDetail {
            error_id: error.error_id,
            category: error.category,
            severity: error.severity,
            severity_name: class.severity,
            message: error.message.clone(),
            verdict: class.verdict,
        });
    }
    details
}

/// Returns the verdict's name with a capital letter, to start a clause.
fn capitalized(verdict: Verdict) -> String {
    let name = verdict.as_str();
    name[..1].to_ascii_uppercase() + &name[1..]
}

fn entity_label(entity_group: &str, entity_id: Option<u32>) -> String {
    match entity_id {
        Some(id) => format!("{entity_group} {id}"),
        None => format!("a {entity_group} entity"),
    }
}

/// Judges the ending of `dcgmi`, against the report when there is one. `dcgmi diag`
/// never exits 1 for a GPU fault, so the report content decides. An exit status that
/// the report does not explain makes the check inconclusive.
fn check_exit_status(run: &DcgmiRun, report: Option<&ReportOutcome>, findings: &mut Findings) {
    match run {
        DcgmiRun::NotRun => {}
        DcgmiRun::TimedOut { seconds } => findings.add(
            Verdict::Inconclusive,
            format!(
                "dcgmi diag did not finish within {seconds} s and was killed; a hung \
                 diagnostic is never a pass"
            ),
        ),
        DcgmiRun::Killed { signal } => findings.add(
            Verdict::Inconclusive,
            format!("dcgmi diag was ended by signal {signal} before it finished"),
        ),
        DcgmiRun::SpawnFailed { message } => findings.add(
            Verdict::Inconclusive,
            format!("dcgmi did not start: {message}"),
        ),
        DcgmiRun::Exited { code } => match *code {
            0 | DCGMI_EXIT_TEST_FAILED | DCGMI_EXIT_ISOLATE if report.is_none() => {
                findings.add(
                    Verdict::Inconclusive,
                    format!("dcgmi diag exited with status {code} without a usable report"),
                );
            }
            0 => {}
            DCGMI_EXIT_TEST_FAILED => {
                if !report.is_some_and(|r| r.any_failed_result) {
                    findings.add(
                        Verdict::Inconclusive,
                        format!(
                            "dcgmi diag exited with status {code} (a test failed), but no \
                             result in the report failed"
                        ),
                    );
                }
            }
            DCGMI_EXIT_ISOLATE => {
                if !report.is_some_and(|r| r.any_isolate_error) {
                    findings.add(
                        Verdict::Inconclusive,
                        format!(
                            "dcgmi diag exited with status {code} (an ISOLATE error), but \
                             the report has no ISOLATE-severity error"
                        ),
                    );
                }
            }
            DCGMI_EXIT_KILLED => findings.add(
                Verdict::Inconclusive,
                format!(
                    "dcgmi diag exited with status {code}: the validation suite was killed \
                     before it finished"
                ),
            ),
            DCGMI_EXIT_NO_TESTS => findings.add(
                Verdict::Inconclusive,
                format!("dcgmi diag exited with status {code}: no test ran"),
            ),
            other => findings.add(
                Verdict::Inconclusive,
                format!(
                    "dcgmi diag exited with status {other} (DCGM return code {}), which is \
                     not a diagnostic result",
                    other - 256
                ),
            ),
        },
    }
}

fn assess_xids(events: &[XidEvent], findings: &mut Findings) -> Vec<XidFinding> {
    let mut grouped: Vec<XidFinding> = Vec::new();
    for event in events {
        let class = xid_verdict(event);
        let existing = grouped.iter_mut().find(|f| {
            f.pci_bus_id.eq_ignore_ascii_case(&event.pci_bus_id)
                && f.code == event.code
                && f.recovery_action == class.recovery_action
        });
        if let Some(finding) = existing {
            finding.count += 1;
            continue;
        }
        let reason = format!(
            "Xid {} on PCI {}: \"{}\" {}: {}.",
            event.code,
            event.pci_bus_id,
            event.message,
            capitalized(class.verdict),
            class.rule,
        );
        if class.verdict == Verdict::Healthy {
            findings.note(reason);
        } else {
            findings.add(class.verdict, reason);
        }
        grouped.push(XidFinding {
            pci_bus_id: event.pci_bus_id.clone(),
            code: event.code,
            count: 1,
            message: event.message.clone(),
            action: class.action,
            recovery_action: class.recovery_action,
            verdict: class.verdict,
        });
    }
    grouped
}

fn assess_gpu_count(count: GpuCount, findings: &mut Findings) {
    let expected = count.expected;
    match count.seen {
        None => findings.add(
            Verdict::Inconclusive,
            format!("the GPUs could not be counted, so the expected {expected} are unconfirmed"),
        ),
        Some(seen) if seen < expected => findings.add(
            Verdict::Reboot,
            format!(
                "nvidia-smi lists {seen} GPUs but {expected} are expected; a missing GPU \
                 usually fell off the bus (Xid 79), for which NVIDIA's first action is to \
                 restart the node"
            ),
        ),
        Some(seen) if seen > expected => findings.add(
            Verdict::Inconclusive,
            format!(
                "nvidia-smi lists {seen} GPUs but only {expected} are expected; check the \
                 expected GPU count"
            ),
        ),
        Some(_) => {}
    }
}
