//! OTLP/HTTP `POST /v1/logs`: a protobuf (`application/x-protobuf`) or OTLP JSON
//! (`application/json`) `ExportLogsServiceRequest`, optionally gzip-compressed,
//! answered in the request's encoding: an empty `ExportLogsServiceResponse` on
//! success, a `google.rpc.Status` on failure.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use merklog_auth::Role;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message as _;
use tonic::{Code, Status};

use super::OtlpIngest;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// `google.rpc.Status` without details: what OTLP/HTTP answers on failure.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The `POST /v1/logs` route.
pub(super) fn router(ingest: Arc<OtlpIngest>) -> Router {
    // Room for a compressed body as large as the largest request; the decompressed
    // size is checked again while inflating.
    let limit = ingest.limits.max_request_bytes();
    Router::new()
        .route("/v1/logs", post(export))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(ingest)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

async fn export(State(ingest): State<Arc<OtlpIngest>>, request: Request) -> Response {
    let caller = match crate::auth::http_layer::authorize(&ingest.auth, &request, Role::Append) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let (parts, body) = request.into_parts();
    let encoding = match content_type(&parts.headers) {
        Some(encoding) => encoding,
        None => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type must be {PROTOBUF} or {JSON}\n"),
            )
                .into_response();
        }
    };
    let limit = ingest.limits.max_request_bytes();
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(e) => {
            return failure(
                encoding,
                Status::invalid_argument(format!("reading the request body: {e}")),
            );
        }
    };
    let result = async {
        let body = decompress(&parts.headers, body, limit)?;
        let request = decode(encoding, &body)?;
        ingest.export(&caller, request).await
    }
    .await;
    match result {
        Ok(()) => success(encoding),
        Err(status) => failure(encoding, status),
    }
}

fn content_type(headers: &HeaderMap) -> Option<Encoding> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim();
    if essence.eq_ignore_ascii_case(PROTOBUF) {
        Some(Encoding::Protobuf)
    } else if essence.eq_ignore_ascii_case(JSON) {
        Some(Encoding::Json)
    } else {
        None
    }
}

/// The body, inflated when `Content-Encoding: gzip` (at most `limit` bytes).
fn decompress(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, Status> {
    let coding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match coding.as_deref() {
        None | Some("identity") => Ok(body),
        Some("gzip") => {
            let mut out = Vec::new();
            let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
            flate2::read::GzDecoder::new(body.as_ref())
                .take(cap)
                .read_to_end(&mut out)
                .map_err(|e| {
                    Status::invalid_argument(format!("the gzip body does not inflate: {e}"))
                })?;
            if out.len() > limit {
                return Err(Status::invalid_argument(format!(
                    "the inflated body is larger than the request limit ({limit} bytes)"
                )));
            }
            Ok(Bytes::from(out))
        }
        Some(other) => Err(Status::invalid_argument(format!(
            "Content-Encoding {other:?} is not supported (gzip or none)"
        ))),
    }
}

fn decode(encoding: Encoding, body: &[u8]) -> Result<ExportLogsServiceRequest, Status> {
    match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body).map_err(|e| {
            Status::invalid_argument(format!("the body is not an ExportLogsServiceRequest: {e}"))
        }),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| {
            Status::invalid_argument(format!(
                "the body is not an OTLP JSON ExportLogsServiceRequest: {e}"
            ))
        }),
    }
}

fn with_type(encoding: Encoding, status: StatusCode, body: Vec<u8>) -> Response {
    let content_type = match encoding {
        Encoding::Protobuf => PROTOBUF,
        Encoding::Json => JSON,
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

fn success(encoding: Encoding) -> Response {
    let answer = ExportLogsServiceResponse {
        partial_success: None,
    };
    let body = match encoding {
        Encoding::Protobuf => answer.encode_to_vec(),
        Encoding::Json => b"{}".to_vec(),
    };
    with_type(encoding, StatusCode::OK, body)
}

/// The HTTP form of a refusal. Exporters retry 429, 502, 503 and 504 (honouring
/// `Retry-After`) and drop the batch on any other code.
fn failure(encoding: Encoding, status: Status) -> Response {
    let http = match status.code() {
        Code::InvalidArgument | Code::OutOfRange | Code::AlreadyExists => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = RpcStatus {
        code: status.code() as i32,
        message: status.message().to_owned(),
    };
    let body = match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": message.code, "message": message.message})
            .to_string()
            .into_bytes(),
    };
    let mut response = with_type(encoding, http, body);
    if matches!(
        http,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        let wait = merklog_proto::convert::retry_after(&status).unwrap_or(Duration::from_secs(1));
        let seconds = wait.as_millis().div_ceil(1000).max(1);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}
