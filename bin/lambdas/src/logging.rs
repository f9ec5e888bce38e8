//! JSON logs from `tracing`, for CloudWatch Logs.
//!
//! The level comes from Lambda's advanced logging controls
//! (`AWS_LAMBDA_LOG_LEVEL`) when they are set, else from `RUST_LOG`, else
//! `info`. Each line is one JSON object with the fields of the invocation
//! span, so a query on `job_id` or `request_id` finds every line of it.

use tracing_subscriber::EnvFilter;

pub(crate) fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .map(|level| match level.to_ascii_lowercase().as_str() {
            // Lambda's FATAL has no tracing level; error is the closest.
            "fatal" => "error".to_owned(),
            other => other.to_owned(),
        })
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .init();
}
