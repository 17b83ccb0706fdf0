//! Fuzz target: see `merklog_merkle::fuzzing::bundle_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| merklog_merkle::fuzzing::bundle_target(data));
