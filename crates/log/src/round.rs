//! What one integration round hands back: the per-entry outcomes the sequencer
//! produces, the answer each caller receives, and the receipt [`Log::append`] returns.
//!
//! [`Log::append`]: crate::Log::append

use std::sync::Arc;

use merklog_merkle::{BatchProofs, Hash, LeafIndex};
use tokio::sync::oneshot;

use crate::{LogError, SignedCheckpoint};

/// One appended entry's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEntry {
    /// The entry's leaf index.
    pub index: LeafIndex,
    /// True if identical bytes were already in the log (or earlier in the same round):
    /// `index` is the original's.
    pub duplicate: bool,
    /// RFC 6962 inclusion proof of `index` against the receipt's checkpoint.
    pub inclusion_proof: Vec<Hash>,
}

/// The answer to an append: every entry is durable and covered by `checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReceipt {
    /// The published checkpoint the proofs are built against.
    pub checkpoint: Arc<SignedCheckpoint>,
    /// One per appended entry, in call order.
    pub entries: Vec<SealedEntry>,
}

/// Where an entry's inclusion proof comes from.
#[derive(Clone)]
pub(crate) enum EntryProof {
    /// A new entry of the round whose checkpoint answers it: the proof is cut from the
    /// round's in-memory batch proofs, on the caller's task (O(log n) copies), which
    /// keeps that work off the sequencer.
    InRound(Arc<BatchProofs>),
    /// Read from storage against the answer's checkpoint: an entry that was in the log
    /// before its round, or one answered with a later checkpoint than its round's.
    Stored(Vec<Hash>),
}

impl EntryProof {
    /// The audit path of leaf `index`.
    pub(crate) fn path(self, index: u64) -> Result<Vec<Hash>, LogError> {
        match self {
            EntryProof::Stored(path) => Ok(path),
            EntryProof::InRound(proofs) => proofs
                .inclusion_proof(LeafIndex(index))
                .map_err(|e| LogError::Storage(format!("batch proof: {e}"))),
        }
    }
}

/// One entry's outcome, before its proof is extracted.
pub(crate) struct Assigned {
    pub(crate) index: u64,
    pub(crate) duplicate: bool,
    pub(crate) proof: EntryProof,
}

/// What a caller gets back from its round.
pub(crate) struct RoundReply {
    pub(crate) checkpoint: Arc<SignedCheckpoint>,
    pub(crate) entries: Vec<Assigned>,
}

impl RoundReply {
    /// The receipt: every entry's proof extracted.
    pub(crate) fn into_receipt(self) -> Result<AppendReceipt, LogError> {
        let entries = self
            .entries
            .into_iter()
            .map(|assigned| {
                Ok(SealedEntry {
                    index: LeafIndex(assigned.index),
                    duplicate: assigned.duplicate,
                    inclusion_proof: assigned.proof.path(assigned.index)?,
                })
            })
            .collect::<Result<Vec<_>, LogError>>()?;
        Ok(AppendReceipt {
            checkpoint: self.checkpoint,
            entries,
        })
    }
}

/// An entry's final assignment in its round.
#[derive(Clone, Copy)]
pub(crate) struct AssignedSlot {
    pub(crate) index: u64,
    /// Duplicate of an entry already in the log or earlier in this round.
    pub(crate) repeat: bool,
    /// Already in the log (or in a round before this one): its proof comes from
    /// storage.
    pub(crate) old: bool,
}

/// Where a caller's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<RoundReply, LogError>>;

/// A round that is durable (step 6 returned): what remains is publishing a checkpoint
/// covering it (step 8) and answering its callers (step 9).
pub(crate) struct DurableRound {
    /// The checkpoint covering every entry of the round (the round's own, or the latest
    /// durable one when the round only held duplicates).
    pub(crate) checkpoint: Arc<SignedCheckpoint>,
    pub(crate) answers: Vec<(Reply, Result<RoundReply, LogError>)>,
}
