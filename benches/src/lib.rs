//! merklog-bench: `merklog-hammer`, the load generator that measures merklog against
//! the machine's own limits.
//!
//! What it is: a gRPC client of the `merklog.v1.Log` service (`proto/merklog/v1`)
//! that drives
//! - N writers, as unary calls of one entry, unary calls carrying a batch, or
//!   bidirectional `AppendStream` streams; closed-loop (as fast as answers come) or
//!   open-loop at a fixed offered rate, with latency measured from the scheduled send
//!   time so a stalled server cannot hide its queueing ([`writer`]);
//! - M readers fetching random inclusion and consistency proofs ([`reader`]);
//! - verification of what the log answers ([`verify`]): every distinct checkpoint's
//!   Ed25519 signature (C2SP signed-note, tlog-checkpoint), and the RFC 9162
//!   section 2.1.3.2 inclusion proof of every acknowledged entry or a stated sample of
//!   each answer, plus RFC 9162 section 2.1.4.2 consistency proofs for readers;
//! - two baselines in the same run, so ratios survive a noisy machine: raw RocksDB
//!   writes of the same bytes with the same batch sizes and `sync` ([`rocks`], the
//!   storage ceiling), and a gRPC echo server that stores nothing and answers the same
//!   messages in the same call pattern ([`echo`], the transport ceiling);
//! - the workloads W1 to W6 ([`plan`], run by [`suite`]), reported as a Markdown table and
//!   JSON ([`report`]) with entries/s, latency percentiles (HdrHistogram), proofs/s,
//!   server CPU and peak RSS (from `/proc/<pid>` of the server it spawned) and disk
//!   bytes per entry.
//!
//! It can spawn its own `merklogd` on a temporary data directory (the release binary
//! when one is built), run the server inside its own process (`--in-process`, used
//! by the quick test) or target a running server (`--server`).
//!
//! What it is not: not a test of correctness beyond the proofs it checks, and not a
//! micro-benchmark (those are `criterion` benches in their own crates). It sends
//! traffic to loopback addresses only, and every loop it runs is bounded in time.
#![warn(missing_docs)]

pub mod cli;
pub mod echo;
pub mod metrics;
pub mod otlp;
pub mod payload;
pub mod plan;
pub mod procstat;
pub mod reader;
pub mod report;
pub mod rocks;
pub mod signed;
pub mod stats;
pub mod suite;
pub mod target;
pub mod verify;
pub mod writer;

pub use cli::Cli;

pub use report::Report;
pub use suite::run_suite;

/// Everything that can stop a benchmark run (verification failures are not errors:
/// they are counted and reported, and make the run exit non-zero).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options do not make sense together.
    #[error("usage: {0}")]
    Usage(String),
    /// A file, process or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting to a gRPC endpoint failed.
    #[error("connecting to {url}: {source}")]
    Connect {
        /// The endpoint.
        url: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// A gRPC call needed to set up or observe a run failed.
    #[error("{context}: {code:?}: {message}")]
    Rpc {
        /// What was being done.
        context: String,
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
    /// An in-process server could not start or serve.
    #[error("in-process server: {0}")]
    Server(#[from] merklog_server::ServerError),
    /// The raw RocksDB baseline failed.
    #[error("RocksDB baseline: {0}")]
    RocksDb(#[from] rocksdb::Error),
    /// A key or note could not be parsed or made.
    #[error("note: {0}")]
    Note(#[from] merklog_note::NoteError),
    /// Something the run depends on did not happen (a server did not start in time,
    /// a background task failed).
    #[error("{0}")]
    Setup(String),
}

impl BenchError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// A failed gRPC call with what was being done.
    pub fn rpc(context: impl Into<String>, status: &tonic::Status) -> Self {
        Self::Rpc {
            context: context.into(),
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}
