//! Proof verification, RFC 9162 sections 2.1.3.2 and 2.1.4.2.
//!
//! Both verifiers first compute the exact number of hashes the sizes require and reject
//! any other length before hashing anything, then compare roots in constant time.

use crate::hash::{Hash, hash_children};
use crate::{LeafIndex, MerkleError, TreeSize};

/// Number of significant bits of `x` (0 for 0).
pub(crate) fn bit_length(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// The shape of the inclusion proof of leaf `index` in a tree of `size` leaves
/// (`index < size`): `inner` siblings below the level where the paths of `index` and of
/// the last leaf meet, then `border` left siblings above it (one per set bit of
/// `index >> inner`).
pub(crate) fn inclusion_shape(index: u64, last: u64) -> (usize, usize) {
    let inner = bit_length(index ^ last);
    let border = (index.checked_shr(inner).unwrap_or(0)).count_ones();
    (inner as usize, border as usize)
}

/// Computes the root an inclusion proof leads to, after checking that `index < size` and
/// that the proof has exactly the length those require.
pub fn root_from_inclusion_proof(
    leaf: &Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
) -> Result<Hash, MerkleError> {
    if index.0 >= size.0 {
        return Err(MerkleError::IndexOutOfRange {
            index: index.0,
            size: size.0,
        });
    }
    let (inner, border) = inclusion_shape(index.0, size.0 - 1);
    let expected = inner + border;
    if proof.len() != expected {
        return Err(MerkleError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    let (inner_proof, border_proof) = proof.split_at(inner);
    let mut node = *leaf;
    let mut position = index.0;
    // Below the meeting level every node has a sibling; its side is the position's low bit.
    for sibling in inner_proof {
        node = if position & 1 == 0 {
            hash_children(&node, sibling)
        } else {
            hash_children(sibling, &node)
        };
        position >>= 1;
    }
    // Above it the path runs along the right edge: only left siblings remain.
    for sibling in border_proof {
        node = hash_children(sibling, &node);
    }
    Ok(node)
}

/// Verifies that `leaf` is the leaf hash at `index` in the tree of `size` leaves whose
/// root is `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    let computed = root_from_inclusion_proof(leaf, index, size, proof)?;
    if computed == *root {
        Ok(())
    } else {
        Err(MerkleError::InclusionRootMismatch {
            expected: *root,
            computed,
        })
    }
}

/// The number of hashes in the consistency proof from `old` to `new`, for
/// `0 < old < new`.
pub(crate) fn consistency_proof_len(old: u64, new: u64) -> usize {
    // The proof is the inclusion proof of leaf old - 1 in the new tree, cut below the
    // largest perfect subtree that ends at `old` (level = trailing zeros of old), plus
    // that subtree's root unless it is the whole old tree.
    let shift = old.trailing_zeros() as usize;
    let (inner, border) = inclusion_shape(old - 1, new - 1);
    let seed = usize::from(!old.is_power_of_two());
    // inner > shift because old - 1 ends in `shift` one bits and differs from new - 1
    // above them.
    seed + inner.saturating_sub(shift) + border
}

/// Verifies that the tree of `old` leaves with root `old_root` is a prefix of the tree of
/// `new` leaves with root `new_root` (RFC 9162 section 2.1.4.2). Requires
/// `0 < old <= new`; equal sizes take an empty proof and equal roots.
pub fn verify_consistency(
    old: TreeSize,
    new: TreeSize,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), MerkleError> {
    let (old, new) = (old.0, new.0);
    if old == 0 || old > new {
        return Err(MerkleError::InvalidConsistencySizes { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(MerkleError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(MerkleError::ConsistencyNewRootMismatch {
                expected: *new_root,
                computed: *old_root,
            });
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old, new);
    if proof.len() != expected {
        return Err(MerkleError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }

    // RFC 9162 2.1.4.2, step by step. When old is a power of two the old root is the
    // first node of the path and the proof omits it.
    let (first, rest) = if old.is_power_of_two() {
        (old_root, proof)
    } else {
        match proof.split_first() {
            Some(split) => split,
            None => return Err(MerkleError::WrongProofLength { expected, got: 0 }),
        }
    };
    let mut fn_ = old - 1;
    let mut sn = new - 1;
    // Skip the levels inside the perfect subtree that `first` is the root of.
    let shift = fn_.trailing_ones();
    fn_ >>= shift;
    sn >>= shift;
    let mut old_hash = *first;
    let mut new_hash = *first;
    for sibling in rest {
        if sn == 0 {
            // RFC 9162's own guard (more hashes than levels). Unreachable after the
            // length check; kept, with its own error, as defence in depth.
            return Err(MerkleError::MalformedProof {
                reason: "consistency proof longer than its path",
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            old_hash = hash_children(sibling, &old_hash);
            new_hash = hash_children(sibling, &new_hash);
            if fn_ & 1 == 0 {
                // Right edge of the old tree: climb until it is a right child again.
                let climb = if fn_ == 0 { 0 } else { fn_.trailing_zeros() };
                fn_ >>= climb;
                sn >>= climb;
            }
        } else {
            new_hash = hash_children(&new_hash, sibling);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(MerkleError::MalformedProof {
            reason: "consistency proof shorter than its path",
        });
    }
    if old_hash != *old_root {
        return Err(MerkleError::ConsistencyOldRootMismatch {
            expected: *old_root,
            computed: old_hash,
        });
    }
    if new_hash != *new_root {
        return Err(MerkleError::ConsistencyNewRootMismatch {
            expected: *new_root,
            computed: new_hash,
        });
    }
    Ok(())
}
