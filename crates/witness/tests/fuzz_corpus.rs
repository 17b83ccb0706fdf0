//! Replays the checked-in fuzz seeds through the same function the cargo-fuzz target
//! calls (`merklog_witness::fuzzing`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn add_checkpoint_body_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/add_checkpoint_body");
    let mut accepted = 0;
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        total += 1;
        if merklog_witness::fuzzing::add_checkpoint_body(&data) {
            accepted += 1;
        }
    }
    assert!(
        total >= 10,
        "seed corpus missing: {total} files in {}",
        dir.display()
    );
    // Both sides of the grammar are covered.
    assert!(
        accepted >= 4 && accepted < total,
        "{accepted} of {total} accepted"
    );
}
