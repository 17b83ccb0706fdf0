//! The writer: the second stage of the sequencer's pipeline. It takes prepared rounds
//! one at a time, in order, and carries out steps 6 to 9 of docs/durability.md: the
//! synced write, the durable size, publication (through the [`Publisher`]) and the
//! answers. While its thread syncs round N, the sequencer thread may prepare round N+1
//! on top of N's in-memory state; N+1 is handed over only once the writer is free
//! again, so the writes stay in order and each round's write starts after the previous
//! one returned. A small round that finds the writer idle is written by the sequencer
//! thread through the same [`Writer`], under its lock (`Queue::write_here` says why).
//!
//! A failed write poisons the rounds prepared on top of it: the writer moves the
//! pipeline to a new epoch, and a round prepared in an older epoch is never written
//! (its callers get UNAVAILABLE); the sequencer waits for the writer to finish what it
//! was handed, reloads its state from disk and prepares again from there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use merklog_merkle::{BatchProofs, Hash};

use crate::proofs::stored_proofs;
use crate::publish::Publisher;
use crate::queue::{Queue, Request};
use crate::round::{Assigned, AssignedSlot, DurableRound, EntryProof, Reply, RoundReply};
use crate::state::Shared;
use crate::{LogError, RoundWrite, SignedCheckpoint, metrics as m};

/// A round whose steps 1 to 5 are done: what the writer needs for steps 6 to 9.
pub(crate) struct Prepared {
    /// The pipeline epoch the round was prepared in.
    pub(crate) epoch: u64,
    pub(crate) requests: Vec<Request>,
    /// Each entry's assignment, flat, in queue order.
    pub(crate) assignments: Vec<AssignedSlot>,
    /// The checkpoint covering every entry of the round: its own, or (a round of
    /// duplicates only) the latest prepared one, which is durable by the time the
    /// writer reaches this round.
    pub(crate) checkpoint: Arc<SignedCheckpoint>,
    /// The write and the in-memory proofs of the round's new entries; `None` when it
    /// holds no new entry.
    pub(crate) new: Option<NewLeaves>,
    /// A reload found this checkpoint on disk: publish it (a failed write may have
    /// landed), but a round has not succeeded yet.
    pub(crate) reloaded: bool,
    /// The queue room (entries, bytes) the round's requests hold until the writer
    /// takes the round.
    pub(crate) room: (usize, usize),
    pub(crate) started: Instant,
    /// Calls refused for a unique-key conflict, with their answers: given with the
    /// round's, once the holders they name are durable.
    pub(crate) refused: Vec<(Request, LogError)>,
}

/// What a round with new entries writes and proves.
pub(crate) struct NewLeaves {
    pub(crate) write: RoundWrite,
    pub(crate) proofs: Arc<BatchProofs>,
}

/// Where the two threads meet: the epoch, moved on by every failed write. (How many
/// handed-over rounds the writer has finished is the queue's to know: the sequencer
/// waits on it.)
#[derive(Default)]
pub(crate) struct Pipeline {
    epoch: AtomicU64,
}

impl Pipeline {
    /// The current epoch: rounds prepared in an older one are never written.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A write failed: rounds prepared in the current epoch are never written. Called
    /// before the failed round's callers are answered, so a caller that retries at once
    /// is prepared in the new epoch.
    pub(crate) fn poison(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// Tells the queue the writer is done with a round, also when writing it panicked: the
/// sequencer may be waiting for the writer to be free, and must then find it gone.
struct RoundDone<'a> {
    queue: &'a Queue,
    sync: Option<Duration>,
}

impl Drop for RoundDone<'_> {
    fn drop(&mut self) {
        self.queue.written(self.sync);
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) publisher: Box<dyn Publisher>,
}

impl Writer {
    /// The writer thread's body: until the sequencer drops its end of the channel.
    pub(crate) fn run(writer: &Mutex<Writer>, shared: &Shared, rounds: Receiver<Prepared>) {
        while let Ok(round) = rounds.recv() {
            Writer::finish(writer, shared, round);
        }
    }

    /// Steps 6 to 9 of a round reported to the queue as handed over, on the writer
    /// thread or (a small round while it is idle) on the sequencer's. The queue learns
    /// the round is done also if writing it panics; after such a panic no round is
    /// written any more, as when the writer was a thread of its own that died.
    pub(crate) fn finish(writer: &Mutex<Writer>, shared: &Shared, round: Prepared) {
        let mut done = RoundDone {
            queue: &shared.queue,
            sync: None,
        };
        let Ok(mut writer) = writer.lock() else {
            let error = LogError::Unavailable("the writer stopped".into());
            fail_all(round.requests, &error);
            fail_refused(round.refused, &error);
            shared.queue.release(round.room.0, round.room.1);
            return;
        };
        done.sync = writer.write(round);
    }

    /// Steps 6 to 9 of one round; how long its synced write took, if it made one.
    fn write(&mut self, round: Prepared) -> Option<Duration> {
        let Prepared {
            epoch,
            requests,
            assignments,
            checkpoint,
            new,
            reloaded,
            room,
            started,
            refused,
        } = round;
        // Taken over: the round no longer counts against the queue, and its room is
        // free before any of its callers is answered.
        self.shared.queue.release(room.0, room.1);
        if self.shared.queue.is_closed() && !requests.is_empty() {
            // Shutting down: a round not yet written is refused like a queued one (it
            // was never written, so retrying elsewhere or later is safe).
            fail_all(requests, &LogError::ShuttingDown);
            fail_refused(refused, &LogError::ShuttingDown);
            return None;
        }
        if epoch != self.pipeline.epoch() {
            // Prepared on top of a round whose write failed: never written.
            let error =
                LogError::Unavailable("an earlier round could not be made durable; retry".into());
            fail_all(requests, &error);
            fail_refused(refused, &error);
            return None;
        }
        let proofs = match new {
            Some(NewLeaves { write, proofs }) => {
                // Step 6: ONE synced write batch: tiles, bundles, dedup rows, unique-key
                // and index-term rows, the checkpoint by size and as latest.
                let commit_started = Instant::now();
                if let Err(e) = self.shared.store.commit(&write) {
                    // Crash or failure before this returns: after recovery either all
                    // of the round is there or none of it (one atomic WAL batch).
                    // Nobody was answered; retries are idempotent via the dedup index.
                    // On a reported failure we cannot know which, so the rounds
                    // prepared on top of it are dropped and the sequencer reloads.
                    let error =
                        LogError::Unavailable(format!("the round could not be made durable: {e}"));
                    tracing::error!(%error, "integration round failed; reloading state before the next round");
                    if let Some(reason) = self.shared.store.fenced() {
                        // Another sequencer signed: refusing before the epoch moves on
                        // means no round prepared from now on is signed or written.
                        tracing::error!(%reason, "the store is fenced off; refusing to sign for good");
                        self.shared.set_refusal(Some(format!(
                            "another sequencer took over the log: {reason}"
                        )));
                    }
                    self.shared.set_storage_failure(Some(error.to_string()));
                    self.pipeline.poison();
                    metrics::counter!(m::ROUNDS, "result" => "failed").increment(1);
                    fail_all(requests, &error);
                    fail_refused(refused, &error);
                    return None;
                }
                // Durable here: every entry, tile, dedup row, key and term row and the
                // signed checkpoint of the round. A crash from now on restarts from
                // this checkpoint; the callers were not answered and get their
                // indexes back as duplicates (their index rows are already stored).
                let sync = commit_started.elapsed();
                metrics::histogram!(m::COMMIT_SECONDS).record(sync.as_secs_f64());
                Some((proofs, sync))
            }
            None => None,
        };
        let (proofs, sync) = proofs.unzip();
        // Step 7: the durable size moves on (the sequencer's tip already has).
        if checkpoint.size() > self.shared.durable_size() {
            self.shared.set_durable(checkpoint.size());
        }
        if !reloaded {
            self.shared.set_storage_failure(None);
            metrics::counter!(m::ROUNDS, "result" => "ok").increment(1);
        }
        let mut answers = answers(&self.shared, requests, &checkpoint, proofs, assignments);
        answers.extend(
            refused
                .into_iter()
                .map(|(request, error)| (request.reply, Err(error))),
        );
        // Steps 8 and 9: publish, answer.
        self.publisher.durable(DurableRound {
            checkpoint,
            answers,
        });
        if !reloaded {
            metrics::histogram!(m::ROUND_SECONDS).record(started.elapsed().as_secs_f64());
        }
        sync
    }
}

pub(crate) fn fail_all(requests: Vec<Request>, error: &LogError) {
    for request in requests {
        let _ = request.reply.send(Err(error.clone()));
    }
}

/// Answers calls refused for a key conflict with `error` instead: their round was
/// not written, so the holder they would name may not exist.
pub(crate) fn fail_refused(refused: Vec<(Request, LogError)>, error: &LogError) {
    fail_all(
        refused.into_iter().map(|(request, _)| request).collect(),
        error,
    );
}

/// Builds each caller's answer. Entries that were already in the log before this round
/// get proofs read from storage (one batched tile read for the whole round) against
/// the round's checkpoint, which is durable by now.
fn answers(
    shared: &Shared,
    requests: Vec<Request>,
    checkpoint: &Arc<SignedCheckpoint>,
    proofs: Option<Arc<BatchProofs>>,
    assignments: Vec<AssignedSlot>,
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
        stored_proofs(&shared.tree, &old, checkpoint.size())
    };
    let mut slots = assignments.into_iter();
    let mut new_count = 0u64;
    let mut dup_count = 0u64;
    let answers = requests
        .into_iter()
        .map(|request| {
            let mine: Vec<AssignedSlot> = slots.by_ref().take(request.entries.len()).collect();
            let dups = mine.iter().filter(|s| s.repeat).count() as u64;
            dup_count += dups;
            new_count += mine.len() as u64 - dups;
            let entries = mine
                .iter()
                .map(|slot| {
                    let proof = if slot.old {
                        let stored = stored.as_ref().map_err(Clone::clone)?;
                        let path = stored.get(&slot.index).cloned().ok_or_else(|| {
                            LogError::Storage(format!("no stored proof for leaf {}", slot.index))
                        })?;
                        EntryProof::Stored(path)
                    } else {
                        let proofs = proofs.clone().ok_or_else(|| {
                            LogError::Storage(format!("no batch proof for leaf {}", slot.index))
                        })?;
                        EntryProof::InRound(proofs)
                    };
                    Ok(Assigned {
                        index: slot.index,
                        duplicate: slot.repeat,
                        proof,
                    })
                })
                .collect::<Result<Vec<_>, LogError>>()
                .map(|entries| RoundReply {
                    checkpoint: checkpoint.clone(),
                    entries,
                });
            (request.reply, entries)
        })
        .collect();
    metrics::counter!(m::APPEND_ENTRIES, "result" => "new").increment(new_count);
    metrics::counter!(m::APPEND_ENTRIES, "result" => "duplicate").increment(dup_count);
    answers
}
