//! A log that does not sequence: a reader opened without the key, appends turned
//! away while a node is a standby, and [`Log::follow`], which catches the log up with
//! a store another process grew (a cluster standby's or reader's cache).

use std::sync::{Arc, PoisonError};

use merklog_merkle::TreeSize;
use merklog_note::Signer;

use crate::filter;
use crate::handle::Log;
use crate::recovery::check_identity;
use crate::tiles::{ReadError, TreeState};
use crate::{LogConfig, LogError, LogStore, SignedCheckpoint};

/// The signer of a log opened with [`Log::open_reader`]: it has the public key only,
/// and the reader never reaches a round, so a signature is never asked for.
struct NoSigner {
    name: String,
    key_id: u32,
}

impl Signer for NoSigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, merklog_note::NoteError> {
        Err(merklog_note::NoteError::SignerFailed {
            name: self.name.clone(),
            reason: "a reader holds no signing key".into(),
        })
    }
}

impl Log {
    /// Opens a log this process never signs: reads are served from `store` (which
    /// another process keeps growing: call [`Log::follow`] after it grew), and appends
    /// are answered [`LogError::Unavailable`]. Needs no signing key, only the store's
    /// metadata and a stored checkpoint, and no witness policy (a reader publishes what
    /// the sequencer published).
    pub fn open_reader(
        store: Arc<dyn LogStore>,
        origin: String,
        config: LogConfig,
    ) -> Result<Log, LogError> {
        config.validate()?;
        if config.witnessing.is_some() {
            return Err(LogError::InvalidConfig(
                "a reader takes no witness policy: it serves what the sequencer published".into(),
            ));
        }
        let verifier = check_identity(&*store, None, &origin)?;
        let stored = store
            .latest_checkpoint()
            .map_err(|e| LogError::Storage(format!("reading the latest checkpoint: {e}")))?;
        if stored.is_none() {
            return Err(LogError::Recovery(
                "a reader needs a stored checkpoint to start from".into(),
            ));
        }
        let signer = Arc::new(NoSigner {
            name: verifier.name().to_owned(),
            key_id: verifier.key_id(),
        });
        let log = Self::start(store, signer, verifier, origin, config)?;
        log.set_standby(Some(
            "this node is read-only: it never signs; append to a sequencer".into(),
        ));
        Ok(log)
    }

    /// Turns appends away at once with [`LogError::Unavailable`] carrying `reason`
    /// (`Some`), or lets them in again (`None`): a node that does not sequence right
    /// now says so, and where to go, instead of queueing.
    pub fn set_standby(&self, reason: Option<String>) {
        *self
            .inner
            .standby
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = reason;
    }

    /// Why appends are turned away, if they are ([`Log::set_standby`]).
    pub fn standby(&self) -> Option<String> {
        self.inner
            .standby
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Catches up with a store that grew underneath the log (another node sequenced
    /// and this one copied its rounds into the store): the store's latest checkpoint,
    /// if larger than the published one, is verified with the log's key, its root
    /// re-derived from the stored tiles, its leaves added to the dedup filter, and it
    /// is published (subscribers see it). The sequencer reloads its state from the
    /// store before its next round. Returns the new size, `None` if nothing changed.
    ///
    /// Only for a log that does not sign meanwhile (standby or reader: appends turned
    /// away with [`Log::set_standby`]), and without a witness policy. Blocks on
    /// storage reads.
    pub fn follow(&self) -> Result<Option<TreeSize>, LogError> {
        let shared = self.shared();
        let Some(note) = shared
            .store
            .latest_checkpoint()
            .map_err(|e| LogError::Storage(format!("reading the latest checkpoint: {e}")))?
        else {
            return Ok(None);
        };
        let checkpoint =
            SignedCheckpoint::open(note, &*self.inner.verifier, Some(shared.origin.as_str()))
                .map_err(|e| {
                    LogError::Recovery(format!("the followed checkpoint does not verify: {e}"))
                })?;
        if checkpoint.size() <= shared.latest().size() {
            return Ok(None);
        }
        let size = checkpoint.size();
        let state = match TreeState::load(&*shared.store, size) {
            Ok(state) => state,
            Err(ReadError::Storage(e)) => {
                return Err(LogError::Storage(format!("reading tiles: {e}")));
            }
            Err(ReadError::Corrupt(reason)) => return Err(LogError::Recovery(reason)),
        };
        let computed = state.range.root();
        if computed != checkpoint.checkpoint().root {
            return Err(LogError::Recovery(format!(
                "the followed tiles give root {computed} at size {}, the checkpoint says {}",
                size.0,
                checkpoint.checkpoint().root
            )));
        }
        {
            let mut followed = self
                .inner
                .followed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            filter::add_range(&self.inner.filter, &*shared.store, *followed, size.0)
                .map_err(|e| LogError::Storage(format!("filling the leaf filter: {e}")))?;
            *followed = size.0;
        }
        shared.set_durable(size);
        // The sequencer's tip is the old tree: a new epoch makes it reload first.
        self.inner.pipeline.poison();
        crate::publish::publish(shared, Arc::new(checkpoint));
        Ok(Some(size))
    }
}
