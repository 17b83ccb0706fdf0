//! Witnessed checkpoints, end to end: one `merklogd` and two `merklog-witness`
//! processes on loopback, with a tlog-policy whose quorum needs both witnesses.
//!
//! - Every Append answer carries a checkpoint cosigned by both witnesses that
//!   satisfies the policy (`merklog_note::Policy::verify_checkpoint`), and its
//!   inclusion proofs verify against it; the witness metrics are exported.
//! - Killing one witness stops publication (fail closed): appends wait, then fail
//!   with a status that says the entries are durable; once the witness is back on
//!   its data directory, publication resumes and nothing submitted is lost.
//! - A data directory restored from an old copy: the witnesses have cosigned a
//!   larger tree than the log holds, so the log refuses to sign (appends get
//!   FAILED_PRECONDITION, health NOT_SERVING) and sends them nothing new.
//! - With `--fail-open-after`, a checkpoint that waited that long is published with
//!   the cosignatures it has (the log's signature and the live witness's).
//! - A witness shown a forged checkpoint (another root at the size it cosigned,
//!   signed with the log key) freezes the log: the next `merklog append` fails at
//!   once with FAILED_PRECONDITION naming that witness and its answer, health turns
//!   NOT_SERVING and `merklog_witness_refusing` is raised.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_e2e::witnesses::{
    WitnessProcess, WitnessSetup, client_binary, conflicting_checkpoint, copy_dir, policy_all_of,
    prepare_log_key,
};
use merklog_e2e::{Daemon, connect, read_all_entries};
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf, verify_inclusion};
use merklog_note::Policy;
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1::{self, log_client::LogClient};
use sha2::{Digest as _, Sha256};
use tonic::Code;
use tonic::transport::Channel;

const ORIGIN: &str = "witnessed.example/log";
const W1: &str = "w1.example/witness";
const W2: &str = "w2.example/witness";
/// How long an append may wait for the quorum before the server gives up on it.
const APPEND_TIMEOUT: &str = "3s";

/// One log and two witnesses, configured but not started.
struct Setup {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    log_vkey: String,
    policy_path: PathBuf,
    witnesses: [WitnessSetup; 2],
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("log-data");
        let log_vkey = prepare_log_key(&data_dir, ORIGIN);
        let witnesses = [
            WitnessSetup::create(dir.path(), "w1", W1, ORIGIN, &log_vkey),
            WitnessSetup::create(dir.path(), "w2", W2, ORIGIN, &log_vkey),
        ];
        let policy_path = dir.path().join("policy.txt");
        Self {
            data_dir,
            log_vkey,
            policy_path,
            witnesses,
            _dir: dir,
        }
    }

    /// Starts both witnesses on free ports and writes the policy naming them.
    fn start_witnesses(&self) -> [WitnessProcess; 2] {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let started = [
            WitnessProcess::start(&self.witnesses[0], any),
            WitnessProcess::start(&self.witnesses[1], any),
        ];
        let policy = policy_all_of(
            &self.log_vkey,
            &[
                (&self.witnesses[0], started[0].url()),
                (&self.witnesses[1], started[1].url()),
            ],
        );
        std::fs::write(&self.policy_path, policy).unwrap();
        started
    }

    /// The end of merklogd's output, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn policy(&self) -> Policy {
        Policy::parse(&std::fs::read_to_string(&self.policy_path).unwrap()).unwrap()
    }

    async fn start_log(&self) -> Daemon {
        self.start_log_with(&[]).await
    }

    async fn start_log_with(&self, extra: &[&str]) -> Daemon {
        let data_dir = self.data_dir.clone();
        let policy = self.policy_path.to_str().unwrap().to_owned();
        let args: Vec<String> = [
            "--origin",
            ORIGIN,
            "--log-level",
            "info",
            "--policy",
            &policy,
            "--witness-timeout",
            "1s",
            "--witness-resend-interval",
            "1s",
            "--append-timeout",
            APPEND_TIMEOUT,
        ]
        .iter()
        .chain(extra)
        .map(|arg| (*arg).to_owned())
        .collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Daemon::start(&data_dir, &args)
        })
        .await
        .unwrap()
    }
}

async fn stop(daemon: Daemon) {
    let status = tokio::task::spawn_blocking(move || daemon.terminate())
        .await
        .unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}

fn entries(tag: &str, count: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| Bytes::from(format!("{tag}-{i:03}")))
        .collect()
}

async fn append(
    client: &mut LogClient<Channel>,
    entries: &[Bytes],
) -> Result<v1::AppendResponse, tonic::Status> {
    client
        .append(v1::AppendRequest {
            entries: entries.to_vec(),
            include_tlog_proof: true,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Checks an Append answer: its checkpoint satisfies the policy with both
/// witnesses' cosignatures, every inclusion proof verifies against it, and the
/// tlog-proof carries the same cosigned checkpoint. Returns the tree size.
fn check_answer(policy: &Policy, batch: &[Bytes], answer: &v1::AppendResponse) -> u64 {
    let checkpoint = answer.checkpoint.as_ref().unwrap();
    let verified = policy
        .verify_checkpoint(&checkpoint.note)
        .unwrap_or_else(|e| panic!("the answer's checkpoint does not satisfy the policy: {e}"));
    assert_eq!(verified.cosigners(), [W1, W2], "cosigned by both witnesses");
    let size = verified.checkpoint().size;
    assert_eq!(size, checkpoint.size);
    assert_eq!(answer.entries.len(), batch.len());
    for (entry, appended) in batch.iter().zip(&answer.entries) {
        assert!(
            appended.index < size,
            "index {} in size {size}",
            appended.index
        );
        let proof = proof_from_wire("inclusion_proof", &appended.inclusion_proof).unwrap();
        verify_inclusion(
            &hash_leaf(entry),
            LeafIndex(appended.index),
            TreeSize(size),
            &proof,
            &verified.checkpoint().root,
        )
        .unwrap();
        let tlog_proof = merklog_note::TlogProof::parse(&appended.tlog_proof).unwrap();
        assert_eq!(tlog_proof.checkpoint, &checkpoint.note[..]);
        tlog_proof
            .verify_with_policy(&hash_leaf(entry), policy)
            .unwrap();
    }
    size
}

async fn published(client: &mut LogClient<Channel>) -> v1::Checkpoint {
    client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
}

async fn http_get(url: &str) -> (u16, Bytes) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_of_two_cosigns_answers_and_fails_closed_without_it() {
    // Found (or built) before the clock starts.
    merklog_e2e::merklogd_binary();
    merklog_e2e::witness_binary();
    let started = Instant::now();
    let setup = Setup::new();
    let [w1, w2] = setup.start_witnesses();
    println!("{:?}: witnesses started", started.elapsed());
    let policy = setup.policy();
    let daemon = setup.start_log().await;
    println!("{:?}: merklogd started", started.elapsed());
    let mut client = connect(&daemon.grpc_url()).await.unwrap();

    // Appends, one after another and concurrently: every answer is cosigned.
    let mut submitted: Vec<Bytes> = Vec::new();
    for round in 0..3 {
        let batch = entries(&format!("sequential-{round}"), 4);
        let answer = append(&mut client, &batch).await.unwrap();
        check_answer(&policy, &batch, &answer);
        submitted.extend(batch);
    }
    let mut concurrent = Vec::new();
    for task in 0..4 {
        let mut client = client.clone();
        let policy = policy.clone();
        concurrent.push(tokio::spawn(async move {
            let batch = entries(&format!("concurrent-{task}"), 3);
            let answer = append(&mut client, &batch).await.unwrap();
            check_answer(&policy, &batch, &answer);
            batch
        }));
    }
    for task in concurrent {
        submitted.extend(task.await.unwrap());
    }

    println!("{:?}: 7 appends cosigned", started.elapsed());
    // Every public view serves a cosigned checkpoint.
    let latest = published(&mut client).await;
    assert_eq!(
        policy.verify_checkpoint(&latest.note).unwrap().cosigners(),
        [W1, W2]
    );
    let (status, tiles_checkpoint) =
        http_get(&format!("http://{}/checkpoint", daemon.addrs.http)).await;
    assert_eq!(status, 200);
    policy.verify_checkpoint(&tiles_checkpoint).unwrap();

    // The witness metrics reach the Prometheus endpoint.
    let (status, metrics) = http_get(&format!("http://{}/metrics", daemon.addrs.metrics)).await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    for name in [
        merklog_log::metrics::WITNESS_REQUESTS,
        merklog_log::metrics::WITNESS_REQUEST_SECONDS,
        merklog_log::metrics::QUORUM_SECONDS,
        merklog_log::metrics::PUBLISHED_SIZE,
        merklog_log::metrics::DURABLE_SIZE,
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    for witness in [W1, W2] {
        assert!(
            metrics.contains(&format!("witness=\"{witness}\"")),
            "no metrics labelled with {witness}"
        );
    }

    // Kill one witness: nothing more is published, appends wait and then fail
    // with a status that says what happened.
    let size_before = published(&mut client).await.size;
    let w2_addr = w2.addr;
    tokio::task::spawn_blocking(move || w2.kill())
        .await
        .unwrap();
    let stranded = entries("while-w2-is-down", 5);
    let waited = Instant::now();
    let status = append(&mut client, &stranded).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(
        status.message().contains("witness"),
        "the status should say it waited for the witnesses: {status:?}"
    );
    assert!(
        waited.elapsed() >= Duration::from_secs(1),
        "the append should have waited for the quorum, failed after {:?}",
        waited.elapsed()
    );
    assert_eq!(
        published(&mut client).await.size,
        size_before,
        "published without the quorum"
    );

    println!(
        "{:?}: the append without quorum failed: {status:?}",
        started.elapsed()
    );
    // Restart the witness on its data directory and address: publication resumes,
    // and retrying the stranded append finds its entries (they were durable).
    let w2_setup = setup.witnesses[1].clone();
    let w2 = tokio::task::spawn_blocking(move || WitnessProcess::start(&w2_setup, w2_addr))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        match append(&mut client, &stranded).await {
            Ok(answer) => break answer,
            Err(status) => {
                assert!(
                    Instant::now() < deadline,
                    "publication did not resume within 30 s: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    println!("{:?}: publication resumed", started.elapsed());
    check_answer(&policy, &stranded, &answer);
    for appended in &answer.entries {
        assert!(
            appended.duplicate,
            "the retry should find the durable entry"
        );
        assert!(appended.index >= size_before);
    }
    submitted.extend(stranded);
    let after = entries("after-restart", 4);
    let answer = append(&mut client, &after).await.unwrap();
    let final_size = check_answer(&policy, &after, &answer);
    submitted.extend(after);

    // Nothing submitted is lost, and nothing is there twice.
    let latest = published(&mut client).await;
    assert!(latest.size >= final_size);
    policy.verify_checkpoint(&latest.note).unwrap();
    let stored = read_all_entries(&mut client, latest.size).await.unwrap();
    assert_eq!(stored.len(), submitted.len(), "every entry exactly once");
    let stored: HashSet<Bytes> = stored.into_iter().collect();
    for entry in &submitted {
        assert!(stored.contains(entry), "{entry:?} is not in the log");
    }

    stop(daemon).await;
    drop((w1, w2));
    println!("witnessed end-to-end test took {:?}", started.elapsed());
}

/// The witnesses' monitoring view of this log: their latest cosigned checkpoint.
async fn witnessed_checkpoint(witness: &WitnessProcess) -> Bytes {
    let origin_hash = Hash::from_bytes(Sha256::digest(ORIGIN.as_bytes()).into());
    let (status, body) = http_get(&format!("{}/{origin_hash}/checkpoint", witness.url())).await;
    assert_eq!(status, 200);
    body
}

async fn health(channel: Channel) -> i32 {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

fn replace_dir(target: &Path, with: &Path) {
    std::fs::remove_dir_all(target).unwrap();
    copy_dir(with, target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_old_data_directory_refuses_to_sign() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let setup = Setup::new();
    let witnesses = setup.start_witnesses();
    let policy = setup.policy();

    // First life: 4 entries, cosigned. Back the data directory up.
    let daemon = setup.start_log().await;
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    let batch = entries("first-life", 4);
    let old_size = check_answer(&policy, &batch, &append(&mut client, &batch).await.unwrap());
    stop(daemon).await;
    let backup = setup.data_dir.with_extension("backup");
    copy_dir(&setup.data_dir, &backup);

    // Second life: the witnesses cosign a larger tree.
    let daemon = setup.start_log().await;
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    let batch = entries("second-life", 4);
    let new_size = check_answer(&policy, &batch, &append(&mut client, &batch).await.unwrap());
    assert!(new_size > old_size);
    stop(daemon).await;
    let mut witnessed = Vec::new();
    for witness in &witnesses {
        witnessed.push(witnessed_checkpoint(witness).await);
    }
    for checkpoint in &witnessed {
        let text = String::from_utf8_lossy(checkpoint);
        assert_eq!(
            text.lines().nth(1),
            Some(new_size.to_string().as_str()),
            "{text}"
        );
    }

    // The operator restores the backup: the log is behind its witnesses.
    replace_dir(&setup.data_dir, &backup);
    let daemon = setup.start_log().await;
    let channel = tonic::transport::Channel::from_shared(daemon.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(channel.clone()).await != ServingStatus::NotServing as i32 {
        assert!(
            Instant::now() < deadline,
            "health still SERVING 20 s after starting behind the witnesses; merklogd:\n{}",
            setup.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    let status = append(&mut client, &entries("after-restore", 2))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let message = status.message();
    assert!(
        (message.contains(W1) || message.contains(W2)) && message.contains(&new_size.to_string()),
        "the refusal should name the witness and its size {new_size}: {message}"
    );
    // Reads still work, and serve the old tree.
    assert_eq!(published(&mut client).await.size, old_size);

    // Nothing new reached the witnesses.
    tokio::time::sleep(Duration::from_millis(1500)).await; // more than a resend interval
    for (witness, before) in witnesses.iter().zip(&witnessed) {
        assert_eq!(&witnessed_checkpoint(witness).await, before);
    }
    stop(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_publishes_without_the_quorum_after_the_wait() {
    let setup = Setup::new();
    let [w1, w2] = setup.start_witnesses();
    let policy = setup.policy();
    let daemon = setup.start_log_with(&["--fail-open-after", "1s"]).await;
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    let batch = entries("both-up", 3);
    check_answer(&policy, &batch, &append(&mut client, &batch).await.unwrap());

    // One witness down: after the fail-open wait the log publishes with what it has.
    tokio::task::spawn_blocking(move || w2.kill())
        .await
        .unwrap();
    let batch = entries("w2-down", 3);
    let answer = append(&mut client, &batch).await.unwrap();
    let checkpoint = answer.checkpoint.unwrap();
    let error = policy.verify_checkpoint(&checkpoint.note).unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("quorum"),
        "published without the quorum, so the policy must refuse it: {error}"
    );
    let log_key = merklog_note::parse_verifier_key(&setup.log_vkey).unwrap();
    let (opened, note) =
        merklog_note::open_checkpoint(&checkpoint.note, &log_key, Some(ORIGIN)).unwrap();
    assert!(opened.size >= 6);
    let signers: Vec<&str> = note.signatures().iter().map(|s| s.name()).collect();
    assert!(signers.contains(&W1), "{signers:?}");
    assert!(!signers.contains(&W2), "{signers:?}");
    for (entry, appended) in batch.iter().zip(&answer.entries) {
        let proof = proof_from_wire("inclusion_proof", &appended.inclusion_proof).unwrap();
        verify_inclusion(
            &hash_leaf(entry),
            LeafIndex(appended.index),
            TreeSize(opened.size),
            &proof,
            &opened.root,
        )
        .unwrap();
    }
    let (_, metrics) = http_get(&format!("http://{}/metrics", daemon.addrs.metrics)).await;
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(
        metrics.contains(merklog_log::metrics::FAIL_OPEN_PUBLISHED),
        "no fail-open counter on /metrics"
    );
    stop(daemon).await;
    drop(w1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_that_froze_the_log_fails_appends_at_once() {
    use tonic_health::pb::health_check_response::ServingStatus;
    // Found (or built) before any clock starts.
    merklog_e2e::merklogd_binary();
    merklog_e2e::witness_binary();
    let merklog = client_binary();
    let setup = Setup::new();
    let [w1, w2] = setup.start_witnesses();
    let policy = setup.policy();
    let daemon = setup.start_log().await;
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    let batch = entries("before-the-fork", 3);
    let size = check_answer(&policy, &batch, &append(&mut client, &batch).await.unwrap());

    // Someone holding the log key shows w1 another tree of the size it cosigned:
    // fork evidence, and w1 freezes the log.
    let forged = conflicting_checkpoint(&setup.data_dir, ORIGIN, size);
    let response = reqwest::Client::new()
        .post(format!("{}/add-checkpoint", w1.url()))
        .body(merklog_note::encode_add_checkpoint(size, &[], &forged))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let answer = response.text().await.unwrap();
    assert!(answer.starts_with("fork"), "{answer}");

    // The command line gets the refusal at once: no wait for the quorum (the server
    // would give up after APPEND_TIMEOUT) and no retry.
    let args = [
        "--server".to_owned(),
        daemon.grpc_url(),
        "--log-key".to_owned(),
        setup.log_vkey.clone(),
        "--no-state".to_owned(),
        "append".to_owned(),
        "after-the-fork".to_owned(),
    ];
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(merklog)
            .args(&args)
            .env_remove("MERKLOG_SERVER")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("merklog append took {took:?}: {stderr}");
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("merklog: error").count(), 1, "{stderr}");
    assert!(
        stderr.contains(W1) && stderr.contains("frozen") && !stderr.contains(W2),
        "the error should name the witness and its answer: {stderr}"
    );
    assert!(
        took < Duration::from_secs(3),
        "the append should fail at once, not after the {APPEND_TIMEOUT} append timeout; took {took:?}"
    );

    let status = append(&mut client, &entries("after-the-fork-grpc", 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains(W1), "{status:?}");

    let channel = tonic::transport::Channel::from_shared(daemon.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(channel.clone()).await != ServingStatus::NotServing as i32 {
        assert!(
            Instant::now() < deadline,
            "health still SERVING while a witness refuses the log; merklogd:\n{}",
            setup.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics) = http_get(&format!("http://{}/metrics", daemon.addrs.metrics)).await;
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    let refusing = format!(
        "{}{{witness=\"{W1}\"}} 1",
        merklog_log::metrics::WITNESS_REFUSING
    );
    assert!(
        metrics.contains(&refusing),
        "{refusing} missing from /metrics"
    );
    // Nothing was published without the quorum; reads still work.
    assert_eq!(published(&mut client).await.size, size);
    stop(daemon).await;
    drop((w1, w2));
}
