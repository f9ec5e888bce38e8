//! Verdicts for the sample reports in `tests/fixtures`.

use gpu_recovery_dcgm::{
    Assessment, ReportError, ReportFormat, Severity, TestStatus, Verdict, assess_report_text,
    parse_report,
};

const PASS: &str = include_str!("fixtures/diag-r2-h100-8gpu-pass.json");
const DBE_FAIL: &str = include_str!("fixtures/diag-r2-h100-8gpu-dbe-fail.json");
const PERSISTENCE_FAIL: &str = include_str!("fixtures/diag-r1-gb10-persistence-fail.json");
const LEGACY: &str = include_str!("fixtures/diag-legacy-3x-per-gpu.json");
const FRAGMENT: &str = include_str!("fixtures/diag-r3-fragment-8gpu-pass.txt");
const ITERATIONS_FAIL: &str = include_str!("fixtures/diag-iterations-2x-row-remap-fail.json");
const ITERATIONS_PASS: &str = include_str!("fixtures/diag-iterations-3x-pass.json");

#[test]
fn pass_report_parses_versions_and_gpus() {
    let report = parse_report(PASS).expect("the pass sample parses");
    assert_eq!(report.format, ReportFormat::Dcgm4);
    assert_eq!(report.dcgm_version.as_deref(), Some("4.2.3"));
    assert_eq!(report.driver_version.as_deref(), Some("550.127.08"));
    assert_eq!(report.gpu_ids, (0..8).collect::<Vec<u32>>());
    assert_eq!(report.tests.len(), 3);
    assert!(report.tests.iter().all(|t| t.results.len() == 8));
}

#[test]
fn pass_report_is_healthy() {
    let assessment = assess_report_text(PASS);
    assert_eq!(assessment.verdict, Verdict::Healthy);
    assert_eq!(assessment.exit_code, 0);
    assert!(assessment.failing_gpus.is_empty());
    assert!(
        assessment.reasons[0].contains("passed"),
        "{:?}",
        assessment.reasons
    );
    assert_eq!(assessment.dcgm_version.as_deref(), Some("4.2.3"));
}

#[test]
fn dbe_report_reboots_gpu_three() {
    let assessment = assess_report_text(DBE_FAIL);
    assert_eq!(assessment.verdict, Verdict::Reboot);
    assert_eq!(assessment.exit_code, 1);
    assert_eq!(
        assessment.failing_gpus.len(),
        1,
        "{:?}",
        assessment.failing_gpus
    );
    let gpu = &assessment.failing_gpus[0];
    assert_eq!(gpu.gpu, Some(3));
    assert_eq!(gpu.verdict, Verdict::Reboot);
    assert_eq!(gpu.tests.len(), 1);
    assert_eq!(gpu.tests[0].name, "memory");
    assert_eq!(gpu.tests[0].status, TestStatus::Fail);
    let error = &gpu.tests[0].errors[0];
    assert_eq!(error.error_id, Some(4));
    assert_eq!(error.category, Some(10));
    assert_eq!(error.severity, Some(2));
    assert_eq!(error.severity_name, Some(Severity::Isolate));
    assert!(
        error
            .message
            .starts_with("Volatile DBEs detected for GPU 3")
    );
    assert!(
        assessment.reasons[0].contains("GPU 3"),
        "{:?}",
        assessment.reasons
    );
}

#[test]
fn persistence_config_only_inconclusive() {
    let assessment = assess_report_text(PERSISTENCE_FAIL);
    assert_eq!(assessment.verdict, Verdict::Inconclusive);
    assert_eq!(assessment.exit_code, 3);
    assert_eq!(assessment.driver_version.as_deref(), Some("580.82.09"));
    assert_eq!(assessment.failing_gpus.len(), 1);
    assert_eq!(assessment.failing_gpus[0].gpu, Some(0));
    let error = &assessment.failing_gpus[0].tests[0].errors[0];
    assert_eq!(error.error_id, Some(29));
    assert_eq!(error.severity_name, Some(Severity::Config));
    assert!(
        assessment
            .reasons
            .iter()
            .any(|r| r.contains("configuration"))
    );
}

#[test]
fn legacy_report_parses_gpu_id_lists() {
    let report = parse_report(LEGACY).expect("the 3.x sample parses");
    assert_eq!(report.format, ReportFormat::Dcgm3);
    assert_eq!(report.dcgm_version.as_deref(), Some("1.7"));
    assert_eq!(report.gpu_ids, vec![0, 1, 2, 3]);
    let denylist = &report.tests[0];
    assert_eq!(denylist.name, "Denylist");
    assert_eq!(
        denylist.results.len(),
        4,
        "\"0,1,2,3\" expands to four results"
    );
    assert!(
        denylist
            .results
            .iter()
            .all(|r| r.status == TestStatus::Pass)
    );
}

#[test]
fn legacy_report_reboots_ecc_disabled_gpu() {
    let assessment = assess_report_text(LEGACY);
    // GPU 0's memory test is skipped with error 55 (ECC disabled) at ISOLATE severity.
    // The sm_stress failures on GPUs 0, 2 and 3 carry MONITOR severity only.
    assert_eq!(assessment.verdict, Verdict::Reboot);
    let gpus: Vec<_> = assessment
        .failing_gpus
        .iter()
        .map(|g| (g.gpu, g.verdict))
        .collect();
    assert_eq!(
        gpus,
        vec![
            (Some(0), Verdict::Reboot),
            (Some(2), Verdict::Healthy),
            (Some(3), Verdict::Healthy)
        ]
    );
    let gpu0_tests: Vec<&str> = assessment.failing_gpus[0]
        .tests
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(gpu0_tests, vec!["memory", "sm_stress"]);
}

#[test]
fn fragment_alone_is_inconclusive() {
    let error = parse_report(FRAGMENT).expect_err("a fragment is not a report");
    assert!(
        matches!(error, ReportError::UnrecognizedShape { .. }),
        "{error:?}"
    );
    let assessment = assess_report_text(FRAGMENT);
    assert_eq!(assessment.verdict, Verdict::Inconclusive);
    assert!(assessment.reasons[0].contains("not a DCGM diagnostic report"));
}

#[test]
fn fragment_inside_document_is_healthy() {
    let test_object = FRAGMENT.trim().trim_end_matches(',');
    let document = format!(
        "{{\"DCGM Diagnostic\": {{\"test_categories\": [{{\"category\": \"Hardware\", \
         \"tests\": [{test_object}]}}]}}}}"
    );
    let report = parse_report(&document).expect("the wrapped fragment parses");
    assert_eq!(report.tests[0].name, "diagnostic");
    assert_eq!(report.gpu_ids.len(), 8);
    assert_eq!(report.tests[0].results[0].info.len(), 3);
    assert_eq!(assess_report_text(&document).verdict, Verdict::Healthy);
}

#[test]
fn iterations_failure_gives_replace() {
    let report = parse_report(ITERATIONS_FAIL).expect("the iterations sample parses");
    assert_eq!(report.format, ReportFormat::Iterations);
    assert_eq!(report.iterations, 2);
    assert_eq!(report.overall_result.as_deref(), Some("Fail"));
    assert_eq!(report.tests.len(), 4);
    assert_eq!(report.tests[3].iteration, 1);
    assert_eq!(report.dcgm_version.as_deref(), Some("4.2.3"));

    let assessment = assess_report_text(ITERATIONS_FAIL);
    assert_eq!(assessment.verdict, Verdict::Replace);
    assert_eq!(assessment.exit_code, 2);
    let gpu = &assessment.failing_gpus[0];
    assert_eq!(gpu.gpu, Some(1));
    assert_eq!(gpu.tests[0].iteration, Some(1));
    assert_eq!(gpu.tests[0].errors[0].error_id, Some(80));
    assert!(assessment.reasons.iter().any(|r| r.contains("iteration 2")));
}

#[test]
fn iterations_all_pass_healthy() {
    let report = parse_report(ITERATIONS_PASS).expect("the iterations sample parses");
    assert_eq!(report.iterations, 3);
    assert_eq!(report.tests.len(), 6);
    assert_eq!(
        assess_report_text(ITERATIONS_PASS).verdict,
        Verdict::Healthy
    );
}

#[test]
fn assessment_line_round_trips() {
    let assessment = assess_report_text(DBE_FAIL);
    let line = assessment.to_json_line();
    assert!(!line.contains('\n'));
    let log = format!("starting dcgmi diag -r 2\n{{\"not\": \"it\"}}\n{line}\n");
    assert_eq!(Assessment::from_log(&log), Some(assessment.clone()));
    assert_eq!(
        Assessment::from_log_line(&format!("2026-01-01T00:00:00Z {line}")),
        Some(assessment)
    );
}
