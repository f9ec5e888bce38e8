//! The notifier port on Amazon SNS.
//!
//! Each notification is one Publish with message attributes `kind`
//! (`gave_up`, `quarantine` or `safety_stop`), `job_id` and, when there is
//! one, `episode_id`, so that subscriptions can filter on them.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use gpu_recovery_domain::Notification;
use gpu_recovery_ports::{CallError, Notifier};

use crate::errors::call_error;

/// SNS limits a subject to 100 characters.
pub const MAX_SUBJECT: usize = 100;
const FALLBACK_SUBJECT: &str = "gpu-recovery notification";

/// Publishes notifications to one topic.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    #[must_use]
    pub fn new(client: Client, topic_arn: &str) -> SnsNotifier {
        SnsNotifier {
            client,
            topic_arn: topic_arn.to_owned(),
        }
    }
}

/// Rewrites a subject into the form SNS accepts: printable ASCII on one
/// line, at most 100 characters, starting with a letter, digit or
/// punctuation mark.
#[must_use]
pub fn subject_line(subject: &str) -> String {
    let cleaned: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let cleaned: String = cleaned.trim().chars().take(MAX_SUBJECT).collect();
    let cleaned = cleaned.trim_end().to_owned();
    if cleaned.is_empty() {
        FALLBACK_SUBJECT.to_owned()
    } else {
        cleaned
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, CallError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| CallError::rejected("Publish", e.to_string()))
}

impl Notifier for SnsNotifier {
    async fn publish(&self, notification: &Notification) -> Result<(), CallError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject_line(&notification.subject))
            .message(&notification.message)
            .message_attributes("kind", string_attribute(notification.kind.as_str())?)
            .message_attributes("job_id", string_attribute(&notification.job_id)?);
        // SNS rejects an attribute with an empty value, so a notification
        // without an episode carries no `episode_id`.
        if let Some(episode) = notification.episode_id.as_deref().filter(|e| !e.is_empty()) {
            request = request.message_attributes("episode_id", string_attribute(episode)?);
        }
        request.send().await.map_err(|e| {
            call_error(
                &format!(
                    "Publish to {} for job {}",
                    self.topic_arn, notification.job_id
                ),
                &e,
            )
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_line_truncates_to_limit() {
        let long = "x".repeat(150);
        assert_eq!(subject_line(&long).len(), MAX_SUBJECT);
    }

    #[test]
    fn subject_line_drops_line_breaks() {
        assert_eq!(subject_line("Job a\nfailed"), "Job a failed");
        assert_eq!(subject_line("Knoten ü"), "Knoten");
        assert_eq!(subject_line("\n"), FALLBACK_SUBJECT);
    }
}
