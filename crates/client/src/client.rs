//! The verifying gRPC client.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf, verify_consistency, verify_inclusion};
use merklog_note::TlogProof;
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1::{
    self, get_inclusion_proof_request::Leaf, log_client::LogClient, query_client::QueryClient,
    sources_client::SourcesClient,
};
use tonic::codegen::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::{InclusionFailure, InconsistencyKind};
use crate::token::{BearerToken, Credentials};
use crate::{ClientError, SignedCheckpoint, StateFile, TrustedLog};

/// How many verified checkpoints (by size) a client keeps in memory, so that a
/// checkpoint seen again needs no new consistency proof.
const KNOWN_CHECKPOINTS: usize = 1024;

/// How far on each side of an unsigned size `checkpoint_at` looks for signed ones.
const NEAREST_SIGNED_SCAN: u64 = 32;

/// The longest wait between two retries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Connection and retry settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long to wait for the TCP/HTTP2 connection.
    pub connect_timeout: Duration,
    /// How long to wait for the answer to one unary call, and on a stream for
    /// each expected message (a watch waiting for the next checkpoint is not
    /// bounded by it: an idle log is normal). Never unbounded, so a server that
    /// accepts a connection and then says nothing cannot hang the client.
    pub request_timeout: Duration,
    /// Largest gRPC message accepted from the server.
    pub max_message_bytes: usize,
    /// How often an append is retried after RESOURCE_EXHAUSTED or UNAVAILABLE
    /// (appends are idempotent, so a retry never duplicates an entry). Not used
    /// when `retry_for` is set.
    pub append_retries: u32,
    /// Retry for this long after the first failure instead of a number of times.
    pub retry_for: Option<Duration>,
    /// The first retry delay; it doubles with each retry (up to 5 s). A server's
    /// `retry-after` hint (per-principal rate limits) replaces it for that retry.
    pub retry_backoff: Duration,
    /// Certificates for `https://` servers.
    pub tls: ClientTls,
    /// The bearer token sent on every call (`authorization: Bearer ...`).
    pub token: Option<BearerToken>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_message_bytes: 64 << 20,
            append_retries: 8,
            retry_for: None,
            retry_backoff: Duration::from_millis(50),
            tls: ClientTls::default(),
            token: None,
        }
    }
}

/// The PEM files an `https://` connection uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificates (one or more) the server's certificate must chain to;
    /// `None`: the public web roots (Mozilla's list, built in).
    pub ca_cert: Option<PathBuf>,
    /// A client certificate chain to present (mutual TLS); needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// The private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// Largest accepted certificate or key file.
const MAX_PEM_FILE_BYTES: u64 = 4 << 20;

fn read_pem(path: &Path) -> Result<Vec<u8>, ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_PEM_FILE_BYTES {
        return Err(ClientError::Input(format!(
            "{}: larger than {MAX_PEM_FILE_BYTES} bytes, not a PEM certificate or key",
            path.display()
        )));
    }
    std::fs::read(path).map_err(io)
}

impl ClientTls {
    /// The rustls settings of an `https://` connection.
    fn config(&self) -> Result<ClientTlsConfig, ClientError> {
        let mut config = ClientTlsConfig::new();
        config = match &self.ca_cert {
            Some(path) => {
                let pem = read_pem(path)?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(ClientError::Input(format!(
                        "--ca-cert {}: no PEM certificate in the file",
                        path.display()
                    )));
                }
                config.ca_certificate(Certificate::from_pem(pem))
            }
            None => config.with_webpki_roots(),
        };
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                Ok(config.identity(Identity::from_pem(read_pem(cert)?, read_pem(key)?)))
            }
            (Some(_), None) => Err(ClientError::Input(
                "--client-cert needs --client-key (the certificate's private key)".into(),
            )),
            (None, Some(_)) => Err(ClientError::Input(
                "--client-key needs --client-cert (the certificate it belongs to)".into(),
            )),
            (None, None) => Ok(config),
        }
    }

    fn is_set(&self) -> bool {
        self.ca_cert.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }
}

/// A call that failed with a transient status and is about to be sent again
/// (see [`Client::on_retry`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryNotice {
    /// The method called.
    pub rpc: &'static str,
    /// The status of the failed attempt.
    pub status: tonic::Status,
    /// The attempt that failed, from 1.
    pub attempt: u32,
    /// How many attempts the budget allows (`None` with `retry_for`).
    pub max_attempts: Option<u32>,
    /// The wait before the next attempt.
    pub delay: Duration,
    /// Time since the first attempt.
    pub elapsed: Duration,
    /// With `retry_for`, how much of it is left.
    pub remaining: Option<Duration>,
    /// How many entries the retried request carries.
    pub entries: usize,
}

/// Called before each retry.
pub(crate) type RetryObserver = Box<dyn FnMut(&RetryNotice) + Send>;

/// Awaits one unary call, bounded by `limit`.
pub(crate) async fn call<T>(
    rpc: &'static str,
    server: &str,
    limit: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(crate::probe::classify(rpc, server, status).await),
        Err(_) => Err(ClientError::Timeout {
            rpc,
            server: server.to_owned(),
            after: limit,
        }),
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
            self.checkpoint.note().to_vec(),
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
    /// The same connection's `Sources` service.
    pub(crate) sources: SourcesClient<InterceptedService<Channel, Credentials>>,
    /// The same connection's `Query` service.
    pub(crate) query: QueryClient<InterceptedService<Channel, Credentials>>,
    pub(crate) trust: TrustedLog,
    pub(crate) options: ClientOptions,
    /// The server address, for messages.
    pub(crate) server: String,
    pub(crate) retry_observer: Option<RetryObserver>,
    /// Leaf hashes sent in an attempt that failed transiently and not yet
    /// acknowledged: when a retry finds one "already in the log", it is there
    /// because of that attempt, so it was appended by this client.
    pub(crate) unacknowledged: HashSet<Hash>,
    /// The tree size this client knew when it first appended: an entry found at
    /// a smaller index was in the log before.
    pub(crate) size_at_first_append: Option<TreeSize>,
    state: Option<StateFile>,
    latest: Option<SignedCheckpoint>,
    /// Checkpoints verified consistent with `latest`, by size.
    known: BTreeMap<u64, SignedCheckpoint>,
    unsaved: bool,
}

/// Connects a gRPC channel to `url` (see [`Client::connect`]), bounded by the
/// connect timeout; what every command's connection starts with.
pub(crate) async fn connect_channel(
    url: &str,
    options: &ClientOptions,
) -> Result<Channel, ClientError> {
    let bad_url = |reason: String| ClientError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let https = full.starts_with("https://");
    if !https && !full.starts_with("http://") {
        return Err(bad_url("use http://host:port or https://host:port".into()));
    }
    if !https && options.tls.is_set() {
        return Err(bad_url(
            "certificates are given but the address is not https://".into(),
        ));
    }
    let mut endpoint = Endpoint::from_shared(full)
        .map_err(|e| bad_url(e.to_string()))?
        .connect_timeout(options.connect_timeout)
        // A peer that stops answering (a dead server behind a live TCP
        // path) is noticed on an idle watch too.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(options.request_timeout)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if https {
        endpoint = endpoint
            .tls_config(options.tls.config()?)
            .map_err(|source| ClientError::Connect {
                url: url.to_owned(),
                source,
            })?;
    }
    // The connect timeout covers TCP; this bounds the HTTP/2 handshake too.
    let channel = match tokio::time::timeout(options.connect_timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(source)) => {
            return Err(ClientError::Connect {
                url: url.to_owned(),
                source,
            });
        }
        Err(_) => {
            return Err(ClientError::Timeout {
                rpc: "connect",
                server: url.to_owned(),
                after: options.connect_timeout,
            });
        }
    };
    Ok(channel)
}

impl Client {
    /// Connects to `url` (such as `http://127.0.0.1:7800` or
    /// `https://log.example:7800`; a bare `host:port` means `http://host:port`)
    /// and loads the last verified checkpoint of the log from `state`, if given.
    /// `https://` verifies the server's certificate against `options.tls.ca_cert`
    /// or, without it, the public web roots.
    pub async fn connect(
        url: &str,
        trust: TrustedLog,
        state: Option<StateFile>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let channel = connect_channel(url, &options).await?;
        let mut client = Self::with_channel(channel, trust, state, options)?;
        client.server = url.to_owned();
        Ok(client)
    }

    /// Calls `observer` before each retry of a call that failed transiently
    /// (to tell a person why nothing seems to happen).
    pub fn on_retry(&mut self, observer: impl FnMut(&RetryNotice) + Send + 'static) {
        self.retry_observer = Some(Box::new(observer));
    }

    /// The wait before retrying after `attempt` failed attempts (from 1) that
    /// started at `started`, or `None` when the budget is spent; tells the
    /// observer.
    pub(crate) fn retry_delay(
        &mut self,
        rpc: &'static str,
        status: &tonic::Status,
        attempt: u32,
        started: tokio::time::Instant,
        entries: usize,
    ) -> Option<Duration> {
        // A server's retry-after hint (a rate limit knows when the call will
        // pass) replaces the doubling backoff for this retry.
        let delay = merklog_proto::convert::retry_after(status).unwrap_or_else(|| {
            self.options
                .retry_backoff
                .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
                .min(MAX_RETRY_DELAY)
        });
        let elapsed = started.elapsed();
        let (max_attempts, remaining) = match self.options.retry_for {
            Some(budget) => {
                let remaining = budget.checked_sub(elapsed)?;
                if remaining.is_zero() {
                    return None;
                }
                (None, Some(remaining))
            }
            None => {
                let max = self.options.append_retries.saturating_add(1);
                if attempt >= max {
                    return None;
                }
                (Some(max), None)
            }
        };
        let delay = remaining.map_or(delay, |r| delay.min(r));
        if let Some(observer) = &mut self.retry_observer {
            observer(&RetryNotice {
                rpc,
                status: status.clone(),
                attempt,
                max_attempts,
                delay,
                elapsed,
                remaining,
                entries,
            });
        }
        Some(delay)
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
        let sources = SourcesClient::with_interceptor(channel.clone(), credentials.clone())
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes);
        let query = QueryClient::with_interceptor(channel.clone(), credentials.clone())
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes);
        let rpc = LogClient::with_interceptor(channel, credentials)
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes);
        let mut client = Self {
            rpc,
            sources,
            query,
            trust,
            options,
            server: "the server".to_owned(),
            retry_observer: None,
            unacknowledged: HashSet::new(),
            size_at_first_append: None,
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
        self.known.insert(checkpoint.size().0, checkpoint.clone());
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
        if is_latest && checkpoint.size() < previous.size() {
            return Err(ClientError::inconsistent(
                InconsistencyKind::Rollback,
                &previous,
                checkpoint,
                Vec::new(),
            ));
        }
        if let Some(known) = self.known.get(&checkpoint.size().0) {
            if known.root() == checkpoint.root() {
                return Ok(());
            }
            return Err(ClientError::inconsistent(
                InconsistencyKind::Fork,
                known,
                checkpoint,
                Vec::new(),
            ));
        }
        if checkpoint.size() > previous.size() {
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
    /// (`old.size() <= new.size()`), returning the proof. Equal sizes need equal roots;
    /// the empty tree is a prefix of every tree.
    pub async fn prove_consistency(
        &mut self,
        old: &SignedCheckpoint,
        new: &SignedCheckpoint,
    ) -> Result<Vec<Hash>, ClientError> {
        if old.size() > new.size() {
            return Err(ClientError::Input(format!(
                "a consistency proof goes from a smaller to a larger tree, not from {} to {}",
                old.size().0,
                new.size().0
            )));
        }
        if old.size() == new.size() {
            if old.root() == new.root() {
                return Ok(Vec::new());
            }
            return Err(ClientError::inconsistent(
                InconsistencyKind::Fork,
                old,
                new,
                Vec::new(),
            ));
        }
        if old.size().0 == 0 {
            // A size-0 checkpoint's root was checked to be SHA-256("") when opened.
            return Ok(Vec::new());
        }
        let response = call(
            "GetConsistencyProof",
            &self.server,
            self.options.request_timeout,
            self.rpc
                .get_consistency_proof(v1::GetConsistencyProofRequest {
                    old_size: old.size().0,
                    new_size: Some(new.size().0),
                }),
        )
        .await?;
        if response.old_size != old.size().0 || response.new_size != new.size().0 {
            return Err(ClientError::Malformed(format!(
                "asked for a consistency proof {} -> {}, got one for {} -> {}",
                old.size().0,
                new.size().0,
                response.old_size,
                response.new_size
            )));
        }
        let proof = proof_from_wire("proof", &response.proof)
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        verify_consistency(old.size(), new.size(), &proof, &old.root(), &new.root()).map_err(
            |e| ClientError::inconsistent(InconsistencyKind::BadProof(e), old, new, proof.clone()),
        )?;
        Ok(proof)
    }

    /// Fetches, verifies and records the log's latest checkpoint.
    pub async fn checkpoint(&mut self) -> Result<SignedCheckpoint, ClientError> {
        let wire = call(
            "GetCheckpoint",
            &self.server,
            self.options.request_timeout,
            self.rpc.get_checkpoint(v1::GetCheckpointRequest {}),
        )
        .await?;
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
        let Some(wire) = self.signed_checkpoint_wire(size.0).await? else {
            return Err(ClientError::Input(format!(
                "the log signed no checkpoint of size {} (sizes inside one sequencing round \
                 have none); {}",
                size.0,
                self.nearest_signed_sizes(size.0).await
            )));
        };
        let checkpoint = self.trust.open_wire(wire)?;
        if checkpoint.size() != size {
            return Err(ClientError::Malformed(format!(
                "asked for the checkpoint of size {}, got size {}",
                size.0,
                checkpoint.size().0
            )));
        }
        self.observe(&checkpoint, false).await?;
        Ok(checkpoint)
    }

    /// The log's signed checkpoint of exactly `size`, unverified, if it has one.
    async fn signed_checkpoint_wire(
        &mut self,
        size: u64,
    ) -> Result<Option<v1::Checkpoint>, ClientError> {
        // A consistency proof from a size to itself is empty and carries the
        // signed checkpoint of that size, if the log signed one.
        let response = call(
            "GetConsistencyProof",
            &self.server,
            self.options.request_timeout,
            self.rpc
                .get_consistency_proof(v1::GetConsistencyProofRequest {
                    old_size: size,
                    new_size: Some(size),
                }),
        )
        .await?;
        Ok(response.checkpoint)
    }

    /// Where the signed sizes nearest to `size` are, in words (a hint for a
    /// size the log did not sign; the sizes are not verified here).
    async fn nearest_signed_sizes(&mut self, size: u64) -> String {
        let mut below = None;
        for candidate in (size.saturating_sub(NEAREST_SIGNED_SCAN)..size).rev() {
            if candidate == 0 {
                break;
            }
            if let Ok(Some(_)) = self.signed_checkpoint_wire(candidate).await {
                below = Some(candidate);
                break;
            }
        }
        let mut above = None;
        for candidate in size.saturating_add(1)..=size.saturating_add(NEAREST_SIGNED_SCAN) {
            match self.signed_checkpoint_wire(candidate).await {
                Ok(Some(_)) => {
                    above = Some(candidate);
                    break;
                }
                Ok(None) => {}
                // Beyond the published tree.
                Err(_) => break,
            }
        }
        let near = NEAREST_SIGNED_SCAN;
        match (below, above) {
            (Some(b), Some(a)) => format!("the nearest signed sizes are {b} and {a}"),
            (Some(b), None) => format!("the nearest signed size is {b} (none up to {near} above)"),
            (None, Some(a)) => format!("the nearest signed size is {a} (none up to {near} below)"),
            (None, None) => format!(
                "no size within {near} of it is signed; `merklog checkpoint` shows the latest, \
                 and `append` and `watch` print the signed sizes"
            ),
        }
    }

    /// Verifies an inclusion proof against a verified checkpoint.
    pub(crate) fn check_inclusion(
        leaf_hash: &Hash,
        index: LeafIndex,
        proof: &[Hash],
        checkpoint: &SignedCheckpoint,
    ) -> Result<(), ClientError> {
        verify_inclusion(
            leaf_hash,
            index,
            checkpoint.size(),
            proof,
            &checkpoint.root(),
        )
        .map_err(|source| {
            ClientError::Inclusion(Box::new(InclusionFailure {
                index: index.0,
                leaf_hash: *leaf_hash,
                proof: proof.to_vec(),
                checkpoint: checkpoint.clone(),
                source,
            }))
        })
    }

    async fn inclusion(
        &mut self,
        leaf: Leaf,
    ) -> Result<(LeafIndex, Vec<Hash>, SignedCheckpoint), ClientError> {
        let response = call(
            "GetInclusionProof",
            &self.server,
            self.options.request_timeout,
            self.rpc.get_inclusion_proof(v1::GetInclusionProofRequest {
                leaf: Some(leaf),
                tree_size: None,
            }),
        )
        .await?;
        let Some(wire) = response.checkpoint else {
            return Err(ClientError::Malformed(
                "an inclusion proof against the latest tree came without its checkpoint".into(),
            ));
        };
        let checkpoint = self.trust.open_wire(wire)?;
        self.observe(&checkpoint, true).await?;
        if response.tree_size != checkpoint.size().0 {
            return Err(ClientError::Malformed(format!(
                "inclusion proof for tree size {} came with the checkpoint of size {}",
                response.tree_size,
                checkpoint.size().0
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
            .inclusion(Leaf::LeafHash(Bytes::copy_from_slice(leaf_hash.as_bytes())))
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
            let response = call(
                "GetEntries",
                &self.server,
                self.options.request_timeout,
                self.rpc
                    .get_entries(v1::GetEntriesRequest { start: next, end }),
            )
            .await?;
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
