//! Signed sources end to end against an in-process merklogd: refusals (forged
//! signature, unknown source, a principal that may not write, an unsigned entry in
//! sources-only mode), equivocation (evidence, metric, webhook), gaps and silence
//! with their log-signed status records, reloading the sources file, and the
//! status rebuilt after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use merklog_auth::tokens_file::Expiry;
use merklog_auth::{Principal, Roles};
use merklog_event::{
    Event, EventDraft, MEDIA_TYPE_HEARTBEAT, MEDIA_TYPE_SOURCE_STATUS, MEDIA_TYPE_UNUSED,
    SourceKey, UnusedRange,
};
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf, verify_inclusion};
use merklog_note::Ed25519Signer;
use merklog_proto::v1;
use merklog_proto::v1::sources_client::SourcesClient;
use merklog_server::sources::settings::EntriesMode;
use merklog_testkit::{TestServer, test_config};
use tonic::Code;
use tonic::transport::Channel;

const A: &str = "agents.example/a7";
const B: &str = "agents.example/b2";

fn signer(name: &str) -> Ed25519Signer {
    Ed25519Signer::from_seed(name, &[name.len() as u8; 32]).unwrap()
}

fn vkey(name: &str) -> String {
    signer(name).verifier().to_vkey()
}

fn event(name: &str, sequence: u64, media_type: &str, payload: &[u8]) -> Bytes {
    let event = Event::sign(
        &signer(name),
        &EventDraft {
            source: name,
            sequence,
            timestamp_ms: 1_700_000_000_000 + sequence,
            media_type,
            payload,
        },
    )
    .unwrap();
    Bytes::from(event.into_bytes())
}

fn data(name: &str, sequence: u64) -> Bytes {
    event(
        name,
        sequence,
        "text/plain",
        format!("line {sequence}").as_bytes(),
    )
}

/// A `[[source]]` table.
fn table(name: &str, principals: &str, heartbeat: Option<&str>) -> String {
    let mut out = format!(
        "[[source]]\nname = \"{name}\"\nvkey = \"{}\"\nprincipals = {principals}\n",
        vkey(name)
    );
    if let Some(interval) = heartbeat {
        out.push_str(&format!("heartbeat-interval = \"{interval}\"\n"));
    }
    out
}

fn write_sources(path: &Path, tables: &[String]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, tables.concat()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Setup {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    sources_file: PathBuf,
}

fn setup(tables: &[String]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sources_file = dir.path().join("sources.toml");
    write_sources(&sources_file, tables);
    Setup {
        data_dir: dir.path().join("data"),
        sources_file,
        _dir: dir,
    }
}

fn config(setup: &Setup) -> merklog_server::ServerConfig {
    let mut config = test_config(&setup.data_dir);
    config.sources_file = Some(setup.sources_file.clone());
    config.sources_reload_interval = Duration::from_millis(100).into();
    config
}

async fn sources_client(server: &TestServer) -> SourcesClient<Channel> {
    SourcesClient::new(server.channel().await).max_decoding_message_size(64 << 20)
}

async fn append(
    server: &TestServer,
    entries: Vec<Bytes>,
) -> Result<v1::AppendResponse, tonic::Status> {
    let mut client = server.client().await;
    client
        .append(v1::AppendRequest {
            entries,
            include_tlog_proof: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn status(server: &TestServer, name: &str) -> v1::SourceStatus {
    let list = sources_client(server)
        .await
        .list_sources(v1::ListSourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    list.sources
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} is not listed"))
}

async fn events(
    server: &TestServer,
    name: &str,
    from: u64,
    to: u64,
) -> v1::GetSourceEventsResponse {
    sources_client(server)
        .await
        .get_source_events(v1::GetSourceEventsRequest {
            source: name.into(),
            from_sequence: from,
            to_sequence: to,
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Every event of a page has an inclusion proof against the page's checkpoint.
fn assert_proven(page: &v1::GetSourceEventsResponse) {
    let checkpoint = page.checkpoint.as_ref().unwrap();
    let root = Hash::try_from(checkpoint.root.as_ref()).unwrap();
    for event in &page.events {
        let proof: Vec<Hash> = event
            .inclusion_proof
            .chunks(32)
            .map(|c| Hash::try_from(c).unwrap())
            .collect();
        verify_inclusion(
            &hash_leaf(&event.envelope),
            LeafIndex(event.index),
            TreeSize(checkpoint.size),
            &proof,
            &root,
        )
        .unwrap_or_else(|e| panic!("event {} at index {}: {e}", event.sequence, event.index));
    }
}

/// Polls `check` until it returns true (a generous deadline, no timing claims).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The log's own status records, verified with the log's key: (change, source,
/// payload) in log order.
async fn status_records(server: &TestServer) -> Vec<serde_json::Value> {
    let log_key = SourceKey::parse(&server.vkey).unwrap();
    let mut client = server.client().await;
    let size = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .size;
    let mut records = Vec::new();
    let mut start = 0;
    while start < size {
        let page = client
            .get_entries(v1::GetEntriesRequest { start, end: size })
            .await
            .unwrap()
            .into_inner();
        start += page.entries.len() as u64;
        for entry in page.entries {
            let Ok(event) = Event::parse(&entry) else {
                continue;
            };
            if event.media_type() != MEDIA_TYPE_SOURCE_STATUS {
                continue;
            }
            assert_eq!(event.source(), server.origin);
            event
                .verify(&log_key)
                .expect("a status record verifies with the log's key");
            records.push(serde_json::from_slice(event.payload()).unwrap());
        }
    }
    records
}

fn has_record(records: &[serde_json::Value], source: &str, change: &str) -> bool {
    records
        .iter()
        .any(|r| r["source"] == source && r["change"] == change)
}

#[tokio::test]
async fn forged_unknown_and_unsigned_entries_are_refused_whole() {
    let setup = setup(&[
        table(A, "[\"*\"]", None),
        table(B, "[\"someone-else\"]", None),
    ]);
    let mut config = config(&setup);
    config.entries = EntriesMode::SourcesOnly;
    let server = TestServer::start_with(config).await;

    // A good event passes and is answered like any entry.
    let ok = append(&server, vec![data(A, 0)]).await.unwrap();
    assert_eq!(ok.entries.len(), 1);

    // A forged signature: the envelope of A with another key's signature.
    let forged = {
        let other = Ed25519Signer::from_seed(A, &[99; 32]).unwrap();
        let event = Event::sign(
            &other,
            &EventDraft {
                source: A,
                sequence: 1,
                timestamp_ms: 1,
                media_type: "text/plain",
                payload: b"forged",
            },
        )
        .unwrap();
        Bytes::from(event.into_bytes())
    };
    let error = append(&server, vec![data(A, 2), forged]).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    assert!(
        error
            .message()
            .starts_with("entries[1]: source agents.example/a7 sequence 1"),
        "{}",
        error.message()
    );

    // A changed payload breaks the signature.
    let mut tampered = data(A, 3).to_vec();
    let at = tampered.len() - 65;
    tampered[at] ^= 1;
    let error = append(&server, vec![Bytes::from(tampered)])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    assert!(error.message().contains("signature"), "{}", error.message());

    // An unknown source.
    let error = append(&server, vec![data("agents.example/nobody", 0)])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("unknown source"),
        "{}",
        error.message()
    );

    // A principal ("anonymous" on this log) that may not write for B.
    let error = append(&server, vec![data(B, 0)]).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");

    // Sources only: an unsigned entry refuses its call.
    let error = append(&server, vec![data(A, 4), Bytes::from_static(b"plain")])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().starts_with("entries[1]: an unsigned entry"),
        "{}",
        error.message()
    );

    // Nothing of the refused calls was written.
    let listed = status(&server, A).await;
    assert_eq!((listed.highest_sequence, listed.contiguous_until), (0, 1));
    let size = server
        .client()
        .await
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .size;
    assert_eq!(size, 1);
    server.stop().await;
}

#[tokio::test]
async fn tokens_decide_who_may_write_for_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let roles = Roles::parse_list("append,read").unwrap();
    let (agent, _) = merklog_server::auth::tokens::create_token(
        &tokens,
        Principal::new("agent-7").unwrap(),
        roles,
        Expiry::Never,
    )
    .unwrap();
    let (other, _) = merklog_server::auth::tokens::create_token(
        &tokens,
        Principal::new("intruder").unwrap(),
        roles,
        Expiry::Never,
    )
    .unwrap();
    let setup = setup(&[table(A, "[\"agent-7\"]", None)]);
    let mut config = config(&setup);
    config.tokens_file = Some(tokens);
    let server = TestServer::start_with(config).await;
    let call = |token: String, entry: Bytes| {
        let url = server.url();
        async move {
            let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
            let mut client = v1::log_client::LogClient::new(channel);
            let mut request = tonic::Request::new(v1::AppendRequest {
                entries: vec![entry],
                include_tlog_proof: false,
            });
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            client.append(request).await
        }
    };
    let error = call(other.expose().to_owned(), data(A, 0))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
    assert!(
        error.message().contains("principal intruder"),
        "{}",
        error.message()
    );
    call(agent.expose().to_owned(), data(A, 0)).await.unwrap();
    server.stop().await;
}

/// A one-shot HTTP listener: the body of the first request it receives.
async fn webhook_listener() -> (String, tokio::sync::oneshot::Receiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alert", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if request.len() >= head_end + 4 + length {
                    let body =
                        String::from_utf8_lossy(&request[head_end + 4..head_end + 4 + length])
                            .into_owned();
                    socket
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .unwrap();
                    let _ = tx.send(body);
                    return;
                }
            }
        }
    });
    (url, rx)
}

#[tokio::test]
async fn equivocation_is_refused_kept_as_evidence_and_alerted() {
    let setup = setup(&[table(A, "[\"*\"]", None)]);
    let (url, alert) = webhook_listener().await;
    let mut config = config(&setup);
    config.source_alert_webhook = Some(url);
    let server = TestServer::start_with(config).await;
    let first = append(&server, vec![data(A, 0), data(A, 1)]).await.unwrap();
    // The same envelope again: a duplicate.
    let again = append(&server, vec![data(A, 1)]).await.unwrap();
    assert!(again.entries[0].duplicate);
    assert_eq!(again.entries[0].index, first.entries[1].index);

    // Another envelope for sequence 1: refused whole.
    let other = event(A, 1, "text/plain", b"a different story");
    let error = append(&server, vec![data(A, 2), other.clone()])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists, "{error:?}");
    assert!(
        error
            .message()
            .starts_with("entries[1]: source agents.example/a7 sequence 1: equivocation"),
        "{}",
        error.message()
    );
    assert!(
        error
            .message()
            .contains(&format!("index {}", first.entries[1].index))
    );

    // The evidence: both envelopes, through GetSourceEvents.
    let page = events(&server, A, 0, 5).await;
    assert_eq!(page.equivocations.len(), 1);
    let evidence = &page.equivocations[0];
    assert_eq!(evidence.sequence, 1);
    assert_eq!(evidence.logged_index, first.entries[1].index);
    assert_eq!(evidence.logged_envelope, data(A, 1));
    assert_eq!(evidence.other_envelope, other);
    // Sequence 2 was not written with the refused call.
    assert_eq!(page.missing, [v1::SequenceRange { first: 2, last: 5 }]);
    assert_eq!(status(&server, A).await.equivocations, 1);
    // On disk, synced before the answer.
    let files: Vec<_> = std::fs::read_dir(setup.data_dir.join("source-evidence"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1);

    // The webhook and the metric.
    let body = tokio::time::timeout(Duration::from_secs(20), alert)
        .await
        .unwrap()
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["kind"], "equivocation");
    assert_eq!(body["source"], A);
    assert_eq!(body["sequence"], 1);
    let metrics = metrics_page(&server).await;
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with("merklog_source_equivocations_total{source=\"agents.example/a7\"}")),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_gap_is_reported_until_filled_with_signed_status_records() {
    let setup = setup(&[table(A, "[\"*\"]", None), table(B, "[\"*\"]", None)]);
    let server = TestServer::start_with(config(&setup)).await;
    append(&server, vec![data(A, 0), data(A, 1), data(A, 4)])
        .await
        .unwrap();
    let listed = status(&server, A).await;
    assert_eq!(listed.contiguous_until, 2);
    assert_eq!(listed.highest_sequence, 4);
    assert_eq!(listed.gaps, [v1::SequenceRange { first: 2, last: 3 }]);
    let page = events(&server, A, 0, 10).await;
    assert_eq!(
        page.missing,
        [
            v1::SequenceRange { first: 2, last: 3 },
            v1::SequenceRange { first: 5, last: 10 }
        ]
    );
    // Every event carries a proof against the page's one checkpoint.
    assert_proven(&page);
    eventually("the gap-opened record", || async {
        has_record(&status_records(&server).await, A, "gap-opened")
    })
    .await;

    // 2 arrives; 3 is declared unused by a later record: the gap closes.
    let unused = event(
        A,
        5,
        MEDIA_TYPE_UNUSED,
        &UnusedRange { first: 3, last: 3 }.to_payload(),
    );
    append(&server, vec![data(A, 2), unused]).await.unwrap();
    let listed = status(&server, A).await;
    assert_eq!(listed.gap_count, 0, "{listed:?}");
    assert_eq!(listed.contiguous_until, 6);
    let page = events(&server, A, 0, 5).await;
    assert!(page.missing.is_empty(), "{:?}", page.missing);
    assert_eq!(
        page.declared_unused,
        [v1::SequenceRange { first: 3, last: 3 }]
    );
    eventually("the gap-closed record", || async {
        has_record(&status_records(&server).await, A, "gap-closed")
    })
    .await;
    let records = status_records(&server).await;
    let opened = records
        .iter()
        .find(|r| r["source"] == A && r["change"] == "gap-opened")
        .unwrap();
    assert_eq!(
        (opened["first"].as_u64(), opened["last"].as_u64()),
        (Some(2), Some(3))
    );

    // A restart rebuilds the same status from the log.
    append(&server, vec![data(B, 0), data(B, 7)]).await.unwrap();
    server.stop().await;
    let server = TestServer::start_with(config(&setup)).await;
    let listed = status(&server, A).await;
    assert_eq!(
        (
            listed.contiguous_until,
            listed.highest_sequence,
            listed.gap_count
        ),
        (6, 5, 0)
    );
    assert!(listed.last_seen_unix_ms > 0);
    let listed = status(&server, B).await;
    assert_eq!(listed.gaps, [v1::SequenceRange { first: 1, last: 6 }]);
    // Status records keep their own numbers across restarts: a new one is not a
    // conflict with an old one.
    append(&server, vec![data(B, 3)]).await.unwrap();
    eventually("a gap-closed record after the restart", || async {
        has_record(&status_records(&server).await, B, "gap-closed")
    })
    .await;

    // A sample of live events verifies with the independent Python verifier.
    let page = events(&server, A, 0, 5).await;
    let mut args = vec!["verify".to_owned(), vkey(A)];
    args.extend(page.events.iter().map(|e| {
        e.envelope
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    }));
    let verifier = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../event/tests/python/verify_event.py"
    );
    let out = std::process::Command::new("python3")
        .arg(verifier)
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        page.events.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn silence_past_the_heartbeat_interval_is_reported_and_ends() {
    let setup = setup(&[table(A, "[\"*\"]", Some("300ms"))]);
    let server = TestServer::start_with(config(&setup)).await;
    let mut watch = sources_client(&server)
        .await
        .watch_sources(v1::WatchSourcesRequest {
            names: vec![A.into()],
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.name, A);
    append(&server, vec![data(A, 0)]).await.unwrap();
    eventually("silence", || async { status(&server, A).await.silent }).await;
    // The watch streams the change.
    let silent = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let status = watch.message().await.unwrap().unwrap();
            if status.silent {
                return status;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(silent.heartbeat_interval_ms, 300);
    eventually("the silence-started record", || async {
        has_record(&status_records(&server).await, A, "silence-started")
    })
    .await;
    // A heartbeat ends it.
    append(&server, vec![event(A, 1, MEDIA_TYPE_HEARTBEAT, b"")])
        .await
        .unwrap();
    eventually("the silence-ended record", || async {
        has_record(&status_records(&server).await, A, "silence-ended")
    })
    .await;
    server.stop().await;
}

/// The server's Prometheus page.
async fn metrics_page(server: &TestServer) -> String {
    reqwest::get(format!("http://{}/metrics", server.addrs.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of `name{source="<source>"}` on the metrics page, if listed.
async fn gauge(server: &TestServer, name: &str, source: &str) -> Option<f64> {
    let page = metrics_page(server).await;
    let series = format!("{name}{{source=\"{source}\"}} ");
    page.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn gauges_follow_gaps_and_silence() {
    // A source of its own: the metrics registry is shared by the tests of this file.
    const G: &str = "agents.example/gauged";
    let setup = setup(&[table(G, "[\"*\"]", Some("1s"))]);
    let server = TestServer::start_with(config(&setup)).await;
    append(&server, vec![data(G, 0), data(G, 3)]).await.unwrap();
    assert_eq!(gauge(&server, "merklog_source_gaps", G).await, Some(1.0));
    let seen = gauge(&server, "merklog_source_last_seen_seconds", G)
        .await
        .unwrap();
    assert!(seen > 1.7e9, "last seen {seen}");
    append(&server, vec![data(G, 1), data(G, 2)]).await.unwrap();
    assert_eq!(gauge(&server, "merklog_source_gaps", G).await, Some(0.0));
    eventually("the silent gauge", || async {
        gauge(&server, "merklog_source_silent", G).await == Some(1.0)
    })
    .await;
    append(&server, vec![event(G, 4, MEDIA_TYPE_HEARTBEAT, b"")])
        .await
        .unwrap();
    assert_eq!(gauge(&server, "merklog_source_silent", G).await, Some(0.0));
    server.stop().await;
}

#[tokio::test]
async fn the_sources_file_is_reloaded() {
    let setup = setup(&[table(A, "[\"*\"]", None)]);
    let server = TestServer::start_with(config(&setup)).await;
    let error = append(&server, vec![data(B, 0)]).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    // Add B.
    write_sources(
        &setup.sources_file,
        &[table(A, "[\"*\"]", None), table(B, "[\"*\"]", None)],
    );
    eventually("B registered", || async {
        append(&server, vec![data(B, 0)]).await.is_ok()
    })
    .await;
    assert_eq!(status(&server, B).await.highest_sequence, 0);
    // A file that does not parse keeps the registry.
    std::fs::write(&setup.sources_file, "[[source]]\nname = 3\n").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    append(&server, vec![data(B, 1)]).await.unwrap();
    // Remove A.
    write_sources(&setup.sources_file, &[table(B, "[\"*\"]", None)]);
    eventually("A removed", || async {
        append(&server, vec![data(A, 0)]).await.is_err()
    })
    .await;
    let list = sources_client(&server)
        .await
        .list_sources(v1::ListSourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        list.sources
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        [B]
    );
    server.stop().await;
}

/// Pages chained by `next_sequence` hold every logged number exactly once, in
/// order, each with a proof against the one tree size asked for; a page ends at the
/// number limit or, with large envelopes, at the byte limit; only the gap is missing.
#[tokio::test]
async fn pages_chain_over_number_and_byte_limits() {
    let setup = setup(&[table(A, "[\"*\"]", None)]);
    let server = TestServer::start_with(config(&setup)).await;
    let big = vec![b'x'; 48 << 10];
    let logged: Vec<u64> = (0..700).filter(|n| !(300..310).contains(n)).collect();
    for chunk in logged.chunks(50) {
        let entries = chunk
            .iter()
            .map(|&n| {
                if (400..560).contains(&n) {
                    event(A, n, "text/plain", &big)
                } else {
                    data(A, n)
                }
            })
            .collect();
        append(&server, entries).await.unwrap();
    }
    let size = status(&server, A).await;
    assert_eq!(size.highest_sequence, 699);
    let first = events(&server, A, 0, 699).await;
    let tree_size = first.checkpoint.as_ref().unwrap().size;

    let (mut seen, mut missing, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut next = Some(0);
    while let Some(from) = next {
        let page = sources_client(&server)
            .await
            .get_source_events(v1::GetSourceEventsRequest {
                source: A.into(),
                from_sequence: from,
                to_sequence: 699,
                tree_size,
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert_eq!(page.checkpoint.as_ref().unwrap().size, tree_size);
        assert_proven(&page);
        for event in &page.events {
            assert_eq!(
                Event::parse(&event.envelope).unwrap().sequence(),
                event.sequence
            );
            seen.push(event.sequence);
        }
        missing.extend(page.missing.iter().map(|r| (r.first, r.last)));
        let bytes: usize = page.events.iter().map(|e| e.envelope.len()).sum();
        assert!(page.events.len() <= 256, "a page holds at most 256 numbers");
        assert!(
            page.events.len() == 1 || bytes <= 3 << 20,
            "a page of {} envelopes is {bytes} bytes",
            page.events.len()
        );
        if let Some(n) = page.next_sequence {
            assert!(n > from && n <= 699, "next {n} after a page from {from}");
        }
        next = page.next_sequence;
    }
    assert_eq!(seen, logged, "every logged number once, in order");
    assert_eq!(missing, [(300, 309)]);
    // 700 numbers in pages of at most 256 would be 3; the large envelopes make more.
    assert!(pages > 3, "{pages} pages: the byte limit never ended one");
}
