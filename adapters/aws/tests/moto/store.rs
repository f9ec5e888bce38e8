//! The DynamoDB store and `tables create` against moto.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use gpu_recovery_aws::DynamoStore;
use gpu_recovery_aws::config::TableNames;
use gpu_recovery_aws::dynamodb::tables::{TableOutcome, create_tables};
use gpu_recovery_domain::records::{
    Episode, EpisodeNode, LaunchSpec, RankLaunch, SAFETY_RECORD_KEY, TaskKind, TaskRecord,
};
use gpu_recovery_domain::{
    JobRecord, JobStatus, NodeRecord, NodeStatus, Record, SafetyRecord, TaskStatus, Timestamp,
    Write,
};
use gpu_recovery_ports::{RecordStore, StoreError};

use crate::support::{clients, table_names};

async fn store(prefix: &str) -> (DynamoStore, TableNames, aws_sdk_dynamodb::Client) {
    let clients = clients().await;
    let names = table_names(prefix);
    let reports = create_tables(&clients.dynamodb, &names)
        .await
        .expect("tables created");
    assert!(
        reports.iter().all(|r| r.outcome == TableOutcome::Created),
        "{reports:?}"
    );
    (
        DynamoStore::new(clients.dynamodb.clone(), names.clone()),
        names,
        clients.dynamodb,
    )
}

fn create(record: Record) -> Write {
    Write {
        record,
        expected_version: None,
    }
}

fn job(id: &str, version: u64) -> JobRecord {
    let mut job = JobRecord::new(id, JobStatus::InProgress);
    job.version = version;
    job.num_nodes = 2;
    job.assigned_nodes = vec!["node-a".to_owned(), "node-b".to_owned()];
    job.submitted_ecs_task_ids = vec!["t1".to_owned(), "t2".to_owned()];
    job.launch = Some(LaunchSpec {
        task_definition: "llm-train:7".to_owned(),
        tags: BTreeMap::from([("team".to_owned(), "research".to_owned())]),
        ranks: vec![RankLaunch {
            rank: 0,
            node_name: "node-a".to_owned(),
            container_instance_arn: "arn:aws:ecs:us-east-1:123456789012:container-instance/c/a"
                .to_owned(),
            overrides: serde_json::json!({"containerOverrides": [{"name": "trainer"}]}),
        }],
    });
    job.created_at = Some(Timestamp(1_796_000_000_000));
    job
}

fn task(id: &str, job_id: &str, node: &str) -> TaskRecord {
    TaskRecord {
        ecs_task_id: id.to_owned(),
        task_arn: format!("arn:aws:ecs:us-east-1:123456789012:task/c/{id}"),
        job_id: job_id.to_owned(),
        kind: TaskKind::Training,
        task_status: TaskStatus::InProgress,
        node_name: node.to_owned(),
        node_index_in_job: 1,
        job_num_nodes: 2,
        container_instance_arn: format!(
            "arn:aws:ecs:us-east-1:123456789012:container-instance/c/{node}"
        ),
        container_inst_id: node.to_owned(),
        cluster_name: "c".to_owned(),
        task_def_arn: "llm-train:7".to_owned(),
        retry: 0,
        episode_id: None,
        phase: None,
        event_version: 3,
        running: true,
        stop_requested: None,
        stop: None,
        version: 1,
        created_at: None,
        updated_at: None,
    }
}

fn node(name: &str, status: NodeStatus) -> NodeRecord {
    let mut node = NodeRecord::new(
        name,
        &format!("arn:aws:ecs:us-east-1:123456789012:container-instance/c/{name}"),
    );
    node.node_status = status;
    node.version = 1;
    node.job_id = Some("job-1".to_owned());
    node.ec2_instance_id = Some("i-0a1b2c3d4e5f60718".to_owned());
    node
}

async fn raw_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
    value: &str,
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key(key, AttributeValue::S(value.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("item present")
}

#[tokio::test]
async fn store_round_trips_every_record() {
    let (store, _, _) = store("roundtrip").await;
    let job = job("job-1", 1);
    let task = task("t2", "job-1", "node-b");
    let node = node("node-b", NodeStatus::PendingHealthcheck);
    let mut safety = SafetyRecord::default();
    safety.version = 1;
    safety
        .rebooting
        .insert("node-b".to_owned(), Timestamp(1_796_000_000_000));
    store
        .commit(&[
            create(Record::Job(job.clone())),
            create(Record::Task(task.clone())),
            create(Record::Node(node.clone())),
            create(Record::Safety(safety.clone())),
        ])
        .await
        .expect("commit");

    assert_eq!(store.get_job("job-1").await.unwrap(), Some(job.clone()));
    assert_eq!(store.get_task("t2").await.unwrap(), Some(task.clone()));
    assert_eq!(store.get_node("node-b").await.unwrap(), Some(node.clone()));
    assert_eq!(store.get_safety().await.unwrap(), Some(safety));
    assert_eq!(store.get_node(SAFETY_RECORD_KEY).await.unwrap(), None);
    assert_eq!(store.get_job("job-2").await.unwrap(), None);

    assert_eq!(store.tasks_by_job("job-1").await.unwrap(), vec![task]);
    assert!(store.tasks_by_job("job-2").await.unwrap().is_empty());
    assert_eq!(
        store
            .node_by_container_instance(&node.container_instance_arn)
            .await
            .unwrap(),
        Some(node.clone())
    );
    assert_eq!(
        store.jobs_by_status(JobStatus::InProgress).await.unwrap(),
        vec![job]
    );
    assert!(
        store
            .jobs_by_status(JobStatus::Failed)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .nodes_by_status(NodeStatus::PendingHealthcheck)
            .await
            .unwrap(),
        vec![node]
    );
}

#[tokio::test]
async fn tables_create_reports_existing() {
    let clients = clients().await;
    let names = table_names("existing");
    create_tables(&clients.dynamodb, &names).await.unwrap();
    let again = create_tables(&clients.dynamodb, &names).await.unwrap();
    assert_eq!(again.len(), 3);
    for report in again {
        assert_eq!(
            report.outcome,
            TableOutcome::Exists {
                missing_indexes: Vec::new()
            },
            "{}",
            report.name
        );
    }
}

#[tokio::test]
async fn tables_create_lists_missing_indexes() {
    let clients = clients().await;
    let names = table_names("legacy-schema");
    // The job table as the earlier system may have left it: no index.
    clients
        .dynamodb
        .create_table()
        .table_name(&names.job)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("job_id")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("job_id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let reports = create_tables(&clients.dynamodb, &names).await.unwrap();
    let job_report = reports.iter().find(|r| r.name == names.job).unwrap();
    assert_eq!(
        job_report.outcome,
        TableOutcome::Exists {
            missing_indexes: vec!["job_status-index".to_owned()]
        }
    );
    let task_report = reports.iter().find(|r| r.name == names.task).unwrap();
    assert_eq!(task_report.outcome, TableOutcome::Created);
}

#[tokio::test]
async fn commit_conflict_keeps_winner() {
    let (store, _, _) = store("conflict").await;
    store
        .commit(&[create(Record::Job(job("job-1", 1)))])
        .await
        .unwrap();

    let mut first = job("job-1", 2);
    first.job_status = JobStatus::PendingHealthcheck;
    let mut second = job("job-1", 2);
    second.job_status = JobStatus::Complete;
    let write = |record: JobRecord| Write {
        record: Record::Job(record),
        expected_version: Some(1),
    };
    store
        .commit(&[write(first.clone())])
        .await
        .expect("first writer wins");
    let error = store.commit(&[write(second)]).await.unwrap_err();
    assert_eq!(
        error,
        StoreError::Conflict {
            record: "job job-1".to_owned()
        }
    );
    assert_eq!(store.get_job("job-1").await.unwrap(), Some(first));
}

#[tokio::test]
async fn commit_race_has_one_winner() {
    let (store, _, _) = store("race").await;
    store
        .commit(&[create(Record::Job(job("job-1", 1)))])
        .await
        .unwrap();
    let mut left = job("job-1", 2);
    left.status_reason = Some("left".to_owned());
    let mut right = job("job-1", 2);
    right.status_reason = Some("right".to_owned());
    let left_writes = [Write {
        record: Record::Job(left.clone()),
        expected_version: Some(1),
    }];
    let right_writes = [Write {
        record: Record::Job(right.clone()),
        expected_version: Some(1),
    }];
    let (a, b) = tokio::join!(store.commit(&left_writes), store.commit(&right_writes));
    let winners = [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count();
    assert_eq!(winners, 1, "left {a:?}, right {b:?}");
    let loser = if a.is_ok() { b } else { a };
    assert!(
        matches!(loser, Err(StoreError::Conflict { .. })),
        "{loser:?}"
    );
    let stored = store.get_job("job-1").await.unwrap().unwrap();
    let expected = if stored.status_reason.as_deref() == Some("left") {
        left
    } else {
        right
    };
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn commit_is_all_or_nothing() {
    let (store, _, _) = store("atomic").await;
    store
        .commit(&[create(Record::Job(job("job-1", 1)))])
        .await
        .unwrap();
    let writes = [
        create(Record::Node(node("node-a", NodeStatus::Available))),
        Write {
            record: Record::Job(job("job-1", 8)),
            expected_version: Some(7),
        },
    ];
    let error = store.commit(&writes).await.unwrap_err();
    assert_eq!(
        error,
        StoreError::Conflict {
            record: "job job-1".to_owned()
        }
    );
    assert_eq!(store.get_node("node-a").await.unwrap(), None);
}

#[tokio::test]
async fn commit_create_conflicts_when_present() {
    let (store, _, _) = store("create").await;
    let task = task("t1", "job-1", "node-a");
    store
        .commit(&[create(Record::Task(task.clone()))])
        .await
        .unwrap();
    let mut other = task.clone();
    other.job_id = "job-2".to_owned();
    let error = store
        .commit(&[create(Record::Task(other))])
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StoreError::Conflict {
            record: "task t1".to_owned()
        }
    );
    assert_eq!(store.get_task("t1").await.unwrap(), Some(task));
}

#[tokio::test]
async fn commit_removes_cleared_fields() {
    let (store, names, client) = store("cleared").await;
    let mut with_episode = job("job-1", 1);
    with_episode.episode = Some(Episode {
        id: "job-1-e1".to_owned(),
        opened_at: Timestamp(1_796_000_000_000),
        trigger_task: "t1".to_owned(),
        trigger_reason: "exit 1".to_owned(),
        nodes: BTreeMap::from([("node-a".to_owned(), EpisodeNode::default())]),
        outcome: None,
    });
    store
        .commit(&[create(Record::Job(with_episode))])
        .await
        .unwrap();
    assert!(
        raw_item(&client, &names.job, "job_id", "job-1")
            .await
            .contains_key("episode")
    );

    let cleared = job("job-1", 2);
    store
        .commit(&[Write {
            record: Record::Job(cleared.clone()),
            expected_version: Some(1),
        }])
        .await
        .unwrap();
    let item = raw_item(&client, &names.job, "job_id", "job-1").await;
    assert!(
        !item.contains_key("episode"),
        "episode left behind: {item:?}"
    );
    assert_eq!(store.get_job("job-1").await.unwrap(), Some(cleared));
}

#[tokio::test]
async fn commit_skips_empty_index_key() {
    let (store, names, client) = store("empty-key").await;
    let mut health_check = task("t9", "job-1", "node-a");
    health_check.kind = TaskKind::HealthCheck;
    health_check.container_inst_id = String::new();
    store
        .commit(&[create(Record::Task(health_check.clone()))])
        .await
        .unwrap();
    let item = raw_item(&client, &names.task, "ecs_task_id", "t9").await;
    assert!(!item.contains_key("container_inst_id"), "{item:?}");
    assert_eq!(store.get_task("t9").await.unwrap(), Some(health_check));
}

fn text(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

#[tokio::test]
async fn legacy_records_read_and_update() {
    let (store, names, client) = store("legacy").await;
    let put = |table: &str, item: Vec<(&str, AttributeValue)>| {
        client
            .put_item()
            .table_name(table)
            .set_item(Some(
                item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .send()
    };
    // Shapes the earlier Python implementation wrote: strings for numbers,
    // task ids as one comma-separated string or as a list, no version.
    put(
        &names.job,
        vec![
            ("job_id", text("legacy-1")),
            ("job_timestamp", text("20261120")),
            ("cluster_name", text("gpu-training")),
            ("num_nodes", text("2")),
            ("assigned_nodes", text("node-a,node-b")),
            ("submitted_ecs_task_ids", text("t1,t2")),
            ("retry", text("0")),
            ("job_status", text("PENDING")),
            ("created_at", text("2026-11-20T08:00:00.000000")),
        ],
    )
    .await
    .unwrap();
    put(
        &names.job,
        vec![
            ("job_id", text("legacy-2")),
            (
                "submitted_ecs_task_ids",
                AttributeValue::L(vec![text("t3"), text("t4")]),
            ),
            ("retry", text("1")),
            ("job_status", text("IN_PROGRESS")),
        ],
    )
    .await
    .unwrap();
    put(
        &names.task,
        vec![
            ("ecs_task_id", text("t1")),
            ("job_id", text("legacy-1")),
            ("node_name", text("node-a")),
            ("node_index_in_job", text("0")),
            ("job_num_nodes", text("2")),
            ("container_inst_id", text("c1")),
            ("retry", AttributeValue::N("0".to_owned())),
            ("task_status", text("FAILED")),
        ],
    )
    .await
    .unwrap();
    put(
        &names.node,
        vec![
            ("node_name", text("node-a")),
            ("node_status", text("ASSIGNED")),
            (
                "container_instance_arn",
                text("arn:aws:ecs:us-east-1:123456789012:container-instance/c/c1"),
            ),
        ],
    )
    .await
    .unwrap();

    let first = store.get_job("legacy-1").await.unwrap().unwrap();
    assert_eq!(first.job_status, JobStatus::PendingRestart);
    assert_eq!(first.retry, 0);
    assert_eq!(first.num_nodes, 2);
    assert_eq!(first.version, 0);
    assert_eq!(first.submitted_ecs_task_ids, ["t1", "t2"]);
    assert_eq!(first.assigned_nodes, ["node-a", "node-b"]);
    let second = store.get_job("legacy-2").await.unwrap().unwrap();
    assert_eq!(second.submitted_ecs_task_ids, ["t3", "t4"]);
    assert_eq!(second.retry, 1);
    let task = store.get_task("t1").await.unwrap().unwrap();
    assert_eq!(task.task_status, TaskStatus::Terminated);
    assert_eq!(store.tasks_by_job("legacy-1").await.unwrap().len(), 1);
    let node = store.get_node("node-a").await.unwrap().unwrap();
    assert_eq!(node.node_status, NodeStatus::InProgress);

    // Legacy status values are found by the status queries too.
    let pending = store
        .jobs_by_status(JobStatus::PendingRestart)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].job_id, "legacy-1");
    let assigned = store.nodes_by_status(NodeStatus::InProgress).await.unwrap();
    assert_eq!(assigned.len(), 1);

    // A record without a version is written at version 0, and attributes
    // the engine does not own survive the update.
    let mut updated = first.clone();
    updated.version = 1;
    updated.job_status = JobStatus::Failed;
    store
        .commit(&[Write {
            record: Record::Job(updated.clone()),
            expected_version: Some(0),
        }])
        .await
        .expect("a legacy record matches version 0");
    let item = raw_item(&client, &names.job, "job_id", "legacy-1").await;
    assert_eq!(item.get("job_timestamp"), Some(&text("20261120")));
    assert_eq!(item.get("job_status"), Some(&text("FAILED")));
    assert_eq!(item.get("retry"), Some(&AttributeValue::N("0".to_owned())));
    assert_eq!(store.get_job("legacy-1").await.unwrap().unwrap().version, 1);

    // A second writer that read version 0 now loses.
    let error = store
        .commit(&[Write {
            record: Record::Job(first),
            expected_version: Some(0),
        }])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
}

#[tokio::test]
async fn store_missing_table_is_unavailable() {
    let clients = clients().await;
    let store = DynamoStore::new(clients.dynamodb, table_names("never-created"));
    let error = store.get_job("job-1").await.unwrap_err();
    let StoreError::Unavailable { operation, message } = error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(operation.contains("GetItem of job job-1"), "{operation}");
    assert!(message.contains("ResourceNotFoundException"), "{message}");
}
