//! C2SP tlog-cosignature, Ed25519 `cosignature/v1` (signature type 0x04).
//!
//! Signed message: `cosignature/v1\n`, `time <decimal>\n`, then the checkpoint
//! text. Signature-line payload: 8-byte big-endian timestamp || 64-byte
//! Ed25519 signature.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::NoteError;
use crate::grammar::validate_key_name;
use crate::key::{
    ALG_COSIGNATURE_V1, ALG_ED25519, ED25519_SIG_LEN, Signer, SignerKeyText, Verifier,
    check_key_id, ed25519_material, format_skey, format_vkey, key_id, parse_key_parts, random_seed,
    strip_skey_prefix, verify_ed25519,
};
use crate::note::{NoteSignature, validate_text};

/// Length of a cosignature/v1 payload: timestamp and Ed25519 signature.
pub const COSIGNATURE_V1_LEN: usize = 8 + ED25519_SIG_LEN;

/// Largest timestamp the spec allows (2^63 - 1).
const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// The exact bytes a cosignature/v1 signs.
pub fn cosignature_message(checkpoint_text: &str, timestamp: u64) -> Vec<u8> {
    let mut msg = Vec::with_capacity(40 + checkpoint_text.len());
    msg.extend_from_slice(b"cosignature/v1\ntime ");
    msg.extend_from_slice(timestamp.to_string().as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(checkpoint_text.as_bytes());
    msg
}

/// Splits a cosignature/v1 payload into its timestamp and signature.
fn split_payload(payload: &[u8]) -> Result<(u64, &[u8]), NoteError> {
    match payload.split_first_chunk::<8>() {
        Some((time, sig)) if payload.len() == COSIGNATURE_V1_LEN => {
            let time = u64::from_be_bytes(*time);
            if time > MAX_TIMESTAMP {
                return Err(NoteError::TimestampOutOfRange { time });
            }
            Ok((time, sig))
        }
        _ => Err(NoteError::CosignatureLength { got: payload.len() }),
    }
}

/// An Ed25519 cosigner (tlog-cosignature v1, type 0x04), e.g. a witness key.
/// The private key is wiped on drop and never shown by `Debug`.
pub struct CosignatureSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl CosignatureSigner {
    /// Builds a cosigner from a key name and a 32-byte seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        validate_key_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, ALG_COSIGNATURE_V1, key.verifying_key().as_bytes());
        Ok(CosignatureSigner {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Cosigns a checkpoint text (the note text, without signatures) at
    /// `timestamp` (POSIX seconds, at most 2^63 - 1).
    pub fn cosign(
        &self,
        checkpoint_text: &str,
        timestamp: u64,
    ) -> Result<NoteSignature, NoteError> {
        validate_text(checkpoint_text)?;
        let payload = self.payload(checkpoint_text, timestamp)?;
        NoteSignature::new(&self.name, self.key_id, payload)
    }

    fn payload(&self, checkpoint_text: &str, timestamp: u64) -> Result<Vec<u8>, NoteError> {
        use ed25519_dalek::Signer as _;
        if timestamp > MAX_TIMESTAMP {
            return Err(NoteError::TimestampOutOfRange { time: timestamp });
        }
        let sig = self
            .key
            .sign(&cosignature_message(checkpoint_text, timestamp));
        let mut payload = Vec::with_capacity(COSIGNATURE_V1_LEN);
        payload.extend_from_slice(&timestamp.to_be_bytes());
        payload.extend_from_slice(&sig.to_bytes());
        Ok(payload)
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signer key text, `PRIVATE+KEY+name+hexid+base64(0x04 || seed)`, with
    /// the key ID computed for type 0x04.
    pub fn to_signer_key_text(&self) -> SignerKeyText {
        format_skey(
            &self.name,
            self.key_id,
            ALG_COSIGNATURE_V1,
            self.key.as_bytes(),
        )
    }
}

impl fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignatureSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// As a generic [`Signer`], a cosigner signs the note text at the current
/// system time. Use [`CosignatureSigner::cosign`] to choose the timestamp.
impl Signer for CosignatureSigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, NoteError> {
        let text = std::str::from_utf8(message).map_err(|e| NoteError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| NoteError::SignerFailed {
                name: self.name.clone(),
                reason: "system clock is before 1970".into(),
            })?
            .as_secs();
        self.payload(text, now)
    }
    fn verifier_key(&self) -> Option<String> {
        Some(self.verifier().to_vkey())
    }
}

/// Verifies Ed25519 cosignature/v1 signatures (type 0x04).
#[derive(Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Builds a verifier from the cosigner's name and 32-byte public key.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        validate_key_name(name)?;
        let key =
            VerifyingKey::from_bytes(public_key).map_err(|_| NoteError::InvalidPublicKey {
                name: name.to_owned(),
            })?;
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            key_id: key_id(name, ALG_COSIGNATURE_V1, public_key),
            key,
        })
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The vkey, `name+hexid+base64(0x04 || public key)`.
    pub fn to_vkey(&self) -> String {
        format_vkey(
            &self.name,
            self.key_id,
            ALG_COSIGNATURE_V1,
            self.key.as_bytes(),
        )
    }

    /// Verifies one cosignature line over `checkpoint_text` and returns its
    /// timestamp.
    pub fn verify_cosignature(
        &self,
        checkpoint_text: &str,
        sig: &NoteSignature,
    ) -> Result<u64, NoteError> {
        if sig.name() != self.name || sig.key_id() != self.key_id {
            return Err(NoteError::KeyMismatch {
                expected_name: self.name.clone(),
                expected_id: self.key_id,
                got_name: sig.name().to_owned(),
                got_id: sig.key_id(),
            });
        }
        let (time, raw) = split_payload(sig.signature())?;
        if verify_ed25519(&self.key, &cosignature_message(checkpoint_text, time), raw) {
            Ok(time)
        } else {
            Err(NoteError::InvalidSignature {
                name: self.name.clone(),
                key_id: self.key_id,
            })
        }
    }
}

impl fmt::Debug for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let (Ok(text), Ok((time, raw))) = (std::str::from_utf8(message), split_payload(signature))
        else {
            return false;
        };
        verify_ed25519(&self.key, &cosignature_message(text, time), raw)
    }
}

/// Parses a cosigner verifier key, `name+hexid+base64(0x04 || pubkey)`.
pub fn parse_cosignature_verifier_key(text: &str) -> Result<CosignatureVerifier, NoteError> {
    let parts = parse_key_parts(text, "verifier")?;
    if parts.alg != ALG_COSIGNATURE_V1 {
        return Err(NoteError::UnsupportedAlgorithm { alg: parts.alg });
    }
    let public = ed25519_material(&parts)?;
    check_key_id(
        parts.name,
        parts.stated_id,
        ALG_COSIGNATURE_V1,
        public.as_slice(),
    )?;
    CosignatureVerifier::new(parts.name, &public)
}

/// Parses a cosigner signer key. Accepts type 0x04 keys as written by
/// [`CosignatureSigner::to_signer_key_text`], and plain Ed25519 (type 0x01)
/// note keys, as other witness software stores them; either way the stated key
/// ID is checked for the stated type, and the cosigner's key ID uses type 0x04.
pub fn parse_cosigner_key(text: &str) -> Result<CosignatureSigner, NoteError> {
    let parts = parse_key_parts(strip_skey_prefix(text)?, "signer")?;
    if parts.alg != ALG_COSIGNATURE_V1 && parts.alg != ALG_ED25519 {
        return Err(NoteError::UnsupportedAlgorithm { alg: parts.alg });
    }
    let seed = ed25519_material(&parts)?;
    let signer = CosignatureSigner::from_seed(parts.name, &seed)?;
    check_key_id(
        parts.name,
        parts.stated_id,
        parts.alg,
        signer.key.verifying_key().as_bytes(),
    )?;
    Ok(signer)
}

/// Generates a fresh cosigner key: returns the signer key text (type 0x04) and
/// the cosigner vkey (type 0x04), as tlog-cosignature defines it.
pub fn generate_cosigner(name: &str) -> Result<(SignerKeyText, String), NoteError> {
    let signer = CosignatureSigner::from_seed(name, &*random_seed()?)?;
    Ok((signer.to_signer_key_text(), signer.verifier().to_vkey()))
}
