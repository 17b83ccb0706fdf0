//! Log-signed status records: when a source's gap or silence opens or closes, the
//! log appends an event signed with its OWN key (source name = the log's origin,
//! media type `application/vnd.merklog.source-status+json`), so the alert history is
//! as tamper-evident as the events. Payload fields: docs/event-format.md.
//!
//! The records are numbered like any source's events, keyed in the log's key
//! index; the next number at start is one past the highest found there, so a
//! number is never reused across restarts. One task appends them in order; a failed
//! append is retried with the same bytes (the same number), so a record that did
//! land is answered as a duplicate and no number names two records. A record still
//! queued when the process stops is lost (the change is recomputed, not replayed,
//! after a restart).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use merklog_event::{Event, EventDraft, MEDIA_TYPE_SOURCE_STATUS};
use merklog_log::{Log, LogError};
use merklog_note::Ed25519Signer;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::ingest::unique_key;
use super::tracker::Change;

/// Records waiting to be appended; beyond this they are dropped with an error log.
const QUEUE: usize = 1024;
/// Attempts per record before it is given up (logged).
const ATTEMPTS: u32 = 20;

/// The JSON payload of a status record.
#[derive(Debug, Serialize)]
pub(crate) struct StatusRecord<'a> {
    pub(crate) source: &'a str,
    pub(crate) change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_seen_unix_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) heartbeat_interval_ms: Option<u64>,
    pub(crate) at_unix_ms: u64,
}

impl<'a> StatusRecord<'a> {
    pub(crate) fn new(source: &'a str, change: &Change, at_unix_ms: u64) -> Self {
        let mut record = StatusRecord {
            source,
            change: "",
            first: None,
            last: None,
            last_seen_unix_ms: None,
            heartbeat_interval_ms: None,
            at_unix_ms,
        };
        match *change {
            Change::GapOpened { first, last } | Change::GapClosed { first, last } => {
                record.change = if matches!(change, Change::GapOpened { .. }) {
                    "gap-opened"
                } else {
                    "gap-closed"
                };
                record.first = Some(first);
                record.last = Some(last);
            }
            Change::SilenceStarted {
                last_seen_ms,
                interval_ms,
            } => {
                record.change = "silence-started";
                record.last_seen_unix_ms = Some(last_seen_ms);
                record.heartbeat_interval_ms = Some(interval_ms);
            }
            Change::SilenceEnded { last_seen_ms } => {
                record.change = "silence-ended";
                record.last_seen_unix_ms = Some(last_seen_ms);
            }
        }
        record
    }
}

/// Queues status records for the appending task.
#[derive(Debug, Clone)]
pub(crate) struct Announcer {
    tx: mpsc::Sender<(String, Change, u64)>,
}

impl Announcer {
    /// Starts the task; `next` is the first sequence number to use.
    pub(crate) fn start(
        log: Log,
        signer: Option<Arc<Ed25519Signer>>,
        next: u64,
        mut stop: watch::Receiver<bool>,
    ) -> (Announcer, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<(String, Change, u64)>(QUEUE);
        let task = tokio::spawn(async move {
            let mut next = next;
            loop {
                let item = tokio::select! {
                    item = rx.recv() => item,
                    _ = stop.wait_for(|s| *s) => None,
                };
                let Some((source, change, at)) = item else {
                    return;
                };
                let payload = match serde_json::to_vec(&StatusRecord::new(&source, &change, at)) {
                    Ok(payload) => payload,
                    Err(error) => {
                        tracing::error!(%error, "encoding a source status record");
                        continue;
                    }
                };
                // A read-only node holds no key: it never records a status change.
                if let Some(signer) = &signer {
                    next =
                        append_record(&log, signer, MEDIA_TYPE_SOURCE_STATUS, next, &payload, at)
                            .await;
                }
            }
        });
        (Announcer { tx }, task)
    }

    /// Queues a record of `change` of `source`, noticed at `at_unix_ms`.
    pub(crate) fn announce(&self, source: &str, change: Change, at_unix_ms: u64) {
        if let Err(error) = self.tx.try_send((source.to_owned(), change, at_unix_ms)) {
            tracing::error!(%error, source, "the source status record queue is full; record dropped");
        }
    }
}

/// Appends one record signed by `signer`, as an event of the source its key names,
/// under number `sequence` (or the next free one after a conflict); returns the
/// next number to use. Status records and alert entries are both written so.
pub(crate) async fn append_record(
    log: &Log,
    signer: &Ed25519Signer,
    media_type: &str,
    mut sequence: u64,
    payload: &[u8],
    at: u64,
) -> u64 {
    let source = merklog_note::Signer::name(signer).to_owned();
    let mut attempt = 0;
    loop {
        let event = match Event::sign(
            signer,
            &EventDraft {
                source: &source,
                sequence,
                timestamp_ms: at,
                media_type,
                payload,
            },
        ) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, source, "signing a log-signed record");
                return sequence;
            }
        };
        let key = unique_key(&source, sequence);
        match log
            .append_keyed(vec![Bytes::from(event.into_bytes())], vec![Some(key)])
            .await
        {
            Ok(receipt) => {
                let index = receipt.entries.first().map(|e| e.index.0);
                tracing::info!(source, sequence, index, "appended a log-signed record");
                return sequence + 1;
            }
            Err(LogError::KeyConflict { .. }) => {
                // Another record holds the number (only if something else writes
                // under this name): take the next one.
                sequence += 1;
            }
            Err(LogError::ShuttingDown) => return sequence,
            Err(error) => {
                attempt += 1;
                if attempt >= ATTEMPTS {
                    tracing::error!(%error, source, sequence, "giving up a log-signed record");
                    // The number may or may not be in the log: never reuse it.
                    return sequence + 1;
                }
                tracing::warn!(%error, source, sequence, "appending a log-signed record failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
        }
    }
}
