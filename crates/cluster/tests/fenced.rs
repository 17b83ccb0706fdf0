//! The fenced commit over an in-memory bucket and lock, with the log's in-memory store
//! as each node's cache: the bucket becomes a tlog-tiles log, a stale sequencer is
//! fenced off, start-up rebuilds a cache and replays a staged round, and forks are
//! refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use merklog_cluster::staging::{Staged, staging_path};
use merklog_cluster::{
    Bucket, ClusterError, ClusterOptions, ClusterStore, Leadership, LockBackend, Locked,
    ObjectStoreLock, Reconciled, SwapError, Version,
};
use merklog_log::{
    ALGORITHM_ED25519, Log, LogConfig, LogError, LogMetadata, LogStore, MemoryStore,
};
use merklog_merkle::bundle::split_bundle;
use merklog_merkle::tile::{TILE_WIDTH, entry_bundle_path};
use merklog_merkle::{Hash, hash_leaf, verify_inclusion};
use merklog_note::{Ed25519Signer, open_checkpoint};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

const ORIGIN: &str = "example.com/cluster-test";

fn signer() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::from_seed(ORIGIN, &[9u8; 32]).unwrap())
}

fn metadata() -> LogMetadata {
    LogMetadata {
        origin: ORIGIN.into(),
        verifier_key: signer().verifier().to_vkey(),
        algorithm: ALGORITHM_ED25519.into(),
    }
}

fn entry(i: u64) -> Bytes {
    Bytes::from(format!("cluster event {i}"))
}

/// One shared bucket and lock.
struct Cluster {
    store: Arc<dyn ObjectStore>,
}

impl Cluster {
    fn new() -> Self {
        Self {
            store: Arc::new(InMemory::new()),
        }
    }

    fn bucket(&self) -> Bucket {
        Bucket::from_store(self.store.clone(), "memory://test")
    }

    fn lock(&self) -> Arc<dyn LockBackend> {
        Arc::new(ObjectStoreLock::new(self.store.clone(), "lock/checkpoint"))
    }

    async fn node(
        &self,
        cache: Arc<MemoryStore>,
    ) -> Result<(Arc<ClusterStore>, Reconciled), ClusterError> {
        open_node(cache, self.bucket(), self.lock()).await
    }

    /// Every entry of the bucket's public checkpoint, read from its entry bundles alone,
    /// and that checkpoint's verified size and root.
    async fn read_log(&self) -> (Vec<Bytes>, u64, Hash) {
        let bucket = self.bucket();
        let note = bucket.checkpoint().await.unwrap().unwrap();
        let (cp, _) = open_checkpoint(&note, &signer().verifier(), Some(ORIGIN)).unwrap();
        let mut entries = Vec::new();
        let width = u64::from(TILE_WIDTH);
        for index in 0..cp.size.div_ceil(width) {
            let w = (cp.size - index * width).min(width) as u16;
            let bytes = bucket
                .get(&entry_bundle_path(index, w))
                .await
                .unwrap()
                .unwrap();
            entries.extend(
                split_bundle(&bytes)
                    .unwrap()
                    .into_iter()
                    .map(Bytes::copy_from_slice),
            );
        }
        (entries, cp.size, cp.root)
    }
}

/// A node without election or witness policy on `bucket` and `lock`.
async fn open_node(
    cache: Arc<MemoryStore>,
    bucket: Bucket,
    lock: Arc<dyn LockBackend>,
) -> Result<(Arc<ClusterStore>, Reconciled), ClusterError> {
    let options = ClusterOptions {
        origin: ORIGIN.into(),
        verifier: Arc::new(signer().verifier()),
        witnessed: false,
        leadership: None,
    };
    let (store, reconciled) = ClusterStore::open(
        cache,
        bucket,
        lock,
        options,
        tokio::runtime::Handle::current(),
    )
    .await?;
    Ok((Arc::new(store), reconciled))
}

fn open_log(store: &Arc<ClusterStore>) -> Result<Log, LogError> {
    Log::open(store.clone(), signer(), ORIGIN.into(), LogConfig::default())
}

fn root_of(entries: &[Bytes]) -> Hash {
    let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
    merklog_testkit_tree::mth(&leaves)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_make_the_bucket_a_complete_tlog_tiles_log() {
    let cluster = Cluster::new();
    let (store, reconciled) = cluster
        .node(Arc::new(MemoryStore::new(metadata())))
        .await
        .unwrap();
    assert_eq!(reconciled, Reconciled::Empty);
    let log = open_log(&store).unwrap();
    let mut appended = Vec::new();
    // Rounds that fill bundles and tiles, and leave partial ones at the edge.
    for chunk in [1u64, 255, 300, 70_000 % 613] {
        let start = appended.len() as u64;
        let entries: Vec<Bytes> = (start..start + chunk).map(entry).collect();
        let receipt = log.append(entries.clone()).await.unwrap();
        for (sealed, e) in receipt.entries.iter().zip(&entries) {
            verify_inclusion(
                &hash_leaf(e),
                sealed.index,
                receipt.checkpoint.size(),
                &sealed.inclusion_proof,
                &receipt.checkpoint.root(),
            )
            .unwrap();
        }
        appended.extend(entries);
        // Acknowledged means in the bucket: the public checkpoint is this round's.
        let public = cluster.bucket().checkpoint().await.unwrap().unwrap();
        assert_eq!(public, receipt.checkpoint.note());
    }
    let (entries, size, root) = cluster.read_log().await;
    assert_eq!(entries, appended);
    assert_eq!(size, appended.len() as u64);
    assert_eq!(root, root_of(&appended));
    assert_eq!(root, log.latest().root());
    // The lock holds the same checkpoint.
    let (locked, _) = cluster.lock().load().await.unwrap().unwrap();
    assert_eq!(locked, log.latest().note().to_vec());
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequencer_with_a_stale_lock_version_is_fenced_off_and_publishes_nothing() {
    let cluster = Cluster::new();
    let (store_b, _) = cluster
        .node(Arc::new(MemoryStore::new(metadata())))
        .await
        .unwrap();
    let log_b = open_log(&store_b).unwrap();
    // A starts after B signed size 0, takes over and signs.
    let (store_a, reconciled) = cluster
        .node(Arc::new(MemoryStore::new(metadata())))
        .await
        .unwrap();
    assert_eq!(reconciled, Reconciled::Rebuilt { from: 0, to: 0 });
    let log_a = open_log(&store_a).unwrap();
    let a = log_a.append(vec![entry(1), entry(2)]).await.unwrap();
    // B still holds the size-0 version: its swap loses.
    let err = log_b.append(vec![entry(3)]).await.unwrap_err();
    assert!(matches!(err, LogError::Unavailable(_)), "{err}");
    assert!(store_b.fenced().unwrap().contains("lost the swap"));
    let err = log_b.append(vec![entry(4)]).await.unwrap_err();
    assert!(matches!(err, LogError::SigningRefused(_)), "{err}");
    assert_eq!(log_b.latest().size().0, 0);
    // Nothing of B's rounds reached the bucket or the lock.
    let public = cluster.bucket().checkpoint().await.unwrap().unwrap();
    assert_eq!(public, a.checkpoint.note());
    let (locked, _) = cluster.lock().load().await.unwrap().unwrap();
    assert_eq!(locked, a.checkpoint.note().to_vec());
    assert!(
        cluster
            .bucket()
            .get("tile/entries/000.p/1")
            .await
            .unwrap()
            .is_none()
    );
    // A goes on.
    log_a.append(vec![entry(5)]).await.unwrap();
    log_a.shutdown().await;
    log_b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_rebuilds_its_cache_from_the_bucket_and_keeps_dedup() {
    let cluster = Cluster::new();
    let (store_a, _) = cluster
        .node(Arc::new(MemoryStore::new(metadata())))
        .await
        .unwrap();
    let log_a = open_log(&store_a).unwrap();
    let first: Vec<Bytes> = (0..700).map(entry).collect();
    log_a.append(first[..400].to_vec()).await.unwrap();
    log_a.append(first[400..].to_vec()).await.unwrap();
    log_a.shutdown().await;
    drop(log_a);

    let (store_c, reconciled) = cluster
        .node(Arc::new(MemoryStore::new(metadata())))
        .await
        .unwrap();
    assert_eq!(reconciled, Reconciled::Rebuilt { from: 0, to: 700 });
    let log_c = open_log(&store_c).unwrap();
    assert_eq!(log_c.latest().size().0, 700);
    let receipt = log_c.append(vec![entry(10), entry(700)]).await.unwrap();
    // Dedup across nodes: entry 10 keeps its index; 700 is new.
    let got: Vec<(u64, bool)> = receipt
        .entries
        .iter()
        .map(|s| (s.index.0, s.duplicate))
        .collect();
    assert_eq!(got, [(10, true), (700, false)]);
    let (entries, size, root) = cluster.read_log().await;
    assert_eq!(size, 701);
    assert_eq!(root, root_of(&entries));
    log_c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_replays_a_staged_round_whose_uploads_never_landed() {
    let cluster = Cluster::new();
    let (store, _) = cluster
        .node(Arc::new(MemoryStore::new(metadata())))
        .await
        .unwrap();
    let log = open_log(&store).unwrap();
    log.append((0..10).map(entry).collect()).await.unwrap();
    let receipt = log.append((10..300).map(entry).collect()).await.unwrap();
    log.shutdown().await;
    // As if the sequencer died right after the swap: the round's objects and the public
    // checkpoint are gone; the lock and the staging bundle name them.
    let note = receipt.checkpoint.note().to_vec();
    let staged = cluster
        .bucket()
        .get(&staging_path(300, &note))
        .await
        .unwrap()
        .unwrap();
    let staged = Staged::decode(&staged).unwrap();
    assert!(
        staged
            .objects
            .iter()
            .any(|(p, _)| p == "tile/entries/001.p/44")
    );
    for (path, _) in &staged.objects {
        cluster.store.delete(&path.as_str().into()).await.unwrap();
    }
    cluster.store.delete(&"checkpoint".into()).await.unwrap();

    let (store, reconciled) = cluster
        .node(Arc::new(MemoryStore::new(metadata())))
        .await
        .unwrap();
    assert_eq!(reconciled, Reconciled::Rebuilt { from: 0, to: 300 });
    for (path, bytes) in &staged.objects {
        assert_eq!(
            cluster.bucket().get(path).await.unwrap().unwrap(),
            &bytes[..],
            "{path}"
        );
    }
    let (entries, size, root) = cluster.read_log().await;
    assert_eq!(size, 300);
    assert_eq!(root, root_of(&entries));
    let log = open_log(&store).unwrap();
    assert_eq!(log.latest().note(), &note[..]);
    log.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_that_disagrees_with_the_lock_is_refused() {
    let cluster = Cluster::new();
    let (store, _) = cluster
        .node(Arc::new(MemoryStore::new(metadata())))
        .await
        .unwrap();
    let log = open_log(&store).unwrap();
    log.append(vec![entry(1), entry(2)]).await.unwrap();
    log.shutdown().await;

    // Another history signed by the same key at the same size: a fork.
    let other = Arc::new(MemoryStore::new(metadata()));
    let other_log =
        Log::open(other.clone(), signer(), ORIGIN.into(), LogConfig::default()).unwrap();
    other_log.append(vec![entry(7), entry(8)]).await.unwrap();
    other_log.append(vec![entry(9)]).await.unwrap();
    other_log.shutdown().await;
    drop(other_log);
    let err = cluster.node(other.clone()).await.err().unwrap();
    assert!(
        matches!(&err, ClusterError::Refused(m) if m.contains("ahead")),
        "{err}"
    );

    let same_size = Arc::new(MemoryStore::new(metadata()));
    let forked = Log::open(
        same_size.clone(),
        signer(),
        ORIGIN.into(),
        LogConfig::default(),
    )
    .unwrap();
    forked.append(vec![entry(7), entry(8)]).await.unwrap();
    forked.shutdown().await;
    drop(forked);
    let err = cluster.node(same_size).await.err().unwrap();
    assert!(
        matches!(&err, ClusterError::Refused(m) if m.contains("different roots")),
        "{err}"
    );

    // An empty lock over a bucket that holds a log: the wrong lock.
    let wrong_lock = ObjectStoreLock::new(cluster.store.clone(), "lock/other");
    let err = open_node(
        Arc::new(MemoryStore::new(metadata())),
        cluster.bucket(),
        Arc::new(wrong_lock),
    )
    .await
    .err()
    .unwrap();
    assert!(
        matches!(&err, ClusterError::Refused(m) if m.contains("wrong lock")),
        "{err}"
    );
}

/// How the next swap of a [`Flaky`] lock fails.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// The swap lands, then the answer is lost.
    AfterSwap,
    /// The request fails before reaching the lock.
    BeforeSwap,
}

/// A lock whose next swap can fail with an unknown outcome.
struct Flaky {
    inner: ObjectStoreLock,
    fault: Mutex<Fault>,
}

impl LockBackend for Flaky {
    fn load(&self) -> BoxFuture<'_, Result<Option<Locked>, ClusterError>> {
        self.inner.load()
    }
    fn swap<'a>(
        &'a self,
        expected: Option<&'a Version>,
        new: &'a [u8],
    ) -> BoxFuture<'a, Result<Version, SwapError>> {
        Box::pin(async move {
            let fault = std::mem::replace(&mut *self.fault.lock().unwrap(), Fault::None);
            let lost = || SwapError::Error(ClusterError::Lock("injected: connection reset".into()));
            match fault {
                Fault::None => self.inner.swap(expected, new).await,
                Fault::AfterSwap => {
                    self.inner.swap(expected, new).await?;
                    Err(lost())
                }
                Fault::BeforeSwap => Err(lost()),
            }
        })
    }
    fn probe(&self) -> Box<dyn LockBackend> {
        self.inner.probe()
    }
    fn describe(&self) -> String {
        "flaky lock".into()
    }
}

/// A swap whose answer is lost is settled by loading the lock: landed means the round
/// succeeded; not landed means the round failed and the next one goes on from the
/// unchanged cache, without fencing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_with_an_unknown_outcome_is_settled_by_loading_the_lock() {
    let cluster = Cluster::new();
    let flaky = Arc::new(Flaky {
        inner: ObjectStoreLock::new(cluster.store.clone(), "lock/checkpoint"),
        fault: Mutex::new(Fault::None),
    });
    let (store, _) = open_node(
        Arc::new(MemoryStore::new(metadata())),
        cluster.bucket(),
        flaky.clone(),
    )
    .await
    .unwrap();
    let log = open_log(&store).unwrap();
    log.append(vec![entry(0)]).await.unwrap();

    *flaky.fault.lock().unwrap() = Fault::AfterSwap;
    let landed = log.append(vec![entry(1)]).await.unwrap();
    assert_eq!(landed.checkpoint.size().0, 2);

    *flaky.fault.lock().unwrap() = Fault::BeforeSwap;
    let err = log.append(vec![entry(2)]).await.unwrap_err();
    assert!(
        matches!(&err, LogError::Unavailable(m) if m.contains("did not land")),
        "{err}"
    );
    assert!(store.fenced().is_none());
    let retried = log.append(vec![entry(2), entry(3)]).await.unwrap();
    assert_eq!(retried.checkpoint.size().0, 4);
    let (entries, size, root) = cluster.read_log().await;
    assert_eq!(size, 4);
    assert_eq!(entries, (0..4).map(entry).collect::<Vec<_>>());
    assert_eq!(root, retried.checkpoint.root());
    log.shutdown().await;
}

/// A round that does not start at the lock's size is refused before anything is
/// staged or swapped, without fencing the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_not_built_on_the_lock_is_refused_unwritten() {
    let cluster = Cluster::new();
    let (store, _) = cluster
        .node(Arc::new(MemoryStore::new(metadata())))
        .await
        .unwrap();
    let log = open_log(&store).unwrap();
    let receipt = log.append(vec![entry(0), entry(1)]).await.unwrap();
    let before = receipt.checkpoint.note().to_vec();
    // Signed over another state: leaves from 5, size 6 (the lock is at size 2).
    let round = merklog_log::RoundWrite {
        dedup: vec![(hash_leaf(&entry(5)), 5)],
        checkpoint: Some((6, b"not a real checkpoint".to_vec())),
        ..Default::default()
    };
    let err = store.commit(&round).unwrap_err();
    assert!(err.0.contains("does not extend"), "{err}");
    assert!(store.fenced().is_none());
    let (locked, _) = cluster.lock().load().await.unwrap().unwrap();
    assert_eq!(locked, before);
    assert!(
        cluster
            .bucket()
            .get(&staging_path(6, b"not a real checkpoint"))
            .await
            .unwrap()
            .is_none()
    );
    // The log goes on.
    log.append(vec![entry(2)]).await.unwrap();
    log.shutdown().await;
}

/// A node without a term (a standby): it signs nothing, its cache follows the lock
/// from the bucket, and `take_over` reconciles it; its log then publishes the
/// followed checkpoint and keeps the followed entries' indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_signs_nothing_and_follows_the_lock() {
    let cluster = Cluster::new();
    let (leader_store, _) = cluster
        .node(Arc::new(MemoryStore::new(metadata())))
        .await
        .unwrap();
    let leader = open_log(&leader_store).unwrap();
    let first: Vec<Bytes> = (0..300).map(entry).collect();
    leader.append(first.clone()).await.unwrap();

    let cache = Arc::new(MemoryStore::new(metadata()));
    let (standby, reconciled) = ClusterStore::open(
        cache.clone(),
        cluster.bucket(),
        cluster.lock(),
        ClusterOptions {
            origin: ORIGIN.into(),
            verifier: Arc::new(signer().verifier()),
            witnessed: false,
            leadership: Some(Leadership::new()),
        },
        tokio::runtime::Handle::current(),
    )
    .await
    .unwrap();
    assert_eq!(reconciled, Reconciled::Rebuilt { from: 0, to: 300 });
    let standby = Arc::new(standby);
    let log = open_log(&standby).unwrap();
    // Without a term its rounds are refused, unwritten and unpublished.
    let refused = log.append(vec![entry(9999)]).await.unwrap_err();
    assert!(
        matches!(&refused, LogError::Unavailable(m) if m.contains("not the leader")),
        "{refused}"
    );
    assert_eq!(cluster.read_log().await.1, 300);

    let second: Vec<Bytes> = (300..500).map(entry).collect();
    leader.append(second).await.unwrap();
    assert_eq!(standby.follow_leader().await.unwrap(), Some(500));
    assert_eq!(standby.follow_leader().await.unwrap(), None);
    let followed = tokio::task::block_in_place(|| log.follow()).unwrap();
    assert_eq!(followed.map(|s| s.0), Some(500));
    assert_eq!(log.latest().note(), leader.latest().note());
    assert_eq!(
        standby.take_over().await.unwrap(),
        Reconciled::InSync { size: 500 }
    );
    // Dedup knows the followed entries.
    let leaves = cache.lookup_leaves(&[hash_leaf(&entry(450))]).unwrap();
    assert_eq!(leaves, vec![Some(450)]);
}

/// With a witness policy a standby follows the bucket's public (cosigned) checkpoint,
/// not the lock, and records it as published; taking over brings the cache on to the
/// lock. A node whose term ended writes no public checkpoint any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witnessed_standby_follows_the_public_checkpoint_not_the_lock() {
    let cluster = Cluster::new();
    let witnessed = |leadership: Option<Arc<Leadership>>| ClusterOptions {
        origin: ORIGIN.into(),
        verifier: Arc::new(signer().verifier()),
        witnessed: true,
        leadership,
    };
    let (leader_store, _) = ClusterStore::open(
        Arc::new(MemoryStore::new(metadata())),
        cluster.bucket(),
        cluster.lock(),
        witnessed(None),
        tokio::runtime::Handle::current(),
    )
    .await
    .unwrap();
    let leader_store = Arc::new(leader_store);
    let leader = open_log(&leader_store).unwrap();
    let at_300 = leader
        .append((0..300).map(entry).collect())
        .await
        .unwrap()
        .checkpoint;
    // Witnessed: no public checkpoint before the cosigned one is stored.
    assert_eq!(cluster.bucket().checkpoint().await.unwrap(), None);

    let cache = Arc::new(MemoryStore::new(metadata()));
    let (standby, reconciled) = ClusterStore::open(
        cache.clone(),
        cluster.bucket(),
        cluster.lock(),
        witnessed(Some(Leadership::new())),
        tokio::runtime::Handle::current(),
    )
    .await
    .unwrap();
    assert_eq!(reconciled, Reconciled::Rebuilt { from: 0, to: 300 });
    assert_eq!(standby.follow_leader().await.unwrap(), None);
    assert_eq!(cache.published_checkpoint().unwrap(), None);

    // The witnesses cosigned 300 (stored by the leader), and the lock moved to 500.
    tokio::task::block_in_place(|| leader_store.store_cosigned_checkpoint(300, at_300.note()))
        .unwrap();
    let at_500 = leader
        .append((300..500).map(entry).collect())
        .await
        .unwrap()
        .checkpoint;
    assert_eq!(standby.follow_leader().await.unwrap(), Some(300));
    assert_eq!(
        cache.published_checkpoint().unwrap().as_deref(),
        Some(&at_300.note()[..])
    );
    assert_eq!(standby.follow_leader().await.unwrap(), None);
    let cached = cache.latest_checkpoint().unwrap().unwrap();
    assert!(merklog_log::same_checkpoint_body(&cached, at_300.note()));

    // Taking over: the cache goes on to the lock; the published record stays 300.
    assert_eq!(
        standby.take_over().await.unwrap(),
        Reconciled::Rebuilt { from: 300, to: 500 }
    );
    assert_eq!(
        cache.published_checkpoint().unwrap().as_deref(),
        Some(&at_300.note()[..])
    );

    // A fenced node stores its cosigned checkpoints locally, never in the bucket.
    leader_store.fence_for_good("the term ended".into());
    tokio::task::block_in_place(|| leader_store.store_cosigned_checkpoint(500, at_500.note()))
        .unwrap();
    let public = cluster.bucket().checkpoint().await.unwrap().unwrap();
    assert_eq!(&public[..], &at_300.note()[..]);
    leader.shutdown().await;
}

/// An object store that, once armed, holds the next write of the public `checkpoint`
/// until released: a leader paused between its swap and its publication.
#[derive(Debug)]
struct Pausing {
    inner: Arc<dyn ObjectStore>,
    armed: std::sync::atomic::AtomicBool,
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl std::fmt::Display for Pausing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pausing {}", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Pausing {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if location.as_ref() == "checkpoint"
            && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            self.reached.notify_one();
            self.release.notified().await;
        }
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.inner.delete(location).await
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

/// A leader that swapped its round into the lock and was paused before publishing it
/// (a stopped process, a slow network) resumes after the next leader published a
/// larger checkpoint: its own, older one must not replace it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_before_publishing_does_not_put_an_older_checkpoint_back() {
    let cluster = Cluster::new();
    let pausing = Arc::new(Pausing {
        inner: cluster.store.clone(),
        armed: false.into(),
        reached: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
    });
    let (store_a, _) = open_node(
        Arc::new(MemoryStore::new(metadata())),
        Bucket::from_store(pausing.clone(), "memory://test"),
        cluster.lock(),
    )
    .await
    .unwrap();
    let log_a = Arc::new(open_log(&store_a).unwrap());
    log_a.append(vec![entry(0)]).await.unwrap();

    // A's second round: swapped into the lock, its public checkpoint held back.
    pausing
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let paused = tokio::spawn({
        let log_a = log_a.clone();
        async move { log_a.append(vec![entry(1)]).await }
    });
    pausing.reached.notified().await;

    // B takes over from the lock (publishing A's round) and signs a larger tree.
    let (store_b, reconciled) = cluster
        .node(Arc::new(MemoryStore::new(metadata())))
        .await
        .unwrap();
    assert_eq!(reconciled, Reconciled::Rebuilt { from: 0, to: 2 });
    let log_b = open_log(&store_b).unwrap();
    let b = log_b.append(vec![entry(2), entry(3)]).await.unwrap();
    assert_eq!(b.checkpoint.size().0, 4);
    assert_eq!(
        cluster.bucket().checkpoint().await.unwrap().unwrap(),
        b.checkpoint.note()
    );

    // A resumes: its round was durable at the swap, so it is acknowledged, but the
    // bucket keeps B's checkpoint.
    pausing.release.notify_one();
    let a = paused.await.unwrap().unwrap();
    assert_eq!(a.checkpoint.size().0, 2);
    assert_eq!(
        cluster.bucket().checkpoint().await.unwrap().unwrap(),
        b.checkpoint.note()
    );
    let (entries, size, root) = cluster.read_log().await;
    assert_eq!(size, 4);
    assert_eq!(entries, (0..4).map(entry).collect::<Vec<_>>());
    assert_eq!(root, b.checkpoint.root());
    log_b.shutdown().await;
    log_a.shutdown().await;
}
