//! Shared test helpers: an in-memory log (tree, key, proofs) and an in-process witness.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use merklog_merkle::{
    CompactRange, Hash, NodeId, NodeReader, TreeSize, consistency_proof, hash_leaf, root_at,
};
use merklog_note::{
    Checkpoint, CosignatureVerifier, Ed25519Signer, Note, generate_ed25519, parse_signer_key,
    sign_checkpoint,
};
use merklog_witness::{LogConfig, Witness, WitnessConfig, encode_add_checkpoint};

/// A log held in memory: its key and every perfect subtree of its tree.
pub struct TestLog {
    pub origin: String,
    pub signer: Ed25519Signer,
    pub vkey: String,
    /// Distinguishes the leaves of two trees built for one origin (forks).
    pub leaf_prefix: String,
    nodes: HashMap<NodeId, Hash>,
    range: CompactRange,
}

impl TestLog {
    pub fn new(origin: &str) -> TestLog {
        let (skey, vkey) = generate_ed25519(origin).unwrap();
        let signer = parse_signer_key(skey.expose_secret()).unwrap();
        TestLog {
            origin: origin.to_owned(),
            signer,
            vkey,
            leaf_prefix: "entry".into(),
            nodes: HashMap::new(),
            range: CompactRange::new(),
        }
    }

    /// A second tree signed with the same key (for forks), built from other leaves.
    pub fn fork(&self, leaf_prefix: &str) -> TestLog {
        TestLog {
            origin: self.origin.clone(),
            signer: parse_signer_key(self.signer.to_signer_key_text().expose_secret()).unwrap(),
            vkey: self.vkey.clone(),
            leaf_prefix: leaf_prefix.to_owned(),
            nodes: HashMap::new(),
            range: CompactRange::new(),
        }
    }

    pub fn config(&self) -> LogConfig {
        LogConfig {
            origin: self.origin.clone(),
            vkey: self.vkey.clone(),
        }
    }

    pub fn grow_to(&mut self, size: u64) {
        let start = self.range.size().0;
        let leaves: Vec<Hash> = (start..size)
            .map(|i| hash_leaf(format!("{} {i}", self.leaf_prefix).as_bytes()))
            .collect();
        let nodes = &mut self.nodes;
        self.range
            .append(&leaves, |id, hash| {
                nodes.insert(id, *hash);
            })
            .unwrap();
    }

    pub fn root(&self, size: u64) -> Hash {
        root_at(self, TreeSize(size)).unwrap()
    }

    pub fn checkpoint_with_root(&self, size: u64, root: Hash) -> Vec<u8> {
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            extensions: vec![],
        };
        sign_checkpoint(&cp, &self.signer).unwrap()
    }

    pub fn checkpoint(&self, size: u64) -> Vec<u8> {
        self.checkpoint_with_root(size, self.root(size))
    }

    pub fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        if old == 0 {
            return Vec::new();
        }
        consistency_proof(self, TreeSize(old), TreeSize(new)).unwrap()
    }

    /// A correct add-checkpoint body from `old` to `new`.
    pub fn body(&self, old: u64, new: u64) -> Vec<u8> {
        encode_add_checkpoint(old, &self.proof(old, new), &self.checkpoint(new))
    }
}

impl NodeReader for TestLog {
    type Error = Infallible;
    fn read_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Infallible> {
        Ok(ids.iter().map(|id| self.nodes[id]).collect())
    }
}

/// A witness served in-process on a loopback port.
pub struct TestWitness {
    pub addr: SocketAddr,
    pub witness: Arc<Witness>,
    pub data_dir: PathBuf,
    client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn start_witness(data_dir: &Path, logs: &[&TestLog]) -> TestWitness {
    start_witness_with(WitnessConfig::new(
        data_dir,
        logs.iter().map(|l| l.config()).collect(),
    ))
    .await
}

pub async fn start_witness_with(config: WitnessConfig) -> TestWitness {
    let witness = Witness::open(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = witness.clone();
    let task = tokio::spawn(async move {
        merklog_witness::serve(served, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestWitness {
        addr,
        witness,
        data_dir: config.data_dir.clone(),
        client: reqwest::Client::new(),
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl TestWitness {
    pub async fn add(&self, body: Vec<u8>) -> Answer {
        let url = format!(
            "http://{}{}/add-checkpoint",
            self.addr,
            self.witness.submission_prefix()
        );
        let response = self.client.post(url).body(body).send().await.unwrap();
        into_answer(response).await
    }

    pub async fn get_checkpoint(&self, origin: &str) -> Answer {
        let url = format!(
            "http://{}{}/{}/checkpoint",
            self.addr,
            self.witness.monitoring_prefix(),
            merklog_witness::origin_hash_hex(origin)
        );
        into_answer(self.client.get(url).send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        let url = format!("http://{}{path}", self.addr);
        into_answer(self.client.get(url).send().await.unwrap()).await
    }

    pub fn verifier(&self) -> CosignatureVerifier {
        self.witness.cosignature_verifier()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .expect("witness did not stop")
                .unwrap();
        }
    }
}

async fn into_answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.bytes().await.unwrap().to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

/// Checks a 200 answer: exactly one cosignature line, valid for `checkpoint`'s text
/// under the witness key (tlog-cosignature, big-endian timestamp close to now), and
/// usable the way the spec suggests clients use it (appended to the checkpoint and
/// verified as a note). Returns the timestamp.
pub fn check_cosignature(
    verifier: &CosignatureVerifier,
    checkpoint: &[u8],
    answer: &Answer,
) -> u64 {
    assert_eq!(answer.status, 200, "{}", answer.text());
    let text = answer.text();
    assert!(text.starts_with("\u{2014} "), "{text:?}");
    assert!(text.ends_with('\n'));
    assert_eq!(text.matches('\n').count(), 1, "one cosignature line");

    let mut cosigned = checkpoint.to_vec();
    cosigned.extend_from_slice(&answer.body);
    let note = Note::parse(&cosigned).unwrap();
    let cosig = note.signatures().last().unwrap();
    let time = verifier.verify_cosignature(note.text(), cosig).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        time > 0 && time <= now && now - time < 300,
        "timestamp {time} vs now {now}"
    );

    let mut verifiers = merklog_note::Verifiers::new();
    verifiers.add(verifier.clone()).unwrap();
    let verified = note.verify(&verifiers).unwrap();
    assert_eq!(verified.len(), 1);
    time
}

/// The value of `series` (a metric name with its labels, as rendered) on the
/// witness's `/metrics` page. Every series is registered at start, so a missing
/// one is a failure.
pub fn metric(witness: &Witness, series: &str) -> u64 {
    let page = witness.render_metrics();
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse::<u64>().unwrap())
        .unwrap_or_else(|| panic!("{series} is not on the metrics page:\n{page}"))
}

/// The pull-mode counters of one followed log, read from `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowCounts {
    pub pulled: u64,
    pub cosigned: u64,
    pub errors: u64,
}

/// The pull-mode counters of the followed log `origin`.
pub fn follow_counts(witness: &Witness, origin: &str) -> FollowCounts {
    let series = |name: &str| metric(witness, &format!("{name}{{origin=\"{origin}\"}}"));
    FollowCounts {
        pulled: series("merklog_witness_follow_checkpoints_pulled_total"),
        cosigned: series("merklog_witness_follow_cosigned_total"),
        errors: series("merklog_witness_follow_errors_total"),
    }
}
