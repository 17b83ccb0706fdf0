//! Building, parsing and verifying envelopes, one by one and in batches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use merklog_event::{
    Event, EventDraft, EventError, EventKind, MEDIA_TYPE_HEARTBEAT, MEDIA_TYPE_UNUSED, SourceKey,
    UnusedRange, looks_like_event, verify_batch,
};
use merklog_note::{Ed25519Signer, Verifier as _};

fn signer(name: &str, seed: u8) -> Ed25519Signer {
    Ed25519Signer::from_seed(name, &[seed; 32]).unwrap()
}

fn key(signer: &Ed25519Signer) -> SourceKey {
    SourceKey::from_verifier(&signer.verifier()).unwrap()
}

fn event(signer: &Ed25519Signer, sequence: u64, payload: &[u8]) -> Event {
    Event::sign(
        signer,
        &EventDraft {
            source: merklog_note::Signer::name(signer),
            sequence,
            timestamp_ms: 1_700_000_000_000,
            media_type: "application/json",
            payload,
        },
    )
    .unwrap()
}

#[test]
fn round_trip_keeps_every_field_and_byte() {
    let s = signer("a.example/x", 1);
    let e = event(&s, 77, b"{\"k\":1}");
    let parsed = Event::parse(e.as_bytes()).unwrap();
    assert_eq!(parsed, e);
    assert_eq!(parsed.source(), "a.example/x");
    assert_eq!(parsed.sequence(), 77);
    assert_eq!(parsed.payload(), b"{\"k\":1}");
    assert_eq!(parsed.kind().unwrap(), EventKind::Data);
    assert!(looks_like_event(e.as_bytes()));
    assert!(!looks_like_event(b"hello world"));
    parsed.verify(&key(&s)).unwrap();
    assert_eq!(
        SourceKey::parse(&key(&s).to_vkey()).unwrap().key_id(),
        s.verifier().key_id()
    );
}

#[test]
fn every_single_byte_change_is_refused() {
    let s = signer("a.example/x", 1);
    let k = key(&s);
    let e = event(&s, 5, b"payload");
    for i in 0..e.as_bytes().len() {
        let mut bytes = e.as_bytes().to_vec();
        bytes[i] ^= 0x01;
        let accepted = Event::parse(&bytes).is_ok_and(|changed| changed.verify(&k).is_ok());
        assert!(!accepted, "byte {i} changed and still accepted");
    }
}

#[test]
fn wrong_key_and_wrong_name_are_named() {
    let s = signer("a.example/x", 1);
    let e = event(&s, 5, b"p");
    let other = key(&signer("a.example/x", 2));
    assert!(matches!(e.verify(&other), Err(EventError::WrongKey { .. })));
    let elsewhere = key(&signer("b.example/y", 1));
    assert!(matches!(
        e.verify(&elsewhere),
        Err(EventError::WrongKey { .. })
    ));
    // A draft whose source is not the key's name is refused before signing.
    let err = Event::sign(
        &s,
        &EventDraft {
            source: "b.example/y",
            sequence: 0,
            timestamp_ms: 0,
            media_type: "text/plain",
            payload: b"",
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("source"), "{err}");
}

#[test]
fn reserved_media_types_are_checked() {
    let s = signer("a.example/x", 1);
    let draft = |media_type, payload, sequence| EventDraft {
        source: "a.example/x",
        sequence,
        timestamp_ms: 0,
        media_type,
        payload,
    };
    let hb = Event::sign(&s, &draft(MEDIA_TYPE_HEARTBEAT, b"", 3)).unwrap();
    assert_eq!(hb.kind().unwrap(), EventKind::Heartbeat);
    assert!(Event::sign(&s, &draft(MEDIA_TYPE_HEARTBEAT, b"x", 3)).is_err());
    let range = UnusedRange { first: 4, last: 9 };
    let payload = range.to_payload();
    let unused = Event::sign(&s, &draft(MEDIA_TYPE_UNUSED, &payload, 10)).unwrap();
    assert_eq!(unused.kind().unwrap(), EventKind::Unused(range));
    assert!(Event::sign(&s, &draft(MEDIA_TYPE_UNUSED, &payload, 5)).is_err());
    let backwards = UnusedRange { first: 9, last: 4 }.to_payload();
    assert!(Event::sign(&s, &draft(MEDIA_TYPE_UNUSED, &backwards, 10)).is_err());
    assert!(Event::sign(&s, &draft(MEDIA_TYPE_UNUSED, b"short", 10)).is_err());
    assert!(Event::sign(&s, &draft("no slash", b"", 1)).is_err());
    assert!(Event::sign(&s, &draft("text/plain; charset=utf-8", b"", 1)).is_err());
}

#[test]
fn too_large_is_refused() {
    let s = signer("a.example/x", 1);
    let big = vec![b'a'; merklog_event::MAX_EVENT_LEN];
    let err = Event::sign(
        &s,
        &EventDraft {
            source: "a.example/x",
            sequence: 0,
            timestamp_ms: 0,
            media_type: "text/plain",
            payload: &big,
        },
    )
    .unwrap_err();
    assert!(matches!(err, EventError::TooLarge { .. }), "{err}");
}

#[test]
fn batch_accepts_good_events_and_names_the_first_bad_one() {
    let a = signer("a.example/x", 1);
    let b = signer("b.example/y", 2);
    let (ka, kb) = (key(&a), key(&b));
    let events: Vec<Event> = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                event(&a, i, b"p")
            } else {
                event(&b, i, b"q")
            }
        })
        .collect();
    let pairs: Vec<(&Event, &SourceKey)> = events
        .iter()
        .map(|e| {
            (
                e,
                if e.source() == "a.example/x" {
                    &ka
                } else {
                    &kb
                },
            )
        })
        .collect();
    verify_batch(&pairs).unwrap();
    verify_batch(&[]).unwrap();

    // A changed signature at position 17.
    let mut bytes = events[17].as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let bad = Event::parse(&bytes).unwrap();
    let mut with_bad = pairs.clone();
    with_bad[17] = (&bad, &kb);
    let failure = verify_batch(&with_bad).unwrap_err();
    assert_eq!(failure.index, 17);
    assert!(matches!(
        failure.error,
        EventError::BadSignature { sequence: 17, .. }
    ));

    // The wrong key at position 3.
    let mut wrong = pairs.clone();
    wrong[3] = (&events[3], &ka);
    assert_eq!(verify_batch(&wrong).unwrap_err().index, 3);
}

#[test]
fn a_batch_of_one_gets_the_strict_check() {
    let a = signer("a.example/x", 1);
    let b = signer("b.example/y", 2);
    let good = event(&a, 5, b"p");
    verify_batch(&[(&good, &key(&a))]).unwrap();
    let mut bytes = good.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let bad = Event::parse(&bytes).unwrap();
    let failure = verify_batch(&[(&bad, &key(&a))]).unwrap_err();
    assert_eq!(failure.index, 0);
    assert!(matches!(
        failure.error,
        EventError::BadSignature { sequence: 5, .. }
    ));
    // Another source's key: refused for the name before any signature check.
    let failure = verify_batch(&[(&good, &key(&b))]).unwrap_err();
    assert!(
        !matches!(failure.error, EventError::BadSignature { .. }),
        "{:?}",
        failure.error
    );
}

#[test]
fn garbage_is_refused_with_the_field_named() {
    assert!(matches!(
        Event::parse(b""),
        Err(EventError::NotAnEvent { .. })
    ));
    assert!(matches!(
        Event::parse(b"MLEV\x02"),
        Err(EventError::UnsupportedVersion(2))
    ));
    let err = Event::parse(b"MLEV\x01\x05ab").unwrap_err();
    assert_eq!(err, EventError::Truncated { field: "source" });
}
