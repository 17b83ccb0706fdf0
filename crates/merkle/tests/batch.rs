//! `BatchProofs` against proofs built from a node store, at many batch boundaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{MemStore, leaf};
use merklog_merkle::{
    BatchProofs, CompactRange, Hash, LeafIndex, MerkleError, TreeSize, inclusion_proof,
};
use proptest::prelude::*;

/// Every batch `[s, s + k)` with `s, k <= 100`, every leaf: same proof as the store's.
#[test]
fn every_small_batch_matches_the_store() {
    const MAX: u64 = 100;
    let store = MemStore::with_size(2 * MAX);
    // proofs[n][i]: the store's proof of leaf i at size n.
    let proofs: Vec<Vec<Vec<Hash>>> = (0..=2 * MAX)
        .map(|n| {
            (0..n)
                .map(|i| inclusion_proof(&store, LeafIndex(i), TreeSize(n)).unwrap())
                .collect()
        })
        .collect();
    let mut before = CompactRange::new();
    for start in 0..=MAX {
        for added in 0..=MAX {
            let end = start + added;
            let batch =
                BatchProofs::new(&before, &store.leaves[start as usize..end as usize]).unwrap();
            assert_eq!(batch.tree_size(), TreeSize(end));
            assert_eq!(batch.root(), store.root(end), "[{start}, {end})");
            for i in start..end {
                assert_eq!(
                    batch.inclusion_proof(LeafIndex(i)).unwrap(),
                    proofs[end as usize][i as usize],
                    "leaf {i} of batch [{start}, {end})"
                );
            }
            for outside in [start.wrapping_sub(1), end] {
                assert!(matches!(
                    batch.inclusion_proof(LeafIndex(outside)),
                    Err(MerkleError::NotInBatch { .. })
                ));
            }
        }
        before.append(&[leaf(start)], |_, _| {}).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Larger, irregular boundaries (powers of two and their neighbours are likely).
    #[test]
    fn random_batches_match_the_store(
        start in prop_oneof![0u64..5000, (1u32..13).prop_map(|b| 1u64 << b), (1u32..13).prop_map(|b| (1u64 << b) - 1)],
        added in prop_oneof![1u64..2000, (1u32..11).prop_map(|b| 1u64 << b)],
        probes in prop::collection::vec(any::<u64>(), 16),
    ) {
        let end = start + added;
        let mut store = MemStore::new();
        store.append(&(0..end).map(leaf).collect::<Vec<_>>());
        let mut before = CompactRange::new();
        before.append(&store.leaves[..start as usize], |_, _| {}).unwrap();
        let batch = BatchProofs::new(&before, &store.leaves[start as usize..]).unwrap();
        prop_assert_eq!(batch.root(), store.root(end));
        let mut indices: Vec<u64> = probes.iter().map(|p| start + p % added).collect();
        indices.extend([start, end - 1]);
        for i in indices {
            prop_assert_eq!(
                batch.inclusion_proof(LeafIndex(i)).unwrap(),
                inclusion_proof(&store, LeafIndex(i), TreeSize(end)).unwrap()
            );
        }
    }
}
