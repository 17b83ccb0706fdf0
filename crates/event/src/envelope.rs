//! The version 1 envelope: layout, parsing, signing and single verification.

use ed25519_dalek::{Signature, VerifyingKey};
use merklog_note::{ALG_ED25519, Ed25519Signer, Ed25519Verifier, Signer, Verifier};

use crate::EventError;
use crate::reserved::EventKind;

/// The four bytes every envelope starts with, before the version byte.
pub const MAGIC: &[u8; 4] = b"MLEV";
/// The only envelope version this crate reads and writes.
pub const VERSION: u8 = 1;
/// Prefixed to the envelope's bytes (up to the signature) to form the signed message.
/// The NUL byte keeps it apart from signed-note texts and cosignature messages, which
/// never contain one, so a source key's signature can never be replayed as either.
pub const SIGNATURE_CONTEXT: &[u8] = b"merklog event signature v1\0";
/// The largest envelope: one log entry (a tlog-tiles entry bundle's 16-bit length).
pub const MAX_EVENT_LEN: usize = 65_535;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// What a source fills in; [`Event::sign`] turns it into an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDraft<'a> {
    /// The source's name, which is also its key's name.
    pub source: &'a str,
    /// The source's own sequence number for this event.
    pub sequence: u64,
    /// When the source says the event happened: milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: u64,
    /// The payload's media type, e.g. `application/json`.
    pub media_type: &'a str,
    /// The payload's exact bytes; never re-serialised.
    pub payload: &'a [u8],
}

/// Where each variable-length field sits inside the envelope bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    source: (usize, usize),
    key_id: u32,
    sequence: u64,
    timestamp_ms: u64,
    media_type: (usize, usize),
    payload: (usize, usize),
    signature: usize,
}

/// A parsed, structurally valid envelope (its signature is NOT yet checked: call
/// [`Event::verify`] or [`crate::verify_batch`]). It owns the exact bytes it was parsed
/// from; those bytes are the log entry.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    bytes: Vec<u8>,
    layout: Layout,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("source", &self.source())
            .field("key_id", &format_args!("{:08x}", self.key_id()))
            .field("sequence", &self.sequence())
            .field("timestamp_ms", &self.timestamp_ms())
            .field("media_type", &self.media_type())
            .field("payload_len", &self.payload().len())
            .finish()
    }
}

/// Reads fields front to back, naming the field that runs out of bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<(usize, usize), EventError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(EventError::Truncated { field })?;
        let span = (self.at, end);
        self.at = end;
        Ok(span)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], EventError> {
        let (start, end) = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[start..end]);
        Ok(out)
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> EventError {
    EventError::InvalidField {
        field,
        reason: reason.into(),
    }
}

/// The source name follows the signed-note key name rules, so the same text names the
/// source and its key.
fn check_source(source: &str) -> Result<(), EventError> {
    merklog_note::validate_key_name(source).map_err(|error| invalid("source", error.to_string()))
}

/// A media type is visible ASCII without spaces and contains a `/`.
fn check_media_type(media_type: &str) -> Result<(), EventError> {
    if media_type.is_empty() || media_type.len() > 255 {
        return Err(invalid("media_type", "must be 1 to 255 bytes"));
    }
    if !media_type.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(invalid(
            "media_type",
            "must be visible ASCII without spaces",
        ));
    }
    if !media_type.contains('/') {
        return Err(invalid("media_type", "must have the form type/subtype"));
    }
    Ok(())
}

impl Event {
    /// Parses an envelope, checking its structure and field rules (not its signature).
    pub fn parse(bytes: &[u8]) -> Result<Event, EventError> {
        Event::from_vec(bytes.to_vec())
    }

    /// [`Event::parse`] without a copy.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Event, EventError> {
        if bytes.len() > MAX_EVENT_LEN {
            return Err(EventError::TooLarge {
                len: bytes.len(),
                max: MAX_EVENT_LEN,
            });
        }
        if bytes.len() < MAGIC.len() + 1 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(EventError::NotAnEvent {
                found: bytes.iter().take(5).copied().collect(),
            });
        }
        if bytes[MAGIC.len()] != VERSION {
            return Err(EventError::UnsupportedVersion(bytes[MAGIC.len()]));
        }
        let layout = {
            let mut r = Reader {
                bytes: &bytes,
                at: MAGIC.len() + 1,
            };
            let [source_len] = r.array::<1>("source length")?;
            let source = r.take(usize::from(source_len), "source")?;
            let key_id = u32::from_be_bytes(r.array("key_id")?);
            let sequence = u64::from_be_bytes(r.array("sequence")?);
            let timestamp_ms = u64::from_be_bytes(r.array("timestamp")?);
            let [media_len] = r.array::<1>("media_type length")?;
            let media_type = r.take(usize::from(media_len), "media_type")?;
            let payload_len = u32::from_be_bytes(r.array("payload length")?);
            let payload_len = usize::try_from(payload_len)
                .map_err(|_| EventError::Truncated { field: "payload" })?;
            let payload = r.take(payload_len, "payload")?;
            let (signature, _) = r.take(SIGNATURE_LEN, "signature")?;
            if r.at != bytes.len() {
                return Err(EventError::TrailingBytes(bytes.len() - r.at));
            }
            Layout {
                source,
                key_id,
                sequence,
                timestamp_ms,
                media_type,
                payload,
                signature,
            }
        };
        let source = std::str::from_utf8(&bytes[layout.source.0..layout.source.1])
            .map_err(|_| invalid("source", "is not UTF-8"))?;
        check_source(source)?;
        let media_type = std::str::from_utf8(&bytes[layout.media_type.0..layout.media_type.1])
            .map_err(|_| invalid("media_type", "is not UTF-8"))?;
        check_media_type(media_type)?;
        let event = Event { bytes, layout };
        // Reserved media types carry payloads of a fixed shape; check it here so every
        // reader of a parsed event can rely on it.
        event.kind()?;
        Ok(event)
    }

    /// Builds and signs an envelope with the source's key. The key's name must be the
    /// draft's source name.
    pub fn sign(signer: &Ed25519Signer, draft: &EventDraft<'_>) -> Result<Event, EventError> {
        if signer.name() != draft.source {
            return Err(invalid(
                "source",
                format!(
                    "{:?} differs from the signing key's name {:?}",
                    draft.source,
                    signer.name()
                ),
            ));
        }
        check_source(draft.source)?;
        check_media_type(draft.media_type)?;
        let payload_len = u32::try_from(draft.payload.len())
            .map_err(|_| invalid("payload", "longer than 4 GiB"))?;
        let mut bytes = Vec::with_capacity(
            MAGIC.len()
                + 32
                + draft.source.len()
                + draft.media_type.len()
                + draft.payload.len()
                + SIGNATURE_LEN,
        );
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        // Both lengths were checked to fit in one byte above.
        bytes.push(draft.source.len() as u8);
        bytes.extend_from_slice(draft.source.as_bytes());
        bytes.extend_from_slice(&signer.key_id().to_be_bytes());
        bytes.extend_from_slice(&draft.sequence.to_be_bytes());
        bytes.extend_from_slice(&draft.timestamp_ms.to_be_bytes());
        bytes.push(draft.media_type.len() as u8);
        bytes.extend_from_slice(draft.media_type.as_bytes());
        bytes.extend_from_slice(&payload_len.to_be_bytes());
        bytes.extend_from_slice(draft.payload);
        let len = bytes.len() + SIGNATURE_LEN;
        if len > MAX_EVENT_LEN {
            return Err(EventError::TooLarge {
                len,
                max: MAX_EVENT_LEN,
            });
        }
        let mut message = Vec::with_capacity(SIGNATURE_CONTEXT.len() + bytes.len());
        message.extend_from_slice(SIGNATURE_CONTEXT);
        message.extend_from_slice(&bytes);
        let signature = signer
            .sign(&message)
            .map_err(|error| EventError::Key(error.to_string()))?;
        bytes.extend_from_slice(&signature);
        Event::from_vec(bytes)
    }

    /// The envelope's exact bytes: the log entry.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The envelope's bytes, consuming the event.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        // Checked to be UTF-8 when parsed.
        std::str::from_utf8(&self.bytes[self.layout.source.0..self.layout.source.1])
            .unwrap_or_default()
    }

    /// The ID of the key that signed the envelope (signed-note key ID).
    pub fn key_id(&self) -> u32 {
        self.layout.key_id
    }

    /// The source's sequence number.
    pub fn sequence(&self) -> u64 {
        self.layout.sequence
    }

    /// The source's timestamp: milliseconds since the Unix epoch, UTC.
    pub fn timestamp_ms(&self) -> u64 {
        self.layout.timestamp_ms
    }

    /// The payload's media type.
    pub fn media_type(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.layout.media_type.0..self.layout.media_type.1])
            .unwrap_or_default()
    }

    /// The payload's exact bytes.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.layout.payload.0..self.layout.payload.1]
    }

    /// The 64 signature bytes.
    pub fn signature(&self) -> &[u8] {
        &self.bytes[self.layout.signature..]
    }

    /// The message the signature covers: [`SIGNATURE_CONTEXT`] then every envelope byte
    /// before the signature.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut message = Vec::with_capacity(SIGNATURE_CONTEXT.len() + self.layout.signature);
        message.extend_from_slice(SIGNATURE_CONTEXT);
        message.extend_from_slice(&self.bytes[..self.layout.signature]);
        message
    }

    /// What the event is: data, a heartbeat, a declaration of unused sequence numbers,
    /// or a status record; an error if a reserved media type carries a malformed payload.
    pub fn kind(&self) -> Result<EventKind, EventError> {
        EventKind::of(self.media_type(), self.payload(), self.sequence())
    }

    /// Checks the signature with the source's key (strict Ed25519: small-order keys and
    /// `R` values and non-canonical `S` are refused), and that the envelope names that key.
    pub fn verify(&self, key: &SourceKey) -> Result<(), EventError> {
        key.check_names(self)?;
        let signature = self.dalek_signature();
        key.key
            .verify_strict(&self.signed_message(), &signature)
            .map_err(|_| self.bad_signature())
    }

    pub(crate) fn dalek_signature(&self) -> Signature {
        let mut bytes = [0u8; SIGNATURE_LEN];
        bytes.copy_from_slice(self.signature());
        Signature::from_bytes(&bytes)
    }

    pub(crate) fn bad_signature(&self) -> EventError {
        EventError::BadSignature {
            source_name: self.source().to_owned(),
            sequence: self.sequence(),
        }
    }
}

/// A source's verifier key: a signed-note Ed25519 verifier key (vkey) whose name is the
/// source's name.
#[derive(Clone)]
pub struct SourceKey {
    name: String,
    key_id: u32,
    pub(crate) key: VerifyingKey,
}

impl std::fmt::Debug for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceKey({} {:08x})", self.name, self.key_id)
    }
}

impl SourceKey {
    /// Parses a vkey (`name+hexid+base64(0x01 || key)`). Small-order (weak) keys are
    /// refused: anyone could produce signatures that verify under them.
    pub fn parse(vkey: &str) -> Result<SourceKey, EventError> {
        let verifier = merklog_note::parse_verifier_key(vkey.trim())
            .map_err(|error| EventError::Key(error.to_string()))?;
        SourceKey::from_verifier(&verifier)
    }

    /// The key of an Ed25519 note verifier.
    pub fn from_verifier(verifier: &Ed25519Verifier) -> Result<SourceKey, EventError> {
        let key = VerifyingKey::from_bytes(&verifier.public_key())
            .map_err(|_| invalid("key", "is not a valid Ed25519 public key"))?;
        if key.is_weak() {
            return Err(invalid("key", "is a small-order Ed25519 key"));
        }
        debug_assert_eq!(
            verifier.key_id(),
            merklog_note::key_id(verifier.name(), ALG_ED25519, key.as_bytes())
        );
        Ok(SourceKey {
            name: verifier.name().to_owned(),
            key_id: verifier.key_id(),
            key,
        })
    }

    /// The source name the key is for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The vkey text.
    pub fn to_vkey(&self) -> String {
        match Ed25519Verifier::new(&self.name, self.key.as_bytes()) {
            Ok(verifier) => verifier.to_vkey(),
            // The name was valid when the key was built.
            Err(_) => String::new(),
        }
    }

    pub(crate) fn check_names(&self, event: &Event) -> Result<(), EventError> {
        if event.source() != self.name || event.key_id() != self.key_id {
            return Err(EventError::WrongKey {
                source_name: event.source().to_owned(),
                key_id: event.key_id(),
                expected_name: self.name.clone(),
                expected_key_id: self.key_id,
            });
        }
        Ok(())
    }
}
