//! The standard gRPC health service (`grpc.health.v1.Health`).
//!
//! Both the overall status (service `""`) and `merklog.v1.Log` report SERVING
//! while the log can sign, and NOT_SERVING while it refuses to sign (its stored
//! tree does not re-derive the signed root, a witness has cosigned a larger tree
//! than the log holds, or witnesses that refuse the log leave no quorum: reads
//! still work, appends cannot) or while the server shuts down. Load balancers then
//! stop sending appends to it. A refusal that clears (a refusing witness cosigns
//! again) turns it SERVING again.
//!
//! Damaged storage (a read found a checksum mismatch) turns it NOT_SERVING for the
//! rest of the process: the data is lost, and an operator must restore it. The
//! tiles port's `/readyz` reports the same state (see [`Health::readiness`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use merklog_log::Log;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Counter of reads that found stored data damaged.
pub(crate) const CORRUPTION_METRIC: &str = "merklog_storage_corruption_total";

/// Handle that flips the reported health.
#[derive(Clone, Debug)]
pub(crate) struct Health {
    reporter: HealthReporter,
    refused: Arc<AtomicBool>,
    serving: Arc<AtomicBool>,
    corrupt: Arc<AtomicBool>,
    /// Held while a status is reported, so concurrent changes are reported in order
    /// and the last one reported is the current one.
    report: Arc<Mutex<()>>,
}

impl Health {
    pub(crate) fn new(reporter: HealthReporter) -> Self {
        // Exported from the start (at 0), so alerts and dashboards find the series.
        metrics::counter!(CORRUPTION_METRIC).increment(0);
        Self {
            reporter,
            refused: Arc::new(AtomicBool::new(false)),
            serving: Arc::new(AtomicBool::new(false)),
            corrupt: Arc::new(AtomicBool::new(false)),
            report: Arc::new(Mutex::new(())),
        }
    }

    /// Sets whether the server serves (false once it shuts down) and reports both
    /// the overall and the log service status.
    pub(crate) async fn set(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
        self.report().await;
    }

    async fn report(&self) {
        let _order = self.report.lock().await;
        let status = if self.readiness().is_ok() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        self.reporter
            .set_service_status(merklog_proto::LOG_SERVICE_NAME, status)
            .await;
    }

    /// Ok while the server serves and can sign; otherwise why not (what `/readyz`
    /// answers with 503).
    pub(crate) fn readiness(&self) -> Result<(), &'static str> {
        if !self.serving.load(Ordering::Acquire) {
            Err("not serving (starting or shutting down)")
        } else if self.corrupt.load(Ordering::Acquire) {
            Err(
                "stored data is damaged (a read found a checksum mismatch); restore the data directory from a backup",
            )
        } else if self.refused.load(Ordering::Acquire) {
            Err("the log refuses to sign (see the server's log)")
        } else {
            Ok(())
        }
    }

    /// Records that a read found stored data damaged: counts it, logs it, and
    /// reports NOT_SERVING from now on (the first time).
    pub(crate) fn storage_corrupted(&self, error: &str) {
        metrics::counter!(CORRUPTION_METRIC).increment(1);
        tracing::error!(%error, "STORAGE CORRUPTION: stored data is damaged; health now reports NOT_SERVING");
        if self.corrupt.swap(true, Ordering::AcqRel) {
            return;
        }
        let health = self.clone();
        tokio::spawn(async move { health.report().await });
    }

    /// Whether a refusal to sign is recorded now.
    pub(crate) fn is_refused(&self) -> bool {
        self.refused.load(Ordering::Acquire)
    }

    /// Records that the log refuses to sign and reports NOT_SERVING.
    pub(crate) fn signing_refused(&self) {
        self.set_refused(true);
    }

    fn set_refused(&self, refused: bool) {
        if self.refused.swap(refused, Ordering::AcqRel) == refused {
            return;
        }
        if refused {
            tracing::error!("the log refuses to sign; health now reports NOT_SERVING");
        } else {
            tracing::warn!("the log signs again; health reports SERVING again");
        }
        let health = self.clone();
        tokio::spawn(async move { health.report().await });
    }

    /// Follows the log's refusal to sign both ways until `stop` is set: a refusal
    /// turns health NOT_SERVING, and a refusal that clears turns it back.
    pub(crate) fn follow(&self, log: &Log, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let mut refusals = log.watch_signing_refused();
        let health = self.clone();
        tokio::spawn(async move {
            loop {
                let refused = refusals.borrow_and_update().is_some();
                health.set_refused(refused);
                tokio::select! {
                    changed = refusals.changed() => {
                        if changed.is_err() {
                            return; // The log is gone.
                        }
                    }
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
        })
    }
}
