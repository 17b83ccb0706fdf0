//! Cluster mode wiring: with `cluster-bucket` set, the log's store is a
//! `merklog_cluster::ClusterStore` around the data directory's RocksDB, which then
//! serves as the node's cache. Every node of a cluster needs the same `log.key` in
//! its data directory and the same `--origin`.

use std::sync::Arc;

use merklog_cluster::{
    Bucket, ClusterOptions, ClusterStore, EtcdLock, LockBackend, ObjectStoreLock,
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
    match config.cluster_lock.as_deref().unwrap_or(OBJECT_STORE_LOCK) {
        OBJECT_STORE_LOCK => Ok(()),
        other if other.starts_with("etcd://") => EtcdLock::open(other)
            .map(|_| ())
            .map_err(|e| ServerError::Config(e.to_string())),
        other => Err(ServerError::Config(format!(
            "cluster-lock {other:?}: expected {OBJECT_STORE_LOCK} or etcd://HOST:PORT/KEY"
        ))),
    }
}

fn lock(config: &ServerConfig, bucket: &Bucket) -> Result<Arc<dyn LockBackend>, ServerError> {
    match config.cluster_lock.as_deref().unwrap_or(OBJECT_STORE_LOCK) {
        OBJECT_STORE_LOCK => Ok(Arc::new(ObjectStoreLock::new(
            bucket.store().clone(),
            merklog_cluster::lock::OBJECT_LOCK_PATH,
        ))),
        other if other.starts_with("etcd://") => Ok(Arc::new(
            EtcdLock::open(other).map_err(|e| ServerError::Config(e.to_string()))?,
        )),
        other => Err(ServerError::Config(format!(
            "cluster-lock {other:?}: expected {OBJECT_STORE_LOCK} or etcd://HOST:PORT/KEY"
        ))),
    }
}

/// Wraps `local` in the fenced cluster store when cluster mode is configured;
/// otherwise returns it unchanged. Runs on a blocking thread of the runtime.
pub(crate) fn store(
    config: &ServerConfig,
    local: Arc<dyn LogStore>,
    origin: &str,
    verifier: Ed25519Verifier,
    witnessed: bool,
) -> Result<Arc<dyn LogStore>, ServerError> {
    let Some(url) = &config.cluster_bucket else {
        return Ok(local);
    };
    let bucket = Bucket::open(url).map_err(|e| ServerError::Config(e.to_string()))?;
    let lock = lock(config, &bucket)?;
    let runtime = tokio::runtime::Handle::current();
    let options = ClusterOptions {
        origin: origin.to_owned(),
        verifier: Arc::new(verifier),
        witnessed,
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
    info!(bucket = %url, lock = %describe, ?reconciled, "cluster mode");
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
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
                .unwrap()
                .starts_with("etcd://127.0.0.1:2379/")
        );
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
