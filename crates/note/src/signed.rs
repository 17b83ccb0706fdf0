//! A signed checkpoint as every merklog party holds it: the exact signed-note bytes and
//! the checkpoint body they carry, built only by signing or by verifying, so the two
//! always agree.

use bytes::Bytes;
use merklog_merkle::{Hash, TreeSize};

use crate::NoteError;
use crate::checkpoint::{Checkpoint, open_checkpoint, sign_checkpoint};
use crate::key::{Signer, Verifier};
use crate::note::{Note, NoteSignature};

/// A checkpoint whose log signature was made or verified here: the note bytes as
/// signed or received (with every signature and cosignature line), its parsed body, and
/// the policy names of the witnesses whose cosignatures were verified against a policy
/// (empty when none was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: Bytes,
    cosigners: Vec<String>,
}

impl SignedCheckpoint {
    /// Signs `checkpoint` with the log's key (Ed25519 is deterministic: the same body
    /// always gives the same bytes).
    pub fn sign(checkpoint: Checkpoint, signer: &dyn Signer) -> Result<Self, NoteError> {
        let note = sign_checkpoint(&checkpoint, signer)?;
        Ok(Self {
            checkpoint,
            note: Bytes::from(note),
            cosigners: Vec::new(),
        })
    }

    /// Opens a signed checkpoint note: the log's signature must verify with
    /// `log_verifier` (other signature lines, such as cosignatures, are ignored here:
    /// see `Policy::check_witnesses`) and the origin must be `origin` when given.
    pub fn open(
        note: impl Into<Bytes>,
        log_verifier: &dyn Verifier,
        origin: Option<&str>,
    ) -> Result<Self, NoteError> {
        let note = note.into();
        let (checkpoint, _) = open_checkpoint(&note, log_verifier, origin)?;
        Ok(Self {
            checkpoint,
            note,
            cosigners: Vec::new(),
        })
    }

    /// Assembles a checkpoint whose signatures a policy verified.
    pub(crate) fn verified(checkpoint: Checkpoint, note: Bytes, cosigners: Vec<String>) -> Self {
        Self {
            checkpoint,
            note,
            cosigners,
        }
    }

    /// The same checkpoint with `signatures` (such as witness cosignatures) added to its
    /// note; a line for a key that already signed replaces the older one. The added
    /// lines are not verified here and [`SignedCheckpoint::cosigners`] is unchanged.
    pub fn with_signatures(&self, signatures: &[NoteSignature]) -> Result<Self, NoteError> {
        let mut note = Note::parse(&self.note)?;
        for signature in signatures {
            note.add_signature(signature.clone())?;
        }
        Ok(Self {
            checkpoint: self.checkpoint.clone(),
            note: Bytes::from(note.to_bytes()),
            cosigners: self.cosigners.clone(),
        })
    }

    /// The checkpoint body.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The log's origin (first line of the checkpoint).
    pub fn origin(&self) -> &str {
        &self.checkpoint.origin
    }

    /// The tree size the checkpoint commits to.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.checkpoint.size)
    }

    /// The root hash of that tree.
    pub fn root(&self) -> Hash {
        self.checkpoint.root
    }

    /// The signed note, byte for byte (with every signature line).
    pub fn note(&self) -> &Bytes {
        &self.note
    }

    /// The note as text (a verified note is UTF-8).
    pub fn note_text(&self) -> String {
        String::from_utf8_lossy(&self.note).into_owned()
    }

    /// Policy names of the witnesses whose cosignatures verified, in policy order
    /// (empty unless the checkpoint was checked against a policy).
    pub fn cosigners(&self) -> &[String] {
        &self.cosigners
    }

    /// One line for people: origin, size and root in hex.
    pub fn summary(&self) -> String {
        format!(
            "{} size {} root {}",
            self.checkpoint.origin, self.checkpoint.size, self.checkpoint.root
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CosignatureSigner, Ed25519Signer, Policy};

    const ORIGIN: &str = "example.com/log";

    fn log_signer() -> Ed25519Signer {
        Ed25519Signer::from_seed(ORIGIN, &[7; 32]).unwrap()
    }

    fn witness(i: u8) -> CosignatureSigner {
        CosignatureSigner::from_seed(&format!("witness.example/w{i}"), &[i; 32]).unwrap()
    }

    fn body(size: u64) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: Hash::from_bytes([0x42; 32]),
            extensions: vec![],
        }
    }

    #[test]
    fn signed_opens_to_the_same_checkpoint() {
        let signer = log_signer();
        let signed = SignedCheckpoint::sign(body(9), &signer).unwrap();
        assert_eq!(signed.size(), TreeSize(9));
        assert_eq!(signed.root(), Hash::from_bytes([0x42; 32]));
        assert_eq!(signed.origin(), ORIGIN);
        assert_eq!(signed.checkpoint(), &body(9));
        assert!(signed.cosigners().is_empty());
        assert!(signed.note_text().starts_with("example.com/log\n9\n"));
        assert_eq!(
            signed.summary(),
            format!("{ORIGIN} size 9 root {}", "42".repeat(32))
        );
        let opened =
            SignedCheckpoint::open(signed.note().clone(), &signer.verifier(), Some(ORIGIN))
                .unwrap();
        assert_eq!(opened, signed);
    }

    #[test]
    fn open_refuses_other_keys_origins_and_edits() {
        let signed = SignedCheckpoint::sign(body(9), &log_signer()).unwrap();
        let other = Ed25519Signer::from_seed(ORIGIN, &[8; 32]).unwrap();
        assert!(SignedCheckpoint::open(signed.note().clone(), &other.verifier(), None).is_err());
        assert!(matches!(
            SignedCheckpoint::open(
                signed.note().clone(),
                &log_signer().verifier(),
                Some("example.com/other")
            ),
            Err(NoteError::OriginMismatch { .. })
        ));
        let edited = signed.note_text().replacen("\n9\n", "\n8\n", 1);
        assert!(
            SignedCheckpoint::open(edited.into_bytes(), &log_signer().verifier(), None).is_err()
        );
    }

    #[test]
    fn cosignatures_keep_the_body_and_count_with_a_policy() {
        let signed = SignedCheckpoint::sign(body(5), &log_signer()).unwrap();
        let text = signed.checkpoint().to_text();
        let cosigned = signed
            .with_signatures(&[
                witness(1).cosign(&text, 1_700_000_000).unwrap(),
                witness(2).cosign(&text, 1_700_000_000).unwrap(),
            ])
            .unwrap();
        assert_eq!(cosigned.checkpoint(), signed.checkpoint());
        assert_ne!(cosigned.note(), signed.note());
        assert!(cosigned.note().starts_with(signed.note()));
        assert!(cosigned.cosigners().is_empty(), "not checked yet");

        let policy = Policy::parse(&format!(
            "log {}\nwitness one {}\nwitness two {}\ngroup both all one two\nquorum both\n",
            log_signer().verifier().to_vkey(),
            witness(1).verifier().to_vkey(),
            witness(2).verifier().to_vkey(),
        ))
        .unwrap();
        let checked = policy.check_witnesses(cosigned.clone()).unwrap();
        assert_eq!(checked.cosigners(), ["one", "two"]);
        assert_eq!(checked.note(), cosigned.note());
        let whole = policy.verify_checkpoint(cosigned.note()).unwrap();
        assert_eq!(whole, checked);
        assert!(matches!(
            policy.check_witnesses(signed),
            Err(NoteError::QuorumNotSatisfied { .. })
        ));
    }
}
