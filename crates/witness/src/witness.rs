//! The witness core: checks a submitted checkpoint against the stored state of its
//! log, cosigns it, persists the new state, and keeps evidence of misbehaviour.
//! HTTP-free, so every rule is testable without a socket.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use merklog_merkle::{Hash, TreeSize, empty_root, verify_consistency};
use merklog_note::{
    Checkpoint, CosignatureSigner, CosignatureVerifier, Note, NoteSignature, Verifiers,
    parse_verifier_key,
};
use tokio::sync::{Mutex, watch};

use crate::alarm::{Alarm, AlarmSender};
use crate::config::{FollowConfig, WitnessConfig, validate_prefix};
use crate::error::WitnessError;
use crate::failpoint::Failpoint;
use crate::metrics::{FollowCounters, Metrics};
use crate::request::{AddCheckpointRequest, parse_add_checkpoint};
use crate::store::{LogDir, ORIGIN_FILE, create_dir_durable, origin_hash_hex};

/// Directory under the data directory that holds one directory per log.
pub const LOGS_DIR: &str = "logs";

/// Evidence entries kept per log. Only checkpoints validly signed by the log can
/// produce evidence, and each is keyed by its signed text, so this cap only matters
/// if a log signs very many bad checkpoints; beyond it evidence is counted, not saved.
pub const MAX_EVIDENCE_PER_LOG: usize = 10_000;

/// Size and root of the latest checkpoint the witness cosigned for a log.
#[derive(Debug, Clone, Copy)]
struct Cosigned {
    size: u64,
    root: Hash,
}

/// Mutable per-log state, guarded by the log's async mutex: check and update happen
/// under one lock, so concurrent requests advance a log at most once.
#[derive(Debug)]
struct LogState {
    latest: Option<Cosigned>,
    frozen: Option<String>,
    evidence_entries: usize,
    /// Set when persisting failed: the on-disk state is unknown until a restart.
    storage_failed: bool,
}

/// One configured log.
struct LogSlot {
    origin: String,
    verifiers: Verifiers,
    dir: LogDir,
    state: Mutex<LogState>,
    /// The latest cosigned note, for the monitoring API (read without the lock).
    published: watch::Sender<Option<Bytes>>,
    frozen: AtomicBool,
}

/// A running witness: its key, its logs and their state.
pub struct Witness {
    cosigner: CosignatureSigner,
    vkey: String,
    data_dir: PathBuf,
    logs: HashMap<String, Arc<LogSlot>>,
    by_origin_hash: HashMap<String, Arc<LogSlot>>,
    submission_prefix: String,
    monitoring_prefix: String,
    metrics: Arc<Metrics>,
    alarms: AlarmSender,
    failpoint: Option<Failpoint>,
    /// Followed logs (pull mode) and their counters, in configuration order.
    follow: Vec<(FollowConfig, Arc<FollowCounters>)>,
    /// TLS settings of the followers' `https://` connections.
    follow_tls: tonic::transport::ClientTlsConfig,
}

/// What a follower needs to know of a log's stored state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredTree {
    /// Size and root of the latest cosigned checkpoint, if any.
    pub(crate) latest: Option<(u64, Hash)>,
    /// Frozen after a fork, or disabled after a storage failure: nothing to submit.
    pub(crate) refusing: bool,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("vkey", &self.vkey)
            .field("data_dir", &self.data_dir)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// Opens the witness: creates the data directory, loads or generates the witness
    /// key, and loads every configured log's state (failing closed on corrupt state).
    /// Must run inside a Tokio runtime when a webhook is configured.
    pub fn open(config: &WitnessConfig) -> Result<Arc<Witness>, WitnessError> {
        validate_prefix(&config.submission_prefix)?;
        validate_prefix(&config.monitoring_prefix)?;
        create_dir_durable(&config.data_dir)?;
        let cosigner = crate::keys::load_or_generate(&config.data_dir, config.name.as_deref())?;
        let vkey = cosigner.verifier().to_vkey();
        let logs_root = config.data_dir.join(LOGS_DIR);
        create_dir_durable(&logs_root)?;

        let mut logs = HashMap::new();
        let mut by_origin_hash = HashMap::new();
        for log in &known_logs(config)? {
            if log.origin.is_empty() || log.origin.contains('\n') {
                return Err(WitnessError::Config(format!(
                    "bad origin {:?}: must be one non-empty line",
                    log.origin
                )));
            }
            if logs.contains_key(&log.origin) {
                return Err(WitnessError::Config(format!(
                    "origin {:?} is configured twice",
                    log.origin
                )));
            }
            let verifier = parse_verifier_key(log.vkey.trim())
                .map_err(|e| WitnessError::Config(format!("vkey of log {:?}: {e}", log.origin)))?;
            if merklog_note::Verifier::name(&verifier) != log.origin {
                // A log signs with a key named after its origin (C2SP
                // tlog-checkpoint), so this entry would refuse every checkpoint.
                tracing::warn!(
                    origin = %log.origin,
                    key_name = %merklog_note::Verifier::name(&verifier),
                    "the log's origin differs from the name of its vkey: every checkpoint of this \
                     log will be refused; check the origin and vkey of this log's entry"
                );
            }
            let slot = Arc::new(open_slot(&logs_root, &log.origin, verifier)?);
            by_origin_hash.insert(origin_hash_hex(&log.origin), slot.clone());
            logs.insert(log.origin.clone(), slot);
        }
        report_unconfigured_logs(&logs_root, &by_origin_hash);
        let follow_tls = crate::connect::tls_config(config.follow_ca_cert.as_deref())?;
        for follow in &config.follow {
            crate::connect::endpoint(&follow.grpc_url, &follow_tls).map_err(|reason| {
                WitnessError::Config(format!(
                    "grpc-url of followed log {:?}: {reason}",
                    follow.origin
                ))
            })?;
        }
        let metrics = Arc::new(Metrics::new());
        let follow = config
            .follow
            .iter()
            .map(|f| (f.clone(), Arc::new(metrics.follow_counters(&f.origin))))
            .collect();

        let alarms = AlarmSender::start(
            config.webhook_url.clone(),
            config.webhook_timeout,
            metrics.clone(),
        )?;
        Ok(Arc::new(Witness {
            cosigner,
            vkey,
            data_dir: config.data_dir.clone(),
            logs,
            by_origin_hash,
            submission_prefix: config.submission_prefix.clone(),
            monitoring_prefix: config.monitoring_prefix.clone(),
            metrics,
            alarms,
            failpoint: config.failpoint,
            follow,
            follow_tls,
        }))
    }

    /// The TLS settings followers use for `https://` logs.
    pub(crate) fn follow_tls(&self) -> &tonic::transport::ClientTlsConfig {
        &self.follow_tls
    }

    /// The witness's cosigner vkey (`name+hexid+base64(0x04 || key)`).
    pub fn vkey(&self) -> &str {
        &self.vkey
    }

    /// A verifier for the witness's cosignatures.
    pub fn cosignature_verifier(&self) -> CosignatureVerifier {
        self.cosigner.verifier()
    }

    /// The submission prefix (`POST <prefix>/add-checkpoint`).
    pub fn submission_prefix(&self) -> &str {
        &self.submission_prefix
    }

    /// The monitoring prefix (`GET <prefix>/<origin hash>/checkpoint`).
    pub fn monitoring_prefix(&self) -> &str {
        &self.monitoring_prefix
    }

    pub(crate) fn metrics_handle(&self) -> &Metrics {
        &self.metrics
    }

    /// The `/metrics` page (Prometheus text format).
    pub fn render_metrics(&self) -> String {
        let frozen = self
            .logs
            .values()
            .filter(|s| s.frozen.load(Ordering::Relaxed))
            .count();
        self.metrics.render(self.logs.len(), frozen)
    }

    /// The followed logs, with their counters.
    pub(crate) fn followed(&self) -> &[(FollowConfig, Arc<FollowCounters>)] {
        &self.follow
    }

    /// The size of the latest checkpoint cosigned for a configured log (`Some(0)`
    /// when nothing was cosigned yet, `None` for an unknown origin).
    pub async fn cosigned_size(&self, origin: &str) -> Option<u64> {
        let tree = self.stored_tree(origin).await?;
        Some(tree.latest.map_or(0, |(size, _)| size))
    }

    /// A snapshot of a configured log's state, for the follower.
    pub(crate) async fn stored_tree(&self, origin: &str) -> Option<StoredTree> {
        let slot = self.logs.get(origin)?;
        let state = slot.state.lock().await;
        Some(StoredTree {
            latest: state.latest.map(|l| (l.size, l.root)),
            refusing: state.frozen.is_some() || state.storage_failed,
        })
    }

    /// The state directory of a configured log.
    pub fn log_dir(&self, origin: &str) -> Option<&Path> {
        self.logs.get(origin).map(|s| s.dir.path())
    }

    /// Whether a configured log is frozen.
    pub fn is_frozen(&self, origin: &str) -> Option<bool> {
        self.logs
            .get(origin)
            .map(|s| s.frozen.load(Ordering::Relaxed))
    }

    /// The latest cosigned checkpoint (log signatures and the witness cosignature) of
    /// the log whose origin hashes to `origin_hash` (lowercase hex), if any.
    pub fn latest_checkpoint(&self, origin_hash: &str) -> Option<Bytes> {
        self.by_origin_hash
            .get(origin_hash)
            .and_then(|slot| slot.published.borrow().clone())
    }

    /// Handles an `add-checkpoint` body; on success returns the cosignature line(s).
    ///
    /// The work runs in its own task so that a client hanging up cannot cancel it
    /// between persisting the new state and updating the in-memory copy.
    pub async fn add_checkpoint(self: &Arc<Self>, body: Bytes) -> Result<Bytes, WitnessError> {
        let this = self.clone();
        tokio::spawn(async move { this.add_checkpoint_in_task(&body).await })
            .await
            .unwrap_or_else(|e| Err(WitnessError::Task(e.to_string())))
    }

    async fn add_checkpoint_in_task(&self, body: &[u8]) -> Result<Bytes, WitnessError> {
        let request = parse_add_checkpoint(body)?;
        let note = Note::parse(&request.checkpoint).map_err(WitnessError::MalformedCheckpoint)?;
        let checkpoint =
            Checkpoint::from_text(note.text()).map_err(WitnessError::MalformedCheckpoint)?;
        let slot = self
            .logs
            .get(&checkpoint.origin)
            .ok_or_else(|| WitnessError::UnknownOrigin(checkpoint.origin.clone()))?;
        let log_signatures =
            note.verify(&slot.verifiers)
                .map_err(|source| WitnessError::Unauthorized {
                    origin: checkpoint.origin.clone(),
                    source,
                })?;
        // Stateless checks, before taking the lock.
        if request.old_size > checkpoint.size {
            return Err(WitnessError::OldSizeAfterCheckpoint {
                old_size: request.old_size,
                checkpoint_size: checkpoint.size,
            });
        }
        if checkpoint.size == 0 && checkpoint.root != empty_root() {
            return Err(WitnessError::EmptyTreeRootMismatch {
                root: checkpoint.root,
            });
        }
        // `old 0` never reaches a consistency verifier: the empty tree is consistent
        // with every tree, so the proof must be empty.
        if request.old_size == 0 && !request.proof.is_empty() {
            return Err(WitnessError::ProofWithOldZero {
                lines: request.proof.len(),
            });
        }

        let mut state = slot.state.lock().await;
        if state.storage_failed {
            return Err(WitnessError::StorageFailed {
                origin: slot.origin.clone(),
            });
        }
        if let Some(reason) = &state.frozen {
            return Err(WitnessError::Frozen {
                origin: slot.origin.clone(),
                reason: reason.clone(),
            });
        }
        // A second signed root at the cosigned size is a fork whatever old size the
        // client claims, so this comes before the 409 check.
        if let Some(latest) = state.latest
            && latest.size == checkpoint.size
            && latest.root != checkpoint.root
        {
            return Err(self
                .record_fork(slot, &mut state, latest, &checkpoint, &request.checkpoint)
                .await);
        }
        let stored_size = state.latest.map_or(0, |l| l.size);
        if request.old_size != stored_size {
            return Err(WitnessError::SizeConflict {
                old_size: request.old_size,
                stored_size,
            });
        }
        // With `old 0` there is nothing to verify (and the proof was checked empty).
        if let Some(latest) = state.latest
            && request.old_size > 0
            && let Err(source) = verify_consistency(
                TreeSize(latest.size),
                TreeSize(checkpoint.size),
                &request.proof,
                &latest.root,
                &checkpoint.root,
            )
        {
            return Err(self
                .record_bad_proof(slot, &mut state, &request, &checkpoint, body, source)
                .await);
        }

        let timestamp = unix_now()?;
        let cosignature = self
            .cosigner
            .cosign(note.text(), timestamp)
            .map_err(WitnessError::Key)?;
        let stored_note = cosigned_note(note.text(), &log_signatures, &cosignature);

        // Persist before answering: once this returns, the new state survives a crash.
        // On error the old state is intact on disk and in memory, and no cosignature
        // leaves the witness.
        let dir = slot.dir.clone();
        let data_dir = self.data_dir.clone();
        let failpoint = self.failpoint;
        let to_store = stored_note.clone();
        let persisted = tokio::task::spawn_blocking(move || {
            dir.store_checkpoint(&to_store, failpoint, &data_dir)
        })
        .await
        .unwrap_or_else(|e| Err(WitnessError::Task(e.to_string())));
        if let Err(error) = persisted {
            // After a failed write or fsync the file may hold either state, and the
            // page cache cannot be trusted: stop serving this log until a restart
            // reloads its state from disk.
            state.storage_failed = true;
            tracing::error!(%error, origin = %slot.origin, "cannot persist the new state; log disabled until restart");
            return Err(error);
        }

        state.latest = Some(Cosigned {
            size: checkpoint.size,
            root: checkpoint.root,
        });
        slot.published.send_replace(Some(Bytes::from(stored_note)));
        drop(state);
        self.metrics.count_cosignature();
        tracing::debug!(origin = %checkpoint.origin, size = checkpoint.size, "cosigned");
        Ok(Bytes::from(cosignature.to_line()))
    }

    /// Saves fork evidence, freezes the log and raises the alarms.
    async fn record_fork(
        &self,
        slot: &LogSlot,
        state: &mut LogState,
        latest: Cosigned,
        checkpoint: &Checkpoint,
        submitted: &[u8],
    ) -> WitnessError {
        let error = WitnessError::ForkDetected {
            origin: slot.origin.clone(),
            size: checkpoint.size,
            cosigned_root: latest.root,
            new_root: checkpoint.root,
        };
        let cosigned = slot.published.borrow().clone().unwrap_or_default();
        let summary = format!(
            "fork detected at {}\norigin {}\nsize {}\ncosigned root {}\nconflicting root {}\n",
            unix_now().unwrap_or(0),
            slot.origin,
            checkpoint.size,
            STANDARD.encode(latest.root),
            STANDARD.encode(checkpoint.root),
        );
        let name = format!(
            "fork-{}-{}",
            checkpoint.size,
            short_digest(checkpoint.to_text().as_bytes())
        );
        let files: Vec<(&'static str, Vec<u8>)> = vec![
            ("cosigned.checkpoint", cosigned.to_vec()),
            ("conflicting.checkpoint", submitted.to_vec()),
            ("summary.txt", summary.clone().into_bytes()),
        ];
        let evidence = self.save_evidence(slot, state, name, files).await;
        let evidence_path = evidence
            .as_ref()
            .map_or_else(|| "(not saved)".to_owned(), |p| p.display().to_string());

        // Freeze in memory first: even if the marker cannot be written, nothing more
        // is cosigned for this log while the process runs.
        let reason = format!("fork at size {}", checkpoint.size);
        state.frozen = Some(reason.clone());
        slot.frozen.store(true, Ordering::Relaxed);
        let dir = slot.dir.clone();
        // First line: the reason reported to clients; then details for the operator.
        let reason = format!(
            "{reason}\n{summary}evidence {evidence_path}\n\
             To unfreeze after investigating: stop the witness, delete this file, start it.\n"
        );
        match tokio::task::spawn_blocking(move || dir.freeze(&reason)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(%err, "cannot write the FROZEN marker"),
            Err(err) => tracing::error!(%err, "cannot write the FROZEN marker"),
        }
        self.metrics.count_fork();
        tracing::error!(
            origin = %slot.origin,
            size = checkpoint.size,
            cosigned_root = %STANDARD.encode(latest.root),
            conflicting_root = %STANDARD.encode(checkpoint.root),
            evidence = %evidence_path,
            "FORK DETECTED: the log signed two different roots at one size; log frozen"
        );
        self.alarms.send(Alarm {
            kind: "fork".into(),
            origin: slot.origin.clone(),
            size: checkpoint.size,
            cosigned_root: STANDARD.encode(latest.root),
            conflicting_root: STANDARD.encode(checkpoint.root),
            evidence: evidence_path,
        });
        error
    }

    /// Saves bad-proof evidence and counts it; the log is not frozen.
    async fn record_bad_proof(
        &self,
        slot: &LogSlot,
        state: &mut LogState,
        request: &AddCheckpointRequest,
        checkpoint: &Checkpoint,
        body: &[u8],
        source: merklog_merkle::MerkleError,
    ) -> WitnessError {
        self.metrics.count_bad_proof();
        let error = WitnessError::InconsistentProof {
            old_size: request.old_size,
            new_size: checkpoint.size,
            source,
        };
        let cosigned = slot.published.borrow().clone().unwrap_or_default();
        let summary = format!(
            "bad consistency proof at {}\norigin {}\nold size {}\nnew size {}\nerror {}\n",
            unix_now().unwrap_or(0),
            slot.origin,
            request.old_size,
            checkpoint.size,
            error
        );
        let name = format!(
            "bad-proof-{}-{}-{}",
            request.old_size,
            checkpoint.size,
            short_digest(checkpoint.to_text().as_bytes())
        );
        let files: Vec<(&'static str, Vec<u8>)> = vec![
            ("request", body.to_vec()),
            ("cosigned.checkpoint", cosigned.to_vec()),
            ("summary.txt", summary.into_bytes()),
        ];
        let evidence = self.save_evidence(slot, state, name, files).await;
        tracing::warn!(
            origin = %slot.origin,
            old_size = request.old_size,
            new_size = checkpoint.size,
            evidence = ?evidence,
            %error,
            "consistency proof failed for a validly signed checkpoint"
        );
        error
    }

    /// Writes one evidence directory (off the async workers), respecting the cap.
    async fn save_evidence(
        &self,
        slot: &LogSlot,
        state: &mut LogState,
        name: String,
        files: Vec<(&'static str, Vec<u8>)>,
    ) -> Option<PathBuf> {
        if state.evidence_entries >= MAX_EVIDENCE_PER_LOG {
            self.metrics.count_evidence_dropped();
            tracing::warn!(origin = %slot.origin, "evidence cap reached; evidence not saved");
            return None;
        }
        let dir = slot.dir.clone();
        let result = tokio::task::spawn_blocking(move || {
            let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (*n, c.as_slice())).collect();
            dir.save_evidence(&name, &refs)
        })
        .await;
        match result {
            Ok(Ok(Some(path))) => {
                state.evidence_entries = state.evidence_entries.saturating_add(1);
                Some(path)
            }
            Ok(Ok(None)) => None,
            Ok(Err(err)) => {
                tracing::error!(%err, origin = %slot.origin, "cannot save evidence");
                None
            }
            Err(err) => {
                tracing::error!(%err, origin = %slot.origin, "cannot save evidence");
                None
            }
        }
    }
}

/// The configured logs plus the followed logs not listed under `[[log]]`. A followed
/// log that is also a configured log must name the same vkey; an origin may be
/// followed once.
fn known_logs(config: &WitnessConfig) -> Result<Vec<crate::config::LogConfig>, WitnessError> {
    let mut logs = config.logs.clone();
    let mut followed = std::collections::HashSet::new();
    for follow in &config.follow {
        if !followed.insert(follow.origin.as_str()) {
            return Err(WitnessError::Config(format!(
                "origin {:?} is followed twice",
                follow.origin
            )));
        }
        match config.logs.iter().find(|l| l.origin == follow.origin) {
            Some(log) if log.vkey.trim() != follow.vkey.trim() => {
                return Err(WitnessError::Config(format!(
                    "followed log {:?} names another vkey than its [[log]] entry",
                    follow.origin
                )));
            }
            Some(_) => {}
            None => logs.push(follow.log()),
        }
    }
    Ok(logs)
}

/// Opens one log's directory and loads its state.
fn open_slot(
    logs_root: &Path,
    origin: &str,
    verifier: merklog_note::Ed25519Verifier,
) -> Result<LogSlot, WitnessError> {
    let dir = LogDir::open(logs_root, origin)?;
    let (latest, published) = match dir.load_checkpoint()? {
        None => (None, None),
        Some(bytes) => {
            let path = dir.path().join(crate::store::CHECKPOINT_FILE);
            let corrupt = |reason: String| WitnessError::CorruptState {
                path: path.clone(),
                reason,
            };
            // Signatures are not verified again: they were checked when the witness
            // cosigned, and the log's key may have been rotated in the configuration.
            let note = Note::parse(&bytes).map_err(|e| corrupt(e.to_string()))?;
            let checkpoint =
                Checkpoint::from_text(note.text()).map_err(|e| corrupt(e.to_string()))?;
            if checkpoint.origin != origin {
                return Err(corrupt(format!(
                    "holds origin {:?}, expected {origin:?}",
                    checkpoint.origin
                )));
            }
            (
                Some(Cosigned {
                    size: checkpoint.size,
                    root: checkpoint.root,
                }),
                Some(Bytes::from(bytes)),
            )
        }
    };
    let frozen = dir.frozen_reason()?;
    if let Some(reason) = &frozen {
        tracing::error!(%origin, %reason, "log is FROZEN after a detected fork; remove the FROZEN marker and restart to unfreeze");
    }
    let evidence_entries = dir.evidence_count()?;
    let mut verifiers = Verifiers::new();
    verifiers
        .add(verifier)
        .map_err(|e| WitnessError::Config(format!("vkey of log {origin:?}: {e}")))?;
    Ok(LogSlot {
        origin: origin.to_owned(),
        verifiers,
        dir,
        frozen: AtomicBool::new(frozen.is_some()),
        state: Mutex::new(LogState {
            latest,
            frozen,
            evidence_entries,
            storage_failed: false,
        }),
        published: watch::Sender::new(published),
    })
}

/// Logs (without touching them) state directories of logs no longer configured:
/// they are kept so that re-adding a log resumes its history.
fn report_unconfigured_logs(logs_root: &Path, configured: &HashMap<String, Arc<LogSlot>>) {
    let Ok(entries) = std::fs::read_dir(logs_root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !configured.contains_key(&name) {
            let origin =
                std::fs::read_to_string(entry.path().join(ORIGIN_FILE)).unwrap_or_default();
            tracing::info!(
                origin = %origin.trim_end(),
                dir = %entry.path().display(),
                "keeping the state of a log that is no longer configured"
            );
        }
    }
}

/// Checkpoint text, the log signatures the witness verified, then its cosignature.
fn cosigned_note(
    text: &str,
    log_signatures: &[NoteSignature],
    cosignature: &NoteSignature,
) -> Vec<u8> {
    let mut out = String::with_capacity(text.len() + 256);
    out.push_str(text);
    out.push('\n');
    for sig in log_signatures {
        out.push_str(&sig.to_line());
    }
    out.push_str(&cosignature.to_line());
    out.into_bytes()
}

/// First 8 bytes of SHA-256, hex: names evidence so a replay does not add files.
fn short_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let mut text = Hash::from_bytes(sha2::Sha256::digest(bytes).into()).to_string();
    text.truncate(16);
    text
}

/// The current POSIX time; cosignature timestamps must not be zero.
fn unix_now() -> Result<u64, WitnessError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| WitnessError::Clock)?
        .as_secs();
    if secs == 0 || secs > i64::MAX as u64 {
        return Err(WitnessError::Clock);
    }
    Ok(secs)
}
