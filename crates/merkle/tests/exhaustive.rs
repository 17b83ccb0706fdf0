//! Every inclusion proof (i, n) and every consistency proof (m, n) for n <= 128, built
//! from a node store: equal to the naive RFC construction, verified, and rejected after
//! any single-bit change (every bit for n <= 32, sampled bits above), an index off by
//! one, or a size off by one checked against the true root of that other size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{MemStore, SplitMix, flipped, naive};
use merklog_merkle::{
    Hash, LeafIndex, MerkleError, TreeSize, consistency_proof, inclusion_proof, root_at,
    root_from_inclusion_proof, verify_consistency, verify_inclusion,
};

const MAX_N: u64 = 128;
/// Up to this size every bit of every proof hash is flipped.
const ALL_BITS_UP_TO: u64 = 32;
/// Above it, this many random bits per proof hash.
const SAMPLED_BITS: usize = 4;

fn bits_to_flip(n: u64, rng: &mut SplitMix) -> Vec<usize> {
    if n <= ALL_BITS_UP_TO {
        (0..256).collect()
    } else {
        (0..SAMPLED_BITS).map(|_| rng.below(256) as usize).collect()
    }
}

#[test]
fn every_inclusion_proof_up_to_128() {
    let store = MemStore::with_size(MAX_N + 1);
    let mut rng = SplitMix(1);
    let mut checked_flips = 0u64;
    for n in 1..=MAX_N {
        let size = TreeSize(n);
        let root = store.root(n);
        assert_eq!(root, naive::root(&store.leaves[..n as usize]));
        assert_eq!(root_at(&store, size).unwrap(), root);
        for i in 0..n {
            let index = LeafIndex(i);
            let leaf = store.leaves[i as usize];
            let proof = inclusion_proof(&store, index, size).unwrap();
            assert_eq!(
                proof,
                naive::path(i as usize, &store.leaves[..n as usize]),
                "({i}, {n})"
            );
            verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
            assert_eq!(
                root_from_inclusion_proof(&leaf, index, size, &proof).unwrap(),
                root
            );

            for which in 0..proof.len() {
                for bit in bits_to_flip(n, &mut rng) {
                    let bad = flipped(&proof, which, bit);
                    let err = verify_inclusion(&leaf, index, size, &bad, &root).unwrap_err();
                    assert!(
                        matches!(err, MerkleError::InclusionRootMismatch { expected, .. } if expected == root),
                        "({i}, {n}) hash {which} bit {bit}: {err:?}"
                    );
                    checked_flips += 1;
                }
            }
            // A flipped leaf is rejected too.
            let bad_leaf = flipped(&[leaf], 0, rng.below(256) as usize)[0];
            assert!(verify_inclusion(&bad_leaf, index, size, &proof, &root).is_err());

            // Index off by one, against the same root.
            for other in [i.wrapping_sub(1), i + 1] {
                assert!(
                    verify_inclusion(&leaf, LeafIndex(other), size, &proof, &root).is_err(),
                    "index {other} accepted for ({i}, {n})"
                );
            }
            // Size off by one, against the true root of that size (the same proof may
            // legitimately verify at two sizes against one root, so never assert that).
            for other in [n - 1, n + 1] {
                if other > i {
                    let other_root = store.root(other);
                    assert!(
                        verify_inclusion(&leaf, index, TreeSize(other), &proof, &other_root)
                            .is_err(),
                        "size {other} accepted for ({i}, {n})"
                    );
                }
            }
            // One hash more or less: rejected by the exact length check, before hashing.
            let mut longer = proof.clone();
            longer.push(root);
            assert_eq!(
                verify_inclusion(&leaf, index, size, &longer, &root),
                Err(MerkleError::WrongProofLength {
                    expected: proof.len(),
                    got: proof.len() + 1
                })
            );
            if let Some((_, shorter)) = proof.split_last() {
                assert_eq!(
                    verify_inclusion(&leaf, index, size, shorter, &root),
                    Err(MerkleError::WrongProofLength {
                        expected: proof.len(),
                        got: shorter.len()
                    })
                );
            }
        }
        // Beyond the tree.
        assert!(matches!(
            verify_inclusion(&store.leaves[0], LeafIndex(n), size, &[], &root),
            Err(MerkleError::IndexOutOfRange { .. })
        ));
    }
    assert!(checked_flips > 100_000, "{checked_flips}");
}

#[test]
fn every_consistency_proof_up_to_128() {
    let store = MemStore::with_size(MAX_N + 1);
    let mut rng = SplitMix(2);
    for n in 1..=MAX_N {
        let new = TreeSize(n);
        let new_root = store.root(n);
        for m in 1..=n {
            let old = TreeSize(m);
            let old_root = store.root(m);
            let proof = consistency_proof(&store, old, new).unwrap();
            assert_eq!(
                proof,
                naive::consistency(m as usize, &store.leaves[..n as usize]),
                "({m}, {n})"
            );
            verify_consistency(old, new, &proof, &old_root, &new_root).unwrap();

            for which in 0..proof.len() {
                for bit in bits_to_flip(n, &mut rng) {
                    let bad = flipped(&proof, which, bit);
                    assert!(
                        verify_consistency(old, new, &bad, &old_root, &new_root).is_err(),
                        "({m}, {n}) hash {which} bit {bit}"
                    );
                }
            }
            // Either size off by one, against the true roots.
            for other in [m - 1, m + 1] {
                if (1..=n).contains(&other) {
                    assert!(
                        verify_consistency(
                            TreeSize(other),
                            new,
                            &proof,
                            &store.root(other),
                            &new_root
                        )
                        .is_err(),
                        "old size {other} accepted for ({m}, {n})"
                    );
                }
            }
            for other in [n - 1, n + 1] {
                if other >= m {
                    assert!(
                        verify_consistency(
                            old,
                            TreeSize(other),
                            &proof,
                            &old_root,
                            &store.root(other)
                        )
                        .is_err(),
                        "new size {other} accepted for ({m}, {n})"
                    );
                }
            }
            // Swapped or wrong roots.
            if m != n {
                assert!(verify_consistency(old, new, &proof, &new_root, &old_root).is_err());
                let err = verify_consistency(old, new, &proof, &store.root(m - 1), &new_root)
                    .unwrap_err();
                if m.is_power_of_two() {
                    // The old root is the seed of the path (RFC 9162 2.1.4.2 step 2), so
                    // a wrong one shows up as a wrong new root.
                    assert!(
                        matches!(err, MerkleError::ConsistencyNewRootMismatch { .. }),
                        "{err:?}"
                    );
                } else {
                    assert!(
                        matches!(err, MerkleError::ConsistencyOldRootMismatch { computed, .. } if computed == old_root),
                        "{err:?}"
                    );
                }
            }
            // One hash more or less: rejected by the exact length check, before hashing.
            let mut longer = proof.clone();
            longer.push(old_root);
            assert_eq!(
                verify_consistency(old, new, &longer, &old_root, &new_root),
                Err(MerkleError::WrongProofLength {
                    expected: proof.len(),
                    got: proof.len() + 1
                })
            );
            if let Some((_, shorter)) = proof.split_last() {
                assert_eq!(
                    verify_consistency(old, new, shorter, &old_root, &new_root),
                    Err(MerkleError::WrongProofLength {
                        expected: proof.len(),
                        got: shorter.len()
                    })
                );
            }
        }
        // Old size zero or larger than new is never a valid request.
        assert!(matches!(
            verify_consistency(TreeSize(0), new, &[], &store.root(0), &new_root),
            Err(MerkleError::InvalidConsistencySizes { .. })
        ));
        assert!(matches!(
            verify_consistency(TreeSize(n + 1), new, &[], &store.root(n + 1), &new_root),
            Err(MerkleError::InvalidConsistencySizes { .. })
        ));
    }
}

/// The proof-length formulas must agree with the builders for large, irregular sizes
/// too (where trees cannot be built): build with an all-zero reader and check lengths.
#[test]
fn proof_lengths_for_large_sizes() {
    struct Zeros;
    impl merklog_merkle::NodeReader for Zeros {
        type Error = std::convert::Infallible;
        fn read_nodes(
            &self,
            ids: &[merklog_merkle::NodeId],
        ) -> Result<Vec<merklog_merkle::Hash>, Self::Error> {
            Ok(vec![Hash::from_bytes([0; 32]); ids.len()])
        }
    }
    let mut rng = SplitMix(3);
    for _ in 0..20_000 {
        let n = match rng.below(3) {
            0 => rng.next() | 1,
            1 => rng.below(1 << 40) + 1,
            _ => rng.below(5000) + 1,
        };
        let i = rng.below(n);
        let m = rng.below(n) + 1;
        let proof = inclusion_proof(&Zeros, LeafIndex(i), TreeSize(n)).unwrap();
        // The verifier accepts exactly that length: anything else is WrongProofLength.
        let computed = root_from_inclusion_proof(
            &Hash::from_bytes([0; 32]),
            LeafIndex(i),
            TreeSize(n),
            &proof,
        );
        assert!(computed.is_ok(), "({i}, {n}): {computed:?}");
        let proof = consistency_proof(&Zeros, TreeSize(m), TreeSize(n)).unwrap();
        let mut longer = proof.clone();
        longer.push(Hash::from_bytes([0; 32]));
        for candidate in [&proof, &longer] {
            let result = verify_consistency(
                TreeSize(m),
                TreeSize(n),
                candidate,
                &Hash::from_bytes([1; 32]),
                &Hash::from_bytes([1; 32]),
            );
            let length_error = matches!(result, Err(MerkleError::WrongProofLength { .. }));
            assert_eq!(
                length_error,
                candidate.len() != proof.len(),
                "({m}, {n}): {result:?}"
            );
        }
    }
}
