//! The JSON an invocation returns: what it skipped, decided and did.
//!
//! Lambda discards the result of an asynchronous invocation, so this is for
//! people and tests that invoke a function directly (`cargo lambda invoke`,
//! `aws lambda invoke`).

use gpu_recovery_service::Step;
use gpu_recovery_service::functions::EntryPoint;
use serde_json::{Value, json};

pub(crate) fn skipped(entry: EntryPoint, reason: &str) -> Value {
    json!({
        "function": entry.name(),
        "outcome": "skipped",
        "reason": reason,
    })
}

pub(crate) fn handled(entry: EntryPoint, steps: &[Step]) -> Value {
    let steps: Vec<Value> = steps.iter().map(step).collect();
    json!({
        "function": entry.name(),
        "outcome": "handled",
        "steps": steps,
    })
}

/// Lists the jobs the steps concern, in order of first appearance.
pub(crate) fn job_ids(steps: &[Step]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for step in steps {
        let id = match step {
            Step::Decided { job_id, .. } | Step::Effect { job_id, .. } => job_id,
            Step::Skipped { .. } => continue,
        };
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids
}

fn step(step: &Step) -> Value {
    match step {
        Step::Skipped { reason } => json!({"skipped": reason}),
        Step::Decided {
            job_id,
            history,
            notes,
            dry_run,
            writes,
            effects,
        } => json!({
            "job_id": job_id,
            "transitions": history,
            "notes": notes,
            "dry_run": dry_run,
            "writes": writes,
            "effects": effects,
        }),
        Step::Effect {
            job_id,
            key,
            description,
            result,
        } => json!({
            "job_id": job_id,
            "effect": description,
            "key": key,
            "result": result,
        }),
    }
}
