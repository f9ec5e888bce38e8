//! The SDK configuration and clients, built once per cold start.
//!
//! Retries and timeouts are set here explicitly, not left to SDK defaults,
//! because a Lambda invocation has a deadline of its own: a call must give up
//! early enough for the function to return an error, so EventBridge retries
//! the event and a dead-letter queue catches one that keeps failing.
//!
//! The endpoint, region and credentials come from the standard SDK sources
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_REGION`, the Lambda
//! role), so the tests point the same code at a local server through the
//! environment alone.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Attempts per call, the first included, with the standard retry mode's
/// exponential backoff and jitter between them.
pub const MAX_ATTEMPTS: u32 = 3;
/// Limit on one attempt of a call, from sending the request to reading the response.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit on a whole call, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(25);
/// Limit on opening a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Loads the shared SDK configuration with the retry and timeout settings above.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// One client per service. Building them opens no connection.
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub sns: aws_sdk_sns::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

impl Clients {
    #[must_use]
    pub fn new(sdk: &SdkConfig) -> Clients {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            ecs: aws_sdk_ecs::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
        }
    }

    /// Loads the SDK configuration and builds every client from it.
    pub async fn load() -> Clients {
        Clients::new(&load_sdk_config().await)
    }
}
