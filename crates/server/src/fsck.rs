//! Checking a data directory end to end (`merklogd fsck`, `--verify-on-start=full`):
//! every entry bundle is read and hashed, every hash tile is recomputed from the
//! leaves and compared with the stored one, and the root of the recomputed tree is
//! compared with the latest signed checkpoint, whose signature is checked against
//! the store's verifier key. The first problem is reported with its coordinates; a
//! read that fails (a checksum mismatch of damaged storage) is pinned to the tile
//! or bundle whose read failed.

use std::fmt;

use merklog_log::LogStore;
use merklog_merkle::bundle::{bundle_prefix_len, split_bundle};
use merklog_merkle::tile::{TILE_WIDTH, TileId, entry_bundle_path, tile_bytes, tile_width_at};
use merklog_merkle::{Hash, RebuiltTile, TileRebuild, hash_leaf};
use merklog_note::{SignedCheckpoint, parse_verifier_key};

/// Bundles read in one batch.
const BUNDLES_PER_READ: usize = 64;

/// What a clean check covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsckReport {
    /// The tree size of the checked (latest signed) checkpoint.
    pub size: u64,
    /// Entry bundles read and hashed.
    pub bundles: u64,
    /// Hash tiles recomputed and compared.
    pub tiles: u64,
}

impl fmt::Display for FsckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok: {} entries in {} bundles, {} hash tiles and the signed root match",
            self.size, self.bundles, self.tiles
        )
    }
}

/// The first problem a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsckFinding {
    /// The store's identity or latest checkpoint cannot be read or verified.
    Checkpoint(String),
    /// An entry bundle is missing, unreadable or malformed.
    Bundle {
        /// Bundle index.
        index: u64,
        /// Entries it holds at the checked size.
        width: u16,
        /// What is wrong.
        reason: String,
    },
    /// A stored hash tile is missing, unreadable or differs from the entries.
    Tile {
        /// Its coordinates at the checked size.
        tile: TileId,
        /// What is wrong.
        reason: String,
    },
    /// Every tile matched but the root differs from the signed one.
    Root {
        /// Root in the signed checkpoint.
        signed: Hash,
        /// Root recomputed from the entries.
        computed: Hash,
    },
}

impl fmt::Display for FsckFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsckFinding::Checkpoint(reason) => write!(f, "latest checkpoint: {reason}"),
            FsckFinding::Bundle {
                index,
                width,
                reason,
            } => write!(
                f,
                "bad entry bundle: index {index}, width {width} ({}): {reason}",
                entry_bundle_path(*index, *width)
            ),
            FsckFinding::Tile { tile, reason } => write!(
                f,
                "bad tile: level {}, index {}, width {} ({}): {reason}",
                tile.level,
                tile.index,
                tile.width,
                tile.path()
            ),
            FsckFinding::Root { signed, computed } => write!(
                f,
                "root mismatch: the entries give {computed}, the signed checkpoint says {signed}"
            ),
        }
    }
}

/// Checks `store` (see the module docs).
pub fn check_store(store: &dyn LogStore) -> Result<FsckReport, FsckFinding> {
    let checkpoint = latest_checkpoint(store)?;
    let size = checkpoint.size();
    let bundle_count = size.0.div_ceil(u64::from(TILE_WIDTH));
    let mut rebuild = TileRebuild::new();
    let mut tiles = 0u64;
    let mut start = 0u64;
    while start < bundle_count {
        let end = bundle_count.min(start + BUNDLES_PER_READ as u64);
        let indexes: Vec<u64> = (start..end).collect();
        let bundles = read_bundles(store, &indexes, size)?;
        let mut done = Vec::new();
        for (index, bundle) in indexes.iter().zip(&bundles) {
            let width = tile_width_at(0, *index, size);
            let leaves = leaves_of(bundle, width).map_err(|reason| FsckFinding::Bundle {
                index: *index,
                width,
                reason,
            })?;
            done.extend(rebuild.push(&leaves).map_err(|e| FsckFinding::Bundle {
                index: *index,
                width,
                reason: e.to_string(),
            })?);
        }
        tiles += compare_tiles(store, &done)?;
        start = end;
    }
    let (partial, root) = rebuild.finish();
    tiles += compare_tiles(store, &partial)?;
    if root != checkpoint.root() {
        return Err(FsckFinding::Root {
            signed: checkpoint.root(),
            computed: root,
        });
    }
    Ok(FsckReport {
        size: size.0,
        bundles: bundle_count,
        tiles,
    })
}

fn latest_checkpoint(store: &dyn LogStore) -> Result<SignedCheckpoint, FsckFinding> {
    let bad = |reason: String| FsckFinding::Checkpoint(reason);
    let metadata = store
        .metadata()
        .map_err(|e| bad(format!("reading the metadata: {e}")))?
        .ok_or_else(|| bad("the store holds no log (no metadata record)".into()))?;
    let verifier = parse_verifier_key(&metadata.verifier_key)
        .map_err(|e| bad(format!("the stored verifier key is invalid: {e}")))?;
    let note = store
        .latest_checkpoint()
        .map_err(|e| bad(format!("reading it: {e}")))?
        .ok_or_else(|| bad("none is stored".into()))?;
    SignedCheckpoint::open(note, &verifier, Some(&metadata.origin))
        .map_err(|e| bad(format!("it does not verify with the store's key: {e}")))
}

/// Reads bundles in one batch; if the batch fails, one by one, to name the first
/// bundle whose read fails.
fn read_bundles(
    store: &dyn LogStore,
    indexes: &[u64],
    size: merklog_merkle::TreeSize,
) -> Result<Vec<Vec<u8>>, FsckFinding> {
    let batch = match store.read_bundles(indexes) {
        Ok(batch) => batch,
        Err(_) => {
            let mut batch = Vec::with_capacity(indexes.len());
            for index in indexes {
                let one = store
                    .read_bundles(&[*index])
                    .map_err(|e| FsckFinding::Bundle {
                        index: *index,
                        width: tile_width_at(0, *index, size),
                        reason: format!("read failed: {e}"),
                    })?;
                batch.extend(one);
            }
            batch
        }
    };
    indexes
        .iter()
        .zip(batch)
        .map(|(index, bundle)| {
            bundle.ok_or_else(|| FsckFinding::Bundle {
                index: *index,
                width: tile_width_at(0, *index, size),
                reason: "missing".into(),
            })
        })
        .collect()
}

fn leaves_of(bundle: &[u8], width: u16) -> Result<Vec<Hash>, String> {
    let len = bundle_prefix_len(bundle, usize::from(width)).map_err(|e| e.to_string())?;
    let entries = split_bundle(bundle.get(..len).unwrap_or_default()).map_err(|e| e.to_string())?;
    Ok(entries.into_iter().map(hash_leaf).collect())
}

/// Compares recomputed tiles with the stored ones, in order; returns how many.
fn compare_tiles(store: &dyn LogStore, expected: &[RebuiltTile]) -> Result<u64, FsckFinding> {
    if expected.is_empty() {
        return Ok(0);
    }
    let ids: Vec<TileId> = expected.iter().map(|t| t.id).collect();
    let stored = match store.read_tiles(&ids) {
        Ok(stored) => stored,
        Err(_) => {
            let mut stored = Vec::with_capacity(ids.len());
            for id in &ids {
                let one = store.read_tiles(&[*id]).map_err(|e| FsckFinding::Tile {
                    tile: *id,
                    reason: format!("read failed: {e}"),
                })?;
                stored.extend(one);
            }
            stored
        }
    };
    for (tile, stored) in expected.iter().zip(stored) {
        let want = tile_bytes(&tile.hashes);
        let reason = match stored {
            None => Some("missing".to_owned()),
            Some(bytes) if bytes.len() < want.len() => Some(format!(
                "holds {} bytes, {} expected",
                bytes.len(),
                want.len()
            )),
            Some(bytes) if bytes.get(..want.len()) != Some(want.as_slice()) => {
                Some("its hashes differ from the ones the entry bundles give".to_owned())
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            return Err(FsckFinding::Tile {
                tile: tile.id,
                reason,
            });
        }
    }
    Ok(expected.len() as u64)
}
