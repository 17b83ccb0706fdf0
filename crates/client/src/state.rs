//! The client's memory: the last verified checkpoint of each log, across runs.
//!
//! One small JSON file maps each origin to the verifier key it was verified with
//! and the last verified signed checkpoint (verbatim):
//!
//! ```json
//! {"version":1,"logs":{"example.com/log":{"vkey":"example.com/log+...","size":3,
//!  "root":"<base64>","checkpoint":"example.com/log\n3\n...\n\n— example.com/log ...\n"}}}
//! ```
//!
//! It is written to a temporary file in the same directory, `fsync`ed, renamed
//! over the old file and the directory `fsync`ed, so a crash leaves the old or the
//! new state, never a torn one. A checkpoint is loaded only if it still verifies
//! with the key given now. Saving merges with what is on disk (another run may
//! have advanced further): the larger checkpoint wins, and two different roots for
//! one size are reported as a fork.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::encoding::b64;
use crate::error::InconsistencyKind;
use crate::{ClientError, SignedCheckpoint, TrustedLog};

/// The format version written in the file.
const STATE_VERSION: u32 = 1;

/// State files larger than this are refused.
const MAX_STATE_FILE_LEN: u64 = 16 << 20;

/// The default state file: `$XDG_STATE_HOME/merklog/state.json`, else
/// `$HOME/.local/state/merklog/state.json`; `None` when neither variable is set.
pub fn default_state_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".local").join("state"))
        })?;
    Some(base.join("merklog").join("state.json"))
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateDocument {
    version: u32,
    logs: BTreeMap<String, StoredLog>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredLog {
    /// The verifier key the checkpoint was verified with.
    vkey: String,
    /// Tree size (informative; the checkpoint is authoritative).
    size: u64,
    /// Root, base64 (informative).
    root: String,
    /// The signed checkpoint note, verbatim.
    checkpoint: String,
}

/// A state file on disk (see the module documentation for its format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// A state file at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl Into<String>) -> ClientError {
        ClientError::State {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn read(&self) -> Result<StateDocument, ClientError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(StateDocument {
                    version: STATE_VERSION,
                    logs: BTreeMap::new(),
                });
            }
            Err(source) => {
                return Err(ClientError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let mut text = String::new();
        file.take(MAX_STATE_FILE_LEN + 1)
            .read_to_string(&mut text)
            .map_err(|source| ClientError::Read {
                path: self.path.clone(),
                source,
            })?;
        if text.len() as u64 > MAX_STATE_FILE_LEN {
            return Err(self.error("file is too large"));
        }
        let document: StateDocument =
            serde_json::from_str(&text).map_err(|e| self.error(format!("not valid state: {e}")))?;
        if document.version != STATE_VERSION {
            return Err(self.error(format!(
                "format version {} is not supported (expected {STATE_VERSION})",
                document.version
            )));
        }
        Ok(document)
    }

    /// The last verified checkpoint of `log`, if one is stored. It must verify
    /// with `log`'s key again (its signature only: the witness quorum was checked
    /// when it was stored).
    pub fn load(&self, log: &TrustedLog) -> Result<Option<SignedCheckpoint>, ClientError> {
        let document = self.read()?;
        let Some(stored) = document.logs.get(log.origin()) else {
            return Ok(None);
        };
        self.check_key(log, stored)?;
        let signature_only = TrustedLog::new(log.verifier().clone(), None);
        let checkpoint = signature_only
            .open(stored.checkpoint.as_bytes())
            .map_err(|e| {
                self.error(format!(
                    "the stored checkpoint of {} does not verify: {e}",
                    log.origin()
                ))
            })?;
        Ok(Some(checkpoint))
    }

    fn check_key(&self, log: &TrustedLog, stored: &StoredLog) -> Result<(), ClientError> {
        let vkey = log.vkey();
        if stored.vkey != vkey {
            return Err(self.error(format!(
                "it remembers the log {:?} with the key {}, but the key given now is {vkey}. \
                 A log never changes its key: if this log was deliberately recreated, remove \
                 its entry from the file (or use another --state-file)",
                log.origin(),
                stored.vkey
            )));
        }
        Ok(())
    }

    /// Records `checkpoint` as the last verified one of `log`, merging with the
    /// file's current contents: a larger stored checkpoint (from another run) is
    /// kept, and a different root stored for the same size is reported as a fork.
    pub fn save(&self, log: &TrustedLog, checkpoint: &SignedCheckpoint) -> Result<(), ClientError> {
        let mut document = self.read()?;
        if let Some(stored) = document.logs.get(log.origin()) {
            self.check_key(log, stored)?;
            let signature_only = TrustedLog::new(log.verifier().clone(), None);
            if let Ok(previous) = signature_only.open(stored.checkpoint.as_bytes()) {
                if previous.size() == checkpoint.size() {
                    if previous.root() != checkpoint.root() {
                        return Err(ClientError::inconsistent(
                            InconsistencyKind::Fork,
                            &previous,
                            checkpoint,
                            Vec::new(),
                        ));
                    }
                    return Ok(());
                }
                if previous.size() > checkpoint.size() {
                    return Ok(());
                }
            }
        }
        document.logs.insert(
            log.origin().to_owned(),
            StoredLog {
                vkey: log.vkey(),
                size: checkpoint.size().0,
                root: b64(checkpoint.root().as_bytes()),
                checkpoint: checkpoint.note_text(),
            },
        );
        document.version = STATE_VERSION;
        let json = serde_json::to_string_pretty(&document)
            .map_err(|e| self.error(format!("encoding: {e}")))?;
        write_atomically(&self.path, format!("{json}\n").as_bytes())
    }
}

/// Writes `bytes` to `path` so that readers and crashes see the old or the new
/// contents, never a mix: temporary file, `fsync`, rename, directory `fsync`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ClientError::Io { path, source }
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let Some(name) = path.file_name() else {
        return Err(ClientError::Input(format!(
            "{} is not a file path",
            path.display()
        )));
    };
    // Unique per process, so two runs never write the same temporary file.
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = dir.join(temp_name);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.json");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        // A directory in the way fails without leaving anything behind.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(write_atomically(&blocked, b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_missing_file_is_an_empty_state_but_another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path().join("state.json"));
        assert!(state.read().unwrap().logs.is_empty());
        std::fs::write(state.path(), r#"{"version":2,"logs":{}}"#).unwrap();
        assert!(matches!(state.read(), Err(ClientError::State { .. })));
    }
}
