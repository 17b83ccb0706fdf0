//! Following the log: every new checkpoint verified, every new entry checked.

use bytes::Bytes;
use merklog_merkle::{CompactRange, LeafIndex, hash_leaf};
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1;

use crate::audit::frontier_from_last_leaf;
use crate::error::InconsistencyKind;
use crate::{Client, ClientError, SignedCheckpoint};

/// One step of a [`Watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The new verified checkpoint.
    pub checkpoint: SignedCheckpoint,
    /// True for the checkpoint the server had when the watch started (no
    /// entries are reported for it).
    pub initial: bool,
    /// The index of the first entry in `entries`.
    pub first_index: u64,
    /// The entries added since the previous checkpoint, verified: appended to
    /// the previous tree they produce this checkpoint's root.
    pub entries: Vec<Bytes>,
}

/// A verified subscription to the log's checkpoints (see [`Client::watch`]).
pub struct Watch<'a> {
    client: &'a mut Client,
    stream: tonic::Streaming<v1::Checkpoint>,
    tree: Option<(CompactRange, SignedCheckpoint)>,
}

impl Client {
    /// Subscribes to `WatchCheckpoints`. Each checkpoint is verified and checked
    /// for consistency with the previous one (and with the state file), and the
    /// entries between them are downloaded and checked against the new root.
    pub async fn watch(&mut self) -> Result<Watch<'_>, ClientError> {
        let stream = self
            .rpc
            .watch_checkpoints(v1::WatchCheckpointsRequest {})
            .await
            .map_err(|s| ClientError::rpc("WatchCheckpoints", s))?
            .into_inner();
        Ok(Watch {
            client: self,
            stream,
            tree: None,
        })
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
        let entry = self.entry(LeafIndex(last)).await?;
        let leaf = hash_leaf(&entry);
        let response = self
            .rpc
            .get_inclusion_proof(v1::GetInclusionProofRequest {
                leaf: Some(v1::get_inclusion_proof_request::Leaf::Index(last)),
                tree_size: Some(checkpoint.size().0),
            })
            .await
            .map_err(|s| ClientError::rpc("GetInclusionProof", s))?
            .into_inner();
        if response.index != last || response.tree_size != checkpoint.size().0 {
            return Err(ClientError::Malformed(format!(
                "asked for the proof of entry {last} in tree {}, got entry {} in tree {}",
                checkpoint.size().0,
                response.index,
                response.tree_size
            )));
        }
        let proof = proof_from_wire("proof", &response.proof)
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        Self::check_inclusion(&leaf, LeafIndex(last), &proof, checkpoint)?;
        let range = frontier_from_last_leaf(checkpoint.size(), leaf, &proof)?;
        if range.root() != checkpoint.root() {
            return Err(ClientError::Malformed(
                "the frontier rebuilt from a verified proof has another root".into(),
            ));
        }
        Ok(range)
    }
}

impl Watch<'_> {
    /// The next verified step, or `None` when the server ends the stream.
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, ClientError> {
        let Some(wire) = self
            .stream
            .message()
            .await
            .map_err(|s| ClientError::rpc("WatchCheckpoints", s))?
        else {
            return Ok(None);
        };
        let checkpoint = self.client.trust.open_wire(wire)?;
        self.client.observe(&checkpoint, true).await?;
        let Some((mut tree, previous)) = self.tree.take() else {
            let tree = self.client.frontier(&checkpoint).await?;
            self.tree = Some((tree, checkpoint.clone()));
            return Ok(Some(WatchEvent {
                first_index: checkpoint.size().0,
                checkpoint,
                initial: true,
                entries: Vec::new(),
            }));
        };
        let start = tree.size().0;
        let mut entries = Vec::new();
        self.client
            .entries(start, checkpoint.size().0, |_, page| {
                let leaves: Vec<_> = page.iter().map(|e| hash_leaf(e)).collect();
                tree.append(&leaves, |_, _| {})
                    .map_err(|e| ClientError::Malformed(e.to_string()))?;
                entries.extend_from_slice(page);
                Ok(())
            })
            .await?;
        let computed = tree.root();
        if computed != checkpoint.root() {
            return Err(ClientError::inconsistent(
                InconsistencyKind::EntriesMismatch { computed },
                &previous,
                &checkpoint,
                Vec::new(),
            ));
        }
        self.tree = Some((tree, checkpoint.clone()));
        Ok(Some(WatchEvent {
            checkpoint,
            initial: false,
            first_index: start,
            entries,
        }))
    }

    /// Persists the latest verified checkpoint (see [`Client::save_state`]).
    pub fn save_state(&mut self) -> Result<(), ClientError> {
        self.client.save_state()
    }
}
