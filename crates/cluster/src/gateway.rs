//! etcd's v3 JSON gateway over plain HTTP, shared by the lock and the election:
//! addresses and one POST with its JSON answer.

use serde::Deserialize;

use crate::ClusterError;

/// Splits `etcd://host:port/key` into the gateway's `http://host:port` and the key.
pub(crate) fn parse_address(address: &str) -> Result<(String, String), ClusterError> {
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
    Ok((format!("http://{host}"), key.to_owned()))
}

/// POSTs `body` to the gateway's `path` and parses the JSON answer.
pub(crate) async fn post_json<T: for<'de> Deserialize<'de>>(
    http: &reqwest::Client,
    endpoint: &str,
    path: &str,
    body: serde_json::Value,
) -> Result<T, ClusterError> {
    let url = format!("{endpoint}{path}");
    let reply = http
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

/// A response header; `revision` is the store's revision after the call.
#[derive(Deserialize)]
pub(crate) struct Header {
    #[serde(default)]
    pub(crate) revision: Option<String>,
}

/// One key-value of a range answer (numbers come as decimal strings, bytes as
/// base64).
#[derive(Deserialize)]
pub(crate) struct Kv {
    #[serde(default)]
    pub(crate) value: Option<String>,
    #[serde(default)]
    pub(crate) mod_revision: Option<String>,
}

/// The answer to `/v3/kv/range`.
#[derive(Deserialize)]
pub(crate) struct RangeReply {
    #[serde(default)]
    pub(crate) kvs: Vec<Kv>,
}

/// The answer to `/v3/kv/txn`.
#[derive(Deserialize)]
pub(crate) struct TxnReply {
    pub(crate) header: Header,
    #[serde(default)]
    pub(crate) succeeded: bool,
}
