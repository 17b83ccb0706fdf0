//! The process around a daemon: the shutdown signal, the address file and the
//! fatal error.

use std::error::Error;
use std::path::Path;
use std::process::ExitCode;

use crate::logging::{LogFormat, installed};

/// Completes on SIGTERM or SIGINT (Ctrl-C), logging which one arrived. The
/// handlers are installed when this is called, not when the future is first polled:
/// a signal that arrives in between (say, right after the address file appears) is
/// then caught and stops the daemon cleanly instead of killing it. If a signal
/// cannot be watched, only the other one stops the process. Call it inside the
/// runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let watch = |kind: SignalKind, name: &'static str| match signal(kind) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot watch {name}");
            None
        }
    };
    let mut interrupt = watch(SignalKind::interrupt(), "SIGINT");
    let mut terminate = watch(SignalKind::terminate(), "SIGTERM");
    async move {
        let interrupted = async {
            match interrupt.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let terminated = async {
            match terminate.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = interrupted => tracing::info!("received SIGINT"),
            _ = terminated => tracing::info!("received SIGTERM"),
        }
    }
}

/// Writes `contents` to `path` under a temporary name in the same directory and
/// renames it into place, so a script polling for the file never reads half of
/// it.
pub fn write_addr_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    std::fs::write(&temp, contents)?;
    std::fs::rename(&temp, path)
}

/// An error and its causes in one line. A cause whose text the message already
/// contains (many errors quote their source) is not repeated.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

/// Reports the error that stops `program` once, and returns the failure exit
/// code: as a JSON log line when the JSON log output is installed (so log
/// pipelines see it), else as `<program>: error: <message>` on stderr.
pub fn report_fatal(program: &str, error: &(dyn Error + 'static)) -> ExitCode {
    let message = error_chain(error);
    if installed() == Some(LogFormat::Json) {
        tracing::error!(error = %message, "{program} stopped");
    } else {
        eprintln!("{program}: error: {message}");
    }
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}: {source}")]
    struct Quoting {
        path: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("opening the store")]
    struct Wrapping(#[source] Quoting);

    #[test]
    fn each_cause_appears_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = Wrapping(Quoting {
            path: "/x",
            source: io,
        });
        let line = error_chain(&error);
        assert_eq!(line, "opening the store: reading /x: no such file");
        assert_eq!(line.matches("no such file").count(), 1);
    }

    #[test]
    fn the_address_file_appears_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("addrs");
        write_addr_file(&path, "127.0.0.1:1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "127.0.0.1:1\n");
        assert!(!dir.path().join("addrs.tmp").exists());
    }
}
