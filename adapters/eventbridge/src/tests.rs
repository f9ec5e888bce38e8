use gpu_recovery_domain::observation::Observation;

use super::*;

fn route() -> RouteConfig {
    RouteConfig::new("gpu-training", "gpu-dcgm-health-check")
}

fn parse_fixture(text: &str) -> Parsed {
    parse_event(text, &route()).expect("fixture parses")
}

fn observation(text: &str) -> Observation {
    match parse_fixture(text) {
        Parsed::Observation(observation) => observation,
        Parsed::Skipped(reason) => panic!("skipped: {reason}"),
    }
}

#[test]
fn gpu_exit_parses_as_stop() {
    let Observation::TaskStopped(stop) = observation(include_str!(
        "../tests/fixtures/task-stopped-exit1-gpu.json"
    )) else {
        panic!("expected a task stop");
    };
    assert_eq!(stop.exit_codes, [1]);
    assert_eq!(stop.stop_code.as_deref(), Some("EssentialContainerExited"));
    assert_eq!(stop.version, 6);
    assert_eq!(stop.at.to_rfc3339(), "2026-11-20T09:14:21.770Z");
    assert!(
        stop.container_instance_arn
            .ends_with("0f1e2d3c4b5a49788796a5b4c3d2e1f0")
    );
}

#[test]
fn sibling_stop_keeps_reason() {
    let Observation::TaskStopped(stop) = observation(include_str!(
        "../tests/fixtures/task-stopped-sibling-after-stoptask.json"
    )) else {
        panic!("expected a task stop");
    };
    assert_eq!(stop.stop_code.as_deref(), Some("UserInitiated"));
    assert_eq!(stop.exit_codes, [137]);
    assert!(stop.stopped_reason.unwrap().starts_with("gpu-recovery:"));
}

#[test]
fn failed_to_start_has_no_exit_code() {
    let Observation::TaskStopped(stop) = observation(include_str!(
        "../tests/fixtures/task-stopped-failed-to-start-nvml.json"
    )) else {
        panic!("expected a task stop");
    };
    assert!(stop.exit_codes.is_empty());
    assert_eq!(stop.stop_code.as_deref(), Some("TaskFailedToStart"));
}

#[test]
fn health_check_routes_by_family() {
    let Observation::HealthCheckFinished(check) = observation(include_str!(
        "../tests/fixtures/healthcheck-stopped-exit1-node-a.json"
    )) else {
        panic!("expected a health-check result");
    };
    assert_eq!(check.exit_code, Some(1));
    let Observation::HealthCheckFinished(check) = observation(include_str!(
        "../tests/fixtures/healthcheck-stopped-exit0-node-b.json"
    )) else {
        panic!("expected a health-check result");
    };
    assert_eq!(check.exit_code, Some(0));
}

#[test]
fn health_check_family_accepts_arn() {
    let route = RouteConfig::new(
        "arn:aws:ecs:us-west-2:111122223333:cluster/gpu-training",
        "arn:aws:ecs:us-west-2:111122223333:task-definition/gpu-dcgm-health-check:9",
    );
    assert_eq!(route.cluster_name, "gpu-training");
    assert_eq!(route.health_check_family, "gpu-dcgm-health-check");
}

#[test]
fn agent_events_parse_connection() {
    let Observation::InstanceChanged(down) = observation(include_str!(
        "../tests/fixtures/container-instance-agent-disconnected-node-a.json"
    )) else {
        panic!("expected an instance change");
    };
    let Observation::InstanceChanged(up) = observation(include_str!(
        "../tests/fixtures/container-instance-agent-reconnected-node-a.json"
    )) else {
        panic!("expected an instance change");
    };
    assert!(!down.agent_connected);
    assert!(up.agent_connected);
    assert!(up.version > down.version);
    assert_eq!(up.ec2_instance_id.as_deref(), Some("i-0a1b2c3d4e5f60718"));
}

#[test]
fn other_cluster_is_skipped() {
    let route = RouteConfig::new("other", "gpu-dcgm-health-check");
    let parsed = parse_event(
        include_str!("../tests/fixtures/task-stopped-exit1-gpu.json"),
        &route,
    )
    .unwrap();
    assert!(
        matches!(parsed, Parsed::Skipped(reason) if reason.contains("not the configured cluster"))
    );
}

#[test]
fn fargate_task_is_skipped() {
    let route = RouteConfig::new("FargateCluster", "gpu-dcgm-health-check");
    let parsed = parse_event(
        include_str!("../tests/fixtures/task-running-fargate-docs.json"),
        &route,
    )
    .unwrap();
    assert!(
        matches!(parsed, Parsed::Skipped(ref reason) if reason.contains("no container instance")),
        "{parsed:?}"
    );
}

#[test]
fn unknown_detail_type_is_skipped() {
    let text = r#"{"source":"aws.ecs","detail-type":"ECS Deployment State Change","detail":{}}"#;
    assert!(matches!(
        parse_event(text, &route()).unwrap(),
        Parsed::Skipped(_)
    ));
    let text = r#"{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":{}}"#;
    assert!(matches!(
        parse_event(text, &route()).unwrap(),
        Parsed::Skipped(_)
    ));
}

#[test]
fn malformed_event_names_field() {
    let error = parse_event("{not json", &route()).unwrap_err();
    assert!(matches!(error, EventError::Json(_)));

    let mut event: serde_json::Value = serde_json::from_str(include_str!(
        "../tests/fixtures/task-stopped-exit1-gpu.json"
    ))
    .unwrap();
    event["detail"].as_object_mut().unwrap().remove("version");
    let error = parse_value(&event, &route()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "event field detail.version is missing; an ECS task state change event always has it"
    );

    event["detail"]["version"] = serde_json::json!("six");
    let error = parse_value(&event, &route()).unwrap_err();
    assert!(
        error.to_string().contains("detail.version is \"six\""),
        "{error}"
    );

    event["detail"]["version"] = serde_json::json!(6);
    event["detail"]["containers"][0]["exitCode"] = serde_json::json!("one");
    let error = parse_value(&event, &route()).unwrap_err();
    assert!(
        error.to_string().contains("detail.containers[0].exitCode"),
        "{error}"
    );
}

#[test]
fn deprovisioning_with_exit_is_stop() {
    let mut event: serde_json::Value = serde_json::from_str(include_str!(
        "../tests/fixtures/task-stopped-exit1-gpu.json"
    ))
    .unwrap();
    event["detail"]["lastStatus"] = serde_json::json!("DEPROVISIONING");
    assert!(matches!(
        parse_value(&event, &route()).unwrap(),
        Parsed::Observation(Observation::TaskStopped(_))
    ));
    event["detail"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("exitCode");
    assert!(matches!(
        parse_value(&event, &route()).unwrap(),
        Parsed::Skipped(_)
    ));
}

#[test]
fn agent_connected_must_be_bool() {
    let mut event: serde_json::Value = serde_json::from_str(include_str!(
        "../tests/fixtures/container-instance-agent-reconnected-node-a.json"
    ))
    .unwrap();
    event["detail"]["agentConnected"] = serde_json::json!("yes");
    let error = parse_value(&event, &route()).unwrap_err();
    assert!(
        error.to_string().contains("detail.agentConnected"),
        "{error}"
    );
}

#[test]
fn family_of_strips_revision() {
    assert_eq!(
        family_of("arn:aws:ecs:us-west-2:1:task-definition/llm-pretrain:7"),
        "llm-pretrain"
    );
    assert_eq!(family_of("llm-pretrain:7"), "llm-pretrain");
    assert_eq!(family_of("llm-pretrain"), "llm-pretrain");
}
