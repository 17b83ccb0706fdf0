//! Test helpers: an in-memory node store fed by `CompactRange`, and the deliberately
//! naive recursive RFC 6962 implementation of merklog-testkit-tree (straight from the
//! RFC's definitions, no shared code with the crate) to compare against.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;

use merklog_merkle::{CompactRange, Hash, NodeId, NodeReader, TreeSize, hash_leaf};

/// The leaf hash of leaf `i` in the deterministic test trees.
pub fn leaf(i: u64) -> Hash {
    hash_leaf(&i.to_be_bytes())
}

/// A node store holding every node `CompactRange::append` reports, plus the root at
/// every size.
pub struct MemStore {
    pub leaves: Vec<Hash>,
    pub nodes: HashMap<NodeId, Hash>,
    pub roots: Vec<Hash>,
    pub range: CompactRange,
}

impl MemStore {
    pub fn new() -> Self {
        let range = CompactRange::new();
        Self {
            leaves: Vec::new(),
            nodes: HashMap::new(),
            roots: vec![range.root()],
            range,
        }
    }

    /// A store of leaves `leaf(0..size)`, appended one at a time.
    pub fn with_size(size: u64) -> Self {
        let mut store = Self::new();
        for i in 0..size {
            store.append(&[leaf(i)]);
        }
        store
    }

    /// Appends leaves one at a time, so the root at every size is known.
    pub fn append(&mut self, leaves: &[Hash]) {
        for leaf in leaves {
            let nodes = &mut self.nodes;
            self.range
                .append(std::slice::from_ref(leaf), |id, hash| {
                    assert!(
                        nodes.insert(id, *hash).is_none(),
                        "node {id} reported twice"
                    );
                })
                .unwrap();
            self.leaves.push(*leaf);
            self.roots.push(self.range.root());
        }
    }

    pub fn size(&self) -> TreeSize {
        self.range.size()
    }

    pub fn root(&self, size: u64) -> Hash {
        self.roots[size as usize]
    }
}

impl NodeReader for MemStore {
    type Error = Infallible;
    fn read_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Infallible> {
        Ok(ids.iter().map(|id| self.nodes[id]).collect())
    }
}

/// The naive recursive tree of merklog-testkit-tree (RFC 9162 section 2.1 as the RFC
/// states it, sharing no code with this crate), under the names these tests use.
pub mod naive {
    use merklog_merkle::Hash;

    /// MTH(D[n]).
    pub fn root(leaves: &[Hash]) -> Hash {
        merklog_testkit_tree::mth(leaves)
    }

    /// PATH(m, D[n]).
    pub fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        merklog_testkit_tree::path(m, leaves).unwrap()
    }

    /// PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
    pub fn consistency(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        merklog_testkit_tree::proof(m, leaves).unwrap()
    }
}

/// A tiny deterministic PRNG (splitmix64) for sampling bits in large loops.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Flips one bit (0..256) of one hash of a proof.
pub fn flipped(proof: &[Hash], which: usize, bit: usize) -> Vec<Hash> {
    let mut proof = proof.to_vec();
    let mut bytes = *proof[which].as_bytes();
    bytes[bit / 8] ^= 1 << (bit % 8);
    proof[which] = Hash::from_bytes(bytes);
    proof
}
