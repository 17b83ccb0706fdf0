//! The append-only right edge (format version 2): rounds store only the new bytes of the
//! partial tiles and bundle as merge operands. Reads must equal what an in-memory store
//! (which checks every append's offset) holds after the same rounds, after any round
//! and across reopens, and full values must leave no operands behind once compacted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use merklog_log::{ALGORITHM_ED25519, LogMetadata, LogStore, MemoryStore, RoundWrite};
use merklog_merkle::tile::TileId;
use merklog_merkle::{Hash, hash_leaf};
use merklog_store::keys::{COLUMN_FAMILIES, LogId, bundle_key, tile_key};
use merklog_store::{FORMAT_VERSION, RocksStore};
use rocksdb::{ColumnFamilyDescriptor, DB, MergeOperands, Options};

fn metadata() -> LogMetadata {
    LogMetadata {
        origin: "example.com/right-edge".into(),
        verifier_key: "unused".into(),
        algorithm: ALGORITHM_ED25519.into(),
    }
}

#[path = "support/fake_edge.rs"]
mod fake_edge;
use fake_edge::Edge;

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i} ")
        .repeat((i % 7 + 1) as usize)
        .into_bytes()
}

/// One round of `count` new entries: the edge's values, dedup rows and a checkpoint.
fn round(edge: &mut Edge, count: u64) -> RoundWrite {
    let entries: Vec<Vec<u8>> = (edge.size..edge.size + count).map(entry).collect();
    round_of(edge, &entries)
}

/// One round of the given new entries.
fn round_of(edge: &mut Edge, entries: &[Vec<u8>]) -> RoundWrite {
    let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
    let mut round = RoundWrite {
        dedup: leaves.iter().copied().zip(edge.size..).collect(),
        ..RoundWrite::default()
    };
    edge.append(&leaves, entries, &mut round);
    round.checkpoint = Some((edge.size, format!("checkpoint {}", edge.size).into_bytes()));
    round
}

/// Every tile and bundle key a round ever wrote.
#[derive(Default)]
struct Written {
    /// By level and index: the id of the tile's latest write.
    tiles: BTreeMap<(u8, u64), TileId>,
    bundles: BTreeMap<u64, ()>,
}

impl Written {
    fn note(&mut self, round: &RoundWrite) {
        for (tile, _) in &round.tiles {
            self.tiles.insert((tile.level, tile.index), *tile);
        }
        for (index, _) in &round.bundles {
            self.bundles.insert(*index, ());
        }
    }

    fn assert_same(&self, store: &RocksStore, model: &MemoryStore, context: &str) {
        let tiles: Vec<TileId> = self.tiles.values().copied().collect();
        let bundles: Vec<u64> = self.bundles.keys().copied().collect();
        assert_eq!(
            store.read_tiles(&tiles).unwrap(),
            model.read_tiles(&tiles).unwrap(),
            "tiles {context}"
        );
        assert_eq!(
            store.read_bundles(&bundles).unwrap(),
            model.read_bundles(&bundles).unwrap(),
            "bundles {context}"
        );
        assert_eq!(
            store.latest_checkpoint().unwrap(),
            model.latest_checkpoint().unwrap(),
            "checkpoint {context}"
        );
    }
}

/// Rounds of these sizes cross bundle and tile boundaries in every way: single
/// entries, exact fills, a round that fills one bundle and starts the next, several
/// bundles in one round, and a level-1 tile boundary (65,536 leaves).
const ROUNDS: [u64; 16] = [
    1, 1, 3, 251, 1, 10, 300, 255, 1, 256, 513, 1, 64_000, 7, 1, 200,
];

#[test]
fn reads_match_an_in_memory_store_after_every_round_and_every_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let model = MemoryStore::new(metadata());
    let mut edge = Edge::default();
    let mut written = Written::default();
    let mut store = RocksStore::open_for(dir.path(), &metadata()).unwrap();
    for (n, &count) in ROUNDS.iter().enumerate() {
        let round = round(&mut edge, count);
        written.note(&round);
        store.commit(&round).unwrap();
        model.commit(&round).unwrap();
        let context = format!("after round {n} (size {})", edge.size);
        written.assert_same(&store, &model, &context);
        // Reopen after every other round: appends keep extending the values stored
        // before the reopen.
        if n % 2 == 1 {
            drop(store);
            store = RocksStore::open_for(dir.path(), &metadata()).unwrap();
            written.assert_same(&store, &model, &format!("{context}, reopened"));
        }
    }
    drop(store);

    // Full values leave no operands once RocksDB has compacted: a database opened
    // WITHOUT the append operator reads every full tile and bundle (a key that still
    // had operands would fail to read).
    compact_all(dir.path());
    let raw = open_raw(dir.path(), false);
    let log = LogId(0);
    let (entries, tiles) = (
        raw.cf_handle("entries").unwrap(),
        raw.cf_handle("tiles").unwrap(),
    );
    for index in written.bundles.keys() {
        let result = raw.get_cf(entries, bundle_key(log, *index));
        if (*index + 1) * 256 <= edge.size {
            let expected = model.read_bundles(&[*index]).unwrap()[0].clone();
            assert_eq!(result.unwrap(), expected, "full bundle {index}");
        }
    }
    for key in written.tiles.values() {
        let width = (edge.size >> (8 * u32::from(key.level))) - key.index * 256;
        if width >= 256 {
            let expected = model.read_tiles(&[*key]).unwrap()[0].clone();
            assert_eq!(
                raw.get_cf(tiles, tile_key(log, key)).unwrap(),
                expected,
                "full tile {key:?}"
            );
        }
    }
    drop(raw);
    let store = RocksStore::open_for(dir.path(), &metadata()).unwrap();
    written.assert_same(&store, &model, "after compaction");
}

#[test]
fn entries_grown_one_per_round_reach_the_wal_once_also_when_their_bundle_fills() {
    // 300 rounds of one 1,000-byte entry, across the first full bundle and tile:
    // rewriting the partial bundle every round would put ~128 copies of each entry in
    // the WAL, and putting the bundle whole when it fills one more (256 KB here).
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open_for(dir.path(), &metadata()).unwrap();
    let model = MemoryStore::new(metadata());
    let mut edge = Edge::default();
    let mut written = Written::default();
    let mut entry_bytes = 0;
    for i in 0..300u64 {
        let mut entry = format!("entry {i} ").into_bytes();
        entry.resize(1_000, b'.');
        // The bundle encoding: a two-byte length, then the entry.
        entry_bytes += 2 + entry.len() as u64;
        let round = round_of(&mut edge, &[entry]);
        written.note(&round);
        store.commit(&round).unwrap();
        model.commit(&round).unwrap();
    }
    assert_eq!(edge.size, 300);
    written.assert_same(&store, &model, "after 300 rounds");
    // The WAL holds every batch (nothing was flushed yet).
    let wal: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    // Per round also a dedup row, one new tile hash, a checkpoint under two keys and
    // the batch headers: a few hundred bytes.
    assert!(
        wal < entry_bytes + 300 * 400,
        "{wal} WAL bytes for {entry_bytes} bytes of entries"
    );
    // Compacted, the full bundle and tile are single values that read the same.
    drop(store);
    compact_all(dir.path());
    let store = RocksStore::open_for(dir.path(), &metadata()).unwrap();
    written.assert_same(&store, &model, "after compaction");
}

#[test]
fn a_version_1_directory_is_upgraded_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let model = MemoryStore::new(metadata());
    let mut edge = Edge::default();
    let mut written = Written::default();
    {
        let store = RocksStore::open_for(dir.path(), &metadata()).unwrap();
        for count in [3, 300] {
            let round = round(&mut edge, count);
            written.note(&round);
            store.commit(&round).unwrap();
            model.commit(&round).unwrap();
        }
    }
    // Mark it version 1, as an older build would have left it.
    {
        let raw = open_raw(dir.path(), true);
        let meta = raw.cf_handle("meta").unwrap();
        let mut key = 0u32.to_be_bytes().to_vec();
        key.extend_from_slice(b"format_version");
        raw.put_cf(meta, &key, 1u32.to_be_bytes()).unwrap();
    }
    let store = RocksStore::open_for(dir.path(), &metadata()).unwrap();
    written.assert_same(&store, &model, "version 1 reopened");
    let round = round(&mut edge, 5);
    written.note(&round);
    store.commit(&round).unwrap();
    model.commit(&round).unwrap();
    written.assert_same(&store, &model, "version 1 grown");
    drop(store);
    let raw = open_raw(dir.path(), true);
    let meta = raw.cf_handle("meta").unwrap();
    let mut key = 0u32.to_be_bytes().to_vec();
    key.extend_from_slice(b"format_version");
    assert_eq!(
        raw.get_cf(meta, &key).unwrap().unwrap(),
        FORMAT_VERSION.to_be_bytes()
    );
}

fn concat(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let mut out = existing.map(<[u8]>::to_vec).unwrap_or_default();
    for operand in operands {
        out.extend_from_slice(operand);
    }
    Some(out)
}

/// The data directory as a plain RocksDB database, with or without an append operator
/// (same name as the store's, so RocksDB accepts it) on `tiles` and `entries`.
fn open_raw(path: &Path, with_operator: bool) -> DB {
    let descriptors = COLUMN_FAMILIES.iter().map(|name| {
        let mut options = Options::default();
        if with_operator && matches!(*name, "tiles" | "entries") {
            options.set_merge_operator_associative("merklog.append.v1", concat);
        }
        ColumnFamilyDescriptor::new(*name, options)
    });
    DB::open_cf_descriptors(&Options::default(), path, descriptors).unwrap()
}

fn compact_all(path: &Path) {
    let raw = open_raw(path, true);
    for name in ["tiles", "entries"] {
        let cf = raw.cf_handle(name).unwrap();
        raw.flush_cf(cf).unwrap();
        raw.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
    }
}
