//! C2SP signed-note rules: every accepted shape round-trips byte for byte and
//! every rejection is pinned to its error variant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use merklog_note::{
    Ed25519Signer, MAX_KEY_NAME_LEN, MAX_NOTE_SIZE, MAX_SIGNATURES, NameProblem, Note, NoteError,
    NoteSignature, Signer, Verifier, Verifiers,
};

fn signer(name: &str, seed: u8) -> Ed25519Signer {
    Ed25519Signer::from_seed(name, &[seed; 32]).unwrap()
}

fn sig_line(name: &str, payload_b64: &str) -> String {
    format!("\u{2014} {name} {payload_b64}\n")
}

fn parse_err(bytes: &[u8]) -> NoteError {
    Note::parse(bytes).unwrap_err()
}

#[test]
fn spec_example_verifies_with_its_vkey() {
    // The example in C2SP signed-note, "Verifier keys".
    let vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    let v = merklog_note::parse_verifier_key(vkey).unwrap();
    let parsed = Note::open(note.as_bytes(), &Verifiers::single(v)).unwrap();
    assert_eq!(parsed.text(), "This is an example message.\n");
    assert_eq!(parsed.to_bytes(), note.as_bytes());
}

#[test]
fn last_blank_line_separates_text_from_signatures() {
    let s = signer("a.example/k", 1);
    for text in ["x\n\ny\n", "\n", "x\n\n", "\n\n\n", "a\n\n\nb\n\n"] {
        let note = Note::sign(text, &[&s]).unwrap();
        let bytes = note.to_bytes();
        let back = Note::parse(&bytes).unwrap();
        assert_eq!(back.text(), text);
        assert_eq!(back.to_bytes(), bytes);
        back.verify(&Verifiers::single(s.verifier())).unwrap();
    }
}

#[test]
fn text_must_end_in_newline_and_be_non_empty() {
    let s = signer("k", 1);
    for text in ["", "abc", "abc\nd"] {
        let err = Note::sign(text, &[&s]).unwrap_err();
        assert!(
            matches!(err, NoteError::TextNotNewlineTerminated),
            "{text:?}: {err:?}"
        );
    }
}

#[test]
fn control_characters_other_than_newline_are_refused() {
    let s = signer("k", 1);
    for (text, byte, offset) in [("a\tb\n", 9u8, 1usize), ("a\rb\n", 13, 1), ("\x00\n", 0, 0)] {
        let err = Note::sign(text, &[&s]).unwrap_err();
        assert!(
            matches!(err, NoteError::ControlCharacter { byte: b, offset: o } if b == byte && o == offset),
            "{err:?}"
        );
        // The same text in a note fails to parse, at the same offset.
        let good = Note::sign("a\n", &[&s]).unwrap().to_bytes();
        let mut bad = text.as_bytes().to_vec();
        bad.extend_from_slice(&good[2..]);
        assert!(matches!(
            parse_err(&bad),
            NoteError::ControlCharacter { .. }
        ));
    }
    // DEL and non-ASCII are allowed in text.
    Note::sign("\u{7f} caf\u{e9} \u{2014}\n", &[&s]).unwrap();
    // A control character inside a signature line is refused too.
    let mut note = Note::sign("a\n", &[&s]).unwrap().to_bytes();
    let len = note.len();
    note.insert(len - 1, b'\r');
    assert!(matches!(
        parse_err(&note),
        NoteError::ControlCharacter { byte: 13, .. }
    ));
}

#[test]
fn invalid_utf8_is_refused() {
    let err = parse_err(b"caf\xc3\n\n\xe2\x80\x94 k AAAAAAA=\n");
    assert!(
        matches!(err, NoteError::InvalidUtf8 { offset: 3 }),
        "{err:?}"
    );
}

#[test]
fn signature_block_shape_is_checked() {
    let s = signer("k", 1);
    let good = String::from_utf8(Note::sign("a\n", &[&s]).unwrap().to_bytes()).unwrap();
    let line = good.strip_prefix("a\n\n").unwrap();
    let b64 = line.rsplit(' ').next().unwrap().trim_end();

    assert!(matches!(
        parse_err(b"a\n"),
        NoteError::MissingSignatureSeparator
    ));
    assert!(matches!(parse_err(b"a\n\n"), NoteError::NoSignatures));
    let unterminated = format!("a\n\n{}", line.trim_end());
    assert!(matches!(
        parse_err(unterminated.as_bytes()),
        NoteError::SignatureBlockUnterminated
    ));
    // ASCII hyphen instead of em dash; em dash without the space.
    for bad in [format!("- k {b64}\n"), format!("\u{2014}k {b64}\n")] {
        let err = parse_err(format!("a\n\n{bad}").as_bytes());
        assert!(
            matches!(err, NoteError::SignatureLinePrefix { line: 1 }),
            "{err:?}"
        );
    }
    // A second, empty signature line.
    let err = parse_err(format!("a\n\n{line}\n").as_bytes());
    // "\n\n" at the end makes the last blank line the separator: no signatures.
    assert!(matches!(err, NoteError::NoSignatures), "{err:?}");
    let err = parse_err(format!("a\n\n{line}x\n").as_bytes());
    assert!(
        matches!(err, NoteError::SignatureLinePrefix { line: 2 }),
        "{err:?}"
    );
    // No space between name and signature.
    let err = parse_err("a\n\n\u{2014} k\n".as_bytes());
    assert!(
        matches!(err, NoteError::SignatureLineFields { line: 1 }),
        "{err:?}"
    );
}

#[test]
fn signature_encoding_is_strict_base64() {
    for b64 in [
        "AAAAAA",    // missing padding
        "AAAAAAB=",  // non-zero trailing bits
        "AAAA AAA=", // space inside
        "AAAA_AA=",  // URL alphabet
        "AAAAAAA==", // too much padding
    ] {
        let err = parse_err(format!("a\n\n{}", sig_line("k", b64)).as_bytes());
        assert!(
            matches!(err, NoteError::SignatureEncoding { line: 1 }),
            "{b64:?}: {err:?}"
        );
    }
    // Nothing at all, then four bytes of key ID and nothing else.
    let err = parse_err(format!("a\n\n{}", sig_line("k", "")).as_bytes());
    assert!(
        matches!(err, NoteError::SignatureTooShort { line: 1, len: 0 }),
        "{err:?}"
    );
    let err = parse_err(format!("a\n\n{}", sig_line("k", "AAAAAA==")).as_bytes());
    assert!(
        matches!(err, NoteError::SignatureTooShort { line: 1, len: 4 }),
        "{err:?}"
    );
    // Key ID plus one byte is the shortest accepted signature.
    let n = Note::parse(format!("a\n\n{}", sig_line("k", "AAAAAAA=")).as_bytes()).unwrap();
    assert_eq!(n.signatures()[0].signature(), &[0]);
}

#[test]
fn key_names_follow_the_rules() {
    let cases: [(String, NameProblem); 7] = [
        (String::new(), NameProblem::Empty),
        ("a+b".into(), NameProblem::Plus),
        ("a\u{a0}b".into(), NameProblem::Space),
        ("a\u{3000}b".into(), NameProblem::Space),
        ("a\u{2028}b".into(), NameProblem::Space),
        ("a\u{7f}b".into(), NameProblem::ControlCharacter),
        ("x".repeat(MAX_KEY_NAME_LEN + 1), NameProblem::TooLong),
    ];
    for (name, problem) in &cases {
        let err = Ed25519Signer::from_seed(name, &[1; 32]).unwrap_err();
        assert!(
            matches!(&err, NoteError::InvalidKeyName { problem: p, .. } if p == problem),
            "{name:?}: {err:?}"
        );
        // The same name on a signature line is refused when parsing.
        if !name.is_empty() {
            let err = parse_err(format!("a\n\n{}", sig_line(name, "AAAAAAA=")).as_bytes());
            assert!(
                matches!(&err, NoteError::InvalidKeyName { problem: p, .. } if p == problem),
                "{name:?}: {err:?}"
            );
        }
    }
    // 255 bytes is fine, and so is non-ASCII text without spaces.
    let long = "x".repeat(MAX_KEY_NAME_LEN);
    let s = signer(&long, 2);
    let note = Note::sign("a\n", &[&s]).unwrap();
    assert_eq!(Note::parse(&note.to_bytes()).unwrap(), note);
    signer("caf\u{e9}.example/\u{2014}", 2);
}

#[test]
fn signature_count_limits() {
    let signers: Vec<Ed25519Signer> = (0..=MAX_SIGNATURES)
        .map(|i| signer(&format!("k{i}"), i as u8))
        .collect();
    let refs: Vec<&dyn Signer> = signers.iter().map(|s| s as &dyn Signer).collect();
    // 16 (the spec's minimum) and 100 (our maximum) are accepted and verify.
    for n in [16, MAX_SIGNATURES] {
        let note = Note::sign("a\n", &refs[..n]).unwrap();
        let parsed = Note::parse(&note.to_bytes()).unwrap();
        assert_eq!(parsed.signatures().len(), n);
        let mut vs = Verifiers::new();
        for s in &signers[..n] {
            vs.add(s.verifier()).unwrap();
        }
        assert_eq!(parsed.verify(&vs).unwrap().len(), n);
    }
    // 101 are refused, both when signing and when parsing.
    let err = Note::sign("a\n", &refs).unwrap_err();
    assert!(
        matches!(err, NoteError::TooManySignatures { max: 100 }),
        "{err:?}"
    );
    let mut bytes = Note::sign("a\n", &refs[..MAX_SIGNATURES])
        .unwrap()
        .to_bytes();
    let extra = Note::sign("a\n", &refs[MAX_SIGNATURES..])
        .unwrap()
        .to_bytes();
    bytes.extend_from_slice(&extra[3..]);
    let err = parse_err(&bytes);
    assert!(
        matches!(err, NoteError::TooManySignatures { max: 100 }),
        "{err:?}"
    );
}

#[test]
fn note_size_is_capped_at_one_mib() {
    let s = signer("k", 1);
    let big = format!("{}\n", "a".repeat(MAX_NOTE_SIZE));
    let err = Note::sign(&big, &[&s]).unwrap_err();
    assert!(
        matches!(
            err,
            NoteError::TooLarge {
                max: MAX_NOTE_SIZE,
                ..
            }
        ),
        "{err:?}"
    );
    let err = parse_err(big.as_bytes());
    assert!(matches!(err, NoteError::TooLarge { .. }), "{err:?}");
    // A text that fits alone but not with its signature line.
    let near = format!("{}\n", "a".repeat(MAX_NOTE_SIZE - 10));
    let err = Note::sign(&near, &[&s]).unwrap_err();
    assert!(matches!(err, NoteError::TooLarge { .. }), "{err:?}");
    // The largest note that fits is accepted and round-trips.
    let line_len = Note::sign("\n", &[&s]).unwrap().to_bytes().len() - 2;
    let fits = format!("{}\n", "a".repeat(MAX_NOTE_SIZE - line_len - 2));
    let note = Note::sign(&fits, &[&s]).unwrap();
    let bytes = note.to_bytes();
    assert_eq!(bytes.len(), MAX_NOTE_SIZE);
    assert_eq!(Note::parse(&bytes).unwrap(), note);
}

#[test]
fn verification_semantics() {
    let a = signer("a.example", 1);
    let b = signer("b.example", 2);
    let note = Note::sign("hello\n", &[&a, &b]).unwrap();
    // Unknown keys are ignored, even sharing a name (different ID) or an ID
    // (different name) with a known key.
    let same_name_other_key = signer("a.example", 3);
    let err = note
        .verify(&Verifiers::single(same_name_other_key.verifier()))
        .unwrap_err();
    assert!(matches!(err, NoteError::NoKnownSignature { .. }), "{err:?}");
    let mut forged = note.clone();
    let a_sig = note.signatures()[0].clone();
    forged
        .add_signature(
            NoteSignature::new("c.example", a_sig.key_id(), a_sig.signature().to_vec()).unwrap(),
        )
        .unwrap();
    assert_eq!(
        forged
            .verify(&Verifiers::single(a.verifier()))
            .unwrap()
            .len(),
        1
    );

    // A duplicated valid line is verified each time and reported once.
    let dup = format!(
        "hello\n\n{}{}",
        note.signatures()[0].to_line(),
        note.signatures()[0].to_line()
    );
    let dup = Note::parse(dup.as_bytes()).unwrap();
    assert_eq!(
        dup.verify(&Verifiers::single(a.verifier())).unwrap().len(),
        1
    );
    // A duplicate whose second copy is bad rejects the note.
    let mut bad_payload = a_sig.signature().to_vec();
    bad_payload[0] ^= 1;
    let bad_line = NoteSignature::new("a.example", a_sig.key_id(), bad_payload).unwrap();
    let two = format!("hello\n\n{}{}", a_sig.to_line(), bad_line.to_line());
    let err = Note::open(two.as_bytes(), &Verifiers::single(a.verifier())).unwrap_err();
    assert!(matches!(err, NoteError::InvalidSignature { .. }), "{err:?}");
    // A signature over different text fails.
    let other = Note::sign("other\n", &[&a]).unwrap();
    let moved = format!("hello\n\n{}", other.signatures()[0].to_line());
    let err = Note::open(moved.as_bytes(), &Verifiers::single(a.verifier())).unwrap_err();
    assert!(
        matches!(&err, NoteError::InvalidSignature { name, .. } if name == "a.example"),
        "{err:?}"
    );
}

#[test]
fn add_signature_replaces_the_same_key_and_keeps_order() {
    let a = signer("a", 1);
    let b = signer("b", 2);
    let mut note = Note::sign("t\n", &[&a, &b]).unwrap();
    let fresh = NoteSignature::new("a", a.key_id(), vec![1, 2, 3]).unwrap();
    note.add_signature(fresh.clone()).unwrap();
    assert_eq!(note.signatures().len(), 2);
    assert_eq!(note.signatures()[0], fresh);
    assert_eq!(note.signatures()[1].name(), "b");
    assert_eq!(Note::parse(&note.to_bytes()).unwrap(), note);
    // Adding beyond the limit fails without changing the note.
    let mut full = Note::sign("t\n", &[&a]).unwrap();
    for i in 1..MAX_SIGNATURES {
        full.add_signature(NoteSignature::new(&format!("w{i}"), 7, vec![0]).unwrap())
            .unwrap();
    }
    let before = full.clone();
    let err = full
        .add_signature(NoteSignature::new("one-too-many", 7, vec![0]).unwrap())
        .unwrap_err();
    assert!(
        matches!(err, NoteError::TooManySignatures { .. }),
        "{err:?}"
    );
    assert_eq!(full, before);
}

struct FailingSigner;
impl Signer for FailingSigner {
    fn name(&self) -> &str {
        "kms.example/key"
    }
    fn key_id(&self) -> u32 {
        1
    }
    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, NoteError> {
        Err(NoteError::SignerFailed {
            name: "kms.example/key".into(),
            reason: "unreachable".into(),
        })
    }
}

struct BadNameSigner;
impl Signer for BadNameSigner {
    fn name(&self) -> &str {
        "bad name"
    }
    fn key_id(&self) -> u32 {
        1
    }
    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, NoteError> {
        Ok(vec![1])
    }
}

#[test]
fn signer_problems_surface() {
    let err = Note::sign("t\n", &[&FailingSigner]).unwrap_err();
    assert!(matches!(err, NoteError::SignerFailed { .. }), "{err:?}");
    let err = Note::sign("t\n", &[&BadNameSigner]).unwrap_err();
    assert!(
        matches!(
            err,
            NoteError::InvalidKeyName {
                problem: NameProblem::Space,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Note::sign("t\n", &[]).unwrap_err();
    assert!(matches!(err, NoteError::NoSignatures), "{err:?}");
}

#[test]
fn generic_verifier_rejects_wrong_lengths() {
    let a = signer("a", 1);
    let v = a.verifier();
    let sig = a.sign(b"m").unwrap();
    assert!(v.verify(b"m", &sig));
    assert!(!v.verify(b"m", &sig[..63]));
    let mut long = sig.clone();
    long.push(0);
    assert!(!v.verify(b"m", &long));
    assert!(!v.verify(b"n", &sig));
}
