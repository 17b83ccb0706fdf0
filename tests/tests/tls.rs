//! TLS end to end, with the real binaries and certificates made in the test:
//!
//! - `merklog --server https://... --ca-cert ca.pem append` against `merklogd`
//!   serving TLS, and the tiles HTTP port over https; without the CA the client
//!   refuses the server;
//! - with `--tls-client-ca`, a client certificate from that CA is accepted on
//!   both ports, and one from another CA (or none) is refused in the handshake,
//!   with nothing written;
//! - a certificate replaced on disk is served to the next connection without a
//!   restart (on the reload interval, and at once on SIGHUP), and a broken
//!   replacement keeps the previous certificate;
//! - the witness pipeline (merklogd asking a witness over https) and the
//!   witness follower (pulling from merklogd over https);
//! - a non-loopback address without TLS or authentication refuses to start,
//!   naming the settings, unless `--insecure`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use merklog_e2e::pki::{Ca, Issued, served_common_name};
use merklog_e2e::witnesses::{WitnessProcess, WitnessSetup, policy_all_of, prepare_log_key};
use merklog_e2e::{Daemon, client_binary, merklogd_binary, witness_binary};
use sha2::{Digest as _, Sha256};

const ORIGIN: &str = "tls.example/log";

/// A temporary directory with a CA and a server certificate for 127.0.0.1.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    ca_file: PathBuf,
    server: Issued,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("merklog test CA");
        let ca_file = ca.write(&dir.path().join("ca.pem"));
        let server = ca.server(dir.path(), "server", "first");
        Self {
            dir,
            ca,
            ca_file,
            server,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn data_dir(&self) -> PathBuf {
        self.path("log-data")
    }

    /// merklogd with TLS, plus `extra`.
    fn start_log(&self, extra: &[&str]) -> Daemon {
        let mut args = vec![
            "--origin",
            ORIGIN,
            "--tls-cert",
            self.server.cert.to_str().unwrap(),
            "--tls-key",
            self.server.key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Daemon::start(&self.data_dir(), &args)
    }

    fn log_output(&self) -> String {
        std::fs::read_to_string(self.data_dir().with_extension("log")).unwrap_or_default()
    }
}

/// Runs `merklog` with `args` (no state file, the log's key from its data
/// directory).
fn merklog(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(client_binary())
        .env_clear()
        .arg("--no-state")
        .arg("--log-key")
        .arg(data_dir.join("log.vkey"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The size of the log's latest checkpoint, read over https with `auth`.
fn tree_size(data_dir: &Path, url: &str, auth: &[&str]) -> u64 {
    let mut args = vec!["--server", url, "--json"];
    args.extend_from_slice(auth);
    args.push("checkpoint");
    let output = merklog(data_dir, &args);
    assert!(output.status.success(), "{}", text(&output));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    value["size"].as_u64().unwrap()
}

fn https_client(ca_pem: &str, identity: Option<&Issued>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    if let Some(issued) = identity {
        let mut pem = std::fs::read(&issued.cert).unwrap();
        pem.extend(std::fs::read(&issued.key).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merklog_appends_over_https_with_a_private_ca() {
    merklogd_binary();
    client_binary();
    let pki = Pki::new();
    let daemon = tokio::task::block_in_place(|| pki.start_log(&[]));
    let url = format!("https://{}", daemon.addrs.grpc);
    let ca = pki.ca_file.to_str().unwrap();
    let data_dir = pki.data_dir();

    let output = merklog(
        &data_dir,
        &["--server", &url, "--ca-cert", ca, "append", "over-tls"],
    );
    assert!(output.status.success(), "{}", text(&output));
    // The environment variable works as the flag does.
    let output = Command::new(client_binary())
        .env_clear()
        .env("MERKLOG_SERVER", &url)
        .env("MERKLOG_CA_CERT", ca)
        .args(["--no-state", "--log-key"])
        .arg(data_dir.join("log.vkey"))
        .args(["append", "via-env"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(tree_size(&data_dir, &url, &["--ca-cert", ca]), 2);

    // Without the private CA the server's certificate is not trusted (the public
    // web roots are used), and plaintext does not reach a TLS port.
    let output = merklog(&data_dir, &["--server", &url, "append", "untrusted"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let plain = format!("http://{}", daemon.addrs.grpc);
    let output = merklog(&data_dir, &["--server", &plain, "append", "plaintext"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    // Certificates with an http:// address are a usage error, not silently ignored.
    let output = merklog(
        &data_dir,
        &["--server", &plain, "--ca-cert", ca, "append", "x"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("https://"),
        "{}",
        text(&output)
    );
    assert_eq!(tree_size(&data_dir, &url, &["--ca-cert", ca]), 2);

    // The tiles HTTP port speaks TLS with the same certificate.
    let client = https_client(&pki.ca.pem(), None);
    let response = client
        .get(format!("https://{}/checkpoint", daemon.addrs.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.starts_with(&format!("{ORIGIN}\n2\n")), "{body}");
    assert!(
        reqwest::get(format!("http://{}/checkpoint", daemon.addrs.http))
            .await
            .is_err(),
        "plaintext on the TLS port must fail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_from_an_unknown_ca_are_refused() {
    merklogd_binary();
    client_binary();
    let pki = Pki::new();
    let good = pki.ca.client(pki.dir.path(), "good", "writer.example");
    let rogue_ca = Ca::new("rogue CA");
    let rogue = rogue_ca.client(pki.dir.path(), "rogue", "writer.example");
    let ca = pki.ca_file.to_str().unwrap();
    let daemon = tokio::task::block_in_place(|| pki.start_log(&["--tls-client-ca", ca]));
    let url = format!("https://{}", daemon.addrs.grpc);
    let data_dir = pki.data_dir();
    let with = |issued: &Issued| {
        vec![
            "--client-cert".to_owned(),
            issued.cert.to_str().unwrap().to_owned(),
            "--client-key".to_owned(),
            issued.key.to_str().unwrap().to_owned(),
        ]
    };
    let run = |auth: &[String], entry: &str| {
        let mut args = vec!["--server", url.as_str(), "--ca-cert", ca];
        args.extend(auth.iter().map(String::as_str));
        args.extend(["append", entry]);
        merklog(&data_dir, &args)
    };

    let output = run(&with(&good), "by-a-known-client");
    assert!(output.status.success(), "{}", text(&output));
    for (auth, what) in [(with(&rogue), "unknown CA"), (Vec::new(), "no certificate")] {
        let output = run(&auth, "must-not-be-written");
        assert_eq!(output.status.code(), Some(2), "{what}: {}", text(&output));
    }
    // A certificate without its key is a usage error naming the missing flag.
    let output = run(&with(&good)[..2], "x");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--client-key"),
        "{}",
        text(&output)
    );
    let good_auth = with(&good);
    let good_auth: Vec<&str> = good_auth.iter().map(String::as_str).collect();
    let mut auth = vec!["--ca-cert", ca];
    auth.extend(good_auth);
    assert_eq!(tree_size(&data_dir, &url, &auth), 1, "nothing else written");

    // The tiles HTTP port asks for the same client certificates.
    let tiles = format!("https://{}/checkpoint", daemon.addrs.http);
    let response = https_client(&pki.ca.pem(), Some(&good))
        .get(&tiles)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for (identity, what) in [(Some(&rogue), "unknown CA"), (None, "no certificate")] {
        let result = https_client(&pki.ca.pem(), identity)
            .get(&tiles)
            .send()
            .await;
        assert!(result.is_err(), "{what}: {result:?}");
    }
}

/// Replaces a file atomically (what certificate managers do).
fn replace(path: &Path, from: &Path) {
    let temp = path.with_extension("new");
    std::fs::copy(from, &temp).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// Waits until the TLS server at `addr` presents a certificate named `cn`.
async fn wait_for_common_name(addr: SocketAddr, ca_pem: &str, cn: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let served = served_common_name(addr, ca_pem).await;
        if served == cn {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} still serves {served:?}, not {cn:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_rotated_on_disk_is_served_without_a_restart() {
    merklogd_binary();
    let pki = Pki::new();
    let ca_pem = pki.ca.pem();
    let daemon = tokio::task::block_in_place(|| pki.start_log(&["--tls-reload-interval", "100ms"]));
    assert_eq!(
        served_common_name(daemon.addrs.grpc, &ca_pem).await,
        "first"
    );
    assert_eq!(
        served_common_name(daemon.addrs.http, &ca_pem).await,
        "first"
    );

    let second = pki.ca.server(pki.dir.path(), "second", "second");
    replace(&pki.server.key, &second.key);
    replace(&pki.server.cert, &second.cert);
    wait_for_common_name(daemon.addrs.grpc, &ca_pem, "second").await;
    wait_for_common_name(daemon.addrs.http, &ca_pem, "second").await;

    // A broken replacement is logged and the working certificate stays.
    std::fs::write(pki.path("garbage.pem"), "not a certificate\n").unwrap();
    replace(&pki.server.cert, &pki.path("garbage.pem"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pki.log_output().contains("did not reload") {
        assert!(Instant::now() < deadline, "{}", pki.log_output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        served_common_name(daemon.addrs.grpc, &ca_pem).await,
        "second"
    );
    assert_eq!(
        served_common_name(daemon.addrs.http, &ca_pem).await,
        "second"
    );
    let output = merklog(
        &pki.data_dir(),
        &[
            "--server",
            &format!("https://{}", daemon.addrs.grpc),
            "--ca-cert",
            pki.ca_file.to_str().unwrap(),
            "append",
            "still-serving",
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_at_once() {
    merklogd_binary();
    witness_binary();
    let pki = Pki::new();
    let ca_pem = pki.ca.pem();
    // An interval far beyond the test: only the signal can explain a reload.
    let daemon = tokio::task::block_in_place(|| pki.start_log(&["--tls-reload-interval", "1h"]));
    let log_vkey = prepare_log_key(&pki.path("other-log"), ORIGIN);
    let setup = WitnessSetup::create(pki.dir.path(), "w", "w.example/witness", ORIGIN, &log_vkey);
    let witness = tokio::task::block_in_place(|| {
        WitnessProcess::start_with(
            &setup,
            "127.0.0.1:0".parse().unwrap(),
            &[
                "--tls-cert",
                pki.server.cert.to_str().unwrap(),
                "--tls-key",
                pki.server.key.to_str().unwrap(),
                "--tls-reload-interval",
                "1h",
            ],
        )
    });
    assert_eq!(
        served_common_name(daemon.addrs.grpc, &ca_pem).await,
        "first"
    );
    assert_eq!(served_common_name(witness.addr, &ca_pem).await, "first");

    let second = pki.ca.server(pki.dir.path(), "second", "second");
    replace(&pki.server.key, &second.key);
    replace(&pki.server.cert, &second.cert);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        served_common_name(daemon.addrs.grpc, &ca_pem).await,
        "first",
        "nothing reloads before the signal"
    );
    for pid in [daemon.id(), witness.id()] {
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    wait_for_common_name(daemon.addrs.grpc, &ca_pem, "second").await;
    wait_for_common_name(daemon.addrs.http, &ca_pem, "second").await;
    wait_for_common_name(witness.addr, &ca_pem, "second").await;
}

/// The witness's monitoring view of `ORIGIN`, over https.
async fn witnessed_size(client: &reqwest::Client, witness: &WitnessProcess) -> Option<u64> {
    let origin_hash: String = Sha256::digest(ORIGIN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let response = client
        .get(format!("{}/{origin_hash}/checkpoint", witness.https_url()))
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        return None;
    }
    let body = response.text().await.unwrap();
    body.lines().nth(1).and_then(|line| line.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_witness_pipeline_and_the_follower_work_over_https() {
    merklogd_binary();
    witness_binary();
    client_binary();
    let pki = Pki::new();
    let data_dir = pki.data_dir();
    let log_vkey = prepare_log_key(&data_dir, ORIGIN);
    let tls_args = [
        "--tls-cert",
        pki.server.cert.to_str().unwrap(),
        "--tls-key",
        pki.server.key.to_str().unwrap(),
    ];
    let ca = pki.ca_file.to_str().unwrap();

    // Push: merklogd asks this witness over https for every checkpoint.
    let pushed = WitnessSetup::create(
        pki.dir.path(),
        "w1",
        "w1.example/witness",
        ORIGIN,
        &log_vkey,
    );
    let w1 = tokio::task::block_in_place(|| {
        WitnessProcess::start_with(&pushed, "127.0.0.1:0".parse().unwrap(), &tls_args)
    });
    let policy_path = pki.path("policy.txt");
    std::fs::write(
        &policy_path,
        policy_all_of(&log_vkey, &[(&pushed, w1.https_url())]),
    )
    .unwrap();
    let daemon = tokio::task::block_in_place(|| {
        pki.start_log(&[
            "--policy",
            policy_path.to_str().unwrap(),
            "--witness-ca-cert",
            ca,
            "--witness-timeout",
            "2s",
        ])
    });
    let url = format!("https://{}", daemon.addrs.grpc);
    let policy = policy_path.to_str().unwrap();
    for entry in ["one", "two", "three"] {
        // The client verifies the witness's cosignature with the policy.
        let output = merklog(
            &data_dir,
            &[
                "--server",
                &url,
                "--ca-cert",
                ca,
                "--policy",
                policy,
                "append",
                entry,
            ],
        );
        assert!(
            output.status.success(),
            "{}\n{}",
            text(&output),
            pki.log_output()
        );
    }
    let client = https_client(&pki.ca.pem(), None);
    assert_eq!(witnessed_size(&client, &w1).await, Some(3));

    // Pull: a second witness follows merklogd's gRPC port over https.
    let pulling = WitnessSetup::create(
        pki.dir.path(),
        "w2",
        "w2.example/witness",
        ORIGIN,
        &log_vkey,
    );
    std::fs::write(
        &pulling.config,
        format!(
            "[[follow]]\norigin = \"{ORIGIN}\"\nvkey = \"{log_vkey}\"\ngrpc-url = \"{url}\"\n\
             poll-interval = \"100ms\"\n"
        ),
    )
    .unwrap();
    let mut args = tls_args.to_vec();
    args.extend(["--follow-ca-cert", ca]);
    let w2 = tokio::task::block_in_place(|| {
        WitnessProcess::start_with(&pulling, "127.0.0.1:0".parse().unwrap(), &args)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while witnessed_size(&client, &w2).await != Some(3) {
        assert!(
            Instant::now() < deadline,
            "the follower did not cosign size 3; see {}.log",
            pulling.data_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a daemon binary with `args` and waits (bounded) for it to exit.
fn exits_at_start(binary: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(binary)
        .env_clear()
        // No fixed OTLP ports (merklogd; the witness ignores them): tests run in parallel.
        .env("MERKLOGD_OTLP_GRPC_ADDR", "off")
        .env("MERKLOGD_OTLP_HTTP_ADDR", "off")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} kept running: {args:?}", binary.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Starts a daemon binary with `args`, waits for its address file, and kills it.
fn starts(binary: &Path, args: &[&str], addr_file: &Path) {
    let mut child = Command::new(binary)
        .env_clear()
        // No fixed OTLP ports (merklogd; the witness ignores them): tests run in parallel.
        .env("MERKLOGD_OTLP_GRPC_ADDR", "off")
        .env("MERKLOGD_OTLP_HTTP_ADDR", "off")
        .args(args)
        .arg("--addr-file")
        .arg(addr_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !addr_file.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{} exited with {status}: {args:?}", binary.display());
        }
        assert!(Instant::now() < deadline, "did not start: {args:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_non_loopback_address_without_tls_or_authentication_refuses_to_start() {
    let merklogd = merklogd_binary();
    let witness = witness_binary();
    let pki = Pki::new();
    let data = pki.path("d");
    let data = data.to_str().unwrap();
    let base = ["--data-dir", data, "--metrics-listen", "127.0.0.1:0"];
    for (listen, http) in [("0.0.0.0:0", "127.0.0.1:0"), ("127.0.0.1:0", "0.0.0.0:0")] {
        let mut args = base.to_vec();
        args.extend(["--listen", listen, "--http-listen", http]);
        let output = exits_at_start(&merklogd, &args);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        for needle in ["0.0.0.0", "tls-cert", "tls-client-ca", "--insecure"] {
            assert!(stderr.contains(needle), "{needle}: {stderr}");
        }
        assert!(!pki.path("d").exists(), "nothing was created: {stderr}");
    }
    let wide = ["--listen", "0.0.0.0:0", "--http-listen", "0.0.0.0:0"];
    let mut insecure = base.to_vec();
    insecure.extend(wide);
    insecure.push("--insecure");
    starts(&merklogd, &insecure, &pki.path("a1"));
    let mut with_tls = base.to_vec();
    with_tls.extend(wide);
    with_tls.extend([
        "--tls-cert",
        pki.server.cert.to_str().unwrap(),
        "--tls-key",
        pki.server.key.to_str().unwrap(),
    ]);
    starts(&merklogd, &with_tls, &pki.path("a2"));

    let wdata = pki.path("w");
    let wargs = [
        "--data-dir",
        wdata.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ];
    let output = exits_at_start(&witness, &wargs);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in ["0.0.0.0", "tls-cert", "--insecure"] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    let mut insecure = wargs.to_vec();
    insecure.push("--insecure");
    starts(&witness, &insecure, &pki.path("a3"));
}
