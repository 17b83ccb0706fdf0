//! Shared helpers: an in-process server on port 0, clients, and a naive RFC 6962
//! tree to check every proof against.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use merklog_merkle::{Hash, LeafIndex, TreeSize, empty_root, hash_children, hash_leaf};
use merklog_note::{Checkpoint, Ed25519Verifier, open_checkpoint, parse_verifier_key};
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1::{self, log_client::LogClient};
use merklog_server::{BoundAddrs, Listeners, Server, ServerConfig, ServerError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub(crate) const ORIGIN: &str = "test.example/log";

/// A server running in this process.
pub(crate) struct TestServer {
    pub(crate) addrs: BoundAddrs,
    pub(crate) origin: String,
    pub(crate) vkey: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

/// The configuration tests start from: loopback port 0 everywhere.
pub(crate) fn test_config(data_dir: &Path) -> ServerConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    ServerConfig {
        data_dir: data_dir.to_owned(),
        listen: any,
        http_listen: any,
        metrics_listen: any,
        origin: Some(ORIGIN.to_owned()),
        ..ServerConfig::default()
    }
}

impl TestServer {
    pub(crate) async fn start(data_dir: &Path) -> Self {
        Self::start_with(test_config(data_dir)).await
    }

    pub(crate) async fn start_with(config: ServerConfig) -> Self {
        Self::try_start(config).await.unwrap()
    }

    pub(crate) async fn try_start(config: ServerConfig) -> Result<Self, ServerError> {
        let listeners = Listeners::bind(&config).await?;
        let addrs = listeners.local_addrs()?;
        let server = Server::open(config).await?;
        let origin = server.origin().to_owned();
        let vkey = server.vkey().to_owned();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listeners, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addrs,
            origin,
            vkey,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub(crate) async fn client(&self) -> LogClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addrs.grpc))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        LogClient::new(channel).max_decoding_message_size(64 << 20)
    }

    pub(crate) async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addrs.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub(crate) fn http(&self, path: &str) -> String {
        format!(
            "http://{}/{}",
            self.addrs.http,
            path.trim_start_matches('/')
        )
    }

    pub(crate) fn verifier(&self) -> Ed25519Verifier {
        parse_verifier_key(&self.vkey).unwrap()
    }

    /// Graceful stop; the server must exit cleanly.
    pub(crate) async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("server did not stop in time")
            .unwrap()
            .unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Opens a wire checkpoint: the signature verifies with the log key, the origin
/// is right, and the convenience fields equal the signed text.
pub(crate) fn open(server: &TestServer, checkpoint: &v1::Checkpoint) -> Checkpoint {
    let (parsed, _) = open_checkpoint(&checkpoint.note, &server.verifier(), Some(&server.origin))
        .expect("checkpoint signature");
    assert_eq!(parsed.size, checkpoint.size);
    assert_eq!(parsed.root.as_bytes(), &checkpoint.root[..]);
    parsed
}

pub(crate) fn entry(tag: &str, i: usize) -> Bytes {
    Bytes::from(format!("{tag}-entry-{i:06}"))
}

pub(crate) fn append_request(entries: Vec<Bytes>, tlog_proof: bool) -> v1::AppendRequest {
    v1::AppendRequest {
        entries,
        include_tlog_proof: tlog_proof,
    }
}

pub(crate) fn proof(bytes: &[u8]) -> Vec<Hash> {
    proof_from_wire("proof", bytes).unwrap()
}

/// A naive RFC 6962 tree over all leaves appended so far.
#[derive(Default, Clone)]
pub(crate) struct NaiveTree {
    pub(crate) entries: Vec<Bytes>,
    pub(crate) leaves: Vec<Hash>,
}

impl NaiveTree {
    pub(crate) fn push(&mut self, entry: Bytes) {
        self.leaves.push(hash_leaf(&entry));
        self.entries.push(entry);
    }

    pub(crate) fn root(&self, size: u64) -> Hash {
        mth(&self.leaves[..size as usize])
    }

    pub(crate) fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        path(index as usize, &self.leaves[..size as usize])
    }

    pub(crate) fn consistency(&self, old: u64, new: u64) -> Vec<Hash> {
        subproof(old as usize, &self.leaves[..new as usize], true)
    }

    /// Checks a served inclusion proof both ways: merklog-merkle's verifier against
    /// the naive root, and equality with the naive path.
    pub(crate) fn check_inclusion(&self, index: u64, size: u64, served: &[Hash]) {
        let root = self.root(size);
        merklog_merkle::verify_inclusion(
            &self.leaves[index as usize],
            LeafIndex(index),
            TreeSize(size),
            served,
            &root,
        )
        .unwrap();
        assert_eq!(
            served,
            self.inclusion(index, size),
            "inclusion {index} in {size}"
        );
    }

    pub(crate) fn check_consistency(&self, old: u64, new: u64, served: &[Hash]) {
        merklog_merkle::verify_consistency(
            TreeSize(old),
            TreeSize(new),
            served,
            &self.root(old),
            &self.root(new),
        )
        .unwrap();
        assert_eq!(
            served,
            self.consistency(old, new),
            "consistency {old} -> {new}"
        );
    }
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 MTH.
pub(crate) fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            hash_children(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// RFC 6962 PATH(m, D[n]).
fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// RFC 6962 SUBPROOF(m, D[n], b).
fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete {
            Vec::new()
        } else {
            vec![mth(leaves)]
        };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], complete);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce from the seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
