//! Fuzz-target bodies, shared by the cargo-fuzz targets in `fuzz/` and by the
//! test that replays the checked-in seed corpora. Not part of the API.
//!
//! Each function accepts any bytes, returns whether the parser accepted them,
//! and panics only when a property fails:
//! whatever parses must serialise back to exactly the input (for policies,
//! which allow comments and free spacing, the parse of the serialisation must
//! equal the first parse).

use crate::{
    Checkpoint, Note, Policy, TlogProof, Verifiers, parse_cosignature_verifier_key,
    parse_cosigner_key, parse_signer_key, parse_verifier_key,
};

/// Signed-note parser: round trip, and verification against no keys fails cleanly.
pub fn note(data: &[u8]) -> bool {
    let Ok(note) = Note::parse(data) else {
        return false;
    };
    assert_eq!(note.to_bytes(), data, "note round trip");
    assert!(note.verify(&Verifiers::new()).is_err());
    true
}

/// Verifier and signer key parsers: round trip of every accepted key.
pub fn key(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut accepted = false;
    if let Ok(v) = parse_verifier_key(text) {
        assert_eq!(v.to_vkey(), text, "vkey round trip");
        accepted = true;
    }
    if let Ok(v) = parse_cosignature_verifier_key(text) {
        assert_eq!(v.to_vkey(), text, "cosigner vkey round trip");
        accepted = true;
    }
    let ed25519 = parse_signer_key(text);
    if let Ok(s) = &ed25519 {
        let back = s.to_signer_key_text();
        assert_eq!(back.expose_secret(), text, "skey round trip");
        accepted = true;
    }
    if let Ok(s) = parse_cosigner_key(text) {
        // A type 0x01 key is accepted and re-encoded as type 0x04.
        if s.to_signer_key_text().expose_secret() != text {
            assert!(ed25519.is_ok(), "cosigner skey round trip");
        }
        accepted = true;
    }
    accepted
}

/// Checkpoint text parser: round trip, and the result validates.
pub fn checkpoint(data: &[u8]) -> bool {
    let Some(cp) = std::str::from_utf8(data)
        .ok()
        .and_then(|t| Checkpoint::from_text(t).ok())
    else {
        return false;
    };
    assert_eq!(cp.to_text().as_bytes(), data, "checkpoint round trip");
    assert!(cp.validate().is_ok(), "parsed checkpoint validates");
    true
}

/// tlog-proof parser: round trip.
pub fn tlog_proof(data: &[u8]) -> bool {
    let Ok(p) = TlogProof::parse(data) else {
        return false;
    };
    assert_eq!(p.to_bytes(), data, "tlog-proof round trip");
    true
}

/// tlog-policy parser: parse(serialise(parse(x))) == parse(x).
pub fn policy(data: &[u8]) -> bool {
    let Some(p) = std::str::from_utf8(data)
        .ok()
        .and_then(|t| Policy::parse(t).ok())
    else {
        return false;
    };
    let again = Policy::parse(&p.to_text());
    assert!(again.as_ref().is_ok_and(|q| *q == p), "policy re-parse");
    // Every witness cosigning satisfies any quorum; nobody satisfies only `none`.
    let names: Vec<&str> = p.witnesses().iter().map(|w| w.name.as_str()).collect();
    assert!(
        p.satisfied_by(names.iter().copied()),
        "all witnesses meet the quorum"
    );
    assert_eq!(p.satisfied_by([]), p.quorum() == crate::QUORUM_NONE);
    true
}
