//! The etcd lock backend, through etcd's v3 JSON gateway (`/v3/kv/range`,
//! `/v3/kv/txn`) over plain HTTP: no gRPC client and no protoc at build time.
//!
//! The key's `mod_revision` is the [`Version`]; a swap is one transaction that puts
//! the new value only if the key's `mod_revision` still equals the expected one (or,
//! with nothing expected, if the key was never created). The transaction's header
//! revision is the key's new `mod_revision`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use crate::ClusterError;
use crate::lock::{LockBackend, Locked, SwapError, Version};

/// The lock as one etcd key.
#[derive(Debug, Clone)]
pub struct EtcdLock {
    http: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    endpoint: String,
    key: String,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    revision: Option<String>,
}

#[derive(Deserialize)]
struct Kv {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    mod_revision: Option<String>,
}

#[derive(Deserialize)]
struct RangeReply {
    #[serde(default)]
    kvs: Vec<Kv>,
}

#[derive(Deserialize)]
struct TxnReply {
    header: Header,
    #[serde(default)]
    succeeded: bool,
}

impl EtcdLock {
    /// Parses `etcd://host:port/key` (the key is the path without its first `/`).
    pub fn open(address: &str) -> Result<Self, ClusterError> {
        let bad = |why: &str| ClusterError::Config(format!("{address}: {why}"));
        let rest = address
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("expected etcd://host:port/key"))?;
        let (host, key) = rest
            .split_once('/')
            .ok_or_else(|| bad("no key after the address"))?;
        if host.is_empty() || key.is_empty() {
            return Err(bad("expected etcd://host:port/key"));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            http,
            endpoint: format!("http://{host}"),
            key: key.to_owned(),
        })
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        call: &str,
        body: serde_json::Value,
    ) -> Result<T, ClusterError> {
        let url = format!("{}/v3/kv/{call}", self.endpoint);
        let reply = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| ClusterError::Lock(format!("{url}: {e}")))?;
        let status = reply.status();
        let text = reply
            .text()
            .await
            .map_err(|e| ClusterError::Lock(format!("{url}: {e}")))?;
        if !status.is_success() {
            return Err(ClusterError::Lock(format!("{url}: {status}: {text}")));
        }
        serde_json::from_str(&text)
            .map_err(|e| ClusterError::Lock(format!("{url}: unexpected answer ({e}): {text}")))
    }
}

impl LockBackend for EtcdLock {
    fn load(&self) -> BoxFuture<'_, Result<Option<Locked>, ClusterError>> {
        Box::pin(async move {
            let reply: RangeReply = self
                .post("range", json!({ "key": B64.encode(&self.key) }))
                .await?;
            let Some(kv) = reply.kvs.into_iter().next() else {
                return Ok(None);
            };
            let value = B64
                .decode(kv.value.unwrap_or_default())
                .map_err(|e| ClusterError::Lock(format!("etcd value is not base64: {e}")))?;
            let revision = kv
                .mod_revision
                .ok_or_else(|| ClusterError::Lock("etcd answer without mod_revision".into()))?;
            Ok(Some((value, Version(revision))))
        })
    }

    fn swap<'a>(
        &'a self,
        expected: Option<&'a Version>,
        new: &'a [u8],
    ) -> BoxFuture<'a, Result<Version, SwapError>> {
        Box::pin(async move {
            let key = B64.encode(&self.key);
            let compare = match expected {
                Some(version) => json!({
                    "key": key, "target": "MOD", "result": "EQUAL",
                    "mod_revision": version.0,
                }),
                None => json!({
                    "key": key, "target": "CREATE", "result": "EQUAL",
                    "create_revision": "0",
                }),
            };
            let body = json!({
                "compare": [compare],
                "success": [{ "request_put": { "key": key, "value": B64.encode(new) } }],
            });
            let reply: TxnReply = self.post("txn", body).await.map_err(SwapError::Error)?;
            if !reply.succeeded {
                return Err(SwapError::Lost(format!(
                    "etcd key {} is at another revision",
                    self.key
                )));
            }
            reply.header.revision.map(Version).ok_or_else(|| {
                SwapError::Error(ClusterError::Lock(
                    "etcd transaction answer without a revision".into(),
                ))
            })
        })
    }

    fn probe(&self) -> Box<dyn LockBackend> {
        Box::new(Self {
            http: self.http.clone(),
            endpoint: self.endpoint.clone(),
            key: format!("{}.probe", self.key),
        })
    }

    fn describe(&self) -> String {
        format!("etcd key {} at {}", self.key, self.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let lock = EtcdLock::open("etcd://127.0.0.1:2379/merklog/checkpoint").unwrap();
        assert_eq!(lock.endpoint, "http://127.0.0.1:2379");
        assert_eq!(lock.key, "merklog/checkpoint");
        for bad in [
            "http://x/y",
            "etcd://127.0.0.1:2379",
            "etcd:///k",
            "etcd://h/",
        ] {
            assert!(EtcdLock::open(bad).is_err(), "{bad}");
        }
    }
}
