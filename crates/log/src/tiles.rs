//! Tile-shaped tree state: the right edge kept in memory by the sequencer, the tile
//! reads that rebuild it and serve proofs, and entry-bundle encoding.
//!
//! Hash tile level `t` holds the hashes of Merkle level `8t`; a node at another level is
//! the root of `2^(level % 8)` consecutive hashes of one tile (`merklog_merkle::tile`).
//! A stored tile or bundle may be wider than a published size needs (the right edge
//! grows every round); readers truncate it to the width at the size they serve.
//!
//! Proof reads fold nodes from their tiles. A full tile never changes, so its 16
//! Merkle-level-4 nodes ("summary") are computed once and kept in a bounded,
//! process-wide cache; a node at tile level `r >= 4` then costs at most 7 hashes of
//! summary nodes instead of up to 127 of tile hashes, and a proof about 70 hashes
//! instead of about 740 at 10^7 leaves.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use merklog_merkle::tile::{TILE_HEIGHT, TILE_WIDTH, node_location, subtree_root, tile_width_at};
use merklog_merkle::{
    CompactRange, HASH_SIZE, Hash, NodeId, NodeReader, TreeSize, hash_from_slice,
};

use crate::{LogStore, StorageError, TileKey};

/// Bytes of a full hash tile.
const FULL_TILE_BYTES: usize = TILE_WIDTH as usize * HASH_SIZE;
/// Entries in a full bundle.
const BUNDLE_WIDTH: u64 = TILE_WIDTH as u64;
/// Tile levels a u64 tree can have (Merkle levels 0, 8, ..., 56).
const MAX_TILE_LEVELS: u8 = 8;

/// Why stored tree data could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The backend failed; retrying may work.
    Storage(StorageError),
    /// The data is missing or malformed: corruption, fail closed.
    Corrupt(String),
}

impl From<StorageError> for ReadError {
    fn from(error: StorageError) -> Self {
        ReadError::Storage(error)
    }
}

impl From<ReadError> for crate::LogError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Storage(e) => crate::LogError::Storage(e.0),
            ReadError::Corrupt(reason) => {
                crate::LogError::Storage(format!("corrupt store: {reason}"))
            }
        }
    }
}

/// Hash tiles fetched in one batched read, each truncated to its width at `size`.
struct TileSet {
    tiles: BTreeMap<TileKey, FetchedTile>,
    /// Which store the tiles came from (the summary cache's namespace).
    store: usize,
}

struct FetchedTile {
    bytes: Vec<u8>,
    /// The tile's level-4 nodes, if it is full; filled on first use.
    summary: OnceCell<Option<Summary>>,
}

impl TileSet {
    /// Fetches every tile in `keys` (deduplicated) with ONE `read_tiles` call and keeps
    /// the hashes that exist at `size`.
    fn fetch(store: &dyn LogStore, keys: Vec<TileKey>, size: TreeSize) -> Result<Self, ReadError> {
        let mut keys = keys;
        keys.sort_unstable();
        keys.dedup();
        let values = store.read_tiles(&keys)?;
        if values.len() != keys.len() {
            return Err(ReadError::Storage(StorageError::new(
                "read_tiles returned the wrong count",
            )));
        }
        let mut tiles = BTreeMap::new();
        let store = store_id(store);
        for (key, value) in keys.into_iter().zip(values) {
            let width = usize::from(tile_width_at(key.level, key.index, size));
            let Some(mut bytes) = value else {
                return Err(ReadError::Corrupt(format!(
                    "tile {}/{} is missing",
                    key.level, key.index
                )));
            };
            let needed = width * HASH_SIZE;
            if bytes.len() < needed || !bytes.len().is_multiple_of(HASH_SIZE) {
                return Err(ReadError::Corrupt(format!(
                    "tile {}/{} has {} bytes, size {} needs {needed}",
                    key.level,
                    key.index,
                    bytes.len(),
                    size.0
                )));
            }
            bytes.truncate(needed);
            tiles.insert(
                key,
                FetchedTile {
                    bytes,
                    summary: OnceCell::new(),
                },
            );
        }
        Ok(Self { tiles, store })
    }

    /// The hash of perfect node `id`, folded from its tile.
    fn node(&self, id: NodeId) -> Result<Hash, ReadError> {
        let location = node_location(id);
        let key = TileKey {
            level: location.tile_level,
            index: location.tile_index,
        };
        let corrupt = || ReadError::Corrupt(format!("node {id} is not in its tile"));
        let fetched = self.tiles.get(&key).ok_or_else(corrupt)?;
        if location.count >= SUMMARY_SPAN {
            let summary = fetched
                .summary
                .get_or_init(|| summary_of(self.store, key, &fetched.bytes));
            if let Some(summary) = summary {
                let first = usize::from(location.start / SUMMARY_SPAN);
                let count = usize::from(location.count / SUMMARY_SPAN);
                let part = summary
                    .get(first..first.saturating_add(count))
                    .ok_or_else(corrupt)?;
                return subtree_root(part).map_err(|e| ReadError::Corrupt(e.to_string()));
            }
        }
        let tile = &fetched.bytes;
        let start = usize::from(location.start) * HASH_SIZE;
        let end = usize::from(location.end()) * HASH_SIZE;
        let part = tile.get(start..end).ok_or_else(corrupt)?;
        let hashes = part
            .chunks_exact(HASH_SIZE)
            .map(hash_from_slice)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ReadError::Corrupt(e.to_string()))?;
        subtree_root(&hashes).map_err(|e| ReadError::Corrupt(e.to_string()))
    }

    fn tile(&self, key: &TileKey) -> Option<&Vec<u8>> {
        self.tiles.get(key).map(|fetched| &fetched.bytes)
    }
}

/// Tile hashes under one summary node (Merkle level 4 within the tile).
const SUMMARY_SPAN: u16 = 16;
/// Summary nodes of a full tile.
const SUMMARY_NODES: usize = TILE_WIDTH as usize / SUMMARY_SPAN as usize;
/// The level-4 nodes of a full tile, left to right.
type Summary = [Hash; SUMMARY_NODES];

/// Full tiles whose summaries the process keeps: 64 Ki tiles (16.7 M leaves' worth of
/// level-0 tiles), about 40 MiB at most. Past that a shard drops an arbitrary entry.
const SUMMARY_CACHE_TILES: usize = 1 << 16;
const SUMMARY_SHARDS: usize = 16;

/// A cached summary, with a fingerprint of the tile bytes it was computed from.
struct CachedSummary {
    fingerprint: u64,
    summary: Summary,
}

type SummaryShard = Mutex<HashMap<(usize, TileKey), CachedSummary>>;

fn summary_cache() -> &'static [SummaryShard; SUMMARY_SHARDS] {
    static CACHE: OnceLock<[SummaryShard; SUMMARY_SHARDS]> = OnceLock::new();
    CACHE.get_or_init(|| std::array::from_fn(|_| Mutex::new(HashMap::new())))
}

/// The summary cache's namespace for a store: its address. Two stores alive at once
/// never share one; a store allocated where a dropped one was could, which is why an
/// entry is only used when the tile's fingerprint matches too.
fn store_id(store: &dyn LogStore) -> usize {
    std::ptr::from_ref(store).cast::<()>().addr()
}

/// A 64-bit fingerprint of tile bytes (not cryptographic: it only tells apart the
/// tiles of different stores that reused an address; within one store a full tile
/// never changes).
fn fingerprint(bytes: &[u8]) -> u64 {
    let mut lanes = [
        0x9e37_79b9_7f4a_7c15u64,
        0x6a09_e667_f3bc_c908,
        0xbb67_ae85_84ca_a73b,
        0x3c6e_f372_fe94_f82b,
    ];
    for (i, word) in bytes.chunks_exact(8).enumerate() {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(word);
        let lane = &mut lanes[i % 4];
        *lane =
            (lane.rotate_left(23) ^ u64::from_le_bytes(buf)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    lanes.iter().fold(bytes.len() as u64, |acc, lane| {
        (acc.rotate_left(17) ^ lane).wrapping_mul(0xff51_afd7_ed55_8ccd)
    })
}

/// The summary of a tile if it is full: from the cache, else computed and cached.
/// `None` for a partial tile (it changes as the log grows) or malformed bytes.
fn summary_of(store: usize, key: TileKey, bytes: &[u8]) -> Option<Summary> {
    if bytes.len() != FULL_TILE_BYTES {
        return None;
    }
    let print = fingerprint(bytes);
    let shard_index = (key.index as usize ^ usize::from(key.level)) % SUMMARY_SHARDS;
    let shard = summary_cache().get(shard_index)?;
    {
        let cached = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = cached.get(&(store, key))
            && entry.fingerprint == print
        {
            return Some(entry.summary);
        }
    }
    let mut summary = [[0u8; HASH_SIZE]; SUMMARY_NODES];
    let span = usize::from(SUMMARY_SPAN) * HASH_SIZE;
    for (node, chunk) in summary.iter_mut().zip(bytes.chunks_exact(span)) {
        let hashes = chunk
            .chunks_exact(HASH_SIZE)
            .map(hash_from_slice)
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        *node = subtree_root(&hashes).ok()?;
    }
    let mut cached = shard.lock().unwrap_or_else(PoisonError::into_inner);
    if cached.len() >= SUMMARY_CACHE_TILES / SUMMARY_SHARDS
        && let Some(victim) = cached.keys().next().copied()
    {
        cached.remove(&victim);
    }
    cached.insert(
        (store, key),
        CachedSummary {
            fingerprint: print,
            summary,
        },
    );
    Some(summary)
}

fn tile_key_of(id: NodeId) -> TileKey {
    let location = node_location(id);
    TileKey {
        level: location.tile_level,
        index: location.tile_index,
    }
}

/// Reads perfect nodes of the tree of `size` leaves from stored tiles: every
/// `read_nodes` call is ONE batched tile read.
pub(crate) struct TileReader<'a> {
    pub(crate) store: &'a dyn LogStore,
    pub(crate) size: TreeSize,
}

impl NodeReader for TileReader<'_> {
    type Error = ReadError;

    fn read_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, ReadError> {
        if let Some(id) = ids.iter().find(|id| !id.exists_in(self.size)) {
            return Err(ReadError::Corrupt(format!(
                "node {id} is not complete at size {}",
                self.size
            )));
        }
        let tiles = TileSet::fetch(
            self.store,
            ids.iter().map(|id| tile_key_of(*id)).collect(),
            self.size,
        )?;
        ids.iter().map(|id| tiles.node(*id)).collect()
    }
}

/// Tile writes and bundle writes of one round.
#[derive(Debug, Default)]
pub(crate) struct EdgeWrites {
    pub(crate) tiles: Vec<(TileKey, Vec<u8>)>,
    pub(crate) bundles: Vec<(u64, Vec<u8>)>,
}

/// The tree as the sequencer holds it: the compact range (for roots and proofs) and
/// the right-edge partial tiles and bundle (rewritten each round so every size stays
/// servable from single tile reads).
#[derive(Debug, Clone, Default)]
pub(crate) struct TreeState {
    pub(crate) range: CompactRange,
    /// `partial_tiles[t]`: the hashes of Merkle level `8t` after the last full tile.
    partial_tiles: Vec<Vec<u8>>,
    /// The entries after the last full bundle, bundle-encoded.
    partial_bundle: Vec<u8>,
}

impl TreeState {
    /// The tree of `size` leaves rebuilt from storage: the frontier hashes and the
    /// right-edge tiles come from ONE batched tile read, the partial bundle from one
    /// more. O(log n) reads, no replay.
    pub(crate) fn load(store: &dyn LogStore, size: TreeSize) -> Result<Self, ReadError> {
        let frontier = CompactRange::frontier_ids(size);
        let edges = edge_tiles(size);
        let keys = frontier
            .iter()
            .map(|id| tile_key_of(*id))
            .chain(edges.iter().copied())
            .collect();
        let tiles = TileSet::fetch(store, keys, size)?;
        let hashes = frontier
            .iter()
            .map(|id| tiles.node(*id))
            .collect::<Result<Vec<_>, _>>()?;
        let range = CompactRange::from_frontier(size, hashes)
            .map_err(|e| ReadError::Corrupt(e.to_string()))?;
        let mut partial_tiles = Vec::new();
        for key in &edges {
            let slot = usize::from(key.level);
            if partial_tiles.len() <= slot {
                partial_tiles.resize(slot + 1, Vec::new());
            }
            if let (Some(tile), Some(dest)) = (tiles.tile(key), partial_tiles.get_mut(slot)) {
                dest.clone_from(tile);
            }
        }
        let in_bundle = size.0 % BUNDLE_WIDTH;
        let partial_bundle = if in_bundle == 0 {
            Vec::new()
        } else {
            let index = size.0 / BUNDLE_WIDTH;
            let stored = store.read_bundles(&[index])?.into_iter().next().flatten();
            let Some(mut bundle) = stored else {
                return Err(ReadError::Corrupt(format!(
                    "entry bundle {index} is missing"
                )));
            };
            let len = bundle_prefix_len(&bundle, in_bundle as usize).ok_or_else(|| {
                ReadError::Corrupt(format!(
                    "entry bundle {index} holds fewer than {in_bundle} entries"
                ))
            })?;
            bundle.truncate(len);
            bundle
        };
        Ok(Self {
            range,
            partial_tiles,
            partial_bundle,
        })
    }

    pub(crate) fn size(&self) -> TreeSize {
        self.range.size()
    }

    /// Appends a round's new leaves (with their entries, same order) to this state;
    /// returns the tile/bundle values to write. On an error the state may be partly
    /// extended: the caller drops it and reloads from disk.
    pub(crate) fn extend(
        &mut self,
        leaves: &[Hash],
        entries: &[&Bytes],
    ) -> Result<EdgeWrites, String> {
        let first_leaf = self.size().0;
        let next = self;
        let mut writes = EdgeWrites::default();
        let mut touched_levels = 0u8; // bit t: partial tile of level t changed
        let partial_tiles = &mut next.partial_tiles;
        let full_tiles = &mut writes.tiles;
        next.range
            .append(leaves, |node, hash| {
                if node.level % TILE_HEIGHT != 0 {
                    return;
                }
                let level = node.level / TILE_HEIGHT;
                let slot = usize::from(level);
                if partial_tiles.len() <= slot {
                    partial_tiles.resize(slot + 1, Vec::new());
                }
                let Some(tile) = partial_tiles.get_mut(slot) else {
                    return;
                };
                tile.extend_from_slice(hash);
                if tile.len() == FULL_TILE_BYTES {
                    let key = TileKey {
                        level,
                        index: node.index >> TILE_HEIGHT,
                    };
                    full_tiles.push((key, std::mem::take(tile)));
                    touched_levels &= !(1 << level);
                } else {
                    touched_levels |= 1 << level;
                }
            })
            .map_err(|e| e.to_string())?;
        let size = next.range.size().0;
        for level in 0..MAX_TILE_LEVELS {
            if touched_levels & (1 << level) == 0 {
                continue;
            }
            if let Some(tile) = next.partial_tiles.get(usize::from(level)) {
                let index = (size >> (u32::from(level) * u32::from(TILE_HEIGHT))) >> TILE_HEIGHT;
                writes.tiles.push((TileKey { level, index }, tile.clone()));
            }
        }

        let mut leaf = first_leaf;
        for entry in entries {
            let len = u16::try_from(entry.len())
                .map_err(|_| format!("entry {leaf} is longer than 65535 bytes"))?;
            next.partial_bundle.extend_from_slice(&len.to_be_bytes());
            next.partial_bundle.extend_from_slice(entry);
            leaf += 1;
            if leaf.is_multiple_of(BUNDLE_WIDTH) {
                writes.bundles.push((
                    leaf / BUNDLE_WIDTH - 1,
                    std::mem::take(&mut next.partial_bundle),
                ));
            }
        }
        if !entries.is_empty() && !next.partial_bundle.is_empty() {
            writes
                .bundles
                .push((leaf / BUNDLE_WIDTH, next.partial_bundle.clone()));
        }
        if leaf != size {
            return Err(format!(
                "{} leaves but {} entries",
                leaves.len(),
                entries.len()
            ));
        }
        Ok(writes)
    }
}

/// The right-edge partial tiles of `size`: for each level with hashes past its last
/// full tile, that tile.
fn edge_tiles(size: TreeSize) -> Vec<TileKey> {
    (0..MAX_TILE_LEVELS)
        .filter_map(|level| {
            let count = size.0 >> (u32::from(level) * u32::from(TILE_HEIGHT));
            (!count.is_multiple_of(u64::from(TILE_WIDTH))).then_some(TileKey {
                level,
                index: count >> TILE_HEIGHT,
            })
        })
        .collect()
}

/// Byte length of the first `count` entries of a bundle, or `None` if it has fewer.
pub(crate) fn bundle_prefix_len(bundle: &[u8], count: usize) -> Option<usize> {
    let mut offset = 0usize;
    for _ in 0..count {
        let header = bundle.get(offset..offset.checked_add(2)?)?;
        let len = usize::from(u16::from_be_bytes([*header.first()?, *header.get(1)?]));
        offset = offset.checked_add(2)?.checked_add(len)?;
        if offset > bundle.len() {
            return None;
        }
    }
    Some(offset)
}

/// The entries `[from, to)` of a bundle (positions within it), without copying.
pub(crate) fn bundle_entries(bundle: &Bytes, from: usize, to: usize) -> Option<Vec<Bytes>> {
    let mut offset = 0usize;
    let mut out = Vec::with_capacity(to.saturating_sub(from));
    for position in 0..to {
        let header = bundle.get(offset..offset.checked_add(2)?)?;
        let len = usize::from(u16::from_be_bytes([*header.first()?, *header.get(1)?]));
        let start = offset.checked_add(2)?;
        let end = start.checked_add(len)?;
        if end > bundle.len() {
            return None;
        }
        if position >= from {
            out.push(bundle.slice(start..end));
        }
        offset = end;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{LogMetadata, MemoryStore, RoundWrite};
    use merklog_merkle::{LeafIndex, hash_leaf, inclusion_proof, verify_inclusion};

    fn store() -> MemoryStore {
        MemoryStore::new(LogMetadata {
            origin: "test".into(),
            verifier_key: String::new(),
            algorithm: "ed25519".into(),
        })
    }

    fn entry(i: u64) -> Bytes {
        Bytes::from(format!("entry {i}").repeat((i % 5 + 1) as usize))
    }

    /// Appends `batches` through `extend`, committing each round's writes.
    fn grow(store: &MemoryStore, batches: &[u64]) -> TreeState {
        let mut state = TreeState::default();
        for &k in batches {
            let start = state.size().0;
            let entries: Vec<Bytes> = (start..start + k).map(entry).collect();
            let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
            let refs: Vec<&Bytes> = entries.iter().collect();
            let writes = state.extend(&leaves, &refs).unwrap();
            store
                .commit(&RoundWrite {
                    tiles: writes.tiles,
                    bundles: writes.bundles,
                    ..RoundWrite::default()
                })
                .unwrap();
        }
        state
    }

    #[test]
    fn reload_matches_the_live_state_at_tile_boundaries() {
        for batches in [
            vec![1],
            vec![255],
            vec![256],
            vec![255, 1, 1],
            vec![100, 300, 2],
            vec![65_535],
            vec![65_535, 1],
            vec![65_536, 257],
        ] {
            let store = store();
            let live = grow(&store, &batches);
            let loaded = TreeState::load(&store, live.size()).unwrap();
            assert_eq!(loaded.range, live.range, "batches {batches:?}");
            assert_eq!(
                loaded.partial_tiles, live.partial_tiles,
                "batches {batches:?}"
            );
            assert_eq!(
                loaded.partial_bundle, live.partial_bundle,
                "batches {batches:?}"
            );
        }
    }

    #[test]
    fn every_earlier_size_stays_servable_from_truncated_tiles() {
        let store = store();
        let live = grow(&store, &[3, 250, 10, 600]);
        let leaves: Vec<Hash> = (0..live.size().0).map(|i| hash_leaf(&entry(i))).collect();
        for size in [1u64, 3, 253, 256, 263, 300, 512, 863] {
            let mut range = CompactRange::new();
            range.append(&leaves[..size as usize], |_, _| {}).unwrap();
            let reader = TileReader {
                store: &store,
                size: TreeSize(size),
            };
            // The state loaded at an old size is that size's frontier.
            let loaded = TreeState::load(&store, TreeSize(size)).unwrap();
            assert_eq!(loaded.range, range);
            for index in [0, size / 2, size - 1] {
                let proof = inclusion_proof(&reader, LeafIndex(index), TreeSize(size)).unwrap();
                verify_inclusion(
                    &leaves[index as usize],
                    LeafIndex(index),
                    TreeSize(size),
                    &proof,
                    &range.root(),
                )
                .unwrap();
            }
        }
    }

    #[test]
    fn missing_or_short_tiles_are_corruption() {
        let store = store();
        let live = grow(&store, &[300]);
        // A size beyond what is stored needs hashes the tiles do not have.
        let err = TreeState::load(&store, TreeSize(live.size().0 + 1)).unwrap_err();
        assert!(matches!(err, ReadError::Corrupt(_)), "{err:?}");
        let err = TreeState::load(&store, TreeSize(70_000)).unwrap_err();
        assert!(matches!(err, ReadError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn summaries_are_the_level_4_nodes_and_follow_the_tile_bytes() {
        let tile_of = |seed: u64| -> Vec<u8> {
            (0..256u64)
                .flat_map(|i| hash_leaf(format!("{seed} {i}").as_bytes()))
                .collect()
        };
        let key = TileKey { level: 0, index: 7 };
        let direct = |bytes: &[u8]| -> Vec<Hash> {
            bytes
                .chunks_exact(16 * HASH_SIZE)
                .map(|c| {
                    let hashes: Vec<Hash> = c
                        .chunks_exact(HASH_SIZE)
                        .map(|h| h.try_into().unwrap())
                        .collect();
                    subtree_root(&hashes).unwrap()
                })
                .collect()
        };
        let (a, b) = (tile_of(1), tile_of(2));
        // The same (store, key) with other bytes, as after an address is reused: the
        // cached summary of `a` must not be served for `b`.
        for bytes in [&a, &b, &a] {
            let summary = summary_of(usize::MAX, key, bytes).unwrap();
            assert_eq!(summary.to_vec(), direct(bytes));
        }
        assert!(summary_of(usize::MAX, key, &a[..a.len() - HASH_SIZE]).is_none());
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn bundles_split_back_into_their_entries() {
        let store = store();
        grow(&store, &[10, 300]);
        let bundles = store.read_bundles(&[0, 1]).unwrap();
        let full = Bytes::from(bundles[0].clone().unwrap());
        let partial = Bytes::from(bundles[1].clone().unwrap());
        let all = bundle_entries(&full, 0, 256).unwrap();
        assert_eq!(all.len(), 256);
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e, &entry(i as u64));
        }
        assert_eq!(
            bundle_entries(&full, 5, 7).unwrap(),
            vec![entry(5), entry(6)]
        );
        assert_eq!(bundle_entries(&partial, 0, 54).unwrap().len(), 54);
        assert!(bundle_entries(&partial, 0, 55).is_none());
        assert_eq!(bundle_prefix_len(&partial, 54), Some(partial.len()));
        assert_eq!(bundle_prefix_len(&[0, 5, 1], 1), None);
    }
}
