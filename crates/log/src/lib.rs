//! # merklog-log
//!
//! The sequencer of a merklog transparency log: callers submit entries through a
//! bounded queue; a sequencer thread integrates them in rounds (group commit) and
//! signs one checkpoint per round; the round is made durable with one synced write (by
//! a writer thread while the next round is prepared, or, for a small round while the
//! writer is idle, by the sequencer thread itself), then the log
//! publishes the checkpoint (with a witness policy: once witnesses cosigned it) and
//! answers every caller with its index and an inclusion proof against a published
//! checkpoint covering it ("acknowledged means sealed").
//!
//! What it is:
//! - [`Log`]: the handle the server uses ([`Log::append`], proofs, entries, tiles,
//!   checkpoints, [`Log::subscribe`]); reads go straight to storage on blocking
//!   threads, bounded by the published size.
//! - [`LogStore`]: the storage trait, tile-shaped after C2SP tlog-tiles (hash tiles and
//!   entry bundles of 256 as values, a dedup index, checkpoints by size). The
//!   `merklog-store` crate implements it with RocksDB; [`MemoryStore`] is an in-memory
//!   implementation for tests.
//! - The round order of `docs/durability.md` (steps 1 to 9): batch, dedup (one
//!   multi-get), assign indexes, extend the sequencer's tip (the compact range, RFC 6962
//!   / RFC 9162 section 2.1) in place, sign a C2SP tlog-checkpoint, one synced write,
//!   mark it durable, publish, answer; steps 6 to 9 of round N overlap steps 1 to 5 of
//!   round N+1, and a failed write makes the sequencer reload its tip from disk.
//!   The code cites the step numbers; the document says what is durable after each
//!   step and what recovery does if the process dies right after it.
//! - Recovery on open: the latest checkpoint's signature and origin are checked, the
//!   compact range is rebuilt from O(log n) stored tiles and its root compared with
//!   the checkpoint's in constant time; on mismatch the log serves reads and refuses
//!   to sign (fail closed).
//! - Witness collection ([`Witnessing`], set in [`LogConfig::witnessing`] from a C2SP
//!   tlog-policy): off the round loop, each witness is sent only the latest durable
//!   checkpoint (C2SP tlog-witness `add-checkpoint`, one request in flight per witness,
//!   latest wins) from its known size with an RFC 9162 consistency proof; a 409 teaches
//!   the witness's size and is retried once from it, a 409 naming the size just sent is
//!   a conflict. Cosignatures (C2SP tlog-cosignature) are verified with the policy's
//!   keys; once the policy's quorum cosigned a checkpoint it is stored with its
//!   cosignatures (synced) and published, or, if configured to fail open, published
//!   without them after a timeout. Until then everything public keeps showing the
//!   previous published checkpoint, and each caller is answered with the first
//!   published checkpoint covering its entries (proofs against that size). While idle
//!   the latest checkpoint is re-sent (`old N` = N). At start the witnesses' sizes are
//!   asked for (`old 0`) before anything new is signed; a witness ahead of the log's
//!   latest durable checkpoint (an old data directory) makes the log refuse to sign.
//!   A witness that refuses the log for good (it says the log is frozen or forked, or
//!   repeats a 4xx [`Witnessing::refusal_limit`] times) is not treated as an outage:
//!   while the others cannot meet the quorum the log refuses to sign, naming the
//!   witnesses and their answers, until one of them cosigns again.
//!   The transport is the [`WitnessClient`] trait.
//! - Unique keys ([`Log::append_keyed`], [`KeyRecord`]): an optional opaque key per
//!   entry that at most one leaf may hold; a different entry under a held key refuses
//!   its call. The key rows go into the round's synced write.
//! - Index terms ([`Log::append_indexed`], [`IndexTerm`]): zero or more opaque terms
//!   per entry, each filed at a time; the rows go into the round's synced write, and
//!   [`Log::scan_terms`] reads one term's rows by time window.
//! - Metrics through the `metrics` facade (names in [`metrics`]).
//!
//! What it is not: no transport (gRPC, HTTP and the witness HTTP client live in
//! `merklog-server`), no RocksDB (`merklog-store`), no tree math or signing formats of
//! its own (`merklog-merkle`, `merklog-note`), and no witness itself (`merklog-witness`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checkpoint;
mod collector;
mod config;
mod error;
mod filter;
mod follower;
mod handle;
pub mod metrics;
mod proofs;
mod publish;
mod query;
mod queue;
mod recovery;
mod round;
mod sequencer;
mod state;
mod storage;
mod terms;
mod tiles;
mod unique;
mod witness_task;
mod witnessing;
mod writer;

pub use config::{DEFAULT_APPEND_TIMEOUT, LogConfig, MAX_ENTRY_BYTES_HARD_CAP};
pub use error::{LogError, StorageError, StorageErrorKind};
pub use handle::{Log, MAX_ENTRIES_PER_READ};
pub use merklog_merkle::Hash;
pub use merklog_note::SignedCheckpoint;
pub use round::{AppendReceipt, SealedEntry};
pub use storage::{
    ALGORITHM_ED25519, KEY_RECORD_LEN, KeyRecord, LogMetadata, LogStore, MemoryStore, RoundWrite,
    ValueWrite, same_checkpoint_body,
};
pub use terms::{IndexTerm, MAX_TERM_LEN, TermHit, parse_term_key, term_key, term_range};
pub use witnessing::{
    DEFAULT_WITNESS_REFUSAL_LIMIT, DEFAULT_WITNESS_REQUEST_TIMEOUT,
    DEFAULT_WITNESS_RESEND_INTERVAL, WitnessClient, WitnessReply, WitnessRequest, Witnessing,
};
