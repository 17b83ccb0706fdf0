//! Lock backends: where the fenced checkpoint lives, behind a compare-and-swap.
//!
//! The lock holds the latest signed checkpoint and an opaque [`Version`] that changes
//! with every write. A sequencer swaps in its next checkpoint only if the lock still
//! holds the version it loaded; a swap that finds another version lost the lock: some
//! other sequencer signed in between, and this one must stop.
//!
//! Two backends: [`ObjectStoreLock`] (the bucket's own conditional update, no other
//! service) and [`crate::etcd::EtcdLock`] (a transaction on the key's revision through
//! etcd's v3 JSON gateway, so no protoc at build time). [`self_test`] refuses a backend
//! that accepts a swap from a stale version.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::ClusterError;

/// The version of the lock's value: an e-tag or object version, or an etcd
/// `mod_revision`. Opaque; compared only by the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub String);

/// The lock's value and its version.
pub type Locked = (Vec<u8>, Version);

/// Why a swap did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// The lock holds another version than the expected one (or already exists when
    /// none was expected): another writer moved it.
    #[error("the lock moved: {0}")]
    Lost(String),
    /// The backend failed; the swap may or may not have happened.
    #[error(transparent)]
    Error(ClusterError),
}

/// A compare-and-swap register holding the latest fenced checkpoint.
pub trait LockBackend: Send + Sync + 'static {
    /// The current value and its version, `None` if nothing was ever swapped in.
    fn load(&self) -> BoxFuture<'_, Result<Option<Locked>, ClusterError>>;
    /// Writes `new` if the lock holds `expected` (`None`: if it holds nothing) and
    /// returns the new version.
    fn swap<'a>(
        &'a self,
        expected: Option<&'a Version>,
        new: &'a [u8],
    ) -> BoxFuture<'a, Result<Version, SwapError>>;
    /// The same backend on a separate probe key, for [`self_test`].
    fn probe(&self) -> Box<dyn LockBackend>;
    /// Where the lock lives, for messages.
    fn describe(&self) -> String;
}

/// Checks that `backend` enforces its conditions, on its probe key: two swaps in a row
/// (each from the version the previous one returned) must succeed, then a swap from
/// the now stale version and a create over the existing key must both lose. A backend
/// that lets either through would let two sequencers sign different trees, and one
/// that cannot update conditionally cannot fence at all: both are refused.
pub async fn self_test(backend: &dyn LockBackend) -> Result<(), ClusterError> {
    let probe = backend.probe();
    let name = probe.describe();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let first = format!("merklog lock self-test {nonce} 1\n");
    let second = format!("merklog lock self-test {nonce} 2\n");
    let must_swap = |result: Result<Version, SwapError>| match result {
        Ok(version) => Ok(version),
        Err(SwapError::Lost(why)) => Err(ClusterError::SelfTest(format!(
            "{name}: a swap from the version just returned lost ({why}); is another process probing?"
        ))),
        Err(SwapError::Error(e)) => Err(ClusterError::SelfTest(format!(
            "{name}: a conditional write failed ({e}); this store may not support conditional updates"
        ))),
    };
    let must_lose = |result: Result<Version, SwapError>, what: &str| match result {
        Err(SwapError::Lost(_)) => Ok(()),
        Ok(_) => Err(ClusterError::SelfTest(format!(
            "{name}: {what} succeeded; the store ignores conditions"
        ))),
        Err(SwapError::Error(e)) => Err(ClusterError::SelfTest(format!(
            "{name}: {what} failed instead of losing: {e}"
        ))),
    };
    let current = probe.load().await?.map(|(_, v)| v);
    let v1 = must_swap(probe.swap(current.as_ref(), first.as_bytes()).await)?;
    let v2 = must_swap(probe.swap(Some(&v1), second.as_bytes()).await)?;
    if v1 == v2 {
        return Err(ClusterError::SelfTest(format!(
            "{name}: a write did not change the version"
        )));
    }
    must_lose(
        probe.swap(Some(&v1), b"stale swap\n").await,
        "a swap from a stale version",
    )?;
    must_lose(
        probe.swap(None, b"stale create\n").await,
        "creating an existing key",
    )?;
    match probe.load().await? {
        Some((value, version)) if value == second.as_bytes() && version == v2 => Ok(()),
        _ => Err(ClusterError::SelfTest(format!(
            "{name}: the probe key does not hold what the last successful swap wrote"
        ))),
    }
}

/// The lock as one object in the bucket, swapped with the store's conditional update
/// (`If-Match` on the e-tag; create-only for the first value).
#[derive(Debug, Clone)]
pub struct ObjectStoreLock {
    store: Arc<dyn ObjectStore>,
    path: Path,
}

/// Where [`ObjectStoreLock`] keeps the checkpoint by default.
pub const OBJECT_LOCK_PATH: &str = "lock/checkpoint";

impl ObjectStoreLock {
    /// The lock at `path` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, path: &str) -> Self {
        Self {
            store,
            path: Path::from(path),
        }
    }
}

fn version_of(e_tag: Option<String>, version: Option<String>) -> Result<Version, ClusterError> {
    // Both are kept: a store may need either to evaluate the condition.
    match (e_tag, version) {
        (None, None) => Err(ClusterError::Lock(
            "the store returned neither an e-tag nor a version".into(),
        )),
        (e, v) => Ok(Version(format!(
            "{}\n{}",
            e.unwrap_or_default(),
            v.unwrap_or_default()
        ))),
    }
}

fn update_version(version: &Version) -> UpdateVersion {
    let (e_tag, v) = version.0.split_once('\n').unwrap_or((&version.0, ""));
    UpdateVersion {
        e_tag: (!e_tag.is_empty()).then(|| e_tag.to_owned()),
        version: (!v.is_empty()).then(|| v.to_owned()),
    }
}

impl LockBackend for ObjectStoreLock {
    fn load(&self) -> BoxFuture<'_, Result<Option<Locked>, ClusterError>> {
        Box::pin(async move {
            match self.store.get(&self.path).await {
                Ok(result) => {
                    let meta = result.meta.clone();
                    let bytes = result
                        .bytes()
                        .await
                        .map_err(|e| ClusterError::Lock(format!("reading {}: {e}", self.path)))?;
                    Ok(Some((
                        bytes.to_vec(),
                        version_of(meta.e_tag, meta.version)?,
                    )))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(ClusterError::Lock(format!("reading {}: {e}", self.path))),
            }
        })
    }

    fn swap<'a>(
        &'a self,
        expected: Option<&'a Version>,
        new: &'a [u8],
    ) -> BoxFuture<'a, Result<Version, SwapError>> {
        Box::pin(async move {
            let mode = match expected {
                None => PutMode::Create,
                Some(v) => PutMode::Update(update_version(v)),
            };
            let options = PutOptions {
                mode,
                ..PutOptions::default()
            };
            let payload = PutPayload::from(Bytes::copy_from_slice(new));
            match self.store.put_opts(&self.path, payload, options).await {
                Ok(result) => version_of(result.e_tag, result.version).map_err(SwapError::Error),
                Err(object_store::Error::AlreadyExists { .. }) => {
                    Err(SwapError::Lost(format!("{} already exists", self.path)))
                }
                Err(object_store::Error::Precondition { .. }) => Err(SwapError::Lost(format!(
                    "{} holds another version",
                    self.path
                ))),
                // An update of an object that is gone lost too: someone deleted it.
                Err(object_store::Error::NotFound { .. }) => {
                    Err(SwapError::Lost(format!("{} is gone", self.path)))
                }
                Err(e) => Err(SwapError::Error(ClusterError::Lock(format!(
                    "writing {}: {e}",
                    self.path
                )))),
            }
        })
    }

    fn probe(&self) -> Box<dyn LockBackend> {
        Box::new(Self {
            store: self.store.clone(),
            path: Path::from(format!("{}.probe", self.path)),
        })
    }

    fn describe(&self) -> String {
        format!("object-store lock at {}", self.path)
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    /// A backend that ignores conditions: the self-test must refuse it.
    struct Careless(ObjectStoreLock);

    impl LockBackend for Careless {
        fn load(&self) -> BoxFuture<'_, Result<Option<Locked>, ClusterError>> {
            self.0.load()
        }
        fn swap<'a>(
            &'a self,
            _expected: Option<&'a Version>,
            new: &'a [u8],
        ) -> BoxFuture<'a, Result<Version, SwapError>> {
            Box::pin(async move {
                let r = self
                    .0
                    .store
                    .put(&self.0.path, PutPayload::from(new.to_vec()))
                    .await
                    .map_err(|e| SwapError::Error(ClusterError::Lock(e.to_string())))?;
                version_of(r.e_tag, r.version).map_err(SwapError::Error)
            })
        }
        fn probe(&self) -> Box<dyn LockBackend> {
            Box::new(Careless(ObjectStoreLock {
                store: self.0.store.clone(),
                path: Path::from("probe"),
            }))
        }
        fn describe(&self) -> String {
            "careless".into()
        }
    }

    #[tokio::test]
    async fn object_lock_swaps_only_from_the_current_version() {
        let lock = ObjectStoreLock::new(Arc::new(InMemory::new()), OBJECT_LOCK_PATH);
        assert!(lock.load().await.unwrap().is_none());
        let v1 = lock.swap(None, b"one").await.unwrap();
        assert!(matches!(
            lock.swap(None, b"x").await,
            Err(SwapError::Lost(_))
        ));
        let v2 = lock.swap(Some(&v1), b"two").await.unwrap();
        assert_ne!(v1, v2);
        assert!(matches!(
            lock.swap(Some(&v1), b"stale").await,
            Err(SwapError::Lost(_))
        ));
        assert_eq!(lock.load().await.unwrap(), Some((b"two".to_vec(), v2)));
    }

    #[tokio::test]
    async fn self_test_accepts_a_fencing_store_twice_and_refuses_a_careless_one() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let lock = ObjectStoreLock::new(store.clone(), OBJECT_LOCK_PATH);
        self_test(&lock).await.unwrap();
        // Again, now that the probe key exists.
        self_test(&lock).await.unwrap();
        // The probe never touches the real lock.
        assert!(lock.load().await.unwrap().is_none());
        let careless = Careless(ObjectStoreLock::new(store, OBJECT_LOCK_PATH));
        let error = self_test(&careless).await.unwrap_err();
        assert!(
            matches!(&error, ClusterError::SelfTest(m) if m.contains("ignores conditions")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn local_filesystem_cannot_hold_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let lock = ObjectStoreLock::new(store, OBJECT_LOCK_PATH);
        let error = self_test(&lock).await.unwrap_err();
        assert!(matches!(error, ClusterError::SelfTest(_)), "{error}");
    }
}
