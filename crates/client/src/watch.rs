//! Following the log: every new checkpoint verified, every new entry checked,
//! across reconnections.

use std::time::Duration;

use bytes::Bytes;
use merklog_merkle::{CompactRange, LeafIndex, TreeSize, hash_leaf};
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1;
use tonic::Code;

use crate::audit::{frontier_before_leaf, frontier_from_last_leaf};
use crate::client::call;
use crate::error::InconsistencyKind;
use crate::{Client, ClientError, SignedCheckpoint};

/// The longest wait between two reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);

/// One step of a [`Watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The new verified checkpoint.
    pub checkpoint: SignedCheckpoint,
    /// True for the first checkpoint of the watch (the server's current one).
    /// Its `entries` are those from the starting point ([`WatchOptions`]) to it;
    /// empty unless the watch resumes or starts at an index.
    pub initial: bool,
    /// The index of the first entry in `entries`.
    pub first_index: u64,
    /// The entries added since the previous checkpoint, verified: appended to
    /// the previous tree they produce this checkpoint's root.
    pub entries: Vec<Bytes>,
}

/// Where a watch starts and what it does when the connection is lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchOptions {
    /// Report (and verify) every entry from this index on.
    pub from: Option<u64>,
    /// Without `from`: report the entries added since the last verified
    /// checkpoint this client knew when the watch started (from the state file),
    /// so a new watch misses nothing that was added while none ran.
    pub resume: bool,
    /// Reconnect with backoff when the stream ends or the server goes away, and
    /// carry on from the last verified checkpoint (no entry is skipped).
    pub reconnect: bool,
}

/// A lost connection that a watch with `reconnect` recovers from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReconnectNotice {
    /// What went wrong.
    pub reason: String,
    /// Consecutive failed attempts so far (from 1).
    pub attempt: u32,
    /// The wait before the next attempt.
    pub delay: Duration,
}

/// Called before each reconnection attempt.
type ReconnectObserver<'a> = Box<dyn FnMut(&ReconnectNotice) + Send + 'a>;

/// A verified subscription to the log's checkpoints (see [`Client::watch`]).
pub struct Watch<'a> {
    client: &'a mut Client,
    options: WatchOptions,
    stream: Option<tonic::Streaming<v1::Checkpoint>>,
    /// The verified tree so far: its frontier and the checkpoint it matches.
    tree: Option<(CompactRange, SignedCheckpoint)>,
    /// With `resume`: the last checkpoint verified before the watch started.
    resume_from: Option<SignedCheckpoint>,
    failures: u32,
    on_reconnect: Option<ReconnectObserver<'a>>,
}

/// Whether an error means the connection or the server went away (worth a
/// reconnection), not that something failed verification or was refused.
fn is_connection_loss(error: &ClientError) -> bool {
    match error {
        ClientError::Connect { .. } | ClientError::Timeout { .. } => true,
        ClientError::Rpc { status, .. } | ClientError::RetriesExhausted { status, .. } => {
            matches!(
                status.code(),
                Code::Unavailable
                    | Code::Unknown
                    | Code::Cancelled
                    | Code::Internal
                    | Code::Aborted
                    | Code::DeadlineExceeded
                    | Code::ResourceExhausted
            )
        }
        _ => false,
    }
}

impl Client {
    /// Subscribes to `WatchCheckpoints` from the server's current checkpoint.
    /// Each checkpoint is verified and checked for consistency with the previous
    /// one (and with the state file), and the entries between them are
    /// downloaded and checked against the new root. The watch ends when the
    /// server ends the stream; see [`Client::watch_with`] to reconnect instead.
    pub async fn watch(&mut self) -> Result<Watch<'_>, ClientError> {
        self.watch_with(WatchOptions::default()).await
    }

    /// Like [`Client::watch`], starting where `options` says and reconnecting
    /// when it says so.
    pub async fn watch_with(&mut self, options: WatchOptions) -> Result<Watch<'_>, ClientError> {
        let resume_from = if options.resume && options.from.is_none() {
            self.latest().cloned()
        } else {
            None
        };
        let mut watch = Watch {
            client: self,
            options,
            stream: None,
            tree: None,
            resume_from,
            failures: 0,
            on_reconnect: None,
        };
        watch.subscribe().await?;
        Ok(watch)
    }

    /// The frontier of a verified checkpoint's tree, from its last entry and
    /// that entry's verified inclusion proof (no need to download the log).
    pub async fn frontier(
        &mut self,
        checkpoint: &SignedCheckpoint,
    ) -> Result<CompactRange, ClientError> {
        let Some(last) = checkpoint.size().0.checked_sub(1) else {
            return Ok(CompactRange::new());
        };
        let (leaf, proof) = self.verified_leaf_proof(last, checkpoint).await?;
        let range = frontier_from_last_leaf(checkpoint.size(), leaf, &proof)?;
        if range.root() != checkpoint.root() {
            return Err(ClientError::Malformed(
                "the frontier rebuilt from a verified proof has another root".into(),
            ));
        }
        Ok(range)
    }

    /// The frontier of the entries before `index` (at most the checkpoint's
    /// size), from entry `index`'s verified inclusion proof in `checkpoint`.
    pub async fn frontier_at(
        &mut self,
        index: u64,
        checkpoint: &SignedCheckpoint,
    ) -> Result<CompactRange, ClientError> {
        if index >= checkpoint.size().0 {
            if index > checkpoint.size().0 {
                return Err(ClientError::Input(format!(
                    "index {index} is beyond the log's {} entries",
                    checkpoint.size().0
                )));
            }
            return self.frontier(checkpoint).await;
        }
        let (_, proof) = self.verified_leaf_proof(index, checkpoint).await?;
        frontier_before_leaf(index, checkpoint.size(), &proof)
    }

    /// Entry `index`'s leaf hash and its inclusion proof in `checkpoint`, verified.
    async fn verified_leaf_proof(
        &mut self,
        index: u64,
        checkpoint: &SignedCheckpoint,
    ) -> Result<(merklog_merkle::Hash, Vec<merklog_merkle::Hash>), ClientError> {
        let entry = self.entry(LeafIndex(index)).await?;
        let leaf = hash_leaf(&entry);
        let response = call(
            "GetInclusionProof",
            &self.server,
            self.options.request_timeout,
            self.rpc.get_inclusion_proof(v1::GetInclusionProofRequest {
                leaf: Some(v1::get_inclusion_proof_request::Leaf::Index(index)),
                tree_size: Some(checkpoint.size().0),
            }),
        )
        .await?;
        if response.index != index || response.tree_size != checkpoint.size().0 {
            return Err(ClientError::Malformed(format!(
                "asked for the proof of entry {index} in tree {}, got entry {} in tree {}",
                checkpoint.size().0,
                response.index,
                response.tree_size
            )));
        }
        let proof = proof_from_wire("proof", &response.proof)
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        Self::check_inclusion(&leaf, LeafIndex(index), &proof, checkpoint)?;
        Ok((leaf, proof))
    }

    /// Downloads `[tree.size, checkpoint.size())`, appends it to `tree` and checks
    /// the result against the checkpoint's root; returns the entries.
    async fn extend_verified(
        &mut self,
        tree: &mut CompactRange,
        previous: Option<&SignedCheckpoint>,
        checkpoint: &SignedCheckpoint,
    ) -> Result<Vec<Bytes>, ClientError> {
        let start = tree.size().0;
        let mut entries = Vec::new();
        self.entries(start, checkpoint.size().0, |_, page| {
            let leaves: Vec<_> = page.iter().map(|e| hash_leaf(e)).collect();
            tree.append(&leaves, |_, _| {})
                .map_err(|e| ClientError::Malformed(e.to_string()))?;
            entries.extend_from_slice(page);
            Ok(())
        })
        .await?;
        let computed = tree.root();
        if computed != checkpoint.root() {
            return Err(match previous {
                Some(previous) => ClientError::inconsistent(
                    InconsistencyKind::EntriesMismatch { computed },
                    previous,
                    checkpoint,
                    Vec::new(),
                ),
                None => ClientError::Malformed(format!(
                    "the entries served from {start} do not lead to the signed root of size {}",
                    checkpoint.size().0
                )),
            });
        }
        Ok(entries)
    }
}

impl<'a> Watch<'a> {
    /// Calls `observer` before each reconnection attempt.
    pub fn on_reconnect(&mut self, observer: impl FnMut(&ReconnectNotice) + Send + 'a) {
        self.on_reconnect = Some(Box::new(observer));
    }

    async fn subscribe(&mut self) -> Result<(), ClientError> {
        let client = &mut *self.client;
        let stream = call(
            "WatchCheckpoints",
            &client.server,
            client.options.request_timeout,
            client.rpc.watch_checkpoints(v1::WatchCheckpointsRequest {}),
        )
        .await?;
        self.stream = Some(stream);
        Ok(())
    }

    /// The next verified step, or `None` when the server ends the stream (a
    /// watch with `reconnect` reconnects instead).
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, ClientError> {
        // Each turn either returns or waits (with a growing delay) before the next.
        loop {
            let step = self.step().await;
            let reason = match step {
                Ok(Some(event)) => {
                    self.failures = 0;
                    return Ok(Some(event));
                }
                // Until a first checkpoint verified, a failure is the answer: the
                // address or the key may be wrong, and waiting would hide it.
                Ok(None) if !self.options.reconnect || self.tree.is_none() => return Ok(None),
                Ok(None) => "the server ended the checkpoint stream".to_owned(),
                Err(e)
                    if self.options.reconnect && self.tree.is_some() && is_connection_loss(&e) =>
                {
                    e.to_string()
                }
                Err(e) => return Err(e),
            };
            self.stream = None;
            self.failures = self.failures.saturating_add(1);
            let delay = self
                .client
                .options
                .retry_backoff
                .max(Duration::from_millis(50))
                .saturating_mul(1u32 << self.failures.saturating_sub(1).min(16))
                .min(MAX_RECONNECT_DELAY);
            if let Some(observer) = &mut self.on_reconnect {
                observer(&ReconnectNotice {
                    reason,
                    attempt: self.failures,
                    delay,
                });
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// One message of the stream (subscribing first if needed), verified;
    /// `Ok(None)` at the end of the stream. A checkpoint the watch already has
    /// (the first one after a reconnection, typically) yields no event.
    async fn step(&mut self) -> Result<Option<WatchEvent>, ClientError> {
        loop {
            if self.stream.is_none() {
                self.subscribe().await?;
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(None);
            };
            let message = match stream.message().await {
                Ok(message) => message,
                Err(status) => {
                    return Err(crate::probe::classify(
                        "WatchCheckpoints",
                        &self.client.server,
                        status,
                    )
                    .await);
                }
            };
            let Some(wire) = message else {
                return Ok(None);
            };
            let checkpoint = self.client.trust.open_wire(wire)?;
            self.client.observe(&checkpoint, true).await?;
            if let Some(event) = self.advance(checkpoint).await? {
                return Ok(Some(event));
            }
        }
    }

    /// Moves the verified tree to `checkpoint`, fetching and checking the
    /// entries in between.
    async fn advance(
        &mut self,
        checkpoint: SignedCheckpoint,
    ) -> Result<Option<WatchEvent>, ClientError> {
        let Some((verified, previous)) = &self.tree else {
            return self.start(checkpoint).await.map(Some);
        };
        if checkpoint.size() <= verified.size() {
            // Seen already (observe checked it is the same tree).
            return Ok(None);
        }
        // Extend a copy: after a failure the last verified tree stays, and a
        // retry fetches the same range again.
        let (mut tree, previous) = (verified.clone(), previous.clone());
        let first_index = tree.size().0;
        let entries = self
            .client
            .extend_verified(&mut tree, Some(&previous), &checkpoint)
            .await?;
        self.tree = Some((tree, checkpoint.clone()));
        Ok(Some(WatchEvent {
            checkpoint,
            initial: false,
            first_index,
            entries,
        }))
    }

    /// The first checkpoint: the tree at the starting point, then the entries
    /// from there to this checkpoint.
    async fn start(&mut self, checkpoint: SignedCheckpoint) -> Result<WatchEvent, ClientError> {
        let start = match (self.options.from, &self.resume_from) {
            (Some(from), _) => {
                if from > checkpoint.size().0 {
                    return Err(ClientError::Input(format!(
                        "--from {from}: the log has {} entries (indexes 0 to {}); watch from {} \
                         or less",
                        checkpoint.size().0,
                        checkpoint.size().0.saturating_sub(1),
                        checkpoint.size().0
                    )));
                }
                from
            }
            (None, Some(resume)) if resume.size() < checkpoint.size() => resume.size().0,
            _ => checkpoint.size().0,
        };
        let mut tree = self.client.frontier_at(start, &checkpoint).await?;
        if tree.size() != TreeSize(start) {
            return Err(ClientError::Malformed(format!(
                "the frontier at {start} has size {}",
                tree.size().0
            )));
        }
        let entries = if start < checkpoint.size().0 {
            self.client
                .extend_verified(&mut tree, None, &checkpoint)
                .await?
        } else {
            Vec::new()
        };
        self.tree = Some((tree, checkpoint.clone()));
        Ok(WatchEvent {
            checkpoint,
            initial: true,
            first_index: start,
            entries,
        })
    }

    /// Persists the latest verified checkpoint (see [`Client::save_state`]).
    pub fn save_state(&mut self) -> Result<(), ClientError> {
        self.client.save_state()
    }
}
