//! The `merklog.v1.Query` service: one page of the entries filed under every given
//! term, in time order, each with its inclusion proof against ONE checkpoint (the
//! response's). A read call: the access-control layer wraps it like the others.
//!
//! The page scans the rows of the first given term in its time window (one bounded
//! range read at a time) and keeps an entry when the rows of the other terms exist
//! too: an entry's terms share its time and leaf hash, so each other row's key is
//! known and all of them are one batched lookup. Rows of leaves beyond the
//! checkpoint's size (durable, not yet published there) are passed over.

use std::sync::Arc;

use bytes::Bytes;
use merklog_log::{KeyRecord, Log, SignedCheckpoint, parse_term_key, term_key, term_range};
use merklog_merkle::{HASH_SIZE, Hash, TreeSize};
use merklog_proto::convert;
use merklog_proto::v1;
use tonic::{Request, Response, Status};

use super::terms::{TermKind, term};
use crate::status::log_status;

/// Events per page when the request names no page size.
const DEFAULT_PAGE: usize = 100;
/// Most events per page.
const MAX_PAGE: usize = 1000;
/// Most index rows one call reads: a page of a rare intersection ends early, with a
/// token, rather than scanning without bound.
const MAX_SCANNED: usize = 1 << 16;
/// Entry bytes in one page, below the 4 MiB a default gRPC client accepts.
const PAGE_MAX_BYTES: usize = 3 << 20;
/// A page token: the last row's time (`u64` BE) and leaf hash.
const TOKEN_LEN: usize = 8 + HASH_SIZE;

/// The Query service.
#[derive(Clone)]
pub(crate) struct QueryService {
    log: Log,
}

impl QueryService {
    pub(crate) fn new(log: Log) -> Self {
        Self { log }
    }
}

#[tonic::async_trait]
impl v1::query_server::Query for QueryService {
    async fn query_events(
        &self,
        request: Request<v1::QueryEventsRequest>,
    ) -> Result<Response<v1::QueryEventsResponse>, Status> {
        self.page(request.into_inner()).await.map(Response::new)
    }
}

/// A row the scan kept.
struct Hit {
    time_ms: u64,
    record: KeyRecord,
}

impl QueryService {
    async fn page(
        &self,
        request: v1::QueryEventsRequest,
    ) -> Result<v1::QueryEventsResponse, Status> {
        let log = &self.log;
        let mut terms: Vec<Bytes> = Vec::new();
        for (kind, value) in [
            (TermKind::Actor, &request.actor),
            (TermKind::Model, &request.model),
            (TermKind::Action, &request.action),
            (TermKind::Source, &request.source),
        ] {
            if !value.is_empty() {
                terms.push(term(kind, value).map_err(Status::invalid_argument)?);
            }
        }
        let Some((first, others)) = terms.split_first() else {
            return Err(Status::invalid_argument(
                "give at least one of actor, model, action, source",
            ));
        };
        let since = request.since_unix_ms;
        let until = match request.until_unix_ms {
            0 => u64::MAX,
            until => until,
        };
        if since >= until {
            return Err(Status::invalid_argument(format!(
                "the time window [since_unix_ms {since}, until_unix_ms {until}) is empty"
            )));
        }
        let page_size = match request.page_size {
            0 => DEFAULT_PAGE,
            n => (n as usize).min(MAX_PAGE),
        };
        let checkpoint = checkpoint(log, request.tree_size).await?;
        let size = checkpoint.size();
        let (mut start, end) = term_range(first, since, until);
        if !request.page_token.is_empty() {
            let after = parse_token(&request.page_token)?;
            let mut key = term_key(first, after.0, &after.1);
            key.push(0);
            start = start.max(key);
        }

        let mut hits: Vec<Hit> = Vec::new();
        let mut scanned = 0usize;
        // The last row looked at: where the next page starts when this one ends early.
        let mut last: Option<(u64, Hash)> = None;
        let mut exhausted = false;
        while hits.len() < page_size && scanned < MAX_SCANNED {
            let want = (page_size - hits.len()).max(64).min(MAX_SCANNED - scanned);
            let rows = log
                .scan_terms(start.clone(), end.clone(), want)
                .await
                .map_err(log_status)?;
            scanned += rows.len();
            let Some((last_key, _)) = rows.last() else {
                exhausted = true;
                break;
            };
            start = last_key.clone();
            start.push(0);
            let batch_full = rows.len() == want;
            let rows: Vec<(u64, Hash, KeyRecord)> = rows
                .iter()
                .filter_map(|(key, record)| {
                    let (_, time, hash) = parse_term_key(key)?;
                    Some((time, hash, *record))
                })
                .collect();
            let kept = matching(log, others, &rows, size).await?;
            let mut consumed_all = true;
            for ((time, hash, record), keep) in rows.into_iter().zip(kept) {
                if hits.len() == page_size {
                    consumed_all = false;
                    break;
                }
                last = Some((time, hash));
                if keep {
                    hits.push(Hit {
                        time_ms: time,
                        record,
                    });
                }
            }
            if !batch_full {
                exhausted = consumed_all;
                break;
            }
        }

        let indexes: Vec<u64> = hits.iter().map(|h| h.record.index).collect();
        let leaves: Vec<(u64, Hash)> = hits
            .iter()
            .map(|h| (h.record.index, h.record.leaf_hash))
            .collect();
        let entries = if indexes.is_empty() {
            Vec::new()
        } else {
            log.entries_at(indexes).await.map_err(log_status)?
        };
        let proofs = log
            .inclusion_proofs(leaves, size)
            .await
            .map_err(log_status)?;
        let mut events = Vec::with_capacity(hits.len());
        let mut bytes = 0usize;
        let mut truncated_at = None;
        for ((hit, entry), proof) in hits.iter().zip(entries).zip(proofs) {
            bytes = bytes.saturating_add(entry.len());
            if !events.is_empty() && bytes > PAGE_MAX_BYTES {
                // The next page starts after the last event of this one.
                exhausted = false;
                break;
            }
            truncated_at = Some((hit.time_ms, hit.record.leaf_hash));
            events.push(v1::QueriedEvent {
                index: hit.record.index,
                time_unix_ms: hit.time_ms,
                entry,
                inclusion_proof: convert::proof_to_wire(&proof),
            });
        }
        if events.len() < hits.len() {
            last = truncated_at;
        }
        let next_page_token = match (exhausted, last) {
            (false, Some((time, hash))) => token(time, &hash),
            _ => Bytes::new(),
        };
        Ok(v1::QueryEventsResponse {
            checkpoint: Some(convert::signed_checkpoint_to_wire(&checkpoint)),
            events,
            next_page_token,
        })
    }
}

/// For each row: whether its leaf is within `size` and filed under every one of
/// `others` too (one batched lookup).
async fn matching(
    log: &Log,
    others: &[Bytes],
    rows: &[(u64, Hash, KeyRecord)],
    size: TreeSize,
) -> Result<Vec<bool>, Status> {
    let within: Vec<bool> = rows.iter().map(|(_, _, r)| r.index < size.0).collect();
    if others.is_empty() {
        return Ok(within);
    }
    let keys: Vec<Vec<u8>> = rows
        .iter()
        .zip(&within)
        .filter(|(_, inside)| **inside)
        .flat_map(|((time, hash, _), _)| others.iter().map(move |t| term_key(t, *time, hash)))
        .collect();
    let found = if keys.is_empty() {
        Vec::new()
    } else {
        log.lookup_terms(keys).await.map_err(log_status)?
    };
    let mut found = found.chunks(others.len());
    Ok(rows
        .iter()
        .zip(within)
        .map(|((_, _, record), inside)| {
            inside
                && found.next().is_some_and(|rows| {
                    rows.iter()
                        .all(|r| r.is_some_and(|r| r.index == record.index))
                })
        })
        .collect())
}

/// The checkpoint of `tree_size` (0: the latest published).
async fn checkpoint(log: &Log, tree_size: u64) -> Result<Arc<SignedCheckpoint>, Status> {
    if tree_size == 0 {
        return Ok(log.latest());
    }
    match log.checkpoint_at(TreeSize(tree_size)).await {
        Ok(Some(checkpoint)) => Ok(Arc::new(checkpoint)),
        Ok(None) => Err(Status::not_found(format!(
            "no checkpoint of size {tree_size} is published"
        ))),
        Err(error) => Err(log_status(error)),
    }
}

fn token(time_ms: u64, hash: &Hash) -> Bytes {
    let mut out = Vec::with_capacity(TOKEN_LEN);
    out.extend_from_slice(&time_ms.to_be_bytes());
    out.extend_from_slice(hash.as_bytes());
    Bytes::from(out)
}

fn parse_token(bytes: &[u8]) -> Result<(u64, Hash), Status> {
    let bad = || {
        Status::invalid_argument(format!(
            "page_token: {} bytes, not a token this server issued",
            bytes.len()
        ))
    };
    if bytes.len() != TOKEN_LEN {
        return Err(bad());
    }
    let (time, hash) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
    Ok((
        u64::from_be_bytes(*time),
        Hash::try_from(hash).map_err(|_| bad())?,
    ))
}
