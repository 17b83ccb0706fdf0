//! C2SP tlog-tiles (v0.1.0) entry bundles: the log's entries, in order, each written as
//! a 2-byte big-endian length followed by that many bytes.
//!
//! This is the one codec for that format: the log writes bundles with [`push_entry`],
//! reads them back with [`BundleEntries`] / [`split_bundle`], and trims a stored bundle to
//! a published width with [`bundle_prefix_len`]. Nothing here trusts its input: every
//! length is checked against the bytes that are there, and errors carry the byte offset
//! where the bundle stops making sense.

use crate::MerkleError;

/// The longest entry a bundle can hold: the length prefix is a `u16`.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// Bytes of the length prefix in front of every entry.
const PREFIX_LEN: usize = 2;

/// Appends one entry (its 2-byte big-endian length, then its bytes) to `bundle`.
/// Refuses, leaving `bundle` unchanged, an entry longer than [`MAX_ENTRY_LEN`].
pub fn push_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), MerkleError> {
    let len = u16::try_from(entry.len())
        .map_err(|_| MerkleError::BundleEntryTooLong { len: entry.len() })?;
    bundle.reserve(PREFIX_LEN + entry.len());
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// The entries of a bundle, in order, without copying. Yields an error (and then
/// nothing more) where a length prefix or an entry is cut short.
#[derive(Debug, Clone)]
pub struct BundleEntries<'a> {
    bundle: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> BundleEntries<'a> {
    /// Walks `bundle` from its first entry.
    pub fn new(bundle: &'a [u8]) -> Self {
        Self {
            bundle,
            offset: 0,
            failed: false,
        }
    }

    /// Byte offset of the next entry's length prefix (after the last entry: the length
    /// of the bundle).
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl<'a> Iterator for BundleEntries<'a> {
    type Item = Result<&'a [u8], MerkleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset == self.bundle.len() {
            return None;
        }
        let offset = self.offset;
        let rest = self.bundle.get(offset..).unwrap_or_default();
        let Some((prefix, body)) = rest.split_first_chunk::<PREFIX_LEN>() else {
            self.failed = true;
            return Some(Err(MerkleError::BundleTruncatedLength { offset }));
        };
        let len = usize::from(u16::from_be_bytes(*prefix));
        let Some(entry) = body.get(..len) else {
            self.failed = true;
            return Some(Err(MerkleError::BundleTruncatedEntry {
                offset,
                len,
                available: body.len(),
            }));
        };
        self.offset = offset + PREFIX_LEN + len;
        Some(Ok(entry))
    }
}

/// Splits a whole bundle into its entries; refuses a bundle whose bytes do not end
/// exactly after an entry. An empty bundle has no entries.
pub fn split_bundle(bundle: &[u8]) -> Result<Vec<&[u8]>, MerkleError> {
    BundleEntries::new(bundle).collect()
}

/// Byte length of the first `count` entries of a bundle (what a bundle of width
/// `count` is, cut from a longer one). Bytes after them are not looked at.
pub fn bundle_prefix_len(bundle: &[u8], count: usize) -> Result<usize, MerkleError> {
    let mut entries = BundleEntries::new(bundle);
    for found in 0..count {
        match entries.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e),
            None => {
                return Err(MerkleError::BundleTooFewEntries {
                    wanted: count,
                    found,
                });
            }
        }
    }
    Ok(entries.offset())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_of(entries: &[&[u8]]) -> Vec<u8> {
        let mut bundle = Vec::new();
        for entry in entries {
            push_entry(&mut bundle, entry).unwrap();
        }
        bundle
    }

    #[test]
    fn known_bytes() {
        // Pinned by hand: length 3 then "abc", length 0, length 258 (0x0102) then 258 x's.
        let long = vec![b'x'; 258];
        let bundle = bundle_of(&[b"abc", b"", &long]);
        let mut expected = vec![0, 3, b'a', b'b', b'c', 0, 0, 1, 2];
        expected.extend_from_slice(&long);
        assert_eq!(bundle, expected);
    }

    #[test]
    fn round_trip() {
        let entries: Vec<Vec<u8>> = (0..300u32)
            .map(|i| (0..(i * 7) % 1000).map(|b| b as u8).collect())
            .collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        let bundle = bundle_of(&refs);
        assert_eq!(split_bundle(&bundle).unwrap(), refs);
        assert_eq!(bundle_prefix_len(&bundle, refs.len()), Ok(bundle.len()));
        for count in [0, 1, 2, 17, 299] {
            let len = bundle_prefix_len(&bundle, count).unwrap();
            assert_eq!(split_bundle(&bundle[..len]).unwrap(), refs[..count]);
        }
    }

    #[test]
    fn largest_entry_is_accepted_and_one_more_byte_is_refused() {
        let largest = vec![0xa5; MAX_ENTRY_LEN];
        assert_eq!(MAX_ENTRY_LEN, 65_535);
        let mut bundle = Vec::new();
        push_entry(&mut bundle, &largest).unwrap();
        assert_eq!(&bundle[..2], &[0xff, 0xff]);
        assert_eq!(split_bundle(&bundle).unwrap(), vec![largest.as_slice()]);

        let before = bundle.clone();
        let too_long = vec![0; MAX_ENTRY_LEN + 1];
        assert_eq!(
            push_entry(&mut bundle, &too_long),
            Err(MerkleError::BundleEntryTooLong { len: 65_536 })
        );
        assert_eq!(
            bundle, before,
            "a refused entry leaves the bundle as it was"
        );
    }

    #[test]
    fn empty_bundle_has_no_entries() {
        assert_eq!(split_bundle(&[]).unwrap(), Vec::<&[u8]>::new());
        assert_eq!(bundle_prefix_len(&[], 0), Ok(0));
        assert_eq!(
            bundle_prefix_len(&[], 1),
            Err(MerkleError::BundleTooFewEntries {
                wanted: 1,
                found: 0
            })
        );
        // An empty entry is not an empty bundle.
        assert_eq!(split_bundle(&[0, 0]).unwrap(), vec![&[][..]]);
    }

    #[test]
    fn truncated_length_prefix() {
        let mut bundle = bundle_of(&[b"abc"]);
        bundle.push(0);
        assert_eq!(
            split_bundle(&bundle),
            Err(MerkleError::BundleTruncatedLength { offset: 5 })
        );
        assert_eq!(
            split_bundle(&[7]),
            Err(MerkleError::BundleTruncatedLength { offset: 0 })
        );
        // The entries before the damage are still counted.
        assert_eq!(bundle_prefix_len(&bundle, 1), Ok(5));
        assert_eq!(
            bundle_prefix_len(&bundle, 2),
            Err(MerkleError::BundleTruncatedLength { offset: 5 })
        );
    }

    #[test]
    fn truncated_body() {
        let bundle = bundle_of(&[b"abc", b"defg"]);
        for cut in 7..bundle.len() {
            assert_eq!(
                split_bundle(&bundle[..cut]),
                Err(MerkleError::BundleTruncatedEntry {
                    offset: 5,
                    len: 4,
                    available: cut - 7
                }),
                "cut at {cut}"
            );
        }
        assert_eq!(
            split_bundle(&[0, 5, 1]),
            Err(MerkleError::BundleTruncatedEntry {
                offset: 0,
                len: 5,
                available: 1
            })
        );
        // The iterator stops after the error.
        let mut entries = BundleEntries::new(&bundle[..8]);
        assert_eq!(entries.next(), Some(Ok(&b"abc"[..])));
        assert!(matches!(entries.next(), Some(Err(_))));
        assert_eq!(entries.next(), None);
    }

    #[test]
    fn errors_name_the_offset() {
        let text = MerkleError::BundleTruncatedEntry {
            offset: 5,
            len: 4,
            available: 1,
        }
        .to_string();
        assert!(text.contains("offset 5"), "{text}");
        let text = MerkleError::BundleTruncatedLength { offset: 9 }.to_string();
        assert!(text.contains("offset 9"), "{text}");
    }
}
