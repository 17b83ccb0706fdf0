//! Leader election through an etcd lease, over etcd's v3 JSON gateway
//! (`/v3/lease/grant`, `/v3/lease/keepalive`, `/v3/lease/revoke`, `/v3/kv/range`,
//! `/v3/kv/txn`).
//!
//! A node campaigns by granting a lease and creating the election key with it in one
//! transaction that succeeds only if the key does not exist; the key's value is the
//! node's advertised gRPC address, so standbys can name the leader. The leader keeps
//! the lease alive; when the leader dies or stalls the lease expires, etcd deletes the
//! key, and the next campaign wins.
//!
//! [`Leadership`] is this node's view of its term: the election key's create revision
//! and the instant the lease may have expired (the time a grant or keepalive request
//! was sent, plus the TTL etcd answered). Past that instant the node no longer counts
//! as the leader, even before it hears from etcd: a process that was paused for longer
//! than the TTL must not act on a term that has ended. The etcd lock's swap also
//! compares the election key's create revision (see [`crate::EtcdLock::with_leadership`]),
//! so a swap after the key changed hands loses in etcd itself, whatever this node's
//! clock says.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;

use crate::ClusterError;
use crate::gateway::{RangeReply, TxnReply};

/// This node's current term as leader, shared by the election, the lock and the store.
#[derive(Debug, Default)]
pub struct Leadership {
    term: Mutex<Option<Term>>,
}

#[derive(Debug, Clone)]
struct Term {
    /// The election key's create revision: it names this term in etcd.
    create_revision: String,
    /// The lease may have expired from this instant on.
    deadline: Instant,
}

impl Leadership {
    /// No term yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn term(&self) -> std::sync::MutexGuard<'_, Option<Term>> {
        self.term.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The election key's create revision while this node's term lasts, `None` when it
    /// has none or its lease may have expired.
    pub fn current(&self) -> Option<String> {
        self.term()
            .as_ref()
            .filter(|term| Instant::now() < term.deadline)
            .map(|term| term.create_revision.clone())
    }

    /// True while this node's term lasts.
    pub fn is_leader(&self) -> bool {
        self.current().is_some()
    }

    /// Ends the term at once (a lost lease, a resignation).
    pub fn end(&self) {
        *self.term() = None;
    }

    fn begin(&self, create_revision: String, deadline: Instant) {
        *self.term() = Some(Term {
            create_revision,
            deadline,
        });
    }

    fn extend(&self, deadline: Instant) {
        if let Some(term) = self.term().as_mut() {
            term.deadline = term.deadline.max(deadline);
        }
    }
}

/// The outcome of one [`Election::campaign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Campaign {
    /// This node leads; keep the lease alive with [`Election::hold`].
    Won {
        /// The lease that holds the election key.
        lease: String,
    },
    /// Another node leads.
    Led {
        /// Its advertised address (the election key's value).
        leader: String,
    },
}

/// One node's side of the election.
#[derive(Debug, Clone)]
pub struct Election {
    http: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    endpoint: String,
    key: String,
    ttl: Duration,
    leadership: Arc<Leadership>,
}

#[derive(Deserialize)]
struct Grant {
    #[serde(rename = "ID", default)]
    id: Option<String>,
    #[serde(rename = "TTL", default)]
    ttl: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct KeepAlive {
    #[serde(default)]
    result: Option<Grant>,
}

/// The election key of a lock at `etcd://host:port/KEY`: `KEY.leader`.
pub fn election_key(lock_key: &str) -> String {
    format!("{lock_key}.leader")
}

impl Election {
    /// The election next to the etcd lock at `address` (`etcd://host:port/KEY`; the
    /// election key is `KEY.leader`), with leases of `ttl` (whole seconds, at least 1).
    pub fn open(
        address: &str,
        ttl: Duration,
        leadership: Arc<Leadership>,
    ) -> Result<Self, ClusterError> {
        let (endpoint, key) = crate::gateway::parse_address(address)?;
        if ttl < Duration::from_secs(1) {
            return Err(ClusterError::Config(format!(
                "the lease TTL must be at least 1 s, not {ttl:?}"
            )));
        }
        // A request that outlives the lease is useless: the answer would come too late.
        let http = reqwest::Client::builder()
            .timeout(ttl.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| ClusterError::Config(format!("{address}: {e}")))?;
        Ok(Self {
            http,
            endpoint,
            key: election_key(&key),
            ttl,
            leadership,
        })
    }

    /// This node's term.
    pub fn leadership(&self) -> &Arc<Leadership> {
        &self.leadership
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The election key, for messages.
    pub fn key(&self) -> &str {
        &self.key
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, ClusterError> {
        crate::gateway::post_json(&self.http, &self.endpoint, path, body).await
    }

    /// The current leader's advertised address, `None` if nobody leads.
    pub async fn leader(&self) -> Result<Option<String>, ClusterError> {
        let reply: RangeReply = self
            .post("/v3/kv/range", json!({ "key": B64.encode(&self.key) }))
            .await?;
        let Some(kv) = reply.kvs.into_iter().next() else {
            return Ok(None);
        };
        let value = B64
            .decode(kv.value.unwrap_or_default())
            .map_err(|e| ClusterError::Lock(format!("election value is not base64: {e}")))?;
        Ok(Some(String::from_utf8_lossy(&value).into_owned()))
    }

    /// One campaign: if nobody leads, tries to become the leader, advertising
    /// `advertise` (the address clients should append to).
    pub async fn campaign(&self, advertise: &str) -> Result<Campaign, ClusterError> {
        if let Some(leader) = self.leader().await? {
            return Ok(Campaign::Led { leader });
        }
        let sent = Instant::now();
        let grant: Grant = self
            .post("/v3/lease/grant", json!({ "TTL": self.ttl.as_secs() }))
            .await?;
        if let Some(error) = grant.error.filter(|e| !e.is_empty()) {
            return Err(ClusterError::Lock(format!("lease grant refused: {error}")));
        }
        let lease = grant
            .id
            .ok_or_else(|| ClusterError::Lock("lease grant answer without an ID".into()))?;
        let ttl = parse_ttl(grant.ttl.as_deref())?;
        let key = B64.encode(&self.key);
        let body = json!({
            "compare": [{
                "key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0",
            }],
            "success": [{ "request_put": {
                "key": key, "value": B64.encode(advertise), "lease": lease,
            }}],
        });
        let reply: TxnReply = match self.post("/v3/kv/txn", body).await {
            Ok(reply) => reply,
            Err(e) => {
                // Unknown outcome: revoking the lease deletes the key if it was created.
                self.resign(&lease).await;
                return Err(e);
            }
        };
        if !reply.succeeded {
            self.resign(&lease).await;
            let leader = self.leader().await?.unwrap_or_default();
            return Ok(Campaign::Led { leader });
        }
        let revision = reply.header.revision.ok_or_else(|| {
            ClusterError::Lock("etcd transaction answer without a revision".into())
        })?;
        self.leadership.begin(revision, sent + ttl);
        tracing::info!(key = %self.key, %advertise, "won the election");
        Ok(Campaign::Won { lease })
    }

    /// Keeps `lease` alive while this node leads (a keepalive every third of the TTL);
    /// returns why the term ended: etcd says the lease is gone, or no keepalive was
    /// answered before the lease may have expired. The term is over when this returns.
    pub async fn hold(&self, lease: &str) -> String {
        let interval = (self.ttl / 3).max(Duration::from_millis(200));
        loop {
            tokio::time::sleep(interval).await;
            if !self.leadership.is_leader() {
                self.leadership.end();
                return format!(
                    "the lease of {} was not renewed within its TTL of {:?}",
                    self.key, self.ttl
                );
            }
            let sent = Instant::now();
            let reply: Result<KeepAlive, ClusterError> = self
                .post("/v3/lease/keepalive", json!({ "ID": lease }))
                .await;
            match reply.map(|r| r.result.map(|g| parse_ttl(g.ttl.as_deref()))) {
                Ok(Some(Ok(ttl))) if !ttl.is_zero() => self.leadership.extend(sent + ttl),
                Ok(_) => {
                    self.leadership.end();
                    return format!("etcd says the lease of {} has expired", self.key);
                }
                // Retried at the next tick while the term lasts.
                Err(e) => tracing::warn!(%e, "lease keepalive failed"),
            }
        }
    }

    /// Gives the lease up (deleting the election key if it holds it), best effort,
    /// and ends this node's term.
    pub async fn resign(&self, lease: &str) {
        self.leadership.end();
        let revoked: Result<serde_json::Value, ClusterError> =
            self.post("/v3/lease/revoke", json!({ "ID": lease })).await;
        if let Err(e) = revoked {
            tracing::warn!(%e, "revoking the lease failed; it expires on its own");
        }
    }
}

fn parse_ttl(ttl: Option<&str>) -> Result<Duration, ClusterError> {
    match ttl {
        // A zero TTL is omitted from the JSON answer.
        None => Ok(Duration::ZERO),
        Some(text) => text
            .parse::<i64>()
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
            .map_err(|e| ClusterError::Lock(format!("lease TTL {text:?}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_ends_at_its_deadline_or_when_ended() {
        let leadership = Leadership::new();
        assert!(!leadership.is_leader());
        leadership.begin("7".into(), Instant::now() + Duration::from_secs(60));
        assert_eq!(leadership.current().as_deref(), Some("7"));
        leadership.end();
        assert!(leadership.current().is_none());
        leadership.begin("8".into(), Instant::now());
        assert!(leadership.current().is_none(), "past its deadline");
        leadership.extend(Instant::now() + Duration::from_secs(60));
        assert_eq!(leadership.current().as_deref(), Some("8"));
    }

    #[test]
    fn election_settings() {
        let leadership = Leadership::new();
        let election = Election::open(
            "etcd://127.0.0.1:2379/merklog/checkpoint",
            Duration::from_secs(5),
            leadership.clone(),
        )
        .unwrap();
        assert_eq!(election.key(), "merklog/checkpoint.leader");
        assert!(
            Election::open(
                "etcd://127.0.0.1:2379/k",
                Duration::from_millis(500),
                leadership
            )
            .is_err()
        );
        assert_eq!(parse_ttl(None).unwrap(), Duration::ZERO);
        assert_eq!(parse_ttl(Some("5")).unwrap(), Duration::from_secs(5));
        assert!(parse_ttl(Some("x")).is_err());
    }
}
