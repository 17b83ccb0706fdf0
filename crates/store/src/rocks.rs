//! [`RocksStore`]: the RocksDB implementation of [`LogStore`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use merklog_log::{KeyRecord, LogMetadata, LogStore, RoundWrite, StorageError};
use merklog_merkle::Hash;
use merklog_merkle::tile::TileId;
use rocksdb::statistics::{StatsLevel, Ticker};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    ErrorKind, Options, WriteBatch, WriteOptions,
};

use crate::StoreError;
use crate::edge::{APPEND_OPERATOR, add_to_batch, append_merge};
use crate::keys::{
    CF_CHECKPOINTS, CF_DEDUP, CF_ENTRIES, CF_KEYS, CF_META, CF_TERMS, CF_TILES, LogId,
    META_ALGORITHM, META_FORMAT_VERSION, META_ORIGIN, META_VERIFIER_KEY, bundle_key,
    checkpoint_key, decode_index, dedup_key, encode_index, latest_checkpoint_key, meta_key,
    parse_term_row_key, published_checkpoint_key, term_row_key, tile_key, unique_key,
};

/// The storage format this build writes. Version 2 stores right-edge growth as merge
/// operands (see the crate docs); version 1 directories (whole values only) are read
/// as they are and marked version 2 at open, since the first commit may add operands a
/// version-1 build could not read.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this build opens.
const OLDEST_FORMAT_VERSION: u32 = 1;

/// Options of [`RocksStore::open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Which log of the database this handle serves (0 until multi-log servers exist).
    pub log_id: u32,
    /// Shared block cache for all column families, in bytes.
    pub block_cache_bytes: usize,
    /// Memtable size per column family, in bytes.
    pub write_buffer_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            log_id: 0,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 32 << 20,
        }
    }
}

/// A tile-shaped log store in a RocksDB data directory (layout in the crate docs).
///
/// Thread-safe: the sequencer commits while readers read. One process per directory:
/// RocksDB's LOCK file refuses a second one ([`StoreError::Locked`]).
pub struct RocksStore {
    db: DB,
    /// The options the database was opened with; they hold its statistics.
    options: Options,
    log: LogId,
    path: PathBuf,
    metadata: Mutex<Option<LogMetadata>>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Opens (creating if needed) the data directory with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, &StoreOptions::default())
    }

    /// Opens (creating if needed) the data directory. Checks the stored format version;
    /// the log's metadata may be absent (a new directory) until [`initialize`](Self::initialize).
    pub fn open_with(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let descriptors = crate::keys::COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_options(name, &cache, options)));
        let db_options = db_options();
        let db = DB::open_cf_descriptors(&db_options, &path, descriptors)
            .map_err(|e| open_error(e, &path))?;
        let store = Self {
            db,
            options: db_options,
            log: LogId(options.log_id),
            path,
            metadata: Mutex::new(None),
        };
        let metadata = store.read_metadata()?;
        *store
            .metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = metadata;
        Ok(store)
    }

    /// Opens an existing data directory read-only, for offline checks: nothing is
    /// written, the directory is not created, and a running server may keep it open
    /// meanwhile (its latest unflushed writes may then be missing from this view).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if !path.join("CURRENT").is_file() {
            return Err(StoreError::Io {
                path,
                message: "no RocksDB database here (CURRENT is missing)".into(),
            });
        }
        let options = StoreOptions::default();
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        // Only the families the directory has: an older build's lacks the newer ones
        // (their reads then fail naming the family).
        let descriptors = existing_families(&path)
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options(name, &cache, &options)));
        let mut db_options = db_options();
        db_options.create_if_missing(false);
        db_options.create_missing_column_families(false);
        let db = DB::open_cf_descriptors_read_only(&db_options, &path, descriptors, false)
            .map_err(|e| open_error(e, &path))?;
        let store = Self {
            db,
            options: db_options,
            log: LogId(options.log_id),
            path,
            metadata: Mutex::new(None),
        };
        let metadata = store.read_metadata_read_only()?;
        *store
            .metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = metadata;
        Ok(store)
    }

    /// Opens the data directory and initialises or checks its metadata in one go.
    pub fn open_for(path: impl AsRef<Path>, metadata: &LogMetadata) -> Result<Self, StoreError> {
        let store = Self::open(path)?;
        store.initialize(metadata)?;
        Ok(store)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times RocksDB synced the write-ahead log since this store was opened
    /// (its `rocksdb.wal.synced` ticker). Every committed round adds at least one.
    pub fn wal_syncs(&self) -> u64 {
        self.options.get_ticker_count(Ticker::WalFileSynced)
    }

    /// Writes the metadata record (format version, origin, verifier key, algorithm) if
    /// the directory has none, with a synced write; otherwise checks that it equals
    /// `metadata` and refuses a different log.
    pub fn initialize(&self, metadata: &LogMetadata) -> Result<(), StoreError> {
        let mut cached = self.metadata.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stored) = &*cached {
            return check_same(stored, metadata);
        }
        let cf = self.cf(CF_META)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf,
            meta_key(self.log, META_FORMAT_VERSION),
            FORMAT_VERSION.to_be_bytes(),
        );
        batch.put_cf(
            cf,
            meta_key(self.log, META_ORIGIN),
            metadata.origin.as_bytes(),
        );
        batch.put_cf(
            cf,
            meta_key(self.log, META_VERIFIER_KEY),
            metadata.verifier_key.as_bytes(),
        );
        batch.put_cf(
            cf,
            meta_key(self.log, META_ALGORITHM),
            metadata.algorithm.as_bytes(),
        );
        // Durable here: the whole metadata record (one atomic, synced batch). A crash
        // before this returns leaves no record at all, so the next start initialises the
        // directory again; there is never a half-written identity.
        self.db.write_opt(batch, &synced())?;
        *cached = Some(metadata.clone());
        Ok(())
    }

    /// Like `read_metadata` without the version upgrade write (a read-only handle
    /// cannot write; an old version reads the same).
    fn read_metadata_read_only(&self) -> Result<Option<LogMetadata>, StoreError> {
        self.read_metadata_with(false)
    }

    fn read_metadata(&self) -> Result<Option<LogMetadata>, StoreError> {
        self.read_metadata_with(true)
    }

    fn read_metadata_with(&self, upgrade: bool) -> Result<Option<LogMetadata>, StoreError> {
        let cf = self.cf(CF_META)?;
        let get = |name: &[u8]| self.db.get_cf(cf, meta_key(self.log, name));
        let Some(version) = get(META_FORMAT_VERSION)? else {
            return Ok(None);
        };
        let version = <[u8; 4]>::try_from(version.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("format version is not 4 bytes".into()))?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(StoreError::UnsupportedFormat {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if upgrade && version < FORMAT_VERSION {
            // Before any commit of this build can add merge operands: a version-1 build
            // must refuse the directory from now on instead of failing on a read.
            self.db.put_cf_opt(
                cf,
                meta_key(self.log, META_FORMAT_VERSION),
                FORMAT_VERSION.to_be_bytes(),
                &synced(),
            )?;
        }
        let text = |name: &'static [u8]| -> Result<String, StoreError> {
            let label = String::from_utf8_lossy(name);
            let value = get(name)?.ok_or_else(|| {
                StoreError::Corrupt(format!("metadata record {label} is missing"))
            })?;
            String::from_utf8(value)
                .map_err(|_| StoreError::Corrupt(format!("metadata record {label} is not UTF-8")))
        };
        Ok(Some(LogMetadata {
            origin: text(META_ORIGIN)?,
            verifier_key: text(META_VERIFIER_KEY)?,
            algorithm: text(META_ALGORITHM)?,
        }))
    }

    fn cf(&self, name: &str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Corrupt(format!("column family {name} is missing")))
    }

    fn cf_for_log(&self, name: &str) -> Result<&ColumnFamily, StorageError> {
        self.cf(name).map_err(|e| StorageError::new(e.to_string()))
    }

    /// One batched multi-get in a column family.
    fn multi_get<K: AsRef<[u8]>>(
        &self,
        cf: &str,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let cf = self.cf_for_log(cf)?;
        self.db
            .batched_multi_get_cf(cf, keys.iter(), false)
            .into_iter()
            .map(|value| {
                value
                    .map(|slice| slice.map(|s| s.to_vec()))
                    .map_err(storage_error)
            })
            .collect()
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let cf = self.cf_for_log(cf)?;
        self.db.get_cf(cf, key).map_err(storage_error)
    }
}

/// The column families a directory holds, of those this crate uses: a directory
/// written by an older build may lack the newer ones, which a read-only or secondary
/// open cannot create.
pub(crate) fn existing_families(path: &std::path::Path) -> Vec<&'static str> {
    let found = DB::list_cf(&Options::default(), path).unwrap_or_default();
    crate::keys::COLUMN_FAMILIES
        .into_iter()
        .filter(|name| found.iter().any(|f| f == name))
        .collect()
}

fn check_same(stored: &LogMetadata, given: &LogMetadata) -> Result<(), StoreError> {
    let fields = [
        ("origin", &stored.origin, &given.origin),
        ("verifier_key", &stored.verifier_key, &given.verifier_key),
        ("algorithm", &stored.algorithm, &given.algorithm),
    ];
    for (field, stored, given) in fields {
        if stored != given {
            return Err(StoreError::MetadataMismatch {
                field,
                stored: stored.clone(),
                given: given.clone(),
            });
        }
    }
    Ok(())
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

fn open_error(error: rocksdb::Error, path: &Path) -> StoreError {
    // RocksDB reports a held LOCK as an IO error: "While lock file: <dir>/LOCK: Resource
    // temporarily unavailable" from another process, "lock hold by current process"
    // from this one.
    let message = error.as_ref().to_ascii_lowercase();
    if error.kind() == ErrorKind::IOError && message.contains("lock") {
        return StoreError::Locked {
            path: path.to_path_buf(),
        };
    }
    StoreError::from(error)
}

pub(crate) fn db_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    // Two cores: one flush and one compaction at a time is plenty.
    options.set_max_background_jobs(2);
    // Cap all memtables together; smooth background writes instead of bursts.
    options.set_db_write_buffer_size(256 << 20);
    options.set_bytes_per_sync(1 << 20);
    options.set_max_total_wal_size(256 << 20);
    options.set_keep_log_file_num(10);
    // Counters only (no timers or histograms): cheap, and they let the WAL syncs be
    // checked ([`RocksStore::wal_syncs`]).
    options.enable_statistics();
    options.set_statistics_level(StatsLevel::ExceptHistogramOrTimers);
    options
}

pub(crate) fn cf_options(name: &str, cache: &Cache, store: &StoreOptions) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut options = Options::default();
    options.set_write_buffer_size(store.write_buffer_bytes);
    match name {
        CF_DEDUP => {
            // Most lookups are for new entries and miss: bloom filters answer those
            // without touching data blocks, in SST files and in the memtable.
            table.set_bloom_filter(10.0, false);
            table.set_whole_key_filtering(true);
            options.set_memtable_prefix_bloom_ratio(0.1);
            options.set_memtable_whole_key_filtering(true);
            // Keys are random hashes and values 8-byte indexes: nothing to compress.
            options.set_compression_type(DBCompressionType::None);
            // Keep this family's filter (and index) blocks out of the shared block cache:
            // held by the open table readers, they are never evicted by tile and bundle
            // blocks and need no cache lookup per probe. With them cached, a W3-shaped
            // load (8,000 entries per round) fell from ~340,000 to ~63,000 entries/s as
            // the log grew to 8 M entries (dedup lookups 80% of the time); without,
            // ~200,000/s at 8 M (`examples/store_grow.rs`). Cost: ~10 bits per entry of
            // memory outside the cache (12.5 MB at 10 M entries).
            table.set_cache_index_and_filter_blocks(false);
            table.set_optimize_filters_for_memory(true);
        }
        CF_TILES => {
            // SHA-256 hashes do not compress.
            options.set_compression_type(DBCompressionType::None);
            options.set_merge_operator_associative(APPEND_OPERATOR, append_merge);
        }
        CF_ENTRIES => {
            // Entries are opaque but often text-like; LZ4 is cheap when it does not help.
            options.set_compression_type(DBCompressionType::Lz4);
            options.set_merge_operator_associative(APPEND_OPERATOR, append_merge);
        }
        CF_CHECKPOINTS => {
            options.set_compression_type(DBCompressionType::Lz4);
        }
        CF_TERMS => {
            // Read by range scans of one term; terms repeat, so blocks compress.
            options.set_compression_type(DBCompressionType::Lz4);
        }
        CF_KEYS => {
            // Like dedup: most lookups are for keys not yet claimed.
            table.set_bloom_filter(10.0, false);
            table.set_whole_key_filtering(true);
            options.set_memtable_prefix_bloom_ratio(0.1);
            options.set_memtable_whole_key_filtering(true);
            options.set_compression_type(DBCompressionType::None);
        }
        _ => options.set_compression_type(DBCompressionType::None),
    }
    options.set_block_based_table_factory(&table);
    options
}

impl LogStore for RocksStore {
    /// The metadata read at open or written by [`RocksStore::initialize`]; `None` for a
    /// directory that was never initialised.
    fn metadata(&self) -> Result<Option<LogMetadata>, StorageError> {
        Ok(self
            .metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn latest_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(CF_CHECKPOINTS, &latest_checkpoint_key(self.log))
    }

    fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(CF_CHECKPOINTS, &checkpoint_key(self.log, size))
    }

    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let keys: Vec<[u8; 13]> = tiles.iter().map(|t| tile_key(self.log, t)).collect();
        self.multi_get(CF_TILES, &keys)
    }

    fn read_bundles(&self, indexes: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let keys: Vec<[u8; 12]> = indexes.iter().map(|i| bundle_key(self.log, *i)).collect();
        self.multi_get(CF_ENTRIES, &keys)
    }

    fn lookup_leaves(&self, leaf_hashes: &[Hash]) -> Result<Vec<Option<u64>>, StorageError> {
        let keys: Vec<[u8; 36]> = leaf_hashes.iter().map(|h| dedup_key(self.log, h)).collect();
        self.multi_get(CF_DEDUP, &keys)?
            .into_iter()
            .map(|value| {
                value
                    .map(|v| {
                        decode_index(&v)
                            .ok_or_else(|| StorageError::new("dedup value is not 8 bytes"))
                    })
                    .transpose()
            })
            .collect()
    }

    fn commit(&self, round: &RoundWrite) -> Result<(), StorageError> {
        let tiles = self.cf_for_log(CF_TILES)?;
        let entries = self.cf_for_log(CF_ENTRIES)?;
        let dedup = self.cf_for_log(CF_DEDUP)?;
        let checkpoints = self.cf_for_log(CF_CHECKPOINTS)?;
        let mut batch = WriteBatch::default();
        // Right-edge values: merge operands for the new bytes of a growing partial
        // value, puts for whole ones (`edge.rs`).
        for (tile, write) in &round.tiles {
            add_to_batch(&mut batch, tiles, &tile_key(self.log, tile), write);
        }
        for (index, write) in &round.bundles {
            add_to_batch(&mut batch, entries, &bundle_key(self.log, *index), write);
        }
        // Random hashes, inserted in key order: the memtable skip list reuses its search
        // path ("splice") between neighbouring keys instead of searching from the top.
        let mut rows: Vec<([u8; 36], [u8; 8])> = round
            .dedup
            .iter()
            .map(|(hash, index)| (dedup_key(self.log, hash), encode_index(*index)))
            .collect();
        rows.sort_unstable_by_key(|row| row.0);
        for (key, value) in &rows {
            batch.put_cf(dedup, key, value);
        }
        if !round.keys.is_empty() {
            let keys = self.cf_for_log(CF_KEYS)?;
            for (key, record) in &round.keys {
                batch.put_cf(keys, unique_key(self.log, key), record.encode());
            }
        }
        // Index-term rows in the same batch: after the sync below the entries and
        // their rows are durable together; a crash before leaves neither. They come in
        // key order, so the skip list reuses its search path as for the dedup rows.
        if !round.terms.is_empty() {
            let terms = self.cf_for_log(CF_TERMS)?;
            for (key, record) in &round.terms {
                batch.put_cf(terms, term_row_key(self.log, key), record.encode());
            }
        }
        if let Some((size, note)) = &round.checkpoint {
            batch.put_cf(checkpoints, checkpoint_key(self.log, *size), note);
            batch.put_cf(checkpoints, latest_checkpoint_key(self.log), note);
        }
        // ONE atomic batch, synced to the WAL before this returns: after a crash every
        // key, right-edge operands included, holds its value before or after the round.
        self.db.write_opt(batch, &synced()).map_err(storage_error)
    }

    // --- witness pipeline: cosigned checkpoints ---

    /// Replaces the note kept for `size` and writes the "published" record, in one
    /// synced batch; "latest" is left to `commit` (no read-modify-write races it). The
    /// published record's key is log id || "published" (13 bytes: never a size key
    /// (12) nor the latest key (10)).
    fn store_cosigned_checkpoint(&self, size: u64, note: &[u8]) -> Result<(), StorageError> {
        let checkpoints = self.cf_for_log(CF_CHECKPOINTS)?;
        let key = checkpoint_key(self.log, size);
        let Some(stored) = self.get(CF_CHECKPOINTS, &key)? else {
            return Err(StorageError::new(format!(
                "no checkpoint is stored for size {size}"
            )));
        };
        if !merklog_log::same_checkpoint_body(&stored, note) {
            return Err(StorageError::new(format!(
                "the cosigned note is not the checkpoint stored for size {size}"
            )));
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(checkpoints, key, note);
        batch.put_cf(checkpoints, published_checkpoint_key(self.log), note);
        self.db.write_opt(batch, &synced()).map_err(storage_error)
    }

    fn published_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(CF_CHECKPOINTS, &published_checkpoint_key(self.log))
    }

    // --- unique keys ---

    fn lookup_keys(&self, keys: &[Bytes]) -> Result<Vec<Option<KeyRecord>>, StorageError> {
        let rows: Vec<Vec<u8>> = keys.iter().map(|k| unique_key(self.log, k)).collect();
        self.multi_get(CF_KEYS, &rows)?
            .into_iter()
            .map(|value| value.map(|v| decode_record(&v)).transpose())
            .collect()
    }

    fn scan_keys(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, StorageError> {
        self.scan_rows(CF_KEYS, start, end, limit)
    }

    // --- index of terms ---

    fn lookup_terms(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<KeyRecord>>, StorageError> {
        let rows: Vec<Vec<u8>> = keys.iter().map(|k| term_row_key(self.log, k)).collect();
        self.multi_get(CF_TERMS, &rows)?
            .into_iter()
            .map(|value| value.map(|v| decode_record(&v)).transpose())
            .collect()
    }

    fn scan_terms(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, StorageError> {
        self.scan_rows(CF_TERMS, start, end, limit)
    }
}

impl RocksStore {
    /// Up to `limit` rows of `cf` with `start <= key < end` (keys without the log id),
    /// in key order.
    fn scan_rows(
        &self,
        cf: &str,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, StorageError> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let cf = self.cf_for_log(cf)?;
        let mut options = rocksdb::ReadOptions::default();
        options.set_iterate_upper_bound(unique_key(self.log, end));
        let first = unique_key(self.log, start);
        let iter = self.db.iterator_cf_opt(
            cf,
            options,
            rocksdb::IteratorMode::From(&first, rocksdb::Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(storage_error)?;
            let Some(caller_key) = parse_term_row_key(self.log, &key) else {
                break;
            };
            out.push((caller_key.to_vec(), decode_record(&value)?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

fn decode_record(value: &[u8]) -> Result<KeyRecord, StorageError> {
    KeyRecord::decode(value).ok_or_else(|| StorageError::new("a unique-key record is malformed"))
}

/// A RocksDB error as the log sees it: a checksum mismatch or another sign of
/// damaged files keeps its kind, so the log answers it as data loss, not as a
/// failure a retry could cure.
fn storage_error(error: rocksdb::Error) -> StorageError {
    if error.kind() == ErrorKind::Corruption {
        StorageError::corruption(error.into_string())
    } else {
        StorageError::new(error.into_string())
    }
}
