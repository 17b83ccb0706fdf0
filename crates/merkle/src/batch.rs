//! Inclusion proofs for a whole appended batch, built in memory.

use crate::hash::{Hash, hash_children};
use crate::{CompactRange, LeafIndex, MerkleError, TreeSize};

/// The inclusion proofs of every leaf of a batch `[s, s + k)` appended on top of the
/// compact range of size `s`, against the new size `n = s + k`.
///
/// Every sibling on a new leaf's path is a frontier node of `s`, a node inside the
/// batch, a node straddling `s`, or a right-edge node of `n`. Construction computes, for
/// each level, the hashes of every node (in the tree of size `n`) that overlaps the batch:
/// O(k + log n) hashing once. Each proof is then O(log n) copies.
#[derive(Clone, Debug)]
pub struct BatchProofs {
    start: u64,
    size: u64,
    /// `frontier[level]` is the frontier node of `start` at that level, if `start` has
    /// that bit set.
    frontier: Vec<Option<Hash>>,
    /// `levels[l][j]` is the node at level `l`, index `(start >> l) + j`; the last one
    /// of a level may be a truncated right-edge node. The last level is the root.
    levels: Vec<Vec<Hash>>,
    root: Hash,
}

impl BatchProofs {
    /// Prepares the proofs of `leaves` appended after `before`. Fails only if the new
    /// size would overflow `u64`.
    pub fn new(before: &CompactRange, leaves: &[Hash]) -> Result<Self, MerkleError> {
        let start = before.size().0;
        let added = leaves.len() as u64;
        let size = start
            .checked_add(added)
            .ok_or(MerkleError::TreeSizeOverflow { size: start, added })?;

        let mut frontier = vec![None; 64];
        for (id, hash) in CompactRange::frontier_ids(before.size())
            .iter()
            .zip(before.hashes())
        {
            if let Some(slot) = frontier.get_mut(usize::from(id.level)) {
                *slot = Some(*hash);
            }
        }
        if leaves.is_empty() {
            return Ok(Self {
                start,
                size,
                frontier,
                levels: Vec::new(),
                root: before.root(),
            });
        }

        let mut levels: Vec<Vec<Hash>> = Vec::with_capacity(65);
        let mut below = leaves.to_vec();
        let mut level = 0usize;
        // Climb until the level holds only the root (the last leaf's ancestor is node 0).
        while (size - 1) >> level > 0 {
            let first_below = start >> level;
            let first = start >> (level + 1);
            let last = (size - 1) >> (level + 1);
            let mut next = Vec::with_capacity((last - first + 1) as usize);
            for parent in first..=last {
                let left_index = parent << 1;
                // A left child before the first batch-overlapping node lies inside
                // [0, start) while its parent does not: it is a frontier node.
                let left = if left_index >= first_below {
                    below.get((left_index - first_below) as usize).copied()
                } else {
                    frontier.get(level).copied().flatten()
                };
                let Some(left) = left else {
                    return unreachable_frontier(level, start);
                };
                // The right child is never before the batch (see above).
                let right = below.get((left_index + 1 - first_below) as usize);
                next.push(match right {
                    Some(right) => hash_children(&left, right),
                    // No right child at size n: RFC 6962 carries the node up unchanged.
                    None => left,
                });
            }
            levels.push(std::mem::replace(&mut below, next));
            level += 1;
        }
        levels.push(below);
        let root = levels
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or_else(|| before.root());
        Ok(Self {
            start,
            size,
            frontier,
            levels,
            root,
        })
    }

    /// The tree size after the batch.
    pub fn tree_size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// The root after the batch.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The inclusion proof of leaf `index`, which must be in the batch, against
    /// [`tree_size`](Self::tree_size).
    pub fn inclusion_proof(&self, index: LeafIndex) -> Result<Vec<Hash>, MerkleError> {
        let index = index.0;
        if index < self.start || index >= self.size {
            return Err(MerkleError::NotInBatch {
                index,
                start: self.start,
                end: self.size,
            });
        }
        let height = self.levels.len().saturating_sub(1);
        let mut proof = Vec::with_capacity(height);
        for (level, nodes) in self.levels.iter().take(height).enumerate() {
            let sibling = (index >> level) ^ 1;
            let first = self.start >> level;
            if sibling >= first {
                // Inside the batch range, or the right edge; absent when the path node
                // is carried up.
                if let Some(hash) = nodes.get((sibling - first) as usize) {
                    proof.push(*hash);
                }
            } else {
                match self.frontier.get(level).copied().flatten() {
                    Some(hash) => proof.push(hash),
                    None => unreachable_frontier(level, self.start)?,
                }
            }
        }
        Ok(proof)
    }
}

/// A left sibling outside the batch is always a frontier node of the old size, and each
/// level's nodes are computed from the level below, so this cannot be reached while
/// `CompactRange` keeps one hash per set bit of its size.
fn unreachable_frontier<T>(level: usize, start: u64) -> Result<T, MerkleError> {
    Err(MerkleError::WrongFrontierLength {
        size: start,
        expected: start.count_ones() as usize,
        got: level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{hash_leaf, verify_inclusion};

    #[test]
    fn batches_verify_against_the_new_root() {
        let leaves: Vec<Hash> = (0u32..100).map(|i| hash_leaf(&i.to_be_bytes())).collect();
        for start in [0usize, 1, 2, 3, 5, 8, 13, 31, 32, 33, 64, 99] {
            for end in start..=100 {
                let mut range = CompactRange::new();
                range.append(&leaves[..start], |_, _| {}).unwrap();
                let batch = BatchProofs::new(&range, &leaves[start..end]).unwrap();
                range.append(&leaves[start..end], |_, _| {}).unwrap();
                assert_eq!(batch.root(), range.root());
                assert_eq!(batch.tree_size(), range.size());
                for (i, leaf) in leaves.iter().enumerate().take(end).skip(start) {
                    let index = LeafIndex(i as u64);
                    let proof = batch.inclusion_proof(index).unwrap();
                    verify_inclusion(leaf, index, range.size(), &proof, &range.root()).unwrap();
                }
                assert!(batch.inclusion_proof(LeafIndex(end as u64)).is_err());
                if start > 0 {
                    assert!(batch.inclusion_proof(LeafIndex(start as u64 - 1)).is_err());
                }
            }
        }
    }
}
