//! The right edge as the sequencer keeps it (partial tiles per level, the partial
//! bundle), producing the writes a `RoundWrite` carries (whole values for tiles and
//! bundles that start in the round, appends for growing ones, also when they fill),
//! with deterministic stand-ins for interior hashes. Shared by the store's right-edge
//! tests and the `store_grow` example (included with `#[path]`).

use merklog_log::{RoundWrite, ValueWrite};
use merklog_merkle::bundle::push_entry;
use merklog_merkle::tile::TileId;
use merklog_merkle::{Hash, hash_children};

#[derive(Default)]
pub(crate) struct Edge {
    pub(crate) size: u64,
    tiles: Vec<Vec<u8>>,
    bundle: Vec<u8>,
}

/// Whole if the value starts in this round, else the bytes after `offset`.
fn write(value: &[u8], offset: usize) -> ValueWrite {
    if offset == 0 {
        ValueWrite::Put(value.to_vec())
    } else {
        ValueWrite::Append {
            offset,
            bytes: value[offset..].to_vec(),
        }
    }
}

impl Edge {
    /// Appends the leaves and their entries; adds the new full and partial tiles and
    /// bundles to `round`.
    pub(crate) fn append(&mut self, leaves: &[Hash], entries: &[Vec<u8>], round: &mut RoundWrite) {
        let mut touched = 0u8;
        let mut offsets: Vec<usize> = self.tiles.iter().map(Vec::len).collect();
        let mut bundle_offset = self.bundle.len();
        for (leaf, entry) in leaves.iter().zip(entries) {
            // Level-0 hash; carry a (fake but deterministic) parent up on every full tile.
            let mut hash = *leaf;
            let mut level = 0u8;
            loop {
                if self.tiles.len() <= usize::from(level) {
                    self.tiles.push(Vec::new());
                    offsets.push(0);
                }
                let tile = &mut self.tiles[usize::from(level)];
                tile.extend_from_slice(hash.as_bytes());
                if tile.len() < 256 * 32 {
                    touched |= 1 << level;
                    break;
                }
                let index = (self.size >> (8 * u32::from(level))) >> 8;
                hash = hash_children(&tile[..32].try_into().unwrap(), &hash);
                round.tiles.push((
                    TileId {
                        level,
                        index,
                        width: 256,
                    },
                    write(tile, offsets[usize::from(level)]),
                ));
                tile.clear();
                offsets[usize::from(level)] = 0;
                touched &= !(1 << level);
                level += 1;
            }
            push_entry(&mut self.bundle, entry).unwrap();
            self.size += 1;
            if self.size.is_multiple_of(256) {
                round
                    .bundles
                    .push((self.size / 256 - 1, write(&self.bundle, bundle_offset)));
                self.bundle.clear();
                bundle_offset = 0;
            }
        }
        for level in 0..8u8 {
            if touched & (1 << level) != 0 {
                let index = (self.size >> (8 * u32::from(level))) >> 8;
                let tile = &self.tiles[usize::from(level)];
                let width = (tile.len() / 32) as u16;
                round.tiles.push((
                    TileId {
                        level,
                        index,
                        width,
                    },
                    write(tile, offsets[usize::from(level)]),
                ));
            }
        }
        if !leaves.is_empty() && !self.bundle.is_empty() {
            round
                .bundles
                .push((self.size / 256, write(&self.bundle, bundle_offset)));
        }
    }
}
