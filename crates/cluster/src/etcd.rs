//! The etcd lock backend, through etcd's v3 JSON gateway (`/v3/kv/range`,
//! `/v3/kv/txn`) over plain HTTP: no gRPC client and no protoc at build time.
//!
//! With leader election ([`EtcdLock::with_leadership`]) the swap also compares the
//! election key's create revision, so only the current term's leader can swap.
//!
//! The key's `mod_revision` is the [`Version`]; a swap is one transaction that puts
//! the new value only if the key's `mod_revision` still equals the expected one (or,
//! with nothing expected, if the key was never created). The transaction's header
//! revision is the key's new `mod_revision`.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use crate::ClusterError;
use crate::election::{Leadership, election_key};
use crate::gateway::{RangeReply, TxnReply, parse_address, post_json};
use crate::lock::{LockBackend, Locked, SwapError, Version};

/// The lock as one etcd key.
#[derive(Debug, Clone)]
pub struct EtcdLock {
    http: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    endpoint: String,
    key: String,
    /// With leader election: swaps only within this node's term.
    leadership: Option<Arc<Leadership>>,
}

impl EtcdLock {
    /// Parses `etcd://host:port/key` (the key is the path without its first `/`).
    pub fn open(address: &str) -> Result<Self, ClusterError> {
        let (endpoint, key) = parse_address(address)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| ClusterError::Config(format!("{address}: {e}")))?;
        Ok(Self {
            http,
            endpoint,
            key,
            leadership: None,
        })
    }

    /// The same lock, swapping only while `leadership` holds a term: the swap's
    /// transaction also requires the election key to still have the term's create
    /// revision, so a node whose lease expired (and whose key was deleted or taken by
    /// another node) loses its swap in etcd even if it does not know yet.
    pub fn with_leadership(mut self, leadership: Arc<Leadership>) -> Self {
        self.leadership = Some(leadership);
        self
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        call: &str,
        body: serde_json::Value,
    ) -> Result<T, ClusterError> {
        post_json(&self.http, &self.endpoint, &format!("/v3/kv/{call}"), body).await
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
            let mut compares = vec![compare];
            if let Some(leadership) = &self.leadership {
                let Some(term) = leadership.current() else {
                    return Err(SwapError::Lost(
                        "this node is not the leader (no live lease)".into(),
                    ));
                };
                compares.push(json!({
                    "key": B64.encode(election_key(&self.key)), "target": "CREATE",
                    "result": "EQUAL", "create_revision": term,
                }));
            }
            let body = json!({
                "compare": compares,
                "success": [{ "request_put": { "key": key, "value": B64.encode(new) } }],
            });
            let reply: TxnReply = self.post("txn", body).await.map_err(SwapError::Error)?;
            if !reply.succeeded {
                return Err(SwapError::Lost(format!(
                    "etcd key {} is at another revision, or this node's term ended",
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
        // The self-test runs before any election: the probe key is never guarded.
        Box::new(Self {
            http: self.http.clone(),
            endpoint: self.endpoint.clone(),
            key: format!("{}.probe", self.key),
            leadership: None,
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
