//! The SCITT registration API (SCRAPI) on the tiles HTTP port:
//! - `POST /entries` (`application/cose`: a COSE_Sign1 signed statement) registers the
//!   statement: its issuer (`iss`) must be a `[[scitt-issuer]]` and its signature must
//!   verify with that issuer's key; the caller needs the `append` role. The entry
//!   appended is the exact request body. Answer: 201 with the receipt
//!   (`application/cose`) once the entry is sealed and published, or, when that takes
//!   longer than a short wait (a witness quorum), 303 with `Location: /entries/<leaf
//!   hash>` and `Retry-After`: the append goes on and the receipt appears there;
//! - `GET /entries/{id}`: the receipt at the latest checkpoint; `id` is the entry's
//!   RFC 6962 leaf hash (64 hex digits) or its decimal index;
//! - `GET /.well-known/scitt-keys`: the receipt key as a COSE_KeySet.
//!
//! Errors are concise problem details (RFC 9290, CBOR). A refused statement writes
//! nothing: every check runs before the single-entry append, which is all or nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use merklog_auth::Role;
use merklog_log::Log;
use merklog_merkle::{Hash, hash_leaf};
use merklog_proto::v1::get_inclusion_proof_request::Leaf;
use merklog_receipt::{
    COSE_CONTENT_TYPE, PROBLEM_CONTENT_TYPE, PublicKey, SignedStatement, problem_details,
};
use tonic::{Code, Status};

use super::Receipts;
use crate::auth::Authenticator;
use crate::sources::{AppendError, Sources};
use crate::status::log_status;
use crate::telemetry;
use crate::tls::PeerCertificates;

/// How long `POST /entries` waits for the entry to be published before answering 303.
const REGISTRATION_WAIT: Duration = Duration::from_secs(3);
/// `Retry-After` (seconds) of a 303 and of a pending `GET /entries/{id}`.
const RETRY_AFTER_SECONDS: &str = "1";
/// Media type of the key set.
const KEY_SET_CONTENT_TYPE: &str = "application/cbor";

/// What the SCRAPI handlers use.
#[derive(Clone)]
pub(crate) struct Scrapi {
    pub(crate) log: Log,
    pub(crate) receipts: Option<Arc<Receipts>>,
    pub(crate) issuers: Arc<HashMap<String, PublicKey>>,
    pub(crate) sources: Arc<Sources>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) max_entry_bytes: usize,
}

/// The read routes (`GET /entries/{id}`, `GET /.well-known/scitt-keys`): the server
/// puts them behind the tiles port's read access control.
pub(crate) fn read_router(state: Scrapi) -> Router {
    Router::new()
        .route("/entries/{id}", get(get_entry))
        .route("/.well-known/scitt-keys", get(keys))
        .with_state(state)
}

/// `POST /entries`, which checks the `append` role itself.
pub(crate) fn register_router(state: Scrapi) -> Router {
    Router::new()
        .route("/entries", post(register))
        .with_state(state)
}

fn count(kind: &'static str, status: StatusCode) {
    metrics::counter!(
        "merklog_scrapi_requests_total",
        "kind" => kind,
        "status" => status.as_str().to_owned()
    )
    .increment(1);
}

fn problem(kind: &'static str, status: StatusCode, title: &str, detail: &str) -> Response {
    count(kind, status);
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        problem_details(title, detail),
    )
        .into_response()
}

/// The HTTP status of a gRPC status shared with the `GetReceipt` path.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::NotFound | Code::OutOfRange => StatusCode::NOT_FOUND,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable | Code::FailedPrecondition | Code::DeadlineExceeded => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn status_problem(kind: &'static str, title: &str, status: &Status) -> Response {
    let mut response = problem(kind, http_status(status.code()), title, status.message());
    if matches!(status.code(), Code::ResourceExhausted | Code::Unavailable) {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

fn cose(
    kind: &'static str,
    status: StatusCode,
    location: Option<&Hash>,
    body: Vec<u8>,
) -> Response {
    count(kind, status);
    let mut response = (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(COSE_CONTENT_TYPE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response();
    if let Some(hash) = location
        && let Ok(value) = HeaderValue::from_str(&format!("/entries/{hash}"))
    {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn keys(State(scrapi): State<Scrapi>) -> Response {
    let Some(receipts) = &scrapi.receipts else {
        return problem(
            "keys",
            StatusCode::SERVICE_UNAVAILABLE,
            "No receipt key",
            "this node has no receipt key (a read-only node)",
        );
    };
    match PublicKey::encode_key_set(std::slice::from_ref(receipts.public_key())) {
        Ok(bytes) => {
            count("keys", StatusCode::OK);
            (
                StatusCode::OK,
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(KEY_SET_CONTENT_TYPE),
                    ),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("public, max-age=60"),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => problem(
            "keys",
            StatusCode::INTERNAL_SERVER_ERROR,
            "Key encoding failed",
            &e.to_string(),
        ),
    }
}

/// Reads an entry id: 64 hex digits (leaf hash) or a decimal index.
fn parse_id(id: &str) -> Result<Leaf, String> {
    if id.len() == 64 {
        let hash: Hash = id
            .parse()
            .map_err(|_| format!("{id:?} is not a lower-case hex leaf hash"))?;
        return Ok(Leaf::LeafHash(bytes::Bytes::copy_from_slice(
            hash.as_bytes(),
        )));
    }
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        return id
            .parse()
            .map(Leaf::Index)
            .map_err(|_| format!("index {id} is too large"));
    }
    Err(format!(
        "{id:?} is neither a leaf hash (64 hex digits) nor a decimal entry index"
    ))
}

async fn get_entry(State(scrapi): State<Scrapi>, Path(id): Path<String>) -> Response {
    let leaf = match parse_id(&id) {
        Ok(leaf) => leaf,
        Err(detail) => return problem("entry", StatusCode::BAD_REQUEST, "Bad entry id", &detail),
    };
    let Some(receipts) = &scrapi.receipts else {
        return problem(
            "entry",
            StatusCode::SERVICE_UNAVAILABLE,
            "No receipt key",
            "this node has no receipt key (a read-only node)",
        );
    };
    match receipts.receipt(&scrapi.log, Some(leaf), None).await {
        Ok(issued) => cose("entry", StatusCode::OK, None, issued.bytes),
        Err(status) => {
            let mut response = status_problem("entry", "No receipt", &status);
            if status.code() == Code::NotFound {
                // Possibly registered and not yet published.
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            response
        }
    }
}

fn is_cose(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(COSE_CONTENT_TYPE))
}

async fn register(State(scrapi): State<Scrapi>, request: Request) -> Response {
    const KIND: &str = "register";
    // The same credentials as the gRPC Append: a bearer token or a client certificate.
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let chain: Option<Vec<&[u8]>> = request
        .extensions()
        .get::<PeerCertificates>()
        .map(|certs| certs.0.iter().map(|der| der.as_ref()).collect());
    let caller = match scrapi
        .auth
        .authorize(authorization, chain.as_deref(), Role::Append)
    {
        Ok(caller) => caller,
        Err(rejection) => {
            telemetry::record_auth_rejection(rejection.reason());
            let status = if rejection.is_denial() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            };
            let mut response = problem(KIND, status, "Not allowed", &rejection.message());
            if status == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return response;
        }
    };
    if !is_cose(request.headers()) {
        return problem(
            KIND,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            "POST /entries takes a COSE_Sign1 signed statement as application/cose",
        );
    }
    let body: Body = request.into_body();
    let statement_bytes = match axum::body::to_bytes(body, scrapi.max_entry_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return problem(
                KIND,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Statement too large",
                &format!(
                    "a signed statement is one log entry: at most {} bytes",
                    scrapi.max_entry_bytes
                ),
            );
        }
    };
    if let Err((title, detail)) = check_statement(&scrapi, &statement_bytes) {
        return problem(KIND, StatusCode::BAD_REQUEST, title, &detail);
    }
    if let Err(status) =
        scrapi
            .auth
            .limiter
            .check_append(&caller.principal, 1, statement_bytes.len())
    {
        telemetry::record_auth_rejection(crate::auth::limits::RATE_LIMITED);
        return status_problem(KIND, "Rate limited", &status);
    }
    let leaf_hash = hash_leaf(&statement_bytes);
    let principal = caller.principal.clone();
    // The append runs to completion even if this request gives up waiting: the 303
    // below points at where its receipt will be.
    let task = {
        let sources = Arc::clone(&scrapi.sources);
        let statement_bytes: bytes::Bytes = statement_bytes.clone();
        tokio::spawn(async move { sources.append(&principal, vec![statement_bytes]).await })
    };
    let appended = match tokio::time::timeout(REGISTRATION_WAIT, task).await {
        Err(_) => return see_other(&leaf_hash),
        Ok(Err(join)) => {
            return problem(
                KIND,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Registration failed",
                &format!("the append task failed: {join}"),
            );
        }
        Ok(Ok(Err(AppendError::Refused(status)))) => {
            return status_problem(KIND, "Registration refused", &status);
        }
        Ok(Ok(Err(AppendError::Log(error)))) => {
            return status_problem(KIND, "Registration failed", &log_status(error));
        }
        Ok(Ok(Ok(appended))) => appended,
    };
    let Some(entry) = appended.entries.first() else {
        return problem(
            KIND,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Registration failed",
            "the log answered no entry",
        );
    };
    tracing::info!(
        target: "merklog::append",
        principal = caller.principal.as_str(),
        entries = 1,
        first_index = entry.index.0,
        duplicates = usize::from(entry.duplicate),
        leaf_hashes = %leaf_hash,
        "SCITT statement registered"
    );
    let Some(receipts) = &scrapi.receipts else {
        return see_other(&leaf_hash);
    };
    match receipts.issue_with_proof(
        entry.index,
        leaf_hash,
        &entry.inclusion_proof,
        Arc::clone(&appended.checkpoint),
    ) {
        Ok(issued) => cose(KIND, StatusCode::CREATED, Some(&leaf_hash), issued.bytes),
        Err(status) => status_problem(KIND, "Receipt failed", &status),
    }
}

/// Parses the statement and checks its issuer is registered and its signature
/// verifies with that issuer's key; a refusal is the problem's title and detail.
fn check_statement(scrapi: &Scrapi, bytes: &[u8]) -> Result<(), (&'static str, String)> {
    let statement =
        SignedStatement::parse(bytes).map_err(|e| ("Malformed signed statement", e.to_string()))?;
    let key = scrapi.issuers.get(statement.issuer()).ok_or_else(|| {
        (
            "Unknown issuer",
            format!(
                "issuer {:?} is not registered with this log ([[scitt-issuer]])",
                statement.issuer()
            ),
        )
    })?;
    statement
        .verify(key)
        .map_err(|e| ("Invalid signature", e.to_string()))
}

fn see_other(leaf_hash: &Hash) -> Response {
    count("register", StatusCode::SEE_OTHER);
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("/entries/{leaf_hash}")) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids() {
        assert!(matches!(parse_id("17"), Ok(Leaf::Index(17))));
        let hash = hash_leaf(b"x").to_string();
        assert!(matches!(parse_id(&hash), Ok(Leaf::LeafHash(_))));
        for bad in [
            "",
            "-1",
            "1x",
            &hash.to_uppercase(),
            "99999999999999999999999",
        ] {
            assert!(parse_id(bad).is_err(), "{bad:?}");
        }
    }
}
