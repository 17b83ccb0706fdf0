//! merklog-receipt: COSE receipts for entries of a merklog log, and SCITT signed
//! statements.
//!
//! What it is: the pure format layer of receipts, written through `coset` (no CBOR is
//! assembled by hand):
//! - a receipt (RFC 9942, "COSE Receipts") is a tagged COSE_Sign1 (RFC 9052 section 4.2)
//!   whose protected header names the signature algorithm (`alg`, EdDSA or ES256), the
//!   key (`kid`) and the verifiable data structure (`vds` = 1, RFC9162_SHA256); its
//!   unprotected header carries one RFC 9162 inclusion proof under `vdp` (label 396, key
//!   -1); its payload is detached: the signature covers the tree root the proof leads to.
//!   One signature per tree head ([`SignedTreeHead`]) serves the receipt of every leaf at
//!   that size;
//! - a SCITT signed statement (RFC 9943 section 6) is a COSE_Sign1 whose protected CWT
//!   claims (label 15, RFC 9597) name its issuer (`iss`) and subject (`sub`)
//!   ([`SignedStatement`]);
//! - the concise problem details (RFC 9290) SCRAPI answers with ([`problem_details`]).
//!
//! What it is not: no key storage or key generation policy (signing goes through the
//! [`ReceiptSigner`] trait), no I/O, no HTTP. RFC 6962 hashing and proof arithmetic come
//! from `merklog-merkle`; signatures from `ed25519-dalek` and `p256`.
//!
//! The byte-level layout is documented in `docs/receipts.md`.

mod error;
#[doc(hidden)]
pub mod fuzzing;
mod key;
mod problem;
mod receipt;
mod statement;

pub use error::ReceiptError;
pub use key::{Algorithm, PublicKey, ReceiptSigner, SecretKey};
pub use problem::{PROBLEM_CONTENT_TYPE, parse_problem_details, problem_details};
pub use receipt::{
    HEADER_VDP, HEADER_VDS, INCLUSION_PROOFS, InclusionProof, MAX_PROOF_HASHES, Receipt,
    SignedTreeHead, VDS_RFC9162_SHA256, VerifiedReceipt,
};
pub use statement::{HEADER_CWT_CLAIMS, SignedStatement, sign_statement};

/// Media type of COSE objects (receipts and signed statements), RFC 9052.
pub const COSE_CONTENT_TYPE: &str = "application/cose";

/// Lower-case hex, for error messages.
pub(crate) use merklog_merkle::to_hex as hex;

/// Decodes exactly one CBOR data item, refusing trailing bytes.
pub(crate) fn decode_value(bytes: &[u8]) -> Result<coset::cbor::value::Value, String> {
    let mut rest = bytes;
    let value = coset::cbor::de::from_reader(&mut rest).map_err(|e| e.to_string())?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(format!("{} bytes after the CBOR item", rest.len()))
    }
}
