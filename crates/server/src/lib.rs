//! merklog-server: the merklog log server, a thin shell around the sequencer.
//!
//! What it is: the process `merklogd` runs. It
//! - opens (or, on first start, creates) the data directory: the RocksDB store
//!   (`merklog-store`) with its metadata record, and the log key
//!   (`<data-dir>/log.key`, mode 0600, and `<data-dir>/log.vkey`; see [`keys`]);
//! - runs the sequencer (`merklog-log`) and serves it as
//!   - the `merklog.v1.Log` gRPC service (`proto/merklog/v1/log.proto`), with the
//!     standard gRPC health service (`grpc.health.v1.Health`) and server reflection
//!     (v1 and v1alpha) on the same port;
//!   - the C2SP tlog-tiles v0.1.0 HTTP read API on its own port (`/checkpoint`,
//!     `/tile/<L>/<N>[.p/<W>]`, `/tile/entries/<N>[.p/<W>]`; see the `http` module);
//!   - Prometheus metrics on a third port (`/metrics`; see [`telemetry`]);
//! - shuts down gracefully: on the shutdown signal, streams end, in-flight calls
//!   finish, and the sequencer completes the round in flight before the process
//!   exits.
//!
//! - controls access (see [`auth`]): bearer tokens from a tokens file and client
//!   certificate principals, the roles `append`, `read` and `admin`, per-principal
//!   limits, and a log line and metric for every accepted append naming its
//!   principal; `merklogd token create|list|revoke` manages the tokens file.
//!
//! - accepts signed source events (see [`sources`]): a registry of sources and
//!   who may write for them, signature checks before the queue, equivocation
//!   refused with evidence and an alert, per-source completeness (gaps, silence)
//!   served by the `merklog.v1.Sources` service and recorded in the log itself
//!   by log-signed status records.
//!
//! - runs rules over audit events (see [`rules`]): CEL expressions from
//!   `[[rule]]` tables, evaluated after each entry is durable and off the append
//!   path; an alert goes to the `merklog.v1.Alerts` watch stream, a webhook, a
//!   counter and an alert entry in the log signed by the alert key.
//!
//! - ingests OpenTelemetry logs (see [`otlp`]): OTLP/gRPC and OTLP/HTTP on their
//!   own ports (127.0.0.1:4317 and :4318 by default, `off` to disable), each
//!   record one entry; with `schema = "ai-audit/v1"` ([`schema`]) every entry of
//!   every call must be an audit event of that profile.
//!
//! What it is not: it holds no Merkle, signing or storage logic of its own (those
//! live in `merklog-merkle`, `merklog-note`, `merklog-store` and `merklog-log`),
//! and no credential format of its own (`merklog-auth`).
//!
//! # TLS
//! With `tls-cert` and `tls-key` the gRPC and tiles HTTP ports speak TLS only
//! (rustls; the metrics port stays plaintext); the files are re-read when they
//! change and on SIGHUP. With `tls-client-ca` clients may present a certificate
//! from that CA bundle (see [`tls`]). The embedded defaults listen on loopback
//! without TLS; a non-loopback gRPC or tiles address without TLS and without
//! authentication is refused unless `insecure` is set.
//!
//! # Running
//! `merklogd` with no arguments starts on the embedded defaults (data in
//! `./merklog-data`, gRPC on 127.0.0.1:7800, HTTP on :7801, metrics on :7802); see
//! `merklogd --help` and [`config`] for the flags, their `MERKLOGD_*` environment
//! variables and the TOML file (`--print-config` shows the resolved settings). Port 0 picks a free port; the bound addresses are
//! logged and, with `--addr-file`, written as JSON once the server is ready.
//!
//! # Limits
//! - Entries: 1 to `max-entry-bytes` (default and hard cap 65,535, the tlog-tiles
//!   bundle limit) bytes; 1 to `max-entries-per-call` (default 256) per call or
//!   stream request. A call with a bad entry is refused whole with
//!   INVALID_ARGUMENT naming the entry and the limit.
//! - Request size: gRPC messages larger than
//!   `max-entries-per-call × (max-entry-bytes + 4) + 64` bytes (about 16 MiB with
//!   the defaults) cannot be valid and are refused from their length prefix,
//!   before being buffered (tonic answers OUT_OF_RANGE, "message length too large").
//! - `GetEntries` answers at most `max-entries-per-page` (default 256) entries and
//!   3 MiB per call; the client continues from where the page ends.
//! - An append stream processes at most 64 requests at once; beyond that HTTP/2
//!   flow control pushes back on the client.
//!
//! # Status codes
//! No or an invalid credential → UNAUTHENTICATED (HTTP 401); a principal without
//! the role → PERMISSION_DENIED (HTTP 403); a principal over its rate or stream
//! limit → RESOURCE_EXHAUSTED, with the `retry-after` metadata (`250ms`) for a
//! rate; QueueFull → RESOURCE_EXHAUSTED; invalid entries and malformed requests →
//! INVALID_ARGUMENT; indexes or sizes beyond the published tree → OUT_OF_RANGE;
//! unknown leaf hash → NOT_FOUND; storage failures, shutdown and (with a witness
//! policy) an append that waited longer than `append-timeout` for the witness
//! quorum → UNAVAILABLE (retry: appends are idempotent; the waiting entries are
//! durable and get published once the quorum cosigns); the log refusing to sign →
//! FAILED_PRECONDITION (retrying cannot help until an operator repairs the store
//! or, when the witnesses have cosigned a larger tree than the log holds, finds the
//! newer data directory), and health turns NOT_SERVING; a read that finds stored
//! data damaged (a checksum mismatch) → DATA_LOSS (HTTP 500 on the tiles port),
//! health NOT_SERVING for the rest of the process, and the counter
//! `merklog_storage_corruption_total`.
//!
//! # Operating
//! `GET /healthz` and `GET /readyz` on the tiles port (see the `probes` module)
//! answer outside access control. `merklogd backup` ([`backup`]) copies a running
//! data directory; `merklogd fsck` and `--verify-on-start=full` ([`fsck`]) check
//! every stored tile against the entries.
//!
//! # Witnessed checkpoints
//! With `--policy <tlog-policy file>`, a checkpoint is published (served by
//! `GetCheckpoint`, `WatchCheckpoints`, `/checkpoint` and in Append answers) only
//! once the policy's quorum of witnesses has cosigned it; the log collects the
//! cosignatures itself over C2SP tlog-witness (see [`witness_client`] and
//! [`witnessing`]). `fail-open-after` publishes without the quorum after a wait;
//! without it the log fails closed.
#![warn(missing_docs)]

pub mod auth;
pub mod backup;
pub mod cli;
mod cluster;
pub mod config;
mod failover;
pub mod fsck;
mod grpc;
mod health;
pub mod http;
pub mod keys;
pub mod otlp;
mod probes;
mod query;
pub mod receipts;
mod reload;
pub mod rules;
pub mod schema;
mod serve;
mod server;
pub mod sources;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod token_cli;
mod webhook;
pub mod witness_client;
pub mod witnessing;

pub use cli::Cli;
pub use config::ServerConfig;
pub use merklog_daemon::{ConfigDuration, LogFormat, shutdown_signal};
pub use server::{BoundAddrs, Listeners, Server, resolved_config, run};
pub use witness_client::HttpWitness;

/// Everything that can stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Reading, writing or generating the log key failed.
    #[error("log key: {0}")]
    Key(#[source] merklog_note::NoteError),
    /// The data directory's identity (origin, key) does not match.
    #[error("log identity: {0}")]
    Identity(String),
    /// The store could not be opened or initialised.
    #[error("store: {0}")]
    Store(#[from] merklog_store::StoreError),
    /// Cluster mode could not start: the bucket or lock failed, the lock backend
    /// failed its self-test, or the cache, lock and bucket disagree.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The sequencer refused to start.
    #[error("log: {0}")]
    Log(#[from] merklog_log::LogError),
    /// A data check (`fsck`, `verify-on-start=full`) found a problem.
    #[error("data check failed: {0}")]
    Fsck(String),
    /// A listener failed while serving.
    #[error("{listener} server: {message}")]
    Serve {
        /// Which listener (`grpc`, `http`, `metrics`).
        listener: &'static str,
        /// What failed.
        message: String,
    },
}
