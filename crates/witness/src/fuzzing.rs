//! Fuzz target bodies, shared by the cargo-fuzz target in `fuzz/` and by the test
//! that replays the checked-in seed corpus. Not part of the API.
//!
//! Each function takes raw fuzzer bytes and panics (on purpose: that is how a fuzzer
//! reports) only when a property of this crate is violated.

use crate::request::{MAX_PROOF_LINES, encode_add_checkpoint, parse_add_checkpoint};

/// The `add-checkpoint` body parser: never panics, and whatever it accepts
/// re-encodes to exactly the input bytes (the grammar has one encoding per request:
/// canonical decimal, canonical base64, `\n` line ends).
///
/// Returns whether the input was accepted, so corpus replays can check that valid
/// seeds exist.
pub fn add_checkpoint_body(data: &[u8]) -> bool {
    let Ok(request) = parse_add_checkpoint(data) else {
        return false;
    };
    assert!(request.proof.len() <= MAX_PROOF_LINES);
    assert!(!request.checkpoint.is_empty());
    let encoded = encode_add_checkpoint(request.old_size, &request.proof, &request.checkpoint);
    assert_eq!(encoded, data, "parse/encode round trip is not byte-exact");
    true
}
