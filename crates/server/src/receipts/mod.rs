//! COSE receipts (RFC 9942) of the log's entries, and the SCITT registration API.
//!
//! `Receipts` holds the receipt key (see [`key`]) and issues receipts against
//! checkpointed tree sizes: one COSE signature per tree head, cached for the last few
//! sizes, serves every entry's receipt at that size. The `GetReceipt` RPC and the
//! SCRAPI routes (`scrapi`) both go through it. The format is in `docs/receipts.md`.

pub mod key;
pub(crate) mod scrapi;
pub mod settings;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use merklog_log::{Log, SignedCheckpoint};
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf};
use merklog_proto::convert::{InclusionQuery, LeafSelector};
use merklog_proto::v1;
use merklog_receipt::{PublicKey, ReceiptSigner as _, SecretKey, SignedTreeHead};
use tonic::Status;

use crate::status::log_status;

/// Tree heads whose signature is kept: the latest sizes are the ones asked about.
const CACHED_TREE_HEADS: usize = 8;

/// The receipt issuer of a running log.
pub(crate) struct Receipts {
    key: SecretKey,
    public: PublicKey,
    heads: Mutex<VecDeque<Arc<SignedTreeHead>>>,
}

/// A receipt and what it is against.
pub(crate) struct IssuedReceipt {
    /// The tagged COSE_Sign1.
    pub(crate) bytes: Vec<u8>,
    /// The entry's index.
    pub(crate) index: LeafIndex,
    /// The signed checkpoint whose root the receipt signs.
    pub(crate) checkpoint: Arc<SignedCheckpoint>,
}

impl Receipts {
    pub(crate) fn new(key: SecretKey) -> Self {
        let public = key.public_key();
        Self {
            key,
            public,
            heads: Mutex::new(VecDeque::new()),
        }
    }

    /// The receipt public key.
    pub(crate) fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The signed tree head of `checkpoint`, from the cache or signed now.
    fn tree_head(&self, checkpoint: &SignedCheckpoint) -> Result<Arc<SignedTreeHead>, Status> {
        let (size, root) = (checkpoint.size(), checkpoint.root());
        // A poisoned lock only means another thread panicked mid-update of a cache.
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(head) = heads
            .iter()
            .find(|h| h.tree_size() == size && h.root() == root)
        {
            metrics::counter!("merklog_receipt_signatures_total", "cached" => "true").increment(1);
            return Ok(Arc::clone(head));
        }
        let head = Arc::new(
            SignedTreeHead::sign(&self.key, size, root)
                .map_err(|e| Status::internal(format!("signing the receipt tree head: {e}")))?,
        );
        metrics::counter!("merklog_receipt_signatures_total", "cached" => "false").increment(1);
        if heads.len() >= CACHED_TREE_HEADS {
            heads.pop_front();
        }
        heads.push_back(Arc::clone(&head));
        Ok(head)
    }

    /// The receipt of an entry (by index or leaf hash) at `tree_size` (a checkpointed
    /// size) or at the latest published checkpoint.
    pub(crate) async fn receipt(
        &self,
        log: &Log,
        leaf: Option<v1::get_inclusion_proof_request::Leaf>,
        tree_size: Option<u64>,
    ) -> Result<IssuedReceipt, Status> {
        let latest = log.latest();
        let query = InclusionQuery::from_wire(
            &v1::GetInclusionProofRequest { leaf, tree_size },
            latest.size(),
        )?;
        let (index, leaf_hash) = match query.leaf {
            LeafSelector::Index(index) => {
                let end = LeafIndex(index.0.saturating_add(1));
                let entry = log
                    .entries(index, end)
                    .await
                    .map_err(log_status)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| Status::internal(format!("entry {index} was not read")))?;
                (index, hash_leaf(&entry))
            }
            LeafSelector::Hash(leaf_hash) => {
                let found = log.find_leaf(leaf_hash).await.map_err(log_status)?;
                (query.check_found_index(found)?, leaf_hash)
            }
        };
        let checkpoint = if query.latest {
            latest
        } else {
            Arc::new(checkpoint_at(log, query.tree_size).await?)
        };
        self.issue(log, index, leaf_hash, checkpoint).await
    }

    /// The receipt of the entry `index` with hash `leaf_hash` at `checkpoint`.
    pub(crate) async fn issue(
        &self,
        log: &Log,
        index: LeafIndex,
        leaf_hash: Hash,
        checkpoint: Arc<SignedCheckpoint>,
    ) -> Result<IssuedReceipt, Status> {
        let proof = log
            .inclusion_proof(index, checkpoint.size())
            .await
            .map_err(log_status)?;
        self.issue_with_proof(index, leaf_hash, &proof, checkpoint)
    }

    /// The receipt of an entry whose audit path is already known.
    pub(crate) fn issue_with_proof(
        &self,
        index: LeafIndex,
        leaf_hash: Hash,
        proof: &[Hash],
        checkpoint: Arc<SignedCheckpoint>,
    ) -> Result<IssuedReceipt, Status> {
        let head = self.tree_head(&checkpoint)?;
        let bytes = head
            .receipt(&leaf_hash, index, proof)
            .map_err(|e| Status::internal(format!("assembling the receipt: {e}")))?;
        Ok(IssuedReceipt {
            bytes,
            index,
            checkpoint,
        })
    }
}

/// The stored checkpoint of exactly `size`: receipts sign only roots the log signed.
async fn checkpoint_at(log: &Log, size: TreeSize) -> Result<SignedCheckpoint, Status> {
    log.checkpoint_at(size)
        .await
        .map_err(log_status)?
        .ok_or_else(|| {
            Status::not_found(format!(
                "tree_size {size}: the log signed no checkpoint of that size; ask for the \
                 latest checkpoint (no tree_size) or a checkpointed size"
            ))
        })
}

/// The `GetReceipt` answer.
pub(crate) async fn get_receipt(
    receipts: Option<&Receipts>,
    log: &Log,
    request: v1::GetReceiptRequest,
) -> Result<v1::GetReceiptResponse, Status> {
    let receipts = receipts.ok_or_else(|| {
        Status::failed_precondition("this node has no receipt key (a read-only node)")
    })?;
    let leaf = request.leaf.map(|leaf| match leaf {
        v1::get_receipt_request::Leaf::Index(index) => {
            v1::get_inclusion_proof_request::Leaf::Index(index)
        }
        v1::get_receipt_request::Leaf::LeafHash(hash) => {
            v1::get_inclusion_proof_request::Leaf::LeafHash(hash)
        }
    });
    let issued = receipts.receipt(log, leaf, request.tree_size).await?;
    let receipt_key = receipts
        .public_key()
        .to_cose_key_bytes()
        .map_err(|e| Status::internal(format!("encoding the receipt key: {e}")))?;
    Ok(v1::GetReceiptResponse {
        receipt: Bytes::from(issued.bytes),
        index: issued.index.0,
        tree_size: issued.checkpoint.size().0,
        checkpoint: Some(merklog_proto::convert::signed_checkpoint_to_wire(
            &issued.checkpoint,
        )),
        receipt_key: Bytes::from(receipt_key),
    })
}
