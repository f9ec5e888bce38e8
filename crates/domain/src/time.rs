//! Wall-clock instants and spans as the engine sees them.
//!
//! Instants are milliseconds since the Unix epoch, so the simulator can run a
//! day of simulated time without sleeping and records compare cheaply. They
//! serialize as RFC 3339 strings, which keeps the tables readable.

use std::fmt;
use std::ops::{Add, Sub};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// A span of time in milliseconds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Span(pub i64);

impl Span {
    #[must_use]
    pub const fn seconds(seconds: i64) -> Span {
        Span(seconds * 1000)
    }

    #[must_use]
    pub const fn minutes(minutes: i64) -> Span {
        Span(minutes * 60_000)
    }

    #[must_use]
    pub const fn as_seconds(self) -> i64 {
        self.0 / 1000
    }
}

impl fmt::Display for Span {
    /// Formats as the largest whole unit that fits, such as `30m`, `20m` or `90s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0 / 1000;
        if seconds % 3600 == 0 && seconds != 0 {
            write!(f, "{}h", seconds / 3600)
        } else if seconds % 60 == 0 && seconds != 0 {
            write!(f, "{}m", seconds / 60)
        } else if self.0 % 1000 == 0 {
            write!(f, "{seconds}s")
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}

impl Timestamp {
    /// Parses an RFC 3339 instant such as `2026-11-20T09:14:21.770Z`.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, chrono::ParseError> {
        let parsed = DateTime::parse_from_rfc3339(text)?;
        Ok(Timestamp(parsed.timestamp_millis()))
    }

    /// The current wall-clock time.
    #[must_use]
    pub fn now() -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }

    #[must_use]
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(instant) => instant.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => format!("{}ms", self.0),
        }
    }

    /// Time elapsed from `earlier` to `self`, zero when `earlier` is later.
    #[must_use]
    pub fn since(self, earlier: Timestamp) -> Span {
        Span((self.0 - earlier.0).max(0))
    }
}

impl Add<Span> for Timestamp {
    type Output = Timestamp;

    fn add(self, span: Span) -> Timestamp {
        Timestamp(self.0.saturating_add(span.0))
    }
}

impl Add for Span {
    type Output = Span;

    fn add(self, other: Span) -> Span {
        Span(self.0.saturating_add(other.0))
    }
}

impl Sub<Span> for Timestamp {
    type Output = Timestamp;

    fn sub(self, span: Span) -> Timestamp {
        Timestamp(self.0.saturating_sub(span.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // The earlier Python implementation wrote `datetime.now().isoformat()`,
        // which has no offset; those values are read as UTC.
        Timestamp::parse_rfc3339(&text)
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
                    .map(|naive| Timestamp(naive.and_utc().timestamp_millis()))
            })
            .map_err(|error| {
                serde::de::Error::custom(format!("invalid timestamp {text:?}: {error}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_rfc3339() {
        let instant = Timestamp::parse_rfc3339("2026-11-20T09:14:21.770Z").unwrap();
        assert_eq!(instant.to_rfc3339(), "2026-11-20T09:14:21.770Z");
    }

    #[test]
    fn timestamp_reads_naive_isoformat() {
        let instant: Timestamp = serde_json::from_str("\"2026-11-20T09:14:21.770000\"").unwrap();
        assert_eq!(instant.to_rfc3339(), "2026-11-20T09:14:21.770Z");
    }

    #[test]
    fn span_display_picks_unit() {
        assert_eq!(Span::minutes(30).to_string(), "30m");
        assert_eq!(Span::seconds(90).to_string(), "90s");
        assert_eq!(Span::seconds(7200).to_string(), "2h");
    }
}
