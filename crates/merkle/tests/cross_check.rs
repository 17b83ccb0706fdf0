//! Property tests against independent implementations: rs_merkle (roots and audit paths
//! only: its own verifier was seen accepting a proof with an extra junk hash and a wrong
//! leaf count, so it never verifies anything here), ct-merkle (consistency and
//! inclusion proofs, which rs_merkle lacks) and the naive recursive version in
//! `common::naive`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{MemStore, naive};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use merklog_merkle::{
    BatchProofs, CompactRange, Hash, LeafIndex, TreeSize, consistency_proof, hash_children,
    hash_leaf, inclusion_proof, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// rs_merkle driven with RFC 6962 interior hashing; an unpaired node is carried up
/// unchanged, which yields the RFC 6962 tree. Leaves are passed in already hashed.
#[derive(Clone)]
struct Rfc6962;

impl rs_merkle::Hasher for Rfc6962 {
    // rs_merkle needs conversions to and from `Vec<u8>`, so it works on the raw bytes.
    type Hash = [u8; 32];
    fn hash(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }
    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(right) => {
                *hash_children(&Hash::from_bytes(*left), &Hash::from_bytes(*right)).as_bytes()
            }
            None => *left,
        }
    }
}

/// The hashes as raw arrays, as rs_merkle holds them.
fn raw(hashes: &[Hash]) -> Vec<[u8; 32]> {
    hashes.iter().map(|h| *h.as_bytes()).collect()
}

/// The concatenated bytes of the hashes, as ct-merkle serialises proofs.
fn concat(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| *h.as_bytes()).collect()
}

fn entries() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..3000)
}

/// Indices to spot-check in a tree of `n` leaves: the edges plus a few seeded ones.
fn sample(n: usize, seeds: &[usize]) -> Vec<usize> {
    let mut picks = vec![0, n / 2, n - 1];
    picks.extend(seeds.iter().map(|s| s % n));
    picks.sort_unstable();
    picks.dedup();
    picks
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn roots_and_proofs_match_independent_implementations(
        entries in entries(),
        chunk in 1usize..400,
        seeds in prop::collection::vec(any::<usize>(), 4),
    ) {
        let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
        let n = leaves.len();

        // Our root, appending in batches of `chunk`.
        let mut range = CompactRange::new();
        for batch in leaves.chunks(chunk) {
            range.append(batch, |_, _| {}).unwrap();
        }
        let root = range.root();

        let rs_tree = rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&raw(&leaves));
        prop_assert_eq!(Some(*root.as_bytes()), rs_tree.root());
        prop_assert_eq!(root, naive::root(&leaves));
        let mut ct_tree = MemoryBackedTree::<Sha256, Vec<u8>>::new();
        for entry in &entries {
            ct_tree.push(entry.clone());
        }
        let ct_root = ct_tree.root();
        prop_assert_eq!(ct_root.as_bytes().as_slice(), root.as_bytes());

        let mut store = MemStore::new();
        store.append(&leaves);
        let batch_start = seeds[0] % n;
        let mut before = CompactRange::new();
        before.append(&leaves[..batch_start], |_, _| {}).unwrap();
        let batch = BatchProofs::new(&before, &leaves[batch_start..]).unwrap();
        prop_assert_eq!(batch.root(), root);

        for i in sample(n, &seeds) {
            let index = LeafIndex(i as u64);
            let ours = inclusion_proof(&store, index, range.size()).unwrap();
            prop_assert_eq!(&ours, &naive::path(i, &leaves));
            let rs_proof = rs_tree.proof(&[i]);
            prop_assert_eq!(raw(&ours), rs_proof.proof_hashes().to_vec());
            let ct_proof = ct_tree.prove_inclusion(i);
            prop_assert_eq!(concat(&ours), ct_proof.as_bytes().to_vec());
            if i >= batch_start {
                prop_assert_eq!(&batch.inclusion_proof(index).unwrap(), &ours);
            }
            verify_inclusion(&leaves[i], index, range.size(), &ours, &root).unwrap();
        }

        // Consistency from sampled old sizes to n, against ct-merkle (which proves from
        // `n - additions` to its current size n).
        for m in sample(n, &seeds).into_iter().map(|i| i + 1) {
            let ours = consistency_proof(&store, TreeSize(m as u64), range.size()).unwrap();
            prop_assert_eq!(&ours, &naive::consistency(m, &leaves));
            let theirs = ct_tree.prove_consistency(n - m);
            prop_assert_eq!(concat(&ours), theirs.as_bytes().to_vec());
            verify_consistency(TreeSize(m as u64), range.size(), &ours, &store.root(m as u64), &root)
                .unwrap();
        }
    }
}
