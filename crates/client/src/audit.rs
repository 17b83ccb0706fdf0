//! Auditing a whole log: download every entry and rebuild the signed root.

use bytes::Bytes;
use merklog_merkle::{CompactRange, Hash, TreeSize, hash_leaf, verify_consistency};
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1;

use crate::client::call;
use crate::error::AuditMismatch;
use crate::{Client, ClientError, SignedCheckpoint};

/// Keep a copy of the running tree at least every this many entries, so that a
/// mismatch can be located without downloading everything again.
const SNAPSHOT_EVERY: u64 = 256;

/// The outcome of a successful audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// The verified checkpoint whose root the entries rebuilt.
    pub checkpoint: SignedCheckpoint,
    /// How many entries were downloaded and hashed.
    pub entries: u64,
}

fn append_entries(range: &mut CompactRange, entries: &[Bytes]) -> Result<(), ClientError> {
    let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
    range
        .append(&leaves, |_, _| {})
        .map_err(|e| ClientError::Malformed(e.to_string()))
}

impl Client {
    /// Downloads every entry of the log's latest (verified) checkpoint, rebuilds
    /// the tree and compares its root with the signed one. On a mismatch it
    /// locates the first entry that differs from the signed tree (a bisection
    /// over the server's consistency proofs, each checked against the signed
    /// root) and fails with [`ClientError::Audit`]. `progress` is called with
    /// (entries done, total) after each page.
    pub async fn audit(
        &mut self,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<AuditReport, ClientError> {
        let checkpoint = self.checkpoint().await?;
        let size = checkpoint.size().0;
        let mut range = CompactRange::new();
        let mut snapshots: Vec<CompactRange> = Vec::new();
        self.entries(0, size, |_, page| {
            append_entries(&mut range, page)?;
            let last = snapshots.last().map_or(0, |s| s.size().0);
            if range.size().0 - last >= SNAPSHOT_EVERY || range.size().0 == size {
                snapshots.push(range.clone());
            }
            progress(range.size().0, size);
            Ok(())
        })
        .await?;
        let computed = range.root();
        if computed == checkpoint.root() {
            return Ok(AuditReport {
                checkpoint,
                entries: size,
            });
        }
        let located = self.locate_mismatch(&checkpoint, &snapshots).await?;
        let (first_bad_index, entry) = match located {
            Some((index, entry)) => (Some(index), Some(entry)),
            None => (None, None),
        };
        Err(ClientError::Audit(Box::new(AuditMismatch {
            checkpoint,
            computed,
            first_bad_index,
            entry,
        })))
    }

    /// Whether the tree `prefix` (built from downloaded entries) is a prefix of
    /// the signed tree, by a consistency proof checked against both roots.
    async fn is_prefix(
        &mut self,
        prefix: &CompactRange,
        checkpoint: &SignedCheckpoint,
    ) -> Result<bool, ClientError> {
        let size = prefix.size();
        if size.0 == 0 {
            return Ok(true);
        }
        if size == checkpoint.size() {
            return Ok(prefix.root() == checkpoint.root());
        }
        let response = call(
            "GetConsistencyProof",
            &self.server,
            self.options.request_timeout,
            self.rpc
                .get_consistency_proof(v1::GetConsistencyProofRequest {
                    old_size: size.0,
                    new_size: Some(checkpoint.size().0),
                }),
        )
        .await?;
        let Ok(proof) = proof_from_wire("proof", &response.proof) else {
            return Ok(false);
        };
        Ok(verify_consistency(
            size,
            checkpoint.size(),
            &proof,
            &prefix.root(),
            &checkpoint.root(),
        )
        .is_ok())
    }

    /// Finds the first downloaded entry that is not in the signed tree: the
    /// smallest prefix that is not a prefix of the signed tree ends with it.
    /// `snapshots` are the running trees at increasing sizes, the last one whole.
    async fn locate_mismatch(
        &mut self,
        checkpoint: &SignedCheckpoint,
        snapshots: &[CompactRange],
    ) -> Result<Option<(u64, Bytes)>, ClientError> {
        if snapshots.is_empty() {
            return Ok(None);
        }
        // Invariant: snapshots[hi] is not a prefix; those below `lo` are.
        let (mut lo, mut hi) = (0usize, snapshots.len() - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.is_prefix(&snapshots[mid], checkpoint).await? {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let base = match hi.checked_sub(1) {
            Some(below) => snapshots[below].clone(),
            None => CompactRange::new(),
        };
        let (start, end) = (base.size().0, snapshots[hi].size().0);
        let mut entries = Vec::new();
        self.entries(start, end, |_, page| {
            entries.extend_from_slice(page);
            Ok(())
        })
        .await?;
        // Bisect inside the page: prefix j holds entries[..=j].
        let (mut lo, mut hi) = (0usize, entries.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let mut prefix = base.clone();
            append_entries(&mut prefix, &entries[..=mid])?;
            if self.is_prefix(&prefix, checkpoint).await? {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(entries
            .get(lo)
            .map(|entry| (start + lo as u64, entry.clone())))
    }
}

/// Rebuilds the frontier (compact range) of the tree of `size` from its last
/// leaf and that leaf's inclusion proof (which the caller has verified).
pub(crate) fn frontier_from_last_leaf(
    size: TreeSize,
    leaf: Hash,
    proof: &[Hash],
) -> Result<CompactRange, ClientError> {
    // The inclusion proof of the last leaf holds only left siblings: first the
    // ones inside the smallest perfect subtree of `size` (one per trailing zero
    // bit), then the roots of the larger subtrees, smallest first. Those roots,
    // largest first, plus the smallest subtree's root, are the frontier.
    let inner = size.0.trailing_zeros() as usize;
    let (inside, larger) = proof.split_at_checked(inner).ok_or_else(|| {
        ClientError::Malformed(format!(
            "the last leaf's proof in a tree of {} has {} hashes",
            size.0,
            proof.len()
        ))
    })?;
    let smallest = inside.iter().fold(leaf, |node, left| {
        merklog_merkle::hash_children(left, &node)
    });
    let mut hashes: Vec<Hash> = larger.iter().rev().copied().collect();
    hashes.push(smallest);
    CompactRange::from_frontier(size, hashes).map_err(|e| ClientError::Malformed(e.to_string()))
}

/// The frontier (compact range) of the entries before leaf `index`, from that
/// leaf's verified inclusion proof in a tree of `size`: the proof's left
/// siblings are exactly the perfect subtrees that make up `[0, index)`.
pub(crate) fn frontier_before_leaf(
    index: u64,
    size: TreeSize,
    proof: &[Hash],
) -> Result<CompactRange, ClientError> {
    let malformed = || {
        ClientError::Malformed(format!(
            "the proof of entry {index} in a tree of {} does not have its shape",
            size.0
        ))
    };
    if index >= size.0 {
        return Err(malformed());
    }
    // The walk of RFC 9162 section 2.1.3.2, keeping the hashes that are
    // combined on the left.
    let (mut node, mut last) = (index, size.0 - 1);
    let mut lefts = Vec::new();
    for hash in proof {
        if last == 0 {
            return Err(malformed());
        }
        if node & 1 == 1 || node == last {
            lefts.push(*hash);
            if node & 1 == 0 {
                while node & 1 == 0 && node != 0 {
                    node >>= 1;
                    last >>= 1;
                }
            }
        }
        node >>= 1;
        last >>= 1;
    }
    lefts.reverse();
    CompactRange::from_frontier(TreeSize(index), lefts).map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use merklog_merkle::{BatchProofs, LeafIndex};

    use super::*;

    #[test]
    fn the_frontier_is_rebuilt_from_the_last_leaf_proof() {
        for size in 1..=70u64 {
            let leaves: Vec<Hash> = (0..size)
                .map(|i| hash_leaf(format!("leaf {i}").as_bytes()))
                .collect();
            let mut whole = CompactRange::new();
            whole.append(&leaves, |_, _| {}).unwrap();
            let proofs = BatchProofs::new(&CompactRange::new(), &leaves).unwrap();
            let last = *leaves.last().unwrap();
            let proof = proofs.inclusion_proof(LeafIndex(size - 1)).unwrap();
            let rebuilt = frontier_from_last_leaf(TreeSize(size), last, &proof).unwrap();
            assert_eq!(rebuilt, whole, "size {size}");
            // Appending to the rebuilt frontier continues the same tree.
            let mut longer = rebuilt.clone();
            let next = hash_leaf(b"next");
            longer.append(&[next], |_, _| {}).unwrap();
            whole.append(&[next], |_, _| {}).unwrap();
            assert_eq!(longer.root(), whole.root());
        }
        // A proof too short for its size is refused, not sliced out of range.
        assert!(frontier_from_last_leaf(TreeSize(8), [0; 32].into(), &[[1; 32].into()]).is_err());
    }

    #[test]
    fn the_frontier_before_any_leaf_is_rebuilt_from_its_proof() {
        for size in 1..=40u64 {
            let leaves: Vec<Hash> = (0..size)
                .map(|i| hash_leaf(format!("leaf {i}").as_bytes()))
                .collect();
            let proofs = BatchProofs::new(&CompactRange::new(), &leaves).unwrap();
            for index in 0..size {
                let proof = proofs.inclusion_proof(LeafIndex(index)).unwrap();
                let frontier = frontier_before_leaf(index, TreeSize(size), &proof).unwrap();
                let mut expected = CompactRange::new();
                expected
                    .append(&leaves[..index as usize], |_, _| {})
                    .unwrap();
                assert_eq!(frontier, expected, "size {size} index {index}");
            }
        }
        assert!(frontier_before_leaf(3, TreeSize(3), &[]).is_err());
    }
}
