//! The C2SP text grammar shared by every format of this crate and by the witness
//! protocol: canonical decimals, base64 hash lines, key names, the tlog-witness
//! `add-checkpoint` request body and the body of its 409 answer. One spelling for
//! each value, so that what one party writes every other party reads the same way.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::NameProblem;
use crate::{Hash, NoteError};

/// Longest key name accepted, in bytes.
pub const MAX_KEY_NAME_LEN: usize = 255;

/// Content type of the tlog-witness 409 answer, whose body is the witness's size.
pub const TLOG_SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

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
