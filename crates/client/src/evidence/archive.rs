//! Reading and writing a pack: a directory, or one `.zip` archive (deflated entries in
//! path order with a fixed 1980-01-01 time, so the same pack gives the same archive).
//! Writing is all or nothing: the pack is written beside its final path and renamed.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Component, Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use crate::ClientError;

/// Largest file read from a pack.
const MAX_FILE_LEN: u64 = 256 << 20;
/// Largest pack read (all files together).
const MAX_PACK_LEN: u64 = 16 << 30;
/// Most files read from a pack.
const MAX_FILES: usize = 4_000_000;

fn io(path: &Path) -> impl Fn(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.to_owned(),
        source,
    }
}

fn bad(file: impl Into<String>, reason: impl Into<String>) -> ClientError {
    ClientError::Evidence {
        file: file.into(),
        check: "readable",
        reason: reason.into(),
    }
}

/// Whether `path` ends in `.zip` (then the pack is one archive).
pub fn is_zip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// A path inside the pack: relative, `/`-separated, plain names only.
fn check_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        && !name.contains('\\')
}

/// Reads every file of a pack (directory or `.zip`).
pub fn read_pack(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, ClientError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        let mut files = BTreeMap::new();
        let mut total = 0u64;
        read_dir(path, "", &mut files, &mut total)?;
        Ok(files)
    } else {
        read_zip(path)
    }
}

fn read_dir(
    root: &Path,
    prefix: &str,
    files: &mut BTreeMap<String, Vec<u8>>,
    total: &mut u64,
) -> Result<(), ClientError> {
    let dir = root.join(prefix);
    for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
        let entry = entry.map_err(io(&dir))?;
        let name = entry.file_name().into_string().map_err(|n| {
            bad(
                format!("{prefix}{}", n.to_string_lossy()),
                "not a UTF-8 name",
            )
        })?;
        let inner = format!("{prefix}{name}");
        let kind = entry.file_type().map_err(io(&entry.path()))?;
        if kind.is_dir() {
            read_dir(root, &format!("{inner}/"), files, total)?;
        } else if kind.is_file() {
            let len = entry.metadata().map_err(io(&entry.path()))?.len();
            *total = total.saturating_add(len);
            if len > MAX_FILE_LEN || *total > MAX_PACK_LEN || files.len() >= MAX_FILES {
                return Err(bad(inner, "the pack is larger than a pack may be"));
            }
            let bytes = std::fs::read(entry.path()).map_err(io(&entry.path()))?;
            files.insert(inner, bytes);
        } else {
            return Err(bad(inner, "neither a file nor a directory"));
        }
    }
    Ok(())
}

fn read_zip(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, ClientError> {
    let archive_name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut archive = ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(&archive_name, format!("not a zip archive: {e}")))?;
    if archive.len() > MAX_FILES {
        return Err(bad(&archive_name, "too many entries"));
    }
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| bad(&archive_name, format!("entry {i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| bad(&archive_name, format!("entry {i}: {e}")))?
            .into_owned();
        if entry.is_dir() {
            continue;
        }
        if !check_name(&name) {
            return Err(bad(name, "not a plain relative path"));
        }
        if entry.size() > MAX_FILE_LEN {
            return Err(bad(name, "larger than a pack's file may be"));
        }
        // The declared size is the archive's claim; count what inflates.
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MAX_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| bad(&name, format!("cannot be read from the archive: {e}")))?;
        total = total.saturating_add(bytes.len() as u64);
        if bytes.len() as u64 > MAX_FILE_LEN || total > MAX_PACK_LEN {
            return Err(bad(name, "the pack is larger than a pack may be"));
        }
        if files.insert(name.clone(), bytes).is_some() {
            return Err(bad(name, "in the archive twice"));
        }
    }
    Ok(files)
}

/// A sibling path for writing before the rename.
fn staging(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes a pack to `path` (a directory, or one archive when it ends in `.zip`); an
/// existing path is never overwritten.
pub fn write_pack(path: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), ClientError> {
    if path.exists() {
        return Err(ClientError::Input(format!(
            "{} already exists; not overwriting it",
            path.display()
        )));
    }
    let stage = staging(path);
    let result = if is_zip(path) {
        write_zip(&stage, files)
    } else {
        write_dir(&stage, files)
    };
    let result = result.and_then(|()| std::fs::rename(&stage, path).map_err(io(path)));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&stage);
        let _ = std::fs::remove_file(&stage);
    }
    result
}

fn write_dir(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), ClientError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, bytes) in files {
        let target = dir.join(name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&target, bytes).map_err(io(&target))?;
    }
    Ok(())
}

fn write_zip(path: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), ClientError> {
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut writer = ZipWriter::new(std::io::BufWriter::new(file));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644)
        .large_file(false);
    let zip_error = |e: zip::result::ZipError| ClientError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    };
    // Envelopes, receipts and proofs are small and mostly signatures and hashes:
    // deflate saves next to nothing on them and its per-entry set-up dominates
    // export time.
    let stored = options.compression_method(CompressionMethod::Stored);
    for (name, bytes) in files {
        let incompressible = ["receipts/", "events/", "proofs/"]
            .iter()
            .any(|dir| name.starts_with(dir));
        let options = if incompressible { stored } else { options };
        writer.start_file(name, options).map_err(zip_error)?;
        writer.write_all(bytes).map_err(io(path))?;
    }
    let mut inner = writer.finish().map_err(zip_error)?;
    inner.flush().map_err(io(path))?;
    inner
        .into_inner()
        .map_err(|e| io(path)(e.into_error()))?
        .sync_all()
        .map_err(io(path))
}
