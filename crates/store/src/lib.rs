//! # merklog-store
//!
//! RocksDB storage for a merklog log: the implementation of `merklog_log::LogStore`.
//! One integration round is one atomic `WriteBatch` written with `sync = true`; proof
//! and tile reads are batched multi-gets; recovery itself lives in `merklog-log`, which
//! rebuilds its state from the O(log n) tiles this crate returns.
//!
//! What it is not: no tree math (merklog-merkle), no sequencing or signing
//! (merklog-log), no transport. It stores values; it does not interpret them.
//!
//! ## Layout (C2SP tlog-tiles shaped)
//!
//! Seven column families. Every key starts with the log id, a big-endian `u32` (0 for
//! now), so one database can later hold several logs; integers are big-endian so key
//! order is numeric order.
//!
//! | column family | key                                   | value |
//! |---------------|---------------------------------------|-------|
//! | `meta`        | log id ‖ `format_version`             | `u32` BE, [`FORMAT_VERSION`] |
//! | `meta`        | log id ‖ `origin`                     | UTF-8 checkpoint origin |
//! | `meta`        | log id ‖ `verifier_key`               | the log's signed-note vkey text |
//! | `meta`        | log id ‖ `algorithm`                  | `ed25519` |
//! | `tiles`       | log id ‖ tile level (`u8`) ‖ tile index (`u64` BE) | 1 to 256 hashes of 32 bytes: tile level L holds Merkle level 8L hashes `[256·index, …)` |
//! | `entries`     | log id ‖ bundle index (`u64` BE)      | tlog-tiles entry bundle: up to 256 × (`u16` BE length ‖ entry) |
//! | `dedup`       | log id ‖ leaf hash (32 bytes)         | leaf index, `u64` BE |
//! | `checkpoints` | log id ‖ tree size (`u64` BE)         | signed checkpoint note bytes |
//! | `checkpoints` | log id ‖ `latest`                     | the latest signed checkpoint (same bytes as its size key) |
//! | `checkpoints` | log id ‖ `published`                  | with a witness policy: the last published checkpoint, cosigned |
//! | `keys`        | log id ‖ the caller's unique key       | `merklog_log::KeyRecord`: leaf index (`u64` BE) ‖ leaf hash (32) ‖ recorded at, Unix ms (`u64` BE) |
//! | `terms`       | log id ‖ term ‖ `0x00` ‖ time, Unix ms (`u64` BE) ‖ leaf hash (32) | `merklog_log::KeyRecord`, as in `keys` |
//!
//! A tile or bundle at the right edge is stored partial and grows every round; each
//! stored value is a prefix of the next, so every published size is served by
//! truncating the value to that size's width. Keys per entry: one dedup row (and one
//! `keys` row for an entry the caller gave a unique key, one `terms` row per index
//! term it was given); everything
//! else is amortised over 256 entries (plus one checkpoint per round).
//!
//! ## The right edge is append-only (format version 2)
//!
//! A round does not rewrite the partial tiles and the partial bundle: the log hands
//! over only their new bytes (`merklog_log::ValueWrite::Append`), stored as merge
//! operands of an append operator registered on `tiles` and `entries`, and reads
//! (gets, multi-gets) see the concatenation; flushes and compactions merge a key's
//! operands into one value. The round that fills a tile or bundle hands over its last
//! bytes the same way (a put of the whole would store each entry twice); a tile or
//! bundle that starts in a round is put whole. All of it goes into the round's single
//! synced batch, so a crash leaves each key at its value before or after the round.
//! Version-1 directories (whole values only) open unchanged and are marked version 2.
//!
//! The metadata is written once, at creation, with a synced write
//! ([`RocksStore::initialize`]), and checked at every open: a different origin, key or
//! algorithm is refused ([`StoreError::MetadataMismatch`]), as is another format version.
//!
//! ## Tuning
//!
//! WAL on, synced per round; bloom filters (10 bits/key, also in the memtable) on
//! `dedup`, where most lookups miss; no compression for `tiles` and `dedup` (hashes do
//! not compress), LZ4 for `entries` and `checkpoints`; a shared LRU block cache with
//! index and filter blocks cached, except `dedup`'s, which its table readers hold
//! outside the cache so that every round's dedup lookup probes them without cache
//! traffic or eviction (about 10 bits per entry of memory); 32 MiB memtables per column
//! family under a 256 MiB total; two background jobs (two cores).
//!
//! ## Maintenance
//!
//! [`backup`] copies a data directory that a server holds open (a secondary
//! instance, see its docs); [`RocksStore::open_read_only`] opens one for offline
//! checks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod edge;
mod error;
pub mod keys;
mod maintenance;
mod rocks;

pub use error::StoreError;
pub use maintenance::{BackupSummary, backup};
pub use rocks::{FORMAT_VERSION, RocksStore, StoreOptions};
