//! Alert webhooks, off the request path: alerts are queued on a small bounded
//! channel and POSTed as JSON by a background task, each attempt with a timeout.
//! A full queue or a delivery that fails every attempt is logged and counted,
//! never allowed to delay an answer: the caller's own durable record (evidence on
//! disk, an alert entry in the log, an error-level log line) is the record; the
//! webhook only notifies.
//!
//! A [`Retry`] policy bounds the attempts of one alert. Alerts are delivered one
//! at a time in order, so a receiver that is down holds the queue for at most
//! `attempts` timeouts and backoffs per alert; what arrives meanwhile beyond the
//! queue's capacity is dropped (and counted) rather than buffered without bound.

use std::time::Duration;

use tokio::sync::mpsc;

/// Alerts queued beyond this are dropped (and counted).
const QUEUE_CAPACITY: usize = 64;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often one alert is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// Attempts in all (at least 1).
    pub(crate) attempts: u32,
    /// The wait after the first failed attempt; doubled after each further one.
    pub(crate) first_backoff: Duration,
}

impl Retry {
    /// One attempt, no retry.
    pub(crate) const ONCE: Retry = Retry {
        attempts: 1,
        first_backoff: Duration::ZERO,
    };

    /// The wait after `failed` failed attempts (from 1).
    fn backoff(self, failed: u32) -> Duration {
        self.first_backoff
            .saturating_mul(1u32 << failed.saturating_sub(1).min(16))
            .min(MAX_BACKOFF)
    }
}

/// Sends alerts to a webhook URL, if one is configured.
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    tx: Option<mpsc::Sender<serde_json::Value>>,
    failures: &'static str,
}

impl Webhook {
    /// A sender that sends nothing.
    pub(crate) fn disabled() -> Webhook {
        Webhook {
            tx: None,
            failures: "",
        }
    }

    /// Starts the delivery task for `url` (http or https) on the current Tokio
    /// runtime; `what` names the alerts in log lines, `failures` is the counter of
    /// alerts dropped or not delivered.
    pub(crate) fn start(
        url: &str,
        timeout: Duration,
        what: &'static str,
        retry: Retry,
        failures: &'static str,
    ) -> Result<Webhook, String> {
        // The URL is never printed: webhook URLs often carry a token.
        let url = reqwest::Url::parse(url).map_err(|e| format!("{what} webhook URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "{what} webhook URL must be http or https, not {:?}",
                url.scheme()
            ));
        }
        if timeout.is_zero() {
            return Err(format!("the {what} webhook timeout must be more than 0"));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| format!("the {what} webhook needs a Tokio runtime"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("{what} webhook client: {e}"))?;
        let (tx, mut rx) = mpsc::channel::<serde_json::Value>(QUEUE_CAPACITY);
        let attempts = retry.attempts.max(1);
        runtime.spawn(async move {
            while let Some(body) = rx.recv().await {
                let body = body.to_string();
                for attempt in 1..=attempts {
                    let result = client
                        .post(url.clone())
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match result
                        .and_then(|r| r.error_for_status())
                        .map_err(reqwest::Error::without_url)
                    {
                        Ok(_) => {
                            tracing::info!(what, attempt, "alert webhook delivered");
                            break;
                        }
                        Err(err) if attempt < attempts => {
                            let delay = retry.backoff(attempt);
                            tracing::warn!(%err, what, attempt, ?delay, "alert webhook failed; retrying");
                            tokio::time::sleep(delay).await;
                        }
                        Err(err) => {
                            metrics::counter!(failures).increment(1);
                            tracing::warn!(%err, what, attempt, "alert webhook failed; giving up");
                        }
                    }
                }
            }
        });
        Ok(Webhook {
            tx: Some(tx),
            failures,
        })
    }

    /// Queues an alert without waiting.
    pub(crate) fn send(&self, body: serde_json::Value) {
        let Some(tx) = &self.tx else { return };
        if let Err(err) = tx.try_send(body) {
            metrics::counter!(self.failures).increment(1);
            tracing::warn!(%err, "alert webhook queue full or closed; alert dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = Retry {
            attempts: 10,
            first_backoff: Duration::from_millis(100),
        };
        assert_eq!(retry.backoff(1), Duration::from_millis(100));
        assert_eq!(retry.backoff(2), Duration::from_millis(200));
        assert_eq!(retry.backoff(3), Duration::from_millis(400));
        assert_eq!(retry.backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn a_refused_url_is_not_repeated_in_the_error() {
        let timeout = Duration::from_secs(1);
        for url in ["ftp://hooks.example/t0ken-secret", "http//t0ken-secret"] {
            let err = Webhook::start(url, timeout, "rule alert", Retry::ONCE, "c").unwrap_err();
            assert!(!err.contains("t0ken-secret"), "{err}");
            assert!(err.contains("rule alert webhook URL"), "{err}");
        }
    }
}
