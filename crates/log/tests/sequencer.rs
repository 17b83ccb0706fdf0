//! Sequencer behaviour over the in-memory store: order, dedup, proofs, back-pressure,
//! failed rounds, shutdown and fail-closed recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::Bytes;
use merklog_log::{
    ALGORITHM_ED25519, AppendReceipt, Hash, Log, LogConfig, LogError, LogMetadata, LogStore,
    MemoryStore, RoundWrite, StorageError, ValueWrite,
};
use merklog_merkle::bundle::push_entry;
use merklog_merkle::{
    LeafIndex, TreeSize, hash_leaf, tile::TileId, verify_consistency, verify_inclusion,
};
use merklog_note::{Ed25519Signer, open_checkpoint};

const ORIGIN: &str = "example.com/test-log";

fn signer() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_seed(ORIGIN, &[7u8; 32]).unwrap())
}

fn metadata() -> LogMetadata {
    LogMetadata {
        origin: ORIGIN.into(),
        verifier_key: signer().verifier().to_vkey(),
        algorithm: ALGORITHM_ED25519.into(),
    }
}

/// The in-memory store with failure injection.
struct TestStore {
    inner: MemoryStore,
    /// Commits fail without writing.
    fail_commit: AtomicBool,
    /// Commits write, then report failure (the "did it land?" case).
    fail_after_write: AtomicBool,
    /// Commits fail and the store reports itself fenced (another sequencer signed).
    fenced: Mutex<Option<String>>,
    /// When set, each commit reports it started and waits for a release.
    gate: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
    /// Calls of `read_tiles` and `lookup_leaves` (batched reads).
    tile_reads: AtomicUsize,
    dedup_reads: AtomicUsize,
    /// The name of the thread each successful commit ran on, in order.
    commit_threads: Mutex<Vec<String>>,
}

impl TestStore {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(metadata()),
            fail_commit: AtomicBool::new(false),
            fail_after_write: AtomicBool::new(false),
            fenced: Mutex::new(None),
            gate: Mutex::new(None),
            tile_reads: AtomicUsize::new(0),
            dedup_reads: AtomicUsize::new(0),
            commit_threads: Mutex::new(Vec::new()),
        })
    }

    /// Gates commits; returns (commit started, release one commit).
    fn gate(&self) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        *self.gate.lock().unwrap() = Some((started_tx, release_rx));
        (started_rx, release_tx)
    }
}

impl LogStore for TestStore {
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
        self.tile_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_tiles(tiles)
    }
    fn read_bundles(&self, indexes: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.inner.read_bundles(indexes)
    }
    fn lookup_leaves(&self, leaf_hashes: &[Hash]) -> Result<Vec<Option<u64>>, StorageError> {
        self.dedup_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.lookup_leaves(leaf_hashes)
    }
    fn commit(&self, round: &RoundWrite) -> Result<(), StorageError> {
        if let Some((started, release)) = &*self.gate.lock().unwrap() {
            started.send(()).unwrap();
            release.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        if self.fail_commit.load(Ordering::SeqCst) {
            return Err(StorageError::new("injected: disk full"));
        }
        if let Some(reason) = self.fenced() {
            return Err(StorageError::new(reason));
        }
        self.inner.commit(round)?;
        let thread = std::thread::current().name().unwrap_or_default().to_owned();
        self.commit_threads.lock().unwrap().push(thread);
        if self.fail_after_write.load(Ordering::SeqCst) {
            return Err(StorageError::new("injected: fsync reported an error"));
        }
        Ok(())
    }
    fn fenced(&self) -> Option<String> {
        self.fenced.lock().unwrap().clone()
    }
}

fn open(store: &Arc<TestStore>, config: LogConfig) -> Log {
    Log::open(store.clone(), signer(), ORIGIN.into(), config).unwrap()
}

fn entry(i: u64) -> Bytes {
    Bytes::from(format!("event {i}: {}", "x".repeat((i % 17) as usize)))
}

/// RFC 6962 MTH, recursively: the naive reference.
fn naive_root(leaves: &[Hash]) -> Hash {
    merklog_testkit_tree::mth(leaves)
}

/// Every proof of the receipt verifies against its checkpoint root, and that note is
/// signed by the log for that size and root.
fn check_receipt(receipt: &AppendReceipt, entries: &[Bytes]) {
    let cp = &receipt.checkpoint;
    // Signature checks are slow in a debug build: each distinct note is checked once.
    static VERIFIED: Mutex<Vec<Bytes>> = Mutex::new(Vec::new());
    if !VERIFIED.lock().unwrap().contains(cp.note()) {
        let (body, _) = open_checkpoint(cp.note(), &signer().verifier(), Some(ORIGIN)).unwrap();
        assert_eq!((body.size, body.root), (cp.size().0, cp.root()));
        VERIFIED.lock().unwrap().push(cp.note().clone());
    }
    assert_eq!(receipt.entries.len(), entries.len());
    for (sealed, entry) in receipt.entries.iter().zip(entries) {
        verify_inclusion(
            &hash_leaf(entry),
            sealed.index,
            cp.size(),
            &sealed.inclusion_proof,
            &cp.root(),
        )
        .unwrap();
    }
}

#[tokio::test]
async fn empty_store_publishes_the_signed_size_zero_checkpoint() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    let latest = log.latest();
    assert_eq!(latest.size().0, 0);
    assert_eq!(latest.root(), merklog_merkle::empty_root());
    assert_eq!(
        log.checkpoint_at(TreeSize(0))
            .await
            .unwrap()
            .map(|c| c.note().clone()),
        Some(latest.note().clone())
    );
    open_checkpoint(latest.note(), &signer().verifier(), Some(ORIGIN)).unwrap();
    log.shutdown().await;
}

#[tokio::test]
async fn entries_are_sequenced_in_order_and_every_proof_verifies() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    let mut all = Vec::new();
    for call in 0..20u64 {
        let entries: Vec<Bytes> = (0..=call % 7).map(|j| entry(call * 100 + j)).collect();
        let receipt = log.append(entries.clone()).await.unwrap();
        check_receipt(&receipt, &entries);
        for (k, sealed) in receipt.entries.iter().enumerate() {
            assert_eq!(sealed.index.0, all.len() as u64 + k as u64);
            assert!(!sealed.duplicate);
        }
        all.extend(entries);
        // The checkpoint covers exactly what was appended so far.
        assert_eq!(receipt.checkpoint.size().0, all.len() as u64);
        let leaves: Vec<Hash> = all.iter().map(|e| hash_leaf(e)).collect();
        assert_eq!(receipt.checkpoint.root(), naive_root(&leaves));
    }
    assert_eq!(
        log.entries(LeafIndex(0), LeafIndex(all.len() as u64))
            .await
            .unwrap(),
        all
    );
    log.shutdown().await;
}

#[tokio::test]
async fn concurrent_callers_share_rounds_and_get_distinct_indexes() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    let tasks: Vec<_> = (0..64u64)
        .map(|caller| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut receipts = Vec::new();
                for i in 0..10u64 {
                    let entries = vec![entry(caller * 1000 + i)];
                    let receipt = log.append(entries.clone()).await.unwrap();
                    check_receipt(&receipt, &entries);
                    receipts.push((entries[0].clone(), receipt.entries[0].index));
                }
                receipts
            })
        })
        .collect();
    let mut by_index = std::collections::BTreeMap::new();
    for task in tasks {
        for (entry, index) in task.await.unwrap() {
            assert!(
                by_index.insert(index, entry).is_none(),
                "index {index} given twice"
            );
        }
    }
    assert_eq!(
        by_index.keys().map(|i| i.0).collect::<Vec<_>>(),
        (0..640).collect::<Vec<_>>()
    );
    let leaves: Vec<Hash> = by_index.values().map(|e| hash_leaf(e)).collect();
    assert_eq!(log.latest().root(), naive_root(&leaves));
    // What is stored at each index is what that caller was told.
    let stored = log.entries(LeafIndex(0), LeafIndex(640)).await.unwrap();
    assert_eq!(stored, by_index.values().cloned().collect::<Vec<_>>());
    log.shutdown().await;
}

#[tokio::test]
async fn duplicates_in_a_batch_and_across_batches_get_the_original_index() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    let (a, b) = (entry(1), entry(2));
    let first = log
        .append(vec![a.clone(), b.clone(), a.clone(), a.clone()])
        .await
        .unwrap();
    check_receipt(&first, &[a.clone(), b.clone(), a.clone(), a.clone()]);
    let got: Vec<(u64, bool)> = first
        .entries
        .iter()
        .map(|s| (s.index.0, s.duplicate))
        .collect();
    assert_eq!(got, [(0, false), (1, false), (0, true), (0, true)]);
    assert_eq!(first.checkpoint.size().0, 2);

    // A later batch: old duplicates get proofs from storage against the new checkpoint.
    let c = entry(3);
    let second = log
        .append(vec![c.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    check_receipt(&second, &[c.clone(), b.clone(), c.clone()]);
    let got: Vec<(u64, bool)> = second
        .entries
        .iter()
        .map(|s| (s.index.0, s.duplicate))
        .collect();
    assert_eq!(got, [(2, false), (1, true), (2, true)]);

    // Only duplicates: no new checkpoint, proofs against the current one.
    let third = log.append(vec![b.clone(), a.clone()]).await.unwrap();
    check_receipt(&third, &[b.clone(), a.clone()]);
    assert_eq!(third.checkpoint.size().0, 3);
    assert!(third.entries.iter().all(|s| s.duplicate));

    // Concurrent calls with the same entry (likely one round, thanks to the wait):
    // one index, exactly one of them new.
    let log2 = open(
        &TestStore::new(),
        LogConfig {
            max_batch_wait: Duration::from_millis(50),
            ..LogConfig::default()
        },
    );
    let d = entry(4);
    let (x, y) = tokio::join!(log2.append(vec![d.clone()]), log2.append(vec![d.clone()]));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.entries[0].index, y.entries[0].index);
    assert_eq!(
        u8::from(x.entries[0].duplicate) + u8::from(y.entries[0].duplicate),
        1
    );
    check_receipt(&x, std::slice::from_ref(&d));
    check_receipt(&y, std::slice::from_ref(&d));
    assert_eq!(
        log2.find_leaf(hash_leaf(&d)).await.unwrap(),
        Some(LeafIndex(0))
    );
    assert_eq!(log2.find_leaf(hash_leaf(b"absent")).await.unwrap(), None);
    log.shutdown().await;
    log2.shutdown().await;
}

#[tokio::test]
async fn invalid_calls_are_rejected_whole_and_write_nothing() {
    let store = TestStore::new();
    let log = open(
        &store,
        LogConfig {
            max_entry_bytes: 100,
            max_batch_entries: 5,
            queue_capacity: 5,
            ..LogConfig::default()
        },
    );
    let err = log.append(vec![entry(1), Bytes::new()]).await.unwrap_err();
    assert!(
        matches!(&err, LogError::InvalidEntry { index: 1, reason } if reason.contains("empty")),
        "{err}"
    );
    let err = log
        .append(vec![entry(1), entry(2), Bytes::from(vec![0u8; 101])])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LogError::InvalidEntry { index: 2, reason } if reason.contains("101") && reason.contains("100")),
        "{err}"
    );
    let err = log.append((0..6).map(entry).collect()).await.unwrap_err();
    assert_eq!(err, LogError::TooManyEntries { count: 6, limit: 5 });
    // A call bigger than the whole queue could never be accepted: refused, not QueueFull.
    let small_queue = open(
        &TestStore::new(),
        LogConfig {
            queue_capacity_bytes: 70_000,
            ..LogConfig::default()
        },
    );
    let err = small_queue
        .append(vec![
            Bytes::from(vec![1u8; 40_000]),
            Bytes::from(vec![2u8; 40_000]),
        ])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LogError::CallTooLarge {
            bytes: 80_000,
            limit: 70_000
        }
    );
    small_queue.shutdown().await;
    assert_eq!(log.latest().size().0, 0);
    // An empty call is answered with the latest checkpoint and no entries.
    let receipt = log.append(Vec::new()).await.unwrap();
    assert!(receipt.entries.is_empty());
    // The hard cap: 65535 is allowed by default, 65536 is not.
    let default = open(&TestStore::new(), LogConfig::default());
    default
        .append(vec![Bytes::from(vec![1u8; 65_535])])
        .await
        .unwrap();
    let err = default
        .append(vec![Bytes::from(vec![1u8; 65_536])])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LogError::InvalidEntry { index: 0, reason } if reason.contains("65535")),
        "{err}"
    );
    log.shutdown().await;
    default.shutdown().await;
}

/// Waits (bounded) until the gated store reports a commit in progress.
async fn commit_started(started: mpsc::Receiver<()>) -> mpsc::Receiver<()> {
    tokio::task::spawn_blocking(move || {
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        started
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_full_queue_answers_queue_full_at_once() {
    let store = TestStore::new();
    let log = open(
        &store,
        LogConfig {
            max_batch_entries: 4,
            queue_capacity: 4,
            ..LogConfig::default()
        },
    );
    let (started, release) = store.gate();
    // One round in flight, blocked in its commit.
    let in_flight = tokio::spawn({
        let log = log.clone();
        async move { log.append(vec![entry(0)]).await }
    });
    let _started = commit_started(started).await;
    // Fill the queue (4 entries): the first poll of `append` enqueues, then waits.
    let mut queued = Box::pin(log.append((1..5).map(entry).collect()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(queued.as_mut().poll(&mut cx).is_pending());
    // One more entry does not fit: refused at once, not queued.
    assert_eq!(
        log.append(vec![entry(99)]).await.unwrap_err(),
        LogError::QueueFull
    );
    // Release the round in flight and the queued call's round.
    release.send(()).unwrap();
    release.send(()).unwrap();
    assert_eq!(in_flight.await.unwrap().unwrap().checkpoint.size().0, 1);
    let receipt = queued.await.unwrap();
    assert_eq!(receipt.checkpoint.size().0, 5);
    check_receipt(&receipt, &(1..5).map(entry).collect::<Vec<_>>());
    *store.gate.lock().unwrap() = None;
    // Capacity is back.
    log.append(vec![entry(99)]).await.unwrap();
    log.shutdown().await;
}

#[tokio::test]
async fn a_failed_commit_answers_unavailable_and_the_log_recovers() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    log.append(vec![entry(0), entry(1)]).await.unwrap();

    // The write fails without landing: the round's callers get Unavailable, nothing is
    // published, and the next round continues from the durable state.
    store.fail_commit.store(true, Ordering::SeqCst);
    let err = log.append(vec![entry(2)]).await.unwrap_err();
    assert!(
        matches!(&err, LogError::Unavailable(m) if m.contains("disk full")),
        "{err}"
    );
    assert_eq!(log.latest().size().0, 2);
    assert!(matches!(log.health(), Err(LogError::Unavailable(_))));
    store.fail_commit.store(false, Ordering::SeqCst);
    let receipt = log.append(vec![entry(3), entry(2)]).await.unwrap();
    check_receipt(&receipt, &[entry(3), entry(2)]);
    assert_eq!(log.health(), Ok(()));
    assert_eq!(
        receipt
            .entries
            .iter()
            .map(|s| (s.index.0, s.duplicate))
            .collect::<Vec<_>>(),
        [(2, false), (3, false)]
    );

    // The write lands but reports failure: Unavailable, then the reload finds the
    // round's checkpoint and publishes it; a retry gets the same index as a duplicate.
    store.fail_after_write.store(true, Ordering::SeqCst);
    let err = log.append(vec![entry(4)]).await.unwrap_err();
    assert!(matches!(err, LogError::Unavailable(_)), "{err}");
    store.fail_after_write.store(false, Ordering::SeqCst);
    let retry = log.append(vec![entry(4), entry(5)]).await.unwrap();
    check_receipt(&retry, &[entry(4), entry(5)]);
    assert_eq!(
        retry
            .entries
            .iter()
            .map(|s| (s.index.0, s.duplicate))
            .collect::<Vec<_>>(),
        [(4, true), (5, false)]
    );
    let leaves: Vec<Hash> = [0, 1, 3, 2, 4, 5]
        .iter()
        .map(|i| hash_leaf(&entry(*i)))
        .collect();
    assert_eq!(log.latest().root(), naive_root(&leaves));
    log.shutdown().await;
}

/// A store that reports itself fenced after a failed commit (another sequencer signed)
/// makes the log refuse to sign for good: the failed round is not published, later
/// calls are refused without reaching the store, and reads go on.
#[tokio::test]
async fn a_fenced_store_stops_signing_for_good() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    let first = log.append(vec![entry(0), entry(1)]).await.unwrap();
    *store.fenced.lock().unwrap() = Some("injected: the lock moved".into());
    let err = log.append(vec![entry(2)]).await.unwrap_err();
    assert!(matches!(err, LogError::Unavailable(_)), "{err}");
    for i in 3..6 {
        let err = log.append(vec![entry(i)]).await.unwrap_err();
        assert!(
            matches!(&err, LogError::SigningRefused(m) if m.contains("another sequencer") && m.contains("the lock moved")),
            "{err}"
        );
    }
    assert_eq!(log.latest().size().0, 2);
    assert_eq!(log.latest().note(), first.checkpoint.note());
    // Reads still work.
    assert_eq!(
        log.entries(LeafIndex(0), LeafIndex(2)).await.unwrap().len(),
        2
    );
    log.shutdown().await;
}

/// A round of a few entries is written by the sequencer thread while the writer is
/// idle (no hand-over for it); a round of 64 entries or more goes to the writer thread,
/// so the next round can be prepared during its write.
#[tokio::test]
async fn small_rounds_are_written_by_the_sequencer_and_large_ones_by_the_writer() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    // Creating the log wrote its first checkpoint on this thread.
    store.commit_threads.lock().unwrap().clear();
    log.append(vec![entry(0)]).await.unwrap();
    log.append((1..=64).map(entry).collect()).await.unwrap();
    log.append(vec![entry(65), entry(66)]).await.unwrap();
    assert_eq!(
        *store.commit_threads.lock().unwrap(),
        ["merklog-sequencer", "merklog-writer", "merklog-sequencer"]
    );
    log.shutdown().await;
}

/// A round prepared while an earlier round's write is in flight is never written when
/// that write fails: its callers get Unavailable and the log continues from disk.
/// (Rounds of this size go to the writer thread; a round of a few entries is written by
/// the sequencer itself while the writer is idle, with nothing prepared on top of it.)
#[tokio::test]
async fn a_failed_write_poisons_the_round_prepared_on_top_of_it() {
    const ROUND: u64 = 64;
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    log.append(vec![entry(0)]).await.unwrap();
    let (started, release) = store.gate();
    store.fail_commit.store(true, Ordering::SeqCst);
    let first_entries: Vec<Bytes> = (1..=ROUND).map(entry).collect();
    let first = tokio::spawn({
        let log = log.clone();
        let entries = first_entries.clone();
        async move { log.append(entries).await }
    });
    let _started = commit_started(started).await;
    // The next round holds a duplicate, so its preparation shows as a dedup lookup;
    // from then on it is built on the round whose write is in flight.
    let lookups = store.dedup_reads.load(Ordering::SeqCst);
    let second_new: Vec<Bytes> = (ROUND + 1..=2 * ROUND).map(entry).collect();
    let second = tokio::spawn({
        let log = log.clone();
        let entries = [vec![entry(0)], second_new.clone()].concat();
        async move { log.append(entries).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.dedup_reads.load(Ordering::SeqCst) == lookups {
        assert!(
            std::time::Instant::now() < deadline,
            "the second round was never prepared"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    release.send(()).unwrap();
    let err = first.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, LogError::Unavailable(m) if m.contains("disk full")),
        "{err}"
    );
    let err = second.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, LogError::Unavailable(m) if m.contains("earlier round")),
        "{err}"
    );
    *store.gate.lock().unwrap() = None;
    store.fail_commit.store(false, Ordering::SeqCst);
    assert_eq!(log.latest().size().0, 1);
    // Neither round reached the disk: every entry is new, in the order given now.
    let again = [second_new, first_entries].concat();
    let receipt = log.append(again.clone()).await.unwrap();
    check_receipt(&receipt, &again);
    assert_eq!(
        receipt
            .entries
            .iter()
            .map(|s| (s.index.0, s.duplicate))
            .collect::<Vec<_>>(),
        (1..=2 * ROUND).map(|i| (i, false)).collect::<Vec<_>>()
    );
    log.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_the_round_in_flight_and_refuses_the_rest() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    let (started, release) = store.gate();
    let in_flight = tokio::spawn({
        let log = log.clone();
        async move { log.append(vec![entry(0)]).await }
    });
    let _started = commit_started(started).await;
    let mut queued = Box::pin(log.append(vec![entry(1)]));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(queued.as_mut().poll(&mut cx).is_pending());
    // The first poll of `shutdown` closes the queue, then waits for the thread.
    let mut shutdown = Box::pin(log.shutdown());
    assert!(shutdown.as_mut().poll(&mut cx).is_pending());
    assert_eq!(
        log.append(vec![entry(2)]).await.unwrap_err(),
        LogError::ShuttingDown
    );
    release.send(()).unwrap();
    let sealed = in_flight.await.unwrap().unwrap();
    check_receipt(&sealed, &[entry(0)]);
    assert_eq!(queued.await.unwrap_err(), LogError::ShuttingDown);
    shutdown.await;
    // Reads keep working after shutdown; the state is durable.
    assert_eq!(log.latest().size().0, 1);
    assert_eq!(
        log.entries(LeafIndex(0), LeafIndex(1)).await.unwrap(),
        vec![entry(0)]
    );
    log.shutdown().await; // idempotent
}

#[tokio::test]
async fn reopening_resumes_from_the_stored_tiles() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    for call in 0..5u64 {
        log.append((call * 100..call * 100 + 70).map(entry).collect())
            .await
            .unwrap();
    }
    let before = log.latest();
    log.shutdown().await;
    drop(log);
    let log = open(&store, LogConfig::default());
    assert_eq!(log.latest(), before);
    assert!(log.signing_refused().is_none());
    let receipt = log.append(vec![entry(9999)]).await.unwrap();
    check_receipt(&receipt, &[entry(9999)]);
    assert_eq!(receipt.entries[0].index.0, 350);
    let proof = log
        .consistency_proof(before.size(), TreeSize(351))
        .await
        .unwrap();
    verify_consistency(
        before.size(),
        TreeSize(351),
        &proof,
        &before.root(),
        &receipt.checkpoint.root(),
    )
    .unwrap();
    log.shutdown().await;
}

#[tokio::test]
async fn a_tampered_store_is_served_read_only_and_never_signed() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    log.append((0..300).map(entry).collect()).await.unwrap();
    let published = log.latest();
    log.shutdown().await;
    drop(log);

    // Flip one byte of the level-8 hash of leaves [0, 256) (tile 1/0), a frontier node
    // of size 300. (Recovery reads the O(log n) frontier, not every tile.)
    let key = TileId {
        level: 1,
        index: 0,
        width: 1,
    };
    let mut tile = store.read_tiles(&[key]).unwrap()[0].clone().unwrap();
    tile[0] ^= 1;
    store
        .commit(&RoundWrite {
            tiles: vec![(key, ValueWrite::Put(tile))],
            ..RoundWrite::default()
        })
        .unwrap();

    let log = open(&store, LogConfig::default());
    let reason = log.signing_refused().expect("must refuse to sign");
    assert!(matches!(log.health(), Err(LogError::SigningRefused(_))));
    assert!(reason.contains("root"), "{reason}");
    assert_eq!(log.latest(), published);
    let err = log.append(vec![entry(1000)]).await.unwrap_err();
    assert!(matches!(err, LogError::SigningRefused(_)), "{err}");
    // Reads are still served.
    assert_eq!(
        log.entries(LeafIndex(0), LeafIndex(2)).await.unwrap(),
        vec![entry(0), entry(1)]
    );
    assert_eq!(
        log.checkpoint_at(TreeSize(300))
            .await
            .unwrap()
            .map(|c| c.note().clone()),
        Some(published.note().clone())
    );
    log.shutdown().await;

    // A dedup row pointing at another entry never yields a proof for the wrong leaf.
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    log.append((0..10).map(entry).collect()).await.unwrap();
    store
        .commit(&RoundWrite {
            dedup: vec![(hash_leaf(&entry(3)), 7)],
            ..RoundWrite::default()
        })
        .unwrap();
    let err = log.append(vec![entry(3)]).await.unwrap_err();
    assert!(
        matches!(&err, LogError::Storage(m) if m.contains("another entry")),
        "{err}"
    );
    log.shutdown().await;

    // A missing tile is corruption too.
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    log.append((0..10).map(entry).collect()).await.unwrap();
    log.shutdown().await;
    drop(log);
    let tile = |width| TileId {
        level: 0,
        index: 0,
        width,
    };
    let truncated = store.read_tiles(&[tile(10)]).unwrap()[0].clone().unwrap()[..32 * 9].to_vec();
    store
        .commit(&RoundWrite {
            tiles: vec![(tile(9), ValueWrite::Put(truncated))],
            ..RoundWrite::default()
        })
        .unwrap();
    let log = open(&store, LogConfig::default());
    assert!(log.signing_refused().is_some());
    log.shutdown().await;
}

#[tokio::test]
async fn open_refuses_other_origins_keys_and_bad_signatures() {
    let store = TestStore::new();
    let err = Log::open(
        store.clone(),
        signer(),
        "other.example/log".into(),
        LogConfig::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, LogError::Recovery(m) if m.contains("origin")),
        "{err}"
    );
    let other_key = Arc::new(Ed25519Signer::from_seed(ORIGIN, &[8u8; 32]).unwrap());
    let err = Log::open(
        store.clone(),
        other_key,
        ORIGIN.into(),
        LogConfig::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, LogError::Recovery(m) if m.contains("public key")),
        "{err}"
    );
    let err = Log::open(
        store.clone(),
        signer(),
        ORIGIN.into(),
        LogConfig {
            max_entry_bytes: 70_000,
            ..LogConfig::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, LogError::InvalidConfig(_)), "{err}");

    // A latest checkpoint whose signature does not verify: refuse to start.
    let log = open(&store, LogConfig::default());
    log.append(vec![entry(0)]).await.unwrap();
    let mut note = log.latest().note().to_vec();
    log.shutdown().await;
    drop(log);
    let last = note.len() - 3;
    note[last] ^= 0x01;
    store
        .commit(&RoundWrite {
            checkpoint: Some((1, note)),
            ..RoundWrite::default()
        })
        .unwrap();
    let err = Log::open(store.clone(), signer(), ORIGIN.into(), LogConfig::default()).unwrap_err();
    assert!(
        matches!(&err, LogError::Recovery(m) if m.contains("checkpoint")),
        "{err}"
    );
}

#[tokio::test]
async fn reads_are_bounded_by_the_published_size_and_verify() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    let mut all = Vec::new();
    let mut checkpoints = Vec::new();
    for k in [1u64, 254, 1, 1, 300, 200] {
        let entries: Vec<Bytes> = (all.len() as u64..all.len() as u64 + k)
            .map(entry)
            .collect();
        let receipt = log.append(entries.clone()).await.unwrap();
        all.extend(entries);
        checkpoints.push(receipt.checkpoint.clone());
    }
    let leaves: Vec<Hash> = all.iter().map(|e| hash_leaf(e)).collect();
    let size = all.len() as u64;
    for cp in &checkpoints {
        assert_eq!(
            log.checkpoint_at(cp.size())
                .await
                .unwrap()
                .map(|c| c.note().clone()),
            Some(cp.note().clone())
        );
        assert_eq!(cp.root(), naive_root(&leaves[..cp.size().0 as usize]));
        for index in [0, cp.size().0 / 2, cp.size().0 - 1] {
            let proof = log
                .inclusion_proof(LeafIndex(index), cp.size())
                .await
                .unwrap();
            verify_inclusion(
                &leaves[index as usize],
                LeafIndex(index),
                cp.size(),
                &proof,
                &cp.root(),
            )
            .unwrap();
        }
        for newer in &checkpoints {
            if newer.size() >= cp.size() {
                let proof = log
                    .consistency_proof(cp.size(), newer.size())
                    .await
                    .unwrap();
                verify_consistency(cp.size(), newer.size(), &proof, &cp.root(), &newer.root())
                    .unwrap();
            }
        }
    }
    // Tiles and bundles at the published size reproduce the entries and the root.
    let mut level0 = Vec::new();
    for index in 0..=(size - 1) / 256 {
        let width = (size - index * 256).min(256) as u16;
        level0.extend(
            log.tile(TileId {
                level: 0,
                index,
                width,
            })
            .await
            .unwrap()
            .unwrap(),
        );
        let bundle = log.entry_bundle(index, width).await.unwrap().unwrap();
        let mut expected = Vec::new();
        for e in &all[(index * 256) as usize..(index * 256 + u64::from(width)) as usize] {
            push_entry(&mut expected, e).unwrap();
        }
        assert_eq!(bundle.to_vec(), expected);
        assert_eq!(
            log.tile(TileId {
                level: 0,
                index,
                width: width + 1
            })
            .await
            .unwrap(),
            None
        );
    }
    let from_tiles: Vec<Hash> = level0.chunks(32).map(|c| c.try_into().unwrap()).collect();
    assert_eq!(naive_root(&from_tiles), log.latest().root());
    // A partial width of an old size is a prefix of the stored tile.
    assert_eq!(
        log.tile(TileId {
            level: 0,
            index: 0,
            width: 1
        })
        .await
        .unwrap()
        .unwrap()
        .to_vec(),
        leaves[0].as_bytes().to_vec()
    );
    assert_eq!(
        log.tile(TileId {
            level: 1,
            index: 0,
            width: 2
        })
        .await
        .unwrap()
        .unwrap()
        .len(),
        64
    );
    assert_eq!(
        log.tile(TileId {
            level: 1,
            index: 0,
            width: 3
        })
        .await
        .unwrap(),
        None
    );
    assert_eq!(
        log.tile(TileId {
            level: 0,
            index: 0,
            width: 0
        })
        .await
        .unwrap(),
        None
    );
    assert_eq!(log.entry_bundle(9, 1).await.unwrap(), None);

    // Beyond the published size: out of range, never a partial answer.
    for result in [
        log.inclusion_proof(LeafIndex(size), TreeSize(size)).await,
        log.inclusion_proof(LeafIndex(0), TreeSize(size + 1)).await,
        log.consistency_proof(TreeSize(0), TreeSize(size)).await,
        log.consistency_proof(TreeSize(5), TreeSize(4)).await,
        log.consistency_proof(TreeSize(1), TreeSize(size + 1)).await,
    ] {
        assert!(
            matches!(result, Err(LogError::OutOfRange { .. })),
            "{result:?}"
        );
    }
    assert!(matches!(
        log.entries(LeafIndex(size - 1), LeafIndex(size + 1)).await,
        Err(LogError::OutOfRange { .. })
    ));
    assert!(matches!(
        log.entries(LeafIndex(3), LeafIndex(3)).await,
        Err(LogError::OutOfRange { .. })
    ));
    assert!(matches!(
        log.entries(LeafIndex(0), LeafIndex(1025)).await,
        Err(LogError::OutOfRange { .. })
    ));
    assert_eq!(
        log.entries(LeafIndex(250), LeafIndex(260)).await.unwrap(),
        all[250..260].to_vec()
    );
    assert_eq!(log.checkpoint_at(TreeSize(size + 1)).await.unwrap(), None);
    assert_eq!(log.checkpoint_at(TreeSize(3)).await.unwrap(), None);
    log.shutdown().await;
}

#[tokio::test]
async fn subscribers_see_published_checkpoints_and_never_a_smaller_size() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    let mut watcher = log.subscribe();
    let mut last = watcher.borrow_and_update().size().0;
    let writer = tokio::spawn({
        let log = log.clone();
        async move {
            for i in 0..50 {
                log.append(vec![entry(i)]).await.unwrap();
            }
        }
    });
    while last < 50 {
        tokio::time::timeout(Duration::from_secs(10), watcher.changed())
            .await
            .unwrap()
            .unwrap();
        let size = watcher.borrow_and_update().size().0;
        assert!(size > last, "size went from {last} to {size}");
        last = size;
    }
    writer.await.unwrap();
    log.shutdown().await;
}

#[tokio::test]
async fn dropping_every_handle_stops_the_sequencer() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    log.append(vec![entry(0)]).await.unwrap();
    drop(log);
    // The thread released its store handle: only ours is left (bounded wait).
    let mut released = false;
    for _ in 0..200 {
        if Arc::strong_count(&store) == 1 {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(released);
}

#[tokio::test]
async fn rounds_and_proofs_use_one_batched_read_each() {
    let store = TestStore::new();
    let log = open(&store, LogConfig::default());
    log.append((0..1000).map(entry).collect()).await.unwrap();
    let (tiles, dedup) = (
        store.tile_reads.load(Ordering::SeqCst),
        store.dedup_reads.load(Ordering::SeqCst),
    );
    // A round of new entries: no dedup lookup (the leaf filter has never seen them), no
    // tile read (proofs are in memory).
    log.append((1000..1700).map(entry).collect()).await.unwrap();
    assert_eq!(store.dedup_reads.load(Ordering::SeqCst), dedup);
    assert_eq!(store.tile_reads.load(Ordering::SeqCst), tiles);
    // A round with old duplicates: one dedup multi-get, and their proofs come from one
    // tile read.
    log.append(vec![entry(3), entry(999), entry(1700), entry(5)])
        .await
        .unwrap();
    assert_eq!(store.dedup_reads.load(Ordering::SeqCst), dedup + 1);
    assert_eq!(store.tile_reads.load(Ordering::SeqCst), tiles + 1);
    // Each proof served is one tile read.
    log.inclusion_proof(LeafIndex(700), TreeSize(1701))
        .await
        .unwrap();
    log.consistency_proof(TreeSize(300), TreeSize(1701))
        .await
        .unwrap();
    assert_eq!(store.tile_reads.load(Ordering::SeqCst), tiles + 3);
    log.shutdown().await;
}

mod model {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Sequential calls drawn from a small alphabet (so duplicates are frequent)
        /// against a naive model: first occurrence order defines the indexes.
        #[test]
        fn appends_match_a_naive_model(calls in prop::collection::vec(prop::collection::vec(0u64..12, 1..8), 1..10)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let store = TestStore::new();
                let log = open(&store, LogConfig::default());
                let mut model: Vec<u64> = Vec::new();
                for call in &calls {
                    let entries: Vec<Bytes> = call.iter().map(|i| entry(*i)).collect();
                    let receipt = log.append(entries.clone()).await.unwrap();
                    check_receipt(&receipt, &entries);
                    for (value, sealed) in call.iter().zip(&receipt.entries) {
                        let (index, duplicate) = match model.iter().position(|v| v == value) {
                            Some(i) => (i as u64, true),
                            None => {
                                model.push(*value);
                                (model.len() as u64 - 1, false)
                            }
                        };
                        prop_assert_eq!((sealed.index.0, sealed.duplicate), (index, duplicate));
                    }
                    let leaves: Vec<Hash> = model.iter().map(|v| hash_leaf(&entry(*v))).collect();
                    prop_assert_eq!(receipt.checkpoint.size().0, model.len() as u64);
                    prop_assert_eq!(receipt.checkpoint.root(), naive_root(&leaves));
                }
                log.shutdown().await;
                Ok(())
            })?;
        }
    }
}
