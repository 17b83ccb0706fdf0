//! Real-time rules over audit events (docs/rules.md): `[[rule]]` tables of CEL
//! expressions over the `ai-audit/v1` fields of every new entry, evaluated after
//! the entry is durable and off the append path.
//!
//! The path of an entry:
//! 1. `Sources::append` gets the durable answer, then hands each new (not
//!    duplicate) entry to `Rules::submit`, which only `try_send`s on a bounded
//!    queue: a full queue drops the entry for the rules (counted,
//!    `merklog_rule_events_dropped_total`, and logged), never slows the append.
//! 2. One thread of its own takes entries from the queue, finds their audit event
//!    (entries that are not one, and alert entries themselves, are passed over) and
//!    evaluates every rule. A rule that fails on an event is counted
//!    (`merklog_rule_errors_total{rule}`) and logged; the others still run.
//! 3. A firing becomes an `Alert`: counted (`merklog_rule_matches_total{rule}`),
//!    sent to the `WatchAlerts` streams, queued for the webhook (retried) and
//!    queued for its alert entry in the log (`entry`).

pub mod entry;
pub mod rule;
pub(crate) mod service;

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use merklog_auth::Principal;
use merklog_event::profile::AuditEvent;
use merklog_event::{Event, looks_like_event};
use merklog_log::{AppendReceipt, Log};
use merklog_note::Ed25519Signer;
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::webhook::{Retry, Webhook};
use crate::{ServerConfig, ServerError};
use entry::{ALERT_SOURCE, AlertWriter};
use rule::{Facts, Rule};

/// Entries waiting for the rules; beyond this they are dropped (and counted).
const QUEUE: usize = 16_384;
/// Alerts a `WatchAlerts` stream may fall behind by before it is ended.
const WATCH_BUFFER: usize = 1024;
/// How often the rules thread checks for the server's stop.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Attempts of one webhook delivery: a receiver restarting within a few seconds
/// still gets the alert.
const WEBHOOK_RETRY: Retry = Retry {
    attempts: 5,
    first_backoff: Duration::from_millis(100),
};

/// One alert: a rule fired on an entry. Also the JSON of the webhook body and of
/// the alert entry's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Alert {
    /// The log's origin.
    pub(crate) origin: String,
    pub(crate) rule: String,
    pub(crate) leaf_index: u64,
    /// Hex in JSON.
    #[serde(serialize_with = "hex")]
    pub(crate) leaf_hash: merklog_merkle::Hash,
    pub(crate) actor: String,
    pub(crate) action: String,
    /// The event's time, RFC 3339.
    pub(crate) time: String,
    pub(crate) window_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    pub(crate) matched_unix_ms: u64,
}

fn hex<S: serde::Serializer>(hash: &merklog_merkle::Hash, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(hash)
}

/// An entry handed to the rules.
struct Candidate {
    index: u64,
    leaf: Bytes,
    principal: String,
}

/// The rules of a running server.
pub(crate) struct Rules {
    tx: Option<SyncSender<Candidate>>,
    alerts: broadcast::Sender<Arc<Alert>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Rules {
    /// Rules that never fire (none configured).
    pub(crate) fn disabled() -> Rules {
        Rules {
            tx: None,
            alerts: broadcast::channel(1).0,
            tasks: Vec::new(),
        }
    }

    /// Compiles the configured rules and starts their thread, the webhook and the
    /// alert entry writer (a node without a key writes none).
    pub(crate) async fn start(
        config: &ServerConfig,
        log: Log,
        signer: Option<Arc<Ed25519Signer>>,
        stop: watch::Receiver<bool>,
    ) -> Result<Rules, ServerError> {
        let rules = rule::compile_all(&config.rule).map_err(ServerError::Config)?;
        if rules.is_empty() {
            return Ok(Rules::disabled());
        }
        let webhook = match &config.alert_webhook {
            Some(url) => Webhook::start(
                url,
                config.alert_webhook_timeout.get(),
                "rule alert",
                WEBHOOK_RETRY,
                "merklog_rule_webhook_failures_total",
            )
            .map_err(ServerError::Config)?,
            None => Webhook::disabled(),
        };
        let mut tasks = Vec::new();
        let writer = match signer {
            Some(signer) => {
                let next = entry::next_sequence(&log).await?;
                let (writer, task) = AlertWriter::start(log.clone(), signer, next, stop.clone());
                tasks.push(task);
                Some(writer)
            }
            None => None,
        };
        let (alerts, _) = broadcast::channel(WATCH_BUFFER);
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let fanout = Fanout {
            origin: log.origin().to_owned(),
            alerts: alerts.clone(),
            webhook,
            writer,
        };
        std::thread::Builder::new()
            .name("merklog-rules".into())
            .spawn(move || run(rules, rx, fanout, stop))
            .map_err(|source| ServerError::Io {
                context: "starting the rules thread".into(),
                source,
            })?;
        tracing::info!(rules = config.rule.len(), "rules loaded");
        Ok(Rules {
            tx: Some(tx),
            alerts,
            tasks,
        })
    }

    /// True when rules are configured (entries are worth handing over).
    pub(crate) fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Hands the new entries of a durable answer to the rules, without waiting.
    pub(crate) fn submit(&self, principal: &Principal, entries: &[Bytes], receipt: &AppendReceipt) {
        let Some(tx) = &self.tx else { return };
        // Counted per entry but logged once per call: under overload a line per
        // entry would cost more than the evaluation it reports skipping.
        let mut dropped = Vec::new();
        for (sealed, leaf) in receipt.entries.iter().zip(entries) {
            if sealed.duplicate {
                continue;
            }
            let candidate = Candidate {
                index: sealed.index.0,
                leaf: leaf.clone(),
                principal: principal.as_str().to_owned(),
            };
            match tx.try_send(candidate) {
                Ok(()) => {}
                Err(TrySendError::Full(c)) => dropped.push(c.index),
                // The rules thread has stopped: the server is stopping.
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        if let (Some(first), Some(last)) = (dropped.first(), dropped.last()) {
            metrics::counter!("merklog_rule_events_dropped_total").increment(dropped.len() as u64);
            tracing::warn!(
                count = dropped.len(),
                first,
                last,
                "the rules queue is full; entries not evaluated"
            );
        }
    }

    /// Alerts from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Alert>> {
        self.alerts.subscribe()
    }

    /// Stops the background tasks.
    pub(crate) fn abort(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Where alerts go.
struct Fanout {
    origin: String,
    alerts: broadcast::Sender<Arc<Alert>>,
    webhook: Webhook,
    writer: Option<AlertWriter>,
}

/// The rules thread: evaluates entries until the server stops.
fn run(mut rules: Vec<Rule>, rx: Receiver<Candidate>, fanout: Fanout, stop: watch::Receiver<bool>) {
    loop {
        match rx.recv_timeout(STOP_POLL) {
            Ok(candidate) => evaluate(&mut rules, &candidate, &fanout),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Evaluates every rule over one entry and sends out what fires.
fn evaluate(rules: &mut [Rule], candidate: &Candidate, fanout: &Fanout) {
    let mut source = String::new();
    if looks_like_event(&candidate.leaf) {
        let Ok(event) = Event::parse(&candidate.leaf) else {
            return;
        };
        // Alerts are not evaluated: an alert about an alert would loop.
        if event.source() == ALERT_SOURCE {
            return;
        }
        source = event.source().to_owned();
    }
    let Some(event) = AuditEvent::from_leaf(&candidate.leaf) else {
        return;
    };
    let value = match rule::event_value(&event) {
        Ok(value) => value,
        Err(error) => {
            tracing::warn!(%error, index = candidate.index, "an audit event the rules cannot read");
            return;
        }
    };
    let context = rule::context(
        value,
        Facts {
            leaf_index: candidate.index,
            principal: &candidate.principal,
            source: &source,
        },
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    for rule in rules.iter_mut() {
        match rule.evaluate(&context, now) {
            Ok(None) => {}
            Ok(Some(firing)) => {
                let alert = Arc::new(Alert {
                    origin: fanout.origin.clone(),
                    rule: rule.name().to_owned(),
                    leaf_index: candidate.index,
                    leaf_hash: merklog_merkle::hash_leaf(&candidate.leaf),
                    actor: event.actor.id.clone(),
                    action: event.action.clone(),
                    time: event.time.clone(),
                    window_count: firing.window_count,
                    key: firing.key,
                    matched_unix_ms: now,
                });
                fanout.send(alert);
            }
            Err(error) => {
                metrics::counter!("merklog_rule_errors_total", "rule" => rule.name().to_owned())
                    .increment(1);
                tracing::warn!(rule = rule.name(), index = candidate.index, %error, "rule failed on an event");
            }
        }
    }
}

impl Fanout {
    fn send(&self, alert: Arc<Alert>) {
        metrics::counter!("merklog_rule_matches_total", "rule" => alert.rule.clone()).increment(1);
        tracing::warn!(
            rule = %alert.rule,
            leaf_index = alert.leaf_index,
            actor = %alert.actor,
            action = %alert.action,
            window_count = alert.window_count,
            "rule fired"
        );
        // No watcher is not an error.
        let _ = self.alerts.send(Arc::clone(&alert));
        match serde_json::to_value(&*alert) {
            Ok(mut body) => {
                if let serde_json::Value::Object(map) = &mut body {
                    map.insert("kind".into(), "rule".into());
                }
                self.webhook.send(body);
            }
            Err(error) => tracing::error!(%error, "encoding an alert for the webhook"),
        }
        if let Some(writer) = &self.writer {
            writer.write(alert);
        }
    }
}
