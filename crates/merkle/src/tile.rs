//! C2SP tlog-tiles (v0.1.0) coordinates and paths.
//!
//! A tile at tile level `L`, index `N` holds the Merkle-level `8L` hashes
//! `[256 N, 256 N + W)`; a full tile has `W = 256`. Only levels that are multiples of 8
//! are stored; a perfect node at Merkle level `l` is the root of `2^(l % 8)` consecutive
//! hashes of tile level `l / 8` (see [`node_location`]).
//!
//! Paths are `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, where `N` is written
//! in groups of three digits, all but the last prefixed with `x`
//! (`1234067` -> `x001/x234/067`) and `.p/<W>` appears only for partial tiles. The
//! parsers accept only that canonical form.

use std::fmt::Write;

use crate::hash::{HASH_SIZE, Hash, hash_children};
use crate::{LeafIndex, MerkleError, NodeId, TreeSize};

/// Merkle levels per tile.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile (or entry bundle).
pub const TILE_WIDTH: u16 = 256;
/// The highest tile level a path may name.
pub const MAX_TILE_LEVEL: u8 = 63;
/// The most groups of three digits a `u64` index needs (20 digits).
const MAX_INDEX_GROUPS: usize = 7;

/// A hash tile: tile `level` L holds Merkle-level `8L` hashes `[256 index, 256 index + width)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileId {
    /// Tile level (Merkle level / 8).
    pub level: u8,
    /// Tile index within the level.
    pub index: u64,
    /// Number of hashes, 1..=256; 256 is a full tile.
    pub width: u16,
}

impl TileId {
    /// True for a full (immutable) tile.
    pub fn is_full(&self) -> bool {
        self.width >= TILE_WIDTH
    }

    /// The tlog-tiles path, e.g. `tile/0/x001/234.p/5`. A width outside 1..=255 is
    /// written as a full tile.
    pub fn path(&self) -> String {
        let mut path = format!("tile/{}/", self.level);
        push_index_and_width(&mut path, self.index, self.width);
        path
    }
}

/// The tlog-tiles path of entry bundle `index` with `width` entries, e.g.
/// `tile/entries/x001/234.p/5`. A width outside 1..=255 is written as a full bundle.
pub fn entry_bundle_path(index: u64, width: u16) -> String {
    let mut path = String::from("tile/entries/");
    push_index_and_width(&mut path, index, width);
    path
}

/// The entry bundle holding a leaf, and the leaf's position in it.
pub fn entry_bundle_of(leaf: LeafIndex) -> (u64, u16) {
    (leaf.0 >> TILE_HEIGHT, (leaf.0 & 0xff) as u16)
}

fn push_index_and_width(path: &mut String, index: u64, width: u16) {
    let digits = index.to_string();
    // Left-pad to a multiple of three digits, then split into groups.
    let padded = format!("{}{}", "0".repeat((3 - digits.len() % 3) % 3), digits);
    let groups = padded.len() / 3;
    for (group, chunk) in padded.as_bytes().chunks(3).enumerate() {
        if group + 1 < groups {
            path.push('x');
        }
        path.extend(chunk.iter().map(|&b| char::from(b)));
        if group + 1 < groups {
            path.push('/');
        }
    }
    if (1..TILE_WIDTH).contains(&width) {
        // Writing to a String cannot fail.
        let _ = write!(path, ".p/{width}");
    }
}

/// Parses a hash tile path `tile/<L>/<N>[.p/<W>]`, accepting only the canonical form:
/// `L` in 0..=63 without leading zeros, `N` in `x`-prefixed groups with no leading
/// all-zero group, `W` in 1..=255 without leading zeros.
pub fn parse_tile_path(path: &str) -> Result<TileId, MerkleError> {
    let rest = path
        .strip_prefix("tile/")
        .ok_or(invalid("missing tile/ prefix"))?;
    let (level, rest) = rest.split_once('/').ok_or(invalid("missing index"))?;
    let level = parse_decimal(level, 2).ok_or(invalid("bad level"))?;
    let level = u8::try_from(level)
        .ok()
        .filter(|l| *l <= MAX_TILE_LEVEL)
        .ok_or(invalid("level above 63"))?;
    let (index, width) = parse_index_and_width(rest)?;
    Ok(TileId {
        level,
        index,
        width,
    })
}

/// Parses an entry bundle path `tile/entries/<N>[.p/<W>]` (canonical form only) into
/// its index and width (256 for a full bundle).
pub fn parse_entry_bundle_path(path: &str) -> Result<(u64, u16), MerkleError> {
    let rest = path
        .strip_prefix("tile/entries/")
        .ok_or(invalid("missing tile/entries/ prefix"))?;
    parse_index_and_width(rest)
}

fn invalid(reason: &'static str) -> MerkleError {
    MerkleError::InvalidTilePath { reason }
}

/// A canonical unsigned decimal of at most `max_digits` digits: no sign, no leading zero.
fn parse_decimal(text: &str, max_digits: usize) -> Option<u64> {
    if text.len() > max_digits {
        return None;
    }
    parse_canonical_decimal(text.as_bytes())
}

/// Parses a canonical unsigned decimal: ASCII digits only, no sign, no leading zero
/// (`0` alone is fine), at most `u64::MAX`. Every C2SP text format (tile paths,
/// checkpoints, proofs, the witness protocol) writes numbers this way; a
/// non-canonical spelling is refused so that one value has one encoding.
pub fn parse_canonical_decimal(text: &[u8]) -> Option<u64> {
    match text {
        [] | [b'0', _, ..] => return None,
        _ => {}
    }
    text.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn parse_index_and_width(text: &str) -> Result<(u64, u16), MerkleError> {
    let (index_text, width) = match text.split_once(".p/") {
        Some((index_text, width)) => {
            let width = parse_decimal(width, 3)
                .and_then(|w| u16::try_from(w).ok())
                .filter(|w| (1..TILE_WIDTH).contains(w))
                .ok_or(invalid("partial width must be 1..=255"))?;
            (index_text, width)
        }
        None => (text, TILE_WIDTH),
    };
    let groups: Vec<&str> = index_text.split('/').collect();
    if groups.len() > MAX_INDEX_GROUPS {
        return Err(invalid("index too long"));
    }
    let last = groups.len() - 1; // split always yields at least one item
    let mut index = 0u64;
    for (position, group) in groups.iter().enumerate() {
        let digits = if position < last {
            group
                .strip_prefix('x')
                .ok_or(invalid("index group must start with x"))?
        } else {
            group
        };
        let bytes = digits.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(invalid("index group must be three digits"));
        }
        if position == 0 && position < last && digits == "000" {
            return Err(invalid("index has a leading zero group"));
        }
        let value = bytes
            .iter()
            .fold(0u64, |acc, &b| acc * 10 + u64::from(b - b'0'));
        index = index
            .checked_mul(1000)
            .and_then(|i| i.checked_add(value))
            .ok_or(invalid("index does not fit in u64"))?;
    }
    Ok((index, width))
}

/// Where a perfect node's hash comes from: it is the root of the `count` hashes
/// `[start, start + count)` of tile (`tile_level`, `tile_index`). For a node at a Merkle
/// level that is a multiple of 8, `count` is 1 and the hash is stored as is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeLocation {
    /// Tile level: the node's Merkle level / 8.
    pub tile_level: u8,
    /// Tile index within that level.
    pub tile_index: u64,
    /// First hash of the node's subtree within the tile.
    pub start: u16,
    /// Number of tile hashes under the node: `2^(level % 8)`.
    pub count: u16,
}

impl NodeLocation {
    /// One past the last tile hash the node needs: the tile must be at least this wide.
    pub fn end(&self) -> u16 {
        self.start + self.count
    }

    /// The node's hash, computed from the hashes of its tile (as many as the tile has).
    pub fn hash_from_tile(&self, tile: &[Hash]) -> Result<Hash, MerkleError> {
        let part = tile
            .get(usize::from(self.start)..usize::from(self.end()))
            .ok_or(MerkleError::TileTooShort {
                needed: usize::from(self.end()),
                got: tile.len(),
            })?;
        subtree_root(part)
    }
}

/// Where a perfect node lives: tile level `L / 8`, tile index `(i << (L % 8)) >> 8`,
/// hashes `[(i << (L % 8)) & 255, + 2^(L % 8))` of that tile.
pub fn node_location(node: NodeId) -> NodeLocation {
    let rise = u32::from(node.level % TILE_HEIGHT);
    let shift = u32::from(TILE_HEIGHT) - rise; // 1..=8
    // (i << rise) >> 8 == i >> (8 - rise), without losing high bits.
    let tile_index = node.index >> shift;
    let start = ((node.index & ((1u64 << shift) - 1)) << rise) as u16;
    NodeLocation {
        tile_level: node.level / TILE_HEIGHT,
        tile_index,
        start,
        count: 1 << rise,
    }
}

/// The width of tile (`level`, `index`) in the tree of `size` leaves: how many of its
/// hashes exist (at most 256), or 0 if none do.
pub fn tile_width_at(level: u8, index: u64, size: TreeSize) -> u16 {
    let merkle_level = u32::from(level) * u32::from(TILE_HEIGHT);
    let Some(hashes_at_level) = size.0.checked_shr(merkle_level) else {
        return 0;
    };
    let Some(first) = index.checked_mul(u64::from(TILE_WIDTH)) else {
        return 0;
    };
    let available = hashes_at_level.saturating_sub(first);
    available.min(u64::from(TILE_WIDTH)) as u16
}

/// The tiles, at their widths in the tree of `size` leaves, that hold the given nodes;
/// sorted and deduplicated. Nodes that are not complete at `size` are skipped.
pub fn tiles_for(nodes: &[NodeId], size: TreeSize) -> Vec<TileId> {
    let mut tiles: Vec<TileId> = nodes
        .iter()
        .filter(|node| node.exists_in(size))
        .map(|node| {
            let location = node_location(*node);
            let width = tile_width_at(location.tile_level, location.tile_index, size);
            TileId {
                level: location.tile_level,
                index: location.tile_index,
                width,
            }
        })
        .collect();
    tiles.sort_unstable();
    tiles.dedup();
    tiles
}

/// The root of a perfect subtree given its `2^k` bottom hashes (`k >= 0`).
pub fn subtree_root(hashes: &[Hash]) -> Result<Hash, MerkleError> {
    if !hashes.len().is_power_of_two() {
        return Err(MerkleError::NotPerfectSubtree { len: hashes.len() });
    }
    let mut layer = hashes.to_vec();
    while layer.len() > 1 {
        layer = layer
            .chunks_exact(2)
            .map(|pair| hash_children(&pair[0], &pair[1]))
            .collect();
    }
    layer
        .first()
        .copied()
        .ok_or(MerkleError::NotPerfectSubtree { len: 0 })
}

/// Splits the bytes of a hash tile into its hashes; fails unless it is 1 to 256 whole
/// hashes.
pub fn hashes_from_tile_bytes(bytes: &[u8]) -> Result<Vec<Hash>, MerkleError> {
    let count = bytes.len() / HASH_SIZE;
    if !bytes.len().is_multiple_of(HASH_SIZE) || count == 0 || count > usize::from(TILE_WIDTH) {
        return Err(MerkleError::InvalidTileData { len: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(HASH_SIZE)
        .map(|chunk| {
            let mut hash = [0u8; HASH_SIZE];
            hash.copy_from_slice(chunk);
            Hash::from_bytes(hash)
        })
        .collect())
}

/// The bytes of a hash tile: its hashes, concatenated.
pub fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(hashes.len().saturating_mul(HASH_SIZE));
    for hash in hashes {
        bytes.extend_from_slice(hash.as_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CompactRange, hash_leaf};
    use std::collections::HashMap;

    #[test]
    fn paths() {
        assert_eq!(
            TileId {
                level: 0,
                index: 1234067,
                width: 256
            }
            .path(),
            "tile/0/x001/x234/067"
        );
        assert_eq!(
            TileId {
                level: 0,
                index: 1234,
                width: 5
            }
            .path(),
            "tile/0/x001/234.p/5"
        );
        assert_eq!(
            TileId {
                level: 2,
                index: 5,
                width: 256
            }
            .path(),
            "tile/2/005"
        );
        assert_eq!(
            TileId {
                level: 1,
                index: 0,
                width: 255
            }
            .path(),
            "tile/1/000.p/255"
        );
        assert_eq!(
            TileId {
                level: 1,
                index: 1000,
                width: 1
            }
            .path(),
            "tile/1/x001/000.p/1"
        );
        assert_eq!(
            entry_bundle_path(1234067, 256),
            "tile/entries/x001/x234/067"
        );
        assert_eq!(entry_bundle_path(7, 9), "tile/entries/007.p/9");
        assert_eq!(
            TileId {
                level: 63,
                index: u64::MAX,
                width: 256
            }
            .path(),
            "tile/63/x018/x446/x744/x073/x709/x551/615"
        );
    }

    #[test]
    fn parse_round_trips() {
        for tile in [
            TileId {
                level: 0,
                index: 0,
                width: 256,
            },
            TileId {
                level: 0,
                index: 999,
                width: 1,
            },
            TileId {
                level: 1,
                index: 1000,
                width: 17,
            },
            TileId {
                level: 63,
                index: u64::MAX,
                width: 255,
            },
            TileId {
                level: 10,
                index: 1234067,
                width: 256,
            },
        ] {
            assert_eq!(parse_tile_path(&tile.path()).unwrap(), tile);
            assert_eq!(
                parse_entry_bundle_path(&entry_bundle_path(tile.index, tile.width)).unwrap(),
                (tile.index, tile.width)
            );
        }
    }

    #[test]
    fn parse_rejects_non_canonical() {
        for bad in [
            "",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "/tile/0/000",
            "tiles/0/000",
            "tile/00/000",
            "tile/01/000",
            "tile/64/000",
            "tile/255/000",
            "tile/-1/000",
            "tile/+1/000",
            "tile/a/000",
            "tile/0/0",
            "tile/0/00",
            "tile/0/0000",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x001",
            "tile/0/x001/x002",
            "tile/0/x01/002",
            "tile/0/y001/002",
            "tile/0/X001/002",
            "tile/0/001/",
            "tile/0/001.p",
            "tile/0/001.p/",
            "tile/0/001.p/0",
            "tile/0/001.p/00",
            "tile/0/001.p/05",
            "tile/0/001.p/256",
            "tile/0/001.p/1000",
            "tile/0/001.p/5/",
            "tile/0/001.p/5/6",
            "tile/0/001.p/+5",
            "tile/0/001.P/5",
            "tile/0/0a1",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x001/x018/x446/x744/x073/x709/x551/615",
            "tile/0/x999/x999/x999/x999/x999/x999/999",
            "tile/0/１２３",
            "tile/entries/001",
            "tile/0/001.p/5.p/5",
        ] {
            assert!(parse_tile_path(bad).is_err(), "accepted {bad:?}");
        }
        for bad in [
            "tile/entries/",
            "tile/entries/0001",
            "tile/entries/001.p/256",
            "tile/0/001",
            "tile/entries/x000/001",
        ] {
            assert!(parse_entry_bundle_path(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn locations_and_widths() {
        assert_eq!(
            node_location(NodeId::new(0, 300)),
            NodeLocation {
                tile_level: 0,
                tile_index: 1,
                start: 44,
                count: 1
            }
        );
        assert_eq!(
            node_location(NodeId::new(8, 3)),
            NodeLocation {
                tile_level: 1,
                tile_index: 0,
                start: 3,
                count: 1
            }
        );
        assert_eq!(
            node_location(NodeId::new(3, 5)),
            NodeLocation {
                tile_level: 0,
                tile_index: 0,
                start: 40,
                count: 8
            }
        );
        assert_eq!(
            node_location(NodeId::new(7, 3)),
            NodeLocation {
                tile_level: 0,
                tile_index: 1,
                start: 128,
                count: 128
            }
        );
        assert_eq!(
            node_location(NodeId::new(10, 70)),
            NodeLocation {
                tile_level: 1,
                tile_index: 1,
                start: 24,
                count: 4
            }
        );
        assert_eq!(node_location(NodeId::new(63, 1)).tile_level, 7);
        assert_eq!(tile_width_at(0, 0, TreeSize(0)), 0);
        assert_eq!(tile_width_at(0, 0, TreeSize(5)), 5);
        assert_eq!(tile_width_at(0, 1, TreeSize(600)), 256);
        assert_eq!(tile_width_at(0, 2, TreeSize(600)), 88);
        assert_eq!(tile_width_at(0, 3, TreeSize(600)), 0);
        assert_eq!(tile_width_at(1, 0, TreeSize(600)), 2);
        assert_eq!(tile_width_at(8, 0, TreeSize(u64::MAX)), 0);
        assert_eq!(tile_width_at(0, u64::MAX, TreeSize(u64::MAX)), 0);
        assert_eq!(entry_bundle_of(LeafIndex(600)), (2, 88));
    }

    /// Storage keeps only tiles; every node of a proof must be recoverable from them.
    #[test]
    fn nodes_from_tiles_match_the_tree() {
        let n = 70_000u64;
        let mut nodes = HashMap::new();
        let mut tiles: HashMap<(u8, u64), Vec<Hash>> = HashMap::new();
        let mut range = CompactRange::new();
        let leaves: Vec<Hash> = (0..n).map(|i| hash_leaf(&i.to_be_bytes())).collect();
        range
            .append(&leaves, |id, h| {
                nodes.insert(id, *h);
                if id.level % TILE_HEIGHT == 0 {
                    let location = node_location(id);
                    let tile = tiles
                        .entry((location.tile_level, location.tile_index))
                        .or_default();
                    assert_eq!(
                        tile.len(),
                        usize::from(location.start),
                        "tile hashes arrive in order"
                    );
                    tile.push(*h);
                }
            })
            .unwrap();
        let size = TreeSize(n);
        let wanted: Vec<NodeId> = crate::inclusion_plan(LeafIndex(12_345), size)
            .unwrap()
            .nodes()
            .iter()
            .chain(
                crate::consistency_plan(TreeSize(33_333), size)
                    .unwrap()
                    .nodes(),
            )
            .copied()
            .collect();
        let needed = tiles_for(&wanted, size);
        assert!(!needed.is_empty());
        for tile in &needed {
            assert_eq!(
                usize::from(tile.width),
                tiles[&(tile.level, tile.index)].len(),
                "{tile:?}"
            );
        }
        for id in wanted {
            let location = node_location(id);
            assert!(
                needed
                    .iter()
                    .any(|t| t.level == location.tile_level && t.index == location.tile_index)
            );
            let tile = &tiles[&(location.tile_level, location.tile_index)];
            assert_eq!(location.hash_from_tile(tile).unwrap(), nodes[&id], "{id}");
        }
    }

    #[test]
    fn subtree_roots_and_tile_bytes() {
        let hashes: Vec<Hash> = (0u8..4).map(|i| Hash::from_bytes([i; 32])).collect();
        let expected = hash_children(
            &hash_children(&hashes[0], &hashes[1]),
            &hash_children(&hashes[2], &hashes[3]),
        );
        assert_eq!(subtree_root(&hashes).unwrap(), expected);
        assert_eq!(subtree_root(&hashes[..1]).unwrap(), hashes[0]);
        assert!(subtree_root(&hashes[..3]).is_err());
        assert!(subtree_root(&[]).is_err());
        let bytes: Vec<u8> = tile_bytes(&hashes);
        assert_eq!(hashes_from_tile_bytes(&bytes).unwrap(), hashes);
        assert!(hashes_from_tile_bytes(&bytes[1..]).is_err());
        assert!(hashes_from_tile_bytes(&[]).is_err());
        assert!(hashes_from_tile_bytes(&vec![0; 32 * 257]).is_err());
        let location = NodeLocation {
            tile_level: 0,
            tile_index: 0,
            start: 2,
            count: 4,
        };
        assert!(matches!(
            location.hash_from_tile(&hashes),
            Err(MerkleError::TileTooShort { needed: 6, got: 4 })
        ));
    }
}
