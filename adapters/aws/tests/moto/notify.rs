//! The SNS adapter against moto, read back through moto's data.json.

use gpu_recovery_aws::SnsNotifier;
use gpu_recovery_domain::{Notification, NotificationKind};
use gpu_recovery_ports::{CallError, Notifier};

use crate::support::{clients, published, unique};

async fn topic(clients: &gpu_recovery_aws::Clients) -> String {
    clients
        .sns
        .create_topic()
        .name(unique("gpu-recovery"))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .expect("topic ARN")
        .to_owned()
}

#[tokio::test]
async fn sns_publish_sets_attributes() {
    let clients = clients().await;
    let topic_arn = topic(&clients).await;
    let notifier = SnsNotifier::new(clients.sns.clone(), &topic_arn);
    let subject = format!(
        "Job llm-1 failed:\n{}",
        "the retry budget is spent ".repeat(8)
    );
    notifier
        .publish(&Notification {
            kind: NotificationKind::GaveUp,
            job_id: "llm-1".to_owned(),
            episode_id: Some("llm-1-e2".to_owned()),
            subject,
            message: "Job llm-1 failed: the retry budget is spent (retry 1 of 1).".to_owned(),
        })
        .await
        .unwrap();
    notifier
        .publish(&Notification {
            kind: NotificationKind::SafetyStop,
            job_id: "llm-2".to_owned(),
            episode_id: None,
            subject: "Circuit breaker open".to_owned(),
            message: "Automatic reboots are paused.".to_owned(),
        })
        .await
        .unwrap();

    let sent = published(&topic_arn);
    assert_eq!(sent.len(), 2);
    let (subject, message, attributes) = &sent[0];
    assert!(subject.len() <= 100, "{subject}");
    assert!(
        subject.starts_with("Job llm-1 failed: the retry budget"),
        "{subject}"
    );
    assert!(!subject.contains('\n'));
    assert!(message.contains("retry 1 of 1"), "{message}");
    assert_eq!(attributes["kind"]["Value"], "gave_up");
    assert_eq!(attributes["job_id"]["Value"], "llm-1");
    assert_eq!(attributes["episode_id"]["Value"], "llm-1-e2");
    assert_eq!(attributes["kind"]["Type"], "String");

    let (_, _, attributes) = &sent[1];
    assert_eq!(attributes["kind"]["Value"], "safety_stop");
    assert!(attributes.get("episode_id").is_none(), "{attributes}");
}

#[tokio::test]
async fn sns_missing_topic_fails() {
    let clients = clients().await;
    let notifier = SnsNotifier::new(
        clients.sns.clone(),
        "arn:aws:sns:us-east-1:123456789012:no-such-topic",
    );
    let error = notifier
        .publish(&Notification {
            kind: NotificationKind::Quarantine,
            job_id: "llm-1".to_owned(),
            episode_id: None,
            subject: "Node quarantined".to_owned(),
            message: "Node gpu-node-a quarantined.".to_owned(),
        })
        .await
        .unwrap_err();
    let CallError::Rejected { operation, message } = error else {
        panic!("expected Rejected, got {error:?}");
    };
    assert!(operation.contains("no-such-topic"), "{operation}");
    assert!(message.contains("NotFound"), "{message}");
}
