//! # merklog-merkle
//!
//! The Merkle tree math every merklog party trusts: the log server, witnesses, clients
//! and auditors.
//!
//! What it is:
//! - RFC 6962 section 2.1 / RFC 9162 section 2.1 hashing: leaf hashes
//!   `SHA-256(0x00 || entry)`, interior hashes `SHA-256(0x01 || left || right)`, and the
//!   empty-tree root `SHA-256("")` ([`hash_leaf`], [`hash_children`], [`empty_root`]).
//! - A [`CompactRange`] (the frontier of the tree) that appends leaves in amortised
//!   O(1) hashing, gives the root, and reports every node that becomes complete so that
//!   storage can persist it.
//! - Proof building (RFC 9162 sections 2.1.3.1 and 2.1.4.1) over stored *perfect*
//!   subtrees only ([`inclusion_plan`], [`consistency_plan`], [`NodeReader`]); right-edge
//!   nodes of a size that is not a power of two are recomputed per request, so proofs at
//!   older sizes stay correct. [`BatchProofs`] builds the proofs of a whole appended
//!   batch in memory.
//! - Proof verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) with the exact proof
//!   length checked before any hashing, constant-time root comparison and errors that
//!   carry the expected and computed roots ([`verify_inclusion`],
//!   [`verify_consistency`]).
//! - C2SP tlog-tiles (v0.1.0) coordinates and paths ([`tile`]), and the entry-bundle
//!   codec ([`bundle`]), and [`TileRebuild`], which recomputes every hash tile of a
//!   tree from its leaves for consistency checks (fsck).
//!
//! What it is not: it does no I/O, no async, no serialisation of wire messages and no
//! signing; storage, checkpoints and transport live in the other merklog crates.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
pub mod bundle;
mod compact;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod hash;
mod plan;
mod rebuild;
pub mod tile;
mod types;
mod verify;

pub use batch::BatchProofs;
pub use compact::CompactRange;
pub use error::{MerkleError, ProofError};
pub use hash::{HASH_SIZE, Hash, empty_root, hash_children, hash_leaf, to_hex};
pub use plan::{
    NodeReader, ProofPlan, consistency_plan, consistency_proof, inclusion_plan, inclusion_proof,
    root_at, root_plan,
};
pub use rebuild::{RebuiltTile, TileRebuild};
pub use types::{LeafIndex, NodeId, TreeSize};
pub use verify::{root_from_inclusion_proof, verify_consistency, verify_inclusion};
