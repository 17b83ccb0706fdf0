//! A hostile server: every lie must be reported as a verification failure,
//! never as success.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use merklog_client::{
    Client, ClientError, ClientOptions, InconsistencyKind, SignedCheckpoint, StateFile, TrustedLog,
    load_verifier_key,
};
use merklog_merkle::{LeafIndex, TreeSize, hash_leaf};
use merklog_note::NoteError;

use crate::common::{Merklog, Run};
use merklog_testkit::{FAKE_ORIGIN, FakeServer, fake_signer};

const FIVE: [&str; 5] = ["e0", "e1", "e2", "e3", "e4"];

async fn connect(server: &FakeServer, state: Option<&Path>) -> Client {
    let trust = TrustedLog::new(load_verifier_key(&server.vkey()).unwrap(), None);
    Client::connect(
        &server.url,
        trust,
        state.map(StateFile::new),
        ClientOptions::default(),
    )
    .await
    .unwrap()
}

#[track_caller]
fn failure<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ClientError {
    let error = result.expect_err("a lie was accepted");
    assert!(
        error.is_verification_failure(),
        "not reported as a verification failure: {error}"
    );
    assert!(error.evidence().is_some(), "no evidence for {error}");
    error
}

fn inconsistency(error: &ClientError) -> &merklog_client::Inconsistency {
    match error {
        ClientError::Inconsistent(i) => i,
        other => panic!("expected an inconsistency, got {other:?}"),
    }
}

#[tokio::test]
async fn the_honest_fake_is_accepted() {
    // The baseline for every case below: without tampering everything verifies.
    let server = FakeServer::start(&FIVE).await;
    let mut client = connect(&server, None).await;
    let checkpoint = client.checkpoint().await.unwrap();
    assert_eq!(checkpoint.size(), TreeSize(5));
    let receipts = client
        .append(vec![Bytes::from("e5"), Bytes::from("e1")])
        .await
        .unwrap();
    assert_eq!(receipts[0].index, LeafIndex(5));
    assert!(receipts[1].duplicate);
    client.prove_index(LeafIndex(3)).await.unwrap();
    client.prove_leaf_hash(&hash_leaf(b"e2")).await.unwrap();
    assert_eq!(client.audit(|_, _| {}).await.unwrap().entries, 6);
}

#[tokio::test]
async fn a_mutated_inclusion_proof_is_rejected() {
    let server = FakeServer::start(&FIVE).await;
    server.with(|s| s.tamper.inclusion_proof = true);
    let mut client = connect(&server, None).await;
    let error = failure(client.append(vec![Bytes::from("new entry")]).await);
    match &error {
        ClientError::Inclusion(failure) => {
            assert_eq!(failure.index, 5);
            assert_eq!(failure.leaf_hash, hash_leaf(b"new entry"));
            assert_eq!(failure.checkpoint.size(), TreeSize(6));
        }
        other => panic!("expected an inclusion failure, got {other:?}"),
    }
    failure(client.prove_index(LeafIndex(2)).await);
    failure(client.prove_leaf_hash(&hash_leaf(b"e4")).await);
    // Streamed appends are checked the same way.
    let stream = futures::stream::iter(["s1", "s2", "s3"].map(|e| Ok(Bytes::from(e))));
    let mut acknowledged = 0;
    failure(
        client
            .append_stream(stream, &Default::default(), |_| {
                acknowledged += 1;
                Ok(())
            })
            .await,
    );
    assert_eq!(
        acknowledged, 0,
        "no receipt may be handed out before it verifies"
    );
}

#[tokio::test]
async fn a_short_append_answer_is_rejected() {
    let server = FakeServer::start(&FIVE).await;
    server.with(|s| s.tamper.drop_answer = true);
    let mut client = connect(&server, None).await;
    let error = client
        .append(vec![Bytes::from("a"), Bytes::from("b")])
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Malformed(_)), "{error:?}");
    assert!(error.is_verification_failure());
}

#[tokio::test]
async fn a_checkpoint_with_a_wrong_origin_is_rejected() {
    let server = FakeServer::start(&FIVE).await;
    // Signed with the right key, but naming another log.
    server.with(|s| s.origin = "evil.example/log".into());
    let mut client = connect(&server, None).await;
    let error = failure(client.checkpoint().await);
    assert!(
        matches!(&error, ClientError::Checkpoint { source, .. }
            if matches!(**source, NoteError::OriginMismatch { .. })),
        "{error:?}"
    );
    failure(client.append(vec![Bytes::from("x")]).await);
}

#[tokio::test]
async fn a_checkpoint_signed_by_an_unknown_key_is_rejected() {
    let server = FakeServer::start(&FIVE).await;
    let trusted = server.vkey();
    let trusted_id = trusted.split('+').nth(1).unwrap().to_owned();
    // Same key name, another key; then another name altogether: the configured
    // key is not this log's, a configuration error (exit 2) naming both keys.
    for (signer, name) in [
        (fake_signer(FAKE_ORIGIN, 99), FAKE_ORIGIN),
        (fake_signer("other.example/log", 7), "other.example/log"),
    ] {
        server.with(|s| s.signer = signer);
        let trust = TrustedLog::new(load_verifier_key(&trusted).unwrap(), None);
        let mut client = Client::connect(&server.url, trust, None, ClientOptions::default())
            .await
            .unwrap();
        let error = client.checkpoint().await.unwrap_err();
        assert!(matches!(&error, ClientError::WrongKey(_)), "{error:?}");
        assert!(!error.is_verification_failure());
        let text = error.to_string();
        assert!(
            text.contains(&format!("{FAKE_ORIGIN}+{trusted_id}")),
            "{text}"
        );
        assert!(text.contains(&format!("signed by {name}+")), "{text}");
    }
}

#[tokio::test]
async fn unsigned_fields_that_contradict_the_note_are_rejected() {
    let server = FakeServer::start(&FIVE).await;
    server.with(|s| s.tamper.wire_size = true);
    let mut client = connect(&server, None).await;
    let error = failure(client.checkpoint().await).to_string();
    assert!(error.contains("signed note says size 5"), "{error}");
}

#[tokio::test]
async fn a_rollback_across_runs_is_caught_through_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let server = FakeServer::start(&FIVE).await;
    {
        let mut run1 = connect(&server, Some(&state)).await;
        assert_eq!(run1.checkpoint().await.unwrap().size(), TreeSize(5));
        run1.save_state().unwrap();
    }
    // The server now presents an older tree (e.g. restored from a backup).
    server.with(|s| s.published = 3);
    let mut run2 = connect(&server, Some(&state)).await;
    assert_eq!(
        run2.latest().unwrap().size(),
        TreeSize(5),
        "loaded from the state file"
    );
    let error = failure(run2.checkpoint().await);
    let inconsistency = inconsistency(&error);
    assert_eq!(inconsistency.kind, InconsistencyKind::Rollback);
    assert_eq!(inconsistency.old.size(), TreeSize(5));
    assert_eq!(inconsistency.new.size(), TreeSize(3));
    // Watching sees the same rollback as its first step.
    let mut watch = run2.watch().await.unwrap();
    failure(watch.next().await);
    drop(watch);
    // The state still holds size 5: a failure never moves it backwards.
    run2.save_state().unwrap();
    let run3 = connect(&server, Some(&state)).await;
    assert_eq!(run3.latest().unwrap().size(), TreeSize(5));

    // The same through the command line: exit 1 with both checkpoints shown.
    let cli = Merklog::new(&server.url, &server.vkey(), &state, dir.path());
    let run: Run = cli.run(&["checkpoint"]).await.verification_failure();
    assert!(run.stderr.contains("rollback"), "{}", run.stderr);
    assert_eq!(
        run.stderr.matches(&format!("  {FAKE_ORIGIN}")).count(),
        2,
        "{}",
        run.stderr
    );
    let json = cli
        .run(&["--json", "checkpoint"])
        .await
        .verification_failure();
    let value = &json.json_lines()[0];
    assert_eq!(value["ok"], false);
    assert_eq!(value["verification_failure"], true);
    assert_eq!(
        value["evidence"]["checkpoints"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn two_roots_for_one_size_are_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let server = FakeServer::start(&FIVE).await;
    let mut run1 = connect(&server, Some(&state)).await;
    let seen = run1.checkpoint().await.unwrap();
    run1.save_state().unwrap();

    // Same size, same key, one entry different.
    server.rewrite(&["e0", "e1", "e2", "e3", "forked"]);
    // Within the same session...
    let error = failure(run1.checkpoint().await);
    let fork = inconsistency(&error);
    assert_eq!(fork.kind, InconsistencyKind::Fork);
    assert_eq!(fork.old, seen);
    assert_eq!(fork.new.size(), TreeSize(5));
    assert_ne!(fork.new.root(), seen.root());
    // ...and in a later run, from the state file.
    let mut run2 = connect(&server, Some(&state)).await;
    let error = failure(run2.checkpoint().await);
    assert_eq!(inconsistency(&error).kind, InconsistencyKind::Fork);

    // The forked history grows: no consistency proof can link it to what was seen.
    server.append(&["f5", "f6"]);
    let mut run3 = connect(&server, Some(&state)).await;
    let error = failure(run3.checkpoint().await);
    let inconsistent = inconsistency(&error);
    assert!(
        matches!(inconsistent.kind, InconsistencyKind::BadProof(_)),
        "{error:?}"
    );
    assert_eq!(inconsistent.old, seen);
    assert_eq!(inconsistent.new.size(), TreeSize(7));
    assert!(
        !inconsistent.proof.is_empty(),
        "the proof is kept as evidence"
    );
    // An append answer from the forked log is caught too.
    failure(run3.append(vec![Bytes::from("after the fork")]).await);

    // A fork is also refused when two runs race to save different roots.
    let state_file = StateFile::new(&state);
    let trust = TrustedLog::new(load_verifier_key(&server.vkey()).unwrap(), None);
    // The log's own key signs the same size with another root.
    let mut body = seen.checkpoint().clone();
    let mut root = *body.root.as_bytes();
    root[0] ^= 1;
    body.root = root.into();
    let forked = SignedCheckpoint::sign(body, &fake_signer(FAKE_ORIGIN, 7)).unwrap();
    assert!(state_file.save(&trust, &seen).is_ok());
    assert!(matches!(
        state_file.save(&trust, &forked),
        Err(ClientError::Inconsistent(_))
    ));
}

#[tokio::test]
async fn a_mutated_consistency_proof_is_rejected() {
    let server = FakeServer::start(&FIVE).await;
    let mut client = connect(&server, None).await;
    let first = client.checkpoint().await.unwrap();
    server.append(&["e5", "e6"]);
    server.with(|s| s.tamper.consistency_proof = true);
    let error = failure(client.checkpoint().await);
    let inconsistent = inconsistency(&error);
    assert_eq!(inconsistent.old, first);
    assert!(matches!(inconsistent.kind, InconsistencyKind::BadProof(_)));
    // The checkpoint that failed was not adopted.
    assert_eq!(client.latest().unwrap().size(), TreeSize(5));
}

#[tokio::test]
async fn a_forged_entry_is_located_by_the_audit() {
    let entries: Vec<String> = (0..40).map(|i| format!("entry {i}")).collect();
    let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
    let server = FakeServer::start(&refs).await;
    for forged in [0u64, 13, 39] {
        server.with(|s| s.tamper.entry_at = Some(forged));
        let mut client = connect(&server, None).await;
        match failure(client.audit(|_, _| {}).await) {
            ClientError::Audit(mismatch) => {
                assert_eq!(mismatch.first_bad_index, Some(forged));
                assert_eq!(
                    mismatch.entry.as_deref(),
                    Some(format!("forged entry {forged}").as_bytes())
                );
            }
            other => panic!("expected an audit mismatch, got {other:?}"),
        }
    }
    // prove by index downloads the entry, so a forged one fails there too.
    let mut client = connect(&server, None).await;
    failure(client.prove_index(LeafIndex(39)).await);
}

#[tokio::test]
async fn watch_rejects_forged_entries_and_bad_steps() {
    let server = FakeServer::start(&FIVE).await;
    let mut client = connect(&server, None).await;
    let mut watch = client.watch().await.unwrap();
    let first = watch.next().await.unwrap().unwrap();
    assert!(first.initial);
    server.append(&["e5"]);
    let step = watch.next().await.unwrap().unwrap();
    assert_eq!(step.first_index, 5);
    assert_eq!(step.entries, vec![Bytes::from("e5")]);

    // The server forges the entry it reports for the next step.
    server.with(|s| s.tamper.entry_at = Some(6));
    server.append(&["e6"]);
    let error = failure(
        tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .unwrap(),
    );
    assert!(
        matches!(
            inconsistency(&error).kind,
            InconsistencyKind::EntriesMismatch { .. }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn watch_on_the_command_line_exits_1_with_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(&FIVE).await;
    server.with(|s| s.tamper.consistency_proof = true);
    let cli = Merklog::new(
        &server.url,
        &server.vkey(),
        &dir.path().join("state.json"),
        dir.path(),
    );
    let watcher = {
        let cli = cli.clone();
        tokio::spawn(async move { cli.run(&["watch", "--stop-after", "30s"]).await })
    };
    // Append until the watcher has subscribed and seen a step (bounded).
    for i in 0..100 {
        if watcher.is_finished() {
            break;
        }
        server.append(&[&format!("late {i}")]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = watcher.await.unwrap().verification_failure();
    assert!(
        run.stdout.contains("checkpoint fake.example/log size"),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("proof ("),
        "the proof is printed: {}",
        run.stderr
    );
}

#[tokio::test]
async fn a_policy_quorum_is_enforced_on_every_checkpoint() {
    let server = FakeServer::start(&FIVE).await;
    let witness = merklog_note::generate_cosigner("witness.example")
        .unwrap()
        .1;
    let policy = merklog_note::Policy::parse(&format!(
        "log {}\nwitness w1 {witness}\nquorum w1\n",
        server.vkey()
    ))
    .unwrap();
    // The fake's checkpoints carry no cosignature: the quorum is not met.
    let trust = TrustedLog::from_policy(policy).unwrap();
    let mut client = Client::connect(&server.url, trust, None, ClientOptions::default())
        .await
        .unwrap();
    let error = failure(client.checkpoint().await);
    assert!(
        matches!(&error, ClientError::Checkpoint { source, .. }
            if matches!(**source, NoteError::QuorumNotSatisfied { .. })),
        "{error:?}"
    );
}
