//! Start-up and reload recovery (docs/durability.md, "Recovery"): the log's identity is
//! checked against the store's metadata, the latest checkpoint's signature and origin
//! are verified, and the compact range is rebuilt from O(log n) stored tiles and its
//! root compared with the signed one. A mismatch opens the log read-only (fail closed).

use std::sync::Arc;

use merklog_merkle::TreeSize;
use merklog_note::{Signer, Verifier, parse_verifier_key};

use crate::checkpoint::sign_tree;
use crate::tiles::{ReadError, TreeState};
use crate::{ALGORITHM_ED25519, LogError, LogStore, RoundWrite, SignedCheckpoint};

/// The outcome of recovering the tree from storage.
pub(crate) enum Recovered {
    /// Stored tiles re-derive the signed root: ready to sign.
    Ready {
        state: TreeState,
        checkpoint: Arc<SignedCheckpoint>,
    },
    /// The signed checkpoint is valid but storage does not re-derive it: serve reads of
    /// the checkpoint, refuse to sign.
    Refused {
        checkpoint: Arc<SignedCheckpoint>,
        reason: String,
    },
}

/// Start-up and reload recovery (durability.md "Start-up and recovery").
///
/// Fails (refusing to start) if the latest checkpoint is not validly signed by the log
/// key for this origin, or storage cannot be read. An empty store gets the size-0
/// checkpoint, signed and stored, so there is always a published checkpoint.
pub(crate) fn recover(
    store: &dyn LogStore,
    signer: &dyn Signer,
    verifier: &dyn Verifier,
    origin: &str,
) -> Result<Recovered, LogError> {
    let latest = store
        .latest_checkpoint()
        .map_err(|e| LogError::Storage(format!("reading the latest checkpoint: {e}")))?;
    let Some(note) = latest else {
        let state = TreeState::default();
        let checkpoint = sign_tree(signer, origin, state.size(), state.range.root())?;
        // Durable here: the size-0 checkpoint (synced). A crash before this returns
        // leaves the store empty, and the next start does this again; Ed25519 is
        // deterministic, so it signs the same bytes.
        store
            .commit(&RoundWrite {
                checkpoint: Some((0, checkpoint.note().to_vec())),
                ..RoundWrite::default()
            })
            .map_err(|e| LogError::Storage(format!("storing the size-0 checkpoint: {e}")))?;
        return Ok(Recovered::Ready { state, checkpoint });
    };
    let checkpoint = SignedCheckpoint::open(note, verifier, Some(origin)).map_err(|e| {
        LogError::Recovery(format!("the latest stored checkpoint does not verify: {e}"))
    })?;
    let body = checkpoint.checkpoint().clone();
    let checkpoint = Arc::new(checkpoint);
    let refused = |reason: String| {
        tracing::error!(
            size = body.size,
            %reason,
            "STORED TREE DOES NOT MATCH THE SIGNED CHECKPOINT: refusing to sign, serving reads only"
        );
        Ok(Recovered::Refused {
            checkpoint: checkpoint.clone(),
            reason,
        })
    };
    let state = match TreeState::load(store, TreeSize(body.size)) {
        Ok(state) => state,
        Err(ReadError::Storage(e)) => return Err(LogError::Storage(format!("reading tiles: {e}"))),
        Err(ReadError::Corrupt(reason)) => return refused(reason),
    };
    let computed = state.range.root();
    if computed != body.root {
        return refused(format!(
            "stored tiles give root {computed} at size {}, the signed checkpoint says {}",
            body.size, body.root
        ));
    }
    Ok(Recovered::Ready { state, checkpoint })
}

/// The checkpoint to publish at open with a witness policy: the one stored when it was
/// last published ([`stored_published`]); otherwise the latest durable checkpoint (a
/// store that never ran with a policy published every durable checkpoint at once), or
/// with a `deferred` check the size-0 checkpoint: a standby's durable checkpoint is
/// another node's, not yet cosigned, and the empty tree is a prefix of every tree.
pub(crate) fn published_at_open(
    store: &dyn LogStore,
    signer: &dyn Signer,
    verifier: &dyn Verifier,
    origin: &str,
    durable: &Arc<SignedCheckpoint>,
    deferred: bool,
) -> Result<Arc<SignedCheckpoint>, LogError> {
    match stored_published(store, verifier, origin, durable)? {
        Some(published) => Ok(published),
        None if deferred => {
            let empty = TreeState::default();
            sign_tree(signer, origin, empty.size(), empty.range.root())
        }
        None => Ok(durable.clone()),
    }
}

/// The checkpoint the store records as last published with a witness policy, if there
/// is one, it verifies and it fits the latest durable one (not larger; the same tree
/// at the same size). A record that does not fit is logged and ignored.
pub(crate) fn stored_published(
    store: &dyn LogStore,
    verifier: &dyn Verifier,
    origin: &str,
    durable: &Arc<SignedCheckpoint>,
) -> Result<Option<Arc<SignedCheckpoint>>, LogError> {
    let Some(note) = store
        .published_checkpoint()
        .map_err(|e| LogError::Storage(format!("reading the published checkpoint: {e}")))?
    else {
        return Ok(None);
    };
    let published = match SignedCheckpoint::open(note, verifier, Some(origin)) {
        Ok(published) => published,
        Err(e) => {
            tracing::error!(%e, "the stored published checkpoint does not verify; using the latest durable one");
            return Ok(None);
        }
    };
    let size = published.size();
    let same_as_durable = size == durable.size() && published.root() == durable.root();
    if size > durable.size() || (size == durable.size() && !same_as_durable) {
        tracing::error!(
            published = size.0,
            durable = durable.size().0,
            "the stored published checkpoint does not fit the latest durable one; using the latter"
        );
        return Ok(None);
    }
    Ok(Some(Arc::new(published)))
}

/// Checks the store's metadata against the configured origin and signer, and returns
/// the log's verifier.
pub(crate) fn check_identity(
    store: &dyn LogStore,
    signer: Option<&dyn Signer>,
    origin: &str,
) -> Result<Arc<dyn Verifier>, LogError> {
    let metadata = store
        .metadata()
        .map_err(|e| LogError::Storage(format!("reading metadata: {e}")))?
        .ok_or_else(|| {
            LogError::Recovery("the store has no metadata (origin, public key)".into())
        })?;
    if metadata.origin != origin {
        return Err(LogError::Recovery(format!(
            "the store belongs to origin {:?}, not {origin:?}",
            metadata.origin
        )));
    }
    if metadata.algorithm != ALGORITHM_ED25519 {
        return Err(LogError::Recovery(format!(
            "the store's key algorithm is {:?}; only {ALGORITHM_ED25519} is supported",
            metadata.algorithm
        )));
    }
    let verifier = parse_verifier_key(&metadata.verifier_key)
        .map_err(|e| LogError::Recovery(format!("the store's verifier key is invalid: {e}")))?;
    let Some(signer) = signer else {
        // A reader: nothing is ever signed with the key it does not have.
        return Ok(Arc::new(verifier));
    };
    let probe = b"merklog signer check\n";
    let matches = signer.name() == verifier.name()
        && signer.key_id() == verifier.key_id()
        && signer
            .sign(probe)
            .is_ok_and(|sig| verifier.verify(probe, &sig));
    if !matches {
        return Err(LogError::Recovery(format!(
            "the signing key ({}, id {:08x}) is not the store's public key {}",
            signer.name(),
            signer.key_id(),
            metadata.verifier_key
        )));
    }
    Ok(Arc::new(verifier))
}
