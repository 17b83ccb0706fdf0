//! C2SP tlog-checkpoint v1.0.0: the note text of a signed tree head.

use crate::grammar::{decode_hash, encode_hash, parse_decimal};
use crate::key::{Signer, Verifier};
use crate::note::{Note, validate_text};
use crate::{Hash, NoteError};

/// A checkpoint body: origin, tree size, root hash and extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique identity (first line).
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 6962 root hash at `size`.
    pub root: Hash,
    /// Optional opaque extension lines, each non-empty, without newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n` then each extension line.
    pub fn to_text(&self) -> String {
        let mut t = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            encode_hash(&self.root)
        );
        for e in &self.extensions {
            t.push_str(e);
            t.push('\n');
        }
        t
    }

    /// Checks that [`Checkpoint::to_text`] yields a valid checkpoint text:
    /// non-empty origin, non-empty extension lines, no newlines inside fields,
    /// note character rules.
    pub fn validate(&self) -> Result<(), NoteError> {
        if self.origin.is_empty() {
            return Err(NoteError::CheckpointEmptyOrigin);
        }
        if self.origin.contains('\n') {
            return Err(NoteError::CheckpointBadLine { line: 1 });
        }
        for (i, e) in self.extensions.iter().enumerate() {
            if e.is_empty() || e.contains('\n') {
                return Err(NoteError::CheckpointBadLine { line: i + 4 });
            }
        }
        validate_text(&self.to_text())
    }

    /// Parses a checkpoint note text (including its final newline).
    pub fn from_text(text: &str) -> Result<Checkpoint, NoteError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(NoteError::CheckpointTooShort)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::CheckpointTooShort);
        };
        if origin.is_empty() {
            return Err(NoteError::CheckpointEmptyOrigin);
        }
        let size = parse_decimal(size).ok_or_else(|| NoteError::CheckpointSize {
            line: size.chars().take(64).collect(),
        })?;
        let root = decode_hash(root).ok_or_else(|| NoteError::CheckpointRoot {
            line: root.chars().take(64).collect(),
        })?;
        let mut extensions = Vec::new();
        for (i, e) in lines.enumerate() {
            if e.is_empty() {
                return Err(NoteError::CheckpointBadLine { line: i + 4 });
            }
            extensions.push(e.to_owned());
        }
        let cp = Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        };
        // Character rules (control characters) come from the note layer.
        validate_text(text)?;
        Ok(cp)
    }
}

/// Signs a checkpoint and returns the signed note bytes.
pub fn sign_checkpoint(cp: &Checkpoint, signer: &dyn Signer) -> Result<Vec<u8>, NoteError> {
    cp.validate()?;
    Ok(Note::sign(&cp.to_text(), &[signer])?.to_bytes())
}

/// Parses a signed checkpoint, verifies the log's signature (other signature
/// lines, such as cosignatures, are ignored) and, when `origin` is given,
/// checks the origin line.
pub fn open_checkpoint(
    note_bytes: &[u8],
    log_verifier: &dyn Verifier,
    origin: Option<&str>,
) -> Result<(Checkpoint, Note), NoteError> {
    let note = Note::parse(note_bytes)?;
    note.verify_by(|name, id| {
        (name == log_verifier.name() && id == log_verifier.key_id()).then_some(log_verifier)
    })?;
    let cp = Checkpoint::from_text(note.text())?;
    if let Some(expected) = origin
        && cp.origin != expected
    {
        return Err(NoteError::OriginMismatch {
            expected: expected.to_owned(),
            got: cp.origin,
        });
    }
    Ok((cp, note))
}
