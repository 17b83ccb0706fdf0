//! Fuzz target: see `merklog_event::fuzzing::otlp_leaf_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| merklog_event::fuzzing::otlp_leaf_target(data));
