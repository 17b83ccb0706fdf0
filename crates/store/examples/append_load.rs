//! A quick load generator for `Log::append` over RocksDB in a temporary directory (no
//! network): N concurrent callers, K entries per call, for S seconds. Reports entries/s,
//! calls/s, rounds (distinct checkpoints), mean entries per round and call latency.
//!
//! ```text
//! cargo run -p merklog-store --example append_load -- --callers 64 --per-call 1 --seconds 5
//! cargo run -p merklog-store --example append_load -- --callers 4 --per-call 1000 --seconds 5
//! ```
//! Options: `--callers N` (64), `--per-call K` (1), `--seconds S` (5), `--bytes B` (256),
//! `--wait-us T` (max_batch_wait, 0). A dev build optimises RocksDB and hashing but not
//! the log crate: treat its figures as a lower bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_log::{ALGORITHM_ED25519, Log, LogConfig, LogError, LogMetadata};
use merklog_note::Ed25519Signer;
use merklog_store::RocksStore;

struct Args {
    callers: usize,
    per_call: usize,
    seconds: u64,
    bytes: usize,
    wait_us: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        callers: 64,
        per_call: 1,
        seconds: 5,
        bytes: 256,
        wait_us: 0,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = |v: Option<&String>| {
            v.and_then(|v| v.parse::<u64>().ok())
                .expect("numeric value")
        };
        match pair.first().map(String::as_str) {
            Some("--callers") => args.callers = value(pair.get(1)) as usize,
            Some("--per-call") => args.per_call = value(pair.get(1)) as usize,
            Some("--seconds") => args.seconds = value(pair.get(1)),
            Some("--bytes") => args.bytes = value(pair.get(1)) as usize,
            Some("--wait-us") => args.wait_us = value(pair.get(1)),
            other => panic!("unknown option {other:?}"),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let dir = tempfile::tempdir().unwrap();
    let origin = "bench.example/log";
    let signer = Arc::new(Ed25519Signer::from_seed(origin, &[3u8; 32]).unwrap());
    let metadata = LogMetadata {
        origin: origin.into(),
        verifier_key: signer.verifier().to_vkey(),
        algorithm: ALGORITHM_ED25519.into(),
    };
    let store = Arc::new(RocksStore::open_for(dir.path(), &metadata).unwrap());
    let config = LogConfig {
        max_batch_wait: Duration::from_micros(args.wait_us),
        ..LogConfig::default()
    };
    let log = Log::open(store, signer, origin.into(), config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.callers)
        .map(|caller| {
            let log = log.clone();
            let (per_call, bytes) = (args.per_call, args.bytes);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut sizes = BTreeSet::new();
                let mut full = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let entries: Vec<Bytes> = (0..per_call)
                        .map(|_| {
                            n += 1;
                            let mut e = format!("caller {caller} entry {n} ").into_bytes();
                            e.resize(bytes.max(e.len()), b'.');
                            Bytes::from(e)
                        })
                        .collect();
                    let t = Instant::now();
                    match log.append(entries).await {
                        Ok(receipt) => {
                            latencies.push(t.elapsed());
                            sizes.insert(receipt.checkpoint.size());
                        }
                        Err(LogError::QueueFull) => {
                            full += 1;
                            tokio::task::yield_now().await;
                        }
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
                (latencies, sizes, full)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut sizes = BTreeSet::new();
    let mut full = 0;
    for task in tasks {
        let (l, s, f) = task.await.unwrap();
        latencies.extend(l);
        sizes.extend(s);
        full += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    log.shutdown().await;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    let calls = latencies.len() as f64;
    let entries = calls * args.per_call as f64;
    println!(
        "callers={} per_call={} bytes={} wait_us={}: {:.0} entries/s, {:.0} calls/s, {} rounds seen ({:.1} entries/round), \
         latency p50={:?} p99={:?} max={:?}, queue-full answers={}",
        args.callers,
        args.per_call,
        args.bytes,
        args.wait_us,
        entries / elapsed,
        calls / elapsed,
        sizes.len(),
        entries / sizes.len().max(1) as f64,
        pct(0.5),
        pct(0.99),
        latencies.last().copied().unwrap_or_default(),
        full
    );
}
