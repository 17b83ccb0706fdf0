//! COSE receipts (RFC 9942) from `GetReceipt`, verified before they are handed out:
//! the checkpoint with the log key, the receipt's proof against the checkpoint's root,
//! and its signature with the receipt key (pinned by the caller, or the one the server
//! sends, which the answer reports as unpinned).

use bytes::Bytes;
use merklog_merkle::{Hash, LeafIndex, hash_leaf};
use merklog_note::SignedCheckpoint;
use merklog_proto::v1;
use merklog_receipt::{PublicKey, Receipt, SignedTreeHead};

use crate::client::call;
use crate::{Client, ClientError};

/// A verified COSE receipt.
#[derive(Debug, Clone)]
pub struct CoseReceipt {
    /// The entry's index.
    pub index: LeafIndex,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
    /// The tagged COSE_Sign1, as served.
    pub bytes: Bytes,
    /// The verified checkpoint whose root the receipt signs.
    pub checkpoint: SignedCheckpoint,
    /// The key that verified the receipt's signature.
    pub key: PublicKey,
    /// True if that key was pinned by the caller, false if taken from the answer.
    pub key_pinned: bool,
}

/// Which entry.
#[derive(Debug, Clone, Copy)]
pub enum ReceiptLeaf {
    /// By index (the client downloads the entry to hash it).
    Index(LeafIndex),
    /// By RFC 6962 leaf hash.
    Hash(Hash),
}

/// The key a receipt is verified with: the pinned one, which the server must name,
/// or else the one it sends.
fn receipt_key(served: &[u8], pinned: Option<&PublicKey>) -> Result<PublicKey, ClientError> {
    let served = PublicKey::from_cose_key_bytes(served)
        .map_err(|e| ClientError::Malformed(format!("receipt_key: {e}")))?;
    match pinned {
        Some(pinned) if *pinned != served => Err(ClientError::WrongKey(format!(
            "the server's receipt key {} is not the pinned receipt key {}",
            served.to_text(),
            pinned.to_text()
        ))),
        _ => Ok(served),
    }
}

impl Client {
    /// Fetches and verifies the COSE receipt of an entry at the latest checkpoint.
    /// With `pinned`, the receipt must verify with that key and the server must name
    /// it; without, the key the server sends is used.
    pub async fn cose_receipt(
        &mut self,
        leaf: ReceiptLeaf,
        pinned: Option<&PublicKey>,
    ) -> Result<CoseReceipt, ClientError> {
        let wire_leaf = match leaf {
            ReceiptLeaf::Index(index) => v1::get_receipt_request::Leaf::Index(index.0),
            ReceiptLeaf::Hash(hash) => {
                v1::get_receipt_request::Leaf::LeafHash(Bytes::copy_from_slice(hash.as_bytes()))
            }
        };
        let response = call(
            "GetReceipt",
            &self.server,
            self.options.request_timeout,
            self.rpc.get_receipt(v1::GetReceiptRequest {
                leaf: Some(wire_leaf),
                tree_size: None,
            }),
        )
        .await?;
        let Some(wire) = response.checkpoint else {
            return Err(ClientError::Malformed(
                "a receipt came without its checkpoint".into(),
            ));
        };
        let checkpoint = self.trust.open_wire(wire)?;
        self.observe(&checkpoint, true).await?;
        let index = LeafIndex(response.index);
        let leaf_hash = match leaf {
            ReceiptLeaf::Index(asked) => {
                if asked != index {
                    return Err(ClientError::Malformed(format!(
                        "asked for the receipt of entry {}, got entry {}",
                        asked.0, index.0
                    )));
                }
                hash_leaf(&self.entry(index).await?)
            }
            ReceiptLeaf::Hash(hash) => hash,
        };
        let key = receipt_key(&response.receipt_key, pinned)?;
        let key_pinned = pinned.is_some();
        let receipt = Receipt::parse(&response.receipt)
            .map_err(|e| ClientError::Malformed(format!("receipt of entry {}: {e}", index.0)))?;
        let verified = receipt
            .verify(&leaf_hash, &key)
            .map_err(|e| ClientError::Malformed(format!("receipt of entry {}: {e}", index.0)))?;
        if verified.leaf_index != index
            || verified.tree_size != checkpoint.size()
            || verified.root != checkpoint.root()
        {
            return Err(ClientError::Malformed(format!(
                "the receipt proves entry {} at size {} with root {}, but the answer is entry \
                 {} in {}",
                verified.leaf_index.0,
                verified.tree_size.0,
                verified.root,
                index.0,
                checkpoint.summary()
            )));
        }
        Ok(CoseReceipt {
            index,
            leaf_hash,
            bytes: response.receipt,
            checkpoint,
            key,
            key_pinned,
        })
    }
}

impl Client {
    /// The receipt key and the receipt-signed tree head of `checkpoint` (already
    /// verified): one receipt is fetched for `entry` at `index`, at the checkpoint's
    /// size, and verified; every other receipt at that size reuses its signature.
    pub async fn receipt_tree_head(
        &mut self,
        checkpoint: &SignedCheckpoint,
        index: LeafIndex,
        entry: &[u8],
        pinned: Option<&PublicKey>,
    ) -> Result<(PublicKey, SignedTreeHead), ClientError> {
        let response = call(
            "GetReceipt",
            &self.server,
            self.options.request_timeout,
            self.rpc.get_receipt(v1::GetReceiptRequest {
                leaf: Some(v1::get_receipt_request::Leaf::Index(index.0)),
                tree_size: Some(checkpoint.size().0),
            }),
        )
        .await?;
        let key = receipt_key(&response.receipt_key, pinned)?;
        let receipt = Receipt::parse(&response.receipt)
            .map_err(|e| ClientError::Malformed(format!("receipt of entry {}: {e}", index.0)))?;
        let (verified, head) = receipt
            .verified_tree_head(&hash_leaf(entry), &key)
            .map_err(|e| ClientError::Malformed(format!("receipt of entry {}: {e}", index.0)))?;
        if verified.leaf_index != index
            || verified.tree_size != checkpoint.size()
            || verified.root != checkpoint.root()
        {
            return Err(ClientError::Malformed(format!(
                "asked for the receipt of entry {} in {}, got one of entry {} at size {} with \
                 root {}",
                index.0,
                checkpoint.summary(),
                verified.leaf_index.0,
                verified.tree_size.0,
                verified.root
            )));
        }
        Ok((key, head))
    }
}
