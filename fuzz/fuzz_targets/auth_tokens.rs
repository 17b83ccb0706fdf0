//! Fuzz target: see `merklog_auth::fuzzing::tokens`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = merklog_auth::fuzzing::tokens(data);
});
