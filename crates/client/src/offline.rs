//! Offline verification of C2SP tlog-proof files: no network, no state.
//!
//! Everything needed is in the proof file (index, inclusion proof, signed and
//! cosigned checkpoint), the entry bytes, and the trusted keys.

use merklog_merkle::{Hash, hash_leaf};
use merklog_note::{Checkpoint, Ed25519Verifier, Policy, TlogProof};

use crate::ClientError;

/// A proof file that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The entry's index in the log.
    pub index: u64,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
    /// The verified checkpoint the entry is included in.
    pub checkpoint: Checkpoint,
}

/// Verifies a tlog-proof file for `entry`: the checkpoint is signed by
/// `log_key` (whose name must be the checkpoint's origin) or, without a key, by
/// the one log of `policy` with that origin; with a `policy`, the checkpoint
/// also carries a quorum of its witnesses' cosignatures; and the inclusion proof
/// binds `SHA-256(0x00 || entry)` at the stated index to the checkpoint's root.
pub fn verify_proof_file(
    proof_file: &[u8],
    entry: &[u8],
    log_key: Option<&Ed25519Verifier>,
    policy: Option<&Policy>,
) -> Result<VerifiedProof, ClientError> {
    let rejected = |e| ClientError::Proof(Box::new(e));
    let proof = TlogProof::parse(proof_file).map_err(rejected)?;
    let leaf_hash = hash_leaf(entry);
    let checkpoint = match (log_key, policy) {
        (Some(key), policy) => proof.verify(&leaf_hash, key, policy),
        (None, Some(policy)) => proof.verify_with_policy(&leaf_hash, policy),
        (None, None) => {
            return Err(ClientError::Input(
                "verifying a proof needs the log's key (--log-key) or a policy (--policy)".into(),
            ));
        }
    }
    .map_err(|e| {
        let key = log_key.or_else(|| {
            policy.and_then(|p| match p.logs() {
                [log] => Some(&log.verifier),
                _ => None,
            })
        });
        key.and_then(|key| crate::trust::other_log(&proof.checkpoint, key))
            .unwrap_or_else(|| rejected(e))
    })?;
    Ok(VerifiedProof {
        index: proof.index,
        leaf_hash,
        checkpoint,
    })
}
