//! `HttpWitness` against scripted HTTP witnesses on loopback: what it sends, and
//! how every kind of answer (and non-answer) becomes a `WitnessReply`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use merklog_log::{WitnessClient, WitnessReply, WitnessRequest};
use merklog_server::HttpWitness;
use merklog_server::witness_client::MAX_RESPONSE_BYTES;

const NOTE: &[u8] = b"example.com/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\xe2\x80\x94 example.com/log AAAA\n";

/// Serves `router` on a free loopback port.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn request(old_size: u64, proof: Vec<[u8; 32]>) -> WitnessRequest {
    WitnessRequest {
        old_size,
        consistency_proof: proof
            .into_iter()
            .map(merklog_log::Hash::from_bytes)
            .collect(),
        checkpoint: bytes::Bytes::from_static(NOTE),
    }
}

/// A witness that always answers `status`, `content_type`, `body`.
async fn scripted(status: u16, content_type: &'static str, body: &'static [u8]) -> SocketAddr {
    serve(Router::new().route(
        "/add-checkpoint",
        post(move || async move {
            (
                StatusCode::from_u16(status).unwrap(),
                [(header::CONTENT_TYPE, content_type)],
                body,
            )
        }),
    ))
    .await
}

async fn ask(addr: SocketAddr, timeout: Duration) -> WitnessReply {
    let witness = HttpWitness::new("w", &format!("http://{addr}"), timeout).unwrap();
    witness.add_checkpoint(request(2, vec![[9u8; 32]])).await
}

#[tokio::test]
async fn posts_the_tlog_witness_body_to_the_prefix() {
    /// The content type and body of the last request.
    type Seen = Arc<Mutex<Option<(String, Vec<u8>)>>>;
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let addr = serve(Router::new().route(
        "/witness/v1/add-checkpoint",
        post(move |headers: HeaderMap, body: Bytes| async move {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            *recorder.lock().unwrap() = Some((content_type, body.to_vec()));
            "\u{2014} w.example/w AAAA\n"
        }),
    ))
    .await;
    let witness = HttpWitness::new(
        "w.example/w",
        &format!("http://{addr}/witness/v1/"),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(witness.name(), "w.example/w");
    assert_eq!(
        witness.endpoint(),
        format!("http://{addr}/witness/v1/add-checkpoint")
    );
    let proof = vec![[1u8; 32], [2u8; 32]];
    let reply = witness.add_checkpoint(request(2, proof.clone())).await;
    assert_eq!(
        reply,
        WitnessReply::Cosigned("\u{2014} w.example/w AAAA\n".as_bytes().to_vec())
    );
    let (content_type, body) = seen.lock().unwrap().take().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    // C2SP tlog-witness: old size, proof hashes in base64, an empty line, the note.
    let mut expected = b"old 2\n\
        AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n\
        AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n\n"
        .to_vec();
    expected.extend_from_slice(NOTE);
    assert_eq!(body, expected);
}

#[tokio::test]
async fn conflicts_carry_the_stored_size() {
    let addr = scripted(409, "text/x.tlog.size", b"17\n").await;
    assert_eq!(
        ask(addr, Duration::from_secs(5)).await,
        WitnessReply::SizeConflict(17)
    );
    // Without the content type, or with a malformed body, the size is not trusted.
    let addr = scripted(409, "text/plain", b"17\n").await;
    assert!(matches!(
        ask(addr, Duration::from_secs(5)).await,
        WitnessReply::Rejected { status: 409, .. }
    ));
    let addr = scripted(409, "text/x.tlog.size", b"seventeen\n").await;
    assert!(matches!(
        ask(addr, Duration::from_secs(5)).await,
        WitnessReply::Rejected { status: 409, .. }
    ));
}

#[tokio::test]
async fn other_statuses_are_rejections_with_their_text() {
    for (status, text) in [
        (400, &b"old size > checkpoint size\n"[..]),
        (403, b"no trusted signature\n"),
        (404, b"unknown origin\n"),
        (422, b"consistency proof does not verify\n"),
        (500, b""),
        (503, b"disabled\n"),
    ] {
        let addr = scripted(status, "text/plain", text).await;
        assert_eq!(
            ask(addr, Duration::from_secs(5)).await,
            WitnessReply::Rejected {
                status,
                body: String::from_utf8_lossy(text).trim_end().to_owned()
            }
        );
    }
    // A redirect is not followed: the witness's answer is the redirect itself.
    let addr = serve(Router::new().route(
        "/add-checkpoint",
        post(|| async {
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, "http://127.0.0.1:1/elsewhere")],
            )
        }),
    ))
    .await;
    assert!(matches!(
        ask(addr, Duration::from_secs(5)).await,
        WitnessReply::Rejected { status: 307, .. }
    ));
}

#[tokio::test]
async fn oversize_bodies_are_bounded() {
    // An endless 200 body: reading stops at the limit.
    let addr = serve(Router::new().route(
        "/add-checkpoint",
        post(|| async {
            let chunk = Bytes::from(vec![b'x'; 16 << 10]);
            let endless =
                futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            Response::new(Body::from_stream(endless))
        }),
    ))
    .await;
    let started = Instant::now();
    let reply = ask(addr, Duration::from_secs(10)).await;
    assert!(
        matches!(&reply, WitnessReply::Unreachable(reason) if reason.contains(&MAX_RESPONSE_BYTES.to_string())),
        "{reply:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // A large rejection is kept, truncated.
    static BIG: [u8; 200_000] = [b'n'; 200_000];
    let addr = scripted(422, "text/plain", &BIG).await;
    let WitnessReply::Rejected { status, body } = ask(addr, Duration::from_secs(10)).await else {
        panic!("not a rejection");
    };
    assert_eq!(status, 422);
    assert!(body.len() < 1024, "{}", body.len());
}

#[tokio::test]
async fn silence_and_refusal_are_unreachable() {
    // A witness that never answers: the request times out.
    let addr = serve(Router::new().route(
        "/add-checkpoint",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "too late".into_response()
        }),
    ))
    .await;
    let started = Instant::now();
    let reply = ask(addr, Duration::from_millis(300)).await;
    assert!(
        matches!(&reply, WitnessReply::Unreachable(reason) if reason.contains("timed out")),
        "{reply:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Nobody listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert!(matches!(
        ask(addr, Duration::from_secs(2)).await,
        WitnessReply::Unreachable(_)
    ));

    // Not HTTP at all.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt as _;
            let _ = socket.write_all(b"SSH-2.0-nope\r\n\r\n").await;
        }
    });
    assert!(matches!(
        ask(addr, Duration::from_secs(2)).await,
        WitnessReply::Unreachable(_)
    ));
}
