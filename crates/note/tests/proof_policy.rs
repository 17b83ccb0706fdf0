//! tlog-proof and tlog-policy: building, parsing, verifying, each rejection pinned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use merklog_merkle::{BatchProofs, CompactRange, LeafIndex, MerkleError, hash_leaf};
use merklog_note::{
    Checkpoint, CosignatureSigner, Ed25519Signer, Note, NoteError, Policy, Threshold, TlogProof,
    sign_checkpoint,
};

const ORIGIN: &str = "example.com/log";

fn log() -> Ed25519Signer {
    Ed25519Signer::from_seed(ORIGIN, &[1; 32]).unwrap()
}

fn witness(i: u8) -> CosignatureSigner {
    CosignatureSigner::from_seed(&format!("w{i}.example"), &[100 + i; 32]).unwrap()
}

/// A 7-leaf tree, a checkpoint for it signed by the log and cosigned by the
/// given witnesses, and a proof for `index`.
fn proof_for(index: u64, cosigners: &[u8]) -> (TlogProof, Vec<u8>) {
    let entries: Vec<Vec<u8>> = (0..7u8).map(|i| vec![i; 3]).collect();
    let leaves: Vec<_> = entries.iter().map(|e| hash_leaf(e)).collect();
    let batch = BatchProofs::new(&CompactRange::new(), &leaves).unwrap();
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: 7,
        root: batch.root(),
        extensions: vec![],
    };
    let mut note = Note::parse(&sign_checkpoint(&cp, &log()).unwrap()).unwrap();
    for &w in cosigners {
        note.add_signature(
            witness(w)
                .cosign(note.text(), 1_700_000_000 + u64::from(w))
                .unwrap(),
        )
        .unwrap();
    }
    let proof = batch.inclusion_proof(LeafIndex(index)).unwrap();
    (
        TlogProof::new(index, proof, note.to_bytes()),
        entries[usize::try_from(index).unwrap()].clone(),
    )
}

fn policy_text(quorum_lines: &str) -> String {
    let mut t = format!("log {}\n", log().verifier().to_vkey());
    for i in 1..=4 {
        t.push_str(&format!(
            "witness W{i} {}\n",
            witness(i).verifier().to_vkey()
        ));
    }
    t.push_str(quorum_lines);
    t
}

#[test]
fn proof_round_trips_and_verifies() {
    for index in 0..7 {
        let (mut proof, entry) = proof_for(index, &[1, 2]);
        proof.extra = Some(b"age-v1.2.1-darwin-arm64.tar.gz".to_vec());
        let bytes = proof.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with("c2sp.org/tlog-proof@v1\nextra YWdlLXYx"),
            "{text}"
        );
        assert!(text.contains(&format!("\nindex {index}\n")));
        let parsed = TlogProof::parse(&bytes).unwrap();
        assert_eq!(parsed, proof);
        assert_eq!(parsed.to_bytes(), bytes);
        let cp = parsed
            .verify(&hash_leaf(&entry), &log().verifier(), None)
            .unwrap();
        assert_eq!(cp.size, 7);
        let policy = Policy::parse(&policy_text("group G 2 W1 W2 W3\nquorum G\n")).unwrap();
        parsed
            .verify(&hash_leaf(&entry), &log().verifier(), Some(&policy))
            .unwrap();
        parsed
            .verify_with_policy(&hash_leaf(&entry), &policy)
            .unwrap();
    }
    // Without extra data there is no extra line; an empty extra round-trips too.
    let (mut proof, _) = proof_for(3, &[]);
    assert!(
        !String::from_utf8(proof.to_bytes())
            .unwrap()
            .contains("extra")
    );
    proof.extra = Some(vec![]);
    assert_eq!(TlogProof::parse(&proof.to_bytes()).unwrap(), proof);
}

#[test]
fn proof_verification_failures_are_pinned() {
    let (proof, entry) = proof_for(4, &[1]);
    let leaf = hash_leaf(&entry);
    // Wrong entry: the Merkle layer reports the root mismatch.
    let err = proof
        .verify(&hash_leaf(b"other"), &log().verifier(), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            NoteError::Inclusion(MerkleError::InclusionRootMismatch { .. })
        ),
        "{err:?}"
    );
    // Extra or missing proof hash.
    let mut long = proof.clone();
    long.proof.push([0; 32].into());
    let err = long.verify(&leaf, &log().verifier(), None).unwrap_err();
    assert!(
        matches!(
            err,
            NoteError::Inclusion(MerkleError::WrongProofLength { .. })
        ),
        "{err:?}"
    );
    // Index at or past the tree size.
    let mut past = proof.clone();
    past.index = 7;
    let err = past.verify(&leaf, &log().verifier(), None).unwrap_err();
    assert!(
        matches!(err, NoteError::IndexBeyondCheckpoint { index: 7, size: 7 }),
        "{err:?}"
    );
    // Another log's key.
    let other = Ed25519Signer::from_seed(ORIGIN, &[2; 32]).unwrap();
    let err = proof.verify(&leaf, &other.verifier(), None).unwrap_err();
    assert!(matches!(err, NoteError::NoKnownSignature { .. }), "{err:?}");
    // A log key whose name is not the checkpoint's origin.
    let misnamed = Ed25519Signer::from_seed("example.com/elsewhere", &[1; 32]).unwrap();
    let cp = Checkpoint::from_text(Note::parse(&proof.checkpoint).unwrap().text()).unwrap();
    let resigned = TlogProof::new(
        4,
        proof.proof.clone(),
        sign_checkpoint(&cp, &misnamed).unwrap(),
    );
    let err = resigned
        .verify(&leaf, &misnamed.verifier(), None)
        .unwrap_err();
    assert!(matches!(err, NoteError::OriginMismatch { .. }), "{err:?}");
    // Quorum not met: only W1 cosigned, the policy wants W1 and W2.
    let policy = Policy::parse(&policy_text("group G all W1 W2\nquorum G\n")).unwrap();
    let err = proof
        .verify(&leaf, &log().verifier(), Some(&policy))
        .unwrap_err();
    assert!(
        matches!(&err, NoteError::QuorumNotSatisfied { cosigned } if cosigned == &["W1"]),
        "{err:?}"
    );
    let err = proof.verify_with_policy(&leaf, &policy).unwrap_err();
    assert!(
        matches!(err, NoteError::QuorumNotSatisfied { .. }),
        "{err:?}"
    );
}

#[test]
fn proof_syntax_rejections_are_pinned() {
    let (proof, _) = proof_for(2, &[]);
    let good = String::from_utf8(proof.to_bytes()).unwrap();
    let (head, checkpoint) = good.split_once("\n\n").unwrap();
    let hashes: Vec<&str> = head.lines().skip(2).collect();
    let h = hashes.join("\n");
    let check = |text: String, ok: fn(&NoteError) -> bool| {
        let err = TlogProof::parse(text.as_bytes()).unwrap_err();
        assert!(ok(&err), "{text:?}: {err:?}");
    };
    check(good.replacen("@v1", "@v2", 1), |e| {
        matches!(e, NoteError::ProofHeader)
    });
    check(format!(" {good}"), |e| matches!(e, NoteError::ProofHeader));
    check(good.replacen("index 2", "index 02", 1), |e| {
        matches!(e, NoteError::ProofIndex)
    });
    check(good.replacen("index 2", "index  2", 1), |e| {
        matches!(e, NoteError::ProofIndex)
    });
    check(good.replacen("index 2", "index -2", 1), |e| {
        matches!(e, NoteError::ProofIndex)
    });
    check(good.replacen("index 2", "Index 2", 1), |e| {
        matches!(e, NoteError::ProofIndex)
    });
    check(good.replacen("index 2\n", "", 1), |e| {
        matches!(e, NoteError::ProofIndex)
    });
    check(good.replacen("index 2", "extra !!\nindex 2", 1), |e| {
        matches!(e, NoteError::ProofExtra)
    });
    check(good.replacen("index 2", "extra\nindex 2", 1), |e| {
        matches!(e, NoteError::ProofExtra)
    });
    check(
        good.replacen("index 2", "extra AA==\nextra AA==\nindex 2", 1),
        |e| matches!(e, NoteError::ProofIndex),
    );
    check(good.replacen(hashes[1], "AAAA", 1), |e| {
        matches!(e, NoteError::ProofHash { line: 2 })
    });
    check(
        good.replacen(hashes[0], &format!("{} ", hashes[0]), 1),
        |e| matches!(e, NoteError::ProofHash { line: 1 }),
    );
    let many = vec![hashes[0]; 65].join("\n");
    check(
        format!("c2sp.org/tlog-proof@v1\nindex 2\n{many}\n\n{checkpoint}"),
        |e| matches!(e, NoteError::ProofTooManyHashes { max: 64 }),
    );
    check(format!("c2sp.org/tlog-proof@v1\nindex 2\n{h}"), |e| {
        matches!(e, NoteError::ProofTruncated)
    });
    // The checkpoint must be a signed checkpoint note.
    check(format!("c2sp.org/tlog-proof@v1\nindex 2\n{h}\n\n"), |e| {
        matches!(e, NoteError::MissingSignatureSeparator)
    });
    check(format!("{good}trailing"), |e| {
        matches!(e, NoteError::SignatureBlockUnterminated)
    });
    // 64 hashes (the most a 2^64-leaf tree needs) parse.
    let max = vec![hashes[0]; 64].join("\n");
    let p = TlogProof::parse(
        format!("c2sp.org/tlog-proof@v1\nindex 2\n{max}\n\n{checkpoint}").as_bytes(),
    )
    .unwrap();
    assert_eq!(p.proof.len(), 64);
}

#[test]
fn spec_example_policy_parses_and_evaluates() {
    let mut t = format!("log {}\n\n", log().verifier().to_vkey());
    for (i, n) in ["X1", "X2", "X3"].iter().enumerate() {
        t.push_str(&format!(
            "witness {n} {}\n",
            witness(i as u8 + 1).verifier().to_vkey()
        ));
    }
    t.push_str("group X-witnesses 2 X1 X2 X3\n\n");
    for (i, n) in ["Y1", "Y2", "Y3"].iter().enumerate() {
        t.push_str(&format!(
            "witness {n} {}\n",
            witness(i as u8 + 4).verifier().to_vkey()
        ));
    }
    t.push_str("group Y-witnesses any Y1 Y2 Y3\n\ngroup X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n");
    let p = Policy::parse(&t).unwrap();
    assert_eq!(p.logs().len(), 1);
    assert_eq!(p.witnesses().len(), 6);
    assert_eq!(p.groups()[0].threshold, Threshold::AtLeast(2));
    assert_eq!(p.groups()[1].threshold, Threshold::Any);
    assert_eq!(p.groups()[2].threshold, Threshold::All);
    assert_eq!(p.quorum(), "X-and-Y");
    assert!(p.log_verifier(ORIGIN).is_some());
    assert!(p.log_verifier("example.com/other").is_none());
    let cases: [(&[&str], bool); 8] = [
        (&[], false),
        (&["X1", "X2"], false),
        (&["Y1"], false),
        (&["X1", "Y1"], false),
        (&["X1", "X2", "Y3"], true),
        (&["X1", "X3", "Y1", "Y2"], true),
        (&["X1", "X2", "X3", "Y1", "Y2", "Y3"], true),
        (&["X1", "X2", "X-witnesses", "Y-witnesses", "nobody"], false),
    ];
    for (names, want) in cases {
        assert_eq!(p.satisfied_by(names.iter().copied()), want, "{names:?}");
    }
    // Canonical serialisation re-parses to the same policy.
    assert_eq!(Policy::parse(&p.to_text()).unwrap(), p);
}

#[test]
fn policy_whitespace_comments_and_simple_quorums() {
    let w1 = witness(1).verifier().to_vkey();
    let text = format!(
        "  # a comment\n\t\nlog\t{} https://log.example/\n   witness  A \t{w1}   https://w.example/ \nquorum A\t\n",
        log().verifier().to_vkey()
    );
    let p = Policy::parse(&text).unwrap();
    assert_eq!(p.logs()[0].url.as_deref(), Some("https://log.example/"));
    assert_eq!(p.witnesses()[0].url.as_deref(), Some("https://w.example/"));
    assert!(p.satisfied_by(["A"]));
    assert!(!p.satisfied_by([]));
    assert_eq!(Policy::parse(&p.to_text()).unwrap(), p);
    // quorum none needs no witnesses, and the last line may lack its newline.
    let none = Policy::parse("quorum none").unwrap();
    assert!(none.satisfied_by([]));
    assert!(none.logs().is_empty());
    // Names are opaque octets: no case folding or normalisation.
    let p = Policy::parse(&format!("witness K {w1}\nquorum K\n")).unwrap();
    assert!(!p.satisfied_by(["k"]));
    assert!(!p.satisfied_by(["\u{212a}"]));
}

#[test]
fn policy_rejections_are_pinned() {
    let l = log().verifier().to_vkey();
    let w = |i: u8| witness(i).verifier().to_vkey();
    type Check = fn(&NoteError) -> bool;
    let cases: Vec<(String, Check)> = vec![
        (String::new(), |e| {
            matches!(e, NoteError::PolicyQuorumCount { found: 0 })
        }),
        (format!("log {l}\n"), |e| {
            matches!(e, NoteError::PolicyQuorumCount { found: 0 })
        }),
        ("quorum none\nquorum none\n".into(), |e| {
            matches!(e, NoteError::PolicyQuorumCount { found: 2 })
        }),
        ("quorum\n".into(), |e| {
            matches!(e, NoteError::PolicySyntax { line: 1, .. })
        }),
        ("quorum a b\n".into(), |e| {
            matches!(e, NoteError::PolicySyntax { line: 1, .. })
        }),
        ("frobnicate x\nquorum none\n".into(), |e| {
            matches!(e, NoteError::PolicySyntax { line: 1, .. })
        }),
        ("quorum none\r\n".into(), |e| {
            matches!(e, NoteError::PolicySyntax { line: 1, .. })
        }),
        ("quorum none\n\x7f\n".into(), |e| {
            matches!(e, NoteError::PolicySyntax { line: 2, .. })
        }),
        (format!("log {l} url extra\nquorum none\n"), |e| {
            matches!(e, NoteError::PolicySyntax { line: 1, .. })
        }),
        (format!("witness {}\nquorum none\n", w(1)), |e| {
            matches!(e, NoteError::PolicySyntax { line: 1, .. })
        }),
        ("group G any\nquorum none\n".to_owned(), |e| {
            matches!(e, NoteError::PolicySyntax { line: 1, .. })
        }),
        ("log nonsense\nquorum none\n".into(), |e| {
            matches!(e, NoteError::PolicyKey { line: 1, .. })
        }),
        // A cosigner key where a log key belongs, and vice versa.
        (
            format!("log {}\nquorum none\n", w(1)),
            |e| matches!(e, NoteError::PolicyKey { line: 1, source } if matches!(**source, NoteError::UnsupportedAlgorithm { alg: 4 })),
        ),
        (
            format!("witness A {l}\nquorum none\n"),
            |e| matches!(e, NoteError::PolicyKey { line: 1, source } if matches!(**source, NoteError::UnsupportedAlgorithm { alg: 1 })),
        ),
        (format!("log {l}\nlog {l}\nquorum none\n"), |e| {
            matches!(e, NoteError::PolicyDuplicateKey { line: 2 })
        }),
        (
            format!("witness A {}\nwitness B {}\nquorum none\n", w(1), w(1)),
            |e| matches!(e, NoteError::PolicyDuplicateKey { line: 2 }),
        ),
        (
            format!("witness A {}\nwitness A {}\nquorum none\n", w(1), w(2)),
            |e| matches!(e, NoteError::PolicyDuplicateName { line: 2, .. }),
        ),
        (format!("witness none {}\nquorum none\n", w(1)), |e| {
            matches!(e, NoteError::PolicyDuplicateName { line: 1, .. })
        }),
        (
            format!("witness A {}\ngroup A any A\nquorum none\n", w(1)),
            |e| matches!(e, NoteError::PolicyDuplicateName { line: 2, .. }),
        ),
        (
            format!("witness A {}\ngroup G any B\nquorum none\n", w(1)),
            |e| matches!(e, NoteError::PolicyUndefinedName { line: 2, .. }),
        ),
        (
            format!("witness A {}\ngroup G any G\nquorum none\n", w(1)),
            |e| matches!(e, NoteError::PolicyUndefinedName { line: 2, .. }),
        ),
        (format!("quorum A\nwitness A {}\n", w(1)), |e| {
            matches!(e, NoteError::PolicyUndefinedName { line: 1, .. })
        }),
        (
            format!("witness A {}\ngroup G 1 A A\nquorum G\n", w(1)),
            |e| matches!(e, NoteError::PolicyMemberReused { line: 2, .. }),
        ),
        (
            format!(
                "witness A {}\nwitness B {}\ngroup G any A\ngroup H any A B\nquorum H\n",
                w(1),
                w(2)
            ),
            |e| matches!(e, NoteError::PolicyMemberReused { line: 4, .. }),
        ),
        (
            format!("witness A {}\ngroup G any A none\nquorum G\n", w(1)),
            |e| matches!(e, NoteError::PolicyMemberReused { line: 2, .. }),
        ),
        (
            format!("witness A {}\ngroup G 0 A\nquorum G\n", w(1)),
            |e| {
                matches!(
                    e,
                    NoteError::PolicyThreshold {
                        line: 2,
                        members: 1,
                        ..
                    }
                )
            },
        ),
        (
            format!("witness A {}\ngroup G 2 A\nquorum G\n", w(1)),
            |e| {
                matches!(
                    e,
                    NoteError::PolicyThreshold {
                        line: 2,
                        members: 1,
                        ..
                    }
                )
            },
        ),
        (
            format!("witness A {}\ngroup G one A\nquorum G\n", w(1)),
            |e| matches!(e, NoteError::PolicyThreshold { .. }),
        ),
        (
            format!("witness A {}\ngroup G -1 A\nquorum G\n", w(1)),
            |e| matches!(e, NoteError::PolicyThreshold { .. }),
        ),
    ];
    for (text, ok) in cases {
        let err = Policy::parse(&text).unwrap_err();
        assert!(ok(&err), "{text:?}: {err:?}");
    }
}

#[test]
fn policy_limits() {
    // 256 witnesses are accepted; the 257th is refused.
    let mut text = String::new();
    for i in 0..=256u16 {
        let s = CosignatureSigner::from_seed(&format!("w{i}"), &{
            let mut seed = [0u8; 32];
            seed[..2].copy_from_slice(&i.to_be_bytes());
            seed
        })
        .unwrap();
        text.push_str(&format!("witness W{i} {}\n", s.verifier().to_vkey()));
    }
    let mut ok = text.lines().take(256).collect::<Vec<_>>().join("\n");
    ok.push_str("\nquorum W0\n");
    assert_eq!(Policy::parse(&ok).unwrap().witnesses().len(), 256);
    text.push_str("quorum W0\n");
    let err = Policy::parse(&text).unwrap_err();
    assert!(
        matches!(
            err,
            NoteError::PolicyLimit {
                what: "witnesses",
                max: 256
            }
        ),
        "{err:?}"
    );
}

#[test]
fn policy_verifies_checkpoints() {
    let policy = Policy::parse(&policy_text("group G 2 W1 W2 W3\nquorum G\n")).unwrap();
    let (proof, _) = proof_for(0, &[1, 3, 4]);
    let v = policy.verify_checkpoint(&proof.checkpoint).unwrap();
    // W4 is a known witness but not in the quorum group; it still counts as a cosigner.
    assert_eq!(v.cosigners(), ["W1", "W3", "W4"]);
    assert_eq!(v.checkpoint().origin, ORIGIN);
    // A known witness's bad cosignature rejects the checkpoint.
    let mut note = Note::parse(&proof.checkpoint).unwrap();
    let good = witness(2).cosign(note.text(), 5).unwrap();
    let mut payload = good.signature().to_vec();
    payload[20] ^= 1;
    note.add_signature(
        merklog_note::NoteSignature::new(good.name(), good.key_id(), payload).unwrap(),
    )
    .unwrap();
    let err = policy.verify_checkpoint(&note.to_bytes()).unwrap_err();
    assert!(
        matches!(&err, NoteError::InvalidSignature { name, .. } if name == "w2.example"),
        "{err:?}"
    );
    // An origin no log in the policy has.
    let other = Ed25519Signer::from_seed("example.com/other", &[1; 32]).unwrap();
    let cp = Checkpoint {
        origin: "example.com/other".into(),
        size: 0,
        root: [0; 32].into(),
        extensions: vec![],
    };
    let err = policy
        .verify_checkpoint(&sign_checkpoint(&cp, &other).unwrap())
        .unwrap_err();
    assert!(matches!(err, NoteError::UnknownLog { .. }), "{err:?}");
}
