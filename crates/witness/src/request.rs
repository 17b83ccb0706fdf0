//! Strict parsing of the `add-checkpoint` request body (C2SP tlog-witness,
//! "add-checkpoint").
//!
//! The body is an old size line, zero to [`MAX_PROOF_LINES`] base64 consistency proof
//! lines, one empty line, then a signed checkpoint note. This module only splits and
//! decodes the framing; the note itself is parsed by `merklog-note`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use merklog_merkle::Hash;

use crate::error::WitnessError;

/// Largest body the HTTP layer accepts (enforced before buffering).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Most consistency proof lines a client may send (the spec's limit).
pub const MAX_PROOF_LINES: usize = 63;

/// Length of one base64-encoded 32-byte hash, padding included.
const BASE64_HASH_LEN: usize = 44;

/// A syntactically valid `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// The size of the checkpoint the client believes the witness last cosigned.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, byte for byte as received (not yet parsed).
    pub checkpoint: Vec<u8>,
}

/// Parses an `add-checkpoint` body. Rejects leading zeros, non-canonical base64,
/// hashes that are not 32 bytes, more than 63 proof lines, `\r`, and an empty
/// checkpoint. Never panics.
pub fn parse_add_checkpoint(body: &[u8]) -> Result<AddCheckpointRequest, WitnessError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WitnessError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let (first, mut rest) = split_line(body).ok_or(WitnessError::MissingOldSize)?;
    let size_text = first
        .strip_prefix(b"old ")
        .ok_or(WitnessError::MissingOldSize)?;
    let old_size = parse_decimal(size_text)?;

    let mut proof = Vec::new();
    loop {
        let (line, after) = split_line(rest).ok_or(WitnessError::MissingEmptyLine)?;
        rest = after;
        if line.is_empty() {
            break;
        }
        if proof.len() >= MAX_PROOF_LINES {
            return Err(WitnessError::TooManyProofLines {
                limit: MAX_PROOF_LINES,
            });
        }
        proof.push(parse_hash_line(line, proof.len())?);
    }
    if rest.is_empty() {
        return Err(WitnessError::MissingCheckpoint);
    }
    Ok(AddCheckpointRequest {
        old_size,
        proof,
        checkpoint: rest.to_vec(),
    })
}

/// Splits off one `\n`-terminated line (without its terminator).
fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    let line = bytes.get(..end)?;
    let rest = bytes.get(end.checked_add(1)?..)?;
    Some((line, rest))
}

/// An ASCII canonical decimal u64 (C2SP text grammar).
pub(crate) fn parse_decimal(text: &[u8]) -> Result<u64, WitnessError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(merklog_note::grammar::parse_decimal)
        .ok_or_else(|| WitnessError::BadOldSize(String::from_utf8_lossy(text).into_owned()))
}

fn parse_hash_line(line: &[u8], index: usize) -> Result<Hash, WitnessError> {
    let bad = || WitnessError::BadProofLine { index };
    // Checking the length first bounds the decoder's work and rules out
    // whitespace or a missing padding character.
    if line.len() != BASE64_HASH_LEN {
        return Err(bad());
    }
    // The standard engine rejects non-zero trailing bits, so every hash has exactly
    // one accepted encoding.
    let bytes = STANDARD.decode(line).map_err(|_| bad())?;
    Hash::try_from(bytes.as_slice()).map_err(|_| bad())
}

/// Encodes a request body (re-exported from `merklog-note`, which the log side uses).
pub use merklog_note::encode_add_checkpoint;

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &[u8] = b"example.com/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\xe2\x80\x94 k AAAA\n";

    #[test]
    fn round_trip() {
        let proof: Vec<Hash> = vec![[1u8; 32].into(), [0xffu8; 32].into()];
        let body = encode_add_checkpoint(20852014, &proof, NOTE);
        let parsed = parse_add_checkpoint(&body).unwrap();
        assert_eq!(parsed.old_size, 20852014);
        assert_eq!(parsed.proof, proof);
        assert_eq!(parsed.checkpoint, NOTE);
    }

    #[test]
    fn old_zero_and_empty_proof() {
        let body = encode_add_checkpoint(0, &[], NOTE);
        assert_eq!(&body[..7], b"old 0\n\n");
        let parsed = parse_add_checkpoint(&body).unwrap();
        assert_eq!(parsed.old_size, 0);
        assert!(parsed.proof.is_empty());
    }

    #[test]
    fn rejects_bad_old_lines() {
        for first in [
            &b"old 01\n"[..],
            b"old 00\n",
            b"old -1\n",
            b"old +1\n",
            b"old \n",
            b"old  1\n",
            b"old 1 \n",
            b"old 1\r\n",
            b"Old 1\n",
            b"old 18446744073709551616\n",
            b"old 1",
            b"\n",
        ] {
            let mut body = first.to_vec();
            body.extend_from_slice(b"\n");
            body.extend_from_slice(NOTE);
            assert!(
                parse_add_checkpoint(&body).is_err(),
                "{:?}",
                String::from_utf8_lossy(first)
            );
        }
        let max = format!("old {}\n\n", u64::MAX).into_bytes();
        let mut body = max;
        body.extend_from_slice(NOTE);
        assert_eq!(parse_add_checkpoint(&body).unwrap().old_size, u64::MAX);
    }

    #[test]
    fn rejects_bad_proof_lines() {
        let good = STANDARD.encode([7u8; 32]);
        let cases = [
            good.trim_end_matches('=').to_string(), // missing padding
            format!("{good} "),                     // trailing space
            format!("{good}\r"),                    // CRLF
            STANDARD.encode([7u8; 31]),             // 31 bytes
            STANDARD.encode([7u8; 33]),             // 33 bytes
            format!("{}B=", &good[..42]),           // non-zero trailing bits
            good.replace('B', "-"),                 // URL alphabet
        ];
        for line in cases {
            let body = format!("old 1\n{line}\n\n");
            let mut body = body.into_bytes();
            body.extend_from_slice(NOTE);
            assert!(
                matches!(
                    parse_add_checkpoint(&body),
                    Err(WitnessError::BadProofLine { index: 0 })
                ),
                "{line:?}"
            );
        }
    }

    #[test]
    fn proof_line_limit() {
        let proof = vec![Hash::from_bytes([3u8; 32]); MAX_PROOF_LINES];
        let body = encode_add_checkpoint(5, &proof, NOTE);
        assert_eq!(parse_add_checkpoint(&body).unwrap().proof.len(), 63);
        let proof = vec![Hash::from_bytes([3u8; 32]); MAX_PROOF_LINES + 1];
        let body = encode_add_checkpoint(5, &proof, NOTE);
        assert!(matches!(
            parse_add_checkpoint(&body),
            Err(WitnessError::TooManyProofLines { limit: 63 })
        ));
    }

    #[test]
    fn rejects_missing_parts() {
        assert!(matches!(
            parse_add_checkpoint(b""),
            Err(WitnessError::MissingOldSize)
        ));
        assert!(matches!(
            parse_add_checkpoint(b"old 1\n"),
            Err(WitnessError::MissingEmptyLine)
        ));
        assert!(matches!(
            parse_add_checkpoint(b"old 1\n\n"),
            Err(WitnessError::MissingCheckpoint)
        ));
        let too_big = vec![b'a'; MAX_BODY_BYTES + 1];
        assert!(matches!(
            parse_add_checkpoint(&too_big),
            Err(WitnessError::TooLarge { .. })
        ));
    }
}
