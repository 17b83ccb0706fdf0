//! Checking what the log answers: checkpoint signatures, inclusion proofs of
//! acknowledged entries, inclusion and consistency proofs fetched by readers.
//!
//! Each distinct checkpoint (by tree size) is opened once with the log's key (C2SP
//! signed-note and tlog-checkpoint, origin checked) and its root cached; every later
//! answer naming that size must carry the same root. Inclusion proofs are checked
//! with RFC 9162 section 2.1.3.2 and consistency proofs with section 2.1.4.2
//! (`merklog-merkle`). Which acknowledged entries are checked is the [`Sample`].
//!
//! A failure is never an error of the run: it is counted, its first messages are
//! kept as evidence, and the hammer exits non-zero at the end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf};
use merklog_note::{Ed25519Verifier, open_checkpoint};
use merklog_proto::convert::{hash_from_wire, proof_from_wire};
use merklog_proto::v1;
use serde::Serialize;

use crate::payload::Rng;

/// Failure messages kept as evidence.
const MAX_FAILURE_MESSAGES: usize = 20;
/// Known leaves kept for readers (a uniform reservoir sample of all acknowledged ones).
const KNOWN_LEAVES: usize = 1 << 20;
/// Known checkpoints kept for consistency readers.
const KNOWN_CHECKPOINTS: usize = 1 << 16;
/// Verified checkpoint roots cached by size before the cache is cleared.
const CHECKPOINT_CACHE: usize = 1 << 20;

/// Which entries of an append answer get their inclusion proof checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sample {
    /// Every entry of every answer.
    All,
    /// The first, the last and random others: at most this many per answer (every
    /// entry of an answer with fewer).
    PerAnswer(usize),
}

/// A uniform random sample of bounded size (Vitter's algorithm R).
#[derive(Debug)]
struct Reservoir<T> {
    items: Vec<T>,
    seen: u64,
    capacity: usize,
}

impl<T: Clone> Reservoir<T> {
    fn new(capacity: usize) -> Self {
        Self {
            items: Vec::new(),
            seen: 0,
            capacity,
        }
    }

    /// Offers one item; `make` runs only if it is kept.
    fn offer(&mut self, rng: &mut Rng, make: impl FnOnce() -> T) {
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push(make());
        } else {
            let slot = rng.below(self.seen);
            if let Some(item) = usize::try_from(slot)
                .ok()
                .and_then(|slot| self.items.get_mut(slot))
            {
                *item = make();
            }
        }
    }

    fn pick(&self, rng: &mut Rng) -> Option<T> {
        let slot = usize::try_from(rng.below(self.items.len() as u64)).ok()?;
        self.items.get(slot).cloned()
    }
}

/// Verified checkpoints and what readers may ask about.
#[derive(Debug)]
struct State {
    roots: HashMap<u64, Hash>,
    checkpoints: Reservoir<(u64, Hash)>,
    leaves: Reservoir<(u64, Hash)>,
    rng: Rng,
}

/// Counters of what was checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// Distinct checkpoints whose signature was verified.
    pub checkpoints: u64,
    /// Inclusion proofs of acknowledged entries verified.
    pub acknowledged_entries: u64,
    /// Acknowledged entries whose answer was seen but whose proof was not sampled.
    pub unsampled_entries: u64,
    /// Inclusion proofs fetched by readers and verified.
    pub inclusion_proofs: u64,
    /// Consistency proofs fetched by readers and verified.
    pub consistency_proofs: u64,
    /// Checks that failed.
    pub failures: u64,
}

/// Verifies answers of one log (or, with no key, only counts them: the echo
/// baseline, whose proofs are filler of the right length).
#[derive(Debug)]
pub struct Checker {
    verifier: Option<Ed25519Verifier>,
    origin: Option<String>,
    sample: Sample,
    state: Mutex<State>,
    failures: Mutex<Vec<String>>,
    checkpoints: AtomicU64,
    acknowledged: AtomicU64,
    unsampled: AtomicU64,
    inclusion: AtomicU64,
    consistency: AtomicU64,
    failed: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Checker {
    /// A checker of the log whose key is `verifier` (and whose checkpoints must name
    /// `origin`, when given); `None` checks nothing cryptographic.
    pub fn new(verifier: Option<Ed25519Verifier>, origin: Option<String>, sample: Sample) -> Self {
        Self {
            verifier,
            origin,
            sample,
            state: Mutex::new(State {
                roots: HashMap::new(),
                checkpoints: Reservoir::new(KNOWN_CHECKPOINTS),
                leaves: Reservoir::new(KNOWN_LEAVES),
                rng: Rng::new(Rng::seed_from_clock()),
            }),
            failures: Mutex::new(Vec::new()),
            checkpoints: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            unsampled: AtomicU64::new(0),
            inclusion: AtomicU64::new(0),
            consistency: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// True when answers are verified (a log key is known).
    pub fn verifies(&self) -> bool {
        self.verifier.is_some()
    }

    /// Records a failed check.
    pub fn fail(&self, message: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut kept = lock(&self.failures);
        if kept.len() < MAX_FAILURE_MESSAGES {
            kept.push(message);
        }
    }

    /// The counters so far.
    pub fn checked(&self) -> Checked {
        Checked {
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            acknowledged_entries: self.acknowledged.load(Ordering::Relaxed),
            unsampled_entries: self.unsampled.load(Ordering::Relaxed),
            inclusion_proofs: self.inclusion.load(Ordering::Relaxed),
            consistency_proofs: self.consistency.load(Ordering::Relaxed),
            failures: self.failed.load(Ordering::Relaxed),
        }
    }

    /// The first failure messages.
    pub fn failure_messages(&self) -> Vec<String> {
        lock(&self.failures).clone()
    }

    /// Opens a wire checkpoint (signature once per size, then the cached root) and
    /// returns its size and root.
    pub fn checkpoint(&self, checkpoint: &v1::Checkpoint) -> Result<(u64, Hash), String> {
        let root =
            hash_from_wire("checkpoint.root", &checkpoint.root).map_err(|e| e.to_string())?;
        let size = checkpoint.size;
        let Some(verifier) = &self.verifier else {
            return Ok((size, root));
        };
        if let Some(known) = lock(&self.state).roots.get(&size) {
            return if *known == root {
                Ok((size, root))
            } else {
                Err(format!(
                    "two roots for tree size {size}: {known} verified earlier, {root} now"
                ))
            };
        }
        let (signed, _) = open_checkpoint(&checkpoint.note, verifier, self.origin.as_deref())
            .map_err(|e| format!("checkpoint of size {size}: {e}"))?;
        if signed.size != size || signed.root != root {
            return Err(format!(
                "checkpoint fields (size {size}, root {root}) differ from its signed text (size {}, root {})",
                signed.size, signed.root
            ));
        }
        let mut state = lock(&self.state);
        if state.roots.len() >= CHECKPOINT_CACHE {
            state.roots.clear();
        }
        if state.roots.insert(size, root).is_none() {
            self.checkpoints.fetch_add(1, Ordering::Relaxed);
            let State {
                checkpoints, rng, ..
            } = &mut *state;
            checkpoints.offer(rng, || (size, root));
        }
        Ok((size, root))
    }

    /// Checks an append answer for the entries sent. Returns the answer's tree size.
    /// Failures are recorded; the answer's size is still returned when readable.
    pub fn append(&self, sent: &[Bytes], answer: &v1::AppendResponse) -> Option<u64> {
        match self.check_append(sent, answer) {
            Ok(size) => Some(size),
            Err(message) => {
                self.fail(message);
                answer.checkpoint.as_ref().map(|c| c.size)
            }
        }
    }

    fn check_append(&self, sent: &[Bytes], answer: &v1::AppendResponse) -> Result<u64, String> {
        if answer.entries.len() != sent.len() {
            return Err(format!(
                "{} entries sent, {} acknowledged",
                sent.len(),
                answer.entries.len()
            ));
        }
        let checkpoint = answer
            .checkpoint
            .as_ref()
            .ok_or("an append answer without a checkpoint")?;
        let (size, root) = self.checkpoint(checkpoint)?;
        if self.verifier.is_none() {
            return Ok(size);
        }
        let chosen = self.choose(sent.len());
        let mut state = lock(&self.state);
        let State { leaves, rng, .. } = &mut *state;
        for (position, (entry, acked)) in sent.iter().zip(&answer.entries).enumerate() {
            if acked.duplicate {
                return Err(format!(
                    "entry {position} acknowledged as a duplicate at index {}; every entry of a run is unique",
                    acked.index
                ));
            }
            if acked.index >= size {
                return Err(format!(
                    "entry {position} acknowledged at index {} beyond its checkpoint's size {size}",
                    acked.index
                ));
            }
            leaves.offer(rng, || (acked.index, hash_leaf(entry)));
        }
        drop(state);
        for position in chosen {
            let (Some(entry), Some(acked)) = (sent.get(position), answer.entries.get(position))
            else {
                continue;
            };
            let proof = proof_from_wire("inclusion_proof", &acked.inclusion_proof)
                .map_err(|e| e.to_string())?;
            merklog_merkle::verify_inclusion(
                &hash_leaf(entry),
                LeafIndex(acked.index),
                TreeSize(size),
                &proof,
                &root,
            )
            .map_err(|e| {
                format!(
                    "inclusion proof of index {} in tree size {size}: {e}",
                    acked.index
                )
            })?;
            self.acknowledged.fetch_add(1, Ordering::Relaxed);
        }
        Ok(size)
    }

    /// The positions of an answer of `n` entries whose proofs are checked; counts
    /// the others as unsampled.
    fn choose(&self, n: usize) -> Vec<usize> {
        let k = match self.sample {
            Sample::All => n,
            Sample::PerAnswer(k) => k.min(n),
        };
        let chosen: Vec<usize> = if k >= n {
            (0..n).collect()
        } else {
            let mut rng = Rng::new(Rng::seed_from_clock() ^ n as u64);
            let mut picks = vec![0, n - 1];
            picks.extend((2..k).map(|_| usize::try_from(rng.below(n as u64)).unwrap_or_default()));
            picks.truncate(k);
            picks
        };
        self.unsampled
            .fetch_add((n - chosen.len()) as u64, Ordering::Relaxed);
        chosen
    }

    /// A random acknowledged leaf (index, leaf hash) for readers.
    pub fn known_leaf(&self) -> Option<(u64, Hash)> {
        let mut state = lock(&self.state);
        let State { leaves, rng, .. } = &mut *state;
        leaves.pick(rng)
    }

    /// A random verified checkpoint (size, root) for consistency readers.
    pub fn known_checkpoint(&self) -> Option<(u64, Hash)> {
        let mut state = lock(&self.state);
        let State {
            checkpoints, rng, ..
        } = &mut *state;
        checkpoints.pick(rng)
    }

    /// How many leaves have been offered to the readers' sample.
    pub fn leaves_seen(&self) -> u64 {
        lock(&self.state).leaves.seen
    }

    /// Checks a fetched inclusion proof of the leaf `leaf` at `index`.
    pub fn inclusion(&self, index: u64, leaf: &Hash, answer: &v1::GetInclusionProofResponse) {
        if let Err(message) = self.check_inclusion(index, leaf, answer) {
            self.fail(message);
        }
    }

    fn check_inclusion(
        &self,
        index: u64,
        leaf: &Hash,
        answer: &v1::GetInclusionProofResponse,
    ) -> Result<(), String> {
        let checkpoint = answer
            .checkpoint
            .as_ref()
            .ok_or("an inclusion proof for the latest tree without its checkpoint")?;
        let (size, root) = self.checkpoint(checkpoint)?;
        if self.verifier.is_none() {
            return Ok(());
        }
        if answer.index != index || answer.tree_size != size {
            return Err(format!(
                "asked index {index} at the latest size, got index {} at size {} with a checkpoint of size {size}",
                answer.index, answer.tree_size
            ));
        }
        let proof = proof_from_wire("proof", &answer.proof).map_err(|e| e.to_string())?;
        merklog_merkle::verify_inclusion(leaf, LeafIndex(index), TreeSize(size), &proof, &root)
            .map_err(|e| format!("fetched inclusion proof of index {index} in size {size}: {e}"))?;
        self.inclusion.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Checks a fetched consistency proof from the verified `(old_size, old_root)`.
    pub fn consistency(
        &self,
        old_size: u64,
        old_root: &Hash,
        answer: &v1::GetConsistencyProofResponse,
    ) {
        if let Err(message) = self.check_consistency(old_size, old_root, answer) {
            self.fail(message);
        }
    }

    fn check_consistency(
        &self,
        old_size: u64,
        old_root: &Hash,
        answer: &v1::GetConsistencyProofResponse,
    ) -> Result<(), String> {
        let checkpoint = answer
            .checkpoint
            .as_ref()
            .ok_or("a consistency proof to the latest tree without its checkpoint")?;
        let (size, root) = self.checkpoint(checkpoint)?;
        if self.verifier.is_none() {
            return Ok(());
        }
        if answer.old_size != old_size || answer.new_size != size {
            return Err(format!(
                "asked {old_size} to the latest size, got {} to {} with a checkpoint of size {size}",
                answer.old_size, answer.new_size
            ));
        }
        let proof = proof_from_wire("proof", &answer.proof).map_err(|e| e.to_string())?;
        merklog_merkle::verify_consistency(
            TreeSize(old_size),
            TreeSize(size),
            &proof,
            old_root,
            &root,
        )
        .map_err(|e| format!("consistency proof from {old_size} to {size}: {e}"))?;
        self.consistency.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use merklog_merkle::CompactRange;
    use merklog_note::{Checkpoint, Ed25519Signer, sign_checkpoint};

    const ORIGIN: &str = "bench.example/verify";

    /// A tiny honest log: entries, their leaf hashes, and signed checkpoints.
    struct Fixture {
        signer: Ed25519Signer,
        leaves: Vec<Hash>,
    }

    impl Fixture {
        fn new(n: usize) -> Self {
            Self {
                signer: Ed25519Signer::from_seed(ORIGIN, &[5u8; 32]).unwrap(),
                leaves: (0..n)
                    .map(|i| hash_leaf(format!("entry {i}").as_bytes()))
                    .collect(),
            }
        }

        fn root(&self, size: usize) -> Hash {
            let mut range = CompactRange::new();
            range.append(&self.leaves[..size], |_, _| {}).unwrap();
            range.root()
        }

        fn checkpoint(&self, size: usize) -> v1::Checkpoint {
            let root = self.root(size);
            let cp = Checkpoint {
                origin: ORIGIN.into(),
                size: size as u64,
                root,
                extensions: vec![],
            };
            v1::Checkpoint {
                note: Bytes::from(sign_checkpoint(&cp, &self.signer).unwrap()),
                size: size as u64,
                root: Bytes::copy_from_slice(root.as_bytes()),
            }
        }

        fn checker(&self, sample: Sample) -> Checker {
            Checker::new(Some(self.signer.verifier()), Some(ORIGIN.into()), sample)
        }
    }

    #[test]
    fn bad_checkpoints_are_caught() {
        let fixture = Fixture::new(8);
        let checker = fixture.checker(Sample::All);
        let good = fixture.checkpoint(5);
        assert_eq!(checker.checkpoint(&good).unwrap().0, 5);
        // A second root for a size already verified.
        let mut forked = good.clone();
        forked.root = Bytes::copy_from_slice(fixture.root(4).as_bytes());
        assert!(
            checker
                .checkpoint(&forked)
                .unwrap_err()
                .contains("two roots")
        );
        // Fields that differ from the signed text, and a note signed by another key.
        let mut lying = fixture.checkpoint(6);
        lying.size = 7;
        assert!(checker.checkpoint(&lying).is_err());
        let other = Fixture {
            signer: Ed25519Signer::from_seed(ORIGIN, &[6u8; 32]).unwrap(),
            leaves: fixture.leaves.clone(),
        };
        assert!(checker.checkpoint(&other.checkpoint(3)).is_err());
        assert_eq!(checker.checked().checkpoints, 1);
    }

    #[test]
    fn append_answers_are_verified_and_bad_proofs_fail() {
        let entries: Vec<Bytes> = (0..8)
            .map(|i| Bytes::from(format!("entry {i}").into_bytes()))
            .collect();
        let fixture = Fixture::new(8);
        let batch =
            merklog_merkle::BatchProofs::new(&CompactRange::new(), &fixture.leaves).unwrap();
        let answer = |tamper: bool| v1::AppendResponse {
            checkpoint: Some(fixture.checkpoint(8)),
            entries: (0..8u64)
                .map(|i| {
                    let mut proof = batch.inclusion_proof(LeafIndex(i)).unwrap();
                    if tamper && i == 3 {
                        let mut bytes = *proof[0].as_bytes();
                        bytes[0] ^= 1;
                        proof[0] = bytes.into();
                    }
                    v1::AppendedEntry {
                        index: i,
                        duplicate: false,
                        inclusion_proof: merklog_proto::convert::proof_to_wire(&proof),
                        tlog_proof: Bytes::new(),
                    }
                })
                .collect(),
        };
        let checker = fixture.checker(Sample::All);
        assert_eq!(checker.append(&entries, &answer(false)), Some(8));
        assert_eq!(checker.checked().acknowledged_entries, 8);
        assert_eq!(checker.checked().failures, 0);
        assert_eq!(checker.append(&entries, &answer(true)), Some(8));
        assert_eq!(checker.checked().failures, 1);
        assert!(checker.failure_messages()[0].contains("index 3"));
        // Wrong entry count, and a sample that checks 2 of 8.
        assert_eq!(checker.append(&entries[..7], &answer(false)), Some(8));
        assert_eq!(checker.checked().failures, 2);
        let sampled = fixture.checker(Sample::PerAnswer(2));
        sampled.append(&entries, &answer(false));
        assert_eq!(sampled.checked().acknowledged_entries, 2);
        assert_eq!(sampled.checked().unsampled_entries, 6);
        // Readers can now pick acknowledged leaves and checkpoints.
        let (index, leaf) = checker.known_leaf().unwrap();
        assert_eq!(fixture.leaves[index as usize], leaf);
        assert_eq!(checker.known_checkpoint().unwrap().0, 8);
    }

    #[test]
    fn fetched_proofs_are_verified() {
        let fixture = Fixture::new(8);
        let checker = fixture.checker(Sample::All);
        let batch =
            merklog_merkle::BatchProofs::new(&CompactRange::new(), &fixture.leaves).unwrap();
        let proof = batch.inclusion_proof(LeafIndex(5)).unwrap();
        let mut answer = v1::GetInclusionProofResponse {
            index: 5,
            tree_size: 8,
            proof: merklog_proto::convert::proof_to_wire(&proof),
            checkpoint: Some(fixture.checkpoint(8)),
        };
        checker.inclusion(5, &fixture.leaves[5], &answer);
        assert_eq!(checker.checked().inclusion_proofs, 1);
        answer.index = 4;
        checker.inclusion(5, &fixture.leaves[5], &answer);
        checker.inclusion(4, &fixture.leaves[4], &answer);
        assert_eq!(checker.checked().failures, 2);

        // Consistency from 3 to 8: build the proof with the plan over known leaves.
        let mut reader = std::collections::HashMap::new();
        CompactRange::new()
            .append(&fixture.leaves, |id, hash| {
                reader.insert(id, *hash);
            })
            .unwrap();
        struct Nodes(std::collections::HashMap<merklog_merkle::NodeId, Hash>);
        impl merklog_merkle::NodeReader for Nodes {
            type Error = std::convert::Infallible;
            fn read_nodes(&self, ids: &[merklog_merkle::NodeId]) -> Result<Vec<Hash>, Self::Error> {
                Ok(ids.iter().map(|id| self.0[id]).collect())
            }
        }
        let nodes = Nodes(reader);
        let proof = merklog_merkle::consistency_proof(&nodes, TreeSize(3), TreeSize(8)).unwrap();
        let answer = v1::GetConsistencyProofResponse {
            old_size: 3,
            new_size: 8,
            proof: merklog_proto::convert::proof_to_wire(&proof),
            checkpoint: Some(fixture.checkpoint(8)),
        };
        checker.consistency(3, &fixture.root(3), &answer);
        assert_eq!(checker.checked().consistency_proofs, 1);
        checker.consistency(3, &fixture.root(2), &answer);
        assert_eq!(checker.checked().failures, 3);
    }

    #[test]
    fn without_a_key_only_shapes_are_checked() {
        let checker = Checker::new(None, None, Sample::All);
        let answer = v1::AppendResponse {
            checkpoint: Some(v1::Checkpoint {
                note: Bytes::from_static(b"filler"),
                size: 1,
                root: Bytes::from(vec![0u8; 32]),
            }),
            entries: vec![v1::AppendedEntry::default()],
        };
        assert_eq!(
            checker.append(&[Bytes::from_static(b"x")], &answer),
            Some(1)
        );
        assert_eq!(checker.append(&[], &answer), Some(1));
        assert_eq!(checker.checked().failures, 1);
        assert!(!checker.verifies());
    }
}
