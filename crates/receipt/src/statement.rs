//! SCITT signed statements (RFC 9943 section 6): a COSE_Sign1 whose protected header
//! carries CWT claims (label 15, RFC 9597) with the issuer (`iss`, claim 1) and the
//! subject (`sub`, claim 2), and an attached payload.

use coset::{
    AsCborValue as _, CoseSign1, CoseSign1Builder, HeaderBuilder, Label,
    TaggedCborSerializable as _,
};

use crate::ReceiptError;
use crate::key::{Algorithm, PublicKey, ReceiptSigner};
use crate::receipt::{parse_sign1, refuse_crit};
use coset::cwt::{ClaimsSet, ClaimsSetBuilder};

/// Header label of CWT claims.
pub const HEADER_CWT_CLAIMS: i64 = 15;

const WHAT: &str = "signed statement";

/// A parsed signed statement (signature not yet checked).
#[derive(Clone, Debug)]
pub struct SignedStatement {
    sign1: CoseSign1,
    algorithm: Algorithm,
    issuer: String,
    subject: String,
}

impl SignedStatement {
    /// Parses a COSE_Sign1 (tagged or not) and reads its algorithm, issuer and subject.
    /// The payload must be attached: the log keeps what it can verify.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let sign1 = parse_sign1(WHAT, bytes)?;
        let protected = &sign1.protected.header;
        refuse_crit(WHAT, protected)?;
        let algorithm = Algorithm::from_header(protected.alg.as_ref())?;
        let claims = protected
            .rest
            .iter()
            .find(|(l, _)| *l == Label::Int(HEADER_CWT_CLAIMS))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                ReceiptError::malformed(WHAT, "the protected header has no CWT claims (15)")
            })?;
        let claims = ClaimsSet::from_cbor_value(claims)
            .map_err(|e| ReceiptError::malformed(WHAT, format!("CWT claims (15): {e}")))?;
        let issuer = claims
            .issuer
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ReceiptError::malformed(WHAT, "CWT claims have no iss (1)"))?;
        let subject = claims
            .subject
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ReceiptError::malformed(WHAT, "CWT claims have no sub (2)"))?;
        if sign1.payload.is_none() {
            return Err(ReceiptError::malformed(
                WHAT,
                "the payload is detached (nil); register statements with their payload",
            ));
        }
        Ok(Self {
            sign1,
            algorithm,
            issuer,
            subject,
        })
    }

    /// The `iss` claim.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        self.sign1.payload.as_deref().unwrap_or_default()
    }

    /// Checks the signature with the issuer's registered key.
    pub fn verify(&self, key: &PublicKey) -> Result<(), ReceiptError> {
        if key.algorithm() != self.algorithm {
            return Err(ReceiptError::Algorithm(format!(
                "the statement is signed with {:?} but issuer {:?} has a {:?} key",
                self.algorithm,
                self.issuer,
                key.algorithm()
            )));
        }
        self.sign1.verify_signature(b"", |signature, tbs| {
            if key.verify(tbs, signature) {
                Ok(())
            } else {
                Err(ReceiptError::StatementSignature {
                    issuer: self.issuer.clone(),
                })
            }
        })
    }
}

/// Signs a statement: tagged COSE_Sign1, protected `{1: alg, 3: content_type, 4: kid,
/// 15: {1: issuer, 2: subject}}`, attached payload.
pub fn sign_statement(
    signer: &dyn ReceiptSigner,
    issuer: &str,
    subject: &str,
    content_type: &str,
    payload: &[u8],
) -> Result<Vec<u8>, ReceiptError> {
    let key = signer.public_key();
    let claims = ClaimsSetBuilder::new()
        .issuer(issuer.to_owned())
        .subject(subject.to_owned())
        .build()
        .to_cbor_value()
        .map_err(|e| ReceiptError::malformed(WHAT, e.to_string()))?;
    let protected = HeaderBuilder::new()
        .algorithm(key.algorithm().iana())
        .content_type(content_type.to_owned())
        .key_id(key.key_id())
        .value(HEADER_CWT_CLAIMS, claims)
        .build();
    CoseSign1Builder::new()
        .protected(protected)
        .payload(payload.to_vec())
        .try_create_signature(b"", |tbs| signer.sign(tbs))?
        .build()
        .to_tagged_vec()
        .map_err(|e| ReceiptError::malformed(WHAT, e.to_string()))
}
