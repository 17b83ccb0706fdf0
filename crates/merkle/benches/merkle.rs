//! Criterion benchmarks: appends per second, and inclusion and consistency proofs built
//! and verified per second on a real 10^6-leaf in-memory store and on a synthetic
//! 2^30-leaf tree, with rs_merkle, ct-merkle and the naive recursive RFC 6962 code on
//! the same data.
//!
//! Run: `cargo bench -p merklog-merkle` (a few minutes; the first run also hashes the
//! 2^30 leaves once, see `SyntheticTree`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use common::{SplitMix, leaf, naive};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use merklog_merkle::{
    BatchProofs, CompactRange, Hash, LeafIndex, NodeId, NodeReader, TreeSize, consistency_proof,
    hash_children, inclusion_proof, root_at, verify_consistency, verify_inclusion,
};
use sha2::{Digest, Sha256};

const REAL_SIZE: u64 = 1_000_000;
const SYNTHETIC_LOG2: u8 = 30;
/// Distinct random queries cycled through by the proof benchmarks.
const QUERIES: usize = 1024;

/// rs_merkle with RFC 6962 interior hashing (roots and audit paths only).
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

/// The concatenated bytes of the hashes (the cache file and ct-merkle's proof form).
fn concat(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| *h.as_bytes()).collect()
}

/// A real in-memory node store: every perfect node `CompactRange::append` reported,
/// in one dense array per level.
struct LevelStore {
    levels: Vec<Vec<Hash>>,
}

impl LevelStore {
    fn build(leaves: &[Hash]) -> (Self, Vec<Hash>) {
        let mut levels: Vec<Vec<Hash>> = vec![Vec::new(); 64];
        let mut range = CompactRange::new();
        range
            .append(leaves, |id, hash| {
                levels[usize::from(id.level)].push(*hash);
            })
            .unwrap();
        (Self { levels }, range.hashes().to_vec())
    }
}

impl NodeReader for LevelStore {
    type Error = NodeId;
    fn read_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, NodeId> {
        ids.iter()
            .map(|id| {
                self.levels
                    .get(usize::from(id.level))
                    .and_then(|level| level.get(id.index as usize))
                    .copied()
                    .ok_or(*id)
            })
            .collect()
    }
}

/// The tree of 2^30 leaves `leaf(i)`. Every node at level >= 16 is computed once (all
/// 2^30 leaves hashed: about 2^31 SHA-256 calls on two threads, cached in a file under
/// the target directory so later runs only spot-check it); nodes below level 16 are
/// computed from their leaves on first use (recursively, memoised from level 7 up) and
/// kept, so once the query set is warm a proof read costs what a store lookup costs.
struct SyntheticTree {
    /// `upper[l - 16][i]`: node at level l >= 16.
    upper: Vec<Vec<Hash>>,
    memo: RefCell<HashMap<NodeId, Hash>>,
}

const SYNTHETIC_CACHE_LEVEL: u8 = 16;

impl SyntheticTree {
    fn new() -> Self {
        let count = 1usize << (SYNTHETIC_LOG2 - SYNTHETIC_CACHE_LEVEL);
        let cache = cache_path();
        let base = match std::fs::read(&cache) {
            Ok(bytes) if bytes.len() == count * 32 => {
                let hashes: Vec<Hash> = bytes
                    .chunks_exact(32)
                    .map(|c| Hash::try_from(c).unwrap())
                    .collect();
                // Spot-check the cache against a fresh computation.
                let probe = count / 3;
                if hashes[probe] == subtree(SYNTHETIC_CACHE_LEVEL, probe as u64) {
                    Some(hashes)
                } else {
                    None
                }
            }
            _ => None,
        };
        let base = base.unwrap_or_else(|| {
            eprintln!(
                "hashing the 2^30 synthetic leaves once (cached in {})",
                cache.display()
            );
            let hashes = level_in_parallel(SYNTHETIC_CACHE_LEVEL, count);
            let _ = std::fs::create_dir_all(cache.parent().unwrap());
            let _ = std::fs::write(&cache, concat(&hashes));
            hashes
        });
        let mut upper = vec![base];
        while upper.last().unwrap().len() > 1 {
            let next = upper
                .last()
                .unwrap()
                .chunks_exact(2)
                .map(|pair| hash_children(&pair[0], &pair[1]))
                .collect();
            upper.push(next);
        }
        Self {
            upper,
            memo: RefCell::new(HashMap::new()),
        }
    }

    fn root(&self) -> Hash {
        self.upper.last().unwrap()[0]
    }

    fn node(&self, id: NodeId) -> Hash {
        if id.level >= SYNTHETIC_CACHE_LEVEL {
            return self.upper[usize::from(id.level - SYNTHETIC_CACHE_LEVEL)][id.index as usize];
        }
        if let Some(hash) = self.memo.borrow().get(&id) {
            return *hash;
        }
        let hash = if id.level < 8 {
            subtree(id.level, id.index)
        } else {
            hash_children(
                &self.node(NodeId::new(id.level - 1, 2 * id.index)),
                &self.node(NodeId::new(id.level - 1, 2 * id.index + 1)),
            )
        };
        self.memo.borrow_mut().insert(id, hash);
        hash
    }

    /// The size-`size` root, for consistency checks at older sizes.
    fn root_at(&self, size: u64) -> Hash {
        root_at(self, TreeSize(size)).unwrap()
    }
}

impl NodeReader for SyntheticTree {
    type Error = std::convert::Infallible;
    fn read_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        Ok(ids.iter().map(|id| self.node(*id)).collect())
    }
}

fn cache_path() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    dir.join("merklog-bench").join("synthetic-2p30-level16.bin")
}

/// The perfect subtree (level, index) over leaves `leaf(i)`, computed from its leaves.
fn subtree(level: u8, index: u64) -> Hash {
    let width = 1u64 << level;
    let leaves: Vec<Hash> = (index * width..(index + 1) * width).map(leaf).collect();
    let mut range = CompactRange::new();
    range.append(&leaves, |_, _| {}).unwrap();
    range.root()
}

fn level_in_parallel(level: u8, count: usize) -> Vec<Hash> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count);
    let per_thread = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let start = t * per_thread;
                    let end = (start + per_thread).min(count);
                    (start..end)
                        .map(|i| subtree(level, i as u64))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

fn appends(c: &mut Criterion) {
    let leaves: Vec<Hash> = (0..REAL_SIZE).map(leaf).collect();
    let mut group = c.benchmark_group("append_1e6");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.throughput(Throughput::Elements(REAL_SIZE));
    group.bench_function("merklog_compact_range", |b| {
        b.iter(|| {
            let mut range = CompactRange::new();
            range.append(black_box(&leaves), |_, _| {}).unwrap();
            black_box(range.root())
        })
    });
    group.bench_function("merklog_compact_range_batches_of_256_root_each", |b| {
        b.iter(|| {
            let mut range = CompactRange::new();
            for batch in leaves.chunks(256) {
                range.append(black_box(batch), |_, _| {}).unwrap();
                black_box(range.root());
            }
        })
    });
    let raw_leaves: Vec<[u8; 32]> = leaves.iter().map(|h| *h.as_bytes()).collect();
    group.bench_function("rs_merkle_from_leaves", |b| {
        b.iter(|| black_box(rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&raw_leaves).root()))
    });
    group.bench_function("naive_recursive_root", |b| {
        b.iter(|| black_box(naive::root(&leaves)))
    });
    group.finish();
}

fn batch_proofs(c: &mut Criterion) {
    let leaves: Vec<Hash> = (0..REAL_SIZE + 1000).map(leaf).collect();
    let mut before = CompactRange::new();
    before
        .append(&leaves[..REAL_SIZE as usize], |_, _| {})
        .unwrap();
    let batch = &leaves[REAL_SIZE as usize..];
    let mut group = c.benchmark_group("batch_proofs_1000_on_1e6");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("merklog_build_all", |b| {
        b.iter(|| {
            let proofs = BatchProofs::new(&before, black_box(batch)).unwrap();
            for i in REAL_SIZE..REAL_SIZE + 1000 {
                black_box(proofs.inclusion_proof(LeafIndex(i)).unwrap());
            }
        })
    });
    group.finish();
}

fn real_tree(c: &mut Criterion) {
    let leaves: Vec<Hash> = (0..REAL_SIZE).map(leaf).collect();
    let (store, _) = LevelStore::build(&leaves);
    let size = TreeSize(REAL_SIZE);
    let root = naive::root(&leaves);
    let raw_leaves: Vec<[u8; 32]> = leaves.iter().map(|h| *h.as_bytes()).collect();
    let rs_tree = rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&raw_leaves);
    assert_eq!(rs_tree.root(), Some(*root.as_bytes()));
    let mut ct_tree = MemoryBackedTree::<Sha256, [u8; 8]>::new();
    for i in 0..REAL_SIZE {
        ct_tree.push(i.to_be_bytes());
    }
    assert_eq!(ct_tree.root().as_bytes().as_slice(), root.as_bytes());
    let ct_root = ct_tree.root();

    let mut rng = SplitMix(42);
    let indices: Vec<u64> = (0..QUERIES).map(|_| rng.below(REAL_SIZE)).collect();
    let olds: Vec<u64> = (0..QUERIES).map(|_| rng.below(REAL_SIZE - 1) + 1).collect();
    let old_roots: Vec<Hash> = olds
        .iter()
        .map(|&m| root_at(&store, TreeSize(m)).unwrap())
        .collect();
    let inclusion: Vec<Vec<Hash>> = indices
        .iter()
        .map(|&i| inclusion_proof(&store, LeafIndex(i), size).unwrap())
        .collect();
    let consistency: Vec<Vec<Hash>> = olds
        .iter()
        .map(|&m| consistency_proof(&store, TreeSize(m), size).unwrap())
        .collect();

    let mut group = c.benchmark_group("proofs_1e6");
    group.throughput(Throughput::Elements(1));
    let mut q = 0usize;
    let mut next = move || {
        q = (q + 1) % QUERIES;
        q
    };
    group.bench_function("inclusion_build/merklog_store", |b| {
        b.iter(|| {
            let i = indices[next()];
            black_box(inclusion_proof(&store, LeafIndex(i), size).unwrap())
        })
    });
    group.bench_function("inclusion_build/rs_merkle", |b| {
        b.iter(|| {
            let i = indices[next()] as usize;
            black_box(rs_tree.proof(&[i]).proof_hashes().to_vec())
        })
    });
    group.bench_function("inclusion_build/ct_merkle", |b| {
        b.iter(|| black_box(ct_tree.prove_inclusion(indices[next()] as usize)))
    });
    group.bench_function("inclusion_verify/merklog", |b| {
        b.iter(|| {
            let q = next();
            let i = indices[q];
            verify_inclusion(
                &leaves[i as usize],
                LeafIndex(i),
                size,
                &inclusion[q],
                &root,
            )
            .unwrap()
        })
    });
    let ct_inclusion: Vec<_> = inclusion
        .iter()
        .map(|p| ct_merkle::InclusionProof::<Sha256>::from_bytes(concat(p)))
        .collect();
    group.bench_function("inclusion_verify/ct_merkle", |b| {
        b.iter(|| {
            let q = next();
            let i = indices[q];
            ct_root
                .verify_inclusion(&i.to_be_bytes(), i, &ct_inclusion[q])
                .unwrap()
        })
    });
    group.bench_function("consistency_build/merklog_store", |b| {
        b.iter(|| {
            let m = olds[next()];
            black_box(consistency_proof(&store, TreeSize(m), size).unwrap())
        })
    });
    group.bench_function("consistency_build/ct_merkle", |b| {
        b.iter(|| black_box(ct_tree.prove_consistency((REAL_SIZE - olds[next()]) as usize)))
    });
    group.bench_function("consistency_verify/merklog", |b| {
        b.iter(|| {
            let q = next();
            verify_consistency(
                TreeSize(olds[q]),
                size,
                &consistency[q],
                &old_roots[q],
                &root,
            )
            .unwrap()
        })
    });
    let ct_consistency: Vec<_> = consistency
        .iter()
        .map(|p| ct_merkle::ConsistencyProof::<Sha256>::try_from_bytes(concat(p)).unwrap())
        .collect();
    let ct_old_roots: Vec<_> = olds
        .iter()
        .zip(&old_roots)
        .map(|(&m, r)| ct_merkle::RootHash::<Sha256>::new((*r.as_bytes()).into(), m))
        .collect();
    group.bench_function("consistency_verify/ct_merkle", |b| {
        b.iter(|| {
            let q = next();
            ct_root
                .verify_consistency(&ct_old_roots[q], &ct_consistency[q])
                .unwrap()
        })
    });
    // The naive recursive version rehashes whole subtrees: O(n) per proof.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("inclusion_build/naive_recursive", |b| {
        b.iter(|| black_box(naive::path(indices[next()] as usize, &leaves)))
    });
    group.bench_function("consistency_build/naive_recursive", |b| {
        b.iter(|| black_box(naive::consistency(olds[next()] as usize, &leaves)))
    });
    group.finish();
}

fn synthetic_tree(c: &mut Criterion) {
    let tree = SyntheticTree::new();
    let n = 1u64 << SYNTHETIC_LOG2;
    let size = TreeSize(n);
    let root = tree.root();
    let mut rng = SplitMix(7);
    let indices: Vec<u64> = (0..QUERIES).map(|_| rng.below(n)).collect();
    let olds: Vec<u64> = (0..QUERIES).map(|_| rng.below(n - 1) + 1).collect();
    // Warm the memo for the query set and keep honest proofs and roots to verify.
    let inclusion: Vec<Vec<Hash>> = indices
        .iter()
        .map(|&i| inclusion_proof(&tree, LeafIndex(i), size).unwrap())
        .collect();
    let consistency: Vec<Vec<Hash>> = olds
        .iter()
        .map(|&m| consistency_proof(&tree, TreeSize(m), size).unwrap())
        .collect();
    let old_roots: Vec<Hash> = olds.iter().map(|&m| tree.root_at(m)).collect();
    let leaves: Vec<Hash> = indices.iter().map(|&i| leaf(i)).collect();
    for (q, &i) in indices.iter().enumerate() {
        verify_inclusion(&leaves[q], LeafIndex(i), size, &inclusion[q], &root).unwrap();
    }

    let mut group = c.benchmark_group("proofs_2p30");
    group.throughput(Throughput::Elements(1));
    let mut q = 0usize;
    let mut next = move || {
        q = (q + 1) % QUERIES;
        q
    };
    group.bench_function("inclusion_build/merklog_store", |b| {
        b.iter(|| black_box(inclusion_proof(&tree, LeafIndex(indices[next()]), size).unwrap()))
    });
    group.bench_function("inclusion_verify/merklog", |b| {
        b.iter(|| {
            let q = next();
            let i = indices[q];
            verify_inclusion(&leaves[q], LeafIndex(i), size, &inclusion[q], &root).unwrap()
        })
    });
    group.bench_function("consistency_build/merklog_store", |b| {
        b.iter(|| black_box(consistency_proof(&tree, TreeSize(olds[next()]), size).unwrap()))
    });
    group.bench_function("consistency_verify/merklog", |b| {
        b.iter(|| {
            let q = next();
            verify_consistency(
                TreeSize(olds[q]),
                size,
                &consistency[q],
                &old_roots[q],
                &root,
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = appends, batch_proofs, real_tree, synthetic_tree
}
criterion_main!(benches);
