//! Fuzz target bodies, shared by the cargo-fuzz targets in `fuzz/` and by the test that
//! replays the checked-in seed corpus, so both decode input the same way.
//!
//! Not part of the API. Each function takes raw fuzzer bytes, builds structured input
//! with `arbitrary`, and panics (on purpose: that is how a fuzzer reports) only when a
//! property of this crate is violated.

use std::collections::HashMap;

use arbitrary::{Result, Unstructured};

use crate::bundle::{BundleEntries, MAX_ENTRY_LEN, bundle_prefix_len, push_entry, split_bundle};
use crate::tile::{TileId, entry_bundle_path, parse_entry_bundle_path, parse_tile_path};
use crate::{
    BatchProofs, CompactRange, Hash, LeafIndex, MerkleError, NodeId, NodeReader, TreeSize,
    consistency_proof, hash_leaf, inclusion_proof, root_from_inclusion_proof, verify_consistency,
    verify_inclusion,
};

/// Largest honest tree the targets build (keeps each run cheap).
const MAX_HONEST_SIZE: u64 = 300;
/// Largest proof the raw modes pass to the verifiers.
const MAX_PROOF_HASHES: usize = 70;

/// Fuzz `verify_inclusion` and `root_from_inclusion_proof`.
pub fn verify_inclusion_target(data: &[u8]) {
    let mut input = Unstructured::new(data);
    // Running out of input simply ends the case.
    let _ = inclusion_case(&mut input);
}

/// Fuzz `verify_consistency`.
pub fn verify_consistency_target(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let _ = consistency_case(&mut input);
}

/// Fuzz the tile and entry-bundle path parsers.
pub fn tile_paths_target(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let _ = tile_paths_case(&mut input);
}

/// Fuzz the entry-bundle codec.
pub fn bundle_target(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let _ = bundle_case(&mut input);
}

/// A tree of small size built from leaves `hash_leaf(i as big-endian u64)`, with every
/// stored node and the root at every size.
struct SmallTree {
    leaves: Vec<Hash>,
    nodes: HashMap<NodeId, Hash>,
    roots: Vec<Hash>,
}

impl SmallTree {
    fn new(size: u64) -> Self {
        let leaves: Vec<Hash> = (0..size).map(|i| hash_leaf(&i.to_be_bytes())).collect();
        let mut nodes = HashMap::new();
        let mut range = CompactRange::new();
        let mut roots = vec![range.root()];
        for leaf in &leaves {
            let appended = range.append(std::slice::from_ref(leaf), |id, hash| {
                nodes.insert(id, *hash);
            });
            assert!(appended.is_ok());
            roots.push(range.root());
        }
        Self {
            leaves,
            nodes,
            roots,
        }
    }

    fn root(&self, size: u64) -> Hash {
        self.roots[size as usize]
    }
}

impl NodeReader for SmallTree {
    type Error = NodeId;
    fn read_nodes(&self, ids: &[NodeId]) -> std::result::Result<Vec<Hash>, NodeId> {
        ids.iter()
            .map(|id| self.nodes.get(id).copied().ok_or(*id))
            .collect()
    }
}

fn hash(input: &mut Unstructured<'_>) -> Result<Hash> {
    input.arbitrary().map(Hash::from_bytes)
}

fn proof(input: &mut Unstructured<'_>) -> Result<Vec<Hash>> {
    let len = input.int_in_range(0..=MAX_PROOF_HASHES)?;
    (0..len).map(|_| hash(input)).collect()
}

/// Mostly small sizes (where proofs have interesting shapes), sometimes any `u64`.
fn size(input: &mut Unstructured<'_>) -> Result<u64> {
    if input.ratio(1, 4)? {
        input.arbitrary()
    } else {
        input.int_in_range(0..=4096)
    }
}

fn flip_bit(proof: &mut [Hash], input: &mut Unstructured<'_>) -> Result<bool> {
    if proof.is_empty() {
        return Ok(false);
    }
    let which = input.choose_index(proof.len())?;
    let bit = input.int_in_range(0..=255usize)?;
    let mut bytes = *proof[which].as_bytes();
    bytes[bit / 8] ^= 1 << (bit % 8);
    proof[which] = Hash::from_bytes(bytes);
    Ok(true)
}

fn inclusion_case(input: &mut Unstructured<'_>) -> Result<()> {
    if input.arbitrary::<bool>()? {
        // Arbitrary input: must not panic, and both entry points must agree.
        let (leaf, index, size, proof, root) = (
            hash(input)?,
            size(input)?,
            size(input)?,
            proof(input)?,
            hash(input)?,
        );
        let verified = verify_inclusion(&leaf, LeafIndex(index), TreeSize(size), &proof, &root);
        let computed = root_from_inclusion_proof(&leaf, LeafIndex(index), TreeSize(size), &proof);
        match (&verified, &computed) {
            (Ok(()), Ok(computed)) => assert_eq!(computed, &root),
            (
                Err(MerkleError::InclusionRootMismatch {
                    expected,
                    computed: c,
                }),
                Ok(computed),
            ) => {
                assert_eq!((expected, c), (&root, computed));
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!(
                "verify_inclusion {verified:?} disagrees with root_from_inclusion_proof {computed:?}"
            ),
        }
        return Ok(());
    }
    // Honest proof from a store and from a batch: must verify; one mutation: must not.
    let size = input.int_in_range(1..=MAX_HONEST_SIZE)?;
    let index = input.int_in_range(0..=size - 1)?;
    let tree = SmallTree::new(size);
    let leaf = tree.leaves[index as usize];
    let root = tree.root(size);
    let Ok(honest) = inclusion_proof(&tree, LeafIndex(index), TreeSize(size)) else {
        panic!("inclusion_proof({index}, {size}) failed");
    };
    let batch_start = input.int_in_range(0..=index)?;
    let mut before = CompactRange::new();
    assert!(
        before
            .append(&tree.leaves[..batch_start as usize], |_, _| {})
            .is_ok()
    );
    let Ok(batch) = BatchProofs::new(&before, &tree.leaves[batch_start as usize..]) else {
        panic!("BatchProofs::new failed");
    };
    assert_eq!(batch.root(), root);
    assert_eq!(
        batch.inclusion_proof(LeafIndex(index)).ok().as_ref(),
        Some(&honest)
    );
    assert_eq!(
        verify_inclusion(&leaf, LeafIndex(index), TreeSize(size), &honest, &root),
        Ok(())
    );

    let mut proof = honest.clone();
    let rejected = match input.int_in_range(0..=4u8)? {
        0 => flip_bit(&mut proof, input)?,
        1 => {
            let other = if input.arbitrary()? {
                index.wrapping_add(1)
            } else {
                index.wrapping_sub(1)
            };
            assert!(
                verify_inclusion(&leaf, LeafIndex(other), TreeSize(size), &proof, &root).is_err()
            );
            return Ok(());
        }
        2 => {
            // Another size, checked against that size's true root.
            let other = input.int_in_range(index + 1..=MAX_HONEST_SIZE)?;
            if other == size {
                return Ok(());
            }
            let other_root = SmallTree::new(other).root(other);
            assert!(
                verify_inclusion(
                    &leaf,
                    LeafIndex(index),
                    TreeSize(other),
                    &proof,
                    &other_root
                )
                .is_err()
            );
            return Ok(());
        }
        3 => {
            proof.push(hash(input)?);
            true
        }
        _ => proof.pop().is_some(),
    };
    if rejected {
        assert!(verify_inclusion(&leaf, LeafIndex(index), TreeSize(size), &proof, &root).is_err());
    }
    Ok(())
}

fn consistency_case(input: &mut Unstructured<'_>) -> Result<()> {
    if input.arbitrary::<bool>()? {
        let (old, new, proof, old_root, new_root) = (
            size(input)?,
            size(input)?,
            proof(input)?,
            hash(input)?,
            hash(input)?,
        );
        let verified =
            verify_consistency(TreeSize(old), TreeSize(new), &proof, &old_root, &new_root);
        if verified.is_ok() {
            // Only possible for well-formed sizes with the exact proof length.
            assert!(0 < old && old <= new);
            assert!(old != new || (proof.is_empty() && old_root == new_root));
        }
        return Ok(());
    }
    let new = input.int_in_range(1..=MAX_HONEST_SIZE)?;
    let old = input.int_in_range(1..=new)?;
    let tree = SmallTree::new(new);
    let (old_root, new_root) = (tree.root(old), tree.root(new));
    let Ok(honest) = consistency_proof(&tree, TreeSize(old), TreeSize(new)) else {
        panic!("consistency_proof({old}, {new}) failed");
    };
    assert_eq!(
        verify_consistency(TreeSize(old), TreeSize(new), &honest, &old_root, &new_root),
        Ok(())
    );

    let mut proof = honest.clone();
    let rejected = match input.int_in_range(0..=3u8)? {
        0 => flip_bit(&mut proof, input)?,
        1 => {
            // Another old size, checked against its true root.
            let other = input.int_in_range(1..=new)?;
            if other == old {
                return Ok(());
            }
            let other_root = tree.root(other);
            assert!(
                verify_consistency(
                    TreeSize(other),
                    TreeSize(new),
                    &proof,
                    &other_root,
                    &new_root
                )
                .is_err()
            );
            return Ok(());
        }
        2 => {
            proof.push(hash(input)?);
            true
        }
        _ => proof.pop().is_some(),
    };
    if rejected {
        assert!(
            verify_consistency(TreeSize(old), TreeSize(new), &proof, &old_root, &new_root).is_err()
        );
    }
    Ok(())
}

fn tile_paths_case(input: &mut Unstructured<'_>) -> Result<()> {
    if input.arbitrary::<bool>()? {
        // From coordinates: the path must parse back to them.
        let level = input.int_in_range(0..=crate::tile::MAX_TILE_LEVEL)?;
        let index = input.arbitrary()?;
        let width = input.int_in_range(1..=crate::tile::TILE_WIDTH)?;
        let tile = TileId {
            level,
            index,
            width,
        };
        assert_eq!(parse_tile_path(&tile.path()), Ok(tile));
        assert_eq!(
            parse_entry_bundle_path(&entry_bundle_path(index, width)),
            Ok((index, width))
        );
        return Ok(());
    }
    // From text: anything accepted must be canonical, i.e. print back to the same text.
    let rest = input.bytes(input.len())?;
    let text = String::from_utf8_lossy(rest);
    if let Ok(tile) = parse_tile_path(&text) {
        assert!(tile.level <= crate::tile::MAX_TILE_LEVEL && (1..=256).contains(&tile.width));
        assert_eq!(tile.path(), text);
    }
    if let Ok((index, width)) = parse_entry_bundle_path(&text) {
        assert!((1..=256).contains(&width));
        assert_eq!(entry_bundle_path(index, width), text);
    }
    Ok(())
}

fn bundle_case(input: &mut Unstructured<'_>) -> Result<()> {
    if input.arbitrary::<bool>()? {
        // From entries: what is encoded splits back into the same entries.
        let count = input.int_in_range(0..=300usize)?;
        let mut bundle = Vec::new();
        let mut entries: Vec<Vec<u8>> = Vec::new();
        for _ in 0..count {
            let len = if input.ratio(1, 64)? {
                input.int_in_range(MAX_ENTRY_LEN - 2..=MAX_ENTRY_LEN + 2)?
            } else {
                input.int_in_range(0..=300usize)?
            };
            let fill: u8 = input.arbitrary()?;
            let entry = vec![fill; len];
            let before = bundle.len();
            match push_entry(&mut bundle, &entry) {
                Ok(()) => {
                    assert!(len <= MAX_ENTRY_LEN);
                    assert_eq!(bundle.len(), before + 2 + len);
                    entries.push(entry);
                }
                Err(MerkleError::BundleEntryTooLong { len: refused }) => {
                    assert!(len > MAX_ENTRY_LEN && refused == len);
                    assert_eq!(bundle.len(), before);
                }
                Err(other) => panic!("push_entry: unexpected error {other}"),
            }
        }
        let split = split_bundle(&bundle).map_err(|_| arbitrary::Error::IncorrectFormat);
        assert_eq!(
            split.as_deref().ok(),
            Some(
                entries
                    .iter()
                    .map(Vec::as_slice)
                    .collect::<Vec<_>>()
                    .as_slice()
            )
        );
        let count = input.int_in_range(0..=entries.len())?;
        let prefix = bundle_prefix_len(&bundle, count);
        let expected: usize = entries[..count].iter().map(|e| 2 + e.len()).sum();
        assert_eq!(prefix, Ok(expected));
        return Ok(());
    }
    // From raw bytes: whatever splits re-encodes to exactly the same bytes, and a
    // refusal names an offset inside the bundle, after the entries that were whole.
    let raw = input.bytes(input.len())?;
    let mut walked = BundleEntries::new(raw);
    let mut whole = Vec::new();
    let mut failure = None;
    for item in walked.by_ref() {
        match item {
            Ok(entry) => whole.push(entry),
            Err(e) => failure = Some(e),
        }
    }
    let mut again = Vec::new();
    for entry in &whole {
        assert!(push_entry(&mut again, entry).is_ok());
    }
    assert_eq!(bundle_prefix_len(raw, whole.len()), Ok(again.len()));
    assert_eq!(raw.get(..again.len()), Some(again.as_slice()));
    match (failure, split_bundle(raw)) {
        (None, Ok(entries)) => {
            assert_eq!(entries, whole);
            assert_eq!(again, raw);
            assert_eq!(walked.offset(), raw.len());
            assert_eq!(
                bundle_prefix_len(raw, whole.len() + 1),
                Err(MerkleError::BundleTooFewEntries {
                    wanted: whole.len() + 1,
                    found: whole.len()
                })
            );
        }
        (Some(failure), Err(refused)) => {
            assert_eq!(failure, refused);
            let offset = match failure {
                MerkleError::BundleTruncatedLength { offset } => {
                    assert_eq!(raw.len() - offset, 1);
                    offset
                }
                MerkleError::BundleTruncatedEntry {
                    offset,
                    len,
                    available,
                } => {
                    assert!(available < len && offset + 2 + available == raw.len());
                    offset
                }
                other => panic!("split_bundle: unexpected error {other}"),
            };
            assert_eq!(offset, again.len());
            assert_eq!(bundle_prefix_len(raw, whole.len() + 1), Err(failure));
        }
        (failure, split) => panic!("iterator says {failure:?}, split says {split:?}"),
    }
    Ok(())
}
