//! Evidence packs: a source's events exported with everything an auditor needs to
//! check them offline, and the offline check itself (`docs/evidence-pack.md`).
//!
//! A pack is a directory or a `.zip` archive holding each selected event's exact
//! envelope bytes, one C2SP tlog-proof and one RFC 9942 COSE receipt per event against
//! one checkpoint, that checkpoint (cosigned when the log has witnesses), earlier
//! checkpoints with RFC 9162 consistency proofs to it, the log's, the receipt, the
//! source's and the witnesses' keys, `manifest.json` (every file's SHA-256, the
//! selection, the completeness result) and `report.html` for people.
//!
//! The pack is deterministic: its files are a function of its verified contents
//! ([`files`]), so [`verify_files`] rebuilds every file, the manifest and the report
//! included, and compares them byte for byte; a pack with one changed byte fails,
//! naming the file. Verification ([`verify`], [`model`], [`manifest`], [`report`]) is
//! pure: no sockets, no clock. Only [`Client::export_evidence`](crate::Client) talks to
//! the log, and only [`archive`] touches the file system.
//!
//! A pack selects a source's events by sequence numbers, signed source timestamps and
//! terms on their audit-event payloads (found through the query index); a query
//! selection proves what it holds is in the log, not that nothing was left out.

pub mod archive;
mod export;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod manifest;
pub mod model;
pub mod report;
pub mod verify;

pub use export::ExportRequest;
pub use manifest::{FORMAT, Manifest};
pub use model::{Findings, Pack, QueryTerms, Selection};
pub use verify::{Pins, Verified, verify_files};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
