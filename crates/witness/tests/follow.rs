//! Pull mode: a witness following a log over gRPC by itself. A real merklogd runs
//! in this process for the honest case (merklog-testkit's); a small fake
//! `merklog.v1.Log` serves forks, bad proofs and a log without `WatchCheckpoints`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{TestLog, TestWitness, start_witness_with};
use futures::Stream;
use merklog_note::{Checkpoint, Note, Verifiers, parse_verifier_key};
use merklog_proto::convert::{checkpoint_to_wire, proof_to_wire};
use merklog_proto::v1::{self, log_client::LogClient, log_server::LogServer};
use merklog_server::ServerConfig;
use merklog_testkit::{TestServer, test_config};
use merklog_witness::{FollowConfig, WitnessConfig, origin_hash_hex};
use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

/// Every wait in this file gives up after this long.
const WAIT: Duration = Duration::from_secs(20);
const FAST_POLL: Duration = Duration::from_millis(50);

/// Waits (bounded) until the witness has cosigned `size` for `origin`.
async fn wait_for_size(witness: &TestWitness, origin: &str, size: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stored = witness.witness.cosigned_size(origin).await.unwrap();
        if stored == size {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the witness cosigned size {stored}, expected {size}; metrics: {:?}",
            common::follow_counts(&witness.witness, origin)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until `condition` holds.
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The witness's latest cosigned checkpoint of `origin`: checks the log signature
/// with `log_vkey` and the witness cosignature with the witness's verifier, and
/// returns the checkpoint.
fn verified_cosigned(witness: &TestWitness, origin: &str, log_vkey: &str) -> Checkpoint {
    let stored = witness
        .witness
        .latest_checkpoint(&origin_hash_hex(origin))
        .expect("a cosigned checkpoint");
    let note = Note::parse(&stored).unwrap();
    let log_verifiers = Verifiers::single(parse_verifier_key(log_vkey).unwrap());
    note.verify(&log_verifiers).unwrap();
    let verifier = witness.verifier();
    let cosignature = note
        .signatures()
        .iter()
        .find(|s| s.name() == merklog_note::Verifier::name(&verifier))
        .expect("a witness cosignature");
    let time = verifier
        .verify_cosignature(note.text(), cosignature)
        .unwrap();
    assert!(time > 0);
    Checkpoint::from_text(note.text()).unwrap()
}

fn follow_config(origin: &str, vkey: &str, url: &str) -> FollowConfig {
    let mut follow = FollowConfig::new(origin, vkey, url);
    follow.poll_interval = FAST_POLL;
    follow
}

// ---------------------------------------------------------------------------
// A real merklogd in this process.

const REAL_ORIGIN: &str = "witness-follow-test.example/log";

/// merklog-testkit's in-process merklogd with origin [`REAL_ORIGIN`].
struct RealLog(TestServer);

impl Deref for RealLog {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.0
    }
}

/// The test configuration on `data_dir` with origin [`REAL_ORIGIN`].
fn real_config(data_dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        origin: Some(REAL_ORIGIN.to_owned()),
        ..test_config(data_dir)
    }
}

impl RealLog {
    async fn start(data_dir: &std::path::Path) -> RealLog {
        RealLog(TestServer::start_with(real_config(data_dir)).await)
    }

    /// Appends entries; returns the size of the checkpoint in the answer.
    async fn append(
        &self,
        client: &mut LogClient<tonic::transport::Channel>,
        n: u64,
        tag: &str,
    ) -> u64 {
        let entries = (0..n).map(|i| Bytes::from(format!("{tag} {i}"))).collect();
        let answer = client
            .append(v1::AppendRequest {
                entries,
                include_tlog_proof: false,
            })
            .await
            .unwrap()
            .into_inner();
        answer.checkpoint.unwrap().size
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosigns_a_real_log_as_it_grows() {
    let tmp = tempfile::tempdir().unwrap();
    let log = RealLog::start(&tmp.path().join("log")).await;
    let mut config = WitnessConfig::new(tmp.path().join("witness"), Vec::new());
    // The default poll interval: the stream, not polling, must deliver checkpoints.
    config.follow = vec![FollowConfig::new(REAL_ORIGIN, &log.vkey, &log.url())];
    let witness = start_witness_with(config).await;

    let mut client = LogClient::connect(log.url()).await.unwrap();
    let size = log.append(&mut client, 3, "first").await;
    assert_eq!(size, 3);
    wait_for_size(&witness, REAL_ORIGIN, 3).await;
    let cosigned = verified_cosigned(&witness, REAL_ORIGIN, &log.vkey);
    assert_eq!(cosigned.size, 3);

    // Growing again needs a consistency proof 3 -> 10 fetched by the witness.
    let size = log.append(&mut client, 7, "second").await;
    assert_eq!(size, 10);
    wait_for_size(&witness, REAL_ORIGIN, 10).await;
    let cosigned = verified_cosigned(&witness, REAL_ORIGIN, &log.vkey);
    let latest = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cosigned.size, latest.size);
    assert_eq!(cosigned.root.as_bytes()[..], latest.root[..]);

    // The follower counts a cosignature just after the stored size moves.
    let series = format!("merklog_witness_follow_cosigned_total{{origin=\"{REAL_ORIGIN}\"}}");
    wait_until("the follower counted its cosignatures", || {
        let metrics = common::follow_counts(&witness.witness, REAL_ORIGIN);
        metrics.cosigned >= 2
            && witness
                .witness
                .render_metrics()
                .contains(&format!("{series} {}\n", metrics.cosigned))
    })
    .await;
    let metrics = common::follow_counts(&witness.witness, REAL_ORIGIN);
    assert!(metrics.pulled >= metrics.cosigned, "{metrics:?}");
    assert_eq!(metrics.errors, 0, "{metrics:?}");
    let page = witness.get("/metrics").await.text();
    assert!(page.contains(&series), "{page}");
    assert_eq!(witness.witness.is_frozen(REAL_ORIGIN), Some(false));

    witness.stop().await;
    log.stop().await;
}

// ---------------------------------------------------------------------------
// A fake log: serves whatever tree the test puts in it.

struct FakeState {
    log: TestLog,
    /// The size served as the latest checkpoint.
    published: u64,
    /// How the checkpoint of each published size, and proofs to it, lie. Keyed by
    /// size, so a checkpoint the follower reads late is still served consistently.
    lies: HashMap<u64, Hostile>,
}

impl FakeState {
    fn lie(&self, size: u64) -> Hostile {
        self.lies.get(&size).copied().unwrap_or(Hostile::Honest)
    }
}

#[derive(Clone)]
struct FakeLog {
    state: Arc<Mutex<FakeState>>,
    changed: Arc<watch::Sender<()>>,
    /// Answer WatchCheckpoints with UNIMPLEMENTED.
    no_watch: bool,
    watch_calls: Arc<AtomicU64>,
    polls: Arc<AtomicU64>,
}

impl FakeLog {
    fn checkpoint(&self) -> v1::Checkpoint {
        let state = self.state.lock().unwrap();
        let size = state.published;
        let root = state.log.root(size);
        let note = match state.lie(size) {
            Hostile::GarbageNote => b"\xff\x00 not a note".to_vec(),
            Hostile::OtherOrigin => {
                let mut other = TestLog::new("other.example/log");
                other.grow_to(size);
                other.checkpoint(size)
            }
            Hostile::Unsigned => {
                let mut stranger = TestLog::new(&state.log.origin);
                stranger.grow_to(size);
                stranger.checkpoint(size)
            }
            Hostile::HugeNote => vec![b'a'; 300 * 1024],
            _ => state.log.checkpoint(size),
        };
        // The unsigned wire fields lie too; the follower must ignore them.
        checkpoint_to_wire(Bytes::from(note), size.wrapping_add(7), &root)
    }

    /// Grows to `size` and lies about that size in the way `hostile` says.
    fn grow_lying(&self, size: u64, hostile: Hostile) {
        let mut state = self.state.lock().unwrap();
        state.log.grow_to(size);
        state.published = size;
        state.lies.insert(size, hostile);
        drop(state);
        self.changed.send_replace(());
    }

    /// Serves `log` at `size` from now on.
    fn publish(&self, log: TestLog, size: u64) {
        let mut state = self.state.lock().unwrap();
        state.log = log;
        state.log.grow_to(size);
        state.published = size;
        drop(state);
        self.changed.send_replace(());
    }

    fn grow_to(&self, size: u64) {
        let mut state = self.state.lock().unwrap();
        state.log.grow_to(size);
        state.published = size;
        drop(state);
        self.changed.send_replace(());
    }
}

struct FakeServer {
    log: FakeLog,
    url: String,
    vkey: String,
    origin: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl FakeServer {
    async fn start(origin: &str, no_watch: bool) -> FakeServer {
        let log = TestLog::new(origin);
        let vkey = log.vkey.clone();
        let fake = FakeLog {
            state: Arc::new(Mutex::new(FakeState {
                log,
                published: 0,
                lies: HashMap::new(),
            })),
            changed: Arc::new(watch::channel(()).0),
            no_watch,
            watch_calls: Arc::new(AtomicU64::new(0)),
            polls: Arc::new(AtomicU64::new(0)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(LogServer::new(fake.clone()))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                }),
        );
        FakeServer {
            log: fake,
            url,
            vkey,
            origin: origin.to_owned(),
            stop: Some(stop),
        }
    }

    async fn witness(&self, dir: &std::path::Path) -> TestWitness {
        let mut config = WitnessConfig::new(dir, Vec::new());
        config.follow = vec![follow_config(&self.origin, &self.vkey, &self.url)];
        start_witness_with(config).await
    }
}

/// Ways the fake log lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostile {
    Honest,
    /// Bytes that are not a signed note.
    GarbageNote,
    /// A checkpoint of another origin, validly signed by that other log.
    OtherOrigin,
    /// A checkpoint of the right origin signed by an unknown key.
    Unsigned,
    /// A message above the follower's size cap.
    HugeNote,
    /// A proof that is not a whole number of hashes.
    RaggedProof,
    /// A proof of 64 hashes (more than add-checkpoint allows).
    LongProof,
    /// A proof answer for other sizes than asked.
    OtherSizes,
    /// A proof of the right shape with one bit flipped (signed checkpoint, bad proof).
    FlippedProof,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl v1::log_server::Log for FakeLog {
    async fn append(
        &self,
        _request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type AppendStreamStream = BoxStream<v1::AppendStreamResponse>;

    async fn append_stream(
        &self,
        _request: Request<Streaming<v1::AppendStreamRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_checkpoint(
        &self,
        _request: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<v1::Checkpoint>, Status> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(self.checkpoint()))
    }

    async fn get_inclusion_proof(
        &self,
        _request: Request<v1::GetInclusionProofRequest>,
    ) -> Result<Response<v1::GetInclusionProofResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_receipt(
        &self,
        _request: Request<v1::GetReceiptRequest>,
    ) -> Result<Response<v1::GetReceiptResponse>, Status> {
        Err(Status::unimplemented("the fake log issues no receipts"))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<v1::GetConsistencyProofRequest>,
    ) -> Result<Response<v1::GetConsistencyProofResponse>, Status> {
        let request = request.into_inner();
        let state = self.state.lock().unwrap();
        let new = request.new_size.unwrap_or(state.published);
        let old = request.old_size;
        if old == 0 || old > new || new > state.published {
            return Err(Status::out_of_range("sizes"));
        }
        let mut proof = state.log.proof(old, new);
        if state.lie(new) == Hostile::FlippedProof
            && let Some(first) = proof.first_mut()
        {
            let mut bytes = *first.as_bytes();
            bytes[0] ^= 1;
            *first = bytes.into();
        }
        let mut answer = v1::GetConsistencyProofResponse {
            old_size: old,
            new_size: new,
            proof: proof_to_wire(&proof),
            checkpoint: None,
        };
        match state.lie(new) {
            Hostile::RaggedProof => {
                answer.proof = Bytes::from(vec![1u8; proof.len() * 32 + 5]);
            }
            Hostile::LongProof => answer.proof = Bytes::from(vec![1u8; 64 * 32]),
            Hostile::OtherSizes => answer.old_size = old + 1,
            _ => {}
        }
        Ok(Response::new(answer))
    }

    async fn get_entries(
        &self,
        _request: Request<v1::GetEntriesRequest>,
    ) -> Result<Response<v1::GetEntriesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type WatchCheckpointsStream = BoxStream<v1::Checkpoint>;

    async fn watch_checkpoints(
        &self,
        _request: Request<v1::WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        self.watch_calls.fetch_add(1, Ordering::Relaxed);
        if self.no_watch {
            return Err(Status::unimplemented("no WatchCheckpoints here"));
        }
        let changes = self.changed.subscribe();
        let fake = self.clone();
        let stream = futures::stream::unfold(
            (changes, fake, true),
            |(mut changes, fake, first)| async move {
                if !first && changes.changed().await.is_err() {
                    return None;
                }
                changes.borrow_and_update();
                let checkpoint = fake.checkpoint();
                Some((Ok(checkpoint), (changes, fake, false)))
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detects_a_fork_served_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeServer::start("fork.example/log", false).await;
    fake.log.grow_to(5);
    let witness = fake.witness(tmp.path()).await;
    wait_for_size(&witness, &fake.origin, 5).await;
    fake.log.grow_to(8);
    wait_for_size(&witness, &fake.origin, 8).await;
    let honest = verified_cosigned(&witness, &fake.origin, &fake.vkey);

    // Same key and origin, other entries: a second signed root at size 8.
    let forked = fake.log.state.lock().unwrap().log.fork("forked entry");
    fake.log.publish(forked, 8);
    // The fork counter moves last, after the evidence and the FROZEN marker.
    wait_until("the fork is recorded", || {
        common::metric(&witness.witness, "merklog_witness_forks_detected_total") == 1
    })
    .await;
    assert_eq!(witness.witness.is_frozen(&fake.origin), Some(true));
    let evidence = witness
        .witness
        .log_dir(&fake.origin)
        .unwrap()
        .join("evidence");
    let forks: Vec<_> = std::fs::read_dir(&evidence)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("fork-8-")
        })
        .collect();
    assert_eq!(forks.len(), 1, "{forks:?}");
    let conflicting = std::fs::read(forks[0].join("conflicting.checkpoint")).unwrap();
    let conflicting = Checkpoint::from_text(Note::parse(&conflicting).unwrap().text()).unwrap();
    assert_eq!(conflicting.size, 8);
    assert_ne!(conflicting.root, honest.root);
    let cosigned = std::fs::read(forks[0].join("cosigned.checkpoint")).unwrap();
    let cosigned = Checkpoint::from_text(Note::parse(&cosigned).unwrap().text()).unwrap();
    assert_eq!(cosigned.root, honest.root);
    assert!(
        witness
            .witness
            .log_dir(&fake.origin)
            .unwrap()
            .join("FROZEN")
            .exists()
    );

    // Frozen: the follower submits nothing more, even for a larger tree, and the
    // monitoring API keeps the honest checkpoint.
    let mut state = fake.log.state.lock().unwrap().log.fork("forked entry");
    state.grow_to(12);
    fake.log.publish(state, 12);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(witness.witness.cosigned_size(&fake.origin).await, Some(8));
    assert_eq!(
        verified_cosigned(&witness, &fake.origin, &fake.vkey).root,
        honest.root
    );
    let metrics = common::follow_counts(&witness.witness, &fake.origin);
    assert!(
        metrics.errors >= 1,
        "the fork is a follower error: {metrics:?}"
    );
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_when_the_log_has_no_checkpoint_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeServer::start("poll.example/log", true).await;
    fake.log.grow_to(3);
    let witness = fake.witness(tmp.path()).await;
    wait_for_size(&witness, &fake.origin, 3).await;
    fake.log.grow_to(11);
    wait_for_size(&witness, &fake.origin, 11).await;
    let cosigned = verified_cosigned(&witness, &fake.origin, &fake.vkey);
    assert_eq!(cosigned.size, 11);
    assert!(fake.log.watch_calls.load(Ordering::Relaxed) >= 1);
    assert!(fake.log.polls.load(Ordering::Relaxed) >= 2);
    wait_until("two cosignatures are counted", || {
        common::follow_counts(&witness.witness, &fake.origin).cosigned == 2
    })
    .await;
    let metrics = common::follow_counts(&witness.witness, &fake.origin);
    // UNIMPLEMENTED is a capability answer, not an error.
    assert_eq!(metrics.errors, 0, "{metrics:?}");
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_evidence_of_a_bad_proof_without_freezing() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeServer::start("badproof.example/log", false).await;
    fake.log.grow_to(4);
    let witness = fake.witness(tmp.path()).await;
    wait_for_size(&witness, &fake.origin, 4).await;

    fake.log.grow_lying(9, Hostile::FlippedProof);
    // The counter moves before the evidence directory is renamed into place.
    let evidence = witness
        .witness
        .log_dir(&fake.origin)
        .unwrap()
        .join("evidence");
    wait_until("bad-proof evidence is saved", || {
        std::fs::read_dir(&evidence).is_ok_and(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .any(|n| n.starts_with("bad-proof-4-9-"))
        })
    })
    .await;
    assert_eq!(
        common::metric(
            &witness.witness,
            "merklog_witness_bad_consistency_proofs_total"
        ),
        1
    );
    assert_eq!(witness.witness.is_frozen(&fake.origin), Some(false));
    assert_eq!(witness.witness.cosigned_size(&fake.origin).await, Some(4));

    // Once the log serves a good proof, the follower catches up.
    fake.log.grow_to(10);
    wait_for_size(&witness, &fake.origin, 10).await;
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_log_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let log = RealLog::start(&tmp.path().join("log")).await;
    let mut config = WitnessConfig::new(tmp.path().join("witness"), Vec::new());
    config.follow = vec![follow_config(REAL_ORIGIN, &log.vkey, &log.url())];
    let witness = start_witness_with(config).await;
    let mut client = LogClient::connect(log.url()).await.unwrap();
    log.append(&mut client, 2, "before").await;
    wait_for_size(&witness, REAL_ORIGIN, 2).await;
    let addr = log.addrs.grpc;
    drop(client);
    log.stop().await;

    // The same data directory and address: the follower's stream ended; it polls
    // (failing and reconnecting with backoff until the log is back).
    let restarted = restart_on(&tmp.path().join("log"), addr).await;
    let mut client = LogClient::connect(restarted.url()).await.unwrap();
    restarted.append(&mut client, 3, "after").await;
    wait_for_size(&witness, REAL_ORIGIN, 5).await;
    verified_cosigned(&witness, REAL_ORIGIN, &restarted.vkey);
    witness.stop().await;
    restarted.stop().await;
}

/// Starts merklogd again on `data_dir`, bound to `addr` (retried briefly while the
/// old socket is released).
async fn restart_on(data_dir: &std::path::Path, addr: SocketAddr) -> RealLog {
    let config = ServerConfig {
        listen: addr,
        ..real_config(data_dir)
    };
    let mut attempts = 0;
    loop {
        match TestServer::try_start(config.clone()).await {
            Ok(server) => return RealLog(server),
            Err(err) => {
                attempts += 1;
                assert!(attempts < 100, "cannot start on {addr} again: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_hostile_log() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeServer::start("hostile.example/log", false).await;
    fake.log.grow_to(4);
    let witness = fake.witness(tmp.path()).await;
    wait_for_size(&witness, &fake.origin, 4).await;

    let mut size = 4;
    for hostile in [
        Hostile::GarbageNote,
        Hostile::OtherOrigin,
        Hostile::Unsigned,
        Hostile::RaggedProof,
        Hostile::LongProof,
        Hostile::OtherSizes,
        // Last: it breaks the stream and polls, so the follower reconnects with
        // backoff, and errors keep coming whatever is served next.
        Hostile::HugeNote,
    ] {
        let errors = common::follow_counts(&witness.witness, &fake.origin).errors;
        size += 3;
        fake.log.grow_lying(size, hostile);
        wait_until(&format!("{hostile:?} is counted as an error"), || {
            common::follow_counts(&witness.witness, &fake.origin).errors > errors
        })
        .await;
        assert_eq!(
            witness.witness.cosigned_size(&fake.origin).await,
            Some(4),
            "{hostile:?}"
        );
    }
    // Nothing was frozen or saved as evidence: none of this is signed misbehaviour.
    assert_eq!(witness.witness.is_frozen(&fake.origin), Some(false));
    let evidence = witness
        .witness
        .log_dir(&fake.origin)
        .unwrap()
        .join("evidence");
    assert!(std::fs::read_dir(&evidence).map_or(true, |mut e| e.next().is_none()));

    // A stale (smaller) checkpoint is ignored, then honest growth is cosigned again.
    let stale = fake.log.state.lock().unwrap().log.fork("entry");
    fake.log.publish(stale, 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(witness.witness.cosigned_size(&fake.origin).await, Some(4));
    fake.log.grow_to(size + 1);
    wait_for_size(&witness, &fake.origin, size + 1).await;
    verified_cosigned(&witness, &fake.origin, &fake.vkey);
    witness.stop().await;
}

#[test]
fn followed_logs_follow_the_log_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let log = TestLog::new("rules.example/log");
    let other = TestLog::new("rules.example/log");
    let url = "http://127.0.0.1:1";

    // Followed only: a known log.
    let mut config = WitnessConfig::new(tmp.path().join("a"), Vec::new());
    config.follow = vec![FollowConfig::new(&log.origin, &log.vkey, url)];
    let witness = merklog_witness::Witness::open(&config).unwrap();
    assert_eq!(witness.is_frozen(&log.origin), Some(false));

    // Followed and listed under [[log]] with the same vkey: fine.
    let mut config = WitnessConfig::new(tmp.path().join("b"), vec![log.config()]);
    config.follow = vec![FollowConfig::new(&log.origin, &log.vkey, url)];
    merklog_witness::Witness::open(&config).unwrap();

    let refused = |config: &WitnessConfig| match merklog_witness::Witness::open(config) {
        Err(merklog_witness::WitnessError::Config(reason)) => reason,
        other => panic!("expected a configuration error, got {other:?}"),
    };
    // Another vkey than the [[log]] entry.
    let mut config = WitnessConfig::new(tmp.path().join("c"), vec![log.config()]);
    config.follow = vec![FollowConfig::new(&log.origin, &other.vkey, url)];
    assert!(refused(&config).contains("another vkey"));
    // Followed twice.
    let mut config = WitnessConfig::new(tmp.path().join("d"), Vec::new());
    config.follow = vec![
        FollowConfig::new(&log.origin, &log.vkey, url),
        FollowConfig::new(&log.origin, &log.vkey, url),
    ];
    assert!(refused(&config).contains("followed twice"));
    // Same origin/vkey rules as [[log]].
    let mut config = WitnessConfig::new(tmp.path().join("e"), Vec::new());
    config.follow = vec![FollowConfig::new("bad\norigin", &log.vkey, url)];
    refused(&config);
    let mut config = WitnessConfig::new(tmp.path().join("f"), Vec::new());
    config.follow = vec![FollowConfig::new(&log.origin, "not a vkey", url)];
    refused(&config);
    // A URL the follower cannot use.
    for bad in ["ftp://log.example.com:7800", "http://[bad"] {
        let mut config = WitnessConfig::new(tmp.path().join("g"), Vec::new());
        config.follow = vec![FollowConfig::new(&log.origin, &log.vkey, bad)];
        assert!(refused(&config).contains("grpc-url"), "{bad}");
    }
}
