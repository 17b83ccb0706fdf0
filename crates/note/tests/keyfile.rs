//! Signer key files: created 0600, never overwritten, refused when readable by others.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;

use merklog_note::keyfile::{read_signer_key, write_signer_key};
use merklog_note::{
    NoteError, Signer, Verifier, generate_cosigner, generate_ed25519,
    parse_cosignature_verifier_key, parse_cosigner_key, parse_signer_key, parse_verifier_key,
};

#[test]
fn generated_key_is_written_0600_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.key");
    let (skey, vkey) = generate_ed25519("example.com/log").unwrap();
    write_signer_key(&path, &skey).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let read = read_signer_key(&path).unwrap();
    assert_eq!(read.expose_secret(), skey.expose_secret());
    let signer = parse_signer_key(read.expose_secret()).unwrap();
    assert_eq!(signer.verifier().to_vkey(), vkey);
    assert_eq!(parse_verifier_key(&vkey).unwrap(), signer.verifier());
}

#[test]
fn existing_key_file_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.key");
    let (first, _) = generate_ed25519("a").unwrap();
    let (second, _) = generate_ed25519("a").unwrap();
    write_signer_key(&path, &first).unwrap();
    let err = write_signer_key(&path, &second).unwrap_err();
    match err {
        NoteError::KeyFileIo { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        read_signer_key(&path).unwrap().expose_secret(),
        first.expose_secret()
    );
}

#[test]
fn group_or_world_accessible_key_file_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.key");
    let (skey, _) = generate_ed25519("a").unwrap();
    write_signer_key(&path, &skey).unwrap();
    for mode in [0o640, 0o604, 0o644, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = read_signer_key(&path).unwrap_err();
        assert!(matches!(err, NoteError::KeyFilePermissions { mode: m, .. } if m == mode));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
        assert!(!msg.contains(skey.expose_secret()), "{msg}");
    }
}

#[test]
fn private_key_never_appears_in_debug_output() {
    let (skey, _) = generate_ed25519("example.com/log").unwrap();
    let signer = parse_signer_key(skey.expose_secret()).unwrap();
    let secret_b64 = skey
        .expose_secret()
        .splitn(5, '+')
        .last()
        .unwrap()
        .to_owned();
    for shown in [format!("{skey:?}"), format!("{signer:?}")] {
        assert!(!shown.contains(&secret_b64), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }
    assert!(format!("{signer:?}").contains("example.com/log"));
    let (cskey, _) = generate_cosigner("w").unwrap();
    let cosigner = parse_cosigner_key(cskey.expose_secret()).unwrap();
    let secret_b64 = cskey
        .expose_secret()
        .splitn(5, '+')
        .last()
        .unwrap()
        .to_owned();
    assert!(!format!("{cosigner:?}").contains(&secret_b64));
}

#[test]
fn generated_cosigner_key_uses_type_0x04() {
    let (skey, vkey) = generate_cosigner("witness.example/w1").unwrap();
    let cosigner = parse_cosigner_key(skey.expose_secret()).unwrap();
    let verifier = parse_cosignature_verifier_key(&vkey).unwrap();
    assert_eq!(cosigner.key_id(), verifier.key_id());
    assert_eq!(cosigner.verifier(), verifier);
    // The vkey's first decoded byte is the 0x04 type: base64 of 0x04 starts with 'B'.
    assert!(
        vkey.splitn(3, '+').last().unwrap().starts_with('B'),
        "{vkey}"
    );
    // A cosigner vkey is not a note (type 0x01) vkey.
    assert!(matches!(
        parse_verifier_key(&vkey),
        Err(NoteError::UnsupportedAlgorithm { alg: 0x04 })
    ));
}
