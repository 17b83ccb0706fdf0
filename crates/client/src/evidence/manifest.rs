//! `manifest.json`: the pack's table of contents (every file with its SHA-256), the
//! selection, and what the exporter found, in a form `evidence verify` regenerates
//! byte for byte from the verified contents. Documented member by member in
//! `docs/evidence-pack.md`.
//!
//! The last member, `self_sha256`, is the SHA-256 of the manifest's own bytes with its
//! 64 hex digits replaced by `0`s. It is no signature (anyone can recompute it); it
//! tells a damaged manifest from a damaged file it lists.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ClientError;

/// The `format` member of every manifest of this version (version 2 added query
/// selections and COSE receipts).
pub const FORMAT: &str = "merklog-evidence/v2";
/// Manifests larger than this are refused before parsing.
pub const MAX_MANIFEST_LEN: usize = 256 << 20;
/// The member the self digest is written under.
const SELF_MEMBER: &[u8] = b"\"self_sha256\": \"";
/// The digest's placeholder while it is computed.
const PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An inclusive range of sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// The first number.
    pub first: u64,
    /// The last number.
    pub last: u64,
}

/// What was selected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionEntry {
    /// The source's name.
    pub source: String,
    /// The first sequence number looked at.
    pub from_sequence: u64,
    /// The last sequence number looked at.
    pub to_sequence: u64,
    /// Window start (inclusive), Unix ms of the signed source timestamp.
    pub since_unix_ms: Option<u64>,
    /// Window end (exclusive), Unix ms.
    pub until_unix_ms: Option<u64>,
    /// The query terms on the events' audit-event payloads (`null`: no query).
    pub query: Option<QueryEntry>,
}

/// A query selection's terms; every given one must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryEntry {
    /// The actor's id.
    pub actor: Option<String>,
    /// The model's id.
    pub model: Option<String>,
    /// The action.
    pub action: Option<String>,
}

/// The events' COSE receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsEntry {
    /// The receipt key file.
    pub key_file: String,
    /// The key's algorithm (`ed25519` or `es256`).
    pub algorithm: String,
    /// The key's COSE `kid`, hex.
    pub key_id: String,
    /// The tree size every receipt is against: the checkpoint's.
    pub tree_size: u64,
    /// How many receipts: one per event, `receipts/<sequence>.cose`.
    pub count: u64,
}

/// The log and the keys the pack carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// The log's origin (its key's name).
    pub origin: String,
    /// The log's verifier key file.
    pub vkey_file: String,
    /// The witness policy file, if the exporter had a policy.
    pub policy_file: Option<String>,
}

/// The source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    /// The source's name.
    pub name: String,
    /// Its verifier key file.
    pub vkey_file: String,
}

/// A witness cosignature that verified under the pack's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosignatureEntry {
    /// The witness's policy name.
    pub witness: String,
    /// The cosignature's timestamp, Unix seconds.
    pub timestamp: u64,
}

/// The checkpoint every inclusion proof is against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointEntry {
    /// The signed note file.
    pub file: String,
    /// Tree size.
    pub size: u64,
    /// Root hash, hex.
    pub root: String,
    /// Verified witness cosignatures.
    pub cosignatures: Vec<CosignatureEntry>,
    /// Names on signature lines that were not verified.
    pub unverified_signers: Vec<String>,
    /// The latest verified cosignature time, RFC 3339 (null without one).
    pub as_of: Option<String>,
}

/// An earlier checkpoint and its consistency proof to the pack's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlierEntry {
    /// The signed note file.
    pub file: String,
    /// Tree size.
    pub size: u64,
    /// Root hash, hex.
    pub root: String,
    /// The consistency proof file.
    pub consistency_file: String,
}

/// How many events of each kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Events in the pack.
    pub events: u64,
    /// Selected events.
    pub selected: u64,
    /// Context events (between selected numbers, outside the time window).
    pub context: u64,
    /// Declarations of unused numbers outside the span.
    pub declarations: u64,
    /// Selected heartbeats.
    pub heartbeats: u64,
    /// Second envelopes (equivocation evidence).
    pub equivocation_envelopes: u64,
}

/// The completeness result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletenessEntry {
    /// The numbers judged.
    pub span: Option<Range>,
    /// Nothing missing and no equivocation.
    pub complete: bool,
    /// How many numbers are missing.
    pub missing_count: u64,
    /// Missing numbers.
    pub missing: Vec<Range>,
    /// Numbers declared unused by signed declarations.
    pub declared_unused: Vec<Range>,
    /// Numbers with two different signed envelopes.
    pub equivocations: Vec<u64>,
    /// What the completeness result does not cover (`null`: nothing beyond the
    /// span); a query selection always says so.
    pub caveat: Option<String>,
}

/// One file of the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path inside the pack, `/`-separated.
    pub path: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// What was selected.
    pub selection: SelectionEntry,
    /// The log.
    pub log: LogEntry,
    /// The source.
    pub source: SourceEntry,
    /// The checkpoint.
    pub checkpoint: CheckpointEntry,
    /// Earlier checkpoints.
    pub earlier_checkpoints: Vec<EarlierEntry>,
    /// The COSE receipts (`null` only when the pack holds no event).
    pub receipts: Option<ReceiptsEntry>,
    /// Counts.
    pub counts: Counts,
    /// Completeness.
    pub completeness: CompletenessEntry,
    /// Every file but the manifest, sorted by path.
    pub files: Vec<FileEntry>,
    /// See the module documentation.
    pub self_sha256: String,
}

/// Why a manifest was refused: an evidence failure naming `manifest.json`.
fn refused(reason: String) -> ClientError {
    ClientError::Evidence {
        file: "manifest.json".into(),
        check: "manifest",
        reason,
    }
}

/// Lower-case hex.
pub use merklog_merkle::to_hex as hex;

/// SHA-256 of bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Where the self digest's hex digits are: after the last `"self_sha256": "`.
fn digest_span(bytes: &[u8]) -> Option<(usize, usize)> {
    let at = bytes
        .windows(SELF_MEMBER.len())
        .rposition(|w| w == SELF_MEMBER)?
        + SELF_MEMBER.len();
    let end = at + PLACEHOLDER.len();
    (end <= bytes.len()).then_some((at, end))
}

/// The self digest of manifest bytes (their digest field zeroed).
fn self_digest(bytes: &[u8]) -> Option<String> {
    let (at, end) = digest_span(bytes)?;
    let mut zeroed = bytes.to_vec();
    zeroed[at..end].copy_from_slice(PLACEHOLDER.as_bytes());
    Some(sha256_hex(&zeroed))
}

impl Manifest {
    /// The manifest's bytes: pretty JSON, members in a fixed order, a final newline,
    /// and the self digest filled in.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut manifest = self.clone();
        manifest.self_sha256 = PLACEHOLDER.to_owned();
        // Serialising plain structs of strings, numbers and vectors cannot fail.
        let mut bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        bytes.push(b'\n');
        if let (Some(digest), Some((at, end))) = (self_digest(&bytes), digest_span(&bytes)) {
            bytes[at..end].copy_from_slice(digest.as_bytes());
        }
        bytes
    }

    /// Parses a manifest strictly (unknown members refused) and checks its format and
    /// self digest.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ClientError> {
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(refused(format!(
                "{} bytes, more than the {MAX_MANIFEST_LEN} accepted",
                bytes.len()
            )));
        }
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| refused(format!("not a valid manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(refused(format!(
                "format {:?} is not {FORMAT:?}",
                manifest.format
            )));
        }
        let computed = self_digest(bytes)
            .ok_or_else(|| refused("the self_sha256 member is not where it belongs".into()))?;
        if computed != manifest.self_sha256 {
            return Err(refused(format!(
                "self_sha256 is {}, but the manifest's bytes give {computed}: the manifest was \
                 changed",
                manifest.self_sha256
            )));
        }
        Ok(manifest)
    }
}
