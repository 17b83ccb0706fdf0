//! Fuzz target: see `merklog_merkle::fuzzing::verify_inclusion_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| merklog_merkle::fuzzing::verify_inclusion_target(data));
