//! The AI audit-event profile `ai-audit/v1`: who did what, with which model and data,
//! under which policy and whose oversight.
//!
//! A profile document is a JSON object with `"profile": "ai-audit/v1"`; the fields are
//! those of [`AuditEvent`], with `time` as RFC 3339 (UTC, `Z`). The same fields are
//! extracted from other entry shapes by [`AuditEvent::from_leaf`], so queries and rules
//! see one shape whatever the entry's form: a profile document, a signed source
//! event whose media type is `application/json` and whose payload is a profile
//! document, or an OpenTelemetry log record leaf (`merklog.otlp-log/v1`, mapped
//! from GenAI semantic-convention and `merklog.*` attributes; see `otlp`).
//!
//! `docs/ai-audit-v1.schema.json` states the document form as a JSON Schema; a test
//! checks that it and [`AuditEvent::from_document`] agree.

mod otlp;

use serde::{Deserialize, Serialize};

use crate::{Event, EventError, looks_like_event};

/// The media type of a signed source event whose payload is a profile document.
pub const MEDIA_TYPE_JSON: &str = "application/json";

/// The profile's name and version, the value of a document's `profile` field.
pub const PROFILE_AI_AUDIT_V1: &str = "ai-audit/v1";

/// What kind of actor did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// A person.
    Human,
    /// An AI agent.
    Agent,
    /// A non-AI service.
    Service,
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// Stable identifier of the actor.
    pub id: String,
    /// What kind of actor it is.
    pub kind: ActorKind,
}

/// The model involved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Provider (`gen_ai.provider.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Model identifier (`gen_ai.request.model` / `gen_ai.response.model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Model version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Digest of the model weights, `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One tool call made during the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// Tool name (`gen_ai.tool.name`).
    pub name: String,
    /// Call identifier (`gen_ai.tool.call.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Human oversight of the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Oversight {
    /// Who reviewed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// Whether the reviewer approved it (absent: no decision recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<bool>,
}

/// The policy the operation was checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Policy identifier.
    pub id: String,
    /// Policy version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A change of configuration (for example a safety setting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigChange {
    /// The setting that changed.
    pub setting: String,
    /// Its value before, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// Its value after, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// One audit event in the `ai-audit/v1` profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Always [`PROFILE_AI_AUDIT_V1`].
    pub profile: String,
    /// When it happened, RFC 3339 in UTC.
    pub time: String,
    /// Who did it.
    pub actor: Actor,
    /// What was done (`gen_ai.operation.name` or an application verb).
    pub action: String,
    /// What it was done to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The model involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Model>,
    /// Data sources used (`gen_ai.data_source.id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
    /// Hash of the prompt or prompt template, `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_hash: Option<String>,
    /// Tool calls made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The decision or outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// Human oversight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oversight: Option<Oversight>,
    /// The policy applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// A configuration change this event records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_change: Option<ConfigChange>,
    /// W3C trace id, 32 lowercase hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// W3C span id, 16 lowercase hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
}

impl AuditEvent {
    /// Parses and checks a profile document (a JSON object with
    /// `"profile": "ai-audit/v1"`), naming the first field that does not conform.
    pub fn from_document(bytes: &[u8]) -> Result<AuditEvent, EventError> {
        AuditEvent::from_value(parse_document(bytes)?)
    }

    /// [`AuditEvent::from_document`] on a parsed document.
    fn from_value(value: serde_json::Value) -> Result<AuditEvent, EventError> {
        if let Some(field) = null_member(&value, String::new()) {
            return Err(EventError::Profile {
                field,
                reason: "null is not a value; leave the member out".into(),
            });
        }
        let event: AuditEvent = serde_json::from_value(value).map_err(document_error)?;
        event.check()?;
        Ok(event)
    }

    /// The audit event an entry carries, if it is one: a profile document, a
    /// signed source event with a profile document as its JSON payload, or an
    /// OpenTelemetry log record leaf whose attributes conform.
    pub fn from_leaf(leaf: &[u8]) -> Option<AuditEvent> {
        AuditEvent::from_entry(leaf).ok()
    }

    /// Like [`AuditEvent::from_leaf`], but says why an entry does not conform,
    /// naming the profile field (and for OTLP records the attribute it maps from).
    pub fn from_entry(entry: &[u8]) -> Result<AuditEvent, EventError> {
        if looks_like_event(entry) {
            let event = Event::parse(entry)?;
            if event.media_type() != MEDIA_TYPE_JSON {
                return Err(EventError::Profile {
                    field: "media_type".into(),
                    reason: format!(
                        "a signed event carries a profile document as {MEDIA_TYPE_JSON}, not {}",
                        event.media_type()
                    ),
                });
            }
            return AuditEvent::from_document(event.payload());
        }
        // Parsed once, then read as an OpenTelemetry record leaf or a profile document.
        match parse_document(entry)? {
            serde_json::Value::Object(map) if crate::otlp::is_record_leaf(&map) => {
                otlp::from_otlp(&map)
            }
            value => AuditEvent::from_value(value),
        }
    }

    /// The audit event of an OpenTelemetry log record, read from the record itself:
    /// the same event, or the same error, as [`AuditEvent::from_entry`] gives for the
    /// record's leaf ([`crate::otlp::LeafContext::leaf`]), for a record whose leaf
    /// encodes, without encoding and parsing it again.
    pub fn from_otlp_record(
        resource: &crate::otlp::Resource,
        scope: &crate::otlp::Scope,
        record: &crate::otlp::LogRecord,
    ) -> Result<AuditEvent, EventError> {
        otlp::from_record(resource, scope, record)
    }

    /// When it happened, as Unix milliseconds.
    pub fn time_unix_ms(&self) -> Option<u64> {
        let t = humantime::parse_rfc3339(&self.time).ok()?;
        let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
        u64::try_from(d.as_millis()).ok()
    }

    /// The checks serde's shape cannot express.
    fn check(&self) -> Result<(), EventError> {
        let bad = |field: &str, reason: &str| EventError::Profile {
            field: field.into(),
            reason: reason.into(),
        };
        if self.profile != PROFILE_AI_AUDIT_V1 {
            return Err(bad("profile", "must be \"ai-audit/v1\""));
        }
        if self.time_unix_ms().is_none() {
            return Err(bad("time", "must be an RFC 3339 time in UTC (Z)"));
        }
        if self.actor.id.is_empty() {
            return Err(bad("actor.id", "must not be empty"));
        }
        if self.action.is_empty() {
            return Err(bad("action", "must not be empty"));
        }
        let hex = |v: &Option<String>, len: usize| {
            v.as_ref().is_none_or(|s| {
                s.len() == len
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
        };
        if !hex(&self.trace_id, 32) {
            return Err(bad("trace_id", "must be 32 lowercase hex digits"));
        }
        if !hex(&self.span_id, 16) {
            return Err(bad("span_id", "must be 16 lowercase hex digits"));
        }
        let sha256 = |v: Option<&String>| {
            v.is_none_or(|s| {
                s.strip_prefix("sha256:").is_some_and(|h| {
                    !h.is_empty()
                        && h.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                })
            })
        };
        if !sha256(self.model.as_ref().and_then(|m| m.digest.as_ref())) {
            return Err(bad(
                "model.digest",
                "must be sha256: and lowercase hex digits",
            ));
        }
        if !sha256(self.prompt_hash.as_ref()) {
            return Err(bad(
                "prompt_hash",
                "must be sha256: and lowercase hex digits",
            ));
        }
        if let Some(tool) = self.tool_calls.iter().position(|t| t.name.is_empty()) {
            return Err(bad(
                &format!("tool_calls[{tool}].name"),
                "must not be empty",
            ));
        }
        if self.policy.as_ref().is_some_and(|p| p.id.is_empty()) {
            return Err(bad("policy.id", "must not be empty"));
        }
        if self
            .config_change
            .as_ref()
            .is_some_and(|c| c.setting.is_empty())
        {
            return Err(bad("config_change.setting", "must not be empty"));
        }
        Ok(())
    }
}

/// Parses a document that must be a JSON object. Most entries of a log that is not an
/// audit trail are not JSON at all: those are refused without running the parser and
/// formatting its error, which the index would only drop.
fn parse_document(bytes: &[u8]) -> Result<serde_json::Value, EventError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(EventError::Profile {
            field: "document".into(),
            reason: "not a JSON object".into(),
        });
    }
    serde_json::from_slice(bytes).map_err(document_error)
}

fn document_error(error: serde_json::Error) -> EventError {
    EventError::Profile {
        field: "document".into(),
        reason: error.to_string(),
    }
}

/// The path of the first null member or item, if any (serde would read a null
/// as an absent optional member; the JSON Schema does not allow it).
fn null_member(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::Null => Some(if path.is_empty() {
            "document".into()
        } else {
            path
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| null_member(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let path = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            null_member(v, path)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"profile":"ai-audit/v1","time":"2026-03-01T12:00:00Z",
        "actor":{"id":"agent-7","kind":"agent"},"action":"chat",
        "model":{"provider":"openai","id":"m-42","digest":"sha256:00"},
        "oversight":{"reviewer":"alice","approved":true}}"#;

    #[test]
    fn a_document_parses_with_its_time() {
        let event = AuditEvent::from_document(DOC.as_bytes()).unwrap();
        assert_eq!(event.actor.kind, ActorKind::Agent);
        assert_eq!(event.time_unix_ms(), Some(1_772_366_400_000));
        assert_eq!(AuditEvent::from_leaf(DOC.as_bytes()), Some(event));
    }

    #[test]
    fn what_is_not_a_json_object_is_refused_as_such() {
        for entry in [
            &b"opaque bytes"[..],
            b"",
            b"  [1, 2]",
            b"\"text\"",
            b"\x00{}",
        ] {
            let error = AuditEvent::from_entry(entry).unwrap_err();
            assert_eq!(
                error,
                EventError::Profile {
                    field: "document".into(),
                    reason: "not a JSON object".into()
                },
                "{entry:?}"
            );
            assert!(AuditEvent::from_leaf(entry).is_none());
        }
        // Leading whitespace is JSON's: the document is still read.
        let spaced = format!("\n  {DOC}");
        assert!(AuditEvent::from_leaf(spaced.as_bytes()).is_some());
        // An object that does not parse names the parser's reason.
        let error = AuditEvent::from_entry(b"{\"profile\": ").unwrap_err();
        assert!(
            matches!(&error, EventError::Profile { field, reason } if field == "document" && reason != "not a JSON object"),
            "{error:?}"
        );
    }

    #[test]
    fn a_bad_field_is_named() {
        let cases = [
            (DOC.replace("ai-audit/v1", "ai-audit/v2"), "profile"),
            (DOC.replace("2026-03-01T12:00:00Z", "yesterday"), "time"),
            (DOC.replace(r#""id":"agent-7""#, r#""id":"""#), "actor.id"),
            (
                DOC.replace(r#""action":"chat""#, r#""action":"""#),
                "action",
            ),
            (DOC.replace("\"agent\"", "\"robot\""), "document"),
        ];
        for (doc, field) in cases {
            match AuditEvent::from_document(doc.as_bytes()) {
                Err(EventError::Profile { field: f, .. }) => assert_eq!(f, field, "{doc}"),
                other => panic!("{doc}: {other:?}"),
            }
        }
        assert_eq!(AuditEvent::from_leaf(b"not json"), None);
    }
}
