//! The witness's error type and its mapping onto tlog-witness HTTP status codes.

use std::path::PathBuf;

use axum::http::StatusCode;
use merklog_merkle::{Hash, MerkleError};
use merklog_note::NoteError;

/// Everything that can go wrong in the witness. Variants that answer an
/// `add-checkpoint` request map to the spec's status codes through
/// [`WitnessError::status`].
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    // ---- 400: malformed request ----
    /// The request body exceeds the size cap.
    #[error("request body larger than {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The body breaks the tlog-witness grammar (old size line, proof lines, the
    /// empty line, a checkpoint).
    #[error(transparent)]
    MalformedBody(NoteError),
    /// The checkpoint is not a well-formed signed note or checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(#[source] NoteError),
    /// The old size is larger than the checkpoint's size.
    #[error("old size {old_size} is larger than the checkpoint size {checkpoint_size}")]
    OldSizeAfterCheckpoint {
        /// The request's old size.
        old_size: u64,
        /// The submitted checkpoint's size.
        checkpoint_size: u64,
    },

    // ---- 403 / 404 ----
    /// No trusted signature, or a trusted key's signature failed to verify.
    #[error("checkpoint for {origin:?} is not validly signed by a trusted key: {source}")]
    Unauthorized {
        /// The checkpoint's origin.
        origin: String,
        /// Why the note verifier refused it.
        #[source]
        source: NoteError,
    },
    /// The origin is not configured.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),

    // ---- 409 ----
    /// The old size differs from the stored size.
    #[error("old size {old_size} does not match the latest cosigned size {stored_size}")]
    SizeConflict {
        /// The request's old size.
        old_size: u64,
        /// The size of the latest checkpoint the witness cosigned (0 if none).
        stored_size: u64,
    },

    // ---- 422 ----
    /// A size-0 checkpoint whose root is not SHA-256("").
    #[error("size-0 checkpoint root {root} is not the empty tree root")]
    EmptyTreeRootMismatch {
        /// The root the checkpoint carries.
        root: Hash,
    },
    /// `old 0` came with a non-empty proof.
    #[error("old size 0 takes an empty proof, got {lines} line(s)")]
    ProofWithOldZero {
        /// Number of proof lines sent.
        lines: usize,
    },
    /// The consistency proof does not verify.
    #[error("consistency proof from {old_size} to {new_size} does not verify: {source}")]
    InconsistentProof {
        /// The stored (old) size.
        old_size: u64,
        /// The checkpoint's size.
        new_size: u64,
        /// The Merkle verifier's evidence (expected vs computed roots, lengths).
        #[source]
        source: MerkleError,
    },
    /// Two validly signed checkpoints with one size and different roots.
    #[error(
        "fork: {origin:?} signed size {size} with root {cosigned_root} (cosigned) and root {new_root} (new)"
    )]
    ForkDetected {
        /// The log's origin.
        origin: String,
        /// The common size.
        size: u64,
        /// The root of the checkpoint the witness cosigned.
        cosigned_root: Hash,
        /// The conflicting root.
        new_root: Hash,
    },
    /// The log is frozen after a fork; nothing is cosigned until an operator acts.
    #[error("log {origin:?} is frozen after a detected fork: {reason}")]
    Frozen {
        /// The log's origin.
        origin: String,
        /// The reason recorded in the FROZEN marker.
        reason: String,
    },

    // ---- 503 ----
    /// Persisting this log's state failed earlier; it is refused until a restart.
    #[error("log {origin:?} is disabled after a storage failure; restart the witness")]
    StorageFailed {
        /// The log's origin.
        origin: String,
    },

    // ---- 500 and startup ----
    /// A file system operation failed.
    #[error("storage error at {path}: {source}")]
    Storage {
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Stored state is unreadable or belongs elsewhere; the witness refuses to start.
    #[error("corrupt witness state at {path}: {reason}")]
    CorruptState {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A key or signing operation failed.
    #[error("key error: {0}")]
    Key(#[source] NoteError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The system clock is unusable for cosignature timestamps.
    #[error("system clock is before the Unix epoch or out of range")]
    Clock,
    /// An internal task failed (panicked or was cancelled).
    #[error("internal task failed: {0}")]
    Task(String),
    /// Pull mode: a followed log could not be reached or sent something unusable.
    /// Only logged and counted (never an HTTP answer).
    #[error("following {origin:?}: {reason}")]
    Follow {
        /// The followed log's origin.
        origin: String,
        /// What went wrong, with the log's status or the bad field.
        reason: String,
    },
    /// The HTTP server failed.
    #[error("HTTP server error: {0}")]
    Serve(#[source] std::io::Error),
}

impl WitnessError {
    /// The HTTP status code an `add-checkpoint` answer with this error carries.
    pub fn status(&self) -> StatusCode {
        use WitnessError::*;
        match self {
            TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            MalformedBody(_) | MalformedCheckpoint(_) | OldSizeAfterCheckpoint { .. } => {
                StatusCode::BAD_REQUEST
            }
            Unauthorized { .. } => StatusCode::FORBIDDEN,
            UnknownOrigin(_) => StatusCode::NOT_FOUND,
            SizeConflict { .. } => StatusCode::CONFLICT,
            EmptyTreeRootMismatch { .. }
            | ProofWithOldZero { .. }
            | InconsistentProof { .. }
            | ForkDetected { .. }
            | Frozen { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            StorageFailed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Storage { .. }
            | CorruptState { .. }
            | Key(_)
            | Config(_)
            | Clock
            | Task(_)
            | Follow { .. }
            | Serve(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
