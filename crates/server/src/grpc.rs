//! The `merklog.v1.Log` gRPC service over a [`Log`] handle.
//!
//! Every request is validated by `merklog_proto::convert` first; requests that
//! depend on the tree read the latest published checkpoint once and are answered
//! against it, so a response never mixes two tree sizes.
//!
//! Appends run as the [`Caller`] the access-control layer put into the request:
//! its limits are checked before the entries reach the sequencer's queue, and
//! each accepted append is logged (target `merklog::append`: principal, entry
//! count, first index, duplicates and leaf hashes) and counted per principal.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use merklog_log::{AppendReceipt, Log, LogError, SignedCheckpoint};
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf};
use merklog_proto::convert::{
    self, AppendBatch, ConsistencyQuery, EntriesQuery, InclusionQuery, LeafSelector, Limits,
    StreamAppend,
};
use merklog_proto::v1;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::Level;

use crate::auth::limits::{RATE_LIMITED, STREAM_LIMITED};
use crate::auth::{Authenticator, Caller};
use crate::health::Health;
use crate::receipts::Receipts;
use crate::sources::{AppendError, Sources};
use crate::status::log_status;
use crate::telemetry::{self, code_label};

/// Requests of one append stream processed at once; further requests wait in
/// HTTP/2 flow control, which pushes back on the client.
const STREAM_MAX_IN_FLIGHT: usize = 64;
/// The log target of the line each accepted append writes.
const APPEND_TARGET: &str = "merklog::append";

/// Bytes of entries in one `GetEntries` answer, below the 4 MiB a default
/// gRPC client accepts (one entry is at most 64 KiB).
const PAGE_MAX_BYTES: usize = 3 << 20;

/// The log service.
#[derive(Clone)]
pub(crate) struct LogService {
    inner: Arc<Inner>,
    /// Issues COSE receipts; `None` without a receipt key.
    receipts: Option<Arc<Receipts>>,
}

struct Inner {
    log: Log,
    limits: Limits,
    auth: Arc<Authenticator>,
    health: Health,
    /// Becomes true when the server starts shutting down: streams end.
    shutdown: watch::Receiver<bool>,
    /// Checks signed source events before they are queued.
    sources: Arc<Sources>,
}

impl LogService {
    /// The service; health follows the log's refusal to sign from now until
    /// `shutdown` (so this runs inside the server's runtime).
    pub(crate) fn new(
        log: Log,
        limits: Limits,
        auth: Arc<Authenticator>,
        health: Health,
        shutdown: watch::Receiver<bool>,
        sources: Arc<Sources>,
    ) -> Self {
        // Detached: it ends when the server shuts down or the log is gone.
        drop(health.follow(&log, shutdown.clone()));
        Self {
            inner: Arc::new(Inner {
                log,
                limits,
                auth,
                health,
                shutdown,
                sources,
            }),
            receipts: None,
        }
    }

    /// Serves `GetReceipt` with this issuer (called once, before serving).
    pub(crate) fn with_receipts(mut self, receipts: Option<Arc<Receipts>>) -> Self {
        self.receipts = receipts;
        self
    }
}

/// Counts the outcome of one request inside an append stream (the stream as a
/// whole is counted by the per-RPC layer, which cannot see its messages).
fn record_stream_request(code: Code) {
    metrics::counter!("merklog_append_stream_requests_total", "code" => code_label(code))
        .increment(1);
}

fn checkpoint_wire(checkpoint: &SignedCheckpoint) -> v1::Checkpoint {
    convert::signed_checkpoint_to_wire(checkpoint)
}

impl Inner {
    fn log_error(&self, error: LogError) -> Status {
        // A refusal may already have cleared when its error arrives here: only what
        // the log says now turns health NOT_SERVING.
        if matches!(error, LogError::SigningRefused(_)) && self.log.signing_refused().is_some() {
            self.health.signing_refused();
        }
        if let LogError::DataLoss(reason) = &error {
            self.health.storage_corrupted(reason);
        }
        log_status(error)
    }

    /// Appends a validated batch for `caller` (within its limits), records who
    /// appended what, and shapes the answer.
    async fn append_batch(
        &self,
        caller: &Caller,
        batch: AppendBatch,
    ) -> Result<v1::AppendResponse, Status> {
        let bytes = batch.entries.iter().map(Bytes::len).sum();
        self.auth
            .limiter
            .check_append(&caller.principal, batch.entries.len(), bytes)
            .inspect_err(|_| telemetry::record_auth_rejection(RATE_LIMITED))?;
        let include_tlog_proof = batch.include_tlog_proof;
        let count = batch.entries.len();
        // The leaf hashes are for the line below; the log hashes the entries itself.
        let leaves: Option<Vec<Hash>> = tracing::enabled!(target: APPEND_TARGET, Level::INFO)
            .then(|| batch.entries.iter().map(|e| hash_leaf(e)).collect());
        let receipt = self
            .sources
            .append(&caller.principal, batch.entries)
            .await
            .map_err(|e| match e {
                AppendError::Refused(status) => status,
                AppendError::Log(error) => self.log_error(error),
            })?;
        record_append(caller, count, leaves.as_deref(), &receipt);
        append_response(receipt, include_tlog_proof)
    }

    /// One request of an append stream, answered with its sequence number.
    async fn stream_append(
        self: Arc<Self>,
        caller: Arc<Caller>,
        request: v1::AppendStreamRequest,
    ) -> v1::AppendStreamResponse {
        use v1::append_stream_response::Result as Outcome;
        let sequence = request.sequence;
        let result = match StreamAppend::from_wire(request, &self.limits) {
            Ok(append) => self.append_batch(&caller, append.batch).await,
            Err((_, error)) => Err(Status::from(error)),
        };
        record_stream_request(result.as_ref().map_or_else(Status::code, |_| Code::Ok));
        v1::AppendStreamResponse {
            sequence,
            result: Some(match result {
                Ok(response) => Outcome::Response(response),
                Err(status) => Outcome::Error(convert::stream_error(&status)),
            }),
        }
    }

    /// The stored signed checkpoint of exactly `size`, if the log signed one.
    async fn checkpoint_at(&self, size: TreeSize) -> Result<Option<v1::Checkpoint>, Status> {
        let checkpoint = self
            .log
            .checkpoint_at(size)
            .await
            .map_err(|e| self.log_error(e))?;
        Ok(checkpoint.as_ref().map(checkpoint_wire))
    }
}

/// The caller the access-control layer authenticated.
fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the call was not authenticated"))
}

/// Counts an accepted append, and logs it when `leaves` were computed for the
/// line: who, how many entries, where the first one is, and every leaf hash
/// (which identify the entries without their content).
fn record_append(caller: &Caller, count: usize, leaves: Option<&[Hash]>, receipt: &AppendReceipt) {
    let principal = caller.principal.as_str();
    telemetry::record_append(principal, count);
    let Some(leaves) = leaves else { return };
    let duplicates = receipt.entries.iter().filter(|e| e.duplicate).count();
    let first_index = receipt.entries.first().map(|e| e.index.0);
    tracing::info!(
        target: APPEND_TARGET,
        principal,
        entries = count,
        first_index,
        duplicates,
        leaf_hashes = %LeafList(leaves),
        "append accepted"
    );
}

/// Leaf hashes in hex, comma-separated, formatted only when the line is written
/// (the hex of every leaf cost appends CPU at log levels that drop the line).
struct LeafList<'a>(&'a [Hash]);

impl std::fmt::Display for LeafList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, leaf) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{leaf}")?;
        }
        Ok(())
    }
}

/// Shapes a receipt into the wire answer, adding tlog-proofs when asked.
fn append_response(
    receipt: AppendReceipt,
    include_tlog_proof: bool,
) -> Result<v1::AppendResponse, Status> {
    let checkpoint = &receipt.checkpoint;
    let entries = receipt
        .entries
        .into_iter()
        .map(|entry| {
            let tlog_proof = if include_tlog_proof {
                tlog_proof(entry.index.0, &entry.inclusion_proof, checkpoint.note())
            } else {
                Bytes::new()
            };
            Ok(v1::AppendedEntry {
                index: entry.index.0,
                duplicate: entry.duplicate,
                inclusion_proof: convert::proof_to_wire(&entry.inclusion_proof),
                tlog_proof,
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    Ok(v1::AppendResponse {
        checkpoint: Some(checkpoint_wire(checkpoint)),
        entries,
    })
}

/// The C2SP tlog-proof file of one entry.
fn tlog_proof(index: u64, proof: &[Hash], note: &Bytes) -> Bytes {
    Bytes::from(merklog_note::TlogProof::new(index, proof.to_vec(), note.to_vec()).to_bytes())
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl v1::log_server::Log for LogService {
    async fn append(
        &self,
        request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        let caller = caller(&request)?;
        let batch = AppendBatch::from_wire(request.into_inner(), &self.inner.limits)?;
        self.inner
            .append_batch(&caller, batch)
            .await
            .map(Response::new)
    }

    type AppendStreamStream = ReceiverStream<Result<v1::AppendStreamResponse, Status>>;

    async fn append_stream(
        &self,
        request: Request<Streaming<v1::AppendStreamRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        let caller = caller(&request)?;
        let permit = self
            .inner
            .auth
            .limiter
            .open_stream(&caller.principal)
            .inspect_err(|_| telemetry::record_auth_rejection(STREAM_LIMITED))?;
        let (tx, rx) = mpsc::channel(STREAM_MAX_IN_FLIGHT);
        let inner = Arc::clone(&self.inner);
        let inbound = request.into_inner();
        tokio::spawn(async move {
            run_append_stream(inner, Arc::new(caller), inbound, tx).await;
            // The principal's stream slot frees once the stream is done.
            drop(permit);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_checkpoint(
        &self,
        _request: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<v1::Checkpoint>, Status> {
        Ok(Response::new(checkpoint_wire(&self.inner.log.latest())))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<v1::GetInclusionProofRequest>,
    ) -> Result<Response<v1::GetInclusionProofResponse>, Status> {
        self.inclusion_proof(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_consistency_proof(
        &self,
        request: Request<v1::GetConsistencyProofRequest>,
    ) -> Result<Response<v1::GetConsistencyProofResponse>, Status> {
        self.consistency_proof(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_entries(
        &self,
        request: Request<v1::GetEntriesRequest>,
    ) -> Result<Response<v1::GetEntriesResponse>, Status> {
        self.entries(request.into_inner()).await.map(Response::new)
    }

    async fn get_receipt(
        &self,
        request: Request<v1::GetReceiptRequest>,
    ) -> Result<Response<v1::GetReceiptResponse>, Status> {
        crate::receipts::get_receipt(
            self.receipts.as_deref(),
            &self.inner.log,
            request.into_inner(),
        )
        .await
        .map(Response::new)
    }

    type WatchCheckpointsStream = BoxStream<v1::Checkpoint>;

    async fn watch_checkpoints(
        &self,
        _request: Request<v1::WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        Ok(Response::new(watch_stream(
            self.inner.log.subscribe(),
            self.inner.shutdown.clone(),
        )))
    }
}

impl LogService {
    async fn inclusion_proof(
        &self,
        request: v1::GetInclusionProofRequest,
    ) -> Result<v1::GetInclusionProofResponse, Status> {
        let inner = &self.inner;
        let latest = inner.log.latest();
        let query = InclusionQuery::from_wire(&request, latest.size())?;
        let index = match query.leaf {
            LeafSelector::Index(index) => index,
            LeafSelector::Hash(leaf_hash) => {
                let found = inner
                    .log
                    .find_leaf(leaf_hash)
                    .await
                    .map_err(|e| inner.log_error(e))?;
                query.check_found_index(found)?
            }
        };
        let proof = inner
            .log
            .inclusion_proof(index, query.tree_size)
            .await
            .map_err(|e| inner.log_error(e))?;
        let checkpoint = if query.latest {
            Some(checkpoint_wire(&latest))
        } else {
            inner.checkpoint_at(query.tree_size).await?
        };
        Ok(v1::GetInclusionProofResponse {
            index: index.0,
            tree_size: query.tree_size.0,
            proof: convert::proof_to_wire(&proof),
            checkpoint,
        })
    }

    async fn consistency_proof(
        &self,
        request: v1::GetConsistencyProofRequest,
    ) -> Result<v1::GetConsistencyProofResponse, Status> {
        let inner = &self.inner;
        let latest = inner.log.latest();
        let query = ConsistencyQuery::from_wire(&request, latest.size())?;
        let proof = inner
            .log
            .consistency_proof(query.old_size, query.new_size)
            .await
            .map_err(|e| inner.log_error(e))?;
        let checkpoint = if query.latest {
            Some(checkpoint_wire(&latest))
        } else {
            inner.checkpoint_at(query.new_size).await?
        };
        Ok(v1::GetConsistencyProofResponse {
            old_size: query.old_size.0,
            new_size: query.new_size.0,
            proof: convert::proof_to_wire(&proof),
            checkpoint,
        })
    }

    async fn entries(
        &self,
        request: v1::GetEntriesRequest,
    ) -> Result<v1::GetEntriesResponse, Status> {
        let inner = &self.inner;
        let latest = inner.log.latest();
        let query = EntriesQuery::from_wire(&request, latest.size(), &inner.limits)?;
        let entries = inner
            .log
            .entries(query.start, LeafIndex(query.end))
            .await
            .map_err(|e| inner.log_error(e))?;
        let mut page = Vec::with_capacity(entries.len());
        let mut bytes = 0usize;
        for entry in entries {
            bytes = bytes.saturating_add(entry.len());
            if !page.is_empty() && bytes > PAGE_MAX_BYTES {
                break;
            }
            page.push(entry);
        }
        if page.is_empty() {
            return Err(Status::internal(format!(
                "no entries read for [{}, {})",
                query.start, query.end
            )));
        }
        Ok(v1::GetEntriesResponse {
            start: query.start.0,
            entries: page,
        })
    }
}

/// Serves one append stream: reads requests (at most `STREAM_MAX_IN_FLIGHT` in
/// progress), answers each as soon as its round commits, and ends once the
/// client half-closes (or the server shuts down) and every answer is sent.
async fn run_append_stream(
    inner: Arc<Inner>,
    caller: Arc<Caller>,
    mut inbound: Streaming<v1::AppendStreamRequest>,
    tx: mpsc::Sender<Result<v1::AppendStreamResponse, Status>>,
) {
    let mut shutdown = inner.shutdown.clone();
    let mut in_flight = FuturesUnordered::new();
    let mut reading = !*shutdown.borrow_and_update();
    let mut broken: Option<Status> = None;
    loop {
        if !reading && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            Some(answer) = in_flight.next(), if !in_flight.is_empty() => {
                if tx.send(Ok(answer)).await.is_err() {
                    return; // The client went away; dropping the rest is harmless.
                }
            }
            message = inbound.message(), if reading && in_flight.len() < STREAM_MAX_IN_FLIGHT => {
                match message {
                    Ok(Some(request)) => {
                        in_flight.push(
                            Arc::clone(&inner).stream_append(Arc::clone(&caller), request),
                        );
                    }
                    Ok(None) => reading = false,
                    Err(status) if client_gone(&status) => {
                        // The client reset the stream (it may have every answer it
                        // wanted): nobody is left to answer.
                        return;
                    }
                    Err(status) => {
                        // A framing error (e.g. an oversize message): answer what is
                        // in flight, then end the stream with it.
                        reading = false;
                        broken = Some(status);
                    }
                }
            }
            _ = shutdown.changed(), if reading => reading = false,
        }
    }
    if let Some(status) = broken {
        let _ = tx.send(Err(status)).await;
    }
}

/// True if reading the stream failed because the client reset it, which ends
/// the call without an error of the server's.
fn client_gone(status: &Status) -> bool {
    status.code() == Code::Cancelled
}

/// Latest-wins checkpoint stream: the current checkpoint first, then each newer
/// one; sizes only go up (an equal or smaller size is skipped). Ends when the
/// server shuts down.
fn watch_stream(
    checkpoints: watch::Receiver<Arc<SignedCheckpoint>>,
    shutdown: watch::Receiver<bool>,
) -> BoxStream<v1::Checkpoint> {
    struct State {
        checkpoints: watch::Receiver<Arc<SignedCheckpoint>>,
        shutdown: watch::Receiver<bool>,
        last_size: Option<TreeSize>,
        started: bool,
    }
    let state = State {
        checkpoints,
        shutdown,
        last_size: None,
        started: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if *state.shutdown.borrow_and_update() {
                return None;
            }
            if state.started {
                tokio::select! {
                    changed = state.checkpoints.changed() => {
                        if changed.is_err() {
                            return None; // The log stopped.
                        }
                    }
                    _ = state.shutdown.changed() => return None,
                }
            }
            state.started = true;
            let checkpoint = Arc::clone(&state.checkpoints.borrow_and_update());
            if state
                .last_size
                .is_some_and(|last| checkpoint.size() <= last)
            {
                continue;
            }
            state.last_size = Some(checkpoint.size());
            return Some((Ok(checkpoint_wire(&checkpoint)), state));
        }
    }))
}
