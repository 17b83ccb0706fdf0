//! The crate's one error type.

use merklog_merkle::Hash;

/// Why a receipt, key or signed statement was refused. Verification failures carry
/// what was computed, so a caller can report the evidence.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The bytes are not the CBOR/COSE structure expected.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read (`receipt`, `signed statement`, `COSE key`...).
        what: &'static str,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The algorithm is not EdDSA (-8) or ES256 (-7), or does not match the key.
    #[error("unsupported or mismatched algorithm: {0}")]
    Algorithm(String),
    /// A key could not be read.
    #[error("bad key: {0}")]
    Key(String),
    /// The inclusion proof does not fit its tree size and leaf index.
    #[error("inclusion proof of leaf {leaf_index} at tree size {tree_size}: {reason}")]
    Proof {
        /// The proof's tree size.
        tree_size: u64,
        /// The proof's leaf index.
        leaf_index: u64,
        /// What the proof arithmetic said.
        reason: String,
    },
    /// The signature does not verify over the root the proof leads to: the leaf, the
    /// proof, the root or the signature is not what the log signed.
    #[error(
        "receipt signature does not verify for leaf {leaf_index} at tree size {tree_size} \
         (leaf hash {leaf}, computed root {root})"
    )]
    ReceiptSignature {
        /// The leaf hash checked.
        leaf: Hash,
        /// The proof's leaf index.
        leaf_index: u64,
        /// The proof's tree size.
        tree_size: u64,
        /// The root computed from the leaf and the proof.
        root: Hash,
    },
    /// The receipt names a key (`kid`) other than the one it is checked with.
    #[error("receipt key id {found} is not the verifying key's {expected}")]
    KeyId {
        /// Hex of the receipt's kid.
        found: String,
        /// Hex of the key's kid.
        expected: String,
    },
    /// A signed statement's signature does not verify with its issuer's key.
    #[error("signed statement of issuer {issuer:?}: signature does not verify")]
    StatementSignature {
        /// The statement's `iss` claim.
        issuer: String,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

impl ReceiptError {
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Malformed {
            what,
            reason: reason.into(),
        }
    }
}
