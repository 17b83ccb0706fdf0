//! Checkpoint signing and verification throughput.
//!
//! Run: `cargo bench -p merklog-note --bench note`. Each benchmark handles one
//! checkpoint per iteration, so criterion's "elem/s" is checkpoints per second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use merklog_note::{
    Checkpoint, CosignatureSigner, Ed25519Signer, Note, Policy, open_checkpoint, sign_checkpoint,
};

fn checkpoint(size: u64) -> Checkpoint {
    Checkpoint {
        origin: "example.com/log".into(),
        size,
        root: [0x5a; 32].into(),
        extensions: vec![],
    }
}

fn benches(c: &mut Criterion) {
    let log = Ed25519Signer::from_seed("example.com/log", &[1; 32]).unwrap();
    let log_verifier = log.verifier();
    let witnesses: Vec<CosignatureSigner> = (0..3u8)
        .map(|i| CosignatureSigner::from_seed(&format!("w{i}.example"), &[10 + i; 32]).unwrap())
        .collect();
    let cp = checkpoint(123_456_789);
    let signed = sign_checkpoint(&cp, &log).unwrap();
    let mut cosigned = Note::parse(&signed).unwrap();
    for w in &witnesses {
        cosigned
            .add_signature(w.cosign(cosigned.text(), 1_700_000_000).unwrap())
            .unwrap();
    }
    let cosigned_bytes = cosigned.to_bytes();
    let cosignature = cosigned.signatures()[1].clone();
    let w0 = witnesses[0].verifier();
    let mut policy_text = format!("log {}\n", log_verifier.to_vkey());
    for (i, w) in witnesses.iter().enumerate() {
        policy_text.push_str(&format!("witness W{i} {}\n", w.verifier().to_vkey()));
    }
    policy_text.push_str("group G all W0 W1 W2\nquorum G\n");
    let policy = Policy::parse(&policy_text).unwrap();

    let mut g = c.benchmark_group("checkpoint");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30)
        .throughput(Throughput::Elements(1));
    let mut size = 0u64;
    g.bench_function("sign", |b| {
        b.iter(|| {
            size += 1;
            black_box(sign_checkpoint(&checkpoint(size), &log).unwrap())
        })
    });
    g.bench_function("open_verify_log_signature", |b| {
        b.iter(|| black_box(open_checkpoint(black_box(&signed), &log_verifier, None).unwrap()))
    });
    g.bench_function("cosign", |b| {
        let text = cp.to_text();
        b.iter(|| black_box(witnesses[0].cosign(&text, 1_700_000_000).unwrap()))
    });
    g.bench_function("verify_cosignature", |b| {
        let text = cosigned.text();
        b.iter(|| {
            black_box(
                w0.verify_cosignature(text, black_box(&cosignature))
                    .unwrap(),
            )
        })
    });
    g.bench_function("policy_verify_log_plus_3_cosignatures", |b| {
        b.iter(|| {
            black_box(
                policy
                    .verify_checkpoint(black_box(&cosigned_bytes))
                    .unwrap(),
            )
        })
    });
    g.bench_function("parse_only", |b| {
        b.iter(|| black_box(Note::parse(black_box(&cosigned_bytes)).unwrap()))
    });
    g.finish();
}

criterion_group!(note_benches, benches);
criterion_main!(note_benches);
