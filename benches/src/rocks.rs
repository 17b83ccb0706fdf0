//! The storage ceiling: raw RocksDB writes of the same bytes, with the same batch
//! sizes and `sync`, and the same options as `merklog-store`.
//!
//! One thread writes back to back, as the sequencer does: a `WriteBatch` of
//! `batch` entries (key: a 4-byte log id and the 8-byte big-endian index, value: the
//! entry bytes) into an LZ4-compressed column family, written with `sync = true`.
//! The database options copy `merklog-store`'s (`crates/store/src/rocks.rs`): two
//! background jobs, a 256 MiB write-buffer cap, 1 MiB `bytes_per_sync`, 256 MiB WAL
//! cap, 32 MiB memtables, a 64 MiB LRU block cache with index and filter blocks in
//! it. What it leaves out is what merklog adds: hashing, the dedup row per entry,
//! the tiles, signing and answering.

use std::path::Path;
use std::time::Instant;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, Options, WriteBatch,
    WriteOptions,
};

use crate::BenchError;
use crate::payload::Rng;
use crate::stats::{Phase, Tally};

const CF_ENTRIES: &str = "entries";

/// What one baseline run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RocksSpec {
    /// Bytes per entry.
    pub entry_bytes: usize,
    /// Entries per synced write batch.
    pub batch: usize,
}

/// What one baseline run measured.
#[derive(Debug, Clone)]
pub struct RocksOutcome {
    /// Synced batches in the window (latency is per batch write).
    pub tally: Tally,
    /// Bytes in the database directory at the end.
    pub disk_bytes: u64,
}

fn db_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_max_background_jobs(2);
    options.set_db_write_buffer_size(256 << 20);
    options.set_bytes_per_sync(1 << 20);
    options.set_max_total_wal_size(256 << 20);
    options.set_keep_log_file_num(10);
    options
}

fn entries_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut options = Options::default();
    options.set_write_buffer_size(32 << 20);
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_block_based_table_factory(&table);
    options
}

/// Writes synced batches into a new database in `dir` through `phase` (blocking:
/// call it from a blocking thread).
pub fn run(dir: &Path, spec: RocksSpec, phase: Phase) -> Result<RocksOutcome, BenchError> {
    let cache = Cache::new_lru_cache(64 << 20);
    let db = DB::open_cf_descriptors(
        &db_options(),
        dir,
        [ColumnFamilyDescriptor::new(
            CF_ENTRIES,
            entries_options(&cache),
        )],
    )?;
    let cf = db
        .cf_handle(CF_ENTRIES)
        .ok_or_else(|| BenchError::Setup("the entries column family is missing".into()))?;
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    let mut tally = Tally::new()?;
    let mut rng = Rng::new(Rng::seed_from_clock());
    let mut value = vec![0u8; spec.entry_bytes.max(1)];
    let mut index = 0u64;
    let batch_entries = spec.batch.max(1);
    while phase.open() {
        let mut batch = WriteBatch::default();
        for _ in 0..batch_entries {
            let mut key = [0u8; 12];
            key[4..].copy_from_slice(&index.to_be_bytes());
            rng.fill(&mut value);
            batch.put_cf(cf, key, &value);
            index += 1;
        }
        let started = Instant::now();
        db.write_opt(batch, &sync)?;
        tally.success(&phase, started, batch_entries as u64);
    }
    drop(db);
    Ok(RocksOutcome {
        tally,
        disk_bytes: crate::procstat::dir_bytes(dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn writes_synced_batches_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let phase = Phase::starting_now(
            Duration::from_millis(20),
            Duration::from_millis(200),
            Duration::ZERO,
        );
        let outcome = run(
            dir.path(),
            RocksSpec {
                entry_bytes: 100,
                batch: 10,
            },
            phase,
        )
        .unwrap();
        let tally = outcome.tally;
        assert!(tally.calls > 0);
        assert_eq!(tally.entries, tally.calls * 10);
        assert!(tally.total_entries >= tally.entries);
        // The random values do not compress: at least the bytes written are on disk.
        assert!(
            outcome.disk_bytes >= tally.total_entries * 100,
            "{}",
            outcome.disk_bytes
        );
    }
}
