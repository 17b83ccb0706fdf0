//! The `merklog.v1.Sources` gRPC service: the registry with each source's status,
//! a source's events with inclusion proofs against one checkpoint, and a stream of
//! status changes. Read calls: they need the read role when `read-access` says so
//! (the access-control layer wraps this service like the log's).

use std::sync::Arc;

use bytes::Bytes;
use merklog_log::SignedCheckpoint;
use merklog_merkle::{TreeSize, hash_leaf};
use merklog_proto::convert;
use merklog_proto::v1;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::ingest::unique_key;
use super::ranges::RangeSet;
use crate::sources::Sources;
use crate::status::log_status;

/// Most sequence numbers one `GetSourceEvents` page covers.
pub(crate) const MAX_EVENTS_PER_PAGE: u64 = 256;
/// Envelope bytes in one page, below the 4 MiB a default gRPC client accepts.
const PAGE_MAX_BYTES: usize = 3 << 20;

/// The Sources service.
#[derive(Clone)]
pub(crate) struct SourcesService {
    sources: Arc<Sources>,
    shutdown: watch::Receiver<bool>,
}

impl SourcesService {
    pub(crate) fn new(sources: Arc<Sources>, shutdown: watch::Receiver<bool>) -> Self {
        Self { sources, shutdown }
    }
}

type Watch = ReceiverStream<Result<v1::SourceStatus, Status>>;

#[tonic::async_trait]
impl v1::sources_server::Sources for SourcesService {
    async fn list_sources(
        &self,
        _request: Request<v1::ListSourcesRequest>,
    ) -> Result<Response<v1::ListSourcesResponse>, Status> {
        let registry = self.sources.registry.get();
        let sources = registry
            .sources()
            .iter()
            .map(|s| self.sources.tracker.status(s))
            .collect();
        Ok(Response::new(v1::ListSourcesResponse { sources }))
    }

    async fn get_source_events(
        &self,
        request: Request<v1::GetSourceEventsRequest>,
    ) -> Result<Response<v1::GetSourceEventsResponse>, Status> {
        self.events(request.into_inner()).await.map(Response::new)
    }

    type WatchSourcesStream = Watch;

    async fn watch_sources(
        &self,
        request: Request<v1::WatchSourcesRequest>,
    ) -> Result<Response<Watch>, Status> {
        let names = request.into_inner().names;
        let (tx, rx) = mpsc::channel(64);
        let sources = Arc::clone(&self.sources);
        let mut changes = sources.changes.subscribe();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let wanted = |name: &str| names.is_empty() || names.iter().any(|n| n == name);
            let send_all = |tx: mpsc::Sender<Result<v1::SourceStatus, Status>>| {
                let registry = sources.registry.get();
                let statuses: Vec<v1::SourceStatus> = registry
                    .sources()
                    .iter()
                    .filter(|s| wanted(&s.name))
                    .map(|s| sources.tracker.status(s))
                    .collect();
                async move {
                    for status in statuses {
                        if tx.send(Ok(status)).await.is_err() {
                            return false;
                        }
                    }
                    true
                }
            };
            if !send_all(tx.clone()).await {
                return;
            }
            loop {
                let changed = tokio::select! {
                    changed = changes.recv() => changed,
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                match changed {
                    Ok(name) if wanted(&name) => {
                        let status = sources
                            .registry
                            .get()
                            .get(&name)
                            .map(|s| sources.tracker.status(s));
                        if let Some(status) = status
                            && tx.send(Ok(status)).await.is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // Missed changes: the current status of each says where they led.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if !send_all(tx.clone()).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

impl SourcesService {
    async fn events(
        &self,
        request: v1::GetSourceEventsRequest,
    ) -> Result<v1::GetSourceEventsResponse, Status> {
        let sources = &self.sources;
        let log = &sources.log;
        let name = request.source;
        if sources.registry.get().get(&name).is_none() {
            return Err(Status::not_found(format!(
                "source {name:?} is not registered"
            )));
        }
        let (from, to) = (request.from_sequence, request.to_sequence);
        if from > to {
            return Err(Status::invalid_argument(format!(
                "from_sequence {from} is above to_sequence {to}"
            )));
        }
        let checkpoint: Arc<SignedCheckpoint> = if request.tree_size == 0 {
            log.latest()
        } else {
            match log.checkpoint_at(TreeSize(request.tree_size)).await {
                Ok(Some(checkpoint)) => Arc::new(checkpoint),
                Ok(None) => {
                    return Err(Status::not_found(format!(
                        "no checkpoint of size {} is published",
                        request.tree_size
                    )));
                }
                Err(error) => return Err(log_status(error)),
            }
        };
        let size = checkpoint.size();
        let page_end = to.min(from.saturating_add(MAX_EVENTS_PER_PAGE - 1));
        let keys: Vec<Bytes> = (from..=page_end).map(|s| unique_key(&name, s)).collect();
        let records = log.lookup_keys(keys).await.map_err(log_status)?;
        // The page's entries and their proofs in two batched reads, not two per event.
        let found: Vec<(u64, u64)> = (from..=page_end)
            .zip(records)
            .filter_map(|(sequence, record)| {
                record
                    .filter(|r| r.index < size.0)
                    .map(|r| (sequence, r.index))
            })
            .collect();
        let envelopes = if found.is_empty() {
            Vec::new()
        } else {
            log.entries_at(found.iter().map(|(_, index)| *index).collect())
                .await
                .map_err(log_status)?
        };
        let mut next_sequence = (page_end < to).then(|| page_end + 1);
        let mut bytes = 0usize;
        let mut kept = Vec::new();
        for ((sequence, index), envelope) in found.into_iter().zip(envelopes) {
            bytes = bytes.saturating_add(envelope.len());
            if !kept.is_empty() && bytes > PAGE_MAX_BYTES {
                next_sequence = Some(sequence);
                break;
            }
            kept.push((sequence, index, envelope));
        }
        let leaves = kept
            .iter()
            .map(|(_, index, envelope)| (*index, hash_leaf(envelope)))
            .collect();
        let proofs = log
            .inclusion_proofs(leaves, size)
            .await
            .map_err(log_status)?;
        let mut held = RangeSet::default();
        let mut events = Vec::with_capacity(kept.len());
        for ((sequence, index, envelope), proof) in kept.into_iter().zip(proofs) {
            held.insert(sequence, sequence);
            events.push(v1::SourceEvent {
                sequence,
                index,
                envelope,
                inclusion_proof: convert::proof_to_wire(&proof),
            });
        }
        // The page covers from..=last; what it does not hold there is missing,
        // unless declared unused.
        let last = next_sequence.map_or(to, |n| n - 1);
        let (unused, equivocations) = sources.tracker.range_facts(&name, from, last);
        for &(first, end) in &unused {
            held.insert(first.max(from), end.min(last));
        }
        let missing = held
            .missing_in(from, last)
            .into_iter()
            .map(|(first, last)| v1::SequenceRange { first, last })
            .collect();
        Ok(v1::GetSourceEventsResponse {
            checkpoint: Some(convert::signed_checkpoint_to_wire(&checkpoint)),
            events,
            missing,
            declared_unused: unused
                .into_iter()
                .map(|(first, last)| v1::SequenceRange { first, last })
                .collect(),
            equivocations: equivocations
                .iter()
                .map(|e| v1::Equivocation {
                    sequence: e.sequence,
                    logged_envelope: e.logged_envelope.clone(),
                    logged_index: e.logged_index,
                    other_envelope: e.other_envelope.clone(),
                    seen_unix_ms: e.seen_unix_ms,
                })
                .collect(),
            next_sequence,
        })
    }
}
