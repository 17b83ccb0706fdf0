//! A store-level load generator: what the sequencer asks of `RocksStore` per round, with
//! no log, signing or network around it. Each round looks up K new leaf hashes in the
//! dedup index (`lookup_leaves`), then commits their dedup rows, the entry bundles
//! (full ones and the right-edge partial one, as the sequencer hands them over), the
//! tiles (full and partial, every level) and a 300-byte checkpoint as one synced batch.
//! Prints the rate per interval as the tree grows, and the bytes the process wrote to
//! the disk (`/proc/self/io`) per entry.
//!
//! ```text
//! cargo run --release -p merklog-store --example store_grow -- --per-round 8000 --entries 3000000
//! cargo run --release -p merklog-store --example store_grow -- --per-round 30 --bytes 2350 --entries 300000
//! ```
//! Options: `--per-round K` (8000), `--entries N` (2,000,000), `--bytes B` (256),
//! `--report-every R` (250,000 entries), `--dir D` (a temporary directory).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use merklog_log::{LogStore, RoundWrite};
use merklog_merkle::{Hash, hash_leaf};
use merklog_store::RocksStore;

#[path = "../tests/support/fake_edge.rs"]
mod fake_edge;
use fake_edge::Edge;

struct Args {
    per_round: u64,
    entries: u64,
    bytes: usize,
    report_every: u64,
    dir: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        per_round: 8000,
        entries: 2_000_000,
        bytes: 256,
        report_every: 250_000,
        dir: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = |v: Option<&String>| v.and_then(|v| v.parse::<u64>().ok()).expect("number");
        match pair.first().map(String::as_str) {
            Some("--per-round") => args.per_round = value(pair.get(1)),
            Some("--entries") => args.entries = value(pair.get(1)),
            Some("--bytes") => args.bytes = value(pair.get(1)) as usize,
            Some("--report-every") => args.report_every = value(pair.get(1)),
            Some("--dir") => args.dir = pair.get(1).cloned(),
            other => panic!("unknown option {other:?}"),
        }
    }
    args
}

fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| {
                    l.strip_prefix("write_bytes: ")
                        .map(|v| v.trim().parse().ok())
                })
                .flatten()
        })
        .unwrap_or(0)
}

fn main() {
    let args = parse_args();
    let temp = tempfile::tempdir().unwrap();
    let dir = args
        .dir
        .clone()
        .map_or_else(|| temp.path().to_path_buf(), Into::into);
    let store = RocksStore::open(&dir).unwrap();
    let mut edge = Edge::default();
    let mut counter = 0u64;
    let (mut lookup, mut commit) = (Duration::ZERO, Duration::ZERO);
    let mut interval_start = Instant::now();
    let mut interval_entries = 0u64;
    let mut written_at = written_bytes();
    let started = Instant::now();
    let checkpoint = vec![b'c'; 300];
    while edge.size < args.entries {
        let entries: Vec<Vec<u8>> = (0..args.per_round)
            .map(|_| {
                counter += 1;
                let mut e = format!("entry {counter} ").into_bytes();
                e.resize(args.bytes.max(e.len()), b'.');
                e
            })
            .collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
        let t = Instant::now();
        let found = store.lookup_leaves(&leaves).unwrap();
        assert!(found.iter().all(Option::is_none), "unexpected duplicate");
        lookup += t.elapsed();
        let mut round = RoundWrite::default();
        let first = edge.size;
        edge.append(&leaves, &entries, &mut round);
        round.dedup = leaves.iter().zip(first..).map(|(h, i)| (*h, i)).collect();
        round.checkpoint = Some((edge.size, checkpoint.clone()));
        let t = Instant::now();
        store.commit(&round).unwrap();
        commit += t.elapsed();
        interval_entries += args.per_round;
        if interval_entries >= args.report_every || edge.size >= args.entries {
            let secs = interval_start.elapsed().as_secs_f64();
            let written = written_bytes();
            println!(
                "size {:>9}: {:>8.0} entries/s (lookup {:>5.1}%, commit {:>5.1}%), written {:>6.0} B/entry",
                edge.size,
                interval_entries as f64 / secs,
                100.0 * lookup.as_secs_f64() / secs,
                100.0 * commit.as_secs_f64() / secs,
                written.saturating_sub(written_at) as f64 / interval_entries as f64,
            );
            written_at = written;
            interval_entries = 0;
            lookup = Duration::ZERO;
            commit = Duration::ZERO;
            interval_start = Instant::now();
        }
    }
    println!(
        "total: {} entries in {:.1} s ({:.0}/s), {} per round, {} B entries",
        edge.size,
        started.elapsed().as_secs_f64(),
        edge.size as f64 / started.elapsed().as_secs_f64(),
        args.per_round,
        args.bytes
    );
}
