//! The key layout (see the crate docs for the table). Every key starts with the
//! big-endian log id, so one database can later hold many logs and a log's keys are
//! contiguous; integers are big-endian so RocksDB's byte order is numeric order.

use merklog_merkle::tile::TileId;
use merklog_merkle::{HASH_SIZE, Hash};

/// Column family of the log's metadata records.
pub const CF_META: &str = "meta";
/// Column family of hash tiles.
pub const CF_TILES: &str = "tiles";
/// Column family of entry bundles.
pub const CF_ENTRIES: &str = "entries";
/// Column family of the dedup index (leaf hash -> leaf index).
pub const CF_DEDUP: &str = "dedup";
/// Column family of signed checkpoints.
pub const CF_CHECKPOINTS: &str = "checkpoints";
/// Column family of the unique-key index (caller's key -> leaf index, leaf hash, time).
pub const CF_KEYS: &str = "keys";
/// Column family of the index of terms (term, time, leaf hash -> leaf index, leaf
/// hash, time).
pub const CF_TERMS: &str = "terms";
/// Every column family this crate uses.
pub const COLUMN_FAMILIES: [&str; 7] = [
    CF_META,
    CF_TILES,
    CF_ENTRIES,
    CF_DEDUP,
    CF_CHECKPOINTS,
    CF_KEYS,
    CF_TERMS,
];

/// Metadata record names (suffixes after the log id in `meta`).
pub const META_FORMAT_VERSION: &[u8] = b"format_version";
/// The checkpoint origin.
pub const META_ORIGIN: &[u8] = b"origin";
/// The log's verifier key text.
pub const META_VERIFIER_KEY: &[u8] = b"verifier_key";
/// The log key's algorithm.
pub const META_ALGORITHM: &[u8] = b"algorithm";
/// The suffix of the latest checkpoint's key in `checkpoints`.
pub const LATEST: &[u8] = b"latest";
/// Name of the checkpoints row holding the last checkpoint the witness pipeline
/// published (13-byte key: never a size key (12) nor the latest key (10)).
pub const PUBLISHED: &[u8] = b"published";

/// A log id: the first four bytes of every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LogId(pub u32);

fn prefixed<const N: usize>(log: LogId, rest: &[&[u8]]) -> [u8; N] {
    let mut key = [0u8; N];
    let mut at = 0;
    for part in std::iter::once(&log.0.to_be_bytes()[..]).chain(rest.iter().copied()) {
        if let Some(dest) = key.get_mut(at..at + part.len()) {
            dest.copy_from_slice(part);
        }
        at += part.len();
    }
    key
}

/// `tiles`: log id (4) || tile level (1) || tile index (8). The width is not part of the
/// key: a partial tile grows in place under the key of its full self.
pub fn tile_key(log: LogId, tile: &TileId) -> [u8; 13] {
    prefixed(log, &[&[tile.level], &tile.index.to_be_bytes()])
}

/// `entries`: log id (4) || bundle index (8).
pub fn bundle_key(log: LogId, index: u64) -> [u8; 12] {
    prefixed(log, &[&index.to_be_bytes()])
}

/// `dedup`: log id (4) || RFC 6962 leaf hash (32).
pub fn dedup_key(log: LogId, leaf_hash: &Hash) -> [u8; 36] {
    prefixed(log, &[leaf_hash.as_bytes()])
}

/// `keys`: log id (4) || the caller's unique key (opaque bytes).
pub fn unique_key(log: LogId, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len());
    out.extend_from_slice(&log.0.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The caller's key of a `keys` row of `log`, if the row is that log's.
pub fn parse_unique_key(log: LogId, key: &[u8]) -> Option<&[u8]> {
    let (found, rest) = split_log(key)?;
    (found == log).then_some(rest)
}

/// `terms`: log id (4) || the log's term key (term || 0x00 || time (`u64` BE) ||
/// leaf hash, see `merklog_log::term_key`).
pub fn term_row_key(log: LogId, key: &[u8]) -> Vec<u8> {
    unique_key(log, key)
}

/// The log's term key of a `terms` row of `log`, if the row is that log's.
pub fn parse_term_row_key(log: LogId, key: &[u8]) -> Option<&[u8]> {
    parse_unique_key(log, key)
}

/// `checkpoints`: log id (4) || tree size (8).
pub fn checkpoint_key(log: LogId, size: u64) -> [u8; 12] {
    prefixed(log, &[&size.to_be_bytes()])
}

/// `checkpoints`: log id (4) || "latest" (6 bytes, so never equal to a size key).
pub fn latest_checkpoint_key(log: LogId) -> [u8; 10] {
    prefixed(log, &[LATEST])
}

/// `checkpoints`: log id (4) || `published`.
pub fn published_checkpoint_key(log: LogId) -> [u8; 13] {
    prefixed(log, &[PUBLISHED])
}

/// `meta`: log id (4) || record name.
pub fn meta_key(log: LogId, name: &[u8]) -> Vec<u8> {
    let mut key = log.0.to_be_bytes().to_vec();
    key.extend_from_slice(name);
    key
}

fn split_log(key: &[u8]) -> Option<(LogId, &[u8])> {
    let (id, rest) = key.split_first_chunk::<4>()?;
    Some((LogId(u32::from_be_bytes(*id)), rest))
}

/// Decodes a `tiles` key into the log, the tile level and the tile index.
pub fn parse_tile_key(key: &[u8]) -> Option<(LogId, u8, u64)> {
    let (log, rest) = split_log(key)?;
    let (&level, rest) = rest.split_first()?;
    let index: [u8; 8] = rest.try_into().ok()?;
    Some((log, level, u64::from_be_bytes(index)))
}

/// Decodes an `entries` key.
pub fn parse_bundle_key(key: &[u8]) -> Option<(LogId, u64)> {
    let (log, rest) = split_log(key)?;
    Some((log, u64::from_be_bytes(rest.try_into().ok()?)))
}

/// Decodes a `dedup` key.
pub fn parse_dedup_key(key: &[u8]) -> Option<(LogId, Hash)> {
    let (log, rest) = split_log(key)?;
    if rest.len() != HASH_SIZE {
        return None;
    }
    Some((log, rest.try_into().ok()?))
}

/// Decodes a `checkpoints` size key (not the latest key).
pub fn parse_checkpoint_key(key: &[u8]) -> Option<(LogId, u64)> {
    let (log, rest) = split_log(key)?;
    Some((log, u64::from_be_bytes(rest.try_into().ok()?)))
}

/// A dedup value: the leaf index, big-endian.
pub fn encode_index(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Decodes a dedup value.
pub fn decode_index(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for log in [LogId(0), LogId(1), LogId(u32::MAX)] {
            for (level, index) in [(0u8, 0u64), (1, 255), (7, u64::MAX >> 8), (3, 1 << 40)] {
                for width in [1, 255, 256] {
                    let tile = TileId {
                        level,
                        index,
                        width,
                    };
                    assert_eq!(
                        parse_tile_key(&tile_key(log, &tile)),
                        Some((log, level, index))
                    );
                }
            }
            for index in [0u64, 1, 256, u64::MAX] {
                assert_eq!(
                    parse_bundle_key(&bundle_key(log, index)),
                    Some((log, index))
                );
                assert_eq!(
                    parse_checkpoint_key(&checkpoint_key(log, index)),
                    Some((log, index))
                );
                assert_eq!(decode_index(&encode_index(index)), Some(index));
            }
            let hash = Hash::from_bytes([0xabu8; 32]);
            assert_eq!(parse_dedup_key(&dedup_key(log, &hash)), Some((log, hash)));
            assert_eq!(parse_checkpoint_key(&latest_checkpoint_key(log)), None);
            assert!(meta_key(log, META_ORIGIN).starts_with(&log.0.to_be_bytes()));
        }
        assert_eq!(parse_tile_key(&[0; 12]), None);
        assert_eq!(parse_dedup_key(&[0; 35]), None);
        assert_eq!(decode_index(&[0; 7]), None);
    }

    #[test]
    fn byte_order_is_numeric_order() {
        let log = LogId(0);
        let mut sizes = [5u64, 256, 1, 1 << 33, 255];
        let mut keys: Vec<_> = sizes.iter().map(|s| checkpoint_key(log, *s)).collect();
        keys.sort();
        sizes.sort();
        assert_eq!(
            keys,
            sizes
                .iter()
                .map(|s| checkpoint_key(log, *s))
                .collect::<Vec<_>>()
        );
        // Tiles sort by level, then index; logs never interleave.
        let tile = |level, index| TileId {
            level,
            index,
            width: 256,
        };
        assert!(tile_key(log, &tile(0, u64::MAX)) < tile_key(log, &tile(1, 0)));
        assert!(bundle_key(LogId(0), u64::MAX) < bundle_key(LogId(1), 0));
        // The exact bytes, pinned (an existing database must keep opening), whatever
        // the width.
        for width in [1, 7, 256] {
            assert_eq!(
                tile_key(
                    LogId(2),
                    &TileId {
                        level: 1,
                        index: 258,
                        width
                    }
                ),
                [0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 1, 2]
            );
        }
        assert_eq!(latest_checkpoint_key(LogId(0)), *b"\0\0\0\0latest");
    }
}
