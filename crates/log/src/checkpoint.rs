//! The one place the log signs a checkpoint (durability step 5).

use std::sync::Arc;

use merklog_merkle::{Hash, TreeSize};
use merklog_note::{Checkpoint, SignedCheckpoint, Signer};

use crate::LogError;

/// Durability step 5: builds and signs the checkpoint (origin, size, root). Ed25519 is
/// deterministic, so signing the same body twice gives the same bytes.
pub(crate) fn sign_tree(
    signer: &dyn Signer,
    origin: &str,
    size: TreeSize,
    root: Hash,
) -> Result<Arc<SignedCheckpoint>, LogError> {
    let body = Checkpoint {
        origin: origin.to_owned(),
        size: size.0,
        root,
        extensions: Vec::new(),
    };
    SignedCheckpoint::sign(body, signer)
        .map(Arc::new)
        .map_err(|e| LogError::Unavailable(format!("signing failed: {e}")))
}
