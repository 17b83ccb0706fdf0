//! Schema mode: with `schema = "ai-audit/v1"` every entry of a call must be an
//! audit event of that profile (a profile document, a signed source event whose
//! JSON payload is one, or an OpenTelemetry log record whose attributes map to
//! one), else the whole call is refused with INVALID_ARGUMENT naming the entry
//! and the field, before anything is queued. The reserved records of signed
//! sources (heartbeats, unused-sequence declarations) are exempt: they say
//! something about the source, not about an action.

use std::fmt;

use bytes::Bytes;
use merklog_event::profile::AuditEvent;
use merklog_event::{Event, EventError, EventKind, looks_like_event};
use serde::{Deserialize, Serialize};
use tonic::Status;

/// The profiles a log can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Schema {
    /// The AI audit-event profile `ai-audit/v1`.
    #[serde(rename = "ai-audit/v1")]
    #[value(name = "ai-audit/v1")]
    AiAuditV1,
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Schema::AiAuditV1 => merklog_event::profile::PROFILE_AI_AUDIT_V1,
        })
    }
}

/// Why `entry` does not conform to `schema`, if it does not.
pub(crate) fn check_entry(schema: Schema, entry: &[u8]) -> Result<(), EventError> {
    match schema {
        Schema::AiAuditV1 => {
            if looks_like_event(entry)
                && let Ok(event) = Event::parse(entry)
                && !matches!(event.kind(), Ok(EventKind::Data))
            {
                return Ok(());
            }
            AuditEvent::from_entry(entry).map(|_| ())
        }
    }
}

/// Checks every entry of a call; the first that does not conform refuses it.
pub(crate) fn check_entries(schema: Option<Schema>, entries: &[Bytes]) -> Result<(), Status> {
    let Some(schema) = schema else {
        return Ok(());
    };
    for (position, entry) in entries.iter().enumerate() {
        check_entry(schema, entry).map_err(|e| {
            Status::invalid_argument(format!(
                "entries[{position}]: not a {schema} audit event: {e} (this log has schema = \"{schema}\")"
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_refused_naming_the_entry_and_field() {
        let good = Bytes::from_static(
            br#"{"profile":"ai-audit/v1","time":"2026-03-01T12:00:00Z","actor":{"id":"a","kind":"agent"},"action":"chat"}"#,
        );
        let bad = Bytes::from_static(
            br#"{"profile":"ai-audit/v1","time":"2026-03-01T12:00:00Z","actor":{"id":"a","kind":"agent"},"action":""}"#,
        );
        assert!(check_entries(None, std::slice::from_ref(&bad)).is_ok());
        assert!(check_entries(Some(Schema::AiAuditV1), std::slice::from_ref(&good)).is_ok());
        let status = check_entries(Some(Schema::AiAuditV1), &[good, bad]).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().starts_with("entries[1]:"), "{status:?}");
        assert!(status.message().contains("field action"), "{status:?}");
    }
}
