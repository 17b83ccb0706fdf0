//! The client against the real daemons when a witness is down: it says what it
//! is waiting for while it retries, and once the witness is back it reports the
//! entry it sent as appended, not as a duplicate of its own earlier attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use merklog_e2e::witnesses::{
    WitnessProcess, WitnessSetup, client_binary, policy_all_of, prepare_log_key,
};
use merklog_e2e::{Daemon, merklogd_binary, witness_binary};

const ORIGIN: &str = "outage.example/log";

#[test]
fn a_witness_outage_shows_progress_then_the_entry_is_reported_appended() {
    merklogd_binary();
    witness_binary();
    let client = client_binary();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("log-data");
    let log_vkey = prepare_log_key(&data_dir, ORIGIN);
    let setup = WitnessSetup::create(dir.path(), "w1", "w1.example/witness", ORIGIN, &log_vkey);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let witness = WitnessProcess::start(&setup, any);
    let witness_addr = witness.addr;
    let policy = dir.path().join("policy.txt");
    std::fs::write(
        &policy,
        policy_all_of(&log_vkey, &[(&setup, witness.url())]),
    )
    .unwrap();
    let daemon = Daemon::start(
        &data_dir,
        &[
            "--origin",
            ORIGIN,
            "--policy",
            policy.to_str().unwrap(),
            "--witness-timeout",
            "500ms",
            "--witness-resend-interval",
            "300ms",
            "--append-timeout",
            "1s",
        ],
    );
    let merklog = |args: &[&str]| {
        let mut command = Command::new(&client);
        command
            .env_clear()
            .args(["--server", &daemon.grpc_url(), "--policy"])
            .arg(&policy)
            .arg("--state-file")
            .arg(dir.path().join("state.json"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let first = merklog(&["append", "before the outage"]).output().unwrap();
    assert!(first.status.success(), "{first:?}");

    witness.kill();
    let mut child = merklog(&["append", "during the outage"]).spawn().unwrap();
    // Read the progress lines as they come; restart the witness after the second.
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let _ = lines.send(line.clone());
        }
    });
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("attempt 2 of 9")) {
        let line = received
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("no progress line ({e}); so far: {seen:#?}"));
        seen.push(line);
    }
    let witness = WitnessProcess::start(&setup, witness_addr);
    let output = child.wait_with_output().unwrap();
    reader.join().unwrap();
    seen.extend(received.try_iter());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{seen:#?}");
    // Each retry said why and how far along it was.
    let progress: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains("waiting for witness quorum") && l.contains("UNAVAILABLE"))
        .collect();
    assert!(progress.len() >= 2, "{seen:#?}");
    assert!(progress[0].contains("attempt 1 of 9"), "{seen:#?}");
    // The entry is new in the log (index 1), made durable by an earlier attempt
    // of this very run: appended, not a duplicate.
    assert!(stdout.starts_with("#1 appended "), "{stdout}");
    assert!(
        seen.iter()
            .any(|l| l.contains("1 entry acknowledged (0 already in the log)")),
        "{seen:#?}"
    );
    // Sending it again in a new run is a duplicate, as it should be.
    let again = merklog(&["append", "during the outage"]).output().unwrap();
    assert!(again.status.success(), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stdout).starts_with("#1 duplicate"),
        "{again:?}"
    );
    drop(witness);
    assert!(daemon.terminate().success());
}

#[test]
fn the_witness_warns_about_a_misnamed_key_and_logs_every_refusal() {
    witness_binary();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("log-data");
    let log_vkey = prepare_log_key(&data_dir, ORIGIN);
    // An entry whose origin is not the name of its key.
    let misnamed = WitnessSetup::create(
        dir.path(),
        "w1",
        "w1.example/witness",
        "typo.example/log",
        &log_vkey,
    );
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let witness = WitnessProcess::start(&misnamed, any);
    // A checkpoint of the configured origin that the key does not sign.
    let (other_key, _) = merklog_note::generate_ed25519("typo.example/log").unwrap();
    let signer = merklog_note::parse_signer_key(other_key.expose_secret()).unwrap();
    let checkpoint = merklog_note::Checkpoint {
        origin: "typo.example/log".to_owned(),
        size: 1,
        root: [7; 32].into(),
        extensions: Vec::new(),
    };
    let note = merklog_note::sign_checkpoint(&checkpoint, &signer).unwrap();
    let body = merklog_note::encode_add_checkpoint(0, &[], &note);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/add-checkpoint", witness.url()))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_client_error(), "{status}");
    drop(witness);
    let log = std::fs::read_to_string(misnamed.data_dir.with_extension("log")).unwrap();
    assert!(
        log.contains("the log's origin differs from the name of its vkey")
            && log.contains("typo.example/log")
            && log.contains(ORIGIN),
        "{log}"
    );
    let refusal = log
        .lines()
        .find(|l| l.contains("add-checkpoint refused"))
        .unwrap_or_else(|| panic!("the refusal is not logged:\n{log}"));
    assert!(
        refusal.contains("WARN") || refusal.contains("warn"),
        "{refusal}"
    );
    assert!(refusal.contains("status"), "{refusal}");
}
