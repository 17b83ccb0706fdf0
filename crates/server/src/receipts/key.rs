//! The receipt key on disk, next to the log key and handled the same way:
//! `<data-dir>/receipt.key` holds `<ed25519|es256>:<base64 secret>` (mode 0600,
//! written once with `create_new`, refused when group or others can read it, through
//! `merklog_note::keyfile`), and `<data-dir>/receipt.pub` the public key text
//! (`<ed25519|es256>:<base64 public key>`) for operators to hand to verifiers.
//!
//! It is a separate key from the log key: receipts are COSE signatures, checkpoints
//! signed notes, and neither signature can be replayed as the other.

use std::io::Write as _;
use std::path::Path;

use merklog_note::{SignerKeyText, keyfile};
use merklog_receipt::{Algorithm, ReceiptSigner as _, SecretKey};

use crate::ServerError;

/// File name of the receipt key inside the data directory.
pub const RECEIPT_KEY_FILE: &str = "receipt.key";
/// File name of the receipt public key inside the data directory.
pub const RECEIPT_PUB_FILE: &str = "receipt.pub";

fn identity(message: String) -> ServerError {
    ServerError::Identity(message)
}

/// Loads `receipt.key` from `data_dir`, or (when `create` is set and there is none)
/// generates one of `algorithm` and writes it. An existing key of another algorithm is
/// refused: its receipts would change algorithm silently. `None`: no key and `create`
/// unset (a read-only node).
pub fn load_or_create(
    data_dir: &Path,
    algorithm: Algorithm,
    create: bool,
) -> Result<Option<SecretKey>, ServerError> {
    let path = data_dir.join(RECEIPT_KEY_FILE);
    let key = if path.exists() {
        let text = keyfile::read_signer_key(&path).map_err(ServerError::Key)?;
        let key = SecretKey::from_secret_text(text.expose_secret())
            .map_err(|e| identity(format!("parsing {}: {e}", path.display())))?;
        if key.algorithm() != algorithm {
            return Err(identity(format!(
                "{} is an {} key but receipt-algorithm is {}; set receipt-algorithm = \"{}\", \
                 or move the file away to generate a new receipt key",
                path.display(),
                key.algorithm().name(),
                algorithm.name(),
                key.algorithm().name()
            )));
        }
        key
    } else if create {
        let key = generate(algorithm)?;
        let text = SignerKeyText::new(key.to_secret_text());
        keyfile::write_signer_key(&path, &text).map_err(ServerError::Key)?;
        tracing::info!(
            path = %path.display(),
            public_key = %key.public_key().to_text(),
            "created the receipt key"
        );
        key
    } else {
        return Ok(None);
    };
    write_public(
        &data_dir.join(RECEIPT_PUB_FILE),
        &key.public_key().to_text(),
    )?;
    Ok(Some(key))
}

/// A fresh key from the operating system's random source (a P-256 scalar is drawn
/// again in the negligible case it is out of range).
fn generate(algorithm: Algorithm) -> Result<SecretKey, ServerError> {
    loop {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut *secret)
            .map_err(|e| ServerError::Config(format!("no randomness for the receipt key: {e}")))?;
        if let Ok(key) = SecretKey::from_bytes(algorithm, &secret) {
            return Ok(key);
        }
    }
}

/// Writes the public key file, or checks an existing one matches.
fn write_public(path: &Path, text: &str) -> Result<(), ServerError> {
    let io = |source| ServerError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(stored) if stored.trim_end() == text => Ok(()),
        Ok(stored) => Err(identity(format!(
            "{} holds {:?}, which is not the public key of {RECEIPT_KEY_FILE}",
            path.display(),
            stored.trim_end()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(io)?;
            file.write_all(format!("{text}\n").as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)
        }
        Err(source) => Err(ServerError::Io {
            context: format!("reading {}", path.display()),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn creates_then_reloads_and_refuses_another_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            load_or_create(dir.path(), Algorithm::Es256, false)
                .unwrap()
                .is_none()
        );
        let first = load_or_create(dir.path(), Algorithm::Es256, true)
            .unwrap()
            .unwrap();
        let path = dir.path().join(RECEIPT_KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create(dir.path(), Algorithm::Es256, true)
            .unwrap()
            .unwrap();
        assert_eq!(again.public_key(), first.public_key());
        assert_eq!(
            std::fs::read_to_string(dir.path().join(RECEIPT_PUB_FILE)).unwrap(),
            format!("{}\n", first.public_key().to_text())
        );
        let err = load_or_create(dir.path(), Algorithm::EdDsa, true).unwrap_err();
        assert!(err.to_string().contains("receipt-algorithm"), "{err}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(dir.path(), Algorithm::Es256, true).unwrap_err();
        assert!(err.to_string().contains("chmod"), "{err}");
    }
}
