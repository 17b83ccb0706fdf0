use std::io::Write as _;

use merklog_event::{EventKind, SourceKey};
use merklog_note::Ed25519Signer;

use super::spool::JOURNAL;
use super::*;

const NAME: &str = "agents.example.com/agent-7";

fn signer() -> Ed25519Signer {
    Ed25519Signer::from_seed(NAME, &[7u8; 32]).unwrap()
}

fn key() -> SourceKey {
    SourceKey::from_verifier(&signer().verifier()).unwrap()
}

fn options(block: u64) -> SourceOptions {
    SourceOptions {
        reserve_block: block,
        ..SourceOptions::default()
    }
}

fn open(dir: &Path, block: u64) -> (Source, Recovery) {
    Source::open(signer(), dir, options(block)).unwrap()
}

fn pending(source: &Source) -> Vec<(u64, Event)> {
    source
        .unacknowledged()
        .unwrap()
        .into_iter()
        .map(|(n, bytes)| (n, Event::parse(&bytes).unwrap()))
        .collect()
}

#[test]
fn events_are_numbered_signed_and_journaled_before_emit_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (source, recovery) = open(dir.path(), 16);
    assert_eq!(recovery.next_sequence, 0);
    assert_eq!(recovery.declared_unused, None);
    assert_eq!(source.emit("text/plain", b"first").unwrap(), 0);
    let numbers = source
        .emit_batch(&[
            EmitItem {
                media_type: "text/plain",
                payload: b"second",
                position: None,
            },
            EmitItem {
                media_type: "application/json",
                payload: b"{}",
                position: None,
            },
        ])
        .unwrap();
    assert_eq!(numbers, vec![1, 2]);
    assert_eq!(source.heartbeat().unwrap(), 3);
    let events = pending(&source);
    assert_eq!(events.len(), 4);
    for (n, event) in &events {
        assert_eq!(event.sequence(), *n);
        assert_eq!(event.source(), NAME);
        event.verify(&key()).unwrap();
    }
    assert_eq!(events[1].1.payload(), b"second");
    assert_eq!(events[3].1.kind().unwrap(), EventKind::Heartbeat);
    // The journal on disk already holds them: a second reader (a crash now) sees them.
    let (records, _) = spool::parse_journal(&std::fs::read(dir.path().join(JOURNAL)).unwrap());
    let journaled = records
        .iter()
        .filter(|r| matches!(r, Record::Event { .. }))
        .count();
    assert_eq!(journaled, 4);
}

#[test]
fn a_crash_resends_the_same_bytes_and_declares_the_unused_rest_of_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = open(dir.path(), 10);
    for i in 0..3 {
        source
            .emit("text/plain", format!("line {i}").as_bytes())
            .unwrap();
    }
    source.acknowledge(&[0]).unwrap();
    let before = source.unacknowledged().unwrap();
    // A crash: no close.
    drop(source);

    let (source, recovery) = open(dir.path(), 10);
    // The first emit reserved 0..=10 (1 + a block of 10); three were used, so
    // 3..=10 were never given.
    let (range, own) = recovery.declared_unused.unwrap();
    assert_eq!(range, UnusedRange { first: 3, last: 10 });
    assert_eq!(own, 11);
    assert_eq!(recovery.unacknowledged, 2);
    assert_eq!(recovery.next_sequence, 12);
    let after = source.unacknowledged().unwrap();
    // The unacknowledged events, byte for byte, then the declaration.
    assert_eq!(after[..2], before[..]);
    let (n, declaration) = &pending(&source)[2];
    assert_eq!(*n, 11);
    declaration.verify(&key()).unwrap();
    assert_eq!(declaration.kind().unwrap(), EventKind::Unused(range));
    // Numbering goes on after the declaration; no number is given twice.
    assert_eq!(source.emit("text/plain", b"next").unwrap(), 12);
}

#[test]
fn a_clean_close_declares_nothing_and_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = open(dir.path(), 100);
    source.emit("text/plain", b"a").unwrap();
    source.emit("text/plain", b"b").unwrap();
    source.acknowledge(&[0, 1]).unwrap();
    source.close().unwrap();
    drop(source);
    let (source, recovery) = open(dir.path(), 100);
    assert_eq!(recovery.declared_unused, None);
    assert_eq!(recovery.unacknowledged, 0);
    assert!(source.unacknowledged().unwrap().is_empty());
    assert_eq!(source.emit("text/plain", b"c").unwrap(), 2);
}

#[test]
fn reservation_blocks_are_durable_before_their_numbers_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = open(dir.path(), 4);
    let reserved = |dir: &Path| {
        let (records, _) = spool::parse_journal(&std::fs::read(dir.join(JOURNAL)).unwrap());
        let mut state = spool::State::default();
        for record in &records {
            state.apply(record);
        }
        (state.next, state.reserved_until)
    };
    source.emit("text/plain", b"0").unwrap();
    assert_eq!(reserved(dir.path()), (1, 5));
    for i in 1..5 {
        source.emit("text/plain", i.to_string().as_bytes()).unwrap();
    }
    // Number 4 was the last of the block; 5 needed a new one, written with it.
    source.emit("text/plain", b"5").unwrap();
    assert_eq!(reserved(dir.path()), (6, 10));
}

#[test]
fn a_torn_last_record_is_dropped_and_its_number_declared_unused() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = open(dir.path(), 8);
    source.emit("text/plain", b"kept").unwrap();
    drop(source);
    // A crash in the middle of writing the event numbered 1.
    let mut torn = Vec::new();
    Record::Event {
        sequence: 1,
        position: None,
        envelope: Bytes::from_static(b"never accepted"),
    }
    .encode(&mut torn);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join(JOURNAL))
        .unwrap();
    file.write_all(&torn[..torn.len() / 2]).unwrap();
    drop(file);

    let (source, recovery) = open(dir.path(), 8);
    assert_eq!(recovery.torn_bytes, (torn.len() / 2) as u64);
    let (range, own) = recovery.declared_unused.unwrap();
    assert_eq!((range.first, range.last, own), (1, 8, 9));
    let events = pending(&source);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].1.payload(), b"kept");
}

#[test]
fn acknowledged_events_are_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = open(dir.path(), 8);
    for i in 0..5 {
        source.emit("text/plain", &[b'a' + i]).unwrap();
    }
    source.acknowledge(&[0, 1, 3]).unwrap();
    let left: Vec<u64> = pending(&source).iter().map(|(n, _)| *n).collect();
    assert_eq!(left, vec![2, 4]);
    source.close().unwrap();
    drop(source);
    let (source, _) = open(dir.path(), 8);
    let left: Vec<u64> = pending(&source).iter().map(|(n, _)| *n).collect();
    assert_eq!(left, vec![2, 4]);
}

#[test]
fn input_positions_are_durable_with_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new("/var/log/app.log");
    let identity = FileIdentity { dev: 1, ino: 2 };
    let (source, _) = open(dir.path(), 8);
    assert_eq!(source.input_position(input).unwrap(), None);
    let file = source.track_input(input, identity).unwrap();
    source
        .emit_batch(&[EmitItem {
            media_type: "text/plain",
            payload: b"line one",
            position: Some((file, 9)),
        }])
        .unwrap();
    drop(source);
    let (source, _) = open(dir.path(), 8);
    assert_eq!(
        source.input_position(input).unwrap(),
        Some(InputPosition {
            file,
            identity,
            offset: 9
        })
    );
    source.set_input_offset(file, 0).unwrap();
    assert_eq!(source.input_position(input).unwrap().unwrap().offset, 0);
}

#[test]
fn a_spool_belongs_to_one_key_and_one_live_process() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = open(dir.path(), 8);
    source.close().unwrap();
    drop(source);
    let other = Ed25519Signer::from_seed(NAME, &[8u8; 32]).unwrap();
    let error = Source::open(other, dir.path(), options(8)).unwrap_err();
    assert!(
        error.to_string().contains("belongs to the source key"),
        "{error}"
    );
    // Process 1 is always alive.
    std::fs::write(dir.path().join(LOCK), "1\n").unwrap();
    let error = Source::open(signer(), dir.path(), options(8)).unwrap_err();
    assert!(error.to_string().contains("in use by process 1"), "{error}");
}

#[test]
fn an_event_that_cannot_be_signed_journals_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = open(dir.path(), 8);
    let huge = vec![b'x'; 70_000];
    let error = source
        .emit_batch(&[
            EmitItem {
                media_type: "text/plain",
                payload: b"fine",
                position: None,
            },
            EmitItem {
                media_type: "text/plain",
                payload: &huge,
                position: None,
            },
        ])
        .unwrap_err();
    assert!(error.to_string().contains("event"), "{error}");
    assert_eq!(source.pending().unwrap(), 0);
    assert_eq!(source.emit("text/plain", b"fine").unwrap(), 0);
}
