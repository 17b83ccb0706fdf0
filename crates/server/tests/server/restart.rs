//! Stopping and starting on the same data directory.

use merklog_proto::v1::{self, get_inclusion_proof_request::Leaf};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_log_and_old_proofs_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = NaiveTree::default();
    let mut seen: Vec<v1::Checkpoint> = Vec::new();
    // (index, checkpoint size, proof) of every acknowledgement before the restart.
    let mut old_proofs = Vec::new();

    let server = TestServer::start(dir.path()).await;
    let vkey = server.vkey.clone();
    let mut client = server.client().await;
    for round in 0..12 {
        let entries: Vec<_> = (0..25).map(|i| entry("before", round * 25 + i)).collect();
        let response = client
            .append(append_request(entries.clone(), false))
            .await
            .unwrap()
            .into_inner();
        entries.into_iter().for_each(|e| tree.push(e));
        let checkpoint = response.checkpoint.unwrap();
        open(&server, &checkpoint);
        for a in response.entries {
            old_proofs.push((a.index, checkpoint.size, proof(&a.inclusion_proof)));
        }
        seen.push(checkpoint);
    }
    let last = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.size, 300);
    server.stop().await;

    // Same directory, no --origin: the origin and key come from the data directory.
    let mut config = test_config(dir.path());
    config.origin = None;
    let server = TestServer::start_with(config).await;
    assert_eq!(server.origin, ORIGIN);
    assert_eq!(server.vkey, vkey);
    let mut client = server.client().await;
    let again = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.note, last.note, "the same checkpoint, byte for byte");
    let http_checkpoint = reqwest::get(server.http("checkpoint"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(http_checkpoint, last.note);

    // Resubmitting an old entry is still a duplicate after the restart.
    let response = client
        .append(append_request(vec![entry("before", 42)], false))
        .await
        .unwrap()
        .into_inner();
    assert!(response.entries[0].duplicate);
    assert_eq!(response.entries[0].index, 42);

    for round in 0..8 {
        let entries: Vec<_> = (0..25).map(|i| entry("after", round * 25 + i)).collect();
        let response = client
            .append(append_request(entries.clone(), false))
            .await
            .unwrap()
            .into_inner();
        entries.into_iter().for_each(|e| tree.push(e));
        let checkpoint = response.checkpoint.unwrap();
        open(&server, &checkpoint);
        for a in &response.entries {
            tree.check_inclusion(a.index, checkpoint.size, &proof(&a.inclusion_proof));
        }
        seen.push(checkpoint);
    }
    let latest = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    open(&server, &latest);
    assert_eq!(latest.size, 500);
    assert_eq!(&latest.root[..], tree.root(500).as_bytes());

    // Every checkpoint seen is consistent with the new one, so every old proof
    // (valid against its checkpoint) still binds its entry into the new tree.
    for checkpoint in &seen {
        let response = client
            .get_consistency_proof(v1::GetConsistencyProofRequest {
                old_size: checkpoint.size,
                new_size: Some(latest.size),
            })
            .await
            .unwrap()
            .into_inner();
        let consistency = proof(&response.proof);
        merklog_merkle::verify_consistency(
            merklog_merkle::TreeSize(checkpoint.size),
            merklog_merkle::TreeSize(latest.size),
            &consistency,
            &checkpoint.root[..].try_into().unwrap(),
            &latest.root[..].try_into().unwrap(),
        )
        .unwrap();
        tree.check_consistency(checkpoint.size, latest.size, &consistency);
    }
    for (index, size, old) in &old_proofs {
        tree.check_inclusion(*index, *size, old);
        let response = client
            .get_inclusion_proof(v1::GetInclusionProofRequest {
                leaf: Some(Leaf::Index(*index)),
                tree_size: None,
            })
            .await
            .unwrap()
            .into_inner();
        tree.check_inclusion(*index, latest.size, &proof(&response.proof));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_conflicts_and_a_second_process_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;

    // A second server on the same directory while the first runs.
    let error = TestServer::try_start(test_config(dir.path()))
        .await
        .err()
        .expect("a second server on the same data directory must be refused");
    let text = error.to_string();
    assert!(text.contains("in use"), "{text}");
    server.stop().await;

    // A conflicting origin is refused with a clear error.
    let mut config = test_config(dir.path());
    config.origin = Some("other.example/log".to_owned());
    let text = TestServer::try_start(config)
        .await
        .err()
        .expect("a conflicting origin must be refused")
        .to_string();
    assert!(
        text.contains(ORIGIN) && text.contains("other.example/log"),
        "{text}"
    );

    // A missing key is not silently regenerated for an existing log.
    std::fs::remove_file(dir.path().join("log.key")).unwrap();
    let text = TestServer::try_start(test_config(dir.path()))
        .await
        .err()
        .expect("a missing key must be refused")
        .to_string();
    assert!(text.contains("log.key"), "{text}");
}
