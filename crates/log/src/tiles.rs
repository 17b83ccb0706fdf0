//! Tile-shaped tree state: the right edge kept in memory by the sequencer, the tile
//! reads that rebuild it and serve proofs, and entry-bundle encoding.
//!
//! Hash tile level `t` holds the hashes of Merkle level `8t`; a node at another level is
//! the root of `2^(level % 8)` consecutive hashes of one tile (`merklog_merkle::tile`,
//! whose coordinates this module uses throughout). A stored tile or bundle may be wider
//! than a published size needs (the right edge grows every round); readers truncate it
//! to the width at the size they serve.
//!
//! Proof reads fold nodes from their tiles. A full tile never changes, so its 16
//! Merkle-level-4 nodes ("summary") are computed once and kept in the log's bounded
//! [`SummaryCache`]; a node at tile level `r >= 4` then costs at most 7 hashes of
//! summary nodes instead of up to 127 of tile hashes, and a proof about 70 hashes
//! instead of about 740 at 10^7 leaves.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use merklog_merkle::bundle::{bundle_prefix_len, push_entry};
use merklog_merkle::tile::{
    NodeLocation, TILE_HEIGHT, TILE_WIDTH, TileId, hashes_from_tile_bytes, node_location,
    subtree_root, tile_bytes, tile_width_at, tiles_for,
};
use merklog_merkle::{CompactRange, HASH_SIZE, Hash, NodeId, NodeReader, TreeSize};

use crate::{LogStore, StorageError, ValueWrite};

/// Bytes of a full hash tile.
const FULL_TILE_BYTES: usize = TILE_WIDTH as usize * HASH_SIZE;
/// Entries in a full bundle.
const BUNDLE_WIDTH: u64 = TILE_WIDTH as u64;

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
            ReadError::Storage(e) => e.into(),
            ReadError::Corrupt(reason) => {
                crate::LogError::DataLoss(format!("corrupt store: {reason}"))
            }
        }
    }
}

/// The tile holding the node at `location`, at its width in the tree of `size` leaves.
fn tile_of(location: &NodeLocation, size: TreeSize) -> TileId {
    TileId {
        level: location.tile_level,
        index: location.tile_index,
        width: tile_width_at(location.tile_level, location.tile_index, size),
    }
}

/// Hash tiles fetched in one batched read, each truncated to its width at a size.
struct TileSet<'a> {
    size: TreeSize,
    tiles: BTreeMap<TileId, Vec<Hash>>,
    summaries: Option<&'a SummaryCache>,
}

impl<'a> TileSet<'a> {
    /// Fetches the tiles holding `nodes` at `size` with ONE `read_tiles` call and keeps
    /// the hashes that exist at `size`.
    fn fetch(
        store: &dyn LogStore,
        summaries: Option<&'a SummaryCache>,
        nodes: &[NodeId],
        size: TreeSize,
    ) -> Result<Self, ReadError> {
        if let Some(id) = nodes.iter().find(|id| !id.exists_in(size)) {
            return Err(ReadError::Corrupt(format!(
                "node {id} is not complete at size {size}"
            )));
        }
        let ids = tiles_for(nodes, size);
        let values = store.read_tiles(&ids)?;
        if values.len() != ids.len() {
            return Err(ReadError::Storage(StorageError::new(
                "read_tiles returned the wrong count",
            )));
        }
        let mut tiles = BTreeMap::new();
        for (id, value) in ids.into_iter().zip(values) {
            let Some(mut bytes) = value else {
                return Err(ReadError::Corrupt(format!(
                    "tile {}/{} is missing",
                    id.level, id.index
                )));
            };
            let needed = usize::from(id.width) * HASH_SIZE;
            if bytes.len() < needed || !bytes.len().is_multiple_of(HASH_SIZE) {
                return Err(ReadError::Corrupt(format!(
                    "tile {}/{} has {} bytes, size {size} needs {needed}",
                    id.level,
                    id.index,
                    bytes.len(),
                )));
            }
            bytes.truncate(needed);
            let hashes =
                hashes_from_tile_bytes(&bytes).map_err(|e| ReadError::Corrupt(e.to_string()))?;
            tiles.insert(id, hashes);
        }
        Ok(Self {
            size,
            tiles,
            summaries,
        })
    }

    /// The hash of perfect node `id`, folded from its tile (from the tile's summary
    /// when the node spans whole summary nodes and the tile is full).
    fn node(&self, id: NodeId) -> Result<Hash, ReadError> {
        let location = node_location(id);
        let tile = tile_of(&location, self.size);
        let corrupt = || ReadError::Corrupt(format!("node {id} is not in its tile"));
        let hashes = self.tiles.get(&tile).ok_or_else(corrupt)?;
        if location.count >= SUMMARY_SPAN
            && let Some(summary) = self.summaries.and_then(|cache| cache.summary(tile, hashes))
        {
            let first = usize::from(location.start / SUMMARY_SPAN);
            let count = usize::from(location.count / SUMMARY_SPAN);
            let part = summary
                .get(first..first.saturating_add(count))
                .ok_or_else(corrupt)?;
            return subtree_root(part).map_err(|e| ReadError::Corrupt(e.to_string()));
        }
        location
            .hash_from_tile(hashes)
            .map_err(|e| ReadError::Corrupt(e.to_string()))
    }
}

/// Tile hashes under one summary node (Merkle level 4 within the tile).
const SUMMARY_SPAN: u16 = 16;
/// Summary nodes of a full tile.
const SUMMARY_NODES: usize = TILE_WIDTH as usize / SUMMARY_SPAN as usize;
/// The level-4 nodes of a full tile, left to right.
type Summary = [Hash; SUMMARY_NODES];

/// Full tiles whose summaries a log keeps: 64 Ki tiles (16.7 M leaves' worth of
/// level-0 tiles), about 40 MiB at most. Past that a shard drops an arbitrary entry.
const SUMMARY_CACHE_TILES: usize = 1 << 16;
const SUMMARY_SHARDS: usize = 16;

/// The summaries of full tiles one log has read, shared by its proof readers. Keyed by
/// tile alone: within one log a full tile never changes.
pub(crate) struct SummaryCache {
    shards: [Mutex<HashMap<TileId, Summary>>; SUMMARY_SHARDS],
}

impl Default for SummaryCache {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }
}

impl SummaryCache {
    /// The summary of `tile` if it is full and `hashes` are its hashes: from the cache,
    /// else computed and cached. `None` for a partial tile (it changes as the log grows).
    fn summary(&self, tile: TileId, hashes: &[Hash]) -> Option<Summary> {
        if !tile.is_full() || hashes.len() != usize::from(TILE_WIDTH) {
            return None;
        }
        let shard_index = (tile.index as usize ^ usize::from(tile.level)) % SUMMARY_SHARDS;
        let shard = self.shards.get(shard_index)?;
        if let Some(summary) = shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tile)
        {
            return Some(*summary);
        }
        let mut summary = [Hash::from_bytes([0u8; HASH_SIZE]); SUMMARY_NODES];
        for (node, chunk) in summary
            .iter_mut()
            .zip(hashes.chunks_exact(usize::from(SUMMARY_SPAN)))
        {
            *node = subtree_root(chunk).ok()?;
        }
        let mut cached = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.len() >= SUMMARY_CACHE_TILES / SUMMARY_SHARDS
            && let Some(victim) = cached.keys().next().copied()
        {
            cached.remove(&victim);
        }
        cached.insert(tile, summary);
        Some(summary)
    }
}

/// A log's stored tree: its store, and the summary cache every proof read of that log
/// shares (so the cache lives as long as the log, and serves only its tiles).
#[derive(Clone)]
pub(crate) struct StoredTree {
    pub(crate) store: Arc<dyn LogStore>,
    pub(crate) summaries: Arc<SummaryCache>,
}

impl StoredTree {
    pub(crate) fn new(store: Arc<dyn LogStore>) -> Self {
        Self {
            store,
            summaries: Arc::default(),
        }
    }

    /// A reader of the tree of `size` leaves.
    pub(crate) fn at(&self, size: TreeSize) -> TileReader<'_> {
        TileReader {
            store: &*self.store,
            summaries: &self.summaries,
            size,
        }
    }
}

/// Reads perfect nodes of the tree of `size` leaves from stored tiles: every
/// `read_nodes` call is ONE batched tile read.
pub(crate) struct TileReader<'a> {
    pub(crate) store: &'a dyn LogStore,
    pub(crate) summaries: &'a SummaryCache,
    pub(crate) size: TreeSize,
}

impl NodeReader for TileReader<'_> {
    type Error = ReadError;

    fn read_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, ReadError> {
        let tiles = TileSet::fetch(self.store, Some(self.summaries), ids, self.size)?;
        ids.iter().map(|id| tiles.node(*id)).collect()
    }
}

/// Tile writes and bundle writes of one round.
#[derive(Debug, Default)]
pub(crate) struct EdgeWrites {
    pub(crate) tiles: Vec<(TileId, ValueWrite)>,
    pub(crate) bundles: Vec<(u64, ValueWrite)>,
}

/// The write that takes a right-edge value from its first `offset` bytes to `value`:
/// the whole value if it is new in this round, else the bytes past `offset`. A tile or
/// bundle that fills is no exception: putting it whole would store every hash and
/// entry it holds a second time.
fn edge_write(value: &[u8], offset: usize) -> ValueWrite {
    match value.get(offset..) {
        Some(bytes) if offset > 0 => ValueWrite::Append {
            offset,
            bytes: bytes.to_vec(),
        },
        _ => ValueWrite::Put(value.to_vec()),
    }
}

/// [`edge_write`] for a value that just filled, leaving `value` empty: a value that
/// started in this round moves into its put instead of being copied.
fn filled_write(value: &mut Vec<u8>, offset: usize) -> ValueWrite {
    if offset == 0 {
        return ValueWrite::Put(std::mem::take(value));
    }
    let write = edge_write(value, offset);
    value.clear();
    write
}

/// The tree as the sequencer holds it: the compact range (for roots and proofs) and
/// the right-edge partial tiles and bundle, whose growth each round stores so that
/// every size stays servable from single tile reads.
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
    /// right-edge tiles come from ONE batched tile read (the tiles holding the frontier
    /// are exactly the partial ones), the partial bundle from one more. O(log n) reads,
    /// no replay.
    pub(crate) fn load(store: &dyn LogStore, size: TreeSize) -> Result<Self, ReadError> {
        let frontier = CompactRange::frontier_ids(size);
        let tiles = TileSet::fetch(store, None, &frontier, size)?;
        let hashes = frontier
            .iter()
            .map(|id| tiles.node(*id))
            .collect::<Result<Vec<_>, _>>()?;
        let range = CompactRange::from_frontier(size, hashes)
            .map_err(|e| ReadError::Corrupt(e.to_string()))?;
        let mut partial_tiles = Vec::new();
        for (key, hashes) in &tiles.tiles {
            if hashes.len() >= usize::from(TILE_WIDTH) {
                return Err(ReadError::Corrupt(format!(
                    "tile {}/{} holds the frontier of size {size} but is full",
                    key.level, key.index
                )));
            }
            let slot = usize::from(key.level);
            if partial_tiles.len() <= slot {
                partial_tiles.resize(slot + 1, Vec::new());
            }
            if let Some(dest) = partial_tiles.get_mut(slot) {
                *dest = tile_bytes(hashes);
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
            let len = bundle_prefix_len(&bundle, in_bundle as usize)
                .map_err(|e| ReadError::Corrupt(format!("entry bundle {index}: {e}")))?;
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
    /// returns the round's tile and bundle writes: for each tile and bundle the round
    /// added to, its bytes after what the previous round left (the whole value if it
    /// started in this round), whether it filled or not. On an error the state may be
    /// partly extended: the caller drops it and reloads from disk.
    pub(crate) fn extend(
        &mut self,
        leaves: &[Hash],
        entries: &[&Bytes],
    ) -> Result<EdgeWrites, String> {
        let first_leaf = self.size().0;
        let mut writes = EdgeWrites::default();
        // Per tile level: the partial tile's length before the round (0 once a tile of
        // that level filled in this round), and whether the round added to it.
        let mut offsets: Vec<usize> = self.partial_tiles.iter().map(Vec::len).collect();
        let mut touched = 0u64;
        let partial_tiles = &mut self.partial_tiles;
        let full_tiles = &mut writes.tiles;
        self.range
            .append(leaves, |node, hash| {
                if node.level % TILE_HEIGHT != 0 {
                    return;
                }
                let level = node.level / TILE_HEIGHT;
                let slot = usize::from(level);
                if partial_tiles.len() <= slot {
                    partial_tiles.resize(slot + 1, Vec::new());
                    offsets.resize(slot + 1, 0);
                }
                let (Some(tile), Some(offset)) =
                    (partial_tiles.get_mut(slot), offsets.get_mut(slot))
                else {
                    return;
                };
                tile.extend_from_slice(hash.as_bytes());
                if tile.len() == FULL_TILE_BYTES {
                    let location = node_location(node);
                    let full = TileId {
                        level: location.tile_level,
                        index: location.tile_index,
                        width: TILE_WIDTH,
                    };
                    full_tiles.push((full, filled_write(tile, *offset)));
                    *offset = 0;
                    touched &= !(1 << level);
                } else {
                    touched |= 1 << level;
                }
            })
            .map_err(|e| e.to_string())?;
        let size = self.range.size().0;
        for (level, (tile, offset)) in self.partial_tiles.iter().zip(&offsets).enumerate() {
            if touched & (1 << level) == 0 {
                continue;
            }
            let level = u8::try_from(level).map_err(|e| e.to_string())?;
            let index = size >> (u32::from(level) * u32::from(TILE_HEIGHT)) >> TILE_HEIGHT;
            // A partial tile: fewer than 256 hashes, so its width fits.
            let width = (tile.len() / HASH_SIZE) as u16;
            writes.tiles.push((
                TileId {
                    level,
                    index,
                    width,
                },
                edge_write(tile, *offset),
            ));
        }

        let mut bundle_offset = self.partial_bundle.len();
        let mut leaf = first_leaf;
        for entry in entries {
            push_entry(&mut self.partial_bundle, entry)
                .map_err(|e| format!("entry {leaf}: {e}"))?;
            leaf += 1;
            if leaf.is_multiple_of(BUNDLE_WIDTH) {
                writes.bundles.push((
                    leaf / BUNDLE_WIDTH - 1,
                    filled_write(&mut self.partial_bundle, bundle_offset),
                ));
                bundle_offset = 0;
            }
        }
        if !entries.is_empty() && !self.partial_bundle.is_empty() {
            writes.bundles.push((
                leaf / BUNDLE_WIDTH,
                edge_write(&self.partial_bundle, bundle_offset),
            ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{LogMetadata, MemoryStore, RoundWrite};
    use merklog_merkle::bundle::split_bundle;
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
            round(&mut state, store, k);
        }
        state
    }

    /// One round of `k` new entries through `extend`, committed; returns its entries
    /// and writes.
    fn round(state: &mut TreeState, store: &MemoryStore, k: u64) -> (Vec<Bytes>, RoundWrite) {
        let start = state.size().0;
        let entries: Vec<Bytes> = (start..start + k).map(entry).collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
        let refs: Vec<&Bytes> = entries.iter().collect();
        let writes = state.extend(&leaves, &refs).unwrap();
        let write = RoundWrite {
            tiles: writes.tiles,
            bundles: writes.bundles,
            ..RoundWrite::default()
        };
        store.commit(&write).unwrap();
        (entries, write)
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
            // A round on the reloaded state appends where the store's values end (the
            // memory store refuses any other offset) and reads back as the live state.
            let mut loaded = loaded;
            let start = loaded.size().0;
            let entries: Vec<Bytes> = (start..start + 3).map(entry).collect();
            let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
            let writes = loaded
                .extend(&leaves, &entries.iter().collect::<Vec<_>>())
                .unwrap();
            assert!(
                writes
                    .tiles
                    .iter()
                    .any(|(_, w)| matches!(w, ValueWrite::Append { .. }))
                    || start.is_multiple_of(256)
                    || start % 256 + 3 >= 256,
                "batches {batches:?}"
            );
            store
                .commit(&RoundWrite {
                    tiles: writes.tiles,
                    bundles: writes.bundles,
                    ..RoundWrite::default()
                })
                .unwrap();
            let again = TreeState::load(&store, loaded.size()).unwrap();
            assert_eq!(
                again.partial_tiles, loaded.partial_tiles,
                "batches {batches:?}"
            );
            assert_eq!(
                again.partial_bundle, loaded.partial_bundle,
                "batches {batches:?}"
            );
        }
    }

    #[test]
    fn each_entry_and_hash_is_handed_over_once_also_in_the_round_that_fills() {
        // Rounds of 1, 7 and 100 leaves across bundle and tile boundaries.
        for batch in [1u64, 7, 100] {
            let store = store();
            let mut state = TreeState::default();
            let (mut bundle_bytes, mut level_0_bytes, mut encoded) = (0, 0, 0);
            while state.size().0 < 700 {
                let (entries, writes) = round(&mut state, &store, batch);
                let len = |write: &ValueWrite| match write {
                    ValueWrite::Put(value) => value.len(),
                    ValueWrite::Append { bytes, .. } => bytes.len(),
                };
                for (id, write) in &writes.tiles {
                    if id.level == 0 {
                        level_0_bytes += len(write);
                    }
                }
                bundle_bytes += writes.bundles.iter().map(|(_, w)| len(w)).sum::<usize>();
                for entry in &entries {
                    let mut one = Vec::new();
                    push_entry(&mut one, entry).unwrap();
                    encoded += one.len();
                }
            }
            let size = state.size().0 as usize;
            assert_eq!(level_0_bytes, size * HASH_SIZE, "batches of {batch}");
            assert_eq!(bundle_bytes, encoded, "batches of {batch}");
            // What the store assembled from those writes is the whole log.
            let bundles = store.read_bundles(&[0, 1, 2]).unwrap();
            let mut stored: Vec<Vec<u8>> = Vec::new();
            for bundle in bundles {
                let bundle = bundle.unwrap();
                stored.extend(split_bundle(&bundle).unwrap().iter().map(|e| e.to_vec()));
            }
            let expected: Vec<Vec<u8>> = (0..size as u64).map(|i| entry(i).to_vec()).collect();
            assert_eq!(stored, expected, "batches of {batch}");
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
            let summaries = SummaryCache::default();
            let reader = TileReader {
                store: &store,
                summaries: &summaries,
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
    fn summaries_are_the_level_4_nodes_of_full_tiles_only() {
        let tile_of = |seed: u64| -> Vec<Hash> {
            (0..256u64)
                .map(|i| hash_leaf(format!("{seed} {i}").as_bytes()))
                .collect()
        };
        let direct = |hashes: &[Hash]| -> Vec<Hash> {
            hashes
                .chunks_exact(16)
                .map(|c| subtree_root(c).unwrap())
                .collect()
        };
        let cache = SummaryCache::default();
        let (a, b) = (tile_of(1), tile_of(2));
        let (ka, kb) = (
            TileId {
                level: 0,
                index: 7,
                width: TILE_WIDTH,
            },
            TileId {
                level: 1,
                index: 7,
                width: TILE_WIDTH,
            },
        );
        for _ in 0..2 {
            assert_eq!(cache.summary(ka, &a).unwrap().to_vec(), direct(&a));
            assert_eq!(cache.summary(kb, &b).unwrap().to_vec(), direct(&b));
        }
        assert!(
            cache
                .summary(
                    TileId {
                        level: 0,
                        index: 8,
                        width: TILE_WIDTH,
                    },
                    &a[..255]
                )
                .is_none()
        );
        assert!(
            cache
                .summary(
                    TileId {
                        level: 0,
                        index: 9,
                        width: 255,
                    },
                    &a
                )
                .is_none()
        );
    }

    #[test]
    fn bundles_split_back_into_their_entries() {
        let store = store();
        grow(&store, &[10, 300]);
        let bundles = store.read_bundles(&[0, 1]).unwrap();
        let full = Bytes::from(bundles[0].clone().unwrap());
        let partial = Bytes::from(bundles[1].clone().unwrap());
        let all = split_bundle(&full).unwrap();
        assert_eq!(all.len(), 256);
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e, &entry(i as u64));
        }
        assert_eq!(split_bundle(&partial).unwrap().len(), 54);
        assert_eq!(bundle_prefix_len(&partial, 54), Ok(partial.len()));
        assert!(bundle_prefix_len(&partial, 55).is_err());
    }
}
