//! One task per witness (C2SP tlog-witness `add-checkpoint`): at most one request in
//! flight, always for the latest job the coordinator gave it; the witness's size is
//! learnt from a 409 and the request retried once from it; cosignature lines are
//! verified before they count. Refusals are told apart from outages: a witness that
//! says the log is frozen, or refuses `refusal_limit` times in a row, is reported as
//! refusing and asked again only for a new checkpoint or the idle re-send.

use std::sync::Arc;
use std::time::{Duration, Instant};

use merklog_merkle::{Hash, ProofError, TreeSize};
use merklog_note::{CosignatureVerifier, Note, NoteSignature};
use tokio::sync::{mpsc, watch};

use crate::tiles::StoredTree;
use crate::witnessing::{Refusal, classify_rejection, verify_cosignatures};
use crate::{
    LogError, SignedCheckpoint, WitnessClient, WitnessReply, WitnessRequest, metrics as m,
};

/// First wait before retrying a witness that failed; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between retries of a failing witness.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Most characters of a refusal's answer carried into errors and logs.
const ANSWER_MAX_CHARS: usize = 200;

/// What a witness task reports to the coordinator.
pub(crate) enum Event {
    /// The witness cosigned the checkpoint of `size`; the lines verified.
    Cosigned {
        witness: usize,
        size: u64,
        signatures: Vec<NoteSignature>,
    },
    /// A 409 revealed the witness's stored size.
    SizeKnown { witness: usize, size: u64 },
    /// The witness refuses this log: it said the log is frozen (`frozen`), or refused
    /// `refusal_limit` times in a row. `answer` is its status and body, truncated.
    Refusing {
        witness: usize,
        frozen: bool,
        answer: String,
    },
}

/// What to do after one attempt at a job.
enum Next {
    /// Done with this checkpoint (cosigned, or nothing more to try): wait for a new job.
    Wait,
    /// Failed: try the same job again after a backoff, unless a newer one arrives.
    Retry,
}

/// One witness: at most one request in flight, always for the latest job.
pub(crate) struct WitnessTask {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) client: Arc<dyn WitnessClient>,
    pub(crate) verifier: CosignatureVerifier,
    pub(crate) store: StoredTree,
    pub(crate) request_timeout: Duration,
    pub(crate) jobs: watch::Receiver<Option<Arc<SignedCheckpoint>>>,
    pub(crate) events: mpsc::UnboundedSender<Event>,
    /// The witness's size as far as the log knows (`None`: ask with `old 0`).
    pub(crate) known_size: Option<u64>,
    /// Refusals in a row after which the witness is reported as refusing.
    pub(crate) refusal_limit: u32,
    /// Refusals in a row so far (reset by any other answer).
    pub(crate) refusals: u32,
}

impl WitnessTask {
    pub(crate) async fn run(mut self) {
        let mut job: Option<Arc<SignedCheckpoint>> = None;
        let mut backoff = RETRY_MIN;
        loop {
            let Some(checkpoint) = job.take() else {
                if self.jobs.changed().await.is_err() {
                    return; // The coordinator stopped.
                }
                job = self.jobs.borrow_and_update().clone();
                backoff = RETRY_MIN;
                continue;
            };
            match self.attempt(&checkpoint).await {
                Next::Wait => backoff = RETRY_MIN,
                Next::Retry => {
                    tokio::select! {
                        changed = self.jobs.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            job = self.jobs.borrow_and_update().clone();
                            backoff = RETRY_MIN;
                        }
                        () = tokio::time::sleep(backoff) => {
                            job = Some(checkpoint);
                            backoff = (backoff * 2).min(RETRY_MAX);
                        }
                    }
                }
            }
        }
    }

    fn report(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn record(&self, outcome: &'static str, started: Instant) {
        let witness = self.name.clone();
        metrics::counter!(m::WITNESS_REQUESTS, "witness" => witness.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(m::WITNESS_REQUEST_SECONDS, "witness" => witness, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
    }

    /// Sends `checkpoint` from the witness's known size; on a 409 learns the size and
    /// retries once from it.
    async fn attempt(&mut self, checkpoint: &SignedCheckpoint) -> Next {
        let size = checkpoint.size().0;
        let text = match Note::parse(checkpoint.note()) {
            Ok(note) => note.text().to_owned(),
            Err(e) => {
                tracing::error!(size, %e, "the log's own checkpoint does not parse");
                return Next::Wait;
            }
        };
        let mut old = self.known_size.unwrap_or(0);
        let mut retried = false;
        loop {
            if old > size {
                // The witness has more than this checkpoint: the coordinator compares
                // with the latest durable size (fork protection).
                self.report(Event::SizeKnown {
                    witness: self.index,
                    size: old,
                });
                return Next::Wait;
            }
            let proof = if old == 0 || old == size {
                Vec::new()
            } else {
                match self.consistency_proof(old, size).await {
                    Ok(proof) => proof,
                    Err(e) => {
                        tracing::warn!(witness = %self.name, old, size, %e, "cannot build the consistency proof");
                        return Next::Retry;
                    }
                }
            };
            let request = WitnessRequest {
                old_size: old,
                consistency_proof: proof,
                checkpoint: checkpoint.note().clone(),
            };
            let started = Instant::now();
            let reply =
                tokio::time::timeout(self.request_timeout, self.client.add_checkpoint(request))
                    .await
                    .unwrap_or_else(|_| {
                        WitnessReply::Unreachable(format!(
                            "no answer within {:?}",
                            self.request_timeout
                        ))
                    });
            match reply {
                WitnessReply::Cosigned(body) => {
                    return match verify_cosignatures(&body, &text, &self.verifier) {
                        Ok(signatures) => {
                            self.record("cosigned", started);
                            self.refusals = 0;
                            self.known_size = Some(size);
                            self.report(Event::Cosigned {
                                witness: self.index,
                                size,
                                signatures,
                            });
                            Next::Wait
                        }
                        Err(why) => {
                            self.record("bad_cosignature", started);
                            tracing::warn!(witness = %self.name, size, %why, "the witness's cosignature does not count");
                            Next::Retry
                        }
                    };
                }
                WitnessReply::SizeConflict(stored) => {
                    self.record("conflict", started);
                    self.known_size = Some(stored);
                    if stored != old {
                        self.refusals = 0;
                    }
                    self.report(Event::SizeKnown {
                        witness: self.index,
                        size: stored,
                    });
                    if stored == old {
                        // We sent the size it has: it holds another checkpoint of that
                        // size (how v1.0.0 witnesses answer a same-size conflict).
                        // C2SP tlog-witness answers a checkpoint of its size with
                        // another root this way: fork evidence, refused at once.
                        tracing::error!(
                            witness = %self.name,
                            size = stored,
                            "WITNESS CONFLICT: the witness holds a different checkpoint of the same size"
                        );
                        return self.refused(
                            Refusal::Frozen,
                            format!("409: the witness holds another checkpoint of size {stored}"),
                        );
                    }
                    if stored > size {
                        return Next::Wait;
                    }
                    if retried {
                        tracing::warn!(witness = %self.name, stored, "second 409 in a row; retrying later");
                        return Next::Retry;
                    }
                    retried = true;
                    old = stored;
                }
                WitnessReply::Rejected { status, body } => {
                    self.record("rejected", started);
                    tracing::warn!(witness = %self.name, size, old, status, %body, "the witness rejected the checkpoint");
                    let kind = classify_rejection(status, &body);
                    if kind == Refusal::Transient {
                        self.refusals = 0;
                        return Next::Retry;
                    }
                    return self.refused(kind, format!("{status}: {}", body.trim_end()));
                }
                WitnessReply::Unreachable(why) => {
                    self.record("unreachable", started);
                    self.refusals = 0;
                    tracing::warn!(witness = %self.name, size, %why, "witness unreachable");
                    return Next::Retry;
                }
            }
        }
    }

    /// Counts one refusal; once the witness is frozen or has refused `refusal_limit`
    /// times in a row, reports it as refusing and waits for a new job (a new checkpoint
    /// or the idle re-send) instead of retrying.
    fn refused(&mut self, kind: Refusal, answer: String) -> Next {
        self.refusals = self.refusals.saturating_add(1);
        let frozen = kind == Refusal::Frozen;
        if !frozen && self.refusals < self.refusal_limit {
            return Next::Retry;
        }
        // One line, whatever the witness sent: it ends up in a gRPC status message.
        let answer: String = answer
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let answer = match answer.char_indices().nth(ANSWER_MAX_CHARS) {
            Some((end, _)) => format!("{}...", &answer[..end]),
            None => answer,
        };
        self.report(Event::Refusing {
            witness: self.index,
            frozen,
            answer,
        });
        Next::Wait
    }

    async fn consistency_proof(&self, old: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let reader = store.at(TreeSize(size));
            merklog_merkle::consistency_proof(&reader, TreeSize(old), TreeSize(size)).map_err(|e| {
                match e {
                    ProofError::Merkle(e) => LogError::Storage(e.to_string()),
                    ProofError::Read(e) => e.into(),
                }
            })
        })
        .await
        .map_err(|e| LogError::Unavailable(format!("proof task failed: {e}")))?
    }
}
