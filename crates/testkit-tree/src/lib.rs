//! # merklog-testkit-tree
//!
//! Test support, not published: a deliberately naive Merkle tree written from the
//! recursive definitions of RFC 9162 section 2.1 (the same as RFC 6962 section 2.1)
//! alone, as the second implementation that merklog's tests compare the real one with.
//!
//! What it is:
//! - MTH (section 2.1.1), PATH (section 2.1.3.1) and PROOF / SUBPROOF
//!   (section 2.1.4.1), each a direct recursion over a slice, in quadratic time or
//!   worse; fine for the tree sizes tests use, useless for anything else.
//! - Plain `[u8; 32]` values and SHA-256 from `sha2`: it depends on no merklog crate,
//!   so merklog-merkle's own tests can use it, and a mistake in merklog-merkle cannot
//!   leak into it. The public functions take and return any hash type that converts
//!   to and from the 32 bytes ([`Bytes32`]), so callers pass their own.
//!
//! What it is not: no verification, no storage, no tiles, no compact ranges, and no
//! speed. Its own tests check it against the known-answer vectors in `tests/data`.
//!
//! The functions take the leaf hashes `HASH(0x00 || d(i))` ([`leaf_hash`]) rather
//! than the entries `d(i)`: every caller already has them, and MTH of a one-entry
//! list is exactly its leaf hash, so the recursion is the RFC's with that first step
//! already taken.

use sha2::{Digest, Sha256};

/// `HASH(0x00 || entry)`: MTH of the one-entry list `{entry}`.
pub fn leaf_hash(entry: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// `HASH(0x01 || left || right)`: an interior node.
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two smaller than `n`, for `n > 1`: the size of the left
/// subtree in every definition of section 2.1.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// A caller's hash type: anything that converts to and from the 32 bytes
/// (`[u8; 32]` itself, or a newtype around it).
pub trait Bytes32: Copy + Into<[u8; 32]> + From<[u8; 32]> {}

impl<H: Copy + Into<[u8; 32]> + From<[u8; 32]>> Bytes32 for H {}

fn raw<H: Bytes32>(leaves: &[H]) -> Vec<[u8; 32]> {
    leaves.iter().map(|&leaf| leaf.into()).collect()
}

fn wrap<H: Bytes32>(hashes: Vec<[u8; 32]>) -> Vec<H> {
    hashes.into_iter().map(H::from).collect()
}

/// MTH(D\[n\]) over the leaf hashes of `D[n]`; the empty list has `HASH()`.
pub fn mth<H: Bytes32>(leaves: &[H]) -> H {
    H::from(mth_raw(&raw(leaves)))
}

fn mth_raw(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves {
        [] => Sha256::digest([]).into(),
        [leaf] => *leaf,
        _ => {
            let (left, right) = leaves.split_at(split(leaves.len()));
            node_hash(&mth_raw(left), &mth_raw(right))
        }
    }
}

/// PATH(m, D\[n\]): the inclusion proof of leaf `m`, leaf sibling first; `None`
/// unless `m < n`, where the RFC defines it.
pub fn path<H: Bytes32>(m: usize, leaves: &[H]) -> Option<Vec<H>> {
    (m < leaves.len()).then(|| wrap(path_within(m, &raw(leaves))))
}

/// PATH for `m < n`.
fn path_within(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split(leaves.len());
    let (left, right) = leaves.split_at(k);
    if m < k {
        let mut proof = path_within(m, left);
        proof.push(mth_raw(right));
        proof
    } else {
        let mut proof = path_within(m - k, right);
        proof.push(mth_raw(left));
        proof
    }
}

/// PROOF(m, D\[n\]) = SUBPROOF(m, D\[n\], true): the consistency proof from size `m`
/// to size `n`. `None` unless `0 < m <= n`; for `m == n` it is empty, as SUBPROOF
/// gives.
pub fn proof<H: Bytes32>(m: usize, leaves: &[H]) -> Option<Vec<H>> {
    (0 < m && m <= leaves.len()).then(|| wrap(subproof(m, &raw(leaves), true)))
}

/// SUBPROOF(m, D\[n\], b) for `0 < m <= n`.
fn subproof(m: usize, leaves: &[[u8; 32]], complete: bool) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if m == n {
        return if complete {
            Vec::new()
        } else {
            vec![mth_raw(leaves)]
        };
    }
    let k = split(n);
    let (left, right) = leaves.split_at(k);
    if m <= k {
        let mut proof = subproof(m, left, complete);
        proof.push(mth_raw(right));
        proof
    } else {
        let mut proof = subproof(m - k, right, false);
        proof.push(mth_raw(left));
        proof
    }
}
