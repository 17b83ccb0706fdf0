//! The crate's one error type.

/// Everything cluster mode can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The bucket URL or the lock backend address cannot be used.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// An object store request failed (network, permissions, a missing object that
    /// must exist).
    #[error("object store: {0}")]
    ObjectStore(String),
    /// A create-only object already holds different bytes: two writers disagree about
    /// the log's content at this path. An alarm, never retried.
    #[error("{path} already holds different bytes (stored sha256 {stored}, new sha256 {new})")]
    Conflict {
        /// The object's path in the bucket.
        path: String,
        /// SHA-256 (hex) of the bytes found in the bucket.
        stored: String,
        /// SHA-256 (hex) of the bytes this writer tried to put.
        new: String,
    },
    /// The lock backend failed (network, malformed answer); the swap's outcome is
    /// unknown unless a later load tells.
    #[error("lock backend: {0}")]
    Lock(String),
    /// The compare-and-swap on the checkpoint lost: another sequencer moved the lock.
    #[error("lost the checkpoint lock: {0}")]
    Lost(String),
    /// The lock backend's start-up self-test failed: it ignores conditions (or cannot
    /// evaluate them), so it cannot fence a second sequencer.
    #[error("lock backend refused by the self-test: {0}")]
    SelfTest(String),
    /// The bucket, the lock and the local cache disagree in a way that signing would
    /// turn into a fork.
    #[error("cluster state refused: {0}")]
    Refused(String),
    /// The local cache (the log's storage) failed.
    #[error("local cache: {0}")]
    Cache(String),
    /// A staging bundle or stored object is malformed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which object.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<merklog_log::StorageError> for ClusterError {
    fn from(error: merklog_log::StorageError) -> Self {
        ClusterError::Cache(error.0)
    }
}
