//! Sequencer configuration and its defaults.

use std::time::Duration;

use crate::{LogError, Witnessing};

/// The largest entry a tlog-tiles entry bundle can hold (big-endian u16 length prefix).
pub const MAX_ENTRY_BYTES_HARD_CAP: usize = 65_535;

/// Tuning knobs of the sequencer.
///
/// Build it with struct update syntax so new fields keep compiling:
/// `LogConfig { max_batch_wait: Duration::from_millis(2), ..LogConfig::default() }`.
///
/// Why the defaults are what they are:
/// - **Natural batching, no fixed wait (`max_batch_wait` = 0).** A round takes what is
///   queued when the writer can take it. While one round syncs, the next batch
///   accumulates, so under load batches grow by themselves with no timer; when idle, a
///   lone append is sealed at once (one fsync of latency, not fsync + T). Only after a
///   round of several small calls does the next one linger, for at most half the last
///   sync (capped at a millisecond), so concurrent small calls share a sync. A positive
///   `max_batch_wait` makes a round that starts with fewer than `max_batch_entries`
///   entries wait until T has passed since its *first* entry was queued (so an entry
///   that already waited through a previous round adds no wait); it trades latency for
///   fewer fsyncs on disks where a sync is very expensive.
/// - **`max_batch_entries` = 8192.** Large enough that one sync per round amortises to
///   well under a microsecond per entry (200,000 entries/s needs ~25 rounds/s at full
///   batches), small enough that one round's write batch (8192 × 256 B ≈ 2 MiB of
///   entries plus tiles) and its in-memory proofs stay cheap and the round's latency
///   stays in the low milliseconds.
/// - **`queue_capacity` = 65,536 entries and `queue_capacity_bytes` = 64 MiB.** About
///   eight full rounds: enough to absorb bursts while one round syncs, small enough that
///   a full queue answers RESOURCE_EXHAUSTED long before latency reaches seconds or
///   memory becomes a problem.
/// - **`max_entry_bytes` = 65,535**, the tlog-tiles bundle limit and hard cap.
/// - **`witnessing` = None**: checkpoints are published as soon as they are durable.
///   With a tlog-policy, publication waits for the witness quorum.
/// - **`append_timeout` = 10 s** (used only with `witnessing`): long enough for a few
///   witness round trips and one retry, short enough that a caller learns about a
///   missing quorum before typical client deadlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Most entries one round integrates (and most entries one append call may carry).
    pub max_batch_entries: usize,
    /// How long after its first entry was queued a non-full round may wait for more.
    pub max_batch_wait: Duration,
    /// Most entries waiting in the queue; beyond it appends get `QueueFull`.
    pub queue_capacity: usize,
    /// Most entry bytes waiting in the queue; beyond it appends get `QueueFull`.
    pub queue_capacity_bytes: usize,
    /// Largest accepted entry, at most [`MAX_ENTRY_BYTES_HARD_CAP`].
    pub max_entry_bytes: usize,
    /// Witness collection (a tlog-policy); `None` publishes every durable checkpoint
    /// at once.
    pub witnessing: Option<Witnessing>,
    /// With `witnessing`: how long an append waits for a published checkpoint covering
    /// its entries before failing with [`LogError::QuorumTimeout`] (the entries stay
    /// durable and are published later).
    pub append_timeout: Duration,
}

/// Default [`LogConfig::append_timeout`].
pub const DEFAULT_APPEND_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            max_batch_entries: 8192,
            max_batch_wait: Duration::ZERO,
            queue_capacity: 65_536,
            queue_capacity_bytes: 64 << 20,
            max_entry_bytes: MAX_ENTRY_BYTES_HARD_CAP,
            witnessing: None,
            append_timeout: DEFAULT_APPEND_TIMEOUT,
        }
    }
}

impl LogConfig {
    /// Checks the limits are usable together.
    pub fn validate(&self) -> Result<(), LogError> {
        if self.max_entry_bytes == 0 || self.max_entry_bytes > MAX_ENTRY_BYTES_HARD_CAP {
            return Err(LogError::InvalidConfig(format!(
                "max_entry_bytes is {}, it must be between 1 and {MAX_ENTRY_BYTES_HARD_CAP}",
                self.max_entry_bytes
            )));
        }
        if self.max_batch_entries == 0 {
            return Err(LogError::InvalidConfig(
                "max_batch_entries must be at least 1".into(),
            ));
        }
        if self.queue_capacity < self.max_batch_entries {
            return Err(LogError::InvalidConfig(format!(
                "queue_capacity ({}) must be at least max_batch_entries ({})",
                self.queue_capacity, self.max_batch_entries
            )));
        }
        if self.queue_capacity_bytes < self.max_entry_bytes {
            return Err(LogError::InvalidConfig(format!(
                "queue_capacity_bytes ({}) must be at least max_entry_bytes ({})",
                self.queue_capacity_bytes, self.max_entry_bytes
            )));
        }
        if self.witnessing.is_some() && self.append_timeout.is_zero() {
            return Err(LogError::InvalidConfig(
                "append_timeout must be positive with a witness policy".into(),
            ));
        }
        if let Some(witnessing) = &self.witnessing {
            witnessing.validate().map_err(LogError::InvalidConfig)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        LogConfig::default().validate().unwrap();
    }

    #[test]
    fn entry_limit_above_bundle_cap_is_refused() {
        let config = LogConfig {
            max_entry_bytes: 65_536,
            ..LogConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(LogError::InvalidConfig(m)) if m.contains("65535")
        ));
    }

    #[test]
    fn queue_smaller_than_a_batch_is_refused() {
        let config = LogConfig {
            queue_capacity: 10,
            max_batch_entries: 11,
            ..LogConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
