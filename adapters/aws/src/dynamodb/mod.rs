//! The record store on DynamoDB: the task, job and node tables of the
//! original schema, and the safety record kept in the node table under the
//! key [`SAFETY_RECORD_KEY`].
//!
//! Reads are GetItem (strongly consistent) and Query on the global secondary
//! indexes; nothing here scans. [`DynamoStore::commit`] writes a decision
//! with one TransactWriteItems of UpdateItem operations, each conditional on
//! the record's `version`. UpdateItem sets the attributes a record has and
//! removes only those of its own fields that are empty, so attributes written
//! by other tools survive.

mod item;
pub mod tables;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use gpu_recovery_domain::records::SAFETY_RECORD_KEY;
use gpu_recovery_domain::{
    JobRecord, JobStatus, NodeRecord, NodeStatus, Record, SafetyRecord, TaskRecord, Write,
};
use gpu_recovery_ports::{RecordStore, StoreError};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::config::TableNames;
use crate::errors::classify;
use tables::{
    IndexSpec, JOB_INDEXES, JOB_KEY, JOBS_BY_STATUS, NODE_INDEXES, NODE_KEY,
    NODES_BY_CONTAINER_INSTANCE, NODES_BY_STATUS, TASK_INDEXES, TASK_KEY, TASKS_BY_JOB,
};

/// DynamoDB allows at most 100 operations in one TransactWriteItems.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// The record store over the three tables.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
}

/// Where one record lives and how it is written.
struct Placement<'a> {
    table: &'a str,
    key_name: &'static str,
    key_value: String,
    indexes: &'static [IndexSpec],
    fields: &'static [&'static str],
    attributes: Map<String, Value>,
}

impl DynamoStore {
    #[must_use]
    pub fn new(client: Client, tables: TableNames) -> DynamoStore {
        DynamoStore { client, tables }
    }

    #[must_use]
    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    async fn get_item<T: DeserializeOwned>(
        &self,
        table: &str,
        key_name: &str,
        key_value: &str,
        describe: &str,
    ) -> Result<Option<T>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key(key_name, AttributeValue::S(key_value.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                classify(&e).into_store_error(&format!("GetItem of {describe} in {table}"))
            })?;
        output
            .item()
            .map(|item| parse_item(item, describe))
            .transpose()
    }

    /// Queries an index for one key value, following every page.
    async fn query<T: DeserializeOwned>(
        &self,
        table: &str,
        index: &str,
        key_name: &str,
        key_value: &str,
        describe: impl Fn(&HashMap<String, AttributeValue>) -> String,
    ) -> Result<Vec<T>, StoreError> {
        let mut records = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(table)
                .index_name(index)
                .key_condition_expression("#k = :v")
                .expression_attribute_names("#k", key_name)
                .expression_attribute_values(":v", AttributeValue::S(key_value.to_owned()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    classify(&e).into_store_error(&format!(
                        "Query of {index} on {table} for {key_name}={key_value}"
                    ))
                })?;
            for item in output.items() {
                records.push(parse_item(item, &describe(item))?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(records),
            }
        }
    }

    fn placement(&self, record: &Record) -> Result<Placement<'_>, StoreError> {
        let attributes = to_object(record)?;
        Ok(match record {
            Record::Job(job) => Placement {
                table: &self.tables.job,
                key_name: JOB_KEY,
                key_value: job.job_id.clone(),
                indexes: &JOB_INDEXES,
                fields: item::field_names::<JobRecord>(),
                attributes,
            },
            Record::Task(task) => Placement {
                table: &self.tables.task,
                key_name: TASK_KEY,
                key_value: task.ecs_task_id.clone(),
                indexes: &TASK_INDEXES,
                fields: item::field_names::<TaskRecord>(),
                attributes,
            },
            Record::Node(node) => Placement {
                table: &self.tables.node,
                key_name: NODE_KEY,
                key_value: node.node_name.clone(),
                indexes: &NODE_INDEXES,
                fields: item::field_names::<NodeRecord>(),
                attributes,
            },
            Record::Safety(_) => Placement {
                table: &self.tables.node,
                key_name: NODE_KEY,
                key_value: SAFETY_RECORD_KEY.to_owned(),
                indexes: &[],
                fields: item::field_names::<SafetyRecord>(),
                attributes,
            },
        })
    }

    /// Builds the conditional UpdateItem for one write.
    fn update(&self, write: &Write) -> Result<Update, StoreError> {
        let describe = write.record.describe();
        let placement = self.placement(&write.record)?;
        if placement.key_value.is_empty() {
            return Err(StoreError::Malformed {
                record: describe,
                message: format!("its key {} is empty", placement.key_name),
            });
        }
        let expression = UpdateExpression::build(&placement, write.expected_version);
        Update::builder()
            .table_name(placement.table)
            .key(
                placement.key_name,
                AttributeValue::S(placement.key_value.clone()),
            )
            .update_expression(expression.text)
            .condition_expression(expression.condition)
            .set_expression_attribute_names(Some(expression.names))
            .set_expression_attribute_values(Some(expression.values))
            .build()
            .map_err(|error| StoreError::Malformed {
                record: describe,
                message: format!("the update could not be built: {error}"),
            })
    }
}

/// An UpdateItem expression with its placeholders.
struct UpdateExpression {
    text: String,
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl UpdateExpression {
    fn build(placement: &Placement<'_>, expected_version: Option<u64>) -> UpdateExpression {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let name_of = |attribute: &str, names: &mut HashMap<String, String>| {
            let placeholder = format!("#a{}", names.len());
            names.insert(placeholder.clone(), attribute.to_owned());
            placeholder
        };

        let is_index_key = |name: &str| placement.indexes.iter().any(|index| index.key == name);
        for (attribute, value) in &placement.attributes {
            if attribute == placement.key_name {
                continue;
            }
            // DynamoDB rejects an empty string as an index key, and an absent
            // attribute keeps the item out of that sparse index, which is
            // what an empty value means.
            let empty_key = is_index_key(attribute) && value.as_str() == Some("");
            if value.is_null() || empty_key {
                removes.push(name_of(attribute, &mut names));
            } else {
                let placeholder = name_of(attribute, &mut names);
                let value_name = format!(":v{}", values.len());
                values.insert(value_name.clone(), item::to_attribute(value));
                sets.push(format!("{placeholder} = {value_name}"));
            }
        }
        for field in placement.fields {
            if *field != placement.key_name && !placement.attributes.contains_key(*field) {
                removes.push(name_of(field, &mut names));
            }
        }

        let mut text = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            text.push_str(" REMOVE ");
            text.push_str(&removes.join(", "));
        }
        // DynamoDB rejects placeholders that the expressions do not use, so
        // each condition adds only its own.
        let condition = match expected_version {
            None => {
                names.insert("#pk".to_owned(), placement.key_name.to_owned());
                "attribute_not_exists(#pk)".to_owned()
            }
            Some(expected) => {
                names.insert("#version".to_owned(), "version".to_owned());
                values.insert(
                    ":expected".to_owned(),
                    AttributeValue::N(expected.to_string()),
                );
                if expected == 0 {
                    // Records written before versions existed have no
                    // `version`, and read as version 0.
                    "attribute_not_exists(#version) OR #version = :expected".to_owned()
                } else {
                    "#version = :expected".to_owned()
                }
            }
        };
        UpdateExpression {
            text,
            condition,
            names,
            values,
        }
    }
}

fn to_object(record: &Record) -> Result<Map<String, Value>, StoreError> {
    let value = match record {
        Record::Job(job) => serde_json::to_value(job),
        Record::Task(task) => serde_json::to_value(task),
        Record::Node(node) => serde_json::to_value(node),
        Record::Safety(safety) => serde_json::to_value(safety),
    }
    .map_err(|error| StoreError::Malformed {
        record: record.describe(),
        message: error.to_string(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(StoreError::Malformed {
            record: record.describe(),
            message: "it does not serialize to an object".to_owned(),
        }),
    }
}

fn parse_item<T: DeserializeOwned>(
    item: &HashMap<String, AttributeValue>,
    describe: &str,
) -> Result<T, StoreError> {
    let malformed = |message: String| StoreError::Malformed {
        record: describe.to_owned(),
        message,
    };
    let mut object = item::from_item(item).map_err(malformed)?;
    // The safety record's key is not one of its fields.
    if object.get(NODE_KEY).and_then(Value::as_str) == Some(SAFETY_RECORD_KEY) {
        object.remove(NODE_KEY);
    }
    serde_json::from_value(Value::Object(object)).map_err(|e| malformed(e.to_string()))
}

fn key_of(item: &HashMap<String, AttributeValue>, key: &str) -> String {
    match item.get(key) {
        Some(AttributeValue::S(value)) => value.clone(),
        _ => "(no key)".to_owned(),
    }
}

/// Values the earlier implementation wrote for a status, which the domain
/// reads as that status; a query by status asks for each of them.
fn job_status_values(status: JobStatus) -> Vec<&'static str> {
    match status {
        JobStatus::PendingRestart => vec![status.as_str(), "PENDING"],
        _ => vec![status.as_str()],
    }
}

fn node_status_values(status: NodeStatus) -> Vec<&'static str> {
    match status {
        NodeStatus::InProgress => vec![status.as_str(), "ASSIGNED"],
        _ => vec![status.as_str()],
    }
}

/// Sorts a failed TransactWriteItems into a conflict on a named record or an
/// unavailable store.
fn commit_error(
    error: &aws_sdk_dynamodb::error::SdkError<
        TransactWriteItemsError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
    writes: &[Write],
) -> StoreError {
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    {
        let reasons = cancelled.cancellation_reasons();
        // ConditionalCheckFailed: the version changed since it was read.
        // TransactionConflict: another transaction is writing the item now;
        // re-reading and deciding again is right for both.
        for (index, reason) in reasons.iter().enumerate() {
            if matches!(
                reason.code(),
                Some("ConditionalCheckFailed" | "TransactionConflict")
            ) {
                return StoreError::Conflict {
                    record: writes
                        .get(index)
                        .map_or_else(|| format!("write {index}"), |w| w.record.describe()),
                };
            }
        }
        let codes: Vec<&str> = reasons
            .iter()
            .filter_map(|reason| reason.code())
            .filter(|code| *code != "None")
            .collect();
        return StoreError::Unavailable {
            operation: "TransactWriteItems".to_owned(),
            message: format!("transaction cancelled: {}", codes.join(", ")),
        };
    }
    classify(error).into_store_error("TransactWriteItems")
}

impl RecordStore for DynamoStore {
    async fn get_job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.get_item(&self.tables.job, JOB_KEY, job_id, &format!("job {job_id}"))
            .await
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.get_item(
            &self.tables.task,
            TASK_KEY,
            task_id,
            &format!("task {task_id}"),
        )
        .await
    }

    async fn get_node(&self, node_name: &str) -> Result<Option<NodeRecord>, StoreError> {
        if node_name == SAFETY_RECORD_KEY {
            return Ok(None);
        }
        self.get_item(
            &self.tables.node,
            NODE_KEY,
            node_name,
            &format!("node {node_name}"),
        )
        .await
    }

    async fn tasks_by_job(&self, job_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        self.query(&self.tables.task, TASKS_BY_JOB, "job_id", job_id, |item| {
            format!("task {}", key_of(item, TASK_KEY))
        })
        .await
    }

    async fn node_by_container_instance(
        &self,
        container_instance_arn: &str,
    ) -> Result<Option<NodeRecord>, StoreError> {
        let nodes: Vec<NodeRecord> = self
            .query(
                &self.tables.node,
                NODES_BY_CONTAINER_INSTANCE,
                "container_instance_arn",
                container_instance_arn,
                |item| format!("node {}", key_of(item, NODE_KEY)),
            )
            .await?;
        if nodes.len() > 1 {
            let names: Vec<&str> = nodes.iter().map(|n| n.node_name.as_str()).collect();
            tracing::warn!(
                container_instance = container_instance_arn,
                nodes = ?names,
                "several node records name one container instance; using the first"
            );
        }
        Ok(nodes.into_iter().next())
    }

    async fn get_safety(&self) -> Result<Option<SafetyRecord>, StoreError> {
        self.get_item(
            &self.tables.node,
            NODE_KEY,
            SAFETY_RECORD_KEY,
            "safety record",
        )
        .await
    }

    async fn jobs_by_status(&self, status: JobStatus) -> Result<Vec<JobRecord>, StoreError> {
        let mut jobs = Vec::new();
        for value in job_status_values(status) {
            jobs.extend(
                self.query(
                    &self.tables.job,
                    JOBS_BY_STATUS,
                    "job_status",
                    value,
                    |item| format!("job {}", key_of(item, JOB_KEY)),
                )
                .await?,
            );
        }
        Ok(jobs)
    }

    async fn nodes_by_status(&self, status: NodeStatus) -> Result<Vec<NodeRecord>, StoreError> {
        let mut nodes = Vec::new();
        for value in node_status_values(status) {
            nodes.extend(
                self.query(
                    &self.tables.node,
                    NODES_BY_STATUS,
                    "node_status",
                    value,
                    |item| format!("node {}", key_of(item, NODE_KEY)),
                )
                .await?,
            );
        }
        Ok(nodes)
    }

    async fn commit(&self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        if writes.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Unavailable {
                operation: "TransactWriteItems".to_owned(),
                message: format!(
                    "{} writes exceed DynamoDB's limit of {MAX_TRANSACTION_ITEMS} per transaction",
                    writes.len()
                ),
            });
        }
        let mut items = Vec::with_capacity(writes.len());
        for write in writes {
            items.push(
                TransactWriteItem::builder()
                    .update(self.update(write)?)
                    .build(),
            );
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|error| commit_error(&error, writes))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use gpu_recovery_domain::JobRecord;

    use super::*;

    fn placement_for(record: &Record) -> Placement<'static> {
        let attributes = to_object(record).unwrap();
        match record {
            Record::Task(task) => Placement {
                table: "ecs_task",
                key_name: TASK_KEY,
                key_value: task.ecs_task_id.clone(),
                indexes: &TASK_INDEXES,
                fields: item::field_names::<TaskRecord>(),
                attributes,
            },
            Record::Job(job) => Placement {
                table: "ecs_job",
                key_name: JOB_KEY,
                key_value: job.job_id.clone(),
                indexes: &JOB_INDEXES,
                fields: item::field_names::<JobRecord>(),
                attributes,
            },
            _ => unreachable!("only jobs and tasks are used here"),
        }
    }

    fn attribute_names(expression: &UpdateExpression, clause: &str) -> Vec<String> {
        let Some(start) = expression.text.find(clause) else {
            return Vec::new();
        };
        let rest = &expression.text[start + clause.len()..];
        let end = rest.find(" REMOVE ").unwrap_or(rest.len());
        rest[..end]
            .split(", ")
            .map(|part| {
                let placeholder = part.split(" = ").next().unwrap().trim();
                expression.names[placeholder].clone()
            })
            .collect()
    }

    #[test]
    fn update_sets_present_removes_empty() {
        let mut job = JobRecord::new("job-1", JobStatus::InProgress);
        job.version = 3;
        let placement = placement_for(&Record::Job(job));
        let expression = UpdateExpression::build(&placement, Some(2));
        let set = attribute_names(&expression, "SET ");
        let removed = attribute_names(&expression, " REMOVE ");
        assert!(set.contains(&"job_status".to_owned()), "{set:?}");
        assert!(set.contains(&"version".to_owned()), "{set:?}");
        assert!(
            !set.contains(&"job_id".to_owned()),
            "the key is never SET: {set:?}"
        );
        assert!(removed.contains(&"episode".to_owned()), "{removed:?}");
        assert!(removed.contains(&"launch".to_owned()), "{removed:?}");
        assert_eq!(expression.condition, "#version = :expected");
        assert_eq!(
            expression.values[":expected"],
            AttributeValue::N("2".to_owned())
        );
    }

    #[test]
    fn update_conditions_follow_expected_version() {
        let job = JobRecord::new("job-1", JobStatus::InProgress);
        let placement = placement_for(&Record::Job(job));
        let create = UpdateExpression::build(&placement, None);
        assert_eq!(create.condition, "attribute_not_exists(#pk)");
        assert_eq!(create.names["#pk"], "job_id");
        let legacy = UpdateExpression::build(&placement, Some(0));
        assert_eq!(
            legacy.condition,
            "attribute_not_exists(#version) OR #version = :expected"
        );
    }

    #[test]
    fn update_removes_empty_index_keys() {
        let task: TaskRecord = serde_json::from_value(serde_json::json!({
            "ecs_task_id": "t1",
            "job_id": "job-1",
            "task_status": "IN_PROGRESS",
            "container_inst_id": ""
        }))
        .unwrap();
        let placement = placement_for(&Record::Task(task));
        let expression = UpdateExpression::build(&placement, None);
        let set = attribute_names(&expression, "SET ");
        let removed = attribute_names(&expression, " REMOVE ");
        assert!(
            removed.contains(&"container_inst_id".to_owned()),
            "{removed:?}"
        );
        assert!(!set.contains(&"container_inst_id".to_owned()), "{set:?}");
        assert!(set.contains(&"job_id".to_owned()), "{set:?}");
    }

    #[test]
    fn legacy_item_reads_through_json() {
        let item: HashMap<String, AttributeValue> = [
            ("job_id", AttributeValue::S("job-1".to_owned())),
            ("job_status", AttributeValue::S("PENDING".to_owned())),
            ("retry", AttributeValue::S("1".to_owned())),
            ("num_nodes", AttributeValue::N("2".to_owned())),
            (
                "submitted_ecs_task_ids",
                AttributeValue::S("t1,t2".to_owned()),
            ),
            (
                "assigned_nodes",
                AttributeValue::L(vec![
                    AttributeValue::S("node-a".to_owned()),
                    AttributeValue::S("node-b".to_owned()),
                ]),
            ),
            ("job_timestamp", AttributeValue::S("20261120".to_owned())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let job: JobRecord = parse_item(&item, "job job-1").unwrap();
        assert_eq!(job.job_status, JobStatus::PendingRestart);
        assert_eq!(job.retry, 1);
        assert_eq!(job.num_nodes, 2);
        assert_eq!(job.version, 0);
        assert_eq!(job.submitted_ecs_task_ids, ["t1", "t2"]);
        assert_eq!(job.assigned_nodes, ["node-a", "node-b"]);
    }

    #[test]
    fn safety_item_drops_its_key() {
        let item: HashMap<String, AttributeValue> = [
            ("node_name", AttributeValue::S(SAFETY_RECORD_KEY.to_owned())),
            ("version", AttributeValue::N("4".to_owned())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let safety: SafetyRecord = parse_item(&item, "safety record").unwrap();
        assert_eq!(safety.version, 4);
    }

    #[test]
    fn malformed_item_names_record() {
        let item: HashMap<String, AttributeValue> =
            [("job_id".to_owned(), AttributeValue::S("job-1".to_owned()))]
                .into_iter()
                .collect();
        let error = parse_item::<JobRecord>(&item, "job job-1").unwrap_err();
        let StoreError::Malformed { record, message } = error else {
            panic!("expected Malformed");
        };
        assert_eq!(record, "job job-1");
        assert!(message.contains("job_status"), "{message}");
    }
}
