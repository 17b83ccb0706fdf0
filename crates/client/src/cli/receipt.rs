//! `merklog prove --format cose`: fetches the entry's COSE receipt, verifies it, writes
//! it.

use std::path::{Path, PathBuf};

use merklog_merkle::{Hash, LeafIndex};
use merklog_receipt::PublicKey;
use serde_json::json;

use super::ProveArgs;
use super::context::{Context, finish};
use super::output::{checkpoint_json, write_verified};
use crate::{ClientError, ReceiptLeaf};

/// A receipt key file is one line of text.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// `--receipt-key`: the key text itself, or a file holding it.
pub(super) fn pinned_key(spec: &str) -> Result<PublicKey, ClientError> {
    if let Ok(key) = PublicKey::from_text(spec) {
        return Ok(key);
    }
    let text = super::input::read_file(Path::new(spec), MAX_KEY_FILE_LEN)?;
    let text = String::from_utf8_lossy(&text);
    PublicKey::from_text(&text).map_err(|e| {
        ClientError::Input(format!(
            "--receipt-key {spec:?}: neither a key (ed25519:<base64> or es256:<base64>) nor a \
             file holding one: {e}"
        ))
    })
}

pub(super) async fn prove_cose(
    context: &Context,
    args: ProveArgs,
    leaf_hash: Option<Hash>,
) -> Result<(), ClientError> {
    let pinned = args.receipt_key.as_deref().map(pinned_key).transpose()?;
    let leaf = match (leaf_hash, args.index) {
        (Some(hash), _) => ReceiptLeaf::Hash(hash),
        (None, Some(index)) => ReceiptLeaf::Index(LeafIndex(index)),
        (None, None) => {
            return Err(ClientError::Input(
                "name the entry: INDEX, --hash or --entry".into(),
            ));
        }
    };
    let mut client = context.connect().await?;
    let result = client.cose_receipt(leaf, pinned.as_ref()).await;
    let receipt = finish(&mut client, result)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.cose", receipt.index.0)));
    let key_note = if receipt.key_pinned {
        format!("pinned receipt key {}", receipt.key.to_text())
    } else {
        format!(
            "receipt key {} as served (unpinned: pass --receipt-key to pin it)",
            receipt.key.to_text()
        )
    };
    let verified = format!(
        "entry {} (leaf hash {}) is in {}: COSE receipt verified with the {key_note}",
        receipt.index.0,
        receipt.leaf_hash,
        receipt.checkpoint.summary(),
    );
    let mut value = checkpoint_json(&receipt.checkpoint);
    value["index"] = json!(receipt.index.0);
    value["leaf_hash"] = json!(receipt.leaf_hash.to_string());
    value["receipt_key"] = json!(receipt.key.to_text());
    value["receipt_key_pinned"] = json!(receipt.key_pinned);
    write_verified(
        context.json,
        &out,
        &receipt.bytes,
        &verified,
        value,
        "receipt_file",
    )?;
    Ok(())
}
