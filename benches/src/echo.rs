//! The transport ceiling: a `merklog.v1.Log` server that stores nothing.
//!
//! It answers `Append`, `AppendStream`, `GetCheckpoint`, `GetInclusionProof` and
//! `GetConsistencyProof` with messages of the same shape and size as merklogd's: a
//! real signed checkpoint note (made once at start), an index per entry and a proof
//! of the exact RFC 9162 length for that index and tree size, filled with zeros. It
//! runs tonic with merklogd's transport settings (TCP_NODELAY, the same HTTP/2
//! windows and message size cap), so the same call pattern against both measures
//! what the log itself costs on top of gRPC.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use merklog_merkle::{LeafIndex, TreeSize, consistency_plan, inclusion_plan};
use merklog_note::{Checkpoint, Ed25519Signer, sign_checkpoint};
use merklog_proto::v1::{self, log_server::LogServer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::BenchError;

/// merklogd's HTTP/2 windows (crates/server/src/server.rs).
const STREAM_WINDOW_BYTES: u32 = 2 << 20;
const CONNECTION_WINDOW_BYTES: u32 = 8 << 20;
/// merklogd's per-stream concurrency; answers queue behind it.
const STREAM_MAX_IN_FLIGHT: usize = 64;
/// Most entries per append call the servers the hammer starts accept (W3 sends 1,000):
/// the echo server and the merklogd it is compared with take the same limit.
pub const MAX_ENTRIES_PER_CALL: usize = 1000;
/// merklogd's request cap with the hammer's limits: entries × (65,535 + 4) + 64.
const MAX_REQUEST_BYTES: usize = MAX_ENTRIES_PER_CALL * (65_535 + 4) + 64;
const HASH_BYTES: usize = 32;

/// The origin (and key name) of the echo's checkpoint.
pub const ECHO_ORIGIN: &str = "echo.merklog.example/baseline";
const ECHO_SEED: [u8; 32] = [0x42; 32];

/// The verifier key of the echo's checkpoint signature: its notes verify, its
/// filler proofs do not (a negative test for the hammer's checks).
pub fn echo_vkey() -> Result<String, BenchError> {
    Ok(Ed25519Signer::from_seed(ECHO_ORIGIN, &ECHO_SEED)?
        .verifier()
        .to_vkey())
}

/// The echo service.
#[derive(Debug, Clone)]
pub struct Echo {
    size: Arc<AtomicU64>,
    checkpoint: v1::Checkpoint,
}

impl Echo {
    /// A new echo with a checkpoint note signed by a throwaway key.
    pub fn new() -> Result<Self, BenchError> {
        let origin = ECHO_ORIGIN;
        let signer = Ed25519Signer::from_seed(origin, &ECHO_SEED)?;
        // A ten-digit size, like a busy log's.
        let size = 4_000_000_000u64;
        let root = [0x5a; 32];
        let note = sign_checkpoint(
            &Checkpoint {
                origin: origin.to_owned(),
                size,
                root: root.into(),
                extensions: Vec::new(),
            },
            &signer,
        )?;
        Ok(Self {
            size: Arc::new(AtomicU64::new(0)),
            checkpoint: v1::Checkpoint {
                note: Bytes::from(note),
                size,
                root: Bytes::copy_from_slice(&root),
            },
        })
    }

    fn append_answer(&self, request: &v1::AppendRequest) -> Result<v1::AppendResponse, Status> {
        let n = request.entries.len() as u64;
        if n == 0 || request.entries.len() > MAX_ENTRIES_PER_CALL {
            return Err(Status::invalid_argument("entries: 1 to 1000 per call"));
        }
        let start = self.size.fetch_add(n, Ordering::Relaxed);
        let size = start + n;
        let entries = (start..size)
            .map(|index| {
                Ok(v1::AppendedEntry {
                    index,
                    duplicate: false,
                    inclusion_proof: filler(inclusion_len(index, size)?),
                    tlog_proof: Bytes::new(),
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(v1::AppendResponse {
            checkpoint: Some(self.checkpoint.clone()),
            entries,
        })
    }

    /// The size proofs are shaped for: the larger of what was appended and what the
    /// caller names (readers name the size of the tree they emulate).
    fn read_size(&self, named: Option<u64>) -> u64 {
        self.size.load(Ordering::Relaxed).max(named.unwrap_or(0))
    }
}

fn inclusion_len(index: u64, size: u64) -> Result<usize, Status> {
    inclusion_plan(LeafIndex(index), TreeSize(size))
        .map(|plan| plan.proof_len())
        .map_err(|e| Status::out_of_range(e.to_string()))
}

fn filler(hashes: usize) -> Bytes {
    Bytes::from(vec![0u8; hashes * HASH_BYTES])
}

#[tonic::async_trait]
impl v1::log_server::Log for Echo {
    async fn append(
        &self,
        request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        self.append_answer(request.get_ref()).map(Response::new)
    }

    type AppendStreamStream = ReceiverStream<Result<v1::AppendStreamResponse, Status>>;

    async fn append_stream(
        &self,
        request: Request<Streaming<v1::AppendStreamRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_MAX_IN_FLIGHT);
        let echo = self.clone();
        let mut inbound = request.into_inner();
        tokio::spawn(async move {
            use v1::append_stream_response::Result as Outcome;
            while let Some(Ok(message)) = inbound.next().await {
                let result = match &message.request {
                    Some(request) => echo.append_answer(request),
                    None => Err(Status::invalid_argument("request: missing")),
                };
                let answer = v1::AppendStreamResponse {
                    sequence: message.sequence,
                    result: Some(match result {
                        Ok(response) => Outcome::Response(response),
                        Err(status) => {
                            Outcome::Error(merklog_proto::convert::stream_error(&status))
                        }
                    }),
                };
                if tx.send(Ok(answer)).await.is_err() {
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
        Ok(Response::new(self.checkpoint.clone()))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<v1::GetInclusionProofRequest>,
    ) -> Result<Response<v1::GetInclusionProofResponse>, Status> {
        use v1::get_inclusion_proof_request::Leaf;
        let request = request.into_inner();
        let size = self.read_size(request.tree_size);
        let index = match request.leaf {
            Some(Leaf::Index(index)) => index,
            _ => {
                return Err(Status::invalid_argument(
                    "leaf: the echo serves indexes only",
                ));
            }
        };
        Ok(Response::new(v1::GetInclusionProofResponse {
            index,
            tree_size: size,
            proof: filler(inclusion_len(index, size)?),
            checkpoint: Some(self.checkpoint.clone()),
        }))
    }

    async fn get_receipt(
        &self,
        _request: Request<v1::GetReceiptRequest>,
    ) -> Result<Response<v1::GetReceiptResponse>, Status> {
        Err(Status::unimplemented("the echo server issues no receipts"))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<v1::GetConsistencyProofRequest>,
    ) -> Result<Response<v1::GetConsistencyProofResponse>, Status> {
        let request = request.into_inner();
        let size = self.read_size(request.new_size);
        let len = consistency_plan(TreeSize(request.old_size), TreeSize(size))
            .map(|plan| plan.proof_len())
            .map_err(|e| Status::out_of_range(e.to_string()))?;
        Ok(Response::new(v1::GetConsistencyProofResponse {
            old_size: request.old_size,
            new_size: size,
            proof: filler(len),
            checkpoint: Some(self.checkpoint.clone()),
        }))
    }

    async fn get_entries(
        &self,
        _request: Request<v1::GetEntriesRequest>,
    ) -> Result<Response<v1::GetEntriesResponse>, Status> {
        Err(Status::unimplemented("the echo baseline stores no entries"))
    }

    type WatchCheckpointsStream = ReceiverStream<Result<v1::Checkpoint, Status>>;

    async fn watch_checkpoints(
        &self,
        _request: Request<v1::WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        Err(Status::unimplemented(
            "the echo baseline publishes no checkpoints",
        ))
    }
}

/// Serves the echo on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), BenchError> {
    let service = LogServer::new(Echo::new()?).max_decoding_message_size(MAX_REQUEST_BYTES);
    let incoming = TcpListenerStream::new(listener).map(|stream| {
        stream.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    });
    tonic::transport::Server::builder()
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| BenchError::Setup(format!("echo server: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use v1::log_server::Log as _;

    #[tokio::test]
    async fn answers_have_merklogs_shape() {
        let echo = Echo::new().unwrap();
        let request = v1::AppendRequest {
            entries: vec![Bytes::from_static(b"a"); 5],
            include_tlog_proof: false,
        };
        let answer = echo
            .append(Request::new(request))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.entries.len(), 5);
        assert_eq!(answer.entries[4].index, 4);
        // Index 4 of 5 leaves: one sibling, the root of the first four.
        assert_eq!(answer.entries[4].inclusion_proof.len(), 32);
        assert_eq!(answer.entries[0].inclusion_proof.len(), 3 * 32);
        assert!(
            answer
                .checkpoint
                .unwrap()
                .note
                .starts_with(b"echo.merklog.example")
        );

        let proof = echo
            .get_inclusion_proof(Request::new(v1::GetInclusionProofRequest {
                leaf: Some(v1::get_inclusion_proof_request::Leaf::Index(3)),
                tree_size: Some(1 << 20),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(proof.proof.len(), 20 * 32);
        let empty = v1::AppendRequest::default();
        assert!(echo.append(Request::new(empty)).await.is_err());
    }
}
