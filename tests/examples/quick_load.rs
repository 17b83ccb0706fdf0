//! A quick, closed-loop load run against a fresh `merklogd` (not the benchmark
//! suite, which is a later issue): appends/s and p50/p99 acknowledgement latency
//! for unary calls (1 entry per call, and batches) and for append streams.
//!
//! `cargo run --release -p merklog-e2e --example quick_load -- [seconds per phase] [phases]`
//! builds and starts `merklogd` of the same profile in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_e2e::{Daemon, connect};
use merklog_proto::v1;
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;

const ENTRY_BYTES: usize = 256;

/// A unique 256-byte entry.
fn entry(phase: u8, client: u64, n: u64) -> Bytes {
    let mut e = vec![b'.'; ENTRY_BYTES];
    let tag = format!("p{phase}-c{client}-n{n}-{}", std::process::id());
    e[..tag.len()].copy_from_slice(tag.as_bytes());
    Bytes::from(e)
}

struct Report {
    name: String,
    entries: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Report {
    fn print(mut self) {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies.get(i).copied().unwrap_or_default()
        };
        println!(
            "{:<44} {:>9.0} entries/s   p50 {:>8.2} ms   p99 {:>8.2} ms   ({} calls)",
            self.name,
            self.entries as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            self.latencies.len()
        );
    }
}

/// `clients` concurrent unary callers, `batch` entries per call.
async fn unary(url: &str, phase: u8, clients: u64, batch: u64, run_for: Duration) -> Report {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let entries = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let mut rpc = connect(url).await.unwrap();
        let (latencies, entries) = (latencies.clone(), entries.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut n = 0;
            while start.elapsed() < run_for {
                let request = v1::AppendRequest {
                    entries: (n..n + batch).map(|i| entry(phase, client, i)).collect(),
                    include_tlog_proof: false,
                };
                n += batch;
                let sent = Instant::now();
                if rpc.append(request).await.is_ok() {
                    mine.push(sent.elapsed());
                    entries.fetch_add(batch, Ordering::Relaxed);
                }
            }
            latencies.lock().await.extend(mine);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    Report {
        name: format!("unary: {clients} clients x {batch} entries/call"),
        entries: entries.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        latencies: Arc::try_unwrap(latencies).ok().unwrap().into_inner(),
    }
}

/// `streams` append streams, each keeping `window` requests of `batch` entries in flight.
async fn streaming(
    url: &str,
    phase: u8,
    streams: u64,
    window: usize,
    batch: u64,
    run_for: Duration,
) -> Report {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let entries = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for stream in 0..streams {
        let mut rpc = connect(url).await.unwrap();
        let (latencies, entries) = (latencies.clone(), entries.clone());
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = mpsc::channel(window);
            let sent_at = Arc::new(Mutex::new(std::collections::HashMap::new()));
            let permits = Arc::new(tokio::sync::Semaphore::new(window));
            let sender = {
                let (sent_at, permits) = (sent_at.clone(), permits.clone());
                tokio::spawn(async move {
                    let mut sequence = 0u64;
                    while start.elapsed() < run_for {
                        permits.acquire().await.unwrap().forget();
                        let first = sequence * batch;
                        let request = v1::AppendStreamRequest {
                            sequence,
                            request: Some(v1::AppendRequest {
                                entries: (first..first + batch)
                                    .map(|i| entry(phase, stream, i))
                                    .collect(),
                                include_tlog_proof: false,
                            }),
                        };
                        sent_at.lock().await.insert(sequence, Instant::now());
                        if tx.send(request).await.is_err() {
                            break;
                        }
                        sequence += 1;
                    }
                })
            };
            let mut answers = rpc
                .append_stream(ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            let mut mine = Vec::new();
            while let Ok(Some(answer)) = answers.message().await {
                if let Some(sent) = sent_at.lock().await.remove(&answer.sequence) {
                    mine.push(sent.elapsed());
                }
                if matches!(
                    answer.result,
                    Some(v1::append_stream_response::Result::Response(_))
                ) {
                    entries.fetch_add(batch, Ordering::Relaxed);
                }
                permits.add_permits(1);
            }
            sender.await.unwrap();
            latencies.lock().await.extend(mine);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    Report {
        name: format!("stream: {streams} streams x {window} in flight x {batch} entries"),
        entries: entries.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        latencies: Arc::try_unwrap(latencies).ok().unwrap().into_inner(),
    }
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let run_for = Duration::from_secs(seconds);
    // Phases to run, in order (default all): e.g. `quick_load 5 4,2`.
    let phases: Vec<u8> = std::env::args()
        .nth(2)
        .map(|list| list.split(',').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 3, 4]);
    println!(
        "merklogd {} ({ENTRY_BYTES}-byte entries, {seconds} s per phase, a fresh log each)",
        merklog_e2e::merklogd_binary().display(),
    );
    for phase in phases {
        // A fresh log per phase, so one phase's database growth does not skew the next.
        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::start(
            &dir.path().join("data"),
            &[
                "--origin",
                "load.example/log",
                "--log-level",
                "warn",
                "--max-entries-per-call",
                "1000",
            ],
        );
        let url = daemon.grpc_url();
        let report = match phase {
            1 => unary(&url, 1, 64, 1, run_for).await,
            2 => unary(&url, 2, 16, 1000, run_for).await,
            3 => streaming(&url, 3, 4, 8, 1, run_for).await,
            4 => streaming(&url, 4, 4, 4, 1000, run_for).await,
            other => panic!("no phase {other}"),
        };
        report.print();
        let status = daemon.terminate();
        assert!(status.success());
    }
}
