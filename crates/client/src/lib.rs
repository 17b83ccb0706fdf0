//! merklog-client: a client of the merklog log that trusts nothing the server says.
//!
//! What it is:
//! - [`Client`], an async gRPC client of the `merklog.v1.Log` service
//!   (`proto/merklog/v1/log.proto`) that verifies everything it receives:
//!   - every checkpoint's Ed25519 signature and origin (C2SP signed-note and
//!     tlog-checkpoint), and, when a [tlog-policy](merklog_note::Policy) is given,
//!     its witness cosignatures and quorum (C2SP tlog-cosignature, tlog-policy);
//!   - every inclusion proof of an `Append` answer, against the answer's own
//!     checkpoint (RFC 9162 section 2.1.3.2);
//!   - every pair of checkpoints it sees, with a consistency proof (RFC 9162
//!     section 2.1.4.2): a newer checkpoint must extend the last verified one, a
//!     smaller "latest" checkpoint is a rollback, two roots for one size are a fork;
//!   - downloaded entries, by recomputing the root they must produce ([`Client::audit`],
//!     [`Client::watch`]).
//! - [`StateFile`], which remembers the last verified checkpoint of each log (keyed by
//!   origin) across runs, written atomically, so a server that rolls back or forks
//!   between two runs is caught too.
//! - [`offline`], which verifies a C2SP tlog-proof (`c2sp.org/tlog-proof@v1`) file with
//!   no network at all.
//! - [`Source`] (module [`source`]), the emitting side of a signed, sequenced source:
//!   numbers, signs and journals events in a synced spool before sending them, so a
//!   crash loses nothing it accepted and reuses no number (`docs/event-format.md`);
//!   and [`Client::audit_source`], which verifies a source's events in the log and
//!   names what is missing, equivocated or silent.
//! - [`evidence`]: evidence packs of a source's events for auditors, exported from the
//!   log and verified offline, byte for byte.
//! - [`Client::query_events`], verified queries over audit events (every entry's
//!   proof, and that it matches), and [`Client::query_completeness`], which checks
//!   per source that the query left nothing out.
//! - [`alerts`], the stream of alerts raised by the log's rules
//!   (`merklog alerts watch`).
//! - [`cli`], the `merklog` command line built on the above.
//!
//! Every verification failure is a [`ClientError`] for which
//! [`ClientError::is_verification_failure`] is true and which carries its evidence
//! (both checkpoints and the proof for an inconsistency; see [`ClientError::evidence`]).
//!
//! What it is not: it holds no Merkle or signature code of its own (that is
//! `merklog-merkle` and `merklog-note`), it does not speak the tlog-tiles HTTP API,
//! and it is not a witness: it remembers checkpoints for itself but does not
//! cosign or gossip them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alerts;
mod append;
mod audit;
pub mod cli;
mod client;
mod encoding;
mod error;
pub mod evidence;
pub mod fsck;
pub mod health;
pub mod offline;
mod probe;
mod query;
mod receipt;
pub mod source;
mod source_pages;
mod sources;
mod state;
mod token;
mod trust;
mod watch;

pub use append::{AppendReceipt, AppendSummary, StreamOptions};
pub use audit::AuditReport;
pub use client::{Client, ClientOptions, ClientTls, InclusionReceipt, RetryNotice};
pub use encoding::parse_hash;
pub use error::{
    AuditMismatch, ClientError, Evidence, InclusionFailure, Inconsistency, InconsistencyKind,
    code_name,
};
pub use merklog_note::SignedCheckpoint;
pub use query::{QueriedEvent, QueryAnswer, QueryFilter, SourceCompleteness};
pub use receipt::{CoseReceipt, ReceiptLeaf};
pub use source::{EmitItem, Recovery, SendSummary, Source, SourceOptions};
pub use sources::{EquivocationFinding, SequenceRange, SilentPeriod, SourceAudit};
pub use state::{StateFile, default_state_path};
pub use token::BearerToken;
pub use trust::{TrustedLog, load_verifier_key};
pub use watch::{ReconnectNotice, Watch, WatchEvent, WatchOptions};

/// The default server address of the command line and of [`ClientOptions`].
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7800";
