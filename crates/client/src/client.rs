//! The verifying gRPC client.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use merklog_merkle::{
    Hash, LeafIndex, TreeSize, hash_leaf, hashes_equal, verify_consistency, verify_inclusion,
};
use merklog_note::TlogProof;
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1::{self, get_inclusion_proof_request::Leaf, log_client::LogClient};
use tonic::codegen::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::error::{InclusionFailure, InconsistencyKind};
use crate::token::{BearerToken, Credentials};
use crate::{ClientError, SignedCheckpoint, StateFile, TrustedLog};

/// How many verified checkpoints (by size) a client keeps in memory, so that a
/// checkpoint seen again needs no new consistency proof.
const KNOWN_CHECKPOINTS: usize = 1024;

/// Connection and retry settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long to wait for the TCP/HTTP2 connection.
    pub connect_timeout: Duration,
    /// Largest gRPC message accepted from the server.
    pub max_message_bytes: usize,
    /// How often an append is retried after RESOURCE_EXHAUSTED or UNAVAILABLE
    /// (appends are idempotent, so a retry never duplicates an entry).
    pub append_retries: u32,
    /// The first retry delay; it doubles with each retry. A server's
    /// `retry-after` hint (per-principal rate limits) replaces it for that retry.
    pub retry_backoff: Duration,
    /// The bearer token sent on every call (`authorization: Bearer ...`).
    pub token: Option<BearerToken>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            max_message_bytes: 64 << 20,
            append_retries: 8,
            retry_backoff: Duration::from_millis(50),
            token: None,
        }
    }
}

/// A verified inclusion proof of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionReceipt {
    /// The entry's index.
    pub index: LeafIndex,
    /// The entry's leaf hash, `SHA-256(0x00 || entry)`.
    pub leaf_hash: Hash,
    /// The verified inclusion proof.
    pub proof: Vec<Hash>,
    /// The checkpoint the proof leads to.
    pub checkpoint: SignedCheckpoint,
    /// The entry itself, when the client downloaded it (proofs by index).
    pub entry: Option<Bytes>,
}

impl InclusionReceipt {
    /// The C2SP tlog-proof of the entry, verifiable offline.
    pub fn tlog_proof(&self) -> TlogProof {
        TlogProof::new(
            self.index.0,
            self.proof.clone(),
            self.checkpoint.note.to_vec(),
        )
    }
}

/// A verifying client of one log.
///
/// It keeps the latest verified checkpoint (loaded from the [`StateFile`] when one
/// is given) and checks every checkpoint it receives against it: a larger one must
/// come with a valid consistency proof, an equal size must have the same root, and
/// a smaller *latest* checkpoint is a rollback. Call [`Client::save_state`] to
/// persist what was verified.
pub struct Client {
    pub(crate) rpc: LogClient<InterceptedService<Channel, Credentials>>,
    pub(crate) trust: TrustedLog,
    pub(crate) options: ClientOptions,
    state: Option<StateFile>,
    latest: Option<SignedCheckpoint>,
    /// Checkpoints verified consistent with `latest`, by size.
    known: BTreeMap<u64, SignedCheckpoint>,
    unsaved: bool,
}

impl Client {
    /// Connects to `url` (such as `http://127.0.0.1:7800`; a bare `host:port`
    /// means `http://host:port`) and loads the last verified checkpoint of the
    /// log from `state`, if given.
    pub async fn connect(
        url: &str,
        trust: TrustedLog,
        state: Option<StateFile>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let bad_url = |reason: String| ClientError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let full = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        if !full.starts_with("http://") {
            return Err(bad_url(
                "use http://host:port (this client does not speak TLS)".into(),
            ));
        }
        let endpoint = Endpoint::from_shared(full)
            .map_err(|e| bad_url(e.to_string()))?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                url: url.to_owned(),
                source,
            })?;
        Self::with_channel(channel, trust, state, options)
    }

    /// A client over an existing channel.
    pub fn with_channel(
        channel: Channel,
        trust: TrustedLog,
        state: Option<StateFile>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let latest = match &state {
            Some(state) => state.load(&trust)?,
            None => None,
        };
        let credentials = Credentials::new(options.token.as_ref())?;
        let rpc = LogClient::with_interceptor(channel, credentials)
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes);
        let mut client = Self {
            rpc,
            trust,
            options,
            state,
            latest: None,
            known: BTreeMap::new(),
            unsaved: false,
        };
        if let Some(latest) = latest {
            client.remember(&latest);
            client.latest = Some(latest);
        }
        Ok(client)
    }

    /// The trust anchor.
    pub fn trust(&self) -> &TrustedLog {
        &self.trust
    }

    /// The latest verified checkpoint (this session's, or the state file's).
    pub fn latest(&self) -> Option<&SignedCheckpoint> {
        self.latest.as_ref()
    }

    /// Persists the latest verified checkpoint to the state file, if there is one
    /// and something new was verified.
    pub fn save_state(&mut self) -> Result<(), ClientError> {
        if let (Some(state), Some(latest), true) = (&self.state, &self.latest, self.unsaved) {
            state.save(&self.trust, latest)?;
            self.unsaved = false;
        }
        Ok(())
    }

    fn remember(&mut self, checkpoint: &SignedCheckpoint) {
        self.known.insert(checkpoint.size.0, checkpoint.clone());
        while self.known.len() > KNOWN_CHECKPOINTS {
            self.known.pop_first();
        }
    }

    /// Checks a verified checkpoint against everything seen before and records it.
    ///
    /// `is_latest` says the server presented it as its latest checkpoint (then a
    /// size below one seen before is a rollback); otherwise it is a historic one
    /// (an append answer, a requested size) that only has to be consistent.
    pub(crate) async fn observe(
        &mut self,
        checkpoint: &SignedCheckpoint,
        is_latest: bool,
    ) -> Result<(), ClientError> {
        let Some(previous) = self.latest.clone() else {
            self.remember(checkpoint);
            self.latest = Some(checkpoint.clone());
            self.unsaved = true;
            return Ok(());
        };
        if is_latest && checkpoint.size < previous.size {
            return Err(ClientError::inconsistent(
                InconsistencyKind::Rollback,
                &previous,
                checkpoint,
                Vec::new(),
            ));
        }
        if let Some(known) = self.known.get(&checkpoint.size.0) {
            if hashes_equal(&known.root, &checkpoint.root) {
                return Ok(());
            }
            return Err(ClientError::inconsistent(
                InconsistencyKind::Fork,
                known,
                checkpoint,
                Vec::new(),
            ));
        }
        if checkpoint.size > previous.size {
            self.prove_consistency(&previous, checkpoint).await?;
            self.remember(checkpoint);
            self.latest = Some(checkpoint.clone());
            self.unsaved = true;
        } else {
            self.prove_consistency(checkpoint, &previous).await?;
            self.remember(checkpoint);
        }
        Ok(())
    }

    /// Fetches and verifies the consistency proof from `old` to `new`
    /// (`old.size <= new.size`), returning the proof. Equal sizes need equal roots;
    /// the empty tree is a prefix of every tree.
    pub async fn prove_consistency(
        &mut self,
        old: &SignedCheckpoint,
        new: &SignedCheckpoint,
    ) -> Result<Vec<Hash>, ClientError> {
        if old.size > new.size {
            return Err(ClientError::Input(format!(
                "a consistency proof goes from a smaller to a larger tree, not from {} to {}",
                old.size.0, new.size.0
            )));
        }
        if old.size == new.size {
            if hashes_equal(&old.root, &new.root) {
                return Ok(Vec::new());
            }
            return Err(ClientError::inconsistent(
                InconsistencyKind::Fork,
                old,
                new,
                Vec::new(),
            ));
        }
        if old.size.0 == 0 {
            // A size-0 checkpoint's root was checked to be SHA-256("") when opened.
            return Ok(Vec::new());
        }
        let response = self
            .rpc
            .get_consistency_proof(v1::GetConsistencyProofRequest {
                old_size: old.size.0,
                new_size: Some(new.size.0),
            })
            .await
            .map_err(|s| ClientError::rpc("GetConsistencyProof", s))?
            .into_inner();
        if response.old_size != old.size.0 || response.new_size != new.size.0 {
            return Err(ClientError::Malformed(format!(
                "asked for a consistency proof {} -> {}, got one for {} -> {}",
                old.size.0, new.size.0, response.old_size, response.new_size
            )));
        }
        let proof = proof_from_wire("proof", &response.proof)
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        verify_consistency(old.size, new.size, &proof, &old.root, &new.root).map_err(|e| {
            ClientError::inconsistent(InconsistencyKind::BadProof(e), old, new, proof.clone())
        })?;
        Ok(proof)
    }

    /// Fetches, verifies and records the log's latest checkpoint.
    pub async fn checkpoint(&mut self) -> Result<SignedCheckpoint, ClientError> {
        let wire = self
            .rpc
            .get_checkpoint(v1::GetCheckpointRequest {})
            .await
            .map_err(|s| ClientError::rpc("GetCheckpoint", s))?
            .into_inner();
        let checkpoint = self.trust.open_wire(wire)?;
        self.observe(&checkpoint, true).await?;
        Ok(checkpoint)
    }

    /// Fetches the log's signed checkpoint of exactly `size` (the log keeps the
    /// checkpoint of every size it signed), verifies and records it.
    pub async fn checkpoint_at(&mut self, size: TreeSize) -> Result<SignedCheckpoint, ClientError> {
        if size.0 == 0 {
            return Err(ClientError::Input(
                "the log serves no checkpoint of size 0; use 1 or more".into(),
            ));
        }
        // A consistency proof from a size to itself is empty and carries the
        // signed checkpoint of that size, if the log signed one.
        let response = self
            .rpc
            .get_consistency_proof(v1::GetConsistencyProofRequest {
                old_size: size.0,
                new_size: Some(size.0),
            })
            .await
            .map_err(|s| ClientError::rpc("GetConsistencyProof", s))?
            .into_inner();
        let Some(wire) = response.checkpoint else {
            return Err(ClientError::Input(format!(
                "the log signed no checkpoint of size {} (sizes inside one sequencing round have none)",
                size.0
            )));
        };
        let checkpoint = self.trust.open_wire(wire)?;
        if checkpoint.size != size {
            return Err(ClientError::Malformed(format!(
                "asked for the checkpoint of size {}, got size {}",
                size.0, checkpoint.size.0
            )));
        }
        self.observe(&checkpoint, false).await?;
        Ok(checkpoint)
    }

    /// Verifies an inclusion proof against a verified checkpoint.
    pub(crate) fn check_inclusion(
        leaf_hash: &Hash,
        index: LeafIndex,
        proof: &[Hash],
        checkpoint: &SignedCheckpoint,
    ) -> Result<(), ClientError> {
        verify_inclusion(leaf_hash, index, checkpoint.size, proof, &checkpoint.root).map_err(
            |source| {
                ClientError::Inclusion(Box::new(InclusionFailure {
                    index: index.0,
                    leaf_hash: *leaf_hash,
                    proof: proof.to_vec(),
                    checkpoint: checkpoint.clone(),
                    source,
                }))
            },
        )
    }

    async fn inclusion(
        &mut self,
        leaf: Leaf,
    ) -> Result<(LeafIndex, Vec<Hash>, SignedCheckpoint), ClientError> {
        let response = self
            .rpc
            .get_inclusion_proof(v1::GetInclusionProofRequest {
                leaf: Some(leaf),
                tree_size: None,
            })
            .await
            .map_err(|s| ClientError::rpc("GetInclusionProof", s))?
            .into_inner();
        let Some(wire) = response.checkpoint else {
            return Err(ClientError::Malformed(
                "an inclusion proof against the latest tree came without its checkpoint".into(),
            ));
        };
        let checkpoint = self.trust.open_wire(wire)?;
        self.observe(&checkpoint, true).await?;
        if response.tree_size != checkpoint.size.0 {
            return Err(ClientError::Malformed(format!(
                "inclusion proof for tree size {} came with the checkpoint of size {}",
                response.tree_size, checkpoint.size.0
            )));
        }
        let proof = proof_from_wire("proof", &response.proof)
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        Ok((LeafIndex(response.index), proof, checkpoint))
    }

    /// Proves that the entry at `index` is in the log's latest tree: downloads the
    /// entry, fetches its inclusion proof and the latest checkpoint, verifies all.
    pub async fn prove_index(&mut self, index: LeafIndex) -> Result<InclusionReceipt, ClientError> {
        let (answered, proof, checkpoint) = self.inclusion(Leaf::Index(index.0)).await?;
        if answered != index {
            return Err(ClientError::Malformed(format!(
                "asked for the proof of entry {}, got entry {}",
                index.0, answered.0
            )));
        }
        let entry = self.entry(index).await?;
        let leaf_hash = hash_leaf(&entry);
        Self::check_inclusion(&leaf_hash, index, &proof, &checkpoint)?;
        Ok(InclusionReceipt {
            index,
            leaf_hash,
            proof,
            checkpoint,
            entry: Some(entry),
        })
    }

    /// Proves that the entry with this leaf hash is in the log's latest tree.
    pub async fn prove_leaf_hash(
        &mut self,
        leaf_hash: &Hash,
    ) -> Result<InclusionReceipt, ClientError> {
        let (index, proof, checkpoint) = self
            .inclusion(Leaf::LeafHash(Bytes::copy_from_slice(leaf_hash)))
            .await?;
        Self::check_inclusion(leaf_hash, index, &proof, &checkpoint)?;
        Ok(InclusionReceipt {
            index,
            leaf_hash: *leaf_hash,
            proof,
            checkpoint,
            entry: None,
        })
    }

    /// Downloads one entry (unverified: callers check it against a root).
    pub(crate) async fn entry(&mut self, index: LeafIndex) -> Result<Bytes, ClientError> {
        let end = index
            .0
            .checked_add(1)
            .ok_or_else(|| ClientError::Input(format!("index {} is out of range", index.0)))?;
        let mut found = None;
        self.entries(index.0, end, |_, page| {
            found = page.first().cloned();
            Ok(())
        })
        .await?;
        found.ok_or_else(|| ClientError::Malformed(format!("entry {} was not served", index.0)))
    }

    /// Downloads the entries `[start, end)` page by page, calling `on_page` with
    /// each page's first index and entries. The entries are NOT verified here:
    /// callers check them against a signed root.
    pub async fn entries(
        &mut self,
        start: u64,
        end: u64,
        mut on_page: impl FnMut(u64, &[Bytes]) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let mut next = start;
        // Each page holds at least one entry, so this ends after at most
        // end - start calls.
        while next < end {
            let response = self
                .rpc
                .get_entries(v1::GetEntriesRequest { start: next, end })
                .await
                .map_err(|s| ClientError::rpc("GetEntries", s))?
                .into_inner();
            let count = response.entries.len() as u64;
            if response.start != next || count == 0 || count > end - next {
                return Err(ClientError::Malformed(format!(
                    "asked for entries [{next}, {end}), got {count} entries from {}",
                    response.start
                )));
            }
            on_page(next, &response.entries)?;
            next += count;
        }
        Ok(())
    }
}
