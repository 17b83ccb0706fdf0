//! The fenced commit: [`ClusterStore`], a `LogStore` that wraps the node's local
//! store (the cache: dedup index, tiles, checkpoints, read by every proof) and makes
//! every round durable in the bucket under a compare-and-swap on the checkpoint.
//!
//! Order of one round's [`commit`](LogStore::commit), and what recovery does if the
//! process dies right after each step:
//!
//! | step | durable after it | if the process dies right after |
//! |------|------------------|---------------------------------|
//! | 1. compute the round's objects (tiles and bundles at their new widths) from the local cache and the round | nothing new | nothing to do: nothing was acknowledged |
//! | 2. put the staging bundle `staging/<size>.<hash>` create-only | the round's objects, unreferenced | an orphan staging object; the lock never named it, so nobody uses it (a lifecycle rule may expire `staging/`) |
//! | 3. swap the signed checkpoint into the lock, from the version last swapped | the round: the lock names it, the staging bundle completes it | the next sequencer (or this one, restarted) loads the lock, replays its staging bundle into the bucket and rebuilds its cache from the bucket |
//! | 4. commit the round to the local cache (one synced batch) | the cache holds it too | start-up finds cache and lock at the same size and root; the staging replay re-uploads what step 5 missed |
//! | 5. (at the same time as step 4) put tiles and bundles create-only, then the public `checkpoint` (a conditional update that never replaces a larger one) | the bucket alone is a complete tlog-tiles log at the new size | the staging replay re-uploads what is missing; a cache behind the lock (step 4 unfinished) is rebuilt from the bucket |
//! | 6. return, once steps 4 and 5 both finished: the log answers the round's callers | | |
//!
//! A swap that loses (another sequencer moved the lock) fences this store for good:
//! the round is not in the local cache (step 4 comes after the swap) and nothing of it
//! was published, [`LogStore::fenced`] says why, and the log refuses to sign from then
//! on. Before step 2 the round must start at the lock's size (its first new leaf) and
//! end at its checkpoint's size: a round prepared on any other state is refused,
//! unwritten, and the log reloads. A swap whose outcome is unknown (a network error) is settled by loading the
//! lock: our checkpoint there is success, the previous one is a failed round (retried
//! from the unchanged cache), anything else is a lost swap. A failure in step 4 after
//! a successful swap also fences the store (the cache is behind the lock; a restart
//! rebuilds it), and a failure in step 5 is retried before the next round's step 2.
//!
//! With a witness policy the public `checkpoint` object is written when the log
//! stores the cosigned checkpoint, not in step 5, so the bucket never shows a
//! checkpoint before the witnesses' quorum.
//!
//! With leader election ([`ClusterOptions::leadership`]) a signed round is committed
//! only during this node's term, and its public checkpoint uploaded only if the term
//! still lasts after the swap (a term that ends during the upload cannot put an older
//! checkpoint back: the write is conditional, see [`Bucket::publish_checkpoint`]);
//! outside a term the store is a standby's cache, which
//! [`ClusterStore::follow_leader`] keeps at the lock's checkpoint (with a witness
//! policy: at the bucket's public, cosigned one) and
//! [`ClusterStore::take_over`] reconciles again when the node wins. A standby's
//! start-up replay uploads no public checkpoint: the lock may have moved on by then.
//!
//! Start-up ([`ClusterStore::open`]): the lock backend's [`self_test`], then the lock
//! is compared with the local cache. An empty lock with an empty cache starts a new
//! log (the first swap creates the lock); the lock at the cache's size must have the
//! cache's root (a different root refuses to sign); a lock ahead of the cache replays
//! the lock's staging bundle and rebuilds the cache from the bucket, following the
//! tiles; a cache ahead of the lock, or a bucket with a checkpoint but an empty lock,
//! is refused (the wrong lock or an old cache: signing could fork the log).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures::StreamExt;
use merklog_log::{KeyRecord, LogMetadata, LogStore, RoundWrite, StorageError};
use merklog_merkle::bundle::{bundle_prefix_len, split_bundle};
use merklog_merkle::tile::{TILE_HEIGHT, TILE_WIDTH, TileId, entry_bundle_path, tile_width_at};
use merklog_merkle::{HASH_SIZE, Hash, TreeSize, hash_leaf};
use merklog_note::{Checkpoint, Verifier, open_checkpoint};

use crate::ClusterError;
use crate::bucket::{Bucket, checkpoint_size};
use crate::election::Leadership;
use crate::lock::{LockBackend, SwapError, Version, self_test};
use crate::staging::{Staged, staging_path};

/// Uploads in flight at once in step 5 and during replays.
const UPLOAD_CONCURRENCY: usize = 32;
/// Entry bundles per local write while rebuilding the cache.
const REBUILD_BUNDLES_PER_WRITE: u64 = 64;

/// Settings of a [`ClusterStore`].
#[derive(Clone)]
pub struct ClusterOptions {
    /// The log's origin line.
    pub origin: String,
    /// The log's public key: checkpoints in the lock must verify with it.
    pub verifier: Arc<dyn Verifier>,
    /// The log publishes only witnessed checkpoints: the public `checkpoint` object is
    /// written with the cosigned checkpoint, not after the swap.
    pub witnessed: bool,
    /// With leader election: this node's term. Signed rounds are committed only while
    /// it lasts (until then the store is a standby's cache), and the public checkpoint
    /// is uploaded only while it lasts.
    pub leadership: Option<Arc<Leadership>>,
}

/// A `LogStore` that commits every round through the bucket and the lock.
pub struct ClusterStore {
    local: Arc<dyn LogStore>,
    bucket: Bucket,
    lock: Arc<dyn LockBackend>,
    runtime: tokio::runtime::Handle,
    options: ClusterOptions,
    state: Mutex<FenceState>,
}

#[derive(Default)]
struct FenceState {
    /// The lock's version after our last swap (or as loaded at start); `None`: the lock
    /// is empty.
    version: Option<Version>,
    /// The checkpoint that version holds.
    last: Option<Vec<u8>>,
    /// Why this store never commits again.
    fenced: Option<String>,
    /// Staging bundles whose uploads (step 5) did not all land.
    pending: Vec<String>,
}

/// What [`ClusterStore::open`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// Lock and bucket are empty: a new log.
    Empty,
    /// The cache was at the lock's checkpoint.
    InSync {
        /// The lock's tree size.
        size: u64,
    },
    /// The cache was behind and was rebuilt from the bucket.
    Rebuilt {
        /// The cache's size before.
        from: u64,
        /// The lock's size, now the cache's.
        to: u64,
    },
}

impl ClusterStore {
    /// Tests the lock backend, reconciles the local cache with the lock and the bucket
    /// (see the module documentation), and returns the store to open the log on.
    /// `runtime` runs the bucket and lock calls of later commits; call `open` on it.
    /// Blocks on the local cache while rebuilding.
    pub async fn open(
        local: Arc<dyn LogStore>,
        bucket: Bucket,
        lock: Arc<dyn LockBackend>,
        options: ClusterOptions,
        runtime: tokio::runtime::Handle,
    ) -> Result<(Self, Reconciled), ClusterError> {
        self_test(&*lock).await?;
        // A node that may become a standby must not publish: the lock's checkpoint it
        // loaded may be older than the public one by the time its upload lands.
        let publish = options.leadership.is_none();
        let (state, reconciled) = reconcile(&*local, &bucket, &*lock, &options, publish).await?;
        Ok((
            Self {
                local,
                bucket,
                lock,
                runtime,
                options,
                state: Mutex::new(state),
            },
            reconciled,
        ))
    }

    /// A standby becoming the leader: reconciles the cache with the lock and the bucket
    /// again (as at start: the lock's round finished from its staging object, a cache
    /// behind rebuilt from the bucket) and takes the lock's version as the one the next
    /// swap expects. Call it after winning the election and before signing.
    pub async fn take_over(&self) -> Result<Reconciled, ClusterError> {
        let (fresh, reconciled) =
            reconcile(&*self.local, &self.bucket, &*self.lock, &self.options, true).await?;
        let mut state = self.state();
        state.version = fresh.version;
        state.last = fresh.last;
        state.pending.clear();
        Ok(reconciled)
    }

    /// A standby keeping its cache warm: if the lock holds a larger checkpoint than the
    /// cache, the cache is rebuilt up to it from the bucket. With a witness policy the
    /// standby follows the bucket's public (cosigned) checkpoint instead, and records
    /// it as published: a standby serves only what the witnesses cosigned. Returns the
    /// new size, or `None` if the cache was current. A round whose uploads are not all
    /// in the bucket yet fails here and is followed at the next call.
    pub async fn follow_leader(&self) -> Result<Option<u64>, ClusterError> {
        if self.options.witnessed {
            return follow_public(&*self.local, &self.bucket, &self.options, None).await;
        }
        let Some((note, _)) = self.lock.load().await? else {
            return Ok(None);
        };
        follow(&*self.local, &self.bucket, &note, &self.options).await
    }

    /// Ends this store's signing for good: a node whose term ended.
    pub fn fence_for_good(&self, reason: String) {
        let _ = self.fence(reason);
    }

    /// The bucket this store writes.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    fn state(&self) -> MutexGuard<'_, FenceState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs bucket and lock calls from the log's (synchronous) storage calls: on the
    /// writer thread directly, inside a multi-threaded runtime through
    /// `block_in_place`.
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        match tokio::runtime::Handle::try_current() {
            Ok(current)
                if current.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(|| self.runtime.block_on(future))
            }
            _ => self.runtime.block_on(future),
        }
    }

    fn fence(&self, reason: String) -> StorageError {
        tracing::error!(%reason, "cluster store fenced off");
        let mut state = self.state();
        if state.fenced.is_none() {
            state.fenced = Some(reason.clone());
        }
        StorageError::new(reason)
    }

    /// Step 1: the objects the round creates, at their widths after it.
    fn objects(
        &self,
        round: &RoundWrite,
        size: u64,
    ) -> Result<Vec<(String, Vec<u8>)>, ClusterError> {
        let tile_ids: Vec<TileId> = round.tiles.iter().map(|(id, _)| *id).collect();
        let stored = self.local.read_tiles(&tile_ids)?;
        let mut objects = Vec::with_capacity(round.tiles.len() + round.bundles.len());
        for ((id, write), stored) in round.tiles.iter().zip(stored) {
            let value = write.apply(stored.as_deref()).ok_or_else(|| {
                ClusterError::Cache(format!(
                    "tile {} does not end where the round appends",
                    id.path()
                ))
            })?;
            let bytes = value
                .get(..usize::from(id.width) * HASH_SIZE)
                .ok_or_else(|| ClusterError::Cache(format!("tile {} is short", id.path())))?;
            objects.push((id.path(), bytes.to_vec()));
        }
        let indexes: Vec<u64> = round.bundles.iter().map(|(i, _)| *i).collect();
        let stored = self.local.read_bundles(&indexes)?;
        for ((index, write), stored) in round.bundles.iter().zip(stored) {
            let value = write.apply(stored.as_deref()).ok_or_else(|| {
                ClusterError::Cache(format!(
                    "bundle {index} does not end where the round appends"
                ))
            })?;
            let width = bundle_width(*index, size);
            let len = bundle_prefix_len(&value, usize::from(width))
                .map_err(|e| ClusterError::Cache(format!("bundle {index}: {e}")))?;
            let bytes = value.get(..len).unwrap_or(&value);
            objects.push((entry_bundle_path(*index, width), bytes.to_vec()));
        }
        Ok(objects)
    }

    /// Whether this node may sign: always without election, during its term with it.
    fn leading(&self) -> bool {
        self.options
            .leadership
            .as_ref()
            .is_none_or(|leadership| leadership.is_leader())
    }

    fn try_commit(&self, round: &RoundWrite) -> Result<(), StorageError> {
        if !self.leading() {
            let empty_start = self.state().last.is_none()
                && round.dedup.is_empty()
                && round
                    .checkpoint
                    .as_ref()
                    .is_some_and(|(size, _)| *size == 0);
            if empty_start {
                // A standby opening on a new log: its size-0 checkpoint stays in its
                // cache (the leader's is the same bytes; Ed25519 is deterministic).
                return self.local.commit(round);
            }
            return Err(StorageError::new(
                "this node is not the leader: it does not sign".to_owned(),
            ));
        }
        let witnessed = self.options.witnessed;
        let (version, last, pending) = {
            let state = self.state();
            if let Some(reason) = &state.fenced {
                return Err(StorageError::new(reason.clone()));
            }
            (
                state.version.clone(),
                state.last.clone(),
                state.pending.clone(),
            )
        };
        for path in pending {
            self.block_on(replay_staging(
                &self.bucket,
                &path,
                !witnessed && self.leading(),
            ))
            .map_err(|e| StorageError::new(format!("finishing an earlier round's uploads: {e}")))?;
            self.state().pending.retain(|p| *p != path);
        }
        let Some((size, note)) = &round.checkpoint else {
            // Nothing signed: nothing for the bucket or the lock.
            return self.local.commit(round);
        };
        // The round must extend exactly what the lock holds: a sequencer whose state
        // is not the lock's (its cache moved underneath it) would otherwise sign a
        // second tree at some size. Refused before anything is written; the log
        // reloads from the cache and prepares again.
        let base = match &last {
            Some(note) => checkpoint_size(note).map_err(|e| StorageError::new(e.to_string()))?,
            None => 0,
        };
        let first_new = round.dedup.first().map_or(*size, |(_, index)| *index);
        if first_new != base || base.checked_add(round.dedup.len() as u64) != Some(*size) {
            return Err(StorageError::new(format!(
                "the round (leaves {first_new}.., size {size}) does not extend the fenced \
                 checkpoint of size {base}; reloading"
            )));
        }
        let objects = self
            .objects(round, *size)
            .map_err(|e| StorageError::new(e.to_string()))?;
        let staged = Staged {
            checkpoint: note.clone(),
            objects,
        };
        let path = staging_path(*size, note);
        let started = std::time::Instant::now();
        // Step 2.
        let encoded = staged
            .encode()
            .map_err(|e| StorageError::new(e.to_string()))?;
        self.block_on(self.bucket.put_create(&path, Bytes::from(encoded)))
            .map_err(|e| StorageError::new(format!("staging the round: {e}")))?;
        let staged_at = started.elapsed();
        // Step 3.
        let swapped = self.block_on(self.lock.swap(version.as_ref(), note));
        let new_version = match swapped {
            Ok(v) => v,
            Err(SwapError::Lost(why)) => {
                // Identical bytes (a deterministic signature over the same tree) are no
                // fork: adopt the lock's version.
                match self.block_on(self.lock.load()) {
                    Ok(Some((value, v))) if value == *note => v,
                    _ => {
                        return Err(self.fence(format!(
                            "lost the swap of the checkpoint of size {size} in {}: {why}",
                            self.lock.describe()
                        )));
                    }
                }
            }
            Err(SwapError::Error(e)) => match self.block_on(self.lock.load()) {
                Ok(Some((value, v))) if value == *note => v,
                Ok(Some((value, _))) if Some(&value) == last.as_ref() => {
                    return Err(StorageError::new(format!(
                        "the checkpoint swap failed and did not land: {e}"
                    )));
                }
                Ok(None) if last.is_none() => {
                    return Err(StorageError::new(format!(
                        "the checkpoint swap failed and did not land: {e}"
                    )));
                }
                Ok(_) => {
                    return Err(self.fence(format!(
                        "the swap of size {size} failed ({e}) and {} now holds another checkpoint",
                        self.lock.describe()
                    )));
                }
                Err(load) => {
                    // Unknown outcome: the cache cannot follow a lock it cannot read.
                    return Err(self.fence(format!(
                        "the swap of size {size} failed ({e}) and the lock cannot be read ({load}); \
                         restart to reconcile"
                    )));
                }
            },
        };
        {
            let mut state = self.state();
            state.version = Some(new_version);
            state.last = Some(note.clone());
        }
        let swapped_at = started.elapsed();
        // Steps 4 and 5 at once: after the swap they are independent (each recovers
        // from the lock and the staging object), and the round's callers wait for both.
        // A term that ended during the round publishes no checkpoint: the next leader's
        // would be overwritten with this older one.
        let publish = !witnessed && self.leading();
        let objects = staged.objects.len();
        let bucket = self.bucket.clone();
        let uploading = self
            .runtime
            .spawn(async move { upload(bucket, staged, publish).await });
        let cached = self.local.commit(round);
        let cached_at = started.elapsed();
        let uploaded = match self.block_on(uploading) {
            Ok(uploaded) => uploaded,
            Err(e) => Err(ClusterError::ObjectStore(format!(
                "the upload task failed: {e}"
            ))),
        };
        if let Err(e) = cached {
            return Err(self.fence(format!(
                "the local cache failed after the swap of size {size} ({e}); restart to rebuild it \
                 from the bucket"
            )));
        }
        if let Err(e) = uploaded {
            self.state().pending.push(path);
            return Err(StorageError::new(format!(
                "the round is durable but its uploads failed ({e}); retried before the next round"
            )));
        }
        tracing::debug!(
            size,
            objects,
            staged_ms = staged_at.as_secs_f64() * 1e3,
            swapped_ms = swapped_at.as_secs_f64() * 1e3,
            cached_ms = cached_at.as_secs_f64() * 1e3,
            uploaded_ms = started.elapsed().as_secs_f64() * 1e3,
            "cluster round committed"
        );
        Ok(())
    }
}

/// Compares the lock with the local cache and brings the cache to the lock's
/// checkpoint (see the module documentation); returns the fence state to sign from.
async fn reconcile(
    local: &dyn LogStore,
    bucket: &Bucket,
    lock: &dyn LockBackend,
    options: &ClusterOptions,
    publish: bool,
) -> Result<(FenceState, Reconciled), ClusterError> {
    let mut state = FenceState::default();
    let cache = cached(local, options)?;
    let reconciled = match lock.load().await? {
        None => {
            if let Some(public) = bucket.checkpoint().await? {
                return Err(ClusterError::Refused(format!(
                    "the bucket {} holds a checkpoint ({} bytes) but {} is empty: \
                     the wrong lock, or a lock that lost its value",
                    bucket.url(),
                    public.len(),
                    lock.describe()
                )));
            }
            if let Some(cp) = cache.as_ref().filter(|cp| cp.size > 0) {
                return Err(ClusterError::Refused(format!(
                    "the local cache holds a log of size {} but the lock and the bucket are \
                     empty: start cluster mode from an empty data directory",
                    cp.size
                )));
            }
            Reconciled::Empty
        }
        Some((note, version)) => {
            let locked = open_note(&note, options).map_err(|e| {
                ClusterError::Refused(format!("the checkpoint in {}: {e}", lock.describe()))
            })?;
            replay(bucket, &note, !options.witnessed && publish).await?;
            let cache = if options.witnessed
                && follow_public(local, bucket, options, Some(locked.size))
                    .await?
                    .is_some()
            {
                cached(local, options)?
            } else {
                cache
            };
            let from = cache.as_ref().map_or(0, |cp| cp.size);
            let reconciled = match &cache {
                Some(cp) if cp.size == locked.size => {
                    if cp.root != locked.root {
                        return Err(ClusterError::Refused(format!(
                            "the local cache and {} hold different roots for size {}",
                            lock.describe(),
                            cp.size
                        )));
                    }
                    Reconciled::InSync { size: cp.size }
                }
                Some(cp) if cp.size > locked.size => {
                    return Err(ClusterError::Refused(format!(
                        "the local cache (size {}) is ahead of {} (size {}): an old lock or \
                         another log's cache",
                        cp.size,
                        lock.describe(),
                        locked.size
                    )));
                }
                _ => {
                    rebuild(local, bucket, from, locked.size, &note).await?;
                    Reconciled::Rebuilt {
                        from,
                        to: locked.size,
                    }
                }
            };
            state.version = Some(version);
            state.last = Some(note);
            reconciled
        }
    };
    Ok((state, reconciled))
}

/// Brings the cache up to the signed checkpoint `note` (from the lock, or the bucket's
/// public checkpoint), if it is ahead: verified with the log's key, then rebuilt from
/// the bucket. Returns the new size, `None` if the cache was already there. A cache
/// with another root at that size, or ahead of it, is refused.
pub async fn follow(
    local: &dyn LogStore,
    bucket: &Bucket,
    note: &[u8],
    options: &ClusterOptions,
) -> Result<Option<u64>, ClusterError> {
    let target = open_note(note, options)?;
    let cache = cached(local, options)?;
    let from = cache.as_ref().map_or(0, |cp| cp.size);
    match &cache {
        Some(cp) if cp.size > target.size => Ok(None),
        Some(cp) if cp.size == target.size => {
            if cp.root != target.root {
                return Err(ClusterError::Refused(format!(
                    "the local cache and the followed checkpoint hold different roots for size {}",
                    cp.size
                )));
            }
            Ok(None)
        }
        _ => {
            rebuild(local, bucket, from, target.size, note).await?;
            Ok(Some(target.size))
        }
    }
}

/// With a witness policy: brings the cache up to the bucket's public checkpoint (the
/// latest cosigned one), if it is ahead and not beyond `limit`, and records it in the
/// cache as published, so the log publishes it and never a checkpoint the witnesses
/// did not cosign. Returns the new size, `None` if nothing changed. A public
/// checkpoint behind the cache is not recorded: the cache holds checkpoints only at
/// the sizes it was built to, and the next public one passes it.
async fn follow_public(
    local: &dyn LogStore,
    bucket: &Bucket,
    options: &ClusterOptions,
    limit: Option<u64>,
) -> Result<Option<u64>, ClusterError> {
    let Some(note) = bucket.checkpoint().await? else {
        return Ok(None);
    };
    let public = open_note(&note, options)?;
    if limit.is_some_and(|limit| public.size > limit) {
        return Ok(None);
    }
    let followed = follow(local, bucket, &note, options).await?;
    if followed.is_none() {
        // The cache was at or past it: recorded only at the cache's own size (where
        // `follow` checked the root), once.
        let at_cache = cached(local, options)?.is_some_and(|cp| cp.size == public.size);
        if !at_cache || local.published_checkpoint()?.as_deref() == Some(&note[..]) {
            return Ok(None);
        }
    }
    // Durable once this returns: the cosigned note at its size and the "published"
    // record; a restart publishes it again.
    local.store_cosigned_checkpoint(public.size, &note)?;
    Ok(Some(public.size))
}

/// The cache's latest checkpoint, verified with the log's key.
fn cached(
    local: &dyn LogStore,
    options: &ClusterOptions,
) -> Result<Option<Checkpoint>, ClusterError> {
    local
        .latest_checkpoint()?
        .map(|note| open_note(&note, options))
        .transpose()
}

fn open_note(note: &[u8], options: &ClusterOptions) -> Result<Checkpoint, ClusterError> {
    open_checkpoint(note, &*options.verifier, Some(&options.origin))
        .map(|(cp, _)| cp)
        .map_err(|e| ClusterError::Refused(format!("a checkpoint does not verify: {e}")))
}

/// The width of entry bundle `index` in a tree of `size` leaves.
fn bundle_width(index: u64, size: u64) -> u16 {
    size.saturating_sub(index.saturating_mul(u64::from(TILE_WIDTH)))
        .min(u64::from(TILE_WIDTH)) as u16
}

/// Step 5: every object create-only, then (unless witnessed) the public checkpoint.
async fn upload(bucket: Bucket, staged: Staged, checkpoint: bool) -> Result<(), ClusterError> {
    let Staged {
        checkpoint: note,
        objects,
    } = staged;
    let mut puts = futures::stream::iter(objects)
        .map(|(path, bytes)| {
            let bucket = bucket.clone();
            async move { bucket.put_create(&path, Bytes::from(bytes)).await }
        })
        .buffer_unordered(UPLOAD_CONCURRENCY);
    while let Some(result) = puts.next().await {
        result?;
    }
    if checkpoint && !bucket.publish_checkpoint(Bytes::from(note)).await? {
        tracing::info!("a newer public checkpoint is in the bucket; this round's is not published");
    }
    Ok(())
}

async fn replay_staging(bucket: &Bucket, path: &str, checkpoint: bool) -> Result<(), ClusterError> {
    let bytes = bucket
        .get(path)
        .await?
        .ok_or_else(|| ClusterError::ObjectStore(format!("{path} is missing")))?;
    upload(bucket.clone(), Staged::decode(&bytes)?, checkpoint).await
}

/// Finishes the round the lock names, if its staging bundle is there (a sequencer that
/// died between the swap and its uploads). Create-only puts make it idempotent.
/// `checkpoint`: also upload the public checkpoint.
async fn replay(bucket: &Bucket, note: &[u8], checkpoint: bool) -> Result<(), ClusterError> {
    let size = checkpoint_size(note)?;
    let path = staging_path(size, note);
    if bucket.get(&path).await?.is_some() {
        replay_staging(bucket, &path, checkpoint).await?;
    }
    Ok(())
}

/// Rebuilds the local cache from `from` leaves to the lock's checkpoint at `to`,
/// following the bucket's tiles: entry bundles (and their dedup rows) in chunks, then
/// every tile that changed between the two sizes and the checkpoint in the last write.
/// The log's own recovery then re-derives the root from these tiles and refuses to sign
/// if the bucket does not match the signed checkpoint.
async fn rebuild(
    local: &dyn LogStore,
    bucket: &Bucket,
    from: u64,
    to: u64,
    note: &[u8],
) -> Result<(), ClusterError> {
    let tile = u64::from(TILE_WIDTH);
    let first_bundle = from / tile;
    let end_bundle = to.div_ceil(tile);
    let mut bundle = first_bundle;
    while bundle < end_bundle {
        let chunk_end = (bundle + REBUILD_BUNDLES_PER_WRITE).min(end_bundle);
        let mut write = RoundWrite::default();
        for index in bundle..chunk_end {
            let width = bundle_width(index, to);
            let path = entry_bundle_path(index, width);
            let bytes = bucket
                .get(&path)
                .await?
                .ok_or_else(|| ClusterError::ObjectStore(format!("{path} is missing")))?;
            let entries = split_bundle(&bytes).map_err(|e| ClusterError::Malformed {
                what: path.clone(),
                reason: e.to_string(),
            })?;
            if entries.len() != usize::from(width) {
                return Err(ClusterError::Malformed {
                    what: path,
                    reason: format!("{} entries, expected {width}", entries.len()),
                });
            }
            for (offset, entry) in entries.iter().enumerate() {
                let leaf = index * tile + offset as u64;
                if leaf >= from {
                    write.dedup.push((hash_leaf(entry), leaf));
                }
            }
            write
                .bundles
                .push((index, merklog_log::ValueWrite::Put(bytes.to_vec())));
        }
        local.commit(&write)?;
        bundle = chunk_end;
    }
    let mut write = RoundWrite::default();
    let mut level: u8 = 0;
    while to
        .checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0)
        > 0
    {
        let shift = u32::from(level) * u32::from(TILE_HEIGHT);
        let first = from.checked_shr(shift).unwrap_or(0) / tile;
        let last = (to.checked_shr(shift).unwrap_or(0) - 1) / tile;
        for index in first..=last {
            let width = tile_width_at(level, index, TreeSize(to));
            if width == 0 {
                continue;
            }
            let id = TileId {
                level,
                index,
                width,
            };
            let bytes = bucket
                .get(&id.path())
                .await?
                .ok_or_else(|| ClusterError::ObjectStore(format!("{} is missing", id.path())))?;
            if bytes.len() != usize::from(width) * HASH_SIZE {
                return Err(ClusterError::Malformed {
                    what: id.path(),
                    reason: format!(
                        "{} bytes, expected {}",
                        bytes.len(),
                        usize::from(width) * HASH_SIZE
                    ),
                });
            }
            write
                .tiles
                .push((id, merklog_log::ValueWrite::Put(bytes.to_vec())));
        }
        level += 1;
    }
    write.checkpoint = Some((to, note.to_vec()));
    local.commit(&write)?;
    Ok(())
}

impl LogStore for ClusterStore {
    fn metadata(&self) -> Result<Option<LogMetadata>, StorageError> {
        self.local.metadata()
    }
    fn latest_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.local.latest_checkpoint()
    }
    fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.local.checkpoint(size)
    }
    fn read_tiles(&self, tiles: &[TileId]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.local.read_tiles(tiles)
    }
    fn read_bundles(&self, indexes: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.local.read_bundles(indexes)
    }
    fn lookup_leaves(&self, leaf_hashes: &[Hash]) -> Result<Vec<Option<u64>>, StorageError> {
        self.local.lookup_leaves(leaf_hashes)
    }
    fn lookup_keys(&self, keys: &[Bytes]) -> Result<Vec<Option<KeyRecord>>, StorageError> {
        self.local.lookup_keys(keys)
    }
    fn scan_keys(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, StorageError> {
        self.local.scan_keys(start, end, limit)
    }
    fn lookup_terms(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<KeyRecord>>, StorageError> {
        self.local.lookup_terms(keys)
    }
    fn scan_terms(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KeyRecord)>, StorageError> {
        self.local.scan_terms(start, end, limit)
    }
    fn commit(&self, round: &RoundWrite) -> Result<(), StorageError> {
        self.try_commit(round)
    }
    fn store_cosigned_checkpoint(&self, size: u64, note: &[u8]) -> Result<(), StorageError> {
        self.local.store_cosigned_checkpoint(size, note)?;
        // A node whose term ended publishes nothing more: the next leader's public
        // checkpoint would be overwritten with this older one. Nor does the bucket show
        // a size the lock never held (a new log's size-0 checkpoint, cosigned before
        // the first swap): a node starting then would find a public checkpoint beside
        // an empty lock and refuse it as the wrong lock.
        let publish = {
            let state = self.state();
            let locked = state
                .last
                .as_deref()
                .and_then(|note| checkpoint_size(note).ok());
            state.fenced.is_none() && locked.is_some_and(|locked| locked >= size)
        };
        if self.options.witnessed && publish && self.leading() {
            let published = self
                .block_on(self.bucket.publish_checkpoint(Bytes::copy_from_slice(note)))
                .map_err(|e| StorageError::new(e.to_string()))?;
            if !published {
                tracing::info!(
                    size,
                    "a newer public checkpoint is in the bucket; this cosigned one is not published"
                );
            }
        }
        Ok(())
    }
    fn published_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.local.published_checkpoint()
    }
    fn fenced(&self) -> Option<String> {
        self.state().fenced.clone()
    }
}
