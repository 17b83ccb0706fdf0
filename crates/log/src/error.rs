//! The log's error type and the storage error its [`LogStore`](crate::LogStore) trait returns.

/// A failure reported by a [`LogStore`](crate::LogStore) implementation.
///
/// It carries the backend's message (for example RocksDB's); the log maps it to
/// [`LogError::Storage`] on reads and to [`LogError::Unavailable`] for a failed round.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String, pub StorageErrorKind);

/// What kind of failure a [`StorageError`] is: it decides whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// Any failure a retry or an operator freeing resources may cure (I/O, space).
    #[default]
    Other,
    /// The backend found stored bytes damaged (a checksum mismatch): data is lost
    /// and no retry brings it back. The log maps it to [`LogError::DataLoss`].
    Corruption,
}

impl StorageError {
    /// Wraps any displayable backend error.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into(), StorageErrorKind::Other)
    }

    /// A failure where the backend found stored bytes damaged.
    pub fn corruption(message: impl Into<String>) -> Self {
        Self(message.into(), StorageErrorKind::Corruption)
    }

    /// True when stored bytes were found damaged.
    pub fn is_corruption(&self) -> bool {
        self.1 == StorageErrorKind::Corruption
    }
}

/// Everything the log can answer instead of a result.
///
/// The server maps: `QueueFull` -> RESOURCE_EXHAUSTED; `InvalidEntry`, `TooManyEntries`
/// and `CallTooLarge` -> INVALID_ARGUMENT; `OutOfRange` -> OUT_OF_RANGE; `NotFound` ->
/// NOT_FOUND; `Unavailable`, `ShuttingDown`, `Storage` -> UNAVAILABLE; `DataLoss` -> DATA_LOSS;
/// `SigningRefused` -> FAILED_PRECONDITION (or UNAVAILABLE); `KeyConflict` -> ALREADY_EXISTS;
/// `QuorumTimeout` -> DEADLINE_EXCEEDED (or
/// UNAVAILABLE); `Recovery` and `InvalidConfig` only come
/// from [`Log::open`](crate::Log::open).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The sequencer queue is full (entries or bytes); retry later. Never blocks.
    #[error("the append queue is full; retry later")]
    QueueFull,
    /// An entry of the call is invalid; the whole call was rejected, nothing written.
    #[error("entries[{index}]: {reason}")]
    InvalidEntry {
        /// Position of the first bad entry in the call.
        index: usize,
        /// What is wrong, naming the limit.
        reason: String,
    },
    /// The call holds more entries than one call may carry.
    #[error("the call has {count} entries, the limit is {limit} per call")]
    TooManyEntries {
        /// Entries in the call.
        count: usize,
        /// The per-call limit (`LogConfig::max_batch_entries`).
        limit: usize,
    },
    /// The call's entries add up to more bytes than the whole queue may hold, so it
    /// could never be accepted.
    #[error("the call holds {bytes} bytes of entries, the limit is {limit} per call")]
    CallTooLarge {
        /// Entry bytes in the call.
        bytes: usize,
        /// The per-call limit (`LogConfig::queue_capacity_bytes`).
        limit: usize,
    },
    /// An index, size or range lies beyond what is published (or is malformed).
    #[error("out of range: {reason}")]
    OutOfRange {
        /// Which value and which bound, e.g. "index 10 is not below tree size 7".
        reason: String,
    },
    /// The requested item (a leaf hash, a checkpoint size) is not in the log.
    #[error("not found")]
    NotFound,
    /// The round holding this call failed to become durable; nothing of it was
    /// acknowledged. Retrying is safe (dedup makes it idempotent).
    #[error("log unavailable: {0}")]
    Unavailable(String),
    /// The log refuses to sign: stored data does not re-derive the stored root, or a
    /// witness has cosigned a size larger than the log's latest durable checkpoint (an
    /// old data directory; signing would fork the log), or witnesses that refuse this
    /// log (frozen after a fork, or repeating a 4xx) leave no quorum; the message names
    /// them and their answers. Fail closed: reads are still served. Retrying cannot
    /// help until an operator acts.
    #[error("the log refuses to sign: {0}")]
    SigningRefused(String),
    /// With a witness policy: no checkpoint covering the call's entries met the witness
    /// quorum within `LogConfig::append_timeout`. The entries are (or will be) durable
    /// and are published once witnesses cosign; retrying returns the same indexes
    /// (dedup). The server maps it to DEADLINE_EXCEEDED or UNAVAILABLE.
    #[error("waiting for witness quorum: {0}")]
    QuorumTimeout(String),
    /// An entry's unique key is already held by a different entry (or by an earlier
    /// entry of the same call): the whole call was refused, nothing of it written.
    #[error("entries[{index}]: its unique key is already held by {}", describe_holder(*existing_index))]
    KeyConflict {
        /// Position of the conflicting entry in the call.
        index: usize,
        /// Index of the leaf holding the key; `None` when the holder is an earlier
        /// entry of the same call.
        existing_index: Option<u64>,
    },
    /// The log is shutting down; the call was not sequenced.
    #[error("the log is shutting down")]
    ShuttingDown,
    /// A storage read failed or returned malformed data.
    #[error("storage error: {0}")]
    Storage(String),
    /// The store found stored bytes damaged (a checksum mismatch): that data is lost,
    /// and no retry brings it back. The server maps it to DATA_LOSS and stops
    /// reporting itself healthy; restore the data directory from a backup.
    #[error("stored data is damaged: {0}")]
    DataLoss(String),
    /// `Log::open` refused the stored state (bad signature, other origin or key,
    /// missing metadata).
    #[error("recovery refused: {0}")]
    Recovery(String),
    /// The configuration is unusable (e.g. `max_entry_bytes` above 65535).
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
}

fn describe_holder(existing: Option<u64>) -> String {
    match existing {
        Some(index) => format!("leaf {index}"),
        None => "an earlier entry of the same call".to_owned(),
    }
}

impl From<StorageError> for LogError {
    fn from(error: StorageError) -> Self {
        if error.is_corruption() {
            LogError::DataLoss(error.0)
        } else {
            LogError::Storage(error.0)
        }
    }
}
