//! Operating a data directory from outside the server: `merklogd fsck` and
//! `--verify-on-start=full` name a damaged tile, a damaged tile read while serving
//! answers DATA_LOSS (HTTP 500) and turns health NOT_SERVING, and
//! `merklogd backup` copies a running log so that a clean restore serves the same
//! tree while a restored old copy is refused by the witnesses' start-up check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_e2e::witnesses::{
    WitnessProcess, WitnessSetup, client_binary, copy_dir, policy_all_of, prepare_log_key,
};
use merklog_e2e::{Daemon, connect, merklogd_binary};
use merklog_proto::v1::{self, log_client::LogClient};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

const ORIGIN: &str = "operate.example/log";

fn entries(tag: &str, count: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| Bytes::from(format!("{tag}-{i:04}")))
        .collect()
}

async fn append(client: &mut LogClient<Channel>, entries: &[Bytes]) -> Result<u64, tonic::Status> {
    let answer = client
        .append(v1::AppendRequest {
            entries: entries.to_vec(),
            include_tlog_proof: false,
        })
        .await?
        .into_inner();
    Ok(answer.checkpoint.map(|c| c.size).unwrap_or_default())
}

async fn latest(client: &mut LogClient<Channel>) -> v1::Checkpoint {
    client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
}

async fn health(url: &str) -> i32 {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

async fn stop(daemon: Daemon) {
    let status = tokio::task::spawn_blocking(move || daemon.terminate())
        .await
        .unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}

fn merklogd(args: &[&str]) -> Output {
    Command::new(merklogd_binary())
        .env_clear()
        // No fixed OTLP ports: tests run in parallel.
        .env("MERKLOGD_OTLP_GRPC_ADDR", "off")
        .env("MERKLOGD_OTLP_HTTP_ADDR", "off")
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `merklog fsck` of the tiles at `http` with the log key of `data_dir`.
fn client_fsck(http: SocketAddr, data_dir: &Path) -> (Option<i32>, String) {
    let output = Command::new(client_binary())
        .env_clear()
        .args(["fsck", "--server", &format!("http://{http}"), "--log-key"])
        .arg(data_dir.join("log.vkey"))
        .arg("--no-state")
        .output()
        .unwrap();
    (output.status.code(), text(&output))
}

/// `merklog health --server URL`: its exit code and output.
fn client_health(url: &str) -> (Option<i32>, String) {
    let output = Command::new(client_binary())
        .env_clear()
        .args(["health", "--server", url, "--connect-timeout", "2s"])
        .output()
        .unwrap();
    (output.status.code(), text(&output))
}

async fn get(url: String) -> (u16, Bytes) {
    let response = reqwest::get(&url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap())
}

/// Every table file of the database, with its bytes.
fn sst_files(data_dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(data_dir.join("db"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_tile_is_named_by_fsck_and_served_as_data_loss() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("log-data");
    let data = data_dir.to_str().unwrap().to_owned();
    let start = || Daemon::start(&data_dir, &["--origin", ORIGIN]);

    // 600 entries: tiles 0/0 and 0/1 full, 0/2 partial.
    let daemon = start();
    let url = daemon.grpc_url();
    let (code, out) = client_health(&url);
    assert_eq!(code, Some(0), "merklog health of a healthy server: {out}");
    assert!(out.contains("SERVING"), "{out}");
    let mut client = connect(&url).await.unwrap();
    for round in 0..3 {
        append(&mut client, &entries(&format!("r{round}"), 200))
            .await
            .unwrap();
    }
    let (status, tile) = get(format!("http://{}/tile/0/000", daemon.addrs.http)).await;
    assert_eq!(status, 200);
    assert_eq!(tile.len(), 256 * 32);
    let (code, out) = client_fsck(daemon.addrs.http, &data_dir);
    assert_eq!(code, Some(0), "merklog fsck of a clean log: {out}");
    assert!(
        out.contains("fsck OK: 3 entry bundles and 4 hash tiles"),
        "{out}"
    );
    stop(daemon).await;
    let clean = merklogd(&["fsck", "--data-dir", &data]);
    assert!(clean.status.success(), "{}", text(&clean));
    assert!(
        String::from_utf8_lossy(&clean.stdout).contains("ok: 600 entries"),
        "{}",
        text(&clean)
    );

    // The table file holding tile 0/0. The last writes may still be in the WAL
    // only; a start replays and flushes them into a table file.
    let mut located = None;
    for _ in 0..3 {
        located = sst_files(&data_dir)
            .into_iter()
            .find_map(|(path, bytes)| find(&bytes, &tile[..1024]).map(|at| (path, bytes, at)));
        if located.is_some() {
            break;
        }
        stop(start()).await;
    }
    let (path, mut bytes, at) = located.expect("no table file holds tile 0/0");
    // Flip 64 bytes in the middle of the tile's stored value.
    for byte in &mut bytes[at + 4096..at + 4096 + 64] {
        *byte ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();

    let damaged = merklogd(&["fsck", "--data-dir", &data]);
    eprintln!("merklogd fsck of the damaged directory: {}", text(&damaged));
    assert_eq!(damaged.status.code(), Some(1), "{}", text(&damaged));
    let stderr = String::from_utf8_lossy(&damaged.stderr);
    assert!(
        stderr.contains("bad tile: level 0, index 0, width 256"),
        "fsck must name the damaged tile: {}",
        text(&damaged)
    );

    // The full start-up check refuses to serve it, naming the tile.
    let full = merklogd(&[
        "--data-dir",
        &data,
        "--verify-on-start",
        "full",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(full.status.code(), Some(1), "{}", text(&full));
    assert!(
        String::from_utf8_lossy(&full.stderr)
            .contains("verify-on-start=full: bad tile: level 0, index 0, width 256"),
        "{}",
        text(&full)
    );

    // Served (the default start-up check reads only the right edge): a read that
    // needs the damaged tile is DATA_LOSS, and health turns NOT_SERVING.
    let daemon = start();
    let url = daemon.grpc_url();
    assert_eq!(health(&url).await, ServingStatus::Serving as i32);
    let (status, _) = get(format!("http://{}/readyz", daemon.addrs.http)).await;
    assert_eq!(status, 200);
    let mut client = connect(&url).await.unwrap();
    let error = client
        .get_inclusion_proof(v1::GetInclusionProofRequest {
            leaf: Some(v1::get_inclusion_proof_request::Leaf::Index(5)),
            tree_size: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DataLoss, "{error:?}");
    let (code, out) = client_fsck(daemon.addrs.http, &data_dir);
    assert_eq!(
        code,
        Some(1),
        "merklog fsck over HTTP of the damaged log: {out}"
    );
    assert!(
        out.contains(
            "bad tile: level 0, index 0, width 256 (tile/0/000): the server cannot read it (500)"
        ),
        "{out}"
    );
    let (status, body) = get(format!("http://{}/tile/0/000", daemon.addrs.http)).await;
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("stored data is damaged"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while health(&url).await != ServingStatus::NotServing as i32 {
        assert!(Instant::now() < deadline, "health still SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, out) = client_health(&url);
    assert_eq!(code, Some(1), "merklog health of a damaged server: {out}");
    assert!(out.contains("NOT_SERVING"), "{out}");
    let (status, body) = get(format!("http://{}/readyz", daemon.addrs.http)).await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("damaged"));
    let (status, _) = get(format!("http://{}/healthz", daemon.addrs.http)).await;
    assert_eq!(status, 200, "liveness stays up: the process serves reads");
    let (_, metrics) = get(format!("http://{}/metrics", daemon.addrs.metrics)).await;
    let metrics = String::from_utf8_lossy(&metrics);
    let count: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("merklog_storage_corruption_total "))
        .unwrap_or_else(|| panic!("no corruption counter in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(count >= 3.0, "three damaged reads counted: {count}");
    let log = std::fs::read_to_string(data_dir.with_extension("log")).unwrap();
    assert!(log.contains("STORAGE CORRUPTION"), "{log}");
    drop(daemon);

    // A server that cannot be reached is exit 2.
    let (code, out) = client_health(&url);
    assert_eq!(code, Some(2), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restores_cleanly_and_an_old_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("log-data");
    let log_vkey = prepare_log_key(&data_dir, ORIGIN);
    let setups = [
        WitnessSetup::create(dir.path(), "w1", "w1.example/witness", ORIGIN, &log_vkey),
        WitnessSetup::create(dir.path(), "w2", "w2.example/witness", ORIGIN, &log_vkey),
    ];
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let witnesses = [
        WitnessProcess::start(&setups[0], any),
        WitnessProcess::start(&setups[1], any),
    ];
    let policy_path = dir.path().join("policy.txt");
    std::fs::write(
        &policy_path,
        policy_all_of(
            &log_vkey,
            &[
                (&setups[0], witnesses[0].url()),
                (&setups[1], witnesses[1].url()),
            ],
        ),
    )
    .unwrap();
    let policy = policy_path.to_str().unwrap().to_owned();
    let start = |data_dir: &Path| {
        Daemon::start(
            data_dir,
            &[
                "--origin",
                ORIGIN,
                "--policy",
                &policy,
                "--witness-timeout",
                "1s",
                "--witness-resend-interval",
                "1s",
                "--append-timeout",
                "5s",
            ],
        )
    };

    let daemon = start(&data_dir);
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    let data = data_dir.to_str().unwrap().to_owned();
    assert_eq!(append(&mut client, &entries("one", 4)).await.unwrap(), 4);
    // Online: the server keeps running (and appending) around both copies.
    let old = dir.path().join("backup-old");
    let backup = merklogd(&["backup", "--data-dir", &data, "--to", old.to_str().unwrap()]);
    assert!(backup.status.success(), "{}", text(&backup));
    assert_eq!(append(&mut client, &entries("two", 4)).await.unwrap(), 8);
    let new = dir.path().join("backup-new");
    let backup = merklogd(&[
        "--policy",
        &policy,
        "backup",
        "--data-dir",
        &data,
        "--to",
        new.to_str().unwrap(),
    ]);
    assert!(backup.status.success(), "{}", text(&backup));
    assert!(new.join("config/policy.txt").is_file(), "{}", text(&backup));
    let before = latest(&mut client).await;
    assert_eq!(before.size, 8);
    stop(daemon).await;

    // Clean restore: a copy of the newer backup serves the same tree, SERVING.
    let restored = dir.path().join("restored");
    copy_dir(&new, &restored);
    let fsck = merklogd(&["fsck", "--data-dir", restored.to_str().unwrap()]);
    assert!(fsck.status.success(), "{}", text(&fsck));
    let daemon = start(&restored);
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    let after = latest(&mut client).await;
    assert_eq!((after.size, &after.root), (before.size, &before.root));
    assert_eq!(
        health(&daemon.grpc_url()).await,
        ServingStatus::Serving as i32
    );
    assert_eq!(append(&mut client, &entries("three", 2)).await.unwrap(), 10);
    stop(daemon).await;

    // The old copy is behind what the witnesses cosigned: refused to sign.
    let stale = dir.path().join("stale");
    copy_dir(&old, &stale);
    let daemon = start(&stale);
    let url = daemon.grpc_url();
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(&url).await != ServingStatus::NotServing as i32 {
        assert!(
            Instant::now() < deadline,
            "a restored old copy still reports SERVING"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = connect(&url).await.unwrap();
    let error = append(&mut client, &entries("four", 1)).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    assert_eq!(latest(&mut client).await.size, 4);
    let (status, body) = get(format!("http://{}/readyz", daemon.addrs.http)).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    stop(daemon).await;
}
