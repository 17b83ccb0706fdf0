//! C2SP signed-note v1.0.0: parsing, serialising, signing and verifying notes.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::NoteError;
use crate::grammar::validate_key_name;
use crate::key::{Signer, Verifier};

/// Largest note accepted or produced, in bytes (1 MiB).
pub const MAX_NOTE_SIZE: usize = 1 << 20;
/// Most signature lines accepted in one note. The spec requires at least 16.
pub const MAX_SIGNATURES: usize = 100;
/// The signature line prefix: em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Checks bytes against the note character rules: valid UTF-8 and no ASCII
/// control character other than newline.
fn check_characters(bytes: &[u8]) -> Result<&str, NoteError> {
    let text = std::str::from_utf8(bytes).map_err(|e| NoteError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    // UTF-8 continuation and lead bytes are >= 0x80, so a byte scan suffices.
    if let Some((offset, &byte)) = bytes
        .iter()
        .enumerate()
        .find(|&(_, &b)| b < 0x20 && b != b'\n')
    {
        return Err(NoteError::ControlCharacter { byte, offset });
    }
    Ok(text)
}

/// Checks a note text: non-empty, newline-terminated, allowed characters,
/// small enough to be signed.
pub(crate) fn validate_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::TextNotNewlineTerminated);
    }
    if text.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge {
            size: text.len(),
            max: MAX_NOTE_SIZE,
        });
    }
    check_characters(text.as_bytes()).map(|_| ())
}

/// One signature line: key name, key ID and the signature payload.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteSignature {
    name: String,
    key_id: u32,
    signature: Vec<u8>,
}

impl NoteSignature {
    /// Builds a signature line; the name must be a valid key name and the
    /// payload non-empty.
    pub fn new(name: &str, key_id: u32, signature: Vec<u8>) -> Result<Self, NoteError> {
        validate_key_name(name)?;
        if signature.is_empty() {
            return Err(NoteError::SignatureTooShort { line: 1, len: 4 });
        }
        Ok(NoteSignature {
            name: name.to_owned(),
            key_id,
            signature,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature payload, without the key ID.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The line as it appears in a note: `— name base64(id || sig)\n`.
    pub fn to_line(&self) -> String {
        let mut line = String::new();
        self.write_line(&mut line);
        line
    }

    fn write_line(&self, out: &mut String) {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&self.signature);
        out.push_str(SIG_PREFIX);
        out.push_str(&self.name);
        out.push(' ');
        STANDARD.encode_string(bytes, out);
        out.push('\n');
    }

    fn encoded_len(&self) -> usize {
        SIG_PREFIX.len() + self.name.len() + 1 + (4 + self.signature.len()).div_ceil(3) * 4 + 1
    }

    /// Parses one signature line without its trailing newline. `line_no` is
    /// 1-based and only used in errors.
    pub fn parse_line(line: &str, line_no: usize) -> Result<Self, NoteError> {
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(NoteError::SignatureLinePrefix { line: line_no })?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(NoteError::SignatureLineFields { line: line_no })?;
        validate_key_name(name)?;
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| NoteError::SignatureEncoding { line: line_no })?;
        let (id, signature) = match bytes.split_first_chunk::<4>() {
            Some((id, sig)) if !sig.is_empty() => (u32::from_be_bytes(*id), sig.to_vec()),
            _ => {
                return Err(NoteError::SignatureTooShort {
                    line: line_no,
                    len: bytes.len(),
                });
            }
        };
        Ok(NoteSignature {
            name: name.to_owned(),
            key_id: id,
            signature,
        })
    }
}

impl fmt::Debug for NoteSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_line().trim_end())
    }
}

/// A set of trusted verifiers, looked up by (name, key ID).
#[derive(Clone, Default)]
pub struct Verifiers {
    list: Vec<Arc<dyn Verifier>>,
}

impl Verifiers {
    /// An empty set.
    pub fn new() -> Self {
        Verifiers::default()
    }

    /// A set holding one verifier.
    pub fn single(v: impl Verifier + 'static) -> Self {
        Verifiers {
            list: vec![Arc::new(v)],
        }
    }

    /// Adds a verifier; two verifiers may not share a (name, key ID) pair.
    pub fn add(&mut self, v: impl Verifier + 'static) -> Result<(), NoteError> {
        self.add_arc(Arc::new(v))
    }

    /// Adds a shared verifier; two verifiers may not share a (name, key ID) pair.
    pub fn add_arc(&mut self, v: Arc<dyn Verifier>) -> Result<(), NoteError> {
        if self.get(v.name(), v.key_id()).is_some() {
            return Err(NoteError::AmbiguousKey {
                name: v.name().to_owned(),
                key_id: v.key_id(),
            });
        }
        self.list.push(v);
        Ok(())
    }

    /// The verifier for (name, key ID), if known.
    pub fn get(&self, name: &str, key_id: u32) -> Option<&Arc<dyn Verifier>> {
        self.list
            .iter()
            .find(|v| v.key_id() == key_id && v.name() == name)
    }

    /// Number of verifiers.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when no verifier is known.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.list
                    .iter()
                    .map(|v| format!("{}+{:08x}", v.name(), v.key_id())),
            )
            .finish()
    }
}

/// A signed note: text plus signature lines, kept exactly as parsed so that
/// [`Note::to_bytes`] reproduces the input byte for byte.
#[derive(Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl fmt::Debug for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Note")
            .field("text", &self.text)
            .field("signatures", &self.signatures)
            .finish()
    }
}

impl Note {
    /// Parses a signed note (syntax only; see [`Note::verify`]).
    ///
    /// The text is separated from the signatures by the last blank line.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge {
                size: bytes.len(),
                max: MAX_NOTE_SIZE,
            });
        }
        let all = check_characters(bytes)?;
        let split = all
            .rfind("\n\n")
            .ok_or(NoteError::MissingSignatureSeparator)?;
        // `split` indexes an ASCII newline, so both slices are on char boundaries.
        let (text, sigs) = (
            all.get(..split + 1).unwrap_or_default(),
            all.get(split + 2..).unwrap_or_default(),
        );
        if sigs.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let Some(body) = sigs.strip_suffix('\n') else {
            return Err(NoteError::SignatureBlockUnterminated);
        };
        let mut signatures = Vec::new();
        for (i, line) in body.split('\n').enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures {
                    max: MAX_SIGNATURES,
                });
            }
            signatures.push(NoteSignature::parse_line(line, i + 1)?);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Parses a note and verifies it against `verifiers` (see [`Note::verify`]).
    pub fn open(bytes: &[u8], verifiers: &Verifiers) -> Result<Note, NoteError> {
        let note = Note::parse(bytes)?;
        note.verify(verifiers)?;
        Ok(note)
    }

    /// Signs `text` with every signer, in order.
    pub fn sign(text: &str, signers: &[&dyn Signer]) -> Result<Note, NoteError> {
        validate_text(text)?;
        let mut note = Note {
            text: text.to_owned(),
            signatures: Vec::with_capacity(signers.len()),
        };
        for signer in signers {
            note.add_signature(sign_text(text, *signer)?)?;
        }
        if note.signatures.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        Ok(note)
    }

    /// The note text, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature line (for example a witness cosignature). A line with
    /// the same (name, key ID) as an existing one replaces it in place.
    /// Fails if the note would exceed the signature count or size limits.
    pub fn add_signature(&mut self, sig: NoteSignature) -> Result<(), NoteError> {
        if let Some(existing) = self
            .signatures
            .iter_mut()
            .find(|s| s.key_id == sig.key_id && s.name == sig.name)
        {
            let old = std::mem::replace(existing, sig);
            if self.encoded_len() > MAX_NOTE_SIZE {
                let size = self.encoded_len();
                if let Some(slot) = self
                    .signatures
                    .iter_mut()
                    .find(|s| s.key_id == old.key_id && s.name == old.name)
                {
                    *slot = old;
                }
                return Err(NoteError::TooLarge {
                    size,
                    max: MAX_NOTE_SIZE,
                });
            }
            return Ok(());
        }
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            });
        }
        let size = self.encoded_len() + sig.encoded_len();
        if size > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge {
                size,
                max: MAX_NOTE_SIZE,
            });
        }
        self.signatures.push(sig);
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.text.len()
            + 1
            + self
                .signatures
                .iter()
                .map(NoteSignature::encoded_len)
                .sum::<usize>()
    }

    /// The note bytes: text, blank line, signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.encoded_len());
        out.push_str(&self.text);
        out.push('\n');
        for s in &self.signatures {
            s.write_line(&mut out);
        }
        out.into_bytes()
    }

    /// Verifies the note as C2SP signed-note requires: signature lines whose
    /// (name, key ID) is unknown are ignored; every line from a known key is
    /// verified and one failure rejects the note; at least one must verify.
    ///
    /// Returns the verified signatures, one per (name, key ID), in note order.
    pub fn verify(&self, verifiers: &Verifiers) -> Result<Vec<NoteSignature>, NoteError> {
        self.verify_by(|name, id| verifiers.get(name, id).map(|v| v.as_ref()))
    }

    /// [`Note::verify`] with any (name, key ID) lookup.
    pub(crate) fn verify_by<'v>(
        &self,
        lookup: impl Fn(&str, u32) -> Option<&'v dyn Verifier>,
    ) -> Result<Vec<NoteSignature>, NoteError> {
        let mut verified: Vec<NoteSignature> = Vec::new();
        let mut seen = HashSet::new();
        for sig in &self.signatures {
            let Some(v) = lookup(&sig.name, sig.key_id) else {
                continue;
            };
            if !v.verify(self.text.as_bytes(), &sig.signature) {
                return Err(NoteError::InvalidSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            if seen.insert((sig.name.as_str(), sig.key_id)) {
                verified.push(sig.clone());
            }
        }
        if verified.is_empty() {
            return Err(NoteError::NoKnownSignature {
                seen: self
                    .signatures
                    .iter()
                    .map(|s| format!("{}+{:08x}", s.name, s.key_id))
                    .collect(),
            });
        }
        Ok(verified)
    }
}

/// Signs `text` with one signer and checks what it returned.
pub(crate) fn sign_text(text: &str, signer: &dyn Signer) -> Result<NoteSignature, NoteError> {
    let payload = signer.sign(text.as_bytes())?;
    NoteSignature::new(signer.name(), signer.key_id(), payload)
}
