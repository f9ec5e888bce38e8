//! Which events each function acts on.
//!
//! The EventBridge rules already send each function its own kind of event.
//! This check still keeps a function from acting on another's event, for
//! when a rule is changed by hand or an operator invokes it with the wrong
//! sample.

use gpu_recovery_domain::observation::Observation;
use gpu_recovery_eventbridge::{Parsed, RouteConfig};
use gpu_recovery_service::functions::EntryPoint;
use serde_json::Value;

use crate::HandlerError;

/// The action an invocation takes on its event.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Observe(Observation),
    /// The watchdog's schedule event.
    Tick,
    /// A valid event that is not this function's; the reason is logged.
    Skip(String),
}

/// Sources whose "Scheduled Event" starts the watchdog: EventBridge rules
/// and EventBridge Scheduler.
const SCHEDULE_SOURCES: [&str; 2] = ["aws.events", "aws.scheduler"];
const SCHEDULED_EVENT: &str = "Scheduled Event";

/// Routes one event for `entry`.
///
/// # Errors
/// [`HandlerError::Malformed`] when the event is not a JSON object, or is an
/// ECS event that lacks a field the engine needs.
pub fn route(
    entry: EntryPoint,
    payload: &Value,
    config: &RouteConfig,
) -> Result<Route, HandlerError> {
    if entry == EntryPoint::RecoveryWatchdog {
        return route_schedule(payload);
    }
    let parsed = gpu_recovery_eventbridge::parse_value(payload, config)
        .map_err(|error| HandlerError::Malformed(error.to_string()))?;
    let observation = match parsed {
        Parsed::Skipped(reason) => return Ok(Route::Skip(reason)),
        Parsed::Observation(observation) => observation,
    };
    let owner = match &observation {
        Observation::TaskStopped(_) | Observation::TaskRunning(_) => EntryPoint::EcsTaskHandler,
        Observation::HealthCheckFinished(_) => EntryPoint::DcgmTaskMonitor,
        Observation::InstanceChanged(_) => EntryPoint::EcsInstanceMonitor,
        Observation::Tick(_) | Observation::EffectApplied { .. } => EntryPoint::RecoveryWatchdog,
    };
    if owner == entry {
        Ok(Route::Observe(observation))
    } else {
        Ok(Route::Skip(format!(
            "{} is handled by {}, not {}",
            observation.summary(),
            owner.name(),
            entry.name()
        )))
    }
}

fn route_schedule(payload: &Value) -> Result<Route, HandlerError> {
    let Some(event) = payload.as_object() else {
        return Err(HandlerError::Malformed(format!(
            "the watchdog expects an EventBridge event object, found {}",
            kind_of(payload)
        )));
    };
    let text = |name: &str| -> Result<&str, HandlerError> {
        match event.get(name) {
            Some(Value::String(text)) => Ok(text),
            Some(other) => Err(HandlerError::Malformed(format!(
                "event field {name} is {}: expected a string",
                kind_of(other)
            ))),
            None => Err(HandlerError::Malformed(format!(
                "event field {name} is missing; an EventBridge event always has it"
            ))),
        }
    };
    let source = text("source")?;
    let detail_type = text("detail-type")?;
    if SCHEDULE_SOURCES.contains(&source) && detail_type == SCHEDULED_EVENT {
        Ok(Route::Tick)
    } else {
        Ok(Route::Skip(format!(
            "the watchdog acts on {SCHEDULED_EVENT} only, not {detail_type:?} from {source}"
        )))
    }
}

/// Returns the name of the health-check container in a task event: the
/// first container that reported an exit code, because the parser reads the
/// verdict from that one.
pub(crate) fn check_container_name(payload: &Value) -> Option<String> {
    let containers = payload.get("detail")?.get("containers")?.as_array()?;
    let with_exit = containers
        .iter()
        .find(|c| c.get("exitCode").is_some_and(|code| !code.is_null()));
    with_exit
        .or_else(|| containers.first())?
        .get("name")?
        .as_str()
        .map(str::to_owned)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../adapters/eventbridge/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn config() -> RouteConfig {
        RouteConfig::new("gpu-training", "gpu-dcgm-health-check")
    }

    #[test]
    fn route_sends_each_event_home() {
        let cases = [
            ("task-stopped-exit1-gpu.json", EntryPoint::EcsTaskHandler),
            (
                "healthcheck-stopped-exit1-node-a.json",
                EntryPoint::DcgmTaskMonitor,
            ),
            (
                "container-instance-agent-reconnected-node-a.json",
                EntryPoint::EcsInstanceMonitor,
            ),
        ];
        for (file, owner) in cases {
            let event = fixture(file);
            for entry in EntryPoint::ALL {
                let routed = route(entry, &event, &config()).unwrap();
                if entry == owner {
                    assert!(
                        matches!(routed, Route::Observe(_)),
                        "{file} for {}",
                        entry.name()
                    );
                } else {
                    assert!(
                        matches!(routed, Route::Skip(_)),
                        "{file} for {}",
                        entry.name()
                    );
                }
            }
        }
    }

    #[test]
    fn route_skip_names_owner() {
        let event = fixture("healthcheck-stopped-exit1-node-a.json");
        let Route::Skip(reason) = route(EntryPoint::EcsTaskHandler, &event, &config()).unwrap()
        else {
            panic!("expected a skip");
        };
        assert!(
            reason.contains("handled by dcgm-task-monitor, not ecs-task-handler"),
            "{reason}"
        );
    }

    #[test]
    fn route_skips_other_cluster() {
        let event = fixture("task-stopped-exit1-gpu.json");
        let other = RouteConfig::new("other-cluster", "gpu-dcgm-health-check");
        let routed = route(EntryPoint::EcsTaskHandler, &event, &other).unwrap();
        assert!(matches!(routed, Route::Skip(reason) if reason.contains("other-cluster")));
    }

    #[test]
    fn route_rejects_missing_field() {
        let mut event = fixture("task-stopped-exit1-gpu.json");
        event["detail"].as_object_mut().unwrap().remove("taskArn");
        let error = route(EntryPoint::EcsTaskHandler, &event, &config()).unwrap_err();
        assert!(
            error.to_string().contains("detail.taskArn is missing"),
            "{error}"
        );
    }

    #[test]
    fn watchdog_ticks_on_schedule() {
        let event = json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "time": "2026-11-20T09:20:00Z",
            "detail": {}
        });
        assert_eq!(
            route(EntryPoint::RecoveryWatchdog, &event, &config()).unwrap(),
            Route::Tick
        );
    }

    #[test]
    fn watchdog_skips_ecs_events() {
        let event = fixture("task-stopped-exit1-gpu.json");
        let routed = route(EntryPoint::RecoveryWatchdog, &event, &config()).unwrap();
        assert!(matches!(routed, Route::Skip(_)));
    }

    #[test]
    fn watchdog_rejects_malformed_event() {
        let error = route(EntryPoint::RecoveryWatchdog, &json!([1]), &config()).unwrap_err();
        assert!(error.to_string().contains("found a list"), "{error}");
        let error = route(
            EntryPoint::RecoveryWatchdog,
            &json!({"source": "aws.events"}),
            &config(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("detail-type is missing"),
            "{error}"
        );
    }

    #[test]
    fn container_name_read_from_event() {
        let event = fixture("healthcheck-stopped-exit1-node-a.json");
        assert_eq!(check_container_name(&event).as_deref(), Some("dcgm-diag"));
    }
}
