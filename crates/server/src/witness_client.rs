//! The log's HTTP client for C2SP tlog-witness `add-checkpoint`.
//!
//! [`HttpWitness`] implements [`merklog_log::WitnessClient`]: it POSTs
//! `<url>/add-checkpoint` with the body the spec defines (`old <size>`, the
//! consistency proof in base64 one hash per line, an empty line, the signed
//! checkpoint) and turns every answer into a [`WitnessReply`], as data:
//!
//! | answer | reply |
//! |---|---|
//! | 200 | `Cosigned(body)`: the cosignature line(s), verified by the log before counting |
//! | 409 with `Content-Type: text/x.tlog.size` and a body `<decimal>\n` | `SizeConflict(n)` |
//! | 409 otherwise (other content type, malformed size) | `Rejected { status: 409, .. }` |
//! | any other status | `Rejected { status, body }` (body text truncated) |
//! | connection refused, TLS failure, timeout, oversize 200 body | `Unreachable(reason)` |
//!
//! Nothing a witness sends can make it panic, and at most
//! [`MAX_RESPONSE_BYTES`] of a response body are read.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use merklog_log::{WitnessClient, WitnessReply, WitnessRequest};
use reqwest::header::{CONTENT_TYPE, HeaderValue};

use crate::ServerError;

/// Largest response body read from a witness. A cosignature line is about 150
/// bytes, so this is far more than any honest witness sends.
pub const MAX_RESPONSE_BYTES: usize = 64 << 10;

/// Longest body text kept in a [`WitnessReply::Rejected`] (for logs and errors).
pub const MAX_REJECTION_TEXT: usize = 512;

/// Content type of the 409 body that states the witness's stored size.
pub use merklog_note::grammar::TLOG_SIZE_CONTENT_TYPE;

/// Content type of the `add-checkpoint` request body.
const REQUEST_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// A tlog-witness reached over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpWitness {
    name: String,
    endpoint: reqwest::Url,
    client: reqwest::Client,
}

impl HttpWitness {
    /// A client for the witness `name` (its policy name) whose tlog-witness
    /// submission prefix is `url` (`http://` or `https://`; requests go to
    /// `<url>/add-checkpoint`). `timeout` bounds each request, connection
    /// included.
    pub fn new(name: &str, url: &str, timeout: Duration) -> Result<Self, ServerError> {
        let endpoint = add_checkpoint_url(url)?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("merklogd/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| {
                ServerError::Config(format!("HTTP client for witness {name:?}: {}", chain(&e)))
            })?;
        Ok(Self {
            name: name.to_owned(),
            endpoint,
            client,
        })
    }

    /// The `add-checkpoint` URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Sends one request and classifies the answer.
    async fn send(&self, request: WitnessRequest) -> WitnessReply {
        let body = encode_add_checkpoint(
            request.old_size,
            &request.consistency_proof,
            &request.checkpoint,
        );
        let response = match self
            .client
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(REQUEST_CONTENT_TYPE))
            .body(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => return WitnessReply::Unreachable(describe(&error)),
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let (body, complete) = match read_bounded(response, MAX_RESPONSE_BYTES).await {
            Ok(read) => read,
            Err(error) => return WitnessReply::Unreachable(describe(&error)),
        };
        classify(status, content_type.as_deref(), body, complete)
    }
}

impl WitnessClient for HttpWitness {
    fn name(&self) -> &str {
        &self.name
    }

    fn add_checkpoint(
        &self,
        request: WitnessRequest,
    ) -> Pin<Box<dyn Future<Output = WitnessReply> + Send + '_>> {
        Box::pin(self.send(request))
    }
}

/// `<url>/add-checkpoint`, checked: http or https, a host, no query or fragment.
fn add_checkpoint_url(url: &str) -> Result<reqwest::Url, ServerError> {
    let bad = |reason: &str| ServerError::Config(format!("witness URL {url:?}: {reason}"));
    let base = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(bad("a host is required"));
    }
    if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() {
        return Err(bad(
            "no query, fragment or credentials allowed (the URL is the submission prefix)",
        ));
    }
    let joined = format!("{}/add-checkpoint", base.as_str().trim_end_matches('/'));
    reqwest::Url::parse(&joined).map_err(|e| bad(&e.to_string()))
}

pub use merklog_note::encode_add_checkpoint;

/// Reads at most `limit` bytes of the body; the flag says whether that was all
/// of it. Reading stops (and the connection is dropped) at the limit.
async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(chunk.get(..room).unwrap_or_default());
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// Turns a complete (or truncated) answer into a reply.
fn classify(
    status: u16,
    content_type: Option<&str>,
    body: Vec<u8>,
    complete: bool,
) -> WitnessReply {
    match status {
        200 if complete => WitnessReply::Cosigned(body),
        200 => WitnessReply::Unreachable(format!(
            "malformed answer: a 200 body larger than {MAX_RESPONSE_BYTES} bytes"
        )),
        409 => {
            if !content_type.is_some_and(is_tlog_size) {
                return rejected(
                    status,
                    &format!(
                        "409 without the {TLOG_SIZE_CONTENT_TYPE} content type (got {:?}): {}",
                        content_type.unwrap_or(""),
                        lossy(&body)
                    ),
                );
            }
            match merklog_note::grammar::parse_size_body(&body).filter(|_| complete) {
                Some(size) => WitnessReply::SizeConflict(size),
                None => rejected(
                    status,
                    &format!("409 with a malformed size body: {:?}", lossy(&body)),
                ),
            }
        }
        _ => rejected(status, &lossy(&body)),
    }
}

fn rejected(status: u16, text: &str) -> WitnessReply {
    WitnessReply::Rejected {
        status,
        body: truncate(text, MAX_REJECTION_TEXT),
    }
}

/// Whether a `Content-Type` value is `text/x.tlog.size` (parameters allowed).
fn is_tlog_size(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(TLOG_SIZE_CONTENT_TYPE))
}

fn lossy(body: &[u8]) -> String {
    String::from_utf8_lossy(body).trim_end().to_owned()
}

/// At most `limit` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    format!("{}...", text.get(..end).unwrap_or_default())
}

/// A transport error with its causes ("timed out", "connection refused"...).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("timed out: {}", chain(error));
    }
    chain(error)
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_body_matches_the_spec_layout() {
        let note = b"example.com/log\n2\nAAAA\n\n\xe2\x80\x94 example.com/log AAAA\n";
        assert_eq!(
            encode_add_checkpoint(0, &[], note),
            [&b"old 0\n\n"[..], note].concat()
        );
        let body = encode_add_checkpoint(7, &[[0u8; 32].into(), [0xffu8; 32].into()], note);
        let expected = [
            &b"old 7\n"[..],
            b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            b"//////////////////////////////////////////8=\n",
            b"\n",
            note,
        ]
        .concat();
        assert_eq!(body, expected);
    }

    #[test]
    fn urls_are_checked_and_joined() {
        let join = |url: &str| add_checkpoint_url(url).map(|u| u.to_string());
        assert_eq!(
            join("http://127.0.0.1:7900").unwrap(),
            "http://127.0.0.1:7900/add-checkpoint"
        );
        assert_eq!(
            join("https://w.example/witness/v1/").unwrap(),
            "https://w.example/witness/v1/add-checkpoint"
        );
        for bad in [
            "",
            "127.0.0.1:7900",
            "ftp://w.example",
            "http://w.example/?a=1",
            "http://w.example/#x",
            "http://user:pw@w.example/",
        ] {
            assert!(join(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn answers_are_classified() {
        let size = Some("text/x.tlog.size");
        assert_eq!(
            classify(
                200,
                Some("text/plain"),
                b"\xe2\x80\x94 w AAAA\n".to_vec(),
                true
            ),
            WitnessReply::Cosigned(b"\xe2\x80\x94 w AAAA\n".to_vec())
        );
        assert!(matches!(
            classify(200, None, vec![b'a'; 10], false),
            WitnessReply::Unreachable(_)
        ));
        assert_eq!(
            classify(409, size, b"42\n".to_vec(), true),
            WitnessReply::SizeConflict(42)
        );
        assert_eq!(
            classify(
                409,
                Some("Text/X.Tlog.Size; charset=utf-8"),
                b"0".to_vec(),
                true
            ),
            WitnessReply::SizeConflict(0)
        );
        for bad in [
            &b""[..],
            b"\n",
            b"042\n",
            b"-1\n",
            b"+1\n",
            b"1 \n",
            b" 1\n",
            b"1\n\n",
            b"1\r\n",
            b"18446744073709551616\n",
            b"ten\n",
        ] {
            assert!(
                matches!(
                    classify(409, size, bad.to_vec(), true),
                    WitnessReply::Rejected { status: 409, .. }
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            classify(409, size, b"18446744073709551615\n".to_vec(), true),
            WitnessReply::SizeConflict(u64::MAX)
        );
        // A truncated size body is never trusted.
        assert!(matches!(
            classify(409, size, b"12".to_vec(), false),
            WitnessReply::Rejected { status: 409, .. }
        ));
        // The size is trusted only with its content type.
        assert!(matches!(
            classify(409, Some("text/plain"), b"5\n".to_vec(), true),
            WitnessReply::Rejected { status: 409, .. }
        ));
        assert!(matches!(
            classify(409, None, b"5\n".to_vec(), true),
            WitnessReply::Rejected { status: 409, .. }
        ));
        for status in [400, 403, 404, 422, 500, 503, 302] {
            assert_eq!(
                classify(status, Some("text/plain"), b"no\n".to_vec(), true),
                WitnessReply::Rejected {
                    status,
                    body: "no".into()
                }
            );
        }
        let WitnessReply::Rejected { body, .. } =
            classify(422, None, "é".repeat(1000).into_bytes(), false)
        else {
            panic!("not rejected");
        };
        assert!(body.len() <= MAX_REJECTION_TEXT + 3, "{}", body.len());
    }
}
