//! Crash test: 32 concurrent clients append 10,000 distinct entries while
//! `merklogd` is killed with SIGKILL at random moments three times and restarted
//! on the same data directory. Clients retry every failure (dedup makes retries
//! idempotent). At the end:
//! - every acknowledged entry has a valid inclusion proof against the final
//!   checkpoint, and the stored entry at its index is the acknowledged one;
//! - every checkpoint any client saw is consistent with the final one (and no two
//!   checkpoints of one size differ);
//! - the final tree, rebuilt from the stored entries, has the signed root, and
//!   holds each entry exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_e2e::{Daemon, connect, open_wire_checkpoint, read_all_entries, read_verifier};
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf, verify_consistency, verify_inclusion};
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1::{self, get_inclusion_proof_request::Leaf};
use merklog_testkit::Rng;
use tokio::sync::{Mutex, watch};

const CLIENTS: usize = 32;
const ENTRIES: usize = 10_000;
const KILLS: usize = 3;
/// The whole test must finish well within a minute on 2 cores (debug build).
const DEADLINE: Duration = Duration::from_secs(90);

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// entry -> acknowledged index (a retried entry may be acknowledged twice:
    /// both answers must agree).
    acks: HashMap<Bytes, u64>,
    /// size -> root of every checkpoint any client was given.
    checkpoints: BTreeMap<u64, Hash>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_three_times_under_load_loses_nothing() {
    // Found (or built) before the clock starts.
    merklog_e2e::merklogd_binary();
    let started = Instant::now();
    let (mut rng, seed) = Rng::from_env_or_clock();
    println!("seed {seed} (set MERKLOG_TEST_SEED to repeat)");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let args = ["--origin", "crash.example/log", "--log-level", "warn"];

    let data = data_dir.clone();
    let daemon = tokio::task::spawn_blocking(move || Daemon::start(&data, &args))
        .await
        .unwrap();
    let verifier = Arc::new(read_verifier(&data_dir));
    let (endpoint_tx, endpoint) = watch::channel(daemon.grpc_url());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let acked = Arc::new(AtomicUsize::new(0));
    let retried_duplicates = Arc::new(AtomicUsize::new(0));
    // Checkpoints whose signature was verified already: note bytes -> (size, root).
    let verified = Arc::new(std::sync::Mutex::new(HashMap::<Bytes, (u64, Hash)>::new()));

    // The clients: entry i belongs to client i % 32; calls carry 1 to 16 entries.
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let mine: Vec<Bytes> = (client..ENTRIES)
            .step_by(CLIENTS)
            .map(|i| Bytes::from(format!("crash-{seed}-entry-{i:05}")))
            .collect();
        let (endpoint, seen, acked, verifier, verified) = (
            endpoint.clone(),
            seen.clone(),
            acked.clone(),
            verifier.clone(),
            verified.clone(),
        );
        let retried_duplicates = retried_duplicates.clone();
        let mut rng = Rng::new(seed ^ (client as u64 + 1).wrapping_mul(0x9e37_79b9));
        clients.push(tokio::spawn(async move {
            let mut next = 0;
            let mut connection: Option<(String, v1::log_client::LogClient<_>)> = None;
            while next < mine.len() {
                let take = (1 + rng.below(16) as usize).min(mine.len() - next);
                let batch = mine[next..next + take].to_vec();
                let mut attempts = 0u32;
                let response = loop {
                    attempts += 1;
                    assert!(
                        started.elapsed() < DEADLINE,
                        "client {client} stuck (seed {seed})"
                    );
                    let url = endpoint.borrow().clone();
                    if connection.as_ref().is_none_or(|(u, _)| *u != url) {
                        connection = connect(&url).await.ok().map(|c| (url.clone(), c));
                    }
                    let Some((_, rpc)) = connection.as_mut() else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let request = v1::AppendRequest {
                        entries: batch.clone(),
                        include_tlog_proof: false,
                    };
                    match rpc.append(request).await {
                        Ok(response) => break response.into_inner(),
                        Err(_) => {
                            connection = None;
                            tokio::time::sleep(Duration::from_millis(10 + rng.below(30))).await;
                        }
                    }
                };
                // Verify the acknowledgement on the spot: signature (once per
                // distinct checkpoint: Ed25519 is slow in a debug build), then proofs.
                let checkpoint = response.checkpoint.unwrap();
                let cached = verified.lock().unwrap().get(&checkpoint.note).copied();
                let opened = match cached {
                    Some(opened) => opened,
                    None => {
                        let parsed = open_wire_checkpoint(&verifier, &checkpoint).unwrap();
                        let opened = (parsed.size, parsed.root);
                        verified
                            .lock()
                            .unwrap()
                            .insert(checkpoint.note.clone(), opened);
                        opened
                    }
                };
                let (size, root) = opened;
                assert_eq!(response.entries.len(), batch.len());
                for (entry, answer) in batch.iter().zip(&response.entries) {
                    let proof =
                        proof_from_wire("inclusion_proof", &answer.inclusion_proof).unwrap();
                    verify_inclusion(
                        &hash_leaf(entry),
                        LeafIndex(answer.index),
                        TreeSize(size),
                        &proof,
                        &root,
                    )
                    .unwrap();
                    // A first attempt can only be a duplicate of its own earlier write.
                    assert!(!answer.duplicate || attempts > 1, "unexpected duplicate");
                    if answer.duplicate {
                        // A retry whose first attempt was written but not answered.
                        retried_duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let mut seen = seen.lock().await;
                for (entry, answer) in batch.iter().zip(&response.entries) {
                    if let Some(previous) = seen.acks.insert(entry.clone(), answer.index) {
                        assert_eq!(previous, answer.index, "one entry, two indexes");
                    }
                }
                if let Some(previous) = seen.checkpoints.insert(size, root) {
                    assert_eq!(previous, root, "two roots for size {size}");
                }
                drop(seen);
                acked.fetch_add(batch.len(), Ordering::Relaxed);
                next += take;
            }
        }));
    }

    // The killer: SIGKILL at random points of the run, then restart.
    let mut thresholds: Vec<usize> = (0..KILLS)
        .map(|k| ENTRIES * (2 * k + 1) / (2 * KILLS + 1) + rng.below(ENTRIES as u64 / 8) as usize)
        .collect();
    thresholds.sort_unstable();
    let mut daemon = Some(daemon);
    for threshold in thresholds {
        while acked.load(Ordering::Relaxed) < threshold {
            assert!(started.elapsed() < DEADLINE, "no progress (seed {seed})");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
        let victim = daemon.take().unwrap();
        let data = data_dir.clone();
        let restarted = tokio::task::spawn_blocking(move || {
            victim.kill();
            Daemon::start(&data, &args)
        })
        .await
        .unwrap();
        println!(
            "killed at {} acknowledged entries; restarted on {}",
            acked.load(Ordering::Relaxed),
            restarted.addrs.grpc
        );
        endpoint_tx.send(restarted.grpc_url()).unwrap();
        daemon = Some(restarted);
    }
    for client in clients {
        client.await.unwrap();
    }
    println!(
        "all {ENTRIES} entries acknowledged after {:?}; {} retries were answered as \
         duplicates (written before a kill, answer lost)",
        started.elapsed(),
        retried_duplicates.load(Ordering::Relaxed)
    );

    // Final checks against the running (restarted) server.
    let daemon = daemon.unwrap();
    let mut rpc = connect(&daemon.grpc_url()).await.unwrap();
    let final_wire = rpc
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    let last = open_wire_checkpoint(&verifier, &final_wire).unwrap();
    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner();
    assert_eq!(seen.acks.len(), ENTRIES);
    assert_eq!(
        last.size, ENTRIES as u64,
        "every distinct entry exactly once"
    );

    // The stored entries: each acknowledged entry sits at its index, and the tree
    // rebuilt from them has the signed root.
    let stored = read_all_entries(&mut rpc, last.size).await.unwrap();
    for (entry, index) in &seen.acks {
        assert_eq!(&stored[*index as usize], entry, "entry at index {index}");
    }
    let leaves: Vec<Hash> = stored.iter().map(|e| hash_leaf(e)).collect();
    assert_eq!(naive_root(&leaves), last.root, "rebuilt root");

    // Inclusion proofs against the final checkpoint, fetched concurrently.
    let acks: Vec<(Bytes, u64)> = seen.acks.into_iter().collect();
    let chunks: Vec<Vec<(Bytes, u64)>> = acks.chunks(ENTRIES / 8).map(<[_]>::to_vec).collect();
    let mut checks = Vec::new();
    for chunk in chunks {
        let mut rpc = rpc.clone();
        let root = last.root;
        checks.push(tokio::spawn(async move {
            for (entry, index) in chunk {
                let response = rpc
                    .get_inclusion_proof(v1::GetInclusionProofRequest {
                        leaf: Some(Leaf::Index(index)),
                        tree_size: Some(ENTRIES as u64),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let proof = proof_from_wire("proof", &response.proof).unwrap();
                verify_inclusion(
                    &hash_leaf(&entry),
                    LeafIndex(index),
                    TreeSize(ENTRIES as u64),
                    &proof,
                    &root,
                )
                .unwrap();
            }
        }));
    }
    for check in checks {
        check.await.unwrap();
    }

    // Every checkpoint seen is consistent with the final one.
    for (size, root) in &seen.checkpoints {
        if *size == 0 {
            continue;
        }
        let response = rpc
            .get_consistency_proof(v1::GetConsistencyProofRequest {
                old_size: *size,
                new_size: Some(last.size),
            })
            .await
            .unwrap()
            .into_inner();
        let proof = proof_from_wire("proof", &response.proof).unwrap();
        verify_consistency(
            TreeSize(*size),
            TreeSize(last.size),
            &proof,
            root,
            &last.root,
        )
        .unwrap();
    }
    println!(
        "{} checkpoints checked; total {:?}",
        seen.checkpoints.len(),
        started.elapsed()
    );
    let status = tokio::task::spawn_blocking(move || daemon.terminate())
        .await
        .unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}

/// RFC 6962 root, built naively.
fn naive_root(leaves: &[Hash]) -> Hash {
    merklog_testkit_tree::mth(leaves)
}
