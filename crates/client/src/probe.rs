//! Naming what answers at an address that is not merklogd's gRPC port: a user
//! who gives `--server` the tlog-tiles or metrics address gets an HTTP answer,
//! which gRPC reports as an obscure protocol error.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::ClientError;

/// How long the probe may take in all.
const PROBE_TIME: Duration = Duration::from_secs(3);
/// Most bytes of an answer read.
const MAX_ANSWER: u64 = 8192;

/// Whether a status says the peer answered HTTP but not gRPC.
fn looks_like_plain_http(status: &tonic::Status) -> bool {
    let message = status.message();
    [
        "grpc-status header missing",
        "invalid compression flag",
        "invalid content-type",
        "HTTP status code",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// `host:port` of a server URL.
fn authority(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// One HTTP/1.1 GET; the status code and the start of the body.
async fn get(authority: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(authority).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&answer);
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?
        .get(..3)?
        .parse()
        .ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    Some((code, body))
}

/// What answers at `server`, in words, when it is merklogd's tiles or metrics
/// port (or some other HTTP server).
async fn identify(server: &str) -> String {
    let authority = authority(server);
    let hint = "--server takes the gRPC address, which merklogd logs at start as grpc=... \
                (by default 127.0.0.1:7800; tiles are on 7801 and metrics on 7802)";
    if let Some((200, body)) = get(authority, "/metrics").await
        && (body.contains("# TYPE") || body.contains("merklog_"))
    {
        return format!("it answers plain HTTP like merklogd's Prometheus metrics port; {hint}");
    }
    if let Some((200, _)) = get(authority, "/checkpoint").await {
        return format!(
            "it answers plain HTTP like merklogd's tlog-tiles port (GET /checkpoint works); {hint}"
        );
    }
    format!("it answers plain HTTP, not gRPC; {hint}")
}

/// The error for a failed call: a plain HTTP answer becomes
/// [`ClientError::WrongService`] naming what answered; anything else stays the
/// status it is.
pub(crate) async fn classify(
    rpc: &'static str,
    server: &str,
    status: tonic::Status,
) -> ClientError {
    if !looks_like_plain_http(&status) {
        return ClientError::rpc(rpc, status);
    }
    let what = match tokio::time::timeout(PROBE_TIME, identify(server)).await {
        Ok(what) => what,
        Err(_) => "it answers HTTP, not gRPC".to_owned(),
    };
    ClientError::WrongService {
        rpc,
        server: server.to_owned(),
        what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authority_is_cut_from_the_url() {
        assert_eq!(authority("http://127.0.0.1:7801"), "127.0.0.1:7801");
        assert_eq!(authority("http://host:1/x"), "host:1");
        assert_eq!(authority("host:2"), "host:2");
    }

    #[test]
    fn grpc_refusals_are_not_taken_for_http() {
        assert!(!looks_like_plain_http(&tonic::Status::unavailable(
            "waiting for witness quorum"
        )));
        assert!(looks_like_plain_http(&tonic::Status::unimplemented(
            "grpc-status header missing, mapped from HTTP status code 404"
        )));
    }
}
