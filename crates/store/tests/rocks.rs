//! RocksStore on a temporary directory, driven through the log: layout, partial-tile
//! prefixes, proof reads across tile boundaries, recovery after reopen, the
//! single-process lock and metadata checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use merklog_log::{
    ALGORITHM_ED25519, Log, LogConfig, LogError, LogMetadata, LogStore, RoundWrite, ValueWrite,
};
use merklog_merkle::bundle::push_entry;
use merklog_merkle::tile::{
    TILE_WIDTH, TileId, hashes_from_tile_bytes, node_location, subtree_root, tile_bytes,
    tile_width_at,
};
use merklog_merkle::{
    CompactRange, Hash, LeafIndex, TreeSize, hash_leaf, verify_consistency, verify_inclusion,
};
use merklog_note::Ed25519Signer;
use merklog_store::{RocksStore, StoreError};

const ORIGIN: &str = "example.com/store-test";

fn signer() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_seed(ORIGIN, &[9u8; 32]).unwrap())
}

fn metadata() -> LogMetadata {
    LogMetadata {
        origin: ORIGIN.into(),
        verifier_key: signer().verifier().to_vkey(),
        algorithm: ALGORITHM_ED25519.into(),
    }
}

fn open_log(dir: &std::path::Path, config: LogConfig) -> (Arc<RocksStore>, Log) {
    let store = Arc::new(RocksStore::open_for(dir, &metadata()).unwrap());
    let log = Log::open(store.clone(), signer(), ORIGIN.into(), config).unwrap();
    (store, log)
}

fn entry(i: u64) -> Bytes {
    Bytes::from(format!("entry-{i:08}"))
}

/// A tile to read whole: a store returns the value it holds for the level and index,
/// whatever width is asked for.
fn whole_tile(level: u8, index: u64) -> TileId {
    TileId {
        level,
        index,
        width: TILE_WIDTH,
    }
}

/// The root from the naive tree, independent of the log and of `CompactRange`.
fn root_of(leaves: &[Hash]) -> Hash {
    merklog_testkit_tree::mth(leaves)
}

/// The frontier of `size` read straight from the stored tiles (independent of the log).
fn stored_frontier(store: &RocksStore, size: u64) -> Vec<Hash> {
    CompactRange::frontier_ids(TreeSize(size))
        .into_iter()
        .map(|id| {
            let location = node_location(id);
            let key = whole_tile(location.tile_level, location.tile_index);
            let tile = store.read_tiles(&[key]).unwrap()[0].clone().unwrap();
            let hashes = hashes_from_tile_bytes(&tile).unwrap();
            subtree_root(&hashes[usize::from(location.start)..usize::from(location.end())]).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn rounds_land_in_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = open_log(dir.path(), LogConfig::default());
    let entries: Vec<Bytes> = (0..300).map(entry).collect();
    let receipt = log.append(entries.clone()).await.unwrap();
    let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();

    // Level-0 tiles: one full (256 leaf hashes), one partial (44).
    let tiles = store
        .read_tiles(&[whole_tile(0, 0), whole_tile(0, 1), whole_tile(1, 0)])
        .unwrap();
    assert_eq!(tiles[0].as_deref().unwrap(), tile_bytes(&leaves[..256]));
    assert_eq!(tiles[1].as_deref().unwrap(), tile_bytes(&leaves[256..]));
    // Level-1 tile: the root of the first 256 leaves.
    assert_eq!(
        tiles[2].as_deref().unwrap(),
        root_of(&leaves[..256]).as_bytes()
    );
    // Bundles: u16 BE length || bytes.
    let bundles = store.read_bundles(&[0, 1, 2]).unwrap();
    let mut expected = Vec::new();
    for e in &entries[256..] {
        push_entry(&mut expected, e).unwrap();
    }
    assert_eq!(bundles[1].as_deref().unwrap(), expected);
    assert_eq!(bundles[2], None);
    // Dedup rows and checkpoints (by size and latest).
    assert_eq!(
        store.lookup_leaves(&[leaves[7], hash_leaf(b"no")]).unwrap(),
        [Some(7), None]
    );
    assert_eq!(
        store.checkpoint(300).unwrap().unwrap(),
        receipt.checkpoint.note().to_vec()
    );
    assert_eq!(
        store.latest_checkpoint().unwrap().unwrap(),
        receipt.checkpoint.note().to_vec()
    );
    assert!(store.checkpoint(0).unwrap().is_some());
    log.shutdown().await;
}

#[tokio::test]
async fn partial_tiles_and_bundles_are_prefixes_of_their_successors() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = open_log(dir.path(), LogConfig::default());
    let keys = [whole_tile(0, 0), whole_tile(0, 1), whole_tile(1, 0)];
    let mut previous: Vec<Option<Vec<u8>>> = vec![None; 3];
    let mut previous_bundles: Vec<Option<Vec<u8>>> = vec![None; 2];
    let mut next = 0u64;
    for k in [1u64, 2, 100, 152, 1, 9, 200, 50] {
        log.append((next..next + k).map(entry).collect())
            .await
            .unwrap();
        next += k;
        let tiles = store.read_tiles(&keys).unwrap();
        let bundles = store.read_bundles(&[0, 1]).unwrap();
        for (old, new) in previous
            .iter()
            .zip(&tiles)
            .chain(previous_bundles.iter().zip(&bundles))
        {
            if let Some(old) = old {
                let new = new.as_ref().expect("a stored value never disappears");
                assert!(
                    new.starts_with(old),
                    "a rewritten right edge must extend the old value"
                );
            }
        }
        // Each stored tile is exactly as wide as the current size says.
        for (key, tile) in keys.iter().zip(&tiles) {
            let width = usize::from(tile_width_at(key.level, key.index, TreeSize(next)));
            assert_eq!(tile.as_ref().map_or(0, Vec::len), width * 32);
        }
        previous = tiles;
        previous_bundles = bundles;
    }
    log.shutdown().await;
}

#[tokio::test]
async fn proofs_read_across_tile_boundaries_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = open_log(dir.path(), LogConfig::default());
    // Rounds ending at sizes around 256 and 65536.
    let mut size = 0u64;
    let mut checkpoints = Vec::new();
    for target in [255u64, 256, 257, 8_000, 65_535, 65_536, 65_537, 65_800] {
        while size < target {
            let end = target.min(size + 8192);
            let receipt = log.append((size..end).map(entry).collect()).await.unwrap();
            size = end;
            checkpoints.push(receipt.checkpoint.clone());
        }
    }
    let leaves: Vec<Hash> = (0..size).map(|i| hash_leaf(&entry(i))).collect();
    let sizes = [
        1u64, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 65_800,
    ];
    for &tree_size in &sizes {
        let root = root_of(&leaves[..tree_size as usize]);
        for index in [
            0u64,
            1,
            254,
            255,
            256,
            257,
            65_534,
            65_535,
            65_536,
            tree_size - 1,
        ] {
            if index >= tree_size {
                continue;
            }
            let proof = log
                .inclusion_proof(LeafIndex(index), TreeSize(tree_size))
                .await
                .unwrap();
            verify_inclusion(
                &leaves[index as usize],
                LeafIndex(index),
                TreeSize(tree_size),
                &proof,
                &root,
            )
            .unwrap_or_else(|e| panic!("index {index} size {tree_size}: {e}"));
        }
        for &old in sizes.iter().filter(|&&old| old <= tree_size) {
            let proof = log
                .consistency_proof(TreeSize(old), TreeSize(tree_size))
                .await
                .unwrap();
            let old_root = root_of(&leaves[..old as usize]);
            verify_consistency(TreeSize(old), TreeSize(tree_size), &proof, &old_root, &root)
                .unwrap_or_else(|e| panic!("{old} -> {tree_size}: {e}"));
        }
    }
    for cp in &checkpoints {
        assert_eq!(cp.root(), root_of(&leaves[..cp.size().0 as usize]));
    }
    // Entries across a bundle boundary.
    let read = log
        .entries(LeafIndex(65_530), LeafIndex(65_540))
        .await
        .unwrap();
    assert_eq!(read, (65_530..65_540).map(entry).collect::<Vec<_>>());
    drop(store);
    log.shutdown().await;
}

#[tokio::test]
async fn reopening_recovers_the_same_root_and_frontier() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = open_log(dir.path(), LogConfig::default());
    for round in 0..7u64 {
        log.append(
            (round * 1000..round * 1000 + 97 * (round + 1))
                .map(entry)
                .collect(),
        )
        .await
        .unwrap();
    }
    let before = log.latest();
    let frontier = stored_frontier(&store, before.size().0);
    log.shutdown().await;
    drop(log);
    drop(store);

    let (store, log) = open_log(dir.path(), LogConfig::default());
    assert_eq!(log.latest(), before);
    assert!(log.signing_refused().is_none());
    let reread = stored_frontier(&store, before.size().0);
    assert_eq!(reread, frontier);
    assert_eq!(
        CompactRange::from_frontier(before.size(), reread)
            .unwrap()
            .root(),
        before.root()
    );
    // Appending continues right after, and duplicates are still found.
    let receipt = log
        .append(vec![entry(0), Bytes::from_static(b"after reopen")])
        .await
        .unwrap();
    assert_eq!(receipt.entries[0].index, LeafIndex(0));
    assert!(receipt.entries[0].duplicate);
    assert_eq!(receipt.entries[1].index.0, before.size().0);
    let proof = log
        .consistency_proof(before.size(), TreeSize(before.size().0 + 1))
        .await
        .unwrap();
    verify_consistency(
        before.size(),
        TreeSize(before.size().0 + 1),
        &proof,
        &before.root(),
        &receipt.checkpoint.root(),
    )
    .unwrap();
    log.shutdown().await;
}

/// Every acknowledged round is synced: RocksDB's WAL-sync counter grows by at least one
/// per round. Killing a process keeps the page cache, so only this counter (not the
/// crash test) shows that a round reached the disk before it was answered.
#[tokio::test]
async fn every_commit_syncs_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = open_log(dir.path(), LogConfig::default());
    let rounds = 16u64;
    let before = store.wal_syncs();
    for i in 0..rounds {
        // One call at a time: each call is a round of its own, acknowledged before the
        // next one is queued.
        let receipt = log.append(vec![entry(i)]).await.unwrap();
        assert_eq!(receipt.checkpoint.size().0, i + 1);
    }
    let synced = store.wal_syncs() - before;
    assert!(
        synced >= rounds,
        "{rounds} acknowledged rounds but only {synced} WAL syncs"
    );

    // The store's own commit, without the log: one sync per call.
    let before = store.wal_syncs();
    store
        .commit(&RoundWrite {
            dedup: vec![(hash_leaf(b"not in the tree"), u64::MAX)],
            ..RoundWrite::default()
        })
        .unwrap();
    assert!(
        store.wal_syncs() > before,
        "a commit returned without a WAL sync"
    );
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = RocksStore::open_for(dir.path(), &metadata()).unwrap();
    let err = RocksStore::open(dir.path()).unwrap_err();
    assert_eq!(
        err,
        StoreError::Locked {
            path: dir.path().to_path_buf()
        }
    );
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(first);
    RocksStore::open(dir.path()).unwrap();
}

/// The child half of the two-process test: opens the directory it is given and prints
/// the outcome. Does nothing when run on its own.
#[test]
fn child_process_opens_the_store() {
    let Ok(dir) = std::env::var("MERKLOG_STORE_CHILD_DIR") else {
        return;
    };
    match RocksStore::open(&dir) {
        Ok(_) => println!("CHILD-RESULT: opened"),
        Err(e) => println!("CHILD-RESULT: {e:?}"),
    }
}

#[test]
fn another_process_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _held = RocksStore::open_for(dir.path(), &metadata()).unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_opens_the_store",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MERKLOG_STORE_CHILD_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // libtest prints "test <name> ... " on the same line before the child's output.
    let result = stdout
        .split("CHILD-RESULT: ")
        .nth(1)
        .expect("the child test ran");
    assert!(result.starts_with("Locked"), "{result}");
}

#[test]
fn metadata_is_written_once_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(store.metadata().unwrap(), None);
    store.initialize(&metadata()).unwrap();
    store.initialize(&metadata()).unwrap();
    drop(store);
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(store.metadata().unwrap(), Some(metadata()));
    let other_origin = LogMetadata {
        origin: "other.example/log".into(),
        ..metadata()
    };
    assert!(matches!(
        store.initialize(&other_origin),
        Err(StoreError::MetadataMismatch {
            field: "origin",
            ..
        })
    ));
    let other_key = LogMetadata {
        verifier_key: Ed25519Signer::from_seed(ORIGIN, &[1u8; 32])
            .unwrap()
            .verifier()
            .to_vkey(),
        ..metadata()
    };
    let err = store.initialize(&other_key).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::MetadataMismatch {
                field: "verifier_key",
                ..
            }
        ),
        "{err}"
    );
    drop(store);
    assert!(RocksStore::open_for(dir.path(), &other_origin).is_err());
}

#[tokio::test]
async fn the_log_refuses_a_store_of_another_origin_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<RocksStore> = Arc::new(RocksStore::open_for(dir.path(), &metadata()).unwrap());
    let err = Log::open(
        store.clone(),
        signer(),
        "other.example/log".into(),
        LogConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(err, LogError::Recovery(_)), "{err}");
    let other = Arc::new(Ed25519Signer::from_seed(ORIGIN, &[1u8; 32]).unwrap());
    let err = Log::open(store.clone(), other, ORIGIN.into(), LogConfig::default()).unwrap_err();
    assert!(matches!(err, LogError::Recovery(_)), "{err}");
    // A store with no metadata is refused too.
    let empty_dir = tempfile::tempdir().unwrap();
    let empty = Arc::new(RocksStore::open(empty_dir.path()).unwrap());
    let err = Log::open(empty, signer(), ORIGIN.into(), LogConfig::default()).unwrap_err();
    assert!(matches!(err, LogError::Recovery(_)), "{err}");
}

#[tokio::test]
async fn a_tampered_tile_on_disk_makes_the_log_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = open_log(dir.path(), LogConfig::default());
    log.append((0..1000).map(entry).collect()).await.unwrap();
    let published = log.latest();
    log.shutdown().await;
    drop(log);
    // Rewrite the level-1 tile (a frontier node of 1000 = 3 * 256 + 232).
    let key = TileId {
        level: 1,
        index: 0,
        width: 3,
    };
    let mut tile = store.read_tiles(&[key]).unwrap()[0].clone().unwrap();
    tile[40] ^= 0x80;
    store
        .commit(&RoundWrite {
            tiles: vec![(key, ValueWrite::Put(tile))],
            ..RoundWrite::default()
        })
        .unwrap();
    drop(store);
    let (_store, log) = open_log(dir.path(), LogConfig::default());
    assert!(log.signing_refused().is_some());
    assert_eq!(log.latest(), published);
    assert!(matches!(
        log.append(vec![entry(5000)]).await,
        Err(LogError::SigningRefused(_))
    ));
    assert_eq!(
        log.entries(LeafIndex(998), LeafIndex(1000)).await.unwrap(),
        vec![entry(998), entry(999)]
    );
    log.shutdown().await;
}

#[tokio::test]
async fn a_cosigned_checkpoint_is_kept_by_size_and_as_published_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = open_log(dir.path(), LogConfig::default());
    log.append((0..10).map(entry).collect()).await.unwrap();
    let signed = log.latest();
    log.shutdown().await;
    drop(log);
    assert_eq!(store.published_checkpoint().unwrap(), None);

    // The same checkpoint with one more signature line (a witness's cosignature).
    let mut cosigned = signed.note().to_vec();
    cosigned.extend_from_slice("\u{2014} witness.example/w1 AAAAAAAAAAAAAAAAAAAA\n".as_bytes());
    store
        .store_cosigned_checkpoint(signed.size().0, &cosigned)
        .unwrap();
    assert_eq!(
        store.published_checkpoint().unwrap(),
        Some(cosigned.clone())
    );
    assert_eq!(
        store.checkpoint(signed.size().0).unwrap(),
        Some(cosigned.clone())
    );
    // "latest" belongs to the sequencer's commits only.
    assert_eq!(
        store.latest_checkpoint().unwrap(),
        Some(signed.note().to_vec())
    );

    // Another checkpoint body, or a size never signed, is refused and changes nothing.
    let mut other = signed.note().to_vec();
    other[ORIGIN.len() + 1] = b'9';
    assert!(
        store
            .store_cosigned_checkpoint(signed.size().0, &other)
            .is_err()
    );
    assert!(store.store_cosigned_checkpoint(11, &cosigned).is_err());
    assert_eq!(
        store.published_checkpoint().unwrap(),
        Some(cosigned.clone())
    );

    drop(store);
    let store = RocksStore::open_for(dir.path(), &metadata()).unwrap();
    assert_eq!(store.published_checkpoint().unwrap(), Some(cosigned));
}

#[tokio::test]
async fn one_entry_rounds_after_a_reopen_write_each_entry_once() {
    // One entry per round, 200 rounds (the first bundle never fills): a log that
    // rewrote the partial bundle every round would put each entry in the WAL about
    // 100 times.
    let dir = tempfile::tempdir().unwrap();
    let big = |i: u64| Bytes::from(format!("{i:04}").repeat(250));
    let wal_files = || -> Vec<(String, u64)> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, e.metadata().unwrap().len())
            })
            .collect()
    };
    let mut before = Vec::new();
    for half in 0..2u64 {
        // The second half continues the partial bundle and tiles the first stored.
        before = wal_files();
        let (store, log) = open_log(dir.path(), LogConfig::default());
        for i in half * 100..half * 100 + 100 {
            log.append(vec![big(i)]).await.unwrap();
        }
        log.shutdown().await;
        drop(log);
        drop(store);
    }
    // WAL files the second half wrote: 100 KB of entries, and per round a dedup row,
    // a tile hash and a checkpoint under two keys (a few hundred bytes). Rewriting
    // the partial bundle would write ~15 MB.
    let wal: u64 = wal_files()
        .into_iter()
        .filter(|(name, _)| !before.iter().any(|(old, _)| old == name))
        .map(|(_, len)| len)
        .sum();
    assert!(
        wal > 100 * 1000,
        "{wal} WAL bytes: the second half is missing"
    );
    assert!(wal < 2 * 100 * 1000, "{wal} WAL bytes");
    let (_store, log) = open_log(dir.path(), LogConfig::default());
    let entries: Vec<Bytes> = (0..200).map(big).collect();
    assert_eq!(
        log.entries(LeafIndex(0), LeafIndex(200)).await.unwrap(),
        entries
    );
    log.shutdown().await;
}
