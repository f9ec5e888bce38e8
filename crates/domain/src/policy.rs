//! The recovery policy: retry budget, deadlines, safety limits and what to do
//! with nodes that a reboot cannot fix.
//!
//! The policy is read once, from environment variables in the Lambda
//! functions and from a scenario's `[policy]` table in the simulator, through
//! [`Policy::from_lookup`]. Raw strings are parsed first, then the whole policy
//! is validated, and an error names the variable, the value and the expected
//! form.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Span;

pub const MAX_RETRIES: &str = "MAX_RETRIES";
pub const HEALTH_CHECK_EXIT_CODES: &str = "HEALTH_CHECK_EXIT_CODES";
pub const HEALTH_CHECK_TIMEOUT_SECONDS: &str = "HEALTH_CHECK_TIMEOUT_SECONDS";
pub const REBOOT_TIMEOUT_SECONDS: &str = "REBOOT_TIMEOUT_SECONDS";
pub const RESTART_TIMEOUT_SECONDS: &str = "RESTART_TIMEOUT_SECONDS";
pub const RUNNING_POLL_SECONDS: &str = "RUNNING_POLL_SECONDS";
pub const MAX_CONCURRENT_REBOOTS: &str = "MAX_CONCURRENT_REBOOTS";
pub const CIRCUIT_BREAKER_FAILURES: &str = "CIRCUIT_BREAKER_FAILURES";
pub const CIRCUIT_BREAKER_WINDOW_SECONDS: &str = "CIRCUIT_BREAKER_WINDOW_SECONDS";
pub const UNFIXABLE_NODE_ACTION: &str = "UNFIXABLE_NODE_ACTION";
pub const INCONCLUSIVE_NODE_ACTION: &str = "INCONCLUSIVE_NODE_ACTION";
pub const DRY_RUN: &str = "DRY_RUN";
pub const NODE_STATUS_ATTRIBUTE: &str = "NODE_STATUS_ATTRIBUTE";
pub const EFFECT_LEASE_SECONDS: &str = "EFFECT_LEASE_SECONDS";

/// Every policy variable, for help text and for rejecting unknown scenario keys.
pub const POLICY_KEYS: [&str; 14] = [
    MAX_RETRIES,
    HEALTH_CHECK_EXIT_CODES,
    HEALTH_CHECK_TIMEOUT_SECONDS,
    REBOOT_TIMEOUT_SECONDS,
    RESTART_TIMEOUT_SECONDS,
    RUNNING_POLL_SECONDS,
    MAX_CONCURRENT_REBOOTS,
    CIRCUIT_BREAKER_FAILURES,
    CIRCUIT_BREAKER_WINDOW_SECONDS,
    UNFIXABLE_NODE_ACTION,
    INCONCLUSIVE_NODE_ACTION,
    DRY_RUN,
    NODE_STATUS_ATTRIBUTE,
    EFFECT_LEASE_SECONDS,
];

/// What to do with a node whose fault a reboot cannot clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnfixableAction {
    /// Mark it FAILED and drain it, so ECS places nothing on it.
    Quarantine,
    /// Mark it FAILED only, leaving the container instance ACTIVE.
    MarkFailed,
}

/// What to do with a node whose health check was inconclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InconclusiveAction {
    /// Reboot it once; a second inconclusive check treats it as unfixable.
    RebootOnce,
    /// Treat it as unfixable at once.
    Quarantine,
}

/// The validated recovery policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub max_retries: u32,
    /// Training exit codes that may mean a GPU fault and open an episode.
    pub health_check_exit_codes: BTreeSet<i32>,
    pub health_check_timeout: Span,
    pub reboot_timeout: Span,
    pub restart_timeout: Span,
    /// How often the watchdog polls ECS for the tasks of a running job, in
    /// case a stop event was lost.
    pub running_poll_interval: Span,
    pub max_concurrent_reboots: u32,
    /// Failed health checks within the window that open the circuit breaker.
    pub breaker_failures: u32,
    pub breaker_window: Span,
    pub unfixable_action: UnfixableAction,
    pub inconclusive_action: InconclusiveAction,
    pub dry_run: bool,
    /// Container instance attribute that mirrors the node status.
    pub node_status_attribute: String,
    /// How long a claimed side effect stays claimed before another
    /// invocation may retry it; longer than one function invocation.
    pub effect_lease: Span,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            max_retries: 1,
            health_check_exit_codes: BTreeSet::from([1]),
            health_check_timeout: Span::minutes(30),
            reboot_timeout: Span::minutes(20),
            restart_timeout: Span::minutes(10),
            running_poll_interval: Span::minutes(30),
            max_concurrent_reboots: 4,
            breaker_failures: 5,
            breaker_window: Span::minutes(60),
            unfixable_action: UnfixableAction::Quarantine,
            inconclusive_action: InconclusiveAction::RebootOnce,
            dry_run: false,
            node_status_attribute: "status".to_owned(),
            effect_lease: Span::seconds(120),
        }
    }
}

/// An invalid policy value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key}={value:?}: expected {expected}")]
pub struct PolicyError {
    pub key: String,
    pub value: String,
    pub expected: String,
}

impl PolicyError {
    fn new(key: &str, value: &str, expected: &str) -> PolicyError {
        PolicyError {
            key: key.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        }
    }
}

impl Policy {
    /// Reads the policy from a key lookup, such as the process environment.
    /// Missing keys take their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        let get = |key: &str| lookup(key).map(|value| value.trim().to_owned());

        if let Some(value) = get(MAX_RETRIES) {
            policy.max_retries = parse_count(MAX_RETRIES, &value, "a whole number from 0 to 100")?;
        }
        if let Some(value) = get(HEALTH_CHECK_EXIT_CODES) {
            policy.health_check_exit_codes = parse_exit_codes(&value)?;
        }
        for (key, field) in [
            (
                HEALTH_CHECK_TIMEOUT_SECONDS,
                &mut policy.health_check_timeout,
            ),
            (REBOOT_TIMEOUT_SECONDS, &mut policy.reboot_timeout),
            (RESTART_TIMEOUT_SECONDS, &mut policy.restart_timeout),
            (RUNNING_POLL_SECONDS, &mut policy.running_poll_interval),
            (CIRCUIT_BREAKER_WINDOW_SECONDS, &mut policy.breaker_window),
            (EFFECT_LEASE_SECONDS, &mut policy.effect_lease),
        ] {
            if let Some(value) = get(key) {
                *field = parse_seconds(key, &value)?;
            }
        }
        if let Some(value) = get(MAX_CONCURRENT_REBOOTS) {
            policy.max_concurrent_reboots = parse_count(
                MAX_CONCURRENT_REBOOTS,
                &value,
                "a whole number of at least 1",
            )?;
        }
        if let Some(value) = get(CIRCUIT_BREAKER_FAILURES) {
            policy.breaker_failures = parse_count(
                CIRCUIT_BREAKER_FAILURES,
                &value,
                "a whole number of at least 1",
            )?;
        }
        if let Some(value) = get(UNFIXABLE_NODE_ACTION) {
            policy.unfixable_action = match value.as_str() {
                "quarantine" => UnfixableAction::Quarantine,
                "mark_failed" => UnfixableAction::MarkFailed,
                _ => {
                    return Err(PolicyError::new(
                        UNFIXABLE_NODE_ACTION,
                        &value,
                        "quarantine or mark_failed",
                    ));
                }
            };
        }
        if let Some(value) = get(INCONCLUSIVE_NODE_ACTION) {
            policy.inconclusive_action = match value.as_str() {
                "reboot_once" => InconclusiveAction::RebootOnce,
                "quarantine" => InconclusiveAction::Quarantine,
                _ => {
                    return Err(PolicyError::new(
                        INCONCLUSIVE_NODE_ACTION,
                        &value,
                        "reboot_once or quarantine",
                    ));
                }
            };
        }
        if let Some(value) = get(DRY_RUN) {
            policy.dry_run = match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" | "" => false,
                _ => return Err(PolicyError::new(DRY_RUN, &value, "true or false")),
            };
        }
        if let Some(value) = get(NODE_STATUS_ATTRIBUTE) {
            policy.node_status_attribute = value;
        }
        policy.validate()?;
        Ok(policy)
    }

    /// Checks the limits that hold between fields and on each value.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_retries > 100 {
            return Err(PolicyError::new(
                MAX_RETRIES,
                &self.max_retries.to_string(),
                "a whole number from 0 to 100",
            ));
        }
        if self.health_check_exit_codes.contains(&0) {
            return Err(PolicyError::new(
                HEALTH_CHECK_EXIT_CODES,
                &join_codes(&self.health_check_exit_codes),
                "non-zero exit codes, because exit 0 is a task that finished",
            ));
        }
        for (key, span) in [
            (HEALTH_CHECK_TIMEOUT_SECONDS, self.health_check_timeout),
            (REBOOT_TIMEOUT_SECONDS, self.reboot_timeout),
            (RESTART_TIMEOUT_SECONDS, self.restart_timeout),
            (RUNNING_POLL_SECONDS, self.running_poll_interval),
            (CIRCUIT_BREAKER_WINDOW_SECONDS, self.breaker_window),
            (EFFECT_LEASE_SECONDS, self.effect_lease),
        ] {
            if span.0 <= 0 {
                return Err(PolicyError::new(
                    key,
                    &span.as_seconds().to_string(),
                    "a number of seconds above 0",
                ));
            }
        }
        if self.max_concurrent_reboots == 0 {
            return Err(PolicyError::new(
                MAX_CONCURRENT_REBOOTS,
                "0",
                "a whole number of at least 1",
            ));
        }
        if self.breaker_failures == 0 {
            return Err(PolicyError::new(
                CIRCUIT_BREAKER_FAILURES,
                "0",
                "a whole number of at least 1",
            ));
        }
        let attribute = &self.node_status_attribute;
        let valid_attribute = !attribute.is_empty()
            && attribute.len() <= 128
            && attribute
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./@".contains(c));
        if !valid_attribute {
            return Err(PolicyError::new(
                NODE_STATUS_ATTRIBUTE,
                attribute,
                "1 to 128 letters, digits, hyphens, underscores, periods, at signs or slashes",
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max_retries={} exit_codes={} health_check_timeout={} reboot_timeout={} \
             restart_timeout={} max_concurrent_reboots={} breaker={} in {} dry_run={}",
            self.max_retries,
            join_codes(&self.health_check_exit_codes),
            self.health_check_timeout,
            self.reboot_timeout,
            self.restart_timeout,
            self.max_concurrent_reboots,
            self.breaker_failures,
            self.breaker_window,
            self.dry_run
        )
    }
}

fn join_codes(codes: &BTreeSet<i32>) -> String {
    codes
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_count(key: &str, value: &str, expected: &str) -> Result<u32, PolicyError> {
    value
        .parse()
        .map_err(|_| PolicyError::new(key, value, expected))
}

fn parse_seconds(key: &str, value: &str) -> Result<Span, PolicyError> {
    match value.parse::<i64>() {
        Ok(seconds) if seconds > 0 && seconds <= 7 * 24 * 3600 => Ok(Span::seconds(seconds)),
        _ => Err(PolicyError::new(
            key,
            value,
            "a whole number of seconds from 1 to 604800",
        )),
    }
}

fn parse_exit_codes(value: &str) -> Result<BTreeSet<i32>, PolicyError> {
    let expected = "comma-separated exit codes from 1 to 255, such as 1 or 1,134";
    let mut codes = BTreeSet::new();
    for part in value.split(',') {
        let code: i32 = part
            .trim()
            .parse()
            .map_err(|_| PolicyError::new(HEALTH_CHECK_EXIT_CODES, value, expected))?;
        if !(0..=255).contains(&code) {
            return Err(PolicyError::new(HEALTH_CHECK_EXIT_CODES, value, expected));
        }
        codes.insert(code);
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn policy_from(pairs: &[(&str, &str)]) -> Result<Policy, PolicyError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Policy::from_lookup(|key| map.get(key).cloned())
    }

    #[test]
    fn defaults_match_documented_values() {
        let policy = policy_from(&[]).unwrap();
        assert_eq!(policy.max_retries, 1);
        assert_eq!(policy.health_check_exit_codes, BTreeSet::from([1]));
        assert_eq!(policy.health_check_timeout, Span::minutes(30));
        assert_eq!(policy.reboot_timeout, Span::minutes(20));
        assert_eq!(policy.restart_timeout, Span::minutes(10));
        assert_eq!(policy.unfixable_action, UnfixableAction::Quarantine);
        assert_eq!(policy.inconclusive_action, InconclusiveAction::RebootOnce);
        assert!(!policy.dry_run);
    }

    #[test]
    fn exit_codes_parse_list() {
        let policy = policy_from(&[(HEALTH_CHECK_EXIT_CODES, "1, 134")]).unwrap();
        assert_eq!(policy.health_check_exit_codes, BTreeSet::from([1, 134]));
    }

    #[test]
    fn exit_code_zero_rejected() {
        let error = policy_from(&[(HEALTH_CHECK_EXIT_CODES, "0,1")]).unwrap_err();
        assert_eq!(error.key, HEALTH_CHECK_EXIT_CODES);
        assert!(error.to_string().contains("exit 0"), "{error}");
    }

    #[test]
    fn invalid_values_name_variable() {
        for (key, value) in [
            (MAX_RETRIES, "-1"),
            (MAX_RETRIES, "many"),
            (HEALTH_CHECK_EXIT_CODES, "one"),
            (REBOOT_TIMEOUT_SECONDS, "0"),
            (MAX_CONCURRENT_REBOOTS, "0"),
            (CIRCUIT_BREAKER_FAILURES, "0"),
            (UNFIXABLE_NODE_ACTION, "terminate"),
            (INCONCLUSIVE_NODE_ACTION, "ignore"),
            (DRY_RUN, "maybe"),
            (NODE_STATUS_ATTRIBUTE, "has space"),
        ] {
            let error = policy_from(&[(key, value)]).unwrap_err();
            assert_eq!(error.key, key, "{error}");
            assert_eq!(error.value, value, "{error}");
            assert!(
                error.to_string().starts_with(&format!("invalid {key}=")),
                "{error}"
            );
        }
    }

    #[test]
    fn dry_run_reads_true() {
        assert!(policy_from(&[(DRY_RUN, "true")]).unwrap().dry_run);
        assert!(!policy_from(&[(DRY_RUN, "false")]).unwrap().dry_run);
    }
}
