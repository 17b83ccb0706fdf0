//! Fuzz target body for the manifest parser, shared by the cargo-fuzz target in `fuzz/`
//! and the test that replays the checked-in seed corpus. Not part of the API.

use super::manifest::Manifest;

/// Parses arbitrary bytes as a manifest. A manifest that parses must serialise to
/// bytes that parse back to the same manifest.
pub fn manifest(data: &[u8]) {
    let Ok(manifest) = Manifest::parse(data) else {
        return;
    };
    let again = Manifest::parse(&manifest.to_bytes());
    assert_eq!(
        again.ok().map(|m| Manifest {
            self_sha256: String::new(),
            ..m
        }),
        Some(Manifest {
            self_sha256: String::new(),
            ..manifest
        })
    );
}
