//! The sequencer thread: one integration round at a time, in the order of
//! the design note "Durability order of one integration round" (durability.md).
//! Each persistence step says what is durable there and what recovery does if the
//! process dies right after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use merklog_merkle::{
    BatchProofs, Hash, LeafIndex, NodeId, NodeReader, TreeSize, hashes_equal, inclusion_plan,
};
use merklog_note::{Checkpoint, Signer, Verifier, open_checkpoint, sign_checkpoint};
use tokio::sync::{oneshot, watch};

use crate::queue::{Batch, Queue, Request};
use crate::tiles::{ReadError, TileReader, TreeState};
use crate::{LogConfig, LogError, LogStore, PublishedCheckpoint, RoundWrite, metrics as m};

/// State shared by the sequencer thread and every `Log` handle.
pub(crate) struct Shared {
    pub(crate) origin: String,
    pub(crate) config: LogConfig,
    pub(crate) queue: Queue,
    pub(crate) store: Arc<dyn LogStore>,
    /// The latest published checkpoint; `send_replace` only, so it works without
    /// subscribers and never goes down.
    pub(crate) published: watch::Sender<Arc<PublishedCheckpoint>>,
    /// Why the log refuses to sign, if it does (fail closed after a failed recovery check).
    pub(crate) refusal: watch::Sender<Option<String>>,
    /// The last storage failure of a round, until a round or reload succeeds again.
    pub(crate) storage_failure: Mutex<Option<String>>,
    /// Size of the latest durable checkpoint (published or not).
    pub(crate) durable_size: AtomicU64,
    /// Closed until the witness start-up check allows signing (always open without a
    /// witness policy).
    pub(crate) gate: SigningGate,
}

/// Holds the sequencer back from signing until the witnesses' stored sizes are known
/// (durability.md "Rules that hold across rounds": check the last published size against
/// something outside the data directory before signing resumes).
pub(crate) struct SigningGate {
    open: AtomicBool,
    lock: Mutex<()>,
    opened: Condvar,
}

impl SigningGate {
    pub(crate) fn new(open: bool) -> Self {
        Self {
            open: AtomicBool::new(open),
            lock: Mutex::new(()),
            opened: Condvar::new(),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub(crate) fn open(&self) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.open.store(true, Ordering::Release);
        self.opened.notify_all();
    }

    /// Waits up to `timeout` for the gate to open; true if it is open.
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_open() {
            return true;
        }
        let _ = self
            .opened
            .wait_timeout(guard, timeout)
            .unwrap_or_else(PoisonError::into_inner);
        self.is_open()
    }
}

impl Shared {
    pub(crate) fn refusal(&self) -> Option<String> {
        self.refusal.borrow().clone()
    }

    pub(crate) fn set_refusal(&self, reason: Option<String>) {
        metrics::gauge!(m::SIGNING_REFUSED).set(if reason.is_some() { 1.0 } else { 0.0 });
        self.refusal.send_replace(reason);
    }

    pub(crate) fn storage_failure(&self) -> Option<String> {
        self.storage_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_storage_failure(&self, failure: Option<String>) {
        let mut current = self
            .storage_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.is_some() || failure.is_some() {
            *current = failure;
        }
    }

    pub(crate) fn latest(&self) -> Arc<PublishedCheckpoint> {
        self.published.borrow().clone()
    }

    pub(crate) fn durable_size(&self) -> u64 {
        self.durable_size.load(Ordering::Acquire)
    }

    fn set_durable(&self, size: u64) {
        self.durable_size.store(size, Ordering::Release);
        metrics::gauge!(m::DURABLE_SIZE).set(size as f64);
    }
}

/// What a caller gets back from its round. Proofs of new entries are extracted by the
/// caller from the shared `BatchProofs` (O(log n) copies each, on the caller's task),
/// which keeps that work off the sequencer thread.
pub(crate) struct RoundReply {
    pub(crate) checkpoint: Arc<PublishedCheckpoint>,
    pub(crate) proofs: Option<Arc<BatchProofs>>,
    pub(crate) entries: Vec<Assigned>,
}

/// One entry's outcome.
pub(crate) struct Assigned {
    pub(crate) index: u64,
    pub(crate) duplicate: bool,
    /// The proof of an entry that was already in the log before this round, read from
    /// storage; `None` for entries of this round (their proof is in `proofs`).
    pub(crate) stored_proof: Option<Vec<Hash>>,
}

pub(crate) type Reply = oneshot::Sender<Result<RoundReply, LogError>>;

/// A round that is durable: what remains is publishing its checkpoint and answering.
pub(crate) struct DurableRound {
    /// The checkpoint covering every entry of the round (the round's own, or the current
    /// one when the round only held duplicates).
    pub(crate) checkpoint: Arc<PublishedCheckpoint>,
    pub(crate) answers: Vec<(Reply, Result<RoundReply, LogError>)>,
}

/// Steps 7 to 9 of the durability order: what happens between "durable" and
/// "published", and when callers are answered.
///
/// Without a witness policy checkpoints are published as soon as they are durable
/// ([`PublishNow`]). With one, the witness stage (`collector.rs`) implements this trait
/// instead: it keeps serving the last cosigned checkpoint, sends the durable one to
/// witnesses off the round loop, and answers a round's callers once a published
/// checkpoint covers them. `durable` must never block: it runs on the sequencer thread.
pub(crate) trait Publisher: Send {
    fn durable(&mut self, round: DurableRound);
}

/// Publishes every durable checkpoint at once and answers the round.
pub(crate) struct PublishNow {
    pub(crate) shared: Arc<Shared>,
}

impl Publisher for PublishNow {
    fn durable(&mut self, round: DurableRound) {
        // Step 7: publish (latest wins; a watch never shows a smaller size).
        let size = round.checkpoint.size;
        let newer = self.shared.latest().size < size;
        if newer {
            self.shared.published.send_replace(round.checkpoint.clone());
            metrics::gauge!(m::TREE_SIZE).set(size as f64);
            metrics::gauge!(m::PUBLISHED_SIZE).set(size as f64);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            metrics::gauge!(m::CHECKPOINT_PUBLISHED_TIME).set(now.as_secs_f64());
        }
        // Step 9: answer. A caller that went away is not an error.
        for (reply, answer) in round.answers {
            let _ = reply.send(answer);
        }
    }
}

/// The outcome of recovering the tree from storage.
pub(crate) enum Recovered {
    /// Stored tiles re-derive the signed root: ready to sign.
    Ready {
        state: TreeState,
        checkpoint: Arc<PublishedCheckpoint>,
    },
    /// The signed checkpoint is valid but storage does not re-derive it: serve reads of
    /// the checkpoint, refuse to sign.
    Refused {
        checkpoint: Arc<PublishedCheckpoint>,
        reason: String,
    },
}

/// Start-up and reload recovery (durability.md "Start-up and recovery").
///
/// Fails (refusing to start) if the latest checkpoint is not validly signed by the log
/// key for this origin, or storage cannot be read. An empty store gets the size-0
/// checkpoint, signed and stored, so there is always a published checkpoint.
pub(crate) fn recover(
    store: &dyn LogStore,
    signer: &dyn Signer,
    verifier: &dyn Verifier,
    origin: &str,
) -> Result<Recovered, LogError> {
    let latest = store
        .latest_checkpoint()
        .map_err(|e| LogError::Storage(format!("reading the latest checkpoint: {e}")))?;
    let Some(note) = latest else {
        let state = TreeState::default();
        let checkpoint = sign(signer, origin, &state)?;
        // Durable here: the size-0 checkpoint (synced). A crash before this returns
        // leaves the store empty, and the next start does this again; Ed25519 is
        // deterministic, so it signs the same bytes.
        store
            .commit(&RoundWrite {
                checkpoint: Some((0, checkpoint.note.to_vec())),
                ..RoundWrite::default()
            })
            .map_err(|e| LogError::Storage(format!("storing the size-0 checkpoint: {e}")))?;
        return Ok(Recovered::Ready { state, checkpoint });
    };
    let (body, _) = open_checkpoint(&note, verifier, Some(origin)).map_err(|e| {
        LogError::Recovery(format!("the latest stored checkpoint does not verify: {e}"))
    })?;
    let checkpoint = Arc::new(PublishedCheckpoint {
        size: body.size,
        root: body.root,
        note: Bytes::from(note),
    });
    let refused = |reason: String| {
        tracing::error!(
            size = body.size,
            %reason,
            "STORED TREE DOES NOT MATCH THE SIGNED CHECKPOINT: refusing to sign, serving reads only"
        );
        Ok(Recovered::Refused {
            checkpoint: checkpoint.clone(),
            reason,
        })
    };
    let state = match TreeState::load(store, TreeSize(body.size)) {
        Ok(state) => state,
        Err(ReadError::Storage(e)) => return Err(LogError::Storage(format!("reading tiles: {e}"))),
        Err(ReadError::Corrupt(reason)) => return refused(reason),
    };
    let computed = state.range.root();
    if !hashes_equal(&computed, &body.root) {
        return refused(format!(
            "stored tiles give root {} at size {}, the signed checkpoint says {}",
            hex(&computed),
            body.size,
            hex(&body.root)
        ));
    }
    Ok(Recovered::Ready { state, checkpoint })
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Step 5: build and sign the checkpoint of `state` (origin, size, root).
fn sign(
    signer: &dyn Signer,
    origin: &str,
    state: &TreeState,
) -> Result<Arc<PublishedCheckpoint>, LogError> {
    let body = Checkpoint {
        origin: origin.to_owned(),
        size: state.size().0,
        root: state.range.root(),
        extensions: Vec::new(),
    };
    let note = sign_checkpoint(&body, signer)
        .map_err(|e| LogError::Unavailable(format!("signing failed: {e}")))?;
    Ok(Arc::new(PublishedCheckpoint {
        size: body.size,
        root: body.root,
        note: Bytes::from(note),
    }))
}

/// The sequencer thread's state.
pub(crate) struct Sequencer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) signer: Arc<dyn Signer>,
    pub(crate) verifier: Arc<dyn Verifier>,
    /// The durable tree; `None` after a failed round until a reload succeeds.
    pub(crate) state: Option<TreeState>,
    /// The checkpoint of `state` (the latest durable one), published or not.
    pub(crate) durable: Arc<PublishedCheckpoint>,
    pub(crate) publisher: Box<dyn Publisher>,
}

/// Closes the queue and answers whoever is still waiting if the thread ends for any
/// reason (including a panic), so no caller waits forever.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.queue.close();
        if let Batch::Closed(left) = self
            .0
            .queue
            .take_batch(usize::MAX, std::time::Duration::ZERO)
        {
            for request in left {
                let _ = request.reply.send(Err(LogError::ShuttingDown));
            }
        }
    }
}

impl Sequencer {
    /// The thread body: rounds until the queue is closed; requests still queued then are
    /// answered `ShuttingDown` (they were never promised anything).
    pub(crate) fn run(mut self) {
        let _guard = ExitGuard(self.shared.clone());
        let max_entries = self.shared.config.max_batch_entries;
        let max_wait = self.shared.config.max_batch_wait;
        loop {
            // Step 1: take a batch. Nothing has been promised to anyone yet.
            match self.shared.queue.take_batch(max_entries, max_wait) {
                Batch::Round(requests) => self.round(requests),
                Batch::Closed(left) => {
                    for request in left {
                        let _ = request.reply.send(Err(LogError::ShuttingDown));
                    }
                    return;
                }
            }
        }
    }

    fn round(&mut self, requests: Vec<Request>) {
        let started = Instant::now();
        if self.state.is_none() && self.shared.refusal().is_none() {
            self.reload();
        }
        if !self.shared.gate.is_open() {
            // Only with a witness policy, before the start-up check allowed signing.
            while !self.shared.gate.wait(Duration::from_millis(100)) {
                if self.shared.queue.is_closed() {
                    return fail_all(requests, &LogError::ShuttingDown);
                }
            }
        }
        if let Some(reason) = self.shared.refusal() {
            return fail_all(requests, &LogError::SigningRefused(reason));
        }
        let Some(state) = self.state.take() else {
            return fail_all(
                requests,
                &LogError::Unavailable(
                    "storage is failing; the last round could not be reloaded".into(),
                ),
            );
        };
        match self.integrate(&state, &requests) {
            Ok(round) => {
                // Step 7: swap the live state to the round's copy.
                self.state = Some(round.next.unwrap_or(state));
                self.shared.set_storage_failure(None);
                if round.checkpoint.size > self.durable.size {
                    self.durable = round.checkpoint.clone();
                    self.shared.set_durable(self.durable.size);
                }
                let size = round.checkpoint.size;
                let answers = self.answers(
                    requests,
                    &round.checkpoint,
                    round.proofs,
                    round.assignments,
                    size,
                );
                metrics::counter!(m::ROUNDS, "result" => "ok").increment(1);
                self.publisher.durable(DurableRound {
                    checkpoint: round.checkpoint,
                    answers,
                });
            }
            Err(RoundError { error, reload }) => {
                if reload {
                    // The in-memory copy is dropped; the next round reloads from disk.
                    tracing::error!(%error, "integration round failed; reloading state before the next round");
                    self.shared.set_storage_failure(Some(error.to_string()));
                } else {
                    self.state = Some(state);
                }
                metrics::counter!(m::ROUNDS, "result" => "failed").increment(1);
                fail_all(requests, &error);
            }
        }
        metrics::histogram!(m::ROUND_SECONDS).record(started.elapsed().as_secs_f64());
    }

    /// Reloads the tree from storage after a failed round. If the failed write did land
    /// (an error reported after the data reached the WAL), the reload finds its
    /// checkpoint and publishes it; its callers got `Unavailable` and their retries are
    /// answered from the dedup index.
    fn reload(&mut self) {
        let shared = self.shared.clone();
        match recover(
            &*shared.store,
            &*self.signer,
            &*self.verifier,
            &shared.origin,
        ) {
            Ok(Recovered::Ready { state, checkpoint }) => {
                tracing::info!(size = checkpoint.size, "state reloaded from storage");
                self.state = Some(state);
                self.durable = checkpoint.clone();
                self.shared.set_durable(checkpoint.size);
                self.publisher.durable(DurableRound {
                    checkpoint,
                    answers: Vec::new(),
                });
            }
            Ok(Recovered::Refused { reason, .. }) => shared.set_refusal(Some(reason)),
            Err(error) => {
                tracing::error!(%error, "reloading state from storage failed");
                shared.set_storage_failure(Some(error.to_string()));
            }
        }
    }

    /// Steps 2 to 6 on a copy of `state`; `state` itself is never modified.
    fn integrate(&self, state: &TreeState, requests: &[Request]) -> Result<Integrated, RoundError> {
        let store = &*self.shared.store;
        let total: usize = requests.iter().map(|r| r.entries.len()).sum();
        metrics::histogram!(m::BATCH_ENTRIES).record(total as f64);

        // Step 2: deduplicate within the batch, then ONE multi-get against the index.
        let mut first_seen: HashMap<&Hash, usize> = HashMap::with_capacity(total);
        let mut unique: Vec<Hash> = Vec::with_capacity(total);
        let mut unique_entry: Vec<&Bytes> = Vec::with_capacity(total);
        let mut slots: Vec<Slot> = Vec::with_capacity(total);
        for request in requests {
            for (hash, entry) in request.leaf_hashes.iter().zip(&request.entries) {
                match first_seen.get(hash) {
                    Some(&u) => slots.push(Slot {
                        unique: u,
                        repeat: true,
                    }),
                    None => {
                        first_seen.insert(hash, unique.len());
                        slots.push(Slot {
                            unique: unique.len(),
                            repeat: false,
                        });
                        unique.push(*hash);
                        unique_entry.push(entry);
                    }
                }
            }
        }
        let found = store.lookup_leaves(&unique).map_err(|e| {
            RoundError::keep(LogError::Unavailable(format!("dedup lookup failed: {e}")))
        })?;
        if found.len() != unique.len() {
            return Err(RoundError::keep(LogError::Unavailable(
                "dedup lookup returned the wrong count".into(),
            )));
        }

        // Step 3: assign indexes size.. in queue order to entries not in the log.
        let size = state.size().0;
        let mut new_leaves = Vec::new();
        let mut new_entries = Vec::new();
        let mut index_of = Vec::with_capacity(unique.len());
        for ((hash, entry), stored) in unique.iter().zip(&unique_entry).zip(&found) {
            match stored {
                Some(index) if *index < size => index_of.push((*index, true)),
                Some(index) => {
                    return Err(RoundError::keep(LogError::Unavailable(format!(
                        "dedup index points at leaf {index}, beyond the tree size {size}"
                    ))));
                }
                None => {
                    index_of.push((size + new_leaves.len() as u64, false));
                    new_leaves.push(*hash);
                    new_entries.push(*entry);
                }
            }
        }
        let assignments = slots
            .into_iter()
            .map(|slot| {
                let (index, old) = index_of.get(slot.unique).copied().ok_or_else(|| {
                    RoundError::keep(LogError::Unavailable("dedup slot out of range".into()))
                })?;
                Ok(AssignedSlot {
                    index,
                    repeat: slot.repeat || old,
                    old,
                })
            })
            .collect::<Result<Vec<_>, RoundError>>()?;

        if new_leaves.is_empty() {
            // Only duplicates: nothing to write, nothing to sign. The latest durable
            // checkpoint covers them (with a witness policy it may not be published
            // yet; the publisher answers once a published one covers them).
            return Ok(Integrated {
                next: None,
                checkpoint: self.durable.clone(),
                proofs: None,
                assignments,
            });
        }

        // Step 4: extend the tree in memory, on a copy; the live state is untouched.
        let internal =
            |e: String| RoundError::keep(LogError::Unavailable(format!("integration failed: {e}")));
        let (next, writes) = state.extend(&new_leaves, &new_entries).map_err(internal)?;
        let proofs =
            BatchProofs::new(&state.range, &new_leaves).map_err(|e| internal(e.to_string()))?;
        if !hashes_equal(&proofs.root(), &next.range.root()) {
            return Err(internal(
                "batch proofs and compact range disagree on the root".into(),
            ));
        }

        // Step 5: build and sign the checkpoint, once per round. The new size is larger
        // than the last durable one and the tree is built on it (`state` is the durable
        // state), so no size is ever signed with two roots.
        let checkpoint =
            sign(&*self.signer, &self.shared.origin, &next).map_err(RoundError::keep)?;

        // Step 6: ONE synced write batch: tiles, bundles, dedup rows, the checkpoint by
        // size and as latest.
        let round = RoundWrite {
            tiles: writes.tiles,
            bundles: writes.bundles,
            dedup: new_leaves
                .iter()
                .zip(size..)
                .map(|(h, i)| (*h, i))
                .collect(),
            checkpoint: Some((checkpoint.size, checkpoint.note.to_vec())),
        };
        let commit_started = Instant::now();
        store.commit(&round).map_err(|e| RoundError {
            // Crash or failure before this returns: after recovery either all of the
            // round is there or none of it (one atomic WAL batch). Nobody was answered,
            // so nothing acknowledged is lost; retries are idempotent via the dedup
            // index. On a reported failure we cannot know which, so drop the copy and
            // reload from disk before the next round.
            error: LogError::Unavailable(format!("the round could not be made durable: {e}")),
            reload: true,
        })?;
        // Durable here: every entry, tile, dedup row and the signed checkpoint of the
        // round. A crash from now on restarts from this checkpoint (recovery re-derives
        // its root from these tiles); the callers were not answered and will retry,
        // getting their indexes back as duplicates.
        metrics::histogram!(m::COMMIT_SECONDS).record(commit_started.elapsed().as_secs_f64());
        Ok(Integrated {
            next: Some(next),
            checkpoint,
            proofs: Some(Arc::new(proofs)),
            assignments,
        })
    }

    /// Builds each caller's answer. Entries that were already in the log before this
    /// round get proofs read from storage (one batched tile read for the whole round)
    /// against `size`, which is durable by now.
    fn answers(
        &self,
        requests: Vec<Request>,
        checkpoint: &Arc<PublishedCheckpoint>,
        proofs: Option<Arc<BatchProofs>>,
        assignments: Vec<AssignedSlot>,
        size: u64,
    ) -> Vec<(Reply, Result<RoundReply, LogError>)> {
        let old: Vec<(u64, Option<Hash>)> = requests
            .iter()
            .flat_map(|r| r.leaf_hashes.iter())
            .zip(&assignments)
            .filter(|(_, slot)| slot.old)
            .map(|(hash, slot)| (slot.index, Some(*hash)))
            .collect();
        let stored = if old.is_empty() {
            Ok(HashMap::new())
        } else {
            stored_proofs(&*self.shared.store, &old, TreeSize(size))
        };
        let mut slots = assignments.into_iter();
        let mut new_count = 0u64;
        let mut dup_count = 0u64;
        let answers = requests
            .into_iter()
            .map(|request| {
                let mine: Vec<AssignedSlot> = slots.by_ref().take(request.entries.len()).collect();
                let answer = (|| {
                    let entries = mine
                        .iter()
                        .map(|slot| {
                            let stored_proof = if slot.old {
                                let proofs = stored.as_ref().map_err(Clone::clone)?;
                                Some(proofs.get(&slot.index).cloned().ok_or_else(|| {
                                    LogError::Storage(format!(
                                        "no stored proof for leaf {}",
                                        slot.index
                                    ))
                                })?)
                            } else {
                                None
                            };
                            Ok(Assigned {
                                index: slot.index,
                                duplicate: slot.repeat,
                                stored_proof,
                            })
                        })
                        .collect::<Result<Vec<_>, LogError>>()?;
                    Ok(RoundReply {
                        checkpoint: checkpoint.clone(),
                        proofs: proofs.clone(),
                        entries,
                    })
                })();
                let dups = mine.iter().filter(|s| s.repeat).count() as u64;
                dup_count += dups;
                new_count += mine.len() as u64 - dups;
                (request.reply, answer)
            })
            .collect();
        metrics::counter!(m::APPEND_ENTRIES, "result" => "new").increment(new_count);
        metrics::counter!(m::APPEND_ENTRIES, "result" => "duplicate").increment(dup_count);
        answers
    }
}

/// One entry's place among the round's distinct leaf hashes.
#[derive(Clone, Copy)]
struct Slot {
    /// Position in the round's list of distinct hashes.
    unique: usize,
    /// The same hash appeared earlier in this round.
    repeat: bool,
}

/// An entry's final assignment.
#[derive(Clone, Copy)]
struct AssignedSlot {
    index: u64,
    /// Duplicate of an entry already in the log or earlier in this round.
    repeat: bool,
    /// Already in the log before this round (its proof comes from storage).
    old: bool,
}

/// What steps 2 to 6 produced.
struct Integrated {
    /// The new durable state; `None` when the round held only duplicates.
    next: Option<TreeState>,
    /// The checkpoint covering every entry of the round.
    checkpoint: Arc<PublishedCheckpoint>,
    /// In-memory proofs of the round's new entries.
    proofs: Option<Arc<BatchProofs>>,
    /// Each entry's assignment, flat, in queue order.
    assignments: Vec<AssignedSlot>,
}

struct RoundError {
    error: LogError,
    /// The store may be in an unknown state: reload before the next round.
    reload: bool,
}

impl RoundError {
    fn keep(error: LogError) -> Self {
        Self {
            error,
            reload: false,
        }
    }
}

fn fail_all(requests: Vec<Request>, error: &LogError) {
    for request in requests {
        let _ = request.reply.send(Err(error.clone()));
    }
}

/// Inclusion proofs at `size` of leaves already in the log, from ONE batched tile read.
/// A leaf given with its hash is read too and must equal it (a wrong dedup row never
/// yields a proof for another entry); repeated indexes are read once.
pub(crate) fn stored_proofs(
    store: &dyn LogStore,
    leaves: &[(u64, Option<Hash>)],
    size: TreeSize,
) -> Result<HashMap<u64, Vec<Hash>>, LogError> {
    let mut leaves = leaves.to_vec();
    leaves.sort_unstable_by_key(|(index, _)| *index);
    leaves.dedup_by_key(|(index, _)| *index);
    let mut plans = Vec::with_capacity(leaves.len());
    let mut nodes: Vec<NodeId> = Vec::new();
    for (index, leaf_hash) in &leaves {
        let plan = inclusion_plan(LeafIndex(*index), size)
            .map_err(|e| LogError::Storage(e.to_string()))?;
        if leaf_hash.is_some() {
            nodes.push(NodeId::leaf(LeafIndex(*index)));
        }
        nodes.extend_from_slice(plan.nodes());
        plans.push(plan);
    }
    let hashes = TileReader { store, size }.read_nodes(&nodes)?;
    let short = || LogError::Storage("short node read".into());
    let mut out = HashMap::with_capacity(leaves.len());
    let mut rest = hashes.as_slice();
    for ((index, leaf_hash), plan) in leaves.iter().zip(&plans) {
        if let Some(leaf_hash) = leaf_hash {
            let (stored_leaf, after) = rest.split_first().ok_or_else(short)?;
            if !hashes_equal(stored_leaf, leaf_hash) {
                return Err(LogError::Storage(format!(
                    "dedup index maps an entry to leaf {index}, which holds another entry"
                )));
            }
            rest = after;
        }
        let (mine, after) = rest
            .split_at_checked(plan.nodes().len())
            .ok_or_else(short)?;
        out.insert(
            *index,
            plan.assemble(mine)
                .map_err(|e| LogError::Storage(e.to_string()))?,
        );
        rest = after;
    }
    Ok(out)
}
