//! The AWS adapters of the recovery ports, on aws-sdk-rust: the record store
//! on DynamoDB ([`dynamodb`]), the cluster on ECS ([`ecs`]), host control on
//! SSM Run Command ([`ssm`]), the notifier on SNS ([`sns`]) and metrics as
//! CloudWatch embedded metric format lines ([`metrics`]).
//!
//! Around them: start-up configuration ([`config`]), the SDK clients built
//! once per cold start ([`clients`]), the health-check log reader ([`logs`]),
//! table creation ([`dynamodb::tables`]) and job submission ([`submit`]) for
//! the `gpu-recovery` command. The Lambda functions and the command line tool
//! compose these; nothing here reads an event.

// The docs name AWS services and API operations (DynamoDB, CloudWatch,
// TransactWriteItems) in their own spelling, as prose rather than code.
#![allow(clippy::doc_markdown)]

pub mod clients;
pub mod config;
pub mod dynamodb;
pub mod ecs;
mod errors;
pub mod logs;
pub mod metrics;
pub mod sns;
pub mod ssm;
pub mod submit;

pub use clients::Clients;
pub use config::{Config, ConfigError, TableNames};
pub use dynamodb::DynamoStore;
pub use ecs::EcsCluster;
pub use logs::HealthCheckLogReader;
pub use metrics::EmfMetrics;
pub use sns::SnsNotifier;
pub use ssm::SsmHostControl;
