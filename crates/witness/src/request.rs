//! The `add-checkpoint` request body (C2SP tlog-witness, "add-checkpoint") as the
//! witness receives it: a size cap checked before anything else, then the grammar
//! of `merklog-note`, which also encodes the body on the log's side.

use crate::error::WitnessError;

pub use merklog_note::encode_add_checkpoint;
pub use merklog_note::grammar::{AddCheckpointRequest, MAX_PROOF_LINES};

/// Largest body the HTTP layer accepts (enforced before buffering).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Parses an `add-checkpoint` body of at most [`MAX_BODY_BYTES`]; see
/// [`merklog_note::parse_add_checkpoint`] for the grammar. Never panics.
pub fn parse_add_checkpoint(body: &[u8]) -> Result<AddCheckpointRequest, WitnessError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WitnessError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    merklog_note::parse_add_checkpoint(body).map_err(WitnessError::MalformedBody)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_comes_first_then_the_grammar() {
        let too_big = vec![b'a'; MAX_BODY_BYTES + 1];
        assert!(matches!(
            parse_add_checkpoint(&too_big),
            Err(WitnessError::TooLarge { .. })
        ));
        let error = parse_add_checkpoint(b"old 01\n\ncp").unwrap_err();
        assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(
            error.to_string(),
            "malformed add-checkpoint body: bad old size \"01\": expected a decimal without leading zeros"
        );
        let body = encode_add_checkpoint(3, &[], b"cp");
        assert_eq!(parse_add_checkpoint(&body).unwrap().old_size, 3);
    }
}
