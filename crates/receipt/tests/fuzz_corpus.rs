//! Replays the checked-in fuzz seed corpora through the functions the cargo-fuzz targets
//! in `fuzz/` call, so ordinary test runs check every seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 5,
        "only {} seeds in {}",
        out.len(),
        dir.display()
    );
    out
}

#[test]
fn receipt_parse_seeds() {
    let mut parsed = 0;
    for (path, data) in seeds("receipt_parse") {
        let outcome =
            std::panic::catch_unwind(|| merklog_receipt::fuzzing::receipt_parse_target(&data));
        assert!(outcome.is_ok(), "seed {} panicked", path.display());
        parsed += usize::from(merklog_receipt::Receipt::parse(&data).is_ok());
    }
    // The corpus holds real receipts, so the target reaches past the parser.
    assert!(parsed >= 2, "{parsed} seeds parse as receipts");
}

#[test]
fn statement_parse_seeds() {
    let mut parsed = 0;
    for (path, data) in seeds("statement_parse") {
        let outcome =
            std::panic::catch_unwind(|| merklog_receipt::fuzzing::statement_parse_target(&data));
        assert!(outcome.is_ok(), "seed {} panicked", path.display());
        parsed += usize::from(merklog_receipt::SignedStatement::parse(&data).is_ok());
    }
    assert!(parsed >= 2, "{parsed} seeds parse as statements");
}

/// Writes the seed corpora (run once with `--ignored` after a format change).
#[test]
#[ignore = "regenerates the checked-in corpus"]
fn write_seed_corpora() {
    use merklog_merkle::{BatchProofs, CompactRange, LeafIndex, TreeSize, hash_leaf};
    use merklog_receipt::{Algorithm, SecretKey, SignedTreeHead, problem_details, sign_statement};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus");
    let receipts = root.join("receipt_parse");
    let statements = root.join("statement_parse");
    std::fs::create_dir_all(&receipts).unwrap();
    std::fs::create_dir_all(&statements).unwrap();
    let mut r = Vec::new();
    let mut s = Vec::new();
    for (n, algorithm) in [Algorithm::EdDsa, Algorithm::Es256].into_iter().enumerate() {
        let secret = SecretKey::from_bytes(algorithm, &[11; 32]).unwrap();
        for size in [1u64, 6] {
            let leaves: Vec<_> = (0..size).map(|i| hash_leaf(&i.to_be_bytes())).collect();
            let proofs = BatchProofs::new(&CompactRange::new(), &leaves).unwrap();
            let head = SignedTreeHead::sign(&secret, TreeSize(size), proofs.root()).unwrap();
            let index = LeafIndex(size - 1);
            let path = proofs.inclusion_proof(index).unwrap();
            r.push(
                head.receipt(&leaves[index.0 as usize], index, &path)
                    .unwrap(),
            );
        }
        s.push(sign_statement(&secret, "issuer.example", "subject", "text/plain", b"hi").unwrap());
        s.push(sign_statement(&secret, &format!("i{n}"), "s", "application/json", b"{}").unwrap());
    }
    r.push(b"".to_vec());
    r.push(vec![0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40]);
    r.push(r[0][..r[0].len() / 2].to_vec());
    s.push(problem_details("t", "d"));
    s.push(vec![0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40]);
    s.push(s[0][..s[0].len() - 3].to_vec());
    for (dir, list) in [(&receipts, r), (&statements, s)] {
        for (i, data) in list.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), data).unwrap();
        }
    }
}
