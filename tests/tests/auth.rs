//! Bearer tokens from outside: `merklogd token create` prints a token that the
//! `merklog` CLI uses through MERKLOG_TOKEN over https (a private CA, as tokens
//! protect nothing on plaintext), the server attributes the append
//! to the token's principal, and the token appears nowhere in the server's log
//! output or metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use merklog_e2e::pki::Ca;
use merklog_e2e::{Daemon, client_binary, merklogd_binary};

/// Runs the `merklog` client with `env` (and nothing else) in its environment,
/// trusting the test's CA (`<dir>/ca.pem`).
fn merklog(url: &str, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(client_binary())
        .env_clear()
        .envs(env.iter().copied())
        .args(["--server", url, "--no-state", "--ca-cert"])
        .arg(dir.join("ca.pem"))
        .arg("--log-key")
        .arg(dir.join("log").join("log.vkey"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_create_then_append_with_merklog_token_and_no_token_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let tokens_arg = tokens.to_str().unwrap();
    let created = Command::new(merklogd_binary())
        .env_clear()
        .args([
            "token",
            "create",
            "--principal",
            "ci-writer",
            "--role",
            "append",
        ])
        .args(["--expires", "90d", "--tokens-file", tokens_arg])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(
        token.starts_with("mlt_") && token.len() == 47,
        "one token on stdout"
    );
    let secret = &token[4..];
    let stored = std::fs::read_to_string(&tokens).unwrap();
    assert!(!stored.contains(secret) && stored.contains("ci-writer append"));

    let listed = Command::new(merklogd_binary())
        .env_clear()
        .args(["token", "list", "--tokens-file", tokens_arg])
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("ci-writer") && !listed.contains(secret),
        "{listed}"
    );

    let ca = Ca::new("merklog token test CA");
    ca.write(&dir.path().join("ca.pem"));
    let server = ca.server(dir.path(), "server", "server");
    let data = dir.path().join("log");
    let daemon = Daemon::start(
        &data,
        &[
            "--tokens-file",
            tokens_arg,
            "--log-format",
            "json",
            "--tls-cert",
            server.cert.to_str().unwrap(),
            "--tls-key",
            server.key.to_str().unwrap(),
        ],
    );
    let url = format!("https://{}", daemon.addrs.grpc);

    let refused = merklog(&url, dir.path(), &[], &["append", "anonymous entry"]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no credential"), "{stderr}");

    let wrong = merklog(
        &url,
        dir.path(),
        &[("MERKLOG_TOKEN", "mlt_not-the-token")],
        &["append", "wrong token entry"],
    );
    assert_eq!(wrong.status.code(), Some(2));

    let appended = merklog(
        &url,
        dir.path(),
        &[("MERKLOG_TOKEN", &token)],
        &["--json", "append", "attributed entry"],
    );
    assert!(
        appended.status.success(),
        "{}",
        String::from_utf8_lossy(&appended.stderr)
    );
    for output in [&appended.stdout, &appended.stderr, &wrong.stderr] {
        assert!(!String::from_utf8_lossy(output).contains(secret));
    }

    let metrics = reqwest::get(format!("http://{}/metrics", daemon.addrs.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("merklog_appends_total{principal=\"ci-writer\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("merklog_auth_rejections_total{reason=\"missing_credential\"} 1"));
    assert!(metrics.contains("merklog_auth_rejections_total{reason=\"unknown_token\"} 1"));
    assert!(!metrics.contains(secret));

    daemon.terminate();
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(!log.contains(secret), "the server's output holds the token");
    let attribution = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == "append accepted")
        .unwrap_or_else(|| panic!("no attribution line in\n{log}"));
    let fields = &attribution;
    assert_eq!(fields["principal"], "ci-writer");
    assert_eq!(fields["entries"], 1);
    assert_eq!(fields["first_index"], 0);
    assert_eq!(fields["leaf_hashes"].as_str().unwrap().len(), 64);
}
