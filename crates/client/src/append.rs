//! Appending entries, unary or streamed, with every acknowledgement verified.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt as _, Stream, StreamExt as _};
use merklog_merkle::{Hash, LeafIndex, hash_leaf};
use merklog_note::TlogProof;
use merklog_proto::convert::{proof_from_wire, retry_after, stream_answer};
use merklog_proto::v1;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::{Client, ClientError, SignedCheckpoint};

/// The verified acknowledgement of one appended entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReceipt {
    /// Where the entry is in the log.
    pub index: LeafIndex,
    /// True when the same bytes were already in the log (`index` is theirs).
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
            self.checkpoint.note.to_vec(),
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
            .is_none_or(|c| c.size < receipt.checkpoint.size)
        {
            self.checkpoint = Some(Arc::clone(&receipt.checkpoint));
        }
    }
}

/// One request on the append stream that awaits its answer.
struct Pending {
    entries: Vec<Bytes>,
    leaves: Vec<Hash>,
    attempts: u32,
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
/// before it completes, so dropping this future loses nothing.
async fn next_batch<S>(
    entries: &mut S,
    options: &StreamOptions,
) -> Option<Result<Vec<Bytes>, ClientError>>
where
    S: Stream<Item = Result<Bytes, ClientError>> + Unpin,
{
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
            Some(Some(Err(e))) => return Some(Err(e)),
            // The end of the input, or nothing ready yet: send what we have.
            Some(None) | None => break,
        }
    }
    Some(Ok(batch))
}

impl Client {
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
        for (answer, leaf_hash) in response.entries.iter().zip(leaves) {
            let proof = proof_from_wire("inclusion_proof", &answer.inclusion_proof)
                .map_err(|e| ClientError::Malformed(e.to_string()))?;
            let index = LeafIndex(answer.index);
            Self::check_inclusion(leaf_hash, index, &proof, &checkpoint)?;
            receipts.push(AppendReceipt {
                index,
                duplicate: answer.duplicate,
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

    /// Appends entries in one `Append` call and verifies the answer. Retries
    /// RESOURCE_EXHAUSTED and UNAVAILABLE with exponential backoff.
    pub async fn append(&mut self, entries: Vec<Bytes>) -> Result<Vec<AppendReceipt>, ClientError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
        let request = v1::AppendRequest {
            entries,
            include_tlog_proof: false,
        };
        let mut attempt = 0u32;
        let response = loop {
            match self.rpc.append(request.clone()).await {
                Ok(response) => break response.into_inner(),
                Err(status)
                    if retryable(status.code()) && attempt < self.options.append_retries =>
                {
                    tokio::time::sleep(self.retry_delay(attempt, &status)).await;
                    attempt += 1;
                }
                Err(status) => return Err(ClientError::rpc("Append", status)),
            }
        };
        self.verify_append(response, &leaves).await
    }

    /// How long to wait before retry `attempt`: the server's `retry-after`
    /// hint when it gave one (a rate limit knows when the call will pass),
    /// else the doubling backoff.
    fn retry_delay(&self, attempt: u32, status: &tonic::Status) -> std::time::Duration {
        retry_after(status).unwrap_or_else(|| {
            self.options
                .retry_backoff
                .saturating_mul(1u32 << attempt.min(10))
        })
    }

    /// Streams entries over `AppendStream`: groups them into requests (see
    /// [`StreamOptions`]), keeps up to `window` requests in flight, verifies every
    /// answer as [`Client::append`] does, and calls `on_receipt` for each entry in
    /// input order. Stops at the first error (input, network or verification).
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
        let mut answers = self
            .rpc
            .append_stream(ReceiverStream::new(outbound))
            .await
            .map_err(|s| ClientError::rpc("AppendStream", s))?
            .into_inner();
        let closed = || ClientError::Malformed("the append stream closed early".into());

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
                answer = answers.message() => {
                    let Some(answer) = answer.map_err(|s| ClientError::rpc("AppendStream", s))?
                    else {
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
                        Err(status)
                            if retryable(status.code())
                                && request.attempts < self.options.append_retries =>
                        {
                            tokio::time::sleep(self.retry_delay(request.attempts, &status)).await;
                            request.attempts += 1;
                            requests
                                .send(request.message(sequence))
                                .await
                                .map_err(|_| closed())?;
                            pending.insert(sequence, request);
                        }
                        Err(status) => return Err(ClientError::rpc("AppendStream", status)),
                    }
                }
                batch = next_batch(&mut entries, &options), if can_send => {
                    match batch {
                        None => input_done = true,
                        Some(Err(e)) => return Err(e),
                        Some(Ok(batch)) => {
                            let request = Pending {
                                leaves: batch.iter().map(|e| hash_leaf(e)).collect(),
                                entries: batch,
                                attempts: 0,
                            };
                            let sequence = next_sequence;
                            next_sequence += 1;
                            requests
                                .send(request.message(sequence))
                                .await
                                .map_err(|_| closed())?;
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
        Ok(summary)
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
