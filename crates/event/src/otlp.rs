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

/// Where a value sits in a record, rendered only when an error names it (building
/// the text for every value would cost more than encoding the value).
#[derive(Clone, Copy)]
enum Place<'a> {
    Root(&'static str),
    Key(&'a Place<'a>, &'a str),
    Index(&'a Place<'a>, usize),
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Root(name) => f.write_str(name),
            Place::Key(parent, key) => write!(f, "{parent}[{key:?}]"),
            Place::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// A JSON string as RFC 8785 writes it: serde_json escapes exactly what JCS
/// escapes (`"`, `\` and the C0 controls, as `\b \t \n \f \r` or lowercase
/// `\u00xx`) and writes everything else as UTF-8.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail; an error would mean serde_json changed.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn decimal(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = write!(out, "{n}");
}

fn quoted_decimal(out: &mut Vec<u8>, n: u64) {
    out.push(b'"');
    decimal(out, n);
    out.push(b'"');
}

/// Lowercase hex digits of `bytes`, appended to `out`.
pub(crate) fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

fn double(out: &mut Vec<u8>, v: f64) -> Result<(), EventError> {
    let special = if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("Infinity")
    } else if v == f64::NEG_INFINITY {
        Some("-Infinity")
    } else if v == 0.0 && v.is_sign_negative() {
        // JCS writes -0 as 0; keep the two apart.
        Some("-0")
    } else {
        None
    };
    match special {
        Some(text) => string(out, text),
        // JCS numbers are ECMAScript's shortest round-trip form, which the
        // canonicaliser implements.
        None => out.extend_from_slice(
            &serde_json_canonicalizer::to_vec(&v)
                .map_err(|e| invalid("record", format!("canonical JSON number: {e}")))?,
        ),
    }
    Ok(())
}

fn any_value(out: &mut Vec<u8>, value: &AnyValue, place: &Place<'_>) -> Result<(), EventError> {
    use base64::Engine as _;
    match value {
        AnyValue::Empty => out.extend_from_slice(b"null"),
        AnyValue::String(s) => string(out, s),
        AnyValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        AnyValue::Int(i) => {
            out.extend_from_slice(br#"{"int":""#);
            decimal(out, i);
            out.extend_from_slice(br#""}"#);
        }
        AnyValue::Double(d) => {
            out.extend_from_slice(br#"{"double":"#);
            double(out, *d)?;
            out.push(b'}');
        }
        AnyValue::Bytes(b) => {
            out.extend_from_slice(br#"{"bytes":""#);
            let start = out.len();
            let len = base64::encoded_len(b.len(), true)
                .ok_or_else(|| invalid(place.to_string(), "too many bytes"))?;
            out.resize(start + len, 0);
            base64::engine::general_purpose::STANDARD
                .encode_slice(b, &mut out[start..])
                .map_err(|e| invalid(place.to_string(), e.to_string()))?;
            out.extend_from_slice(br#""}"#);
        }
        AnyValue::Array(items) => {
            out.extend_from_slice(br#"{"array":["#);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                any_value(out, item, &Place::Index(place, i))?;
            }
            out.extend_from_slice(b"]}");
        }
        AnyValue::KvList(list) => {
            out.extend_from_slice(br#"{"kvlist":"#);
            attributes(out, list, place)?;
            out.push(b'}');
        }
    }
    Ok(())
}

/// An attribute list as an object whose members are sorted as RFC 8785 sorts
/// them (by UTF-16 code units, which differs from UTF-8 byte order above the
/// surrogate range); a key named twice is refused.
fn attributes(out: &mut Vec<u8>, list: &[KeyValue], place: &Place<'_>) -> Result<(), EventError> {
    let mut sorted: Vec<&KeyValue> = list.iter().collect();
    sorted.sort_by(|a, b| {
        if a.key.is_ascii() && b.key.is_ascii() {
            a.key.cmp(&b.key)
        } else {
            a.key.encode_utf16().cmp(b.key.encode_utf16())
        }
    });
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0].key == pair[1].key) {
        return Err(invalid(
            Place::Key(place, &pair[0].key).to_string(),
            "the key appears twice in one attribute list",
        ));
    }
    out.push(b'{');
    for (i, kv) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, &kv.key);
        out.push(b':');
        any_value(out, &kv.value, &Place::Key(place, &kv.key))?;
    }
    out.push(b'}');
    Ok(())
}

fn id(out: &mut Vec<u8>, bytes: &[u8], len: usize, field: &str) -> Result<(), EventError> {
    if !bytes.is_empty() && bytes.len() != len {
        return Err(invalid(
            field,
            format!("must be empty or {len} bytes, not {}", bytes.len()),
        ));
    }
    out.push(b'"');
    hex(out, bytes);
    out.push(b'"');
    Ok(())
}

/// What every record of one `ScopeLogs` shares in its leaf (the principal, the
/// resource and the scope), encoded once for all of them.
#[derive(Debug, Clone)]
pub struct LeafContext {
    principal: Vec<u8>,
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl LeafContext {
    /// Encodes the shared members, or names the attribute that is invalid.
    pub fn new(
        principal: Option<&str>,
        resource: &Resource,
        scope: &Scope,
    ) -> Result<LeafContext, EventError> {
        let mut p = Vec::new();
        match principal {
            Some(principal) => string(&mut p, principal),
            None => p.extend_from_slice(b"null"),
        }
        // Members in RFC 8785 order (all keys ASCII, so byte order).
        let mut r = Vec::new();
        r.extend_from_slice(br#"{"attributes":"#);
        attributes(
            &mut r,
            &resource.attributes,
            &Place::Root("resource.attributes"),
        )?;
        r.extend_from_slice(br#","dropped_attributes_count":"#);
        decimal(&mut r, resource.dropped_attributes_count);
        r.extend_from_slice(br#","schema_url":"#);
        string(&mut r, &resource.schema_url);
        r.push(b'}');
        let mut s = Vec::new();
        s.extend_from_slice(br#"{"attributes":"#);
        attributes(&mut s, &scope.attributes, &Place::Root("scope.attributes"))?;
        s.extend_from_slice(br#","dropped_attributes_count":"#);
        decimal(&mut s, scope.dropped_attributes_count);
        s.extend_from_slice(br#","name":"#);
        string(&mut s, &scope.name);
        s.extend_from_slice(br#","schema_url":"#);
        string(&mut s, &scope.schema_url);
        s.extend_from_slice(br#","version":"#);
        string(&mut s, &scope.version);
        s.push(b'}');
        Ok(LeafContext {
            principal: p,
            resource: r,
            scope: s,
        })
    }

    /// The leaf bytes of `record` in this context (see the module documentation),
    /// or which field is invalid: a key named twice in one attribute list, or a
    /// trace or span id of the wrong length.
    pub fn leaf(&self, record: &LogRecord) -> Result<Vec<u8>, EventError> {
        let mut out = Vec::with_capacity(
            self.resource.len() + self.scope.len() + 512 + 2 * record_hint(record),
        );
        // Members in RFC 8785 order (all keys ASCII, so byte order).
        out.extend_from_slice(br#"{"attributes":"#);
        attributes(&mut out, &record.attributes, &Place::Root("attributes"))?;
        out.extend_from_slice(br#","body":"#);
        any_value(&mut out, &record.body, &Place::Root("body"))?;
        out.extend_from_slice(br#","dropped_attributes_count":"#);
        decimal(&mut out, record.dropped_attributes_count);
        out.extend_from_slice(br#","event_name":"#);
        string(&mut out, &record.event_name);
        out.extend_from_slice(br#","flags":"#);
        decimal(&mut out, record.flags);
        out.extend_from_slice(br#","observed_time_unix_nano":"#);
        quoted_decimal(&mut out, record.observed_time_unix_nano);
        out.extend_from_slice(br#","principal":"#);
        out.extend_from_slice(&self.principal);
        out.extend_from_slice(br#","resource":"#);
        out.extend_from_slice(&self.resource);
        out.extend_from_slice(br#","scope":"#);
        out.extend_from_slice(&self.scope);
        out.extend_from_slice(br#","severity_number":"#);
        decimal(&mut out, record.severity_number);
        out.extend_from_slice(br#","severity_text":"#);
        string(&mut out, &record.severity_text);
        out.extend_from_slice(br#","span_id":"#);
        id(&mut out, &record.span_id, 8, "span_id")?;
        out.extend_from_slice(br#","time_unix_nano":"#);
        quoted_decimal(&mut out, record.time_unix_nano);
        out.extend_from_slice(br#","trace_id":"#);
        id(&mut out, &record.trace_id, 16, "trace_id")?;
        out.extend_from_slice(br#","type":"#);
        string(&mut out, OTLP_LOG_TYPE);
        out.push(b'}');
        Ok(out)
    }
}

/// A rough size of a record's variable text, to size the leaf's buffer once.
fn record_hint(record: &LogRecord) -> usize {
    fn value(v: &AnyValue) -> usize {
        match v {
            AnyValue::String(s) => s.len(),
            AnyValue::Bytes(b) => b.len() * 4 / 3,
            AnyValue::Array(items) => items.iter().map(value).sum(),
            AnyValue::KvList(list) => list.iter().map(|kv| kv.key.len() + value(&kv.value)).sum(),
            _ => 16,
        }
    }
    value(&record.body)
        + record
            .attributes
            .iter()
            .map(|kv| kv.key.len() + value(&kv.value))
            .sum::<usize>()
}

impl OtlpLog {
    /// The leaf bytes (see the module documentation), or which field is invalid:
    /// a key named twice in one attribute list, or a trace or span id of the wrong
    /// length. Records sharing a resource and scope are faster through one
    /// [`LeafContext`].
    pub fn to_leaf(&self) -> Result<Vec<u8>, EventError> {
        LeafContext::new(self.principal.as_deref(), &self.resource, &self.scope)?.leaf(&self.record)
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
    is_record_leaf(&map).then_some(map)
}

/// Whether a parsed JSON object is an OpenTelemetry log record leaf (by its type).
pub(crate) fn is_record_leaf(map: &Map<String, Value>) -> bool {
    map.get("type").and_then(Value::as_str) == Some(OTLP_LOG_TYPE)
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
    use proptest::prelude::*;

    /// A second encoder, built the obvious way (a `serde_json::Value` tree through
    /// the RFC 8785 canonicaliser), for checking the direct one; `None` where the
    /// record is invalid.
    fn reference_leaf(log: &OtlpLog) -> Option<Vec<u8>> {
        use base64::Engine as _;
        fn tagged(tag: &str, value: Value) -> Value {
            let mut map = Map::new();
            map.insert(tag.to_owned(), value);
            Value::Object(map)
        }
        fn any(value: &AnyValue) -> Option<Value> {
            Some(match value {
                AnyValue::Empty => Value::Null,
                AnyValue::String(s) => Value::from(s.as_str()),
                AnyValue::Bool(b) => Value::Bool(*b),
                AnyValue::Int(i) => tagged("int", Value::from(i.to_string())),
                AnyValue::Double(d) => tagged(
                    "double",
                    if d.is_nan() {
                        Value::from("NaN")
                    } else if d.is_infinite() {
                        Value::from(if *d > 0.0 { "Infinity" } else { "-Infinity" })
                    } else if *d == 0.0 && d.is_sign_negative() {
                        Value::from("-0")
                    } else {
                        Value::Number(serde_json::Number::from_f64(*d)?)
                    },
                ),
                AnyValue::Bytes(b) => tagged(
                    "bytes",
                    Value::from(base64::engine::general_purpose::STANDARD.encode(b)),
                ),
                AnyValue::Array(items) => tagged(
                    "array",
                    Value::Array(items.iter().map(any).collect::<Option<_>>()?),
                ),
                AnyValue::KvList(list) => tagged("kvlist", attrs(list)?),
            })
        }
        fn attrs(list: &[KeyValue]) -> Option<Value> {
            let mut map = Map::new();
            for kv in list {
                if map.insert(kv.key.clone(), any(&kv.value)?).is_some() {
                    return None;
                }
            }
            Some(Value::Object(map))
        }
        let id = |bytes: &[u8], len: usize| {
            (bytes.is_empty() || bytes.len() == len)
                .then(|| Value::from(merklog_merkle::to_hex(bytes)))
        };
        let (r, sc, rec) = (&log.resource, &log.scope, &log.record);
        let value = serde_json::json!({
            "type": OTLP_LOG_TYPE,
            "principal": log.principal,
            "resource": {
                "attributes": attrs(&r.attributes)?,
                "dropped_attributes_count": r.dropped_attributes_count,
                "schema_url": r.schema_url,
            },
            "scope": {
                "name": sc.name, "version": sc.version,
                "attributes": attrs(&sc.attributes)?,
                "dropped_attributes_count": sc.dropped_attributes_count,
                "schema_url": sc.schema_url,
            },
            "time_unix_nano": rec.time_unix_nano.to_string(),
            "observed_time_unix_nano": rec.observed_time_unix_nano.to_string(),
            "severity_number": rec.severity_number,
            "severity_text": rec.severity_text,
            "body": any(&rec.body)?,
            "attributes": attrs(&rec.attributes)?,
            "dropped_attributes_count": rec.dropped_attributes_count,
            "flags": rec.flags,
            "trace_id": id(&rec.trace_id, 16)?,
            "span_id": id(&rec.span_id, 8)?,
            "event_name": rec.event_name,
        });
        serde_json_canonicalizer::to_vec(&value).ok()
    }

    /// Keys that sort differently by UTF-8 bytes and by UTF-16 code units
    /// (U+E000..U+FFFF against astral characters), plus escapes and look-alikes.
    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "a",
            "b",
            "aa",
            "A",
            "",
            "\u{e9}",
            "\u{ff61}",
            "\u{1f600}",
            "\u{10000}",
            "\u{e000}",
            "\"",
            "\\",
            "\n",
            "\u{1}",
            "\u{7f}",
            "gen_ai.agent.id",
        ])
        .prop_map(str::to_owned)
    }

    fn any_value() -> impl Strategy<Value = AnyValue> {
        let leaf = prop_oneof![
            Just(AnyValue::Empty),
            key().prop_map(AnyValue::String),
            any::<bool>().prop_map(AnyValue::Bool),
            any::<i64>().prop_map(AnyValue::Int),
            any::<f64>().prop_map(AnyValue::Double),
            prop::sample::select(vec![
                0.0,
                -0.0,
                1e21,
                1e-7,
                123456789012345680000.0,
                5e-324,
                0.1,
                1.0 / 3.0,
                f64::MAX,
                f64::NAN,
                f64::INFINITY,
            ])
            .prop_map(AnyValue::Double),
            prop::collection::vec(any::<u8>(), 0..8).prop_map(AnyValue::Bytes),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(AnyValue::Array),
                prop::collection::vec((key(), inner), 0..4).prop_map(|kvs| {
                    AnyValue::KvList(
                        kvs.into_iter()
                            .map(|(key, value)| KeyValue { key, value })
                            .collect(),
                    )
                }),
            ]
        })
    }

    fn key_values() -> impl Strategy<Value = Vec<KeyValue>> {
        prop::collection::vec((key(), any_value()), 0..5).prop_map(|kvs| {
            kvs.into_iter()
                .map(|(key, value)| KeyValue { key, value })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn the_direct_encoder_agrees_with_the_canonicaliser(
            principal in prop::option::of(key()),
            resource_attributes in key_values(),
            scope_attributes in key_values(),
            attributes in key_values(),
            body in any_value(),
            times in (any::<u64>(), any::<u64>()),
            numbers in (any::<i32>(), any::<u32>(), any::<u32>()),
            text in (key(), key(), key()),
            ids in (prop::collection::vec(any::<u8>(), 0..17), prop::collection::vec(any::<u8>(), 0..9)),
        ) {
            let log = OtlpLog {
                principal,
                resource: Resource {
                    attributes: resource_attributes,
                    dropped_attributes_count: numbers.1,
                    schema_url: text.0.clone(),
                },
                scope: Scope {
                    name: text.1.clone(),
                    version: text.2.clone(),
                    attributes: scope_attributes,
                    dropped_attributes_count: numbers.2,
                    schema_url: text.0,
                },
                record: LogRecord {
                    time_unix_nano: times.0,
                    observed_time_unix_nano: times.1,
                    severity_number: numbers.0,
                    severity_text: text.1,
                    body,
                    attributes,
                    dropped_attributes_count: numbers.1,
                    flags: numbers.2,
                    trace_id: ids.0,
                    span_id: ids.1,
                    event_name: text.2,
                },
            };
            prop_assert_eq!(log.to_leaf().ok(), reference_leaf(&log));
        }
    }

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
