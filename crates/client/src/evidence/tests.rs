//! Packs built in memory: the files are deterministic, verify accepts what build
//! produces, and rejects every kind of damage, naming the file.

use std::collections::BTreeMap;

use merklog_event::{Event, EventDraft, MEDIA_TYPE_UNUSED, SourceKey, UnusedRange};
use merklog_merkle::{Hash, TreeSize, hash_leaf};
use merklog_note::{Checkpoint, Ed25519Signer, SignedCheckpoint};

use super::files::{self, MANIFEST, REPORT};
use merklog_receipt::{Algorithm, ReceiptSigner as _, SecretKey, SignedTreeHead};

use super::model::{Pack, PackEvent, PackReceipts, QueryTerms, Selection, analyze};
use super::{Manifest, Pins, verify_files};
use crate::ClientError;

const SOURCE: &str = "s.example/agent";
const ORIGIN: &str = "log.example/test";

fn source_signer() -> Ed25519Signer {
    Ed25519Signer::from_seed(SOURCE, &[3; 32]).unwrap()
}

fn event(n: u64, media_type: &str, payload: &[u8]) -> Event {
    Event::sign(
        &source_signer(),
        &EventDraft {
            source: SOURCE,
            sequence: n,
            timestamp_ms: 1_796_112_000_000 + n * 600_000,
            media_type,
            payload,
        },
    )
    .unwrap()
}

/// An ai-audit/v1 document as an event payload.
fn audit(actor: &str, model: &str) -> Vec<u8> {
    format!(
        r#"{{"profile":"ai-audit/v1","time":"2026-12-01T08:00:00Z","actor":{{"id":"{actor}","kind":"agent"}},"action":"chat","model":{{"id":"{model}"}}}}"#
    )
    .into_bytes()
}

/// A pack of numbers 0..=9 without 4 and 7, 8 and 9 declared unused by 10; a log
/// holding exactly those entries. Numbers 1, 5 and 6 carry audit events of actor
/// `alice`, 2 of `bob`.
fn pack(selection: Selection) -> Pack {
    let log = Ed25519Signer::from_seed(ORIGIN, &[4; 32]).unwrap();
    let mut entries: Vec<Event> = (0..=6u64)
        .filter(|n| *n != 4)
        .map(|n| match n {
            1 | 5 | 6 => event(n, "application/json", &audit("alice", "m-1")),
            2 => event(n, "application/json", &audit("bob", "m-1")),
            _ => event(n, "text/plain", format!("<e{n}>").as_bytes()),
        })
        .collect();
    entries.push(event(
        10,
        MEDIA_TYPE_UNUSED,
        &UnusedRange { first: 8, last: 9 }.to_payload(),
    ));
    let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e.as_bytes())).collect();
    let root: Hash = merklog_testkit_tree::mth(&leaves);
    let checkpoint = SignedCheckpoint::sign(
        Checkpoint {
            origin: ORIGIN.into(),
            size: leaves.len() as u64,
            root,
            extensions: Vec::new(),
        },
        &log,
    )
    .unwrap();
    assert_eq!(checkpoint.size(), TreeSize(leaves.len() as u64));
    let mut events = BTreeMap::new();
    for (index, e) in entries.into_iter().enumerate() {
        let proof: Vec<Hash> = merklog_testkit_tree::path(index, &leaves).unwrap();
        events.insert(
            e.sequence(),
            PackEvent {
                event: e,
                index: index as u64,
                proof,
            },
        );
    }
    let receipt_key = SecretKey::from_bytes(Algorithm::EdDsa, &[5; 32]).unwrap();
    let head = SignedTreeHead::sign(&receipt_key, checkpoint.size(), checkpoint.root()).unwrap();
    Pack {
        receipts: Some(PackReceipts {
            key: receipt_key.public_key(),
            head,
        }),
        selection,
        log_key: log.verifier(),
        policy_text: None,
        source_key: SourceKey::from_verifier(&source_signer().verifier()).unwrap(),
        checkpoint,
        earlier: Vec::new(),
        events,
        equivocations: Vec::new(),
    }
}

fn all() -> Selection {
    Selection {
        source: SOURCE.into(),
        from_sequence: 0,
        to_sequence: 9,
        since_ms: None,
        until_ms: None,
        query: None,
    }
}

fn built(pack: &Pack) -> BTreeMap<String, Vec<u8>> {
    let findings = analyze(pack, None).unwrap();
    files::build(pack, &findings)
}

fn failure(files: &BTreeMap<String, Vec<u8>>) -> (String, &'static str) {
    match verify_files(files, &Pins::default()) {
        Err(ClientError::Evidence { file, check, .. }) => (file, check),
        other => panic!("expected an evidence failure, got {other:?}"),
    }
}

#[test]
fn completeness_names_exactly_the_missing_numbers() {
    let pack = pack(all());
    let findings = analyze(&pack, None).unwrap();
    assert_eq!(findings.missing, vec![(4, 4), (7, 7)]);
    assert_eq!(findings.declared_unused, vec![(8, 9)]);
    assert!(!findings.is_complete());
    let manifest = Manifest::parse(&files::build(&pack, &findings)[MANIFEST]).unwrap();
    assert_eq!(manifest.completeness.missing_count, 2);
}

#[test]
fn the_same_contents_give_the_same_bytes() {
    let a = built(&pack(all()));
    let b = built(&pack(all()));
    assert_eq!(a, b);
    // And a different selection changes the manifest and the report.
    let mut other = all();
    other.to_sequence = 6;
    let mut narrower = pack(other);
    narrower.events.remove(&10);
    let c = built(&narrower);
    assert_ne!(a[MANIFEST], c[MANIFEST]);
    assert_ne!(a[REPORT], c[REPORT]);
}

#[test]
fn a_built_pack_verifies_and_its_findings_are_recomputed() {
    let files = built(&pack(all()));
    let verified = verify_files(&files, &Pins::default()).unwrap();
    assert_eq!(verified.findings.missing, vec![(4, 4), (7, 7)]);
    assert!(!verified.log_key_pinned);
}

#[test]
fn a_time_window_judges_the_numbers_between_its_first_and_last_event() {
    let mut selection = all();
    // Numbers 2 to 5 by their timestamps (10 minutes apart).
    selection.since_ms = Some(1_796_112_000_000 + 2 * 600_000);
    selection.until_ms = Some(1_796_112_000_000 + 6 * 600_000);
    let mut pack = pack(selection);
    // The exporter keeps only the span (and declarations about it).
    pack.events.retain(|n, _| (2..=5).contains(n));
    let findings = analyze(&pack, None).unwrap();
    assert_eq!(findings.span, Some((2, 5)));
    assert_eq!(findings.missing, vec![(4, 4)]);
    let files = files::build(&pack, &findings);
    verify_files(&files, &Pins::default()).unwrap();
}

#[test]
fn every_changed_byte_is_blamed_on_its_file() {
    let files = built(&pack(all()));
    for (path, bytes) in &files {
        for at in [0, bytes.len() / 2, bytes.len() - 1] {
            let mut changed = files.clone();
            changed.get_mut(path).unwrap()[at] ^= 0x20;
            let (file, _) = failure(&changed);
            assert_eq!(&file, path, "byte {at}");
        }
    }
}

#[test]
fn a_consistent_forgery_of_the_claims_is_caught_by_regeneration() {
    let pack = pack(all());
    let files = built(&pack);
    // Claim completeness, with every digest recomputed to match.
    let mut manifest = Manifest::parse(&files[MANIFEST]).unwrap();
    manifest.completeness.missing.clear();
    manifest.completeness.complete = true;
    let mut forged = files.clone();
    forged.insert(MANIFEST.into(), manifest.to_bytes());
    assert_eq!(failure(&forged), (MANIFEST.to_owned(), "regenerated"));
    // Drop an event and its proof, and fix the manifest's list: the event is then
    // missing, which the manifest (regenerated) does not say.
    let mut dropped = files.clone();
    dropped.remove(&files::event_path(3));
    dropped.remove(&files::proof_path(3));
    let mut manifest = Manifest::parse(&files[MANIFEST]).unwrap();
    manifest
        .files
        .retain(|f| f.path != files::event_path(3) && f.path != files::proof_path(3));
    dropped.insert(MANIFEST.into(), manifest.to_bytes());
    let (file, _) = failure(&dropped);
    assert!(file == REPORT || file == MANIFEST, "{file}");
}

#[test]
fn extra_missing_and_unlisted_files_fail() {
    let files = built(&pack(all()));
    let mut extra = files.clone();
    extra.insert("notes.txt".into(), b"x".to_vec());
    assert_eq!(failure(&extra), ("notes.txt".to_owned(), "listed"));
    let mut missing = files.clone();
    missing.remove(REPORT);
    assert_eq!(failure(&missing), (REPORT.to_owned(), "present"));
    let mut no_manifest = files;
    no_manifest.remove(MANIFEST);
    assert_eq!(failure(&no_manifest), (MANIFEST.to_owned(), "present"));
}

#[test]
fn a_pinned_key_must_be_the_packs() {
    let files = built(&pack(all()));
    let other = Ed25519Signer::from_seed(ORIGIN, &[9; 32])
        .unwrap()
        .verifier();
    let pins = Pins {
        log_key: Some(other),
        ..Pins::default()
    };
    match verify_files(&files, &pins) {
        Err(ClientError::Evidence { file, .. }) => assert_eq!(file, files::LOG_VKEY),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_report_escapes_payloads_and_loads_nothing() {
    let files = built(&pack(all()));
    let report = String::from_utf8(files[REPORT].clone()).unwrap();
    assert!(report.contains("&lt;e3&gt;"));
    assert!(!report.contains("<e3>"));
    for external in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!report.contains(external), "{external}");
    }
    assert!(report.contains("Missing sequence numbers (2): 4, 7"));
}

#[test]
fn the_manifest_parser_refuses_unknown_members_and_other_formats() {
    let files = built(&pack(all()));
    let text = String::from_utf8(files[MANIFEST].clone()).unwrap();
    let unknown = text.replacen("{\n", "{\n  \"extra\": 1,\n", 1);
    assert!(Manifest::parse(unknown.as_bytes()).is_err());
    let other = text.replace("merklog-evidence/v2", "merklog-evidence/v1");
    assert!(Manifest::parse(other.as_bytes()).is_err());
    assert!(Manifest::parse(b"").is_err());
    assert!(Manifest::parse(text.as_bytes()).is_ok());
}

#[test]
fn the_fuzz_seed_corpus_replays_without_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus/evidence_manifest");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        super::fuzzing::manifest(&bytes);
        seeds += 1;
    }
    assert!(seeds >= 3, "the corpus in {} is missing", dir.display());
}

#[test]
fn a_second_signed_envelope_for_a_number_is_an_equivocation() {
    let mut pack = pack(all());
    pack.equivocations
        .push(event(3, "text/plain", b"another story"));
    let files = built(&pack);
    let verified = verify_files(&files, &Pins::default()).unwrap();
    assert_eq!(verified.findings.equivocations, vec![3]);
    assert!(!verified.findings.is_complete());
    // The same envelope again is no equivocation: the pack is refused.
    let mut same = pack.clone();
    same.equivocations = vec![pack.events[&3].event.clone()];
    let files = built(&same);
    assert_eq!(
        failure(&files),
        (files::equivocation_path(3, 0), "equivocation")
    );
}

#[test]
fn packs_round_trip_through_a_directory_and_a_zip_archive() {
    let files = built(&pack(all()));
    let dir = tempfile::tempdir().unwrap();
    for name in ["pack", "pack.zip"] {
        let path = dir.path().join(name);
        super::archive::write_pack(&path, &files).unwrap();
        assert_eq!(super::archive::read_pack(&path).unwrap(), files);
        // Never overwritten.
        assert!(super::archive::write_pack(&path, &files).is_err());
    }
    // The same pack gives the same archive bytes.
    let again = dir.path().join("again.zip");
    super::archive::write_pack(&again, &files).unwrap();
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(dir.path().join("pack.zip")).unwrap()
    );
}

#[test]
fn a_query_selection_judges_only_the_span_of_its_matches_and_says_so() {
    let selection = Selection {
        query: Some(QueryTerms {
            actor: Some("alice".into()),
            ..QueryTerms::default()
        }),
        ..all()
    };
    let mut pack = pack(selection);
    // What an exporter keeps: the numbers 1..=6 and the declaration is outside.
    pack.events.retain(|n, _| (1..=6).contains(n));
    let findings = analyze(&pack, None).unwrap();
    assert_eq!(findings.span, Some((1, 6)));
    assert_eq!(findings.count(super::model::Role::Selected), 3);
    assert_eq!(findings.count(super::model::Role::Context), 2);
    assert_eq!(findings.missing, vec![(4, 4)]);
    let files = files::build(&pack, &findings);
    let manifest = Manifest::parse(&files[MANIFEST]).unwrap();
    assert_eq!(
        manifest.completeness.caveat.as_deref(),
        Some(super::model::QUERY_CAVEAT)
    );
    let report = String::from_utf8(files[REPORT].clone()).unwrap();
    assert!(report.contains("a query cannot prove that no matching event was left out"));
    let verified = verify_files(&files, &Pins::default()).unwrap();
    assert_eq!(verified.findings, findings);
    // A model term that nothing matches selects nothing.
    let mut none = pack.clone();
    none.selection.query = Some(QueryTerms {
        model: Some("m-2".into()),
        ..QueryTerms::default()
    });
    assert!(
        analyze(&none, None).is_err(),
        "events outside an empty span"
    );
    // Without the caveat in the manifest, regeneration fails.
    let mut forged = files.clone();
    let text = String::from_utf8(forged[REPORT].clone()).unwrap();
    forged.insert(
        REPORT.into(),
        text.replace("left out", "left  out").into_bytes(),
    );
    assert_eq!(failure(&forged).0, REPORT);
}

#[test]
fn every_event_has_a_receipt_and_a_changed_receipt_is_named() {
    let files = built(&pack(all()));
    let receipts: Vec<&String> = files
        .keys()
        .filter(|p| p.starts_with("receipts/"))
        .collect();
    assert_eq!(receipts.len(), 7);
    let verified = verify_files(&files, &Pins::default()).unwrap();
    assert!(verified.pack.receipts.is_some());
    // Each receipt verifies on its own too.
    let key = verified.pack.receipts.as_ref().unwrap().key.clone();
    for (n, e) in &verified.pack.events {
        let receipt = merklog_receipt::Receipt::parse(&files[&files::receipt_path(*n)]).unwrap();
        let v = receipt.verify_entry(e.event.as_bytes(), &key).unwrap();
        assert_eq!(v.root, verified.pack.checkpoint.root());
    }
    // A missing receipt, a swapped one, a wrong pinned key.
    let mut missing = files.clone();
    missing.remove(&files::receipt_path(3));
    assert_eq!(failure(&missing).0, files::receipt_path(3));
    let mut swapped = files.clone();
    swapped.insert(
        files::receipt_path(3),
        files[&files::receipt_path(2)].clone(),
    );
    let manifest = rehash(&swapped);
    swapped.insert(MANIFEST.into(), manifest);
    assert_eq!(failure(&swapped).0, files::receipt_path(3));
    let other = SecretKey::from_bytes(Algorithm::EdDsa, &[6; 32]).unwrap();
    let pins = Pins {
        receipt_key: Some(other.public_key()),
        ..Pins::default()
    };
    match verify_files(&files, &pins) {
        Err(ClientError::Evidence { file, .. }) => assert_eq!(file, files::RECEIPT_KEY),
        other => panic!("{other:?}"),
    }
    // A receipt signed by another key, with the manifest's digests fixed.
    let mut resigned = files.clone();
    let pack = verified.pack.clone();
    let head =
        SignedTreeHead::sign(&other, pack.checkpoint.size(), pack.checkpoint.root()).unwrap();
    let e = &pack.events[&5];
    resigned.insert(
        files::receipt_path(5),
        head.receipt(
            &hash_leaf(e.event.as_bytes()),
            merklog_merkle::LeafIndex(e.index),
            &e.proof,
        )
        .unwrap(),
    );
    let manifest = rehash(&resigned);
    resigned.insert(MANIFEST.into(), manifest);
    assert_eq!(failure(&resigned), (files::receipt_path(5), "receipt"));
}

/// The manifest with its file digests recomputed for `files` (a consistent forgery).
fn rehash(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut manifest = Manifest::parse(&files[MANIFEST]).unwrap();
    for entry in &mut manifest.files {
        let bytes = &files[&entry.path];
        entry.bytes = bytes.len() as u64;
        entry.sha256 = super::manifest::sha256_hex(bytes);
    }
    manifest.to_bytes()
}
