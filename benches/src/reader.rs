//! Readers: closed-loop unary calls for random inclusion or consistency proofs.
//!
//! Against a log, readers ask about leaves and checkpoints the writers of this run
//! had acknowledged (a uniform sample kept by the [`Checker`]) and verify every
//! proof against the latest checkpoint the answer carries. Against the echo
//! baseline, which stores nothing, they ask about random indexes of a tree of the
//! emulated size and count the answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use merklog_proto::v1::{self, get_inclusion_proof_request::Leaf};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::BenchError;
use crate::payload::Rng;
use crate::stats::{Phase, Recorder, Tally, code_label};
use crate::target::Client;
use crate::verify::Checker;

/// Which proofs readers fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadKind {
    /// `GetInclusionProof` by index at the latest size.
    Inclusion,
    /// `GetConsistencyProof` from a verified older checkpoint to the latest.
    Consistency,
}

/// What the readers of one run do.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReadSpec {
    /// Concurrent readers.
    pub readers: usize,
    /// Which proofs.
    pub kind: ReadKind,
    /// For the echo baseline: the tree size whose proofs it should shape.
    pub emulated_size: Option<u64>,
}

/// Runs the readers of `spec` over `clients` through `phase`.
pub async fn run_readers(
    clients: &[Client],
    spec: &ReadSpec,
    phase: Phase,
    checker: Arc<Checker>,
) -> Result<Tally, BenchError> {
    if clients.is_empty() || spec.readers == 0 {
        return Err(BenchError::Usage(
            "a read run needs clients and readers".into(),
        ));
    }
    let recorder = Recorder::new()?;
    let mut tasks = JoinSet::new();
    for reader in 0..spec.readers {
        let client = clients[reader % clients.len()].clone();
        let rng = Rng::new(Rng::seed_from_clock() ^ (reader as u64) << 48);
        tasks.spawn(read_loop(
            client,
            *spec,
            phase,
            Arc::clone(&checker),
            recorder.clone(),
            rng,
        ));
    }
    let drain = tokio::time::Instant::from_std(phase.drain_until + Duration::from_millis(1));
    let finished =
        tokio::time::timeout_at(drain, async { while tasks.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        let left = tasks.len() as u64;
        recorder.with(|t| t.abandoned += left);
        tasks.abort_all();
    }
    Ok(recorder.snapshot())
}

async fn read_loop(
    mut client: Client,
    spec: ReadSpec,
    phase: Phase,
    checker: Arc<Checker>,
    recorder: Recorder,
    mut rng: Rng,
) {
    let drain = tokio::time::Instant::from_std(phase.drain_until);
    let emulated = spec.emulated_size.unwrap_or(1).max(1);
    while phase.open() {
        let started = Instant::now();
        let outcome = match spec.kind {
            ReadKind::Inclusion => {
                let (index, leaf, tree_size) = if checker.verifies() {
                    match checker.known_leaf() {
                        Some((index, leaf)) => (index, Some(leaf), None),
                        None => {
                            recorder.with(|t| t.error("no acknowledged leaf to ask about"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                } else {
                    (rng.below(emulated), None, Some(emulated))
                };
                let request = v1::GetInclusionProofRequest {
                    leaf: Some(Leaf::Index(index)),
                    tree_size,
                };
                match tokio::time::timeout_at(drain, client.get_inclusion_proof(request)).await {
                    Ok(Ok(answer)) => {
                        // Without a key (the echo) only the answer's shape is checked.
                        checker.inclusion(
                            index,
                            &leaf.unwrap_or([0; 32].into()),
                            &answer.into_inner(),
                        );
                        Ok(())
                    }
                    Ok(Err(status)) => Err(Some(status)),
                    Err(_) => Err(None),
                }
            }
            ReadKind::Consistency => {
                let (old_size, old_root, new_size) = if checker.verifies() {
                    match checker.known_checkpoint() {
                        Some((size, root)) => (size, root, None),
                        None => {
                            recorder.with(|t| t.error("no verified checkpoint to start from"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                } else {
                    (1 + rng.below(emulated), [0; 32].into(), Some(emulated))
                };
                let request = v1::GetConsistencyProofRequest { old_size, new_size };
                match tokio::time::timeout_at(drain, client.get_consistency_proof(request)).await {
                    Ok(Ok(answer)) => {
                        checker.consistency(old_size, &old_root, &answer.into_inner());
                        Ok(())
                    }
                    Ok(Err(status)) => Err(Some(status)),
                    Err(_) => Err(None),
                }
            }
        };
        match outcome {
            Ok(()) => recorder.with(|t| t.success(&phase, started, 0)),
            Err(Some(status)) => {
                recorder.with(|t| t.error(code_label(status.code())));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(None) => {
                recorder.with(|t| t.abandoned += 1);
                return;
            }
        }
    }
}
