//! A fake `merklog.v1.Log` server: an honest in-memory RFC 9162 log whose answers
//! can be corrupted one way at a time, for testing clients against a hostile log.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::Stream;
use merklog_merkle::{Hash, hash_leaf};
use merklog_note::{Checkpoint, Ed25519Signer, parse_signer_key, sign_checkpoint};
use merklog_proto::convert::{checkpoint_to_wire, proof_to_wire};
use merklog_proto::v1::{self, log_server::LogServer};
use merklog_testkit_tree as naive;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// The origin the fake log starts with.
pub const FAKE_ORIGIN: &str = "fake.example/log";

/// One way of lying.
#[derive(Debug, Clone, Default)]
pub struct Tamper {
    /// Flip a bit of every inclusion proof.
    pub inclusion_proof: bool,
    /// Flip a bit of every consistency proof.
    pub consistency_proof: bool,
    /// Serve other bytes for this entry index.
    pub entry_at: Option<u64>,
    /// State a wrong size in the checkpoint message's unsigned field.
    pub wire_size: bool,
    /// Answer an append with one entry too few.
    pub drop_answer: bool,
}

/// What the fake log holds and serves; tests change it through [`FakeServer::with`].
pub struct FakeState {
    /// The key checkpoints are signed with.
    pub signer: Ed25519Signer,
    /// The origin line written in checkpoints.
    pub origin: String,
    /// Every entry appended, in order.
    pub entries: Vec<Bytes>,
    /// Their leaf hashes.
    pub leaves: Vec<Hash>,
    /// The size presented as the latest checkpoint (below `entries.len()` to
    /// roll back).
    pub published: u64,
    /// How the answers lie (nothing by default).
    pub tamper: Tamper,
}

impl FakeState {
    fn checkpoint(&self, size: u64) -> v1::Checkpoint {
        let root = naive::mth(&self.leaves[..size as usize]);
        let body = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            extensions: Vec::new(),
        };
        let note = sign_checkpoint(&body, &self.signer).unwrap();
        let claimed = if self.tamper.wire_size {
            size + 1
        } else {
            size
        };
        checkpoint_to_wire(Bytes::from(note), claimed, &root)
    }

    fn inclusion(&self, index: u64, size: u64) -> Bytes {
        let mut proof = naive::path(index as usize, &self.leaves[..size as usize])
            .expect("callers ask for a leaf below the size");
        if self.tamper.inclusion_proof {
            flip(&mut proof);
        }
        proof_to_wire(&proof)
    }

    fn append(&mut self, entries: Vec<Bytes>) -> v1::AppendResponse {
        let mut answers = Vec::new();
        for entry in entries {
            let leaf = hash_leaf(&entry);
            let (index, duplicate) = match self.leaves.iter().position(|l| *l == leaf) {
                Some(i) => (i as u64, true),
                None => {
                    self.entries.push(entry);
                    self.leaves.push(leaf);
                    (self.leaves.len() as u64 - 1, false)
                }
            };
            answers.push((index, duplicate));
        }
        self.published = self.leaves.len() as u64;
        let size = self.published;
        let mut entries: Vec<_> = answers
            .into_iter()
            .map(|(index, duplicate)| v1::AppendedEntry {
                index,
                duplicate,
                inclusion_proof: self.inclusion(index, size),
                tlog_proof: Bytes::new(),
            })
            .collect();
        if self.tamper.drop_answer {
            entries.pop();
        }
        v1::AppendResponse {
            checkpoint: Some(self.checkpoint(size)),
            entries,
        }
    }
}

fn flip(proof: &mut [Hash]) {
    if let Some(first) = proof.first_mut() {
        let mut bytes = *first.as_bytes();
        bytes[0] ^= 1;
        *first = Hash::from_bytes(bytes);
    }
}

/// The fake service; tests change `state` between calls.
#[derive(Clone)]
pub struct FakeLog {
    /// What it serves.
    pub state: Arc<Mutex<FakeState>>,
    published: Arc<watch::Sender<u64>>,
}

/// A fake log serving on 127.0.0.1, port 0, until dropped.
pub struct FakeServer {
    /// The service (its state is shared with the running server).
    pub log: FakeLog,
    /// The gRPC endpoint, `http://<addr>`.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A fixed signer, so that runs and tests agree on the key.
pub fn fake_signer(name: &str, seed: u8) -> Ed25519Signer {
    Ed25519Signer::from_seed(name, &[seed; 32]).unwrap()
}

impl FakeServer {
    /// Serves a log holding `entries`, signed by `fake_signer(FAKE_ORIGIN, 7)`.
    pub async fn start(entries: &[&str]) -> Self {
        let signer = fake_signer(FAKE_ORIGIN, 7);
        // Round-trip through the text form, as a deployed key would be.
        let signer = parse_signer_key(signer.to_signer_key_text().expose_secret()).unwrap();
        let mut state = FakeState {
            signer,
            origin: FAKE_ORIGIN.to_owned(),
            entries: Vec::new(),
            leaves: Vec::new(),
            published: 0,
            tamper: Tamper::default(),
        };
        if !entries.is_empty() {
            state.append(entries.iter().map(|e| Bytes::from(e.to_string())).collect());
        }
        let (published, _) = watch::channel(state.published);
        let log = FakeLog {
            state: Arc::new(Mutex::new(state)),
            published: Arc::new(published),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let service = LogServer::new(log.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                }),
        );
        Self {
            log,
            url,
            stop: Some(stop),
        }
    }

    /// The verifier key of the honest signer.
    pub fn vkey(&self) -> String {
        use merklog_note::Signer as _;
        self.log
            .state
            .lock()
            .unwrap()
            .signer
            .verifier_key()
            .unwrap()
    }

    /// Runs `f` on the state, then tells watchers the published size.
    pub fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        let mut state = self.log.state.lock().unwrap();
        let out = f(&mut state);
        let published = state.published;
        drop(state);
        self.log.published.send_replace(published);
        out
    }

    /// Appends honestly (whatever the tamper settings), bypassing gRPC.
    pub fn append(&self, entries: &[&str]) {
        self.with(|s| {
            let tamper = std::mem::take(&mut s.tamper);
            s.append(entries.iter().map(|e| Bytes::from(e.to_string())).collect());
            s.tamper = tamper;
        });
    }

    /// Replaces the history with `entries` (same key): a fork when it shares
    /// only a prefix with what clients saw.
    pub fn rewrite(&self, entries: &[&str]) {
        self.with(|s| {
            s.entries.clear();
            s.leaves.clear();
            let tamper = std::mem::take(&mut s.tamper);
            s.append(entries.iter().map(|e| Bytes::from(e.to_string())).collect());
            s.tamper = tamper;
        });
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl v1::log_server::Log for FakeLog {
    async fn append(
        &self,
        request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        let answer = self
            .state
            .lock()
            .unwrap()
            .append(request.into_inner().entries);
        self.published
            .send_replace(self.state.lock().unwrap().published);
        Ok(Response::new(answer))
    }

    type AppendStreamStream = ReceiverStream<Result<v1::AppendStreamResponse, Status>>;

    async fn append_stream(
        &self,
        request: Request<Streaming<v1::AppendStreamRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let log = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(request)) = inbound.message().await {
                let entries = request.request.map(|r| r.entries).unwrap_or_default();
                let answer = log.state.lock().unwrap().append(entries);
                log.published
                    .send_replace(log.state.lock().unwrap().published);
                let response = v1::AppendStreamResponse {
                    sequence: request.sequence,
                    result: Some(v1::append_stream_response::Result::Response(answer)),
                };
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_checkpoint(
        &self,
        _request: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<v1::Checkpoint>, Status> {
        let state = self.state.lock().unwrap();
        Ok(Response::new(state.checkpoint(state.published)))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<v1::GetInclusionProofRequest>,
    ) -> Result<Response<v1::GetInclusionProofResponse>, Status> {
        let request = request.into_inner();
        let state = self.state.lock().unwrap();
        let size = request.tree_size.unwrap_or(state.published);
        if size > state.leaves.len() as u64 {
            return Err(Status::out_of_range("tree size"));
        }
        let index = match request.leaf {
            Some(v1::get_inclusion_proof_request::Leaf::Index(i)) => i,
            Some(v1::get_inclusion_proof_request::Leaf::LeafHash(h)) => state
                .leaves
                .iter()
                .position(|l| l.as_bytes()[..] == h[..])
                .ok_or_else(|| Status::not_found("leaf"))?
                as u64,
            None => return Err(Status::invalid_argument("leaf")),
        };
        if index >= size {
            return Err(Status::out_of_range("index"));
        }
        Ok(Response::new(v1::GetInclusionProofResponse {
            index,
            tree_size: size,
            proof: state.inclusion(index, size),
            checkpoint: Some(state.checkpoint(size)),
        }))
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
        if old == 0 || old > new || new > state.leaves.len() as u64 {
            return Err(Status::out_of_range("sizes"));
        }
        let mut proof = naive::proof(old as usize, &state.leaves[..new as usize])
            .expect("0 < old <= new was checked");
        if state.tamper.consistency_proof {
            flip(&mut proof);
        }
        Ok(Response::new(v1::GetConsistencyProofResponse {
            old_size: old,
            new_size: new,
            proof: proof_to_wire(&proof),
            checkpoint: Some(state.checkpoint(new)),
        }))
    }

    async fn get_entries(
        &self,
        request: Request<v1::GetEntriesRequest>,
    ) -> Result<Response<v1::GetEntriesResponse>, Status> {
        let request = request.into_inner();
        let state = self.state.lock().unwrap();
        if request.start >= request.end || request.end > state.entries.len() as u64 {
            return Err(Status::out_of_range("range"));
        }
        // Small pages, so clients must page.
        let end = request.end.min(request.start + 7);
        let entries = (request.start..end)
            .map(|i| {
                if state.tamper.entry_at == Some(i) {
                    Bytes::from(format!("forged entry {i}"))
                } else {
                    state.entries[i as usize].clone()
                }
            })
            .collect();
        Ok(Response::new(v1::GetEntriesResponse {
            start: request.start,
            entries,
        }))
    }

    type WatchCheckpointsStream = BoxStream<v1::Checkpoint>;

    async fn watch_checkpoints(
        &self,
        _request: Request<v1::WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        let receiver = self.published.subscribe();
        let state = Arc::clone(&self.state);
        let stream = futures::stream::unfold(
            (receiver, state, true),
            |(mut receiver, state, first)| async move {
                if !first && receiver.changed().await.is_err() {
                    return None;
                }
                let size = *receiver.borrow_and_update();
                let checkpoint = state.lock().unwrap().checkpoint(size);
                Some((Ok(checkpoint), (receiver, state, false)))
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
