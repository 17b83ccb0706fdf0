//! The naive tree against known answers from outside the project (see
//! `tests/data/README.md`): roots, inclusion paths and consistency proofs must be
//! byte for byte the stated ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use merklog_testkit_tree::{leaf_hash, mth, node_hash, path, proof};
use serde_json::Value;

/// The entries the vectors' trees are built from (RFC 6962's test data).
const ENTRIES: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

fn leaves() -> Vec<[u8; 32]> {
    ENTRIES.iter().map(|e| leaf_hash(e)).collect()
}

fn hash(value: &Value) -> [u8; 32] {
    STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn hashes(value: &Value) -> Vec<[u8; 32]> {
    match value {
        Value::Null => Vec::new(),
        list => list.as_array().unwrap().iter().map(hash).collect(),
    }
}

fn size(value: &Value) -> usize {
    value.as_u64().unwrap() as usize
}

/// The `happy-path.json` of every numbered case directory under `kind`.
fn cases(kind: &str) -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(kind);
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().join("happy-path.json"))
        .map(|file| {
            let value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            (file, value)
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(cases.len(), 5, "{kind} cases in {}", dir.display());
    cases
}

#[test]
fn inclusion_paths_and_roots_match_the_vectors() {
    let leaves = leaves();
    for (file, case) in cases("inclusion") {
        assert_eq!(case["wantErr"], false, "{}", file.display());
        let index = size(&case["leafIdx"]);
        let tree = &leaves[..size(&case["treeSize"])];
        assert_eq!(leaves[index], hash(&case["leafHash"]), "{}", file.display());
        assert_eq!(mth(tree), hash(&case["root"]), "{}", file.display());
        assert_eq!(
            path(index, tree).unwrap(),
            hashes(&case["proof"]),
            "{}",
            file.display()
        );
    }
}

#[test]
fn consistency_proofs_and_roots_match_the_vectors() {
    let leaves = leaves();
    for (file, case) in cases("consistency") {
        assert_eq!(case["wantErr"], false, "{}", file.display());
        let old = size(&case["size1"]);
        let new = &leaves[..size(&case["size2"])];
        assert_eq!(
            mth(&leaves[..old]),
            hash(&case["root1"]),
            "{}",
            file.display()
        );
        assert_eq!(mth(new), hash(&case["root2"]), "{}", file.display());
        assert_eq!(
            proof(old, new).unwrap(),
            hashes(&case["proof"]),
            "{}",
            file.display()
        );
    }
}

#[test]
fn hashes_and_small_trees_follow_the_definitions() {
    // SHA-256 of the empty string: MTH({}).
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let hex = |h: [u8; 32]| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(hex(mth(&[])), empty);
    // RFC 6962's test data: the leaf hash of the empty entry.
    assert_eq!(
        hex(leaf_hash(b"")),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );
    let leaves = leaves();
    assert_eq!(mth(&leaves[..1]), leaves[0]);
    assert_eq!(mth(&leaves[..2]), node_hash(&leaves[0], &leaves[1]));
    // Three leaves split 2 + 1.
    assert_eq!(
        mth(&leaves[..3]),
        node_hash(&node_hash(&leaves[0], &leaves[1]), &leaves[2])
    );
    assert_eq!(path(2, &leaves[..3]).unwrap(), vec![mth(&leaves[..2])]);
    assert_eq!(path(0, &leaves[..3]).unwrap(), vec![leaves[1], leaves[2]]);
    assert_eq!(path(0, &leaves[..1]).unwrap(), Vec::<[u8; 32]>::new());
    assert_eq!(proof(3, &leaves[..3]).unwrap(), Vec::<[u8; 32]>::new());
    assert_eq!(
        proof(2, &leaves[..3]).unwrap(),
        vec![leaves[2]],
        "size 2 is a complete left subtree, so its root is not repeated"
    );
}

#[test]
fn undefined_inputs_are_refused() {
    let leaves = leaves();
    assert_eq!(path::<[u8; 32]>(0, &[]), None);
    assert_eq!(path(8, &leaves), None);
    assert_eq!(proof(0, &leaves), None);
    assert_eq!(proof(9, &leaves), None);
    assert_eq!(proof::<[u8; 32]>(1, &[]), None);
}
