//! Queries over audit events: which index terms an entry is filed under (computed on
//! the appending handler's task, before the log's queue, so the sequencer never
//! parses an entry) and the `merklog.v1.Query` service that reads them back.
//!
//! The terms go into the round's synced batch with the entry (see
//! `merklog_log::Log::append_indexed`): after the answer the entry and its index
//! rows are durable together, and a crash before leaves neither, so there is
//! nothing to rebuild at start (unlike the per-source tracker, which lives in
//! memory). Entries logged by a build without the index are not filed.

pub(crate) mod service;
pub(crate) mod terms;
