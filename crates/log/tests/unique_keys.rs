//! Unique keys over the in-memory store: a claimed key makes a different entry a
//! conflict (the whole call refused, nothing written), the same entry a duplicate,
//! within a round, across rounds and against rounds still in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use merklog_log::{
    ALGORITHM_ED25519, Log, LogConfig, LogError, LogMetadata, LogStore, MemoryStore,
};
use merklog_merkle::hash_leaf;
use merklog_note::Ed25519Signer;

const ORIGIN: &str = "example.com/unique-keys";

fn open(store: Arc<MemoryStore>, config: LogConfig) -> Log {
    let signer = Arc::new(Ed25519Signer::from_seed(ORIGIN, &[9u8; 32]).unwrap());
    Log::open(store, signer, ORIGIN.into(), config).unwrap()
}

fn store() -> Arc<MemoryStore> {
    let signer = Ed25519Signer::from_seed(ORIGIN, &[9u8; 32]).unwrap();
    Arc::new(MemoryStore::new(LogMetadata {
        origin: ORIGIN.into(),
        verifier_key: signer.verifier().to_vkey(),
        algorithm: ALGORITHM_ED25519.into(),
    }))
}

fn key(text: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(text.as_bytes()))
}

fn bytes(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

#[tokio::test]
async fn a_claimed_key_refuses_a_different_entry_and_accepts_the_same_one() {
    let store = store();
    let log = open(store.clone(), LogConfig::default());
    let first = log
        .append_keyed(vec![bytes("a1"), bytes("plain")], vec![key("a/1"), None])
        .await
        .unwrap();
    assert_eq!(first.entries[0].index.0, 0);
    // The key row names the leaf and its hash.
    let record = store.lookup_keys(&[bytes("a/1")]).unwrap()[0].unwrap();
    assert_eq!(record.index, 0);
    assert_eq!(record.leaf_hash, hash_leaf(b"a1"));
    assert!(record.recorded_ms > 0);
    assert_eq!(store.lookup_keys(&[bytes("a/2")]).unwrap()[0], None);

    // The same entry under the same key: a duplicate.
    let again = log
        .append_keyed(vec![bytes("a1")], vec![key("a/1")])
        .await
        .unwrap();
    assert!(again.entries[0].duplicate);
    assert_eq!(again.entries[0].index.0, 0);

    // Another entry under a claimed key refuses the whole call: its other entry is
    // not written either.
    let size = log.latest().size().0;
    let error = log
        .append_keyed(
            vec![bytes("fresh"), bytes("a1-forged")],
            vec![key("a/9"), key("a/1")],
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        LogError::KeyConflict {
            index: 1,
            existing_index: Some(0),
        }
    );
    assert_eq!(log.latest().size().0, size);
    assert_eq!(store.lookup_keys(&[bytes("a/9")]).unwrap()[0], None);
    assert_eq!(log.find_leaf(hash_leaf(b"fresh")).await.unwrap(), None);

    // Two different entries under one key in one call.
    let error = log
        .append_keyed(vec![bytes("x"), bytes("y")], vec![key("b/1"), key("b/1")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LogError::KeyConflict {
                index: 1,
                existing_index: None,
                ..
            }
        ),
        "{error:?}"
    );
    // A mismatched key list is refused.
    assert!(matches!(
        log.append_keyed(vec![bytes("z")], vec![key("c"), key("d")])
            .await
            .unwrap_err(),
        LogError::InvalidEntry { .. }
    ));
    log.shutdown().await;
}

#[tokio::test]
async fn concurrent_calls_claiming_one_key_let_exactly_one_in() {
    let store = store();
    let config = LogConfig {
        max_batch_wait: Duration::from_millis(20),
        ..LogConfig::default()
    };
    let log = open(store.clone(), config);
    let mut calls = Vec::new();
    for i in 0..8 {
        let log = log.clone();
        calls.push(tokio::spawn(async move {
            log.append_keyed(vec![bytes(&format!("version {i}"))], vec![key("s/7")])
                .await
        }));
    }
    let mut won = Vec::new();
    let mut lost = Vec::new();
    for call in calls {
        match call.await.unwrap() {
            Ok(receipt) => won.push(receipt.entries[0].index.0),
            Err(LogError::KeyConflict { existing_index, .. }) => lost.push(existing_index),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?} {lost:?}");
    assert_eq!(lost.len(), 7);
    let record = store.lookup_keys(&[bytes("s/7")]).unwrap()[0].unwrap();
    assert_eq!(record.index, won[0]);
    for index in lost {
        assert_eq!(index, Some(record.index));
    }
    assert_eq!(log.latest().size().0, 1);
    log.shutdown().await;
}

#[tokio::test]
async fn keys_scan_in_byte_order_within_bounds() {
    let store = store();
    let log = open(store.clone(), LogConfig::default());
    let entries: Vec<Bytes> = (0..5).map(|i| bytes(&format!("e{i}"))).collect();
    let keys = vec![
        key("s\0b"),
        key("s\0a"),
        key("t\0a"),
        key("s\0c"),
        key("r\0z"),
    ];
    log.append_keyed(entries, keys).await.unwrap();
    let rows = log
        .scan_keys(b"s\0".to_vec(), b"s\x01".to_vec(), 10)
        .await
        .unwrap();
    let names: Vec<&[u8]> = rows.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(names, [b"s\0a".as_slice(), b"s\0b", b"s\0c"]);
    assert_eq!(rows[0].1.index, 1);
    let limited = log
        .scan_keys(b"s\0".to_vec(), b"s\x01".to_vec(), 2)
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    log.shutdown().await;
}
