//! Verifying many envelopes at once, for ingest.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::{Event, EventError, SourceKey};

/// The envelope that failed in a batch, by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFailure {
    /// Position of the first failing envelope in the input.
    pub index: usize,
    /// Why it failed.
    pub error: EventError,
}

/// Verifies every `(event, key)` pair. One multi-scalar check covers the whole batch
/// (several times cheaper per signature than one check each); only when it fails are the
/// events checked one by one, to name the first bad one.
///
/// Batch and single verification accept the same honest signatures. A key holder who
/// crafts a signature with a small-order component on purpose may see it pass the batch
/// check and fail a strict single check; [`Event::verify`] (what auditors run) then
/// reports it, and the log holds the key holder's own malformed, attributable event.
/// Small-order `R` values are refused before the batch for the same reason. A single
/// event gets the strict check alone, which is cheaper than a batch of one.
pub fn verify_batch(items: &[(&Event, &SourceKey)]) -> Result<(), BatchFailure> {
    let fail = |index: usize, error: EventError| BatchFailure { index, error };
    if let [(event, key)] = items {
        return event.verify(key).map_err(|error| fail(0, error));
    }
    let mut messages = Vec::with_capacity(items.len());
    let mut signatures: Vec<Signature> = Vec::with_capacity(items.len());
    let mut keys: Vec<VerifyingKey> = Vec::with_capacity(items.len());
    for (index, (event, key)) in items.iter().enumerate() {
        key.check_names(event).map_err(|error| fail(index, error))?;
        let signature = event.dalek_signature();
        if r_is_small_order(&signature) {
            return Err(fail(index, event.bad_signature()));
        }
        messages.push(event.signed_message());
        signatures.push(signature);
        keys.push(key.key);
    }
    let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    if ed25519_dalek::verify_batch(&message_refs, &signatures, &keys).is_ok() {
        return Ok(());
    }
    for (index, (event, key)) in items.iter().enumerate() {
        event.verify(key).map_err(|error| fail(index, error))?;
    }
    // The batch failed yet each signature verifies alone: refuse the whole batch rather
    // than accept on a disagreement; the first event stands for it.
    Err(fail(
        0,
        items.first().map_or_else(
            || EventError::InvalidField {
                field: "batch",
                reason: "empty".to_owned(),
            },
            |(event, _)| event.bad_signature(),
        ),
    ))
}

fn r_is_small_order(signature: &Signature) -> bool {
    let r = curve25519_dalek::edwards::CompressedEdwardsY(*signature.r_bytes());
    match r.decompress() {
        Some(point) => point.is_small_order(),
        None => true,
    }
}
