//! Completeness per source: which sequence numbers the log holds (events,
//! heartbeats and numbers declared unused), the gaps below the highest one, when the
//! source was last seen, whether it went silent, and the equivocations recorded.
//!
//! In memory only. It is rebuilt at start from the log's key index (one scan; the
//! rows carry the time their round was recorded, which is the "last seen" after a
//! restart) plus the envelopes of the few events above a source's first gap (to
//! find unused-sequence declarations), and updated after each durable append of the
//! source's events. Nothing here is acknowledged to anyone: the log is the record,
//! and this is an index over it that a restart recomputes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use merklog_event::EventKind;
use merklog_proto::v1;

use super::ranges::{RangeSet, difference};
use super::registry::RegisteredSource;

/// Gap ranges listed in a `SourceStatus` (the count is always complete).
const STATUS_MAX_GAPS: usize = 64;

/// Two envelopes signed for one source and sequence number.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Evidence {
    pub(crate) source: String,
    pub(crate) sequence: u64,
    /// The envelope in the log and its index.
    pub(crate) logged_index: u64,
    #[serde(with = "hex_bytes")]
    pub(crate) logged_envelope: Bytes,
    /// The refused envelope.
    #[serde(with = "hex_bytes")]
    pub(crate) other_envelope: Bytes,
    pub(crate) seen_unix_ms: u64,
}

mod hex_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        let text = merklog_merkle::to_hex(bytes);
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        let digits = text.as_bytes();
        if !digits.len().is_multiple_of(2) {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        digits
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("not hex"))
            })
            .collect::<Result<Vec<u8>, _>>()
            .map(Bytes::from)
    }
}

/// A change of a source's status worth a log-signed status record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Numbers `first..=last` went missing (a higher number arrived).
    GapOpened { first: u64, last: u64 },
    /// Numbers `first..=last`, missing before, arrived or were declared unused.
    GapClosed { first: u64, last: u64 },
    /// Nothing arrived for longer than the heartbeat interval.
    SilenceStarted { last_seen_ms: u64, interval_ms: u64 },
    /// Something arrived again.
    SilenceEnded { last_seen_ms: u64 },
}

/// What the tracker knows of one source.
#[derive(Debug, Default)]
struct SourceState {
    /// Events (of any kind) and declared-unused numbers in the log.
    covered: RangeSet,
    /// Numbers declared unused.
    unused: RangeSet,
    highest: Option<u64>,
    /// When the latest event or heartbeat was recorded, Unix ms (0: never).
    last_seen_ms: u64,
    silent: bool,
    /// Gaps below `highest`, as of the last update.
    gaps: Vec<(u64, u64)>,
    equivocations: Vec<Arc<Evidence>>,
    /// Its gauges, registered at its first update (a handle each, so an update
    /// does not look its series up again).
    gauges: Option<Gauges>,
}

/// A source's Prometheus gauges.
struct Gauges {
    gaps: metrics::Gauge,
    silent: metrics::Gauge,
    last_seen: metrics::Gauge,
}

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauges").finish_non_exhaustive()
    }
}

impl SourceState {
    /// Sets `source`'s gauges (`merklog_source_gaps`, `merklog_source_silent`,
    /// `merklog_source_last_seen_seconds`) to this state.
    fn publish(&mut self, source: &str) {
        let gauges = self.gauges.get_or_insert_with(|| Gauges {
            gaps: metrics::gauge!("merklog_source_gaps", "source" => source.to_owned()),
            silent: metrics::gauge!("merklog_source_silent", "source" => source.to_owned()),
            last_seen: metrics::gauge!(
                "merklog_source_last_seen_seconds",
                "source" => source.to_owned()
            ),
        });
        gauges.gaps.set(self.gaps.len() as f64);
        gauges.silent.set(if self.silent { 1.0 } else { 0.0 });
        gauges.last_seen.set(self.last_seen_ms as f64 / 1000.0);
    }

    fn refresh_gaps(&mut self) -> Vec<Change> {
        let gaps = match self.highest {
            Some(highest) => self.covered.missing_in(0, highest),
            None => Vec::new(),
        };
        let mut changes: Vec<Change> = difference(&gaps, &self.gaps)
            .into_iter()
            .map(|(first, last)| Change::GapOpened { first, last })
            .collect();
        changes.extend(
            difference(&self.gaps, &gaps)
                .into_iter()
                .map(|(first, last)| Change::GapClosed { first, last }),
        );
        self.gaps = gaps;
        changes
    }
}

/// One row of the key index, as read at start.
pub(crate) struct IndexedEvent {
    pub(crate) sequence: u64,
    pub(crate) index: u64,
    pub(crate) recorded_ms: u64,
}

/// Per-source completeness of every source seen in the log.
#[derive(Debug)]
pub(crate) struct Tracker {
    states: Mutex<HashMap<String, SourceState>>,
    /// When this process started tracking, Unix ms: a source never seen is silent
    /// once its interval has passed since then.
    started_ms: u64,
}

impl Tracker {
    pub(crate) fn new(started_ms: u64) -> Self {
        Self {
            states: Mutex::new(HashMap::new()),
            started_ms,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, SourceState>> {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start-up: a source's rows from the key index (any order).
    pub(crate) fn load(&self, source: &str, rows: &[IndexedEvent]) {
        let mut states = self.lock();
        let state = states.entry(source.to_owned()).or_default();
        for row in rows {
            state.covered.insert(row.sequence, row.sequence);
            state.highest = state.highest.max(Some(row.sequence));
            state.last_seen_ms = state.last_seen_ms.max(row.recorded_ms);
        }
        // The baseline: gaps found at start were reported before the restart.
        let _ = state.refresh_gaps();
    }

    /// The sequence numbers above `source`'s first gap, if it has gaps: where
    /// unused-sequence declarations that close them may hide.
    pub(crate) fn first_gap(&self, source: &str) -> Option<u64> {
        let states = self.lock();
        let state = states.get(source)?;
        state.gaps.first().map(|(first, _)| *first)
    }

    /// Start-up: an unused-sequence declaration found in the log.
    pub(crate) fn load_unused(&self, source: &str, first: u64, last: u64) {
        let mut states = self.lock();
        let state = states.entry(source.to_owned()).or_default();
        state.covered.insert(first, last);
        state.unused.insert(first, last);
        let _ = state.refresh_gaps();
    }

    /// Start-up: saved evidence.
    pub(crate) fn load_evidence(&self, evidence: Evidence) {
        let mut states = self.lock();
        let state = states.entry(evidence.source.clone()).or_default();
        state.equivocations.push(Arc::new(evidence));
    }

    /// Events of `source` that just became durable (new ones: duplicates change
    /// nothing), recorded at `now_ms`. Returns the status changes.
    pub(crate) fn record(
        &self,
        source: &str,
        events: &[(u64, EventKind)],
        now_ms: u64,
    ) -> Vec<Change> {
        let mut states = self.lock();
        let state = match states.get_mut(source) {
            Some(state) => state,
            None => states.entry(source.to_owned()).or_default(),
        };
        for &(sequence, kind) in events {
            state.covered.insert(sequence, sequence);
            if let EventKind::Unused(range) = kind {
                state.covered.insert(range.first, range.last);
                state.unused.insert(range.first, range.last);
            }
            state.highest = state.highest.max(Some(sequence));
        }
        if events.is_empty() {
            return Vec::new();
        }
        state.last_seen_ms = state.last_seen_ms.max(now_ms);
        let mut changes = state.refresh_gaps();
        if state.silent {
            state.silent = false;
            changes.push(Change::SilenceEnded {
                last_seen_ms: state.last_seen_ms,
            });
        }
        state.publish(source);
        changes
    }

    /// An equivocation was refused: keeps its evidence.
    pub(crate) fn add_evidence(&self, evidence: Arc<Evidence>) {
        let mut states = self.lock();
        let state = states.entry(evidence.source.clone()).or_default();
        state.equivocations.push(evidence);
    }

    /// Which of `sources` went silent or spoke again as of `now_ms`.
    pub(crate) fn check_silence(
        &self,
        sources: &[Arc<RegisteredSource>],
        now_ms: u64,
    ) -> Vec<(String, Change)> {
        let mut states = self.lock();
        let mut changes = Vec::new();
        for source in sources {
            let Some(interval) = source.heartbeat_interval else {
                continue;
            };
            let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
            let state = states.entry(source.name.clone()).or_default();
            let since = state.last_seen_ms.max(self.started_ms);
            let silent = now_ms.saturating_sub(since) > interval_ms;
            if silent && !state.silent {
                state.silent = true;
                state.publish(&source.name);
                changes.push((
                    source.name.clone(),
                    Change::SilenceStarted {
                        last_seen_ms: state.last_seen_ms,
                        interval_ms,
                    },
                ));
            }
        }
        changes
    }

    /// The wire status of a registered source.
    pub(crate) fn status(&self, source: &RegisteredSource) -> v1::SourceStatus {
        let states = self.lock();
        let state = states.get(&source.name);
        let interval_ms = source
            .heartbeat_interval
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut status = v1::SourceStatus {
            name: source.name.clone(),
            vkey: source.vkey.clone(),
            principals: source.principals.clone(),
            heartbeat_interval_ms: interval_ms,
            ..v1::SourceStatus::default()
        };
        if let Some(state) = state {
            status.has_events = state.highest.is_some();
            status.contiguous_until = state.covered.first_missing();
            status.highest_sequence = state.highest.unwrap_or(0);
            status.gaps = state
                .gaps
                .iter()
                .take(STATUS_MAX_GAPS)
                .map(|&(first, last)| v1::SequenceRange { first, last })
                .collect();
            status.gap_count = state.gaps.len() as u64;
            status.last_seen_unix_ms = state.last_seen_ms;
            status.silent = state.silent;
            status.equivocations = state.equivocations.len() as u64;
        }
        status
    }

    /// Declared-unused ranges of `source` meeting `from..=to`, and the
    /// equivocations recorded for numbers in it.
    pub(crate) fn range_facts(
        &self,
        source: &str,
        from: u64,
        to: u64,
    ) -> (Vec<(u64, u64)>, Vec<Arc<Evidence>>) {
        let states = self.lock();
        let Some(state) = states.get(source) else {
            return (Vec::new(), Vec::new());
        };
        let unused = state
            .unused
            .iter()
            .filter(|&(first, last)| last >= from && first <= to)
            .collect();
        let equivocations = state
            .equivocations
            .iter()
            .filter(|e| (from..=to).contains(&e.sequence))
            .cloned()
            .collect();
        (unused, equivocations)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use merklog_event::UnusedRange;

    #[test]
    fn gaps_open_and_close_and_unused_declarations_close_them() {
        let tracker = Tracker::new(0);
        let data = EventKind::Data;
        assert_eq!(tracker.record("s", &[(0, data), (1, data)], 10), []);
        assert_eq!(
            tracker.record("s", &[(5, data)], 20),
            [Change::GapOpened { first: 2, last: 4 }]
        );
        assert_eq!(
            tracker.record("s", &[(3, data)], 30),
            [Change::GapClosed { first: 3, last: 3 }]
        );
        let unused = EventKind::Unused(UnusedRange { first: 2, last: 2 });
        assert_eq!(
            tracker.record("s", &[(6, unused)], 40),
            [Change::GapClosed { first: 2, last: 2 }]
        );
        let (ranges, _) = tracker.range_facts("s", 0, 10);
        assert_eq!(ranges, [(2, 2)]);
    }
}
