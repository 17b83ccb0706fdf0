//! Fuzz target: see `merklog_merkle::fuzzing::verify_consistency_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| merklog_merkle::fuzzing::verify_consistency_target(data));
