//! The compact range (frontier) of a tree `[0, size)`.

use crate::hash::{Hash, empty_root, hash_children};
use crate::{MerkleError, NodeId, TreeSize};

/// The frontier of the tree `[0, size)`: the roots of the perfect subtrees of `size`'s
/// binary decomposition, left (largest) to right (smallest).
///
/// It is all a log needs in memory to append leaves and compute the root; every node that
/// becomes complete is reported to the caller of [`append`](Self::append) so storage can
/// persist it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactRange {
    size: u64,
    /// One hash per set bit of `size`, highest bit first.
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The perfect subtrees whose hashes rebuild the frontier of `size`, in the order
    /// [`from_frontier`](Self::from_frontier) expects them (largest first).
    pub fn frontier_ids(size: TreeSize) -> Vec<NodeId> {
        let mut ids = Vec::with_capacity(size.0.count_ones() as usize);
        for level in (0..64u8).rev() {
            if size.0 >> level & 1 == 1 {
                // The node ends where the lower bits of `size` begin.
                ids.push(NodeId {
                    level,
                    index: (size.0 >> level) - 1,
                });
            }
        }
        ids
    }

    /// Rebuilds the frontier of `size` from the hashes of
    /// [`frontier_ids(size)`](Self::frontier_ids), in that order.
    pub fn from_frontier(size: TreeSize, hashes: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = size.0.count_ones() as usize;
        if hashes.len() != expected {
            return Err(MerkleError::WrongFrontierLength {
                size: size.0,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self {
            size: size.0,
            hashes,
        })
    }

    /// The number of leaves.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// The frontier hashes, in [`frontier_ids`](Self::frontier_ids) order.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The root hash of the tree ([`empty_root`] for the empty tree).
    pub fn root(&self) -> Hash {
        // RFC 6962: the right edge is folded from the smallest subtree up.
        let mut iter = self.hashes.iter().rev();
        let Some(&last) = iter.next() else {
            return empty_root();
        };
        iter.fold(last, |acc, left| hash_children(left, &acc))
    }

    /// Appends leaf hashes and calls `on_node` for every node that becomes complete: each
    /// leaf (level 0), followed by the interior nodes it completes from the bottom up. So
    /// every node is reported right after the last node below it, never before.
    ///
    /// Costs one hash per completed interior node: amortised O(1) per leaf.
    /// Fails, without changing anything, if the size would overflow `u64`.
    pub fn append(
        &mut self,
        leaves: &[Hash],
        mut on_node: impl FnMut(NodeId, &Hash),
    ) -> Result<(), MerkleError> {
        let added = leaves.len() as u64;
        if self.size.checked_add(added).is_none() {
            return Err(MerkleError::TreeSizeOverflow {
                size: self.size,
                added,
            });
        }
        for leaf in leaves {
            self.push(leaf, &mut on_node);
        }
        Ok(())
    }

    /// Appends one leaf. The caller has checked that `size + 1` does not overflow.
    fn push(&mut self, leaf: &Hash, on_node: &mut impl FnMut(NodeId, &Hash)) {
        let index = self.size;
        on_node(NodeId { level: 0, index }, leaf);
        let new_size = index.wrapping_add(1);
        let mut node = *leaf;
        // Each trailing one of the old size is a subtree that the new leaf completes.
        let merges = index.trailing_ones();
        for level in 1..=merges {
            // The frontier holds one hash per set bit of the old size, so the pops match.
            let Some(left) = self.hashes.pop() else { break };
            node = hash_children(&left, &node);
            // `level` <= 64 only when the old size was u64::MAX, which append rejects.
            let level = level as u8;
            let id = NodeId {
                level,
                index: (new_size >> level).wrapping_sub(1),
            };
            on_node(id, &node);
        }
        self.hashes.push(node);
        self.size = new_size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_leaf;

    /// RFC 6962 MTH from the independent naive tree.
    fn naive_root(leaves: &[Hash]) -> Hash {
        merklog_testkit_tree::mth(leaves)
    }

    #[test]
    fn roots_and_reported_nodes() {
        let leaves: Vec<Hash> = (0u32..70).map(|i| hash_leaf(&i.to_be_bytes())).collect();
        let mut range = CompactRange::new();
        assert_eq!(range.root(), empty_root());
        let mut reported = Vec::new();
        for (i, leaf) in leaves.iter().enumerate() {
            range
                .append(std::slice::from_ref(leaf), |id, h| reported.push((id, *h)))
                .unwrap();
            assert_eq!(range.size(), TreeSize(i as u64 + 1));
            assert_eq!(range.root(), naive_root(&leaves[..=i]));
        }
        // Every reported node is the naive root of the leaves it covers.
        for (id, h) in &reported {
            let (start, end) = id.leaf_range().unwrap();
            assert_eq!(
                *h,
                naive_root(&leaves[start as usize..end as usize]),
                "{id}"
            );
        }
        // 70 leaves complete 70 - popcount(70) = 67 interior nodes.
        assert_eq!(reported.len(), 70 + 67);

        // Rebuilding from the frontier ids gives the same range.
        let ids = CompactRange::frontier_ids(range.size());
        let by_id: std::collections::HashMap<_, _> = reported.iter().copied().collect();
        let hashes = ids.iter().map(|id| by_id[id]).collect();
        let rebuilt = CompactRange::from_frontier(range.size(), hashes).unwrap();
        assert_eq!(rebuilt, range);
        assert_eq!(
            ids,
            vec![NodeId::new(6, 0), NodeId::new(2, 16), NodeId::new(1, 34)],
            "70 = 64 + 4 + 2"
        );
    }

    #[test]
    fn batch_append_equals_single_appends() {
        let leaves: Vec<Hash> = (0u32..300).map(|i| hash_leaf(&i.to_le_bytes())).collect();
        let mut one = CompactRange::new();
        let mut one_nodes = Vec::new();
        for leaf in &leaves {
            one.append(std::slice::from_ref(leaf), |id, h| one_nodes.push((id, *h)))
                .unwrap();
        }
        let mut batched = CompactRange::new();
        let mut batched_nodes = Vec::new();
        for chunk in leaves.chunks(37) {
            batched
                .append(chunk, |id, h| batched_nodes.push((id, *h)))
                .unwrap();
        }
        assert_eq!(one, batched);
        assert_eq!(one_nodes, batched_nodes);
    }

    #[test]
    fn frontier_errors_and_overflow() {
        assert!(matches!(
            CompactRange::from_frontier(TreeSize(3), vec![Hash::from_bytes([0; 32])]),
            Err(MerkleError::WrongFrontierLength {
                size: 3,
                expected: 2,
                got: 1
            })
        ));
        let full =
            CompactRange::from_frontier(TreeSize(u64::MAX), vec![Hash::from_bytes([0; 32]); 64])
                .unwrap();
        let mut copy = full.clone();
        let err = copy
            .append(&[Hash::from_bytes([1; 32])], |_, _| {})
            .unwrap_err();
        assert!(matches!(
            err,
            MerkleError::TreeSizeOverflow {
                size: u64::MAX,
                added: 1
            }
        ));
        assert_eq!(copy, full);
        assert!(CompactRange::frontier_ids(TreeSize(0)).is_empty());
    }
}
