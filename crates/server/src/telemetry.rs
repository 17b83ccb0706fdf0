//! Prometheus metrics (`GET /metrics` on the metrics listener).
//!
//! The server records, per gRPC method of `merklog.v1.Log`, `merklog_rpc_calls_total{rpc}`,
//! `merklog_rpc_errors_total{rpc,code}` and `merklog_rpc_duration_seconds{rpc}`
//! in one tower layer (`RpcMetricsLayer`; a stream is one call), the outcome of
//! each request inside an append stream as
//! `merklog_append_stream_requests_total{code}` (`ok` included), and
//! `merklog_http_requests_total{kind,status}` for the tlog-tiles API, the
//! entries accepted per principal as `merklog_appends_total{principal}` (at most
//! [`MAX_PRINCIPAL_LABELS`] names, then `other`), refused calls as
//! `merklog_auth_rejections_total{reason}`, and tokens file reloads as
//! `merklog_tokens_reloads_total{outcome}`. At scrape
//! time it sets `merklog_checkpoint_age_seconds` (time since the latest checkpoint
//! was published). The sequencer records its own metrics (`merklog_round_*` batch
//! sizes and latencies, `merklog_append_integration_seconds`, `merklog_queue_entries`,
//! `merklog_tree_size`, ...) through the same `metrics` facade; with a witness
//! policy, also `merklog_witness_requests_total{witness,outcome}`,
//! `merklog_witness_request_seconds`, `merklog_witness_quorum_seconds`,
//! `merklog_published_size` and `merklog_durable_size` (see `merklog_log::metrics`).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body::{Body as HttpBody, Frame, SizeHint};
use merklog_log::Log;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tonic::Code;
use tonic::server::NamedService;
use tower::Service;

use crate::ServerError;

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

/// Most distinct `principal` label values of `merklog_appends_total`; appends of
/// further principals are counted under `other`, so a flood of principal names
/// cannot grow the metric set without bound.
pub const MAX_PRINCIPAL_LABELS: usize = 64;

/// The principals that have a label of their own (at most
/// [`MAX_PRINCIPAL_LABELS`], first come first served).
static PRINCIPAL_LABELS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// The label of `principal`: its name while the cap allows, else `other`.
fn principal_label(principal: &str) -> String {
    let mut labels = match PRINCIPAL_LABELS.lock() {
        Ok(labels) => labels,
        Err(poisoned) => poisoned.into_inner(),
    };
    if labels.contains(principal) {
        return principal.to_owned();
    }
    if labels.len() < MAX_PRINCIPAL_LABELS {
        labels.insert(principal.to_owned());
        return principal.to_owned();
    }
    "other".to_owned()
}

/// Counts `entries` accepted entries of `principal` in
/// `merklog_appends_total{principal}`.
pub(crate) fn record_append(principal: &str, entries: usize) {
    let entries = u64::try_from(entries).unwrap_or(u64::MAX);
    metrics::counter!("merklog_appends_total", "principal" => principal_label(principal))
        .increment(entries);
}

/// Counts one refused call in `merklog_auth_rejections_total{reason}` (`reason`
/// is one of a fixed set: missing_credential, malformed_credential,
/// unknown_token, expired_token, bad_certificate, missing_role, rate_limited,
/// stream_limit).
pub(crate) fn record_auth_rejection(reason: &'static str) {
    metrics::counter!("merklog_auth_rejections_total", "reason" => reason).increment(1);
}

/// The methods of `merklog.v1.Log`: the `rpc` label takes only these values (and
/// `unknown`), so a client cannot grow the label set with made-up paths.
const LOG_METHODS: [&str; 7] = [
    "Append",
    "AppendStream",
    "GetCheckpoint",
    "GetInclusionProof",
    "GetConsistencyProof",
    "GetEntries",
    "WatchCheckpoints",
];

/// A stable, low-cardinality label for a status code.
pub(crate) fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::InvalidArgument => "invalid_argument",
        Code::OutOfRange => "out_of_range",
        Code::NotFound => "not_found",
        Code::ResourceExhausted => "resource_exhausted",
        Code::Unavailable => "unavailable",
        Code::FailedPrecondition => "failed_precondition",
        Code::Internal => "internal",
        Code::Cancelled => "cancelled",
        Code::Unimplemented => "unimplemented",
        Code::Unauthenticated => "unauthenticated",
        Code::PermissionDenied => "permission_denied",
        _ => "other",
    }
}

/// Per-RPC metrics for a gRPC service, as one tower layer:
/// `merklog_rpc_calls_total{rpc}`, `merklog_rpc_duration_seconds{rpc}` (from the
/// request to the end of the answer: a stream counts as one call that lasts as
/// long as the stream) and `merklog_rpc_errors_total{rpc,code}` for each call that
/// ended with a status other than OK.
///
/// A call whose answer the client abandoned (it cancelled, or closed a watch or
/// an append stream once it had what it wanted) has no status and is not an
/// error: it counts as a call only.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics { inner }
    }
}

/// The service [`RpcMetricsLayer`] wraps around a gRPC service.
#[derive(Debug, Clone)]
pub(crate) struct RpcMetrics<S> {
    inner: S,
}

impl<S: NamedService> NamedService for RpcMetrics<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: HttpBody + Unpin,
{
    type Response = http::Response<RecordedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        let rpc = LOG_METHODS
            .iter()
            .find(|known| **known == method)
            .copied()
            .unwrap_or("unknown");
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            // An answer without a body (an error before any message) carries
            // its status in the headers.
            let header_status = grpc_status(response.headers());
            Ok(response.map(|inner| RecordedBody {
                inner,
                pending: Some(PendingCall {
                    rpc,
                    started,
                    header_status,
                }),
            }))
        })
    }
}

/// A call not yet recorded.
#[derive(Debug)]
struct PendingCall {
    rpc: &'static str,
    started: Instant,
    header_status: Option<Code>,
}

/// The call counter and duration histogram of one `rpc` label.
struct CallMetrics {
    rpc: &'static str,
    calls: metrics::Counter,
    duration: metrics::Histogram,
}

/// The handles of every `rpc` label, registered on the first call that ends (the
/// server installs the recorder before it serves): looking a metric up by name and
/// label on every call costs more than recording it.
fn call_metrics(rpc: &'static str) -> Option<&'static CallMetrics> {
    static TABLE: OnceLock<Vec<CallMetrics>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        LOG_METHODS
            .iter()
            .copied()
            .chain(["unknown"])
            .map(|rpc| CallMetrics {
                rpc,
                calls: metrics::counter!("merklog_rpc_calls_total", "rpc" => rpc),
                duration: metrics::histogram!("merklog_rpc_duration_seconds", "rpc" => rpc),
            })
            .collect()
    });
    table.iter().find(|m| m.rpc == rpc)
}

impl PendingCall {
    fn record(self, status: Option<Code>) {
        let rpc = self.rpc;
        let elapsed = self.started.elapsed().as_secs_f64();
        // Every `rpc` label comes from the table the handles are made from.
        if let Some(handles) = call_metrics(rpc) {
            handles.calls.increment(1);
            handles.duration.record(elapsed);
        }
        if let Some(code) = status.filter(|code| *code != Code::Ok) {
            metrics::counter!("merklog_rpc_errors_total", "rpc" => rpc, "code" => code_label(code))
                .increment(1);
        }
    }
}

/// A response body that records its call when its status is known: from the
/// trailers, from the headers of a body-less answer, or never (dropped unfinished).
#[derive(Debug)]
pub(crate) struct RecordedBody<B> {
    inner: B,
    pending: Option<PendingCall>,
}

impl<B> RecordedBody<B> {
    fn finish(&mut self, status: Option<Code>) {
        if let Some(call) = self.pending.take() {
            let status = status.or(call.header_status);
            call.record(status);
        }
    }
}

impl<B> Drop for RecordedBody<B> {
    fn drop(&mut self) {
        // With a status in the headers the answer was complete (the transport
        // need not poll an empty body); without one the client went away first.
        self.finish(None);
    }
}

impl<B: HttpBody + Unpin> HttpBody for RecordedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let status = grpc_status(trailers).unwrap_or(Code::Unknown);
                    self.finish(Some(status));
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(Some(Code::Internal)),
            Poll::Ready(None) => {
                let status = self
                    .pending
                    .as_ref()
                    .and_then(|call| call.header_status)
                    .unwrap_or(Code::Unknown);
                self.finish(Some(status));
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `grpc-status` of a header or trailer map.
fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|value| Code::from_bytes(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_labels_are_capped() {
        let names: Vec<String> = (0..MAX_PRINCIPAL_LABELS + 5)
            .map(|i| format!("label-test-{i}"))
            .collect();
        let labels: Vec<String> = names.iter().map(|n| principal_label(n)).collect();
        // Earlier tests in this binary may hold some slots: every name either
        // keeps its own label or becomes `other`, and the set never exceeds the cap.
        assert!(
            labels
                .iter()
                .zip(&names)
                .all(|(l, n)| l == n || l == "other")
        );
        assert_eq!(labels.last().map(String::as_str), Some("other"));
        assert_eq!(principal_label(&names[0]), labels[0]);
        assert!(PRINCIPAL_LABELS.lock().unwrap().len() <= MAX_PRINCIPAL_LABELS);
    }
}
