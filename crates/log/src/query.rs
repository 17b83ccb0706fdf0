//! Reads for queries over the index of terms: the rows of a term, point lookups of
//! rows, and scattered entries with their proofs, each in one batched storage read.

use std::collections::BTreeMap;

use bytes::Bytes;
use merklog_merkle::bundle::BundleEntries;
use merklog_merkle::tile::TILE_WIDTH;
use merklog_merkle::{Hash, TreeSize};

use crate::proofs::stored_proofs;
use crate::tiles::ReadError;
use crate::{KeyRecord, Log, LogError, MAX_ENTRIES_PER_READ};

impl Log {
    /// Up to `limit` index-term rows with `start <= key < end`, in key order: for a
    /// [`term_range`](crate::term_range), one term's rows in time order. Rows may name
    /// leaves that are durable but not yet published: compare with the size asked for.
    pub async fn scan_terms(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, LogError> {
        self.read(move |store| Ok(store.scan_terms(&start, &end, limit)?))
            .await
    }

    /// The index-term rows stored under `keys` ([`term_key`](crate::term_key)), in
    /// ONE batched read.
    pub async fn lookup_terms(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<KeyRecord>>, LogError> {
        self.read(move |store| Ok(store.lookup_terms(&keys)?)).await
    }

    /// The entries at `indexes` (any order, each below the published size, at most
    /// [`MAX_ENTRIES_PER_READ`]), in that order, from ONE batched read of their bundles.
    pub async fn entries_at(&self, indexes: Vec<u64>) -> Result<Vec<Bytes>, LogError> {
        let published = self.latest().size().0;
        if let Some(index) = indexes.iter().find(|i| **i >= published) {
            return Err(LogError::OutOfRange {
                reason: format!("leaf index {index} is not below the published size {published}"),
            });
        }
        if indexes.len() as u64 > MAX_ENTRIES_PER_READ {
            return Err(LogError::OutOfRange {
                reason: format!(
                    "{} entries asked for; at most {MAX_ENTRIES_PER_READ} per read",
                    indexes.len()
                ),
            });
        }
        let width = u64::from(TILE_WIDTH);
        self.read(move |store| {
            let mut bundle_indexes: Vec<u64> = indexes.iter().map(|i| i / width).collect();
            bundle_indexes.sort_unstable();
            bundle_indexes.dedup();
            let bundles = store.read_bundles(&bundle_indexes)?;
            let mut found: BTreeMap<u64, Bytes> = BTreeMap::new();
            for (bundle_index, bundle) in bundle_indexes.into_iter().zip(bundles) {
                let corrupt = |reason: String| {
                    LogError::from(ReadError::Corrupt(format!(
                        "entry bundle {bundle_index}: {reason}"
                    )))
                };
                let bundle = Bytes::from(bundle.ok_or_else(|| corrupt("missing".into()))?);
                let base = bundle_index * width;
                let last = indexes
                    .iter()
                    .filter(|i| *i / width == bundle_index)
                    .max()
                    .map_or(0, |i| i - base);
                for (position, entry) in BundleEntries::new(&bundle).enumerate() {
                    let position = position as u64;
                    if position > last {
                        break;
                    }
                    let entry = entry.map_err(|e| corrupt(e.to_string()))?;
                    found.insert(base + position, bundle.slice_ref(entry));
                }
            }
            indexes
                .iter()
                .map(|index| {
                    found.get(index).cloned().ok_or_else(|| {
                        LogError::from(ReadError::Corrupt(format!("entry {index} is missing")))
                    })
                })
                .collect()
        })
        .await
    }

    /// RFC 6962 inclusion proofs of `leaves` (index and leaf hash, each index below
    /// `size <= published size`) in the tree of `size` leaves, in that order, from ONE
    /// batched tile read. A stored leaf that is not the given hash is an error.
    pub async fn inclusion_proofs(
        &self,
        leaves: Vec<(u64, Hash)>,
        size: TreeSize,
    ) -> Result<Vec<Vec<Hash>>, LogError> {
        let published = self.latest().size();
        if size > published {
            return Err(LogError::OutOfRange {
                reason: format!("tree size {size} is beyond the published size {published}"),
            });
        }
        if let Some((index, _)) = leaves.iter().find(|(i, _)| *i >= size.0) {
            return Err(LogError::OutOfRange {
                reason: format!("leaf index {index} is not below tree size {size}"),
            });
        }
        if leaves.is_empty() {
            return Ok(Vec::new());
        }
        let tree = self.shared().tree.clone();
        tokio::task::spawn_blocking(move || {
            let asked: Vec<(u64, Option<Hash>)> =
                leaves.iter().map(|(i, h)| (*i, Some(*h))).collect();
            let proofs = stored_proofs(&tree, &asked, size)?;
            leaves
                .iter()
                .map(|(index, _)| {
                    proofs
                        .get(index)
                        .cloned()
                        .ok_or_else(|| LogError::Storage(format!("no proof for leaf {index}")))
                })
                .collect()
        })
        .await
        .map_err(|e| LogError::Unavailable(format!("read task failed: {e}")))?
    }
}
