//! Files merklogd re-reads while it runs (the tokens file, the sources registry):
//! checked every interval and on SIGHUP, taken only when their bytes changed and
//! they load; a file that does not load leaves what is live in place.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// What a watched file is, for log lines and its reload counter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WatchedFile {
    /// "the tokens file", "the sources file".
    pub what: &'static str,
    /// The counter of reloads, labelled `outcome = ok | error`.
    pub metric: &'static str,
}

impl WatchedFile {
    fn outcome(self, outcome: &'static str) {
        metrics::counter!(self.metric, "outcome" => outcome).increment(1);
    }
}

/// Watches `path` until `stop` is set. `read` returns the file's bytes (`None` when
/// it is missing); when they differ from the last ones, `load` takes them and
/// answers how many records are live now, or why the file does not load.
pub(crate) fn spawn_file_watch<R, L>(
    file: WatchedFile,
    path: PathBuf,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    read: R,
    mut load: L,
) -> JoinHandle<()>
where
    R: Fn(&std::path::Path) -> Result<Option<Vec<u8>>, String> + Send + 'static,
    L: FnMut(Option<&[u8]>) -> Result<usize, String> + Send + 'static,
{
    tokio::spawn(async move {
        let what = file.what;
        let mut last = read(&path).ok().flatten();
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|error| warn!(%error, "no SIGHUP reload of {what}"))
            .ok();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let sighup = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => {}
                _ = sighup => {}
                _ = stop.changed() => return,
            }
            let bytes = match read(&path) {
                Ok(bytes) => bytes,
                Err(error) => {
                    warn!(%error, "reading {what} failed; keeping what is loaded");
                    file.outcome("error");
                    continue;
                }
            };
            if bytes == last {
                continue;
            }
            let loaded = load(bytes.as_deref());
            last = bytes;
            match loaded {
                Ok(records) => {
                    info!(path = %path.display(), records, "reloaded {what}");
                    file.outcome("ok");
                }
                Err(error) => {
                    error!(%error, "the changed {what} does not load; keeping what is loaded");
                    file.outcome("error");
                }
            }
        }
    })
}
