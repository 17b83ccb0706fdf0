//! The witness's own crash-safe state: one directory per log.
//!
//! Layout under `<data-dir>/logs/<lowercase hex SHA-256(origin)>/`:
//!
//! - `origin`: the origin line, written once; checked on every start so a hash
//!   directory can never be confused with another log's.
//! - `checkpoint`: the latest cosigned checkpoint, a signed note holding the log
//!   signature(s) the witness verified and the witness's own cosignature.
//! - `FROZEN`: present while the log is frozen after a detected fork; holds the reason.
//! - `evidence/<kind>-<id>/`: one directory per piece of evidence (see
//!   [`LogDir::save_evidence`]).
//!
//! Durability: every file is written to a temporary name, `fsync`ed, renamed over its
//! final name, and then the containing directory is `fsync`ed, so after a crash a
//! reader finds either the complete old file or the complete new one, never a torn
//! write. A leftover temporary file is ignored and removed on the next start.
//!
//! A log's directory is never deleted by the witness. Removing a log from the
//! configuration only stops serving it; if it is added again, its directory (latest
//! checkpoint, evidence, `FROZEN` marker) is picked up where it was left, so removing
//! and re-adding a log cannot erase its history.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use merklog_merkle::Hash;

use crate::error::WitnessError;
use crate::failpoint::{self, Failpoint};

/// File name of the latest cosigned checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// File name of the freeze marker; remove it and restart to unfreeze a log.
pub const FROZEN_FILE: &str = "FROZEN";
/// Directory name of a log's evidence.
pub const EVIDENCE_DIR: &str = "evidence";
/// File holding the origin line of the log a directory belongs to.
pub const ORIGIN_FILE: &str = "origin";

const TEMP_SUFFIX: &str = ".tmp";
const TEMP_EVIDENCE_PREFIX: &str = ".tmp-";

/// Lowercase hex SHA-256 of an origin: the log's directory name and its monitoring
/// path component.
pub fn origin_hash_hex(origin: &str) -> String {
    use sha2::Digest as _;
    Hash::from_bytes(sha2::Sha256::digest(origin.as_bytes()).into()).to_string()
}

fn io_err(path: &Path, source: std::io::Error) -> WitnessError {
    WitnessError::Storage {
        path: path.to_path_buf(),
        source,
    }
}

/// Syncs a directory so that renames and creations inside it are durable.
fn sync_dir(dir: &Path) -> Result<(), WitnessError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Creates `dir` (and parents) if missing and makes its entry durable in its parent.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), WitnessError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    sync_dir(parent_dir(dir))
}

/// The directory holding `path`: a bare relative name like `w1` lives in `.`, not in
/// the empty path `Path::parent` returns for it.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Writes `path` atomically: temporary file, fsync, rename, fsync of the directory.
/// `failpoints`: test crash points (see [`crate::failpoint`]), with the data directory.
pub(crate) fn write_atomic(
    path: &Path,
    contents: &[u8],
    failpoints: Option<(Option<Failpoint>, &Path)>,
) -> Result<(), WitnessError> {
    let dir = parent_dir(path);
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(TEMP_SUFFIX);
    let temp = PathBuf::from(temp_name);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(|e| io_err(&temp, e))?;
        file.write_all(contents).map_err(|e| io_err(&temp, e))?;
        // Data must be on disk before the rename can expose it.
        file.sync_all().map_err(|e| io_err(&temp, e))?;
    }
    if let Some((armed, data_dir)) = failpoints {
        failpoint::hit(armed, Failpoint::AfterTempWrite, data_dir);
    }
    // rename(2) replaces the old file atomically; the directory sync makes the new
    // entry survive a power loss.
    fs::rename(&temp, path).map_err(|e| io_err(path, e))?;
    sync_dir(dir)
}

/// One log's state directory.
#[derive(Debug, Clone)]
pub struct LogDir {
    path: PathBuf,
}

impl LogDir {
    /// Opens (creating if needed) the directory of `origin` under `logs_root`. Fails
    /// if the directory belongs to another origin. Removes temporary files left by a
    /// crash.
    pub fn open(logs_root: &Path, origin: &str) -> Result<LogDir, WitnessError> {
        let path = logs_root.join(origin_hash_hex(origin));
        create_dir_durable(&path)?;
        let dir = LogDir { path };
        let origin_path = dir.path.join(ORIGIN_FILE);
        match fs::read(&origin_path) {
            Ok(stored) => {
                if stored != format!("{origin}\n").as_bytes() {
                    return Err(WitnessError::CorruptState {
                        path: origin_path,
                        reason: format!("directory does not belong to origin {origin:?}"),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomic(&origin_path, format!("{origin}\n").as_bytes(), None)?;
            }
            Err(e) => return Err(io_err(&origin_path, e)),
        }
        dir.remove_temporaries()?;
        Ok(dir)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn remove_temporaries(&self) -> Result<(), WitnessError> {
        let mut temp_name = self.path.join(CHECKPOINT_FILE).into_os_string();
        temp_name.push(TEMP_SUFFIX);
        let temp = PathBuf::from(temp_name);
        match fs::remove_file(&temp) {
            Ok(()) => tracing::warn!(path = %temp.display(), "removed unfinished state write"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&temp, e)),
        }
        let evidence = self.path.join(EVIDENCE_DIR);
        let entries = match fs::read_dir(&evidence) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&evidence, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&evidence, e))?;
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(TEMP_EVIDENCE_PREFIX)
            {
                let p = entry.path();
                fs::remove_dir_all(&p).map_err(|e| io_err(&p, e))?;
            }
        }
        Ok(())
    }

    /// The latest cosigned checkpoint, if the witness ever cosigned one.
    pub fn load_checkpoint(&self) -> Result<Option<Vec<u8>>, WitnessError> {
        let path = self.path.join(CHECKPOINT_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Durably replaces the latest cosigned checkpoint. When this returns `Ok`, the
    /// new state survives a crash or power loss; on error, the old state is intact.
    pub fn store_checkpoint(
        &self,
        note: &[u8],
        armed: Option<Failpoint>,
        data_dir: &Path,
    ) -> Result<(), WitnessError> {
        failpoint::hit(armed, Failpoint::BeforePersist, data_dir);
        write_atomic(
            &self.path.join(CHECKPOINT_FILE),
            note,
            Some((armed, data_dir)),
        )?;
        failpoint::hit(armed, Failpoint::AfterPersist, data_dir);
        Ok(())
    }

    /// The freeze reason (the marker's first line) if the log is frozen.
    pub fn frozen_reason(&self) -> Result<Option<String>, WitnessError> {
        let path = self.path.join(FROZEN_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let first = text.lines().next().unwrap_or_default().trim();
                Ok(Some(if first.is_empty() {
                    "FROZEN marker present".to_owned()
                } else {
                    first.to_owned()
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Durably writes the freeze marker.
    pub fn freeze(&self, reason: &str) -> Result<(), WitnessError> {
        write_atomic(&self.path.join(FROZEN_FILE), reason.as_bytes(), None)
    }

    /// Number of evidence entries on disk.
    pub fn evidence_count(&self) -> Result<usize, WitnessError> {
        Ok(self.evidence_entries()?.len())
    }

    /// Paths of the evidence entries on disk, sorted by name.
    pub fn evidence_entries(&self) -> Result<Vec<PathBuf>, WitnessError> {
        let evidence = self.path.join(EVIDENCE_DIR);
        let entries = match fs::read_dir(&evidence) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&evidence, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&evidence, e))?;
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with(TEMP_EVIDENCE_PREFIX)
            {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Durably saves one piece of evidence as the directory `evidence/<name>/` holding
    /// `files`. The directory is assembled under a temporary name (files synced, the
    /// directory synced) and renamed into place, then `evidence/` is synced: after a
    /// crash it is either complete or absent. Returns `None` without writing when
    /// evidence of that name already exists (a replay of the same evidence).
    pub fn save_evidence(
        &self,
        name: &str,
        files: &[(&str, &[u8])],
    ) -> Result<Option<PathBuf>, WitnessError> {
        let evidence = self.path.join(EVIDENCE_DIR);
        create_dir_durable(&evidence)?;
        let target = evidence.join(name);
        if target.exists() {
            return Ok(None);
        }
        let temp = evidence.join(format!("{TEMP_EVIDENCE_PREFIX}{name}"));
        if temp.exists() {
            fs::remove_dir_all(&temp).map_err(|e| io_err(&temp, e))?;
        }
        fs::create_dir(&temp).map_err(|e| io_err(&temp, e))?;
        for (file_name, contents) in files {
            let path = temp.join(file_name);
            let mut file = File::create(&path).map_err(|e| io_err(&path, e))?;
            file.write_all(contents).map_err(|e| io_err(&path, e))?;
            file.sync_all().map_err(|e| io_err(&path, e))?;
        }
        sync_dir(&temp)?;
        fs::rename(&temp, &target).map_err(|e| io_err(&target, e))?;
        sync_dir(&evidence)?;
        Ok(Some(target))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_relative_name_lives_in_the_current_directory() {
        assert_eq!(super::parent_dir(Path::new("w1")), Path::new("."));
        assert_eq!(super::parent_dir(Path::new("./w1")), Path::new("."));
        assert_eq!(super::parent_dir(Path::new("a/w1")), Path::new("a"));
        assert_eq!(super::parent_dir(Path::new("/w1")), Path::new("/"));
    }

    use super::*;

    #[test]
    fn origin_hash_is_lowercase_sha256() {
        // SHA-256("abc"), a FIPS 180-2 known answer.
        assert_eq!(
            origin_hash_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn checkpoint_round_trip_and_temporaries() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LogDir::open(tmp.path(), "example.com/log").unwrap();
        assert_eq!(dir.load_checkpoint().unwrap(), None);
        dir.store_checkpoint(b"one", None, tmp.path()).unwrap();
        dir.store_checkpoint(b"two", None, tmp.path()).unwrap();
        assert_eq!(dir.load_checkpoint().unwrap().as_deref(), Some(&b"two"[..]));

        // A crash after the temporary write leaves a temp file: ignored and removed.
        let temp = dir.path().join("checkpoint.tmp");
        fs::write(&temp, b"torn").unwrap();
        fs::create_dir_all(dir.path().join("evidence/.tmp-x")).unwrap();
        let reopened = LogDir::open(tmp.path(), "example.com/log").unwrap();
        assert!(!temp.exists());
        assert_eq!(reopened.evidence_count().unwrap(), 0);
        assert_eq!(
            reopened.load_checkpoint().unwrap().as_deref(),
            Some(&b"two"[..])
        );
    }

    #[test]
    fn directory_is_bound_to_its_origin() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LogDir::open(tmp.path(), "a").unwrap();
        fs::write(dir.path().join(ORIGIN_FILE), b"b\n").unwrap();
        assert!(matches!(
            LogDir::open(tmp.path(), "a"),
            Err(WitnessError::CorruptState { .. })
        ));
    }

    #[test]
    fn evidence_is_saved_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LogDir::open(tmp.path(), "a").unwrap();
        let first = dir
            .save_evidence("fork-1", &[("x", b"1"), ("y", b"2")])
            .unwrap()
            .unwrap();
        assert_eq!(fs::read(first.join("y")).unwrap(), b"2");
        assert_eq!(dir.save_evidence("fork-1", &[("x", b"3")]).unwrap(), None);
        assert_eq!(fs::read(first.join("x")).unwrap(), b"1");
        assert_eq!(dir.evidence_count().unwrap(), 1);
    }

    #[test]
    fn freeze_marker() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LogDir::open(tmp.path(), "a").unwrap();
        assert_eq!(dir.frozen_reason().unwrap(), None);
        dir.freeze("fork at size 5\ndetails\n").unwrap();
        assert_eq!(
            dir.frozen_reason().unwrap().as_deref(),
            Some("fork at size 5")
        );
        dir.freeze("").unwrap();
        assert_eq!(
            dir.frozen_reason().unwrap().as_deref(),
            Some("FROZEN marker present")
        );
    }
}
