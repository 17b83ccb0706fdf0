//! A best-effort alert webhook, off the request path: alerts are queued on a small
//! bounded channel and POSTed as JSON by a background task, each with a timeout. A
//! full queue or a failed delivery is logged and counted, never retried and never
//! allowed to delay an answer: the caller's own durable record (evidence on disk, an
//! error-level log line) is the record; the webhook only notifies.

use std::time::Duration;

use tokio::sync::mpsc;

/// Alerts queued beyond this are dropped (and counted).
const QUEUE_CAPACITY: usize = 64;

/// Sends alerts to a webhook URL, if one is configured.
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    tx: Option<mpsc::Sender<serde_json::Value>>,
}

/// Counter of alerts dropped or not delivered.
const FAILURES: &str = "merklog_source_alert_webhook_failures_total";

impl Webhook {
    /// A sender that sends nothing.
    pub(crate) fn disabled() -> Webhook {
        Webhook { tx: None }
    }

    /// Starts the delivery task for `url` (http or https) on the current Tokio
    /// runtime; `what` names the alerts in log lines.
    pub(crate) fn start(
        url: &str,
        timeout: Duration,
        what: &'static str,
    ) -> Result<Webhook, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("{what} webhook {url:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{what} webhook {url} must be http or https"));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| format!("the {what} webhook needs a Tokio runtime"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("{what} webhook client: {e}"))?;
        let (tx, mut rx) = mpsc::channel::<serde_json::Value>(QUEUE_CAPACITY);
        runtime.spawn(async move {
            while let Some(body) = rx.recv().await {
                let result = client
                    .post(url.clone())
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                match result.and_then(|r| r.error_for_status()) {
                    Ok(_) => tracing::info!(what, "alert webhook delivered"),
                    Err(err) => {
                        metrics::counter!(FAILURES).increment(1);
                        tracing::warn!(%err, what, "alert webhook failed");
                    }
                }
            }
        });
        Ok(Webhook { tx: Some(tx) })
    }

    /// Queues an alert without waiting.
    pub(crate) fn send(&self, body: serde_json::Value) {
        let Some(tx) = &self.tx else { return };
        if let Err(err) = tx.try_send(body) {
            metrics::counter!(FAILURES).increment(1);
            tracing::warn!(%err, "alert webhook queue full or closed; alert dropped");
        }
    }
}
