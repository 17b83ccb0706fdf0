//! A log that does not sequence: turned away appends ([`Log::set_standby`]), a reader
//! opened without the key, and [`Log::follow`] catching up with a store another log
//! grew (as a cluster standby or reader does with its cache), including the dedup
//! filter and the sequencer's state when the follower starts sequencing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use merklog_log::{ALGORITHM_ED25519, Log, LogConfig, LogError, LogMetadata, MemoryStore};
use merklog_note::Ed25519Signer;

const ORIGIN: &str = "example.com/follow";

fn signer() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_seed(ORIGIN, &[7u8; 32]).unwrap())
}

fn store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(LogMetadata {
        origin: ORIGIN.into(),
        verifier_key: signer().verifier().to_vkey(),
        algorithm: ALGORITHM_ED25519.into(),
    }))
}

fn entries(prefix: &str, n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| Bytes::from(format!("{prefix} {i}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_publishes_what_the_store_gained_and_then_sequences_on_it() {
    let store = store();
    let leader = Log::open(store.clone(), signer(), ORIGIN.into(), LogConfig::default()).unwrap();
    leader.append(entries("first", 300)).await.unwrap();

    // The follower shares the store (as a standby's cache that the leader's rounds
    // were copied into) and turns appends away.
    let follower = Log::open(store.clone(), signer(), ORIGIN.into(), LogConfig::default()).unwrap();
    follower.set_standby(Some("standby; the leader is elsewhere".into()));
    let refused = follower.append(entries("nope", 1)).await.unwrap_err();
    assert!(
        matches!(&refused, LogError::Unavailable(m) if m.contains("leader is elsewhere")),
        "{refused}"
    );
    let mut watch = follower.subscribe();
    assert_eq!(follower.latest().size().0, 300);
    assert_eq!(follower.follow().unwrap(), None, "nothing new yet");

    leader.append(entries("second", 200)).await.unwrap();
    let grown = tokio::task::block_in_place(|| follower.follow()).unwrap();
    assert_eq!(grown.map(|s| s.0), Some(500));
    assert!(
        watch.has_changed().unwrap(),
        "subscribers see the followed checkpoint"
    );
    assert_eq!(watch.borrow_and_update().size().0, 500);
    assert_eq!(follower.latest().note(), leader.latest().note());
    leader.shutdown().await;

    // The follower takes over: duplicates of followed entries keep their indexes, new
    // entries extend the followed tree.
    follower.set_standby(None);
    let again = follower.append(entries("second", 2)).await.unwrap();
    assert_eq!(again.entries[0].index.0, 300);
    assert!(again.entries.iter().all(|e| e.duplicate));
    let new = follower.append(entries("third", 3)).await.unwrap();
    assert_eq!(new.entries[0].index.0, 500);
    assert_eq!(new.checkpoint.size().0, 503);
    follower.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_needs_no_key_and_never_appends() {
    let store = store();
    // No checkpoint yet: a reader cannot sign the empty tree itself.
    let error = Log::open_reader(store.clone(), ORIGIN.into(), LogConfig::default()).unwrap_err();
    assert!(matches!(error, LogError::Recovery(_)), "{error}");

    let leader = Log::open(store.clone(), signer(), ORIGIN.into(), LogConfig::default()).unwrap();
    leader.append(entries("a", 10)).await.unwrap();
    let reader = Log::open_reader(store.clone(), ORIGIN.into(), LogConfig::default()).unwrap();
    assert_eq!(reader.latest().size().0, 10);
    let refused = reader.append(entries("b", 1)).await.unwrap_err();
    assert!(
        matches!(&refused, LogError::Unavailable(m) if m.contains("read-only")),
        "{refused}"
    );
    leader.append(entries("c", 5)).await.unwrap();
    let grown = tokio::task::block_in_place(|| reader.follow()).unwrap();
    assert_eq!(grown.map(|s| s.0), Some(15));
    let proof = reader
        .inclusion_proof(merklog_merkle::LeafIndex(12), reader.latest().size())
        .await;
    assert!(proof.is_ok(), "{proof:?}");
    leader.shutdown().await;
    reader.shutdown().await;
}
