//! Recomputing every hash tile of a tree from its leaf hashes, one tile at a time,
//! for checks that compare a stored or served copy against its entries (fsck).
//!
//! Leaves go in, in order; each tile comes out as soon as it is complete (a full
//! tile) and [`TileRebuild::finish`] yields the partial right-edge tiles and the
//! root. Memory stays at one pending tile per level, so a tree of any size can be
//! checked in one pass over its entry bundles.

use crate::hash::Hash;
use crate::tile::{TILE_WIDTH, TileId, subtree_root, tile_width_at};
use crate::{CompactRange, MerkleError, TreeSize};

/// A tile recomputed from the leaves: its coordinates and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuiltTile {
    /// Coordinates at the width the tree holds.
    pub id: TileId,
    /// Its `id.width` hashes.
    pub hashes: Vec<Hash>,
}

/// The streaming tile builder (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct TileRebuild {
    /// Per tile level: the hashes of the tile being filled, and its index.
    pending: Vec<(u64, Vec<Hash>)>,
    range: CompactRange,
}

impl TileRebuild {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves pushed so far.
    pub fn size(&self) -> TreeSize {
        self.range.size()
    }

    /// Adds the next leaf hashes; returns the full tiles they complete, lower
    /// levels first.
    pub fn push(&mut self, leaves: &[Hash]) -> Result<Vec<RebuiltTile>, MerkleError> {
        self.range.append(leaves, |_, _| {})?;
        let mut done = Vec::new();
        for leaf in leaves {
            self.push_at(0, *leaf, &mut done)?;
        }
        Ok(done)
    }

    fn push_at(
        &mut self,
        level: usize,
        hash: Hash,
        done: &mut Vec<RebuiltTile>,
    ) -> Result<(), MerkleError> {
        let mut level = level;
        let mut hash = hash;
        loop {
            if self.pending.len() <= level {
                self.pending
                    .push((0, Vec::with_capacity(usize::from(TILE_WIDTH))));
            }
            let Some((index, hashes)) = self.pending.get_mut(level) else {
                return Ok(());
            };
            hashes.push(hash);
            if hashes.len() < usize::from(TILE_WIDTH) {
                return Ok(());
            }
            let full = std::mem::take(hashes);
            let tile_index = *index;
            *index += 1;
            hash = subtree_root(&full)?;
            done.push(RebuiltTile {
                id: TileId {
                    level: level as u8,
                    index: tile_index,
                    width: TILE_WIDTH,
                },
                hashes: full,
            });
            level += 1;
        }
    }

    /// The partial (right-edge) tiles of the tree pushed so far, lower levels first,
    /// and its root.
    pub fn finish(self) -> (Vec<RebuiltTile>, Hash) {
        let size = self.range.size();
        let root = self.range.root();
        let partial = self
            .pending
            .into_iter()
            .enumerate()
            .filter(|(_, (_, hashes))| !hashes.is_empty())
            .map(|(level, (index, hashes))| RebuiltTile {
                id: TileId {
                    level: level as u8,
                    index,
                    width: tile_width_at(level as u8, index, size),
                },
                hashes,
            })
            .collect();
        (partial, root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;
    use crate::hash_leaf;
    use crate::tile::node_location;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| hash_leaf(&i.to_be_bytes())).collect()
    }

    #[test]
    fn tiles_match_the_compact_range_nodes_and_root() {
        for size in [1u64, 255, 256, 257, 300, 65_536, 65_537 + 300] {
            let all = leaves(size);
            let mut rebuild = TileRebuild::new();
            let mut tiles = Vec::new();
            for chunk in all.chunks(100) {
                tiles.extend(rebuild.push(chunk).unwrap());
            }
            let (partial, root) = rebuild.finish();
            tiles.extend(partial);
            // Every node the compact range reports at a tile level sits in the
            // rebuilt tile at its position.
            let mut range = CompactRange::new();
            let mut nodes = Vec::new();
            range
                .append(&all, |id: NodeId, hash: &Hash| {
                    if id.level.is_multiple_of(8) {
                        nodes.push((id, *hash));
                    }
                })
                .unwrap();
            assert_eq!(root, range.root(), "size {size}");
            for (id, hash) in nodes {
                let location = node_location(id);
                let tile = tiles
                    .iter()
                    .find(|t| {
                        t.id.level == location.tile_level && t.id.index == location.tile_index
                    })
                    .unwrap_or_else(|| panic!("no tile for {id:?} at size {size}"));
                assert_eq!(tile.hashes[usize::from(location.start)], hash);
                assert_eq!(usize::from(tile.id.width), tile.hashes.len());
            }
        }
    }
}
