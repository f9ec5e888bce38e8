//! Scenario files: what the simulated cluster holds, what goes wrong when,
//! and what the run must end with.
//!
//! A file is parsed into raw TOML structs first (unknown keys rejected),
//! then validated into [`Scenario`]; every error names the file, the field
//! and the expected form.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gpu_recovery_domain::{JobStatus, NodeStatus, Policy, Span, Verdict};
use serde::Deserialize;

/// An invalid scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: cannot read the scenario: {message}")]
    Read { file: String, message: String },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: field {field}: expected {expected}, found {found}")]
    Field {
        file: String,
        field: String,
        expected: String,
        found: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    description: Option<String>,
    policy: Option<toml::Table>,
    #[serde(default)]
    node: Vec<RawNode>,
    job: Option<RawJob>,
    #[serde(default)]
    event: Vec<RawEvent>,
    delivery: Option<RawDelivery>,
    expect: Option<RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    health: Option<String>,
    after_reboot: Option<String>,
    reboot_seconds: Option<toml::Value>,
    health_check_seconds: Option<i64>,
    lose_disconnect_event: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    id: String,
    nodes: Vec<String>,
    runs_for: String,
    task_definition: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at: String,
    node: String,
    task_exit: Option<i32>,
    stop_code: Option<String>,
    stopped_reason: Option<String>,
    user_stop: Option<bool>,
    agent_reconnect: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    duplicate_every: Option<u32>,
    reorder_within: Option<String>,
    seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    job_status: Option<String>,
    retry: Option<u32>,
    #[serde(default)]
    reboots: BTreeMap<String, u32>,
    #[serde(default)]
    node_status: BTreeMap<String, String>,
    notifications: Option<u32>,
    episodes: Option<u32>,
}

/// The results that a node's health checks report.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSpec {
    pub verdict: Verdict,
    /// The runner's JSON line for a DCGM report, or a sentence for a plain verdict.
    pub summary: String,
    /// The scenario's own words: a verdict name or the report path.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub health: HealthSpec,
    pub after_reboot: HealthSpec,
    /// `None`: the node never comes back from a reboot.
    pub reboot: Option<Span>,
    pub health_check: Span,
    /// The agent's disconnect during a reboot is never delivered, so only the
    /// watchdog can see the node come back.
    pub lose_disconnect_event: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub id: String,
    pub nodes: Vec<String>,
    pub runs_for: Span,
    pub task_definition: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// The task on the node exits with this code, optionally with a stop code
    /// other than EssentialContainerExited.
    TaskExit {
        code: Option<i32>,
        stop_code: Option<String>,
        stopped_reason: Option<String>,
    },
    UserStop,
    /// A routine agent disconnect and reconnect, which must change nothing.
    AgentReconnect,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// Offset from the job's first start.
    pub at: Span,
    pub node: String,
    pub kind: FaultKind,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeliverySpec {
    /// Every n-th event is delivered twice; 0 means never.
    pub duplicate_every: u32,
    /// Each delivery is late by up to this much, which reorders close events.
    pub reorder_within: Span,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expectations {
    pub job_status: Option<JobStatus>,
    pub retry: Option<u32>,
    pub reboots: BTreeMap<String, u32>,
    pub node_status: BTreeMap<String, NodeStatus>,
    pub notifications: Option<u32>,
    pub episodes: Option<u32>,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub file: String,
    pub description: String,
    pub policy: Policy,
    pub nodes: Vec<NodeSpec>,
    pub job: JobSpec,
    pub faults: Vec<FaultSpec>,
    pub delivery: DeliverySpec,
    pub expect: Option<Expectations>,
}

impl Scenario {
    /// Reads and validates a scenario file; report paths are relative to it.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Scenario::from_text(&text, &file, &base)
    }

    /// Validates scenario text; `base` is the folder report paths are relative to.
    pub fn from_text(text: &str, file: &str, base: &Path) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Syntax {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Validator {
            file,
            base: base.to_path_buf(),
        }
        .scenario(raw)
    }
}

struct Validator<'a> {
    file: &'a str,
    base: PathBuf,
}

impl Validator<'_> {
    fn error(&self, field: &str, expected: &str, found: impl std::fmt::Display) -> ScenarioError {
        ScenarioError::Field {
            file: self.file.to_owned(),
            field: field.to_owned(),
            expected: expected.to_owned(),
            found: found.to_string(),
        }
    }

    fn scenario(&self, raw: RawScenario) -> Result<Scenario, ScenarioError> {
        let policy = self.policy(raw.policy.unwrap_or_default())?;
        if raw.node.is_empty() {
            return Err(self.error("node", "at least one [[node]] table", "none"));
        }
        let mut nodes: Vec<NodeSpec> = Vec::new();
        for (index, node) in raw.node.into_iter().enumerate() {
            let spec = self.node(index, node)?;
            if nodes.iter().any(|n| n.name == spec.name) {
                return Err(self.error(
                    &format!("node[{index}].name"),
                    "a name no other node has",
                    format!("{:?}", spec.name),
                ));
            }
            nodes.push(spec);
        }
        let Some(job) = raw.job else {
            return Err(self.error("job", "a [job] table with id, nodes and runs_for", "none"));
        };
        let job = self.job(job, &nodes)?;
        let mut faults = Vec::new();
        for (index, event) in raw.event.into_iter().enumerate() {
            faults.push(self.fault(index, event, &job)?);
        }
        let delivery = match raw.delivery {
            None => DeliverySpec::default(),
            Some(delivery) => DeliverySpec {
                duplicate_every: delivery.duplicate_every.unwrap_or(0),
                reorder_within: match delivery.reorder_within {
                    Some(text) => self.span("delivery.reorder_within", &text)?,
                    None => Span(0),
                },
                seed: delivery.seed.unwrap_or(1),
            },
        };
        let expect = raw.expect.map(|e| self.expect(e, &nodes)).transpose()?;
        Ok(Scenario {
            file: self.file.to_owned(),
            description: raw.description.unwrap_or_default(),
            policy,
            nodes,
            job,
            faults,
            delivery,
            expect,
        })
    }

    fn policy(&self, table: toml::Table) -> Result<Policy, ScenarioError> {
        let mut values = BTreeMap::new();
        for (key, value) in table {
            let upper = key.to_ascii_uppercase();
            if !gpu_recovery_domain::policy::POLICY_KEYS.contains(&upper.as_str()) {
                let known: Vec<String> = gpu_recovery_domain::policy::POLICY_KEYS
                    .iter()
                    .map(|k| k.to_ascii_lowercase())
                    .collect();
                return Err(self.error(
                    &format!("policy.{key}"),
                    &format!("one of {}", known.join(", ")),
                    "an unknown key",
                ));
            }
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| i.to_string().trim_matches('"').to_owned())
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(self.error(
                        &format!("policy.{key}"),
                        "a string, integer, boolean or list",
                        other.type_str(),
                    ));
                }
            };
            values.insert(upper, text);
        }
        Policy::from_lookup(|key| values.get(key).cloned()).map_err(|e| {
            self.error(
                &format!("policy.{}", e.key.to_ascii_lowercase()),
                &e.expected,
                format!("{:?}", e.value),
            )
        })
    }

    fn node(&self, index: usize, raw: RawNode) -> Result<NodeSpec, ScenarioError> {
        let field = |name: &str| format!("node[{index}].{name}");
        if raw.name.trim().is_empty() || raw.name.contains(char::is_whitespace) {
            return Err(self.error(
                &field("name"),
                "a node name without spaces",
                format!("{:?}", raw.name),
            ));
        }
        let health = self.health(&field("health"), raw.health.as_deref().unwrap_or("healthy"))?;
        let after_reboot = self.health(
            &field("after_reboot"),
            raw.after_reboot.as_deref().unwrap_or("healthy"),
        )?;
        let reboot = match raw.reboot_seconds {
            None => Some(Span::seconds(300)),
            Some(toml::Value::String(text)) if text == "never" => None,
            Some(toml::Value::Integer(seconds)) if seconds > 0 => Some(Span::seconds(seconds)),
            Some(other) => {
                return Err(self.error(
                    &field("reboot_seconds"),
                    "a whole number of seconds above 0, or \"never\"",
                    other,
                ));
            }
        };
        let health_check = match raw.health_check_seconds {
            None => Span::seconds(120),
            Some(seconds) if seconds > 0 => Span::seconds(seconds),
            Some(other) => {
                return Err(self.error(
                    &field("health_check_seconds"),
                    "a whole number of seconds above 0",
                    other,
                ));
            }
        };
        Ok(NodeSpec {
            name: raw.name,
            health,
            after_reboot,
            reboot,
            health_check,
            lose_disconnect_event: raw.lose_disconnect_event.unwrap_or(false),
        })
    }

    fn health(&self, field: &str, text: &str) -> Result<HealthSpec, ScenarioError> {
        if let Ok(verdict) = text.parse::<Verdict>() {
            return Ok(HealthSpec {
                verdict,
                summary: format!("the scenario sets the verdict {verdict}"),
                source: text.to_owned(),
            });
        }
        let expected = "healthy, reboot, replace, inconclusive, or a DCGM report path relative to the scenario file";
        let extension = Path::new(text)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if !(extension.eq_ignore_ascii_case("json") || extension.eq_ignore_ascii_case("txt")) {
            return Err(self.error(field, expected, format!("{text:?}")));
        }
        let path = self.base.join(text);
        let report = std::fs::read_to_string(&path).map_err(|e| {
            self.error(
                field,
                expected,
                format!("{text:?}, which cannot be read ({e})"),
            )
        })?;
        let assessment = gpu_recovery_dcgm::assess_report_text(&report);
        Ok(HealthSpec {
            verdict: assessment.verdict,
            summary: assessment.to_json_line(),
            source: text.to_owned(),
        })
    }

    fn span(&self, field: &str, text: &str) -> Result<Span, ScenarioError> {
        let duration = humantime::parse_duration(text).map_err(|_| {
            self.error(
                field,
                "a duration such as 30s, 20m, 2h or 1h30m",
                format!("{text:?}"),
            )
        })?;
        let millis = i64::try_from(duration.as_millis())
            .map_err(|_| self.error(field, "a duration under a year", format!("{text:?}")))?;
        Ok(Span(millis))
    }

    fn job(&self, raw: RawJob, nodes: &[NodeSpec]) -> Result<JobSpec, ScenarioError> {
        if raw.id.trim().is_empty()
            || raw.id.len() > 64
            || !raw
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(self.error(
                "job.id",
                "1 to 64 letters, digits, hyphens, underscores or periods",
                format!("{:?}", raw.id),
            ));
        }
        if raw.nodes.is_empty() {
            return Err(self.error(
                "job.nodes",
                "the job's node names in rank order",
                "an empty list",
            ));
        }
        for (rank, name) in raw.nodes.iter().enumerate() {
            if !nodes.iter().any(|n| &n.name == name) {
                return Err(self.error(
                    &format!("job.nodes[{rank}]"),
                    "the name of a [[node]]",
                    format!("{name:?}"),
                ));
            }
            if raw.nodes[..rank].contains(name) {
                return Err(self.error(
                    &format!("job.nodes[{rank}]"),
                    "each node once",
                    format!("{name:?} again"),
                ));
            }
        }
        let runs_for = self.span("job.runs_for", &raw.runs_for)?;
        Ok(JobSpec {
            id: raw.id,
            nodes: raw.nodes,
            runs_for,
            task_definition: raw
                .task_definition
                .unwrap_or_else(|| "llm-pretrain:7".to_owned()),
        })
    }

    fn fault(
        &self,
        index: usize,
        raw: RawEvent,
        job: &JobSpec,
    ) -> Result<FaultSpec, ScenarioError> {
        let field = |name: &str| format!("event[{index}].{name}");
        let at = self.span(&field("at"), &raw.at)?;
        if !job.nodes.contains(&raw.node) {
            return Err(self.error(
                &field("node"),
                "a node of the job",
                format!("{:?}", raw.node),
            ));
        }
        let chosen = [
            raw.task_exit.is_some() || raw.stop_code.is_some(),
            raw.user_stop == Some(true),
            raw.agent_reconnect == Some(true),
        ];
        if chosen.iter().filter(|c| **c).count() != 1 {
            return Err(self.error(&format!("event[{index}]"), "exactly one of task_exit (or stop_code), user_stop = true or agent_reconnect = true", "none or several"));
        }
        let kind = if chosen[0] {
            FaultKind::TaskExit {
                code: raw.task_exit,
                stop_code: raw.stop_code,
                stopped_reason: raw.stopped_reason,
            }
        } else if chosen[1] {
            FaultKind::UserStop
        } else {
            FaultKind::AgentReconnect
        };
        Ok(FaultSpec {
            at,
            node: raw.node,
            kind,
        })
    }

    fn expect(&self, raw: RawExpect, nodes: &[NodeSpec]) -> Result<Expectations, ScenarioError> {
        let job_status = raw
            .job_status
            .map(|text| {
                serde_json::from_value::<JobStatus>(serde_json::Value::String(text.clone()))
                    .map_err(|_| {
                        self.error(
                            "expect.job_status",
                            "a job status such as COMPLETE, FAILED or USER_STOPPED",
                            format!("{text:?}"),
                        )
                    })
            })
            .transpose()?;
        let mut node_status = BTreeMap::new();
        for (name, text) in raw.node_status {
            if !nodes.iter().any(|n| n.name == name) {
                return Err(self.error(
                    &format!("expect.node_status.{name}"),
                    "the name of a [[node]]",
                    format!("{name:?}"),
                ));
            }
            let status =
                serde_json::from_value::<NodeStatus>(serde_json::Value::String(text.clone()))
                    .map_err(|_| {
                        self.error(
                            &format!("expect.node_status.{name}"),
                            "a node status such as AVAILABLE or FAILED",
                            format!("{text:?}"),
                        )
                    })?;
            node_status.insert(name, status);
        }
        for name in raw.reboots.keys() {
            if !nodes.iter().any(|n| &n.name == name) {
                return Err(self.error(
                    &format!("expect.reboots.{name}"),
                    "the name of a [[node]]",
                    format!("{name:?}"),
                ));
            }
        }
        Ok(Expectations {
            job_status,
            retry: raw.retry,
            reboots: raw.reboots,
            node_status,
            notifications: raw.notifications,
            episodes: raw.episodes,
        })
    }
}
