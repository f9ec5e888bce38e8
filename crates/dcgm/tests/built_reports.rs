//! Reports built in the test to cover every severity, malformed input and the way
//! `dcgmi` ended.

use gpu_recovery_dcgm::{
    AssessInput, DcgmiRun, GpuCount, ReportError, Verdict, assess, assess_report_text,
    parse_kernel_log, parse_report,
};
use serde_json::{Value, json};

const PASS: &str = include_str!("fixtures/diag-r2-h100-8gpu-pass.json");
const DBE_FAIL: &str = include_str!("fixtures/diag-r2-h100-8gpu-dbe-fail.json");
const PERSISTENCE_FAIL: &str = include_str!("fixtures/diag-r1-gb10-persistence-fail.json");

/// Builds a DCGM 4.x report with one memory test over the given results.
fn report(results: &[Value]) -> String {
    json!({
        "DCGM Diagnostic": {
            "test_categories": [{
                "category": "Hardware",
                "tests": [{"name": "memory", "results": results}]
            }]
        },
        "metadata": {"Driver Version Detected": "570.133.20", "version": "4.2.3"}
    })
    .to_string()
}

fn gpu_result(gpu: u32, status: &str, errors: &[(u32, u32, u32)]) -> Value {
    let warnings: Vec<Value> = errors
        .iter()
        .map(|&(error_id, category, severity)| {
            json!({
                "error_id": error_id,
                "error_category": category,
                "error_severity": severity,
                "warning": format!("error {error_id} on GPU {gpu}")
            })
        })
        .collect();
    json!({
        "entity_group": "GPU", "entity_group_id": 1, "entity_id": gpu,
        "status": status, "warnings": warnings
    })
}

fn verdict_of(text: &str) -> Verdict {
    assess_report_text(text).verdict
}

fn with_run(text: &str, dcgmi: DcgmiRun) -> Verdict {
    assess(&AssessInput {
        report: Some(parse_report(text)),
        dcgmi,
        ..AssessInput::default()
    })
    .verdict
}

#[test]
fn every_severity_has_a_verdict() {
    // (error id, category, severity) -> verdict; category 10 is hardware memory,
    // 16 internal, 8 other software.
    let cases = [
        ((4, 10, 0), Verdict::Healthy),
        ((50, 9, 1), Verdict::Healthy),
        ((4, 10, 2), Verdict::Reboot),
        ((85, 10, 2), Verdict::Reboot),
        ((80, 10, 2), Verdict::Replace),
        ((7, 10, 2), Verdict::Replace),
        ((8, 10, 2), Verdict::Replace),
        ((1, 16, 3), Verdict::Inconclusive),
        ((104, 13, 4), Verdict::Reboot),
        ((80, 10, 4), Verdict::Replace),
        ((44, 16, 4), Verdict::Inconclusive),
        ((29, 8, 5), Verdict::Inconclusive),
        ((85, 10, 6), Verdict::Reboot),
        ((4, 10, 9), Verdict::Inconclusive),
    ];
    for (error, expected) in cases {
        let text = report(&[gpu_result(0, "Fail", &[error]), gpu_result(1, "Pass", &[])]);
        assert_eq!(
            verdict_of(&text),
            expected,
            "error (id, category, severity) {error:?}"
        );
    }
}

#[test]
fn node_takes_worst_gpu_verdict() {
    let text = report(&[
        gpu_result(0, "Fail", &[(85, 10, 6)]),
        gpu_result(1, "Fail", &[(80, 10, 2)]),
        gpu_result(2, "Fail", &[(29, 8, 5)]),
        gpu_result(3, "Pass", &[]),
    ]);
    let assessment = assess_report_text(&text);
    assert_eq!(assessment.verdict, Verdict::Replace);
    let gpus: Vec<_> = assessment
        .failing_gpus
        .iter()
        .map(|g| (g.gpu, g.verdict))
        .collect();
    assert_eq!(
        gpus,
        vec![
            (Some(0), Verdict::Reboot),
            (Some(1), Verdict::Replace),
            (Some(2), Verdict::Inconclusive)
        ]
    );
}

#[test]
fn failure_without_error_inconclusive() {
    let text = report(&[gpu_result(0, "Fail", &[]), gpu_result(1, "Pass", &[])]);
    let assessment = assess_report_text(&text);
    assert_eq!(assessment.verdict, Verdict::Inconclusive);
    assert!(assessment.reasons[0].contains("without an error code"));
}

#[test]
fn warn_with_monitor_error_healthy() {
    let text = report(&[
        gpu_result(0, "Warn", &[(5, 10, 1)]),
        gpu_result(1, "Pass", &[]),
    ]);
    let assessment = assess_report_text(&text);
    assert_eq!(assessment.verdict, Verdict::Healthy);
    assert_eq!(assessment.failing_gpus.len(), 1, "a warned GPU is listed");
    assert_eq!(assessment.failing_gpus[0].verdict, Verdict::Healthy);
}

#[test]
fn all_skipped_results_inconclusive() {
    let text = report(&[gpu_result(0, "Skip", &[]), gpu_result(1, "Skip", &[])]);
    let assessment = assess_report_text(&text);
    assert_eq!(assessment.verdict, Verdict::Inconclusive);
    assert!(assessment.reasons[0].contains("skipped"));
}

#[test]
fn report_without_results_inconclusive() {
    let text = json!({"DCGM Diagnostic": {"test_categories": []}}).to_string();
    assert_eq!(verdict_of(&text), Verdict::Inconclusive);
}

#[test]
fn runtime_error_inconclusive() {
    let text =
        json!({"DCGM Diagnostic": {"runtime_error": "Unable to connect to the host engine"}})
            .to_string();
    let assessment = assess_report_text(&text);
    assert_eq!(assessment.verdict, Verdict::Inconclusive);
    assert!(assessment.reasons[0].contains("Unable to connect"));
}

#[test]
fn summary_error_counts_for_node() {
    let mut document: Value = serde_json::from_str(&report(&[gpu_result(0, "Pass", &[])]))
        .expect("the built report is JSON");
    document["DCGM Diagnostic"]["test_categories"][0]["tests"][0]["test_summary"] = json!({
        "status": "Fail",
        "warnings": [{"error_id": 81, "error_category": 10, "error_severity": 2,
                      "warning": "GPU had an uncontained error (XID 95)"}]
    });
    let assessment = assess_report_text(&document.to_string());
    assert_eq!(assessment.verdict, Verdict::Reboot);
    assert_eq!(assessment.failing_gpus[0].gpu, None);
    assert_eq!(assessment.failing_gpus[0].entity_group, "test summary");
}

#[test]
fn unknown_fields_and_string_numbers_tolerated() {
    let text = json!({
        "DCGM Diagnostic": {
            "future_field": {"nested": [1, 2]},
            "test_categories": [{
                "category": "Hardware",
                "tests": [{
                    "name": "memory",
                    "results": [{
                        "entity_group_id": "1", "entity_id": "3", "status": "FAIL",
                        "warnings": [{"error_id": "4", "error_severity": "2",
                                      "warning": "Volatile DBEs", "extra": true}]
                    }]
                }]
            }]
        }
    })
    .to_string();
    let assessment = assess_report_text(&text);
    assert_eq!(assessment.verdict, Verdict::Reboot);
    assert_eq!(assessment.failing_gpus[0].gpu, Some(3));
    assert_eq!(assessment.dcgm_version, None);
}

#[test]
fn banner_line_before_json_skipped() {
    let text = format!("Successfully ran diagnostic for group.\n{PASS}");
    assert_eq!(verdict_of(&text), Verdict::Healthy);
    let text = format!("Running diag -r 2\n\n{DBE_FAIL}\n");
    assert_eq!(verdict_of(&text), Verdict::Reboot);
}

#[test]
fn empty_report_inconclusive() {
    assert_eq!(parse_report(""), Err(ReportError::Empty));
    assert_eq!(parse_report(" \n\t\n"), Err(ReportError::Empty));
    let assessment = assess_report_text("");
    assert_eq!(assessment.verdict, Verdict::Inconclusive);
    assert!(assessment.reasons[0].contains("empty"));
}

#[test]
fn truncated_report_inconclusive() {
    let cut = &PASS[..PASS.len() / 2];
    let error = parse_report(cut).expect_err("half a report does not parse");
    assert!(matches!(error, ReportError::Truncated { .. }), "{error:?}");
    let assessment = assess_report_text(cut);
    assert_eq!(assessment.verdict, Verdict::Inconclusive);
    assert!(assessment.reasons[0].contains("truncated"));
}

#[test]
fn text_without_json_is_no_json() {
    let error = parse_report("Error: unable to connect to host engine\n").expect_err("no JSON");
    assert_eq!(
        error,
        ReportError::NoJson {
            first_line: "Error: unable to connect to host engine".to_owned()
        }
    );
}

#[test]
fn malformed_json_errors_named() {
    let error = parse_report("{\"DCGM Diagnostic\": {\"test_categories\": [}}").expect_err("bad");
    assert!(
        matches!(error, ReportError::InvalidJson { .. }),
        "{error:?}"
    );
    let not_dcgm = parse_report("[1, 2, 3]\n").expect_err("no object");
    assert!(
        matches!(not_dcgm, ReportError::NoJson { .. }),
        "{not_dcgm:?}"
    );
    let other = parse_report("{\"status\": \"ok\"}").expect_err("not DCGM");
    assert!(
        matches!(other, ReportError::UnrecognizedShape { .. }),
        "{other:?}"
    );
}

#[test]
fn timeout_crash_and_kill_statuses_inconclusive() {
    for run in [
        DcgmiRun::TimedOut { seconds: 900 },
        DcgmiRun::Killed { signal: 11 },
        DcgmiRun::Exited { code: 203 },
        DcgmiRun::Exited { code: 242 },
        DcgmiRun::Exited { code: 1 },
        DcgmiRun::SpawnFailed {
            message: "No such file or directory".to_owned(),
        },
    ] {
        assert_eq!(
            with_run(PASS, run.clone()),
            Verdict::Inconclusive,
            "{run:?}"
        );
    }
    assert_eq!(
        with_run(PASS, DcgmiRun::Exited { code: 0 }),
        Verdict::Healthy
    );
}

#[test]
fn exit_status_must_match_report() {
    assert_eq!(
        with_run(DBE_FAIL, DcgmiRun::Exited { code: 226 }),
        Verdict::Reboot
    );
    assert_eq!(
        with_run(DBE_FAIL, DcgmiRun::Exited { code: 205 }),
        Verdict::Reboot
    );
    assert_eq!(
        with_run(DBE_FAIL, DcgmiRun::Exited { code: 0 }),
        Verdict::Reboot
    );
    assert_eq!(
        with_run(PERSISTENCE_FAIL, DcgmiRun::Exited { code: 226 }),
        Verdict::Inconclusive
    );
    assert_eq!(
        with_run(PASS, DcgmiRun::Exited { code: 226 }),
        Verdict::Inconclusive
    );
    assert_eq!(
        with_run(PASS, DcgmiRun::Exited { code: 205 }),
        Verdict::Inconclusive
    );
    assert_eq!(
        with_run(DBE_FAIL, DcgmiRun::TimedOut { seconds: 60 }),
        Verdict::Reboot
    );
}

#[test]
fn missing_report_inconclusive() {
    let assessment = assess(&AssessInput {
        report: None,
        dcgmi: DcgmiRun::Exited { code: 0 },
        ..AssessInput::default()
    });
    assert_eq!(assessment.verdict, Verdict::Inconclusive);
    assert_eq!(assessment.exit_code, 3);
}

#[test]
fn gpu_count_checks_verdicts() {
    let cases = [
        (
            GpuCount {
                expected: 8,
                seen: Some(8),
            },
            Verdict::Healthy,
        ),
        (
            GpuCount {
                expected: 8,
                seen: Some(7),
            },
            Verdict::Reboot,
        ),
        (
            GpuCount {
                expected: 8,
                seen: Some(9),
            },
            Verdict::Inconclusive,
        ),
        (
            GpuCount {
                expected: 8,
                seen: None,
            },
            Verdict::Inconclusive,
        ),
        (
            GpuCount {
                expected: 9,
                seen: Some(9),
            },
            Verdict::Reboot,
        ),
    ];
    for (count, expected) in cases {
        let assessment = assess(&AssessInput {
            report: Some(parse_report(PASS)),
            gpu_count: Some(count),
            ..AssessInput::default()
        });
        assert_eq!(assessment.verdict, expected, "{count:?}");
        assert_eq!(assessment.gpu_count, Some(count));
    }
}

#[test]
fn missing_kernel_log_is_only_noted() {
    let note = "the kernel log could not be read: /dev/kmsg: Permission denied".to_owned();
    let assessment = assess(&AssessInput {
        report: Some(parse_report(PASS)),
        notes: vec![note.clone()],
        ..AssessInput::default()
    });
    assert_eq!(assessment.verdict, Verdict::Healthy);
    assert_eq!(assessment.reasons.last(), Some(&note));
}

#[test]
fn xid_fault_overrides_passing_report() {
    let assessment = assess(&AssessInput {
        report: Some(parse_report(PASS)),
        xid_events: parse_kernel_log(
            "NVRM: Xid (PCI:0000:a8:00): 64, pid=1, name=x, Row Remapper: row remapping failed",
        ),
        dcgmi: DcgmiRun::Exited { code: 0 },
        ..AssessInput::default()
    });
    assert_eq!(assessment.verdict, Verdict::Replace);
    assert_eq!(assessment.exit_code, 2);
}

#[test]
fn assessment_json_has_documented_fields() {
    let assessment = assess(&AssessInput {
        report: Some(parse_report(DBE_FAIL)),
        dcgmi: DcgmiRun::Exited { code: 226 },
        gpu_count: Some(GpuCount {
            expected: 8,
            seen: Some(8),
        }),
        ..AssessInput::default()
    });
    let value: Value = serde_json::from_str(&assessment.to_json_line()).expect("JSON line");
    assert_eq!(value["schema"], "gpu-health-check/v1");
    assert_eq!(value["verdict"], "reboot");
    assert_eq!(value["exit_code"], 1);
    assert_eq!(value["dcgmi"], json!({"state": "exited", "code": 226}));
    assert_eq!(value["gpu_count"], json!({"expected": 8, "seen": 8}));
    assert_eq!(value["dcgm_version"], "4.2.3");
    assert_eq!(value["driver_version"], "550.127.08");
    assert_eq!(value["failing_gpus"][0]["gpu"], 3);
    assert_eq!(
        value["failing_gpus"][0]["tests"][0]["errors"][0]["severity_name"],
        "isolate"
    );
    assert!(value["reasons"].as_array().is_some_and(|r| !r.is_empty()));
    assert_eq!(value["xids"], json!([]));
}

#[test]
fn from_log_line_rejects_other_json() {
    let line = assess_report_text(PASS).to_json_line();
    let wrong_schema = line.replace("gpu-health-check/v1", "gpu-health-check/v0");
    assert_eq!(
        gpu_recovery_dcgm::Assessment::from_log_line(&wrong_schema),
        None
    );
    let wrong_code = line.replace("\"exit_code\":0", "\"exit_code\":2");
    assert_ne!(wrong_code, line);
    assert_eq!(
        gpu_recovery_dcgm::Assessment::from_log_line(&wrong_code),
        None
    );
    assert_eq!(
        gpu_recovery_dcgm::Assessment::from_log_line("no json here"),
        None
    );
}
