//! Leader election with a witness policy, process-level, on loopback: etcd, two
//! `merklog-witness` processes, a tlog-policy whose quorum needs both, and
//! `merklogd` nodes sharing a `file://` bucket and an etcd lock.
//!
//! - Failover: every checkpoint the cluster shows (Append answers, the leader's and
//!   the standby's GetCheckpoint, the bucket's `checkpoint` object) satisfies the
//!   policy; the standby turns appends away naming the leader; after SIGKILL of the
//!   leader the other node takes over, its tree extends the old one, the bucket's
//!   checkpoint never goes back, and the restarted node rejoins as a standby.
//! - Restore guard: a node taking over an empty lock and bucket (an old backup)
//!   while the witnesses have cosigned a larger tree refuses to sign: appends fail
//!   with FAILED_PRECONDITION and it publishes nothing.
//!
//! etcd comes from `scripts/cluster-prereqs` (run here when it is missing); where it
//! cannot be installed the tests print why and skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster_common::{Service, find, start_etcd};
use merklog_cluster::{Election, Leadership};
use merklog_e2e::witnesses::{WitnessProcess, WitnessSetup, policy_all_of, prepare_log_key};
use merklog_e2e::{Daemon, connect};
use merklog_merkle::{LeafIndex, TreeSize, hash_leaf, verify_consistency, verify_inclusion};
use merklog_note::{Checkpoint, Policy, TlogProof};
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1;
use tonic::Code;

const ORIGIN: &str = "witnessed-cluster.example/log";
const W1: &str = "w1.example/witness";
const W2: &str = "w2.example/witness";
/// Each test's whole run, services included.
const DEADLINE: Duration = Duration::from_secs(120);
/// Longest wait for any one thing (a leader, an append, a follow).
const WAIT: Duration = Duration::from_secs(30);

/// The etcd binary, installing it if needed; `None` (with the reason printed) if it
/// cannot be had. These tests need no S3 server.
fn etcd_only() -> Option<PathBuf> {
    if find("etcd").is_none() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster-prereqs");
        let _ = Command::new("bash").arg(script).status();
    }
    let etcd = find("etcd");
    if etcd.is_none() {
        println!("SKIPPED: these tests need etcd; scripts/cluster-prereqs could not install it");
    }
    etcd
}

/// etcd, two running witnesses and the policy naming them.
struct World {
    // Stopped before their directory goes.
    _services: (Service, [WitnessProcess; 2]),
    dir: tempfile::TempDir,
    policy_path: PathBuf,
    policy: Policy,
    etcd_port: u16,
}

impl World {
    /// The log key is made first (in `<dir>/node0`): the witnesses trust it.
    async fn start(etcd: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (etcd, etcd_port) = start_etcd(etcd, dir.path()).await;
        let log_vkey = prepare_log_key(&dir.path().join("node0"), ORIGIN);
        let setups = [
            WitnessSetup::create(dir.path(), "w1", W1, ORIGIN, &log_vkey),
            WitnessSetup::create(dir.path(), "w2", W2, ORIGIN, &log_vkey),
        ];
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let witnesses = [
            WitnessProcess::start(&setups[0], any),
            WitnessProcess::start(&setups[1], any),
        ];
        let text = policy_all_of(
            &log_vkey,
            &[
                (&setups[0], witnesses[0].url()),
                (&setups[1], witnesses[1].url()),
            ],
        );
        let policy_path = dir.path().join("policy.txt");
        std::fs::write(&policy_path, &text).unwrap();
        Self {
            policy: Policy::parse(&text).unwrap(),
            policy_path,
            etcd_port,
            _services: (etcd, witnesses),
            dir,
        }
    }

    /// A node's data directory, holding (only) the log key of node0.
    fn node_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        if !dir.join("log.key").exists() {
            std::fs::create_dir_all(&dir).unwrap();
            let key = self.dir.path().join("node0").join("log.key");
            std::fs::copy(key, dir.join("log.key")).unwrap();
        }
        dir
    }

    fn lock(&self, key: &str) -> String {
        format!("etcd://127.0.0.1:{}/{key}", self.etcd_port)
    }

    fn start_node(&self, data_dir: &Path, bucket_dir: &Path, lock_key: &str) -> Daemon {
        let bucket = format!("file://{}", bucket_dir.display());
        let (lock, policy) = (self.lock(lock_key), self.policy_path.to_str().unwrap());
        let mut args = Vec::new();
        for (flag, value) in [
            ("--origin", ORIGIN),
            ("--log-level", "info"),
            ("--cluster-bucket", &bucket),
            ("--cluster-lock", &lock),
            ("--cluster-lease-ttl", "2s"),
            ("--policy", policy),
            ("--witness-timeout", "1s"),
            ("--witness-resend-interval", "1s"),
            ("--append-timeout", "5s"),
        ] {
            args.extend([flag, value]);
        }
        // Daemon::start panics if merklogd exits at start-up; its log goes with the
        // temporary directory, so the panic carries its tail.
        let start = || Daemon::start_with_env(data_dir, &args, &[("NO_COLOR", "1")]);
        tokio::task::block_in_place(|| std::panic::catch_unwind(start))
            .unwrap_or_else(|_| panic!("merklogd did not start; its log:\n{}", log_tail(data_dir)))
    }

    /// The leader's advertised address, read from the election key.
    async fn leader_url(&self, lock_key: &str) -> Option<String> {
        let (lock, ttl) = (self.lock(lock_key), Duration::from_secs(2));
        let election = Election::open(&lock, ttl, Leadership::new()).unwrap();
        election.leader().await.ok().flatten()
    }

    /// Waits for one of `urls` other than `not` to lead; returns its index.
    async fn wait_for_leader(&self, lock_key: &str, urls: &[String], not: Option<&str>) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(url) = self.leader_url(lock_key).await
                && Some(url.as_str()) != not
                && let Some(i) = urls.iter().position(|u| *u == url)
            {
                return i;
            }
            assert!(Instant::now() < deadline, "no leader within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The last lines of a node's output, for failure messages.
fn log_tail(data_dir: &Path) -> String {
    let text = std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn entries(tag: &str, count: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| Bytes::from(format!("{tag}-{i:03}")))
        .collect()
}

async fn append(url: &str, batch: &[Bytes]) -> Result<v1::AppendResponse, tonic::Status> {
    // A node not listening (yet) is as unavailable as a standby.
    let client = connect(url).await;
    let mut client = client.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let (entries, include_tlog_proof) = (batch.to_vec(), true);
    let request = v1::AppendRequest {
        entries,
        include_tlog_proof,
    };
    client
        .append(request)
        .await
        .map(tonic::Response::into_inner)
}

/// Appends, retrying UNAVAILABLE (not yet leading, taking over) until [`WAIT`].
/// The same batch each time: a retry of entries already in finds them.
async fn append_retrying(url: &str, batch: &[Bytes], data_dir: &Path) -> v1::AppendResponse {
    let deadline = Instant::now() + WAIT;
    loop {
        match append(url, batch).await {
            Ok(answer) => return answer,
            Err(s) if s.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("append to {url}: {s:?}; its log:\n{}", log_tail(data_dir)),
        }
    }
}

/// Checks an Append answer: its checkpoint satisfies the policy with both
/// witnesses' cosignatures and every entry's proofs verify against it.
fn check_answer(policy: &Policy, batch: &[Bytes], answer: &v1::AppendResponse) -> Checkpoint {
    let wire = answer.checkpoint.as_ref().unwrap();
    let verified = policy
        .verify_checkpoint(&wire.note)
        .unwrap_or_else(|e| panic!("the answer's checkpoint does not satisfy the policy: {e}"));
    assert_eq!(verified.cosigners(), [W1, W2], "cosigned by both witnesses");
    let cp = verified.checkpoint().clone();
    assert_eq!(cp.size, wire.size);
    assert_eq!(answer.entries.len(), batch.len());
    for (entry, appended) in batch.iter().zip(&answer.entries) {
        let proof = proof_from_wire("inclusion_proof", &appended.inclusion_proof).unwrap();
        let (index, size) = (LeafIndex(appended.index), TreeSize(cp.size));
        verify_inclusion(&hash_leaf(entry), index, size, &proof, &cp.root).unwrap();
        let tlog_proof = TlogProof::parse(&appended.tlog_proof).unwrap();
        assert_eq!(tlog_proof.checkpoint, &wire.note[..]);
        let leaf = hash_leaf(entry);
        tlog_proof.verify_with_policy(&leaf, policy).unwrap();
    }
    cp
}

/// The size line of a checkpoint note (before any signature check).
fn note_size(note: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(note);
    text.lines().nth(1).and_then(|l| l.parse().ok()).unwrap()
}

/// The bucket's public checkpoint, read from the `file://` directory.
fn bucket_checkpoint(bucket_dir: &Path) -> Option<Vec<u8>> {
    std::fs::read(bucket_dir.join("checkpoint")).ok()
}

/// The bucket's checkpoints as they were seen: (size, root line, whether it
/// satisfied the policy).
type Seen = Arc<Mutex<Vec<(u64, String, bool)>>>;

/// Records every public checkpoint the bucket shows until `stop`.
fn watch_bucket(
    bucket_dir: PathBuf,
    policy: Policy,
    stop: Arc<AtomicBool>,
) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen = Seen::default();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let mut last = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if let Some(note) = bucket_checkpoint(&bucket_dir)
                && note != last
            {
                let ok = policy.verify_checkpoint(&note).is_ok();
                let root = String::from_utf8_lossy(&note)
                    .lines()
                    .nth(2)
                    .map(str::to_owned);
                let seen = (note_size(&note), root.unwrap_or_default(), ok);
                record.lock().unwrap().push(seen);
                last = note;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (seen, task)
}

/// Waits until the standby at `url` turns appends away naming `leader` and its
/// GetCheckpoint shows at least `size`. It must never accept an append, and every
/// checkpoint of a non-empty tree it shows must satisfy the policy.
async fn expect_standby(
    url: &str,
    leader: &str,
    policy: &Policy,
    size: u64,
    dir: &Path,
) -> Checkpoint {
    let deadline = Instant::now() + WAIT;
    loop {
        let refused = append(url, &[Bytes::from_static(b"to the standby")]).await;
        let refused = refused.expect_err("a standby accepted an append");
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
        let wire = get_checkpoint(url).await;
        let shown = (wire.size > 0).then(|| {
            let verified = policy.verify_checkpoint(&wire.note);
            verified.unwrap_or_else(|e| panic!("{url} shows an uncosigned checkpoint: {e}"))
        });
        if let Some(shown) = shown
            && shown.checkpoint().size >= size
            && refused.message().contains(leader)
        {
            return shown.checkpoint().clone();
        }
        assert!(
            Instant::now() < deadline,
            "{url} at size {} (not {size}) answers {refused:?} (not naming {leader}); its log:\n{}",
            wire.size,
            log_tail(dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the bucket's checkpoint reaches `size`; it must satisfy the policy.
async fn wait_for_bucket(bucket_dir: &Path, policy: &Policy, size: u64) -> Checkpoint {
    let deadline = Instant::now() + WAIT;
    loop {
        let note = bucket_checkpoint(bucket_dir).unwrap_or_default();
        if !note.is_empty() && note_size(&note) >= size {
            let verified = policy
                .verify_checkpoint(&note)
                .expect("a cosigned checkpoint");
            return verified.checkpoint().clone();
        }
        assert!(Instant::now() < deadline, "the bucket did not reach {size}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_checkpoint(url: &str) -> v1::Checkpoint {
    let mut client = connect(url).await.unwrap();
    let answer = client.get_checkpoint(v1::GetCheckpointRequest {}).await;
    answer.unwrap().into_inner()
}

/// Checks that the tree of `new` extends `old` and still holds `entries` (by index).
async fn check_extends(url: &str, old: &Checkpoint, new: &Checkpoint, entries: &[(u64, Bytes)]) {
    let mut client = connect(url).await.unwrap();
    let request = v1::GetConsistencyProofRequest {
        old_size: old.size,
        new_size: Some(new.size),
    };
    let proof = client
        .get_consistency_proof(request)
        .await
        .unwrap()
        .into_inner();
    let proof = proof_from_wire("proof", &proof.proof).unwrap();
    let (old_size, new_size) = (TreeSize(old.size), TreeSize(new.size));
    verify_consistency(old_size, new_size, &proof, &old.root, &new.root).unwrap();
    for (index, entry) in entries {
        let leaf = Some(v1::get_inclusion_proof_request::Leaf::Index(*index));
        let request = v1::GetInclusionProofRequest {
            leaf,
            tree_size: Some(new.size),
        };
        let proof = client
            .get_inclusion_proof(request)
            .await
            .unwrap()
            .into_inner();
        let proof = proof_from_wire("proof", &proof.proof).unwrap();
        let leaf = (hash_leaf(entry), LeafIndex(*index));
        verify_inclusion(&leaf.0, leaf.1, new_size, &proof, &new.root).unwrap();
    }
}

/// The binaries built, then etcd and the witnesses started; `None` (said why) without
/// etcd.
async fn world() -> Option<World> {
    merklog_e2e::merklogd_binary();
    merklog_e2e::witness_binary();
    let etcd = etcd_only()?;
    Some(World::start(&etcd).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witnessed_cluster_fails_over_and_publishes_only_cosigned_checkpoints() {
    let Some(world) = world().await else {
        return;
    };
    let started = Instant::now();
    let policy = world.policy.clone();
    let bucket_dir = world.dir.path().join("bucket");
    let key = "merklog/witnessed";
    let dirs = [world.node_dir("node0"), world.node_dir("node1")];
    // Node 0 leads first; node 1 joins as a standby while the log is still empty.
    let mut nodes = vec![Some(world.start_node(&dirs[0], &bucket_dir, key))];
    let mut urls = vec![nodes[0].as_ref().unwrap().grpc_url()];
    world.wait_for_leader(key, &urls, None).await;
    nodes.push(Some(world.start_node(&dirs[1], &bucket_dir, key)));
    urls.push(nodes[1].as_ref().unwrap().grpc_url());
    let stop = Arc::new(AtomicBool::new(false));
    let (bucket_seen, watcher) = watch_bucket(bucket_dir.clone(), policy.clone(), stop.clone());

    let leader = world.wait_for_leader(key, &urls, None).await;
    let standby = 1 - leader;
    let first = entries("first-leader", 8);
    let answer = append_retrying(&urls[leader], &first, &dirs[leader]).await;
    let cp1 = check_answer(&policy, &first, &answer);
    let indexes = answer.entries.iter().map(|e| e.index);
    let acked: Vec<(u64, Bytes)> = indexes.zip(first.iter().cloned()).collect();
    println!(
        "{:?}: node {leader} leads at {}",
        started.elapsed(),
        cp1.size
    );

    let followed = expect_standby(
        &urls[standby],
        &urls[leader],
        &policy,
        cp1.size,
        &dirs[standby],
    )
    .await;
    assert_eq!((followed.size, followed.root), (cp1.size, cp1.root));
    let public1 = wait_for_bucket(&bucket_dir, &policy, cp1.size).await;
    assert_eq!(public1.root, cp1.root);

    // SIGKILL the leader: the standby takes over once the lease ends.
    let killed = Instant::now();
    nodes[leader].take().unwrap().kill();
    let next = world.wait_for_leader(key, &urls, Some(&urls[leader])).await;
    assert_eq!(next, standby);
    let second = entries("second-leader", 4);
    let answer = append_retrying(&urls[next], &second, &dirs[next]).await;
    let cp2 = check_answer(&policy, &second, &answer);
    let took = killed.elapsed();
    println!(
        "{:?}: SIGKILL to a cosigned answer: {took:?}",
        started.elapsed()
    );
    assert!(cp2.size > cp1.size, "{} after {}", cp2.size, cp1.size);

    // The new tree extends the old one, and the first entries are still in it.
    check_extends(&urls[next], &cp1, &cp2, &acked).await;
    let public2 = wait_for_bucket(&bucket_dir, &policy, cp2.size).await;
    assert!(public2.size >= public1.size);
    assert_eq!(public2.root, cp2.root);

    // The killed node comes back as a standby serving the cosigned checkpoint.
    nodes[leader] = Some(world.start_node(&dirs[leader], &bucket_dir, key));
    urls[leader] = nodes[leader].as_ref().unwrap().grpc_url();
    let rejoined =
        expect_standby(&urls[leader], &urls[next], &policy, cp2.size, &dirs[leader]).await;
    assert_eq!(rejoined.root, cp2.root);
    assert_eq!(world.leader_url(key).await, Some(urls[next].clone()));

    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    let seen = bucket_seen.lock().unwrap().clone();
    println!("bucket checkpoints seen (size, root, cosigned): {seen:?}");
    assert!(
        seen.iter().all(|(size, _, ok)| *ok || *size == 0),
        "the bucket showed an uncosigned checkpoint: {seen:?}"
    );
    // Never back, and one root per size (a re-cosigned checkpoint may show again).
    assert!(
        seen.windows(2)
            .all(|w| w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 == w[1].1)),
        "the bucket's checkpoint went back or forked: {seen:?}"
    );
    for node in nodes.into_iter().flatten() {
        node.terminate();
    }
    println!("took {:?}", started.elapsed());
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_behind_a_witness_refuses_to_sign() {
    let Some(world) = world().await else {
        return;
    };
    let started = Instant::now();
    let policy = world.policy.clone();

    // Phase 1: the witnesses cosign 5 single-entry batches.
    let (first_dir, first_bucket) = (world.node_dir("node0"), world.dir.path().join("b1"));
    let first = world.start_node(&first_dir, &first_bucket, "merklog/k1");
    let url = first.grpc_url();
    world
        .wait_for_leader("merklog/k1", std::slice::from_ref(&url), None)
        .await;
    let mut size = 0;
    for i in 0..5 {
        let batch = entries(&format!("phase-1-{i}"), 1);
        let answer = append_retrying(&url, &batch, &first_dir).await;
        size = check_answer(&policy, &batch, &answer).size;
    }
    println!("{:?}: cosigned size {size}", started.elapsed());
    first.terminate();

    // Phase 2: the same log key and origin over an empty lock and bucket, as if both
    // were restored from a backup older than what the witnesses cosigned.
    let (second_dir, second_bucket) = (world.node_dir("restored"), world.dir.path().join("b2"));
    let second = world.start_node(&second_dir, &second_bucket, "merklog/k2");
    let url = second.grpc_url();
    let batch = entries("after-the-restore", 1);
    let deadline = Instant::now() + WAIT;
    let refusal = loop {
        match append(&url, &batch).await {
            Ok(answer) => panic!(
                "the node behind the witnesses signed (a fork): {answer:?}; its log:\n{}",
                log_tail(&second_dir)
            ),
            Err(s) if s.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => break s,
        }
    };
    println!("{:?}: refused: {refusal:?}", started.elapsed());
    assert_eq!(
        refusal.code(),
        Code::FailedPrecondition,
        "{refusal:?}; its log:\n{}",
        log_tail(&second_dir)
    );
    let expected = format!("has cosigned tree size {size}");
    assert!(refusal.message().contains(&expected), "{refusal:?}");
    assert_eq!(world.leader_url("merklog/k2").await, Some(url.clone()));

    // It keeps refusing and publishes nothing, also after a witness resend interval.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = append(&url, &batch).await.expect_err("signed on a retry");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    let shown = get_checkpoint(&url).await;
    assert_eq!(shown.size, 0, "GetCheckpoint shows a tree it may not sign");
    if let Some(note) = bucket_checkpoint(&second_bucket) {
        assert_eq!(note_size(&note), 0, "published into the restored bucket");
    }
    second.terminate();
    println!("took {:?}", started.elapsed());
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
}
