//! Verifier and signer key text: strict parsing, each rejection pinned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use merklog_note::{
    ALG_COSIGNATURE_V1, ALG_ED25519, CosignatureSigner, Ed25519Signer, NoteError, Signer, Verifier,
    key_id, parse_cosignature_verifier_key, parse_cosigner_key, parse_signer_key,
    parse_verifier_key,
};
use sha2::{Digest, Sha256};

fn vkey(name: &str, id: u32, alg: u8, key: &[u8]) -> String {
    let mut m = vec![alg];
    m.extend_from_slice(key);
    format!("{name}+{id:08x}+{}", STANDARD.encode(m))
}

#[test]
fn key_id_is_sha256_of_name_newline_type_key() {
    let public = [5u8; 32];
    let mut input = b"example.com/log\n".to_vec();
    input.push(0x01);
    input.extend_from_slice(&public);
    let digest = Sha256::digest(&input);
    let want = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    assert_eq!(key_id("example.com/log", ALG_ED25519, &public), want);
    // The cosignature type gives a different ID for the same name and key.
    assert_ne!(key_id("example.com/log", ALG_COSIGNATURE_V1, &public), want);
}

#[test]
fn signer_key_splits_only_where_the_format_says() {
    // Generate seeds until the base64 contains '+', to prove it is not split.
    let mut seen_plus = false;
    for seed in 0..=255u8 {
        let s = Ed25519Signer::from_seed("example.com/log", &[seed; 32]).unwrap();
        let text = s.to_signer_key_text();
        let back = parse_signer_key(text.expose_secret()).unwrap();
        assert_eq!(back.key_id(), s.key_id());
        let vkey = s.verifier().to_vkey();
        assert_eq!(parse_verifier_key(&vkey).unwrap().to_vkey(), vkey);
        seen_plus |= text.expose_secret().matches('+').count() > 4 || vkey.matches('+').count() > 2;
    }
    assert!(seen_plus, "no key with '+' in its base64 was exercised");
}

#[test]
fn verifier_key_rejections_are_pinned() {
    let s = Ed25519Signer::from_seed("n", &[1; 32]).unwrap();
    let public = s.verifier().public_key();
    let id = s.key_id();
    let good = vkey("n", id, ALG_ED25519, &public);
    parse_verifier_key(&good).unwrap();

    let format_cases = [
        "n".to_owned(),
        format!("n+{id:08x}"),
        format!("n+{:08X}+{}", id, good.splitn(3, '+').last().unwrap()), // uppercase hex
        format!("n+{:07x}+AA==", id >> 4),                               // short ID
        format!("n+0x{:06x}+AA==", id & 0xff_ffff),                      // prefixed hex
        format!("n+{id:08x}+"),                                          // empty material
        format!("n+{id:08x}+{}=", good.splitn(3, '+').last().unwrap()),  // bad padding
    ];
    for text in &format_cases {
        let err = parse_verifier_key(text).unwrap_err();
        assert!(
            matches!(
                err,
                NoteError::KeyFormat {
                    kind: "verifier",
                    ..
                }
            ),
            "{text}: {err:?}"
        );
    }
    let err = parse_verifier_key(&vkey("bad name", id, ALG_ED25519, &public)).unwrap_err();
    assert!(matches!(err, NoteError::InvalidKeyName { .. }), "{err:?}");
    let err = parse_verifier_key(&vkey("n", id ^ 1, ALG_ED25519, &public)).unwrap_err();
    assert!(
        matches!(err, NoteError::KeyIdMismatch { stated, computed, .. } if stated == id ^ 1 && computed == id),
        "{err:?}"
    );
    // Wrong type byte, even with a matching ID for that type.
    let cid = key_id("n", 0x02, &public);
    let err = parse_verifier_key(&vkey("n", cid, 0x02, &public)).unwrap_err();
    assert!(
        matches!(err, NoteError::UnsupportedAlgorithm { alg: 0x02 }),
        "{err:?}"
    );
    // Short key with an adjusted ID.
    let short = &public[..31];
    let err = parse_verifier_key(&vkey("n", key_id("n", 1, short), 1, short)).unwrap_err();
    assert!(
        matches!(
            err,
            NoteError::WrongKeyLength {
                expected: 32,
                got: 31
            }
        ),
        "{err:?}"
    );
    // 32 bytes that are not a curve point (y = 2 has no x).
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    let err =
        parse_verifier_key(&vkey("n", key_id("n", 1, &not_a_point), 1, &not_a_point)).unwrap_err();
    assert!(matches!(err, NoteError::InvalidPublicKey { .. }), "{err:?}");
}

#[test]
fn signer_key_rejections_are_pinned() {
    let s = Ed25519Signer::from_seed("n", &[1; 32]).unwrap();
    let text = s.to_signer_key_text();
    let good = text.expose_secret();
    let err = parse_signer_key(good.strip_prefix("PRIVATE+").unwrap()).unwrap_err();
    assert!(
        matches!(err, NoteError::KeyFormat { kind: "signer", .. }),
        "{err:?}"
    );
    let lower = good.replacen("PRIVATE+KEY", "private+key", 1);
    assert!(matches!(
        parse_signer_key(&lower),
        Err(NoteError::KeyFormat { .. })
    ));
    // A vkey is not a signer key.
    assert!(matches!(
        parse_signer_key(&s.verifier().to_vkey()),
        Err(NoteError::KeyFormat { .. })
    ));
    // The ID must match the derived public key.
    let id = format!("{:08x}", s.key_id());
    let wrong = good.replacen(&id, &format!("{:08x}", s.key_id() ^ 0x100), 1);
    let err = parse_signer_key(&wrong).unwrap_err();
    assert!(matches!(err, NoteError::KeyIdMismatch { .. }), "{err:?}");
    // A cosigner key (type 0x04) is not an Ed25519 note key.
    let c = CosignatureSigner::from_seed("n", &[1; 32]).unwrap();
    let err = parse_signer_key(c.to_signer_key_text().expose_secret()).unwrap_err();
    assert!(
        matches!(err, NoteError::UnsupportedAlgorithm { alg: 0x04 }),
        "{err:?}"
    );
    // Errors about a signer key never echo its text.
    let mut mangled = good.to_owned();
    mangled.push('!');
    let msg = parse_signer_key(&mangled).unwrap_err().to_string();
    assert!(!msg.contains(good.splitn(5, '+').last().unwrap()), "{msg}");
}

#[test]
fn cosigner_keys() {
    let c = CosignatureSigner::from_seed("witness.example", &[3; 32]).unwrap();
    let vk = c.verifier().to_vkey();
    let v = parse_cosignature_verifier_key(&vk).unwrap();
    assert_eq!(v.key_id(), key_id("witness.example", 0x04, &v.public_key()));
    assert_eq!(c.verifier_key().as_deref(), Some(vk.as_str()));
    // Its signer key text round-trips (type 0x04).
    let skey = c.to_signer_key_text();
    assert_eq!(
        parse_cosigner_key(skey.expose_secret()).unwrap().key_id(),
        c.key_id()
    );
    // A plain Ed25519 note key for the same seed is accepted as a cosigner key
    // (key ID checked for type 0x01), and cosigns with the 0x04 key ID.
    let e = Ed25519Signer::from_seed("witness.example", &[3; 32]).unwrap();
    let from_note_key = parse_cosigner_key(e.to_signer_key_text().expose_secret()).unwrap();
    assert_eq!(from_note_key.key_id(), c.key_id());
    assert_ne!(e.key_id(), c.key_id());
    // Note (0x01) vkeys are not cosigner vkeys.
    let err = parse_cosignature_verifier_key(&e.verifier().to_vkey()).unwrap_err();
    assert!(
        matches!(err, NoteError::UnsupportedAlgorithm { alg: 0x01 }),
        "{err:?}"
    );
    // ID computed for the wrong type is refused.
    let wrong = vkey("witness.example", e.key_id(), 0x04, &v.public_key());
    let err = parse_cosignature_verifier_key(&wrong).unwrap_err();
    assert!(matches!(err, NoteError::KeyIdMismatch { .. }), "{err:?}");
}
