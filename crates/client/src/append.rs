//! Appending entries, unary or streamed, with every acknowledgement verified.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt as _, Stream, StreamExt as _};
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf};
use merklog_note::TlogProof;
use merklog_proto::convert::{proof_from_wire, stream_answer};
use merklog_proto::v1;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::client::call;
use crate::{Client, ClientError, SignedCheckpoint};

/// The verified acknowledgement of one appended entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReceipt {
    /// Where the entry is in the log.
    pub index: LeafIndex,
    /// True when the same bytes were already in the log before this client
    /// sent them (`index` is theirs). An entry that an earlier, unanswered
    /// attempt of this client made durable is not a duplicate.
    pub duplicate: bool,
    /// The entry's leaf hash, `SHA-256(0x00 || entry)`.
    pub leaf_hash: Hash,
    /// The verified inclusion proof against `checkpoint`.
    pub proof: Vec<Hash>,
    /// The verified checkpoint the proof leads to (shared by a whole answer).
    pub checkpoint: Arc<SignedCheckpoint>,
}

impl AppendReceipt {
    /// The C2SP tlog-proof of the entry, verifiable offline.
    pub fn tlog_proof(&self) -> TlogProof {
        TlogProof::new(
            self.index.0,
            self.proof.clone(),
            self.checkpoint.note().to_vec(),
        )
    }
}

/// How [`Client::append_stream`] groups entries into requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Most entries per request; must not exceed the server's
    /// `max-entries-per-call` (default 256).
    pub batch_entries: usize,
    /// A request is closed once it holds this many bytes of entries.
    pub batch_bytes: usize,
    /// Most requests awaiting their answer at once.
    pub window: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            batch_entries: 256,
            batch_bytes: 4 << 20,
            window: 16,
        }
    }
}

/// What a streamed append did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendSummary {
    /// Entries acknowledged (new and duplicates).
    pub entries: u64,
    /// How many of them were already in the log.
    pub duplicates: u64,
    /// The largest checkpoint among the answers.
    pub checkpoint: Option<Arc<SignedCheckpoint>>,
}

impl AppendSummary {
    fn add(&mut self, receipt: &AppendReceipt) {
        self.entries += 1;
        self.duplicates += u64::from(receipt.duplicate);
        if self
            .checkpoint
            .as_ref()
            .is_none_or(|c| c.size() < receipt.checkpoint.size())
        {
            self.checkpoint = Some(Arc::clone(&receipt.checkpoint));
        }
    }
}

/// One request on the append stream that awaits its answer.
struct Pending {
    entries: Vec<Bytes>,
    leaves: Vec<Hash>,
    /// How many times it was sent.
    attempts: u32,
    /// When it was first sent.
    first_sent: Instant,
}

impl Pending {
    fn message(&self, sequence: u64) -> v1::AppendStreamRequest {
        v1::AppendStreamRequest {
            sequence,
            request: Some(v1::AppendRequest {
                entries: self.entries.clone(),
                include_tlog_proof: false,
            }),
        }
    }
}

/// Answers after which a retry may succeed (appends are idempotent). Not
/// FAILED_PRECONDITION: the log refuses to sign (a witness froze it, or its data does
/// not match what was signed) until an operator acts, so the error is final.
fn retryable(code: Code) -> bool {
    matches!(code, Code::ResourceExhausted | Code::Unavailable)
}

/// The next batch: waits for one entry, then takes every entry that is ready at
/// once, up to the limits. Only the first `next()` awaits, and nothing is taken
/// before it completes, so dropping this future loses nothing. An error behind
/// good entries is kept in `held` and returned by the next call, so the entries
/// before it are still sent.
async fn next_batch<S>(
    entries: &mut S,
    held: &mut Option<ClientError>,
    options: &StreamOptions,
) -> Option<Result<Vec<Bytes>, ClientError>>
where
    S: Stream<Item = Result<Bytes, ClientError>> + Unpin,
{
    if let Some(error) = held.take() {
        return Some(Err(error));
    }
    let first = match entries.next().await? {
        Ok(entry) => entry,
        Err(e) => return Some(Err(e)),
    };
    let mut bytes = first.len();
    let mut batch = vec![first];
    while batch.len() < options.batch_entries && bytes < options.batch_bytes {
        match entries.next().now_or_never() {
            Some(Some(Ok(entry))) => {
                bytes = bytes.saturating_add(entry.len());
                batch.push(entry);
            }
            Some(Some(Err(e))) => {
                *held = Some(e);
                break;
            }
            // The end of the input, or nothing ready yet: send what we have.
            Some(None) | None => break,
        }
    }
    Some(Ok(batch))
}

impl Client {
    /// Remembers the tree size known before the first append of this client.
    fn start_appending(&mut self) {
        if self.size_at_first_append.is_none() {
            self.size_at_first_append = Some(self.latest().map_or(TreeSize(0), |c| c.size()));
        }
    }

    /// The error after the last failed attempt: the status itself when there was
    /// no retry, else how long and how often it was tried.
    fn gave_up(
        rpc: &'static str,
        attempts: u32,
        started: Instant,
        status: tonic::Status,
    ) -> ClientError {
        if attempts <= 1 {
            return ClientError::rpc(rpc, status);
        }
        ClientError::RetriesExhausted {
            rpc,
            attempts,
            elapsed: started.elapsed(),
            status: Box::new(status),
        }
    }

    /// Verifies an append answer: its checkpoint, one inclusion proof per entry
    /// against it, and the checkpoint's consistency with everything seen before.
    async fn verify_append(
        &mut self,
        response: v1::AppendResponse,
        leaves: &[Hash],
    ) -> Result<Vec<AppendReceipt>, ClientError> {
        let Some(wire) = response.checkpoint else {
            return Err(ClientError::Malformed(
                "an append answer came without a checkpoint".into(),
            ));
        };
        let checkpoint = Arc::new(self.trust.open_wire(wire)?);
        if response.entries.len() != leaves.len() {
            return Err(ClientError::Malformed(format!(
                "appended {} entries, the answer has {}",
                leaves.len(),
                response.entries.len()
            )));
        }
        let mut receipts = Vec::with_capacity(leaves.len());
        let known_before = self.size_at_first_append.unwrap_or(TreeSize(0));
        for (answer, leaf_hash) in response.entries.iter().zip(leaves) {
            let proof = proof_from_wire("inclusion_proof", &answer.inclusion_proof)
                .map_err(|e| ClientError::Malformed(e.to_string()))?;
            let index = LeafIndex(answer.index);
            Self::check_inclusion(leaf_hash, index, &proof, &checkpoint)?;
            // Found "already in the log" after this client sent it in an attempt
            // that got no answer: that attempt put it there, unless the log held
            // it before this client's first append.
            let sent_before = self.unacknowledged.remove(leaf_hash);
            let duplicate = answer.duplicate && !(sent_before && index.0 >= known_before.0);
            receipts.push(AppendReceipt {
                index,
                duplicate,
                leaf_hash: *leaf_hash,
                proof,
                checkpoint: Arc::clone(&checkpoint),
            });
        }
        // An answer may carry an older checkpoint than one seen already (the first
        // that covers the entry), so it is historic, not "latest".
        self.observe(&checkpoint, false).await?;
        Ok(receipts)
    }

    /// Why the request side of the append stream closed: the status the server
    /// ended it with, when it says.
    async fn stream_closed(
        &self,
        answers: &mut tonic::Streaming<v1::AppendStreamResponse>,
    ) -> ClientError {
        let closed = || {
            ClientError::rpc(
                "AppendStream",
                tonic::Status::unavailable("the server closed the append stream"),
            )
        };
        match tokio::time::timeout(self.options.request_timeout, answers.message()).await {
            Ok(Err(status)) => crate::probe::classify("AppendStream", &self.server, status).await,
            _ => closed(),
        }
    }

    /// Appends entries in one `Append` call and verifies the answer. Retries
    /// RESOURCE_EXHAUSTED and UNAVAILABLE with exponential backoff, within
    /// `append_retries` or `retry_for` (see [`Client::on_retry`]).
    pub async fn append(&mut self, entries: Vec<Bytes>) -> Result<Vec<AppendReceipt>, ClientError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.start_appending();
        let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
        let request = v1::AppendRequest {
            entries,
            include_tlog_proof: false,
        };
        let started = Instant::now();
        let mut attempt = 0u32;
        let response = loop {
            attempt += 1;
            let answer = call(
                "Append",
                &self.server,
                self.options.request_timeout,
                self.rpc.append(request.clone()),
            )
            .await;
            match answer {
                Ok(response) => break response,
                Err(ClientError::Rpc { status, .. }) if retryable(status.code()) => {
                    self.unacknowledged.extend(leaves.iter().copied());
                    match self.retry_delay("Append", &status, attempt, started, leaves.len()) {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => return Err(Self::gave_up("Append", attempt, started, *status)),
                    }
                }
                Err(e) => return Err(e),
            }
        };
        self.verify_append(response, &leaves).await
    }

    /// Streams entries over `AppendStream`: groups them into requests (see
    /// [`StreamOptions`]), keeps up to `window` requests in flight, verifies every
    /// answer as [`Client::append`] does, and calls `on_receipt` for each entry in
    /// input order.
    ///
    /// At a bad input item it sends nothing more, waits for the answers to
    /// everything already sent (their receipts are delivered), then returns the
    /// input error: every entry before the bad one is acknowledged, none after it
    /// was sent. A network or verification error ends it at once; the receipts
    /// delivered until then are exactly the acknowledged prefix of the input.
    pub async fn append_stream<S, F>(
        &mut self,
        entries: S,
        options: &StreamOptions,
        mut on_receipt: F,
    ) -> Result<AppendSummary, ClientError>
    where
        S: Stream<Item = Result<Bytes, ClientError>> + Unpin,
        F: FnMut(&AppendReceipt) -> Result<(), ClientError>,
    {
        let options = StreamOptions {
            batch_entries: options.batch_entries.max(1),
            batch_bytes: options.batch_bytes.max(1),
            window: options.window.max(1),
        };
        let mut entries = entries.fuse();
        let (requests, outbound) = mpsc::channel::<v1::AppendStreamRequest>(options.window);
        self.start_appending();
        let limit = self.options.request_timeout;
        let mut answers = call(
            "AppendStream",
            &self.server,
            limit,
            self.rpc.append_stream(ReceiverStream::new(outbound)),
        )
        .await?;
        let mut input_error = None;
        let mut held = None;

        let mut pending: HashMap<u64, Pending> = HashMap::new();
        let mut answered: BTreeMap<u64, Vec<AppendReceipt>> = BTreeMap::new();
        let mut next_sequence = 0u64;
        let mut next_delivery = 0u64;
        let mut input_done = false;
        let mut summary = AppendSummary::default();
        // Each turn sends one request or consumes one answer; both are finite.
        while !(input_done && pending.is_empty()) {
            let can_send = !input_done && pending.len() < options.window;
            tokio::select! {
                answer = tokio::time::timeout(limit, answers.message()) => {
                    let Ok(answer) = answer else {
                        if pending.is_empty() {
                            // Nothing is awaited: the input is slow, not the server.
                            continue;
                        }
                        return Err(ClientError::Timeout {
                            rpc: "AppendStream",
                            server: self.server.clone(),
                            after: limit,
                        });
                    };
                    let answer = match answer {
                        Ok(answer) => answer,
                        Err(status) => {
                            return Err(
                                crate::probe::classify("AppendStream", &self.server, status).await,
                            );
                        }
                    };
                    let Some(answer) = answer else {
                        return Err(ClientError::Malformed(format!(
                            "the server ended the append stream with {} requests unanswered",
                            pending.len()
                        )));
                    };
                    let (sequence, result) =
                        stream_answer(answer).map_err(|e| ClientError::Malformed(e.to_string()))?;
                    let Some(mut request) = pending.remove(&sequence) else {
                        return Err(ClientError::Malformed(format!(
                            "an answer for request {sequence}, which is not awaiting one"
                        )));
                    };
                    match result {
                        Ok(response) => {
                            let receipts = self.verify_append(response, &request.leaves).await?;
                            answered.insert(sequence, receipts);
                        }
                        Err(status) if retryable(status.code()) => {
                            self.unacknowledged.extend(request.leaves.iter().copied());
                            let Some(delay) = self.retry_delay(
                                "AppendStream",
                                &status,
                                request.attempts,
                                request.first_sent,
                                request.leaves.len(),
                            ) else {
                                return Err(Self::gave_up(
                                    "AppendStream",
                                    request.attempts,
                                    request.first_sent,
                                    status,
                                ));
                            };
                            tokio::time::sleep(delay).await;
                            request.attempts += 1;
                            if requests.send(request.message(sequence)).await.is_err() {
                                return Err(self.stream_closed(&mut answers).await);
                            }
                            pending.insert(sequence, request);
                        }
                        Err(status) => return Err(ClientError::rpc("AppendStream", status)),
                    }
                }
                batch = next_batch(&mut entries, &mut held, &options), if can_send => {
                    match batch {
                        None => input_done = true,
                        Some(Err(e)) => {
                            // Send nothing more; collect the answers still due.
                            input_error = Some(e);
                            input_done = true;
                        }
                        Some(Ok(batch)) => {
                            let request = Pending {
                                leaves: batch.iter().map(|e| hash_leaf(e)).collect(),
                                entries: batch,
                                attempts: 1,
                                first_sent: Instant::now(),
                            };
                            let sequence = next_sequence;
                            next_sequence += 1;
                            if requests.send(request.message(sequence)).await.is_err() {
                                return Err(self.stream_closed(&mut answers).await);
                            }
                            pending.insert(sequence, request);
                        }
                    }
                }
            }
            while let Some(receipts) = answered.remove(&next_delivery) {
                for receipt in &receipts {
                    summary.add(receipt);
                    on_receipt(receipt)?;
                }
                next_delivery += 1;
            }
        }
        match input_error {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_answers_are_retried() {
        assert!(retryable(Code::Unavailable));
        assert!(retryable(Code::ResourceExhausted));
        for final_code in [
            Code::FailedPrecondition,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::Internal,
        ] {
            assert!(!retryable(final_code), "{final_code:?}");
        }
    }
}
