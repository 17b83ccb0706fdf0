//! Media types with a meaning to the log: heartbeats, declarations of sequence numbers
//! that will never carry an event, and the log's own source-status records.

use crate::EventError;

/// A heartbeat: "this source is alive and had nothing to log". The payload is empty.
pub const MEDIA_TYPE_HEARTBEAT: &str = "application/vnd.merklog.heartbeat";
/// A signed declaration that a range of this source's sequence numbers was never given
/// to an event (reserved, then the source crashed), so they do not count as a gap. The
/// payload is 16 bytes: the first and the last unused number, big-endian `u64`s,
/// inclusive. The declaration's own sequence number may not lie in the range.
pub const MEDIA_TYPE_UNUSED: &str = "application/vnd.merklog.unused-sequence";
/// A status record the log appends about a source (a gap or a silence opened or
/// closed), signed with the log's key under the log's origin as source name. The
/// payload is a JSON object; its fields are documented with the server.
pub const MEDIA_TYPE_SOURCE_STATUS: &str = "application/vnd.merklog.source-status+json";

/// A range of sequence numbers declared unused, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnusedRange {
    /// The first unused number.
    pub first: u64,
    /// The last unused number.
    pub last: u64,
}

impl UnusedRange {
    /// The 16-byte payload of an unused-sequence declaration.
    pub fn to_payload(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.first.to_be_bytes());
        out[8..].copy_from_slice(&self.last.to_be_bytes());
        out
    }

    /// Reads the payload of an unused-sequence declaration with sequence number `own`.
    pub fn from_payload(payload: &[u8], own: u64) -> Result<UnusedRange, EventError> {
        let bytes: [u8; 16] = payload.try_into().map_err(|_| EventError::InvalidField {
            field: "payload",
            reason: format!(
                "an unused-sequence declaration has 16 bytes, not {}",
                payload.len()
            ),
        })?;
        let mut first = [0u8; 8];
        let mut last = [0u8; 8];
        first.copy_from_slice(&bytes[..8]);
        last.copy_from_slice(&bytes[8..]);
        let range = UnusedRange {
            first: u64::from_be_bytes(first),
            last: u64::from_be_bytes(last),
        };
        if range.first > range.last {
            return Err(EventError::InvalidField {
                field: "payload",
                reason: format!("unused range {}..={} is empty", range.first, range.last),
            });
        }
        if range.contains(own) {
            return Err(EventError::InvalidField {
                field: "payload",
                reason: format!(
                    "unused range {}..={} contains the declaration's own sequence number {own}",
                    range.first, range.last
                ),
            });
        }
        Ok(range)
    }

    /// Whether `sequence` is in the range.
    pub fn contains(self, sequence: u64) -> bool {
        (self.first..=self.last).contains(&sequence)
    }
}

/// What an event means to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An ordinary event: the payload is the source's.
    Data,
    /// A heartbeat.
    Heartbeat,
    /// A declaration that these numbers were never used.
    Unused(UnusedRange),
    /// A status record written by the log itself.
    SourceStatus,
}

impl EventKind {
    /// Classifies an event by media type, checking the reserved payload shapes.
    pub fn of(media_type: &str, payload: &[u8], sequence: u64) -> Result<EventKind, EventError> {
        match media_type {
            MEDIA_TYPE_HEARTBEAT if payload.is_empty() => Ok(EventKind::Heartbeat),
            MEDIA_TYPE_HEARTBEAT => Err(EventError::InvalidField {
                field: "payload",
                reason: format!(
                    "a heartbeat's payload is empty, not {} bytes",
                    payload.len()
                ),
            }),
            MEDIA_TYPE_UNUSED => Ok(EventKind::Unused(UnusedRange::from_payload(
                payload, sequence,
            )?)),
            MEDIA_TYPE_SOURCE_STATUS => Ok(EventKind::SourceStatus),
            _ => Ok(EventKind::Data),
        }
    }
}
