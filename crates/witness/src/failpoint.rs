//! Test-only crash points around the persist step.
//!
//! A process-level crash test sets one of these (hidden flag `--test-failpoint`, env
//! `MERKLOG_WITNESS_TEST_FAILPOINT`), waits until the witness reports that it reached
//! it, and kills the process with SIGKILL. Reaching a failpoint writes the marker file
//! [`FAILPOINT_MARKER`] in the data directory, then blocks the thread forever: the
//! request never gets an answer. Production configurations leave it unset.

use std::path::Path;

/// Name of the marker file written in the data directory when a failpoint is reached.
pub const FAILPOINT_MARKER: &str = "failpoint-reached";

/// Where the witness stops when the failpoint is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failpoint {
    /// The checkpoint is verified and cosigned in memory; nothing is written yet.
    BeforePersist,
    /// The new state is written and synced to the temporary file, not yet renamed.
    AfterTempWrite,
    /// The new state is durable (renamed, directory synced); no answer sent yet.
    AfterPersist,
}

/// Blocks the calling thread forever if `armed` is `here`, after writing the marker.
pub(crate) fn hit(armed: Option<Failpoint>, here: Failpoint, data_dir: &Path) {
    if armed != Some(here) {
        return;
    }
    let marker = data_dir.join(FAILPOINT_MARKER);
    if let Err(err) = std::fs::write(&marker, format!("{here:?}\n")) {
        tracing::error!(%err, path = %marker.display(), "cannot write failpoint marker");
    }
    tracing::warn!(failpoint = ?here, "test failpoint reached; blocking until killed");
    loop {
        std::thread::park();
    }
}
