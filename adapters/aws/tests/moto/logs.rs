//! The health-check log reader against moto's CloudWatch Logs.

use gpu_recovery_aws::HealthCheckLogReader;
use gpu_recovery_aws::config::HealthCheckLogs;
use gpu_recovery_aws::logs::LogReadError;
use gpu_recovery_dcgm::{Assessment, Verdict};
use gpu_recovery_domain::Timestamp;

use crate::support::{clients, unique};

#[tokio::test]
async fn log_reader_finds_assessment_line() {
    let clients = clients().await;
    let group = format!("/ecs/{}", unique("health-check"));
    clients
        .logs
        .create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();
    let reader = HealthCheckLogReader::new(
        clients.logs.clone(),
        HealthCheckLogs {
            log_group: group.clone(),
            stream_prefix: "health-check".to_owned(),
        },
    );
    let stream = reader.stream_name("dcgm-diag", "c0d1e2f3a4b54c6d8e7f9a0b1c2d3e4f");
    assert_eq!(
        stream,
        "health-check/dcgm-diag/c0d1e2f3a4b54c6d8e7f9a0b1c2d3e4f"
    );
    clients
        .logs
        .create_log_stream()
        .log_group_name(&group)
        .log_stream_name(&stream)
        .send()
        .await
        .unwrap();

    let mut assessment = Assessment::inconclusive("memory test failed on GPU 3".to_owned());
    assessment.verdict = Verdict::Reboot;
    assessment.exit_code = Verdict::Reboot.exit_code();
    let now = Timestamp::now().0;
    let lines = [
        "Successfully ran diagnostic for group.".to_owned(),
        assessment.to_json_line(),
        "gpu-health-check: exiting with 1".to_owned(),
    ];
    let mut request = clients
        .logs
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name(&stream);
    for (offset, line) in (0_i64..).zip(lines) {
        request = request.log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now + offset)
                .message(line)
                .build()
                .unwrap(),
        );
    }
    request.send().await.unwrap();

    let report = reader
        .read_report("dcgm-diag", "c0d1e2f3a4b54c6d8e7f9a0b1c2d3e4f")
        .await
        .unwrap()
        .expect("assessment found");
    assert_eq!(report.verdict, Verdict::Reboot);
    assert_eq!(report.summary, "memory test failed on GPU 3");
}

#[tokio::test]
async fn log_reader_missing_stream_errors() {
    let clients = clients().await;
    let group = format!("/ecs/{}", unique("health-check"));
    clients
        .logs
        .create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();
    let reader = HealthCheckLogReader::new(
        clients.logs.clone(),
        HealthCheckLogs {
            log_group: group,
            stream_prefix: "health-check".to_owned(),
        },
    );
    let error = reader
        .read_report("dcgm-diag", "missing")
        .await
        .unwrap_err();
    assert!(matches!(error, LogReadError::Call { .. }), "{error:?}");
    let error = reader.read_report("bad/name", "t").await.unwrap_err();
    assert_eq!(error, LogReadError::InvalidContainer("bad/name".to_owned()));
}
