//! merklog-event: signed source events, the entries that say who wrote them and let an
//! auditor tell a complete record from one with holes.
//!
//! An event is an envelope ([`Event`]) carrying a source name, the ID of the source's
//! key, the source's own sequence number and timestamp, a media type, the payload's
//! exact bytes, and an Ed25519 signature by the source's key over a domain-separated
//! encoding of all of them. The envelope's bytes are the log entry; the payload is never
//! re-serialised. Source keys are C2SP signed-note Ed25519 keys (signature type 0x01)
//! whose name is the source's name, so log, witness and source keys share one format and
//! one tool. Some media types are reserved ([`EventKind`]): heartbeats, declarations of
//! sequence numbers that were never used, and the log's own status records.
//!
//! The format is specified in `docs/event-format.md` in the repository, independently
//! of this code; its test vectors live in this crate's `tests/vectors/`.
//!
//! An OpenTelemetry log record is logged as the canonical JSON leaf of [`otlp`]; the
//! AI audit-event profile ([`profile`]) reads the same fields out of documents,
//! signed events and those leaves.
//!
//! This crate is pure: no I/O, no async, no networking. It does not know which sources
//! exist or which principals may write for them (the server's registry does), nor does
//! it track sequence numbers (the server's per-source index and the client's `Source`).

#![warn(missing_docs)]

mod batch;
mod envelope;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod otlp;
pub mod profile;
mod reserved;

pub use batch::{BatchFailure, verify_batch};
pub use envelope::{
    Event, EventDraft, MAGIC, MAX_EVENT_LEN, SIGNATURE_CONTEXT, SIGNATURE_LEN, SourceKey, VERSION,
};
pub use error::EventError;
pub use reserved::{
    EventKind, MEDIA_TYPE_HEARTBEAT, MEDIA_TYPE_SOURCE_STATUS, MEDIA_TYPE_UNUSED, UnusedRange,
};

/// Whether `bytes` start like an envelope (magic and version), which is how a log in
/// mixed mode tells signed events from plain entries before parsing them.
pub fn looks_like_event(bytes: &[u8]) -> bool {
    bytes.len() > MAGIC.len() && bytes.starts_with(MAGIC)
}
