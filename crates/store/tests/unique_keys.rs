//! The `keys` column family: rows written with the round, read back by batched
//! lookup and by bounded scans, after a reopen too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use merklog_log::{ALGORITHM_ED25519, Log, LogConfig, LogError, LogMetadata, LogStore};
use merklog_merkle::hash_leaf;
use merklog_note::Ed25519Signer;
use merklog_store::RocksStore;

const ORIGIN: &str = "example.com/store-keys";

fn signer() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_seed(ORIGIN, &[3u8; 32]).unwrap())
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

#[tokio::test]
async fn key_rows_survive_a_reopen_and_refuse_a_different_entry() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, log) = open(dir.path());
        let entries: Vec<Bytes> = (0..4).map(|i| Bytes::from(format!("event {i}"))).collect();
        let keys = (0..4u8)
            .map(|i| Some(Bytes::from(vec![b's', 0, i])))
            .collect();
        log.append_keyed(entries, keys).await.unwrap();
        let found = store
            .lookup_keys(&[
                Bytes::from_static(b"s\0\x02"),
                Bytes::from_static(b"s\0\x09"),
            ])
            .unwrap();
        assert_eq!(found[0].unwrap().index, 2);
        assert_eq!(found[1], None);
        log.shutdown().await;
    }
    let (store, log) = open(dir.path());
    let rows = store.scan_keys(b"s\0\x01", b"s\x01", 2).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, b"s\0\x01");
    assert_eq!(rows[1].1.index, 2);
    assert_eq!(rows[1].1.leaf_hash, hash_leaf(b"event 2"));
    let error = log
        .append_keyed(
            vec![Bytes::from_static(b"other")],
            vec![Some(Bytes::from_static(b"s\0\x03"))],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LogError::KeyConflict {
                existing_index: Some(3),
                ..
            }
        ),
        "{error:?}"
    );
    log.shutdown().await;
}
