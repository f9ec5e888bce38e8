//! DCGM diagnostic reports: the JSON that `dcgmi diag -j` prints, parsed into [`DiagReport`].
//!
//! Three shapes are read:
//! - DCGM 4.x: root key "DCGM Diagnostic", one result per entity (`entity_group`,
//!   `entity_id`), statuses `Pass`, `Fail`, `Skip` and `Warn`, and a `metadata` object
//!   with the DCGM and driver versions.
//! - DCGM 3.x: root key "DCGM GPU Diagnostic", results keyed by `gpu_ids` (a list such
//!   as `"0,1,2,3"`), uppercase statuses.
//! - `dcgmi diag --iterations N -j`: an `iterations` array with one run document per
//!   iteration, plus "Overall Result" and, when a run failed, "Warning".
//!
//! NVIDIA publishes no stable schema for this JSON, so the parser walks a
//! [`serde_json::Value`]: unknown fields are ignored, missing optional fields become
//! `None`, and numbers written as strings are accepted.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Root key of a DCGM 4.x report.
pub const ROOT_KEY_V4: &str = "DCGM Diagnostic";
/// Root key of a DCGM 3.x (and older) report.
pub const ROOT_KEY_V3: &str = "DCGM GPU Diagnostic";
/// Top-level key of a report from `dcgmi diag --iterations`.
pub const ITERATIONS_KEY: &str = "iterations";

/// Shape of a report document: one of the three known ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    /// Root "DCGM Diagnostic", per-entity results.
    Dcgm4,
    /// Root "DCGM GPU Diagnostic", results keyed by `gpu_ids`.
    Dcgm3,
    /// An `iterations` array of run documents.
    Iterations,
}

/// A parsed DCGM diagnostic report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagReport {
    /// Shape of the document; for iterations, the shape of the runs inside is not kept.
    pub format: ReportFormat,
    /// DCGM version from `metadata.version` (4.x) or the root's `version` (3.x).
    pub dcgm_version: Option<String>,
    /// Driver version from "Driver Version Detected".
    pub driver_version: Option<String>,
    /// Every test of every iteration, in report order.
    pub tests: Vec<TestRun>,
    /// `runtime_error` texts: DCGM could not run the diagnostic at all.
    pub runtime_errors: Vec<String>,
    /// "Overall Result" of an iterations report (`Pass` or `Fail`).
    pub overall_result: Option<String>,
    /// "Warning" of an iterations report: the DCGM error that stopped the runs.
    pub overall_warning: Option<String>,
    /// Number of run documents: 1, or the length of the `iterations` array.
    pub iterations: usize,
    /// GPU ids named by `entity_groups` or by any result, ascending.
    pub gpu_ids: Vec<u32>,
}

/// One test (a DCGM plugin such as `memory` or `pcie`) in one iteration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// Zero-based iteration; 0 for reports without iterations.
    pub iteration: usize,
    /// Category such as "Deployment", "Hardware", "Integration" or "Stress".
    pub category: Option<String>,
    /// Test name as DCGM prints it.
    pub name: String,
    /// One result per entity.
    pub results: Vec<EntityResult>,
    /// The `test_summary` object of DCGM 4.x, when present.
    pub summary: Option<TestSummary>,
}

/// The `test_summary` of a DCGM 4.x test: the test's overall status and errors that
/// name no entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSummary {
    /// Overall status of the test.
    pub status: TestStatus,
    /// Errors reported for the test as a whole.
    pub errors: Vec<DiagError>,
    /// Informational lines.
    pub info: Vec<String>,
}

/// The result of one test on one entity (usually a GPU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityResult {
    /// Entity group name: "GPU" for GPUs; DCGM 4.x also reports groups such as "CPU".
    pub entity_group: String,
    /// Entity id within the group: the DCGM GPU id for GPUs.
    pub entity_id: Option<u32>,
    /// Status of the test on this entity.
    pub status: TestStatus,
    /// Errors from the result's `warnings` (and `errors`, if a version prints that key).
    pub errors: Vec<DiagError>,
    /// Informational lines.
    pub info: Vec<String>,
}

impl EntityResult {
    /// Returns whether this result is for a GPU.
    #[must_use]
    pub fn is_gpu(&self) -> bool {
        self.entity_group.eq_ignore_ascii_case("GPU")
    }

    /// Returns the DCGM GPU id when this result is for a GPU.
    #[must_use]
    pub fn gpu_id(&self) -> Option<u32> {
        if self.is_gpu() { self.entity_id } else { None }
    }
}

/// Status of a test on an entity. DCGM 4.x writes `Pass`, 3.x writes `PASS`; both parse
/// to the same variant, and any other text is kept in [`TestStatus::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum TestStatus {
    /// The test passed.
    Pass,
    /// The test failed.
    Fail,
    /// The test did not run on this entity.
    Skip,
    /// The test passed with warnings (printed only in a warning display mode).
    Warn,
    /// A status text this parser does not know, lower-cased.
    Other(String),
}

impl TestStatus {
    /// Parses a status case-insensitively.
    #[must_use]
    pub fn parse(text: &str) -> TestStatus {
        let lower = text.trim().to_ascii_lowercase();
        match lower.as_str() {
            "pass" | "passed" => TestStatus::Pass,
            "fail" | "failed" => TestStatus::Fail,
            "skip" | "skipped" => TestStatus::Skip,
            "warn" | "warning" => TestStatus::Warn,
            _ => TestStatus::Other(lower),
        }
    }

    /// Lower-case name, as written in the assessment JSON.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            TestStatus::Pass => "pass",
            TestStatus::Fail => "fail",
            TestStatus::Skip => "skip",
            TestStatus::Warn => "warn",
            TestStatus::Other(text) => text,
        }
    }
}

impl From<String> for TestStatus {
    fn from(text: String) -> Self {
        TestStatus::parse(&text)
    }
}

impl From<TestStatus> for String {
    fn from(status: TestStatus) -> Self {
        status.as_str().to_owned()
    }
}

impl fmt::Display for TestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One DCGM error entry (an element of `warnings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagError {
    /// `error_id`: a `dcgmError_t` value such as 4 (`DCGM_FR_VOLATILE_DBE_DETECTED`).
    pub error_id: Option<u32>,
    /// `error_category`: a `dcgmErrorCategory_t` value such as 10 (hardware memory).
    pub category: Option<u32>,
    /// `error_severity`: a `dcgmErrorSeverity_t` value, 0 (none) to 6 (reset).
    pub severity: Option<u32>,
    /// The `warning` text.
    pub message: String,
}

/// Error for a text that is not a usable DCGM report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The text is empty or only whitespace.
    #[error("the DCGM report is empty")]
    Empty,
    /// No line of the text starts a JSON object.
    #[error("the DCGM report contains no JSON object; its first line is {first_line:?}")]
    NoJson {
        /// First non-empty line, cut to 120 characters.
        first_line: String,
    },
    /// The JSON ends before the document is complete.
    #[error(
        "the DCGM report is truncated: the JSON ends at line {line}, column {column} \
         before the document is complete"
    )]
    Truncated {
        /// Line of the end of the text, 1-based.
        line: usize,
        /// Column of the end of the text, 1-based.
        column: usize,
    },
    /// The JSON has a syntax error.
    #[error("the DCGM report is not valid JSON: {message}")]
    InvalidJson {
        /// The JSON parser's message, with its line and column.
        message: String,
    },
    /// The JSON parsed, but it is not a DCGM diagnostic report.
    #[error(
        "the JSON is not a DCGM diagnostic report: expected a top-level key \
         \"DCGM Diagnostic\", \"DCGM GPU Diagnostic\" or \"iterations\", found {found}"
    )]
    UnrecognizedShape {
        /// The top-level keys found, or the JSON type when it is not an object.
        found: String,
    },
}

/// Parses the output of `dcgmi diag -j` (DCGM 3.x or 4.x, with or without
/// `--iterations`). Any text before the JSON, such as a banner line, is skipped, and
/// so is any text after the JSON document.
pub fn parse_report(text: &str) -> Result<DiagReport, ReportError> {
    if text.trim().is_empty() {
        return Err(ReportError::Empty);
    }
    let document = locate_document(text)?;
    let Value::Object(top) = &document else {
        return Err(ReportError::UnrecognizedShape {
            found: json_type_name(&document).into(),
        });
    };
    parse_document(top)
}

/// Finds the first JSON object that starts a line and parses it.
///
/// A line that starts with `{` but does not parse (for example a banner in braces) is
/// skipped. A document that ends early stops the search with [`ReportError::Truncated`],
/// because the objects nested inside it would parse but are not the report.
fn locate_document(text: &str) -> Result<Value, ReportError> {
    let mut first_syntax_error: Option<String> = None;
    let mut line_start = 0;
    for (line_index, line) in text.split_inclusive('\n').enumerate() {
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with('{') {
            let offset = line_start + indent;
            let mut stream =
                serde_json::Deserializer::from_str(&text[offset..]).into_iter::<Value>();
            match stream.next() {
                Some(Ok(value)) => return Ok(value),
                Some(Err(error)) if error.is_eof() => {
                    let (line, column) = absolute_position(&error, line_index, indent);
                    return Err(ReportError::Truncated { line, column });
                }
                Some(Err(error)) if first_syntax_error.is_none() => {
                    let (line, column) = absolute_position(&error, line_index, indent);
                    let message = without_position(&error);
                    first_syntax_error = Some(format!("{message} at line {line}, column {column}"));
                }
                Some(Err(_)) | None => {}
            }
        }
        line_start += line.len();
    }
    if let Some(message) = first_syntax_error {
        return Err(ReportError::InvalidJson { message });
    }
    let first_line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    Err(ReportError::NoJson {
        first_line: first_line.chars().take(120).collect(),
    })
}

/// Converts a position relative to the parse start (line `line_index`, 0-based, after
/// `indent` bytes) into a 1-based line and column of the whole text.
fn absolute_position(
    error: &serde_json::Error,
    line_index: usize,
    indent: usize,
) -> (usize, usize) {
    let column = if error.line() == 1 {
        error.column() + indent
    } else {
        error.column()
    };
    (line_index + error.line(), column)
}

/// Returns the `serde_json` message without its trailing " at line L column C", which
/// [`locate_document`] replaces with a position in the whole text.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message,
    }
}

fn parse_document(top: &Map<String, Value>) -> Result<DiagReport, ReportError> {
    let mut report = DiagReport {
        format: ReportFormat::Dcgm4,
        dcgm_version: None,
        driver_version: None,
        tests: Vec::new(),
        runtime_errors: Vec::new(),
        overall_result: None,
        overall_warning: None,
        iterations: 1,
        gpu_ids: Vec::new(),
    };
    let mut gpu_ids = BTreeSet::new();

    if let Some(iterations) = top.get(ITERATIONS_KEY) {
        let Value::Array(runs) = iterations else {
            return Err(ReportError::UnrecognizedShape {
                found: format!("\"iterations\" holding {}", json_type_name(iterations)),
            });
        };
        report.format = ReportFormat::Iterations;
        report.iterations = runs.len();
        report.overall_result = string_field(top, "Overall Result");
        report.overall_warning = string_field(top, "Warning");
        for (iteration, run) in runs.iter().enumerate() {
            if let Value::Object(run) = run {
                parse_run(run, iteration, &mut report, &mut gpu_ids);
            }
        }
    } else if top.contains_key(ROOT_KEY_V4) || top.contains_key(ROOT_KEY_V3) {
        report.format = if top.contains_key(ROOT_KEY_V4) {
            ReportFormat::Dcgm4
        } else {
            ReportFormat::Dcgm3
        };
        parse_run(top, 0, &mut report, &mut gpu_ids);
    } else {
        let keys: Vec<String> = top.keys().map(|k| format!("{k:?}")).collect();
        let found = if keys.is_empty() {
            "an empty object".to_owned()
        } else {
            keys.join(", ")
        };
        return Err(ReportError::UnrecognizedShape { found });
    }

    report.gpu_ids = gpu_ids.into_iter().collect();
    Ok(report)
}

/// Reads one run document (a whole 3.x or 4.x report, or one element of `iterations`).
fn parse_run(
    run: &Map<String, Value>,
    iteration: usize,
    report: &mut DiagReport,
    gpu_ids: &mut BTreeSet<u32>,
) {
    // An iterations element may be a whole document or the root object itself.
    let root = run
        .get(ROOT_KEY_V4)
        .or_else(|| run.get(ROOT_KEY_V3))
        .and_then(Value::as_object)
        .unwrap_or(run);

    for holder in [run, root] {
        if let Some(text) = string_field(holder, "runtime_error")
            && !report.runtime_errors.contains(&text)
        {
            report.runtime_errors.push(text);
        }
    }

    let metadata = run.get("metadata").and_then(Value::as_object);
    if report.dcgm_version.is_none() {
        report.dcgm_version = metadata
            .and_then(|m| string_field(m, "version"))
            .or_else(|| string_field(root, "version"));
    }
    if report.driver_version.is_none() {
        report.driver_version = [metadata, Some(root), Some(run)]
            .into_iter()
            .flatten()
            .find_map(|holder| string_field(holder, "Driver Version Detected"));
    }

    gpu_ids.extend(entity_group_gpus(run));

    let categories = root.get("test_categories").and_then(Value::as_array);
    for category in categories
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
    {
        let category_name = string_field(category, "category");
        let tests = category.get("tests").and_then(Value::as_array);
        for test in tests.into_iter().flatten().filter_map(Value::as_object) {
            let test_run = parse_test(test, category_name.clone(), iteration);
            gpu_ids.extend(test_run.results.iter().filter_map(EntityResult::gpu_id));
            report.tests.push(test_run);
        }
    }
}

fn parse_test(test: &Map<String, Value>, category: Option<String>, iteration: usize) -> TestRun {
    let name = string_field(test, "name").unwrap_or_else(|| "unnamed test".to_owned());
    let results = test
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(parse_result)
        .collect();
    let summary = test
        .get("test_summary")
        .and_then(Value::as_object)
        .map(|summary| TestSummary {
            status: status_field(summary),
            errors: error_list(summary),
            info: string_list(summary.get("info")),
        });
    TestRun {
        iteration,
        category,
        name,
        results,
        summary,
    }
}

/// Reads one element of `results`. A 3.x element with `gpu_ids` "0,1,2,3" becomes one
/// result per GPU.
fn parse_result(result: &Map<String, Value>) -> Vec<EntityResult> {
    let status = status_field(result);
    let errors = error_list(result);
    let info = string_list(result.get("info"));

    let gpu_list = result.get("gpu_ids").or_else(|| result.get("gpu_id"));
    if let Some(gpu_list) = gpu_list {
        let ids = id_list(gpu_list);
        if !ids.is_empty() {
            return ids
                .into_iter()
                .map(|id| EntityResult {
                    entity_group: "GPU".to_owned(),
                    entity_id: Some(id),
                    status: status.clone(),
                    errors: errors.clone(),
                    info: info.clone(),
                })
                .collect();
        }
    }

    let entity_group = string_field(result, "entity_group").unwrap_or_else(|| {
        // entity_group_id 1 is DCGM_FE_GPU in dcgm_structs.h.
        match result.get("entity_group_id").and_then(as_u32) {
            Some(1) | None => "GPU".to_owned(),
            Some(other) => format!("entity group {other}"),
        }
    });
    let entity_id = result.get("entity_id").and_then(as_u32);
    vec![EntityResult {
        entity_group,
        entity_id,
        status,
        errors,
        info,
    }]
}

fn entity_group_gpus(run: &Map<String, Value>) -> Vec<u32> {
    let groups = run.get("entity_groups").and_then(Value::as_array);
    groups
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter(|group| {
            let by_name = string_field(group, "entity_group")
                .is_some_and(|name| name.eq_ignore_ascii_case("GPU"));
            let by_id = group.get("entity_group_id").and_then(as_u32) == Some(1);
            by_name || by_id
        })
        .flat_map(|group| {
            group
                .get("entities")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|entity| entity.get("entity_id").and_then(as_u32))
        })
        .collect()
}

fn status_field(holder: &Map<String, Value>) -> TestStatus {
    string_field(holder, "status").map_or_else(
        || TestStatus::Other("missing".to_owned()),
        |text| TestStatus::parse(&text),
    )
}

/// Reads `warnings` (and `errors`): objects with `warning`, `error_id`, `error_category`
/// and `error_severity`, or plain strings as older versions print them.
fn error_list(holder: &Map<String, Value>) -> Vec<DiagError> {
    let entries = ["warnings", "errors"]
        .into_iter()
        .filter_map(|key| holder.get(key))
        .flat_map(|value| match value {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![other],
        });
    entries
        .filter_map(|entry| match entry {
            Value::String(text) => Some(DiagError {
                error_id: None,
                category: None,
                severity: None,
                message: text.clone(),
            }),
            Value::Object(object) => Some(DiagError {
                error_id: object.get("error_id").and_then(as_u32),
                category: object.get("error_category").and_then(as_u32),
                severity: object.get("error_severity").and_then(as_u32),
                message: string_field(object, "warning")
                    .or_else(|| string_field(object, "error"))
                    .or_else(|| string_field(object, "message"))
                    .unwrap_or_default(),
            }),
            _ => None,
        })
        .collect()
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(other) => scalar_text(other).into_iter().collect(),
        None => Vec::new(),
    }
}

fn string_field(holder: &Map<String, Value>, key: &str) -> Option<String> {
    holder.get(key).and_then(scalar_text)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn as_u32(value: &Value) -> Option<u32> {
    match value {
        Value::Number(number) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Reads `gpu_ids` as "0,1,2,3", a single number, or an array of either.
fn id_list(value: &Value) -> Vec<u32> {
    match value {
        Value::String(text) => text
            .split(',')
            .filter_map(|part| part.trim().parse().ok())
            .collect(),
        Value::Array(items) => items.iter().flat_map(id_list).collect(),
        other => as_u32(other).into_iter().collect(),
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parse_ignores_case() {
        assert_eq!(TestStatus::parse("PASS"), TestStatus::Pass);
        assert_eq!(TestStatus::parse("Fail"), TestStatus::Fail);
        assert_eq!(TestStatus::parse("SKIP"), TestStatus::Skip);
        assert_eq!(TestStatus::parse("Warn"), TestStatus::Warn);
        assert_eq!(
            TestStatus::parse("Not Run"),
            TestStatus::Other("not run".to_owned())
        );
    }

    #[test]
    fn id_list_reads_all_forms() {
        assert_eq!(id_list(&Value::from("0, 1,2")), vec![0, 1, 2]);
        assert_eq!(id_list(&Value::from(3)), vec![3]);
        assert_eq!(id_list(&serde_json::json!(["4", 5])), vec![4, 5]);
    }

    #[test]
    fn trailing_text_after_document_ignored() {
        let report = parse_report("{\"DCGM Diagnostic\": {\"test_categories\": []}}\ndone\n");
        assert_eq!(report.map(|r| r.format), Ok(ReportFormat::Dcgm4));
    }

    #[test]
    fn braced_banner_line_skipped() {
        let text = "{banner: DCGM 4}\n{\"DCGM GPU Diagnostic\": {\"test_categories\": []}}";
        assert_eq!(
            parse_report(text).map(|r| r.format),
            Ok(ReportFormat::Dcgm3)
        );
    }
}
