//! The append-only right edge: each round stores only the bytes that are new in the
//! partial tiles and the partial entry bundle, as RocksDB merge operands that reads
//! concatenate, instead of rewriting the whole partial value.
//!
//! The sequencer hands [`commit`](merklog_log::LogStore::commit) complete values (a
//! partial tile or bundle grows round by round, each value a prefix of the next). This
//! module remembers, per right-edge key, the exact bytes that are durably stored, and
//! turns the next value of that key into the cheapest equivalent write:
//!
//! - a *partial* value that extends what is stored: a merge operand holding only the
//!   new suffix (an entry's bytes reach the WAL once, not once per later round);
//! - a *full* value (256 hashes, or 256 entries): one put of the whole value, which
//!   supersedes that key's earlier operands, so full tiles and bundles read as single
//!   values and compaction drops the fragments;
//! - anything else (a key it knows nothing about, e.g. after a restart or a failed
//!   write, or a value that does not extend what is stored): a put of the whole value,
//!   which is correct whatever was stored before.
//!
//! Crash semantics are those of the round: the operands, puts, dedup rows and the
//! checkpoint go into ONE synced `WriteBatch`, so after a crash a key holds either the
//! value before the round or after it. The remembered bytes change only after that
//! write succeeds; a failed write forgets them all (the round may or may not be
//! stored), and the next round puts whole values again.

use std::collections::HashMap;

use rocksdb::MergeOperands;

/// Name of the merge operator registered on the `tiles` and `entries` column families.
/// Changing it makes RocksDB refuse existing data directories that hold operands.
pub(crate) const APPEND_OPERATOR: &str = "merklog.append.v1";

/// Bytes of a full hash tile (256 hashes of 32 bytes).
pub(crate) const FULL_TILE_BYTES: usize = 256 * 32;
/// Entries in a full bundle.
const BUNDLE_WIDTH: usize = 256;

/// More remembered keys than the right edge can have (8 tile levels and one bundle,
/// plus slack): past this the memory is dropped, which only costs whole-value puts.
const MAX_REMEMBERED: usize = 32;

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

/// Which column family a right-edge key lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum EdgeFamily {
    /// `tiles`
    Tiles,
    /// `entries`
    Entries,
}

/// How one value of a round is written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EdgeWrite<'a> {
    /// Put the whole value.
    Put,
    /// Merge (append) only these new bytes.
    Append(&'a [u8]),
    /// The stored value already equals it: write nothing.
    Unchanged,
}

/// A right-edge key: its column family and key bytes.
type EdgeKey = (EdgeFamily, Vec<u8>);

/// The bytes stored under each right-edge key, as far as this process knows.
#[derive(Debug, Default)]
pub(crate) struct RightEdge {
    stored: HashMap<EdgeKey, Vec<u8>>,
}

/// What a round will change in [`RightEdge`] once its batch is durable.
#[derive(Debug, Default)]
pub(crate) struct EdgeChanges {
    /// Per key: the value stored after the round, `None` once it left the edge.
    changes: Vec<(EdgeKey, Option<Vec<u8>>)>,
}

impl RightEdge {
    /// Plans the write of `value` under `key` and records what will be stored after it.
    pub(crate) fn plan<'a>(
        &self,
        family: EdgeFamily,
        key: &[u8],
        value: &'a [u8],
        changes: &mut EdgeChanges,
    ) -> EdgeWrite<'a> {
        let full = match family {
            EdgeFamily::Tiles => value.len() >= FULL_TILE_BYTES,
            EdgeFamily::Entries => bundle_is_full(value),
        };
        let id = (family, key.to_vec());
        let write = match self.stored.get(&id) {
            _ if full => EdgeWrite::Put,
            Some(stored) if stored.as_slice() == value => EdgeWrite::Unchanged,
            Some(stored) if value.len() > stored.len() && value.starts_with(stored) => {
                EdgeWrite::Append(value.get(stored.len()..).unwrap_or_default())
            }
            _ => EdgeWrite::Put,
        };
        // A full value leaves the right edge: nothing to remember.
        changes.changes.push((id, (!full).then(|| value.to_vec())));
        write
    }

    /// The round's batch is durable: remember what it stored.
    pub(crate) fn apply(&mut self, changes: EdgeChanges) {
        for (id, value) in changes.changes {
            match value {
                Some(value) => {
                    self.stored.insert(id, value);
                }
                None => {
                    self.stored.remove(&id);
                }
            }
        }
        if self.stored.len() > MAX_REMEMBERED {
            self.stored.clear();
        }
    }

    /// The round's write failed (it may or may not be stored): forget everything, so
    /// the next round puts whole values.
    pub(crate) fn forget(&mut self) {
        self.stored.clear();
    }

    /// Keys currently remembered (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.stored.len()
    }
}

/// Whether a bundle holds 256 well-formed entries (`u16` BE length ‖ bytes each).
fn bundle_is_full(bundle: &[u8]) -> bool {
    let mut offset = 0usize;
    for _ in 0..BUNDLE_WIDTH {
        let Some(header) = bundle.get(offset..offset.saturating_add(2)) else {
            return false;
        };
        let len = header
            .first()
            .zip(header.get(1))
            .map_or(0, |(hi, lo)| usize::from(u16::from_be_bytes([*hi, *lo])));
        offset = offset.saturating_add(2).saturating_add(len);
        if offset > bundle.len() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(entries: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..entries {
            let entry = format!("entry {i}");
            out.extend_from_slice(&(entry.len() as u16).to_be_bytes());
            out.extend_from_slice(entry.as_bytes());
        }
        out
    }

    #[test]
    fn plans_appends_for_growing_values_and_puts_otherwise() {
        let mut edge = RightEdge::default();
        let key = b"k".as_slice();
        let (a, b, c) = (bundle(3), bundle(10), bundle(256));
        let mut changes = EdgeChanges::default();
        // Unknown key: whole value.
        assert_eq!(
            edge.plan(EdgeFamily::Entries, key, &a, &mut changes),
            EdgeWrite::Put
        );
        edge.apply(changes);
        let mut changes = EdgeChanges::default();
        assert_eq!(
            edge.plan(EdgeFamily::Entries, key, &b, &mut changes),
            EdgeWrite::Append(&b[a.len()..])
        );
        edge.apply(changes);
        let mut changes = EdgeChanges::default();
        assert_eq!(
            edge.plan(EdgeFamily::Entries, key, &b, &mut changes),
            EdgeWrite::Unchanged
        );
        // Not an extension of what is stored: whole value.
        assert_eq!(
            edge.plan(EdgeFamily::Entries, key, &a, &mut changes),
            EdgeWrite::Put
        );
        // Full: whole value, and the key is forgotten.
        let mut changes = EdgeChanges::default();
        assert_eq!(
            edge.plan(EdgeFamily::Entries, key, &c, &mut changes),
            EdgeWrite::Put
        );
        edge.apply(changes);
        assert_eq!(edge.len(), 0);
        // Same key bytes in another family are another key.
        let mut changes = EdgeChanges::default();
        edge.plan(EdgeFamily::Tiles, key, &[1; 64], &mut changes);
        edge.apply(changes);
        let mut changes = EdgeChanges::default();
        assert_eq!(
            edge.plan(EdgeFamily::Entries, key, &[1; 96], &mut changes),
            EdgeWrite::Put
        );
        assert_eq!(
            edge.plan(EdgeFamily::Tiles, key, &[1; 96], &mut changes),
            EdgeWrite::Append(&[1; 32])
        );
        assert_eq!(
            edge.plan(EdgeFamily::Tiles, key, &[1; FULL_TILE_BYTES], &mut changes),
            EdgeWrite::Put
        );
        edge.forget();
        assert_eq!(edge.len(), 0);
    }

    #[test]
    fn full_bundles_are_recognised() {
        assert!(!bundle_is_full(&bundle(255)));
        assert!(bundle_is_full(&bundle(256)));
        let mut truncated = bundle(256);
        truncated.pop();
        assert!(!bundle_is_full(&truncated));
        assert!(!bundle_is_full(&[]));
    }
}
