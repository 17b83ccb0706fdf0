//! The checked-in vectors: valid envelopes parse, verify and expose their fields;
//! invalid ones are refused, alone and in a batch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use merklog_event::{Event, SourceKey, verify_batch};
use serde_json::Value;

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/events.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check(vkey: &str, envelope: &[u8]) -> Result<Event, String> {
    let key = SourceKey::parse(vkey).map_err(|e| e.to_string())?;
    let event = Event::parse(envelope).map_err(|e| e.to_string())?;
    event.verify(&key).map_err(|e| e.to_string())?;
    verify_batch(&[(&event, &key)]).map_err(|e| e.error.to_string())?;
    Ok(event)
}

#[test]
fn valid_vectors_verify_with_their_fields() {
    let vectors = vectors();
    let valid = vectors["valid"].as_array().unwrap();
    assert!(valid.len() >= 5);
    for case in valid {
        let name = case["description"].as_str().unwrap();
        let event = check(
            case["vkey"].as_str().unwrap(),
            &unhex(case["envelope"].as_str().unwrap()),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(event.source(), case["source"].as_str().unwrap(), "{name}");
        assert_eq!(
            format!("{:08x}", event.key_id()),
            case["key_id"].as_str().unwrap()
        );
        assert_eq!(
            event.sequence(),
            case["sequence"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(event.timestamp_ms(), case["timestamp_ms"].as_u64().unwrap());
        assert_eq!(event.media_type(), case["media_type"].as_str().unwrap());
        assert_eq!(hex(event.payload()), case["payload"].as_str().unwrap());
        assert_eq!(
            hex(merklog_merkle::hash_leaf(event.as_bytes()).as_bytes()),
            case["leaf_hash"].as_str().unwrap()
        );
    }
}

#[test]
fn invalid_vectors_are_refused() {
    let vectors = vectors();
    let invalid = vectors["invalid"].as_array().unwrap();
    assert!(invalid.len() >= 10);
    for case in invalid {
        let name = case["description"].as_str().unwrap();
        let outcome = check(
            case["vkey"].as_str().unwrap(),
            &unhex(case["envelope"].as_str().unwrap()),
        );
        assert!(outcome.is_err(), "{name}: accepted");
    }
}

#[test]
fn context_matches_the_vectors() {
    assert_eq!(
        vectors()["signature_context"].as_str().unwrap(),
        hex(merklog_event::SIGNATURE_CONTEXT)
    );
}
