//! Receipt and issuer keys: the two algorithms receipts use, public keys as COSE_Key
//! (RFC 9052 section 7) and as text, and the signing trait.
//!
//! A key's `kid` is SHA-256 of its public key bytes: the 32-byte Ed25519 key, or the
//! 65-byte uncompressed SEC1 point of a P-256 key. It is the same in a receipt's
//! protected header and in the key set a log publishes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coset::cbor::value::Value;
use coset::iana::{self, EnumI64 as _};
use coset::{CborSerializable as _, CoseKey, CoseKeyBuilder, CoseKeySet, KeyType, Label};
use sha2::{Digest as _, Sha256};

use crate::ReceiptError;

/// A signature algorithm receipts and statements may use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// EdDSA with Ed25519 (COSE -8).
    EdDsa,
    /// ECDSA with P-256 and SHA-256 (COSE -7); signatures are r || s, 64 bytes.
    Es256,
}

impl Algorithm {
    /// The COSE algorithm identifier.
    pub fn cose_id(self) -> i64 {
        self.iana().to_i64()
    }

    /// The coset algorithm.
    pub(crate) fn iana(self) -> iana::Algorithm {
        match self {
            Self::EdDsa => iana::Algorithm::EdDSA,
            Self::Es256 => iana::Algorithm::ES256,
        }
    }

    /// The algorithm a COSE header names, if it is one of the two.
    pub(crate) fn from_header(alg: Option<&coset::Algorithm>) -> Result<Self, ReceiptError> {
        match alg {
            Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) => Ok(Self::EdDsa),
            Some(coset::Algorithm::Assigned(iana::Algorithm::ES256)) => Ok(Self::Es256),
            Some(other) => Err(ReceiptError::Algorithm(format!(
                "alg {other:?} is neither EdDSA (-8) nor ES256 (-7)"
            ))),
            None => Err(ReceiptError::Algorithm(
                "the protected header has no alg (label 1)".into(),
            )),
        }
    }

    /// The lower-case name used in text keys and settings (`ed25519`, `es256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "ed25519",
            Self::Es256 => "es256",
        }
    }

    /// Reads a name written by [`Algorithm::name`].
    pub fn from_name(name: &str) -> Result<Self, ReceiptError> {
        match name {
            "ed25519" | "eddsa" => Ok(Self::EdDsa),
            "es256" => Ok(Self::Es256),
            other => Err(ReceiptError::Algorithm(format!(
                "{other:?}: expected ed25519 or es256"
            ))),
        }
    }
}

/// A public key that verifies receipts or signed statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// P-256 (ES256).
    Es256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Ed25519(_) => Algorithm::EdDsa,
            Self::Es256(_) => Algorithm::Es256,
        }
    }

    /// The public key bytes: 32 for Ed25519, the 65-byte uncompressed SEC1 point for
    /// P-256.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(key) => key.as_bytes().to_vec(),
            Self::Es256(key) => key.to_sec1_point(false).as_bytes().to_vec(),
        }
    }

    /// Reads [`PublicKey::to_bytes`] of `algorithm` (P-256 also takes a compressed point).
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<Self, ReceiptError> {
        match algorithm {
            Algorithm::EdDsa => {
                let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
                    ReceiptError::Key(format!("an Ed25519 key is 32 bytes, not {}", bytes.len()))
                })?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map(Self::Ed25519)
                    .map_err(|e| ReceiptError::Key(format!("Ed25519 key: {e}")))
            }
            Algorithm::Es256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                .map(Self::Es256)
                .map_err(|e| ReceiptError::Key(format!("P-256 key: {e}"))),
        }
    }

    /// The key id: SHA-256 of [`PublicKey::to_bytes`].
    pub fn key_id(&self) -> Vec<u8> {
        Sha256::digest(self.to_bytes()).to_vec()
    }

    /// Text form `ed25519:<base64 key>` or `es256:<base64 SEC1 point>`.
    pub fn to_text(&self) -> String {
        format!(
            "{}:{}",
            self.algorithm().name(),
            STANDARD.encode(self.to_bytes())
        )
    }

    /// Reads [`PublicKey::to_text`].
    pub fn from_text(text: &str) -> Result<Self, ReceiptError> {
        let (name, b64) = text.trim().split_once(':').ok_or_else(|| {
            ReceiptError::Key("expected <ed25519|es256>:<base64 public key>".into())
        })?;
        let bytes = STANDARD
            .decode(b64)
            .map_err(|e| ReceiptError::Key(format!("base64: {e}")))?;
        Self::from_bytes(Algorithm::from_name(name)?, &bytes)
    }

    /// Checks `signature` over `message`. Ed25519 is checked strictly (no malleable or
    /// small-order forms); ES256 signatures are r || s.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Ed25519(key) => {
                let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
                    return false;
                };
                let signature = ed25519_dalek::Signature::from_bytes(&bytes);
                key.verify_strict(message, &signature).is_ok()
            }
            Self::Es256(key) => {
                use p256::ecdsa::signature::Verifier as _;
                let Ok(signature) = p256::ecdsa::Signature::from_slice(signature) else {
                    return false;
                };
                key.verify(message, &signature).is_ok()
            }
        }
    }

    /// The key as a COSE_Key with `kty`, `crv`, the coordinates, `alg` and `kid`.
    pub fn to_cose_key(&self) -> CoseKey {
        let builder = match self {
            Self::Ed25519(key) => CoseKeyBuilder::new_okp_key()
                .param(
                    iana::OkpKeyParameter::Crv.to_i64(),
                    Value::from(iana::EllipticCurve::Ed25519.to_i64()),
                )
                .param(
                    iana::OkpKeyParameter::X.to_i64(),
                    Value::Bytes(key.as_bytes().to_vec()),
                ),
            Self::Es256(key) => {
                let point = key.to_sec1_point(false);
                let bytes = point.as_bytes();
                // Uncompressed SEC1: 0x04 || x (32) || y (32).
                let (x, y) = bytes
                    .get(1..)
                    .and_then(|xy| xy.split_at_checked(32))
                    .unwrap_or_default();
                CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, x.to_vec(), y.to_vec())
            }
        };
        builder
            .algorithm(self.algorithm().iana())
            .key_id(self.key_id())
            .build()
    }

    /// [`PublicKey::to_cose_key`], encoded.
    pub fn to_cose_key_bytes(&self) -> Result<Vec<u8>, ReceiptError> {
        self.to_cose_key()
            .to_vec()
            .map_err(|e| ReceiptError::malformed("COSE key", e.to_string()))
    }

    /// Reads an encoded COSE_Key ([`PublicKey::from_cose_key`]).
    pub fn from_cose_key_bytes(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let key = CoseKey::from_slice(bytes)
            .map_err(|e| ReceiptError::malformed("COSE key", e.to_string()))?;
        Self::from_cose_key(&key)
    }

    /// Reads an OKP Ed25519 or EC2 P-256 public COSE_Key.
    pub fn from_cose_key(key: &CoseKey) -> Result<Self, ReceiptError> {
        let param = |label: i64| {
            key.params
                .iter()
                .find(|(l, _)| *l == Label::Int(label))
                .map(|(_, v)| v)
        };
        let bytes_param = |label: i64, name: &str| -> Result<Vec<u8>, ReceiptError> {
            match param(label) {
                Some(Value::Bytes(b)) => Ok(b.clone()),
                _ => Err(ReceiptError::Key(format!(
                    "COSE_Key: {name} ({label}) is missing or not a byte string"
                ))),
            }
        };
        let crv = param(-1).and_then(|v| v.as_integer()).map(i128::from);
        match &key.kty {
            KeyType::Assigned(iana::KeyType::OKP) => {
                if crv != Some(i128::from(iana::EllipticCurve::Ed25519.to_i64())) {
                    return Err(ReceiptError::Key("COSE_Key: OKP crv is not Ed25519".into()));
                }
                Self::from_bytes(Algorithm::EdDsa, &bytes_param(-2, "x")?)
            }
            KeyType::Assigned(iana::KeyType::EC2) => {
                if crv != Some(i128::from(iana::EllipticCurve::P_256.to_i64())) {
                    return Err(ReceiptError::Key("COSE_Key: EC2 crv is not P-256".into()));
                }
                let mut sec1 = vec![0x04];
                sec1.extend(bytes_param(-2, "x")?);
                sec1.extend(bytes_param(-3, "y")?);
                Self::from_bytes(Algorithm::Es256, &sec1)
            }
            other => Err(ReceiptError::Key(format!(
                "COSE_Key: kty {other:?} is neither OKP nor EC2"
            ))),
        }
    }

    /// Encodes keys as a COSE_KeySet.
    pub fn encode_key_set(keys: &[PublicKey]) -> Result<Vec<u8>, ReceiptError> {
        CoseKeySet(keys.iter().map(PublicKey::to_cose_key).collect())
            .to_vec()
            .map_err(|e| ReceiptError::malformed("COSE_KeySet", e.to_string()))
    }

    /// Decodes a COSE_KeySet of keys this crate can use.
    pub fn decode_key_set(bytes: &[u8]) -> Result<Vec<PublicKey>, ReceiptError> {
        let set = CoseKeySet::from_slice(bytes)
            .map_err(|e| ReceiptError::malformed("COSE_KeySet", e.to_string()))?;
        set.0.iter().map(PublicKey::from_cose_key).collect()
    }
}

/// Something that signs COSE to-be-signed bytes: the receipt crate never sees where the
/// private key lives.
pub trait ReceiptSigner: Send + Sync {
    /// The public key of the signature (also gives the algorithm and kid).
    fn public_key(&self) -> PublicKey;
    /// The signature over `message` (Ed25519: 64 bytes; ES256: r || s, 64 bytes).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ReceiptError>;
}

/// An in-memory private key of either algorithm.
#[derive(Clone)]
pub enum SecretKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// P-256.
    Es256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for SecretKey {
    // Never print the private half.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SecretKey")
            .field(&self.public_key().to_text())
            .finish()
    }
}

impl SecretKey {
    /// A key from 32 secret bytes: the Ed25519 seed, or the P-256 scalar (which must be
    /// non-zero and below the group order).
    pub fn from_bytes(algorithm: Algorithm, secret: &[u8; 32]) -> Result<Self, ReceiptError> {
        match algorithm {
            Algorithm::EdDsa => Ok(Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(secret))),
            Algorithm::Es256 => p256::ecdsa::SigningKey::from_slice(secret)
                .map(Self::Es256)
                .map_err(|_| ReceiptError::Key("not a valid P-256 scalar".into())),
        }
    }

    /// The 32 secret bytes [`SecretKey::from_bytes`] reads.
    pub fn to_bytes(&self) -> [u8; 32] {
        match self {
            Self::Ed25519(key) => key.to_bytes(),
            Self::Es256(key) => key.to_bytes().into(),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Ed25519(_) => Algorithm::EdDsa,
            Self::Es256(_) => Algorithm::Es256,
        }
    }

    /// Secret text form `<ed25519|es256>:<base64 secret bytes>`.
    pub fn to_secret_text(&self) -> String {
        format!(
            "{}:{}",
            self.algorithm().name(),
            STANDARD.encode(self.to_bytes())
        )
    }

    /// Reads [`SecretKey::to_secret_text`].
    pub fn from_secret_text(text: &str) -> Result<Self, ReceiptError> {
        let (name, b64) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| ReceiptError::Key("expected <ed25519|es256>:<base64 secret>".into()))?;
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| ReceiptError::Key("the secret key is not base64".into()))?;
        let secret: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ReceiptError::Key("a secret key is 32 bytes".into()))?;
        Self::from_bytes(Algorithm::from_name(name)?, &secret)
    }
}

impl ReceiptSigner for SecretKey {
    fn public_key(&self) -> PublicKey {
        match self {
            Self::Ed25519(key) => PublicKey::Ed25519(key.verifying_key()),
            Self::Es256(key) => PublicKey::Es256(*key.verifying_key()),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ReceiptError> {
        match self {
            Self::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                Ok(key.sign(message).to_bytes().to_vec())
            }
            Self::Es256(key) => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = key
                    .try_sign(message)
                    .map_err(|e| ReceiptError::Signing(e.to_string()))?;
                Ok(signature.to_bytes().to_vec())
            }
        }
    }
}
