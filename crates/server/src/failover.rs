//! The cluster role task: with an etcd lock a node campaigns for leadership, follows
//! the leader while it is a standby and signs only while it leads; a read-only node
//! follows the bucket's public checkpoint.
//!
//! - Standby: appends are turned away (UNAVAILABLE, naming the leader's advertised
//!   address), and the cache follows the lock: every round the leader swapped in is
//!   rebuilt from the bucket, so taking over costs little.
//! - Winning: the cache is reconciled with the lock and the bucket (the start-up
//!   reconciliation again), the log publishes the lock's checkpoint and reloads its
//!   state from the cache, and only then are appends let in. With a witness policy
//!   the log publishes only cosigned checkpoints (a standby follows the bucket's
//!   public one), and taking over runs the witness start-up check against the lock's
//!   checkpoint: appends wait until the witnesses that answered meet the quorum, and
//!   a witness that cosigned a larger tree than the lock holds (a lock or bucket
//!   restored from an old copy) makes the leader refuse to sign.
//! - Losing the term (the lease expired or could not be renewed in time): appends are
//!   turned away at once and the store is fenced for good; restart the node to rejoin
//!   as a standby. The etcd swap also checks the term, so a node that was paused past
//!   its lease loses its next swap in etcd even before it notices.
//! - Reader: the cache follows the bucket's public checkpoint; appends are turned away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use merklog_cluster::{Campaign, ClusterStore, Election};
use merklog_log::Log;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::cluster::Reader;

/// How often a standby or reader looks for a new checkpoint (and a standby for a
/// vacant leadership).
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);
/// Pause after a failed take-over before campaigning again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// What the task drives.
pub(crate) enum Role {
    /// A sequencer node with leader election.
    Elect {
        store: Arc<ClusterStore>,
        election: Election,
    },
    /// A read-only node.
    Read(super::cluster::Reader),
}

/// Starts the task; it ends when `stop` turns true.
pub(crate) fn spawn(
    role: Role,
    log: Log,
    advertise: String,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        match role {
            Role::Elect { store, election } => elect(store, election, log, advertise, stop).await,
            Role::Read(reader) => read(Arc::new(reader), log, stop).await,
        }
    })
}

/// Sleeps `duration`; true if the node is stopping.
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
    *stop.borrow()
}

/// Publishes what the cache now holds (blocking storage reads, off the runtime).
async fn publish_cache(log: &Log) -> Result<(), String> {
    let log = log.clone();
    match tokio::task::spawn_blocking(move || log.follow()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the follow task failed: {e}")),
    }
}

async fn read(reader: Arc<Reader>, log: Log, mut stop: watch::Receiver<bool>) {
    let mut last_error = String::new();
    loop {
        let follower = reader.clone();
        let handle = tokio::runtime::Handle::current();
        let followed =
            tokio::task::spawn_blocking(move || handle.block_on(follower.follow())).await;
        let outcome = match followed {
            Ok(Ok(Some(_))) => publish_cache(&log).await,
            Ok(Ok(None)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("the follow task failed: {e}")),
        };
        match outcome {
            Ok(()) => last_error.clear(),
            // A round being uploaded fails until its last object lands: said once.
            Err(e) if e != last_error => {
                warn!(error = %e, "following the bucket failed; retrying");
                last_error = e;
            }
            Err(_) => {}
        }
        if pause(&mut stop, FOLLOW_INTERVAL).await {
            return;
        }
    }
}

/// A standby's catch-up with the leader: the cache first, then what the log publishes.
async fn follow_leader(store: &Arc<ClusterStore>, log: &Log) -> Result<(), String> {
    let follower = store.clone();
    let handle = tokio::runtime::Handle::current();
    let followed = tokio::task::spawn_blocking(move || handle.block_on(follower.follow_leader()))
        .await
        .map_err(|e| format!("the follow task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    if followed.is_some() {
        publish_cache(log).await?;
    }
    Ok(())
}

/// Reconciles after winning, brings the log to the lock's checkpoint (published at
/// once without a witness policy), and with one starts the witness start-up check
/// from it: nothing is signed before that check allows it.
async fn take_over(store: &Arc<ClusterStore>, log: &Log) -> Result<(), String> {
    let taker = store.clone();
    let handle = tokio::runtime::Handle::current();
    let reconciled = tokio::task::spawn_blocking(move || handle.block_on(taker.take_over()))
        .await
        .map_err(|e| format!("the take-over task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    info!(?reconciled, "took over the lock's checkpoint");
    publish_cache(log).await?;
    let leader = log.clone();
    tokio::task::spawn_blocking(move || leader.lead())
        .await
        .map_err(|e| format!("the take-over task failed: {e}"))?
        .map_err(|e| e.to_string())
}

async fn elect(
    store: Arc<ClusterStore>,
    election: Election,
    log: Log,
    advertise: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut known_leader = String::new();
    let mut last_error = String::new();
    loop {
        match election.campaign(&advertise).await {
            Ok(Campaign::Won { lease }) => {
                let won = Instant::now();
                if let Err(e) = take_over(&store, &log).await {
                    error!(error = %e, "taking over failed; resigning");
                    election.resign(&lease).await;
                    log.set_standby(Some(format!(
                        "this node could not take over ({e}); retry another node"
                    )));
                    if pause(&mut stop, RETRY_AFTER_FAILURE).await {
                        return;
                    }
                    continue;
                }
                log.set_standby(None);
                info!(
                    %advertise,
                    took = ?won.elapsed(),
                    "leading: this node signs"
                );
                let ended = tokio::select! {
                    why = election.hold(&lease) => Some(why),
                    _ = stop.wait_for(|stopped| *stopped) => None,
                };
                let Some(why) = ended else {
                    log.set_standby(Some(
                        "this node is shutting down; retry another node".into(),
                    ));
                    election.resign(&lease).await;
                    return;
                };
                log.set_standby(Some(format!(
                    "this node lost its leadership ({why}) and no longer signs; retry another node"
                )));
                store.fence_for_good(format!("lost the leadership: {why}"));
                error!(
                    reason = %why,
                    "lost the leadership: this node no longer signs and publishes nothing; \
                     restart it to rejoin as a standby"
                );
                let _ = stop.wait_for(|stopped| *stopped).await;
                return;
            }
            Ok(Campaign::Led { leader }) => {
                if leader != known_leader {
                    info!(%leader, "standby: following the leader");
                    log.set_standby(Some(format!(
                        "this node is a standby; the leader is {leader}"
                    )));
                    known_leader = leader;
                }
                match follow_leader(&store, &log).await {
                    Ok(()) => last_error.clear(),
                    Err(e) if e != last_error => {
                        warn!(error = %e, "following the lock failed; retrying");
                        last_error = e;
                    }
                    Err(_) => {}
                }
            }
            Err(e) => {
                let e = e.to_string();
                if e != last_error {
                    warn!(error = %e, "campaigning failed; retrying");
                    log.set_standby(Some(format!(
                        "this node is a standby and cannot reach the election ({e}); retry \
                         another node"
                    )));
                    known_leader.clear();
                    last_error = e;
                }
            }
        }
        if pause(&mut stop, FOLLOW_INTERVAL).await {
            return;
        }
    }
}
