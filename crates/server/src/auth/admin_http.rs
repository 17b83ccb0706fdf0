//! The admin API on the HTTP port: token management for principals with the
//! `admin` role, without a shell on the server's machine.
//!
//! - `GET /admin/tokens`: the tokens file's records as JSON (id, principal,
//!   roles, expiry; the file holds no secret, and no hash is shown beyond the
//!   id `token list` prints);
//! - `DELETE /admin/tokens/{id}`: revokes the token with that id (at least 8
//!   hex digits), synced, and drops it from the live set at once.
//!
//! Both need the `admin` role whatever `read-access` says (401 without a
//! valid credential, 403 without the role). On a log without authentication
//! (no tokens file, no principal tables) every caller would be anonymous with
//! every role, so the admin API answers 403 there instead.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use merklog_auth::{Role, TokenRecord};

use crate::ServerError;
use crate::auth::Authenticator;
use crate::auth::tokens::{Revoke, read_tokens, revoke_tokens};
use crate::telemetry;
use crate::tls::PeerCertificates;

/// What the admin handlers share.
#[derive(Clone)]
struct Admin {
    auth: Arc<Authenticator>,
    tokens_file: Option<PathBuf>,
}

/// The admin routes, each behind the `admin` role check.
pub(crate) fn router(auth: Arc<Authenticator>, tokens_file: Option<PathBuf>) -> Router {
    let state = Admin {
        auth: Arc::clone(&auth),
        tokens_file,
    };
    Router::new()
        .route("/admin/tokens", get(list_tokens))
        .route("/admin/tokens/{id}", axum::routing::delete(revoke_token))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(auth, require_admin))
}

fn answer(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        format!("{message}\n"),
    )
        .into_response()
}

async fn require_admin(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    if !auth.is_enabled() {
        return answer(
            StatusCode::FORBIDDEN,
            "the admin API needs authentication: configure a tokens file or principal tables"
                .into(),
        );
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let chain: Option<Vec<&[u8]>> = request
        .extensions()
        .get::<PeerCertificates>()
        .map(|certs| certs.0.iter().map(|der| der.as_ref()).collect());
    match auth.authorize(authorization, chain.as_deref(), Role::Admin) {
        Ok(_) => next.run(request).await,
        Err(rejection) => {
            telemetry::record_auth_rejection(rejection.reason());
            if rejection.is_denial() {
                answer(StatusCode::FORBIDDEN, rejection.message())
            } else {
                let mut response = answer(StatusCode::UNAUTHORIZED, rejection.message());
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
        }
    }
}

fn record_json(record: &TokenRecord) -> serde_json::Value {
    serde_json::json!({
        "id": record.id(),
        "principal": record.principal.to_string(),
        "roles": record.roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "expires": record.expires.to_string(),
    })
}

fn no_tokens_file() -> Response {
    answer(
        StatusCode::NOT_FOUND,
        "this server has no tokens file".into(),
    )
}

fn failure(error: &ServerError) -> Response {
    answer(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

async fn list_tokens(State(admin): State<Admin>) -> Response {
    let Some(path) = admin.tokens_file else {
        return no_tokens_file();
    };
    match tokio::task::spawn_blocking(move || read_tokens(&path)).await {
        Ok(Ok(file)) => {
            let records: Vec<_> = file.records().iter().map(record_json).collect();
            axum::Json(records).into_response()
        }
        Ok(Err(error)) => failure(&error),
        Err(_) => answer(StatusCode::INTERNAL_SERVER_ERROR, "the task failed".into()),
    }
}

async fn revoke_token(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    let Some(path) = admin.tokens_file else {
        return no_tokens_file();
    };
    let reload_from = path.clone();
    let revoked = tokio::task::spawn_blocking(move || {
        revoke_tokens(&path, &Revoke::Id(id))?;
        read_tokens(&reload_from).map(|file| (file, path))
    })
    .await;
    match revoked {
        Ok(Ok((file, path))) => {
            let count = file.records().len();
            admin.auth.replace_tokens(file);
            tracing::info!(path = %path.display(), tokens = count, "a token was revoked through the admin API");
            answer(StatusCode::OK, "revoked".into())
        }
        // Unknown or ambiguous ids are the caller's mistake; the message names
        // which (it holds no secret).
        Ok(Err(ServerError::Config(message))) => answer(StatusCode::NOT_FOUND, message),
        Ok(Err(error)) => failure(&error),
        Err(_) => answer(StatusCode::INTERNAL_SERVER_ERROR, "the task failed".into()),
    }
}
