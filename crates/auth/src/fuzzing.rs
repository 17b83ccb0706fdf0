//! Fuzz-target bodies, shared by the cargo-fuzz targets in `fuzz/` and by the
//! test that replays the checked-in seed corpora. Not part of the API.
//!
//! Each function accepts any bytes, returns whether the parser accepted them,
//! and panics only when a property fails.

use crate::{Principal, SpiffeId, TokensFile, parse_bearer, principal_from_der};

/// Certificate principal: whatever a certificate yields is a valid principal
/// name, and a SPIFFE-looking one is a valid SPIFFE ID.
pub fn certificate(data: &[u8]) -> bool {
    let Ok(principal) = principal_from_der(data) else {
        return false;
    };
    assert_eq!(
        Principal::new(principal.as_str()).as_ref(),
        Ok(&principal),
        "principal from a certificate is valid"
    );
    if principal.as_str().starts_with("spiffe://") {
        assert!(SpiffeId::parse(principal.as_str()).is_ok());
    }
    true
}

/// Tokens file and bearer header parsers: an accepted file serialises to text
/// that parses to the same records; an accepted header yields a credential
/// that is a suffix of the input.
pub fn tokens(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(credential) = parse_bearer(data) {
        assert!(
            data.ends_with(credential.as_bytes()),
            "credential is the tail"
        );
        accepted = true;
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(file) = TokensFile::parse(text) {
            let again = TokensFile::parse(&file.to_text());
            assert_eq!(again.as_ref(), Ok(&file), "tokens file round trip");
            for record in file.records() {
                assert_eq!(file.find(&record.hash), Some(record));
            }
            accepted = true;
        }
        if let Ok(id) = SpiffeId::parse(text) {
            assert_eq!(id.as_str(), text);
            assert!(text.starts_with("spiffe://") && !id.trust_domain().is_empty());
        }
    }
    accepted
}
