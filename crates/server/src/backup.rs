//! `merklogd backup`: a consistent copy of a data directory, taken while the server
//! may be running, that is itself a data directory merklogd can start on.
//!
//! The database is copied through a RocksDB secondary instance (see
//! `merklog_store::backup` for why not the checkpoint API: it needs the primary
//! handle, which the running server holds). The log key and its verifier key are
//! copied next to it (the key with mode 0600), so are the receipt key (`receipt.key`,
//! `receipt.pub`) and the alert key (`alert.key`, `alert.vkey`), and the configuration files in use
//! (`--config`, the policy, the tokens file) into `config/` of the copy.
//!
//! Restore is a copy back with merklogd stopped. A restored copy that is older than
//! what witnesses have cosigned is refused to sign by the log's start-up check
//! against the witnesses (it would fork the log); serve reads only from it, or find
//! the newer data directory.

use std::fs;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::ServerError;
use crate::keys::{DB_DIR, KeyPaths};
use crate::receipts::key::{RECEIPT_KEY_FILE, RECEIPT_PUB_FILE};
use crate::rules::entry::{ALERT_KEY_FILE, ALERT_VKEY_FILE};

fn io(context: String) -> impl FnOnce(std::io::Error) -> ServerError {
    move |source| ServerError::Io { context, source }
}

/// Copies `data_dir` to `to` (which must not exist) and the given configuration
/// files into `to/config/`; returns a summary for the operator.
pub fn backup(data_dir: &Path, to: &Path, config_files: &[PathBuf]) -> Result<String, ServerError> {
    if to.exists() {
        return Err(ServerError::Config(format!(
            "{} already exists; back up into a new directory",
            to.display()
        )));
    }
    let keys = KeyPaths::new(data_dir);
    if !keys.key.is_file() {
        return Err(ServerError::Config(format!(
            "{} holds no log key ({} is missing): not a merklogd data directory",
            data_dir.display(),
            keys.key.display()
        )));
    }
    fs::create_dir_all(to).map_err(io(format!("creating {}", to.display())))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o700))
        .map_err(io(format!("restricting {}", to.display())))?;
    let summary = merklog_store::backup(&data_dir.join(DB_DIR), &to.join(DB_DIR))?;
    let copied = KeyPaths::new(to);
    copy_private(&keys.key, &copied.key)?;
    fs::copy(&keys.vkey, &copied.vkey).map_err(io(format!("copying {}", keys.vkey.display())))?;
    let mut lines = vec![format!(
        "database: {} rows, {} bytes -> {}",
        summary.rows,
        summary.bytes,
        to.join(DB_DIR).display()
    )];
    lines.push(format!("log key and verifier key -> {}", to.display()));
    // The receipt key is as much the log's identity to receipt verifiers.
    let receipt_key = data_dir.join(RECEIPT_KEY_FILE);
    if receipt_key.is_file() {
        copy_private(&receipt_key, &to.join(RECEIPT_KEY_FILE))?;
        let public = data_dir.join(RECEIPT_PUB_FILE);
        if public.is_file() {
            fs::copy(&public, to.join(RECEIPT_PUB_FILE))
                .map_err(io(format!("copying {}", public.display())))?;
        }
        lines.push(format!("receipt key -> {}", to.display()));
    }
    // The alert key signs the alert entries: their verifiers need it back too.
    let alert_key = data_dir.join(ALERT_KEY_FILE);
    if alert_key.is_file() {
        copy_private(&alert_key, &to.join(ALERT_KEY_FILE))?;
        let public = data_dir.join(ALERT_VKEY_FILE);
        if public.is_file() {
            fs::copy(&public, to.join(ALERT_VKEY_FILE))
                .map_err(io(format!("copying {}", public.display())))?;
        }
        lines.push(format!("alert key -> {}", to.display()));
    }
    if !config_files.is_empty() {
        let dir = to.join("config");
        fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        for file in config_files {
            let name = file
                .file_name()
                .ok_or_else(|| ServerError::Config(format!("{} names no file", file.display())))?;
            copy_private(file, &dir.join(name))?;
            lines.push(format!(
                "{} -> {}",
                file.display(),
                dir.join(name).display()
            ));
        }
    }
    Ok(lines.join("\n"))
}

/// Copies a file that may hold secrets: the copy is created with mode 0600.
fn copy_private(from: &Path, to: &Path) -> Result<(), ServerError> {
    let bytes = fs::read(from).map_err(io(format!("reading {}", from.display())))?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io(format!("creating {}", to.display())))?;
    std::io::Write::write_all(&mut file, &bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", to.display())))
}
