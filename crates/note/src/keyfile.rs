//! Signer key files: the crate's only I/O.
//!
//! A key file holds one signer key text and a newline. It is created with mode
//! 0600 and never overwritten; loading refuses a file that group or others can
//! access, naming the file and the `chmod` that fixes it.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use zeroize::Zeroizing;

use crate::NoteError;
use crate::key::SignerKeyText;

/// Key files larger than this are refused (a signer key is under 400 bytes).
const MAX_KEY_FILE_LEN: u64 = 4096;

fn io_error(path: &Path, source: std::io::Error) -> NoteError {
    NoteError::KeyFileIo {
        path: path.to_owned(),
        source,
    }
}

/// Writes `key` to a new file at `path` with mode 0600 and syncs it (and its
/// directory) to disk. Fails if the file already exists: a key is never
/// overwritten.
pub fn write_signer_key(path: &Path, key: &SignerKeyText) -> Result<(), NoteError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let mut contents = Zeroizing::new(String::with_capacity(key.expose_secret().len() + 1));
    contents.push_str(key.expose_secret());
    contents.push('\n');
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))?;
    // Make the new directory entry durable too.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Reads a signer key file written by [`write_signer_key`]. Refuses a file
/// whose mode grants any access to group or others.
pub fn read_signer_key(path: &Path) -> Result<SignerKeyText, NoteError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    // Check the opened file itself, not the path, so a swap cannot slip by.
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(NoteError::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut contents = Zeroizing::new(String::new());
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_string(&mut contents)
        .map_err(|e| io_error(path, e))?;
    if contents.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(io_error(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "key file is too large"),
        ));
    }
    Ok(SignerKeyText::new(contents.trim_end().to_owned()))
}
