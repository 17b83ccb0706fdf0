//! The index terms of an entry: for an audit event of the ai-audit/v1 profile
//! (`AuditEvent::from_leaf`), its actor id, model id and action, and for a signed
//! source event its source name, each filed at the event's time.
//!
//! A term is `<kind>=<value>` in UTF-8. The log refuses NUL bytes in terms (they
//! separate the term from the time in the index key), so a value holding one is not
//! filed, and a query for it is refused.

use bytes::Bytes;
use merklog_event::profile::AuditEvent;
use merklog_event::{Event, looks_like_event};
use merklog_log::{IndexTerm, MAX_TERM_LEN};

/// The kinds of terms, as named in a term and in the query's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TermKind {
    Actor,
    Model,
    Action,
    Source,
}

impl TermKind {
    fn name(self) -> &'static str {
        match self {
            TermKind::Actor => "actor",
            TermKind::Model => "model",
            TermKind::Action => "action",
            TermKind::Source => "source",
        }
    }
}

/// The term for `value` of `kind`, or why there is none.
pub(crate) fn term(kind: TermKind, value: &str) -> Result<Bytes, String> {
    let name = kind.name();
    if value.contains('\0') {
        return Err(format!("{name}: holds a NUL byte"));
    }
    let term = format!("{name}={value}");
    if term.len() > MAX_TERM_LEN {
        return Err(format!(
            "{name}: {} bytes; the limit is {}",
            value.len(),
            MAX_TERM_LEN - name.len() - 1
        ));
    }
    Ok(Bytes::from(term))
}

/// The terms an entry is filed under (none for an entry that is not an audit event).
pub(crate) fn entry_terms(entry: &[u8]) -> Vec<IndexTerm> {
    let envelope = if looks_like_event(entry) {
        Event::parse(entry).ok()
    } else {
        None
    };
    // An envelope whose payload is a profile document is an audit event too, whether
    // or not `from_leaf` looks inside envelopes.
    let event = AuditEvent::from_leaf(entry).or_else(|| {
        envelope
            .as_ref()
            .and_then(|e| AuditEvent::from_leaf(e.payload()))
    });
    match event {
        Some(event) => event_terms(&event, envelope.as_ref()),
        None => Vec::new(),
    }
}

/// The terms of an audit event, carried in `envelope` if it came in a signed one.
pub(crate) fn event_terms(event: &AuditEvent, envelope: Option<&Event>) -> Vec<IndexTerm> {
    let time_ms = event
        .time_unix_ms()
        .or_else(|| envelope.map(Event::timestamp_ms));
    let mut values = vec![
        (TermKind::Actor, event.actor.id.as_str()),
        (TermKind::Action, event.action.as_str()),
    ];
    if let Some(model) = event.model.as_ref().and_then(|m| m.id.as_deref()) {
        values.push((TermKind::Model, model));
    }
    if let Some(envelope) = envelope {
        values.push((TermKind::Source, envelope.source()));
    }
    values
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .filter_map(|(kind, value)| term(kind, value).ok())
        .map(|term| IndexTerm { term, time_ms })
        .collect()
}

/// The terms of every entry of a call; empty when none is an audit event (the
/// log then takes the call like a plain append).
pub(crate) fn call_terms(entries: &[Bytes]) -> Vec<Vec<IndexTerm>> {
    let terms: Vec<Vec<IndexTerm>> = entries.iter().map(|e| entry_terms(e)).collect();
    if terms.iter().all(Vec::is_empty) {
        return Vec::new();
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;
    use merklog_event::EventDraft;
    use merklog_note::Ed25519Signer;

    const DOC: &str = r#"{"profile":"ai-audit/v1","time":"2026-03-01T12:00:00Z",
        "actor":{"id":"agent-7","kind":"agent"},"action":"chat",
        "model":{"id":"m-42"}}"#;

    fn names(terms: &[IndexTerm]) -> Vec<String> {
        terms
            .iter()
            .map(|t| String::from_utf8_lossy(&t.term).into_owned())
            .collect()
    }

    #[test]
    fn a_profile_document_is_filed_under_actor_action_and_model_at_its_time() {
        let terms = entry_terms(DOC.as_bytes());
        assert_eq!(
            names(&terms),
            ["actor=agent-7", "action=chat", "model=m-42"]
        );
        assert!(terms.iter().all(|t| t.time_ms == Some(1_772_366_400_000)));
        assert!(entry_terms(b"opaque bytes").is_empty());
        assert!(call_terms(&[Bytes::from_static(b"x")]).is_empty());
        assert_eq!(
            call_terms(&[Bytes::from_static(b"x"), Bytes::from_static(DOC.as_bytes())]).len(),
            2
        );
        // A NUL in a value: that term is left out, the others stay.
        let nul = DOC.replace("agent-7", "agent\\u00007");
        assert_eq!(
            names(&entry_terms(nul.as_bytes())),
            ["action=chat", "model=m-42"]
        );
    }

    #[test]
    fn a_signed_event_with_a_profile_payload_is_filed_under_its_source_too() {
        let signer = Ed25519Signer::from_seed("agents.example/a7", &[1u8; 32]).unwrap();
        let event = Event::sign(
            &signer,
            &EventDraft {
                source: "agents.example/a7",
                sequence: 3,
                timestamp_ms: 5,
                media_type: "application/json",
                payload: DOC.as_bytes(),
            },
        )
        .unwrap();
        let terms = entry_terms(event.as_bytes());
        assert_eq!(
            names(&terms),
            [
                "actor=agent-7",
                "action=chat",
                "model=m-42",
                "source=agents.example/a7"
            ]
        );
        assert!(terms.iter().all(|t| t.time_ms == Some(1_772_366_400_000)));
    }

    #[test]
    fn query_values_are_checked() {
        assert!(term(TermKind::Actor, "a\0b").is_err());
        assert!(term(TermKind::Model, &"x".repeat(MAX_TERM_LEN)).is_err());
        assert_eq!(term(TermKind::Source, "s").unwrap(), "source=s");
    }
}
