//! The crate's error type. Verification failures carry their evidence.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use merklog_merkle::{Hash, MerkleError};
use merklog_note::NoteError;
use serde::Serialize;

use crate::SignedCheckpoint;
use crate::encoding::b64;

/// An error and its sources, `: `-separated (transport errors hide the useful
/// part, such as "Connection refused", in their source).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Bounded: a source chain is short, but never trust it to end.
    for _ in 0..8 {
        let Some(next) = source else { break };
        let next_text = next.to_string();
        if !text.contains(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        source = next.source();
    }
    text
}

/// The gRPC name of a status code (`UNAVAILABLE`), as the gRPC specification
/// writes it; tonic's own text is a sentence that hides the code.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A duration for people, to the millisecond (`1m 42s 7ms`).
pub(crate) fn human_duration(duration: Duration) -> String {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(millis)).to_string()
}

/// A status for people: its code name and its message, with the transport
/// error behind it when the message alone would not say what happened.
fn status_text(status: &tonic::Status) -> String {
    let mut text = format!("{}: {}", code_name(status.code()), status.message());
    if let Some(source) = std::error::Error::source(status) {
        let source = chain(source);
        if !text.contains(&source) {
            text.push_str(": ");
            text.push_str(&source);
        }
    }
    text
}

/// Why two checkpoints of one log cannot both be honest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InconsistencyKind {
    /// The log's latest checkpoint is smaller than one verified before: the log
    /// was rolled back (or is showing this client an older view).
    Rollback,
    /// Two different roots for one tree size: a split view.
    Fork,
    /// The consistency proof between the two checkpoints does not verify.
    BadProof(MerkleError),
    /// The entries served between the two sizes, appended to the older tree, do
    /// not produce the newer root.
    EntriesMismatch {
        /// The root the served entries lead to.
        computed: Hash,
    },
}

/// Evidence that a log broke its append-only promise: both signed checkpoints
/// and the proof the server offered (empty when none applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconsistency {
    /// What is wrong.
    pub kind: InconsistencyKind,
    /// The checkpoint verified first (from this session or the state file).
    pub old: SignedCheckpoint,
    /// The checkpoint that contradicts it.
    pub new: SignedCheckpoint,
    /// The consistency proof from `old` to `new`, as served.
    pub proof: Vec<Hash>,
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (old, new) = (&self.old, &self.new);
        match &self.kind {
            InconsistencyKind::Rollback => write!(
                f,
                "rollback: the log's latest checkpoint has size {}, but size {} was verified before",
                new.size().0,
                old.size().0
            ),
            InconsistencyKind::Fork => write!(
                f,
                "fork: two signed roots for size {}: {} (verified before) and {}",
                new.size().0,
                old.root(),
                new.root()
            ),
            InconsistencyKind::BadProof(e) => write!(
                f,
                "the checkpoint of size {} is not consistent with the one of size {}: {e}",
                new.size().0,
                old.size().0
            ),
            InconsistencyKind::EntriesMismatch { computed } => write!(
                f,
                "the entries served for [{}, {}) lead to root {}, not the signed root {}",
                old.size().0,
                new.size().0,
                computed,
                new.root()
            ),
        }
    }
}

/// An inclusion proof that does not bind an entry to its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionFailure {
    /// The entry's index.
    pub index: u64,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
    /// The proof, as served.
    pub proof: Vec<Hash>,
    /// The checkpoint the proof was checked against.
    pub checkpoint: SignedCheckpoint,
    /// Why it failed.
    pub source: MerkleError,
}

/// Entries that do not rebuild the signed root of an audited checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditMismatch {
    /// The signed checkpoint audited.
    pub checkpoint: SignedCheckpoint,
    /// The root the downloaded entries lead to.
    pub computed: Hash,
    /// The first entry (by index) that is not the one the signed tree holds, as
    /// located with the server's consistency proofs; `None` if it could not be
    /// located.
    pub first_bad_index: Option<u64>,
    /// The downloaded entry at that index.
    pub entry: Option<Bytes>,
}

/// Everything that can go wrong. Use [`ClientError::is_verification_failure`] to
/// tell a server caught misbehaving from a local or network problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    // ---- local, usage and network problems ----
    /// The server address is not usable.
    #[error("invalid server address {url:?}: {reason}")]
    BadUrl {
        /// The address given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The connection to the server failed.
    #[error("cannot connect to {url}: {}", chain(source))]
    Connect {
        /// The server address.
        url: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
    /// `merklog fsck` found a bad tile, entry bundle or root (the message names it).
    #[error("{0}")]
    Fsck(String),
    /// The tiles HTTP server could not be asked (unreachable, or an unexpected answer).
    #[error("{url}: {reason}")]
    Tiles {
        /// The URL fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server's health service answered something other than SERVING.
    #[error("{server} is not serving: its health service answers {status}")]
    NotServing {
        /// The server address.
        server: String,
        /// The answer, e.g. `NOT_SERVING`.
        status: &'static str,
    },
    /// A call failed with a gRPC status (the server refused or could not answer).
    #[error("{rpc}: {}", status_text(status))]
    Rpc {
        /// The method called.
        rpc: &'static str,
        /// The status returned.
        status: Box<tonic::Status>,
    },
    /// A call kept failing with a transient status until the retry budget
    /// (`--retries`, `--retry-for`) ran out.
    #[error(
        "{rpc}: {} (gave up after {attempts} attempts over {}; raise --retries or --retry-for to wait longer)",
        status_text(status),
        human_duration(*elapsed)
    )]
    RetriesExhausted {
        /// The method called.
        rpc: &'static str,
        /// How many times it was sent.
        attempts: u32,
        /// From the first attempt to giving up.
        elapsed: Duration,
        /// The last status returned.
        status: Box<tonic::Status>,
    },
    /// The server accepted the connection but did not answer in time.
    #[error(
        "{rpc}: no answer from {server} within {} (--timeout): it accepted the connection but \
         did not answer; check that --server names the log's gRPC port (default 7800)",
        human_duration(*after)
    )]
    Timeout {
        /// The method called.
        rpc: &'static str,
        /// The server address.
        server: String,
        /// The limit that passed.
        after: Duration,
    },
    /// The server answered, but not as a gRPC log server: the address is another
    /// service, such as merklogd's tlog-tiles or metrics port.
    #[error("{rpc}: {server} is not merklogd's gRPC port: {what}")]
    WrongService {
        /// The method called.
        rpc: &'static str,
        /// The server address.
        server: String,
        /// What answered instead, and where the gRPC port usually is.
        what: String,
    },
    /// The configured log key does not belong to the log the server serves.
    #[error("{0}")]
    WrongKey(String),
    /// A local file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A local file operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file is unreadable or belongs to another key.
    #[error("state file {}: {reason}", .path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Invalid input from the user (a bad hash, an oversize entry, a bad key).
    #[error("{0}")]
    Input(String),

    // ---- verification failures: the server (or a proof) is not to be trusted ----
    /// An evidence pack failed a check: the file and the check are named.
    #[error("evidence pack: {file}: {check}: {reason}")]
    Evidence {
        /// The pack's file (path inside the pack) that failed.
        file: String,
        /// The check that failed.
        check: &'static str,
        /// Why.
        reason: String,
    },
    /// A checkpoint's signature, origin or witness quorum did not verify.
    #[error("checkpoint rejected: {source}")]
    Checkpoint {
        /// Why.
        source: Box<NoteError>,
        /// The note as received.
        note: Bytes,
    },
    /// A checkpoint message contradicts itself: its unsigned fields differ from
    /// the signed note, or a signed size-0 tree has a root other than SHA-256("").
    #[error("checkpoint rejected: {reason}")]
    CheckpointContradiction {
        /// What contradicts what.
        reason: String,
        /// The signed note as received.
        note: Bytes,
    },
    /// The server's answer is malformed or contradicts itself.
    #[error("invalid answer from the server: {0}")]
    Malformed(String),
    /// An inclusion proof does not verify.
    #[error(
        "inclusion proof of entry {} rejected: {}",
        .0.index,
        .0.source
    )]
    Inclusion(Box<InclusionFailure>),
    /// Two checkpoints of the log contradict each other.
    #[error("log inconsistency: {0}")]
    Inconsistent(Box<Inconsistency>),
    /// An offline proof file does not verify.
    #[error("proof rejected: {0}")]
    Proof(Box<NoteError>),
    /// An event the log served for a source does not verify (its envelope is
    /// malformed, names another number, or its signature fails under the key).
    #[error("event {sequence} as served by the log does not verify: {reason}")]
    BadEvent {
        /// The number the log served it under.
        sequence: u64,
        /// Why it does not verify.
        reason: String,
    },
    /// A source's audit found missing numbers, equivocations or silences.
    #[error("source {source_name:?} is not complete: {findings}")]
    Incomplete {
        /// The source audited.
        source_name: String,
        /// The findings, in one line.
        findings: String,
    },
    /// The log's entries do not rebuild its signed root.
    #[error(
        "audit failed: the entries lead to root {}, not the signed root {}{}",
        .0.computed,
        .0.checkpoint.root(),
        .0.first_bad_index.map(|i| format!("; first bad entry: {i}")).unwrap_or_default()
    )]
    Audit(Box<AuditMismatch>),
}

impl ClientError {
    /// True when the error means the server, a checkpoint or a proof failed
    /// verification (the CLI exits with 1), as opposed to a usage, I/O or
    /// network problem (exit 2).
    pub fn is_verification_failure(&self) -> bool {
        // A key of another log is a configuration mistake, not a log caught lying.
        matches!(
            self,
            ClientError::Checkpoint { .. }
                | ClientError::CheckpointContradiction { .. }
                | ClientError::Malformed(_)
                | ClientError::Inclusion(_)
                | ClientError::Inconsistent(_)
                | ClientError::Proof(_)
                | ClientError::Audit(_)
                | ClientError::Fsck(_)
                | ClientError::BadEvent { .. }
                | ClientError::Incomplete { .. }
                | ClientError::Evidence { .. }
        )
    }

    pub(crate) fn rpc(rpc: &'static str, status: tonic::Status) -> Self {
        ClientError::Rpc {
            rpc,
            status: Box::new(status),
        }
    }

    pub(crate) fn inconsistent(
        kind: InconsistencyKind,
        old: &SignedCheckpoint,
        new: &SignedCheckpoint,
        proof: Vec<Hash>,
    ) -> Self {
        ClientError::Inconsistent(Box::new(Inconsistency {
            kind,
            old: old.clone(),
            new: new.clone(),
            proof,
        }))
    }

    /// The evidence behind a verification failure, for people and scripts.
    pub fn evidence(&self) -> Option<Evidence> {
        let evidence = match self {
            ClientError::Checkpoint { note, .. }
            | ClientError::CheckpointContradiction { note, .. } => Evidence {
                checkpoints: vec![String::from_utf8_lossy(note).into_owned()],
                ..Evidence::default()
            },
            ClientError::Inclusion(failure) => Evidence {
                checkpoints: vec![failure.checkpoint.note_text()],
                proof: failure.proof.iter().map(|h| b64(h.as_bytes())).collect(),
                index: Some(failure.index),
                leaf_hash: Some(failure.leaf_hash.to_string()),
                ..Evidence::default()
            },
            ClientError::Inconsistent(inconsistency) => Evidence {
                checkpoints: vec![inconsistency.old.note_text(), inconsistency.new.note_text()],
                proof: inconsistency
                    .proof
                    .iter()
                    .map(|h| b64(h.as_bytes()))
                    .collect(),
                computed_root: match &inconsistency.kind {
                    InconsistencyKind::EntriesMismatch { computed } => Some(computed.to_string()),
                    InconsistencyKind::BadProof(
                        MerkleError::ConsistencyNewRootMismatch { computed, .. }
                        | MerkleError::ConsistencyOldRootMismatch { computed, .. },
                    ) => Some(computed.to_string()),
                    _ => None,
                },
                ..Evidence::default()
            },
            ClientError::Audit(mismatch) => Evidence {
                checkpoints: vec![mismatch.checkpoint.note_text()],
                index: mismatch.first_bad_index,
                leaf_hash: mismatch
                    .entry
                    .as_ref()
                    .map(|e| merklog_merkle::hash_leaf(e).to_string()),
                computed_root: Some(mismatch.computed.to_string()),
                ..Evidence::default()
            },
            _ => return None,
        };
        Some(evidence)
    }
}

/// Evidence of a verification failure, in text form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The signed checkpoint notes involved, oldest first, verbatim.
    pub checkpoints: Vec<String>,
    /// The proof hashes the server sent, base64, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proof: Vec<String>,
    /// The entry index concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The leaf hash concerned, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_hash: Option<String>,
    /// The root the client computed, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub computed_root: Option<String>,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(index) = self.index {
            writeln!(f, "entry index: {index}")?;
        }
        if let Some(leaf) = &self.leaf_hash {
            writeln!(f, "leaf hash: {leaf}")?;
        }
        if let Some(root) = &self.computed_root {
            writeln!(f, "computed root: {root}")?;
        }
        for (i, note) in self.checkpoints.iter().enumerate() {
            writeln!(f, "checkpoint {}:", i + 1)?;
            for line in note.lines() {
                writeln!(f, "  {line}")?;
            }
        }
        if !self.proof.is_empty() {
            writeln!(f, "proof ({} hashes):", self.proof.len())?;
            for hash in &self.proof {
                writeln!(f, "  {hash}")?;
            }
        }
        Ok(())
    }
}
