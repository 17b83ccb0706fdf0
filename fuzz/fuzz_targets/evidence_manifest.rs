//! Fuzz target: see `merklog_client::evidence::fuzzing::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| merklog_client::evidence::fuzzing::manifest(data));
