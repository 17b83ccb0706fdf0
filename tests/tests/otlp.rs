//! OpenTelemetry logs ingest from outside: the OpenTelemetry Python SDK's OTLP
//! exporters (gRPC with gzip, HTTP/protobuf) and a hand-made OTLP JSON request send
//! GenAI-attributed records with a bearer token; every record is in the log as a
//! leaf whose bytes equal the documented encoding as the Python side computes it
//! from what it sent, and `merklog query` finds every GenAI record with a verified
//! inclusion proof. Malformed and unauthenticated Exports are refused whole, and
//! a `schema = "ai-audit/v1"` log refuses a non-conforming record naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use merklog_e2e::{Daemon, client_binary, connect, merklogd_binary, read_all_entries};
use merklog_proto::v1;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message as _;
use tonic::Code;
use tonic::metadata::MetadataValue;

const PRINCIPAL: &str = "otel-writer";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/otlp_send.py");

fn skip_interop(why: &str) -> bool {
    if std::env::var_os("MERKLOG_SKIP_INTEROP").is_some_and(|v| v == "1") {
        eprintln!("MERKLOG_SKIP_INTEROP=1: skipping, {why}");
        return true;
    }
    panic!("{why} (scripts/interop-prereqs installs it)");
}

fn create_token(tokens: &Path) -> String {
    let created = Command::new(merklogd_binary())
        .env_clear()
        .args([
            "token",
            "create",
            "--principal",
            PRINCIPAL,
            "--role",
            "append",
        ])
        .arg("--tokens-file")
        .arg(tokens)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    String::from_utf8(created.stdout).unwrap().trim().to_owned()
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn genai_record(agent: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_772_366_400_000_000_000,
        attributes: vec![
            text("gen_ai.agent.id", agent),
            text("gen_ai.operation.name", "chat"),
        ],
        ..LogRecord::default()
    }
}

async fn exporter(addr: std::net::SocketAddr) -> LogsServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    LogsServiceClient::new(channel)
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

async fn tree_size(daemon: &Daemon) -> u64 {
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_exports_and_every_record_is_its_documented_leaf() {
    let probe = Command::new("python3")
        .args(["-c", "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http"])
        .output();
    if !probe.is_ok_and(|o| o.status.success())
        && skip_interop("python3 with the OpenTelemetry SDK 1.45 and its OTLP exporters is missing")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let token = create_token(&tokens);
    let daemon = Daemon::start(
        &dir.path().join("log"),
        &["--tokens-file", tokens.to_str().unwrap()],
    );
    let (grpc, http) = (
        daemon
            .addrs
            .otlp_grpc
            .expect("the address file names the OTLP/gRPC port"),
        daemon
            .addrs
            .otlp_http
            .expect("the address file names the OTLP/HTTP port"),
    );

    // The Python side sends and computes the expected leaves (bounded in time).
    let mut child = Command::new("python3")
        .args([
            SCRIPT,
            &grpc.to_string(),
            &http.to_string(),
            &token,
            PRINCIPAL,
        ])
        .env("OTEL_SDK_DISABLED", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the Python exporter script did not finish within 90 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = child.wait_with_output().unwrap();
    if output.status.code() == Some(3) && skip_interop(&String::from_utf8_lossy(&output.stdout)) {
        return;
    }
    assert!(
        output.status.success(),
        "python: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    use base64::Engine as _;
    let mut expected: Vec<Vec<u8>> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            base64::engine::general_purpose::STANDARD
                .decode(line)
                .unwrap()
        })
        .collect();
    assert_eq!(expected.len(), 17, "16 SDK records and one JSON record");

    let size = tree_size(&daemon).await;
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    let mut logged: Vec<Vec<u8>> = read_all_entries(&mut client, size)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.to_vec())
        .collect();
    expected.sort();
    logged.sort();
    if logged != expected {
        let show = |v: &[Vec<u8>]| {
            v.iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "the log holds other leaves than the Python encoding:\nlogged:\n{}\nexpected:\n{}",
            show(&logged),
            show(&expected)
        );
    }
    // Every SDK record maps to the profile (agent id from the resource).
    let first = std::str::from_utf8(&logged[0]).unwrap();
    assert!(first.contains(r#""principal":"otel-writer""#), "{first}");

    // `merklog query` finds exactly the SDK records (the ones naming the model), each
    // with its inclusion proof verified against one checkpoint (else it exits non-zero).
    let in_log = read_all_entries(&mut client, size).await.unwrap();
    let mut sdk_indexes: Vec<u64> = (0..size)
        .filter(|&i| {
            let leaf = &in_log[usize::try_from(i).unwrap()];
            std::str::from_utf8(leaf).is_ok_and(|l| l.contains(r#""gen_ai.request.model":"gpt-x""#))
        })
        .collect();
    assert_eq!(sdk_indexes.len(), 16);
    let out = Command::new(client_binary())
        .env_clear()
        .arg("--server")
        .arg(daemon.grpc_url())
        .arg("--log-key")
        .arg(dir.path().join("log").join("log.vkey"))
        .args([
            "--no-state",
            "--timeout",
            "20s",
            "--json",
            "query",
            "--model",
            "gpt-x",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "merklog query: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found: Vec<u64> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| v.get("index").and_then(serde_json::Value::as_u64))
        .collect();
    found.sort_unstable();
    sdk_indexes.sort_unstable();
    assert_eq!(found, sdk_indexes, "merklog query --model gpt-x:\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_unauthenticated_exports_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let token = create_token(&tokens);
    let daemon = Daemon::start(
        &dir.path().join("log"),
        &["--tokens-file", tokens.to_str().unwrap()],
    );
    let mut otlp = exporter(daemon.addrs.otlp_grpc.unwrap()).await;
    otlp.export(with_token(request(vec![genai_record("a1")]), &token))
        .await
        .unwrap();
    let size = tree_size(&daemon).await;
    assert_eq!(size, 1);

    // A bad trace id in the second record: nothing of the call is written.
    let mut bad = genai_record("a2");
    bad.trace_id = vec![1; 5];
    let refused = otlp
        .export(with_token(request(vec![genai_record("a3"), bad]), &token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    for needle in ["resource_logs[0].scope_logs[0].log_records[1]", "trace_id"] {
        assert!(refused.message().contains(needle), "{needle}: {refused:?}");
    }

    // A duplicate attribute key over OTLP/HTTP protobuf: 400 naming the key.
    let mut duplicate = genai_record("a4");
    duplicate.attributes.push(text("gen_ai.agent.id", "again"));
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/logs", daemon.addrs.otlp_http.unwrap());
    let answer = http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/x-protobuf")
        .body(request(vec![genai_record("a5"), duplicate]).encode_to_vec())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body = answer.bytes().await.unwrap();
    let status = String::from_utf8_lossy(&body);
    for needle in [
        "log_records[1]",
        r#"attributes["gen_ai.agent.id"]"#,
        "twice",
    ] {
        assert!(status.contains(needle), "{needle}: {status}");
    }

    // No credential: refused on both ports.
    let unauthenticated = otlp
        .export(request(vec![genai_record("a6")]))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    let answer = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(request(vec![genai_record("a7")]).encode_to_vec())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(tree_size(&daemon).await, size, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_log_refuses_a_non_conforming_record_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("log"), &["--schema", "ai-audit/v1"]);
    let mut otlp = exporter(daemon.addrs.otlp_grpc.unwrap()).await;
    let conforming = genai_record("agent-1");
    let mut anonymous = genai_record("x");
    anonymous.attributes.remove(0);
    let refused = otlp
        .export(request(vec![conforming.clone(), anonymous]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    for needle in ["log_records[1]", "ai-audit/v1", "actor.id"] {
        assert!(refused.message().contains(needle), "{needle}: {refused:?}");
    }
    assert_eq!(tree_size(&daemon).await, 0);
    otlp.export(request(vec![conforming])).await.unwrap();
    // A plain Append of a non-conforming entry is refused too, naming the entry.
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    let refused = client
        .append(v1::AppendRequest {
            entries: vec![bytes::Bytes::from_static(b"not an audit event")],
            ..v1::AppendRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("entries[0]"), "{refused:?}");
    assert_eq!(tree_size(&daemon).await, 1);
}
