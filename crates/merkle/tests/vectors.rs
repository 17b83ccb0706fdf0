//! Every inclusion and consistency vector of transparency-dev/merkle (see
//! `tests/data/README.md`): `wantErr: false` must verify, `wantErr: true` must be
//! rejected, with one pinned deviation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use merklog_merkle::{
    Hash, LeafIndex, MerkleError, TreeSize, verify_consistency, verify_inclusion,
};
use serde_json::Value;

/// The one vector we deliberately disagree with: it expects equal sizes, an empty proof
/// and equal roots to verify, but its roots are 12-byte placeholders. merklog rejects
/// every hash that is not 32 bytes when converting it, before verification, so a
/// malformed root can never be "consistent" with anything.
const DEVIATION: &str = "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn bytes(value: &Value) -> Vec<u8> {
    STANDARD
        .decode(value.as_str().expect("base64 string"))
        .expect("valid base64")
}

/// Converts like a server or client does: any hash of the wrong length is an error.
fn hash(value: &Value) -> Result<Hash, MerkleError> {
    Hash::try_from(bytes(value).as_slice())
}

fn proof(value: &Value) -> Result<Vec<Hash>, MerkleError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(hash).collect(),
        other => panic!("unexpected proof {other}"),
    }
}

fn size(value: &Value) -> u64 {
    value.as_u64().expect("non-negative integer size")
}

fn check_inclusion(case: &Value) -> Result<(), MerkleError> {
    let leaf = hash(&case["leafHash"])?;
    let root = hash(&case["root"])?;
    let proof = proof(&case["proof"])?;
    let index = LeafIndex(size(&case["leafIdx"]));
    verify_inclusion(
        &leaf,
        index,
        TreeSize(size(&case["treeSize"])),
        &proof,
        &root,
    )
}

fn check_consistency(case: &Value) -> Result<(), MerkleError> {
    let old_root = hash(&case["root1"])?;
    let new_root = hash(&case["root2"])?;
    let proof = proof(&case["proof"])?;
    let (old, new) = (
        TreeSize(size(&case["size1"])),
        TreeSize(size(&case["size2"])),
    );
    verify_consistency(old, new, &proof, &old_root, &new_root)
}

/// Runs every file of one kind; returns (cases that verified, cases rejected).
fn run(kind: &str, check: fn(&Value) -> Result<(), MerkleError>) -> (usize, usize) {
    let mut files = Vec::new();
    json_files(&data_dir().join(kind), &mut files);
    files.sort();
    let (mut accepted, mut rejected) = (0, 0);
    for file in &files {
        let name = file
            .strip_prefix(data_dir())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let case: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let want_err = case["wantErr"].as_bool().expect("wantErr");
        let result = check(&case);
        if name == DEVIATION {
            assert!(!want_err, "{name}: the deviation is a wantErr: false case");
            assert_eq!(
                result,
                Err(MerkleError::InvalidHashLength { got: 12 }),
                "{name}"
            );
            rejected += 1;
            continue;
        }
        match (want_err, &result) {
            (false, Ok(())) => accepted += 1,
            (true, Err(_)) => rejected += 1,
            _ => panic!(
                "{name} ({}): wantErr {want_err}, got {result:?}",
                case["desc"]
            ),
        }
    }
    assert_eq!(accepted + rejected, files.len());
    (accepted, rejected)
}

#[test]
fn inclusion_vectors() {
    let (accepted, rejected) = run("inclusion", check_inclusion);
    // The counts pin that every file was found and run (98 files in the copy).
    assert_eq!((accepted, rejected), (6, 92));
}

#[test]
fn consistency_vectors() {
    let (accepted, rejected) = run("consistency", check_consistency);
    assert_eq!((accepted, rejected), (5, 93));
}

/// The deviation is only about the hash length: the same case with well-formed equal
/// roots verifies.
#[test]
fn deviation_is_only_about_hash_length() {
    let case: Value =
        serde_json::from_slice(&std::fs::read(data_dir().join(DEVIATION)).unwrap()).unwrap();
    assert_eq!((size(&case["size1"]), size(&case["size2"])), (1, 1));
    assert!(proof(&case["proof"]).unwrap().is_empty());
    let root = Hash::from_bytes([0x42; 32]);
    assert_eq!(
        verify_consistency(TreeSize(1), TreeSize(1), &[], &root, &root),
        Ok(())
    );
}
