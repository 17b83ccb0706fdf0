//! Known answers from Go's golang.org/x/mod/sumdb/note (see
//! /work/shared/vectors/signed-note.md): our output must match byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use merklog_note::{
    Ed25519Verifier, Note, NoteError, Signer, Verifier, Verifiers, key_id, parse_signer_key,
    parse_verifier_key,
};

const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn peter() -> Ed25519Verifier {
    parse_verifier_key(PETER_VKEY).unwrap()
}

fn enoch() -> Ed25519Verifier {
    parse_verifier_key(ENOCH_VKEY).unwrap()
}

#[test]
fn signing_reproduces_the_reference_signature_line() {
    let signer = parse_signer_key(PETER_SKEY).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_id(), 0xc74f20a3);
    let note = Note::sign(TEXT, &[&signer]).unwrap();
    let want = format!("{TEXT}\n{PETER_SIG}");
    assert_eq!(String::from_utf8(note.to_bytes()).unwrap(), want);
    // The signer's own verifier is the published vkey.
    assert_eq!(signer.verifier().to_vkey(), PETER_VKEY);
    assert_eq!(signer.verifier_key().as_deref(), Some(PETER_VKEY));
    // And the signer key text round-trips.
    assert_eq!(signer.to_signer_key_text().expose_secret(), PETER_SKEY);
}

#[test]
fn both_reference_vkeys_parse_and_round_trip() {
    let p = peter();
    assert_eq!((p.name(), p.key_id()), ("PeterNeumann", 0xc74f20a3));
    assert_eq!(p.to_vkey(), PETER_VKEY);
    let e = enoch();
    assert_eq!((e.name(), e.key_id()), ("EnochRoot", 0xaf0cfe78));
    assert_eq!(e.to_vkey(), ENOCH_VKEY);
}

#[test]
fn unknown_signature_is_ignored_when_a_known_one_verifies() {
    let bytes = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    let note = Note::parse(bytes.as_bytes()).unwrap();
    assert_eq!(note.to_bytes(), bytes.as_bytes());
    let verified = note.verify(&Verifiers::single(peter())).unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].name(), "PeterNeumann");
    // With both keys known, both verify, in note order.
    let mut both = Verifiers::single(peter());
    both.add(enoch()).unwrap();
    let verified = note.verify(&both).unwrap();
    let names: Vec<_> = verified.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["PeterNeumann", "EnochRoot"]);
}

#[test]
fn note_without_a_known_signature_is_refused() {
    let bytes = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    let note = Note::parse(bytes.as_bytes()).unwrap();
    let err = note.verify(&Verifiers::new()).unwrap_err();
    match err {
        NoteError::NoKnownSignature { seen } => {
            assert_eq!(seen, ["PeterNeumann+c74f20a3", "EnochRoot+af0cfe78"]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn failing_known_signature_is_refused() {
    // Go's test: four base64 characters inserted into Peter's signature.
    let bad_sig = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    let bytes = format!("{TEXT}\n{bad_sig}");
    let note = Note::parse(bytes.as_bytes()).unwrap();
    let err = note.verify(&Verifiers::single(peter())).unwrap_err();
    assert!(
        matches!(&err, NoteError::InvalidSignature { name, key_id: 0xc74f20a3 } if name == "PeterNeumann"),
        "{err:?}"
    );
    // A failing known signature rejects even when another known one verifies.
    let bytes = format!("{TEXT}\n{ENOCH_SIG}{bad_sig}");
    let mut both = Verifiers::single(peter());
    both.add(enoch()).unwrap();
    let err = Note::open(bytes.as_bytes(), &both).unwrap_err();
    assert!(matches!(err, NoteError::InvalidSignature { .. }), "{err:?}");
}

#[test]
fn duplicate_verifier_is_ambiguous() {
    let mut v = Verifiers::single(enoch());
    let err = v.add(enoch()).unwrap_err();
    assert!(
        matches!(&err, NoteError::AmbiguousKey { name, key_id: 0xaf0cfe78 } if name == "EnochRoot"),
        "{err:?}"
    );
}

#[test]
fn every_mangled_vkey_is_refused() {
    let b = PETER_VKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i == 0 && j == b.len() {
                continue;
            }
            let s = String::from_utf8_lossy(&b[i..j]);
            assert!(parse_verifier_key(&s).is_err(), "accepted substring {s:?}");
        }
    }
    let mut m = b.to_vec();
    for i in 0..m.len() {
        m[i] += 1;
        let s = String::from_utf8_lossy(&m).into_owned();
        assert!(parse_verifier_key(&s).is_err(), "accepted mangled {s:?}");
        m[i] -= 1;
    }
}

#[test]
fn every_mangled_signer_key_is_refused() {
    let b = PETER_SKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i == 0 && j == b.len() {
                continue;
            }
            let s = String::from_utf8_lossy(&b[i..j]);
            assert!(parse_signer_key(&s).is_err(), "accepted substring {s:?}");
        }
    }
    let mut m = b.to_vec();
    for i in 0..m.len() {
        m[i] += 1;
        let s = String::from_utf8_lossy(&m).into_owned();
        assert!(parse_signer_key(&s).is_err(), "accepted mangled {s:?}");
        m[i] -= 1;
    }
}

#[test]
fn wrong_length_and_unknown_algorithm_vkeys_are_refused() {
    // Go's wrong-length vector ends in "Y==", whose unused trailing bits are
    // not zero: Go's lenient decoder accepts that, ours refuses the encoding
    // before it gets to the length.
    let err = parse_verifier_key(
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
    )
    .unwrap_err();
    assert!(matches!(err, NoteError::KeyFormat { .. }), "{err:?}");
    // A canonical 33-byte key with an adjusted key ID is refused for its length.
    let mut long_key = peter().public_key().to_vec();
    long_key.push(0);
    let id = key_id("PeterNeumann", 0x01, &long_key);
    let mut material = vec![0x01];
    material.extend_from_slice(&long_key);
    let vkey = format!("PeterNeumann+{id:08x}+{}", STANDARD.encode(material));
    let err = parse_verifier_key(&vkey).unwrap_err();
    assert!(
        matches!(
            err,
            NoteError::WrongKeyLength {
                expected: 32,
                got: 33
            }
        ),
        "{err:?}"
    );
    let err =
        parse_verifier_key("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .unwrap_err();
    assert!(
        matches!(err, NoteError::UnsupportedAlgorithm { alg: 0x65 }),
        "{err:?}"
    );
}

#[test]
fn malformed_reference_messages_are_refused_with_their_reason() {
    type Check = fn(&NoteError) -> bool;
    let cases: Vec<(String, Check)> = vec![
        (TEXT.to_owned(), |e| {
            matches!(e, NoteError::MissingSignatureSeparator)
        }),
        (format!("{TEXT}\n"), |e| {
            matches!(e, NoteError::NoSignatures)
        }),
        (
            format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            |e| matches!(e, NoteError::SignatureBlockUnterminated),
        ),
        (format!("\x01{TEXT}\n{PETER_SIG}"), |e| {
            matches!(e, NoteError::ControlCharacter { byte: 1, offset: 0 })
        }),
        (format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"), |e| {
            matches!(e, NoteError::SignatureLinePrefix { line: 2 })
        }),
        (
            format!(
                "{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            |e| matches!(e, NoteError::SignatureEncoding { line: 1 }),
        ),
    ];
    for (msg, is_expected) in cases {
        let err = Note::parse(msg.as_bytes()).unwrap_err();
        assert!(is_expected(&err), "{msg:?}: {err:?}");
    }
    let mut invalid_utf8 = b"\xff".to_vec();
    invalid_utf8.extend_from_slice(format!("{TEXT}\n{PETER_SIG}").as_bytes());
    let err = Note::parse(&invalid_utf8).unwrap_err();
    assert!(
        matches!(err, NoteError::InvalidUtf8 { offset: 0 }),
        "{err:?}"
    );
}
