//! The HTTP interface: C2SP tlog-witness `add-checkpoint`, the monitoring API and
//! `/metrics`, on axum.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::WitnessError;
use crate::request::MAX_BODY_BYTES;
use crate::witness::Witness;

/// Content type of a 409 answer's body (the spec's).
pub use merklog_note::grammar::TLOG_SIZE_CONTENT_TYPE;
const TEXT: &str = "text/plain; charset=utf-8";

/// The witness's routes:
/// - `POST <submission prefix>/add-checkpoint`
/// - `GET <monitoring prefix>/<lowercase hex SHA-256(origin)>/checkpoint`
/// - `GET /metrics` (Prometheus text format)
///
/// Request bodies are capped at [`MAX_BODY_BYTES`] while they stream in (413 beyond).
pub fn router(witness: Arc<Witness>) -> Router {
    let add = format!("{}/add-checkpoint", witness.submission_prefix());
    let monitor = format!("{}/{{origin_hash}}/checkpoint", witness.monitoring_prefix());
    Router::new()
        .route(&add, post(add_checkpoint))
        .route(&monitor, get(latest_checkpoint))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(witness)
}

async fn add_checkpoint(
    State(witness): State<Arc<Witness>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            witness
                .metrics_handle()
                .count_request(rejection.status().as_u16());
            return rejection.into_response();
        }
    };
    let result = witness.add_checkpoint(body).await;
    let response = match result {
        Ok(lines) => (StatusCode::OK, [(header::CONTENT_TYPE, TEXT)], lines).into_response(),
        Err(WitnessError::SizeConflict {
            old_size,
            stored_size,
        }) => {
            // Expected once per log start (it asks with old size 0), so not a warning.
            tracing::info!(
                old_size,
                stored_size,
                "add-checkpoint answered 409: the old size is not the size last cosigned"
            );
            (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, TLOG_SIZE_CONTENT_TYPE)],
                merklog_note::grammar::encode_size_body(stored_size),
            )
                .into_response()
        }
        Err(error) => error_response(&error),
    };
    witness
        .metrics_handle()
        .count_request(response.status().as_u16());
    response
}

fn error_response(error: &WitnessError) -> Response {
    let status = error.status();
    if status.is_server_error() {
        tracing::error!(%error, "add-checkpoint failed");
        // Internal details (paths, I/O errors) stay in the operator's log.
        return (status, [(header::CONTENT_TYPE, TEXT)], "internal error\n").into_response();
    }
    // Every refused checkpoint is logged with its reason: a counter alone does not
    // tell an operator why a log stopped being cosigned.
    tracing::warn!(%error, status = status.as_u16(), "add-checkpoint refused");
    (status, [(header::CONTENT_TYPE, TEXT)], format!("{error}\n")).into_response()
}

async fn latest_checkpoint(
    State(witness): State<Arc<Witness>>,
    Path(origin_hash): Path<String>,
) -> Response {
    match witness.latest_checkpoint(&origin_hash) {
        Some(note) => (StatusCode::OK, [(header::CONTENT_TYPE, TEXT)], note).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, TEXT)],
            "no cosigned checkpoint for this origin hash\n",
        )
            .into_response(),
    }
}

async fn metrics(State(witness): State<Arc<Witness>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        witness.render_metrics(),
    )
        .into_response()
}
