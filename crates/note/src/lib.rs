//! merklog-note: the text formats a transparency log and its witnesses speak.
//!
//! This crate implements, byte for byte:
//! - C2SP signed-note v1.0.0 ([`Note`], [`NoteSignature`], [`Verifiers`]):
//!   parsing, serialising, signing, and verification with the spec's rules
//!   (unknown keys ignored, a failing known key rejects, at least one known
//!   key must verify), plus limits of 1 MiB, 100 signatures and 255-byte names;
//! - signed-note Ed25519 keys (type 0x01): key IDs, verifier keys (vkeys) and
//!   Go-compatible signer keys (`PRIVATE+KEY+...`), behind the [`Signer`] and
//!   [`Verifier`] traits so other algorithms or remote signers can plug in;
//! - C2SP tlog-checkpoint v1.0.0 ([`Checkpoint`], [`sign_checkpoint`],
//!   [`open_checkpoint`]), and [`SignedCheckpoint`]: the note bytes with the body they
//!   carry and the cosigners a policy verified, the one "signed checkpoint" type the
//!   log, the wire conversions and the client share;
//! - C2SP tlog-cosignature, Ed25519 `cosignature/v1` (type 0x04)
//!   ([`CosignatureSigner`], [`CosignatureVerifier`]);
//! - C2SP tlog-proof `c2sp.org/tlog-proof@v1` ([`TlogProof`]);
//! - C2SP tlog-policy ([`Policy`]): logs, witnesses, nested groups, quorum.
//!
//! It is not a log, a witness or a client: it does no networking, storage or
//! async work. Its only I/O is the small [`keyfile`] module that writes and
//! reads signer key files with safe permissions. ML-DSA-44 cosignatures
//! (type 0x06) and ECDSA notes (type 0x02) are not implemented.

#![warn(missing_docs)]

mod checkpoint;
mod cosignature;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod grammar;
mod key;
#[cfg(unix)]
pub mod keyfile;
mod note;
mod policy;
mod proof;
mod signed;

pub use checkpoint::{Checkpoint, open_checkpoint, sign_checkpoint};
pub use cosignature::{
    COSIGNATURE_V1_LEN, CosignatureSigner, CosignatureVerifier, cosignature_message,
    generate_cosigner, parse_cosignature_verifier_key, parse_cosigner_key,
};
pub use error::{BodyProblem, NameProblem, NoteError};
pub use grammar::{
    AddCheckpointRequest, MAX_KEY_NAME_LEN, encode_add_checkpoint, parse_add_checkpoint,
    validate_key_name,
};
pub use key::{
    ALG_COSIGNATURE_V1, ALG_ED25519, Ed25519Signer, Ed25519Verifier, Signer, SignerKeyText,
    Verifier, generate_ed25519, key_id, parse_signer_key, parse_verifier_key,
};
pub use merklog_merkle::Hash;
pub use note::{MAX_NOTE_SIZE, MAX_SIGNATURES, Note, NoteSignature, Verifiers};
pub use policy::{
    MAX_POLICY_ENTRIES, Policy, PolicyGroup, PolicyLog, PolicyWitness, QUORUM_NONE, Threshold,
};
pub use proof::{MAX_PROOF_HASHES, MAX_PROOF_SIZE, TLOG_PROOF_HEADER, TlogProof};
pub use signed::SignedCheckpoint;
