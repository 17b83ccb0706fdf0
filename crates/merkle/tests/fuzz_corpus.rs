//! Replays the checked-in fuzz seed corpora through the same functions the cargo-fuzz
//! targets in `fuzz/` call, so CI (stable, no libFuzzer) checks every seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use merklog_merkle::fuzzing;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(
            outcome.is_ok(),
            "{target}: seed {} panicked",
            path.display()
        );
        count += 1;
    }
    assert!(
        count >= 10,
        "{target}: only {count} seeds in {}",
        dir.display()
    );
}

#[test]
fn verify_inclusion_seeds() {
    replay("verify_inclusion", fuzzing::verify_inclusion_target);
}

#[test]
fn verify_consistency_seeds() {
    replay("verify_consistency", fuzzing::verify_consistency_target);
}

#[test]
fn tile_paths_seeds() {
    replay("tile_paths", fuzzing::tile_paths_target);
}

#[test]
fn bundle_seeds() {
    replay("bundle", fuzzing::bundle_target);
}
