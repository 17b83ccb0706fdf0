//! RFC 6962 section 2.1 hashing, and the [`Hash`] type every merklog crate shares.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::MerkleError;

/// Size in bytes of every hash in the tree (SHA-256).
pub const HASH_SIZE: usize = 32;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
///
/// Equality runs in constant time: roots and proofs may be attacker-chosen, and a
/// comparison that stops at the first differing byte would tell a forger how many
/// leading bytes were right. That is why `PartialEq` is written by hand (with `subtle`)
/// rather than derived, and why there is no `Ord`: nothing needs to sort hashes.
///
/// `Display` and `Debug` write 64 lower-case hex digits; [`FromStr`] reads exactly that
/// form back (upper-case digits are refused, so one hash has one spelling). Wire
/// messages, stored values and note bodies carry the raw bytes ([`Hash::as_bytes`],
/// [`Hash::from_bytes`], `TryFrom<&[u8]>`).
#[derive(Copy, Clone)]
pub struct Hash([u8; HASH_SIZE]);

impl Hash {
    /// Wraps 32 bytes.
    pub const fn from_bytes(bytes: [u8; HASH_SIZE]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_SIZE] {
        &self.0
    }
}

impl PartialEq for Hash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Hash {}

impl ConstantTimeEq for Hash {
    /// For callers that combine comparisons without branching (a look-up that must
    /// compare every candidate).
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl std::hash::Hash for Hash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl From<[u8; HASH_SIZE]> for Hash {
    fn from(bytes: [u8; HASH_SIZE]) -> Self {
        Self(bytes)
    }
}

impl From<Hash> for [u8; HASH_SIZE] {
    fn from(hash: Hash) -> Self {
        hash.0
    }
}

impl TryFrom<&[u8]> for Hash {
    type Error = MerkleError;

    /// Converts untrusted bytes, rejecting anything that is not exactly [`HASH_SIZE`]
    /// bytes long.
    fn try_from(bytes: &[u8]) -> Result<Self, MerkleError> {
        <[u8; HASH_SIZE]>::try_from(bytes)
            .map(Self)
            .map_err(|_| MerkleError::InvalidHashLength { got: bytes.len() })
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

/// Lower-case hex of any bytes: how merklog prints hashes, digests and identifiers
/// (and the only form [`struct@Hash`]'s `FromStr` reads back).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Hash {
    type Err = MerkleError;

    /// Parses exactly 64 lower-case hex digits; the error names the length (in bytes) or
    /// the first bad character.
    fn from_str(text: &str) -> Result<Self, MerkleError> {
        let digits = text.as_bytes();
        if digits.len() != 2 * HASH_SIZE {
            return Err(MerkleError::InvalidHashHexLength { got: text.len() });
        }
        let mut bytes = [0u8; HASH_SIZE];
        for (position, byte) in bytes.iter_mut().enumerate() {
            let high = hex_digit(text, 2 * position)?;
            let low = hex_digit(text, 2 * position + 1)?;
            *byte = high << 4 | low;
        }
        Ok(Self(bytes))
    }
}

/// The value of the lower-case hex digit at byte `position` of `text`.
fn hex_digit(text: &str, position: usize) -> Result<u8, MerkleError> {
    let bad = || MerkleError::InvalidHashHexDigit {
        position,
        // Every byte before `position` is an ASCII digit, so it starts a character.
        found: text
            .get(position..)
            .and_then(|rest| rest.chars().next())
            .unwrap_or(char::REPLACEMENT_CHARACTER),
    };
    match text.as_bytes().get(position) {
        Some(&b @ b'0'..=b'9') => Ok(b - b'0'),
        Some(&b @ b'a'..=b'f') => Ok(b - b'a' + 10),
        _ => Err(bad()),
    }
}

/// Domain separation prefix of leaf hashes (RFC 6962 section 2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of interior node hashes (RFC 6962 section 2.1).
const NODE_PREFIX: u8 = 0x01;

/// The leaf hash of an entry: `SHA-256(0x00 || entry)`.
pub fn hash_leaf(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(entry);
    Hash(hasher.finalize().into())
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn hash_children(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left.0);
    hasher.update(right.0);
    Hash(hasher.finalize().into())
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Hash {
        s.parse().unwrap()
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
        let expected = Hash(Sha256::digest(&input).into());
        let zero = Hash([0; 32]);
        let one = Hash([1; 32]);
        assert_eq!(hash_children(&zero, &zero), expected);
        assert_ne!(hash_children(&zero, &one), hash_children(&one, &zero));
    }

    #[test]
    fn try_from_slice_checks_length() {
        for len in [0, 31, 33, 64] {
            assert_eq!(
                Hash::try_from(&vec![0; len][..]),
                Err(MerkleError::InvalidHashLength { got: len })
            );
        }
        assert_eq!(Hash::try_from(&[7; 32][..]).unwrap(), Hash([7; 32]));
        assert_eq!(Hash::try_from(&[7; 32][..]).unwrap().as_bytes(), &[7; 32]);
    }

    #[test]
    fn equality_is_exact() {
        let a = hash_leaf(b"a");
        let same = Hash::from_bytes(*a.as_bytes());
        assert!(a == same);
        assert!(!(a != same));
        let mut first = *a.as_bytes();
        first[0] ^= 0x80;
        let mut last = *a.as_bytes();
        last[31] ^= 1;
        for different in [Hash(first), Hash(last), hash_leaf(b"b")] {
            assert!(a != different);
            assert!(!(a == different));
            assert!(different != a);
        }
        // Equal values hash alike, so `Hash` can key maps.
        let set: std::collections::HashSet<Hash> = [a, same, Hash(last)].into_iter().collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn hex_round_trip() {
        let hash = Hash(core::array::from_fn(|i| (i as u8).wrapping_mul(37)));
        let text = hash.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_lowercase());
        assert!(text.starts_with("00254a6f94b9de03"), "{text}");
        assert_eq!(format!("{hash:?}"), text);
        assert_eq!(text.parse::<Hash>().unwrap(), hash);
        assert_eq!(Hash([0xab; 32]).to_string(), "ab".repeat(32));
    }

    #[test]
    fn hex_parse_refuses_other_forms() {
        let good = "ab".repeat(32);
        for (text, expected) in [
            (String::new(), MerkleError::InvalidHashHexLength { got: 0 }),
            (
                good[..63].to_owned(),
                MerkleError::InvalidHashHexLength { got: 63 },
            ),
            (
                format!("{good}0"),
                MerkleError::InvalidHashHexLength { got: 65 },
            ),
            (
                format!("{good}\n"),
                MerkleError::InvalidHashHexLength { got: 65 },
            ),
            (
                format!(" {}", &good[1..]),
                MerkleError::InvalidHashHexDigit {
                    position: 0,
                    found: ' ',
                },
            ),
            (
                good.to_uppercase(),
                MerkleError::InvalidHashHexDigit {
                    position: 0,
                    found: 'A',
                },
            ),
            (
                format!("{}g", &good[..63]),
                MerkleError::InvalidHashHexDigit {
                    position: 63,
                    found: 'g',
                },
            ),
            (
                format!("{}é{}", &good[..10], &good[12..]),
                MerkleError::InvalidHashHexDigit {
                    position: 10,
                    found: 'é',
                },
            ),
            (
                format!("{}+{}", &good[..10], &good[11..]),
                MerkleError::InvalidHashHexDigit {
                    position: 10,
                    found: '+',
                },
            ),
        ] {
            assert_eq!(text.parse::<Hash>(), Err(expected.clone()), "{text:?}");
            assert!(!expected.to_string().is_empty());
        }
        // 64 bytes but not 64 digits.
        assert_eq!(
            "é".repeat(32).parse::<Hash>(),
            Err(MerkleError::InvalidHashHexDigit {
                position: 0,
                found: 'é'
            })
        );
        assert_eq!(
            format!("{}é", &good[..62]).parse::<Hash>(),
            Err(MerkleError::InvalidHashHexDigit {
                position: 62,
                found: 'é'
            })
        );
    }
}
