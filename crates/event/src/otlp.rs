//! What one OpenTelemetry log record becomes as a log entry: the leaf encoding
//! `merklog.otlp-log/v1`.
//!
//! A record is logged together with what gives it meaning (its resource and its
//! instrumentation scope) and with the principal that sent it, as one JSON object
//! canonicalised by RFC 8785 (JCS): keys sorted, no insignificant whitespace, one
//! spelling per value. Every field is always present, so the shape is fixed and two
//! different records never give the same bytes:
//!
//! - strings are JSON strings and booleans JSON booleans; every other value is an
//!   object with one key naming its type: `{"int":"-5"}` (decimal text, since int64
//!   exceeds JSON's exact range), `{"double":1.5}` (non-finite values and negative
//!   zero as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`, `"-0"`),
//!   `{"bytes":"<base64>"}`, `{"array":[..]}`, `{"kvlist":{..}}`; an empty value is
//!   `null` (an absent body too);
//! - attribute lists are JSON objects; a list naming one key twice is refused;
//! - times are decimal text of Unix nanoseconds, trace and span ids lowercase hex
//!   (empty when absent).
//!
//! This module is pure and knows nothing of protobuf: the server converts the wire
//! messages into [`OtlpLog`]. The layout is specified byte by byte in
//! `docs/audit-events.md`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::EventError;

/// The value of the leaf's `type` member.
pub const OTLP_LOG_TYPE: &str = "merklog.otlp-log/v1";

/// An OpenTelemetry `AnyValue`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum AnyValue {
    /// No value.
    #[default]
    Empty,
    /// A string.
    String(String),
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// Bytes.
    Bytes(Vec<u8>),
    /// An array of values.
    Array(Vec<AnyValue>),
    /// A list of key-value pairs.
    KvList(Vec<KeyValue>),
}

/// One attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: AnyValue,
}

/// The entity that produced the records (`Resource`) and its schema URL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// Resource attributes (`service.name`, ...).
    pub attributes: Vec<KeyValue>,
    /// Attributes the sender dropped.
    pub dropped_attributes_count: u32,
    /// The `ResourceLogs.schema_url`.
    pub schema_url: String,
}

/// The instrumentation scope of the records and its schema URL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Scope name.
    pub name: String,
    /// Scope version.
    pub version: String,
    /// Scope attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the sender dropped.
    pub dropped_attributes_count: u32,
    /// The `ScopeLogs.schema_url`.
    pub schema_url: String,
}

/// One log record, as OTLP carries it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogRecord {
    /// When the event happened (Unix ns; 0: unknown).
    pub time_unix_nano: u64,
    /// When the collector or SDK observed it (Unix ns; 0: unknown).
    pub observed_time_unix_nano: u64,
    /// Severity number (the OTLP enum's value).
    pub severity_number: i32,
    /// Severity text.
    pub severity_text: String,
    /// The body ([`AnyValue::Empty`] when absent).
    pub body: AnyValue,
    /// Record attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the sender dropped.
    pub dropped_attributes_count: u32,
    /// W3C trace flags.
    pub flags: u32,
    /// Trace id: empty or 16 bytes.
    pub trace_id: Vec<u8>,
    /// Span id: empty or 8 bytes.
    pub span_id: Vec<u8>,
    /// Event name.
    pub event_name: String,
}

/// One record with its context and sender: what one leaf holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtlpLog {
    /// The authenticated principal that sent it; `None` when authentication is off.
    pub principal: Option<String>,
    /// Its resource.
    pub resource: Resource,
    /// Its scope.
    pub scope: Scope,
    /// The record.
    pub record: LogRecord,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> EventError {
    EventError::Otlp {
        field: field.into(),
        reason: reason.into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn double(v: f64) -> Value {
    if v.is_nan() {
        Value::from("NaN")
    } else if v == f64::INFINITY {
        Value::from("Infinity")
    } else if v == f64::NEG_INFINITY {
        Value::from("-Infinity")
    } else if v == 0.0 && v.is_sign_negative() {
        // JCS writes -0 as 0; keep the two apart.
        Value::from("-0")
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

fn tagged(tag: &str, value: Value) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert(tag.to_owned(), value);
    Value::Object(map)
}

fn any_value(value: &AnyValue, path: &str) -> Result<Value, EventError> {
    use base64::Engine as _;
    Ok(match value {
        AnyValue::Empty => Value::Null,
        AnyValue::String(s) => Value::from(s.as_str()),
        AnyValue::Bool(b) => Value::Bool(*b),
        AnyValue::Int(i) => tagged("int", Value::from(i.to_string())),
        AnyValue::Double(d) => tagged("double", double(*d)),
        AnyValue::Bytes(b) => tagged(
            "bytes",
            Value::from(base64::engine::general_purpose::STANDARD.encode(b)),
        ),
        AnyValue::Array(items) => tagged(
            "array",
            Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| any_value(v, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
        ),
        AnyValue::KvList(list) => tagged("kvlist", attributes(list, path)?),
    })
}

/// An attribute list as an object; a key named twice is refused.
fn attributes(list: &[KeyValue], path: &str) -> Result<Value, EventError> {
    let mut map = Map::new();
    for kv in list {
        let field = format!("{path}[{:?}]", kv.key);
        let value = any_value(&kv.value, &field)?;
        if map.insert(kv.key.clone(), value).is_some() {
            return Err(invalid(
                field,
                "the key appears twice in one attribute list",
            ));
        }
    }
    Ok(Value::Object(map))
}

fn id(bytes: &[u8], len: usize, field: &str) -> Result<Value, EventError> {
    if !bytes.is_empty() && bytes.len() != len {
        return Err(invalid(
            field,
            format!("must be empty or {len} bytes, not {}", bytes.len()),
        ));
    }
    Ok(Value::from(hex(bytes)))
}

impl OtlpLog {
    /// The leaf bytes (see the module documentation), or which field is invalid:
    /// a key named twice in one attribute list, or a trace or span id of the wrong
    /// length.
    pub fn to_leaf(&self) -> Result<Vec<u8>, EventError> {
        let OtlpLog {
            principal,
            resource,
            scope,
            record,
        } = self;
        let mut r = Map::new();
        r.insert(
            "attributes".into(),
            attributes(&resource.attributes, "resource.attributes")?,
        );
        r.insert(
            "dropped_attributes_count".into(),
            resource.dropped_attributes_count.into(),
        );
        r.insert("schema_url".into(), resource.schema_url.as_str().into());
        let mut s = Map::new();
        s.insert("name".into(), scope.name.as_str().into());
        s.insert("version".into(), scope.version.as_str().into());
        s.insert(
            "attributes".into(),
            attributes(&scope.attributes, "scope.attributes")?,
        );
        s.insert(
            "dropped_attributes_count".into(),
            scope.dropped_attributes_count.into(),
        );
        s.insert("schema_url".into(), scope.schema_url.as_str().into());
        let mut top = Map::new();
        top.insert("type".into(), OTLP_LOG_TYPE.into());
        top.insert(
            "principal".into(),
            principal.as_deref().map_or(Value::Null, Value::from),
        );
        top.insert("resource".into(), Value::Object(r));
        top.insert("scope".into(), Value::Object(s));
        top.insert(
            "time_unix_nano".into(),
            record.time_unix_nano.to_string().into(),
        );
        top.insert(
            "observed_time_unix_nano".into(),
            record.observed_time_unix_nano.to_string().into(),
        );
        top.insert("severity_number".into(), record.severity_number.into());
        top.insert("severity_text".into(), record.severity_text.as_str().into());
        top.insert("body".into(), any_value(&record.body, "body")?);
        top.insert(
            "attributes".into(),
            attributes(&record.attributes, "attributes")?,
        );
        top.insert(
            "dropped_attributes_count".into(),
            record.dropped_attributes_count.into(),
        );
        top.insert("flags".into(), record.flags.into());
        top.insert("trace_id".into(), id(&record.trace_id, 16, "trace_id")?);
        top.insert("span_id".into(), id(&record.span_id, 8, "span_id")?);
        top.insert("event_name".into(), record.event_name.as_str().into());
        serde_json_canonicalizer::to_vec(&Value::Object(top))
            .map_err(|e| invalid("record", format!("canonical JSON: {e}")))
    }
}

/// An OTLP leaf parsed back far enough to read its attributes: the JSON object, if
/// the bytes are one with the `merklog.otlp-log/v1` type marker.
pub(crate) fn parse_leaf(leaf: &[u8]) -> Option<Map<String, Value>> {
    // A cheap test first: most leaves are not OTLP records.
    if !leaf.starts_with(b"{") {
        return None;
    }
    let Value::Object(map) = serde_json::from_slice(leaf).ok()? else {
        return None;
    };
    (map.get("type").and_then(Value::as_str) == Some(OTLP_LOG_TYPE)).then_some(map)
}

/// The attribute keys a list of [`KeyValue`]s names twice (for callers that want
/// to report every duplicate, not only the first).
pub fn duplicate_keys(list: &[KeyValue]) -> Vec<&str> {
    let mut seen = BTreeSet::new();
    list.iter()
        .filter(|kv| !seen.insert(kv.key.as_str()))
        .map(|kv| kv.key.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: AnyValue) -> KeyValue {
        KeyValue {
            key: key.into(),
            value,
        }
    }

    fn sample() -> OtlpLog {
        OtlpLog {
            principal: Some("agent-runner".into()),
            resource: Resource {
                attributes: vec![kv("service.name", AnyValue::String("svc".into()))],
                ..Resource::default()
            },
            scope: Scope {
                name: "audit".into(),
                version: "1.0".into(),
                ..Scope::default()
            },
            record: LogRecord {
                time_unix_nano: 1_772_366_400_000_000_000,
                severity_number: 9,
                severity_text: "INFO".into(),
                body: AnyValue::String("hi".into()),
                attributes: vec![
                    kv("n", AnyValue::Int(-5)),
                    kv("b", AnyValue::Bool(true)),
                    kv("d", AnyValue::Double(1.5)),
                    kv("x", AnyValue::Bytes(vec![1, 2, 255])),
                    kv(
                        "a",
                        AnyValue::Array(vec![AnyValue::Empty, AnyValue::Int(1)]),
                    ),
                    kv(
                        "k",
                        AnyValue::KvList(vec![kv("z", AnyValue::String("\u{1}".into()))]),
                    ),
                ],
                flags: 1,
                trace_id: (0u8..16).collect(),
                span_id: (0u8..8).collect(),
                ..LogRecord::default()
            },
        }
    }

    #[test]
    fn the_leaf_is_the_documented_canonical_json() {
        let leaf = String::from_utf8(sample().to_leaf().unwrap()).unwrap();
        let expected = concat!(
            r#"{"attributes":{"a":{"array":[null,{"int":"1"}]},"b":true,"d":{"double":1.5},"#,
            r#""k":{"kvlist":{"z":"\u0001"}},"n":{"int":"-5"},"x":{"bytes":"AQL/"}},"#,
            r#""body":"hi","dropped_attributes_count":0,"event_name":"","flags":1,"#,
            r#""observed_time_unix_nano":"0","principal":"agent-runner","#,
            r#""resource":{"attributes":{"service.name":"svc"},"dropped_attributes_count":0,"schema_url":""},"#,
            r#""scope":{"attributes":{},"dropped_attributes_count":0,"name":"audit","schema_url":"","version":"1.0"},"#,
            r#""severity_number":9,"severity_text":"INFO","span_id":"0001020304050607","#,
            r#""time_unix_nano":"1772366400000000000","trace_id":"000102030405060708090a0b0c0d0e0f","#,
            r#""type":"merklog.otlp-log/v1"}"#
        );
        assert_eq!(leaf, expected);
        assert!(parse_leaf(leaf.as_bytes()).is_some());
    }

    #[test]
    fn values_that_look_alike_encode_apart() {
        let leaf = |value: AnyValue| {
            let mut log = sample();
            log.record.body = value;
            log.to_leaf().unwrap()
        };
        let values = [
            AnyValue::Empty,
            AnyValue::String("1".into()),
            AnyValue::String("true".into()),
            AnyValue::Bool(true),
            AnyValue::Int(1),
            AnyValue::Double(1.0),
            AnyValue::Double(0.0),
            AnyValue::Double(-0.0),
            AnyValue::Double(f64::NAN),
            AnyValue::String("NaN".into()),
            AnyValue::Bytes(vec![]),
            AnyValue::String(String::new()),
            AnyValue::Array(vec![]),
            AnyValue::KvList(vec![]),
        ];
        let leaves: BTreeSet<Vec<u8>> = values.iter().cloned().map(leaf).collect();
        assert_eq!(leaves.len(), values.len());
        let mut anonymous = sample();
        anonymous.principal = None;
        assert_ne!(anonymous.to_leaf().unwrap(), sample().to_leaf().unwrap());
    }

    #[test]
    fn duplicate_keys_and_bad_ids_are_named() {
        let mut log = sample();
        log.record
            .attributes
            .push(kv("n", AnyValue::String("again".into())));
        match log.to_leaf() {
            Err(EventError::Otlp { field, .. }) => assert_eq!(field, r#"attributes["n"]"#),
            other => panic!("{other:?}"),
        }
        assert_eq!(duplicate_keys(&log.record.attributes), vec!["n"]);
        let mut log = sample();
        log.scope.attributes = vec![kv(
            "k",
            AnyValue::KvList(vec![kv("a", AnyValue::Empty), kv("a", AnyValue::Empty)]),
        )];
        match log.to_leaf() {
            Err(EventError::Otlp { field, .. }) => {
                assert_eq!(field, r#"scope.attributes["k"]["a"]"#)
            }
            other => panic!("{other:?}"),
        }
        let mut log = sample();
        log.record.trace_id = vec![0; 15];
        match log.to_leaf() {
            Err(EventError::Otlp { field, .. }) => assert_eq!(field, "trace_id"),
            other => panic!("{other:?}"),
        }
        log.record.trace_id.clear();
        log.record.span_id = vec![1; 9];
        match log.to_leaf() {
            Err(EventError::Otlp { field, .. }) => assert_eq!(field, "span_id"),
            other => panic!("{other:?}"),
        }
    }
}
