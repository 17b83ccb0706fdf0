//! Forks, bad proofs, freezing, alarms, and history that survives restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestLog, check_cosignature, start_witness, start_witness_with};
use merklog_witness::{Alarm, WitnessConfig, encode_add_checkpoint};

fn evidence_dirs(
    witness: &common::TestWitness,
    origin: &str,
    prefix: &str,
) -> Vec<std::path::PathBuf> {
    let dir = witness.witness.log_dir(origin).unwrap().join("evidence");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    out.sort();
    out
}

/// A tiny webhook receiver on a loopback port; alarms arrive on the channel.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::Receiver<serde_json::Value>) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(value): axum::Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(value).await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

#[tokio::test]
async fn fork_is_detected_refused_saved_and_freezes_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new("example.com/forked");
    log.grow_to(12);
    // Same key, same size, different leaves: a split view.
    let mut split = log.fork("split-view");
    split.grow_to(8);
    assert_ne!(log.root(8), split.root(8));

    let (url, mut alarms) = webhook_receiver().await;
    let mut config = WitnessConfig::new(dir.path(), vec![log.config()]);
    config.webhook_url = Some(url);
    config.webhook_timeout = Duration::from_secs(5);
    let witness = start_witness_with(config.clone()).await;

    let answer = witness.add(log.body(0, 8)).await;
    check_cosignature(&witness.verifier(), &log.checkpoint(8), &answer);
    let cosigned = witness.get_checkpoint(&log.origin).await.body;

    // The other view at the same size, validly signed by the log's real key.
    let conflicting = split.checkpoint(8);
    let answer = witness
        .add(encode_add_checkpoint(8, &[], &conflicting))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(answer.text().contains("fork"), "{}", answer.text());

    // Evidence: both checkpoints on disk, byte for byte.
    let forks = evidence_dirs(&witness, &log.origin, "fork-");
    assert_eq!(forks.len(), 1, "{forks:?}");
    assert_eq!(
        std::fs::read(forks[0].join("cosigned.checkpoint")).unwrap(),
        cosigned
    );
    assert_eq!(
        std::fs::read(forks[0].join("conflicting.checkpoint")).unwrap(),
        conflicting
    );
    let log_dir = witness.witness.log_dir(&log.origin).unwrap().to_path_buf();
    assert!(log_dir.join("FROZEN").exists());
    assert_eq!(witness.witness.is_frozen(&log.origin), Some(true));
    assert_eq!(
        common::metric(&witness.witness, "merklog_witness_forks_detected_total"),
        1
    );
    let metrics = witness.get("/metrics").await.text();
    assert!(
        metrics.contains("merklog_witness_forks_detected_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("merklog_witness_frozen_logs 1\n"),
        "{metrics}"
    );

    // The alarm webhook fired with the two roots.
    let alarm = tokio::time::timeout(Duration::from_secs(10), alarms.recv())
        .await
        .expect("no webhook call")
        .unwrap();
    let expected = Alarm {
        kind: "fork".into(),
        origin: log.origin.clone(),
        size: 8,
        cosigned_root: base64_of(&log.root(8)),
        conflicting_root: base64_of(&split.root(8)),
        evidence: forks[0].display().to_string(),
    };
    assert_eq!(alarm, serde_json::to_value(&expected).unwrap());

    // Frozen: even a perfectly valid extension is refused, with 422.
    let answer = witness.add(log.body(8, 12)).await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(answer.text().contains("frozen"), "{}", answer.text());
    // The monitoring API still serves the last cosigned checkpoint.
    assert_eq!(witness.get_checkpoint(&log.origin).await.body, cosigned);
    witness.stop().await;

    // Still frozen after a restart.
    let witness = start_witness(dir.path(), &[&log]).await;
    assert_eq!(witness.add(log.body(8, 12)).await.status, 422);
    witness.stop().await;

    // The operator removes the marker and restarts: the log moves on from size 8.
    std::fs::remove_file(log_dir.join("FROZEN")).unwrap();
    let witness = start_witness(dir.path(), &[&log]).await;
    let answer = witness.add(log.body(8, 12)).await;
    check_cosignature(&witness.verifier(), &log.checkpoint(12), &answer);
    witness.stop().await;
}

#[tokio::test]
async fn fork_is_detected_even_with_a_mismatched_old_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new("example.com/forked-409");
    log.grow_to(8);
    let mut split = log.fork("split");
    split.grow_to(8);
    let witness = start_witness(dir.path(), &[&log]).await;
    assert_eq!(witness.add(log.body(0, 8)).await.status, 200);
    // The client claims old size 4 (a 409 on its own), but the checkpoint is a second
    // signed root at the cosigned size: the fork wins.
    let body = encode_add_checkpoint(4, &split.proof(4, 8), &split.checkpoint(8));
    let answer = witness.add(body).await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert_eq!(evidence_dirs(&witness, &log.origin, "fork-").len(), 1);
    assert_eq!(witness.witness.is_frozen(&log.origin), Some(true));
    witness.stop().await;
}

#[tokio::test]
async fn bad_consistency_proof_is_saved_but_does_not_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new("example.com/bad-proof");
    log.grow_to(13);
    let witness = start_witness(dir.path(), &[&log]).await;
    assert_eq!(witness.add(log.body(0, 5)).await.status, 200);

    let mut proof = log.proof(5, 13);
    let last = proof.len() - 1;
    let mut bytes = *proof[last].as_bytes();
    bytes[31] ^= 0x80;
    proof[last] = bytes.into();
    let body = encode_add_checkpoint(5, &proof, &log.checkpoint(13));
    let answer = witness.add(body.clone()).await;
    assert_eq!(answer.status, 422, "{}", answer.text());

    let saved = evidence_dirs(&witness, &log.origin, "bad-proof-");
    assert_eq!(saved.len(), 1);
    assert_eq!(std::fs::read(saved[0].join("request")).unwrap(), body);
    assert_eq!(
        std::fs::read(saved[0].join("cosigned.checkpoint")).unwrap(),
        witness.get_checkpoint(&log.origin).await.body
    );
    assert_eq!(
        common::metric(
            &witness.witness,
            "merklog_witness_bad_consistency_proofs_total"
        ),
        1
    );
    assert_eq!(witness.witness.is_frozen(&log.origin), Some(false));
    assert!(
        !witness
            .witness
            .log_dir(&log.origin)
            .unwrap()
            .join("FROZEN")
            .exists()
    );

    // A replay of the same bad request is counted but adds no evidence.
    assert_eq!(witness.add(body).await.status, 422);
    assert_eq!(evidence_dirs(&witness, &log.origin, "bad-proof-").len(), 1);
    assert_eq!(
        common::metric(
            &witness.witness,
            "merklog_witness_bad_consistency_proofs_total"
        ),
        2
    );

    // Not frozen: the correct proof is accepted.
    let answer = witness.add(log.body(5, 13)).await;
    check_cosignature(&witness.verifier(), &log.checkpoint(13), &answer);
    witness.stop().await;
}

#[tokio::test]
async fn removing_and_re_adding_a_log_keeps_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new("example.com/comeback");
    log.grow_to(9);
    let mut other = TestLog::new("example.com/other");
    other.grow_to(2);

    let witness = start_witness(dir.path(), &[&log, &other]).await;
    assert_eq!(witness.add(log.body(0, 9)).await.status, 200);
    let vkey = witness.witness.vkey().to_owned();
    witness.stop().await;

    // Removed from the configuration: unknown origin.
    let witness = start_witness(dir.path(), &[&other]).await;
    assert_eq!(witness.add(log.body(0, 3)).await.status, 404);
    witness.stop().await;

    // Re-added: the witness remembers size 9, so the log cannot start over.
    let witness = start_witness(dir.path(), &[&log, &other]).await;
    assert_eq!(witness.witness.vkey(), vkey, "the witness key is reused");
    let answer = witness.add(log.body(0, 3)).await;
    assert_eq!((answer.status, answer.body.as_slice()), (409, &b"9\n"[..]));
    witness.stop().await;
}

#[tokio::test]
async fn witness_key_file_and_vkey() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = WitnessConfig::new(dir.path(), vec![]);
    config.name = Some("witness.example/w1".into());
    let witness = merklog_witness::Witness::open(&config).unwrap();
    let vkey = witness.vkey().to_owned();
    // A cosigner vkey: name, key ID, base64(0x04 || 32-byte key).
    let parsed = merklog_note::parse_cosignature_verifier_key(&vkey).unwrap();
    assert_eq!(parsed.to_vkey(), vkey);
    assert!(vkey.starts_with("witness.example/w1+"));
    use base64::Engine as _;
    let material = base64::engine::general_purpose::STANDARD
        .decode(vkey.splitn(3, '+').nth(2).unwrap()) // base64 may itself hold '+'
        .unwrap();
    assert_eq!((material.len(), material[0]), (33, 0x04));
    let stored = std::fs::read_to_string(dir.path().join("witness.vkey")).unwrap();
    assert_eq!(stored, format!("{vkey}\n"));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join("witness.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(witness);

    // Reopened: same key. A different --name is refused.
    assert_eq!(
        merklog_witness::Witness::open(&config).unwrap().vkey(),
        vkey
    );
    config.name = Some("witness.example/w2".into());
    assert!(matches!(
        merklog_witness::Witness::open(&config),
        Err(merklog_witness::WitnessError::Config(_))
    ));
}

fn base64_of(hash: &merklog_merkle::Hash) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(hash.as_bytes())
}
