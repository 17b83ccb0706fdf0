//! Pull mode: the witness follows merklog logs over gRPC by itself.
//!
//! One follower task per `[[follow]]` entry (spawned by [`crate::serve`], stopped
//! with it) connects to the log's `merklog.v1.Log` service and subscribes to
//! `WatchCheckpoints`. When the subscription is refused (for example
//! `UNIMPLEMENTED`) or the stream ends or fails, it polls `GetCheckpoint` every
//! `poll_interval`, and tries the stream again after [`WATCH_RETRY_INTERVAL`]. A
//! failed connection or poll is retried with exponential backoff, from
//! [`BACKOFF_MIN`] up to [`BACKOFF_MAX`].
//!
//! For each checkpoint received, compared with the witness's stored one:
//! - larger: the follower fetches the consistency proof from the stored size
//!   (`GetConsistencyProof`; none when the stored size is 0) and submits old size,
//!   proof and checkpoint to the same entry point as `POST add-checkpoint`: log
//!   signature, consistency, persist, cosign, and the same evidence rules (a failed
//!   proof is saved as evidence; the log is not frozen);
//! - same size, different root: submitted as well, so the witness records the fork
//!   and freezes the log exactly as in push mode;
//! - same size and root: nothing is done. The cosignature timestamp is *not*
//!   refreshed: that would cost one fsync per poll, and a log that wants fresh
//!   timestamps re-sends its checkpoint in push mode;
//! - smaller: the log serves an older checkpoint than one the witness cosigned
//!   (a stale replica, or a rollback). Logged and ignored; only two signed roots at
//!   one size are proof of a fork.
//!
//! Nothing the log sends is trusted: `size` and `root` fields of the wire message
//! are ignored (the signed note is parsed instead), messages are capped at
//! [`MAX_MESSAGE_BYTES`], proofs must hold whole 32-byte hashes and at most 63 of
//! them, and every RPC has a timeout. Cosignatures made in pull mode are not sent
//! anywhere; they are served by the monitoring API like push-mode ones.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use merklog_merkle::Hash;
use merklog_note::{Checkpoint, Note};
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1::{self, log_client::LogClient};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tonic::transport::Channel;

use crate::config::FollowConfig;
use crate::connect::endpoint;
use crate::error::WitnessError;
use crate::metrics::FollowCounters;
use crate::request::{MAX_PROOF_LINES, encode_add_checkpoint};
use crate::witness::Witness;

/// Largest gRPC message accepted from a followed log: a checkpoint note with its
/// signatures, or a proof of at most 63 hashes, is far smaller.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
pub use crate::connect::CONNECT_TIMEOUT;
/// Timeout of one unary RPC (and of opening the checkpoint stream).
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// First delay before reconnecting after a failure; doubles with each failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest delay between reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// While polling, how often the follower tries `WatchCheckpoints` again.
pub const WATCH_RETRY_INTERVAL: Duration = Duration::from_secs(60);

/// Spawns one follower per followed log; each stops soon after `stop` turns true.
pub(crate) fn spawn_followers(
    witness: &Arc<Witness>,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    witness
        .followed()
        .iter()
        .map(|(config, counters)| {
            let follower = Follower {
                witness: witness.clone(),
                config: config.clone(),
                counters: counters.clone(),
                stop: stop.clone(),
                behind_warned: None,
            };
            tokio::spawn(follower.run())
        })
        .collect()
}

/// Where the follower goes next.
enum Next {
    /// Shut down.
    Stop,
    /// Poll `GetCheckpoint` on the current connection.
    Poll,
    /// Subscribe to `WatchCheckpoints` again on the current connection.
    Watch,
    /// Drop the connection and reconnect after a backoff delay.
    Reconnect,
}

/// What one received checkpoint led to.
#[derive(Debug)]
enum Outcome {
    /// Cosigned (the stored state advanced).
    Cosigned,
    /// The witness already cosigned this size and root.
    UpToDate,
    /// Older than the cosigned checkpoint: ignored.
    Behind { stored: u64 },
    /// Frozen or disabled: nothing is submitted for this log.
    Refusing,
}

struct Follower {
    witness: Arc<Witness>,
    config: FollowConfig,
    counters: Arc<FollowCounters>,
    stop: watch::Receiver<bool>,
    /// The last "behind" size warned about, so a stale log does not flood the log.
    behind_warned: Option<u64>,
}

impl Follower {
    async fn run(mut self) {
        tracing::info!(origin = %self.config.origin, url = %self.config.grpc_url, "following log");
        let mut backoff = BACKOFF_MIN;
        'connect: loop {
            if self.stopped() {
                return;
            }
            let mut client = match self.connect().await {
                Ok(Some(client)) => client,
                Ok(None) => return,
                Err(error) => {
                    self.fail(&error);
                    if !self.pause(&mut backoff).await {
                        return;
                    }
                    continue 'connect;
                }
            };
            let mut next = Next::Watch;
            loop {
                next = match next {
                    Next::Stop => return,
                    Next::Watch => self.watch(&mut client, &mut backoff).await,
                    Next::Poll => self.poll(&mut client, &mut backoff).await,
                    Next::Reconnect => {
                        if !self.pause(&mut backoff).await {
                            return;
                        }
                        continue 'connect;
                    }
                };
            }
        }
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `duration` unless stopped first; false when stopped.
    async fn sleep(&mut self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.stop.wait_for(|stop| *stop) => false,
            () = tokio::time::sleep(duration) => true,
        }
    }

    /// Sleeps the current backoff and doubles it; false when stopped.
    async fn pause(&mut self, backoff: &mut Duration) -> bool {
        let delay = *backoff;
        *backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
        self.sleep(delay).await
    }

    fn error(&self, reason: impl Into<String>) -> WitnessError {
        WitnessError::Follow {
            origin: self.config.origin.clone(),
            reason: reason.into(),
        }
    }

    fn fail(&self, error: &WitnessError) {
        self.counters.count_error();
        tracing::warn!(%error, url = %self.config.grpc_url, "follower error");
    }

    /// Connects; `Ok(None)` when stopped meanwhile.
    async fn connect(&mut self) -> Result<Option<LogClient<Channel>>, WitnessError> {
        let endpoint = endpoint(&self.config.grpc_url, self.witness.follow_tls())
            .map_err(|e| self.error(e))?;
        let connected = tokio::select! {
            _ = self.stop.wait_for(|stop| *stop) => return Ok(None),
            connected = timeout(CONNECT_TIMEOUT, endpoint.connect()) => connected,
        };
        let channel = connected
            .map_err(|_| self.error("connection timed out"))?
            .map_err(|e| self.error(format!("cannot connect: {e}")))?;
        Ok(Some(
            LogClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        ))
    }

    /// Follows the checkpoint stream until it fails, ends, or is refused.
    async fn watch(&mut self, client: &mut LogClient<Channel>, backoff: &mut Duration) -> Next {
        let opened = tokio::select! {
            _ = self.stop.wait_for(|stop| *stop) => return Next::Stop,
            opened = timeout(RPC_TIMEOUT, client.watch_checkpoints(v1::WatchCheckpointsRequest {})) => opened,
        };
        let mut stream = match opened {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                tracing::info!(origin = %self.config.origin, "the log does not offer WatchCheckpoints; polling GetCheckpoint");
                return Next::Poll;
            }
            Ok(Err(status)) => {
                self.fail(&self.error(format!("WatchCheckpoints refused: {status}")));
                return Next::Poll;
            }
            Err(_) => {
                self.fail(&self.error("WatchCheckpoints timed out"));
                return Next::Poll;
            }
        };
        loop {
            let message = tokio::select! {
                _ = self.stop.wait_for(|stop| *stop) => return Next::Stop,
                message = stream.message() => message,
            };
            match message {
                Ok(Some(checkpoint)) => {
                    *backoff = BACKOFF_MIN;
                    // After a failure, wait as long as a poll would: a log streaming
                    // bad checkpoints cannot make the follower spin or flood the logs.
                    if !self.handle(client, checkpoint).await
                        && !self.sleep(self.config.poll_interval).await
                    {
                        return Next::Stop;
                    }
                }
                Ok(None) => {
                    tracing::info!(origin = %self.config.origin, "checkpoint stream ended; polling GetCheckpoint");
                    return Next::Poll;
                }
                Err(status) => {
                    self.fail(&self.error(format!("checkpoint stream failed: {status}")));
                    return Next::Poll;
                }
            }
        }
    }

    /// Polls `GetCheckpoint` until a poll fails (reconnect) or it is time to try
    /// the stream again.
    async fn poll(&mut self, client: &mut LogClient<Channel>, backoff: &mut Duration) -> Next {
        let watch_again = Instant::now() + WATCH_RETRY_INTERVAL;
        loop {
            let answer = tokio::select! {
                _ = self.stop.wait_for(|stop| *stop) => return Next::Stop,
                answer = timeout(RPC_TIMEOUT, client.get_checkpoint(v1::GetCheckpointRequest {})) => answer,
            };
            match answer {
                Ok(Ok(response)) => {
                    *backoff = BACKOFF_MIN;
                    self.handle(client, response.into_inner()).await;
                }
                Ok(Err(status)) => {
                    self.fail(&self.error(format!("GetCheckpoint failed: {status}")));
                    return Next::Reconnect;
                }
                Err(_) => {
                    self.fail(&self.error("GetCheckpoint timed out"));
                    return Next::Reconnect;
                }
            }
            if Instant::now() >= watch_again {
                return Next::Watch;
            }
            if !self.sleep(self.config.poll_interval).await {
                return Next::Stop;
            }
        }
    }

    /// Processes one received checkpoint, counting and logging the outcome; false
    /// when it failed.
    async fn handle(
        &mut self,
        client: &mut LogClient<Channel>,
        checkpoint: v1::Checkpoint,
    ) -> bool {
        self.counters.count_pulled();
        match self.process(client, checkpoint.note).await {
            Ok((Outcome::Cosigned, size)) => {
                self.counters.count_cosigned();
                tracing::debug!(origin = %self.config.origin, size, "cosigned a pulled checkpoint");
            }
            Ok((Outcome::UpToDate | Outcome::Refusing, _)) => {}
            Ok((Outcome::Behind { stored }, size)) => {
                if self.behind_warned != Some(size) {
                    self.behind_warned = Some(size);
                    tracing::warn!(
                        origin = %self.config.origin,
                        size,
                        stored,
                        "the log serves a checkpoint older than one the witness cosigned; ignored"
                    );
                }
            }
            Err(error) => {
                self.fail(&error);
                return false;
            }
        }
        true
    }

    /// Checks a note against the stored state and submits it when there is
    /// something to cosign (or a fork to record). Returns the outcome and the
    /// checkpoint's size.
    async fn process(
        &self,
        client: &mut LogClient<Channel>,
        note_bytes: Bytes,
    ) -> Result<(Outcome, u64), WitnessError> {
        // The wire message's size and root fields are unsigned: read the note.
        let note = Note::parse(&note_bytes)
            .map_err(|e| self.error(format!("malformed checkpoint note: {e}")))?;
        let checkpoint = Checkpoint::from_text(note.text())
            .map_err(|e| self.error(format!("malformed checkpoint: {e}")))?;
        if checkpoint.origin != self.config.origin {
            return Err(self.error(format!(
                "the log sent a checkpoint of origin {:?}",
                checkpoint.origin
            )));
        }
        let size = checkpoint.size;
        // One retry: a push-mode request may advance the state between the read
        // and the submission (answered 409).
        let mut attempts_left = 2u8;
        loop {
            attempts_left = attempts_left.saturating_sub(1);
            let stored = self
                .witness
                .stored_tree(&self.config.origin)
                .await
                .ok_or_else(|| self.error("the followed log is not configured"))?;
            if stored.refusing {
                return Ok((Outcome::Refusing, size));
            }
            let stored_size = match stored.latest {
                Some((stored_size, _)) if size < stored_size => {
                    return Ok((
                        Outcome::Behind {
                            stored: stored_size,
                        },
                        size,
                    ));
                }
                Some((stored_size, root)) if size == stored_size && root == checkpoint.root => {
                    return Ok((Outcome::UpToDate, size));
                }
                Some((stored_size, _)) => stored_size,
                None => 0,
            };
            // Same size, other root: an empty proof; the witness records the fork.
            let proof = if stored_size == 0 || stored_size == size {
                Vec::new()
            } else {
                self.consistency_proof(client, stored_size, size).await?
            };
            let body = encode_add_checkpoint(stored_size, &proof, &note_bytes);
            match self.witness.add_checkpoint(Bytes::from(body)).await {
                Ok(_) => return Ok((Outcome::Cosigned, size)),
                Err(WitnessError::SizeConflict { .. }) if attempts_left > 0 => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Fetches and checks the shape of a consistency proof `old -> new`.
    async fn consistency_proof(
        &self,
        client: &mut LogClient<Channel>,
        old: u64,
        new: u64,
    ) -> Result<Vec<Hash>, WitnessError> {
        let request = v1::GetConsistencyProofRequest {
            old_size: old,
            new_size: Some(new),
        };
        let answer = timeout(RPC_TIMEOUT, client.get_consistency_proof(request))
            .await
            .map_err(|_| self.error("GetConsistencyProof timed out"))?
            .map_err(|status| {
                self.error(format!(
                    "GetConsistencyProof {old} -> {new} failed: {status}"
                ))
            })?
            .into_inner();
        if answer.old_size != old || answer.new_size != new {
            return Err(self.error(format!(
                "asked for a consistency proof {old} -> {new}, got {} -> {}",
                answer.old_size, answer.new_size
            )));
        }
        let proof =
            proof_from_wire("proof", &answer.proof).map_err(|e| self.error(e.to_string()))?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(self.error(format!(
                "consistency proof of {} hashes; at most {MAX_PROOF_LINES} are accepted",
                proof.len()
            )));
        }
        Ok(proof)
    }
}
