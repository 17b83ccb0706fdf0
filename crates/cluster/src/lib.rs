//! # merklog-cluster
//!
//! Cluster mode for merklogd: the log's tiles, entry bundles and public checkpoint in
//! object storage (C2SP tlog-tiles paths, so the bucket alone is a complete static
//! tlog-tiles log), and a fenced commit per round in the style of Sunlight: stage the
//! round's objects create-only, compare-and-swap the signed checkpoint in a lock
//! backend, and only then upload the tiles and the public checkpoint. A lost swap
//! means another sequencer signed: this one stops signing for good.
//!
//! What it is:
//! - [`Bucket`]: the object store (S3 and S3-compatible, the local filesystem) with
//!   create-only puts that treat identical bytes as success and different bytes as a
//!   [`ClusterError::Conflict`].
//! - [`LockBackend`] with [`ObjectStoreLock`] (conditional update in the bucket) and
//!   [`EtcdLock`] (etcd's v3 JSON gateway), and [`self_test`], which refuses a backend
//!   that ignores conditions.
//! - [`ClusterStore`]: the fenced commit, a `LogStore` around the node's local store
//!   (its cache), and the start-up reconciliation of cache, lock and bucket; its
//!   module documentation says what is durable after each step of a round.
//! - [`Election`]: leader election through an etcd lease; [`Leadership`] is this
//!   node's term, which the etcd lock's swap and the store's commits check.
//! - [`staging`]: the staging bundle that lets a new sequencer finish a round whose
//!   swap landed but whose uploads did not.
//!
//! What it is not: no sequencing or signing (`merklog-log`), no RocksDB
//! (`merklog-store`; the local cache is any `LogStore`), no transport of its own
//! beyond the object store and the etcd HTTP gateway. Only merklogd depends on it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bucket;
pub mod election;
mod error;
pub mod etcd;
pub mod fenced;
mod gateway;
pub mod lock;
pub mod staging;

pub use bucket::Bucket;
pub use election::{Campaign, Election, Leadership};
pub use error::ClusterError;
pub use etcd::EtcdLock;
pub use fenced::{ClusterOptions, ClusterStore, Reconciled, follow};
pub use lock::{LockBackend, Locked, ObjectStoreLock, SwapError, Version, self_test};
