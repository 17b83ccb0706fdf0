//! # merklog-witness
//!
//! An independent transparency-log witness: it remembers the latest checkpoint it
//! cosigned for each configured log, cosigns a new checkpoint only when a consistency
//! proof shows that it extends the old one, and keeps evidence when a log misbehaves.
//!
//! What it implements:
//! - C2SP `tlog-witness` as of C2SP main at commit 95978ca: `POST <submission
//!   prefix>/add-checkpoint` ("add-checkpoint") and `GET <monitoring prefix>/<origin
//!   hash>/checkpoint` ("Monitor Retrieval Mechanism"). The optional `sign-subtree`
//!   call is not implemented.
//! - C2SP `tlog-cosignature` Ed25519 `cosignature/v1` (type 0x04): the witness key is
//!   an Ed25519 cosigner; the spec recommends ML-DSA-44 for new deployments, which
//!   `merklog-note` does not provide yet.
//! - C2SP `signed-note` and `tlog-checkpoint` through `merklog-note`, and RFC 9162
//!   section 2.1.4.2 consistency verification through `merklog-merkle`.
//!
//! - Pull mode ([`follow`]): for each `[[follow]]` log it subscribes to the log's
//!   gRPC `merklog.v1.Log/WatchCheckpoints` (falling back to polling
//!   `GetCheckpoint`), fetches consistency proofs with `GetConsistencyProof`, and
//!   submits what it receives to the same check-persist-cosign path as
//!   `add-checkpoint`, with the same evidence and freezing rules. This is a merklog
//!   extension, not part of C2SP tlog-witness.
//!
//! What it is not: it never reads a log's storage or talks to its sequencer (push
//! mode depends only on the note and Merkle crates; pull mode uses only the log's
//! public gRPC API and trusts nothing it sends beyond the log's signature), it does
//! not send its pull-mode cosignatures back to the log (logs that want them ask
//! through `add-checkpoint`, or read the monitoring API), and it does not
//! authenticate requests beyond the log signature on the checkpoint, as the spec
//! says.
//!
//! ## add-checkpoint answers
//!
//! | status | when |
//! |---|---|
//! | 200 | cosigned; body: the cosignature line(s), `— <name> <base64>\n` |
//! | 400 | malformed body (old size line, proof lines, checkpoint note), old size > checkpoint size |
//! | 403 | no signature from a trusted key of the origin, or a trusted key's signature fails |
//! | 404 | unknown origin |
//! | 409 | old size differs from the stored size; body `<stored size>\n`, content type `text/x.tlog.size` |
//! | 413 | body larger than 1 MiB (refused while streaming) |
//! | 422 | consistency proof fails; same size, different root (a fork); size-0 checkpoint whose root is not SHA-256(""); non-empty proof with `old 0`; log frozen |
//! | 500 | the new state could not be persisted (nothing was cosigned) |
//! | 503 | the log is disabled after such a storage failure, until the witness restarts |
//!
//! Checks run in that order: parsing, origin, signatures, old size vs checkpoint
//! size, the size-0 root, `old 0` with a proof (all before any state is read, and
//! before any consistency verification), then under the log's lock: frozen, fork at
//! the stored size, 409, consistency proof. A request at the stored size with the
//! stored root (a replay) is cosigned again.
//!
//! ## Durability and atomicity
//!
//! Each log has an async mutex held from reading its state through verification,
//! cosigning and persisting, so concurrent requests at one old size advance it once
//! (the others get 409). The new state is written to a temporary file, `fsync`ed,
//! renamed over the old file and the directory `fsync`ed *before* the cosignature is
//! returned; after a crash the state is the old one or the new one, and no
//! cosignature was ever sent for a state that is not on disk (see [`store`]).
//!
//! ## Evidence, alarms and freezing
//!
//! - Fork: a validly signed checkpoint with the stored size and a different root is
//!   proof that the log signed two trees of one size. The witness saves both
//!   checkpoints under `<data-dir>/logs/<hash>/evidence/fork-*`, logs at error level,
//!   increments `merklog_witness_forks_detected_total`, POSTs the optional webhook and
//!   *freezes* the log: a `FROZEN` marker file is written next to its state, and every
//!   later `add-checkpoint` for it is answered **422**. 422 because after a fork every
//!   checkpoint the log can produce is inconsistent with at least one of the two trees
//!   the witness has seen, which is what 422 means in this protocol; unlike 409 it
//!   does not invite a retry, and unlike 5xx it does not suggest a transient fault.
//!   To unfreeze (after investigating): stop the witness, delete the `FROZEN` file,
//!   start it again. The monitoring API keeps serving the last cosigned checkpoint.
//! - Bad consistency proof: answered 422, the request (old size, proof, checkpoint)
//!   saved under `evidence/bad-proof-*` and counted
//!   (`merklog_witness_bad_consistency_proofs_total`), but the log is **not** frozen:
//!   a bad proof alone may be a bug or a tampered answer, and freezing on it would let
//!   anyone holding one signed checkpoint stall the witness.
//! - Evidence is keyed by the signed checkpoint text, so replays add no files, and is
//!   capped per log ([`witness::MAX_EVIDENCE_PER_LOG`]).
//! - A log's state directory is never deleted. Removing a log from the configuration
//!   only stops serving it; adding it back resumes from its stored checkpoint,
//!   evidence and `FROZEN` marker, so remove-and-re-add cannot erase its history.
//!
//! ## Test failpoints
//!
//! [`failpoint`] holds hidden crash points around the persist step, used by the
//! process-level crash test; they are inert unless explicitly configured.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod alarm;
pub mod config;
mod connect;
mod error;
pub mod failpoint;
pub mod follow;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod keys;
mod metrics;
pub mod request;
pub mod store;
pub mod witness;

use std::future::Future;
use std::sync::Arc;

pub use alarm::Alarm;
pub use config::{Cli, FollowConfig, LogConfig, WitnessConfig, WitnessSettings};
pub use error::WitnessError;
pub use http::{TLOG_SIZE_CONTENT_TYPE, router};
pub use keys::{KEY_FILE, VKEY_FILE};
pub use merklog_daemon::LogFormat;
pub use request::{AddCheckpointRequest, encode_add_checkpoint, parse_add_checkpoint};
pub use store::origin_hash_hex;
pub use witness::Witness;

/// Opens the witness described by `config`, prints its verifier key on stdout
/// (for scripts: the key a log's policy needs), writes the bound address to
/// `addr_file` if given (atomically, for scripts that start the witness on port
/// 0), and serves on `listener` until `shutdown` completes: over TLS when
/// `config.tls` is set (the files re-read when they change and on SIGHUP).
pub async fn run(
    config: WitnessConfig,
    listener: tokio::net::TcpListener,
    addr_file: Option<std::path::PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WitnessError> {
    let witness = Witness::open(&config)?;
    let tls = config
        .tls
        .clone()
        .map(|files| {
            merklog_daemon::tls::ReloadingTls::load(
                "witness",
                files,
                merklog_daemon::tls::ALPN_HTTP,
            )
            .map_err(|e| WitnessError::Config(e.to_string()))
        })
        .transpose()?;
    println!("{}", witness.vkey());
    if let Some(path) = &addr_file {
        let addr = listener.local_addr().map_err(WitnessError::Serve)?;
        merklog_daemon::write_addr_file(path, &format!("{addr}\n")).map_err(|source| {
            WitnessError::Storage {
                path: path.clone(),
                source,
            }
        })?;
    }
    match tls {
        Some(tls) => {
            let listener =
                merklog_daemon::tls::TlsListener::new(listener, tls, config.tls_reload_interval)
                    .map_err(WitnessError::Serve)?;
            serve_on(witness, listener, true, shutdown).await
        }
        None => serve(witness, listener, shutdown).await,
    }
}

/// How long [`serve`] waits for the followers to stop after the shutdown signal.
const FOLLOWER_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Serves an opened witness on `listener` until `shutdown` completes, and runs one
/// follower task per followed log (pull mode, [`follow`]) until then.
pub async fn serve(
    witness: Arc<Witness>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WitnessError> {
    serve_on(witness, listener, false, shutdown).await
}

/// [`serve`] on any listener (plain TCP or TLS).
async fn serve_on<L>(
    witness: Arc<Witness>,
    listener: L,
    tls: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WitnessError>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    let addr = axum::serve::Listener::local_addr(&listener).map_err(WitnessError::Serve)?;
    tracing::info!(%addr, vkey = %witness.vkey(), "witness listening");
    if tls {
        tracing::info!("the witness serves TLS");
    }
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    let followers = follow::spawn_followers(&witness, &stop_rx);
    let signal = stop.clone();
    let served = axum::serve(listener, router(witness))
        .with_graceful_shutdown(async move {
            shutdown.await;
            signal.send_replace(true);
        })
        .await
        .map_err(WitnessError::Serve);
    stop.send_replace(true);
    for follower in followers {
        let abort = follower.abort_handle();
        if tokio::time::timeout(FOLLOWER_STOP_TIMEOUT, follower)
            .await
            .is_err()
        {
            tracing::warn!("a follower did not stop in time; aborted");
            abort.abort();
        }
    }
    served
}
