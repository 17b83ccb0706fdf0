//! Fuzz target: see `merklog_event::fuzzing::event_parse_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| merklog_event::fuzzing::event_parse_target(data));
