//! Notifications to operators: one per decision that gives up, quarantines
//! or hits a safety limit, and what its message contains.

use crate::effect::{Notification, NotificationKind};

use super::*;

fn notifications(world: &World) -> Vec<Notification> {
    world
        .claim_log
        .iter()
        .filter_map(|c| match &c.effect {
            Effect::Notify(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn give_up_names_job_nodes_verdicts() {
    let mut world = World::new(3);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 2), ("node-b", 0), ("node-c", 3)]);
    let sent = notifications(&world);
    assert_eq!(sent.len(), 1, "notifications {sent:#?}");
    let notice = &sent[0];
    let episode = world.episode().id.clone();
    assert_eq!(notice.job_id, JOB_ID, "job id");
    assert_eq!(
        notice.episode_id.as_deref(),
        Some(episode.as_str()),
        "episode id"
    );
    assert_eq!(notice.kind, NotificationKind::Quarantine, "kind");
    assert!(
        notice.subject.chars().count() <= 100,
        "subject of {} characters: {:?}",
        notice.subject.chars().count(),
        notice.subject
    );
    assert!(
        notice.subject.contains(JOB_ID),
        "subject {:?}",
        notice.subject
    );

    let text = &notice.message;
    for expected in [
        JOB_ID,
        episode.as_str(),
        "node-a",
        "node-b",
        "node-c",
        "replace",
        "healthy",
        "inconclusive",
        FIRST_TASKS[0],
        "What to do",
    ] {
        assert!(
            text.contains(expected),
            "message lacks {expected:?}:\n{text}"
        );
    }
}

#[test]
fn long_job_id_subject_fits() {
    let long_id = format!("llm-pretrain-{}", "x".repeat(150));
    let mut world = World::new(2);
    let job = world.context.job.as_mut().expect("job");
    job.job_id.clone_from(&long_id);
    for task in &mut world.context.tasks {
        task.job_id.clone_from(&long_id);
    }
    for node in &mut world.context.nodes {
        node.job_id = Some(long_id.clone());
    }
    world.exit_rank(0, 2);
    let sent = notifications(&world);
    assert_eq!(sent.len(), 1, "notifications {sent:#?}");
    let count = sent[0].subject.chars().count();
    assert!(
        count <= 100,
        "subject of {count} characters: {:?}",
        sent[0].subject
    );
    assert!(
        sent[0].message.contains(&long_id),
        "message names the whole job id"
    );
}

#[test]
fn quarantines_in_one_decision_notify_once() {
    let mut world = World::new(3);
    world.open_episode();
    world.advance(Span::minutes(2));
    world.finish_check("node-a", 2);
    world.finish_check("node-b", 0);
    let before = notifications(&world).len();
    world.finish_check("node-c", 2);
    world.run_effects();
    let sent = notifications(&world);
    assert_eq!(sent.len() - before, 1, "notifications {sent:#?}");
    let text = &sent[before].message;
    for node in ["node-a", "node-c"] {
        assert!(text.contains(node), "message lacks {node}:\n{text}");
    }
    assert_eq!(world.node_status("node-a"), NodeStatus::Failed, "node-a");
    assert_eq!(world.node_status("node-c"), NodeStatus::Failed, "node-c");
}

#[test]
fn timeout_notification_says_what_to_do() {
    let mut world = World::new(2);
    world.open_episode();
    world.deliver_verdicts(&[("node-a", 1), ("node-b", 0)]);
    world.advance(world.policy.reboot_timeout);
    world.tick();
    world.run_effects();
    let sent = notifications(&world);
    assert_eq!(sent.len(), 1, "notifications {sent:#?}");
    let text = &sent[0].message;
    assert!(text.contains("What to do"), "message:\n{text}");
    assert!(text.contains("node-a"), "message lacks node-a:\n{text}");
    assert!(
        text.contains("reboot"),
        "message lacks the verdict:\n{text}"
    );
}

#[test]
fn recovery_without_give_up_is_silent() {
    let mut world = World::new(2);
    world.recover_to_restart();
    world.run_effects();
    world.run_ranks();
    assert_eq!(world.job().job_status, JobStatus::InProgress, "job");
    let sent = notifications(&world);
    assert!(sent.is_empty(), "notifications of a recovery {sent:#?}");
}
