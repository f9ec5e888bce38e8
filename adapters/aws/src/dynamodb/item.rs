//! Conversion between DynamoDB attribute values and JSON, and the attribute
//! names a record type owns.
//!
//! Records go through `serde_json::Value` on their way to and from DynamoDB,
//! so the domain's serde readers see exactly the shapes they see for JSON:
//! a number attribute becomes a JSON number, a string stays a string, and a
//! legacy `retry` written as `"0"` or `submitted_ecs_task_ids` written as
//! `"t1,t2"` reaches the reader that accepts those forms.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Number, Value};

/// Converts a JSON value into an attribute value.
pub(crate) fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(flag) => AttributeValue::Bool(*flag),
        Value::Number(number) => AttributeValue::N(number.to_string()),
        Value::String(text) => AttributeValue::S(text.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(to_attribute).collect()),
        Value::Object(fields) => AttributeValue::M(
            fields
                .iter()
                .map(|(name, value)| (name.clone(), to_attribute(value)))
                .collect(),
        ),
    }
}

/// Converts an attribute value into JSON.
///
/// Sets become lists. Binary values become `null`: no record field is
/// binary, so such an attribute was written by another tool and is ignored.
pub(crate) fn from_attribute(value: &AttributeValue) -> Result<Value, String> {
    Ok(match value {
        AttributeValue::S(text) => Value::String(text.clone()),
        AttributeValue::N(text) => Value::Number(parse_number(text)?),
        AttributeValue::Bool(flag) => Value::Bool(*flag),
        AttributeValue::L(items) => {
            Value::Array(items.iter().map(from_attribute).collect::<Result<_, _>>()?)
        }
        AttributeValue::M(fields) => Value::Object(from_item(fields)?),
        AttributeValue::Ss(items) => {
            Value::Array(items.iter().cloned().map(Value::String).collect())
        }
        AttributeValue::Ns(items) => Value::Array(
            items
                .iter()
                .map(|text| parse_number(text).map(Value::Number))
                .collect::<Result<_, _>>()?,
        ),
        _ => Value::Null,
    })
}

/// Converts a whole item into a JSON object.
pub(crate) fn from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<Map<String, Value>, String> {
    item.iter()
        .map(|(name, value)| {
            from_attribute(value)
                .map(|json| (name.clone(), json))
                .map_err(|error| format!("attribute {name}: {error}"))
        })
        .collect()
}

fn parse_number(text: &str) -> Result<Number, String> {
    let trimmed = text.trim();
    if let Ok(whole) = trimmed.parse::<u64>() {
        return Ok(Number::from(whole));
    }
    if let Ok(whole) = trimmed.parse::<i64>() {
        return Ok(Number::from(whole));
    }
    trimmed
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or_else(|| format!("number {text:?} is not a finite decimal"))
}

/// The field names of a struct that derives `Deserialize`, in declaration
/// order (after any `rename`).
///
/// The store uses them to REMOVE the attributes of fields that serialize to
/// nothing (an empty `Option`), while leaving attributes it does not know,
/// such as those written by other tools, untouched.
pub(crate) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut probe = FieldProbe { fields: &[] };
    // The probe always fails after recording the names; the error is expected.
    let _ = T::deserialize(&mut probe);
    probe.fields
}

struct FieldProbe {
    fields: &'static [&'static str],
}

#[derive(Debug)]
struct ProbeDone;

impl std::fmt::Display for ProbeDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for ProbeDone {}

impl de::Error for ProbeDone {
    fn custom<T: std::fmt::Display>(_message: T) -> Self {
        ProbeDone
    }
}

impl<'de> Deserializer<'de> for &mut FieldProbe {
    type Error = ProbeDone;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, ProbeDone> {
        Err(ProbeDone)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeDone> {
        self.fields = fields;
        Err(ProbeDone)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use gpu_recovery_domain::{JobRecord, SafetyRecord};
    use serde_json::json;

    use super::*;

    #[test]
    fn attribute_round_trips_json() {
        let value = json!({
            "text": "a",
            "count": 3,
            "negative": -2,
            "ratio": 0.5,
            "flag": true,
            "none": null,
            "list": ["x", 1],
            "map": {"inner": "y"}
        });
        let back = from_attribute(&to_attribute(&value)).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn sets_read_as_lists() {
        let strings = AttributeValue::Ss(vec!["t1".to_owned(), "t2".to_owned()]);
        assert_eq!(from_attribute(&strings).unwrap(), json!(["t1", "t2"]));
        let numbers = AttributeValue::Ns(vec!["1".to_owned(), "2.5".to_owned()]);
        assert_eq!(from_attribute(&numbers).unwrap(), json!([1, 2.5]));
    }

    #[test]
    fn number_rejects_garbage_text() {
        let error = from_attribute(&AttributeValue::N("1x".to_owned())).unwrap_err();
        assert!(error.contains("\"1x\""), "{error}");
    }

    #[test]
    fn field_names_list_record_fields() {
        let job = field_names::<JobRecord>();
        assert!(job.contains(&"job_id"));
        assert!(job.contains(&"submitted_ecs_task_ids"));
        assert!(job.contains(&"episode"));
        assert!(job.contains(&"version"));
        let safety = field_names::<SafetyRecord>();
        assert!(safety.contains(&"rebooting"));
        assert!(!safety.contains(&"node_name"));
    }
}
