//! The store's error type.

use std::path::PathBuf;

/// Why the store could not be opened or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (or another open handle in this process) holds the database.
    #[error("data directory {} is in use by another process (RocksDB LOCK held); stop it first", path.display())]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The stored metadata differs from what the caller expects.
    #[error(
        "the data directory belongs to another log: stored {field} is {stored:?}, given {given:?}"
    )]
    MetadataMismatch {
        /// Which record differs (`origin`, `verifier_key`, `algorithm`).
        field: &'static str,
        /// The stored value.
        stored: String,
        /// The value given.
        given: String,
    },
    /// The data directory was written by an incompatible version.
    #[error("unsupported storage format version {found} (this build reads version {supported})")]
    UnsupportedFormat {
        /// The stored version.
        found: u32,
        /// The version this build writes.
        supported: u32,
    },
    /// Stored data is malformed.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The data directory could not be created.
    #[error("cannot create data directory {}: {message}", path.display())]
    Io {
        /// The data directory.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// Any other RocksDB error.
    #[error("rocksdb: {0}")]
    RocksDb(String),
}

impl From<rocksdb::Error> for StoreError {
    fn from(error: rocksdb::Error) -> Self {
        if error.kind() == rocksdb::ErrorKind::Corruption {
            return StoreError::Corrupt(error.into_string());
        }
        StoreError::RocksDb(error.into_string())
    }
}
