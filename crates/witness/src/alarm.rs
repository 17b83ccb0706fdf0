//! Best-effort alarm webhook, off the request path.
//!
//! Alarms are queued on a small bounded channel and POSTed as JSON by a background
//! task, each with a bounded timeout. A full queue or a failed delivery is logged and
//! counted, never retried forever and never allowed to delay an answer: the evidence
//! on disk and the error-level log line are the durable record; the webhook is only a
//! notification.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Queued alarms beyond this are dropped (and counted).
const QUEUE_CAPACITY: usize = 64;

/// An alarm, serialised as the webhook's JSON body.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct Alarm {
    /// `"fork"`.
    pub kind: String,
    /// The log's origin.
    pub origin: String,
    /// The tree size both checkpoints claim.
    pub size: u64,
    /// Base64 root of the checkpoint the witness had cosigned.
    pub cosigned_root: String,
    /// Base64 root of the conflicting checkpoint.
    pub conflicting_root: String,
    /// Where the evidence was saved.
    pub evidence: String,
}

/// Sends alarms to the webhook task, if one is configured.
#[derive(Debug, Clone)]
pub(crate) struct AlarmSender {
    tx: Option<mpsc::Sender<Alarm>>,
    metrics: Arc<Metrics>,
}

impl AlarmSender {
    /// Starts the delivery task for `url` (or a no-op sender without one). Needs a
    /// Tokio runtime when `url` is set.
    pub(crate) fn start(
        url: Option<String>,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<AlarmSender, crate::WitnessError> {
        let Some(url) = url else {
            return Ok(AlarmSender { tx: None, metrics });
        };
        let url = reqwest::Url::parse(&url)
            .map_err(|e| crate::WitnessError::Config(format!("webhook_url {url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(crate::WitnessError::Config(format!(
                "webhook_url {url} must be http or https"
            )));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            crate::WitnessError::Config("the alarm webhook needs a Tokio runtime".into())
        })?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| crate::WitnessError::Config(format!("webhook client: {e}")))?;
        let (tx, mut rx) = mpsc::channel::<Alarm>(QUEUE_CAPACITY);
        let task_metrics = metrics.clone();
        runtime.spawn(async move {
            while let Some(alarm) = rx.recv().await {
                let result = client.post(url.clone()).json(&alarm).send().await;
                match result.and_then(|r| r.error_for_status()) {
                    Ok(_) => tracing::info!(origin = %alarm.origin, "alarm webhook delivered"),
                    Err(err) => {
                        task_metrics.count_webhook_failure();
                        tracing::warn!(%err, origin = %alarm.origin, "alarm webhook failed");
                    }
                }
            }
        });
        Ok(AlarmSender {
            tx: Some(tx),
            metrics,
        })
    }

    /// Queues an alarm without waiting.
    pub(crate) fn send(&self, alarm: Alarm) {
        let Some(tx) = &self.tx else { return };
        if let Err(err) = tx.try_send(alarm) {
            self.metrics.count_webhook_failure();
            tracing::warn!(%err, "alarm webhook queue full or closed; alarm dropped");
        }
    }
}
