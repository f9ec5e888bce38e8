//! Health-check verdicts and the exit-code protocol that carries them.
//!
//! The health-check container exits with 0 (healthy), 1 (a fault a reboot can
//! clear), 2 (a fault a reboot cannot clear) or 3 (inconclusive). Codes 0 and 1
//! keep the meaning they had in the earlier Python implementation. Every other
//! exit code, and a task that never started, is inconclusive: a check that did
//! not finish is never a pass.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The outcome of one health check on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every GPU passed.
    Healthy,
    /// A GPU fault that a reboot can clear.
    Reboot,
    /// A GPU fault that a reboot cannot clear: the node needs replacing.
    Replace,
    /// The diagnostics could not run, timed out or found only configuration errors.
    Inconclusive,
}

impl Verdict {
    /// Exit code of the health-check protocol for this verdict.
    #[must_use]
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Reboot => 1,
            Verdict::Replace => 2,
            Verdict::Inconclusive => 3,
        }
    }

    /// Maps a health-check container's exit code to a verdict.
    ///
    /// Codes outside 0 to 3 are inconclusive, because they mean the check
    /// itself broke (a crash, an out-of-memory kill, a missing binary).
    #[must_use]
    pub fn from_exit_code(code: i32) -> Verdict {
        match code {
            0 => Verdict::Healthy,
            1 => Verdict::Reboot,
            2 => Verdict::Replace,
            _ => Verdict::Inconclusive,
        }
    }

    /// Severity rank used to combine verdicts: a node is as bad as its worst GPU.
    ///
    /// `Replace` outranks `Reboot`, which outranks `Inconclusive`, which
    /// outranks `Healthy`: a confirmed fault says more than a check that could
    /// not finish.
    #[must_use]
    pub fn severity(self) -> u8 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Inconclusive => 1,
            Verdict::Reboot => 2,
            Verdict::Replace => 3,
        }
    }

    /// The worse of two verdicts by [`Verdict::severity`].
    #[must_use]
    pub fn worst(self, other: Verdict) -> Verdict {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// Lower-case name, as used in scenario files and JSON output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Reboot => "reboot",
            Verdict::Replace => "replace",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a verdict name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid verdict {0:?}: expected healthy, reboot, replace or inconclusive")]
pub struct InvalidVerdict(pub String);

impl FromStr for Verdict {
    type Err = InvalidVerdict;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "healthy" => Ok(Verdict::Healthy),
            "reboot" => Ok(Verdict::Reboot),
            "replace" => Ok(Verdict::Replace),
            "inconclusive" => Ok(Verdict::Inconclusive),
            other => Err(InvalidVerdict(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_round_trip() {
        for verdict in [
            Verdict::Healthy,
            Verdict::Reboot,
            Verdict::Replace,
            Verdict::Inconclusive,
        ] {
            assert_eq!(Verdict::from_exit_code(verdict.exit_code()), verdict);
        }
    }

    #[test]
    fn unknown_exit_codes_are_inconclusive() {
        for code in [-1, 4, 137, 203, 226, 242, 255] {
            assert_eq!(
                Verdict::from_exit_code(code),
                Verdict::Inconclusive,
                "exit code {code}"
            );
        }
    }

    #[test]
    fn worst_prefers_replace_over_reboot() {
        assert_eq!(Verdict::Reboot.worst(Verdict::Replace), Verdict::Replace);
        assert_eq!(Verdict::Replace.worst(Verdict::Healthy), Verdict::Replace);
        assert_eq!(
            Verdict::Healthy.worst(Verdict::Inconclusive),
            Verdict::Inconclusive
        );
        assert_eq!(
            Verdict::Inconclusive.worst(Verdict::Reboot),
            Verdict::Reboot
        );
    }

    #[test]
    fn parse_rejects_unknown_name() {
        assert_eq!("reboot".parse::<Verdict>(), Ok(Verdict::Reboot));
        assert!("ok".parse::<Verdict>().is_err());
    }
}
