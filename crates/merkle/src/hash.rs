//! RFC 6962 section 2.1 hashing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::MerkleError;

/// Size in bytes of every hash in the tree (SHA-256).
pub const HASH_SIZE: usize = 32;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; HASH_SIZE];

/// Domain separation prefix of leaf hashes (RFC 6962 section 2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of interior node hashes (RFC 6962 section 2.1).
const NODE_PREFIX: u8 = 0x01;

/// The leaf hash of an entry: `SHA-256(0x00 || entry)`.
pub fn hash_leaf(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn hash_children(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Compares two hashes in constant time (roots and proofs may be attacker-chosen).
pub fn hashes_equal(a: &Hash, b: &Hash) -> bool {
    a.ct_eq(b).into()
}

/// Converts untrusted bytes into a [`type@Hash`], rejecting anything that is not exactly
/// [`HASH_SIZE`] bytes long.
pub fn hash_from_slice(bytes: &[u8]) -> Result<Hash, MerkleError> {
    Hash::try_from(bytes).map_err(|_| MerkleError::InvalidHashLength { got: bytes.len() })
}

/// Lower-case hex, for error messages.
pub(crate) fn hex(hash: &Hash) -> String {
    use std::fmt::Write;
    hash.iter()
        .fold(String::with_capacity(2 * HASH_SIZE), |mut out, byte| {
            // Writing to a String cannot fail.
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Hash {
        let bytes: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        hash_from_slice(&bytes).unwrap()
    }

    #[test]
    fn known_answers() {
        // SHA-256 of the empty string.
        assert_eq!(
            empty_root(),
            unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        // RFC 6962 leaf hash of the empty entry is SHA-256(0x00).
        assert_eq!(
            hash_leaf(b""),
            unhex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        );
        // SHA-256(0x01 || 32 zero bytes || 32 zero bytes), computed independently.
        let mut input = vec![1u8];
        input.extend_from_slice(&[0u8; 64]);
        let expected: Hash = Sha256::digest(&input).into();
        assert_eq!(hash_children(&[0; 32], &[0; 32]), expected);
        assert_ne!(
            hash_children(&[0; 32], &[1; 32]),
            hash_children(&[1; 32], &[0; 32])
        );
    }

    #[test]
    fn hash_from_slice_checks_length() {
        assert!(matches!(
            hash_from_slice(&[0; 31]),
            Err(MerkleError::InvalidHashLength { got: 31 })
        ));
        assert!(matches!(
            hash_from_slice(&[0; 33]),
            Err(MerkleError::InvalidHashLength { got: 33 })
        ));
        assert!(matches!(
            hash_from_slice(&[]),
            Err(MerkleError::InvalidHashLength { got: 0 })
        ));
        assert_eq!(hash_from_slice(&[7; 32]).unwrap(), [7; 32]);
    }

    #[test]
    fn equality_is_exact() {
        let a = hash_leaf(b"a");
        let mut b = a;
        assert!(hashes_equal(&a, &b));
        b[31] ^= 1;
        assert!(!hashes_equal(&a, &b));
        assert_eq!(hex(&[0xab; 32]).len(), 64);
        assert!(hex(&[0xab; 32]).starts_with("abab"));
    }
}
