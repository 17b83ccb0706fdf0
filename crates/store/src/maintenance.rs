//! Online backup of a data directory that a running server holds open.
//!
//! RocksDB's LOCK file lets one process open the database for writing, and its
//! checkpoint (hard-link) API needs that primary handle, which lives inside the
//! server. A backup from another process therefore opens the database as a
//! *secondary* instance (no lock; it follows the primary's MANIFEST and WAL),
//! catches up with the primary once, and copies every row of every column family
//! into a new database. The secondary's view only changes when it is told to catch
//! up, and a write batch (one round) is replayed whole or not at all, so the copy
//! is a consistent point in time, between two rounds. Reading every row also
//! checks every block checksum: a damaged source fails the backup instead of
//! being copied.

use std::path::{Path, PathBuf};

use rocksdb::{Cache, ColumnFamilyDescriptor, DB, IteratorMode, WriteBatch, WriteOptions};

use crate::StoreError;
use crate::keys::COLUMN_FAMILIES;
use crate::rocks::{StoreOptions, cf_options, db_options, existing_families};

/// Flush the copy every this many bytes of rows.
const BATCH_BYTES: usize = 4 << 20;

/// What a backup copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackupSummary {
    /// Rows (keys) copied, over all column families.
    pub rows: u64,
    /// Key and value bytes copied.
    pub bytes: u64,
}

fn io(path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

/// Copies the database at `source` (which a server may hold open) into a new
/// database at `dest`, which must not exist yet. See the module docs.
pub fn backup(source: &Path, dest: &Path) -> Result<BackupSummary, StoreError> {
    if !source.join("CURRENT").is_file() {
        return Err(io(source, "no RocksDB database here (CURRENT is missing)"));
    }
    if dest.exists() {
        return Err(io(dest, "already exists; back up into a new directory"));
    }
    let scratch = secondary_dir(dest);
    std::fs::create_dir_all(&scratch).map_err(|e| io(&scratch, e))?;
    let result = copy(source, &scratch, dest);
    let _ = std::fs::remove_dir_all(&scratch);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    result
}

/// Where the secondary instance keeps its own info log: next to `dest`, removed after.
fn secondary_dir(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.secondary"))
}

fn descriptors<'a>(
    cache: &'a Cache,
    names: &'a [&'static str],
) -> impl Iterator<Item = ColumnFamilyDescriptor> + 'a {
    let options = StoreOptions::default();
    names
        .iter()
        .map(move |name| ColumnFamilyDescriptor::new(*name, cf_options(name, cache, &options)))
}

fn copy(source: &Path, scratch: &Path, dest: &Path) -> Result<BackupSummary, StoreError> {
    let cache = Cache::new_lru_cache(StoreOptions::default().block_cache_bytes);
    let mut secondary_options = db_options();
    secondary_options.create_if_missing(false);
    // A secondary must keep every table file open: the primary may delete a file
    // (after a compaction) that this view still reads.
    secondary_options.set_max_open_files(-1);
    // A directory of an older build may lack newer families: copy those it has (the
    // copy gets every family, the missing ones empty).
    let present = existing_families(source);
    let from = DB::open_cf_descriptors_as_secondary(
        &secondary_options,
        source,
        scratch,
        descriptors(&cache, &present),
    )?;
    from.try_catch_up_with_primary()?;
    let to = DB::open_cf_descriptors(&db_options(), dest, descriptors(&cache, &COLUMN_FAMILIES))?;
    let mut summary = BackupSummary::default();
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    for name in present {
        let (Some(from_cf), Some(to_cf)) = (from.cf_handle(name), to.cf_handle(name)) else {
            return Err(StoreError::Corrupt(format!(
                "column family {name} is missing"
            )));
        };
        let mut batch = WriteBatch::default();
        let mut pending = 0usize;
        for row in from.iterator_cf(from_cf, IteratorMode::Start) {
            let (key, value) = row?;
            pending += key.len() + value.len();
            summary.rows += 1;
            summary.bytes += (key.len() + value.len()) as u64;
            batch.put_cf(to_cf, &key, &value);
            if pending >= BATCH_BYTES {
                to.write(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        to.write_opt(batch, &sync)?;
    }
    to.flush()?;
    Ok(summary)
}
