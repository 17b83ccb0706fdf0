//! C2SP tlog-proof (`c2sp.org/tlog-proof@v1`): an offline-verifiable proof that
//! an entry is in a log, carrying the signed (and cosigned) checkpoint.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use merklog_merkle::{LeafIndex, TreeSize, verify_inclusion};

use crate::checkpoint::{Checkpoint, open_checkpoint};
use crate::grammar::{decode_hash, parse_decimal};
use crate::key::Verifier;
use crate::note::{MAX_NOTE_SIZE, Note};
use crate::policy::Policy;
use crate::{Hash, NoteError};

/// The first line of every tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Most inclusion-proof hashes: a tree of at most 2^64 leaves needs 64.
pub const MAX_PROOF_HASHES: usize = 64;

/// Largest proof file accepted: the checkpoint limit plus as much again for
/// the extra data and hashes.
pub const MAX_PROOF_SIZE: usize = 2 * MAX_NOTE_SIZE;

/// A tlog-proof: optional extra data, entry index, inclusion proof, and the
/// checkpoint note bytes (verbatim, with all signatures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated application data.
    pub extra: Option<Vec<u8>>,
    /// Zero-based index of the entry in the log.
    pub index: u64,
    /// RFC 6962 inclusion proof, leaf sibling first.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, byte for byte.
    pub checkpoint: Vec<u8>,
}

/// Splits off the next `\n`-terminated line.
fn next_line(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = rest.iter().position(|&b| b == b'\n')?;
    Some((rest.get(..i)?, rest.get(i + 1..)?))
}

impl TlogProof {
    /// Builds a proof from an index, an inclusion proof and signed checkpoint bytes.
    pub fn new(index: u64, proof: Vec<Hash>, checkpoint: Vec<u8>) -> Self {
        TlogProof {
            extra: None,
            index,
            proof,
            checkpoint,
        }
    }

    /// Parses a proof file strictly; the checkpoint must be a well-formed
    /// signed checkpoint (signatures are checked by [`TlogProof::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<TlogProof, NoteError> {
        if bytes.len() > MAX_PROOF_SIZE {
            return Err(NoteError::TooLarge {
                size: bytes.len(),
                max: MAX_PROOF_SIZE,
            });
        }
        let (header, mut rest) = next_line(bytes).ok_or(NoteError::ProofHeader)?;
        if header != TLOG_PROOF_HEADER.as_bytes() {
            return Err(NoteError::ProofHeader);
        }
        let (mut line, mut after) = next_line(rest).ok_or(NoteError::ProofIndex)?;
        let mut extra = None;
        if line.starts_with(b"extra") {
            let data = line.strip_prefix(b"extra ").ok_or(NoteError::ProofExtra)?;
            extra = Some(STANDARD.decode(data).map_err(|_| NoteError::ProofExtra)?);
            (line, after) = next_line(after).ok_or(NoteError::ProofIndex)?;
        }
        let index = line
            .strip_prefix(b"index ")
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(parse_decimal)
            .ok_or(NoteError::ProofIndex)?;
        rest = after;
        let mut proof = Vec::new();
        loop {
            let (line, after) = next_line(rest).ok_or(NoteError::ProofTruncated)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() >= MAX_PROOF_HASHES {
                return Err(NoteError::ProofTooManyHashes {
                    max: MAX_PROOF_HASHES,
                });
            }
            let hash = std::str::from_utf8(line).ok().and_then(decode_hash).ok_or(
                NoteError::ProofHash {
                    line: proof.len() + 1,
                },
            )?;
            proof.push(hash);
        }
        let note = Note::parse(rest)?;
        Checkpoint::from_text(note.text())?;
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint: rest.to_vec(),
        })
    }

    /// The proof file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        out.push_str(TLOG_PROOF_HEADER);
        out.push('\n');
        if let Some(extra) = &self.extra {
            out.push_str("extra ");
            STANDARD.encode_string(extra, &mut out);
            out.push('\n');
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            STANDARD.encode_string(h, &mut out);
            out.push('\n');
        }
        out.push('\n');
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.checkpoint);
        bytes
    }

    /// Verifies the proof for an entry whose leaf hash is `leaf_hash`
    /// (computing it is application specific; for plain entries it is
    /// `merklog_merkle::hash_leaf(entry)`):
    /// 1. the checkpoint is signed by `log_verifier`, and its origin is the
    ///    verifier's key name (tlog-policy: a log's key name is its origin);
    /// 2. when `witnesses` is given, every cosignature from a known witness
    ///    verifies and the policy's quorum is met (its `log` lines are unused);
    /// 3. the inclusion proof binds the leaf to the checkpoint's root.
    pub fn verify(
        &self,
        leaf_hash: &Hash,
        log_verifier: &dyn Verifier,
        witnesses: Option<&Policy>,
    ) -> Result<Checkpoint, NoteError> {
        let (checkpoint, note) =
            open_checkpoint(&self.checkpoint, log_verifier, Some(log_verifier.name()))?;
        if let Some(policy) = witnesses {
            policy.check_cosignatures(&note)?;
        }
        self.check_inclusion(leaf_hash, checkpoint)
    }

    /// Verifies the proof against a whole policy: the checkpoint must be
    /// signed by one of its logs (by origin) and cosigned by its quorum.
    pub fn verify_with_policy(
        &self,
        leaf_hash: &Hash,
        policy: &Policy,
    ) -> Result<Checkpoint, NoteError> {
        let verified = policy.verify_checkpoint(&self.checkpoint)?;
        self.check_inclusion(leaf_hash, verified.checkpoint().clone())
    }

    fn check_inclusion(&self, leaf_hash: &Hash, cp: Checkpoint) -> Result<Checkpoint, NoteError> {
        if self.index >= cp.size {
            return Err(NoteError::IndexBeyondCheckpoint {
                index: self.index,
                size: cp.size,
            });
        }
        verify_inclusion(
            leaf_hash,
            LeafIndex(self.index),
            TreeSize(cp.size),
            &self.proof,
            &cp.root,
        )?;
        Ok(cp)
    }
}
