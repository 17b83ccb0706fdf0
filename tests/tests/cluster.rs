//! Cluster mode, process-level, on loopback: merklogd with its log in an S3 bucket
//! (moto's S3 server) and its checkpoint fenced by a lock (the bucket's conditional
//! update, or etcd). Appends are acknowledged only once in the bucket, the bucket
//! alone rebuilds the signed root, and a second merklogd on the same bucket and lock
//! publishes nothing: with the object-store lock its cache goes stale and it loses its
//! swap; with etcd it is a standby that names the leader and follows it.
//!
//! moto and etcd come from `scripts/cluster-prereqs` (run here when they are
//! missing); where they cannot be installed the tests print why and skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_common;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_cluster::Bucket;
use merklog_e2e::{Daemon, connect, open_wire_checkpoint, read_verifier};
use merklog_merkle::bundle::split_bundle;
use merklog_merkle::tile::{TILE_WIDTH, entry_bundle_path};
use merklog_merkle::{Hash, hash_leaf};
use merklog_note::open_checkpoint;
use merklog_proto::v1;

use cluster_common::{BUCKET, CREDENTIALS, ORIGIN, bucket, prerequisites, start_etcd, start_s3};

/// Each test's whole run, services included.
const DEADLINE: Duration = Duration::from_secs(120);

fn start_node(data_dir: &Path, bucket_url: &str, lock: &str) -> Daemon {
    let args = [
        "--origin",
        ORIGIN,
        "--log-level",
        "info",
        "--cluster-bucket",
        bucket_url,
        "--cluster-lock",
        lock,
    ];
    Daemon::start_with_env(data_dir, &args, &CREDENTIALS)
}

/// Appends `entries` in one call.
async fn append(url: &str, entries: &[Bytes]) -> Result<v1::AppendResponse, tonic::Status> {
    let mut client = connect(url).await.unwrap();
    client
        .append(v1::AppendRequest {
            entries: entries.to_vec(),
            include_tlog_proof: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Rebuilds the log from the bucket alone: the public checkpoint (verified with the
/// log key) and every entry bundle it covers; returns the entries and checks the
/// root.
async fn audit_bucket(bucket: &Bucket, data_dir: &Path) -> (u64, Vec<Bytes>) {
    let note = bucket
        .checkpoint()
        .await
        .unwrap()
        .expect("a public checkpoint");
    let (cp, _) = open_checkpoint(&note, &read_verifier(data_dir), Some(ORIGIN)).unwrap();
    let width = u64::from(TILE_WIDTH);
    let mut entries = Vec::new();
    for index in 0..cp.size.div_ceil(width) {
        let w = (cp.size - index * width).min(width) as u16;
        let path = entry_bundle_path(index, w);
        let bytes = bucket
            .get(&path)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{path} missing"));
        entries.extend(
            split_bundle(&bytes)
                .unwrap()
                .into_iter()
                .map(Bytes::copy_from_slice),
        );
    }
    let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
    assert_eq!(
        merklog_testkit_tree::mth(&leaves),
        cp.root,
        "the bucket's entries rebuild the signed root"
    );
    (cp.size, entries)
}

async fn stale_sequencer_is_fenced(lock: impl Fn(&str) -> String, with_etcd: bool) {
    merklog_e2e::merklogd_binary();
    let Some((moto, etcd)) = prerequisites() else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (_s3, endpoint) = start_s3(&moto, &dir.path().join("moto.log")).await;
    let _etcd = if with_etcd {
        let (service, port) = start_etcd(&etcd, dir.path()).await;
        Some((service, port))
    } else {
        None
    };
    let lock = lock(&_etcd.as_ref().map_or(String::new(), |(_, p)| p.to_string()));
    let bucket_url = format!("s3://{BUCKET}?endpoint={endpoint}");
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));

    let a = start_node(&a_dir, &bucket_url, &lock);
    if with_etcd {
        // A elects itself after it starts serving: until then it is a standby.
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Err(status) = append(&a.grpc_url(), &[Bytes::from_static(b"node-a first")]).await
        {
            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
            assert!(Instant::now() < deadline, "A did not lead: {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut acked: Vec<(u64, Bytes)> = Vec::new();
    for call in 0..4u64 {
        let entries: Vec<Bytes> = (0..150)
            .map(|i| Bytes::from(format!("node-a call {call} entry {i}")))
            .collect();
        let reply = append(&a.grpc_url(), &entries).await.unwrap();
        let cp = reply.checkpoint.unwrap();
        open_wire_checkpoint(&read_verifier(&a_dir), &cp).unwrap();
        // Acknowledged means in the bucket: the public checkpoint covers the call.
        let public = bucket(&endpoint).checkpoint().await.unwrap().unwrap();
        let (public, _) = open_checkpoint(&public, &read_verifier(&a_dir), Some(ORIGIN)).unwrap();
        assert!(public.size >= cp.size);
        acked.extend(reply.entries.iter().map(|e| e.index).zip(entries));
    }

    // Node B: same key and origin, its own cache, rebuilt from the bucket at start.
    std::fs::create_dir_all(&b_dir).unwrap();
    for file in ["log.key", "log.vkey"] {
        std::fs::copy(a_dir.join(file), b_dir.join(file)).unwrap();
    }
    let b = start_node(&b_dir, &bucket_url, &lock);
    let b_log = std::fs::read_to_string(b_dir.with_extension("log")).unwrap();
    assert!(
        b_log.contains("Rebuilt"),
        "B rebuilt its cache from the bucket:\n{b_log}"
    );
    let backend = if with_etcd {
        "etcd key merklog/checkpoint"
    } else {
        "object-store lock"
    };
    assert!(b_log.contains(backend), "B uses the {backend}:\n{b_log}");

    // A signs on: B's cache and lock version are now stale.
    let more: Vec<Bytes> = (0..10)
        .map(|i| Bytes::from(format!("node-a late {i}")))
        .collect();
    let reply = append(&a.grpc_url(), &more).await.unwrap();
    acked.extend(reply.entries.iter().map(|e| e.index).zip(more));
    let a_final = reply.checkpoint.unwrap();

    let stale = [Bytes::from_static(b"node-b stale entry")];
    if with_etcd {
        // With etcd, A leads and B is a standby: B turns appends away, naming A.
        for _ in 0..3 {
            let refused = append(&b.grpc_url(), &stale).await.unwrap_err();
            assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
            assert!(
                refused.message().contains(&a.grpc_url()),
                "B names the leader: {refused:?}"
            );
        }
    } else {
        let first = append(&b.grpc_url(), &stale).await.unwrap_err();
        assert_eq!(first.code(), tonic::Code::Unavailable, "{first:?}");
        for _ in 0..3 {
            let refused = append(&b.grpc_url(), &stale).await.unwrap_err();
            assert_eq!(
                refused.code(),
                tonic::Code::FailedPrecondition,
                "{refused:?}"
            );
            assert!(
                refused.message().contains("another sequencer"),
                "{refused:?}"
            );
        }
    }
    // B published nothing: the bucket holds A's checkpoint.
    let bucket = bucket(&endpoint);
    assert_eq!(bucket.checkpoint().await.unwrap().unwrap(), a_final.note);
    let mut b_client = connect(&b.grpc_url()).await.unwrap();
    let b_cp = b_client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    if with_etcd {
        // The standby follows the lock: it serves A's checkpoint (soon).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut b_cp = b_cp;
        while b_cp.size < a_final.size {
            assert!(Instant::now() < deadline, "B did not follow A");
            tokio::time::sleep(Duration::from_millis(100)).await;
            b_cp = b_client
                .get_checkpoint(v1::GetCheckpointRequest {})
                .await
                .unwrap()
                .into_inner();
        }
        assert_eq!(b_cp.note, a_final.note, "B serves A's checkpoint");
    } else {
        assert!(b_cp.size < a_final.size, "B serves its old checkpoint");
    }

    // A keeps signing; the bucket alone holds every acknowledged entry.
    append(&a.grpc_url(), &[Bytes::from_static(b"node-a after")])
        .await
        .unwrap();
    let (size, entries) = audit_bucket(&bucket, &a_dir).await;
    let first = u64::from(with_etcd);
    assert_eq!(size, first + acked.len() as u64 + 1);
    for (index, entry) in &acked {
        assert_eq!(&entries[*index as usize], entry, "entry {index}");
    }
    assert!(!entries.iter().any(|e| e == &stale[0]));
    a.terminate();
    b.terminate();
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_lock_fences_a_stale_sequencer() {
    stale_sequencer_is_fenced(|_| "object-store".into(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_lock_fences_a_stale_sequencer() {
    stale_sequencer_is_fenced(
        |port| format!("etcd://127.0.0.1:{port}/merklog/checkpoint"),
        true,
    )
    .await;
}
