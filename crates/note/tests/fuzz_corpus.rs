//! Replays the checked-in fuzz seed corpora through the same functions the
//! cargo-fuzz targets in `fuzz/` call, so CI (stable, no libFuzzer) checks
//! every seed. `cargo test -p merklog-note --test fuzz_corpus -- --ignored`
//! regenerates the seeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use merklog_merkle::{BatchProofs, CompactRange, LeafIndex, hash_leaf};
use merklog_note::{
    Checkpoint, CosignatureSigner, Ed25519Signer, Note, TlogProof, fuzzing, sign_checkpoint,
};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(target)
}

/// Runs every seed; returns how many the parser accepted.
fn replay(target: &str, run: fn(&[u8]) -> bool) {
    let dir = corpus_dir(target);
    let (mut total, mut accepted) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        let Ok(ok) = outcome else {
            panic!("{target}: seed {} panicked", path.display());
        };
        // Seeds named ok-* must parse; bad-* must not.
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ok-") {
            assert!(ok, "{target}: {name} was rejected");
        } else if name.starts_with("bad-") {
            assert!(!ok, "{target}: {name} was accepted");
        }
        total += 1;
        accepted += usize::from(ok);
    }
    assert!(
        total >= 10,
        "{target}: only {total} seeds in {}",
        dir.display()
    );
    assert!(accepted >= 3, "{target}: only {accepted} seeds parse");
}

#[test]
fn note_seeds() {
    replay("note", fuzzing::note);
}

#[test]
fn key_seeds() {
    replay("key", fuzzing::key);
}

#[test]
fn checkpoint_seeds() {
    replay("checkpoint", fuzzing::checkpoint);
}

#[test]
fn tlog_proof_seeds() {
    replay("tlog_proof", fuzzing::tlog_proof);
}

#[test]
fn policy_seeds() {
    replay("policy", fuzzing::policy);
}

// ---- seed generation ----

const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const PETER_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";
const SPEC_CHECKPOINT: &str =
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

fn write_seeds(target: &str, seeds: &[(&str, Vec<u8>)]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in seeds {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

fn log_signer() -> Ed25519Signer {
    Ed25519Signer::from_seed("example.com/log", &[1; 32]).unwrap()
}

fn cosigner(i: u8) -> CosignatureSigner {
    CosignatureSigner::from_seed(&format!("w{i}.example"), &[10 + i; 32]).unwrap()
}

fn cosigned_checkpoint(size: u64, root: merklog_merkle::Hash) -> Vec<u8> {
    let cp = Checkpoint {
        origin: "example.com/log".into(),
        size,
        root,
        extensions: vec![],
    };
    let mut note = Note::parse(&sign_checkpoint(&cp, &log_signer()).unwrap()).unwrap();
    for i in 1..=2 {
        note.add_signature(cosigner(i).cosign(note.text(), 1_700_000_000).unwrap())
            .unwrap();
    }
    note.to_bytes()
}

#[test]
#[ignore = "regenerates the checked-in seed corpora"]
fn regenerate_seed_corpora() {
    let b = |s: &str| s.as_bytes().to_vec();
    let cosigned = cosigned_checkpoint(20852163, [0x42; 32].into());
    write_seeds(
        "note",
        &[
            ("ok-peter", b(PETER_NOTE)),
            ("ok-peter-enoch", b(&format!("{PETER_NOTE}{ENOCH_SIG}"))),
            (
                "ok-spec-example",
                b(
                    "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n",
                ),
            ),
            ("ok-cosigned-checkpoint", cosigned.clone()),
            ("ok-blank-lines", b("a\n\n\nb\n\n\n\u{2014} k AAAAAAA=\n")),
            ("bad-no-separator", b("a\n\u{2014} k AAAAAAA=\n")),
            ("bad-unterminated", b("a\n\n\u{2014} k AAAAAAA=")),
            ("bad-control", b("a\tb\n\n\u{2014} k AAAAAAA=\n")),
            ("bad-utf8", b"a\xff\n\n\xe2\x80\x94 k AAAAAAA=\n".to_vec()),
            ("bad-hyphen", b("a\n\n- k AAAAAAA=\n")),
            ("bad-short-sig", b("a\n\n\u{2014} k AAAAAA==\n")),
            ("bad-plus-name", b("a\n\n\u{2014} a+b AAAAAAA=\n")),
            ("bad-nontrailing-bits", b("a\n\n\u{2014} k AAAAAAB=\n")),
        ],
    );
    let c = cosigner(1);
    write_seeds(
        "key",
        &[
            ("ok-peter-vkey", b(PETER_VKEY)),
            ("ok-enoch-vkey", b(ENOCH_VKEY)),
            ("ok-peter-skey", b(PETER_SKEY)),
            (
                "ok-spec-vkey",
                b("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"),
            ),
            ("ok-cosigner-vkey", b(&c.verifier().to_vkey())),
            (
                "ok-cosigner-skey",
                b(c.to_signer_key_text().expose_secret()),
            ),
            (
                "bad-wrong-id",
                b("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
            ),
            (
                "bad-unknown-alg",
                b("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
            ),
            (
                "bad-wrong-length",
                b("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="),
            ),
            (
                "bad-uppercase-id",
                b("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
            ),
            (
                "bad-no-prefix-skey",
                b("KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"),
            ),
        ],
    );
    write_seeds(
        "checkpoint",
        &[
            ("ok-spec", b(SPEC_CHECKPOINT)),
            (
                "ok-empty-tree",
                b("example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"),
            ),
            (
                "ok-extensions",
                b(&format!("{SPEC_CHECKPOINT}ext one\n\u{2014} two\n")),
            ),
            (
                "ok-max-size",
                b("o\n18446744073709551615\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"),
            ),
            (
                "bad-leading-zero",
                b("o\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"),
            ),
            (
                "bad-overflow",
                b("o\n18446744073709551616\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"),
            ),
            (
                "bad-short-root",
                b("o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==\n"),
            ),
            (
                "bad-empty-origin",
                b("\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"),
            ),
            ("bad-empty-extension", b(&format!("{SPEC_CHECKPOINT}\n"))),
            ("bad-two-lines", b("o\n1\n")),
            (
                "bad-no-newline",
                b("o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="),
            ),
        ],
    );
    let leaves: Vec<_> = (0..5u8).map(|i| hash_leaf(&[i])).collect();
    let batch = BatchProofs::new(&CompactRange::new(), &leaves).unwrap();
    let checkpoint = cosigned_checkpoint(5, batch.root());
    let proof = |i: u64| {
        TlogProof::new(
            i,
            batch.inclusion_proof(LeafIndex(i)).unwrap(),
            checkpoint.clone(),
        )
    };
    let mut with_extra = proof(3);
    with_extra.extra = Some(b"context".to_vec());
    let good = String::from_utf8(proof(1).to_bytes()).unwrap();
    write_seeds(
        "tlog_proof",
        &[
            ("ok-index-0", proof(0).to_bytes()),
            ("ok-index-1", proof(1).to_bytes()),
            ("ok-index-4", proof(4).to_bytes()),
            ("ok-extra", with_extra.to_bytes()),
            ("bad-header", b(&good.replacen("@v1", "@v0", 1))),
            ("bad-index", b(&good.replacen("index 1", "index 01", 1))),
            (
                "bad-extra",
                b(&good.replacen("index 1", "extra ???\nindex 1", 1)),
            ),
            ("bad-hash", b(&good.replacen("\n\n", "\nAAAA\n\n", 1))),
            ("bad-truncated", b(good.split("\n\n").next().unwrap())),
            (
                "bad-no-checkpoint",
                b(&format!("{}\n\n", good.split("\n\n").next().unwrap())),
            ),
        ],
    );
    let log_vkey = log_signer().verifier().to_vkey();
    let w = |i: u8| cosigner(i).verifier().to_vkey();
    write_seeds(
        "policy",
        &[
            ("ok-none", b("quorum none\n")),
            (
                "ok-single",
                b(&format!("log {log_vkey}\nwitness A {}\nquorum A\n", w(1))),
            ),
            (
                "ok-nested",
                b(&format!(
                    "# two organisations\nlog {log_vkey} https://log.example/\n\nwitness X1 {}\nwitness X2 {}\nwitness X3 {}\ngroup X 2 X1 X2 X3\n\twitness Y1 {} https://y1.example/\n  witness Y2 {}\ngroup Y any Y1 Y2\ngroup XY all X Y\nquorum XY",
                    w(1),
                    w(2),
                    w(3),
                    w(4),
                    w(5)
                )),
            ),
            (
                "ok-tabs",
                b(&format!("\tlog\t{log_vkey}\t\nquorum\tnone\t\n")),
            ),
            ("bad-no-quorum", b(&format!("log {log_vkey}\n"))),
            ("bad-two-quorums", b("quorum none\nquorum none\n")),
            (
                "bad-forward-ref",
                b(&format!("quorum A\nwitness A {}\n", w(1))),
            ),
            (
                "bad-threshold",
                b(&format!("witness A {}\ngroup G 2 A\nquorum G\n", w(1))),
            ),
            (
                "bad-reused-member",
                b(&format!(
                    "witness A {}\ngroup G any A\ngroup H any A\nquorum H\n",
                    w(1)
                )),
            ),
            ("bad-log-type", b(&format!("log {}\nquorum none\n", w(1)))),
            ("bad-cr", b("quorum none\r\n")),
        ],
    );
}
