//! The log's core value: a signed checkpoint as the log holds and publishes it, and
//! the one place that signs one (durability step 5).

use std::sync::Arc;

use bytes::Bytes;
use merklog_merkle::{Hash, TreeSize};
use merklog_note::{Checkpoint, Signer, sign_checkpoint};

use crate::LogError;

/// A signed checkpoint: size, root and the exact signed-note bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCheckpoint {
    /// Tree size.
    pub size: TreeSize,
    /// RFC 6962 root at `size`.
    pub root: Hash,
    /// The C2SP signed note (tlog-checkpoint), byte for byte as stored.
    pub note: Bytes,
}

/// Durability step 5: builds and signs the checkpoint (origin, size, root). Ed25519 is
/// deterministic, so signing the same body twice gives the same bytes.
pub(crate) fn sign_tree(
    signer: &dyn Signer,
    origin: &str,
    size: TreeSize,
    root: Hash,
) -> Result<Arc<PublishedCheckpoint>, LogError> {
    let body = Checkpoint {
        origin: origin.to_owned(),
        size: size.0,
        root,
        extensions: Vec::new(),
    };
    let note = sign_checkpoint(&body, signer)
        .map_err(|e| LogError::Unavailable(format!("signing failed: {e}")))?;
    Ok(Arc::new(PublishedCheckpoint {
        size,
        root: body.root,
        note: Bytes::from(note),
    }))
}
