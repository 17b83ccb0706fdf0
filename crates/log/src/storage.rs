//! The storage trait the sequencer is written against, and the in-memory implementation
//! used by the log's own tests.
//!
//! The layout is tile-shaped (C2SP tlog-tiles): hash tiles of up to 256 hashes and entry
//! bundles of up to 256 entries are stored as values, one key each. A partial tile or
//! bundle is a prefix of the full one and grows round by round: the sequencer knows
//! which bytes are new and hands the store only those ([`ValueWrite::Append`]), also in
//! the round that fills it, or a whole value when a tile or bundle starts in the round
//! ([`ValueWrite::Put`]). A reader truncates a stored value to the width a published
//! size needs, so every published size stays servable.
//!
//! Tiles are named by [`TileId`], but a store keys them by level and index alone: the
//! partial tile of every width lives under one key and grows in place, so the width in
//! an id is what the caller needs (reads) or what the value holds once written (writes).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;

use merklog_merkle::tile::TileId;
use merklog_merkle::{HASH_SIZE, Hash};

use crate::StorageError;

/// Who the log is: fixed when the data directory is created, checked at every open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMetadata {
    /// The checkpoint origin line (also the signing key's name).
    pub origin: String,
    /// The log's public key as signed-note verifier key text (`name+id+base64`).
    pub verifier_key: String,
    /// Signature algorithm of the log key, e.g. [`ALGORITHM_ED25519`].
    pub algorithm: String,
}

/// The only algorithm the log signs with today.
pub const ALGORITHM_ED25519: &str = "ed25519";

/// How a round changes the value of one tile or bundle key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueWrite {
    /// The whole value, replacing whatever the key holds: a tile or bundle that starts
    /// in this round (partial, or already full).
    Put(Vec<u8>),
    /// The key holds exactly `offset` bytes (what earlier rounds stored; none if it is
    /// absent) and `bytes` follow them: a tile or bundle that grew, possibly to full.
    Append {
        /// Length of the stored value this extends.
        offset: usize,
        /// The new bytes.
        bytes: Vec<u8>,
    },
}

impl ValueWrite {
    /// The value after this write, given the stored one (`None`: absent). `None` if an
    /// append does not start where the stored value ends.
    pub fn apply(&self, stored: Option<&[u8]>) -> Option<Vec<u8>> {
        match self {
            ValueWrite::Put(value) => Some(value.clone()),
            ValueWrite::Append { offset, bytes } => {
                let stored = stored.unwrap_or_default();
                (stored.len() == *offset).then(|| [stored, bytes].concat())
            }
        }
    }
}

/// Everything one integration round persists, written as ONE atomic, synced batch.
///
/// A tile or bundle listed here is either put whole or extended by its new bytes
/// ([`ValueWrite`]); at most one write per key. Rounds are committed in order, each
/// after the previous one returned, so an append's offset is the length the previous
/// round left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundWrite {
    /// Hash tiles (full or right-edge partial), 32 bytes per hash; each id's width is
    /// the number of hashes the tile holds once the write is applied.
    pub tiles: Vec<(TileId, ValueWrite)>,
    /// Entry bundles by bundle index (full or right-edge partial).
    pub bundles: Vec<(u64, ValueWrite)>,
    /// New dedup rows: leaf hash -> leaf index.
    pub dedup: Vec<(Hash, u64)>,
    /// The new signed checkpoint: stored under its size and as the latest one.
    pub checkpoint: Option<(u64, Vec<u8>)>,
    /// New unique-key rows (see [`KeyRecord`]): never one for a key already stored.
    pub keys: Vec<(Bytes, KeyRecord)>,
    /// New index-term rows: the key ([`term_key`](crate::term_key): term, time, leaf
    /// hash) and the entry's record, in key order (a sorted store inserts neighbouring
    /// keys cheaply, and the sequencer sorts them off the writer's thread). Unique per
    /// entry, so they never overwrite another entry's row.
    pub terms: Vec<(Vec<u8>, KeyRecord)>,
}

/// What the unique-key index holds for a key: which leaf claimed it, and when.
///
/// A caller may give an entry an opaque unique key (for signed events, the source
/// and its sequence number). The log lets at most one leaf hold a key: the same
/// entry again is a duplicate, a different entry with a claimed key is a conflict
/// ([`crate::LogError::KeyConflict`]). The log does not interpret keys; it stores
/// them in the round's synced write, next to the leaves that claimed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRecord {
    /// Index of the leaf that claimed the key.
    pub index: u64,
    /// That leaf's RFC 6962 hash.
    pub leaf_hash: Hash,
    /// When the round that stored the claim was prepared: Unix milliseconds.
    pub recorded_ms: u64,
}

/// Length of an encoded [`KeyRecord`].
pub const KEY_RECORD_LEN: usize = 48;

impl KeyRecord {
    /// `index` (u64 BE) || leaf hash (32) || `recorded_ms` (u64 BE).
    pub fn encode(&self) -> [u8; KEY_RECORD_LEN] {
        let mut out = [0u8; KEY_RECORD_LEN];
        out[..8].copy_from_slice(&self.index.to_be_bytes());
        out[8..40].copy_from_slice(self.leaf_hash.as_bytes());
        out[40..].copy_from_slice(&self.recorded_ms.to_be_bytes());
        out
    }

    /// Decodes [`KeyRecord::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Option<KeyRecord> {
        if bytes.len() != KEY_RECORD_LEN {
            return None;
        }
        let index = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let leaf_hash = Hash::try_from(bytes.get(8..40)?).ok()?;
        let recorded_ms = u64::from_be_bytes(bytes.get(40..)?.try_into().ok()?);
        Some(KeyRecord {
            index,
            leaf_hash,
            recorded_ms,
        })
    }
}

/// Storage for one log, sized to what the sequencer and the readers need.
///
/// Implementations must be safe to call from many threads at once: the sequencer
/// thread commits while readers (on `spawn_blocking` threads) read. Every call may block.
pub trait LogStore: Send + Sync + 'static {
    /// The log's identity, `None` if the store was never initialised.
    fn metadata(&self) -> Result<Option<LogMetadata>, StorageError>;
    /// The latest durable signed checkpoint (note bytes), `None` for an empty store.
    fn latest_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError>;
    /// The signed checkpoint stored for `size`, if any.
    fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, StorageError>;
    /// Hash tiles, in ONE batched read; `result[i]` is the value stored for the level and
    /// index of `tiles[i]`, whole: it may hold more hashes than `tiles[i].width` (the
    /// tile grew since), and the caller truncates it.
    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Option<Vec<u8>>>, StorageError>;
    /// Entry bundles by index, in ONE batched read.
    fn read_bundles(&self, indexes: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StorageError>;
    /// Dedup index lookups, in ONE batched read; `result[i]` is the index of
    /// `leaf_hashes[i]` if it was ever committed.
    fn lookup_leaves(&self, leaf_hashes: &[Hash]) -> Result<Vec<Option<u64>>, StorageError>;
    /// Writes one round atomically and durably (synced) before returning. After an
    /// error the round may or may not be stored; the log reloads its state. A store
    /// may trust an append's offset (the log computes it from what it stored) or check
    /// it and refuse the round.
    fn commit(&self, round: &RoundWrite) -> Result<(), StorageError>;

    /// Stores a published version of an already-stored checkpoint (the same signed
    /// body, with witness cosignature lines added), synced: it replaces the note kept
    /// for `size` and becomes the record returned by [`published_checkpoint`]. The
    /// "latest" checkpoint written by [`commit`] is left alone (only the sequencer
    /// moves it, so recovery never races a cosignature write).
    ///
    /// Implementations must refuse (error) when no checkpoint is stored for `size` or
    /// when `note`'s text differs from it ([`same_checkpoint_body`]). The default
    /// implementation refuses always (a store that cannot keep cosigned checkpoints: the
    /// log still publishes, and re-gathers cosignatures after a restart).
    ///
    /// [`published_checkpoint`]: LogStore::published_checkpoint
    /// [`commit`]: LogStore::commit
    fn store_cosigned_checkpoint(&self, size: u64, note: &[u8]) -> Result<(), StorageError> {
        let _ = (size, note);
        Err(StorageError::new(
            "this store cannot keep cosigned checkpoints",
        ))
    }

    /// The note last stored by [`store_cosigned_checkpoint`], if any: the latest
    /// checkpoint the log published with a witness policy. The default has none.
    ///
    /// [`store_cosigned_checkpoint`]: LogStore::store_cosigned_checkpoint
    fn published_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(None)
    }

    /// Why this store will never commit again, if it will not: a store shared by
    /// several sequencers (cluster mode) found that another one signed since it last
    /// committed. Asked after a failed [`commit`]; `Some` makes the log refuse to sign
    /// for good (it keeps serving reads), so nothing more is signed or published. The
    /// default is never fenced.
    ///
    /// [`commit`]: LogStore::commit
    fn fenced(&self) -> Option<String> {
        None
    }

    /// Unique-key lookups, in ONE batched read; `result[i]` is the record of
    /// `keys[i]` if a committed round claimed it. The default refuses: a store
    /// without the index cannot take keyed entries (plain appends are unaffected).
    fn lookup_keys(&self, keys: &[Bytes]) -> Result<Vec<Option<KeyRecord>>, StorageError> {
        let _ = keys;
        Err(StorageError::new("this store has no unique-key index"))
    }

    /// Up to `limit` unique-key rows with `start <= key < end`, in key (byte) order.
    fn scan_keys(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, StorageError> {
        let _ = (start, end, limit);
        Err(StorageError::new("this store has no unique-key index"))
    }

    /// Index-term lookups (keys as [`term_key`](crate::term_key) builds them), in ONE
    /// batched read. The default refuses: a store without the term index cannot take
    /// entries with terms (plain appends are unaffected).
    fn lookup_terms(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<KeyRecord>>, StorageError> {
        let _ = keys;
        Err(StorageError::new("this store has no index of terms"))
    }

    /// Up to `limit` index-term rows with `start <= key < end`, in key (byte) order:
    /// for one term's range ([`term_range`](crate::term_range)), in time order.
    fn scan_terms(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, StorageError> {
        let _ = (start, end, limit);
        Err(StorageError::new("this store has no index of terms"))
    }
}

/// Whether two signed notes carry the same text (the part before the blank line that
/// starts the signatures): the same checkpoint, whatever signature lines follow.
pub fn same_checkpoint_body(a: &[u8], b: &[u8]) -> bool {
    fn body(note: &[u8]) -> Option<&[u8]> {
        let end = note.windows(2).position(|w| w == b"\n\n")?;
        note.get(..end + 2)
    }
    matches!((body(a), body(b)), (Some(x), Some(y)) if x == y)
}

/// A [`LogStore`] in memory: fast tests of the sequencer, no durability.
#[derive(Debug)]
pub struct MemoryStore {
    metadata: LogMetadata,
    data: Mutex<MemoryData>,
}

/// Up to `limit` records of `map` with keys in `start..end`, in key order.
fn scan_range(
    map: &BTreeMap<Vec<u8>, KeyRecord>,
    start: &[u8],
    end: &[u8],
    limit: usize,
) -> Vec<(Vec<u8>, KeyRecord)> {
    if start >= end {
        return Vec::new();
    }
    map.range(start.to_vec()..end.to_vec())
        .take(limit)
        .map(|(key, record)| (key.clone(), *record))
        .collect()
}

#[derive(Debug, Default)]
struct MemoryData {
    /// By tile level and index.
    tiles: HashMap<(u8, u64), Vec<u8>>,
    bundles: HashMap<u64, Vec<u8>>,
    dedup: HashMap<Hash, u64>,
    checkpoints: HashMap<u64, Vec<u8>>,
    latest: Option<Vec<u8>>,
    published: Option<Vec<u8>>,
    keys: BTreeMap<Vec<u8>, KeyRecord>,
    terms: BTreeMap<Vec<u8>, KeyRecord>,
}

impl MemoryStore {
    /// An empty store for the log described by `metadata`.
    pub fn new(metadata: LogMetadata) -> Self {
        Self {
            metadata,
            data: Mutex::new(MemoryData::default()),
        }
    }

    fn data(&self) -> Result<std::sync::MutexGuard<'_, MemoryData>, StorageError> {
        self.data
            .lock()
            .map_err(|_| StorageError::new("memory store lock poisoned"))
    }
}

impl LogStore for MemoryStore {
    fn metadata(&self) -> Result<Option<LogMetadata>, StorageError> {
        Ok(Some(self.metadata.clone()))
    }

    fn latest_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.data()?.latest.clone())
    }

    fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.data()?.checkpoints.get(&size).cloned())
    }

    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let data = self.data()?;
        Ok(tiles
            .iter()
            .map(|t| data.tiles.get(&(t.level, t.index)).cloned())
            .collect())
    }

    fn read_bundles(&self, indexes: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let data = self.data()?;
        Ok(indexes
            .iter()
            .map(|i| data.bundles.get(i).cloned())
            .collect())
    }

    fn lookup_leaves(&self, leaf_hashes: &[Hash]) -> Result<Vec<Option<u64>>, StorageError> {
        let data = self.data()?;
        Ok(leaf_hashes
            .iter()
            .map(|h| data.dedup.get(h).copied())
            .collect())
    }

    /// Checks every append's offset against the stored value, and every tile's width
    /// against the value written, and refuses the whole round (storing nothing) if one
    /// does not match.
    fn commit(&self, round: &RoundWrite) -> Result<(), StorageError> {
        let mut data = self.data()?;
        let tiles = applied(
            &data.tiles,
            round.tiles.iter().map(|(t, w)| ((t.level, t.index), w)),
            |(level, index)| format!("tile {level}/{index}"),
        )?;
        for ((_, value), (tile, _)) in tiles.iter().zip(&round.tiles) {
            if value.len() != usize::from(tile.width) * HASH_SIZE {
                return Err(StorageError::new(format!(
                    "tile {}/{} would hold {} bytes, not {} hashes",
                    tile.level,
                    tile.index,
                    value.len(),
                    tile.width
                )));
            }
        }
        let bundles = applied(
            &data.bundles,
            round.bundles.iter().map(|(i, w)| (*i, w)),
            |i| format!("bundle {i}"),
        )?;
        data.tiles.extend(tiles);
        data.bundles.extend(bundles);
        for (hash, index) in &round.dedup {
            data.dedup.insert(*hash, *index);
        }
        for (key, record) in &round.keys {
            data.keys.insert(key.to_vec(), *record);
        }
        for (key, record) in &round.terms {
            data.terms.insert(key.clone(), *record);
        }
        if let Some((size, note)) = &round.checkpoint {
            data.checkpoints.insert(*size, note.clone());
            data.latest = Some(note.clone());
        }
        Ok(())
    }

    fn store_cosigned_checkpoint(&self, size: u64, note: &[u8]) -> Result<(), StorageError> {
        let mut data = self.data()?;
        let Some(stored) = data.checkpoints.get(&size) else {
            return Err(StorageError::new(format!(
                "no checkpoint is stored for size {size}"
            )));
        };
        if !same_checkpoint_body(stored, note) {
            return Err(StorageError::new(format!(
                "the cosigned note is not the checkpoint stored for size {size}"
            )));
        }
        data.checkpoints.insert(size, note.to_vec());
        data.published = Some(note.to_vec());
        Ok(())
    }

    fn published_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.data()?.published.clone())
    }

    fn lookup_keys(&self, keys: &[Bytes]) -> Result<Vec<Option<KeyRecord>>, StorageError> {
        let data = self.data()?;
        Ok(keys
            .iter()
            .map(|key| data.keys.get(key.as_ref()).copied())
            .collect())
    }

    fn scan_keys(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, StorageError> {
        Ok(scan_range(&self.data()?.keys, start, end, limit))
    }

    fn lookup_terms(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<KeyRecord>>, StorageError> {
        let data = self.data()?;
        Ok(keys
            .iter()
            .map(|key| data.terms.get(key).copied())
            .collect())
    }

    fn scan_terms(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, StorageError> {
        Ok(scan_range(&self.data()?.terms, start, end, limit))
    }
}

/// The values `writes` leave under their keys, or an error naming the first append
/// that does not extend the stored value.
fn applied<'a, K: Copy + Eq + std::hash::Hash>(
    stored: &HashMap<K, Vec<u8>>,
    writes: impl Iterator<Item = (K, &'a ValueWrite)>,
    name: impl Fn(&K) -> String,
) -> Result<Vec<(K, Vec<u8>)>, StorageError> {
    writes
        .map(|(key, write)| {
            let old = stored.get(&key).map(Vec::as_slice);
            let new = write.apply(old).ok_or_else(|| {
                StorageError::new(format!(
                    "{} holds {} bytes, not the appended-to length",
                    name(&key),
                    old.map_or(0, <[u8]>::len)
                ))
            })?;
            Ok((key, new))
        })
        .collect()
}
