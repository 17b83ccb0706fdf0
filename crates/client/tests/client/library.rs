//! The library against a real merklogd.

use bytes::Bytes;
use merklog_client::{ClientError, StateFile, StreamOptions, TrustedLog, offline};
use merklog_merkle::{LeafIndex, TreeSize, hash_leaf};
use merklog_note::generate_ed25519;

use crate::common::{ORIGIN, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_appends_are_verified_and_delivered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    let mut client = server.client(None).await;
    let entries: Vec<Bytes> = (0..1500)
        .map(|i| Bytes::from(format!("event {i:05}")))
        .collect();
    let options = StreamOptions {
        batch_entries: 64,
        window: 8,
        ..StreamOptions::default()
    };
    let mut receipts = Vec::new();
    let summary = client
        .append_stream(
            futures::stream::iter(entries.clone().into_iter().map(Ok)),
            &options,
            |r| {
                receipts.push(r.clone());
                Ok(())
            },
        )
        .await
        .unwrap();
    assert_eq!(summary.entries, 1500);
    assert_eq!(summary.duplicates, 0);
    assert_eq!(summary.checkpoint.as_ref().unwrap().size(), TreeSize(1500));
    for (i, (receipt, entry)) in receipts.iter().zip(&entries).enumerate() {
        assert_eq!(receipt.index, LeafIndex(i as u64), "input order");
        assert_eq!(receipt.leaf_hash, hash_leaf(entry));
        // Each receipt's tlog-proof verifies offline.
        let verified = offline::verify_proof_file(
            &receipt.tlog_proof().to_bytes(),
            entry,
            Some(server.trust().verifier()),
            None,
        )
        .unwrap();
        assert_eq!(verified.index, i as u64);
    }
    // Sending the same entries again yields the same indexes, marked duplicates.
    let again = client.append(entries[10..20].to_vec()).await.unwrap();
    assert!(again.iter().all(|r| r.duplicate));
    assert_eq!(again[0].index, LeafIndex(10));

    let report = client.audit(|_, _| {}).await.unwrap();
    assert_eq!(report.entries, 1500);
    let frontier = client.frontier(&report.checkpoint).await.unwrap();
    assert_eq!(frontier.root(), report.checkpoint.root());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_consistency_and_watch_against_the_real_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    let mut client = server.client(None).await;
    let empty = client.checkpoint().await.unwrap();
    assert_eq!(empty.size(), TreeSize(0));
    assert_eq!(empty.origin(), ORIGIN);
    // The watch starts on the empty tree and follows three rounds.
    let mut watcher = server.client(None).await;
    let watched = tokio::spawn(async move {
        let mut watch = watcher.watch().await.unwrap();
        let mut entries = Vec::new();
        let mut initial = 0;
        while entries.len() < 9 {
            let event = watch.next().await.unwrap().unwrap();
            initial += usize::from(event.initial);
            assert_eq!(event.first_index, entries.len() as u64);
            entries.extend(event.entries);
        }
        (initial, entries)
    });
    let mut sizes = Vec::new();
    for round in 0..3 {
        let batch: Vec<Bytes> = (0..3)
            .map(|i| Bytes::from(format!("round {round} entry {i}")))
            .collect();
        let receipts = client.append(batch).await.unwrap();
        sizes.push(receipts[0].checkpoint.size());
    }
    let (initial, entries) = tokio::time::timeout(std::time::Duration::from_secs(30), watched)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(initial, 1);
    assert_eq!(entries[4], Bytes::from("round 1 entry 1"));

    let by_index = client.prove_index(LeafIndex(4)).await.unwrap();
    assert_eq!(by_index.entry.as_deref(), Some(&b"round 1 entry 1"[..]));
    let by_hash = client
        .prove_leaf_hash(&hash_leaf(b"round 2 entry 0"))
        .await
        .unwrap();
    assert_eq!(by_hash.index, LeafIndex(6));
    assert!(matches!(
        client.prove_leaf_hash(&hash_leaf(b"never appended")).await,
        Err(ClientError::Rpc { .. })
    ));

    let old = client.checkpoint_at(sizes[0]).await.unwrap();
    let new = client.checkpoint_at(TreeSize(9)).await.unwrap();
    let proof = client.prove_consistency(&old, &new).await.unwrap();
    assert!(!proof.is_empty());
    assert!(matches!(
        client.checkpoint_at(TreeSize(0)).await,
        Err(ClientError::Input(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_file_remembers_and_refuses_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("nested/state/dir/state.json");
    let server = TestServer::start(&dir.path().join("data")).await;
    let mut client = server.client(Some(&state)).await;
    client.append(vec![Bytes::from("one")]).await.unwrap();
    client.save_state().unwrap();
    let text = std::fs::read_to_string(&state).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["logs"][ORIGIN]["size"], 1);
    assert_eq!(json["logs"][ORIGIN]["vkey"], server.vkey.as_str());
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(state.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);

    let reloaded = StateFile::new(&state)
        .load(&server.trust())
        .unwrap()
        .unwrap();
    assert_eq!(reloaded.size(), TreeSize(1));

    // A log of the same origin with another key is refused, not silently trusted.
    let (_, other_vkey) = generate_ed25519(ORIGIN).unwrap();
    let other = TrustedLog::new(merklog_note::parse_verifier_key(&other_vkey).unwrap(), None);
    let error = StateFile::new(&state).load(&other).unwrap_err();
    assert!(matches!(error, ClientError::State { .. }), "{error:?}");
    assert!(!error.is_verification_failure());

    // A corrupt file is an error, never an empty state.
    std::fs::write(&state, b"{not json").unwrap();
    let error = StateFile::new(&state).load(&server.trust()).unwrap_err();
    assert!(matches!(error, ClientError::State { .. }), "{error:?}");
    // A tampered checkpoint in the file does not verify.
    let forged = text.replacen("\\n1\\n", "\\n2\\n", 1);
    assert_ne!(forged, text);
    std::fs::write(&state, forged).unwrap();
    assert!(StateFile::new(&state).load(&server.trust()).is_err());
}
