//! Access control of the tlog-tiles HTTP API: with
//! `read-access = "authenticated"`, every request needs a principal with the
//! `read` role (401 with `WWW-Authenticate: Bearer` without a valid
//! credential, 403 without the role). Bearer tokens come in the
//! `Authorization` header, as on gRPC; over TLS a client certificate names its
//! principal too.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use merklog_auth::Role;

use crate::auth::{Authenticator, Caller};
use crate::telemetry;
use crate::tls::PeerCertificates;

/// The middleware (see the module documentation).
pub(crate) async fn require_read(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(role) = auth.read_role() else {
        return next.run(request).await;
    };
    match authorize(&auth, &request, role) {
        Ok(_) => next.run(request).await,
        Err(response) => *response,
    }
}

/// Authenticates an HTTP request's caller and checks it has `role`, as the gRPC
/// layer does: a bearer token in `Authorization`, else over TLS the connection's
/// client certificate. A refusal is the HTTP answer to send (401 with
/// `WWW-Authenticate: Bearer`, or 403).
pub(crate) fn authorize(
    auth: &Authenticator,
    request: &Request,
    role: Role,
) -> Result<Caller, Box<Response>> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    // Over TLS the listener hands each request its connection's verified
    // client chain, so certificate principals are known here as on gRPC.
    let chain: Option<Vec<&[u8]>> = request
        .extensions()
        .get::<PeerCertificates>()
        .map(|certs| certs.0.iter().map(|der| der.as_ref()).collect());
    auth.authorize(authorization, chain.as_deref(), role)
        .map_err(|rejection| {
            telemetry::record_auth_rejection(rejection.reason());
            let status = if rejection.is_denial() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            };
            let mut response = (
                status,
                [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                format!("{}\n", rejection.message()),
            )
                .into_response();
            if status == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Box::new(response)
        })
}
