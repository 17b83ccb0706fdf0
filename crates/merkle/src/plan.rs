//! Proof building over stored perfect subtrees (RFC 9162 sections 2.1.3.1 and 2.1.4.1).
//!
//! A proof is a list of subtree hashes `MTH(D[start:end])`. Each such range is split
//! into the perfect subtrees of its binary decomposition: when the range is itself
//! perfect that is one stored node; at the right edge of a size that is not a power of
//! two it is several, folded right to left into the ephemeral node's hash.

use std::ops::Range;

use crate::hash::{Hash, empty_root, hash_children};
use crate::verify::bit_length;
use crate::{LeafIndex, MerkleError, NodeId, ProofError, TreeSize};

/// Reads stored perfect-subtree hashes by coordinates. Implemented by storage.
pub trait NodeReader {
    /// The storage error.
    type Error;
    /// Returns the hashes of `ids`, in the same order, one per id. Every id is a perfect
    /// subtree that is complete at the tree size the proof is built for.
    fn read_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error>;
}

/// Which stored nodes a proof needs and how to fold them into the proof hashes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProofPlan {
    nodes: Vec<NodeId>,
    /// One entry per proof hash: the range of `nodes` folded into it.
    outputs: Vec<Range<usize>>,
}

impl ProofPlan {
    /// The nodes to fetch, ideally in one batch (multi-get). No node appears twice.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The number of hashes in the proof this plan assembles.
    pub fn proof_len(&self) -> usize {
        self.outputs.len()
    }

    /// Builds the proof from the hashes of [`nodes`](Self::nodes): `hashes[i]` must be
    /// the hash of `nodes()[i]`.
    pub fn assemble(&self, hashes: &[Hash]) -> Result<Vec<Hash>, MerkleError> {
        if hashes.len() != self.nodes.len() {
            return Err(MerkleError::WrongNodeCount {
                expected: self.nodes.len(),
                got: hashes.len(),
            });
        }
        self.outputs
            .iter()
            .map(|range| {
                let parts = hashes
                    .get(range.clone())
                    .ok_or(MerkleError::WrongNodeCount {
                        expected: range.end,
                        got: hashes.len(),
                    })?;
                Ok(fold_right(parts).unwrap_or_else(empty_root))
            })
            .collect()
    }

    /// Adds one proof hash: `MTH(D[start:end])` for `start < end`, where `start` is a
    /// multiple of the largest power of two not above `end - start` (true of every
    /// range a proof needs).
    fn push_range(&mut self, start: u64, end: u64) {
        let first = self.nodes.len();
        let mut position = start;
        let length = end - start;
        // Largest subtree first: each one is aligned because `start` is aligned to the
        // largest and the earlier ones have larger sizes.
        for level in (0..bit_length(length)).rev() {
            if length >> level & 1 == 1 {
                self.nodes.push(NodeId {
                    level: level as u8,
                    index: position >> level,
                });
                position += 1 << level;
            }
        }
        self.outputs.push(first..self.nodes.len());
    }
}

/// Folds subtree roots right to left, as RFC 6962 does along the right edge.
fn fold_right(parts: &[Hash]) -> Option<Hash> {
    let (last, rest) = parts.split_last()?;
    Some(
        rest.iter()
            .rev()
            .fold(*last, |acc, left| hash_children(left, &acc)),
    )
}

/// The plan of the inclusion proof of leaf `index` in the tree of `size` leaves
/// (RFC 9162 section 2.1.3.1).
pub fn inclusion_plan(index: LeafIndex, size: TreeSize) -> Result<ProofPlan, MerkleError> {
    let (index, size) = (index.0, size.0);
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut plan = ProofPlan::default();
    let height = bit_length(size - 1);
    for level in 0..height {
        let sibling = (index >> level) ^ 1;
        let start = sibling << level;
        if start >= size {
            // The path node has no sibling at this level: RFC 6962 carries it up.
            continue;
        }
        let end = start + (size - start).min(1 << level);
        plan.push_range(start, end);
    }
    Ok(plan)
}

/// The plan of the consistency proof from `old` to `new` leaves, `0 < old <= new`
/// (RFC 9162 section 2.1.4.1). Equal sizes give an empty plan.
pub fn consistency_plan(old: TreeSize, new: TreeSize) -> Result<ProofPlan, MerkleError> {
    let (old, new) = (old.0, new.0);
    if old == 0 || old > new {
        return Err(MerkleError::InvalidConsistencySizes { old, new });
    }
    // SUBPROOF(m, D[offset : offset + n], complete), unrolled. The RFC emits the deepest
    // hash first; we walk top-down and reverse at the end.
    let mut ranges = Vec::new();
    let (mut offset, mut m, mut n, mut complete) = (0u64, old, new, true);
    while m < n {
        let k = 1u64 << (bit_length(n - 1) - 1); // largest power of two < n
        if m <= k {
            ranges.push((offset + k, offset + n));
            n = k;
        } else {
            ranges.push((offset, offset + k));
            offset += k;
            m -= k;
            n -= k;
            complete = false;
        }
    }
    if !complete {
        ranges.push((offset, offset + m));
    }
    let mut plan = ProofPlan::default();
    for &(start, end) in ranges.iter().rev() {
        plan.push_range(start, end);
    }
    Ok(plan)
}

/// The plan of the root of the tree of `size` leaves: one proof hash, the root. Its
/// nodes are the frontier of `size`. Size 0 gives the empty root and no nodes.
pub fn root_plan(size: TreeSize) -> ProofPlan {
    let mut plan = ProofPlan::default();
    if size.0 > 0 {
        plan.push_range(0, size.0);
    }
    plan
}

fn read<R: NodeReader>(reader: &R, plan: &ProofPlan) -> Result<Vec<Hash>, ProofError<R::Error>> {
    if plan.nodes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = reader.read_nodes(&plan.nodes).map_err(ProofError::Read)?;
    Ok(plan.assemble(&hashes)?)
}

/// Builds the inclusion proof of leaf `index` in the tree of `size` leaves from stored
/// nodes, with one [`NodeReader::read_nodes`] call.
pub fn inclusion_proof<R: NodeReader>(
    reader: &R,
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<Hash>, ProofError<R::Error>> {
    read(reader, &inclusion_plan(index, size)?)
}

/// Builds the consistency proof from `old` to `new` leaves from stored nodes, with at
/// most one [`NodeReader::read_nodes`] call.
pub fn consistency_proof<R: NodeReader>(
    reader: &R,
    old: TreeSize,
    new: TreeSize,
) -> Result<Vec<Hash>, ProofError<R::Error>> {
    read(reader, &consistency_plan(old, new)?)
}

/// Recomputes the root of the tree of `size` leaves from stored nodes (for example, to
/// check storage against the last signed checkpoint on recovery).
pub fn root_at<R: NodeReader>(reader: &R, size: TreeSize) -> Result<Hash, ProofError<R::Error>> {
    let hashes = read(reader, &root_plan(size))?;
    Ok(hashes.first().copied().unwrap_or_else(empty_root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CompactRange, hash_leaf, verify_consistency, verify_inclusion};
    use std::collections::HashMap;

    struct Store(HashMap<NodeId, Hash>);
    impl NodeReader for Store {
        type Error = NodeId;
        fn read_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, NodeId> {
            ids.iter()
                .map(|id| self.0.get(id).copied().ok_or(*id))
                .collect()
        }
    }

    fn store(n: u32) -> (Store, Vec<Hash>) {
        let mut nodes = HashMap::new();
        let mut range = CompactRange::new();
        let mut roots = vec![range.root()];
        for i in 0..n {
            range
                .append(&[hash_leaf(&i.to_be_bytes())], |id, h| {
                    nodes.insert(id, *h);
                })
                .unwrap();
            roots.push(range.root());
        }
        (Store(nodes), roots)
    }

    #[test]
    fn proofs_from_store_verify() {
        let (store, roots) = store(40);
        for n in 1..=40u64 {
            assert_eq!(root_at(&store, TreeSize(n)).unwrap(), roots[n as usize]);
            for i in 0..n {
                let proof = inclusion_proof(&store, LeafIndex(i), TreeSize(n)).unwrap();
                let leaf = hash_leaf(&(i as u32).to_be_bytes());
                verify_inclusion(&leaf, LeafIndex(i), TreeSize(n), &proof, &roots[n as usize])
                    .unwrap();
            }
            for m in 1..=n {
                let proof = consistency_proof(&store, TreeSize(m), TreeSize(n)).unwrap();
                verify_consistency(
                    TreeSize(m),
                    TreeSize(n),
                    &proof,
                    &roots[m as usize],
                    &roots[n as usize],
                )
                .unwrap();
            }
        }
        assert_eq!(root_at(&store, TreeSize(0)).unwrap(), empty_root());
    }

    #[test]
    fn invalid_requests() {
        let (store, _) = store(4);
        assert!(matches!(
            inclusion_proof(&store, LeafIndex(4), TreeSize(4)),
            Err(ProofError::Merkle(MerkleError::IndexOutOfRange {
                index: 4,
                size: 4
            }))
        ));
        assert!(matches!(
            consistency_plan(TreeSize(0), TreeSize(3)),
            Err(MerkleError::InvalidConsistencySizes { old: 0, new: 3 })
        ));
        assert!(matches!(
            consistency_plan(TreeSize(4), TreeSize(3)),
            Err(MerkleError::InvalidConsistencySizes { old: 4, new: 3 })
        ));
        // A node the store does not have is reported as a read error.
        assert!(matches!(
            inclusion_proof(&store, LeafIndex(0), TreeSize(8)),
            Err(ProofError::Read(NodeId { level: 2, index: 1 }))
        ));
        let plan = inclusion_plan(LeafIndex(0), TreeSize(3)).unwrap();
        assert!(matches!(
            plan.assemble(&[]),
            Err(MerkleError::WrongNodeCount {
                expected: 2,
                got: 0
            })
        ));
    }

    #[test]
    fn plans_for_huge_trees_are_small() {
        let size = TreeSize(u64::MAX);
        let plan = inclusion_plan(LeafIndex(u64::MAX - 1), size).unwrap();
        assert_eq!(plan.proof_len(), 63);
        let plan = inclusion_plan(LeafIndex(0), size).unwrap();
        assert_eq!(plan.proof_len(), 64);
        // The right-edge sibling of leaf 0 covers [2^63, 2^64 - 1): 63 perfect subtrees.
        assert_eq!(plan.nodes().len(), 63 + 63);
        let plan = consistency_plan(TreeSize(u64::MAX - 1), size).unwrap();
        assert!(plan.proof_len() <= 128);
        assert_eq!(root_plan(size).nodes().len(), 64);
    }
}
