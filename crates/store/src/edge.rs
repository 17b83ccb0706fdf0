//! The append-only right edge: a round stores only the bytes that are new in the
//! partial tiles and the partial entry bundle, as RocksDB merge operands that reads
//! concatenate, instead of rewriting the whole partial value.
//!
//! The log says what changed ([`ValueWrite`]): an append becomes a merge operand
//! holding the new bytes (an entry's bytes reach the WAL once, not once per later
//! round, nor once more when its bundle fills); a whole value (a tile or bundle that
//! starts in the round) becomes a put, which supersedes whatever the key held. Reads
//! see the concatenation, and flushes and compactions merge the operands of a key into
//! one value, so a full tile or bundle ends up stored whole. The offset of an append is
//! not checked here: rounds are committed in order and the log computes it from what
//! the previous round stored (or, after a restart or a failed write, from what it
//! read back).
//!
//! Crash semantics are those of the round: the operands, puts, dedup rows and the
//! checkpoint go into ONE synced `WriteBatch`, so after a crash a key holds either the
//! value before the round or after it.

use merklog_log::ValueWrite;
use rocksdb::{ColumnFamily, MergeOperands, WriteBatch};

/// Name of the merge operator registered on the `tiles` and `entries` column families.
/// Changing it makes RocksDB refuse existing data directories that hold operands.
pub(crate) const APPEND_OPERATOR: &str = "merklog.append.v1";

/// The merge operator: concatenation of the stored value and the operands, in order.
/// Associative, so RocksDB may also use it to combine operands (partial merge).
pub(crate) fn append_merge(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    let len = existing.map_or(0, <[u8]>::len) + operands.iter().map(<[u8]>::len).sum::<usize>();
    let mut value = Vec::with_capacity(len);
    if let Some(existing) = existing {
        value.extend_from_slice(existing);
    }
    for operand in operands {
        value.extend_from_slice(operand);
    }
    Some(value)
}

/// Adds one right-edge write to the round's batch: a put or a merge operand.
pub(crate) fn add_to_batch(
    batch: &mut WriteBatch,
    cf: &ColumnFamily,
    key: &[u8],
    write: &ValueWrite,
) {
    match write {
        ValueWrite::Put(value) => batch.put_cf(cf, key, value),
        ValueWrite::Append { bytes, .. } if bytes.is_empty() => {}
        ValueWrite::Append { bytes, .. } => batch.merge_cf(cf, key, bytes),
    }
}
