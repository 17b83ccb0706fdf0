//! Replays the checked-in fuzz seed corpus through the function the cargo-fuzz target in
//! `fuzz/` calls, so CI (stable, no libFuzzer) checks every seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn event_parse_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/event_parse");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome =
            std::panic::catch_unwind(|| merklog_event::fuzzing::event_parse_target(&data));
        assert!(outcome.is_ok(), "seed {} panicked", path.display());
        count += 1;
    }
    assert!(count >= 10, "only {count} seeds in {}", dir.display());
}

#[test]
fn otlp_leaf_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/otlp_leaf");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| merklog_event::fuzzing::otlp_leaf_target(&data));
        assert!(outcome.is_ok(), "seed {} panicked", path.display());
        count += 1;
    }
    assert!(count >= 10, "only {count} seeds in {}", dir.display());
}
