//! The witness stage over the in-memory store, with in-process fake witnesses that
//! behave like C2SP tlog-witness (main, or v1.0.0 for same-size conflicts): they check
//! the log's signature, the old size (409 with their size), the consistency proof
//! (422), and cosign with a real `CosignatureSigner`. They can be told to answer
//! every request with one refusal (a frozen log's 422, a 403, a 503).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_log::{
    ALGORITHM_ED25519, AppendReceipt, Hash, Log, LogConfig, LogError, LogMetadata, LogStore,
    MemoryStore, WitnessClient, WitnessReply, WitnessRequest, Witnessing,
};
use merklog_merkle::{
    LeafIndex, TreeSize, empty_root, hash_leaf, verify_consistency, verify_inclusion,
};
use merklog_note::{
    CosignatureSigner, Ed25519Signer, Ed25519Verifier, Note, Policy, open_checkpoint,
};

const ORIGIN: &str = "example.com/witnessed-log";

fn signer() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_seed(ORIGIN, &[9u8; 32]).unwrap())
}

fn new_store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(LogMetadata {
        origin: ORIGIN.into(),
        verifier_key: signer().verifier().to_vkey(),
        algorithm: ALGORITHM_ED25519.into(),
    }))
}

#[derive(Debug)]
struct FakeState {
    size: u64,
    root: Hash,
    down: bool,
    /// Answer a same-size, different-root checkpoint with 409 (v1.0.0) instead of 422.
    v1_conflicts: bool,
    /// Answer with a cosignature made by another key.
    bad_signature: bool,
    /// Answer every validly signed request with this status and body.
    forced: Option<(u16, String)>,
    /// (old size, checkpoint size) of every request that reached it.
    requests: Vec<(u64, u64)>,
}

#[derive(Debug)]
struct FakeWitness {
    cosigner: CosignatureSigner,
    impostor: CosignatureSigner,
    log_key: Ed25519Verifier,
    state: Mutex<FakeState>,
}

impl FakeWitness {
    fn new(name: &str, seed: u8) -> Arc<Self> {
        Arc::new(Self {
            cosigner: CosignatureSigner::from_seed(name, &[seed; 32]).unwrap(),
            impostor: CosignatureSigner::from_seed(name, &[seed ^ 0xff; 32]).unwrap(),
            log_key: signer().verifier(),
            state: Mutex::new(FakeState {
                size: 0,
                root: empty_root(),
                down: false,
                v1_conflicts: false,
                bad_signature: false,
                forced: None,
                requests: Vec::new(),
            }),
        })
    }

    fn vkey(&self) -> String {
        self.cosigner.verifier().to_vkey()
    }

    fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    fn preset(&self, size: u64, root: Hash) {
        let mut state = self.state.lock().unwrap();
        state.size = size;
        state.root = root;
    }

    fn force(&self, answer: Option<(u16, &str)>) {
        self.state.lock().unwrap().forced = answer.map(|(status, body)| (status, body.to_owned()));
    }

    /// Answers as merklog-witness does for a log it froze after seeing a fork.
    fn freeze(&self) {
        self.force(Some((
            422,
            &format!("log {ORIGIN:?} is frozen after a detected fork: fork at size 2\n"),
        )));
    }

    fn requests(&self) -> Vec<(u64, u64)> {
        self.state.lock().unwrap().requests.clone()
    }

    fn handle(&self, request: WitnessRequest) -> WitnessReply {
        let mut state = self.state.lock().unwrap();
        if state.down {
            return WitnessReply::Unreachable("connection refused".into());
        }
        let Ok((body, note)) = open_checkpoint(&request.checkpoint, &self.log_key, Some(ORIGIN))
        else {
            return rejected(403, "no valid log signature");
        };
        state.requests.push((request.old_size, body.size));
        if let Some((status, body)) = &state.forced {
            return rejected(*status, body);
        }
        let old = request.old_size;
        if old > body.size {
            return rejected(400, "old size is larger than the checkpoint");
        }
        if old != state.size {
            return WitnessReply::SizeConflict(state.size);
        }
        if old == body.size {
            if !request.consistency_proof.is_empty() {
                return rejected(422, "non-empty proof for the same size");
            }
            if body.root != state.root {
                return if state.v1_conflicts {
                    WitnessReply::SizeConflict(state.size)
                } else {
                    rejected(422, "same size, different root")
                };
            }
        } else if old == 0 {
            if !request.consistency_proof.is_empty() {
                return rejected(422, "non-empty proof with old 0");
            }
        } else if verify_consistency(
            TreeSize(old),
            TreeSize(body.size),
            &request.consistency_proof,
            &state.root,
            &body.root,
        )
        .is_err()
        {
            return rejected(422, "consistency proof does not verify");
        }
        state.size = body.size;
        state.root = body.root;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let key = if state.bad_signature {
            &self.impostor
        } else {
            &self.cosigner
        };
        let line = key.cosign(note.text(), now).unwrap().to_line();
        WitnessReply::Cosigned(line.into_bytes())
    }
}

fn rejected(status: u16, body: &str) -> WitnessReply {
    WitnessReply::Rejected {
        status,
        body: body.into(),
    }
}

/// A client handle on a fake witness (the fake stays inspectable by the test).
#[derive(Debug)]
struct Client {
    name: String,
    witness: Arc<FakeWitness>,
}

impl WitnessClient for Client {
    fn name(&self) -> &str {
        &self.name
    }

    fn add_checkpoint(
        &self,
        request: WitnessRequest,
    ) -> Pin<Box<dyn Future<Output = WitnessReply> + Send + '_>> {
        Box::pin(async move { self.witness.handle(request) })
    }
}

struct Setup {
    w1: Arc<FakeWitness>,
    w2: Arc<FakeWitness>,
    policy: Policy,
}

/// Two witnesses, quorum: both of them.
fn setup() -> Setup {
    let w1 = FakeWitness::new("witness-1", 1);
    let w2 = FakeWitness::new("witness-2", 2);
    let policy = Policy::parse(&format!(
        "log {}\nwitness witness-1 {} https://w1.example\nwitness witness-2 {} \
         https://w2.example\ngroup both 2 witness-1 witness-2\nquorum both\n",
        signer().verifier().to_vkey(),
        w1.vkey(),
        w2.vkey()
    ))
    .unwrap();
    Setup { w1, w2, policy }
}

impl Setup {
    fn witnessing(&self) -> Witnessing {
        let clients: Vec<Arc<dyn WitnessClient>> = vec![
            Arc::new(Client {
                name: "witness-1".into(),
                witness: self.w1.clone(),
            }),
            Arc::new(Client {
                name: "witness-2".into(),
                witness: self.w2.clone(),
            }),
        ];
        Witnessing {
            request_timeout: Duration::from_secs(2),
            ..Witnessing::new(self.policy.clone(), clients)
        }
    }

    fn open(&self, store: &Arc<MemoryStore>, tweak: impl FnOnce(&mut LogConfig)) -> Log {
        let mut config = LogConfig {
            witnessing: Some(self.witnessing()),
            append_timeout: Duration::from_secs(5),
            ..LogConfig::default()
        };
        tweak(&mut config);
        Log::open(store.clone(), signer(), ORIGIN.into(), config).unwrap()
    }
}

fn entry(i: u64) -> Bytes {
    Bytes::from(format!("witnessed entry {i}"))
}

/// Waits (bounded) until `done` holds.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every proof of `receipt` verifies against its checkpoint, and the checkpoint
/// satisfies the policy with both witnesses.
fn check_receipt(policy: &Policy, receipt: &AppendReceipt, entries: &[Bytes]) {
    let verified = policy.verify_checkpoint(receipt.checkpoint.note()).unwrap();
    assert_eq!(verified.cosigners(), ["witness-1", "witness-2"]);
    assert_eq!(verified.checkpoint().size, receipt.checkpoint.size().0);
    check_proofs(receipt, entries);
}

fn check_proofs(receipt: &AppendReceipt, entries: &[Bytes]) {
    for (sealed, entry) in receipt.entries.iter().zip(entries) {
        verify_inclusion(
            &hash_leaf(entry),
            sealed.index,
            receipt.checkpoint.size(),
            &sealed.inclusion_proof,
            &receipt.checkpoint.root(),
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_of_two_publishes_with_both_cosignatures() {
    let s = setup();
    let store = new_store();
    let log = s.open(&store, |_| {});
    let mut calls = Vec::new();
    for call in 0..8u64 {
        let log = log.clone();
        calls.push(tokio::spawn(async move {
            let entries: Vec<Bytes> = (0..5).map(|i| entry(call * 5 + i)).collect();
            (log.append(entries.clone()).await.unwrap(), entries)
        }));
    }
    for call in calls {
        let (receipt, entries) = call.await.unwrap();
        check_receipt(&s.policy, &receipt, &entries);
    }
    assert_eq!(log.durable_size().0, 40);
    wait_until("everything is published", || log.latest().size().0 == 40).await;
    let latest = log.latest();
    s.policy.verify_checkpoint(latest.note()).unwrap();
    // The cosigned note is stored (synced) as the published record and under its size.
    assert_eq!(
        store.published_checkpoint().unwrap().as_deref(),
        Some(&latest.note()[..])
    );
    assert_eq!(
        log.checkpoint_at(TreeSize(40))
            .await
            .unwrap()
            .as_ref()
            .map(|c| &c.note()[..]),
        Some(&latest.note()[..])
    );
    // The sequencer's "latest" stays the log's own note (the body is the same).
    let plain = store.latest_checkpoint().unwrap().unwrap();
    assert_eq!(Note::parse(&plain).unwrap().signatures().len(), 1);
    assert!(merklog_log::same_checkpoint_body(&plain, latest.note()));
    // A restart publishes the stored cosigned checkpoint at once.
    log.shutdown().await;
    let reopened = s.open(&store, |_| {});
    let republished = reopened.latest();
    assert_eq!(republished.size().0, 40);
    assert!(merklog_log::same_checkpoint_body(
        republished.note(),
        latest.note()
    ));
    s.policy.verify_checkpoint(republished.note()).unwrap();
    reopened.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_down_stops_publication_and_nothing_is_lost() {
    let s = setup();
    let store = new_store();
    let log = s.open(&store, |c| c.append_timeout = Duration::from_millis(400));
    let first = vec![entry(1), entry(2)];
    check_receipt(&s.policy, &log.append(first.clone()).await.unwrap(), &first);
    let published = log.latest().size().0;

    // Fail closed: durable, not published, the caller gets the clear error.
    s.w2.set_down(true);
    let lost = vec![entry(3)];
    let error = log.append(lost.clone()).await.unwrap_err();
    assert!(matches!(error, LogError::QuorumTimeout(_)), "{error:?}");
    assert!(error.to_string().contains("waiting for witness quorum"));
    assert_eq!(log.durable_size().0, published + 1);
    assert_eq!(log.latest().size().0, published);
    assert!(
        log.inclusion_proof(LeafIndex(0), TreeSize(published + 1))
            .await
            .is_err()
    );

    // Witness back: the next checkpoint is cosigned and published; nothing was lost.
    s.w2.set_down(false);
    let more = vec![entry(4)];
    let receipt = log.append(more.clone()).await.unwrap();
    check_receipt(&s.policy, &receipt, &more);
    assert_eq!(receipt.checkpoint.size().0, published + 2);
    let retry = log.append(lost.clone()).await.unwrap();
    assert!(retry.entries[0].duplicate);
    assert_eq!(retry.entries[0].index.0, published);
    check_receipt(&s.policy, &retry, &lost);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_caller_is_answered_with_a_later_checkpoint() {
    let s = setup();
    let store = new_store();
    let log = s.open(&store, |_| {});
    wait_until("the start-up check is done", || {
        !s.w2.requests().is_empty() && !s.w1.requests().is_empty()
    })
    .await;
    s.w2.set_down(true);
    let early = vec![entry(10), entry(11)];
    let early_call = {
        let (log, early) = (log.clone(), early.clone());
        tokio::spawn(async move { log.append(early).await })
    };
    wait_until("the first call is durable", || log.durable_size().0 == 2).await;
    let late = vec![entry(12)];
    let late_call = {
        let (log, late) = (log.clone(), late.clone());
        tokio::spawn(async move { log.append(late).await })
    };
    wait_until("the second call is durable", || log.durable_size().0 == 3).await;
    assert_eq!(log.latest().size().0, 0);
    s.w2.set_down(false);
    let early_receipt = early_call.await.unwrap().unwrap();
    let late_receipt = late_call.await.unwrap().unwrap();
    // Both answered with the first published checkpoint covering them (size 3): the
    // first call's proofs were rebuilt from storage against that size.
    assert_eq!(early_receipt.checkpoint.size().0, 3);
    assert_eq!(late_receipt.checkpoint.size().0, 3);
    check_receipt(&s.policy, &early_receipt, &early);
    check_receipt(&s.policy, &late_receipt, &late);
    log.shutdown().await;
}

/// A log of 10 entries built without a policy; returns the root at size 5.
async fn log_of_ten(store: &Arc<MemoryStore>) -> Hash {
    let log = Log::open(store.clone(), signer(), ORIGIN.into(), LogConfig::default()).unwrap();
    let five = log
        .append((0..5).map(entry).collect())
        .await
        .unwrap()
        .checkpoint
        .root();
    log.append((5..10).map(entry).collect()).await.unwrap();
    log.shutdown().await;
    five
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_teaches_the_witness_size_and_the_log_retries_once_from_it() {
    let s = setup();
    let store = new_store();
    let root_at_five = log_of_ten(&store).await;
    s.w1.preset(5, root_at_five);
    let log = s.open(&store, |_| {});
    wait_until("the start-up checkpoint is cosigned", || {
        s.policy.verify_checkpoint(log.latest().note()).is_ok()
    })
    .await;
    assert_eq!(log.latest().size().0, 10);
    // Old 0 revealed size 5; the retry came with old 5 and a proof 5 -> 10.
    assert_eq!(s.w1.requests(), [(0, 10), (5, 10)]);
    assert_eq!(s.w2.requests(), [(0, 10)]);
    // Later checkpoints go straight from the learnt size.
    let more = vec![entry(10)];
    check_receipt(&s.policy, &log.append(more.clone()).await.unwrap(), &more);
    assert_eq!(s.w1.requests().last(), Some(&(10, 11)));
    log.shutdown().await;
}

/// The witness holds another root at the log's size: fork evidence (C2SP tlog-witness
/// answers it with this 409). No retry, and since the quorum needs that witness the
/// log refuses to sign at once instead of letting appends wait for a quorum that
/// cannot come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_with_the_size_just_sent_is_a_conflict_not_a_retry() {
    let s = setup();
    let store = new_store();
    log_of_ten(&store).await;
    // A v1.0.0 witness holding another root at the log's size.
    s.w1.preset(10, [0xab; 32].into());
    s.w1.state.lock().unwrap().v1_conflicts = true;
    let log = s.open(&store, |c| c.append_timeout = Duration::from_millis(300));
    wait_until("both witnesses answered", || {
        s.w1.requests().len() >= 2 && !s.w2.requests().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One learning 409 (old 0), then the same-size 409: no further retries.
    assert_eq!(s.w1.requests(), [(0, 10), (10, 10)]);
    let reason = log.signing_refused().expect("refusing to sign");
    assert!(
        reason.contains("witness-1") && reason.contains("409"),
        "{reason}"
    );
    // Without witness-1's cosignature nothing new meets the quorum: said at once.
    let error = log.append(vec![entry(99)]).await.unwrap_err();
    assert!(matches!(error, LogError::SigningRefused(_)), "{error:?}");
    assert_eq!(log.durable_size().0, 10);
    assert!(s.policy.verify_checkpoint(log.latest().note()).is_err());
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_ahead_of_the_log_at_start_up_makes_it_refuse_to_sign() {
    let s = setup();
    let store = new_store();
    log_of_ten(&store).await;
    // The witness cosigned size 20: this data directory is an old copy.
    s.w1.preset(20, [0xcd; 32].into());
    let log = s.open(&store, |_| {});
    wait_until("signing is refused", || log.signing_refused().is_some()).await;
    let reason = log.signing_refused().unwrap();
    assert!(reason.contains("witness-1"), "{reason}");
    assert!(reason.contains("20") && reason.contains("10"), "{reason}");
    assert!(matches!(log.health(), Err(LogError::SigningRefused(_))));
    let error = log.append(vec![entry(100)]).await.unwrap_err();
    assert!(matches!(error, LogError::SigningRefused(_)), "{error:?}");
    // Nothing new was signed.
    assert_eq!(log.durable_size().0, 10);
    assert_eq!(store.checkpoint(11).unwrap(), None);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_publishes_without_quorum_after_the_timeout() {
    let s = setup();
    let store = new_store();
    s.w2.set_down(true);
    let log = s.open(&store, |c| {
        if let Some(w) = &mut c.witnessing {
            w.fail_open_after = Some(Duration::from_millis(200));
        }
    });
    let entries = vec![entry(1), entry(2), entry(3)];
    let receipt = log.append(entries.clone()).await.unwrap();
    assert_eq!(receipt.checkpoint.size().0, 3);
    check_proofs(&receipt, &entries);
    // Published without the quorum: the log's signature (and witness-1's) only.
    let error = s.policy.verify_checkpoint(receipt.checkpoint.note());
    assert!(error.is_err());
    open_checkpoint(
        receipt.checkpoint.note(),
        &signer().verifier(),
        Some(ORIGIN),
    )
    .unwrap();
    assert_eq!(log.latest().size().0, 3);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_before_the_quorum_the_durable_checkpoint_is_published_first() {
    let s = setup();
    let store = new_store();
    let log = s.open(&store, |c| c.append_timeout = Duration::from_millis(200));
    wait_until("the start-up check cosigned size 0", || {
        s.policy.verify_checkpoint(log.latest().note()).is_ok()
    })
    .await;
    s.w2.set_down(true);
    let entries = vec![entry(1), entry(2)];
    assert!(log.append(entries.clone()).await.is_err());
    assert_eq!((log.durable_size().0, log.latest().size().0), (2, 0));
    log.shutdown().await;

    // The witness stays down across the restart, so that nothing can be cosigned
    // before the first look.
    let log = s.open(&store, |_| {});
    // Nothing unwitnessed is public after the restart...
    assert_eq!(log.latest().size().0, 0);
    s.w2.set_down(false);
    // ...and the durable checkpoint is cosigned and published before any new round.
    wait_until("the durable checkpoint is published", || {
        log.latest().size().0 == 2
    })
    .await;
    s.policy.verify_checkpoint(log.latest().note()).unwrap();
    let retry = log.append(entries.clone()).await.unwrap();
    assert!(retry.entries.iter().all(|e| e.duplicate));
    check_receipt(&s.policy, &retry, &entries);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_resend_refreshes_the_cosignatures() {
    let s = setup();
    let store = new_store();
    let log = s.open(&store, |c| {
        if let Some(w) = &mut c.witnessing {
            w.resend_interval = Duration::from_millis(100);
        }
    });
    let entries = vec![entry(1)];
    let receipt = log.append(entries.clone()).await.unwrap();
    check_receipt(&s.policy, &receipt, &entries);
    wait_until("the checkpoint is re-sent with old N = N", || {
        s.w1.requests().contains(&(1, 1)) && s.w2.requests().contains(&(1, 1))
    })
    .await;
    let latest = log.latest();
    assert_eq!(latest.size().0, 1);
    s.policy.verify_checkpoint(latest.note()).unwrap();
    // Still one cosignature per witness (newer replaced older).
    assert_eq!(Note::parse(latest.note()).unwrap().signatures().len(), 3);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cosignature_does_not_count() {
    let s = setup();
    let store = new_store();
    let log = s.open(&store, |c| c.append_timeout = Duration::from_millis(300));
    wait_until("the start-up check is done", || {
        !s.w1.requests().is_empty() && !s.w2.requests().is_empty()
    })
    .await;
    s.w2.state.lock().unwrap().bad_signature = true;
    let error = log.append(vec![entry(7)]).await.unwrap_err();
    assert!(matches!(error, LogError::QuorumTimeout(_)), "{error:?}");
    assert_eq!(log.latest().size().0, 0);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_witness_the_quorum_needs_stops_the_log_until_it_cosigns_again() {
    let s = setup();
    let store = new_store();
    // The append timeout is long: an append that waited for the quorum would fail
    // with QuorumTimeout, not SigningRefused.
    let log = s.open(&store, |c| {
        c.append_timeout = Duration::from_secs(30);
        if let Some(w) = &mut c.witnessing {
            w.resend_interval = Duration::from_millis(100);
        }
    });
    let first = vec![entry(1), entry(2)];
    check_receipt(&s.policy, &log.append(first.clone()).await.unwrap(), &first);
    assert!(log.signing_refused().is_none());

    s.w1.freeze();
    let stranded = vec![entry(3)];
    let error = log.append(stranded.clone()).await.unwrap_err();
    let LogError::SigningRefused(reason) = &error else {
        panic!("expected SigningRefused, got {error:?}");
    };
    assert!(
        reason.contains("witness-1") && reason.contains("422") && reason.contains("frozen"),
        "the error names the witness and its answer: {reason}"
    );
    assert!(!reason.contains("witness-2"), "{reason}");
    assert!(matches!(log.health(), Err(LogError::SigningRefused(_))));
    // The entry is durable; nothing was published without the quorum.
    assert_eq!(log.durable_size().0, 3);
    assert_eq!(log.latest().size().0, 2);
    // Later appends fail before anything is signed.
    let error = log.append(vec![entry(4)]).await.unwrap_err();
    assert!(matches!(error, LogError::SigningRefused(_)), "{error:?}");
    assert_eq!(log.durable_size().0, 3);

    // The operator unfreezes the witness: the idle re-send reaches it, it cosigns,
    // the refusal clears and the stranded entry is published.
    let asked = s.w1.requests().len();
    s.w1.force(None);
    wait_until("the refusal clears", || log.signing_refused().is_none()).await;
    assert!(s.w1.requests().len() > asked);
    wait_until("the durable entry is published", || {
        log.latest().size().0 == 3
    })
    .await;
    let retry = log.append(stranded.clone()).await.unwrap();
    assert!(retry.entries[0].duplicate);
    assert_eq!(retry.entries[0].index.0, 2);
    check_receipt(&s.policy, &retry, &stranded);
    let more = vec![entry(5)];
    check_receipt(&s.policy, &log.append(more.clone()).await.unwrap(), &more);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_repeating_a_403_is_refusing_after_the_limit() {
    let s = setup();
    let store = new_store();
    let log = s.open(&store, |c| c.append_timeout = Duration::from_secs(30));
    let first = vec![entry(1)];
    check_receipt(&s.policy, &log.append(first.clone()).await.unwrap(), &first);
    let before = s.w2.requests().len();

    s.w2.force(Some((
        403,
        "checkpoint is not validly signed by a trusted key",
    )));
    let error = log.append(vec![entry(2)]).await.unwrap_err();
    let LogError::SigningRefused(reason) = &error else {
        panic!("expected SigningRefused, got {error:?}");
    };
    assert!(
        reason.contains("witness-2") && reason.contains("403") && reason.contains("trusted key"),
        "{reason}"
    );
    // Exactly `refusal_limit` requests in a row were refused, then no more retries.
    let limit = merklog_log::DEFAULT_WITNESS_REFUSAL_LIMIT as usize;
    assert_eq!(s.w2.requests().len() - before, limit);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.w2.requests().len() - before, limit);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_answering_503_is_an_outage_not_a_refusal() {
    let s = setup();
    let store = new_store();
    let log = s.open(&store, |c| c.append_timeout = Duration::from_millis(800));
    let first = vec![entry(1)];
    check_receipt(&s.policy, &log.append(first.clone()).await.unwrap(), &first);
    let before = s.w2.requests().len();

    s.w2.force(Some((503, "log disabled after a storage failure")));
    let error = log.append(vec![entry(2)]).await.unwrap_err();
    assert!(matches!(error, LogError::QuorumTimeout(_)), "{error:?}");
    assert!(log.signing_refused().is_none());
    // Retried past the refusal limit all along.
    let limit = merklog_log::DEFAULT_WITNESS_REFUSAL_LIMIT as usize;
    assert!(s.w2.requests().len() - before > limit);
    s.w2.force(None);
    let more = vec![entry(3)];
    check_receipt(&s.policy, &log.append(more.clone()).await.unwrap(), &more);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_witness_the_quorum_does_not_need_does_not_stop_the_log() {
    let w1 = FakeWitness::new("witness-1", 1);
    let w2 = FakeWitness::new("witness-2", 2);
    let w3 = FakeWitness::new("witness-3", 3);
    let policy = Policy::parse(&format!(
        "log {}
witness witness-1 {} https://w1.example
witness witness-2 {} \
         https://w2.example
witness witness-3 {} https://w3.example
\
         group two 2 witness-1 witness-2 witness-3
quorum two
",
        signer().verifier().to_vkey(),
        w1.vkey(),
        w2.vkey(),
        w3.vkey()
    ))
    .unwrap();
    let clients: Vec<Arc<dyn WitnessClient>> =
        [("witness-1", &w1), ("witness-2", &w2), ("witness-3", &w3)]
            .into_iter()
            .map(|(name, witness)| {
                Arc::new(Client {
                    name: name.into(),
                    witness: witness.clone(),
                }) as Arc<dyn WitnessClient>
            })
            .collect();
    let config = LogConfig {
        witnessing: Some(Witnessing::new(policy.clone(), clients)),
        append_timeout: Duration::from_secs(30),
        ..LogConfig::default()
    };
    let log = Log::open(new_store(), signer(), ORIGIN.into(), config).unwrap();
    w3.freeze();
    for i in 0..3 {
        let entries = vec![entry(i)];
        let receipt = log.append(entries.clone()).await.unwrap();
        let verified = policy.verify_checkpoint(receipt.checkpoint.note()).unwrap();
        assert!(!verified.cosigners().iter().any(|c| c == "witness-3"));
        check_proofs(&receipt, &entries);
    }
    assert!(log.signing_refused().is_none());
    assert!(!w3.requests().is_empty());

    // A second refusing witness leaves no quorum: now the log refuses.
    w2.freeze();
    let error = log.append(vec![entry(10)]).await.unwrap_err();
    let LogError::SigningRefused(reason) = &error else {
        panic!("expected SigningRefused, got {error:?}");
    };
    assert!(
        reason.contains("witness-2") && reason.contains("witness-3"),
        "{reason}"
    );
    assert!(!reason.contains("witness-1"), "{reason}");
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_outside_the_policy_is_refused_at_open() {
    let s = setup();
    let mut witnessing = s.witnessing();
    witnessing.witnesses.push(Arc::new(Client {
        name: "stranger".into(),
        witness: s.w1.clone(),
    }));
    let config = LogConfig {
        witnessing: Some(witnessing),
        ..LogConfig::default()
    };
    let error = Log::open(new_store(), signer(), ORIGIN.into(), config).unwrap_err();
    assert!(matches!(error, LogError::InvalidConfig(m) if m.contains("stranger")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_none_publishes_without_waiting_for_witnesses() {
    let s = setup();
    s.w1.set_down(true);
    s.w2.set_down(true);
    let policy = Policy::parse(&format!(
        "log {}\nwitness witness-1 {}\nwitness witness-2 {}\nquorum none\n",
        signer().verifier().to_vkey(),
        s.w1.vkey(),
        s.w2.vkey()
    ))
    .unwrap();
    let s = Setup { policy, ..s };
    let log = s.open(&new_store(), |_| {});
    let entries = vec![entry(1)];
    let receipt = log.append(entries.clone()).await.unwrap();
    check_proofs(&receipt, &entries);
    assert_eq!(log.latest().size().0, 1);
    log.shutdown().await;
}

#[test]
fn the_store_keeps_only_cosigned_versions_of_stored_checkpoints() {
    let store = new_store();
    let log_note = |size: u64, root: Hash| {
        let body = merklog_note::Checkpoint {
            origin: ORIGIN.into(),
            size,
            root,
            extensions: Vec::new(),
        };
        merklog_note::sign_checkpoint(&body, &*signer()).unwrap()
    };
    let note = log_note(1, [1; 32].into());
    // Nothing stored for size 1 yet.
    assert!(store.store_cosigned_checkpoint(1, &note).is_err());
    store
        .commit(&merklog_log::RoundWrite {
            checkpoint: Some((1, note.clone())),
            ..Default::default()
        })
        .unwrap();
    // Another root for the same size is refused.
    assert!(
        store
            .store_cosigned_checkpoint(1, &log_note(1, [2; 32].into()))
            .is_err()
    );
    let w1 = CosignatureSigner::from_seed("witness-1", &[1; 32]).unwrap();
    let mut cosigned = Note::parse(&note).unwrap();
    cosigned
        .add_signature(w1.cosign(cosigned.text(), 1).unwrap())
        .unwrap();
    let cosigned = cosigned.to_bytes();
    store.store_cosigned_checkpoint(1, &cosigned).unwrap();
    assert_eq!(store.checkpoint(1).unwrap(), Some(cosigned.clone()));
    assert_eq!(store.published_checkpoint().unwrap(), Some(cosigned));
    // "latest" stays the sequencer's own note.
    assert_eq!(store.latest_checkpoint().unwrap(), Some(note));
}

/// A cluster standby's log: the start-up check is deferred until `lead`, and then runs
/// from what the store holds at that moment (another node grew it meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_start_up_check_runs_at_lead_from_the_followed_checkpoint() {
    let s = setup();
    let store = new_store();
    log_of_ten(&store).await;
    let standby = s.open(&store, |c| {
        if let Some(w) = &mut c.witnessing {
            w.deferred = true;
        }
    });
    standby.set_standby(Some("a standby".into()));
    assert_eq!(standby.latest().size().0, 0);
    // The leader (another node, here a second log on the same store) grows the tree.
    let leader = Log::open(store.clone(), signer(), ORIGIN.into(), LogConfig::default()).unwrap();
    leader.append((10..15).map(entry).collect()).await.unwrap();
    leader.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.w1.requests(), [], "a dormant check sends nothing");
    assert_eq!(s.w2.requests(), []);
    assert_eq!(standby.follow().unwrap(), Some(TreeSize(15)));
    assert_eq!(standby.durable_size().0, 15);
    // Nothing cosigned is recorded: the standby publishes the empty tree, not a
    // checkpoint the witnesses have not cosigned.
    assert_eq!(standby.latest().size().0, 0);
    standby.lead().unwrap();
    standby.set_standby(None);
    let entries = vec![entry(100)];
    let receipt = standby.append(entries.clone()).await.unwrap();
    check_receipt(&s.policy, &receipt, &entries);
    assert_eq!(receipt.checkpoint.size().0, 16);
    // The first request asked with `old 0` for the followed size, not the opened one.
    assert_eq!(s.w1.requests().first(), Some(&(0, 15)));
    assert_eq!(s.w2.requests().first(), Some(&(0, 15)));
    // A second `lead` changes nothing.
    standby.lead().unwrap();
    let receipt = standby.append(vec![entry(101)]).await.unwrap();
    assert_eq!(receipt.checkpoint.size().0, 17);
    standby.shutdown().await;
}

/// The restore guard at a take-over: the store a new leader signs on is behind what a
/// witness cosigned (a lock or bucket restored from an old copy), so it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_check_refuses_to_lead_from_a_store_behind_a_witness() {
    let s = setup();
    let store = new_store();
    log_of_ten(&store).await;
    s.w2.preset(20, [0xab; 32].into());
    let log = s.open(&store, |c| {
        if let Some(w) = &mut c.witnessing {
            w.deferred = true;
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        log.signing_refused(),
        None,
        "nothing is checked before lead"
    );
    log.lead().unwrap();
    wait_until("signing is refused", || log.signing_refused().is_some()).await;
    let reason = log.signing_refused().unwrap();
    assert!(
        reason.contains("witness-2 has cosigned tree size 20"),
        "{reason}"
    );
    let error = log.append(vec![entry(100)]).await.unwrap_err();
    assert!(matches!(error, LogError::SigningRefused(_)), "{error:?}");
    assert_eq!(store.checkpoint(11).unwrap(), None);
    log.shutdown().await;
}
