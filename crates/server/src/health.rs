//! The standard gRPC health service (`grpc.health.v1.Health`).
//!
//! Both the overall status (service `""`) and `merklog.v1.Log` report SERVING
//! while the log can sign, and NOT_SERVING once it refuses to sign (its stored
//! tree does not re-derive the signed root, or a witness has cosigned a larger
//! tree than the log holds: reads still work, appends cannot) or while the server
//! shuts down. Load balancers then stop sending appends to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Handle that flips the reported health.
#[derive(Clone, Debug)]
pub(crate) struct Health {
    reporter: HealthReporter,
    refused: Arc<AtomicBool>,
}

impl Health {
    pub(crate) fn new(reporter: HealthReporter) -> Self {
        Self {
            reporter,
            refused: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Sets both the overall and the log service status.
    pub(crate) async fn set(&self, serving: bool) {
        let status = if serving && !self.refused.load(Ordering::Acquire) {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        self.reporter
            .set_service_status(merklog_proto::LOG_SERVICE_NAME, status)
            .await;
    }

    /// Whether the refusal to sign has been recorded.
    pub(crate) fn is_refused(&self) -> bool {
        self.refused.load(Ordering::Acquire)
    }

    /// Records that the log refuses to sign, once, and reports NOT_SERVING.
    pub(crate) fn signing_refused(&self) {
        if self.refused.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::error!("the log refuses to sign; health now reports NOT_SERVING");
        let health = self.clone();
        tokio::spawn(async move { health.set(false).await });
    }
}
