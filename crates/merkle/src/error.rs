//! The crate's error types.

use crate::hash::Hash;

/// Everything that can go wrong in this crate. Verification failures carry the evidence
/// (the expected and the computed root).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// A hash was not exactly 32 bytes long.
    #[error("hash must be 32 bytes, got {got}")]
    InvalidHashLength {
        /// The length that was given.
        got: usize,
    },
    /// Hex text of a hash was not exactly 64 characters long.
    #[error("a hash is 64 hex digits, got {got} bytes of text")]
    InvalidHashHexLength {
        /// The length of the text in bytes.
        got: usize,
    },
    /// Hex text of a hash holds something other than a lower-case hex digit.
    #[error("a hash is 64 lower-case hex digits, found {found:?} at position {position}")]
    InvalidHashHexDigit {
        /// Byte offset of the first bad character.
        position: usize,
        /// The character found there.
        found: char,
    },
    /// A leaf index is not smaller than the tree size.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was requested or checked for sizes that do not satisfy
    /// `0 < old <= new`.
    #[error("invalid consistency sizes: old {old}, new {new} (need 0 < old <= new)")]
    InvalidConsistencySizes {
        /// The older tree size.
        old: u64,
        /// The newer tree size.
        new: u64,
    },
    /// A proof does not have exactly the number of hashes its sizes require.
    #[error("proof has {got} hashes, expected exactly {expected}")]
    WrongProofLength {
        /// The number of hashes the sizes require.
        expected: usize,
        /// The number of hashes given.
        got: usize,
    },
    /// A proof does not fit the shape its sizes imply (a guard behind the exact length
    /// check, which normally reports such proofs first).
    #[error("malformed proof: {reason}")]
    MalformedProof {
        /// What does not fit.
        reason: &'static str,
    },
    /// An inclusion proof leads to a different root.
    #[error("inclusion proof root mismatch: expected {expected}, computed {computed}")]
    InclusionRootMismatch {
        /// The trusted root the proof was checked against.
        expected: Hash,
        /// The root the proof leads to.
        computed: Hash,
    },
    /// A consistency proof leads to a different old root.
    #[error("consistency proof old root mismatch: expected {expected}, computed {computed}")]
    ConsistencyOldRootMismatch {
        /// The old root the proof was checked against.
        expected: Hash,
        /// The old root the proof leads to.
        computed: Hash,
    },
    /// A consistency proof leads to a different new root. For equal sizes (empty proof)
    /// `computed` is the old root, which must equal the new one.
    #[error("consistency proof new root mismatch: expected {expected}, computed {computed}")]
    ConsistencyNewRootMismatch {
        /// The new root the proof was checked against.
        expected: Hash,
        /// The new root the proof leads to.
        computed: Hash,
    },
    /// Appending would make the tree larger than `u64::MAX` leaves.
    #[error("tree size overflow: {size} + {added} leaves does not fit in u64")]
    TreeSizeOverflow {
        /// The current size.
        size: u64,
        /// The number of leaves being added.
        added: u64,
    },
    /// A frontier does not have one hash per perfect subtree of its size.
    #[error("a frontier of size {size} needs {expected} hashes, got {got}")]
    WrongFrontierLength {
        /// The tree size.
        size: u64,
        /// The number of perfect subtrees in the binary decomposition of `size`.
        expected: usize,
        /// The number of hashes given.
        got: usize,
    },
    /// A proof plan or node reader got a different number of node hashes than it asked
    /// for.
    #[error("expected {expected} node hashes, got {got}")]
    WrongNodeCount {
        /// The number of nodes asked for.
        expected: usize,
        /// The number of hashes given.
        got: usize,
    },
    /// A batch proof was requested for a leaf outside the batch.
    #[error("leaf index {index} is not in the batch [{start}, {end})")]
    NotInBatch {
        /// The leaf index.
        index: u64,
        /// The first leaf of the batch.
        start: u64,
        /// One past the last leaf of the batch.
        end: u64,
    },
    /// A tlog-tiles path is not in its canonical form.
    #[error("invalid tile path: {reason}")]
    InvalidTilePath {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A list of hashes whose length is not a power of two was given where a perfect
    /// subtree was expected.
    #[error("{len} hashes do not form a perfect subtree")]
    NotPerfectSubtree {
        /// The number of hashes given.
        len: usize,
    },
    /// Tile bytes are not a whole number of hashes, or hold more than a tile can.
    #[error("invalid tile data: {len} bytes")]
    InvalidTileData {
        /// The number of bytes given.
        len: usize,
    },
    /// An entry is too long for an entry bundle's 2-byte length prefix.
    #[error("entry of {len} bytes does not fit in an entry bundle (at most 65535)")]
    BundleEntryTooLong {
        /// The entry's length.
        len: usize,
    },
    /// An entry bundle ends inside an entry's 2-byte length prefix.
    #[error("entry bundle is cut short inside the length prefix at offset {offset}")]
    BundleTruncatedLength {
        /// Byte offset of the cut-short prefix.
        offset: usize,
    },
    /// An entry bundle ends inside an entry.
    #[error(
        "entry bundle is cut short: the entry at offset {offset} is {len} bytes, {available} are left"
    )]
    BundleTruncatedEntry {
        /// Byte offset of the entry's length prefix.
        offset: usize,
        /// The length the prefix gives.
        len: usize,
        /// The bytes left after the prefix.
        available: usize,
    },
    /// An entry bundle holds fewer entries than asked for.
    #[error("entry bundle holds {found} entries, {wanted} were asked for")]
    BundleTooFewEntries {
        /// The number of entries asked for.
        wanted: usize,
        /// The number of whole entries the bundle holds.
        found: usize,
    },
    /// A tile does not hold the hashes a node needs.
    #[error("tile has {got} hashes, the node needs {needed}")]
    TileTooShort {
        /// Number of hashes needed from the start of the tile.
        needed: usize,
        /// Number of hashes in the tile.
        got: usize,
    },
}

/// An error while building a proof from stored nodes: either the request was invalid
/// (or the store returned the wrong number of hashes), or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ProofError<E> {
    /// The request was invalid or the stored nodes were inconsistent with it.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    /// The [`NodeReader`](crate::NodeReader) failed.
    #[error("reading stored nodes: {0}")]
    Read(E),
}
