//! Watching the alerts a log's rules raise (`merklog.v1.Alerts/WatchAlerts`).
//!
//! The stream is a notification, from the moment of the call on: it carries no
//! proof. Each alert is also an alert entry in the log, a signed event of the
//! source `merklog.alerts`, and that entry (its signature under `alert.vkey` and
//! its inclusion proof) is the evidence.

use merklog_merkle::Hash;
use merklog_proto::v1;
use merklog_proto::v1::alerts_client::AlertsClient;

use crate::client::connect_channel;
use crate::token::Credentials;
use crate::{ClientError, ClientOptions};

/// One alert as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The rule's name.
    pub rule: String,
    /// Index of the matching entry.
    pub leaf_index: u64,
    /// Its leaf hash (`None` if the server sent none of the right length).
    pub leaf_hash: Option<Hash>,
    /// The event's actor id.
    pub actor: String,
    /// The event's action.
    pub action: String,
    /// The event's time, RFC 3339.
    pub time: String,
    /// For a windowed rule, matches of the key within the window when it fired;
    /// 0 for a rule without a window.
    pub window_count: u64,
    /// For a rule with count-by, the key.
    pub key: Option<String>,
    /// When the rule matched, Unix ms (the server's clock).
    pub matched_unix_ms: u64,
}

impl From<v1::Alert> for Alert {
    fn from(wire: v1::Alert) -> Self {
        Alert {
            rule: wire.rule,
            leaf_index: wire.leaf_index,
            leaf_hash: Hash::try_from(&wire.leaf_hash[..]).ok(),
            actor: wire.actor,
            action: wire.action,
            time: wire.time,
            window_count: wire.window_count,
            key: (!wire.key.is_empty()).then_some(wire.key),
            matched_unix_ms: wire.matched_unix_ms,
        }
    }
}

/// An open alert stream (see [`watch_alerts`]).
pub struct AlertWatch {
    stream: tonic::Streaming<v1::Alert>,
}

impl AlertWatch {
    /// The next alert; `None` when the server ended the stream (it stopped).
    /// Waits as long as no rule fires: the connection's keepalive notices a
    /// server that went away.
    pub async fn next(&mut self) -> Result<Option<Alert>, ClientError> {
        match self.stream.message().await {
            Ok(alert) => Ok(alert.map(Alert::from)),
            Err(status) => Err(ClientError::rpc("WatchAlerts", status)),
        }
    }
}

/// Connects to `url` and subscribes to the alerts of `rule` (all rules when
/// `None`). Needs the read role when the server restricts reads.
pub async fn watch_alerts(
    url: &str,
    options: &ClientOptions,
    rule: Option<&str>,
) -> Result<AlertWatch, ClientError> {
    let channel = connect_channel(url, options).await?;
    let credentials = Credentials::new(options.token.as_ref())?;
    let mut client = AlertsClient::with_interceptor(channel, credentials)
        .max_decoding_message_size(options.max_message_bytes);
    let request = v1::WatchAlertsRequest {
        rule: rule.unwrap_or_default().to_owned(),
    };
    let stream = crate::client::call(
        "WatchAlerts",
        url,
        options.request_timeout,
        client.watch_alerts(request),
    )
    .await?;
    Ok(AlertWatch { stream })
}
