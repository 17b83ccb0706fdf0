//! The state shared by the sequencer, the witness stage and every `Log` handle: what is
//! published, what is durable, and why the log may refuse to sign or to write.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use merklog_merkle::TreeSize;
use tokio::sync::watch;

use crate::queue::Queue;
use crate::tiles::StoredTree;
use crate::{LogConfig, LogStore, SignedCheckpoint, metrics as m};

/// State shared by the sequencer thread and every `Log` handle.
pub(crate) struct Shared {
    pub(crate) origin: String,
    pub(crate) config: LogConfig,
    pub(crate) queue: Queue,
    pub(crate) store: Arc<dyn LogStore>,
    /// The same store, with the cache every proof read of this log shares.
    pub(crate) tree: StoredTree,
    /// The latest published checkpoint; `send_replace` only (through
    /// `publish.rs`), so it works without subscribers and never
    /// goes down.
    pub(crate) published: watch::Sender<Arc<SignedCheckpoint>>,
    /// Why the log refuses to sign, if it does: fail closed after a failed recovery
    /// check or with a witness ahead of the log (for good), or while refusing
    /// witnesses leave no quorum (cleared when they cosign again).
    pub(crate) refusal: watch::Sender<Option<String>>,
    /// The last storage failure of a round, until a round or reload succeeds again.
    pub(crate) storage_failure: Mutex<Option<String>>,
    /// Size of the latest durable checkpoint (published or not).
    pub(crate) durable_size: AtomicU64,
    /// Closed until the witness start-up check allows signing (always open without a
    /// witness policy).
    pub(crate) gate: SigningGate,
}

/// Holds the sequencer back from signing until the witnesses' stored sizes are known
/// (docs/durability.md, "Rules across rounds": the last published size is checked
/// against something outside the data directory before signing resumes).
pub(crate) struct SigningGate {
    open: AtomicBool,
    lock: Mutex<()>,
    opened: Condvar,
}

impl SigningGate {
    pub(crate) fn new(open: bool) -> Self {
        Self {
            open: AtomicBool::new(open),
            lock: Mutex::new(()),
            opened: Condvar::new(),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub(crate) fn open(&self) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.open.store(true, Ordering::Release);
        self.opened.notify_all();
    }

    /// Waits up to `timeout` for the gate to open; true if it is open.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_open() {
            return true;
        }
        let _ = self
            .opened
            .wait_timeout(guard, timeout)
            .unwrap_or_else(PoisonError::into_inner);
        self.is_open()
    }
}

impl Shared {
    pub(crate) fn refusal(&self) -> Option<String> {
        self.refusal.borrow().clone()
    }

    pub(crate) fn set_refusal(&self, reason: Option<String>) {
        metrics::gauge!(m::SIGNING_REFUSED).set(if reason.is_some() { 1.0 } else { 0.0 });
        self.refusal.send_replace(reason);
    }

    /// Sets the refusal to `new` if it is `expected` now (compare and swap, so a
    /// refusal set elsewhere in the meantime is never overwritten); true if it did.
    pub(crate) fn replace_refusal(&self, expected: Option<&str>, new: Option<String>) -> bool {
        let mut replaced = false;
        self.refusal.send_if_modified(|current| {
            if current.as_deref() != expected {
                return false;
            }
            replaced = true;
            let changed = *current != new;
            *current = new;
            changed
        });
        let refused = self.refusal.borrow().is_some();
        metrics::gauge!(m::SIGNING_REFUSED).set(if refused { 1.0 } else { 0.0 });
        replaced
    }

    pub(crate) fn storage_failure(&self) -> Option<String> {
        self.storage_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_storage_failure(&self, failure: Option<String>) {
        let mut current = self
            .storage_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.is_some() || failure.is_some() {
            *current = failure;
        }
    }

    pub(crate) fn latest(&self) -> Arc<SignedCheckpoint> {
        self.published.borrow().clone()
    }

    pub(crate) fn durable_size(&self) -> TreeSize {
        TreeSize(self.durable_size.load(Ordering::Acquire))
    }

    pub(crate) fn set_durable(&self, size: TreeSize) {
        self.durable_size.store(size.0, Ordering::Release);
        metrics::gauge!(m::DURABLE_SIZE).set(size.0 as f64);
    }
}
