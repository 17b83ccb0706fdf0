//! The C2SP text grammar shared by every format of this crate and by the witness
//! protocol: canonical decimals, base64 hash lines, key names, the tlog-witness
//! `add-checkpoint` request body and the body of its 409 answer. One spelling for
//! each value, so that what one party writes every other party reads the same way.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{BodyProblem, NameProblem};
use crate::{Hash, NoteError};

/// Longest key name accepted, in bytes.
pub const MAX_KEY_NAME_LEN: usize = 255;

/// Content type of the tlog-witness 409 answer, whose body is the witness's size.
pub const TLOG_SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Most consistency proof lines an `add-checkpoint` body may carry (the spec's limit).
pub const MAX_PROOF_LINES: usize = 63;

/// Length of one base64 hash line, padding included.
const BASE64_HASH_LEN: usize = 44;

/// Parses a canonical decimal u64: ASCII digits, no sign, no leading zero (`0`
/// alone is fine).
pub fn parse_decimal(text: &str) -> Option<u64> {
    merklog_merkle::tile::parse_canonical_decimal(text.as_bytes())
}

/// Decodes a hash line: canonical base64 of exactly 32 bytes.
pub fn decode_hash(text: &str) -> Option<Hash> {
    Hash::try_from(STANDARD.decode(text).ok()?.as_slice()).ok()
}

/// Encodes a hash as a base64 line (without the newline).
pub fn encode_hash(hash: &Hash) -> String {
    STANDARD.encode(hash)
}

/// Checks a key name: non-empty, at most 255 bytes, no Unicode space, no `+`,
/// no control character.
pub fn validate_key_name(name: &str) -> Result<(), NoteError> {
    let problem = if name.is_empty() {
        Some(NameProblem::Empty)
    } else if name.len() > MAX_KEY_NAME_LEN {
        Some(NameProblem::TooLong)
    } else if name.contains('+') {
        Some(NameProblem::Plus)
    } else if name.chars().any(char::is_whitespace) {
        Some(NameProblem::Space)
    } else if name.chars().any(|c| c.is_ascii_control()) {
        Some(NameProblem::ControlCharacter)
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(NoteError::InvalidKeyName {
            name: name.chars().take(MAX_KEY_NAME_LEN).collect(),
            problem,
        }),
    }
}

/// Encodes a tlog-witness `add-checkpoint` request body: `old N`, the consistency
/// proof one base64 hash per line, an empty line, the signed checkpoint.
pub fn encode_add_checkpoint(old_size: u64, proof: &[Hash], checkpoint: &[u8]) -> Vec<u8> {
    // "old " + 20 digits + newline, 45 bytes a base64 hash line, the empty line.
    let mut body = Vec::with_capacity(26 + proof.len() * 45 + 1 + checkpoint.len());
    body.extend_from_slice(format!("old {old_size}\n").as_bytes());
    for hash in proof {
        body.extend_from_slice(encode_hash(hash).as_bytes());
        body.push(b'\n');
    }
    body.push(b'\n');
    body.extend_from_slice(checkpoint);
    body
}

/// A syntactically valid tlog-witness `add-checkpoint` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// The size of the checkpoint the client believes the witness last cosigned.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, byte for byte as received (not yet parsed).
    pub checkpoint: Vec<u8>,
}

/// Parses an `add-checkpoint` body, the inverse of [`encode_add_checkpoint`]: an
/// `old N` line, zero to [`MAX_PROOF_LINES`] hash lines, an empty line, then a
/// non-empty checkpoint (its note is left to the caller). Anything else is refused,
/// `\r` and non-canonical numbers or base64 included, so every accepted body
/// re-encodes to the same bytes. Never panics.
pub fn parse_add_checkpoint(body: &[u8]) -> Result<AddCheckpointRequest, NoteError> {
    let bad = NoteError::InvalidAddCheckpoint;
    let (first, mut rest) = split_line(body).ok_or(bad(BodyProblem::MissingOldSize))?;
    let size_text = first
        .strip_prefix(b"old ")
        .ok_or(bad(BodyProblem::MissingOldSize))?;
    let old_size = std::str::from_utf8(size_text)
        .ok()
        .and_then(parse_decimal)
        .ok_or_else(|| {
            // A u64 has at most 20 digits: more of the line says nothing more.
            let shown = size_text.get(..24).unwrap_or(size_text);
            bad(BodyProblem::BadOldSize(
                String::from_utf8_lossy(shown).into_owned(),
            ))
        })?;

    let mut proof = Vec::new();
    loop {
        let (line, after) = split_line(rest).ok_or(bad(BodyProblem::MissingEmptyLine))?;
        rest = after;
        if line.is_empty() {
            break;
        }
        if proof.len() >= MAX_PROOF_LINES {
            return Err(bad(BodyProblem::TooManyProofLines {
                limit: MAX_PROOF_LINES,
            }));
        }
        // The length check first bounds the decoder's work and rules out whitespace
        // or a missing padding character; the decoder refuses non-zero trailing
        // bits, so each hash has one accepted line.
        let hash = (line.len() == BASE64_HASH_LEN)
            .then(|| std::str::from_utf8(line).ok())
            .flatten()
            .and_then(decode_hash)
            .ok_or(bad(BodyProblem::BadProofLine { index: proof.len() }))?;
        proof.push(hash);
    }
    if rest.is_empty() {
        return Err(bad(BodyProblem::MissingCheckpoint));
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
    Some((bytes.get(..end)?, bytes.get(end.checked_add(1)?..)?))
}

/// The body of a tlog-witness 409 answer: the witness's size and a newline.
pub fn encode_size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Parses the body of a tlog-witness 409 answer: a canonical decimal, then one
/// optional newline, and nothing else.
pub fn parse_size_body(body: &[u8]) -> Option<u64> {
    let digits = body.strip_suffix(b"\n").unwrap_or(body);
    merklog_merkle::tile::parse_canonical_decimal(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_checkpoint_layout_matches_the_spec_example_shape() {
        let body = encode_add_checkpoint(
            2,
            &[[0u8; 32].into(), [0xff; 32].into()],
            b"o\n3\nroot\n\n- sig\n",
        );
        let expected = "old 2\n\
            AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\
            //////////////////////////////////////////8=\n\
            \n\
            o\n3\nroot\n\n- sig\n";
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        assert_eq!(encode_add_checkpoint(0, &[], b"cp"), b"old 0\n\ncp");
    }

    #[test]
    fn decimals_have_one_spelling() {
        for (text, want) in [
            ("0", Some(0)),
            ("7", Some(7)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("", None),
            ("00", None),
            ("07", None),
            ("+7", None),
            ("-0", None),
            (" 7", None),
            ("7 ", None),
            ("1e3", None),
        ] {
            assert_eq!(parse_decimal(text), want, "{text:?}");
        }
    }

    #[test]
    fn size_bodies_round_trip_and_refuse_anything_else() {
        for size in [0, 1, 42, u64::MAX] {
            assert_eq!(
                parse_size_body(encode_size_body(size).as_bytes()),
                Some(size)
            );
        }
        assert_eq!(parse_size_body(b"12"), Some(12));
        for bad in [
            &b""[..],
            b"\n",
            b"012\n",
            b"12\n\n",
            b"12 \n",
            b"x\n",
            b"-1\n",
        ] {
            assert_eq!(parse_size_body(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hash_lines_are_32_bytes_of_canonical_base64() {
        let hash = Hash::from_bytes([0xabu8; 32]);
        assert_eq!(decode_hash(&encode_hash(&hash)), Some(hash));
        assert_eq!(decode_hash("AAAA"), None);
        assert_eq!(decode_hash(&encode_hash(&hash).replace('=', "")), None);
    }
}

#[cfg(test)]
mod add_checkpoint_tests {
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
                    Err(NoteError::InvalidAddCheckpoint(BodyProblem::BadProofLine {
                        index: 0
                    }))
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
            Err(NoteError::InvalidAddCheckpoint(
                BodyProblem::TooManyProofLines { limit: 63 }
            ))
        ));
    }

    #[test]
    fn rejects_missing_parts() {
        assert!(matches!(
            parse_add_checkpoint(b""),
            Err(NoteError::InvalidAddCheckpoint(BodyProblem::MissingOldSize))
        ));
        assert!(matches!(
            parse_add_checkpoint(b"old 1\n"),
            Err(NoteError::InvalidAddCheckpoint(
                BodyProblem::MissingEmptyLine
            ))
        ));
        assert!(matches!(
            parse_add_checkpoint(b"old 1\n\n"),
            Err(NoteError::InvalidAddCheckpoint(
                BodyProblem::MissingCheckpoint
            ))
        ));
    }
}
