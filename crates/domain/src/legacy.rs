//! Readers for attribute shapes that the earlier Python implementation wrote.
//!
//! It stored `retry` and the node counts as strings, and
//! `submitted_ecs_task_ids` either as a list or as one comma-separated string.
//! These functions accept both forms; records are always written back in the
//! typed form.

use serde::Deserialize;
use serde::de::{self, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Float(f64),
    Text(String),
}

/// Reads a count written as a number or as a decimal string.
pub fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    match NumberOrText::deserialize(deserializer)? {
        NumberOrText::Number(value) => u32::try_from(value)
            .map_err(|_| de::Error::custom(format!("count {value} is out of range"))),
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        NumberOrText::Float(value)
            if value >= 0.0 && value.fract() == 0.0 && value <= f64::from(u32::MAX) =>
        {
            Ok(value as u32)
        }
        NumberOrText::Float(value) => Err(de::Error::custom(format!(
            "count {value} is not a whole non-negative number"
        ))),
        NumberOrText::Text(text) => text.trim().parse().map_err(|_| {
            de::Error::custom(format!("count {text:?} is not a whole non-negative number"))
        }),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrText {
    List(Vec<String>),
    Text(String),
}

/// Reads a list written as a list of strings or as one comma-separated string.
pub fn string_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(match ListOrText::deserialize(deserializer)? {
        ListOrText::List(items) => items,
        ListOrText::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "super::count")]
        retry: u32,
        #[serde(deserialize_with = "super::string_list")]
        ids: Vec<String>,
    }

    #[test]
    fn count_reads_string_and_number() {
        let text: Sample = serde_json::from_str(r#"{"retry":"2","ids":[]}"#).unwrap();
        assert_eq!(text.retry, 2);
        let number: Sample = serde_json::from_str(r#"{"retry":3,"ids":[]}"#).unwrap();
        assert_eq!(number.retry, 3);
        let float: Sample = serde_json::from_str(r#"{"retry":1.0,"ids":[]}"#).unwrap();
        assert_eq!(float.retry, 1);
    }

    #[test]
    fn count_rejects_negative_text() {
        let error = serde_json::from_str::<Sample>(r#"{"retry":"-1","ids":[]}"#)
            .err()
            .unwrap();
        assert!(error.to_string().contains("\"-1\""), "{error}");
    }

    #[test]
    fn string_list_reads_comma_text() {
        let sample: Sample = serde_json::from_str(r#"{"retry":0,"ids":"a, b,,c"}"#).unwrap();
        assert_eq!(sample.ids, ["a", "b", "c"]);
        let list: Sample = serde_json::from_str(r#"{"retry":0,"ids":["x"]}"#).unwrap();
        assert_eq!(list.ids, ["x"]);
    }
}
