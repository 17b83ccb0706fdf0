//! The witness stage: durability steps 8 and 9 (docs/durability.md) with a witness
//! policy, between "durable" and "published", off the round loop.
//!
//! - The sequencer thread hands each durable round to [`WitnessPublisher`], which only
//!   pushes it onto an unbounded channel: the sequencer never waits for a witness.
//! - One coordinator task keeps the latest durable checkpoint, the cosignatures gathered
//!   for each unpublished one, and the callers waiting for publication. It publishes a
//!   checkpoint once the policy's quorum cosigned it (or, fail-open, once it waited
//!   `fail_open_after`), stores the cosigned note (synced), and answers every caller
//!   whose entries the published checkpoint covers, with proofs against its size.
//! - One task per witness holds at most one request in flight. Its job slot is a watch
//!   channel: a newer durable checkpoint replaces one still waiting (latest wins).
//! - Start-up: the first job of every witness is the latest durable checkpoint sent
//!   with `old 0`, so a 409 reveals the witness's size. The sequencer may sign again
//!   once the witnesses that answered satisfy the quorum and none is ahead of the log;
//!   a witness ahead of the log (an old data directory) makes the log refuse to sign.
//!   With [`Witnessing::deferred`] the coordinator starts dormant (nothing sent, the
//!   gate closed) and runs this check when told to lead, from the durable checkpoint
//!   the store then holds: a cluster standby that takes over checks the witnesses
//!   against the lock's checkpoint, not against the one it opened with.
//! - A witness that refuses this log for good (it says the log is frozen, or it keeps
//!   answering the same 4xx) is not an outage: it is marked refusing (metric, error
//!   log). Once the witnesses not refusing cannot meet the quorum, the log refuses to
//!   sign, naming the witnesses and their answers, so appends fail at once instead of
//!   waiting for a quorum that cannot come. Witnesses are still sent the latest
//!   checkpoint (idle re-send); when a refusing witness cosigns again the refusal
//!   clears. A refusing witness the quorum does not need only logs and counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use merklog_merkle::Hash;
use merklog_note::{NoteSignature, Policy};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant as TokioInstant;

use crate::proofs::stored_proofs;
use crate::publish::{Publisher, publish};
use crate::round::{DurableRound, EntryProof, Reply, RoundReply};
use crate::state::Shared;
use crate::witness_task::{Event, WitnessTask};
use crate::{LogError, Witnessing, metrics as m};
use merklog_note::SignedCheckpoint;

/// Most leaves whose proofs one storage read builds when answering callers.
const PROOF_BATCH: usize = 4096;
/// Most unpublished durable checkpoints whose cosignatures are tracked.
const MAX_CANDIDATES: usize = 64;

/// The [`Publisher`] used with a witness policy: hands rounds to the coordinator task.
pub(crate) struct WitnessPublisher {
    rounds: mpsc::UnboundedSender<DurableRound>,
}

/// Wakes a dormant coordinator ([`Witnessing::deferred`]): the durable checkpoint to
/// run the start-up check from. Only the first one sent counts.
pub(crate) type LeadSender = mpsc::UnboundedSender<Arc<SignedCheckpoint>>;

impl Publisher for WitnessPublisher {
    fn durable(&mut self, round: DurableRound) {
        if let Err(mpsc::error::SendError(round)) = self.rounds.send(round) {
            // The coordinator is gone (runtime shut down): nobody can publish any more.
            for (reply, _) in round.answers {
                let _ = reply.send(Err(LogError::Unavailable(
                    "the witness stage stopped; the entries are durable and are published \
                     after a restart"
                        .into(),
                )));
            }
        }
    }
}

/// Starts the coordinator and one task per witness on `runtime`.
pub(crate) fn start(
    shared: Arc<Shared>,
    witnessing: &Witnessing,
    runtime: &Handle,
    durable: Arc<SignedCheckpoint>,
) -> Result<(WitnessPublisher, LeadSender), LogError> {
    let resolved = witnessing.resolve().map_err(LogError::InvalidConfig)?;
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let mut names = Vec::with_capacity(resolved.len());
    let mut jobs = Vec::with_capacity(resolved.len());
    for (index, ((name, verifier), client)) in
        resolved.into_iter().zip(&witnessing.witnesses).enumerate()
    {
        let (job_tx, job_rx) = watch::channel(None);
        let task = WitnessTask {
            index,
            name: name.clone(),
            client: client.clone(),
            verifier,
            store: shared.tree.clone(),
            request_timeout: witnessing.request_timeout,
            jobs: job_rx,
            events: events_tx.clone(),
            known_size: None,
            refusal_limit: witnessing.refusal_limit,
            refusals: 0,
        };
        runtime.spawn(task.run());
        names.push(name);
        jobs.push(job_tx);
    }
    drop(events_tx);
    let (rounds_tx, rounds_rx) = mpsc::unbounded_channel();
    let (lead_tx, lead_rx) = mpsc::unbounded_channel();
    let now = Instant::now();
    let candidates = unpublished(&durable, &shared.latest(), now);
    let coordinator = Coordinator {
        shared,
        policy: witnessing.policy.clone(),
        names,
        jobs,
        fail_open_after: witnessing.fail_open_after,
        resend_interval: witnessing.resend_interval,
        durable,
        candidates,
        pending: Vec::new(),
        startup: Some(Startup::new(now)),
        last_sent: now,
        refusing: BTreeMap::new(),
        blocked: None,
        dormant: witnessing.deferred,
    };
    runtime.spawn(coordinator.run(rounds_rx, events_rx, lead_rx));
    Ok((WitnessPublisher { rounds: rounds_tx }, lead_tx))
}

/// A durable checkpoint not yet published, and the cosignatures gathered for it.
struct Candidate {
    checkpoint: Arc<SignedCheckpoint>,
    since: Instant,
    cosigners: BTreeMap<String, Vec<NoteSignature>>,
}

impl Candidate {
    fn new(checkpoint: Arc<SignedCheckpoint>, since: Instant) -> Self {
        Self {
            checkpoint,
            since,
            cosigners: BTreeMap::new(),
        }
    }
}

/// A caller whose entries are durable, waiting for a published checkpoint of at least
/// `needed` leaves.
struct Pending {
    needed: u64,
    reply: Reply,
    answer: RoundReply,
}

/// The start-up check in progress: which witnesses revealed their size.
struct Startup {
    answered: BTreeSet<String>,
    since: Instant,
}

impl Startup {
    fn new(since: Instant) -> Self {
        Self {
            answered: BTreeSet::new(),
            since,
        }
    }
}

/// The candidates to start from: the durable checkpoint if it was never published (a
/// crash before the quorum, or another node's round at a take-over), which is sent to
/// the witnesses before any new round is signed.
fn unpublished(
    durable: &Arc<SignedCheckpoint>,
    published: &SignedCheckpoint,
    now: Instant,
) -> BTreeMap<u64, Candidate> {
    let mut candidates = BTreeMap::new();
    if durable.size() > published.size() {
        candidates.insert(durable.size().0, Candidate::new(durable.clone(), now));
    }
    candidates
}

struct Coordinator {
    shared: Arc<Shared>,
    policy: Policy,
    /// Policy names, by witness index.
    names: Vec<String>,
    /// Job slots, by witness index (latest wins).
    jobs: Vec<watch::Sender<Option<Arc<SignedCheckpoint>>>>,
    fail_open_after: Option<Duration>,
    resend_interval: Duration,
    /// The latest durable checkpoint (the log's own signature only).
    durable: Arc<SignedCheckpoint>,
    /// Durable checkpoints larger than the published one, by size.
    candidates: BTreeMap<u64, Candidate>,
    pending: Vec<Pending>,
    startup: Option<Startup>,
    /// When the witnesses were last sent a job (for the idle re-send).
    last_sent: Instant,
    /// Witnesses refusing this log, by policy name: their answer (status and body).
    refusing: BTreeMap<String, String>,
    /// The refusal to sign this coordinator set because refusing witnesses leave no
    /// quorum (cleared again when they cosign); `None` if it set none.
    blocked: Option<String>,
    /// Deferred and not told to lead yet: nothing is sent and the gate stays closed.
    dormant: bool,
}

impl Coordinator {
    async fn run(
        mut self,
        mut rounds: mpsc::UnboundedReceiver<DurableRound>,
        mut events: mpsc::UnboundedReceiver<Event>,
        mut lead: mpsc::UnboundedReceiver<Arc<SignedCheckpoint>>,
    ) {
        if self.dormant {
            tracing::info!(
                size = self.durable.size().0,
                witnesses = self.names.len(),
                "witness start-up check deferred until this node leads"
            );
        } else {
            self.begin_startup();
        }
        loop {
            let wake = TokioInstant::from_std(self.next_wake());
            tokio::select! {
                round = rounds.recv() => match round {
                    Some(round) => self.on_round(round).await,
                    None => break,
                },
                Some(event) = events.recv() => self.on_event(event).await,
                Some(durable) = lead.recv() => self.on_lead(durable),
                () = tokio::time::sleep_until(wake) => self.on_timer().await,
            }
        }
        // The sequencer stopped: callers still waiting have durable entries that a
        // restart publishes.
        for pending in self.pending.drain(..) {
            let _ = pending.reply.send(Err(LogError::Unavailable(
                "the log stopped before a witness quorum covered these entries; they are \
                 durable and are published after a restart"
                    .into(),
            )));
        }
    }

    /// The start-up check: every witness is asked for its size before signing.
    fn begin_startup(&mut self) {
        tracing::info!(
            size = self.durable.size().0,
            published = self.shared.latest().size().0,
            witnesses = self.names.len(),
            "witness start-up check: asking every witness for its size before signing"
        );
        self.check_startup();
        self.send_jobs();
    }

    /// A dormant coordinator told to lead: `durable` is what the store now holds (a
    /// standby's cache brought to the lock's checkpoint), so the candidates and the
    /// start-up check start from it. A coordinator that is not dormant ignores it: its
    /// check already ran against its own durable checkpoint.
    fn on_lead(&mut self, durable: Arc<SignedCheckpoint>) {
        if !self.dormant {
            return;
        }
        self.dormant = false;
        let now = Instant::now();
        self.candidates = unpublished(&durable, &self.shared.latest(), now);
        self.durable = durable;
        self.startup = Some(Startup::new(now));
        self.begin_startup();
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.last_sent + self.resend_interval;
        if self.dormant {
            return Instant::now() + self.resend_interval;
        }
        if self.shared.refusal().is_some() && self.blocked.is_none() {
            // Nothing is sent or published any more; wake now and then only.
            return Instant::now() + self.resend_interval;
        }
        if let Some(after) = self.fail_open_after {
            if let Some(startup) = &self.startup {
                wake = wake.min(startup.since + after);
            }
            if let Some(oldest) = self.candidates.values().next() {
                wake = wake.min(oldest.since + after);
            }
        }
        wake
    }

    /// Gives every witness the latest durable checkpoint (replacing one still waiting).
    fn send_jobs(&mut self) {
        self.last_sent = Instant::now();
        if self.dormant || self.refuses_for_good() {
            return;
        }
        for job in &self.jobs {
            job.send_replace(Some(self.durable.clone()));
        }
    }

    async fn on_round(&mut self, round: DurableRound) {
        let checkpoint = round.checkpoint;
        if checkpoint.size() > self.durable.size() {
            self.durable = checkpoint.clone();
            self.candidates.insert(
                checkpoint.size().0,
                Candidate::new(checkpoint.clone(), Instant::now()),
            );
            // While the quorum is missing, keep only the newest candidates (witnesses
            // are only ever sent the latest); the oldest waiting time carries over so
            // fail-open still counts from the first unpublished checkpoint.
            while self.candidates.len() > MAX_CANDIDATES {
                let Some((_, dropped)) = self.candidates.pop_first() else {
                    break;
                };
                if let Some(mut first) = self.candidates.first_entry() {
                    let first = first.get_mut();
                    first.since = first.since.min(dropped.since);
                }
            }
            self.send_jobs();
            if self.policy.satisfied_by(std::iter::empty()) {
                // Quorum `none`: nothing to wait for.
                self.publish(checkpoint.size().0, false).await;
            }
        }
        for (reply, answer) in round.answers {
            match answer {
                Ok(answer) => {
                    let needed = answer
                        .entries
                        .iter()
                        .map(|e| e.index.saturating_add(1))
                        .max()
                        .unwrap_or(0);
                    self.pending.push(Pending {
                        needed,
                        reply,
                        answer,
                    });
                }
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            }
        }
        if let Some(reason) = self.shared.refusal() {
            self.fail_pending(&reason);
            return;
        }
        self.answer_covered().await;
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::SizeKnown { witness, size } => {
                let name = self.name(witness);
                if let Some(startup) = &mut self.startup {
                    startup.answered.insert(name.clone());
                }
                let durable = self.shared.durable_size().0;
                if size > durable {
                    self.refuse(&name, size, durable);
                }
            }
            Event::Cosigned {
                witness,
                size,
                signatures,
            } => {
                let name = self.name(witness);
                if let Some(startup) = &mut self.startup {
                    startup.answered.insert(name.clone());
                }
                if self.refusing.remove(&name).is_some() {
                    tracing::info!(witness = %name, "the witness cosigns again; it no longer refuses this log");
                    metrics::gauge!(m::WITNESS_REFUSING, "witness" => name.clone()).set(0.0);
                    self.check_refusing();
                }
                self.on_cosigned(name, size, signatures).await;
            }
            Event::Refusing {
                witness,
                frozen,
                answer,
            } => {
                let name = self.name(witness);
                self.on_refusing(name, frozen, answer);
            }
        }
        self.check_startup();
    }

    /// Whether the log refuses to sign for a reason this coordinator cannot clear
    /// (recovery found a mismatch, or a witness is ahead of the log).
    fn refuses_for_good(&self) -> bool {
        self.shared
            .refusal()
            .is_some_and(|reason| self.blocked.as_ref() != Some(&reason))
    }

    fn on_refusing(&mut self, name: String, frozen: bool, answer: String) {
        let reason = if frozen { "frozen" } else { "repeated" };
        let first = self.refusing.insert(name.clone(), answer.clone()).is_none();
        if first {
            metrics::counter!(m::WITNESS_REFUSALS, "witness" => name.clone(), "reason" => reason)
                .increment(1);
            metrics::gauge!(m::WITNESS_REFUSING, "witness" => name.clone()).set(1.0);
            tracing::error!(
                witness = %name,
                %answer,
                reason,
                "WITNESS REFUSES THIS LOG: not a transient outage; it needs an operator"
            );
        }
        self.check_refusing();
    }

    /// Refuses to sign while the witnesses that do not refuse this log cannot meet the
    /// quorum (failing every waiting caller at once), and clears that refusal once
    /// they can again.
    fn check_refusing(&mut self) {
        if self.refuses_for_good() {
            return;
        }
        let able = self
            .names
            .iter()
            .filter(|name| !self.refusing.contains_key(*name))
            .map(String::as_str);
        if self.policy.satisfied_by(able) {
            if let Some(reason) = self.blocked.take()
                && self.shared.replace_refusal(Some(&reason), None)
            {
                tracing::warn!("the witness quorum can be met again; signing resumes");
            }
            return;
        }
        let answers: Vec<String> = self
            .refusing
            .iter()
            .map(|(name, answer)| format!("witness {name} answered [{answer}]"))
            .collect();
        let reason = format!(
            "the witness quorum cannot be met while these witnesses refuse this log: {}; \
             entries already durable stay durable and are published once the witnesses \
             cosign again",
            answers.join("; ")
        );
        if self.blocked.as_ref() == Some(&reason) {
            return;
        }
        if self
            .shared
            .replace_refusal(self.blocked.as_deref(), Some(reason.clone()))
        {
            tracing::error!(%reason, "refusing to sign: appends fail until a refusing witness cosigns again");
            self.blocked = Some(reason.clone());
            self.fail_pending(&reason);
        }
    }

    fn name(&self, witness: usize) -> String {
        self.names.get(witness).cloned().unwrap_or_default()
    }

    async fn on_cosigned(&mut self, name: String, size: u64, signatures: Vec<NoteSignature>) {
        if self.refuses_for_good() {
            return;
        }
        let published = self.shared.latest();
        if size == published.size().0 && !self.candidates.contains_key(&size) {
            // A fresh cosignature of the published checkpoint (idle re-send, or the
            // start-up check): newer cosignatures replace older ones on the note.
            match published.with_signatures(&signatures) {
                Ok(cosigned) => self.store_and_publish(cosigned).await,
                Err(e) => tracing::warn!(witness = %name, %e, "cannot add a cosignature"),
            }
            return;
        }
        let Some(candidate) = self.candidates.get_mut(&size) else {
            // An older checkpoint than the published one: nothing to do.
            return;
        };
        candidate.cosigners.insert(name, signatures);
        if self
            .policy
            .satisfied_by(candidate.cosigners.keys().map(String::as_str))
        {
            self.publish(size, false).await;
        }
    }

    /// Publishes the candidate of `size` with the cosignatures it has, drops older
    /// candidates and answers the callers it covers.
    async fn publish(&mut self, size: u64, fail_open: bool) {
        let Some(candidate) = self.candidates.remove(&size) else {
            return;
        };
        let signatures: Vec<NoteSignature> =
            candidate.cosigners.values().flatten().cloned().collect();
        let cosigned = match candidate.checkpoint.with_signatures(&signatures) {
            Ok(cosigned) => cosigned,
            Err(e) => {
                tracing::error!(size, %e, "cannot add cosignatures; publishing the log's signature only");
                SignedCheckpoint::clone(&candidate.checkpoint)
            }
        };
        if fail_open {
            tracing::warn!(
                size,
                cosigners = ?candidate.cosigners.keys().collect::<Vec<_>>(),
                waited = ?candidate.since.elapsed(),
                "FAIL-OPEN: publishing a checkpoint without the witness quorum"
            );
            metrics::counter!(m::FAIL_OPEN_PUBLISHED).increment(1);
        }
        metrics::histogram!(m::QUORUM_SECONDS).record(candidate.since.elapsed().as_secs_f64());
        self.store_and_publish(cosigned).await;
        self.candidates = self.candidates.split_off(&size.saturating_add(1));
        self.answer_covered().await;
    }

    /// Stores `cosigned` (a durable checkpoint with cosignatures added) and publishes
    /// it. A failed store is logged, not fatal: cosignatures are gathered again after a
    /// restart.
    async fn store_and_publish(&mut self, cosigned: SignedCheckpoint) {
        let size = cosigned.size().0;
        let store = self.shared.store.clone();
        let bytes = cosigned.note().clone();
        // Step 8 (with a policy): the cosigned note, synced, before it is published.
        // Durable once this returns: the note for `size` and the "published" record; a
        // restart publishes it again. A crash before leaves the previous published
        // record, and the restart sends the latest durable checkpoint to the
        // witnesses again.
        let stored =
            tokio::task::spawn_blocking(move || store.store_cosigned_checkpoint(size, &bytes))
                .await;
        match stored {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(size, %e, "storing the cosigned checkpoint failed"),
            Err(e) => tracing::error!(size, %e, "storing the cosigned checkpoint failed"),
        }
        publish(&self.shared, Arc::new(cosigned));
    }

    async fn on_timer(&mut self) {
        if self.dormant {
            return;
        }
        let now = Instant::now();
        if now >= self.last_sent + self.resend_interval {
            // Idle: send the latest again (old N = N for witnesses that have it) so the
            // cosignature times show the log is alive.
            self.send_jobs();
        }
        let Some(after) = self.fail_open_after else {
            return;
        };
        if self
            .startup
            .as_ref()
            .is_some_and(|s| now >= s.since + after)
        {
            tracing::warn!(
                waited = ?after,
                "FAIL-OPEN: the witness start-up check found no quorum; signing anyway"
            );
            self.startup = None;
            self.shared.gate.open();
        }
        if self.shared.refusal().is_some() {
            // No fail-open either while witnesses refuse: they reported a fork or a
            // misconfiguration, not an outage.
            return;
        }
        let overdue = self
            .candidates
            .values()
            .next()
            .is_some_and(|oldest| now >= oldest.since + after);
        if overdue && let Some(&latest) = self.candidates.keys().next_back() {
            self.publish(latest, true).await;
        }
    }

    /// Opens the signing gate once the witnesses that answered satisfy the quorum (an
    /// unreachable witness does not block forever), or at once if signing is refused.
    fn check_startup(&mut self) {
        let Some(startup) = &self.startup else {
            return;
        };
        if self.shared.refusal().is_some() {
            self.startup = None;
            self.shared.gate.open();
            return;
        }
        if self
            .policy
            .satisfied_by(startup.answered.iter().map(String::as_str))
        {
            tracing::info!(
                answered = ?startup.answered,
                "witness start-up check passed: no witness is ahead of the log; signing"
            );
            self.startup = None;
            self.shared.gate.open();
        }
    }

    fn refuse(&mut self, witness: &str, size: u64, durable: u64) {
        let reason = format!(
            "witness {witness} has cosigned tree size {size}, larger than this log's latest \
             durable checkpoint (size {durable}): the data directory is probably an old \
             copy, and signing would fork the log"
        );
        tracing::error!(%reason, "WITNESS AHEAD OF THE LOG: refusing to sign");
        // Replaces a refusal set for refusing witnesses: this one does not clear.
        if self
            .shared
            .replace_refusal(self.blocked.as_deref(), Some(reason.clone()))
        {
            self.blocked = None;
        }
        self.startup = None;
        self.candidates.clear();
        self.shared.gate.open();
        self.fail_pending(&reason);
    }

    fn fail_pending(&mut self, reason: &str) {
        for pending in self.pending.drain(..) {
            let _ = pending
                .reply
                .send(Err(LogError::SigningRefused(reason.to_owned())));
        }
    }

    /// Answers every caller the published checkpoint covers: with the round's in-memory
    /// proofs if it is the round's own checkpoint, else with proofs read from storage
    /// against the published size (batched).
    async fn answer_covered(&mut self) {
        let published = self.shared.latest();
        let mut ready = Vec::new();
        let mut waiting = Vec::with_capacity(self.pending.len());
        for pending in self.pending.drain(..) {
            if pending.reply.is_closed() {
                continue; // The caller timed out or went away.
            }
            if pending.needed <= published.size().0 {
                ready.push(pending);
            } else {
                waiting.push(pending);
            }
        }
        self.pending = waiting;
        let mut rebuild = Vec::new();
        for mut pending in ready {
            if pending.answer.checkpoint.size() == published.size() {
                pending.answer.checkpoint = published.clone();
                let _ = pending.reply.send(Ok(pending.answer));
            } else {
                rebuild.push(pending);
            }
        }
        for batch in chunk_by_leaves(rebuild) {
            // Entries of rounds already durable: their leaves were checked when written.
            let leaves: Vec<(u64, Option<Hash>)> = batch
                .iter()
                .flat_map(|p| p.answer.entries.iter().map(|e| (e.index, None)))
                .collect();
            let store = self.shared.tree.clone();
            let size = published.size();
            let proofs = tokio::task::spawn_blocking(move || stored_proofs(&store, &leaves, size))
                .await
                .map_err(|e| LogError::Unavailable(format!("proof task failed: {e}")))
                .and_then(|r| r);
            for mut pending in batch {
                let answer = proofs.as_ref().map_err(Clone::clone).and_then(|proofs| {
                    for entry in &mut pending.answer.entries {
                        let proof = proofs.get(&entry.index).cloned().ok_or_else(|| {
                            LogError::Storage(format!("no proof for leaf {}", entry.index))
                        })?;
                        entry.proof = EntryProof::Stored(proof);
                    }
                    pending.answer.checkpoint = published.clone();
                    Ok(pending.answer)
                });
                let _ = pending.reply.send(answer);
            }
        }
    }
}

/// Splits callers into batches of about [`PROOF_BATCH`] leaves (a caller is never
/// split).
fn chunk_by_leaves(pending: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut batches: Vec<Vec<Pending>> = Vec::new();
    let mut leaves = 0usize;
    for p in pending {
        let n = p.answer.entries.len();
        match batches.last_mut() {
            Some(batch) if leaves.saturating_add(n) <= PROOF_BATCH => {
                leaves = leaves.saturating_add(n);
                batch.push(p);
            }
            _ => {
                leaves = n;
                batches.push(vec![p]);
            }
        }
    }
    batches
}
