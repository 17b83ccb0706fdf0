//! Cluster mode wiring: with `cluster-bucket` set, the log's store is a
//! `merklog_cluster::ClusterStore` around the data directory's RocksDB, which then
//! serves as the node's cache. Every node of a cluster needs the same `log.key` in
//! its data directory and the same `--origin`.

use std::sync::Arc;

use merklog_cluster::{
    Bucket, ClusterOptions, ClusterStore, Election, EtcdLock, Leadership, LockBackend,
    ObjectStoreLock,
};
use merklog_log::LogStore;
use merklog_note::Ed25519Verifier;
use tracing::info;

use crate::ServerError;
use crate::config::ServerConfig;

/// `cluster-lock` for the bucket's own conditional update.
pub(crate) const OBJECT_STORE_LOCK: &str = "object-store";

/// Checks the cluster settings without connecting or touching the bucket: a lock
/// needs a bucket, the bucket is an `s3://` or `file://` URL, the lock is
/// `object-store` or `etcd://HOST:PORT/KEY`.
pub(crate) fn validate(config: &ServerConfig) -> Result<(), ServerError> {
    let Some(url) = &config.cluster_bucket else {
        if config.read_only {
            return Err(ServerError::Config(
                "read-only needs cluster-bucket: it serves the log from the bucket".into(),
            ));
        }
        if config.cluster_lock.is_some() {
            return Err(ServerError::Config(
                "cluster-lock needs cluster-bucket".into(),
            ));
        }
        return Ok(());
    };
    if !(url.starts_with("s3://") || url.starts_with("file:///")) {
        return Err(ServerError::Config(format!(
            "cluster-bucket {url:?}: expected s3://BUCKET[?endpoint=URL] or file:///DIR"
        )));
    }
    if config.read_only {
        // A reader signs nothing and publishes what the sequencer published.
        if config.policy.is_some() {
            return Err(ServerError::Config(
                "read-only takes no witness policy: it serves the bucket's public checkpoint"
                    .into(),
            ));
        }
        return Ok(());
    }
    match config.cluster_lock.as_deref().unwrap_or(OBJECT_STORE_LOCK) {
        OBJECT_STORE_LOCK => Ok(()),
        other if other.starts_with("etcd://") => {
            let ttl = config.cluster_lease_ttl.get();
            if ttl.subsec_nanos() != 0 || ttl.as_secs() == 0 {
                return Err(ServerError::Config(format!(
                    "cluster-lease-ttl {ttl:?}: etcd leases take whole seconds, at least 1 s"
                )));
            }
            EtcdLock::open(other)
                .map(|_| ())
                .map_err(|e| ServerError::Config(e.to_string()))
        }
        other => Err(ServerError::Config(format!(
            "cluster-lock {other:?}: expected {OBJECT_STORE_LOCK} or etcd://HOST:PORT/KEY"
        ))),
    }
}

/// Whether this sequencer node takes part in a leader election (an etcd lock), and so
/// may open as a standby.
pub(crate) fn elects(config: &ServerConfig) -> bool {
    config.cluster_bucket.is_some()
        && !config.read_only
        && config
            .cluster_lock
            .as_deref()
            .is_some_and(|lock| lock.starts_with("etcd://"))
}

/// The lock backend and, with an etcd lock, the election next to it.
fn lock(
    config: &ServerConfig,
    bucket: &Bucket,
) -> Result<(Arc<dyn LockBackend>, Option<Election>), ServerError> {
    let config_error = |e: merklog_cluster::ClusterError| ServerError::Config(e.to_string());
    match config.cluster_lock.as_deref().unwrap_or(OBJECT_STORE_LOCK) {
        OBJECT_STORE_LOCK => {
            let lock: Arc<dyn LockBackend> = Arc::new(ObjectStoreLock::new(
                bucket.store().clone(),
                merklog_cluster::lock::OBJECT_LOCK_PATH,
            ));
            Ok((lock, None))
        }
        other if other.starts_with("etcd://") => {
            let leadership = Leadership::new();
            let election =
                Election::open(other, config.cluster_lease_ttl.get(), leadership.clone())
                    .map_err(config_error)?;
            let lock: Arc<dyn LockBackend> = Arc::new(
                EtcdLock::open(other)
                    .map_err(config_error)?
                    .with_leadership(leadership),
            );
            Ok((lock, Some(election)))
        }
        other => Err(ServerError::Config(format!(
            "cluster-lock {other:?}: expected {OBJECT_STORE_LOCK} or etcd://HOST:PORT/KEY"
        ))),
    }
}

/// A cluster node's parts that outlive start-up: the fenced store and, with an etcd
/// lock, the election the node takes part in (see `failover.rs`).
pub(crate) struct ClusterNode {
    pub(crate) store: Arc<ClusterStore>,
    pub(crate) election: Option<Election>,
}

/// Wraps `local` in the fenced cluster store when cluster mode is configured;
/// otherwise returns it unchanged. Runs on a blocking thread of the runtime.
pub(crate) fn store(
    config: &ServerConfig,
    local: Arc<dyn LogStore>,
    origin: &str,
    verifier: Ed25519Verifier,
    witnessed: bool,
) -> Result<(Arc<dyn LogStore>, Option<ClusterNode>), ServerError> {
    let Some(url) = &config.cluster_bucket else {
        return Ok((local, None));
    };
    let bucket = Bucket::open(url).map_err(|e| ServerError::Config(e.to_string()))?;
    let (lock, election) = lock(config, &bucket)?;
    let runtime = tokio::runtime::Handle::current();
    let options = ClusterOptions {
        origin: origin.to_owned(),
        verifier: Arc::new(verifier),
        witnessed,
        leadership: election.as_ref().map(|e| e.leadership().clone()),
    };
    let describe = lock.describe();
    let (store, reconciled) = runtime
        .block_on(ClusterStore::open(
            local,
            bucket,
            lock,
            options,
            runtime.clone(),
        ))
        .map_err(|e| ServerError::Cluster(e.to_string()))?;
    info!(
        bucket = %url,
        lock = %describe,
        ?reconciled,
        election = election.is_some(),
        "cluster mode"
    );
    let store = Arc::new(store);
    let node = ClusterNode {
        store: store.clone(),
        election,
    };
    let store: Arc<dyn LogStore> = store;
    Ok((store, Some(node)))
}

/// What a read-only node follows: the bucket's public checkpoint.
pub(crate) struct Reader {
    pub(crate) local: Arc<dyn LogStore>,
    pub(crate) bucket: Bucket,
    pub(crate) options: ClusterOptions,
}

impl Reader {
    /// Brings the cache up to the bucket's public checkpoint; the new size, if it grew.
    pub(crate) async fn follow(&self) -> Result<Option<u64>, ServerError> {
        let cluster = |e: merklog_cluster::ClusterError| ServerError::Cluster(e.to_string());
        let Some(note) = self.bucket.checkpoint().await.map_err(cluster)? else {
            return Ok(None);
        };
        merklog_cluster::follow(&*self.local, &self.bucket, &note, &self.options)
            .await
            .map_err(cluster)
    }
}

/// The identity of a read-only node: its data directory holds the log's public key
/// (`log.vkey`, copied from a sequencer) and no signing key is needed. Returns the
/// origin, the verifier key text and the verifier; records them as the cache's
/// metadata on first start.
pub(crate) fn reader_identity(
    config: &ServerConfig,
    local: &merklog_store::RocksStore,
    vkey_path: &std::path::Path,
) -> Result<(String, String, Ed25519Verifier), ServerError> {
    let vkey = std::fs::read_to_string(vkey_path)
        .map_err(|source| ServerError::Io {
            context: format!(
                "reading {} (a read-only node needs the log's public key there)",
                vkey_path.display()
            ),
            source,
        })?
        .trim_end()
        .to_owned();
    let verifier = merklog_note::parse_verifier_key(&vkey)
        .map_err(|e| ServerError::Identity(format!("{}: {e}", vkey_path.display())))?;
    let origin = merklog_note::Verifier::name(&verifier).to_owned();
    if let Some(requested) = config.origin.as_ref().filter(|o| **o != origin) {
        return Err(ServerError::Identity(format!(
            "{} is the key of {origin:?}, not of {requested:?}",
            vkey_path.display()
        )));
    }
    match local.metadata().map_err(|e| ServerError::Log(e.into()))? {
        Some(metadata) if metadata.verifier_key != vkey || metadata.origin != origin => {
            return Err(ServerError::Identity(format!(
                "the data directory holds the log {:?} ({}), not {}",
                metadata.origin,
                metadata.verifier_key,
                vkey_path.display()
            )));
        }
        Some(_) => {}
        None => local.initialize(&merklog_log::LogMetadata {
            origin: origin.clone(),
            verifier_key: vkey.clone(),
            algorithm: merklog_log::ALGORITHM_ED25519.to_owned(),
        })?,
    }
    Ok((origin, vkey, verifier))
}

/// Opens the bucket for a read-only node and brings its cache to the bucket's public
/// checkpoint before the log opens (a reader cannot sign the empty tree itself).
/// Runs on a blocking thread of the runtime.
pub(crate) fn reader(
    config: &ServerConfig,
    local: Arc<dyn LogStore>,
    origin: &str,
    verifier: Ed25519Verifier,
) -> Result<Reader, ServerError> {
    let url = config
        .cluster_bucket
        .as_deref()
        .ok_or_else(|| ServerError::Config("read-only needs cluster-bucket".into()))?;
    let bucket = Bucket::open(url).map_err(|e| ServerError::Config(e.to_string()))?;
    let reader = Reader {
        local,
        bucket,
        options: ClusterOptions {
            origin: origin.to_owned(),
            verifier: Arc::new(verifier),
            witnessed: false,
            leadership: None,
        },
    };
    let runtime = tokio::runtime::Handle::current();
    if runtime
        .block_on(reader.bucket.checkpoint())
        .map_err(|e| ServerError::Cluster(e.to_string()))?
        .is_none()
    {
        return Err(ServerError::Cluster(format!(
            "the bucket {url} holds no public checkpoint yet: start a sequencer first"
        )));
    }
    let followed = runtime.block_on(reader.follow())?;
    info!(bucket = %url, ?followed, "read-only: serving the bucket's log");
    Ok(reader)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(bucket: Option<&str>, lock: Option<&str>) -> ServerConfig {
        ServerConfig {
            cluster_bucket: bucket.map(str::to_owned),
            cluster_lock: lock.map(str::to_owned),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn the_cluster_example_parses() {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/cluster/merklogd-s3-etcd.toml"
        );
        let config = crate::Cli::try_load_from(["merklogd", "--config", example])
            .unwrap()
            .settings;
        assert_eq!(
            config.cluster_bucket.as_deref(),
            Some("s3://example-merklog-log")
        );
        assert!(
            config
                .cluster_lock
                .as_deref()
                .unwrap()
                .starts_with("etcd://127.0.0.1:2379/")
        );
        assert_eq!(config.cluster_lease_ttl.get(), Duration::from_secs(5));
        assert!(config.cluster_advertise.is_some());
        validate(&config).unwrap();
        let reader = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/cluster/merklogd-read-only.toml"
        );
        let config = crate::Cli::try_load_from(["merklogd", "--config", reader])
            .unwrap()
            .settings;
        assert!(config.read_only);
        assert_eq!(
            config.cluster_bucket.as_deref(),
            Some("s3://example-merklog-log")
        );
        validate(&config).unwrap();
    }

    #[test]
    fn election_and_read_only_settings_are_checked() {
        let etcd = "etcd://127.0.0.1:2379/merklog/cp";
        // A witness policy goes with an election: a new leader checks the witnesses.
        let mut with_policy = config(Some("s3://logs"), Some(etcd));
        with_policy.policy = Some("/etc/merklog/policy.txt".into());
        validate(&with_policy).unwrap();
        assert!(elects(&with_policy));
        assert!(!elects(&config(Some("s3://logs"), None)));
        assert!(!elects(&config(Some("s3://logs"), Some(OBJECT_STORE_LOCK))));
        let mut fractional = config(Some("s3://logs"), Some(etcd));
        fractional.cluster_lease_ttl = merklog_daemon::ConfigDuration(Duration::from_millis(1500));
        let error = validate(&fractional).unwrap_err().to_string();
        assert!(error.contains("whole seconds"), "{error}");
        let mut reader = config(Some("s3://logs"), None);
        reader.read_only = true;
        validate(&reader).unwrap();
        reader.policy = Some("/etc/merklog/policy.txt".into());
        assert!(validate(&reader).is_err());
        let mut no_bucket = config(None, None);
        no_bucket.read_only = true;
        let error = validate(&no_bucket).unwrap_err().to_string();
        assert!(error.contains("read-only needs cluster-bucket"), "{error}");
    }

    #[test]
    fn cluster_settings_are_checked_without_connecting() {
        for (bucket, lock) in [
            (None, None),
            (Some("s3://logs?endpoint=http://127.0.0.1:9000"), None),
            (Some("s3://logs"), Some("object-store")),
            (
                Some("file:///var/lib/merklog-bucket"),
                Some("etcd://127.0.0.1:2379/merklog/cp"),
            ),
        ] {
            assert!(
                validate(&config(bucket, lock)).is_ok(),
                "{bucket:?} {lock:?}"
            );
        }
        for (bucket, lock, needle) in [
            (None, Some("object-store"), "needs cluster-bucket"),
            (Some("gs://logs"), None, "expected s3://"),
            (
                Some("s3://logs"),
                Some("zookeeper://x"),
                "expected object-store",
            ),
            (Some("s3://logs"), Some("etcd://127.0.0.1:2379"), "key"),
        ] {
            let error = validate(&config(bucket, lock)).unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
    }
}
