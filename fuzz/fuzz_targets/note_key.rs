//! Fuzz target: see `merklog_note::fuzzing::key`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = merklog_note::fuzzing::key(data);
});
