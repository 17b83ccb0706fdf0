//! Prints the test vectors in `tests/vectors/events.json` (deterministic keys), so the
//! file can be regenerated and reviewed: `cargo run --release -p merklog-event --example
//! event_vectors > crates/event/tests/vectors/events.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use merklog_event::{Event, EventDraft, MEDIA_TYPE_HEARTBEAT, MEDIA_TYPE_UNUSED, UnusedRange};
use merklog_merkle::to_hex as hex;
use merklog_note::Ed25519Signer;
use serde_json::{Value, json};

fn valid(description: &str, signer: &Ed25519Signer, event: &Event) -> Value {
    json!({
        "description": description,
        "vkey": signer.verifier().to_vkey(),
        "envelope": hex(event.as_bytes()),
        "source": event.source(),
        "key_id": format!("{:08x}", event.key_id()),
        "sequence": event.sequence(),
        "timestamp_ms": event.timestamp_ms(),
        "media_type": event.media_type(),
        "payload": hex(event.payload()),
        "leaf_hash": hex(merklog_merkle::hash_leaf(event.as_bytes()).as_bytes()),
    })
}

fn invalid(description: &str, vkey: &str, envelope: &[u8]) -> Value {
    json!({ "description": description, "vkey": vkey, "envelope": hex(envelope) })
}

fn main() {
    let agent = Ed25519Signer::from_seed("agents.example.com/agent-7", &[7; 32]).unwrap();
    let other = Ed25519Signer::from_seed("agents.example.com/agent-7", &[8; 32]).unwrap();
    let tool = Ed25519Signer::from_seed("tools.example.org/retriever", &[9; 32]).unwrap();
    let sign = |signer: &Ed25519Signer, sequence, media_type, payload: &[u8]| {
        Event::sign(
            signer,
            &EventDraft {
                source: merklog_note::Signer::name(signer),
                sequence,
                timestamp_ms: 1_767_225_600_000 + sequence * 1_000,
                media_type,
                payload,
            },
        )
        .unwrap()
    };
    let data = sign(
        &agent,
        0,
        "application/json",
        br#"{"action":"model.invoke","model":"m-42"}"#,
    );
    let binary = sign(
        &tool,
        18_446_744_073_709_551_615,
        "application/octet-stream",
        &[0, 1, 2, 255],
    );
    let empty = sign(&agent, 1, "text/plain", b"");
    let heartbeat = sign(&agent, 2, MEDIA_TYPE_HEARTBEAT, b"");
    let unused = sign(
        &agent,
        10,
        MEDIA_TYPE_UNUSED,
        &UnusedRange { first: 3, last: 9 }.to_payload(),
    );
    let vkey = agent.verifier().to_vkey();
    let other_vkey = other.verifier().to_vkey();

    let mut cases = Vec::new();
    let base = data.as_bytes().to_vec();
    let mut changed_payload = base.clone();
    let payload_at = base.len() - 64 - 2;
    changed_payload[payload_at] ^= 0x01;
    cases.push(invalid("payload byte changed", &vkey, &changed_payload));
    let mut changed_signature = base.clone();
    let last = changed_signature.len() - 1;
    changed_signature[last] ^= 0x80;
    cases.push(invalid("signature byte changed", &vkey, &changed_signature));
    let mut changed_sequence = base.clone();
    changed_sequence[5 + 1 + "agents.example.com/agent-7".len() + 4 + 7] = 5;
    cases.push(invalid("sequence changed", &vkey, &changed_sequence));
    cases.push(invalid(
        "verified with another key of the same name",
        &other_vkey,
        &base,
    ));
    cases.push(invalid(
        "verified with another source's key",
        &tool.verifier().to_vkey(),
        &base,
    ));
    let mut magic = base.clone();
    magic[0] = b'X';
    cases.push(invalid("wrong magic", &vkey, &magic));
    let mut version = base.clone();
    version[4] = 2;
    cases.push(invalid("version 2", &vkey, &version));
    cases.push(invalid(
        "truncated signature",
        &vkey,
        &base[..base.len() - 1],
    ));
    let mut trailing = base.clone();
    trailing.push(0);
    cases.push(invalid("a byte after the signature", &vkey, &trailing));
    let mut high_s = base.clone();
    // S + L: the same signature with a non-canonical S, which strict verification refuses.
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let s_at = high_s.len() - 32;
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(high_s[s_at + i]) + u16::from(l[i]) + carry;
        high_s[s_at + i] = sum as u8;
        carry = sum >> 8;
    }
    cases.push(invalid("non-canonical S (S + L)", &vkey, &high_s));
    let bad_heartbeat = sign(&agent, 4, "text/plain", b"x").into_bytes();
    // Re-sign a heartbeat with a payload by hand: the library refuses to build one.
    let mut hb = bad_heartbeat[..5 + 1 + 26 + 4 + 8 + 8].to_vec();
    hb.push(MEDIA_TYPE_HEARTBEAT.len() as u8);
    hb.extend_from_slice(MEDIA_TYPE_HEARTBEAT.as_bytes());
    hb.extend_from_slice(&1u32.to_be_bytes());
    hb.push(b'x');
    let mut message = merklog_event::SIGNATURE_CONTEXT.to_vec();
    message.extend_from_slice(&hb);
    use merklog_note::Signer as _;
    hb.extend_from_slice(&agent.sign(&message).unwrap());
    cases.push(invalid(
        "heartbeat with a payload (validly signed)",
        &vkey,
        &hb,
    ));

    let vectors = json!({
        "format": "merklog event envelope version 1 (docs/event-format.md)",
        "signature_context": hex(merklog_event::SIGNATURE_CONTEXT),
        "valid": [
            valid("JSON payload, sequence 0", &agent, &data),
            valid("binary payload, largest sequence", &tool, &binary),
            valid("empty payload", &agent, &empty),
            valid("heartbeat", &agent, &heartbeat),
            valid("unused sequence numbers 3..=9", &agent, &unused),
        ],
        "invalid": cases,
    });
    println!("{}", serde_json::to_string_pretty(&vectors).unwrap());
}
