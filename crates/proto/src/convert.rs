//! Wire messages to validated domain values, and back.
//!
//! Everything a request carries is checked here, once: entry sizes and counts,
//! hash lengths, indexes below tree sizes, sizes in order and within the published
//! tree. Each check fails with a [`ProtoError`] that names the field (for example
//! `entries[3]: entry is 70000 bytes, the limit is 65535`) and maps to the gRPC
//! status code a client can act on ([`ProtoError::code`]).
//!
//! Requests that depend on the tree (proofs, entries) are validated against the
//! published size the server read *before* validating, so an answer is always
//! computed against one checkpoint.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use merklog_merkle::{HASH_SIZE, Hash, LeafIndex, TreeSize};
use merklog_note::SignedCheckpoint;
use tonic::{Code, Status};

use crate::v1;

/// The hard cap on the size of one entry: tlog-tiles entry bundles prefix each
/// entry with a big-endian `u16` length.
pub const MAX_ENTRY_BYTES_CAP: usize = 65_535;

/// Default number of entries accepted in one `Append` call or stream request.
pub const DEFAULT_MAX_ENTRIES_PER_CALL: usize = 256;

/// Default number of entries returned by one `GetEntries` call.
pub const DEFAULT_MAX_ENTRIES_PER_PAGE: usize = 256;

/// Protobuf framing of one `repeated bytes` element: a 1-byte tag and a length
/// varint of at most 3 bytes (lengths up to 65,535 < 2^21).
const ENTRY_FRAMING_BYTES: usize = 4;

/// Everything else an append request (unary or stream) may carry: sequence
/// number (tag + 10-byte varint), the nested message's tag and length varint
/// (1 + 5), and the tlog-proof flag (2), rounded up.
const REQUEST_OVERHEAD_BYTES: usize = 64;

/// Why a wire message was rejected. The `Display` text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The request carried no entries.
    #[error("entries: the request holds no entries; send 1 to {limit}")]
    NoEntries {
        /// The configured maximum number of entries per call.
        limit: usize,
    },
    /// The request carried more entries than allowed per call.
    #[error("entries: the request holds {count} entries, the limit is {limit}")]
    TooManyEntries {
        /// Entries in the request.
        count: usize,
        /// The configured maximum number of entries per call.
        limit: usize,
    },
    /// An entry was empty.
    #[error("entries[{index}]: entry is empty; entries must be 1 to {limit} bytes")]
    EmptyEntry {
        /// Position of the entry in the request.
        index: usize,
        /// The configured maximum entry size.
        limit: usize,
    },
    /// An entry was longer than the configured maximum.
    #[error("entries[{index}]: entry is {len} bytes, the limit is {limit}")]
    EntryTooLarge {
        /// Position of the entry in the request.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// The configured maximum entry size.
        limit: usize,
    },
    /// A hash field did not hold exactly 32 bytes.
    #[error("{field}: a hash is {HASH_SIZE} bytes, got {len}")]
    BadHashLength {
        /// The field name.
        field: &'static str,
        /// The length received.
        len: usize,
    },
    /// A proof field was not a whole number of 32-byte hashes.
    #[error("{field}: a proof is a multiple of {HASH_SIZE} bytes, got {len}")]
    BadProofLength {
        /// The field name.
        field: &'static str,
        /// The length received.
        len: usize,
    },
    /// A required field was absent.
    #[error("{field}: required field is missing")]
    Missing {
        /// The field name.
        field: &'static str,
    },
    /// An index is not below the tree size it is asked against.
    #[error("index: {index} is not below the tree size {size}")]
    IndexOutOfRange {
        /// The requested index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A tree size exceeds the published tree.
    #[error("{field}: {size} is beyond the published tree size {published}")]
    SizeBeyondTree {
        /// The field name.
        field: &'static str,
        /// The requested size.
        size: u64,
        /// The published tree size.
        published: u64,
    },
    /// A consistency proof was asked from size 0, which RFC 9162 does not define.
    #[error("old_size: must be at least 1 (every tree is consistent with the empty tree)")]
    ZeroOldSize,
    /// Consistency sizes out of order.
    #[error("old_size: {old} is greater than new_size {new}")]
    SizesOutOfOrder {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// An entry range with `start >= end`.
    #[error("start: {start} is not below end {end}")]
    EmptyRange {
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
    },
    /// A leaf hash that is not in the tree asked about.
    #[error("leaf_hash: no entry with this hash in the tree of size {size}")]
    LeafNotFound {
        /// The tree size searched.
        size: u64,
    },
    /// A limit configured outside what the wire format allows.
    #[error("{field}: {value} is outside 1..={max}")]
    BadLimit {
        /// The limit's name.
        field: &'static str,
        /// The configured value.
        value: usize,
        /// The largest allowed value.
        max: usize,
    },
    /// A stream answer without a result.
    #[error("result: an append stream answer holds neither a response nor an error")]
    EmptyStreamAnswer,
}

impl ProtoError {
    /// The gRPC status code for this error.
    pub fn code(&self) -> Code {
        match self {
            Self::IndexOutOfRange { .. } | Self::SizeBeyondTree { .. } => Code::OutOfRange,
            Self::LeafNotFound { .. } => Code::NotFound,
            Self::EmptyStreamAnswer => Code::Internal,
            Self::NoEntries { .. }
            | Self::TooManyEntries { .. }
            | Self::EmptyEntry { .. }
            | Self::EntryTooLarge { .. }
            | Self::BadHashLength { .. }
            | Self::BadProofLength { .. }
            | Self::Missing { .. }
            | Self::ZeroOldSize
            | Self::SizesOutOfOrder { .. }
            | Self::EmptyRange { .. }
            | Self::BadLimit { .. } => Code::InvalidArgument,
        }
    }
}

impl From<ProtoError> for Status {
    fn from(err: ProtoError) -> Self {
        Status::new(err.code(), err.to_string())
    }
}

/// Request limits the server enforces, fixed at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    max_entry_bytes: usize,
    max_entries_per_call: usize,
    max_entries_per_page: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entry_bytes: MAX_ENTRY_BYTES_CAP,
            max_entries_per_call: DEFAULT_MAX_ENTRIES_PER_CALL,
            max_entries_per_page: DEFAULT_MAX_ENTRIES_PER_PAGE,
        }
    }
}

impl Limits {
    /// Checks and builds the limits. `max_entry_bytes` is at most
    /// [`MAX_ENTRY_BYTES_CAP`]; the counts are at most 1,000,000 so that the
    /// request size cap ([`Limits::max_request_bytes`]) stays meaningful.
    pub fn new(
        max_entry_bytes: usize,
        max_entries_per_call: usize,
        max_entries_per_page: usize,
    ) -> Result<Self, ProtoError> {
        const MAX_COUNT: usize = 1_000_000;
        let check = |field, value: usize, max| {
            if (1..=max).contains(&value) {
                Ok(value)
            } else {
                Err(ProtoError::BadLimit { field, value, max })
            }
        };
        Ok(Self {
            max_entry_bytes: check("max_entry_bytes", max_entry_bytes, MAX_ENTRY_BYTES_CAP)?,
            max_entries_per_call: check("max_entries_per_call", max_entries_per_call, MAX_COUNT)?,
            max_entries_per_page: check("max_entries_per_page", max_entries_per_page, MAX_COUNT)?,
        })
    }

    /// The largest entry accepted, in bytes.
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// The most entries accepted in one append call or stream request.
    pub fn max_entries_per_call(&self) -> usize {
        self.max_entries_per_call
    }

    /// The most entries returned by one `GetEntries` call.
    pub fn max_entries_per_page(&self) -> usize {
        self.max_entries_per_page
    }

    /// The largest encoded request message the server decodes: room for
    /// `max_entries_per_call` entries of `max_entry_bytes` each with their
    /// protobuf framing, plus the few scalar fields. A larger message cannot be
    /// valid, so the gRPC layer refuses it from its length prefix, before
    /// buffering it. With the defaults (256 × 65,535) it is about 16 MiB.
    pub fn max_request_bytes(&self) -> usize {
        self.max_entries_per_call
            .saturating_mul(self.max_entry_bytes.saturating_add(ENTRY_FRAMING_BYTES))
            .saturating_add(REQUEST_OVERHEAD_BYTES)
    }

    /// Checks one entry's length.
    fn check_entry(&self, index: usize, entry: &[u8]) -> Result<(), ProtoError> {
        if entry.is_empty() {
            return Err(ProtoError::EmptyEntry {
                index,
                limit: self.max_entry_bytes,
            });
        }
        if entry.len() > self.max_entry_bytes {
            return Err(ProtoError::EntryTooLarge {
                index,
                len: entry.len(),
                limit: self.max_entry_bytes,
            });
        }
        Ok(())
    }
}

/// A validated append: 1 to `max_entries_per_call` entries of 1 to
/// `max_entry_bytes` bytes each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendBatch {
    /// The entries, in request order.
    pub entries: Vec<Bytes>,
    /// Whether the caller wants a tlog-proof per entry.
    pub include_tlog_proof: bool,
}

impl AppendBatch {
    /// Validates an append request; the first bad entry is named.
    pub fn from_wire(request: v1::AppendRequest, limits: &Limits) -> Result<Self, ProtoError> {
        let count = request.entries.len();
        if count == 0 {
            return Err(ProtoError::NoEntries {
                limit: limits.max_entries_per_call,
            });
        }
        if count > limits.max_entries_per_call {
            return Err(ProtoError::TooManyEntries {
                count,
                limit: limits.max_entries_per_call,
            });
        }
        for (index, entry) in request.entries.iter().enumerate() {
            limits.check_entry(index, entry)?;
        }
        Ok(Self {
            entries: request.entries,
            include_tlog_proof: request.include_tlog_proof,
        })
    }
}

/// A validated append stream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppend {
    /// The client's sequence number, echoed in the answer.
    pub sequence: u64,
    /// The validated batch.
    pub batch: AppendBatch,
}

impl StreamAppend {
    /// Validates a stream request. On failure the sequence number is returned
    /// with the error, so the answer can still be matched to its request.
    pub fn from_wire(
        request: v1::AppendStreamRequest,
        limits: &Limits,
    ) -> Result<Self, (u64, ProtoError)> {
        let sequence = request.sequence;
        let inner = request
            .request
            .ok_or((sequence, ProtoError::Missing { field: "request" }))?;
        let batch = AppendBatch::from_wire(inner, limits).map_err(|e| (sequence, e))?;
        Ok(Self { sequence, batch })
    }
}

/// How an inclusion proof request names its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafSelector {
    /// By index, already checked to be below the tree size.
    Index(LeafIndex),
    /// By RFC 6962 leaf hash; the index is looked up, then checked with
    /// [`InclusionQuery::check_found_index`].
    Hash(Hash),
}

/// A validated inclusion proof request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InclusionQuery {
    /// The entry.
    pub leaf: LeafSelector,
    /// The tree size to prove against: 1..=published.
    pub tree_size: TreeSize,
    /// True when the request named no size (the latest checkpoint is used and
    /// returned).
    pub latest: bool,
}

impl InclusionQuery {
    /// Validates against the published tree size.
    pub fn from_wire(
        request: &v1::GetInclusionProofRequest,
        published: TreeSize,
    ) -> Result<Self, ProtoError> {
        let (tree_size, latest) = resolve_size("tree_size", request.tree_size, published)?;
        let leaf = match &request.leaf {
            None => return Err(ProtoError::Missing { field: "leaf" }),
            Some(v1::get_inclusion_proof_request::Leaf::Index(index)) => {
                if *index >= tree_size.0 {
                    return Err(ProtoError::IndexOutOfRange {
                        index: *index,
                        size: tree_size.0,
                    });
                }
                LeafSelector::Index(LeafIndex(*index))
            }
            Some(v1::get_inclusion_proof_request::Leaf::LeafHash(bytes)) => {
                LeafSelector::Hash(hash_from_wire("leaf_hash", bytes)?)
            }
        };
        Ok(Self {
            leaf,
            tree_size,
            latest,
        })
    }

    /// Checks the index found for a leaf hash (`None`: unknown hash): the entry
    /// must be inside the tree asked about.
    pub fn check_found_index(&self, found: Option<LeafIndex>) -> Result<LeafIndex, ProtoError> {
        match found {
            Some(index) if index.0 < self.tree_size.0 => Ok(index),
            _ => Err(ProtoError::LeafNotFound {
                size: self.tree_size.0,
            }),
        }
    }
}

/// A validated consistency proof request: `1 <= old <= new <= published`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsistencyQuery {
    /// The older size.
    pub old_size: TreeSize,
    /// The newer size.
    pub new_size: TreeSize,
    /// True when the request named no new size.
    pub latest: bool,
}

impl ConsistencyQuery {
    /// Validates against the published tree size.
    pub fn from_wire(
        request: &v1::GetConsistencyProofRequest,
        published: TreeSize,
    ) -> Result<Self, ProtoError> {
        let (new_size, latest) = resolve_size("new_size", request.new_size, published)?;
        let old = request.old_size;
        if old == 0 {
            return Err(ProtoError::ZeroOldSize);
        }
        if old > new_size.0 {
            if latest {
                return Err(ProtoError::SizeBeyondTree {
                    field: "old_size",
                    size: old,
                    published: published.0,
                });
            }
            return Err(ProtoError::SizesOutOfOrder {
                old,
                new: new_size.0,
            });
        }
        Ok(Self {
            old_size: TreeSize(old),
            new_size,
            latest,
        })
    }
}

/// A validated entries request: `start < end <= published`, with `end` already
/// cut to one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntriesQuery {
    /// First index.
    pub start: LeafIndex,
    /// One past the last index of this page.
    pub end: u64,
}

impl EntriesQuery {
    /// Validates against the published tree size and cuts the range to one page.
    pub fn from_wire(
        request: &v1::GetEntriesRequest,
        published: TreeSize,
        limits: &Limits,
    ) -> Result<Self, ProtoError> {
        let (start, end) = (request.start, request.end);
        if start >= end {
            return Err(ProtoError::EmptyRange { start, end });
        }
        if end > published.0 {
            return Err(ProtoError::SizeBeyondTree {
                field: "end",
                size: end,
                published: published.0,
            });
        }
        let page = u64::try_from(limits.max_entries_per_page).unwrap_or(u64::MAX);
        Ok(Self {
            start: LeafIndex(start),
            end: end.min(start.saturating_add(page)),
        })
    }
}

/// Resolves an optional requested size against the published one.
fn resolve_size(
    field: &'static str,
    requested: Option<u64>,
    published: TreeSize,
) -> Result<(TreeSize, bool), ProtoError> {
    match requested {
        None => Ok((published, true)),
        Some(size) if size > published.0 => Err(ProtoError::SizeBeyondTree {
            field,
            size,
            published: published.0,
        }),
        Some(size) => Ok((TreeSize(size), false)),
    }
}

/// Reads a 32-byte hash field.
pub fn hash_from_wire(field: &'static str, bytes: &[u8]) -> Result<Hash, ProtoError> {
    Hash::try_from(bytes).map_err(|_| ProtoError::BadHashLength {
        field,
        len: bytes.len(),
    })
}

/// Encodes a proof as the concatenation of its hashes.
pub fn proof_to_wire(proof: &[Hash]) -> Bytes {
    let mut out = BytesMut::with_capacity(proof.len().saturating_mul(HASH_SIZE));
    for hash in proof {
        out.put_slice(hash.as_bytes());
    }
    out.freeze()
}

/// Splits a concatenated proof into hashes.
pub fn proof_from_wire(field: &'static str, bytes: &[u8]) -> Result<Vec<Hash>, ProtoError> {
    let chunks = bytes.chunks_exact(HASH_SIZE);
    if !chunks.remainder().is_empty() {
        return Err(ProtoError::BadProofLength {
            field,
            len: bytes.len(),
        });
    }
    chunks.map(|chunk| hash_from_wire(field, chunk)).collect()
}

/// Builds a wire checkpoint from its parts.
pub fn checkpoint_to_wire(note: Bytes, size: u64, root: &Hash) -> v1::Checkpoint {
    v1::Checkpoint {
        note,
        size,
        root: Bytes::copy_from_slice(root.as_bytes()),
    }
}

/// The wire form of a signed checkpoint: its note bytes, with its size and root.
pub fn signed_checkpoint_to_wire(checkpoint: &SignedCheckpoint) -> v1::Checkpoint {
    checkpoint_to_wire(
        checkpoint.note().clone(),
        checkpoint.size().0,
        &checkpoint.root(),
    )
}

/// A wire checkpoint with its root length checked. The note's signature is NOT
/// verified here (that needs the log's key: `merklog_note::SignedCheckpoint::open`, after
/// which the size and root must be compared with these claimed ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointParts {
    /// The signed note bytes.
    pub note: Bytes,
    /// The claimed tree size.
    pub size: TreeSize,
    /// The claimed root.
    pub root: Hash,
}

impl CheckpointParts {
    /// Checks the shape of a wire checkpoint.
    pub fn from_wire(checkpoint: v1::Checkpoint) -> Result<Self, ProtoError> {
        Ok(Self {
            root: hash_from_wire("checkpoint.root", &checkpoint.root)?,
            size: TreeSize(checkpoint.size),
            note: checkpoint.note,
        })
    }
}

/// The metadata key of the server's retry hint on RESOURCE_EXHAUSTED: how long
/// until the same call would pass, as whole milliseconds followed by `ms`
/// (`retry-after: 250ms`).
pub const RETRY_AFTER: &str = "retry-after";

/// Longest retry hint honoured; a larger one is taken as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Adds a retry hint to `status` (rounded up to whole milliseconds, at most
/// [`MAX_RETRY_AFTER`]).
pub fn set_retry_after(status: &mut Status, wait: Duration) {
    let millis = wait.min(MAX_RETRY_AFTER).as_nanos().div_ceil(1_000_000);
    if let Ok(value) = format!("{millis}ms").parse() {
        status.metadata_mut().insert(RETRY_AFTER, value);
    }
}

/// The retry hint of `status`, if it carries a well-formed one (capped at
/// [`MAX_RETRY_AFTER`]).
pub fn retry_after(status: &Status) -> Option<Duration> {
    let value = status.metadata().get(RETRY_AFTER)?.to_str().ok()?;
    let digits = value.strip_suffix("ms")?;
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: u64 = digits.parse().ok()?;
    Some(Duration::from_millis(millis).min(MAX_RETRY_AFTER))
}

/// The stream form of a failed request (with its retry hint, if any).
pub fn stream_error(status: &Status) -> v1::AppendError {
    let retry_after_ms = retry_after(status)
        .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    v1::AppendError {
        code: status.code() as i32,
        message: status.message().to_owned(),
        retry_after_ms,
    }
}

/// Turns a stream answer back into the unary shape (client side).
pub fn stream_answer(
    answer: v1::AppendStreamResponse,
) -> Result<(u64, Result<v1::AppendResponse, Status>), ProtoError> {
    use v1::append_stream_response::Result as R;
    match answer.result {
        Some(R::Response(response)) => Ok((answer.sequence, Ok(response))),
        Some(R::Error(error)) => {
            let mut status = Status::new(Code::from_i32(error.code), error.message);
            if error.retry_after_ms > 0 {
                set_retry_after(&mut status, Duration::from_millis(error.retry_after_ms));
            }
            Ok((answer.sequence, Err(status)))
        }
        None => Err(ProtoError::EmptyStreamAnswer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use v1::get_inclusion_proof_request::Leaf;

    fn limits() -> Limits {
        Limits::new(100, 4, 8).unwrap()
    }

    fn append(entries: &[&[u8]]) -> v1::AppendRequest {
        v1::AppendRequest {
            entries: entries.iter().map(|e| Bytes::copy_from_slice(e)).collect(),
            include_tlog_proof: false,
        }
    }

    #[test]
    fn append_accepts_valid_batches() {
        let batch = AppendBatch::from_wire(append(&[b"a", &[7u8; 100]]), &limits()).unwrap();
        assert_eq!(batch.entries.len(), 2);
        assert_eq!(batch.entries[1].len(), 100);
    }

    #[test]
    fn append_rejects_bad_entries_naming_the_first() {
        let cases: Vec<(v1::AppendRequest, ProtoError, &str)> = vec![
            (
                append(&[]),
                ProtoError::NoEntries { limit: 4 },
                "entries: the request holds no entries; send 1 to 4",
            ),
            (
                append(&[b"a", b"b", b"c", b"d", b"e"]),
                ProtoError::TooManyEntries { count: 5, limit: 4 },
                "entries: the request holds 5 entries, the limit is 4",
            ),
            (
                append(&[b"a", b"", b"c"]),
                ProtoError::EmptyEntry {
                    index: 1,
                    limit: 100,
                },
                "entries[1]: entry is empty; entries must be 1 to 100 bytes",
            ),
            (
                append(&[b"a", b"b", b"c", &[0u8; 101]]),
                ProtoError::EntryTooLarge {
                    index: 3,
                    len: 101,
                    limit: 100,
                },
                "entries[3]: entry is 101 bytes, the limit is 100",
            ),
            (
                // Two bad entries: the first one is named.
                append(&[&[0u8; 200], b""]),
                ProtoError::EntryTooLarge {
                    index: 0,
                    len: 200,
                    limit: 100,
                },
                "entries[0]: entry is 200 bytes, the limit is 100",
            ),
        ];
        for (request, expected, message) in cases {
            let err = AppendBatch::from_wire(request, &limits()).unwrap_err();
            assert_eq!(err, expected);
            assert_eq!(err.to_string(), message);
            let status = Status::from(err);
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(status.message(), message);
        }
    }

    #[test]
    fn default_limits_name_the_hard_cap() {
        let err =
            AppendBatch::from_wire(append(&[&vec![1u8; 70_000]]), &Limits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entries[0]: entry is 70000 bytes, the limit is 65535"
        );
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(
            Limits::new(65_536, 1, 1).unwrap_err(),
            ProtoError::BadLimit {
                field: "max_entry_bytes",
                value: 65_536,
                max: MAX_ENTRY_BYTES_CAP
            }
        );
        assert!(matches!(
            Limits::new(10, 0, 1),
            Err(ProtoError::BadLimit {
                field: "max_entries_per_call",
                ..
            })
        ));
        assert!(matches!(
            Limits::new(10, 1, 0),
            Err(ProtoError::BadLimit {
                field: "max_entries_per_page",
                ..
            })
        ));
    }

    #[test]
    fn request_cap_fits_the_largest_valid_request() {
        use prost::Message;
        let limits = limits();
        let largest = v1::AppendStreamRequest {
            sequence: u64::MAX,
            request: Some(v1::AppendRequest {
                entries: vec![Bytes::from(vec![0xffu8; 100]); 4],
                include_tlog_proof: true,
            }),
        };
        assert!(largest.encoded_len() <= limits.max_request_bytes());
        let unary = largest.request.unwrap();
        assert!(unary.encoded_len() <= limits.max_request_bytes());
        // And with the real defaults, the cap is the documented ~16 MiB.
        let defaults = Limits::default();
        let largest_default = v1::AppendRequest {
            entries: vec![Bytes::from(vec![1u8; 65_535]); 256],
            include_tlog_proof: true,
        };
        assert!(largest_default.encoded_len() <= defaults.max_request_bytes());
        assert!(defaults.max_request_bytes() < 17 * 1024 * 1024);
    }

    #[test]
    fn retry_hints_survive_the_stream_form() {
        let mut status = Status::resource_exhausted("slow down");
        set_retry_after(&mut status, Duration::from_micros(1500));
        assert_eq!(status.metadata().get(RETRY_AFTER).unwrap(), "2ms");
        assert_eq!(retry_after(&status), Some(Duration::from_millis(2)));
        let answer = v1::AppendStreamResponse {
            sequence: 7,
            result: Some(v1::append_stream_response::Result::Error(stream_error(
                &status,
            ))),
        };
        let (_, back) = stream_answer(answer).unwrap();
        assert_eq!(
            retry_after(&back.unwrap_err()),
            Some(Duration::from_millis(2))
        );
        let mut capped = Status::resource_exhausted("");
        set_retry_after(&mut capped, Duration::from_secs(3600));
        assert_eq!(retry_after(&capped), Some(MAX_RETRY_AFTER));
        for bad in ["", "ms", "5", "5s", "-5ms", "1.5ms", "9999999999999ms"] {
            let mut status = Status::resource_exhausted("");
            status
                .metadata_mut()
                .insert(RETRY_AFTER, bad.parse().unwrap());
            assert_eq!(retry_after(&status), None, "{bad:?}");
        }
        assert_eq!(stream_error(&Status::unavailable("x")).retry_after_ms, 0);
    }

    #[test]
    fn stream_request_keeps_its_sequence_on_failure() {
        let request = v1::AppendStreamRequest {
            sequence: 42,
            request: None,
        };
        assert_eq!(
            StreamAppend::from_wire(request, &limits()).unwrap_err(),
            (42, ProtoError::Missing { field: "request" })
        );
        let request = v1::AppendStreamRequest {
            sequence: 43,
            request: Some(append(&[b""])),
        };
        assert_eq!(
            StreamAppend::from_wire(request, &limits()).unwrap_err().0,
            43
        );
        let request = v1::AppendStreamRequest {
            sequence: 44,
            request: Some(append(&[b"x"])),
        };
        let ok = StreamAppend::from_wire(request, &limits()).unwrap();
        assert_eq!(ok.sequence, 44);
        assert_eq!(ok.batch.entries, vec![Bytes::from_static(b"x")]);
    }

    fn inclusion(leaf: Option<Leaf>, tree_size: Option<u64>) -> v1::GetInclusionProofRequest {
        v1::GetInclusionProofRequest { leaf, tree_size }
    }

    #[test]
    fn inclusion_queries() {
        let published = TreeSize(10);
        let q =
            InclusionQuery::from_wire(&inclusion(Some(Leaf::Index(9)), None), published).unwrap();
        assert_eq!(q.leaf, LeafSelector::Index(LeafIndex(9)));
        assert_eq!(q.tree_size, TreeSize(10));
        assert!(q.latest);

        let q = InclusionQuery::from_wire(&inclusion(Some(Leaf::Index(2)), Some(3)), published)
            .unwrap();
        assert_eq!(q.tree_size, TreeSize(3));
        assert!(!q.latest);

        let hash = [5u8; 32];
        let q = InclusionQuery::from_wire(
            &inclusion(Some(Leaf::LeafHash(Bytes::copy_from_slice(&hash))), Some(4)),
            published,
        )
        .unwrap();
        assert_eq!(q.leaf, LeafSelector::Hash(hash.into()));
        assert_eq!(q.check_found_index(Some(LeafIndex(3))), Ok(LeafIndex(3)));
        assert_eq!(
            q.check_found_index(Some(LeafIndex(4))),
            Err(ProtoError::LeafNotFound { size: 4 })
        );
        assert_eq!(
            q.check_found_index(None).unwrap_err().code(),
            Code::NotFound
        );
    }

    #[test]
    fn inclusion_rejections() {
        let published = TreeSize(10);
        let cases: Vec<(v1::GetInclusionProofRequest, ProtoError, Code)> = vec![
            (
                inclusion(None, None),
                ProtoError::Missing { field: "leaf" },
                Code::InvalidArgument,
            ),
            (
                inclusion(Some(Leaf::Index(10)), None),
                ProtoError::IndexOutOfRange {
                    index: 10,
                    size: 10,
                },
                Code::OutOfRange,
            ),
            (
                inclusion(Some(Leaf::Index(3)), Some(3)),
                ProtoError::IndexOutOfRange { index: 3, size: 3 },
                Code::OutOfRange,
            ),
            (
                inclusion(Some(Leaf::Index(0)), Some(0)),
                ProtoError::IndexOutOfRange { index: 0, size: 0 },
                Code::OutOfRange,
            ),
            (
                inclusion(Some(Leaf::Index(1)), Some(11)),
                ProtoError::SizeBeyondTree {
                    field: "tree_size",
                    size: 11,
                    published: 10,
                },
                Code::OutOfRange,
            ),
            (
                inclusion(Some(Leaf::LeafHash(Bytes::from_static(&[1u8; 31]))), None),
                ProtoError::BadHashLength {
                    field: "leaf_hash",
                    len: 31,
                },
                Code::InvalidArgument,
            ),
            (
                inclusion(Some(Leaf::LeafHash(Bytes::new())), None),
                ProtoError::BadHashLength {
                    field: "leaf_hash",
                    len: 0,
                },
                Code::InvalidArgument,
            ),
        ];
        for (request, expected, code) in cases {
            let err = InclusionQuery::from_wire(&request, published).unwrap_err();
            assert_eq!(err, expected, "{request:?}");
            assert_eq!(err.code(), code, "{request:?}");
        }
    }

    #[test]
    fn consistency_queries() {
        let published = TreeSize(10);
        let request = |old_size, new_size| v1::GetConsistencyProofRequest { old_size, new_size };
        let q = ConsistencyQuery::from_wire(&request(3, None), published).unwrap();
        assert_eq!(
            (q.old_size, q.new_size, q.latest),
            (TreeSize(3), TreeSize(10), true)
        );
        let q = ConsistencyQuery::from_wire(&request(4, Some(4)), published).unwrap();
        assert_eq!(
            (q.old_size, q.new_size, q.latest),
            (TreeSize(4), TreeSize(4), false)
        );

        let cases = [
            (
                request(0, None),
                ProtoError::ZeroOldSize,
                Code::InvalidArgument,
            ),
            (
                request(5, Some(4)),
                ProtoError::SizesOutOfOrder { old: 5, new: 4 },
                Code::InvalidArgument,
            ),
            (
                request(11, None),
                ProtoError::SizeBeyondTree {
                    field: "old_size",
                    size: 11,
                    published: 10,
                },
                Code::OutOfRange,
            ),
            (
                request(1, Some(12)),
                ProtoError::SizeBeyondTree {
                    field: "new_size",
                    size: 12,
                    published: 10,
                },
                Code::OutOfRange,
            ),
        ];
        for (request, expected, code) in cases {
            let err = ConsistencyQuery::from_wire(&request, published).unwrap_err();
            assert_eq!(err, expected);
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn entries_queries_are_paged_and_bounded() {
        let published = TreeSize(100);
        let request = |start, end| v1::GetEntriesRequest { start, end };
        let q = EntriesQuery::from_wire(&request(0, 5), published, &limits()).unwrap();
        assert_eq!((q.start, q.end), (LeafIndex(0), 5));
        // Cut to the page size of 8.
        let q = EntriesQuery::from_wire(&request(90, 100), published, &limits()).unwrap();
        assert_eq!((q.start, q.end), (LeafIndex(90), 98));
        assert_eq!(
            EntriesQuery::from_wire(&request(5, 5), published, &limits()).unwrap_err(),
            ProtoError::EmptyRange { start: 5, end: 5 }
        );
        let err = EntriesQuery::from_wire(&request(99, 101), published, &limits()).unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange);
        assert_eq!(
            err.to_string(),
            "end: 101 is beyond the published tree size 100"
        );
        // No overflow near u64::MAX.
        let err = EntriesQuery::from_wire(&request(u64::MAX - 1, u64::MAX), published, &limits())
            .unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange);
    }

    #[test]
    fn proofs_round_trip_and_reject_ragged_lengths() {
        let proof: Vec<Hash> = vec![[1u8; 32].into(), [2u8; 32].into(), [3u8; 32].into()];
        let wire = proof_to_wire(&proof);
        assert_eq!(wire.len(), 96);
        assert_eq!(proof_from_wire("proof", &wire).unwrap(), proof);
        assert_eq!(proof_from_wire("proof", &[]).unwrap(), Vec::<Hash>::new());
        assert_eq!(
            proof_from_wire("proof", &wire[..95]).unwrap_err(),
            ProtoError::BadProofLength {
                field: "proof",
                len: 95
            }
        );
    }

    #[test]
    fn checkpoints_and_stream_answers() {
        let wire = checkpoint_to_wire(Bytes::from_static(b"note"), 7, &Hash::from_bytes([9u8; 32]));
        let parts = CheckpointParts::from_wire(wire.clone()).unwrap();
        assert_eq!(parts.size, TreeSize(7));
        assert_eq!(parts.root, [9u8; 32].into());
        let mut bad = wire;
        bad.root = Bytes::from_static(&[0u8; 33]);
        assert_eq!(
            CheckpointParts::from_wire(bad).unwrap_err(),
            ProtoError::BadHashLength {
                field: "checkpoint.root",
                len: 33
            }
        );

        let status = Status::resource_exhausted("queue full");
        let answer = v1::AppendStreamResponse {
            sequence: 9,
            result: Some(v1::append_stream_response::Result::Error(stream_error(
                &status,
            ))),
        };
        let (sequence, result) = stream_answer(answer).unwrap();
        assert_eq!(sequence, 9);
        let err = result.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert_eq!(err.message(), "queue full");
        assert_eq!(
            stream_answer(v1::AppendStreamResponse {
                sequence: 1,
                result: None
            })
            .unwrap_err(),
            ProtoError::EmptyStreamAnswer
        );
    }

    #[test]
    fn descriptor_set_describes_the_service() {
        use prost::Message;
        let fds = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        let file = fds
            .file
            .iter()
            .find(|f| f.name() == "merklog/v1/log.proto")
            .unwrap();
        assert_eq!(file.package(), "merklog.v1");
        let service = file.service.iter().find(|s| s.name() == "Log").unwrap();
        let mut methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
        methods.sort_unstable();
        assert_eq!(
            methods,
            [
                "Append",
                "AppendStream",
                "GetCheckpoint",
                "GetConsistencyProof",
                "GetEntries",
                "GetInclusionProof",
                "GetReceipt",
                "WatchCheckpoints"
            ]
        );
        assert_eq!(
            format!("{}.{}", file.package(), service.name()),
            crate::LOG_SERVICE_NAME
        );
    }
}
