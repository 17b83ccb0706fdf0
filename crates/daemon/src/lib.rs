//! merklog-daemon: the plumbing merklog's two daemons, `merklogd` and
//! `merklog-witness`, share, so that both behave alike from the operator's side.
//!
//! What it is:
//! - [`settings`]: one layered merge of a daemon's settings struct (flags, then
//!   environment variables, then the TOML file, then the defaults declared on the
//!   struct), and the duration syntax of every setting (`500ms`, `5s`, `2m`,
//!   `1h30m`);
//! - [`logging`]: the log output (text, or JSON lines of one shape for both
//!   daemons) on stderr;
//! - [`process`]: the shutdown signal (SIGINT, SIGTERM), the address file written
//!   atomically for scripts that start a daemon on port 0, and the fatal error
//!   printed once;
//! - [`tls`]: TLS on a listening socket from PEM files, reloaded on change and on
//!   SIGHUP without a restart.
//!
//! What it is not: it knows nothing of logs, witnesses, storage or the wire
//! formats, so either daemon can use it without pulling in the other's crates.
#![warn(missing_docs)]

pub mod logging;
pub mod process;
pub mod settings;
pub mod tls;

pub use logging::{LogFormat, init_tracing};
pub use process::{error_chain, report_fatal, shutdown_signal, write_addr_file};
pub use settings::{ConfigDuration, layered, parse_duration};

/// What can go wrong in the shared plumbing.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The settings do not resolve: a bad value, an unknown key, an unreadable file.
    #[error("{0}")]
    Settings(String),
    /// The log output could not be set up.
    #[error("log output: {0}")]
    Logging(String),
    /// TLS files that do not load (unreadable, not PEM, a key that does not
    /// match the certificate).
    #[error("TLS: {0}")]
    Tls(String),
}
