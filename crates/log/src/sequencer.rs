//! The sequencer thread: integration rounds in the order of docs/durability.md, whose
//! step numbers the comments below cite. Each persistence step says what is durable
//! there and what recovery does if the process dies right after it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_merkle::{BatchProofs, Hash, TreeSize, hashes_equal};
use merklog_note::{Signer, Verifier};

use crate::checkpoint::sign_tree;
use crate::proofs::stored_proofs;
use crate::publish::Publisher;
use crate::queue::{Batch, Request};
use crate::recovery::{Recovered, recover};
use crate::round::{Assigned, DurableRound, EntryProof, Reply, RoundReply};
use crate::state::Shared;
use crate::tiles::TreeState;
use crate::{LogError, PublishedCheckpoint, RoundWrite, metrics as m};

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
                // Step 7: swap the live state to the round's copy; the durable size
                // moves on.
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
        let checkpoint = sign_tree(
            &*self.signer,
            &self.shared.origin,
            next.size(),
            next.range.root(),
        )
        .map_err(RoundError::keep)?;

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
                            let proof = if slot.old {
                                let proofs = stored.as_ref().map_err(Clone::clone)?;
                                EntryProof::Stored(proofs.get(&slot.index).cloned().ok_or_else(
                                    || {
                                        LogError::Storage(format!(
                                            "no stored proof for leaf {}",
                                            slot.index
                                        ))
                                    },
                                )?)
                            } else {
                                EntryProof::InRound(proofs.clone().ok_or_else(|| {
                                    LogError::Storage(
                                        "a new entry in a round without new leaves".into(),
                                    )
                                })?)
                            };
                            Ok(Assigned {
                                index: slot.index,
                                duplicate: slot.repeat,
                                proof,
                            })
                        })
                        .collect::<Result<Vec<_>, LogError>>()?;
                    Ok(RoundReply {
                        checkpoint: checkpoint.clone(),
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
