//! The `Log` handle: opening (recovery), appending through the sequencer queue, and
//! reads served straight from storage on blocking threads, bounded by the published size.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use merklog_merkle::bundle::{BundleEntries, bundle_prefix_len};
use merklog_merkle::tile::{TILE_WIDTH, TileId, tile_width_at};
use merklog_merkle::{HASH_SIZE, Hash, LeafIndex, ProofError, TreeSize, hash_leaf};
use merklog_note::{Signer, Verifier};
use tokio::sync::{oneshot, watch};

use crate::collector;
use crate::filter::{self, LeafFilter};
use crate::publish::{PublishNow, Publisher};
use crate::queue::{Queue, Request};
use crate::recovery::{Recovered, check_identity, published_at_open, recover};
use crate::sequencer::{Sequencer, Start};
use crate::state::{Shared, SigningGate};
use crate::tiles::{ReadError, StoredTree, TileReader};
use crate::writer::{Pipeline, Writer};
use crate::{
    AppendReceipt, KeyRecord, LogConfig, LogError, LogStore, SignedCheckpoint, metrics as m,
};

/// Most entries one [`Log::entries`] call returns; ask for longer ranges in pieces.
pub const MAX_ENTRIES_PER_READ: u64 = 1024;

/// Up to this many leaves the leaf filter is filled before `open` returns (one tile
/// read); a larger log fills it on a thread of its own.
const FILL_IN_FOREGROUND: u64 = 64 * 256;

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, LogError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map_err(|e| LogError::Unavailable(format!("cannot start the {name} thread: {e}")))
}

fn fill_filter(filter: &Mutex<LeafFilter>, store: &dyn LogStore, size: u64) {
    match filter::fill(filter, store, size) {
        Ok(()) => tracing::debug!(size, "leaf filter ready"),
        Err(e) => {
            tracing::warn!(%e, "cannot fill the leaf filter; every entry takes the dedup lookup")
        }
    }
}

/// A cheap, cloneable handle on one log. The sequencer thread stops when the last
/// handle is dropped (or at [`shutdown`](Log::shutdown)).
#[derive(Clone)]
pub struct Log {
    pub(crate) inner: Arc<Handle>,
}

pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    /// The log's own key, to open the checkpoints it stored.
    pub(crate) verifier: Arc<dyn Verifier>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Why appends are turned away at once, if they are: this node does not sequence
    /// (a standby of a cluster, or a reader).
    pub(crate) standby: Mutex<Option<String>>,
    /// The sequencer's leaf filter: [`Log::follow`] adds the leaves it finds.
    pub(crate) filter: Arc<Mutex<LeafFilter>>,
    pub(crate) pipeline: Arc<Pipeline>,
    /// The tree size whose leaves the filter holds (as far as `follow` is concerned).
    pub(crate) followed: Mutex<u64>,
    /// With a witness policy: wakes the coordinator of a deferred start-up check.
    pub(crate) lead: Option<collector::LeadSender>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The thread drains and exits on its own; nothing to join from a destructor.
        self.shared.queue.close();
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("origin", &self.inner.shared.origin)
            .field("size", &self.latest().size())
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Recovers from the store (fail closed) and spawns the sequencer thread.
    ///
    /// The store must hold the log's metadata (origin, verifier key, algorithm); the
    /// origin must equal `origin` and `signer` must be the metadata's key (checked by
    /// signing a probe and verifying it). The latest checkpoint must verify; if the
    /// stored tiles do not re-derive its root, the log opens read-only: reads are served,
    /// appends get [`LogError::SigningRefused`]. An empty store gets the signed size-0
    /// checkpoint. Blocks on storage reads: call it at start-up, not on a busy runtime.
    pub fn open(
        store: Arc<dyn LogStore>,
        signer: Arc<dyn Signer>,
        origin: String,
        config: LogConfig,
    ) -> Result<Log, LogError> {
        config.validate()?;
        let verifier = check_identity(&*store, Some(&*signer), &origin)?;
        Self::start(store, signer, verifier, origin, config)
    }

    pub(crate) fn start(
        store: Arc<dyn LogStore>,
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
        origin: String,
        config: LogConfig,
    ) -> Result<Log, LogError> {
        let runtime = match &config.witnessing {
            Some(_) => Some(tokio::runtime::Handle::try_current().map_err(|_| {
                LogError::InvalidConfig(
                    "witness collection runs on a tokio runtime: call Log::open inside one".into(),
                )
            })?),
            None => None,
        };
        let (state, checkpoint, refusal) = match recover(&*store, &*signer, &*verifier, &origin)? {
            Recovered::Ready { state, checkpoint } => (Some(state), checkpoint, None),
            Recovered::Refused { checkpoint, reason } => (None, checkpoint, Some(reason)),
        };
        // With a witness policy, what is public is the latest checkpoint that was
        // published (quorum met or fail-open), which may be smaller than the latest
        // durable one after a crash before the quorum.
        let published = match &config.witnessing {
            Some(witnessing) => published_at_open(
                &*store,
                &*signer,
                &*verifier,
                &origin,
                &checkpoint,
                witnessing.deferred,
            )?,
            None => checkpoint.clone(),
        };
        metrics::gauge!(m::TREE_SIZE).set(published.size().0 as f64);
        metrics::gauge!(m::PUBLISHED_SIZE).set(published.size().0 as f64);
        metrics::gauge!(m::DURABLE_SIZE).set(checkpoint.size().0 as f64);
        metrics::gauge!(m::SIGNING_REFUSED).set(if refusal.is_some() { 1.0 } else { 0.0 });
        let (published, _) = watch::channel(published);
        let witnessing = config.witnessing.clone();
        let shared = Arc::new(Shared {
            queue: Queue::new(config.queue_capacity, config.queue_capacity_bytes),
            origin,
            tree: StoredTree::new(store.clone()),
            store,
            published,
            refusal: watch::Sender::new(refusal),
            storage_failure: Mutex::new(None),
            durable_size: AtomicU64::new(checkpoint.size().0),
            // Without a policy there is nothing to check before signing.
            gate: SigningGate::new(config.witnessing.is_none()),
            config,
        });
        let (publisher, lead): (Box<dyn Publisher>, _) = match (&witnessing, &runtime) {
            (Some(witnessing), Some(runtime)) => {
                let (publisher, lead) =
                    collector::start(shared.clone(), witnessing, runtime, checkpoint.clone())?;
                (Box::new(publisher), Some(lead))
            }
            _ => (
                Box::new(PublishNow {
                    shared: shared.clone(),
                }),
                None,
            ),
        };
        let size = checkpoint.size().0;
        let filter = Arc::new(Mutex::new(LeafFilter::with_capacity(size)));
        if size <= FILL_IN_FOREGROUND {
            fill_filter(&filter, &*shared.store, size);
        } else {
            // A large log: new entries take the dedup lookup until the filter is full.
            let (filter, store) = (filter.clone(), shared.store.clone());
            spawn("merklog-leaf-filter", move || {
                fill_filter(&filter, &*store, size)
            })?;
        }
        let pipeline = Arc::new(Pipeline::default());
        let handle_filter = filter.clone();
        let handle_pipeline = pipeline.clone();
        let (to_writer, rounds) = std::sync::mpsc::sync_channel(0);
        let steps = Arc::new(Mutex::new(Writer {
            shared: shared.clone(),
            pipeline: pipeline.clone(),
            publisher,
        }));
        let (writer_steps, writer_shared) = (steps.clone(), shared.clone());
        let writer = spawn("merklog-writer", move || {
            Writer::run(&writer_steps, &writer_shared, rounds)
        })?;
        let sequencer = Sequencer::new(Start {
            shared: shared.clone(),
            signer,
            verifier: verifier.clone(),
            state,
            checkpoint,
            filter,
            pipeline,
            writer: (to_writer, writer),
            steps,
        });
        let thread = spawn("merklog-sequencer", move || sequencer.run())?;
        Ok(Log {
            inner: Arc::new(Handle {
                shared,
                verifier,
                thread: Mutex::new(Some(thread)),
                standby: Mutex::new(None),
                filter: handle_filter,
                pipeline: handle_pipeline,
                followed: Mutex::new(size),
                lead,
            }),
        })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The log's origin (checkpoint first line).
    pub fn origin(&self) -> &str {
        &self.shared().origin
    }

    /// The configuration the log runs with.
    pub fn config(&self) -> &LogConfig {
        &self.shared().config
    }

    /// Size of the latest durable checkpoint: signed and synced, but with a witness
    /// policy possibly not published yet (never smaller than [`latest`](Log::latest)).
    pub fn durable_size(&self) -> TreeSize {
        self.shared().durable_size()
    }

    /// Why the log refuses to sign, if it does (for health reporting).
    pub fn signing_refused(&self) -> Option<String> {
        self.shared().refusal()
    }

    /// Changes of [`Log::signing_refused`]: a refusal can come after open (the witness
    /// start-up check runs in the background), and the server turns health
    /// NOT_SERVING when it does.
    pub fn watch_signing_refused(&self) -> watch::Receiver<Option<String>> {
        self.shared().refusal.subscribe()
    }

    /// Whether the log can accept appends: `Err(SigningRefused)` while it refuses to
    /// sign (stored data does not re-derive the signed root), `Err(Unavailable)` while
    /// its last round could not be made durable (until a round succeeds again). Reads are
    /// served either way. For health reporting.
    pub fn health(&self) -> Result<(), LogError> {
        if let Some(reason) = self.shared().refusal() {
            return Err(LogError::SigningRefused(reason));
        }
        if let Some(failure) = self.shared().storage_failure() {
            return Err(LogError::Unavailable(failure));
        }
        Ok(())
    }

    /// Checks a call's entries without queueing them: non-empty, at most
    /// `max_entry_bytes` each. The first bad entry is named.
    pub fn validate_entries(&self, entries: &[impl AsRef<[u8]>]) -> Result<(), LogError> {
        let limit = self.shared().config.max_entry_bytes;
        for (index, entry) in entries.iter().enumerate() {
            let len = entry.as_ref().len();
            if len == 0 {
                return Err(LogError::InvalidEntry {
                    index,
                    reason: "entry is empty; entries must be 1 byte or more".into(),
                });
            }
            if len > limit {
                return Err(LogError::InvalidEntry {
                    index,
                    reason: format!("entry is {len} bytes, the limit is {limit} (max_entry_bytes)"),
                });
            }
        }
        Ok(())
    }

    /// Appends entries and waits until every one is durable and covered by a published
    /// signed checkpoint (sealed). Identical bytes already in the log get their existing
    /// index back, marked duplicate. The whole call is rejected if any entry is invalid.
    /// A full queue answers [`LogError::QueueFull`] at once.
    ///
    /// With a witness policy the answer carries the first published (cosigned)
    /// checkpoint covering the entries; after `append_timeout` without one the call
    /// fails with [`LogError::QuorumTimeout`] (the entries stay durable).
    pub async fn append(&self, entries: Vec<Bytes>) -> Result<AppendReceipt, LogError> {
        self.append_keyed(entries, Vec::new()).await
    }

    /// [`Log::append`] with an optional unique key per entry (`keys` empty, or one per
    /// entry). At most one leaf holds a key: the same entry again is a duplicate; a
    /// different entry whose key is held refuses the whole call with
    /// [`LogError::KeyConflict`], naming the holder, and writes nothing. Each new
    /// key is stored with its leaf, in the same synced write (see [`KeyRecord`]).
    ///
    /// [`KeyRecord`]: crate::KeyRecord
    pub async fn append_keyed(
        &self,
        entries: Vec<Bytes>,
        keys: Vec<Option<Bytes>>,
    ) -> Result<AppendReceipt, LogError> {
        self.append_indexed(entries, keys, Vec::new()).await
    }

    /// [`Log::append_keyed`] with index terms per entry (`terms` empty, or one list
    /// per entry, each list possibly empty; see [`IndexTerm`]). Each new entry's terms
    /// are stored with its leaf, in the same synced write: once the call is answered
    /// the entry and its index rows are durable together, and a crash before leaves
    /// neither. A duplicate entry writes no rows. A bad term (empty, NUL byte, longer
    /// than [`MAX_TERM_LEN`](crate::MAX_TERM_LEN)) refuses the whole call.
    ///
    /// [`IndexTerm`]: crate::IndexTerm
    pub async fn append_indexed(
        &self,
        entries: Vec<Bytes>,
        keys: Vec<Option<Bytes>>,
        terms: Vec<Vec<crate::IndexTerm>>,
    ) -> Result<AppendReceipt, LogError> {
        if !terms.is_empty() && terms.len() != entries.len() {
            return Err(LogError::InvalidEntry {
                index: terms.len().min(entries.len()),
                reason: format!(
                    "{} index term lists for {} entries; give one per entry or none",
                    terms.len(),
                    entries.len()
                ),
            });
        }
        for (index, list) in terms.iter().enumerate() {
            for term in list {
                crate::terms::check_term(&term.term)
                    .map_err(|reason| LogError::InvalidEntry { index, reason })?;
            }
        }
        let shared = self.shared();
        if !keys.is_empty() && keys.len() != entries.len() {
            return Err(LogError::InvalidEntry {
                index: keys.len().min(entries.len()),
                reason: format!(
                    "{} unique keys for {} entries; give one per entry or none",
                    keys.len(),
                    entries.len()
                ),
            });
        }
        if let Some(index) = keys
            .iter()
            .position(|k| k.as_ref().is_some_and(Bytes::is_empty))
        {
            return Err(LogError::InvalidEntry {
                index,
                reason: "an empty unique key".into(),
            });
        }
        if let Err(e) = self.validate_entries(&entries) {
            metrics::counter!(m::APPEND_REFUSED, "reason" => "invalid").increment(1);
            return Err(e);
        }
        let limit = shared.config.max_batch_entries;
        if entries.len() > limit {
            metrics::counter!(m::APPEND_REFUSED, "reason" => "too_many").increment(1);
            return Err(LogError::TooManyEntries {
                count: entries.len(),
                limit,
            });
        }
        if entries.is_empty() {
            return Ok(AppendReceipt {
                checkpoint: self.latest(),
                entries: Vec::new(),
            });
        }
        if let Some(reason) = self.standby() {
            metrics::counter!(m::APPEND_REFUSED, "reason" => "standby").increment(1);
            return Err(LogError::Unavailable(reason));
        }
        if let Some(reason) = shared.refusal() {
            return Err(LogError::SigningRefused(reason));
        }
        let bytes: usize = entries.iter().map(Bytes::len).sum();
        if bytes > shared.config.queue_capacity_bytes {
            metrics::counter!(m::APPEND_REFUSED, "reason" => "too_large").increment(1);
            return Err(LogError::CallTooLarge {
                bytes,
                limit: shared.config.queue_capacity_bytes,
            });
        }
        // Hash here, on the caller's task: spreads the hashing over every core.
        let leaf_hashes: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
        let (reply, answer) = oneshot::channel();
        let keys = if keys.iter().all(Option::is_none) {
            Box::default()
        } else {
            keys.into_boxed_slice()
        };
        let terms = if terms.iter().all(Vec::is_empty) {
            Box::default()
        } else {
            terms.into_boxed_slice()
        };
        let request = Request {
            bytes,
            entries,
            leaf_hashes,
            keys,
            terms,
            enqueued: Instant::now(),
            reply,
        };
        let enqueued = request.enqueued;
        if let Err(error) = shared.queue.push(request) {
            let reason = if error == LogError::QueueFull {
                "queue_full"
            } else {
                "shutting_down"
            };
            metrics::counter!(m::APPEND_REFUSED, "reason" => reason).increment(1);
            return Err(error);
        }
        let reply = match shared.config.witnessing {
            None => answer.await,
            Some(_) => match tokio::time::timeout(shared.config.append_timeout, answer).await {
                Ok(reply) => reply,
                Err(_) => {
                    metrics::counter!(m::APPEND_REFUSED, "reason" => "quorum_timeout").increment(1);
                    return Err(LogError::QuorumTimeout(format!(
                        "no published checkpoint covered the entries within {:?} (durable \
                         size {}, published size {}); they stay queued or durable and are \
                         published once the witnesses cosign; a retry returns their indexes",
                        shared.config.append_timeout,
                        shared.durable_size(),
                        shared.latest().size()
                    )));
                }
            },
        }
        .map_err(|_| LogError::Unavailable("the sequencer stopped".into()))??;
        metrics::histogram!(m::INTEGRATION_SECONDS).record(enqueued.elapsed().as_secs_f64());
        reply.into_receipt()
    }

    /// The latest published checkpoint. With a witness policy: the latest one that met
    /// the quorum (or was published fail-open), possibly smaller than
    /// [`durable_size`](Log::durable_size).
    pub fn latest(&self) -> Arc<SignedCheckpoint> {
        self.shared().latest()
    }

    /// Published checkpoints, latest wins: a slow receiver may skip some, and never
    /// sees the size go down.
    pub fn subscribe(&self) -> watch::Receiver<Arc<SignedCheckpoint>> {
        self.shared().published.subscribe()
    }

    /// Stops the log: requests no longer enter the queue (`ShuttingDown`), the round in
    /// flight finishes (its callers are answered normally), requests still queued are
    /// answered `ShuttingDown` (they were never sequenced; retrying elsewhere or later
    /// is safe), and the sequencer thread is joined. Idempotent.
    pub async fn shutdown(&self) {
        self.shared().queue.close();
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(thread) = thread else { return };
        if let Ok(Err(panic)) = tokio::task::spawn_blocking(move || thread.join()).await {
            tracing::error!(?panic, "the sequencer thread panicked");
        }
    }

    /// Runs a storage read on a blocking thread.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn LogStore) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let store = self.shared().store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(|e| LogError::Unavailable(format!("read task failed: {e}")))?
    }

    /// Runs `f` on a blocking thread with a reader of the stored tree at `size`.
    async fn read_tree<T: Send + 'static>(
        &self,
        size: TreeSize,
        f: impl FnOnce(&TileReader<'_>) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let tree = self.shared().tree.clone();
        tokio::task::spawn_blocking(move || f(&tree.at(size)))
            .await
            .map_err(|e| LogError::Unavailable(format!("read task failed: {e}")))?
    }

    /// RFC 6962 inclusion proof of leaf `index` in the tree of `tree_size` leaves
    /// (`index < tree_size <= published size`), from one batched tile read.
    pub async fn inclusion_proof(
        &self,
        index: LeafIndex,
        tree_size: TreeSize,
    ) -> Result<Vec<Hash>, LogError> {
        self.check_published(tree_size)?;
        if index.0 >= tree_size.0 {
            return Err(out_of_range(format!(
                "leaf index {index} is not below tree size {tree_size}"
            )));
        }
        self.read_tree(tree_size, move |reader| {
            merklog_merkle::inclusion_proof(reader, index, tree_size).map_err(proof_error)
        })
        .await
    }

    /// RFC 9162 consistency proof from `old_size` to `new_size`
    /// (`0 < old_size <= new_size <= published size`), from one batched tile read.
    pub async fn consistency_proof(
        &self,
        old_size: TreeSize,
        new_size: TreeSize,
    ) -> Result<Vec<Hash>, LogError> {
        self.check_published(new_size)?;
        if old_size.0 == 0 || old_size > new_size {
            return Err(out_of_range(format!(
                "consistency needs 0 < old size <= new size, got old {old_size}, new {new_size}"
            )));
        }
        self.read_tree(new_size, move |reader| {
            merklog_merkle::consistency_proof(reader, old_size, new_size).map_err(proof_error)
        })
        .await
    }

    /// The index of the entry with this RFC 6962 leaf hash, if it is in the published
    /// tree.
    pub async fn find_leaf(&self, leaf_hash: Hash) -> Result<Option<LeafIndex>, LogError> {
        let size = self.latest().size().0;
        self.read(move |store| {
            let found = store
                .lookup_leaves(&[leaf_hash])?
                .into_iter()
                .next()
                .flatten();
            Ok(found.filter(|index| *index < size).map(LeafIndex))
        })
        .await
    }

    /// The unique-key index's records of `keys` (one batched read), whatever the
    /// published size: a record may name a leaf that is durable but not yet published.
    pub async fn lookup_keys(&self, keys: Vec<Bytes>) -> Result<Vec<Option<KeyRecord>>, LogError> {
        self.read(move |store| Ok(store.lookup_keys(&keys)?)).await
    }

    /// Up to `limit` unique-key rows with `start <= key < end`, in key order
    /// (records as in [`Log::lookup_keys`]).
    pub async fn scan_keys(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, LogError> {
        self.read(move |store| Ok(store.scan_keys(&start, &end, limit)?))
            .await
    }

    /// The stored signed checkpoint of exactly `size` leaves (opened with the log's key:
    /// one that does not verify is corruption), if that size was checkpointed and is
    /// published.
    pub async fn checkpoint_at(
        &self,
        size: TreeSize,
    ) -> Result<Option<SignedCheckpoint>, LogError> {
        if size > self.latest().size() {
            return Ok(None);
        }
        let verifier = self.inner.verifier.clone();
        let origin = self.origin().to_owned();
        self.read(move |store| {
            let Some(note) = store.checkpoint(size.0)? else {
                return Ok(None);
            };
            let signed = SignedCheckpoint::open(note, &*verifier, Some(&origin)).map_err(|e| {
                LogError::from(ReadError::Corrupt(format!(
                    "the checkpoint stored for size {size}: {e}"
                )))
            })?;
            if signed.size() != size {
                return Err(ReadError::Corrupt(format!(
                    "the checkpoint stored for size {size} is of size {}",
                    signed.size()
                ))
                .into());
            }
            Ok(Some(signed))
        })
        .await
    }

    /// The entries `[start, end)`: `start < end <= published size` and at most
    /// [`MAX_ENTRIES_PER_READ`] of them.
    pub async fn entries(&self, start: LeafIndex, end: LeafIndex) -> Result<Vec<Bytes>, LogError> {
        self.check_published(TreeSize(end.0))?;
        let (start, end) = (start.0, end.0);
        if start >= end {
            return Err(out_of_range(format!("empty entry range [{start}, {end})")));
        }
        if end - start > MAX_ENTRIES_PER_READ {
            return Err(out_of_range(format!(
                "entry range [{start}, {end}) is longer than {MAX_ENTRIES_PER_READ}"
            )));
        }
        let width = u64::from(TILE_WIDTH);
        self.read(move |store| {
            let first = start / width;
            let last = (end - 1) / width;
            let indexes: Vec<u64> = (first..=last).collect();
            let bundles = store.read_bundles(&indexes)?;
            let mut out = Vec::with_capacity((end - start) as usize);
            for (bundle_index, bundle) in indexes.into_iter().zip(bundles) {
                let Some(bundle) = bundle else {
                    return Err(ReadError::Corrupt(format!(
                        "entry bundle {bundle_index} is missing"
                    ))
                    .into());
                };
                let base = bundle_index * width;
                let from = start.saturating_sub(base) as usize;
                let to = (end - base).min(width) as usize;
                let bundle = Bytes::from(bundle);
                let corrupt = |reason: String| {
                    LogError::from(ReadError::Corrupt(format!(
                        "entry bundle {bundle_index}: {reason}"
                    )))
                };
                let mut found = 0;
                for entry in BundleEntries::new(&bundle).take(to) {
                    let entry = entry.map_err(|e| corrupt(e.to_string()))?;
                    if found >= from {
                        out.push(bundle.slice_ref(entry));
                    }
                    found += 1;
                }
                if found < to {
                    return Err(corrupt(format!(
                        "holds {found} entries, {to} were expected"
                    )));
                }
            }
            Ok(out)
        })
        .await
    }

    /// tlog-tiles hash tile `id` (`id.width` of 1..=256 hashes), if the published tree
    /// has that many hashes in it.
    pub async fn tile(&self, id: TileId) -> Result<Option<Bytes>, LogError> {
        let TileId {
            level,
            index,
            width,
        } = id;
        let published = tile_width_at(level, index, self.latest().size());
        if width == 0 || width > published {
            return Ok(None);
        }
        self.read(move |store| {
            let Some(mut tile) = store.read_tiles(&[id])?.into_iter().next().flatten() else {
                return Err(ReadError::Corrupt(format!("tile {level}/{index} is missing")).into());
            };
            let len = usize::from(width) * HASH_SIZE;
            if tile.len() < len {
                return Err(
                    ReadError::Corrupt(format!("tile {level}/{index} is too short")).into(),
                );
            }
            tile.truncate(len);
            Ok(Some(Bytes::from(tile)))
        })
        .await
    }

    /// tlog-tiles entry bundle `index` with its first `width` (1..=256) entries, if the
    /// published tree has that many entries in it.
    pub async fn entry_bundle(&self, index: u64, width: u16) -> Result<Option<Bytes>, LogError> {
        let published = tile_width_at(0, index, self.latest().size());
        if width == 0 || width > published {
            return Ok(None);
        }
        self.read(move |store| {
            let Some(mut bundle) = store.read_bundles(&[index])?.into_iter().next().flatten()
            else {
                return Err(ReadError::Corrupt(format!("entry bundle {index} is missing")).into());
            };
            let len = bundle_prefix_len(&bundle, usize::from(width)).map_err(|e| {
                LogError::from(ReadError::Corrupt(format!("entry bundle {index}: {e}")))
            })?;
            bundle.truncate(len);
            Ok(Some(Bytes::from(bundle)))
        })
        .await
    }

    fn check_published(&self, size: TreeSize) -> Result<(), LogError> {
        let published = self.latest().size();
        if size > published {
            return Err(out_of_range(format!(
                "tree size {size} is beyond the published size {published}"
            )));
        }
        Ok(())
    }
}

fn out_of_range(reason: String) -> LogError {
    LogError::OutOfRange { reason }
}

fn proof_error(error: ProofError<ReadError>) -> LogError {
    match error {
        ProofError::Merkle(e) => out_of_range(e.to_string()),
        ProofError::Read(e) => e.into(),
    }
}
