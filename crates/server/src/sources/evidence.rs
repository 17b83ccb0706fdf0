//! Equivocation evidence on disk: one JSON file per refused envelope in
//! `<data-dir>/source-evidence/`, written to a temporary name, synced, renamed and
//! the directory synced, so a file either exists whole or not at all. Read back at
//! start into the tracker.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::tracker::Evidence;

/// The evidence directory inside the data directory.
pub(crate) const EVIDENCE_DIR: &str = "source-evidence";

/// Writes `evidence` durably; returns the file's path.
pub(crate) fn save(dir: &Path, evidence: &Evidence) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(evidence).map_err(std::io::Error::other)?;
    let name = format!(
        "{}-{}-{}.json",
        evidence.seen_unix_ms,
        sanitize(&evidence.source),
        evidence.sequence
    );
    let path = dir.join(&name);
    let temporary = dir.join(format!(".{name}.tmp"));
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&json)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)?;
    // Durable here: the file under its final name once the directory is synced. A
    // crash before leaves at most a temporary file, ignored at start.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// Every evidence file of the directory (none if it does not exist); unreadable
/// files are skipped with a warning.
pub(crate) fn load_all(dir: &Path) -> Vec<Evidence> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice::<Evidence>(&bytes).map_err(|e| e.to_string()))
        {
            Ok(evidence) => out.push(evidence),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipping an unreadable evidence file")
            }
        }
    }
    out.sort_by_key(|e| (e.seen_unix_ms, e.sequence));
    out
}

/// A file-name-safe rendering of a source name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
