//! The tokens file on disk: the `merklogd token` commands (create, list,
//! revoke) and the live set of tokens the server checks, reloaded when the
//! file changes (checked every `tokens-reload-interval`, and at once on
//! SIGHUP). The file's format is `merklog_auth::tokens_file`'s.
//!
//! The file is created with mode 0600 and every change is synced before the
//! command reports it. A change that does not parse is not taken: the server
//! keeps the tokens it had and logs the error (naming the line, never a hash).
//! Every change holds an exclusive lock on `<file>.lock` from its read to its
//! write: `revoke` rewrites the file and renames it into place, so without the
//! lock a token created meanwhile (by another command or the admin API) would
//! be lost with the old file.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use merklog_auth::{Expiry, FILE_HEADER, Principal, Roles, Token, TokenRecord, TokensFile};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::ServerError;
use crate::reload::{WatchedFile, spawn_file_watch};

/// Largest tokens file read (a few hundred bytes per token).
const MAX_TOKENS_FILE_BYTES: u64 = 16 << 20;

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> ServerError {
    move |source| ServerError::Io { context, source }
}

/// The file's bytes, or `None` when it does not exist.
fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, ServerError> {
    let context = || format!("reading the tokens file {}", path.display());
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(context())(e)),
        Ok(meta) if meta.len() > MAX_TOKENS_FILE_BYTES => {
            return Err(ServerError::Config(format!(
                "{} is larger than {MAX_TOKENS_FILE_BYTES} bytes",
                path.display()
            )));
        }
        Ok(_) => {}
    }
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(context())(e)),
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<TokensFile, ServerError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ServerError::Config(format!("{} is not UTF-8", path.display())))?;
    TokensFile::parse(text).map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))
}

/// Reads and parses the tokens file; a missing file holds no tokens.
pub fn read_tokens(path: &Path) -> Result<TokensFile, ServerError> {
    match read_bytes(path)? {
        Some(bytes) => parse(path, &bytes),
        None => Ok(TokensFile::default()),
    }
}

/// Syncs the directory holding `path`, so a created or renamed file survives
/// a crash.
fn sync_parent(path: &Path) -> Result<(), ServerError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error(format!("syncing {}", parent.display())))
}

/// Takes the exclusive change lock of the tokens file at `path`, waiting for
/// another holder; released when the returned file is dropped (or the process
/// dies). The lock is on a separate file because the tokens file's inode is
/// replaced by every revocation.
fn lock_changes(path: &Path) -> Result<std::fs::File, ServerError> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let context = format!("locking {}", lock_path.display());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error(context.clone()))?;
    file.lock().map_err(io_error(context))?;
    Ok(file)
}

/// Creates a token: draws 32 bytes from the operating system's generator,
/// appends its line (hash, principal, roles, expiry) to the file (created
/// with mode 0600 and a header comment if missing), syncs, and returns the
/// token, which exists nowhere else: print it once. Refuses to add to a file
/// that does not parse.
pub fn create_token(
    path: &Path,
    principal: Principal,
    roles: Roles,
    expires: Expiry,
) -> Result<(Token, TokenRecord), ServerError> {
    if roles.is_empty() {
        return Err(ServerError::Config(
            "a token needs at least one --role".into(),
        ));
    }
    let _lock = lock_changes(path)?;
    let existing = read_bytes(path)?;
    if let Some(bytes) = &existing {
        parse(path, bytes)?;
    }
    let mut random = zeroize::Zeroizing::new([0u8; merklog_auth::token::TOKEN_RANDOM_BYTES]);
    getrandom::fill(random.as_mut_slice())
        .map_err(|e| ServerError::Config(format!("the system's random generator failed: {e}")))?;
    let token = Token::from_random(&random);
    let record = TokenRecord {
        hash: token.hash(),
        principal,
        roles,
        expires,
    };
    let context = format!("writing the tokens file {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(context.clone()))?;
    let mut text = String::new();
    if existing.is_none() {
        text.push_str(FILE_HEADER);
    } else if existing
        .as_ref()
        .is_some_and(|b| !b.is_empty() && !b.ends_with(b"\n"))
    {
        text.push('\n');
    }
    text.push_str(&record.to_line());
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error(context))?;
    if existing.is_none() {
        sync_parent(path)?;
    }
    Ok((token, record))
}

/// Which tokens `revoke_tokens` deletes.
#[derive(Debug, Clone)]
pub enum Revoke {
    /// The token whose id (a prefix of at least 8 hex digits of its hash, as
    /// `token list` shows it) is this.
    Id(String),
    /// Every token of this principal.
    Principal(Principal),
}

/// Deletes the matching tokens' lines (comments and other lines stay),
/// writing the new file beside the old one and renaming it into place, synced.
/// Returns the deleted records; none is an error.
pub fn revoke_tokens(path: &Path, which: &Revoke) -> Result<Vec<TokenRecord>, ServerError> {
    let _lock = lock_changes(path)?;
    let bytes = read_bytes(path)?.ok_or_else(|| {
        ServerError::Config(format!("the tokens file {} does not exist", path.display()))
    })?;
    let file = parse(path, &bytes)?;
    let doomed = |record: &TokenRecord| match which {
        Revoke::Principal(principal) => record.principal == *principal,
        Revoke::Id(_) => false,
    };
    let id_hash = match which {
        Revoke::Id(id) => Some(file.resolve_id(id).map_err(ServerError::Config)?),
        Revoke::Principal(_) => None,
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut kept = String::with_capacity(text.len());
    let mut revoked = Vec::new();
    for line in text.lines() {
        let record = TokensFile::parse(line)
            .ok()
            .and_then(|one| one.records().first().cloned());
        match record {
            Some(record) if doomed(&record) || Some(record.hash) == id_hash => {
                revoked.push(record);
            }
            _ => {
                kept.push_str(line);
                kept.push('\n');
            }
        }
    }
    if revoked.is_empty() {
        return Err(ServerError::Config("no token matches".into()));
    }
    let temp = PathBuf::from(format!("{}.new", path.display()));
    let context = format!("writing {}", temp.display());
    let _ = std::fs::remove_file(&temp);
    let mut out = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io_error(context.clone()))?;
    out.write_all(kept.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(io_error(context))?;
    std::fs::rename(&temp, path).map_err(io_error(format!(
        "replacing the tokens file {}",
        path.display()
    )))?;
    sync_parent(path)?;
    Ok(revoked)
}

/// The tokens the server accepts now, shared by every check; replaced whole
/// on reload.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveTokens {
    current: Arc<RwLock<Arc<TokensFile>>>,
}

impl LiveTokens {
    /// Loads the file (a missing one holds no tokens; one that does not parse
    /// stops the start).
    pub(crate) fn load(path: &Path) -> Result<Self, ServerError> {
        let file = read_tokens(path)?;
        if file.is_empty() {
            warn!(path = %path.display(), "the tokens file holds no tokens yet");
        }
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(file))),
        })
    }

    /// The current set.
    pub(crate) fn get(&self) -> Arc<TokensFile> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            // A panic while replacing cannot leave a torn Arc: use it.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub(crate) fn replace(&self, file: TokensFile) {
        let file = Arc::new(file);
        match self.current.write() {
            Ok(mut current) => *current = file,
            Err(poisoned) => *poisoned.into_inner() = file,
        }
    }

    /// Re-reads the file every `interval` and on SIGHUP until `stop` is set;
    /// takes a changed file that parses, keeps the old set otherwise.
    pub(crate) fn spawn_reloader(
        &self,
        path: PathBuf,
        interval: Duration,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let live = self.clone();
        let file = WatchedFile {
            what: "the tokens file",
            metric: "merklog_tokens_reloads_total",
        };
        let read = |path: &Path| read_bytes(path).map_err(|e| e.to_string());
        let shown = path.clone();
        spawn_file_watch(file, path, interval, stop, read, move |bytes| {
            let parsed = match bytes {
                Some(bytes) => parse(&shown, bytes).map_err(|e| e.to_string())?,
                None => TokensFile::default(),
            };
            let records = parsed.records().len();
            live.replace(parsed);
            Ok(records)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use merklog_auth::{Role, TokenHash};

    use super::*;

    #[test]
    fn create_list_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let writer = Principal::new("writer").unwrap();
        let (token, record) = create_token(
            &path,
            writer.clone(),
            Roles::NONE.with(Role::Append),
            Expiry::Never,
        )
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with('#') && !text.contains(token.expose()));
        let (_, other) = create_token(
            &path,
            Principal::new("reader").unwrap(),
            Roles::NONE.with(Role::Read),
            Expiry::At(1),
        )
        .unwrap();
        let file = read_tokens(&path).unwrap();
        assert_eq!(file.records(), [record.clone(), other.clone()]);
        assert_eq!(file.find(&TokenHash::of(token.expose())), Some(&record));

        assert!(revoke_tokens(&path, &Revoke::Id("0000".into())).is_err());
        let gone = revoke_tokens(&path, &Revoke::Id(record.id())).unwrap();
        assert_eq!(gone, [record]);
        let file = read_tokens(&path).unwrap();
        assert_eq!(file.records(), std::slice::from_ref(&other));
        assert!(std::fs::read_to_string(&path).unwrap().starts_with('#'));
        let gone = revoke_tokens(&path, &Revoke::Principal(other.principal.clone())).unwrap();
        assert_eq!(gone, [other]);
        assert!(read_tokens(&path).unwrap().is_empty());
        assert!(read_tokens(&dir.path().join("missing")).unwrap().is_empty());

        std::fs::write(&path, "not a token line\n").unwrap();
        assert!(create_token(&path, writer, Roles::all(), Expiry::Never).is_err());
    }

    /// Creations racing revocations lose no line: without the change lock, a
    /// token appended to the old file while a revocation rewrites it vanishes
    /// with the old inode.
    #[test]
    fn concurrent_creates_and_revokes_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let keep = Principal::new("keep").unwrap();
        let churn = Principal::new("churn").unwrap();
        const ROUNDS: usize = 60;
        let created = std::thread::scope(|scope| {
            let creator = scope.spawn(|| {
                (0..ROUNDS)
                    .map(|_| {
                        create_token(
                            &path,
                            keep.clone(),
                            Roles::NONE.with(Role::Read),
                            Expiry::Never,
                        )
                        .unwrap()
                        .1
                    })
                    .collect::<Vec<_>>()
            });
            scope.spawn(|| {
                for _ in 0..ROUNDS {
                    create_token(
                        &path,
                        churn.clone(),
                        Roles::NONE.with(Role::Read),
                        Expiry::Never,
                    )
                    .unwrap();
                    revoke_tokens(&path, &Revoke::Principal(churn.clone())).unwrap();
                }
            });
            creator.join().unwrap()
        });
        let file = read_tokens(&path).unwrap();
        for record in &created {
            assert!(
                file.find(&record.hash).is_some(),
                "token {} was lost",
                record.id()
            );
        }
        assert_eq!(file.records().len(), ROUNDS);
    }
}
