//! # merklog-log
//!
//! The sequencer of a merklog transparency log: callers submit entries through a
//! bounded queue; one dedicated thread integrates them in rounds (group commit),
//! signs one checkpoint per round, makes the round durable with one synced write, then
//! publishes the checkpoint and answers every caller with its index and an inclusion
//! proof against that checkpoint ("acknowledged means sealed").
//!
//! What it is:
//! - [`Log`]: the handle the server uses ([`Log::append`], proofs, entries, tiles,
//!   checkpoints, [`Log::subscribe`]); reads go straight to storage on blocking
//!   threads, bounded by the published size.
//! - [`LogStore`]: the storage trait, tile-shaped after C2SP tlog-tiles (hash tiles and
//!   entry bundles of 256 as values, a dedup index, checkpoints by size). The
//!   `merklog-store` crate implements it with RocksDB; [`MemoryStore`] is an in-memory
//!   implementation for tests.
//! - The round order of the design note "Durability order of one integration round":
//!   batch, dedup (one multi-get), assign indexes, extend a copy of the compact range
//!   (RFC 6962 / RFC 9162 section 2.1), sign a C2SP tlog-checkpoint, one synced write,
//!   swap, publish, answer. Each step's crash semantics are written next to its code in
//!   `sequencer.rs`.
//! - Recovery on open: the latest checkpoint's signature and origin are checked, the
//!   compact range is rebuilt from O(log n) stored tiles and its root compared with
//!   the checkpoint's in constant time; on mismatch the log serves reads and refuses
//!   to sign (fail closed).
//! - Metrics through the `metrics` facade (names in [`metrics`]).
//!
//! What it is not: no transport (gRPC and HTTP live in `merklog-server`), no RocksDB
//! (`merklog-store`), no tree math or signing formats of its own (`merklog-merkle`,
//! `merklog-note`), and no witness collection yet: the stage between "durable" and
//! "published" is an internal trait that issue 6 fills in.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod handle;
pub mod metrics;
mod queue;
mod sequencer;
mod storage;
mod tiles;

pub use config::{LogConfig, MAX_ENTRY_BYTES_HARD_CAP};
pub use error::{LogError, StorageError};
pub use handle::{AppendReceipt, Log, MAX_ENTRIES_PER_READ, PublishedCheckpoint, SealedEntry};
pub use merklog_merkle::Hash;
pub use storage::{ALGORITHM_ED25519, LogMetadata, LogStore, MemoryStore, RoundWrite, TileKey};
