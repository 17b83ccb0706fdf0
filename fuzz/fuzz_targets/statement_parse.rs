//! Fuzz target: see `merklog_receipt::fuzzing::statement_parse_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    merklog_receipt::fuzzing::statement_parse_target(data);
});
