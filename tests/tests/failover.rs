//! Cluster failover, process-level, on loopback: moto (S3), etcd and three merklogd
//! nodes electing a leader through an etcd lease, 32 clients appending concurrently
//! (each retrying another node on UNAVAILABLE) while the leader is killed twice with
//! SIGKILL (and restarted) and once paused with SIGSTOP past its lease (then resumed
//! with SIGCONT). Afterwards every acknowledged entry is in the final tree, every
//! checkpoint a client or the bucket showed is a prefix of it, the bucket's public
//! checkpoint never went back (the paused leader published nothing once its term had
//! ended), a read-only node serves proofs and tiles with every sequencer down, and the
//! bucket alone passes `merklog fsck`. Prints the failover times.
//!
//! moto and etcd come from `scripts/cluster-prereqs`; without them the test prints
//! why and skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster_common::{BUCKET, CREDENTIALS, ORIGIN, bucket, prerequisites, start_etcd, start_s3};
use merklog_cluster::{Election, Leadership};
use merklog_e2e::{Daemon, connect, read_verifier};
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf, verify_inclusion};
use merklog_note::open_checkpoint;
use merklog_proto::v1;
use tokio_stream::StreamExt;

/// The whole test, services included.
const DEADLINE: Duration = Duration::from_secs(180);
const CLIENTS: usize = 32;
const LEASE_TTL: &str = "2s";
/// Longest wait for any one thing (a leader, an acknowledgement, a follow).
const WAIT: Duration = Duration::from_secs(30);
/// One append attempt.
const ATTEMPT: Duration = Duration::from_secs(3);

/// An acknowledged entry.
#[derive(Clone)]
struct Ack {
    entry: Bytes,
    index: u64,
    at: Instant,
    /// The node that answered.
    by: String,
}

/// What the clients and the watchers saw.
#[derive(Default)]
struct Seen {
    acks: Vec<Ack>,
    /// Every checkpoint shown (size -> note), by clients and by the bucket.
    checkpoints: BTreeMap<u64, Vec<Vec<u8>>>,
    /// Public checkpoint sizes in the order the bucket showed them.
    bucket_sizes: Vec<u64>,
}

struct Cluster {
    dir: PathBuf,
    bucket_url: String,
    lock: String,
    nodes: Vec<Option<Daemon>>,
    /// The nodes' current gRPC URLs, for the clients.
    urls: Arc<Mutex<Vec<String>>>,
}

impl Cluster {
    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{i}"))
    }

    fn start(&mut self, i: usize) {
        let dir = self.node_dir(i);
        let args = [
            "--origin",
            ORIGIN,
            "--log-level",
            "info",
            "--cluster-bucket",
            &self.bucket_url,
            "--cluster-lock",
            &self.lock,
            "--cluster-lease-ttl",
            LEASE_TTL,
        ];
        let daemon = Daemon::start_with_env(&dir, &args, &CREDENTIALS);
        self.urls.lock().unwrap()[i] = daemon.grpc_url();
        self.nodes[i] = Some(daemon);
    }

    fn index_of(&self, url: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|d| d.grpc_url() == url))
    }
}

/// The leader's advertised address, read from the election key.
async fn leader_url(etcd_port: u16) -> Option<String> {
    let election = Election::open(
        &format!("etcd://127.0.0.1:{etcd_port}/merklog/checkpoint"),
        Duration::from_secs(2),
        Leadership::new(),
    )
    .unwrap();
    election.leader().await.ok().flatten()
}

/// Waits for a leader other than `not` (a URL), returns its node index.
async fn wait_for_leader(cluster: &Cluster, etcd_port: u16, not: Option<&str>) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(url) = leader_url(etcd_port).await
            && Some(url.as_str()) != not
            && let Some(i) = cluster.index_of(&url)
        {
            return i;
        }
        assert!(Instant::now() < deadline, "no new leader within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// One client: appends its own entries one per call until `stop`, trying the node
/// a refusal names, else the next one.
async fn client(
    id: usize,
    urls: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    let mut target = id % 3;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let entry = Bytes::from(format!("client {id} entry {n}"));
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let url = urls.lock().unwrap()[target].clone();
            let attempt = async {
                let mut c = connect(&url).await.map_err(|e| e.to_string())?;
                c.append(v1::AppendRequest {
                    entries: vec![entry.clone()],
                    include_tlog_proof: false,
                })
                .await
                .map(tonic::Response::into_inner)
                // UNAVAILABLE from a standby or a node whose term ended; transport
                // errors from a node that was killed mid-call: all retried.
                .map_err(|s| s.message().to_owned())
            };
            match tokio::time::timeout(ATTEMPT, attempt).await {
                Ok(Ok(reply)) => {
                    let cp = reply.checkpoint.unwrap();
                    {
                        let mut seen = seen.lock().unwrap();
                        seen.acks.push(Ack {
                            entry: entry.clone(),
                            index: reply.entries[0].index,
                            at: Instant::now(),
                            by: url.clone(),
                        });
                        seen.checkpoints
                            .entry(cp.size)
                            .or_default()
                            .push(cp.note.to_vec());
                    }
                    // Paced, so the proofs checked at the end stay few thousand.
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    break;
                }
                Ok(Err(message)) => {
                    // A standby names the leader; go there, else to the next node.
                    let named = message
                        .split("the leader is ")
                        .nth(1)
                        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned());
                    target = {
                        let urls = urls.lock().unwrap();
                        named
                            .and_then(|u| urls.iter().position(|x| *x == u))
                            .unwrap_or((target + 1) % urls.len())
                    };
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => target = (target + 1) % 3,
            }
        }
        n += 1;
    }
}

/// Records every public checkpoint the bucket shows until `stop`.
async fn watch_bucket(endpoint: String, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let bucket = bucket(&endpoint);
    let mut last = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(Some(note)) = bucket.checkpoint().await
            && note.to_vec() != last
        {
            last = note.to_vec();
            let size: u64 = std::str::from_utf8(&note)
                .unwrap()
                .lines()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            let mut seen = seen.lock().unwrap();
            seen.bucket_sizes.push(size);
            seen.checkpoints.entry(size).or_default().push(last.clone());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `count` acknowledgements arrived after `since` from nodes other than
/// `not_by`; returns the time of the first one.
async fn wait_for_acks_from(
    seen: &Mutex<Seen>,
    since: Instant,
    count: usize,
    not_by: Option<&str>,
) -> Instant {
    let deadline = Instant::now() + WAIT;
    loop {
        {
            let seen = seen.lock().unwrap();
            let after: Vec<Instant> = seen
                .acks
                .iter()
                .filter(|a| a.at > since && Some(a.by.as_str()) != not_by)
                .map(|a| a.at)
                .collect();
            if after.len() >= count {
                return after.into_iter().min().unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no acknowledgements within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_acks(seen: &Mutex<Seen>, since: Instant, count: usize) -> Instant {
    wait_for_acks_from(seen, since, count, None).await
}

fn copy_key(from: &Path, to: &Path, signing: bool) {
    std::fs::create_dir_all(to).unwrap();
    let files: &[&str] = if signing {
        &["log.key", "log.vkey"]
    } else {
        &["log.vkey"]
    };
    for file in files {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_loses_no_acknowledged_entry() {
    merklog_e2e::merklogd_binary();
    let client_binary = merklog_e2e::client_binary();
    let Some((moto, etcd)) = prerequisites() else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (_s3, endpoint) = start_s3(&moto, &dir.path().join("moto.log")).await;
    let (_etcd, etcd_port) = start_etcd(&etcd, dir.path()).await;
    let mut cluster = Cluster {
        dir: dir.path().to_owned(),
        bucket_url: format!("s3://{BUCKET}?endpoint={endpoint}"),
        lock: format!("etcd://127.0.0.1:{etcd_port}/merklog/checkpoint"),
        nodes: vec![None, None, None],
        urls: Arc::new(Mutex::new(vec![String::new(); 3])),
    };
    // Node 0 creates the log and its key; the others get the same key.
    cluster.start(0);
    assert_eq!(wait_for_leader(&cluster, etcd_port, None).await, 0);
    for i in 1..3 {
        copy_key(&cluster.node_dir(0), &cluster.node_dir(i), true);
        cluster.start(i);
    }
    let verifier = read_verifier(&cluster.node_dir(0));

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_bucket(endpoint.clone(), seen.clone(), stop.clone()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(id, cluster.urls.clone(), seen.clone(), stop.clone())))
        .collect();
    wait_for_acks(&seen, started, 100).await;

    // Twice: SIGKILL the leader, measure until the first acknowledgement after it,
    // restart it (it rejoins as a standby).
    let mut failovers = Vec::new();
    for round in 0..2 {
        let leader = wait_for_leader(&cluster, etcd_port, None).await;
        let old_url = cluster.nodes[leader].as_ref().unwrap().grpc_url();
        let killed = Instant::now();
        cluster.nodes[leader].take().unwrap().kill();
        // An answer of the killed node still in flight is not the new leader's.
        let first = wait_for_acks_from(&seen, killed, 1, Some(&old_url)).await;
        let new_leader = wait_for_leader(&cluster, etcd_port, Some(&old_url)).await;
        failovers.push(first - killed);
        println!(
            "failover {}: SIGKILL of node {leader} to the first acknowledgement by node {new_leader}: {:?}",
            round + 1,
            first - killed
        );
        cluster.start(leader);
        wait_for_acks(&seen, Instant::now(), 50).await;
    }

    // SIGSTOP the leader past its lease, wait for another leader, SIGCONT.
    let paused = wait_for_leader(&cluster, etcd_port, None).await;
    let paused_url = cluster.nodes[paused].as_ref().unwrap().grpc_url();
    let paused_pid = cluster.nodes[paused].as_ref().unwrap().id();
    let stopped_at = Instant::now();
    signal(paused_pid, "STOP");
    let first = wait_for_acks_from(&seen, stopped_at, 1, Some(&paused_url)).await;
    let new_leader = wait_for_leader(&cluster, etcd_port, Some(&paused_url)).await;
    println!(
        "failover 3: SIGSTOP of node {paused} to the first acknowledgement by node {new_leader}: {:?}",
        first - stopped_at
    );
    failovers.push(first - stopped_at);
    let public_before = seen
        .lock()
        .unwrap()
        .bucket_sizes
        .last()
        .copied()
        .unwrap_or(0);
    signal(paused_pid, "CONT");
    // Its next swap fails and its term has ended: it refuses appends, naming why.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = connect(&paused_url).await.unwrap();
        let refused = c
            .append(v1::AppendRequest {
                entries: vec![Bytes::from_static(b"to the resumed node")],
                include_tlog_proof: false,
            })
            .await;
        match refused {
            Err(s) if s.message().contains("lost its leadership") => break,
            _ => assert!(Instant::now() < deadline, "the resumed node still signs"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_acks(&seen, Instant::now(), 50).await;
    let paused_log =
        std::fs::read_to_string(cluster.node_dir(paused).with_extension("log")).unwrap();
    assert!(paused_log.contains("lost the leadership"), "{paused_log}");
    // Rejoin as a standby.
    cluster.nodes[paused].take().unwrap().kill();
    cluster.start(paused);

    // A read-only node, with the public key only.
    let reader_dir = dir.path().join("reader");
    copy_key(&cluster.node_dir(0), &reader_dir, false);
    let reader = Daemon::start_with_env(
        &reader_dir,
        &[
            "--log-level",
            "info",
            "--read-only",
            "--cluster-bucket",
            &cluster.bucket_url,
        ],
        &CREDENTIALS,
    );
    wait_for_acks(&seen, Instant::now(), 50).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        tokio::time::timeout(WAIT, client).await.unwrap().unwrap();
    }
    watcher.await.unwrap();

    // The final checkpoint, from the leader.
    let leader = wait_for_leader(&cluster, etcd_port, None).await;
    let mut c = connect(&cluster.nodes[leader].as_ref().unwrap().grpc_url())
        .await
        .unwrap();
    let last = c
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    let (final_cp, _) = open_checkpoint(&last.note, &verifier, Some(ORIGIN)).unwrap();

    // Every sequencer down: the reader serves what the bucket holds.
    for node in &mut cluster.nodes {
        node.take().unwrap().kill();
    }
    let mut r = connect(&reader.grpc_url()).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let cp = r
            .get_checkpoint(v1::GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner();
        if cp.size == final_cp.size {
            assert_eq!(cp.note, last.note);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reader did not follow to {}",
            final_cp.size
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = r
        .append(v1::AppendRequest {
            entries: vec![Bytes::from_static(b"x")],
            include_tlog_proof: false,
        })
        .await
        .unwrap_err();
    assert!(refused.message().contains("read-only"), "{refused:?}");

    // Every acknowledged entry: an inclusion proof from the reader against the final
    // checkpoint (eight callers at a time).
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    println!(
        "{} acknowledgements, final size {}",
        seen.acks.len(),
        final_cp.size
    );
    let chunk = seen.acks.len().div_ceil(8).max(1);
    let mut provers = tokio::task::JoinSet::new();
    for part in seen.acks.chunks(chunk) {
        let part = part.to_vec();
        let url = reader.grpc_url();
        let root = final_cp.root;
        let size = final_cp.size;
        provers.spawn(async move {
            let mut r = connect(&url).await.unwrap();
            for ack in part {
                let proof = r
                    .get_inclusion_proof(v1::GetInclusionProofRequest {
                        leaf: Some(v1::get_inclusion_proof_request::Leaf::Index(ack.index)),
                        tree_size: Some(size),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let hashes: Vec<Hash> = proof
                    .proof
                    .chunks(32)
                    .map(|c| Hash::try_from(c).unwrap())
                    .collect();
                verify_inclusion(
                    &hash_leaf(&ack.entry),
                    LeafIndex(ack.index),
                    TreeSize(size),
                    &hashes,
                    &root,
                )
                .unwrap_or_else(|e| panic!("entry {}: {e}", ack.index));
            }
        });
    }
    while let Some(done) = provers.join_next().await {
        done.unwrap();
    }
    // Every checkpoint shown is signed, one per size (no fork), and consistent with
    // the final one.
    for (size, notes) in &seen.checkpoints {
        assert!(
            notes.windows(2).all(|w| w[0] == w[1]),
            "two checkpoints of size {size}"
        );
        for note in notes.iter().take(1) {
            let (cp, _) = open_checkpoint(note, &verifier, Some(ORIGIN)).unwrap();
            assert_eq!(cp.size, *size);
            if cp.size == 0 || cp.size == final_cp.size {
                assert!(cp.size == 0 || cp.root == final_cp.root);
                continue;
            }
            let proof = r
                .get_consistency_proof(v1::GetConsistencyProofRequest {
                    old_size: cp.size,
                    new_size: Some(final_cp.size),
                })
                .await
                .unwrap()
                .into_inner();
            let hashes: Vec<Hash> = proof
                .proof
                .chunks(32)
                .map(|c| Hash::try_from(c).unwrap())
                .collect();
            merklog_merkle::verify_consistency(
                TreeSize(cp.size),
                TreeSize(final_cp.size),
                &hashes,
                &cp.root,
                &final_cp.root,
            )
            .unwrap_or_else(|e| panic!("checkpoint {}: {e}", cp.size));
        }
    }
    // The public checkpoint never went back: nothing older was published over a newer
    // one, by the paused leader or anyone.
    assert!(
        seen.bucket_sizes.windows(2).all(|w| w[0] <= w[1]),
        "the bucket's checkpoint went back: {:?}",
        seen.bucket_sizes
    );
    assert!(public_before <= final_cp.size);

    // Tiles over HTTP from the reader.
    let http = format!("http://{}", reader.addrs.http);
    let checkpoint = reqwest::get(format!("{http}/checkpoint")).await.unwrap();
    assert!(checkpoint.status().is_success());
    assert_eq!(checkpoint.bytes().await.unwrap(), last.note);
    let tile = reqwest::get(format!("{http}/tile/0/000")).await.unwrap();
    assert!(tile.status().is_success(), "{}", tile.status());
    // `merklog audit` through the reader, `merklog fsck` over the bucket's own URL
    // (moto serves it path-style, unauthenticated reads): both rebuild the signed root.
    let vkey = reader_dir.join("log.vkey");
    let run = |server: &str, command: &str| {
        let output = Command::new(&client_binary)
            .args(["--no-state", "--server", server, "--log-key"])
            .arg(&vkey)
            .arg(command)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "merklog {command} at {server}: {text}"
        );
        text
    };
    let audit = run(&reader.grpc_url(), "audit");
    assert!(audit.contains("audit OK"), "{audit}");
    // moto refuses unauthenticated reads (403, and 500 once a public-read bucket
    // policy is set), so the bucket's objects are copied as they are into a directory
    // and served by a plain static file server: what any web server or CDN in front of
    // the bucket would do.
    let copy = dir.path().join("bucket-copy");
    let objects = bucket(&endpoint);
    let mut listing = objects.store().list(None);
    let mut copied = 0;
    while let Some(meta) = listing.next().await {
        let path = meta.unwrap().location.to_string();
        if path.starts_with("staging/") {
            continue;
        }
        let bytes = objects.get(&path).await.unwrap().unwrap();
        let file = copy.join(&path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
        copied += 1;
    }
    let port = cluster_common::free_port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .arg("--directory")
        .arg(&copy)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    cluster_common::wait_for_port(port, &mut server, "python3 -m http.server");
    let _server = cluster_common::Service { child: server };
    let fsck = run(&format!("http://127.0.0.1:{port}"), "fsck");
    assert!(fsck.contains("fsck OK"), "{fsck} ({copied} objects copied)");
    reader.terminate();
    for (i, time) in failovers.iter().enumerate() {
        println!("failover time {}: {time:?}", i + 1);
    }
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
}
