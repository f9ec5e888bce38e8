//! Set-up shared by the moto tests: the endpoint checks, unique names, the
//! SDK clients, a small HTTP client for moto's own API and for EC2, and
//! ECS events built from the sample shapes.
//!
//! Every request goes to the moto server that scripts/test-aws.sh started
//! on 127.0.0.1; [`clients`] refuses to build clients for any other endpoint.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gpu_recovery_aws::Clients;
use gpu_recovery_aws::config::TableNames;
use gpu_recovery_domain::Timestamp;
use serde_json::Value;

/// Returns the moto endpoint after checking that it is a local address.
pub fn moto_endpoint() -> String {
    let endpoint = std::env::var("MOTO_ENDPOINT").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "MOTO_ENDPOINT is {endpoint:?}: expected http://127.0.0.1:PORT; run scripts/test-aws.sh"
    );
    endpoint
}

/// SDK clients aimed at moto, after checking that the standard endpoint
/// variables point at 127.0.0.1, so no request can reach AWS.
pub async fn clients() -> Clients {
    let endpoint = moto_endpoint();
    let general = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert_eq!(
        general, endpoint,
        "AWS_ENDPOINT_URL must be the moto endpoint; run scripts/test-aws.sh"
    );
    for name in ["AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_DYNAMODB"] {
        let proxy = std::env::var(name).unwrap_or_default();
        assert!(
            proxy.starts_with("http://127.0.0.1:"),
            "{name} is {proxy:?}: expected the local moto gap proxy of scripts/test-aws.sh"
        );
    }
    Clients::load().await
}

/// Returns a name that no other test of this run uses, for tables, clusters
/// and topics.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{count}", std::process::id())
}

/// Table names unique to one test.
pub fn table_names(prefix: &str) -> TableNames {
    let base = unique(prefix);
    TableNames {
        task: format!("{base}-ecs_task"),
        job: format!("{base}-ecs_job"),
        node: format!("{base}-ecs_node"),
    }
}

/// One HTTP/1.1 request to moto; returns the status and body.
pub fn http(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let endpoint = moto_endpoint();
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("moto server is reachable");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout set");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("response read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// moto's view of every model, from `GET /moto-api/data.json`.
pub fn moto_data() -> Value {
    let (status, body) = http("GET", "/moto-api/data.json", &[], "");
    assert_eq!(status, 200, "moto data.json: {body}");
    serde_json::from_str(&body).expect("data.json is JSON")
}

/// Messages published to one topic, as `(subject, message, attributes)`.
pub fn published(topic_arn: &str) -> Vec<(String, String, Value)> {
    let data = moto_data();
    let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
    let Some(topic) = topics.iter().find(|t| t["arn"] == topic_arn) else {
        return Vec::new();
    };
    topic["sent_notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            (
                entry[2].as_str().unwrap_or_default().to_owned(),
                entry[1].as_str().unwrap_or_default().to_owned(),
                entry[3].clone(),
            )
        })
        .collect()
}

/// Starts EC2 instances in moto and returns their ids. moto accepts the
/// query API without a real signature; the credential scope sets the region.
pub fn run_ec2_instances(count: usize) -> Vec<String> {
    let body = format!(
        "Action=RunInstances&Version=2016-11-15&ImageId=ami-12c6146b&MinCount={count}&MaxCount={count}&InstanceType=p4d.24xlarge"
    );
    let (status, text) = ec2_call(&body);
    assert_eq!(status, 200, "RunInstances: {text}");
    text.split("<instanceId>")
        .skip(1)
        .filter_map(|part| part.split("</instanceId>").next())
        .map(str::to_owned)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Stops an EC2 instance in moto, so SSM no longer reports it Online.
pub fn stop_ec2_instance(instance_id: &str) {
    let (status, text) = ec2_call(&format!(
        "Action=StopInstances&Version=2016-11-15&InstanceId.1={instance_id}"
    ));
    assert_eq!(status, 200, "StopInstances: {text}");
}

fn ec2_call(body: &str) -> (u16, String) {
    http(
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0",
            ),
        ],
        body,
    )
}

/// Reads a sample event from the parser's fixtures.
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../eventbridge/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Where an event happens: the moto cluster's ARN.
#[derive(Debug, Clone)]
pub struct EventScope {
    pub cluster_arn: String,
}

impl EventScope {
    /// Builds a task STOPPED event in the shape of `file`, for a real task.
    #[allow(clippy::too_many_arguments)] // Each argument is one field of the event.
    pub fn task_stopped(
        &self,
        file: &str,
        task_arn: &str,
        container_instance_arn: &str,
        task_definition_arn: &str,
        exit_code: i64,
        version: u64,
        at: Timestamp,
    ) -> Value {
        let mut event = fixture(file);
        let detail = &mut event["detail"];
        detail["clusterArn"] = Value::String(self.cluster_arn.clone());
        detail["taskArn"] = Value::String(task_arn.to_owned());
        detail["containerInstanceArn"] = Value::String(container_instance_arn.to_owned());
        detail["taskDefinitionArn"] = Value::String(task_definition_arn.to_owned());
        let family = task_definition_arn
            .rsplit('/')
            .next()
            .and_then(|name| name.split(':').next())
            .unwrap_or_default();
        detail["group"] = Value::String(format!("family:{family}"));
        detail["version"] = Value::from(version);
        detail["lastStatus"] = Value::String("STOPPED".to_owned());
        detail["desiredStatus"] = Value::String("STOPPED".to_owned());
        for field in ["stoppedAt", "updatedAt", "executionStoppedAt", "stoppingAt"] {
            if detail.get(field).is_some() {
                detail[field] = Value::String(at.to_rfc3339());
            }
        }
        if let Some(containers) = detail["containers"].as_array_mut() {
            for container in containers {
                container["taskArn"] = Value::String(task_arn.to_owned());
                container["exitCode"] = Value::from(exit_code);
            }
        }
        event["resources"] = Value::Array(vec![Value::String(task_arn.to_owned())]);
        event["time"] = Value::String(at.to_rfc3339());
        event
    }

    /// Builds a container instance change in the shape of `file`.
    pub fn instance_changed(
        &self,
        file: &str,
        container_instance_arn: &str,
        ec2_instance_id: &str,
        version: u64,
        at: Timestamp,
    ) -> Value {
        let mut event = fixture(file);
        let detail = &mut event["detail"];
        detail["clusterArn"] = Value::String(self.cluster_arn.clone());
        detail["containerInstanceArn"] = Value::String(container_instance_arn.to_owned());
        detail["ec2InstanceId"] = Value::String(ec2_instance_id.to_owned());
        detail["version"] = Value::from(version);
        detail["updatedAt"] = Value::String(at.to_rfc3339());
        event["resources"] = Value::Array(vec![Value::String(container_instance_arn.to_owned())]);
        event["time"] = Value::String(at.to_rfc3339());
        event
    }

    /// Builds a task RUNNING event for a real task, from the stop sample's shape.
    pub fn task_running(
        &self,
        task_arn: &str,
        container_instance_arn: &str,
        task_definition_arn: &str,
        version: u64,
        at: Timestamp,
    ) -> Value {
        let mut event = self.task_stopped(
            "task-stopped-exit1-gpu.json",
            task_arn,
            container_instance_arn,
            task_definition_arn,
            0,
            version,
            at,
        );
        let detail = event["detail"]
            .as_object_mut()
            .expect("detail is an object");
        detail.insert("lastStatus".to_owned(), Value::String("RUNNING".to_owned()));
        detail.insert(
            "desiredStatus".to_owned(),
            Value::String("RUNNING".to_owned()),
        );
        for field in [
            "stopCode",
            "stoppedReason",
            "stoppedAt",
            "stoppingAt",
            "executionStoppedAt",
        ] {
            detail.remove(field);
        }
        if let Some(containers) = detail.get_mut("containers").and_then(Value::as_array_mut) {
            for container in containers {
                if let Some(container) = container.as_object_mut() {
                    container.remove("exitCode");
                    container.insert("lastStatus".to_owned(), Value::String("RUNNING".to_owned()));
                }
            }
        }
        event
    }
}
