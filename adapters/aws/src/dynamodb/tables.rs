//! The three tables' keys and global secondary indexes, and `tables create`.
//!
//! Keys and attribute names are those of the original schema. Every index
//! has a string partition key and projects all attributes, so a Query on it
//! returns whole records.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableDescription,
};

use crate::config::TableNames;
use crate::errors::classify;

/// How long `tables create` waits for a new table to become ACTIVE.
const ACTIVE_WAIT: Duration = Duration::from_mins(5);

pub const TASK_KEY: &str = "ecs_task_id";
pub const JOB_KEY: &str = "job_id";
pub const NODE_KEY: &str = "node_name";

pub const TASKS_BY_JOB: &str = "job_id-index";
pub const TASKS_BY_CONTAINER_INSTANCE: &str = "container_inst_id-index";
pub const JOBS_BY_STATUS: &str = "job_status-index";
pub const NODES_BY_CONTAINER_INSTANCE: &str = "container_instance_arn-index";
pub const NODES_BY_STATUS: &str = "node_status-index";

/// One global secondary index: its name and its partition key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub key: &'static str,
}

pub const TASK_INDEXES: [IndexSpec; 2] = [
    IndexSpec {
        name: TASKS_BY_JOB,
        key: "job_id",
    },
    IndexSpec {
        name: TASKS_BY_CONTAINER_INSTANCE,
        key: "container_inst_id",
    },
];
pub const JOB_INDEXES: [IndexSpec; 1] = [IndexSpec {
    name: JOBS_BY_STATUS,
    key: "job_status",
}];
pub const NODE_INDEXES: [IndexSpec; 2] = [
    IndexSpec {
        name: NODES_BY_CONTAINER_INSTANCE,
        key: "container_instance_arn",
    },
    IndexSpec {
        name: NODES_BY_STATUS,
        key: "node_status",
    },
];

/// A table's name, partition key and indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub key: &'static str,
    pub indexes: &'static [IndexSpec],
}

/// The three tables under the configured names: task, job, node.
#[must_use]
pub fn table_specs(names: &TableNames) -> [TableSpec; 3] {
    [
        TableSpec {
            name: names.task.clone(),
            key: TASK_KEY,
            indexes: &TASK_INDEXES,
        },
        TableSpec {
            name: names.job.clone(),
            key: JOB_KEY,
            indexes: &JOB_INDEXES,
        },
        TableSpec {
            name: names.node.clone(),
            key: NODE_KEY,
            indexes: &NODE_INDEXES,
        },
    ]
}

/// What `create_tables` found or did for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableOutcome {
    Created,
    /// The table was there already; `missing_indexes` lists the expected
    /// indexes it lacks, which the engine's queries need.
    Exists {
        missing_indexes: Vec<String>,
    },
}

/// The outcome for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub name: String,
    pub outcome: TableOutcome,
}

/// A failed table operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to {action} table {table}: {message}")]
pub struct TableError {
    pub table: String,
    pub action: &'static str,
    pub message: String,
}

/// Creates the three tables with on-demand billing and their indexes, and
/// waits until each new table is ACTIVE. A table that exists is left as it
/// is and reported with the indexes it lacks.
///
/// # Idempotency
/// Running it again reports every table as existing.
pub async fn create_tables(
    client: &Client,
    names: &TableNames,
) -> Result<Vec<TableReport>, TableError> {
    let mut reports = Vec::new();
    for spec in table_specs(names) {
        let outcome = create_table(client, &spec).await?;
        reports.push(TableReport {
            name: spec.name.clone(),
            outcome,
        });
    }
    Ok(reports)
}

async fn create_table(client: &Client, spec: &TableSpec) -> Result<TableOutcome, TableError> {
    let error = |action: &'static str, message: String| TableError {
        table: spec.name.clone(),
        action,
        message,
    };
    if let Some(existing) = describe(client, &spec.name).await? {
        return Ok(TableOutcome::Exists {
            missing_indexes: missing_indexes(spec, &existing),
        });
    }

    let mut attributes = vec![string_attribute(spec.key)];
    let mut indexes = Vec::new();
    for index in spec.indexes {
        attributes.push(string_attribute(index.key));
        indexes.push(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(hash_key(index.key))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(|e| error("build the request for", e.to_string()))?,
        );
    }
    let created = client
        .create_table()
        .table_name(&spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(hash_key(spec.key))
        .set_attribute_definitions(Some(attributes))
        .set_global_secondary_indexes(Some(indexes))
        .send()
        .await;
    if let Err(sdk_error) = created {
        let failure = classify(&sdk_error);
        // Another run created it between the DescribeTable and now.
        if failure.has_code("ResourceInUseException") {
            let existing = describe(client, &spec.name).await?;
            return Ok(TableOutcome::Exists {
                missing_indexes: existing
                    .map(|table| missing_indexes(spec, &table))
                    .unwrap_or_default(),
            });
        }
        return Err(error("create", failure.message));
    }
    client
        .wait_until_table_exists()
        .table_name(&spec.name)
        .wait(ACTIVE_WAIT)
        .await
        .map_err(|e| error("wait for", format!("it did not become ACTIVE: {e}")))?;
    Ok(TableOutcome::Created)
}

async fn describe(client: &Client, name: &str) -> Result<Option<TableDescription>, TableError> {
    match client.describe_table().table_name(name).send().await {
        Ok(output) => Ok(output.table),
        Err(sdk_error) => {
            let failure = classify(&sdk_error);
            if failure.has_code("ResourceNotFoundException") {
                Ok(None)
            } else {
                Err(TableError {
                    table: name.to_owned(),
                    action: "describe",
                    message: failure.message,
                })
            }
        }
    }
}

fn missing_indexes(spec: &TableSpec, table: &TableDescription) -> Vec<String> {
    spec.indexes
        .iter()
        .filter(|index| {
            !table
                .global_secondary_indexes()
                .iter()
                .any(|found| found.index_name() == Some(index.name))
        })
        .map(|index| index.name.to_owned())
        .collect()
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        // Both required fields are set above.
        .expect("attribute definition has a name and a type")
}

fn hash_key(name: &str) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(KeyType::Hash)
        .build()
        .expect("key schema element has a name and a type")
}
