//! The bucket: a C2SP tlog-tiles log laid out as objects, written create-only.
//!
//! Paths are the tlog-tiles ones ([`TileId::path`], [`entry_bundle_path`]), so the
//! bucket alone is a static tlog-tiles log any HTTP server or CDN can serve:
//!
//! | path | written | content |
//! |------|---------|---------|
//! | `tile/<L>/<N>[.p/<W>]` | create-only, once per width | `W` hashes of 32 bytes |
//! | `tile/entries/<N>[.p/<W>]` | create-only, once per width | `W` × (`u16` BE length ‖ entry) |
//! | `checkpoint` | conditional update after every round, never by a smaller one | the latest signed checkpoint |
//! | `staging/<size>.<hash>` | create-only, before the lock swap | the round's uploads ([`crate::staging`]) |
//! | `lock/checkpoint` | conditional update (object-store lock only) | the fenced checkpoint |
//!
//! A create-only put that meets an existing object reads it back: identical bytes are
//! success (a retried or replayed upload), different bytes are
//! [`ClusterError::Conflict`], carrying both hashes.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use merklog_merkle::tile::{TileId, entry_bundle_path};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};
use sha2::{Digest, Sha256};

use crate::ClusterError;

/// The public checkpoint object.
pub const CHECKPOINT_PATH: &str = "checkpoint";

/// How often [`Bucket::publish_checkpoint`] retries when another writer moved the
/// public checkpoint between its read and its conditional write.
const PUBLISH_ATTEMPTS: usize = 8;

/// A bucket holding one log.
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// The URL it was opened from, for messages.
    url: String,
    /// The public checkpoint as this process last wrote or read it, so that the next
    /// publication is one conditional write, without reading it first.
    public: Arc<Mutex<Option<PublicVersion>>>,
}

/// A public checkpoint's size and the store's version of the object holding it.
#[derive(Debug, Clone)]
struct PublicVersion {
    size: u64,
    version: UpdateVersion,
}

/// The size line of a signed checkpoint note.
pub(crate) fn checkpoint_size(note: &[u8]) -> Result<u64, ClusterError> {
    let text = std::str::from_utf8(note).map_err(|_| ClusterError::Malformed {
        what: "checkpoint".into(),
        reason: "not UTF-8".into(),
    })?;
    text.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| ClusterError::Malformed {
            what: "checkpoint".into(),
            reason: "no size line".into(),
        })
}

/// Lower-case hex SHA-256 of `bytes`: how conflicts and staging names identify content.
pub fn sha256_hex(bytes: &[u8]) -> String {
    merklog_merkle::to_hex(&Sha256::digest(bytes))
}

impl Bucket {
    /// Opens a bucket from its URL:
    /// - `s3://<bucket>[?endpoint=<http(s)://host:port>&region=<region>]`: S3 or an
    ///   S3-compatible server; credentials and other settings come from the standard
    ///   `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    ///   `AWS_SESSION_TOKEN`, `AWS_REGION`). An `http://` endpoint is allowed
    ///   (a loopback test server).
    /// - `file:///<absolute directory>`: the local filesystem (tests, a shared mount).
    ///   It has no conditional update, so it cannot hold the object-store lock.
    /// - `memory://`: in this process only (tests).
    pub fn open(url: &str) -> Result<Self, ClusterError> {
        let parsed =
            url::Url::parse(url).map_err(|e| ClusterError::Config(format!("{url}: {e}")))?;
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| ClusterError::Config(format!("{url}: no bucket name")))?;
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                for (key, value) in parsed.query_pairs() {
                    builder = match key.as_ref() {
                        "endpoint" => builder
                            .with_endpoint(value.as_ref())
                            .with_allow_http(value.starts_with("http://")),
                        "region" => builder.with_region(value.as_ref()),
                        other => {
                            return Err(ClusterError::Config(format!(
                                "{url}: unknown parameter {other:?} (endpoint, region)"
                            )));
                        }
                    };
                }
                if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                    && !parsed.query_pairs().any(|(k, _)| k == "region")
                {
                    builder = builder.with_region("us-east-1");
                }
                Arc::new(
                    builder
                        .build()
                        .map_err(|e| ClusterError::Config(format!("{url}: {e}")))?,
                )
            }
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| ClusterError::Config(format!("{url}: not a local path")))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| ClusterError::Config(format!("{}: {e}", dir.display())))?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(&dir)
                        .map_err(|e| ClusterError::Config(format!("{url}: {e}")))?,
                )
            }
            "memory" => Arc::new(InMemory::new()),
            other => {
                return Err(ClusterError::Config(format!(
                    "{url}: unsupported scheme {other:?} (s3, file, memory)"
                )));
            }
        };
        Ok(Self::from_store(store, url))
    }

    /// A bucket over an existing object store (tests, other providers).
    pub fn from_store(store: Arc<dyn ObjectStore>, url: impl Into<String>) -> Self {
        Self {
            store,
            url: url.into(),
            public: Arc::default(),
        }
    }

    /// The underlying object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URL the bucket was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object at `path`, `None` if there is none.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>, ClusterError> {
        match self.store.get(&Path::from(path)).await {
            Ok(result) => result
                .bytes()
                .await
                .map(Some)
                .map_err(|e| ClusterError::ObjectStore(format!("reading {path}: {e}"))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ClusterError::ObjectStore(format!("reading {path}: {e}"))),
        }
    }

    /// Puts `bytes` at `path` unless an object is there: identical bytes there count as
    /// success, different bytes are [`ClusterError::Conflict`].
    pub async fn put_create(&self, path: &str, bytes: Bytes) -> Result<(), ClusterError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&Path::from(path), PutPayload::from(bytes.clone()), options)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => {
                let stored = self.get(path).await?.ok_or_else(|| {
                    ClusterError::ObjectStore(format!(
                        "{path} exists (create refused) but cannot be read back"
                    ))
                })?;
                if stored == bytes {
                    Ok(())
                } else {
                    Err(ClusterError::Conflict {
                        path: path.to_owned(),
                        stored: sha256_hex(&stored),
                        new: sha256_hex(&bytes),
                    })
                }
            }
            Err(e) => Err(ClusterError::ObjectStore(format!("writing {path}: {e}"))),
        }
    }

    /// Publishes the signed checkpoint `note` as the public `checkpoint` unless the
    /// bucket already shows a larger one; returns whether it did. The write is a
    /// conditional update from the version last seen, so a writer delayed between its
    /// decision and its write (a leader paused past its term, an upload retried late)
    /// loses to whoever wrote in between, rereads, and finds the newer checkpoint: the
    /// public checkpoint never goes back. A checkpoint of the same size replaces the
    /// one there (the same tree, cosigned again). A store without conditional updates
    /// (the local filesystem) gets the same comparison without the condition.
    pub async fn publish_checkpoint(&self, note: Bytes) -> Result<bool, ClusterError> {
        let size = checkpoint_size(&note)?;
        let path = Path::from(CHECKPOINT_PATH);
        let mut known = self.remembered();
        let mut conditional = true;
        for _ in 0..PUBLISH_ATTEMPTS {
            let current = match known.take() {
                Some(v) => Some(v),
                None => match self.read_public().await? {
                    Some((bytes, current)) if bytes == note => {
                        self.remember(Some(current));
                        return Ok(true);
                    }
                    read => read.map(|(_, current)| current),
                },
            };
            if let Some(current) = current.as_ref().filter(|c| c.size > size) {
                self.remember(Some(current.clone()));
                return Ok(false);
            }
            let mode = match &current {
                _ if !conditional => PutMode::Overwrite,
                None => PutMode::Create,
                Some(current) => PutMode::Update(current.version.clone()),
            };
            let options = PutOptions {
                mode,
                ..PutOptions::default()
            };
            let written = self
                .store
                .put_opts(&path, PutPayload::from(note.clone()), options)
                .await;
            match written {
                Ok(_) if !conditional => return Ok(true),
                Ok(result) => {
                    self.remember(Some(PublicVersion {
                        size,
                        version: UpdateVersion {
                            e_tag: result.e_tag,
                            version: result.version,
                        },
                    }));
                    return Ok(true);
                }
                // Another writer moved it (or removed it): read it again.
                Err(object_store::Error::Precondition { .. })
                | Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::NotFound { .. }) => self.remember(None),
                // No conditional update: compare with a fresh read, then overwrite.
                Err(object_store::Error::NotImplemented) if conditional => {
                    conditional = false;
                    self.remember(None);
                }
                Err(e) => {
                    self.remember(None);
                    return Err(ClusterError::ObjectStore(format!(
                        "writing {CHECKPOINT_PATH}: {e}"
                    )));
                }
            }
        }
        Err(ClusterError::ObjectStore(format!(
            "{CHECKPOINT_PATH} changed under each of {PUBLISH_ATTEMPTS} conditional writes"
        )))
    }

    /// The public checkpoint as stored now, with its size and version.
    async fn read_public(&self) -> Result<Option<(Bytes, PublicVersion)>, ClusterError> {
        let result = match self.store.get(&Path::from(CHECKPOINT_PATH)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => {
                return Err(ClusterError::ObjectStore(format!(
                    "reading {CHECKPOINT_PATH}: {e}"
                )));
            }
        };
        let version = UpdateVersion {
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        let bytes = result
            .bytes()
            .await
            .map_err(|e| ClusterError::ObjectStore(format!("reading {CHECKPOINT_PATH}: {e}")))?;
        let size = checkpoint_size(&bytes)?;
        Ok(Some((bytes, PublicVersion { size, version })))
    }

    fn remembered(&self) -> Option<PublicVersion> {
        self.public
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn remember(&self, public: Option<PublicVersion>) {
        *self.public.lock().unwrap_or_else(PoisonError::into_inner) = public;
    }

    /// The public checkpoint, if one was published.
    pub async fn checkpoint(&self) -> Result<Option<Bytes>, ClusterError> {
        self.get(CHECKPOINT_PATH).await
    }

    /// A hash tile at its width.
    pub async fn tile(&self, id: TileId) -> Result<Option<Bytes>, ClusterError> {
        self.get(&id.path()).await
    }

    /// An entry bundle at its width.
    pub async fn bundle(&self, index: u64, width: u16) -> Result<Option<Bytes>, ClusterError> {
        self.get(&entry_bundle_path(index, width)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_only_accepts_identical_and_flags_different_bytes() {
        let bucket = Bucket::open("memory://").unwrap();
        let path = TileId {
            level: 0,
            index: 1234,
            width: 5,
        }
        .path();
        assert_eq!(path, "tile/0/x001/234.p/5");
        bucket
            .put_create(&path, Bytes::from_static(b"one"))
            .await
            .unwrap();
        bucket
            .put_create(&path, Bytes::from_static(b"one"))
            .await
            .unwrap();
        let conflict = bucket
            .put_create(&path, Bytes::from_static(b"two"))
            .await
            .unwrap_err();
        match conflict {
            ClusterError::Conflict {
                path: p,
                stored,
                new,
            } => {
                assert_eq!(p, path);
                assert_eq!(stored, sha256_hex(b"one"));
                assert_eq!(new, sha256_hex(b"two"));
            }
            other => panic!("expected a conflict, got {other}"),
        }
        assert_eq!(bucket.get(&path).await.unwrap().unwrap(), &b"one"[..]);
    }

    #[tokio::test]
    async fn local_filesystem_is_create_only_too() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let bucket = Bucket::open(&url).unwrap();
        bucket
            .put_create("tile/entries/000", Bytes::from_static(b"a"))
            .await
            .unwrap();
        bucket
            .put_create("tile/entries/000", Bytes::from_static(b"a"))
            .await
            .unwrap();
        assert!(matches!(
            bucket
                .put_create("tile/entries/000", Bytes::from_static(b"b"))
                .await,
            Err(ClusterError::Conflict { .. })
        ));
        assert!(dir.path().join("tile/entries/000").is_file());
    }

    fn note(size: u64, tag: &str) -> Bytes {
        Bytes::from(format!(
            "example.org/log\n{size}\n{tag}\n\n— example.org/log x\n"
        ))
    }

    /// Two writers on one store, each with its own remembered version: the one that
    /// wrote last before the other's newer checkpoint must not put an older one back.
    async fn never_goes_back(a: Bucket, b: Bucket) {
        assert!(a.publish_checkpoint(note(3, "a")).await.unwrap());
        assert!(b.publish_checkpoint(note(5, "b")).await.unwrap());
        // `a` still remembers size 3: its write must lose and reread.
        assert!(!a.publish_checkpoint(note(4, "a")).await.unwrap());
        assert_eq!(a.checkpoint().await.unwrap().unwrap(), note(5, "b"));
        // The same size replaces (cosigned again); then `b` remembers a stale version.
        assert!(a.publish_checkpoint(note(5, "a")).await.unwrap());
        assert_eq!(b.checkpoint().await.unwrap().unwrap(), note(5, "a"));
        assert!(b.publish_checkpoint(note(6, "b")).await.unwrap());
        assert!(!a.publish_checkpoint(note(5, "a")).await.unwrap());
        assert_eq!(a.checkpoint().await.unwrap().unwrap(), note(6, "b"));
        assert!(matches!(
            a.publish_checkpoint(Bytes::from_static(b"no size line"))
                .await,
            Err(ClusterError::Malformed { .. })
        ));
    }

    #[tokio::test]
    async fn the_public_checkpoint_never_goes_back() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let a = Bucket::from_store(store.clone(), "memory://");
        let b = Bucket::from_store(store, "memory://");
        never_goes_back(a, b).await;
    }

    #[tokio::test]
    async fn nor_on_the_local_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        never_goes_back(Bucket::open(&url).unwrap(), Bucket::open(&url).unwrap()).await;
    }

    #[test]
    fn bad_urls_are_config_errors() {
        for url in ["gs://b", "s3://", "not a url", "s3://b?colour=red"] {
            assert!(
                matches!(Bucket::open(url), Err(ClusterError::Config(_))),
                "{url}"
            );
        }
    }
}
