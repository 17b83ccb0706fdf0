//! What both daemons share, seen from outside: one JSON log shape, and metrics
//! that count no errors after a clean session of the `merklog` client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use merklog_e2e::{Daemon, client_binary, merklogd_binary, witness_binary};

/// The keys every JSON log line of either daemon has, besides the event's own.
const BASE_KEYS: [&str; 3] = ["timestamp", "level", "target"];

/// Parses JSON log lines (other lines, such as a printed key, are skipped) and
/// checks each has the shared shape; returns the lines.
fn json_lines(log: &str, daemon: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let lines: Vec<_> = log
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(map)) => map,
            other => panic!("{daemon}: not a JSON object: {line} ({other:?})"),
        })
        .collect();
    assert!(!lines.is_empty(), "{daemon} wrote no JSON log line:\n{log}");
    for line in &lines {
        for key in BASE_KEYS {
            assert!(line[key].is_string(), "{daemon}: no {key} in {line:?}");
        }
        // Event fields are flattened into the object: no nested wrappers.
        for nested in ["fields", "span", "spans"] {
            assert!(!line.contains_key(nested), "{daemon}: {nested} in {line:?}");
        }
    }
    lines
}

/// The keys of the first line whose message contains `needle`, minus the
/// event's own fields `own`.
fn shape(
    lines: &[serde_json::Map<String, serde_json::Value>],
    needle: &str,
    own: &[&str],
) -> BTreeSet<String> {
    let line = lines
        .iter()
        .find(|l| l["message"].as_str().is_some_and(|m| m.contains(needle)))
        .unwrap_or_else(|| panic!("no line with {needle:?}: {lines:?}"));
    line.keys()
        .filter(|k| !own.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn wait_for_file(path: &Path, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn both_daemons_write_json_lines_of_one_shape() {
    merklogd_binary();
    let witness = witness_binary();
    let dir = tempfile::tempdir().unwrap();

    let data = dir.path().join("log");
    let daemon = Daemon::start(
        &data,
        &["--log-format", "json", "--origin", "shape.example/log"],
    );
    assert!(daemon.terminate().success());
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    let log_lines = json_lines(&log, "merklogd");

    let witness_dir = dir.path().join("witness");
    let addr_file = dir.path().join("witness.addr");
    let stderr = std::fs::File::create(dir.path().join("witness.log")).unwrap();
    let mut child = Command::new(&witness)
        .env_clear()
        .arg("--data-dir")
        .arg(&witness_dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--addr-file",
        ])
        .arg(&addr_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    wait_for_file(&addr_file, "merklog-witness");
    sigterm(child.id());
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("witness.log")).unwrap();
    let witness_lines = json_lines(&log, "merklog-witness");

    // The serving announcements: the same keys once each daemon's own fields
    // (its addresses and key) are set aside.
    let serving = shape(
        &log_lines,
        "merklogd serving",
        &[
            "origin",
            "grpc",
            "http",
            "metrics",
            "otlp_grpc",
            "otlp_http",
            "tree_size",
        ],
    );
    let listening = shape(&witness_lines, "witness listening", &["addr", "vkey"]);
    assert_eq!(serving, listening);
    let expected: BTreeSet<String> = BASE_KEYS
        .iter()
        .chain(&["message"])
        .map(|k| (*k).to_owned())
        .collect();
    assert_eq!(serving, expected);
    // The shutdown lines of both carry only the shared keys.
    assert_eq!(shape(&log_lines, "received SIGTERM", &[]), expected);
    assert_eq!(shape(&witness_lines, "received SIGTERM", &[]), expected);
}

/// Runs the `merklog` client against `url`, feeding `stdin`.
fn merklog(url: &str, dir: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(client_binary())
        .env_clear()
        .args(["--server", url, "--log-key"])
        .arg(dir.join("log").join("log.vkey"))
        .arg("--state-file")
        .arg(dir.join("state.json"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "merklog {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_session_counts_no_errors() {
    client_binary();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("log"), &["--origin", "clean.example/log"]);
    let url = daemon.grpc_url();
    let base = dir.path().to_owned();

    // Appends over the stream, from stdin, as an operator pipes events in.
    for run in 0..3 {
        let lines: String = (0..40)
            .map(|i| format!("{{\"run\":{run},\"i\":{i}}}\n"))
            .collect();
        merklog(&url, &base, &["append", "--batch-size", "8"], &lines);
    }
    let checkpoint = base.join("checkpoint-120");
    merklog(
        &url,
        &base,
        &["checkpoint", "--out", checkpoint.to_str().unwrap()],
        "",
    );
    // A watcher that sees one more checkpoint, while a unary append makes it.
    let watcher = {
        let (url, base) = (url.clone(), base.clone());
        std::thread::spawn(move || {
            merklog(
                &url,
                &base,
                &["watch", "--max-updates", "1", "--stop-after", "20s"],
                "",
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    merklog(&url, &base, &["append", "one more"], "");
    let watched = watcher.join().unwrap();
    assert!(!watched.stdout.is_empty());
    // A watcher stopped by its own timeout, proofs, and an audit.
    merklog(&url, &base, &["watch", "--stop-after", "300ms"], "");
    let proof = base.join("7.tlog-proof");
    merklog(
        &url,
        &base,
        &["prove", "7", "--out", proof.to_str().unwrap()],
        "",
    );
    merklog(
        &url,
        &base,
        &["consistency", checkpoint.to_str().unwrap()],
        "",
    );
    merklog(&url, &base, &["audit"], "");

    let metrics = reqwest::get(format!("http://{}/metrics", daemon.addrs.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0.0)
    };
    // The session happened and was counted ...
    assert_eq!(
        value("merklog_rpc_calls_total{rpc=\"AppendStream\"}"),
        3.0,
        "{metrics}"
    );
    assert!(
        value("merklog_rpc_calls_total{rpc=\"WatchCheckpoints\"}") >= 2.0,
        "{metrics}"
    );
    assert!(
        value("merklog_rpc_calls_total{rpc=\"GetInclusionProof\"}") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("merklog_rpc_calls_total{rpc=\"GetConsistencyProof\"}") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("merklog_rpc_calls_total{rpc=\"GetEntries\"}") >= 1.0,
        "{metrics}"
    );
    // At least 5 requests of at most 8 entries per run; more when the stdin
    // reader has fewer lines ready than a batch holds, which depends on timing.
    assert!(
        value("merklog_append_stream_requests_total{code=\"ok\"}") >= 15.0,
        "{metrics}"
    );
    // ... and no error counter moved.
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let is_error = line.starts_with("merklog_rpc_errors_total")
            || (line.starts_with("merklog_append_stream_requests_total")
                && !line.contains("code=\"ok\""));
        if is_error {
            let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert_eq!(count, 0.0, "an error was counted: {line}\n{metrics}");
        }
    }
    assert!(daemon.terminate().success());
}
