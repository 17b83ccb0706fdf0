//! What the cluster-mode process tests share: moto's S3 server and a one-member
//! etcd on loopback ports, each killed when dropped, and a client of the test bucket.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use merklog_cluster::Bucket;
use object_store::aws::AmazonS3Builder;

pub(crate) const ORIGIN: &str = "cluster.example/log";
pub(crate) const BUCKET: &str = "merklog-cluster-test";
pub(crate) const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "merklog-test"),
    ("AWS_SECRET_ACCESS_KEY", "merklog-test"),
    ("AWS_REGION", "us-east-1"),
];

/// A helper service (moto, etcd), killed when dropped.
pub(crate) struct Service {
    pub(crate) child: Child,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn find(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

/// The moto and etcd binaries, installing them if needed; `None` (with the reason
/// printed) if they cannot be had.
pub(crate) fn prerequisites() -> Option<(PathBuf, PathBuf)> {
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

/// A loopback port nothing listens on, never handed out twice in this process.
///
/// The port is released before a child binds it, so the kernel may offer it again to
/// the next probe; tests starting services in parallel would then race for one port.
pub(crate) fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

pub(crate) fn wait_for_port(port: u16, child: &mut Child, what: &str) {
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
pub(crate) async fn start_s3(moto: &Path, log_path: &Path) -> (Service, String) {
    let port = free_port();
    let log = std::fs::File::create(log_path).unwrap();
    let mut child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, "moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    // Accepting a connection can precede serving requests; retry while moto runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = reqwest::Client::new()
            .put(format!("{endpoint}/{BUCKET}"))
            .send()
            .await;
        match created {
            Ok(answer) if answer.status().is_success() => break,
            Ok(answer) => panic!("creating the bucket: {}", answer.status()),
            Err(error) => {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(log_path).unwrap_or_default();
                    panic!("moto_server exited with {status} ({error}); its log:\n{log}");
                }
                assert!(
                    Instant::now() < deadline,
                    "moto_server did not serve within 30 s: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    (Service { child }, endpoint)
}

/// A one-member etcd on loopback ports; returns its client port.
pub(crate) async fn start_etcd(etcd: &Path, dir: &Path) -> (Service, u16) {
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

pub(crate) fn bucket(endpoint: &str) -> Bucket {
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
