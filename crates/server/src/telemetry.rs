//! Prometheus metrics (`GET /metrics` on the metrics listener) and log output.
//!
//! The server records, per gRPC method, `merklog_rpc_calls_total{rpc}`,
//! `merklog_rpc_errors_total{rpc,code}` and `merklog_rpc_duration_seconds{rpc}`
//! (a stream request counts as one `AppendStream` call), and
//! `merklog_http_requests_total{kind,status}` for the tlog-tiles API. At scrape
//! time it sets `merklog_checkpoint_age_seconds` (time since the latest checkpoint
//! was published). The sequencer records its own metrics (`merklog_round_*` batch
//! sizes and latencies, `merklog_append_integration_seconds`, `merklog_queue_entries`,
//! `merklog_tree_size`, ...) through the same `metrics` facade; with a witness
//! policy, also `merklog_witness_requests_total{witness,outcome}`,
//! `merklog_witness_request_seconds`, `merklog_witness_quorum_seconds`,
//! `merklog_published_size` and `merklog_durable_size` (see `merklog_log::metrics`).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use merklog_log::Log;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::ServerError;
use crate::config::LogFormat;

/// Latency buckets (seconds) for every `*_seconds` histogram: 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often histogram buffers are drained so memory stays bounded.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle.
/// Several servers in one process (tests) share it. If another recorder was
/// installed first (an embedding program), the handle renders nothing and a
/// warning is logged.
pub fn prometheus_handle() -> Result<PrometheusHandle, ServerError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
        .map_err(|e| ServerError::Config(format!("metrics: {e}")))?
        .build_recorder();
    let handle = recorder.handle();
    let handle = HANDLE.get_or_init(|| {
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        handle
    });
    Ok(handle.clone())
}

/// When the latest checkpoint was published, as seen by this server.
#[derive(Clone)]
pub(crate) struct PublishClock {
    published_at: Arc<Mutex<Instant>>,
}

impl PublishClock {
    /// Starts watching the log's published checkpoints.
    pub(crate) fn watch(log: &Log) -> Self {
        let mut checkpoints = log.subscribe();
        checkpoints.mark_unchanged();
        let clock = Self {
            published_at: Arc::new(Mutex::new(Instant::now())),
        };
        let writer = clock.clone();
        tokio::spawn(async move {
            while checkpoints.changed().await.is_ok() {
                checkpoints.mark_unchanged();
                if let Ok(mut published_at) = writer.published_at.lock() {
                    *published_at = Instant::now();
                }
            }
        });
        clock
    }

    /// Time since the latest checkpoint was published (or the server started).
    fn age(&self) -> Duration {
        self.published_at
            .lock()
            .map(|published_at| published_at.elapsed())
            .unwrap_or_default()
    }
}

/// Drains histogram buffers periodically.
pub(crate) fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// The metrics router: `GET /metrics`.
pub(crate) fn router(handle: PrometheusHandle, clock: PublishClock) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state((handle, clock))
}

async fn render(State((handle, clock)): State<(PrometheusHandle, PublishClock)>) -> Response {
    metrics::gauge!("merklog_checkpoint_age_seconds").set(clock.age().as_secs_f64());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render(),
    )
        .into_response()
}

/// Installs the global `tracing` subscriber: `filter` in env-filter syntax, text
/// or JSON lines on stderr (stdout carries only the verifier key on first start).
pub fn init_tracing(format: LogFormat, filter: &str) -> Result<(), ServerError> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| ServerError::Config(format!("log-level {filter:?}: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| ServerError::Config(format!("installing the log subscriber: {e}")))
}
