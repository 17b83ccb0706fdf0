use thiserror::Error;

/// Why an envelope was refused. Every variant names the field or the check that failed,
/// so an ingest error can be reported to the sender as is.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EventError {
    /// The bytes do not start with the envelope magic and a known version.
    #[error("not a merklog event envelope (magic {found:02x?})")]
    NotAnEvent {
        /// The first bytes seen (up to five).
        found: Vec<u8>,
    },
    /// The envelope's version byte is not one this code knows.
    #[error("event envelope version {0} is not supported (only version 1)")]
    UnsupportedVersion(u8),
    /// The bytes end inside a field.
    #[error("event envelope truncated in field {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes follow the signature.
    #[error("event envelope has {0} bytes after the signature")]
    TrailingBytes(usize),
    /// The whole envelope is larger than one log entry may be.
    #[error("event envelope is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// The envelope's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field's value breaks the format's rules.
    #[error("event field {field} is invalid: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The envelope names another source or key than the verifier it was checked with.
    #[error(
        "event is from source {source_name:?} key {key_id:08x}, not from the key {expected_name:?} {expected_key_id:08x}"
    )]
    WrongKey {
        /// The source named in the envelope.
        source_name: String,
        /// The key ID in the envelope.
        key_id: u32,
        /// The verifier's name.
        expected_name: String,
        /// The verifier's key ID.
        expected_key_id: u32,
    },
    /// The signature does not verify.
    #[error("event signature of source {source_name:?} sequence {sequence} does not verify")]
    BadSignature {
        /// The source named in the envelope.
        source_name: String,
        /// The envelope's sequence number.
        sequence: u64,
    },
    /// A key could not be parsed or used (the key parser's message).
    #[error("source key: {0}")]
    Key(String),
    /// An entry does not conform to the audit-event profile.
    #[error("audit event field {field} does not conform: {reason}")]
    Profile {
        /// The field, as a dotted path (`actor.id`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An OpenTelemetry log record cannot be encoded as a leaf.
    #[error("log record field {field} is invalid: {reason}")]
    Otlp {
        /// The field, as a path (`attributes["gen_ai.agent.id"]`, `trace_id`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}
