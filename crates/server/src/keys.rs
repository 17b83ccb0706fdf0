//! The log's identity on disk: its origin and its signing key.
//!
//! Layout of the data directory:
//! - `log.key`: the Ed25519 signer key text (`PRIVATE+KEY+<origin>+...`), mode 0600,
//!   written once with `create_new` (never overwritten) by `merklog_note::keyfile`;
//! - `log.vkey`: the public verifier key text, for auditors and clients;
//! - `db/`: the RocksDB database, whose metadata record holds the origin and vkey.
//!
//! The key name is the origin (C2SP tlog-checkpoint recommends it).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use merklog_note::{Ed25519Signer, keyfile, parse_signer_key, validate_key_name};

use crate::ServerError;

/// File name of the signer key inside the data directory.
pub const KEY_FILE: &str = "log.key";
/// File name of the verifier key inside the data directory.
pub const VKEY_FILE: &str = "log.vkey";
/// Directory name of the database inside the data directory.
pub const DB_DIR: &str = "db";

/// Paths of the identity files in a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPaths {
    /// `<data-dir>/log.key`.
    pub key: PathBuf,
    /// `<data-dir>/log.vkey`.
    pub vkey: PathBuf,
}

impl KeyPaths {
    /// The identity files of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            key: data_dir.join(KEY_FILE),
            vkey: data_dir.join(VKEY_FILE),
        }
    }
}

/// Checks that an origin can name the log and its key: a signed-note key name
/// (non-empty, at most 255 bytes, no spaces, no `+`, no control characters).
pub fn check_origin(origin: &str) -> Result<(), ServerError> {
    validate_key_name(origin).map_err(|e| ServerError::Config(format!("origin {origin:?}: {e}")))
}

/// The origin of a new log when none is configured: `<hostname>/merklog`, with
/// the host name lowercased and reduced to the characters a DNS name allows.
pub fn default_origin() -> String {
    let raw = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    origin_from_hostname(&raw)
}

/// `<host>/merklog` for a raw host name (falls back to `localhost`).
fn origin_from_hostname(raw: &str) -> String {
    let host: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    let host = host.trim_matches('.');
    let host = if host.is_empty() { "localhost" } else { host };
    format!("{host}/merklog")
}

/// The log key, loaded or created.
pub struct LogKey {
    /// The signer (its name is the origin).
    pub signer: Ed25519Signer,
    /// Its verifier key text.
    pub vkey: String,
    /// True if this call generated the key.
    pub created: bool,
}

impl std::fmt::Debug for LogKey {
    // The signer holds the private key: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey")
            .field("vkey", &self.vkey)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Loads the key of `origin` from the data directory, generating and writing it
/// (`log.key` 0600, `log.vkey`) when `create` is set and there is none yet.
///
/// An existing key must be named `origin`; a present `log.vkey` must match it.
pub fn load_or_create_key(
    paths: &KeyPaths,
    origin: &str,
    create: bool,
) -> Result<LogKey, ServerError> {
    let (signer, created) = if paths.key.exists() {
        let text = keyfile::read_signer_key(&paths.key).map_err(ServerError::Key)?;
        let signer = parse_signer_key(text.expose_secret())
            .map_err(|e| ServerError::Identity(format!("parsing {}: {e}", paths.key.display())))?;
        (signer, false)
    } else if create {
        let (text, _vkey) = merklog_note::generate_ed25519(origin).map_err(ServerError::Key)?;
        keyfile::write_signer_key(&paths.key, &text).map_err(ServerError::Key)?;
        let signer = parse_signer_key(text.expose_secret()).map_err(ServerError::Key)?;
        (signer, true)
    } else {
        return Err(ServerError::Identity(format!(
            "the database exists but the log key {} is missing; restore it from backup",
            paths.key.display()
        )));
    };
    use merklog_note::Signer as _;
    if signer.name() != origin {
        return Err(ServerError::Identity(format!(
            "the key in {} is named {:?} but the log's origin is {:?}",
            paths.key.display(),
            signer.name(),
            origin
        )));
    }
    let vkey = signer.verifier().to_vkey();
    match std::fs::read_to_string(&paths.vkey) {
        Ok(stored) if stored.trim_end() == vkey => {}
        Ok(stored) => {
            return Err(ServerError::Identity(format!(
                "{} holds {:?}, which is not the public key of {}",
                paths.vkey.display(),
                stored.trim_end(),
                paths.key.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_vkey(&paths.vkey, &vkey)?,
        Err(source) => {
            return Err(ServerError::Io {
                context: format!("reading {}", paths.vkey.display()),
                source,
            });
        }
    }
    Ok(LogKey {
        signer,
        vkey,
        created,
    })
}

/// Writes the public key file (readable by everyone: it is public) and syncs it.
fn write_vkey(path: &Path, vkey: &str) -> Result<(), ServerError> {
    let io = |source| ServerError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    file.write_all(format!("{vkey}\n").as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn origin_from_hostnames() {
        assert_eq!(
            origin_from_hostname("Build-Host.Example.COM\n"),
            "build-host.example.com/merklog"
        );
        assert_eq!(origin_from_hostname(""), "localhost/merklog");
        assert_eq!(origin_from_hostname("we ird+host"), "weirdhost/merklog");
        check_origin(&default_origin()).unwrap();
    }

    #[test]
    fn origins_must_be_key_names() {
        check_origin("example.com/log").unwrap();
        for bad in ["", "a b", "a+b", "line\nbreak"] {
            assert!(check_origin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn creates_then_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        let first = load_or_create_key(&paths, "example.com/log", true).unwrap();
        assert!(first.created);
        let mode = std::fs::metadata(&paths.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_to_string(&paths.vkey).unwrap(),
            format!("{}\n", first.vkey)
        );
        assert!(first.vkey.starts_with("example.com/log+"));

        let second = load_or_create_key(&paths, "example.com/log", false).unwrap();
        assert!(!second.created);
        assert_eq!(second.vkey, first.vkey);
    }

    #[test]
    fn refuses_a_key_of_another_origin_or_a_wrong_vkey() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        load_or_create_key(&paths, "one.example/log", true).unwrap();
        let err = load_or_create_key(&paths, "two.example/log", true).unwrap_err();
        assert!(err.to_string().contains("one.example/log"), "{err}");

        std::fs::write(&paths.vkey, "someone+00000000+AAAA\n").unwrap();
        let err = load_or_create_key(&paths, "one.example/log", false).unwrap_err();
        assert!(err.to_string().contains("not the public key"), "{err}");
    }

    #[test]
    fn a_missing_key_is_not_regenerated_for_an_existing_log() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            load_or_create_key(&KeyPaths::new(dir.path()), "x.example/log", false).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn a_group_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path());
        load_or_create_key(&paths, "x.example/log", true).unwrap();
        std::fs::set_permissions(&paths.key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_or_create_key(&paths, "x.example/log", false).unwrap_err();
        assert!(err.to_string().contains("chmod"), "{err}");
    }
}
