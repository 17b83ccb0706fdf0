//! Evidence packs: a source's events exported with everything an auditor needs to
//! check them offline, and the offline check itself (`docs/evidence-pack.md`).
//!
//! A pack is a directory or a `.zip` archive holding each selected event's exact
//! envelope bytes, one C2SP tlog-proof per event against one checkpoint, that
//! checkpoint (cosigned when the log has witnesses), earlier checkpoints with RFC 9162
//! consistency proofs to it, the log's, the source's and the witnesses' keys,
//! `manifest.json` (every file's SHA-256, the selection, the completeness result) and
//! `report.html` for people.
//!
//! The pack is deterministic: its files are a function of its verified contents
//! ([`files`]), so [`verify_files`] rebuilds every file, the manifest and the report
//! included, and compares them byte for byte; a pack with one changed byte fails,
//! naming the file. Verification ([`verify`], [`model`], [`manifest`], [`report`]) is
//! pure: no sockets, no clock. Only [`Client::export_evidence`](crate::Client) talks to
//! the log, and only [`archive`] touches the file system.
//!
//! Not here (yet): selection by query (actor, model, action) and COSE receipts; a pack
//! selects by sequence numbers and signed source timestamps, and proves inclusion with
//! tlog-proofs.

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
pub use model::{Findings, Pack, Selection};
pub use verify::{Pins, Verified, verify_files};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
