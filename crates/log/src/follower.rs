//! A log that does not sequence: a reader opened without the key, appends turned
//! away while a node is a standby, [`Log::follow`], which catches the log up with
//! a store another process grew (a cluster standby's or reader's cache), and
//! [`Log::lead`], which starts a standby's deferred witness check when it takes over.

use std::sync::{Arc, PoisonError};

use merklog_merkle::TreeSize;
use merklog_note::Signer;

use crate::filter;
use crate::handle::Log;
use crate::recovery::{check_identity, stored_published};
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
    /// if larger than the durable one, is verified with the log's key, its root
    /// re-derived from the stored tiles, its leaves added to the dedup filter, and it
    /// becomes the durable checkpoint. Without a witness policy it is published
    /// (subscribers see it); with one, what is published is the checkpoint the store
    /// records as published (cosigned), if larger, never a durable one on its own. The
    /// sequencer reloads its state from the store before its next round. Returns the
    /// new durable size, `None` if nothing changed.
    ///
    /// Only for a log that does not sign meanwhile (standby or reader: appends turned
    /// away with [`Log::set_standby`]). Blocks on storage reads.
    pub fn follow(&self) -> Result<Option<TreeSize>, LogError> {
        let shared = self.shared();
        let Some(checkpoint) = self.stored_latest()? else {
            return Ok(None);
        };
        let size = checkpoint.size();
        let grew = size > shared.durable_size();
        if grew {
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
            let mut followed = self
                .inner
                .followed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            filter::add_range(&self.inner.filter, &*shared.store, *followed, size.0)
                .map_err(|e| LogError::Storage(format!("filling the leaf filter: {e}")))?;
            *followed = size.0;
            drop(followed);
            shared.set_durable(size);
            // The sequencer's tip is the old tree: a new epoch makes it reload first.
            self.inner.pipeline.poison();
        }
        let public = match shared.config.witnessing {
            Some(_) => stored_published(
                &*shared.store,
                &*self.inner.verifier,
                &shared.origin,
                &checkpoint,
            )?,
            None => Some(checkpoint),
        };
        let published = public.filter(|p| p.size() > shared.latest().size());
        let changed = grew || published.is_some();
        if let Some(public) = published {
            crate::publish::publish(shared, public);
        }
        Ok(changed.then_some(size))
    }

    /// Runs a deferred witness start-up check ([`Witnessing::deferred`]) now, from the
    /// durable checkpoint the store holds: the sequencer signs nothing until the
    /// witnesses that answered satisfy the quorum, and a witness that has cosigned a
    /// larger tree makes the log refuse to sign. Call it once this node is to sign,
    /// after [`Log::follow`] brought the log to the store it signs on, before letting
    /// appends in. Without a witness policy, or when the check already ran, it does
    /// nothing. Blocks on a storage read.
    ///
    /// [`Witnessing::deferred`]: crate::Witnessing::deferred
    pub fn lead(&self) -> Result<(), LogError> {
        let Some(lead) = &self.inner.lead else {
            return Ok(());
        };
        let shared = self.shared();
        let checkpoint = self.stored_latest()?.ok_or_else(|| {
            LogError::Recovery("the store holds no checkpoint to lead from".into())
        })?;
        if checkpoint.size() != shared.durable_size() {
            return Err(LogError::Recovery(format!(
                "the store holds size {} but the log is at {}: follow the store first",
                checkpoint.size().0,
                shared.durable_size().0
            )));
        }
        lead.send(checkpoint).map_err(|_| {
            LogError::Unavailable("the witness stage stopped; restart the node".into())
        })
    }

    /// The store's latest checkpoint, verified with the log's key.
    fn stored_latest(&self) -> Result<Option<Arc<SignedCheckpoint>>, LogError> {
        let shared = self.shared();
        let Some(note) = shared
            .store
            .latest_checkpoint()
            .map_err(|e| LogError::Storage(format!("reading the latest checkpoint: {e}")))?
        else {
            return Ok(None);
        };
        SignedCheckpoint::open(note, &*self.inner.verifier, Some(shared.origin.as_str()))
            .map(|checkpoint| Some(Arc::new(checkpoint)))
            .map_err(|e| LogError::Recovery(format!("the stored checkpoint does not verify: {e}")))
    }
}
