//! Signer and verifier traits, Ed25519 note keys (signature type 0x01) and the
//! vkey / signer-key text encodings (C2SP signed-note, "Verifier keys").

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::NoteError;
use crate::grammar::validate_key_name;

/// Signature type byte of Ed25519 note signatures (C2SP signed-note).
pub const ALG_ED25519: u8 = 0x01;
/// Signature type byte of timestamped Ed25519 cosignatures (C2SP tlog-cosignature).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Length of an Ed25519 public key, seed, and signature.
pub(crate) const ED25519_KEY_LEN: usize = 32;
pub(crate) const ED25519_SIG_LEN: usize = 64;

/// Something that produces note signatures: a local key, a KMS or HSM, or a
/// cosigner. Implementations must be deterministic about `name` and `key_id`.
pub trait Signer: Send + Sync {
    /// The key name written on the signature line.
    fn name(&self) -> &str;
    /// The 32-bit key ID written before the signature bytes.
    fn key_id(&self) -> u32;
    /// Signs `message` (the note text) and returns the signature-line payload
    /// without the 4-byte key ID.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, NoteError>;
    /// The verifier key text (vkey) matching this signer, when it knows it.
    fn verifier_key(&self) -> Option<String> {
        None
    }
}

/// Something that checks note signatures for one (name, key ID) pair.
pub trait Verifier: Send + Sync {
    /// The key name this verifier accepts signature lines for.
    fn name(&self) -> &str;
    /// The key ID this verifier accepts signature lines for.
    fn key_id(&self) -> u32;
    /// Checks a signature-line payload (without the key ID) over `message`
    /// (the note text). Wrong lengths simply fail.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

/// Key ID as C2SP signed-note recommends: the first four bytes, big-endian, of
/// SHA-256(name || "\n" || signature type || public key).
pub fn key_id(name: &str, alg: u8, public_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A signer key in text form (`PRIVATE+KEY+<name>+<hex id>+<base64(type || seed)>`).
///
/// The text is wiped from memory on drop and never printed by `Debug`.
pub struct SignerKeyText(Zeroizing<String>);

impl SignerKeyText {
    /// Wraps key text (for example read from a file).
    pub fn new(text: String) -> Self {
        SignerKeyText(Zeroizing::new(text))
    }

    /// The secret text. Handle with care: write it only to a 0600 file.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SignerKeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignerKeyText(<redacted>)")
    }
}

/// An Ed25519 note verifier (signature type 0x01).
#[derive(Clone, PartialEq, Eq)]
pub struct Ed25519Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl Ed25519Verifier {
    /// Builds a verifier from a key name and a 32-byte Ed25519 public key.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        validate_key_name(name)?;
        let key =
            VerifyingKey::from_bytes(public_key).map_err(|_| NoteError::InvalidPublicKey {
                name: name.to_owned(),
            })?;
        Ok(Ed25519Verifier {
            name: name.to_owned(),
            key_id: key_id(name, ALG_ED25519, public_key),
            key,
        })
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The verifier key text, `name+hexid+base64(0x01 || public key)`.
    pub fn to_vkey(&self) -> String {
        format_vkey(&self.name, self.key_id, ALG_ED25519, self.key.as_bytes())
    }
}

impl fmt::Debug for Ed25519Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl Verifier for Ed25519Verifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        verify_ed25519(&self.key, message, signature)
    }
}

/// Strict Ed25519 verification of a raw 64-byte signature.
pub(crate) fn verify_ed25519(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(bytes) = <[u8; ED25519_SIG_LEN]>::try_from(signature) else {
        return false;
    };
    key.verify_strict(message, &Signature::from_bytes(&bytes))
        .is_ok()
}

/// An Ed25519 note signer (signature type 0x01). The private key is wiped on
/// drop and never shown by `Debug`.
pub struct Ed25519Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl Ed25519Signer {
    /// Builds a signer from a key name and a 32-byte seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        validate_key_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, ALG_ED25519, key.verifying_key().as_bytes());
        Ok(Ed25519Signer {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Ed25519Verifier {
        Ed25519Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The signer key text, `PRIVATE+KEY+name+hexid+base64(0x01 || seed)`.
    pub fn to_signer_key_text(&self) -> SignerKeyText {
        format_skey(&self.name, self.key_id, ALG_ED25519, self.key.as_bytes())
    }
}

impl fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Signer for Ed25519Signer {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, NoteError> {
        use ed25519_dalek::Signer as _;
        Ok(self.key.sign(message).to_bytes().to_vec())
    }
    fn verifier_key(&self) -> Option<String> {
        Some(self.verifier().to_vkey())
    }
}

/// Formats a vkey: `name+hexid+base64(alg || key)`.
pub(crate) fn format_vkey(name: &str, id: u32, alg: u8, key: &[u8]) -> String {
    let mut material = Vec::with_capacity(1 + key.len());
    material.push(alg);
    material.extend_from_slice(key);
    format!("{name}+{id:08x}+{}", STANDARD.encode(material))
}

/// Formats signer key text: `PRIVATE+KEY+name+hexid+base64(alg || seed)`,
/// keeping every intermediate copy of the seed in wiped buffers.
pub(crate) fn format_skey(name: &str, id: u32, alg: u8, seed: &[u8]) -> SignerKeyText {
    let mut material = Zeroizing::new(Vec::with_capacity(1 + seed.len()));
    material.push(alg);
    material.extend_from_slice(seed);
    let encoded = Zeroizing::new(STANDARD.encode(material.as_slice()));
    let mut text = Zeroizing::new(String::with_capacity(
        SKEY_PREFIX.len() + name.len() + 10 + encoded.len(),
    ));
    text.push_str(SKEY_PREFIX);
    text.push_str(name);
    text.push('+');
    text.push_str(&format!("{id:08x}"));
    text.push('+');
    text.push_str(&encoded);
    SignerKeyText(text)
}

const SKEY_PREFIX: &str = "PRIVATE+KEY+";

/// A decoded key string: name, stated key ID, type byte and key material.
pub(crate) struct KeyParts<'a> {
    pub(crate) name: &'a str,
    pub(crate) stated_id: u32,
    pub(crate) alg: u8,
    pub(crate) material: Zeroizing<Vec<u8>>,
}

/// Parses the `name+hexid+base64` tail shared by vkeys and signer keys.
/// The name cannot contain `+`, and the hex ID is exactly eight characters, so
/// splitting at the first two `+` leaves the base64 (which may contain `+`) whole.
pub(crate) fn parse_key_parts<'a>(
    text: &'a str,
    kind: &'static str,
) -> Result<KeyParts<'a>, NoteError> {
    let bad = |reason| NoteError::KeyFormat { kind, reason };
    let mut parts = text.splitn(3, '+');
    let name = parts.next().unwrap_or_default();
    let (Some(hex), Some(b64)) = (parts.next(), parts.next()) else {
        return Err(bad("expected name+hexid+base64"));
    };
    validate_key_name(name)?;
    if hex.len() != 8
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad("key ID is not 8 lowercase hex digits"));
    }
    let stated_id = u32::from_str_radix(hex, 16).map_err(|_| bad("key ID is not hex"))?;
    let material = Zeroizing::new(
        STANDARD
            .decode(b64)
            .map_err(|_| bad("key material is not canonical base64"))?,
    );
    let Some(&alg) = material.first() else {
        return Err(bad("key material is empty"));
    };
    Ok(KeyParts {
        name,
        stated_id,
        alg,
        material,
    })
}

/// Parses a 32-byte Ed25519 key body after the type byte.
pub(crate) fn ed25519_material(parts: &KeyParts<'_>) -> Result<Zeroizing<[u8; 32]>, NoteError> {
    let body = parts.material.get(1..).unwrap_or_default();
    let mut out = Zeroizing::new([0u8; ED25519_KEY_LEN]);
    if body.len() != ED25519_KEY_LEN {
        return Err(NoteError::WrongKeyLength {
            expected: ED25519_KEY_LEN,
            got: body.len(),
        });
    }
    out.copy_from_slice(body);
    Ok(out)
}

/// Checks that a key's stated ID equals the one computed from its public key.
pub(crate) fn check_key_id(
    name: &str,
    stated: u32,
    alg: u8,
    public_key: &[u8],
) -> Result<(), NoteError> {
    let computed = key_id(name, alg, public_key);
    if computed != stated {
        return Err(NoteError::KeyIdMismatch {
            name: name.to_owned(),
            stated,
            computed,
        });
    }
    Ok(())
}

/// Strips the `PRIVATE+KEY+` prefix of a signer key.
pub(crate) fn strip_skey_prefix(text: &str) -> Result<&str, NoteError> {
    text.strip_prefix(SKEY_PREFIX).ok_or(NoteError::KeyFormat {
        kind: "signer",
        reason: "does not start with PRIVATE+KEY+",
    })
}

/// Parses an Ed25519 verifier key (`name+hexid+base64(0x01 || pubkey)`),
/// checking the type byte, the key length and the key ID.
pub fn parse_verifier_key(text: &str) -> Result<Ed25519Verifier, NoteError> {
    let parts = parse_key_parts(text, "verifier")?;
    if parts.alg != ALG_ED25519 {
        return Err(NoteError::UnsupportedAlgorithm { alg: parts.alg });
    }
    let public = ed25519_material(&parts)?;
    check_key_id(parts.name, parts.stated_id, ALG_ED25519, public.as_slice())?;
    Ed25519Verifier::new(parts.name, &public)
}

/// Parses an Ed25519 signer key (`PRIVATE+KEY+name+hexid+base64(0x01 || seed)`),
/// deriving the public key and checking the key ID.
pub fn parse_signer_key(text: &str) -> Result<Ed25519Signer, NoteError> {
    let parts = parse_key_parts(strip_skey_prefix(text)?, "signer")?;
    if parts.alg != ALG_ED25519 {
        return Err(NoteError::UnsupportedAlgorithm { alg: parts.alg });
    }
    let seed = ed25519_material(&parts)?;
    let signer = Ed25519Signer::from_seed(parts.name, &seed)?;
    if signer.key_id != parts.stated_id {
        return Err(NoteError::KeyIdMismatch {
            name: signer.name.clone(),
            stated: parts.stated_id,
            computed: signer.key_id,
        });
    }
    Ok(signer)
}

/// 32 fresh random bytes from the operating system.
pub(crate) fn random_seed() -> Result<Zeroizing<[u8; 32]>, NoteError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice()).map_err(|e| NoteError::Randomness(e.to_string()))?;
    Ok(seed)
}

/// Generates a fresh Ed25519 note key: returns the signer key text (keep it
/// secret, e.g. with [`crate::keyfile::write_signer_key`]) and the vkey.
pub fn generate_ed25519(name: &str) -> Result<(SignerKeyText, String), NoteError> {
    let signer = Ed25519Signer::from_seed(name, &*random_seed()?)?;
    Ok((signer.to_signer_key_text(), signer.verifier().to_vkey()))
}
