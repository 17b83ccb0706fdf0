//! The independent verifier written from docs/event-format.md (Python, `hashlib` and
//! `cryptography` only) accepts the vectors and freshly signed events, and refuses a
//! changed payload. scripts/prereqs installs `cryptography` when it is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use merklog_event::{Event, EventDraft, MEDIA_TYPE_HEARTBEAT};
use merklog_note::Ed25519Signer;

const VERIFIER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/verify_event.py");

fn python(args: &[&str]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(VERIFIER)
        .args(args)
        .output()
        .expect("python3 runs (scripts/prereqs installs python3 and its cryptography package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the Python verifier needs `cryptography`: run scripts/prereqs\n{stderr}"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &stderr,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn python_verifier_accepts_the_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/events.json");
    let (ok, out) = python(&["vectors", path]);
    assert!(ok, "{out}");
    assert!(out.starts_with("ok "), "{out}");
}

#[test]
fn python_verifier_agrees_on_fresh_events_and_refuses_a_changed_payload() {
    let signer = Ed25519Signer::from_seed("svc.example/agent-1", &[42; 32]).unwrap();
    let vkey = signer.verifier().to_vkey();
    let mut envelopes = Vec::new();
    for sequence in 0..20u64 {
        let payload = format!("{{\"n\":{sequence},\"text\":\"caf\u{e9} \u{2603}\"}}");
        let (media_type, payload) = if sequence % 7 == 3 {
            (MEDIA_TYPE_HEARTBEAT, String::new())
        } else {
            ("application/json", payload)
        };
        let event = Event::sign(
            &signer,
            &EventDraft {
                source: "svc.example/agent-1",
                sequence: sequence * 1_000_003,
                timestamp_ms: 1_700_000_000_000 + sequence,
                media_type,
                payload: payload.as_bytes(),
            },
        )
        .unwrap();
        envelopes.push(event.into_bytes());
    }
    let hexes: Vec<String> = envelopes.iter().map(|e| hex(e)).collect();
    let mut args = vec!["verify", vkey.as_str()];
    args.extend(hexes.iter().map(String::as_str));
    let (ok, out) = python(&args);
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        20,
        "{out}"
    );
    // Each leaf hash printed by Python is the one the log computes.
    for (line, envelope) in out.lines().zip(&envelopes) {
        let leaf = hex(merklog_merkle::hash_leaf(envelope).as_bytes());
        assert!(line.ends_with(&leaf), "{line} vs {leaf}");
    }

    let mut changed = envelopes[0].clone();
    let at = changed.len() - 64 - 1;
    changed[at] ^= 0x20;
    let changed = hex(&changed);
    let (ok, out) = python(&["verify", &vkey, &changed]);
    assert!(!ok, "{out}");
    assert!(out.contains("refused"), "{out}");
}
