//! Index terms over the in-memory store: rows written with the round that sequences
//! the entry, scanned by term and time window, none for a duplicate, none when the
//! round's write fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use merklog_log::{
    ALGORITHM_ED25519, IndexTerm, KeyRecord, Log, LogConfig, LogError, LogMetadata, LogStore,
    MemoryStore, RoundWrite, StorageError, parse_term_key, term_key, term_range,
};
use merklog_merkle::tile::TileId;
use merklog_merkle::{Hash, TreeSize, hash_leaf, verify_inclusion};
use merklog_note::Ed25519Signer;

const ORIGIN: &str = "example.com/terms";

fn signer() -> Ed25519Signer {
    Ed25519Signer::from_seed(ORIGIN, &[5u8; 32]).unwrap()
}

/// The in-memory store; commits can be made to fail without writing.
struct Flaky {
    inner: MemoryStore,
    fail: AtomicBool,
}

impl LogStore for Flaky {
    fn metadata(&self) -> Result<Option<LogMetadata>, StorageError> {
        self.inner.metadata()
    }
    fn latest_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.latest_checkpoint()
    }
    fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.checkpoint(size)
    }
    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.inner.read_tiles(tiles)
    }
    fn read_bundles(&self, indexes: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.inner.read_bundles(indexes)
    }
    fn lookup_leaves(&self, hashes: &[Hash]) -> Result<Vec<Option<u64>>, StorageError> {
        self.inner.lookup_leaves(hashes)
    }
    fn commit(&self, round: &RoundWrite) -> Result<(), StorageError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StorageError::new("injected failure"));
        }
        self.inner.commit(round)
    }
    fn lookup_terms(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<KeyRecord>>, StorageError> {
        self.inner.lookup_terms(keys)
    }
    fn scan_terms(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, StorageError> {
        self.inner.scan_terms(start, end, limit)
    }
}

fn open() -> (Arc<Flaky>, Log) {
    let store = Arc::new(Flaky {
        inner: MemoryStore::new(LogMetadata {
            origin: ORIGIN.into(),
            verifier_key: signer().verifier().to_vkey(),
            algorithm: ALGORITHM_ED25519.into(),
        }),
        fail: AtomicBool::new(false),
    });
    let log = Log::open(
        store.clone(),
        Arc::new(signer()),
        ORIGIN.into(),
        LogConfig::default(),
    )
    .unwrap();
    (store, log)
}

fn term(text: &str, time_ms: Option<u64>) -> IndexTerm {
    IndexTerm {
        term: Bytes::copy_from_slice(text.as_bytes()),
        time_ms,
    }
}

/// Every row of `term`, as (time, index).
fn rows(store: &dyn LogStore, term: &str, since: u64, until: u64) -> Vec<(u64, u64)> {
    let (start, end) = term_range(term.as_bytes(), since, until);
    store
        .scan_terms(&start, &end, 1000)
        .unwrap()
        .into_iter()
        .map(|(key, record)| {
            let (found, time, hash) = parse_term_key(&key).unwrap();
            assert_eq!(found, term.as_bytes());
            assert_eq!(hash, record.leaf_hash);
            (time, record.index)
        })
        .collect()
}

#[tokio::test]
async fn terms_are_written_with_the_round_and_scan_by_term_and_time() {
    let (store, log) = open();
    let entries: Vec<Bytes> = ["e0", "e1", "e2", "e3"]
        .iter()
        .map(|e| Bytes::from_static(e.as_bytes()))
        .collect();
    let terms = vec![
        vec![term("actor=alice", Some(300)), term("model=m1", Some(300))],
        vec![term("actor=bob", Some(100))],
        vec![],
        vec![term("actor=alice", Some(100)), term("model=m1", None)],
    ];
    let receipt = log
        .append_indexed(entries.clone(), Vec::new(), terms)
        .await
        .unwrap();
    // Answered means durable: the rows are in the store now, in time order.
    assert_eq!(
        rows(&*store, "actor=alice", 0, u64::MAX),
        [(100, 3), (300, 0)]
    );
    assert_eq!(rows(&*store, "actor=bob", 0, u64::MAX), [(100, 1)]);
    assert_eq!(rows(&*store, "actor=alice", 100, 300), [(100, 3)]);
    assert_eq!(rows(&*store, "actor=alice", 101, u64::MAX), [(300, 0)]);
    assert!(rows(&*store, "actor=al", 0, u64::MAX).is_empty());
    // No time: filed at the round's time (recorded_ms).
    let model = rows(&*store, "model=m1", 0, u64::MAX);
    assert_eq!(model.len(), 2);
    let untimed = model.iter().find(|(_, index)| *index == 3).unwrap();
    let key = term_key(b"model=m1", untimed.0, &hash_leaf(b"e3"));
    let record = store.lookup_terms(&[key]).unwrap()[0].unwrap();
    assert_eq!(untimed.0, record.recorded_ms);
    assert!(record.recorded_ms > 1_000_000_000_000);

    // The log's reads: entries and proofs of scattered leaves in one call each.
    let size = receipt.checkpoint.size();
    let got = log.entries_at(vec![3, 0, 3]).await.unwrap();
    assert_eq!(
        got,
        [entries[3].clone(), entries[0].clone(), entries[3].clone()]
    );
    let proofs = log
        .inclusion_proofs(vec![(3, hash_leaf(b"e3")), (0, hash_leaf(b"e0"))], size)
        .await
        .unwrap();
    for ((index, entry), proof) in [(3u64, "e3"), (0, "e0")].iter().zip(&proofs) {
        verify_inclusion(
            &hash_leaf(entry.as_bytes()),
            merklog_merkle::LeafIndex(*index),
            size,
            proof,
            &receipt.checkpoint.root(),
        )
        .unwrap();
    }
    // A wrong leaf hash is refused, not proven.
    assert!(
        log.inclusion_proofs(vec![(1, hash_leaf(b"e0"))], size)
            .await
            .is_err()
    );
    assert!(log.entries_at(vec![size.0]).await.is_err());
    log.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_writes_no_rows_and_bad_terms_refuse_the_call() {
    let (store, log) = open();
    let entry = Bytes::from_static(b"same");
    log.append_indexed(
        vec![entry.clone()],
        Vec::new(),
        vec![vec![term("a=1", Some(5))]],
    )
    .await
    .unwrap();
    // Again, with other terms: a duplicate, filed under nothing new; and twice in one
    // round, only the first occurrence's terms count.
    let again = log
        .append_indexed(
            vec![
                entry.clone(),
                Bytes::from_static(b"new"),
                Bytes::from_static(b"new"),
            ],
            Vec::new(),
            vec![
                vec![term("a=2", Some(6))],
                vec![term("a=3", Some(7))],
                vec![term("a=4", Some(8))],
            ],
        )
        .await
        .unwrap();
    assert!(again.entries[0].duplicate);
    assert!(again.entries[2].duplicate);
    assert_eq!(rows(&*store, "a=1", 0, u64::MAX), [(5, 0)]);
    assert!(rows(&*store, "a=2", 0, u64::MAX).is_empty());
    assert_eq!(rows(&*store, "a=3", 0, u64::MAX), [(7, 1)]);
    assert!(rows(&*store, "a=4", 0, u64::MAX).is_empty());

    let size = log.latest().size();
    for bad in [term("", None), term("a\0b", None)] {
        let error = log
            .append_indexed(
                vec![Bytes::from_static(b"x"), Bytes::from_static(b"y")],
                Vec::new(),
                vec![vec![], vec![bad]],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(error, LogError::InvalidEntry { index: 1, .. }),
            "{error:?}"
        );
    }
    let error = log
        .append_indexed(
            vec![Bytes::from_static(b"x")],
            Vec::new(),
            vec![vec![], vec![]],
        )
        .await
        .unwrap_err();
    assert!(matches!(error, LogError::InvalidEntry { .. }), "{error:?}");
    assert_eq!(log.latest().size(), size);
    log.shutdown().await;
}

#[tokio::test]
async fn a_failed_round_writes_no_rows() {
    let (store, log) = open();
    store.fail.store(true, Ordering::SeqCst);
    let error = log
        .append_indexed(
            vec![Bytes::from_static(b"lost")],
            Vec::new(),
            vec![vec![term("actor=x", Some(1))]],
        )
        .await
        .unwrap_err();
    assert!(matches!(error, LogError::Unavailable(_)), "{error:?}");
    assert!(rows(&*store, "actor=x", 0, u64::MAX).is_empty());
    assert_eq!(log.latest().size(), TreeSize(0));
    // Once the store works again the retry is written, rows and all.
    store.fail.store(false, Ordering::SeqCst);
    let receipt = log
        .append_indexed(
            vec![Bytes::from_static(b"lost")],
            Vec::new(),
            vec![vec![term("actor=x", Some(1))]],
        )
        .await
        .unwrap();
    assert!(!receipt.entries[0].duplicate);
    assert_eq!(rows(&*store, "actor=x", 0, u64::MAX), [(1, 0)]);
    log.shutdown().await;
}
