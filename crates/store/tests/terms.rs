//! The `terms` column family: index rows written in the round's synced batch, read
//! back by range scans and lookups after a reopen, and present exactly for the
//! rounds a killed process left on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_log::{
    ALGORITHM_ED25519, IndexTerm, Log, LogConfig, LogMetadata, LogStore, parse_term_key, term_key,
    term_range,
};
use merklog_merkle::hash_leaf;
use merklog_note::{Ed25519Signer, SignedCheckpoint};
use merklog_store::RocksStore;

const ORIGIN: &str = "example.com/store-terms";

fn signer() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_seed(ORIGIN, &[4u8; 32]).unwrap())
}

fn open(dir: &std::path::Path) -> (Arc<RocksStore>, Log) {
    let metadata = LogMetadata {
        origin: ORIGIN.into(),
        verifier_key: signer().verifier().to_vkey(),
        algorithm: ALGORITHM_ED25519.into(),
    };
    let store = Arc::new(RocksStore::open_for(dir, &metadata).unwrap());
    let log = Log::open(store.clone(), signer(), ORIGIN.into(), LogConfig::default()).unwrap();
    (store, log)
}

fn term(text: &str, time_ms: u64) -> IndexTerm {
    IndexTerm {
        term: Bytes::copy_from_slice(text.as_bytes()),
        time_ms: Some(time_ms),
    }
}

#[tokio::test]
async fn term_rows_survive_a_reopen_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, log) = open(dir.path());
        let entries: Vec<Bytes> = (0..4).map(|i| Bytes::from(format!("event {i}"))).collect();
        let terms = vec![
            vec![term("actor=a", 40), term("model=m", 40)],
            vec![term("actor=b", 10)],
            vec![term("actor=a", 20)],
            vec![],
        ];
        log.append_indexed(entries, Vec::new(), terms)
            .await
            .unwrap();
        log.shutdown().await;
    }
    let (store, log) = open(dir.path());
    let (start, end) = term_range(b"actor=a", 0, u64::MAX);
    let rows = store.scan_terms(&start, &end, 10).unwrap();
    let found: Vec<(u64, u64)> = rows
        .iter()
        .map(|(key, record)| (parse_term_key(key).unwrap().1, record.index))
        .collect();
    assert_eq!(found, [(20, 2), (40, 0)]);
    assert_eq!(rows[0].1.leaf_hash, hash_leaf(b"event 2"));
    // A window, and a limit.
    let (start, end) = term_range(b"actor=a", 21, 41);
    assert_eq!(store.scan_terms(&start, &end, 10).unwrap().len(), 1);
    let (start, end) = term_range(b"actor=a", 0, u64::MAX);
    assert_eq!(store.scan_terms(&start, &end, 1).unwrap().len(), 1);
    // Lookups: the row of entry 0 under model=m, none under model=x.
    let found = store
        .lookup_terms(&[
            term_key(b"model=m", 40, &hash_leaf(b"event 0")),
            term_key(b"model=x", 40, &hash_leaf(b"event 0")),
        ])
        .unwrap();
    assert_eq!(found[0].unwrap().index, 0);
    assert_eq!(found[1], None);
    // The unique-key index is a separate family: terms do not show up there.
    assert!(store.scan_keys(b"", b"\xff", 10).unwrap().is_empty());
    log.shutdown().await;
}

/// The child half of the crash test: appends rounds of entries with one term each
/// until killed, printing each answered size. Does nothing when run on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_appends_terms_until_killed() {
    let Ok(dir) = std::env::var("MERKLOG_TERMS_CHILD_DIR") else {
        return;
    };
    let (_, log) = open(std::path::Path::new(&dir));
    let mut next = 0u64;
    loop {
        let mut calls = Vec::new();
        for _ in 0..4 {
            let entries: Vec<Bytes> = (next..next + 8)
                .map(|i| Bytes::from(format!("entry {i}")))
                .collect();
            let terms = (next..next + 8).map(|i| vec![term("t", i)]).collect();
            next += 8;
            let log = log.clone();
            calls.push(tokio::spawn(async move {
                log.append_indexed(entries, Vec::new(), terms).await
            }));
        }
        for call in calls {
            let receipt = call.await.unwrap().unwrap();
            println!("SIZE {}", receipt.checkpoint.size().0);
        }
    }
}

#[test]
fn after_a_kill_rows_are_present_exactly_for_the_rounds_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_appends_terms_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MERKLOG_TERMS_CHILD_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(size) = line.split("SIZE ").nth(1) {
                let _ = tx.send(size.trim().parse::<u64>().unwrap_or(0));
            }
        }
    });
    // Let it answer a few hundred entries, then kill it mid-stream (SIGKILL).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = 0;
    while answered < 300 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(size) => answered = answered.max(size),
            Err(_) => {
                let _ = child.kill();
                panic!("the child answered only {answered} entries in time");
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let metadata = LogMetadata {
        origin: ORIGIN.into(),
        verifier_key: signer().verifier().to_vkey(),
        algorithm: ALGORITHM_ED25519.into(),
    };
    let store = RocksStore::open_for(dir.path(), &metadata).unwrap();
    let note = store.latest_checkpoint().unwrap().unwrap();
    let size = SignedCheckpoint::open(note, &signer().verifier(), Some(ORIGIN))
        .unwrap()
        .size()
        .0;
    assert!(size >= answered, "answered {answered}, durable {size}");
    let (start, end) = term_range(b"t", 0, u64::MAX);
    let rows = store.scan_terms(&start, &end, 1 << 20).unwrap();
    let indexes: BTreeSet<u64> = rows.iter().map(|(_, record)| record.index).collect();
    // One row per entry of every durable round, none beyond it.
    assert_eq!(
        rows.len() as u64,
        size,
        "rows {} vs size {size}",
        rows.len()
    );
    assert_eq!(indexes, (0..size).collect::<BTreeSet<u64>>());
    // Each row names its leaf: entry i was filed at time i.
    let bundles = store.read_bundles(&[0]).unwrap();
    assert!(bundles[0].is_some());
    for (key, record) in rows.iter().take(64) {
        let (_, time, hash) = parse_term_key(key).unwrap();
        assert_eq!(hash, hash_leaf(format!("entry {time}").as_bytes()));
        assert_eq!(hash, record.leaf_hash);
    }
}
