//! Alert entries: every alert is appended to the log as a signed event of the
//! reserved source [`ALERT_SOURCE`], so alerts are evidence like the events they
//! name.
//!
//! They are signed by a key of their own, `<data-dir>/alert.key` (and its public
//! `alert.vkey`), generated on the first start of a writing node next to the log
//! key and copied by `merklogd backup`: the log key signs checkpoints and status
//! records, and a key with one purpose can be handed to alert consumers without
//! vouching for anything else. The payload is the alert as JSON (media type
//! [`MEDIA_TYPE_ALERT`]); numbers continue across restarts (one past the highest
//! in the log's key index), so the per-source completeness checks apply to alerts.

use std::path::Path;
use std::sync::Arc;

use merklog_log::Log;
use merklog_note::Ed25519Signer;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::Alert;
use crate::ServerError;
use crate::keys::{KeyPaths, load_or_create_key};
use crate::sources::announcer::append_record;
use crate::sources::ingest::{key_prefix, parse_unique_key};

/// The reserved source name of alert entries (also the alert key's name).
pub const ALERT_SOURCE: &str = "merklog.alerts";
/// File name of the alert signer key inside the data directory.
pub const ALERT_KEY_FILE: &str = "alert.key";
/// File name of the alert verifier key inside the data directory.
pub const ALERT_VKEY_FILE: &str = "alert.vkey";
/// Media type of an alert entry's payload.
pub const MEDIA_TYPE_ALERT: &str = "application/vnd.merklog.alert+json";

/// Alerts waiting to be appended; beyond this they are dropped (counted, logged).
const QUEUE: usize = 1024;
/// Key-index rows read per storage call while finding the next number.
const SCAN_PAGE: usize = 4096;

/// Loads the alert key of `data_dir`, generating it when there is none.
pub(crate) fn load_or_create(data_dir: &Path) -> Result<Ed25519Signer, ServerError> {
    let paths = KeyPaths {
        key: data_dir.join(ALERT_KEY_FILE),
        vkey: data_dir.join(ALERT_VKEY_FILE),
    };
    let key = load_or_create_key(&paths, ALERT_SOURCE, true)?;
    if key.created {
        tracing::info!(vkey = %key.vkey, "created the alert key");
    }
    Ok(key.signer)
}

/// One past the highest alert number in the log's key index (0 for none).
pub(crate) async fn next_sequence(log: &Log) -> Result<u64, ServerError> {
    let mut start = key_prefix(ALERT_SOURCE);
    // The name followed by 0x01 sorts after every key of the name.
    let mut end = start.clone();
    if let Some(last) = end.last_mut() {
        *last = 1;
    }
    let mut next = 0u64;
    loop {
        let rows = log
            .scan_keys(start.clone(), end.clone(), SCAN_PAGE)
            .await
            .map_err(ServerError::Log)?;
        let full = rows.len() == SCAN_PAGE;
        let Some((last, _)) = rows.last() else { break };
        if let Some((ALERT_SOURCE, sequence)) = parse_unique_key(last) {
            next = next.max(sequence.saturating_add(1));
        }
        start = last.clone();
        start.push(0);
        if !full {
            break;
        }
    }
    Ok(next)
}

/// Queues alerts for the appending task.
#[derive(Debug, Clone)]
pub(crate) struct AlertWriter {
    tx: mpsc::Sender<Arc<Alert>>,
}

impl AlertWriter {
    /// Starts the task appending alerts signed by `signer`, from number `next` on.
    pub(crate) fn start(
        log: Log,
        signer: Arc<Ed25519Signer>,
        next: u64,
        mut stop: watch::Receiver<bool>,
    ) -> (AlertWriter, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Arc<Alert>>(QUEUE);
        let task = tokio::spawn(async move {
            let mut next = next;
            loop {
                let alert = tokio::select! {
                    alert = rx.recv() => alert,
                    _ = stop.wait_for(|s| *s) => None,
                };
                let Some(alert) = alert else { return };
                let payload = match serde_json::to_vec(&*alert) {
                    Ok(payload) => payload,
                    Err(error) => {
                        tracing::error!(%error, rule = %alert.rule, "encoding an alert entry");
                        continue;
                    }
                };
                next = append_record(
                    &log,
                    &signer,
                    MEDIA_TYPE_ALERT,
                    next,
                    &payload,
                    alert.matched_unix_ms,
                )
                .await;
            }
        });
        (AlertWriter { tx }, task)
    }

    /// Queues an alert without waiting.
    pub(crate) fn write(&self, alert: Arc<Alert>) {
        if let Err(error) = self.tx.try_send(alert) {
            metrics::counter!("merklog_rule_alert_entries_dropped_total").increment(1);
            tracing::error!(%error, "the alert entry queue is full; alert entry dropped");
        }
    }
}
