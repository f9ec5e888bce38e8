//! Tests of the AWS adapters, the table set-up and a whole recovery against
//! moto server, which speaks the AWS wire protocols on 127.0.0.1.
//!
//! Run them with scripts/test-aws.sh. It starts moto and sets its ECS state
//! manager so that tasks stay RUNNING until stopped. It also starts the proxy
//! that fills moto's gaps for DynamoDB and SSM (moto_gap_proxy.py), and points
//! the SDK at both through the standard AWS_ENDPOINT_URL variables.

mod cluster;
mod host;
mod logs;
mod notify;
mod recovery;
mod store;
mod support;
mod world;
