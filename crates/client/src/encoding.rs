//! Small text encodings of hashes for output and input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use merklog_merkle::{HASH_SIZE, Hash};

use crate::ClientError;

/// Lower-case hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Standard base64 (as used in checkpoints and proof files).
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Parses a 32-byte hash written as 64 hex digits or as standard base64.
pub fn parse_hash(text: &str) -> Result<Hash, ClientError> {
    let text = text.trim();
    let bad = || {
        ClientError::Input(format!(
            "{:?} is not a 32-byte hash (64 hex digits or base64)",
            text.chars().take(100).collect::<String>()
        ))
    };
    if text.len() == 2 * HASH_SIZE && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut hash = [0u8; HASH_SIZE];
        for (slot, pair) in hash.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *slot = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        return Ok(hash);
    }
    let bytes = STANDARD.decode(text).map_err(|_| bad())?;
    Hash::try_from(bytes.as_slice()).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_from_hex_and_base64() {
        let hash: Hash = core::array::from_fn(|i| i as u8 * 7);
        assert_eq!(parse_hash(&hex(&hash)).unwrap(), hash);
        assert_eq!(parse_hash(&hex(&hash).to_uppercase()).unwrap(), hash);
        assert_eq!(parse_hash(&b64(&hash)).unwrap(), hash);
        assert_eq!(parse_hash(&format!(" {}\n", b64(&hash))).unwrap(), hash);
        assert!(parse_hash(&hex(&hash[..31])).is_err());
        assert!(parse_hash("zz").is_err());
        assert!(parse_hash(&b64(&[1u8; 33])).is_err());
        assert!(parse_hash(&format!("{}g", &hex(&hash)[..63])).is_err());
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
