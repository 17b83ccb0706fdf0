//! The AI audit-event profile `ai-audit/v1`: who did what, with which model and data,
//! under which policy and whose oversight.
//!
//! A profile document is a JSON object with `"profile": "ai-audit/v1"`; the fields are
//! those of [`AuditEvent`], with `time` as RFC 3339 (UTC, `Z`). The same fields are
//! extracted from other entry shapes by [`AuditEvent::from_leaf`], so queries and rules
//! see one shape whatever the entry's form.

use serde::{Deserialize, Serialize};

use crate::EventError;

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
        let event: AuditEvent = serde_json::from_slice(bytes).map_err(|e| EventError::Profile {
            field: "document".into(),
            reason: e.to_string(),
        })?;
        event.check()?;
        Ok(event)
    }

    /// The audit event an entry carries, if it is one: a profile document.
    pub fn from_leaf(leaf: &[u8]) -> Option<AuditEvent> {
        AuditEvent::from_document(leaf).ok()
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
        Ok(())
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
