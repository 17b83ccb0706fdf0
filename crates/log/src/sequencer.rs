//! The sequencer thread: the first stage of the round pipeline. It takes batches and
//! carries out steps 1 to 5 of docs/durability.md on its tip of the tree (the state
//! after every round it handed on), then hands the prepared round to the writer thread
//! (`writer.rs`) for steps 6 to 9. The hand-over is a rendezvous: round N+1 is prepared
//! while round N's synced write is in flight (once the queue holds as many entries as
//! round N, see `queue.rs`), and handed over once that write returned. A round of a few
//! entries that finds the writer idle is not handed over but written on this thread
//! through the writer's own steps (`Queue::write_here` says why); this file itself
//! answers and publishes nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use foldhash::fast::RandomState;
use merklog_merkle::{BatchProofs, Hash};
use merklog_note::{Signer, Verifier};

use crate::checkpoint::sign_tree;
use crate::filter::LeafFilter;
use crate::queue::{Batch, Request};
use crate::recovery::{Recovered, recover};
use crate::round::AssignedSlot;
use crate::state::Shared;
use crate::terms;
use crate::tiles::TreeState;
use crate::unique::{self, InFlightKeys};
use crate::writer::{NewLeaves, Pipeline, Prepared, Writer, fail_all, fail_refused};
use crate::{LogError, RoundWrite, SignedCheckpoint, metrics as m};

/// The sequencer thread's state.
pub(crate) struct Sequencer {
    shared: Arc<Shared>,
    signer: Arc<dyn Signer>,
    verifier: Arc<dyn Verifier>,
    /// The tree after every round handed to the writer; `None` after a failure until a
    /// reload succeeds.
    tip: Option<TreeState>,
    /// The checkpoint of `tip`: durable, or in the writer's hands.
    tip_checkpoint: Arc<SignedCheckpoint>,
    /// Every leaf hash of the log (and possibly more), in front of the dedup index.
    filter: Arc<Mutex<LeafFilter>>,
    pipeline: Arc<Pipeline>,
    writer: Option<(SyncSender<Prepared>, JoinHandle<()>)>,
    /// What the writer thread writes with, for the rounds written here.
    steps: Arc<Mutex<Writer>>,
    /// Leaves of rounds handed to the writer that may not be durable yet: the dedup
    /// index cannot know them.
    in_flight: InFlight,
    /// Unique-key rows of those rounds, likewise.
    in_flight_keys: InFlightKeys,
    /// The pipeline epoch `tip` belongs to.
    epoch: u64,
}

/// Closes the queue and answers whoever is still waiting if the thread ends for any
/// reason (including a panic), so no caller waits forever.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.queue.close();
        if let Batch::Closed(left) = self.0.queue.take_batch(usize::MAX, Duration::ZERO) {
            fail_all(left, &LogError::ShuttingDown);
        }
    }
}

/// What the sequencer is started with.
pub(crate) struct Start {
    pub(crate) shared: Arc<Shared>,
    pub(crate) signer: Arc<dyn Signer>,
    pub(crate) verifier: Arc<dyn Verifier>,
    pub(crate) state: Option<TreeState>,
    pub(crate) checkpoint: Arc<SignedCheckpoint>,
    pub(crate) filter: Arc<Mutex<LeafFilter>>,
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) writer: (SyncSender<Prepared>, JoinHandle<()>),
    pub(crate) steps: Arc<Mutex<Writer>>,
}

impl Sequencer {
    pub(crate) fn new(start: Start) -> Self {
        let epoch = start.pipeline.epoch();
        Self {
            shared: start.shared,
            signer: start.signer,
            verifier: start.verifier,
            tip: start.state,
            tip_checkpoint: start.checkpoint,
            filter: start.filter,
            pipeline: start.pipeline,
            writer: Some(start.writer),
            steps: start.steps,
            in_flight: InFlight::default(),
            in_flight_keys: InFlightKeys::default(),
            epoch,
        }
    }

    /// The thread body: rounds until the queue is closed; requests still queued then are
    /// answered `ShuttingDown` (they were never promised anything). The round in the
    /// writer's hands finishes before the thread ends.
    pub(crate) fn run(mut self) {
        let _guard = ExitGuard(self.shared.clone());
        let max_entries = self.shared.config.max_batch_entries;
        let max_wait = self.shared.config.max_batch_wait;
        loop {
            // Step 1: take a batch. Nothing has been promised to anyone yet.
            match self.shared.queue.take_batch(max_entries, max_wait) {
                Batch::Round(requests) => {
                    let room = requests
                        .iter()
                        .fold((0, 0), |(e, b), r| (e + r.entries.len(), b + r.bytes));
                    if !self.round(requests, room) {
                        // Answered without reaching the writer: its room is free again.
                        // A handed-over round's room is freed by the writer as it takes
                        // the round, before anyone is answered.
                        self.shared.queue.release(room.0, room.1);
                    }
                }
                Batch::Closed(left) => {
                    fail_all(left, &LogError::ShuttingDown);
                    break;
                }
            }
        }
        if let Some((sender, thread)) = self.writer.take() {
            drop(sender);
            if thread.join().is_err() {
                tracing::error!("the writer thread panicked");
            }
        }
    }

    /// One round; true if it was handed to the writer.
    fn round(&mut self, requests: Vec<Request>, room: (usize, usize)) -> bool {
        let started = Instant::now();
        if self.pipeline.epoch() != self.epoch
            || (self.tip.is_none() && self.shared.refusal().is_none())
        {
            self.reload();
        }
        if !self.shared.gate.is_open() {
            // Only with a witness policy, before the start-up check allowed signing.
            while !self.shared.gate.wait(Duration::from_millis(100)) {
                if self.shared.queue.is_closed() {
                    fail_all(requests, &LogError::ShuttingDown);
                    return false;
                }
            }
        }
        if let Some(reason) = self.shared.refusal() {
            fail_all(requests, &LogError::SigningRefused(reason));
            return false;
        }
        if self.tip.is_none() {
            fail_all(
                requests,
                &LogError::Unavailable(
                    "storage is failing; the last round could not be reloaded".into(),
                ),
            );
            return false;
        }
        let durable = self.shared.durable_size().0;
        self.in_flight.retire(durable);
        self.in_flight_keys.retire(durable);
        // Unique keys first: a call refused for a conflict takes no part in the round
        // (no index, no dedup row); it is answered with the round, after its write.
        let verdicts = match unique::check(&requests, &*self.shared.store, &self.in_flight_keys) {
            Ok(verdicts) => verdicts,
            Err(error) => {
                fail_all(requests, &error);
                return false;
            }
        };
        let (requests, refused) = unique::split(requests, verdicts);
        match self.prepare(&requests) {
            Ok((assignments, checkpoint, mut new)) => {
                if let Some(new) = new.as_mut() {
                    let now = unix_ms();
                    let rows = unique::rows(&requests, &assignments, now);
                    self.in_flight_keys.push(checkpoint.size().0, &rows);
                    new.write.keys = rows;
                    // Index rows ride in the same write: no conflict check, no
                    // in-flight tracking (a row is unique to its entry).
                    let calls = requests
                        .iter()
                        .map(|r| (r.entries.len(), &r.leaf_hashes[..], &r.terms[..]));
                    new.write.terms = terms::rows(calls, &assignments, now);
                }
                let refused = unique::refusals(refused, &requests, &assignments);
                self.hand_over(Prepared {
                    epoch: self.epoch,
                    requests,
                    assignments,
                    checkpoint,
                    new,
                    reloaded: false,
                    room,
                    started,
                    refused,
                })
            }
            Err(RoundError { error, reload }) => {
                if reload {
                    // The tip may be half-extended: drop it; the next round reloads.
                    tracing::error!(%error, "preparing a round failed; reloading state before the next round");
                    self.tip = None;
                }
                metrics::counter!(m::ROUNDS, "result" => "failed").increment(1);
                fail_all(requests, &error);
                unique::fail_unresolved(refused, &error);
                false
            }
        }
    }

    /// Gives a prepared round to the writer, waiting until it is free, or writes a
    /// small one here while the writer is idle (see `Queue::write_here`); true if
    /// the writer took it or it was written here.
    fn hand_over(&mut self, round: Prepared) -> bool {
        let Some((sender, _)) = &self.writer else {
            fail_all(round.requests, &LogError::ShuttingDown);
            fail_refused(round.refused, &LogError::ShuttingDown);
            return false;
        };
        let entries = round.assignments.len();
        let here = self.shared.queue.write_here(entries);
        self.shared.queue.handing_over(entries);
        if here {
            Writer::finish(&self.steps, &self.shared, round);
            return true;
        }
        match sender.send(round) {
            Ok(()) => true,
            Err(std::sync::mpsc::SendError(round)) => {
                self.shared.queue.written(None);
                // The writer thread is gone (it panicked): nothing can be made durable.
                self.tip = None;
                let error = LogError::Unavailable("the writer thread stopped".into());
                fail_all(round.requests, &error);
                fail_refused(round.refused, &error);
                false
            }
        }
    }

    /// Reloads the tree from storage after a failed round, once the writer finished
    /// every round it was handed (those prepared on top of the failed one are dropped
    /// by it, unwritten). If the failed write did land (an error reported after the
    /// data reached the WAL), the reload finds its checkpoint and has it published; its
    /// callers got `Unavailable` and their retries are answered from the dedup index.
    fn reload(&mut self) {
        self.shared.queue.wait_written();
        self.in_flight = InFlight::default();
        self.in_flight_keys = InFlightKeys::default();
        self.tip = None;
        self.epoch = self.pipeline.epoch();
        let shared = self.shared.clone();
        match recover(
            &*shared.store,
            &*self.signer,
            &*self.verifier,
            &shared.origin,
        ) {
            Ok(Recovered::Ready { state, checkpoint }) => {
                tracing::info!(size = checkpoint.size().0, "state reloaded from storage");
                self.tip = Some(state);
                self.tip_checkpoint = checkpoint.clone();
                let _ = self.hand_over(Prepared {
                    epoch: self.epoch,
                    requests: Vec::new(),
                    assignments: Vec::new(),
                    checkpoint,
                    new: None,
                    reloaded: true,
                    room: (0, 0),
                    started: Instant::now(),
                    refused: Vec::new(),
                });
            }
            Ok(Recovered::Refused { reason, .. }) => shared.set_refusal(Some(reason)),
            Err(error) => {
                tracing::error!(%error, "reloading state from storage failed");
                shared.set_storage_failure(Some(error.to_string()));
            }
        }
    }

    /// Steps 2 to 5 on the tip.
    fn prepare(&mut self, requests: &[Request]) -> Result<PreparedParts, RoundError> {
        let store = &*self.shared.store;
        let total: usize = requests.iter().map(|r| r.entries.len()).sum();
        metrics::histogram!(m::BATCH_ENTRIES).record(total as f64);

        // Step 2: deduplicate within the batch, then against the rounds still in the
        // writer's hands, then (only for hashes the filter may hold) ONE multi-get
        // against the index.
        let mut first_seen: LeafMap<&Hash, usize> =
            LeafMap::with_capacity_and_hasher(total, RandomState::default());
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
        let mut found: Vec<Option<u64>> = vec![None; unique.len()];
        let mut ask: Vec<usize> = Vec::new();
        {
            let filter = self.filter.lock().unwrap_or_else(PoisonError::into_inner);
            for (u, hash) in unique.iter().enumerate() {
                if let Some(index) = self.in_flight.get(hash) {
                    if let Some(slot) = found.get_mut(u) {
                        *slot = Some(index);
                    }
                } else if filter.may_contain(hash) {
                    ask.push(u);
                }
            }
        }
        if !ask.is_empty() {
            let hashes: Vec<Hash> = ask.iter().filter_map(|&u| unique.get(u).copied()).collect();
            let stored = store.lookup_leaves(&hashes).map_err(|e| {
                RoundError::keep(LogError::Unavailable(format!("dedup lookup failed: {e}")))
            })?;
            if stored.len() != ask.len() {
                return Err(RoundError::keep(LogError::Unavailable(
                    "dedup lookup returned the wrong count".into(),
                )));
            }
            for (u, index) in ask.into_iter().zip(stored) {
                if let Some(slot) = found.get_mut(u) {
                    *slot = index;
                }
            }
        }

        // Step 3: assign indexes size.. in queue order to entries not in the log.
        let Some(tip) = self.tip.as_mut() else {
            return Err(RoundError::keep(LogError::Unavailable(
                "no tree state to extend".into(),
            )));
        };
        let size = tip.size().0;
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
            // Only duplicates: nothing to write, nothing to sign. The latest prepared
            // checkpoint covers them; it is durable once the writer reaches this round.
            return Ok((assignments, self.tip_checkpoint.clone(), None));
        }

        // Step 4: extend the tip in place. The proofs are built on the tree before
        // the round; a failure from here on drops the tip (the next round reloads it
        // from disk), and nothing reaches the disk before step 6.
        let internal = |e: String| {
            RoundError::reload(LogError::Unavailable(format!("integration failed: {e}")))
        };
        let proofs = BatchProofs::new(&tip.range, &new_leaves).map_err(|e| {
            RoundError::keep(LogError::Unavailable(format!("integration failed: {e}")))
        })?;
        let edge = tip.extend(&new_leaves, &new_entries).map_err(internal)?;
        if proofs.root() != tip.range.root() {
            return Err(internal(
                "batch proofs and compact range disagree on the root".into(),
            ));
        }

        // Step 5: build and sign the checkpoint, once per round. The new size is larger
        // than the last prepared one and the tree is built on it, and a prepared round
        // is only written after every round before it, so no size is ever signed with
        // two roots.
        let checkpoint = sign_tree(
            &*self.signer,
            &self.shared.origin,
            tip.size(),
            tip.range.root(),
        )
        .map_err(RoundError::reload)?;
        let dedup: Vec<(Hash, u64)> = new_leaves.iter().copied().zip(size..).collect();
        {
            let mut filter = self.filter.lock().unwrap_or_else(PoisonError::into_inner);
            for hash in &new_leaves {
                filter.insert(hash);
            }
        }
        self.in_flight.push(checkpoint.size().0, &dedup);
        self.tip_checkpoint = checkpoint.clone();
        let write = RoundWrite {
            tiles: edge.tiles,
            bundles: edge.bundles,
            dedup,
            checkpoint: Some((checkpoint.size().0, checkpoint.note().to_vec())),
            keys: Vec::new(),
            terms: Vec::new(),
        };
        Ok((
            assignments,
            checkpoint,
            Some(NewLeaves {
                write,
                proofs: Arc::new(proofs),
            }),
        ))
    }
}

/// Now as Unix milliseconds (0 before 1970).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A map keyed by leaf hashes, which callers choose: the hasher is seeded per process,
/// like the standard one, but cheaper for 32-byte keys on every entry of a round.
type LeafMap<K, V> = HashMap<K, V, RandomState>;

type PreparedParts = (Vec<AssignedSlot>, Arc<SignedCheckpoint>, Option<NewLeaves>);

/// Leaf hashes of rounds handed to the writer, until they are durable.
#[derive(Default)]
struct InFlight {
    index: LeafMap<Hash, u64>,
    /// Per round, in order: its size once durable, and its leaves.
    rounds: VecDeque<(u64, Vec<Hash>)>,
}

impl InFlight {
    fn get(&self, hash: &Hash) -> Option<u64> {
        self.index.get(hash).copied()
    }

    fn push(&mut self, size: u64, leaves: &[(Hash, u64)]) {
        self.index.extend(leaves.iter().copied());
        self.rounds
            .push_back((size, leaves.iter().map(|(hash, _)| *hash).collect()));
    }

    /// Forgets the rounds that are durable: the dedup index answers for them now.
    fn retire(&mut self, durable: u64) {
        while self
            .rounds
            .front()
            .is_some_and(|(size, _)| *size <= durable)
        {
            if let Some((_, leaves)) = self.rounds.pop_front() {
                for hash in leaves {
                    self.index.remove(&hash);
                }
            }
        }
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

struct RoundError {
    error: LogError,
    /// The tip may be half-changed: reload it before the next round.
    reload: bool,
}

impl RoundError {
    fn keep(error: LogError) -> Self {
        Self {
            error,
            reload: false,
        }
    }

    fn reload(error: LogError) -> Self {
        Self {
            error,
            reload: true,
        }
    }
}
