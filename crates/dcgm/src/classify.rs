//! The classification table for DCGM diagnostic errors: which severity and error id
//! give which health-check verdict.
//!
//! Sources, both NVIDIA's:
//! - DCGM documentation, "Diagnostic Errors"
//!   (<https://docs.nvidia.com/datacenter/dcgm/latest/reference/diagnostics/errors.html>),
//!   for the severity and category enums.
//! - DCGM's `dcgmlib/dcgm_errors.h` (DCGM 4.x), for the meaning of each severity
//!   ("ISOLATE: cannot perform workload, GPU should be isolated", "RESET: drain and reset
//!   GPU", "MONITOR: can perform workload, but needs to be monitored") and the
//!   suggested next step of each error id.
//!
//! The rules:
//! - NONE and MONITOR: DCGM rates the GPU able to run work, so healthy.
//! - CONFIG: the host set-up needs fixing, not the GPU, so inconclusive.
//! - UNKNOWN, or no severity at all: DCGM does not know, so inconclusive.
//! - RESET: DCGM's next step is to drain and reset the GPU, and a reboot resets it.
//! - ISOLATE: the GPU must leave service. It is replace for the error ids whose state
//!   survives a reset (retired-page limits, row-remapping failure: DCGM's next step for
//!   them is a field diagnostic, the RMA path) and reboot otherwise. For volatile
//!   double-bit ECC errors, uncontained errors and pending page retirements or row
//!   remaps, DCGM's next step is "drain the GPU and reset it or reboot the node".
//! - TRIAGE: replace for the same error ids, inconclusive when the category is a
//!   software or internal one (the diagnostic itself had trouble), reboot otherwise.

use std::fmt;

use gpu_recovery_domain::Verdict;
use serde::{Deserialize, Serialize};

use crate::report::DiagError;

/// `dcgmErrorSeverity_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// 0, `DCGM_ERROR_NONE`.
    None,
    /// 1, `DCGM_ERROR_MONITOR`: can run work, watch it.
    Monitor,
    /// 2, `DCGM_ERROR_ISOLATE`: cannot run work, take the GPU out of service.
    Isolate,
    /// 3, `DCGM_ERROR_UNKNOWN`: DCGM does not recognize the error.
    Unknown,
    /// 4, `DCGM_ERROR_TRIAGE`: the error should be triaged.
    Triage,
    /// 5, `DCGM_ERROR_CONFIG`: a configuration change can remove the error.
    Config,
    /// 6, `DCGM_ERROR_RESET`: drain and reset the GPU.
    Reset,
}

impl Severity {
    /// Maps an `error_severity` value; values above 6 are `None` (not a severity).
    #[must_use]
    pub fn from_code(code: u32) -> Option<Severity> {
        match code {
            0 => Some(Severity::None),
            1 => Some(Severity::Monitor),
            2 => Some(Severity::Isolate),
            3 => Some(Severity::Unknown),
            4 => Some(Severity::Triage),
            5 => Some(Severity::Config),
            6 => Some(Severity::Reset),
            _ => None,
        }
    }

    /// Lower-case name without the `DCGM_ERROR_` prefix.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Monitor => "monitor",
            Severity::Isolate => "isolate",
            Severity::Unknown => "unknown",
            Severity::Triage => "triage",
            Severity::Config => "config",
            Severity::Reset => "reset",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `DCGM_FR_RETIRED_PAGES_LIMIT`: too many retired pages.
pub const DCGM_FR_RETIRED_PAGES_LIMIT: u32 = 7;
/// `DCGM_FR_RETIRED_PAGES_DBE_LIMIT`: too many pages retired for double-bit errors.
pub const DCGM_FR_RETIRED_PAGES_DBE_LIMIT: u32 = 8;
/// `DCGM_FR_ROW_REMAP_FAILURE`: row remapping failed (Ampere and newer).
pub const DCGM_FR_ROW_REMAP_FAILURE: u32 = 80;

/// Error ids whose state a reset does not clear.
const REPLACE_ERROR_IDS: [u32; 3] = [
    DCGM_FR_RETIRED_PAGES_LIMIT,
    DCGM_FR_RETIRED_PAGES_DBE_LIMIT,
    DCGM_FR_ROW_REMAP_FAILURE,
];

/// `dcgmErrorCategory_t` values for software and internal trouble: software config (3),
/// library (4), XID (5), CUDA (6), EUD (7), other software (8) and internal (16).
const SOFTWARE_CATEGORIES: [u32; 7] = [3, 4, 5, 6, 7, 8, 16];

/// The verdict for one DCGM error and the rule that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorClass {
    /// Severity read from the error, if it had a known one.
    pub severity: Option<Severity>,
    /// Health-check verdict.
    pub verdict: Verdict,
    /// Why, in words.
    pub rule: &'static str,
}

/// Classifies one DCGM error entry by its severity, error id and category.
#[must_use]
pub fn classify_error(error: &DiagError) -> ErrorClass {
    let severity = error.severity.and_then(Severity::from_code);
    let replace_id = error
        .error_id
        .is_some_and(|id| REPLACE_ERROR_IDS.contains(&id));
    let software = error
        .category
        .is_some_and(|c| SOFTWARE_CATEGORIES.contains(&c));
    let (verdict, rule) = match severity {
        Some(Severity::None) => (Verdict::Healthy, "DCGM rates it no error"),
        Some(Severity::Monitor) => (
            Verdict::Healthy,
            "DCGM rates the GPU able to run work while it is monitored",
        ),
        Some(Severity::Config) => (
            Verdict::Inconclusive,
            "DCGM rates it a configuration error, so the host set-up needs fixing and the GPU is not at fault",
        ),
        Some(Severity::Unknown) | None => {
            (Verdict::Inconclusive, "DCGM gives no known severity for it")
        }
        Some(Severity::Reset) => (
            Verdict::Reboot,
            "DCGM's next step is to drain and reset the GPU, which a reboot does",
        ),
        Some(Severity::Isolate | Severity::Triage) if replace_id => (
            Verdict::Replace,
            "the GPU's memory repair capacity is used up, which a reset does not restore, and \
             DCGM's next step is a field diagnostic",
        ),
        Some(Severity::Isolate) => (
            Verdict::Reboot,
            "DCGM's next step is to take the GPU out of service, and a GPU reset (which a reboot does) \
             clears this state",
        ),
        Some(Severity::Triage) if software => (
            Verdict::Inconclusive,
            "DCGM asks for triage of a software or internal error, not a GPU fault",
        ),
        Some(Severity::Triage) => (
            Verdict::Reboot,
            "DCGM asks for triage of a hardware error, and its first step is a GPU reset and a rerun",
        ),
    };
    ErrorClass {
        severity,
        verdict,
        rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(error_id: u32, category: u32, severity: u32) -> DiagError {
        DiagError {
            error_id: Some(error_id),
            category: Some(category),
            severity: Some(severity),
            message: String::new(),
        }
    }

    #[test]
    fn severity_codes_round_trip() {
        for code in 0..=6 {
            let severity = Severity::from_code(code);
            assert!(severity.is_some(), "severity {code}");
        }
        assert_eq!(Severity::from_code(7), None);
    }

    #[test]
    fn classify_isolate_splits_reboot_replace() {
        assert_eq!(classify_error(&error(4, 10, 2)).verdict, Verdict::Reboot);
        assert_eq!(classify_error(&error(80, 10, 2)).verdict, Verdict::Replace);
        assert_eq!(classify_error(&error(7, 10, 2)).verdict, Verdict::Replace);
        assert_eq!(classify_error(&error(8, 10, 4)).verdict, Verdict::Replace);
    }

    #[test]
    fn classify_triage_software_inconclusive() {
        assert_eq!(
            classify_error(&error(44, 16, 4)).verdict,
            Verdict::Inconclusive
        );
        assert_eq!(classify_error(&error(98, 13, 4)).verdict, Verdict::Reboot);
    }

    #[test]
    fn classify_missing_severity_inconclusive() {
        let mut entry = error(4, 10, 2);
        entry.severity = None;
        assert_eq!(classify_error(&entry).verdict, Verdict::Inconclusive);
        entry.severity = Some(9);
        assert_eq!(classify_error(&entry).verdict, Verdict::Inconclusive);
    }
}
