//! The metrics port as CloudWatch embedded metric format (EMF) lines.
//!
//! Each metric event becomes one JSON line on standard output. Lambda sends
//! the line to CloudWatch Logs, and CloudWatch extracts the metric from it,
//! so recording a metric needs no API call and no IAM permission. Metrics go
//! to the namespace [`NAMESPACE`] with the dimension `Function`; health
//! checks add the dimension `Verdict`.

use std::io::Write;
use std::sync::Mutex;

use gpu_recovery_domain::{MetricEvent, Timestamp};
use gpu_recovery_ports::Metrics;
use serde_json::{Value, json};

pub const NAMESPACE: &str = "EcsGpuRecovery";

/// Writes EMF lines to standard output or to a given writer.
pub struct EmfMetrics {
    writer: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for EmfMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmfMetrics").finish_non_exhaustive()
    }
}

impl Default for EmfMetrics {
    fn default() -> EmfMetrics {
        EmfMetrics::stdout()
    }
}

impl EmfMetrics {
    /// Writes to standard output, which Lambda forwards to CloudWatch Logs.
    #[must_use]
    pub fn stdout() -> EmfMetrics {
        EmfMetrics::with_writer(Box::new(std::io::stdout()))
    }

    #[must_use]
    pub fn with_writer(writer: Box<dyn Write + Send>) -> EmfMetrics {
        EmfMetrics {
            writer: Mutex::new(writer),
        }
    }
}

/// Builds the EMF document of one event at `at`.
#[must_use]
pub fn emf_line(function: &str, event: &MetricEvent, at: Timestamp) -> Value {
    let (values, verdict): (Vec<(&str, &str, Value)>, Option<String>) = match event {
        MetricEvent::EpisodeOpened => (vec![("EpisodesOpened", "Count", json!(1))], None),
        MetricEvent::HealthCheck { verdict } => (
            vec![("HealthChecks", "Count", json!(1))],
            Some(verdict.as_str().to_owned()),
        ),
        MetricEvent::Reboot => (vec![("Reboots", "Count", json!(1))], None),
        MetricEvent::Restart {
            seconds_since_failure,
        } => (
            vec![
                ("Restarts", "Count", json!(1)),
                (
                    "TimeToRestartSeconds",
                    "Seconds",
                    json!(seconds_since_failure),
                ),
            ],
            None,
        ),
        MetricEvent::JobFailed => (vec![("JobsFailed", "Count", json!(1))], None),
        MetricEvent::Quarantine => (vec![("Quarantines", "Count", json!(1))], None),
    };
    let dimensions = if verdict.is_some() {
        json!([["Function", "Verdict"]])
    } else {
        json!([["Function"]])
    };
    let definitions: Vec<Value> = values
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut document = json!({
        "_aws": {
            "Timestamp": at.0,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": definitions,
            }]
        },
        "Function": function,
    });
    if let Some(map) = document.as_object_mut() {
        if let Some(verdict) = verdict {
            map.insert("Verdict".to_owned(), Value::String(verdict));
        }
        for (name, _, value) in values {
            map.insert(name.to_owned(), value);
        }
    }
    document
}

impl Metrics for EmfMetrics {
    fn record(&self, function: &str, events: &[MetricEvent]) {
        if events.is_empty() {
            return;
        }
        let now = Timestamp::now();
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for event in events {
            // One write per line, so the line never interleaves with log
            // lines written from elsewhere in the process.
            let line = format!("{}\n", emf_line(function, event, now));
            if let Err(error) = writer
                .write_all(line.as_bytes())
                .and_then(|()| writer.flush())
            {
                tracing::warn!(error = %error, "could not write a metric line");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gpu_recovery_domain::Verdict;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn emf_health_check_has_verdict() {
        let line = emf_line(
            "dcgm-task-monitor",
            &MetricEvent::HealthCheck {
                verdict: Verdict::Reboot,
            },
            Timestamp(1_000),
        );
        assert_eq!(line["Function"], "dcgm-task-monitor");
        assert_eq!(line["Verdict"], "reboot");
        assert_eq!(line["HealthChecks"], 1);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Function", "Verdict"]]));
        assert_eq!(directive["Metrics"][0]["Name"], "HealthChecks");
        assert_eq!(line["_aws"]["Timestamp"], 1_000);
    }

    #[test]
    fn emf_restart_records_seconds() {
        let line = emf_line(
            "ecs-instance-monitor",
            &MetricEvent::Restart {
                seconds_since_failure: 420,
            },
            Timestamp(0),
        );
        assert_eq!(line["Restarts"], 1);
        assert_eq!(line["TimeToRestartSeconds"], 420);
        let metrics = &line["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(metrics[1]["Unit"], "Seconds");
    }

    #[test]
    fn record_writes_one_line_each() {
        let buffer = Buffer::default();
        let metrics = EmfMetrics::with_writer(Box::new(buffer.clone()));
        metrics.record(
            "recovery-watchdog",
            &[MetricEvent::Reboot, MetricEvent::JobFailed],
        );
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["Reboots"], 1);
        assert_eq!(lines[1]["JobsFailed"], 1);
        assert_eq!(lines[1]["Function"], "recovery-watchdog");
    }
}
