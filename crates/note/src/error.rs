//! The crate's single error type.

use std::path::PathBuf;

/// Why a key name was refused (C2SP signed-note, "Format").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name contains a Unicode space character.
    Space,
    /// The name contains `+`, which would make verifier keys ambiguous.
    Plus,
    /// The name contains an ASCII control character.
    ControlCharacter,
    /// The name is longer than [`crate::MAX_KEY_NAME_LEN`] bytes.
    TooLong,
}

impl std::fmt::Display for NameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameProblem::Empty => "it is empty",
            NameProblem::Space => "it contains a space",
            NameProblem::Plus => "it contains '+'",
            NameProblem::ControlCharacter => "it contains a control character",
            NameProblem::TooLong => "it is longer than 255 bytes",
        })
    }
}

/// What is wrong with a tlog-witness `add-checkpoint` body (C2SP tlog-witness,
/// "add-checkpoint").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyProblem {
    /// The body does not start with an `old <size>` line.
    MissingOldSize,
    /// The old size is not a canonical decimal u64 (the text, cut to a sane length).
    BadOldSize(String),
    /// No empty line ends the proof lines.
    MissingEmptyLine,
    /// More proof lines than the spec allows.
    TooManyProofLines {
        /// The limit (63, the spec's).
        limit: usize,
    },
    /// A proof line is not the canonical base64 of 32 bytes.
    BadProofLine {
        /// Zero-based index of the offending proof line.
        index: usize,
    },
    /// Nothing follows the empty line.
    MissingCheckpoint,
}

impl std::fmt::Display for BodyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyProblem::MissingOldSize => {
                f.write_str("it does not start with an `old <size>` line")
            }
            BodyProblem::BadOldSize(text) => write!(
                f,
                "bad old size {text:?}: expected a decimal without leading zeros"
            ),
            BodyProblem::MissingEmptyLine => {
                f.write_str("no empty line after the consistency proof")
            }
            BodyProblem::TooManyProofLines { limit } => {
                write!(f, "more than {limit} consistency proof lines")
            }
            BodyProblem::BadProofLine { index } => write!(
                f,
                "consistency proof line {index} is not the base64 encoding of a 32-byte hash"
            ),
            BodyProblem::MissingCheckpoint => f.write_str("no checkpoint after the empty line"),
        }
    }
}

/// Everything that can go wrong in this crate.
///
/// Errors never carry private key material: key-parsing errors for signer keys
/// name only the part of the format that was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    // ---- signed-note syntax ----
    /// The note (or proof file) is larger than the accepted maximum.
    #[error("note is {size} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The note is not valid UTF-8.
    #[error("note is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The note contains an ASCII control character other than newline.
    #[error("note contains control character {byte:#04x} at offset {offset}")]
    ControlCharacter {
        /// The offending byte.
        byte: u8,
        /// Its offset.
        offset: usize,
    },
    /// The note text does not end with a newline (or is empty).
    #[error("note text must be non-empty and end with a newline")]
    TextNotNewlineTerminated,
    /// No blank line separates the text from the signatures.
    #[error("note has no blank line separating text and signatures")]
    MissingSignatureSeparator,
    /// The blank line is not followed by any signature line.
    #[error("note has no signature lines")]
    NoSignatures,
    /// The signature block does not end with a newline.
    #[error("note's last signature line does not end with a newline")]
    SignatureBlockUnterminated,
    /// A signature line does not start with an em dash and a space.
    #[error("signature line {line} does not start with \"— \"")]
    SignatureLinePrefix {
        /// 1-based index of the signature line.
        line: usize,
    },
    /// A signature line has no space between key name and signature.
    #[error("signature line {line} has no space between key name and signature")]
    SignatureLineFields {
        /// 1-based index of the signature line.
        line: usize,
    },
    /// A signature is not canonical standard base64.
    #[error("signature line {line} is not canonical base64")]
    SignatureEncoding {
        /// 1-based index of the signature line.
        line: usize,
    },
    /// A signature is shorter than a 4-byte key ID plus one byte.
    #[error("signature line {line} carries {len} bytes, fewer than key ID + signature")]
    SignatureTooShort {
        /// 1-based index of the signature line.
        line: usize,
        /// Decoded length.
        len: usize,
    },
    /// The note carries more signatures than accepted.
    #[error("note carries more than {max} signatures")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// A key name breaks the signed-note rules.
    #[error("invalid key name {name:?}: {problem}")]
    InvalidKeyName {
        /// The name (possibly truncated to a sane length).
        name: String,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// A tlog-witness `add-checkpoint` body breaks the spec's grammar.
    #[error("malformed add-checkpoint body: {0}")]
    InvalidAddCheckpoint(BodyProblem),

    // ---- verification ----
    /// A signature from a known key does not verify.
    #[error("invalid signature for key {name}+{key_id:08x}")]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
    },
    /// No signature from a known key is present.
    #[error("note has no signature from a known key (signatures seen: {seen:?})")]
    NoKnownSignature {
        /// `name+keyid` of every signature line present.
        seen: Vec<String>,
    },
    /// Two verifiers share a (name, key ID) pair.
    #[error("ambiguous key {name}+{key_id:08x}: two verifiers share it")]
    AmbiguousKey {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
    },
    /// A signer returned an error (e.g. a remote KMS failed).
    #[error("signer {name} failed: {reason}")]
    SignerFailed {
        /// Signer name.
        name: String,
        /// Reason given by the signer.
        reason: String,
    },

    // ---- keys ----
    /// A verifier or signer key string does not have the expected shape.
    #[error("malformed {kind} key: {reason}")]
    KeyFormat {
        /// `"verifier"` or `"signer"`.
        kind: &'static str,
        /// Which part is wrong.
        reason: &'static str,
    },
    /// The key ID written in a key string does not match the key.
    #[error("key ID mismatch for {name}: key text says {stated:08x}, key hashes to {computed:08x}")]
    KeyIdMismatch {
        /// Key name.
        name: String,
        /// Key ID written in the text.
        stated: u32,
        /// Key ID computed from name, type and public key.
        computed: u32,
    },
    /// The key's signature-type byte is not supported here.
    #[error("unsupported signature type {alg:#04x}")]
    UnsupportedAlgorithm {
        /// The signature type byte.
        alg: u8,
    },
    /// The key material has the wrong length.
    #[error("key material is {got} bytes, expected {expected}")]
    WrongKeyLength {
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// The public key is not a valid Ed25519 point.
    #[error("invalid Ed25519 public key for {name}")]
    InvalidPublicKey {
        /// Key name.
        name: String,
    },
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Randomness(String),

    // ---- checkpoints ----
    /// The checkpoint text has fewer than three lines, or is not newline-terminated.
    #[error("checkpoint text must be at least three newline-terminated lines")]
    CheckpointTooShort,
    /// The checkpoint origin line is empty.
    #[error("checkpoint origin line is empty")]
    CheckpointEmptyOrigin,
    /// The tree size line is not a canonical decimal u64.
    #[error("checkpoint tree size {line:?} is not a decimal number without leading zeros")]
    CheckpointSize {
        /// The offending line.
        line: String,
    },
    /// The root hash line is not canonical base64 of 32 bytes.
    #[error("checkpoint root hash {line:?} is not base64 of 32 bytes")]
    CheckpointRoot {
        /// The offending line.
        line: String,
    },
    /// An extension line is empty, or a field contains a newline.
    #[error("checkpoint line {line} is empty or contains a newline")]
    CheckpointBadLine {
        /// 1-based line number in the checkpoint text.
        line: usize,
    },
    /// The checkpoint's origin is not the expected one.
    #[error("checkpoint origin is {got:?}, expected {expected:?}")]
    OriginMismatch {
        /// Expected origin.
        expected: String,
        /// Origin in the checkpoint.
        got: String,
    },

    // ---- cosignatures ----
    /// A cosignature payload is not 8 + 64 bytes.
    #[error("cosignature is {got} bytes, expected 72 (timestamp + Ed25519 signature)")]
    CosignatureLength {
        /// Payload length.
        got: usize,
    },
    /// A cosignature timestamp exceeds 2^63 - 1.
    #[error("cosignature timestamp {time} exceeds 2^63-1")]
    TimestampOutOfRange {
        /// The timestamp.
        time: u64,
    },
    /// The signature line belongs to another key than this verifier's.
    #[error("signature is by {got_name}+{got_id:08x}, not by {expected_name}+{expected_id:08x}")]
    KeyMismatch {
        /// This verifier's name.
        expected_name: String,
        /// This verifier's key ID.
        expected_id: u32,
        /// The signature line's name.
        got_name: String,
        /// The signature line's key ID.
        got_id: u32,
    },

    // ---- tlog-proof ----
    /// The proof does not start with the `c2sp.org/tlog-proof@v1` line.
    #[error("proof does not start with \"c2sp.org/tlog-proof@v1\\n\"")]
    ProofHeader,
    /// The `extra` line is malformed.
    #[error("proof extra line is not \"extra <base64>\"")]
    ProofExtra,
    /// The `index` line is malformed.
    #[error("proof index line is not \"index <decimal>\" without leading zeros")]
    ProofIndex,
    /// An inclusion-proof hash line is not base64 of 32 bytes.
    #[error("proof hash line {line} is not base64 of 32 bytes")]
    ProofHash {
        /// 1-based index of the hash line.
        line: usize,
    },
    /// More hashes than any inclusion proof in a 2^64-leaf tree can have.
    #[error("proof has more than {max} hashes")]
    ProofTooManyHashes {
        /// The limit.
        max: usize,
    },
    /// The proof ends before the empty line and checkpoint.
    #[error("proof is truncated before the checkpoint")]
    ProofTruncated,
    /// The index is not below the checkpoint's tree size.
    #[error("entry index {index} is not below the checkpoint tree size {size}")]
    IndexBeyondCheckpoint {
        /// Entry index.
        index: u64,
        /// Checkpoint size.
        size: u64,
    },
    /// The Merkle inclusion proof does not verify.
    #[error("inclusion proof does not verify: {0}")]
    Inclusion(#[from] merklog_merkle::MerkleError),

    // ---- tlog-policy ----
    /// A policy line is malformed.
    #[error("policy line {line}: {reason}")]
    PolicySyntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A policy key is malformed or of the wrong type.
    #[error("policy line {line}: bad key: {source}")]
    PolicyKey {
        /// 1-based line number.
        line: usize,
        /// The key error.
        source: Box<NoteError>,
    },
    /// A policy name is defined twice, or is the reserved `none`.
    #[error("policy line {line}: name {name:?} is already defined or reserved")]
    PolicyDuplicateName {
        /// 1-based line number.
        line: usize,
        /// The name.
        name: String,
    },
    /// Two logs or two witnesses wrap the same public key.
    #[error("policy line {line}: duplicate public key")]
    PolicyDuplicateKey {
        /// 1-based line number.
        line: usize,
    },
    /// A group or quorum refers to a name not defined on an earlier line.
    #[error("policy line {line}: name {name:?} is not defined on an earlier line")]
    PolicyUndefinedName {
        /// 1-based line number.
        line: usize,
        /// The name.
        name: String,
    },
    /// A name is listed as a group member more than once (or is `none`).
    #[error(
        "policy line {line}: {name:?} is already a member of a group, or is not a valid member"
    )]
    PolicyMemberReused {
        /// 1-based line number.
        line: usize,
        /// The name.
        name: String,
    },
    /// A group threshold is not `any`, `all` or a decimal k with 1 <= k <= n.
    #[error("policy line {line}: threshold {threshold:?} is not any, all or 1..={members}")]
    PolicyThreshold {
        /// 1-based line number.
        line: usize,
        /// The threshold token.
        threshold: String,
        /// Number of members.
        members: usize,
    },
    /// The policy has no quorum line, or more than one.
    #[error("policy must have exactly one quorum line (found {found})")]
    PolicyQuorumCount {
        /// Number of quorum lines found.
        found: usize,
    },
    /// The policy exceeds this implementation's limits.
    #[error("policy exceeds the limit of {max} {what}")]
    PolicyLimit {
        /// What was counted.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// No log in the policy has a key named after the checkpoint's origin.
    #[error("no log in the policy has origin {origin:?}")]
    UnknownLog {
        /// The checkpoint's origin.
        origin: String,
    },
    /// The witnesses that cosigned do not satisfy the quorum.
    #[error("witness quorum not satisfied; valid cosignatures from {cosigned:?}")]
    QuorumNotSatisfied {
        /// Policy names of the witnesses whose cosignatures verified.
        cosigned: Vec<String>,
    },

    // ---- key files ----
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    KeyFileIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A signer key file can be read by group or others.
    #[error(
        "key file {path} is accessible by group or others (mode {mode:04o}); \
         fix it with `chmod 600 {path}`"
    )]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}
