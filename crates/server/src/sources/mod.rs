//! Signed, sequenced sources (docs/event-format.md): the registry of sources, the
//! ingest checks of their envelopes, equivocation handling, per-source
//! completeness, the log-signed status records and the `merklog.v1.Sources`
//! service.
//!
//! The path of a call holding signed envelopes (each step says what is durable):
//! 1. `ingest::screen` on the handler's task, then the signatures (`verifier`:
//!    a small call's in one batch with those of concurrent calls, a large call's
//!    as a batch of its own); nothing is written on a refusal.
//! 2. The log appends the call with one unique key per envelope (source, sequence)
//!    and the index terms of its audit events (`crate::query`), and writes the key
//!    and term rows in the round's synced batch: after the answer, the events and
//!    their per-source and query index rows are durable together; a crash before
//!    leaves neither.
//! 3. The tracker is updated from the durable answer (in memory; rebuilt from the
//!    key index at start), and status changes are queued for a log-signed record.
//! 4. A key conflict (equivocation) refuses the call; the evidence is written to
//!    disk and synced before the caller is answered, then counted, logged and sent
//!    to the webhook (best effort).
//! 5. The new entries of a durable answer, signed or not, are handed to the rules
//!    (`crate::rules`) without waiting; nothing the rules do reaches the caller.

pub(crate) mod announcer;
mod evidence;
pub(crate) mod ingest;
mod ranges;
pub mod registry;
pub(crate) mod service;
pub mod settings;
mod tracker;
mod verifier;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use merklog_auth::Principal;
use merklog_event::{Event, EventKind};
use merklog_log::{AppendReceipt, Log, LogError};
use merklog_merkle::LeafIndex;
use merklog_note::Ed25519Signer;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tonic::Status;

use crate::webhook::{Retry, Webhook};
use crate::{ServerConfig, ServerError};
use announcer::Announcer;
use ingest::{Screened, SignedEntry, parse_unique_key};
use registry::LiveRegistry;
use settings::EntriesMode;
use tracker::{Change, Evidence, IndexedEvent, Tracker};
use verifier::Verifier;

/// Key-index rows read per storage call while rebuilding at start.
const SCAN_PAGE: usize = 4096;
/// How often silence is checked.
const SILENCE_TICK: Duration = Duration::from_millis(100);
/// Timeout of one webhook delivery.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an equivocation's handling waits for the logged envelope to be
/// published (with a witness policy) before saving the evidence without it.
const EVIDENCE_WAIT: Duration = Duration::from_secs(10);

/// Why an append through the sources path failed.
pub(crate) enum AppendError {
    /// Refused by the checks (already a status).
    Refused(Status),
    /// The log's own error (the caller maps it).
    Log(LogError),
}

/// Now as Unix milliseconds.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The server's sources state, shared by the Log and Sources services.
pub(crate) struct Sources {
    log: Log,
    registry: LiveRegistry,
    mode: EntriesMode,
    /// The profile every entry must conform to, if any.
    schema: Option<crate::schema::Schema>,
    tracker: Tracker,
    /// Checks the signatures of calls, batched across concurrent calls.
    verifier: Verifier,
    evidence_dir: PathBuf,
    webhook: Webhook,
    announcer: Announcer,
    /// Names of sources whose status changed (gap, silence, equivocation).
    changes: broadcast::Sender<String>,
    /// Rules over the new entries of each durable answer.
    rules: Arc<crate::rules::Rules>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sources {
    /// Loads the registry, rebuilds the per-source status from the log's key index
    /// and starts the silence check, the status-record task and the reloader.
    pub(crate) async fn start(
        config: &ServerConfig,
        log: Log,
        signer: Option<Arc<Ed25519Signer>>,
        rules: Arc<crate::rules::Rules>,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Sources>, ServerError> {
        let origin = log.origin().to_owned();
        let registry = LiveRegistry::load(config.sources_file.as_deref(), &origin)?;
        let webhook = match &config.source_alert_webhook {
            Some(url) => Webhook::start(
                url,
                WEBHOOK_TIMEOUT,
                "source alert",
                Retry::ONCE,
                "merklog_source_alert_webhook_failures_total",
            )
            .map_err(ServerError::Config)?,
            None => Webhook::disabled(),
        };
        let tracker = Tracker::new(unix_ms());
        let evidence_dir = config.data_dir.join(evidence::EVIDENCE_DIR);
        let next_status = rebuild(&log, &tracker).await?;
        for evidence in evidence::load_all(&evidence_dir) {
            tracker.load_evidence(evidence);
        }
        let (announcer, announcer_task) =
            Announcer::start(log.clone(), signer, next_status, stop.clone());
        let mut tasks = vec![announcer_task];
        if let Some(path) = &config.sources_file {
            tasks.push(registry.spawn_reloader(
                path.clone(),
                origin,
                config.sources_reload_interval.get(),
                stop.clone(),
            ));
        }
        let (changes, _) = broadcast::channel(256);
        let verifier = Verifier::start().map_err(|source| ServerError::Io {
            context: "starting the signature verification thread".to_owned(),
            source,
        })?;
        let sources = Arc::new(Sources {
            log,
            registry,
            mode: config.entries,
            schema: config.schema,
            tracker,
            verifier,
            evidence_dir,
            webhook,
            announcer,
            changes,
            rules,
            tasks,
        });
        let silence = tokio::spawn(watch_silence(Arc::downgrade(&sources), stop));
        // The silence task holds only a weak reference and ends with the server.
        drop(silence);
        Ok(sources)
    }

    /// Stops the background tasks.
    pub(crate) fn abort(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.rules.abort();
    }

    /// Appends a call's entries for `principal`, checking the log's schema and
    /// its signed envelopes first (all or nothing).
    pub(crate) async fn append(
        self: &Arc<Self>,
        principal: &Principal,
        entries: Vec<Bytes>,
    ) -> Result<AppendReceipt, AppendError> {
        crate::schema::check_entries(self.schema, &entries).map_err(AppendError::Refused)?;
        // Index terms of audit events, here on the handler's task: the sequencer
        // only stores them, in the round's synced batch.
        let terms = crate::query::terms::call_terms(&entries);
        self.append_checked(principal, entries, terms).await
    }

    /// Like [`Sources::append`], for entries the caller has checked against the
    /// log's schema and whose index terms it has (`call_terms`' shape: one list per
    /// entry, or none at all), having read them from the records it encoded.
    pub(crate) async fn append_checked(
        self: &Arc<Self>,
        principal: &Principal,
        entries: Vec<Bytes>,
        terms: Vec<Vec<merklog_log::IndexTerm>>,
    ) -> Result<AppendReceipt, AppendError> {
        let registry = self.registry.get();
        let screened = ingest::screen(&registry, self.mode, principal, &entries)
            .map_err(AppendError::Refused)?;
        // Only what the answer says is durable reaches the rules, after it is.
        let for_rules = self.rules.enabled().then(|| entries.clone());
        if screened.signed.is_empty() {
            let receipt = self
                .log
                .append_indexed(entries, Vec::new(), terms)
                .await
                .map_err(AppendError::Log)?;
            if let Some(entries) = for_rules {
                self.rules.submit(principal, &entries, &receipt);
            }
            return Ok(receipt);
        }
        let screened = self
            .verifier
            .verify(screened)
            .await
            .map_err(AppendError::Refused)?;
        // On its own task: the tracker and the evidence are updated even if the
        // caller goes away while the round is written.
        let this = Arc::clone(self);
        let receipt =
            tokio::spawn(async move { this.append_signed(entries, screened, terms).await })
                .await
                .map_err(|e| {
                    AppendError::Refused(Status::internal(format!("append task: {e}")))
                })??;
        if let Some(entries) = for_rules {
            self.rules.submit(principal, &entries, &receipt);
        }
        Ok(receipt)
    }

    async fn append_signed(
        &self,
        entries: Vec<Bytes>,
        screened: Screened,
        terms: Vec<Vec<merklog_log::IndexTerm>>,
    ) -> Result<AppendReceipt, AppendError> {
        let Screened { keys, signed } = screened;
        match self.log.append_indexed(entries.clone(), keys, terms).await {
            Ok(receipt) => {
                self.recorded(&signed, &receipt);
                Ok(receipt)
            }
            Err(LogError::KeyConflict {
                index,
                existing_index,
            }) => Err(AppendError::Refused(
                self.equivocation(&entries, &signed, index, existing_index)
                    .await,
            )),
            Err(error) => Err(AppendError::Log(error)),
        }
    }

    /// Updates the tracker from a durable answer and announces what changed.
    fn recorded(&self, signed: &[SignedEntry], receipt: &AppendReceipt) {
        let now = unix_ms();
        let mut by_source: Vec<(&str, Vec<(u64, EventKind)>)> = Vec::new();
        for entry in signed {
            let new = receipt
                .entries
                .get(entry.position)
                .is_some_and(|e| !e.duplicate);
            if !new {
                continue;
            }
            let item = (entry.event.sequence(), entry.kind);
            match by_source
                .iter_mut()
                .find(|(s, _)| *s == entry.event.source())
            {
                Some((_, items)) => items.push(item),
                None => by_source.push((entry.event.source(), vec![item])),
            }
        }
        for (source, items) in by_source {
            let changes = self.tracker.record(source, &items, now);
            self.changed(source, changes, now);
        }
    }

    /// Announces `changes` of `source` (records and watchers; the tracker keeps
    /// the gauges).
    fn changed(&self, source: &str, changes: Vec<Change>, now: u64) {
        if changes.is_empty() {
            return;
        }
        for change in changes {
            tracing::warn!(source, ?change, "source status changed");
            self.announcer.announce(source, change, now);
        }
        let _ = self.changes.send(source.to_owned());
    }

    /// A key conflict: the refused envelope and the logged one are saved (synced)
    /// before the caller is answered, then the alert goes out.
    async fn equivocation(
        &self,
        entries: &[Bytes],
        signed: &[SignedEntry],
        index: usize,
        existing_index: Option<u64>,
    ) -> Status {
        let Some(entry) = signed.iter().find(|s| s.position == index) else {
            return Status::internal(format!(
                "entries[{index}]: a key conflict on an unsigned entry"
            ));
        };
        let (source, sequence) = (entry.event.source().to_owned(), entry.event.sequence());
        let Some(existing_index) = existing_index else {
            return Status::already_exists(format!(
                "entries[{index}]: source {source} sequence {sequence}: another entry of this \
                 call has the same source and sequence number and different bytes"
            ));
        };
        let logged = self.logged_entry(existing_index).await;
        let evidence = Arc::new(Evidence {
            source: source.clone(),
            sequence,
            logged_index: existing_index,
            logged_envelope: logged.unwrap_or_default(),
            other_envelope: entries.get(index).cloned().unwrap_or_default(),
            seen_unix_ms: unix_ms(),
        });
        let dir = self.evidence_dir.clone();
        let saved = {
            let evidence = Arc::clone(&evidence);
            tokio::task::spawn_blocking(move || evidence::save(&dir, &evidence)).await
        };
        let path = match saved {
            Ok(Ok(path)) => path.display().to_string(),
            Ok(Err(error)) => {
                tracing::error!(%error, "saving equivocation evidence failed");
                String::new()
            }
            Err(error) => {
                tracing::error!(%error, "saving equivocation evidence failed");
                String::new()
            }
        };
        self.tracker.add_evidence(Arc::clone(&evidence));
        let label = if self.registry.get().get(&source).is_some() {
            source.clone()
        } else {
            "unregistered".to_owned()
        };
        metrics::counter!("merklog_source_equivocations_total", "source" => label).increment(1);
        tracing::error!(
            source = %source,
            sequence,
            logged_index = existing_index,
            evidence = %path,
            "equivocation: two different envelopes signed for one source and sequence number"
        );
        self.webhook.send(serde_json::json!({
            "kind": "equivocation",
            "origin": self.log.origin(),
            "source": source,
            "sequence": sequence,
            "logged_index": existing_index,
            "evidence": path,
        }));
        let _ = self.changes.send(source.clone());
        Status::already_exists(format!(
            "entries[{index}]: source {source} sequence {sequence}: equivocation: a different \
             envelope with this source and sequence number is in the log at index \
             {existing_index}; both are kept as evidence"
        ))
    }

    /// The entry at `index`, once published (bounded wait).
    async fn logged_entry(&self, index: u64) -> Option<Bytes> {
        let mut published = self.log.subscribe();
        // A bool at once: the watch's read guard must not live across an await.
        let covered = tokio::time::timeout(
            EVIDENCE_WAIT,
            published.wait_for(|checkpoint| checkpoint.size().0 > index),
        )
        .await
        .is_ok_and(|found| found.is_ok());
        if !covered {
            return None;
        }
        self.log
            .entries(LeafIndex(index), LeafIndex(index + 1))
            .await
            .ok()?
            .into_iter()
            .next()
    }

    fn check_silence(&self) {
        let registry = self.registry.get();
        let now = unix_ms();
        for (source, change) in self.tracker.check_silence(registry.sources(), now) {
            self.changed(&source, vec![change], now);
        }
    }
}

/// Checks silence until the server stops (or the sources state is gone).
async fn watch_silence(sources: std::sync::Weak<Sources>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SILENCE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Some(sources) = sources.upgrade() else {
            return;
        };
        sources.check_silence();
    }
}

/// Rebuilds the tracker from the log's key index; returns the next sequence number
/// of the log's own status records.
async fn rebuild(log: &Log, tracker: &Tracker) -> Result<u64, ServerError> {
    let origin = log.origin().to_owned();
    let mut next_status = 0u64;
    let mut start: Vec<u8> = Vec::new();
    // UTF-8 never holds 0xff: every key sorts below it.
    let end = vec![0xffu8];
    let mut current: Option<(String, Vec<IndexedEvent>)> = None;
    let mut per_source: Vec<(String, Vec<IndexedEvent>)> = Vec::new();
    loop {
        let rows = log
            .scan_keys(start.clone(), end.clone(), SCAN_PAGE)
            .await
            .map_err(ServerError::Log)?;
        let Some((last, _)) = rows.last() else { break };
        start = last.clone();
        start.push(0);
        let full = rows.len() == SCAN_PAGE;
        for (key, record) in rows {
            let Some((name, sequence)) = parse_unique_key(&key) else {
                continue;
            };
            if name == origin {
                next_status = next_status.max(sequence.saturating_add(1));
                continue;
            }
            let row = IndexedEvent {
                sequence,
                index: record.index,
                recorded_ms: record.recorded_ms,
            };
            match &mut current {
                Some((current_name, rows)) if current_name == name => rows.push(row),
                _ => {
                    if let Some(done) = current.take() {
                        per_source.push(done);
                    }
                    current = Some((name.to_owned(), vec![row]));
                }
            }
        }
        if !full {
            break;
        }
    }
    per_source.extend(current);
    let published = log.latest().size().0;
    for (name, rows) in per_source {
        tracker.load(&name, &rows);
        // Unused-sequence declarations can only close gaps: read the envelopes
        // above the first gap (usually few), looking for them.
        let Some(first_gap) = tracker.first_gap(&name) else {
            continue;
        };
        for row in rows
            .iter()
            .filter(|r| r.sequence > first_gap && r.index < published)
        {
            let Ok(entries) = log
                .entries(LeafIndex(row.index), LeafIndex(row.index + 1))
                .await
            else {
                continue;
            };
            let Some(Ok(event)) = entries.first().map(|e| Event::parse(e)) else {
                continue;
            };
            if let Ok(EventKind::Unused(range)) = event.kind() {
                tracker.load_unused(&name, range.first, range.last);
            }
        }
    }
    Ok(next_status)
}
