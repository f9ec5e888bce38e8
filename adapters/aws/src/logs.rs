//! Reading the health-check runner's verdict line from CloudWatch Logs.
//!
//! The runner prints its assessment as one JSON line, which the `awslogs`
//! driver sends to the stream `<prefix>/<container name>/<task id>`. The DCGM
//! Task Monitor reads it to add the runner's reasons to the verdict. The exit
//! code stays the verdict: a failed read is logged as a warning by the
//! caller and the check is decided without the report.

use aws_sdk_cloudwatchlogs::Client;
use gpu_recovery_dcgm::Assessment;
use gpu_recovery_domain::observation::ReportSummary;

use crate::config::HealthCheckLogs;
use crate::errors::classify;

/// Log events read from the end of the stream; the verdict line is the last
/// thing the runner prints.
const EVENTS_FROM_END: i32 = 200;
/// Maximum length of a summary kept in the records, in characters.
const MAX_SUMMARY: usize = 600;

/// Reads health-check assessments from the configured log group.
#[derive(Debug, Clone)]
pub struct HealthCheckLogReader {
    client: Client,
    logs: HealthCheckLogs,
}

/// An error that kept the report from being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogReadError {
    #[error("container name {0:?} cannot be part of a log stream name")]
    InvalidContainer(String),
    #[error("GetLogEvents on {group}/{stream} failed: {message}")]
    Call {
        group: String,
        stream: String,
        message: String,
    },
}

impl HealthCheckLogReader {
    #[must_use]
    pub fn new(client: Client, logs: HealthCheckLogs) -> HealthCheckLogReader {
        HealthCheckLogReader { client, logs }
    }

    /// The stream name the `awslogs` driver gives a task's container.
    #[must_use]
    pub fn stream_name(&self, container: &str, task_id: &str) -> String {
        format!("{}/{container}/{task_id}", self.logs.stream_prefix)
    }

    /// Reads the last assessment line of a health-check task's log stream.
    /// `Ok(None)` means the stream has no assessment line.
    pub async fn read_report(
        &self,
        container: &str,
        task_id: &str,
    ) -> Result<Option<ReportSummary>, LogReadError> {
        // ECS container names are 1 to 255 letters, digits, hyphens and
        // underscores; anything else did not come from ECS.
        let valid = (1..=255).contains(&container.len())
            && container
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(LogReadError::InvalidContainer(container.to_owned()));
        }
        let stream = self.stream_name(container, task_id);
        let output = self
            .client
            .get_log_events()
            .log_group_name(&self.logs.log_group)
            .log_stream_name(&stream)
            .start_from_head(false)
            .limit(EVENTS_FROM_END)
            .send()
            .await
            .map_err(|e| LogReadError::Call {
                group: self.logs.log_group.clone(),
                stream: stream.clone(),
                message: classify(&e).message,
            })?;
        let text: Vec<&str> = output
            .events()
            .iter()
            .filter_map(|event| event.message())
            .collect();
        Ok(Assessment::from_log(&text.join("\n")).map(|assessment| summarize(&assessment)))
    }
}

/// The verdict and reasons of an assessment, as the records keep them.
#[must_use]
pub fn summarize(assessment: &Assessment) -> ReportSummary {
    let summary = if assessment.reasons.is_empty() {
        format!("verdict {}", assessment.verdict)
    } else {
        assessment.reasons.join("; ")
    };
    let summary = if summary.chars().count() > MAX_SUMMARY {
        let cut: String = summary.chars().take(MAX_SUMMARY).collect();
        format!("{cut}...")
    } else {
        summary
    };
    ReportSummary {
        verdict: assessment.verdict,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use gpu_recovery_domain::Verdict;

    use super::*;

    #[test]
    fn summarize_joins_reasons() {
        let mut assessment = Assessment::inconclusive("dcgmi timed out after 900 s".to_owned());
        assessment.reasons.push("no kernel log".to_owned());
        let summary = summarize(&assessment);
        assert_eq!(summary.verdict, Verdict::Inconclusive);
        assert_eq!(
            summary.summary,
            "dcgmi timed out after 900 s; no kernel log"
        );
    }

    #[test]
    fn summarize_caps_length() {
        let assessment = Assessment::inconclusive("x".repeat(2000));
        let summary = summarize(&assessment);
        assert_eq!(summary.summary.chars().count(), MAX_SUMMARY + 3);
    }
}
