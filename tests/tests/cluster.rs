//! Cluster mode, process-level, on loopback: merklogd with its log in an S3 bucket
//! (moto's S3 server) and its checkpoint fenced by a lock (the bucket's conditional
//! update, or etcd). Appends are acknowledged only once in the bucket, the bucket
//! alone rebuilds the signed root, and a second merklogd on the same bucket and lock
//! whose cache went stale loses its swap and stops signing, publishing nothing.
//!
//! moto and etcd come from `scripts/cluster-prereqs` (run here when they are
//! missing); where they cannot be installed the tests print why and skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_cluster::Bucket;
use merklog_e2e::{Daemon, connect, open_wire_checkpoint, read_verifier};
use merklog_merkle::bundle::split_bundle;
use merklog_merkle::tile::{TILE_WIDTH, entry_bundle_path};
use merklog_merkle::{Hash, hash_leaf};
use merklog_note::open_checkpoint;
use merklog_proto::v1;
use object_store::aws::AmazonS3Builder;

const ORIGIN: &str = "cluster.example/log";
const BUCKET: &str = "merklog-cluster-test";
const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "merklog-test"),
    ("AWS_SECRET_ACCESS_KEY", "merklog-test"),
    ("AWS_REGION", "us-east-1"),
];
/// Each test's whole run, services included.
const DEADLINE: Duration = Duration::from_secs(120);

/// A helper service (moto, etcd), killed when dropped.
struct Service {
    child: Child,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

/// The moto and etcd binaries, installing them if needed; `None` (with the reason
/// printed) if they cannot be had.
fn prerequisites() -> Option<(PathBuf, PathBuf)> {
    if find("moto_server").is_none() || find("etcd").is_none() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster-prereqs");
        let _ = Command::new("bash").arg(script).status();
    }
    match (find("moto_server"), find("etcd")) {
        (Some(moto), Some(etcd)) => Some((moto, etcd)),
        (moto, etcd) => {
            println!(
                "SKIPPED: cluster tests need moto_server ({}) and etcd ({}); \
                 scripts/cluster-prereqs could not install them",
                if moto.is_some() { "found" } else { "missing" },
                if etcd.is_some() { "found" } else { "missing" },
            );
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited at start-up with {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// moto's S3 server on a loopback port, with the test bucket created.
async fn start_s3(moto: &Path, log: &Path) -> (Service, String) {
    let port = free_port();
    let log = std::fs::File::create(log).unwrap();
    let mut child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, "moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{BUCKET}"))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "creating the bucket: {}",
        created.status()
    );
    (Service { child }, endpoint)
}

/// A one-member etcd on loopback ports; returns its client port.
async fn start_etcd(etcd: &Path, dir: &Path) -> (Service, u16) {
    let (client, peer) = (free_port(), free_port());
    let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut child = Command::new(etcd)
        .args(["--name", "merklog-test"])
        .arg("--data-dir")
        .arg(dir.join("etcd"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("merklog-test={peer_url}")])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_port(client, &mut child, "etcd");
    // Listening comes before serving: wait for a read to answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = reqwest::Client::new()
            .post(format!("{client_url}/v3/kv/range"))
            .body(r#"{"key":"cHJvYmU="}"#)
            .send()
            .await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "etcd did not serve within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Service { child }, client)
}

fn bucket(endpoint: &str) -> Bucket {
    let store = AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region(CREDENTIALS[2].1)
        .with_access_key_id(CREDENTIALS[0].1)
        .with_secret_access_key(CREDENTIALS[1].1)
        .build()
        .unwrap();
    Bucket::from_store(Arc::new(store), format!("s3://{BUCKET}"))
}

fn start_node(data_dir: &Path, bucket_url: &str, lock: &str) -> Daemon {
    let args = [
        "--origin",
        ORIGIN,
        "--log-level",
        "info",
        "--cluster-bucket",
        bucket_url,
        "--cluster-lock",
        lock,
    ];
    Daemon::start_with_env(data_dir, &args, &CREDENTIALS)
}

/// Appends `entries` in one call.
async fn append(url: &str, entries: &[Bytes]) -> Result<v1::AppendResponse, tonic::Status> {
    let mut client = connect(url).await.unwrap();
    client
        .append(v1::AppendRequest {
            entries: entries.to_vec(),
            include_tlog_proof: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Rebuilds the log from the bucket alone: the public checkpoint (verified with the
/// log key) and every entry bundle it covers; returns the entries and checks the
/// root.
async fn audit_bucket(bucket: &Bucket, data_dir: &Path) -> (u64, Vec<Bytes>) {
    let note = bucket
        .checkpoint()
        .await
        .unwrap()
        .expect("a public checkpoint");
    let (cp, _) = open_checkpoint(&note, &read_verifier(data_dir), Some(ORIGIN)).unwrap();
    let width = u64::from(TILE_WIDTH);
    let mut entries = Vec::new();
    for index in 0..cp.size.div_ceil(width) {
        let w = (cp.size - index * width).min(width) as u16;
        let path = entry_bundle_path(index, w);
        let bytes = bucket
            .get(&path)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{path} missing"));
        entries.extend(
            split_bundle(&bytes)
                .unwrap()
                .into_iter()
                .map(Bytes::copy_from_slice),
        );
    }
    let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
    assert_eq!(
        merklog_testkit_tree::mth(&leaves),
        cp.root,
        "the bucket's entries rebuild the signed root"
    );
    (cp.size, entries)
}

async fn stale_sequencer_is_fenced(lock: impl Fn(&str) -> String, with_etcd: bool) {
    merklog_e2e::merklogd_binary();
    let Some((moto, etcd)) = prerequisites() else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (_s3, endpoint) = start_s3(&moto, &dir.path().join("moto.log")).await;
    let _etcd = if with_etcd {
        let (service, port) = start_etcd(&etcd, dir.path()).await;
        Some((service, port))
    } else {
        None
    };
    let lock = lock(&_etcd.as_ref().map_or(String::new(), |(_, p)| p.to_string()));
    let bucket_url = format!("s3://{BUCKET}?endpoint={endpoint}");
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));

    let a = start_node(&a_dir, &bucket_url, &lock);
    let mut acked: Vec<(u64, Bytes)> = Vec::new();
    for call in 0..4u64 {
        let entries: Vec<Bytes> = (0..150)
            .map(|i| Bytes::from(format!("node-a call {call} entry {i}")))
            .collect();
        let reply = append(&a.grpc_url(), &entries).await.unwrap();
        let cp = reply.checkpoint.unwrap();
        open_wire_checkpoint(&read_verifier(&a_dir), &cp).unwrap();
        // Acknowledged means in the bucket: the public checkpoint covers the call.
        let public = bucket(&endpoint).checkpoint().await.unwrap().unwrap();
        let (public, _) = open_checkpoint(&public, &read_verifier(&a_dir), Some(ORIGIN)).unwrap();
        assert!(public.size >= cp.size);
        acked.extend(reply.entries.iter().map(|e| e.index).zip(entries));
    }

    // Node B: same key and origin, its own cache, rebuilt from the bucket at start.
    std::fs::create_dir_all(&b_dir).unwrap();
    for file in ["log.key", "log.vkey"] {
        std::fs::copy(a_dir.join(file), b_dir.join(file)).unwrap();
    }
    let b = start_node(&b_dir, &bucket_url, &lock);
    let b_log = std::fs::read_to_string(b_dir.with_extension("log")).unwrap();
    assert!(
        b_log.contains("Rebuilt"),
        "B rebuilt its cache from the bucket:\n{b_log}"
    );
    let backend = if with_etcd {
        "etcd key merklog/checkpoint"
    } else {
        "object-store lock"
    };
    assert!(b_log.contains(backend), "B uses the {backend}:\n{b_log}");

    // A signs on: B's cache and lock version are now stale.
    let more: Vec<Bytes> = (0..10)
        .map(|i| Bytes::from(format!("node-a late {i}")))
        .collect();
    let reply = append(&a.grpc_url(), &more).await.unwrap();
    acked.extend(reply.entries.iter().map(|e| e.index).zip(more));
    let a_final = reply.checkpoint.unwrap();

    let stale = [Bytes::from_static(b"node-b stale entry")];
    let first = append(&b.grpc_url(), &stale).await.unwrap_err();
    assert_eq!(first.code(), tonic::Code::Unavailable, "{first:?}");
    for _ in 0..3 {
        let refused = append(&b.grpc_url(), &stale).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::FailedPrecondition,
            "{refused:?}"
        );
        assert!(
            refused.message().contains("another sequencer"),
            "{refused:?}"
        );
    }
    // B published nothing: the bucket and B's own checkpoint are unchanged.
    let bucket = bucket(&endpoint);
    assert_eq!(bucket.checkpoint().await.unwrap().unwrap(), a_final.note);
    let mut b_client = connect(&b.grpc_url()).await.unwrap();
    let b_cp = b_client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(b_cp.size < a_final.size, "B serves its old checkpoint");

    // A keeps signing; the bucket alone holds every acknowledged entry.
    append(&a.grpc_url(), &[Bytes::from_static(b"node-a after")])
        .await
        .unwrap();
    let (size, entries) = audit_bucket(&bucket, &a_dir).await;
    assert_eq!(size, acked.len() as u64 + 1);
    for (index, entry) in &acked {
        assert_eq!(&entries[*index as usize], entry, "entry {index}");
    }
    assert!(!entries.iter().any(|e| e == &stale[0]));
    a.terminate();
    b.terminate();
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_lock_fences_a_stale_sequencer() {
    stale_sequencer_is_fenced(|_| "object-store".into(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_lock_fences_a_stale_sequencer() {
    stale_sequencer_is_fenced(
        |port| format!("etcd://127.0.0.1:{port}/merklog/checkpoint"),
        true,
    )
    .await;
}
