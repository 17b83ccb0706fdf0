//! An in-memory filter of every leaf hash in the log, in front of the dedup index: a
//! hash the filter has never seen is certainly new, so a round of new entries skips the
//! storage lookup entirely; only possible duplicates are looked up.
//!
//! It is a growing blocked Bloom filter. Each layer holds up to its capacity of hashes
//! at 16 bits per hash; a hash sets 8 bits inside one 512-bit block (one cache line),
//! so a query costs one memory access per layer. A full layer is kept and a new one
//! twice its size added, so memory follows the log (about 2 bytes per entry) and no
//! size has to be guessed. False positives (about 0.1% per layer) only cost a lookup.
//! A leaf hash is SHA-256 output, so its own bytes serve as the filter's hash
//! functions.
//!
//! The filter may hold more than the log (hashes of a round whose write failed): that
//! too only costs a lookup. It must never hold less, so it is filled from the stored
//! level-0 tiles at open before it answers "new", and every round adds its new leaves
//! before its write is issued.

use std::sync::{Mutex, PoisonError};

use merklog_merkle::tile::{TILE_WIDTH, TileId, tile_width_at};
use merklog_merkle::{HASH_SIZE, Hash, TreeSize};

use crate::{LogStore, StorageError};

/// Bits per hash in a layer.
const BITS_PER_HASH: u64 = 16;
/// Bits a hash sets (and a query tests) within its block.
const PROBES: u32 = 8;
/// Bits per block: one 64-byte cache line.
const BLOCK_BITS: u64 = 512;
const WORDS_PER_BLOCK: usize = (BLOCK_BITS / 64) as usize;
/// Capacity of the first layer of an empty log.
const MIN_CAPACITY: u64 = 1 << 16;

struct Layer {
    words: Vec<u64>,
    blocks: u64,
    capacity: u64,
    len: u64,
}

impl Layer {
    fn new(capacity: u64) -> Self {
        let blocks = (capacity.saturating_mul(BITS_PER_HASH) / BLOCK_BITS).max(1);
        let words = usize::try_from(blocks)
            .unwrap_or(usize::MAX)
            .saturating_mul(WORDS_PER_BLOCK);
        Self {
            words: vec![0; words],
            blocks,
            capacity,
            len: 0,
        }
    }

    /// The block and the 8 bit positions (0..512) of `hash`.
    fn probes(&self, hash: &Hash) -> (usize, [u16; PROBES as usize]) {
        let word = |i: usize| {
            let mut bytes = [0u8; 8];
            if let Some(part) = hash.as_bytes().get(i * 8..i * 8 + 8) {
                bytes.copy_from_slice(part);
            }
            u64::from_le_bytes(bytes)
        };
        // Fast range reduction: uniform in 0..blocks without a division.
        let block = ((u128::from(word(0)) * u128::from(self.blocks)) >> 64) as usize;
        let bits = (u128::from(word(1)) << 64) | u128::from(word(2));
        let mut positions = [0u16; PROBES as usize];
        for (i, position) in positions.iter_mut().enumerate() {
            *position = ((bits >> (i * 9)) & 0x1ff) as u16;
        }
        (block, positions)
    }

    fn insert(&mut self, hash: &Hash) {
        let (block, positions) = self.probes(hash);
        let base = block * WORDS_PER_BLOCK;
        for position in positions {
            let index = base + usize::from(position / 64);
            if let Some(word) = self.words.get_mut(index) {
                *word |= 1 << (position % 64);
            }
        }
        self.len += 1;
    }

    fn may_contain(&self, hash: &Hash) -> bool {
        let (block, positions) = self.probes(hash);
        let base = block * WORDS_PER_BLOCK;
        positions.iter().all(|position| {
            self.words
                .get(base + usize::from(position / 64))
                .is_some_and(|word| word & (1 << (position % 64)) != 0)
        })
    }
}

/// The leaf-hash filter. Until [`LeafFilter::set_complete`] is called it answers "maybe"
/// for every hash (it does not hold the stored leaves yet).
pub(crate) struct LeafFilter {
    layers: Vec<Layer>,
    complete: bool,
}

impl LeafFilter {
    /// An empty filter with room for about `expected` hashes in its first layer.
    pub(crate) fn with_capacity(expected: u64) -> Self {
        let capacity = expected
            .saturating_add(expected / 4)
            .max(MIN_CAPACITY)
            .next_power_of_two();
        Self {
            layers: vec![Layer::new(capacity)],
            complete: false,
        }
    }

    /// Adds a leaf hash.
    pub(crate) fn insert(&mut self, hash: &Hash) {
        let full = self
            .layers
            .last()
            .is_none_or(|layer| layer.len >= layer.capacity);
        if full {
            let next = self
                .layers
                .last()
                .map_or(MIN_CAPACITY, |layer| layer.capacity.saturating_mul(2));
            self.layers.push(Layer::new(next));
        }
        if let Some(layer) = self.layers.last_mut() {
            layer.insert(hash);
        }
    }

    /// The filter now holds every stored leaf hash: "no" answers become definite.
    pub(crate) fn set_complete(&mut self) {
        self.complete = true;
    }

    /// False only if `hash` is certainly not a leaf of the log.
    pub(crate) fn may_contain(&self, hash: &Hash) -> bool {
        !self.complete || self.layers.iter().any(|layer| layer.may_contain(hash))
    }
}

/// Level-0 tiles read per storage call while filling the filter.
const TILES_PER_READ: u64 = 64;

/// Fills `filter` with the leaf hashes of the first `size` leaves, read from the
/// level-0 tiles (a tile may hold more hashes than `size` needs: those are added
/// too, which is harmless), then marks it complete.
pub(crate) fn fill(
    filter: &Mutex<LeafFilter>,
    store: &dyn LogStore,
    size: u64,
) -> Result<(), StorageError> {
    add_range(filter, store, 0, size)?;
    filter
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .set_complete();
    Ok(())
}

/// Adds the leaf hashes of leaves `from..size` (whole level-0 tiles: a few before
/// `from` are added again, which is harmless). Used when the store grew underneath
/// the log (another node sequenced; this one follows): the filter must never miss a
/// leaf, or a duplicate would be appended again.
pub(crate) fn add_range(
    filter: &Mutex<LeafFilter>,
    store: &dyn LogStore,
    from: u64,
    size: u64,
) -> Result<(), StorageError> {
    let tiles = size.div_ceil(u64::from(TILE_WIDTH));
    let mut first = from / u64::from(TILE_WIDTH);
    while first < tiles {
        let last = first.saturating_add(TILES_PER_READ).min(tiles);
        let keys: Vec<TileId> = (first..last)
            .map(|index| TileId {
                level: 0,
                index,
                width: tile_width_at(0, index, TreeSize(size)),
            })
            .collect();
        let values = store.read_tiles(&keys)?;
        let mut filter = filter.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, value) in keys.iter().zip(values) {
            let bytes = value.ok_or_else(|| {
                StorageError::new(format!("level-0 tile {} is missing", key.index))
            })?;
            for chunk in bytes.chunks_exact(HASH_SIZE) {
                let hash = Hash::try_from(chunk).map_err(|e| StorageError::new(e.to_string()))?;
                filter.insert(&hash);
            }
        }
        first = last;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use merklog_merkle::hash_leaf;

    #[test]
    fn inserted_hashes_are_always_found_and_others_mostly_not() {
        let mut filter = LeafFilter::with_capacity(0);
        let inserted: Vec<Hash> = (0..300_000u32)
            .map(|i| hash_leaf(&i.to_be_bytes()))
            .collect();
        // Not complete: everything may be a duplicate.
        assert!(filter.may_contain(&inserted[0]));
        for hash in &inserted {
            filter.insert(hash);
        }
        filter.set_complete();
        // Past the first layer's capacity: several layers.
        assert!(filter.layers.len() >= 3);
        assert!(inserted.iter().all(|h| filter.may_contain(h)));
        let false_positives = (0..100_000u32)
            .map(|i| hash_leaf(format!("absent {i}").as_bytes()))
            .filter(|h| filter.may_contain(h))
            .count();
        assert!(false_positives < 1_000, "{false_positives} false positives");
    }
}
