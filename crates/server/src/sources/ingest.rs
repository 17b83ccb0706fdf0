//! The checks a call's entries pass before they reach the sequencer's queue, all or
//! nothing: each signed envelope parses, names a registered source whose key signed
//! it, and the caller's principal may submit for that source; in sources-only mode
//! every entry is a signed envelope. Nothing is written when one fails.
//!
//! Structural and registry checks are cheap and run on the handler's task; the
//! signatures are checked in one batch verification ([`verify`]), batched with
//! other calls' by the verifier, never on the sequencer thread.

use std::sync::Arc;

use bytes::Bytes;
use merklog_auth::Principal;
use merklog_event::{Event, EventKind, looks_like_event, verify_batch};
use tonic::Status;

use super::registry::{RegisteredSource, Registry};
use super::settings::EntriesMode;

/// A signed entry of a call that passed the cheap checks.
pub(crate) struct SignedEntry {
    /// Position in the call.
    pub(crate) position: usize,
    pub(crate) event: Event,
    pub(crate) kind: EventKind,
    pub(crate) source: Arc<RegisteredSource>,
}

/// A call's entries after the cheap checks: each entry's unique key (signed ones
/// only) and the signed entries.
pub(crate) struct Screened {
    pub(crate) keys: Vec<Option<Bytes>>,
    pub(crate) signed: Vec<SignedEntry>,
}

/// The unique key of a source's sequence number in the log's key index: the
/// source name, a zero byte (never part of a name), the number (u64 big-endian), so
/// one source's keys are contiguous and in sequence order.
pub(crate) fn unique_key(source: &str, sequence: u64) -> Bytes {
    let mut key = key_prefix(source);
    key.extend_from_slice(&sequence.to_be_bytes());
    Bytes::from(key)
}

/// The first key of every key of `source`: its name and a zero byte.
pub(crate) fn key_prefix(source: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(source.len() + 9);
    key.extend_from_slice(source.as_bytes());
    key.push(0);
    key
}

/// The source and sequence number of a unique key.
pub(crate) fn parse_unique_key(key: &[u8]) -> Option<(&str, u64)> {
    let split = key.len().checked_sub(9)?;
    let (name, rest) = key.split_at(split);
    let (&zero, number) = rest.split_first()?;
    if zero != 0 {
        return None;
    }
    let name = std::str::from_utf8(name).ok()?;
    Some((name, u64::from_be_bytes(number.try_into().ok()?)))
}

fn named(position: usize, event: &Event, reason: impl std::fmt::Display) -> String {
    format!(
        "entries[{position}]: source {} sequence {}: {reason}",
        event.source(),
        event.sequence()
    )
}

/// The cheap checks, in entry order; the first failure refuses the call.
pub(crate) fn screen(
    registry: &Registry,
    mode: EntriesMode,
    principal: &Principal,
    entries: &[Bytes],
) -> Result<Screened, Status> {
    let mut keys = Vec::with_capacity(entries.len());
    let mut signed = Vec::new();
    for (position, entry) in entries.iter().enumerate() {
        if !looks_like_event(entry) {
            if mode == EntriesMode::SourcesOnly {
                return Err(Status::invalid_argument(format!(
                    "entries[{position}]: an unsigned entry; this log accepts only signed \
                     events of registered sources (entries = \"sources-only\")"
                )));
            }
            keys.push(None);
            continue;
        }
        let event = Event::parse(entry).map_err(|e| {
            Status::invalid_argument(format!(
                "entries[{position}]: a malformed signed event envelope: {e}"
            ))
        })?;
        let Some(source) = registry.get(event.source()) else {
            return Err(Status::invalid_argument(named(
                position,
                &event,
                "unknown source: it is not in the sources registry",
            )));
        };
        if !source.admits(principal) {
            return Err(Status::permission_denied(named(
                position,
                &event,
                format!("principal {principal} may not submit events of this source"),
            )));
        }
        let kind = event.kind().map_err(|e| {
            Status::invalid_argument(named(position, &event, format!("bad payload: {e}")))
        })?;
        if kind == EventKind::SourceStatus {
            return Err(Status::invalid_argument(named(
                position,
                &event,
                "source-status records are written by the log itself",
            )));
        }
        keys.push(Some(unique_key(event.source(), event.sequence())));
        signed.push(SignedEntry {
            position,
            event,
            kind,
            source: source.clone(),
        });
    }
    Ok(Screened { keys, signed })
}

/// Verifies every signature of the call in one batch (CPU work: not on a task
/// that must stay responsive). A failure names the first bad entry.
pub(crate) fn verify(signed: &[SignedEntry]) -> Result<(), Status> {
    if signed.is_empty() {
        return Ok(());
    }
    let items: Vec<(&Event, &merklog_event::SourceKey)> =
        signed.iter().map(|s| (&s.event, &s.source.key)).collect();
    verify_batch(&items).map_err(|failure| {
        let reason = failure.error.to_string();
        match signed.get(failure.index) {
            Some(entry) => Status::invalid_argument(named(
                entry.position,
                &entry.event,
                format!("the signature does not verify under the registered key: {reason}"),
            )),
            None => Status::invalid_argument(reason),
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_round_trip_and_order_by_sequence() {
        let a = unique_key("agents.example/a7", 5);
        assert_eq!(parse_unique_key(&a), Some(("agents.example/a7", 5)));
        assert!(unique_key("s", 255) < unique_key("s", 256));
        assert!(key_prefix("s").as_slice() <= &unique_key("s", 0)[..]);
        // Another source whose name extends this one sorts after all of its keys.
        assert!(unique_key("s2", 0) > unique_key("s", u64::MAX));
        assert_eq!(parse_unique_key(b"short"), None);
    }
}
