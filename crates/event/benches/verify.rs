//! Verifying signed source events at ingest: one strict check per event against the
//! batch check, by batch size, to place the size from which ingest batches.
//!
//! Run: `cargo bench -p merklog-event --bench verify`. Throughput is events per second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use merklog_event::{Event, EventDraft, SourceKey, verify_batch};
use merklog_note::Ed25519Signer;

fn events(count: u64) -> (Vec<Event>, SourceKey) {
    let signer = Ed25519Signer::from_seed("agent.example/7", &[7; 32]).unwrap();
    let key = SourceKey::from_verifier(&signer.verifier()).unwrap();
    let payload = [0x61u8; 256];
    let events = (0..count)
        .map(|sequence| {
            Event::sign(
                &signer,
                &EventDraft {
                    source: "agent.example/7",
                    sequence,
                    timestamp_ms: 1_700_000_000_000,
                    media_type: "application/json",
                    payload: &payload,
                },
            )
            .unwrap()
        })
        .collect();
    (events, key)
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    group.measurement_time(Duration::from_secs(3));
    for n in [1u64, 2, 3, 4, 8, 16, 32, 64, 128, 256] {
        let (events, key) = events(n);
        let pairs: Vec<(&Event, &SourceKey)> = events.iter().map(|e| (e, &key)).collect();
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("one_by_one", n), &pairs, |b, pairs| {
            b.iter(|| {
                for (event, key) in pairs {
                    event.verify(key).unwrap();
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("batch", n), &pairs, |b, pairs| {
            b.iter(|| verify_batch(black_box(pairs)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(verify, benches);
criterion_main!(verify);
