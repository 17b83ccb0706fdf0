//! Every RPC and every HTTP path of a running server, with every proof checked
//! by merklog-merkle's verifiers and against a naive RFC 6962 tree.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use merklog_merkle::bundle::split_bundle;
use merklog_merkle::tile::{TileId, entry_bundle_path, subtree_root};
use merklog_merkle::{Hash, empty_root, hash_leaf};
use merklog_proto::v1::{self, get_inclusion_proof_request::Leaf};
use tonic::Code;

use crate::common::*;

/// Appends `entries` with one unary call and checks the answer completely.
async fn append_checked(
    server: &TestServer,
    client: &mut v1::log_client::LogClient<tonic::transport::Channel>,
    tree: &mut NaiveTree,
    entries: Vec<Bytes>,
    tlog_proof: bool,
) -> v1::Checkpoint {
    let response = client
        .append(append_request(entries.clone(), tlog_proof))
        .await
        .unwrap()
        .into_inner();
    let checkpoint = response.checkpoint.unwrap();
    open(server, &checkpoint);
    assert_eq!(response.entries.len(), entries.len());
    for (entry, answer) in entries.iter().zip(&response.entries) {
        if !answer.duplicate {
            assert_eq!(
                answer.index,
                tree.leaves.len() as u64,
                "indexes are assigned in order"
            );
            tree.push(entry.clone());
        }
        assert_eq!(tree.entries[answer.index as usize], *entry);
    }
    assert_eq!(checkpoint.size, tree.leaves.len() as u64);
    assert_eq!(&checkpoint.root[..], tree.root(checkpoint.size).as_bytes());
    for answer in &response.entries {
        tree.check_inclusion(
            answer.index,
            checkpoint.size,
            &proof(&answer.inclusion_proof),
        );
        if tlog_proof {
            let parsed = merklog_note::TlogProof::parse(&answer.tlog_proof).unwrap();
            assert_eq!(parsed.index, answer.index);
            assert_eq!(parsed.checkpoint, checkpoint.note.to_vec());
            assert_eq!(parsed.proof, proof(&answer.inclusion_proof));
        } else {
            assert!(answer.tlog_proof.is_empty());
        }
    }
    checkpoint
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_and_http_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.max_entries_per_page = 100;
    let server = TestServer::start_with(config).await;
    let mut client = server.client().await;
    let mut tree = NaiveTree::default();

    // An empty log publishes the signed size-0 checkpoint.
    let first = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.size, 0);
    assert_eq!(&first.root[..], empty_root().as_bytes());
    open(&server, &first);

    // A watcher from the start: it must see sizes only go up.
    let mut watch = client
        .watch_checkpoints(v1::WatchCheckpointsRequest {})
        .await
        .unwrap()
        .into_inner();

    // Unary appends of various shapes, with and without tlog-proofs.
    let mut checkpoints = vec![first];
    let mut n = 0;
    for (batch, tlog) in [
        (1, true),
        (7, false),
        (256, false),
        (200, true),
        (131, false),
    ] {
        let entries: Vec<Bytes> = (n..n + batch).map(|i| entry("api", i)).collect();
        n += batch;
        checkpoints.push(append_checked(&server, &mut client, &mut tree, entries, tlog).await);
    }
    // A resubmission gets the existing index, marked duplicate, with a valid proof;
    // mixed with a new entry in the same call.
    let again = vec![entry("api", 3), entry("api", 9999), entry("api", 3)];
    let before = tree.leaves.len();
    let response = client
        .append(append_request(again, false))
        .await
        .unwrap()
        .into_inner();
    let checkpoint = response.checkpoint.clone().unwrap();
    assert!(response.entries[0].duplicate);
    assert_eq!(response.entries[0].index, 3);
    assert!(!response.entries[1].duplicate);
    assert_eq!(response.entries[1].index, before as u64);
    assert!(response.entries[2].duplicate, "a duplicate within one call");
    assert_eq!(response.entries[2].index, 3);
    tree.push(entry("api", 9999));
    for answer in &response.entries {
        tree.check_inclusion(
            answer.index,
            checkpoint.size,
            &proof(&answer.inclusion_proof),
        );
    }
    checkpoints.push(checkpoint);

    // The append stream echoes every sequence number once; a bad request gets an
    // error for its own sequence number and the stream goes on.
    let mut requests = Vec::new();
    let mut expected: HashMap<u64, Vec<Bytes>> = HashMap::new();
    for s in 0..20u64 {
        let sequence = 1000 + s * 7;
        let entries: Vec<Bytes> = (0..(s as usize % 5 + 1))
            .map(|j| entry("stream", (s as usize) * 10 + j))
            .collect();
        expected.insert(sequence, entries.clone());
        requests.push(v1::AppendStreamRequest {
            sequence,
            request: Some(append_request(entries, s % 3 == 0)),
        });
    }
    requests.insert(
        5,
        v1::AppendStreamRequest {
            sequence: 77,
            request: Some(append_request(vec![Bytes::new()], false)),
        },
    );
    let mut answers = client
        .append_stream(futures::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut seen = HashMap::new();
    while let Some(answer) = answers.message().await.unwrap() {
        assert!(
            seen.insert(answer.sequence, answer.clone()).is_none(),
            "echoed twice"
        );
    }
    assert_eq!(seen.len(), 21);
    let (_, bad) = merklog_proto::convert::stream_answer(seen.remove(&77).unwrap()).unwrap();
    let bad = bad.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().starts_with("entries[0]: entry is empty"),
        "{}",
        bad.message()
    );
    // Streamed entries were sequenced concurrently: place them by their indexes.
    let mut placed: Vec<(u64, Bytes)> = Vec::new();
    for (sequence, answer) in &seen {
        let (_, result) = merklog_proto::convert::stream_answer(answer.clone()).unwrap();
        let response = result.unwrap();
        let entries = &expected[sequence];
        assert_eq!(response.entries.len(), entries.len());
        for (e, a) in entries.iter().zip(&response.entries) {
            assert!(!a.duplicate);
            placed.push((a.index, e.clone()));
        }
    }
    placed.sort();
    for (index, e) in placed {
        assert_eq!(
            index,
            tree.leaves.len() as u64,
            "stream indexes are contiguous"
        );
        tree.push(e);
    }
    for answer in seen.values() {
        let (_, result) = merklog_proto::convert::stream_answer(answer.clone()).unwrap();
        let response = result.unwrap();
        let checkpoint = response.checkpoint.unwrap();
        open(&server, &checkpoint);
        for a in &response.entries {
            tree.check_inclusion(a.index, checkpoint.size, &proof(&a.inclusion_proof));
        }
        checkpoints.push(checkpoint);
    }

    let latest = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    open(&server, &latest);
    let size = latest.size;
    assert_eq!(size, tree.leaves.len() as u64);
    assert_eq!(&latest.root[..], tree.root(size).as_bytes());

    // Inclusion proofs: by index and by hash, latest and older sizes.
    let mut rng = Rng::new(7);
    for _ in 0..40 {
        let at = 1 + rng.below(size);
        let index = rng.below(at);
        let explicit = rng.below(2) == 0;
        let by_hash = rng.below(2) == 0;
        let leaf = if by_hash {
            Leaf::LeafHash(Bytes::copy_from_slice(
                tree.leaves[index as usize].as_bytes(),
            ))
        } else {
            Leaf::Index(index)
        };
        let request = v1::GetInclusionProofRequest {
            leaf: Some(leaf),
            tree_size: explicit.then_some(at),
        };
        let response = client
            .get_inclusion_proof(request)
            .await
            .unwrap()
            .into_inner();
        let want_size = if explicit { at } else { size };
        assert_eq!(response.index, index);
        assert_eq!(response.tree_size, want_size);
        tree.check_inclusion(index, want_size, &proof(&response.proof));
        if !explicit {
            assert_eq!(response.checkpoint.as_ref().unwrap().note, latest.note);
        }
        if let Some(checkpoint) = &response.checkpoint {
            assert_eq!(open(&server, checkpoint).size, want_size);
        }
    }
    // At a size the log signed, the checkpoint comes along; at others it does not.
    let signed = &checkpoints[3];
    let response = client
        .get_inclusion_proof(v1::GetInclusionProofRequest {
            leaf: Some(Leaf::Index(0)),
            tree_size: Some(signed.size),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.checkpoint.unwrap().note, signed.note);
    let unsigned = signed.size - 1;
    let response = client
        .get_inclusion_proof(v1::GetInclusionProofRequest {
            leaf: Some(Leaf::Index(0)),
            tree_size: Some(unsigned),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.checkpoint.is_none());

    // Consistency proofs between every checkpoint seen and the latest, and random pairs.
    for checkpoint in checkpoints.iter().filter(|c| c.size > 0) {
        let response = client
            .get_consistency_proof(v1::GetConsistencyProofRequest {
                old_size: checkpoint.size,
                new_size: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (response.old_size, response.new_size),
            (checkpoint.size, size)
        );
        assert_eq!(response.checkpoint.unwrap().note, latest.note);
        tree.check_consistency(checkpoint.size, size, &proof(&response.proof));
        assert_eq!(&checkpoint.root[..], tree.root(checkpoint.size).as_bytes());
    }
    for _ in 0..30 {
        let new = 1 + rng.below(size);
        let old = 1 + rng.below(new);
        let response = client
            .get_consistency_proof(v1::GetConsistencyProofRequest {
                old_size: old,
                new_size: Some(new),
            })
            .await
            .unwrap()
            .into_inner();
        tree.check_consistency(old, new, &proof(&response.proof));
    }

    // Entries, paged (100 per page here).
    let mut read = Vec::new();
    let mut start = 0;
    while start < size {
        let page = client
            .get_entries(v1::GetEntriesRequest { start, end: size })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.start, start);
        assert!(!page.entries.is_empty() && page.entries.len() <= 100);
        start += page.entries.len() as u64;
        read.extend(page.entries);
    }
    assert_eq!(read, tree.entries);

    // The watcher saw increasing sizes ending at the latest.
    let mut last = None;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let checkpoint = open(&server, &next);
        assert!(
            last.is_none_or(|l| checkpoint.size > l),
            "size went down or repeated"
        );
        last = Some(checkpoint.size);
        if checkpoint.size == size {
            break;
        }
    }

    check_http(&server, &tree, &latest).await;
    check_reflection_and_health(&server).await;
    check_metrics(&server).await;
    server.stop().await;
}

/// The tlog-tiles API reproduces the checkpoint.
async fn check_http(server: &TestServer, tree: &NaiveTree, latest: &v1::Checkpoint) {
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(server.http(path)).send();

    let response = get("checkpoint").await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["cache-control"], "public, max-age=2");
    assert_eq!(response.bytes().await.unwrap(), latest.note);

    let size = latest.size;
    assert!(
        size > 512 && size < 65_536,
        "the test needs two full tiles and a partial"
    );
    // Level 0: every leaf hash, from full tiles and the partial right edge.
    let mut leaves: Vec<Hash> = Vec::new();
    let mut level1: Vec<Hash> = Vec::new();
    for index in 0..size.div_ceil(256) {
        let width = (size - index * 256).min(256) as u16;
        let id = TileId {
            level: 0,
            index,
            width,
        };
        let response = get(&id.path()).await.unwrap();
        assert_eq!(response.status(), 200, "{}", id.path());
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let bytes = response.bytes().await.unwrap();
        assert_eq!(bytes.len(), usize::from(width) * 32);
        let hashes: Vec<Hash> = bytes.chunks(32).map(|c| c.try_into().unwrap()).collect();
        if width == 256 {
            level1.push(subtree_root(&hashes).unwrap());
        }
        leaves.extend(hashes);

        // The entry bundle of the same coordinates hashes to this tile.
        let response = get(&entry_bundle_path(index, width)).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        let bundle = response.bytes().await.unwrap();
        let entries = split_bundle(&bundle).unwrap();
        assert_eq!(entries.len(), usize::from(width));
        for (k, e) in entries.iter().enumerate() {
            assert_eq!(hash_leaf(e), leaves[index as usize * 256 + k]);
        }
    }
    assert_eq!(leaves, tree.leaves);
    assert_eq!(
        mth(&leaves).as_bytes(),
        &latest.root[..],
        "tiles reproduce the root"
    );
    // Level 1: the roots of the full level-0 tiles.
    let id = TileId {
        level: 1,
        index: 0,
        width: level1.len() as u16,
    };
    let response = get(&id.path()).await.unwrap();
    assert_eq!(response.status(), 200, "{}", id.path());
    let bytes = response.bytes().await.unwrap();
    let served: Vec<Hash> = bytes.chunks(32).map(|c| c.try_into().unwrap()).collect();
    assert_eq!(served, level1);

    // Older, narrower partials stay servable and are prefixes.
    let last_tile = size / 256;
    let narrow = get(&format!("tile/0/{last_tile:03}.p/1")).await.unwrap();
    assert_eq!(narrow.status(), 200);
    assert_eq!(
        &narrow.bytes().await.unwrap()[..],
        leaves[last_tile as usize * 256].as_bytes()
    );
    let narrow = get(&format!("tile/entries/{last_tile:03}.p/1"))
        .await
        .unwrap();
    assert_eq!(narrow.status(), 200);

    // Beyond the published tree: 404, never cached.
    let width_now = size % 256;
    let beyond = [
        format!("tile/0/{last_tile:03}"),
        format!("tile/0/{last_tile:03}.p/{}", width_now + 1),
        format!("tile/0/{:03}", last_tile + 1),
        format!("tile/entries/{:03}", last_tile + 1),
        format!("tile/entries/{last_tile:03}.p/{}", width_now + 1),
        "tile/1/000".to_owned(),
        "tile/1/000.p/3".to_owned(),
        "tile/2/000.p/1".to_owned(),
        "tile/0/x001/000".to_owned(),
        "nothing/here".to_owned(),
    ];
    for path in beyond {
        let response = get(&path).await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
}

async fn check_reflection_and_health(server: &TestServer) {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "merklog.v1.Log"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new(channel.clone());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.next().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("not a service list: {answer:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(names.contains(&"merklog.v1.Log".to_owned()), "{names:?}");
        assert!(
            names.contains(&"grpc.health.v1.Health".to_owned()),
            "{names:?}"
        );
    }
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "merklog.v1.Log".to_owned(),
            )),
        };
        let mut answers = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.next().await.unwrap().unwrap();
        let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
            panic!("not a file descriptor: {answer:?}");
        };
        use prost::Message;
        let file =
            prost_types::FileDescriptorProto::decode(&files.file_descriptor_proto[0][..]).unwrap();
        assert_eq!(file.package(), "merklog.v1");
    }
}

async fn check_metrics(server: &TestServer) {
    let text = reqwest::get(format!("http://{}/metrics", server.addrs.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "merklog_rpc_calls_total{rpc=\"Append\"}",
        "merklog_rpc_calls_total{rpc=\"AppendStream\"}",
        "merklog_append_stream_requests_total{code=\"invalid_argument\"}",
        "merklog_checkpoint_age_seconds",
        "merklog_http_requests_total",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_skips_but_never_goes_down() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    let mut watch = client
        .watch_checkpoints(v1::WatchCheckpointsRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.size, 0);
    // Many rounds while the watcher does not read.
    for i in 0..30 {
        client
            .append(append_request(vec![entry("slow", i)], false))
            .await
            .unwrap();
    }
    let mut last = 0;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        open(&server, &next);
        assert!(next.size > last, "{} after {last}", next.size);
        last = next.size;
        if last == 30 {
            break;
        }
    }
    // Stopping the server ends the watch stream instead of hanging the shutdown.
    server.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap();
    assert!(!matches!(end, Ok(Some(_))), "no checkpoint after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_and_unary_calls_share_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut tasks = Vec::new();
    for client_id in 0..8usize {
        let mut client = server.client().await;
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            if client_id % 2 == 0 {
                let requests: Vec<_> = (0..25u64)
                    .map(|s| v1::AppendStreamRequest {
                        sequence: s,
                        request: Some(append_request(
                            vec![entry(&format!("c{client_id}"), s as usize)],
                            false,
                        )),
                    })
                    .collect();
                let mut answers = client
                    .append_stream(futures::stream::iter(requests))
                    .await
                    .unwrap()
                    .into_inner();
                while let Some(a) = answers.message().await.unwrap() {
                    let (s, r) = merklog_proto::convert::stream_answer(a).unwrap();
                    let r = r.unwrap();
                    got.push((entry(&format!("c{client_id}"), s as usize), r));
                }
            } else {
                for i in 0..25 {
                    let e = entry(&format!("c{client_id}"), i);
                    let r = client
                        .append(append_request(vec![e.clone()], false))
                        .await
                        .unwrap()
                        .into_inner();
                    got.push((e, r));
                }
            }
            got
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len(), 200);
    // Rebuild the tree from the log's own entries and check every answer against it.
    let mut client = server.client().await;
    let latest = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(latest.size, 200);
    let mut tree = NaiveTree::default();
    let mut start = 0;
    while start < latest.size {
        let page = client
            .get_entries(v1::GetEntriesRequest {
                start,
                end: latest.size,
            })
            .await
            .unwrap()
            .into_inner();
        start += page.entries.len() as u64;
        page.entries.into_iter().for_each(|e| tree.push(e));
    }
    for (e, response) in all {
        let checkpoint = response.checkpoint.unwrap();
        open(&server, &checkpoint);
        let a = &response.entries[0];
        assert_eq!(tree.entries[a.index as usize], e);
        tree.check_inclusion(a.index, checkpoint.size, &proof(&a.inclusion_proof));
        assert_eq!(&checkpoint.root[..], tree.root(checkpoint.size).as_bytes());
    }
    server.stop().await;
}
