//! Inclusion receipts (RFC 9942 with the RFC9162_SHA256 verifiable data structure).
//!
//! A receipt is `18([protected, unprotected, nil, signature])` with
//! - protected: `{1: alg, 4: kid, 395: 1}` (alg -8 or -7; vds 1 = RFC9162_SHA256);
//! - unprotected: `{396: {-1: [bstr .cbor [tree_size, leaf_index, [+ bstr]]]}}`;
//! - payload nil (detached): the signature is over the RFC 9052 Sig_structure
//!   `["Signature1", protected, h'', root]`, where `root` is the RFC 9162 root of the
//!   tree of `tree_size` leaves.
//!
//! Nothing leaf-specific is signed, so one signature per tree head serves every
//! receipt at that size: [`SignedTreeHead`] signs once and assembles receipts.

use coset::cbor::value::Value;
use coset::{
    CborSerializable as _, CoseSign1, CoseSign1Builder, Header, HeaderBuilder, Label,
    ProtectedHeader, TaggedCborSerializable as _,
};
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf, root_from_inclusion_proof};

use crate::key::{Algorithm, PublicKey, ReceiptSigner};
use crate::{ReceiptError, decode_value, hex};

/// Header label of the verifiable data structure (`vds`), protected.
pub const HEADER_VDS: i64 = 395;
/// Header label of the verifiable data proofs (`vdp`), unprotected.
pub const HEADER_VDP: i64 = 396;
/// `vds` value of RFC 9162 SHA-256 Merkle trees.
pub const VDS_RFC9162_SHA256: i64 = 1;
/// Key of the inclusion proofs inside the `vdp` map.
pub const INCLUSION_PROOFS: i64 = -1;
/// Longest audit path accepted (a tree of 2^64 leaves needs at most 64).
pub const MAX_PROOF_HASHES: usize = 64;

const WHAT: &str = "receipt";

/// One RFC 9162 inclusion proof as a receipt carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// Leaves in the tree the proof is against.
    pub tree_size: u64,
    /// The leaf's index.
    pub leaf_index: u64,
    /// The audit path, leaf level first.
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// `[tree_size, leaf_index, [+ bstr]]` encoded as CBOR.
    fn encode(&self) -> Result<Vec<u8>, ReceiptError> {
        let value = Value::Array(vec![
            Value::from(self.tree_size),
            Value::from(self.leaf_index),
            Value::Array(
                self.path
                    .iter()
                    .map(|h| Value::Bytes(h.as_bytes().to_vec()))
                    .collect(),
            ),
        ]);
        let mut out = Vec::new();
        coset::cbor::ser::into_writer(&value, &mut out)
            .map_err(|e| ReceiptError::malformed(WHAT, format!("encoding the proof: {e}")))?;
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let bad =
            |reason: &str| ReceiptError::malformed(WHAT, format!("inclusion proof: {reason}"));
        let value = decode_value(bytes).map_err(|e| bad(&e))?;
        let Value::Array(items) = value else {
            return Err(bad("not an array"));
        };
        let [size, index, Value::Array(path)] = items.as_slice() else {
            return Err(bad("not [tree-size, leaf-index, inclusion-path]"));
        };
        let uint = |v: &Value, name: &str| -> Result<u64, ReceiptError> {
            v.as_integer()
                .and_then(|i| u64::try_from(i).ok())
                .ok_or_else(|| bad(&format!("{name} is not an unsigned integer")))
        };
        if path.len() > MAX_PROOF_HASHES {
            return Err(bad(&format!(
                "{} path hashes, more than {MAX_PROOF_HASHES}",
                path.len()
            )));
        }
        let path = path
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Bytes(b) => Hash::try_from(b.as_slice())
                    .map_err(|_| bad(&format!("path[{i}] is {} bytes, not 32", b.len()))),
                _ => Err(bad(&format!("path[{i}] is not a byte string"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            tree_size: uint(size, "tree-size")?,
            leaf_index: uint(index, "leaf-index")?,
            path,
        })
    }

    /// The root this proof leads to from `leaf`.
    pub fn root(&self, leaf: &Hash) -> Result<Hash, ReceiptError> {
        root_from_inclusion_proof(
            leaf,
            LeafIndex(self.leaf_index),
            TreeSize(self.tree_size),
            &self.path,
        )
        .map_err(|e| ReceiptError::Proof {
            tree_size: self.tree_size,
            leaf_index: self.leaf_index,
            reason: e.to_string(),
        })
    }
}

/// The protected header of every receipt signed by `key`.
fn protected_header(key: &PublicKey) -> ProtectedHeader {
    ProtectedHeader {
        original_data: None,
        header: HeaderBuilder::new()
            .algorithm(key.algorithm().iana())
            .key_id(key.key_id())
            .value(HEADER_VDS, Value::from(VDS_RFC9162_SHA256))
            .build(),
    }
}

/// A tree root signed once for receipts: every receipt at this size reuses it.
#[derive(Clone, Debug)]
pub struct SignedTreeHead {
    tree_size: TreeSize,
    root: Hash,
    /// The COSE_Sign1 with the protected header and signature, no `vdp` yet.
    template: CoseSign1,
}

impl SignedTreeHead {
    /// Signs `root`, the root of the tree of `tree_size` leaves.
    pub fn sign(
        signer: &dyn ReceiptSigner,
        tree_size: TreeSize,
        root: Hash,
    ) -> Result<Self, ReceiptError> {
        let template = CoseSign1Builder::new()
            .protected(protected_header(&signer.public_key()).header)
            .try_create_detached_signature(root.as_bytes(), b"", |tbs| signer.sign(tbs))?
            .build();
        Ok(Self {
            tree_size,
            root,
            template,
        })
    }

    /// The tree size signed.
    pub fn tree_size(&self) -> TreeSize {
        self.tree_size
    }

    /// The root signed.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The receipt of the leaf with hash `leaf` at `leaf_index`, whose audit path in
    /// this tree is `path`. The proof is checked against the signed root first, so a
    /// receipt that would not verify is never produced.
    pub fn receipt(
        &self,
        leaf: &Hash,
        leaf_index: LeafIndex,
        path: &[Hash],
    ) -> Result<Vec<u8>, ReceiptError> {
        let proof = InclusionProof {
            tree_size: self.tree_size.0,
            leaf_index: leaf_index.0,
            path: path.to_vec(),
        };
        let computed = proof.root(leaf)?;
        if computed != self.root {
            return Err(ReceiptError::Proof {
                tree_size: proof.tree_size,
                leaf_index: proof.leaf_index,
                reason: format!(
                    "leads to root {computed}, not the signed root {}",
                    self.root
                ),
            });
        }
        let mut sign1 = self.template.clone();
        sign1.unprotected = Header {
            rest: vec![(
                Label::Int(HEADER_VDP),
                Value::Map(vec![(
                    Value::from(INCLUSION_PROOFS),
                    Value::Array(vec![Value::Bytes(proof.encode()?)]),
                )]),
            )],
            ..Header::default()
        };
        sign1
            .to_tagged_vec()
            .map_err(|e| ReceiptError::malformed(WHAT, format!("encoding: {e}")))
    }
}

impl SignedTreeHead {
    /// Checks a receipt against this (already verified) tree head: its proof must
    /// lead from `leaf` to the signed root at the signed size, and it must carry the
    /// very bytes that were signed and the very signature. That is what
    /// [`Receipt::verify`] establishes, one signature check cheaper.
    pub fn check(&self, receipt: &Receipt, leaf: &Hash) -> Result<VerifiedReceipt, ReceiptError> {
        let proof = &receipt.proof;
        let root = proof.root(leaf)?;
        let signed = |sign1: &CoseSign1| sign1.tbs_detached_data(self.root.as_bytes(), b"");
        if proof.tree_size != self.tree_size.0
            || root != self.root
            || receipt.sign1.signature != self.template.signature
            || signed(&receipt.sign1) != signed(&self.template)
        {
            return Err(ReceiptError::ReceiptSignature {
                leaf: *leaf,
                leaf_index: proof.leaf_index,
                tree_size: proof.tree_size,
                root,
            });
        }
        Ok(VerifiedReceipt {
            tree_size: self.tree_size,
            leaf_index: LeafIndex(proof.leaf_index),
            root,
        })
    }
}

/// A parsed receipt (not yet verified).
#[derive(Clone, Debug)]
pub struct Receipt {
    sign1: CoseSign1,
    algorithm: Algorithm,
    key_id: Vec<u8>,
    proof: InclusionProof,
}

/// What a verified receipt proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The tree size the receipt is against.
    pub tree_size: TreeSize,
    /// The leaf's index.
    pub leaf_index: LeafIndex,
    /// The signed root.
    pub root: Hash,
}

/// Parses a COSE_Sign1, tagged (18) or not.
pub(crate) fn parse_sign1(what: &'static str, bytes: &[u8]) -> Result<CoseSign1, ReceiptError> {
    CoseSign1::from_tagged_slice(bytes)
        .or_else(|_| CoseSign1::from_slice(bytes))
        .map_err(|e| ReceiptError::malformed(what, format!("not a COSE_Sign1: {e}")))
}

/// Refuses critical headers: none is defined for receipts or statements here, and an
/// understood-or-reject list cannot be honoured otherwise.
pub(crate) fn refuse_crit(what: &'static str, header: &Header) -> Result<(), ReceiptError> {
    if header.crit.is_empty() {
        Ok(())
    } else {
        Err(ReceiptError::malformed(
            what,
            "crit (label 2) names headers this verifier does not process",
        ))
    }
}

fn find(header: &Header, label: i64) -> Option<&Value> {
    header
        .rest
        .iter()
        .find(|(l, _)| *l == Label::Int(label))
        .map(|(_, v)| v)
}

impl Receipt {
    /// Parses and checks the structure: algorithm, `vds` = 1 in the protected header,
    /// exactly one inclusion proof under `vdp`, a detached payload.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let sign1 = parse_sign1(WHAT, bytes)?;
        let protected = &sign1.protected.header;
        refuse_crit(WHAT, protected)?;
        let algorithm = Algorithm::from_header(protected.alg.as_ref())?;
        match find(protected, HEADER_VDS).and_then(Value::as_integer) {
            Some(v) if i128::from(v) == i128::from(VDS_RFC9162_SHA256) => {}
            Some(v) => {
                return Err(ReceiptError::malformed(
                    WHAT,
                    format!("vds (395) is {}, not 1 (RFC9162_SHA256)", i128::from(v)),
                ));
            }
            None => {
                return Err(ReceiptError::malformed(
                    WHAT,
                    "the protected header has no integer vds (395)",
                ));
            }
        }
        if find(protected, HEADER_VDP).is_some() {
            return Err(ReceiptError::malformed(
                WHAT,
                "vdp (396) belongs in the unprotected header",
            ));
        }
        if sign1.payload.is_some() {
            return Err(ReceiptError::malformed(
                WHAT,
                "the payload must be detached (nil): it is the tree root",
            ));
        }
        let Some(Value::Map(vdp)) = find(&sign1.unprotected, HEADER_VDP) else {
            return Err(ReceiptError::malformed(
                WHAT,
                "the unprotected header has no vdp (396) map",
            ));
        };
        let proofs = vdp
            .iter()
            .find(|(k, _)| {
                k.as_integer()
                    .is_some_and(|k| i128::from(k) == i128::from(INCLUSION_PROOFS))
            })
            .map(|(_, v)| v);
        let proof = match proofs {
            Some(Value::Array(list)) => match list.as_slice() {
                [Value::Bytes(proof)] => InclusionProof::decode(proof)?,
                _ => {
                    return Err(ReceiptError::malformed(
                        WHAT,
                        "vdp -1 must hold exactly one inclusion proof byte string",
                    ));
                }
            },
            _ => {
                return Err(ReceiptError::malformed(
                    WHAT,
                    "vdp has no inclusion proofs array (-1)",
                ));
            }
        };
        Ok(Self {
            key_id: protected.key_id.clone(),
            algorithm,
            proof,
            sign1,
        })
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The protected `kid` (empty if absent).
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// The inclusion proof.
    pub fn proof(&self) -> &InclusionProof {
        &self.proof
    }

    /// Verifies that `leaf` (an RFC 6962 leaf hash) is in the tree the receipt's key
    /// signed: recomputes the root from the proof and checks the signature over it.
    pub fn verify(&self, leaf: &Hash, key: &PublicKey) -> Result<VerifiedReceipt, ReceiptError> {
        if key.algorithm() != self.algorithm {
            return Err(ReceiptError::Algorithm(format!(
                "the receipt is signed with {:?} but the key is {:?}",
                self.algorithm,
                key.algorithm()
            )));
        }
        if !self.key_id.is_empty() && self.key_id != key.key_id() {
            return Err(ReceiptError::KeyId {
                found: hex(&self.key_id),
                expected: hex(&key.key_id()),
            });
        }
        let root = self.proof.root(leaf)?;
        let tbs = self.sign1.tbs_detached_data(root.as_bytes(), b"");
        if !key.verify(&tbs, &self.sign1.signature) {
            return Err(ReceiptError::ReceiptSignature {
                leaf: *leaf,
                leaf_index: self.proof.leaf_index,
                tree_size: self.proof.tree_size,
                root,
            });
        }
        Ok(VerifiedReceipt {
            tree_size: TreeSize(self.proof.tree_size),
            leaf_index: LeafIndex(self.proof.leaf_index),
            root,
        })
    }

    /// Verifies the receipt for `leaf` with `key` and keeps its signed tree head, so
    /// that the other receipts at its size are checked (and assembled) without
    /// verifying the same signature again.
    pub fn verified_tree_head(
        &self,
        leaf: &Hash,
        key: &PublicKey,
    ) -> Result<(VerifiedReceipt, SignedTreeHead), ReceiptError> {
        let verified = self.verify(leaf, key)?;
        let mut template = self.sign1.clone();
        template.unprotected = Header::default();
        Ok((
            verified,
            SignedTreeHead {
                tree_size: verified.tree_size,
                root: verified.root,
                template,
            },
        ))
    }

    /// [`Receipt::verify`] for the entry's bytes (hashed as an RFC 6962 leaf).
    pub fn verify_entry(
        &self,
        entry: &[u8],
        key: &PublicKey,
    ) -> Result<VerifiedReceipt, ReceiptError> {
        self.verify(&hash_leaf(entry), key)
    }
}
