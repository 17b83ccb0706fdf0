//! Liveness and readiness over plain HTTP on the tiles port, for load balancers
//! and orchestrators that cannot speak gRPC health:
//! - `GET /healthz`: 200 while the process serves HTTP (liveness);
//! - `GET /readyz`: 200 while the store is open, undamaged and the log can sign,
//!   503 with the reason otherwise (the same state as gRPC health).
//!
//! Both are outside access control: they reveal nothing about the log's content.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::health::Health;

/// The probe routes.
pub(crate) fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n".to_owned())
}

async fn readyz(State(health): State<Health>) -> Response {
    match health.readiness() {
        Ok(()) => plain(StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}
