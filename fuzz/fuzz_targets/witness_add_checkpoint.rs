//! The witness's add-checkpoint body parser: no panic, byte-exact round trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    merklog_witness::fuzzing::add_checkpoint_body(data);
});
