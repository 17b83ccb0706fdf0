//! Rules at the process level: merklogd with `[[rule]]` tables and a webhook, a
//! local webhook receiver that answers 503 to each alert's first delivery (so only
//! a retry gets it through), and `merklog alerts watch --json` as a process. A
//! matching audit event appended over gRPC is seen by the watcher and by the
//! receiver within one second of its acknowledgement, and the log then holds an
//! alert entry naming the rule and the leaf index, signed by the alert key and
//! proven included; a non-matching event raises nothing; a rule that fails on an
//! event leaves ingest alone (appends acknowledged, the error counted on /metrics);
//! after a restart the alert entries' numbers continue where they stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_e2e::{Daemon, client_binary, connect, open_wire_checkpoint, read_verifier};
use merklog_event::{Event, SourceKey};
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf, verify_inclusion};
use merklog_proto::v1;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const ORIGIN: &str = "example.com/rules-test";
const APPROVED: &str = "sha256:aaaa";
/// How soon after the acknowledgement an alert must be seen.
const ALERT_WITHIN: Duration = Duration::from_secs(1);
/// Every wait of this test is bounded by this.
const LIMIT: Duration = Duration::from_secs(30);

const RULES: &str = r#"
[[rule]]
name = "unapproved-model"
when = "has(event.model) && has(event.model.digest) && !(event.model.digest in ['sha256:aaaa'])"

# Fails on every event without a model: reading a missing key is an error.
[[rule]]
name = "fails-without-model"
when = "event.model.digest == 'never'"
"#;

fn doc(actor: &str, digest: Option<&str>, n: u64) -> Bytes {
    let model = digest
        .map(|d| format!(r#","model":{{"id":"m","digest":"{d}"}}"#))
        .unwrap_or_default();
    Bytes::from(format!(
        r#"{{"profile":"ai-audit/v1","time":"2026-03-01T12:00:{:02}Z","actor":{{"id":"{actor}","kind":"agent"}},"action":"infer","resource":"r{n}"{model}}}"#,
        n % 60
    ))
}

/// What the webhook receiver saw: per leaf index, the attempts and when the last
/// (successful) one arrived.
#[derive(Default)]
struct Received {
    attempts: HashMap<u64, u32>,
    delivered: HashMap<u64, (Instant, Value)>,
}

/// A one-request-per-connection HTTP receiver on 127.0.0.1:0 that answers 503 to
/// the first delivery of each alert and 200 to the next.
async fn webhook_receiver() -> (String, Arc<Mutex<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Received::default()));
    let state = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk)).await
                    else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if buffer.len() >= end + 4 + length {
                        break buffer[end + 4..end + 4 + length].to_vec();
                    }
                };
                let alert: Value = serde_json::from_slice(&body).unwrap();
                let index = alert["leaf_index"].as_u64().unwrap();
                let first = {
                    let mut state = state.lock().unwrap();
                    let attempts = state.attempts.entry(index).or_default();
                    *attempts += 1;
                    let first = *attempts == 1;
                    if !first {
                        state.delivered.insert(index, (Instant::now(), alert));
                    }
                    first
                };
                let status = if first {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, received)
}

/// `merklog alerts watch --json` with its lines (and when each arrived) on a channel.
struct Watcher {
    child: Child,
    lines: std::sync::mpsc::Receiver<(Instant, Value)>,
}

impl Watcher {
    fn start(url: &str) -> Watcher {
        let mut child = Command::new(client_binary())
            .env_clear()
            .args(["--server", url, "--json", "--connect-timeout", "5s"])
            .args(["alerts", "watch"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value: Value = serde_json::from_str(&line).unwrap();
                if tx.send((Instant::now(), value)).is_err() {
                    return;
                }
            }
        });
        Watcher { child, lines }
    }

    /// The next alert line, within `limit`.
    fn next(&self, limit: Duration) -> Option<(Instant, Value)> {
        self.lines.recv_timeout(limit).ok()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn append(
    client: &mut v1::log_client::LogClient<tonic::transport::Channel>,
    entry: Bytes,
) -> (u64, Instant) {
    let answer = client
        .append(v1::AppendRequest {
            entries: vec![entry],
            include_tlog_proof: false,
        })
        .await
        .unwrap()
        .into_inner();
    let acknowledged = Instant::now();
    let appended = &answer.entries[0];
    assert!(!appended.duplicate);
    (appended.index, acknowledged)
}

/// The value of a counter line of the Prometheus text, 0 when absent.
async fn counter(metrics_url: &str, name_and_labels: &str) -> f64 {
    let text = reqwest::get(metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// The alert entry naming `rule` and `index`, with its own index, once logged.
async fn find_alert_entry(
    client: &mut v1::log_client::LogClient<tonic::transport::Channel>,
    rule: &str,
    index: u64,
) -> (u64, Event, Value) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let size = client
            .get_checkpoint(v1::GetCheckpointRequest::default())
            .await
            .unwrap()
            .into_inner()
            .size;
        let entries = merklog_e2e::read_all_entries(client, size).await.unwrap();
        for (at, entry) in entries.iter().enumerate() {
            let Ok(event) = Event::parse(entry) else {
                continue;
            };
            if event.source() != "merklog.alerts" {
                continue;
            }
            let payload: Value = serde_json::from_slice(event.payload()).unwrap();
            if payload["rule"] == rule && payload["leaf_index"] == index {
                return (at as u64, event, payload);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no alert entry for {rule} at {index}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn alert_key(data: &Path) -> SourceKey {
    let text = std::fs::read_to_string(data.join("alert.vkey")).unwrap();
    SourceKey::parse(text.trim_end()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_fires_on_the_watcher_the_webhook_and_in_the_log_within_a_second() {
    // Found (or built) before any clock starts.
    let _ = client_binary();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("merklogd.toml");
    std::fs::write(&config, RULES).unwrap();
    let (hook_url, received) = webhook_receiver().await;
    let daemon = Daemon::start(
        &data,
        &[
            "--origin",
            ORIGIN,
            "--config",
            config.to_str().unwrap(),
            "--alert-webhook",
            &hook_url,
        ],
    );
    let url = daemon.grpc_url();
    let metrics_url = format!("http://{}/metrics", daemon.addrs.metrics);
    let mut client = connect(&url).await.unwrap();
    let watcher = Watcher::start(&url);

    // The stream has no replay: warm up until the watcher demonstrably listens.
    let deadline = Instant::now() + LIMIT;
    let mut n = 0;
    loop {
        n += 1;
        let (index, _) = append(&mut client, doc("warm-up", Some("sha256:0000"), n)).await;
        if let Some((_, line)) = watcher.next(Duration::from_millis(500)) {
            assert_eq!(line["leaf_index"], index, "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "the watcher never saw an alert");
    }
    while watcher.next(Duration::from_millis(300)).is_some() {}

    // A rule failing on an event does not block ingest.
    let errors_before = counter(
        &metrics_url,
        r#"merklog_rule_errors_total{rule="fails-without-model"}"#,
    )
    .await;
    let (no_model, _) = append(&mut client, doc("agent-1", None, 100)).await;
    let (approved, _) = append(&mut client, doc("agent-1", Some(APPROVED), 101)).await;
    let (matching, acknowledged) =
        append(&mut client, doc("agent-2", Some("sha256:bbbb"), 102)).await;
    assert!(no_model < approved && approved < matching);

    let (seen_at, line) = watcher.next(LIMIT).expect("the watcher saw no alert");
    let after = seen_at.duration_since(acknowledged);
    assert_eq!(line["rule"], "unapproved-model", "{line}");
    assert_eq!(line["leaf_index"], matching, "{line}");
    assert_eq!(line["actor"], "agent-2");
    assert_eq!(line["action"], "infer");
    let leaf = hash_leaf(&doc("agent-2", Some("sha256:bbbb"), 102));
    assert_eq!(line["leaf_hash"], leaf.to_string());
    assert!(
        after <= ALERT_WITHIN,
        "the watcher saw the alert {after:?} after the ack"
    );
    // Nothing for the approved model or the event without one.
    assert!(watcher.next(Duration::from_millis(500)).is_none());

    // The webhook got it on the retry after a 503, within the second too.
    let deadline = Instant::now() + LIMIT;
    let (delivered_at, body) = loop {
        if let Some(found) = received.lock().unwrap().delivered.get(&matching).cloned() {
            break found;
        }
        assert!(Instant::now() < deadline, "the webhook never got the alert");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let after = delivered_at.duration_since(acknowledged);
    assert!(
        after <= ALERT_WITHIN,
        "the webhook got the alert {after:?} after the ack"
    );
    assert_eq!(received.lock().unwrap().attempts[&matching], 2);
    assert_eq!(body["rule"], "unapproved-model");
    assert_eq!(body["origin"], ORIGIN);
    for index in [no_model, approved] {
        assert!(!received.lock().unwrap().attempts.contains_key(&index));
    }

    // The log holds the alert entry, signed by the alert key and proven included.
    let (at, event, payload) = find_alert_entry(&mut client, "unapproved-model", matching).await;
    assert_eq!(payload["leaf_hash"], leaf.to_string());
    event.verify(&alert_key(&data)).unwrap();
    let proof = client
        .get_inclusion_proof(v1::GetInclusionProofRequest {
            leaf: Some(v1::get_inclusion_proof_request::Leaf::Index(at)),
            tree_size: None,
        })
        .await
        .unwrap()
        .into_inner();
    let checkpoint =
        open_wire_checkpoint(&read_verifier(&data), proof.checkpoint.as_ref().unwrap()).unwrap();
    let hashes: Vec<Hash> = proof
        .proof
        .chunks(32)
        .map(|c| Hash::try_from(c).unwrap())
        .collect();
    verify_inclusion(
        &hash_leaf(event.as_bytes()),
        LeafIndex(at),
        TreeSize(checkpoint.size),
        &hashes,
        &checkpoint.root,
    )
    .unwrap();

    // The failing rule was counted, and appends after it were acknowledged (above).
    let errors = counter(
        &metrics_url,
        r#"merklog_rule_errors_total{rule="fails-without-model"}"#,
    )
    .await;
    assert!(errors > errors_before, "errors {errors_before} -> {errors}");
    let matches = counter(
        &metrics_url,
        r#"merklog_rule_matches_total{rule="unapproved-model"}"#,
    )
    .await;
    assert!(matches >= 2.0, "matches {matches}");
    // Alert entries are written in order: every earlier one is in the log by now.
    let highest = alert_sequences(&mut client)
        .await
        .into_iter()
        .max()
        .unwrap();
    drop(watcher);
    assert!(daemon.terminate().success());

    // After a restart, alert numbers continue where they stopped.
    let daemon = Daemon::start(
        &data,
        &["--origin", ORIGIN, "--config", config.to_str().unwrap()],
    );
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    let (again, _) = append(&mut client, doc("agent-3", Some("sha256:cccc"), 103)).await;
    let (_, event, _) = find_alert_entry(&mut client, "unapproved-model", again).await;
    event.verify(&alert_key(&data)).unwrap();
    assert_eq!(event.sequence(), highest + 1);
    assert!(daemon.terminate().success());
}

/// The sequence numbers of every alert entry in the log.
async fn alert_sequences(
    client: &mut v1::log_client::LogClient<tonic::transport::Channel>,
) -> Vec<u64> {
    let size = client
        .get_checkpoint(v1::GetCheckpointRequest::default())
        .await
        .unwrap()
        .into_inner()
        .size;
    merklog_e2e::read_all_entries(client, size)
        .await
        .unwrap()
        .iter()
        .filter_map(|entry| Event::parse(entry).ok())
        .filter(|event| event.source() == "merklog.alerts")
        .map(|event| event.sequence())
        .collect()
}

#[test]
fn a_rule_that_does_not_compile_stops_startup_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("merklogd.toml");
    std::fs::write(
        &config,
        "[[rule]]\nname = \"half-written\"\nwhen = \"event.actor.id ==\"\n",
    )
    .unwrap();
    let mut child = Command::new(merklog_e2e::merklogd_binary())
        .env_clear()
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--otlp-grpc-addr", "off", "--otlp-http-addr", "off"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("merklogd started with a rule that does not compile");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!status.success());
    assert!(
        text.contains("half-written") && text.contains("CEL"),
        "{text}"
    );
}
