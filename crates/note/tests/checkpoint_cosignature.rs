//! Checkpoints (tlog-checkpoint) and cosignatures (tlog-cosignature v1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use merklog_note::{
    Checkpoint, CosignatureSigner, Ed25519Signer, Note, NoteError, Signer, Verifier, Verifiers,
    cosignature_message, open_checkpoint, sign_checkpoint,
};

fn log_signer() -> Ed25519Signer {
    Ed25519Signer::from_seed("example.com/log", &[7; 32]).unwrap()
}

fn checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "example.com/log".into(),
        size: 20852163,
        root: [0x42; 32].into(),
        extensions: vec![],
    }
}

#[test]
fn checkpoint_signs_and_opens() {
    let signer = log_signer();
    let bytes = sign_checkpoint(&checkpoint(), &signer).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with(
        "example.com/log\n20852163\nQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n\n\u{2014} example.com/log "
    ));
    let (cp, note) = open_checkpoint(&bytes, &signer.verifier(), Some("example.com/log")).unwrap();
    assert_eq!(cp, checkpoint());
    assert_eq!(note.to_bytes(), bytes);
    let err = open_checkpoint(&bytes, &signer.verifier(), Some("example.com/other")).unwrap_err();
    assert!(matches!(err, NoteError::OriginMismatch { .. }), "{err:?}");
}

#[test]
fn cosignature_payload_is_big_endian_time_then_signature() {
    let cosigner = CosignatureSigner::from_seed("witness.example/w1", &[9; 32]).unwrap();
    let text = checkpoint().to_text();
    let time = 0x0102_0304_0506_0708u64;
    let sig = cosigner.cosign(&text, time).unwrap();
    let payload = sig.signature();
    assert_eq!(payload.len(), 72);
    assert_eq!(&payload[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
    // The Ed25519 signature covers the cosignature/v1 message with decimal time.
    let msg = cosignature_message(&text, time);
    assert_eq!(
        &msg[..],
        format!("cosignature/v1\ntime 72623859790382856\n{text}").as_bytes()
    );
    let verifier = cosigner.verifier();
    assert_eq!(verifier.verify_cosignature(&text, &sig).unwrap(), time);
    // A little-endian timestamp (a known interop bug elsewhere) does not verify.
    let mut swapped = payload.to_vec();
    swapped[..8].reverse();
    assert!(!verifier.verify(text.as_bytes(), &swapped));
    // Through the generic note path, alongside the log signature.
    let log = log_signer();
    let mut note = Note::sign(&text, &[&log]).unwrap();
    note.add_signature(sig).unwrap();
    let mut vs = Verifiers::single(log.verifier());
    vs.add(verifier).unwrap();
    let verified = note.verify(&vs).unwrap();
    assert_eq!(verified.len(), 2);
    assert_eq!(verified[1].name(), cosigner.name());
}

#[test]
fn spec_examples_parse() {
    // tlog-checkpoint's example body.
    let text =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let cp = Checkpoint::from_text(text).unwrap();
    assert_eq!(cp.origin, "example.com/behind-the-sofa");
    assert_eq!(cp.size, 20852163);
    assert_eq!(cp.to_text(), text);
    // tlog-cosignature's example cosignature line: its 8-byte timestamp,
    // read big-endian, is the 1679315147 of the spec's example message.
    let line = "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";
    let sig = merklog_note::NoteSignature::parse_line(line, 1).unwrap();
    assert_eq!(sig.signature().len(), 72);
    let time = u64::from_be_bytes(sig.signature()[..8].try_into().unwrap());
    assert_eq!(time, 1679315147);
}

#[test]
fn checkpoint_text_rejections_are_pinned() {
    let root = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
    let check = |text: &str, ok: fn(&NoteError) -> bool| {
        let err = Checkpoint::from_text(text).unwrap_err();
        assert!(ok(&err), "{text:?}: {err:?}");
    };
    check("o\n1\n", |e| matches!(e, NoteError::CheckpointTooShort));
    check(&format!("o\n1\n{root}"), |e| {
        matches!(e, NoteError::CheckpointTooShort)
    });
    check(&format!("\n1\n{root}\n"), |e| {
        matches!(e, NoteError::CheckpointEmptyOrigin)
    });
    for size in [
        "",
        "01",
        "00",
        "+1",
        "-1",
        " 1",
        "1 ",
        "1e3",
        "0x1",
        "18446744073709551616",
    ] {
        let text = format!("o\n{size}\n{root}\n");
        let err = Checkpoint::from_text(&text).unwrap_err();
        assert!(
            matches!(err, NoteError::CheckpointSize { .. }),
            "{size:?}: {err:?}"
        );
    }
    for bad_root in [
        "",
        "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQg==", // 31 bytes
        "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJC", // 33 bytes
        "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ=", // non-zero trailing bits
        "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI",  // missing padding
    ] {
        let text = format!("o\n1\n{bad_root}\n");
        let err = Checkpoint::from_text(&text).unwrap_err();
        assert!(
            matches!(err, NoteError::CheckpointRoot { .. }),
            "{bad_root:?}: {err:?}"
        );
    }
    check(&format!("o\n1\n{root}\n\n"), |e| {
        matches!(e, NoteError::CheckpointBadLine { line: 4 })
    });
    check(&format!("o\n1\n{root}\next\n\nmore\n"), |e| {
        matches!(e, NoteError::CheckpointBadLine { line: 5 })
    });
    check(&format!("o\t\n1\n{root}\n"), |e| {
        matches!(e, NoteError::ControlCharacter { byte: 9, .. })
    });
}

#[test]
fn checkpoint_sizes_and_extensions_round_trip() {
    for size in [0, 1, 10, u64::MAX] {
        let cp = Checkpoint {
            size,
            extensions: vec!["ext one".into(), "\u{2014} two".into()],
            ..checkpoint()
        };
        let text = cp.to_text();
        assert_eq!(Checkpoint::from_text(&text).unwrap(), cp);
        let signer = log_signer();
        let bytes = sign_checkpoint(&cp, &signer).unwrap();
        let (opened, _) = open_checkpoint(&bytes, &signer.verifier(), None).unwrap();
        assert_eq!(opened, cp);
    }
    // Any non-empty origin is accepted, even one that is not a URL.
    let odd = Checkpoint {
        origin: "not a url + spaces".into(),
        ..checkpoint()
    };
    assert_eq!(Checkpoint::from_text(&odd.to_text()).unwrap(), odd);
}

#[test]
fn unsignable_checkpoints_are_refused() {
    let signer = log_signer();
    type Check = fn(&NoteError) -> bool;
    let cases: [(Checkpoint, Check); 4] = [
        (
            Checkpoint {
                origin: String::new(),
                ..checkpoint()
            },
            |e| matches!(e, NoteError::CheckpointEmptyOrigin),
        ),
        (
            Checkpoint {
                origin: "a\nb".into(),
                ..checkpoint()
            },
            |e| matches!(e, NoteError::CheckpointBadLine { line: 1 }),
        ),
        (
            Checkpoint {
                extensions: vec!["ok".into(), String::new()],
                ..checkpoint()
            },
            |e| matches!(e, NoteError::CheckpointBadLine { line: 5 }),
        ),
        (
            Checkpoint {
                extensions: vec!["a\rb".into()],
                ..checkpoint()
            },
            |e| matches!(e, NoteError::ControlCharacter { byte: 13, .. }),
        ),
    ];
    for (cp, ok) in cases {
        let err = sign_checkpoint(&cp, &signer).unwrap_err();
        assert!(ok(&err), "{cp:?}: {err:?}");
    }
}

#[test]
fn open_checkpoint_needs_the_log_key_and_ignores_others() {
    let signer = log_signer();
    let other = Ed25519Signer::from_seed("example.com/log", &[8; 32]).unwrap();
    let bytes = sign_checkpoint(&checkpoint(), &signer).unwrap();
    // Same name, different key: its ID differs, so the line is unknown.
    let err = open_checkpoint(&bytes, &other.verifier(), None).unwrap_err();
    assert!(matches!(err, NoteError::NoKnownSignature { .. }), "{err:?}");
    // Key rotation: a note with old and new log signatures opens with either key.
    let both = Note::sign(&checkpoint().to_text(), &[&signer, &other])
        .unwrap()
        .to_bytes();
    open_checkpoint(&both, &signer.verifier(), Some("example.com/log")).unwrap();
    open_checkpoint(&both, &other.verifier(), Some("example.com/log")).unwrap();
    // A note whose text is not a checkpoint is refused after its signature checks.
    let not_cp = Note::sign("hello\n", &[&signer]).unwrap().to_bytes();
    let err = open_checkpoint(&not_cp, &signer.verifier(), None).unwrap_err();
    assert!(matches!(err, NoteError::CheckpointTooShort), "{err:?}");
}

#[test]
fn cosignature_rejections_are_pinned() {
    let cosigner = CosignatureSigner::from_seed("witness.example/w1", &[9; 32]).unwrap();
    let verifier = cosigner.verifier();
    let text = checkpoint().to_text();
    // Timestamps above 2^63 - 1 are refused when signing and verifying.
    let err = cosigner.cosign(&text, 1 << 63).unwrap_err();
    assert!(matches!(err, NoteError::TimestampOutOfRange { time } if time == 1 << 63));
    cosigner.cosign(&text, (1 << 63) - 1).unwrap();
    let good = cosigner.cosign(&text, 1_700_000_000).unwrap();
    let mut payload = good.signature().to_vec();
    payload[0] = 0x80;
    let high = merklog_note::NoteSignature::new(good.name(), good.key_id(), payload).unwrap();
    let err = verifier.verify_cosignature(&text, &high).unwrap_err();
    assert!(
        matches!(err, NoteError::TimestampOutOfRange { .. }),
        "{err:?}"
    );
    // Wrong payload length.
    let short = merklog_note::NoteSignature::new(
        good.name(),
        good.key_id(),
        good.signature()[..71].to_vec(),
    )
    .unwrap();
    let err = verifier.verify_cosignature(&text, &short).unwrap_err();
    assert!(
        matches!(err, NoteError::CosignatureLength { got: 71 }),
        "{err:?}"
    );
    // Another key's line.
    let other = CosignatureSigner::from_seed("witness.example/w2", &[10; 32]).unwrap();
    let theirs = other.cosign(&text, 5).unwrap();
    let err = verifier.verify_cosignature(&text, &theirs).unwrap_err();
    assert!(matches!(err, NoteError::KeyMismatch { .. }), "{err:?}");
    // Different checkpoint text, or a changed timestamp.
    let err = verifier
        .verify_cosignature(
            "x\n1\nQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=\n",
            &good,
        )
        .unwrap_err();
    assert!(matches!(err, NoteError::InvalidSignature { .. }), "{err:?}");
    let mut shifted = good.signature().to_vec();
    shifted[7] ^= 1;
    let shifted = merklog_note::NoteSignature::new(good.name(), good.key_id(), shifted).unwrap();
    let err = verifier.verify_cosignature(&text, &shifted).unwrap_err();
    assert!(matches!(err, NoteError::InvalidSignature { .. }), "{err:?}");
    // Text that is not a note text cannot be cosigned.
    let err = cosigner.cosign("no newline", 1).unwrap_err();
    assert!(
        matches!(err, NoteError::TextNotNewlineTerminated),
        "{err:?}"
    );
}

#[test]
fn cosigner_as_generic_signer_uses_the_current_time() {
    let cosigner = CosignatureSigner::from_seed("witness.example/w1", &[9; 32]).unwrap();
    let text = checkpoint().to_text();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let note = Note::sign(&text, &[&cosigner]).unwrap();
    let time = cosigner
        .verifier()
        .verify_cosignature(&text, &note.signatures()[0])
        .unwrap();
    assert!(time >= before && time <= before + 60, "{time} vs {before}");
    // Cosignatures do not verify as plain Ed25519 note signatures of that key.
    let plain = Ed25519Signer::from_seed("witness.example/w1", &[9; 32]).unwrap();
    assert!(
        !plain
            .verifier()
            .verify(text.as_bytes(), &note.signatures()[0].signature()[8..])
    );
}
