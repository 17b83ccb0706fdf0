//! Log output on stderr (stdout is left to what a daemon prints for scripts,
//! such as a newly generated verifier key).
//!
//! JSON lines have one shape in both daemons: `timestamp`, `level`, `target`,
//! then the event's own fields (`message` and any others) at the top level; no
//! span objects, so a log pipeline can parse either daemon's lines alike.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::DaemonError;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// The format installed by [`init_tracing`], if it ran.
static INSTALLED: OnceLock<LogFormat> = OnceLock::new();

/// The format of the installed log output, if any.
pub(crate) fn installed() -> Option<LogFormat> {
    INSTALLED.get().copied()
}

/// Installs the process-wide `tracing` subscriber: `filter` in tracing's
/// env-filter syntax (`info`, `merklog_log=debug,info`), lines in `format` on
/// stderr.
pub fn init_tracing(format: LogFormat, filter: &str) -> Result<(), DaemonError> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| DaemonError::Logging(format!("log-level {filter:?}: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(true)
            .try_init(),
    };
    result.map_err(|e| DaemonError::Logging(format!("installing the log subscriber: {e}")))?;
    let _ = INSTALLED.set(format);
    Ok(())
}
