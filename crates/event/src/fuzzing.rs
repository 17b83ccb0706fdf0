//! Fuzz target bodies, shared by the cargo-fuzz target in `fuzz/` and by the test that
//! replays the checked-in seed corpus. Not part of the API.

use crate::{Event, SourceKey, verify_batch};

/// Parses arbitrary bytes as an envelope. A parsed envelope must re-serialise to the same
/// bytes, expose consistent fields, and verification under an unrelated key must fail
/// without panicking.
pub fn event_parse_target(data: &[u8]) {
    let Ok(event) = Event::parse(data) else {
        return;
    };
    assert_eq!(event.as_bytes(), data);
    assert!(event.kind().is_ok());
    assert_eq!(event.signature().len(), crate::SIGNATURE_LEN);
    let message = event.signed_message();
    assert!(message.starts_with(crate::SIGNATURE_CONTEXT));
    assert_eq!(
        message.len() - crate::SIGNATURE_CONTEXT.len() + crate::SIGNATURE_LEN,
        data.len()
    );
    // A fixed key (RFC 8032 test 1's public key) under the event's own name.
    let vkey_bytes: [u8; 32] = [
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07,
        0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07,
        0x51, 0x1a,
    ];
    if let Ok(verifier) = merklog_note::Ed25519Verifier::new(event.source(), &vkey_bytes)
        && let Ok(key) = SourceKey::from_verifier(&verifier)
    {
        // Arbitrary bytes do not carry a valid signature by that key.
        assert!(event.verify(&key).is_err());
        assert!(verify_batch(&[(&event, &key)]).is_err());
    }
}

/// Reads arbitrary bytes as a log entry for the audit-event profile (an OTLP leaf,
/// a profile document or a signed event), and builds an OTLP leaf around them.
/// An extracted event must conform and survive its document form; an encoded leaf
/// must be deterministic, parse back as an OTLP leaf, and never panic the profile.
pub fn otlp_leaf_target(data: &[u8]) {
    use crate::otlp::{AnyValue, KeyValue, LogRecord, OtlpLog};
    use crate::profile::AuditEvent;

    if let Some(event) = AuditEvent::from_leaf(data) {
        let document = serde_json::to_vec(&event).unwrap_or_default();
        assert_eq!(AuditEvent::from_document(&document).ok(), Some(event));
    }
    // The bytes as attribute keys and values of a record.
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{0}');
    let mut attributes = Vec::new();
    while let (Some(key), Some(value)) = (parts.next(), parts.next()) {
        let value = match value.parse::<i64>() {
            Ok(n) => AnyValue::Int(n),
            Err(_) => AnyValue::String(value.to_owned()),
        };
        attributes.push(KeyValue {
            key: key.to_owned(),
            value,
        });
    }
    let log = OtlpLog {
        principal: Some(text.chars().take(8).collect()),
        record: LogRecord {
            time_unix_nano: data.len() as u64,
            body: AnyValue::Bytes(data.to_vec()),
            attributes,
            ..LogRecord::default()
        },
        ..OtlpLog::default()
    };
    if let Ok(leaf) = log.to_leaf() {
        assert_eq!(log.to_leaf().ok(), Some(leaf.clone()));
        assert!(crate::otlp::parse_leaf(&leaf).is_some());
        let _ = AuditEvent::from_entry(&leaf);
    }
}
