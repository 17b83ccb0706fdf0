//! Small text encodings of hashes for output and input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use merklog_merkle::{HASH_SIZE, Hash};

use crate::ClientError;

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
        // People paste hashes from anywhere, so upper-case hex is accepted here although
        // `Hash`'s own parser takes only the lower-case form merklog writes.
        return text.to_ascii_lowercase().parse().map_err(|_| bad());
    }
    merklog_note::grammar::decode_hash(text).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_from_hex_and_base64() {
        let hash = Hash::from_bytes(core::array::from_fn(|i| i as u8 * 7));
        assert_eq!(parse_hash(&hash.to_string()).unwrap(), hash);
        assert_eq!(parse_hash(&hash.to_string().to_uppercase()).unwrap(), hash);
        assert_eq!(parse_hash(&b64(hash.as_bytes())).unwrap(), hash);
        assert_eq!(
            parse_hash(&format!(" {}\n", b64(hash.as_bytes()))).unwrap(),
            hash
        );
        assert!(parse_hash(&hash.to_string()[..62]).is_err());
        assert!(parse_hash("zz").is_err());
        assert!(parse_hash(&b64(&[1u8; 33])).is_err());
        assert!(parse_hash(&format!("{}g", &hash.to_string()[..63])).is_err());
    }
}
