//! Newtypes for the index spaces of the tree.

use std::fmt;

/// The index of a leaf (entry) in the log, counted from 0.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeafIndex(pub u64);

/// The number of leaves in a tree.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreeSize(pub u64);

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A perfect subtree: at `level` L with `index` i it covers the leaves
/// `[i << L, (i + 1) << L)`. Level 0 nodes are the leaves themselves.
///
/// Perfect subtrees are the only nodes merklog stores: once complete, their hashes never
/// change as the tree grows.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    /// Height above the leaves (0 for a leaf). At most 63 for any tree of `u64` size.
    pub level: u8,
    /// Position among the nodes of that level, counted from 0 on the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` with `index`.
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The leaf node with that index.
    pub const fn leaf(index: LeafIndex) -> Self {
        Self {
            level: 0,
            index: index.0,
        }
    }

    /// The leaves `[start, end)` this node covers, or `None` if that range does not fit
    /// in `u64` (the node cannot exist in any tree).
    pub fn leaf_range(&self) -> Option<(u64, u64)> {
        if self.level >= 64 {
            return None;
        }
        let width = 1u64 << self.level;
        let start = self.index.checked_mul(width)?;
        let end = start.checked_add(width)?;
        Some((start, end))
    }

    /// True if this node is complete in a tree of `size` leaves.
    pub fn exists_in(&self, size: TreeSize) -> bool {
        self.leaf_range().is_some_and(|(_, end)| end <= size.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.level, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(NodeId::new(0, 5).leaf_range(), Some((5, 6)));
        assert_eq!(NodeId::new(3, 2).leaf_range(), Some((16, 24)));
        assert_eq!(NodeId::new(63, 1).leaf_range(), None);
        assert_eq!(NodeId::new(64, 0).leaf_range(), None);
        assert_eq!(NodeId::new(63, 0).leaf_range(), Some((0, 1 << 63)));
        assert!(NodeId::new(3, 2).exists_in(TreeSize(24)));
        assert!(!NodeId::new(3, 2).exists_in(TreeSize(23)));
        assert_eq!(NodeId::leaf(LeafIndex(9)), NodeId::new(0, 9));
        assert_eq!(NodeId::new(2, 7).to_string(), "2/7");
        assert_eq!(LeafIndex(4).to_string(), "4");
        assert_eq!(TreeSize(12).to_string(), "12");
    }
}
