//! Signed sources, the reading side: the registry's status of each source, and the
//! audit of one source's events (every signature, every inclusion proof, the
//! consistency of the checkpoints used; missing numbers, equivocations, silences).
//!
//! The audit trusts the server for nothing it can check: it recomputes what is
//! missing from the events it verified itself, accepts a range as declared unused
//! only when it verified the signed declaration, and counts an equivocation only
//! when both envelopes verify under the source's key.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use merklog_event::{Event, EventKind, SourceKey, UnusedRange};
use merklog_proto::v1;

use crate::client::call;
use crate::source_pages::verified_event;
use crate::{Client, ClientError, SignedCheckpoint};

/// How many declarations the audit looks up outside the audited range (a
/// declaration numbered after the range it declares, as [`crate::Source`] writes
/// them).
const MAX_DECLARATION_LOOKUPS: usize = 256;

/// An inclusive range of sequence numbers.
pub type SequenceRange = (u64, u64);

/// Two different envelopes, both signed by the source's key, for one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EquivocationFinding {
    /// The number both carry.
    pub sequence: u64,
    /// The envelope in the log.
    pub logged: Bytes,
    /// Its index, when known.
    pub logged_index: Option<u64>,
    /// The other envelope.
    pub other: Bytes,
}

/// Consecutive events of the source further apart (by the source's timestamps)
/// than its heartbeat interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilentPeriod {
    /// The number of the event before the silence.
    pub after_sequence: u64,
    /// The number of the event after it.
    pub before_sequence: u64,
    /// The source's timestamps of both, Unix milliseconds.
    pub from_ms: u64,
    /// See `from_ms`.
    pub to_ms: u64,
}

/// What [`Client::audit_source`] verified and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAudit {
    /// The source audited.
    pub source: String,
    /// The audited range of numbers, inclusive.
    pub from: u64,
    /// See `from`.
    pub to: u64,
    /// The verifier key used.
    pub vkey: String,
    /// True when the key came from the server's registry (ListSources) rather than
    /// from the auditor: the signatures then prove only that the server's key signed.
    pub key_from_server: bool,
    /// The interval past which a silence is reported, if any.
    pub heartbeat_interval: Option<Duration>,
    /// Verified events in the range (all kinds).
    pub events: u64,
    /// Of which heartbeats.
    pub heartbeats: u64,
    /// Ranges (clipped to the audited range) declared unused by verified
    /// declarations.
    pub declared_unused: Vec<SequenceRange>,
    /// Numbers neither in the log nor declared unused.
    pub missing: Vec<SequenceRange>,
    /// Equivocations proven by two verified envelopes.
    pub equivocations: Vec<EquivocationFinding>,
    /// Silences longer than the heartbeat interval.
    pub silent_periods: Vec<SilentPeriod>,
    /// What the server claimed that the audit could not verify (ignored).
    pub unverified_claims: Vec<String>,
    /// Sizes of the checkpoints every proof was checked against (all proven
    /// consistent with each other).
    pub checkpoint_sizes: Vec<u64>,
}

impl SourceAudit {
    /// Nothing missing, no equivocation, no silence.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.equivocations.is_empty() && self.silent_periods.is_empty()
    }
}

/// Merges inclusive ranges.
pub(crate) fn merge(mut ranges: Vec<SequenceRange>) -> Vec<SequenceRange> {
    ranges.sort_unstable();
    let mut merged: Vec<SequenceRange> = Vec::new();
    for (first, last) in ranges {
        match merged.last_mut() {
            Some((_, end)) if first <= end.saturating_add(1) => *end = (*end).max(last),
            _ => merged.push((first, last)),
        }
    }
    merged
}

/// The numbers of `from..=to` that no range of `covered` holds.
pub(crate) fn uncovered(from: u64, to: u64, covered: Vec<SequenceRange>) -> Vec<SequenceRange> {
    let mut missing = Vec::new();
    let mut next = Some(from);
    for (first, last) in merge(covered) {
        let Some(at) = next else { break };
        if last < at {
            continue;
        }
        if first > to {
            break;
        }
        if first > at {
            missing.push((at, first - 1));
        }
        next = last.checked_add(1);
    }
    if let Some(at) = next
        && at <= to
    {
        missing.push((at, to));
    }
    missing
}

/// Consecutive events (by number) whose timestamps are more than `interval` apart.
pub(crate) fn silences(events: &BTreeMap<u64, Event>, interval: Duration) -> Vec<SilentPeriod> {
    let limit = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    let mut found = Vec::new();
    let mut previous: Option<&Event> = None;
    for event in events.values() {
        if let Some(before) = previous
            && event.timestamp_ms().saturating_sub(before.timestamp_ms()) > limit
        {
            found.push(SilentPeriod {
                after_sequence: before.sequence(),
                before_sequence: event.sequence(),
                from_ms: before.timestamp_ms(),
                to_ms: event.timestamp_ms(),
            });
        }
        previous = Some(event);
    }
    found
}

impl Client {
    /// Every registered source with its status, as the server reports it.
    pub async fn list_sources(&mut self) -> Result<Vec<v1::SourceStatus>, ClientError> {
        let response = call(
            "ListSources",
            &self.server,
            self.options.request_timeout,
            self.sources.list_sources(v1::ListSourcesRequest {}),
        )
        .await?;
        Ok(response.sources)
    }

    /// Audits a source's numbers `from..=to` (`to` defaults to the highest number
    /// the server reports). The key is the auditor's (`key`) or, when `None`, the
    /// one the registry reports (then [`SourceAudit::key_from_server`] is set).
    /// Silences are measured against `silence_after` or, when `None`, the
    /// registered heartbeat interval.
    ///
    /// A signature or inclusion proof that does not verify, or checkpoints that are
    /// not consistent, fail the call (verification failures); missing numbers,
    /// equivocations and silences are findings in the report.
    pub async fn audit_source(
        &mut self,
        name: &str,
        from: u64,
        to: Option<u64>,
        key: Option<SourceKey>,
        silence_after: Option<Duration>,
    ) -> Result<SourceAudit, ClientError> {
        let status = self
            .list_sources()
            .await?
            .into_iter()
            .find(|s| s.name == name);
        let (key, key_from_server) = match key {
            Some(key) => (key, false),
            None => {
                let Some(status) = &status else {
                    return Err(ClientError::Input(format!(
                        "the log has no registered source {name:?}; give its key with \
                         --source-vkey"
                    )));
                };
                let key = SourceKey::parse(&status.vkey).map_err(|e| {
                    ClientError::Malformed(format!("the registry's key of {name:?}: {e}"))
                })?;
                (key, true)
            }
        };
        if key.name() != name {
            return Err(ClientError::Input(format!(
                "the key is for the source {:?}, not {name:?}",
                key.name()
            )));
        }
        let to = match (to, &status) {
            (Some(to), _) => to,
            (None, Some(status)) if status.has_events => status.highest_sequence,
            _ => {
                return Err(ClientError::Input(format!(
                    "the log reports no events of {name:?}; give --to"
                )));
            }
        };
        if from > to {
            return Err(ClientError::Input(format!(
                "--from {from} is after --to {to}"
            )));
        }
        let heartbeat_interval = silence_after.or_else(|| {
            status
                .as_ref()
                .map(|s| s.heartbeat_interval_ms)
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
        });

        let mut events: BTreeMap<u64, Event> = BTreeMap::new();
        let mut indices: BTreeMap<u64, u64> = BTreeMap::new();
        let mut checkpoints: BTreeMap<u64, SignedCheckpoint> = BTreeMap::new();
        let mut claimed_unused: Vec<SequenceRange> = Vec::new();
        let mut equivocations = Vec::new();
        let mut unverified_claims = Vec::new();
        let mut tree_size = 0;
        let mut pages = self.source_pages(&key, from, to, 0);
        while let Some(page) = self.next_source_page(&mut pages).await? {
            tree_size = page.checkpoint.size().0;
            checkpoints.insert(tree_size, page.checkpoint);
            for (event, index) in page.events {
                let sequence = event.sequence();
                match events.get(&sequence) {
                    Some(seen) if seen.as_bytes() != event.as_bytes() => {
                        equivocations.push(EquivocationFinding {
                            sequence,
                            logged: Bytes::copy_from_slice(seen.as_bytes()),
                            logged_index: indices.get(&sequence).copied(),
                            other: Bytes::copy_from_slice(event.as_bytes()),
                        });
                    }
                    Some(_) => {}
                    None => {
                        indices.insert(sequence, index);
                        events.insert(sequence, event);
                    }
                }
            }
            claimed_unused.extend(page.declared_unused);
            for claim in page.equivocations {
                let both = verified_event(&claim.logged_envelope, claim.sequence, &key)
                    .and_then(|_| verified_event(&claim.other_envelope, claim.sequence, &key));
                match both {
                    Ok(_) if claim.logged_envelope != claim.other_envelope => {
                        equivocations.push(EquivocationFinding {
                            sequence: claim.sequence,
                            logged: claim.logged_envelope,
                            logged_index: Some(claim.logged_index),
                            other: claim.other_envelope,
                        });
                    }
                    Ok(_) => unverified_claims.push(format!(
                        "equivocation at {}: both envelopes are the same",
                        claim.sequence
                    )),
                    Err(e) => {
                        unverified_claims.push(format!("equivocation at {}: {e}", claim.sequence))
                    }
                }
            }
        }

        // Unused ranges count only with their verified, logged declaration.
        let mut verified_unused: Vec<SequenceRange> = events
            .values()
            .filter_map(|e| match e.kind() {
                Ok(EventKind::Unused(UnusedRange { first, last })) => Some((first, last)),
                _ => None,
            })
            .collect();
        let mut lookups = 0usize;
        for (first, last) in merge(claimed_unused) {
            if uncovered(first, last, verified_unused.clone()).is_empty() {
                continue;
            }
            // A declaration is usually numbered just after the range it declares.
            let found = match last.checked_add(1) {
                Some(own) if lookups < MAX_DECLARATION_LOOKUPS => {
                    lookups += 1;
                    let page = self.source_page(&key, own, own, tree_size).await?;
                    checkpoints.insert(page.checkpoint.size().0, page.checkpoint);
                    page.events.into_iter().find_map(|(e, _)| match e.kind() {
                        Ok(EventKind::Unused(r)) => Some((r.first, r.last)),
                        _ => None,
                    })
                }
                _ => None,
            };
            match found {
                Some(range) => verified_unused.push(range),
                None => unverified_claims.push(format!(
                    "numbers {first}..={last} declared unused, but no signed declaration was found"
                )),
            }
        }
        let mut covered: Vec<SequenceRange> = events.keys().map(|n| (*n, *n)).collect();
        covered.extend(verified_unused.iter().copied());
        let missing = uncovered(from, to, covered);
        let declared_unused = merge(
            verified_unused
                .iter()
                .filter(|(first, last)| *last >= from && *first <= to)
                .map(|(first, last)| ((*first).max(from), (*last).min(to)))
                .collect(),
        );

        // Every checkpoint used is consistent with the next larger one.
        let used: Vec<&SignedCheckpoint> = checkpoints.values().collect();
        for pair in used.windows(2) {
            self.prove_consistency(pair[0], pair[1]).await?;
        }

        let silent_periods = heartbeat_interval
            .map(|interval| silences(&events, interval))
            .unwrap_or_default();
        let heartbeats = events
            .values()
            .filter(|e| matches!(e.kind(), Ok(EventKind::Heartbeat)))
            .count() as u64;
        Ok(SourceAudit {
            source: name.to_owned(),
            from,
            to,
            vkey: key.to_vkey(),
            key_from_server,
            heartbeat_interval,
            events: events.len() as u64,
            heartbeats,
            declared_unused,
            missing,
            equivocations,
            silent_periods,
            unverified_claims,
            checkpoint_sizes: checkpoints.keys().copied().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_numbers_are_the_complement_of_what_is_covered() {
        assert_eq!(uncovered(0, 9, vec![]), vec![(0, 9)]);
        assert_eq!(uncovered(0, 9, vec![(0, 9)]), vec![]);
        assert_eq!(
            uncovered(0, 9, vec![(1, 1), (2, 3), (7, 20)]),
            vec![(0, 0), (4, 6)]
        );
        assert_eq!(uncovered(5, 6, vec![(0, 2), (9, 9)]), vec![(5, 6)]);
        assert_eq!(
            uncovered(0, u64::MAX, vec![(0, u64::MAX - 1)]),
            vec![(u64::MAX, u64::MAX)]
        );
        assert_eq!(uncovered(0, u64::MAX, vec![(0, u64::MAX)]), vec![]);
    }

    #[test]
    fn silences_are_gaps_between_consecutive_timestamps() {
        let signer = merklog_note::Ed25519Signer::from_seed("s.example/a", &[1; 32]).unwrap();
        let mut events = BTreeMap::new();
        for (sequence, timestamp_ms) in [(0u64, 1_000u64), (1, 2_000), (2, 9_000), (3, 9_500)] {
            let event = Event::sign(
                &signer,
                &merklog_event::EventDraft {
                    source: "s.example/a",
                    sequence,
                    timestamp_ms,
                    media_type: "text/plain",
                    payload: b"x",
                },
            )
            .unwrap();
            events.insert(sequence, event);
        }
        let found = silences(&events, Duration::from_secs(5));
        assert_eq!(
            found,
            vec![SilentPeriod {
                after_sequence: 1,
                before_sequence: 2,
                from_ms: 2_000,
                to_ms: 9_000
            }]
        );
        assert!(silences(&events, Duration::from_secs(7)).is_empty());
    }
}
