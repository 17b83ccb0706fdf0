//! What a pack holds, as data, and what follows from it: which events the selection
//! covers, what is missing, who cosigned. Pure: the exporter fills a [`Pack`] from
//! verified answers, the verifier from verified files, and both derive the same
//! [`Findings`] with the same code.

use std::collections::BTreeMap;

use merklog_event::profile::AuditEvent;
use merklog_event::{Event, EventKind, SourceKey};
use merklog_merkle::Hash;
use merklog_note::{Ed25519Verifier, Note, Policy, SignedCheckpoint, Verifier as _};

use crate::SequenceRange;
use crate::query::QueryFilter;
use crate::sources::{merge, uncovered};

/// Which of a source's events a pack is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The source's name.
    pub source: String,
    /// The first sequence number looked at.
    pub from_sequence: u64,
    /// The last sequence number looked at (inclusive).
    pub to_sequence: u64,
    /// Only events whose signed source timestamp is at or after this (Unix ms).
    pub since_ms: Option<u64>,
    /// Only events whose signed source timestamp is before this (Unix ms).
    pub until_ms: Option<u64>,
    /// Only events whose payload is an audit event matching these terms.
    pub query: Option<QueryTerms>,
}

/// Terms on the audit event (`ai-audit/v1` profile document) an envelope carries as
/// its payload; every given term must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryTerms {
    /// The actor's id.
    pub actor: Option<String>,
    /// The model's id.
    pub model: Option<String>,
    /// The action.
    pub action: Option<String>,
}

impl QueryTerms {
    /// Whether no term is given.
    pub fn is_empty(&self) -> bool {
        self.actor.is_none() && self.model.is_none() && self.action.is_none()
    }

    /// Whether the event's payload is an audit event matching every term. Events
    /// without one (heartbeats, declarations, other payloads) never match.
    pub fn matches(&self, event: &Event) -> bool {
        let filter = QueryFilter {
            actor: self.actor.clone(),
            model: self.model.clone(),
            action: self.action.clone(),
            ..QueryFilter::default()
        };
        AuditEvent::from_leaf(event.payload())
            .is_some_and(|audit| filter.matches(&audit, None, audit.time_unix_ms().unwrap_or(0)))
    }

    /// `actor = "a", model = "m"`, for people.
    pub fn text(&self) -> String {
        [
            ("actor", &self.actor),
            ("model", &self.model),
            ("action", &self.action),
        ]
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name} = {v:?}")))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// What a query selection can and cannot show, said in the manifest and the report.
pub const QUERY_CAVEAT: &str = "Selected by a query: each selected event is proven to be \
     in the log, but a query cannot prove that no matching event was left out. \
     Completeness is judged only over this source's own sequence numbers, from the \
     first to the last selected event; matching events numbered before or after them \
     may exist.";

impl Selection {
    /// Whether a time window or a query narrows the selection, so that completeness
    /// is judged from the first to the last selected event only.
    pub fn has_window(&self) -> bool {
        self.since_ms.is_some() || self.until_ms.is_some() || self.query.is_some()
    }

    /// Whether an event of the scanned numbers is selected: in the window, and
    /// matching the query when there is one.
    pub fn selects(&self, event: &Event) -> bool {
        self.in_window(event.timestamp_ms()) && self.query.as_ref().is_none_or(|q| q.matches(event))
    }

    /// The caveat on completeness a query selection carries.
    pub fn caveat(&self) -> Option<&'static str> {
        self.query.as_ref().map(|_| QUERY_CAVEAT)
    }

    /// Whether a source timestamp lies in the window (always, without one).
    pub fn in_window(&self, timestamp_ms: u64) -> bool {
        self.since_ms.is_none_or(|since| timestamp_ms >= since)
            && self.until_ms.is_none_or(|until| timestamp_ms < until)
    }
}

/// One event in a pack: its envelope, its index in the log and its inclusion proof
/// against the pack's checkpoint.
#[derive(Debug, Clone)]
pub struct PackEvent {
    /// The parsed envelope (its bytes are the log entry).
    pub event: Event,
    /// The entry's index in the log.
    pub index: u64,
    /// The RFC 9162 inclusion proof against the pack's checkpoint.
    pub proof: Vec<Hash>,
}

/// An earlier checkpoint and the consistency proof from it to the pack's checkpoint.
#[derive(Debug, Clone)]
pub struct EarlierCheckpoint {
    /// The earlier checkpoint.
    pub checkpoint: SignedCheckpoint,
    /// The RFC 9162 consistency proof from it to the pack's checkpoint.
    pub consistency: Vec<Hash>,
}

/// The COSE receipts of a pack's events: one tree head signed by the log's receipt
/// key at the checkpoint's size, from which each event's receipt is assembled with
/// its inclusion proof (nothing leaf-specific is signed in an RFC 9942 receipt).
#[derive(Debug, Clone)]
pub struct PackReceipts {
    /// The receipt key.
    pub key: merklog_receipt::PublicKey,
    /// The verified signed tree head of the checkpoint's size and root.
    pub head: merklog_receipt::SignedTreeHead,
}

/// Everything a pack holds, verified.
#[derive(Debug, Clone)]
pub struct Pack {
    /// What was selected.
    pub selection: Selection,
    /// The log's verifier key.
    pub log_key: Ed25519Verifier,
    /// The witness policy's exact text, when the exporter had one.
    pub policy_text: Option<String>,
    /// The source's verifier key.
    pub source_key: SourceKey,
    /// The checkpoint every inclusion proof is against.
    pub checkpoint: SignedCheckpoint,
    /// Earlier checkpoints, each proven consistent with `checkpoint`.
    pub earlier: Vec<EarlierCheckpoint>,
    /// The events, by sequence number.
    pub events: BTreeMap<u64, PackEvent>,
    /// Second envelopes for numbers that already have an event in `events`, both
    /// signed by the source: equivocation evidence. Sorted by number, then bytes.
    pub equivocations: Vec<Event>,
    /// The events' COSE receipts; `None` only when the pack holds no event.
    pub receipts: Option<PackReceipts>,
}

/// Why an event is in the pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Selected: in the sequence range and, with a window or a query, in it or
    /// matching it.
    Selected,
    /// Between selected events by number, but outside the time window or not matching
    /// the query: included so the completeness of the numbers in between can be
    /// checked.
    Context,
    /// Outside the selected numbers: a signed declaration that some of them are unused.
    Declaration,
}

impl Role {
    /// The word used in the report.
    pub fn word(self) -> &'static str {
        match self {
            Role::Selected => "selected",
            Role::Context => "context",
            Role::Declaration => "declaration",
        }
    }
}

/// A witness whose cosignature on the checkpoint verified under the pack's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigner {
    /// The witness's name in the policy.
    pub name: String,
    /// The cosignature's timestamp, Unix seconds.
    pub timestamp: u64,
}

/// What follows from a pack's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    /// The numbers whose completeness is judged: the whole range without a window,
    /// from the first to the last selected event with one; `None` when nothing was
    /// selected.
    pub span: Option<SequenceRange>,
    /// Each event's role.
    pub roles: BTreeMap<u64, Role>,
    /// Numbers of the span neither in the pack nor declared unused.
    pub missing: Vec<SequenceRange>,
    /// Numbers of the span declared unused by a declaration in the pack.
    pub declared_unused: Vec<SequenceRange>,
    /// Numbers carrying two different signed envelopes.
    pub equivocations: Vec<u64>,
    /// Selected heartbeats.
    pub heartbeats: u64,
    /// Witnesses whose cosignatures verified under the pack's policy.
    pub cosigners: Vec<Cosigner>,
    /// Names on the checkpoint's other signature lines, not verified (no policy in
    /// the pack, or a key the policy does not list).
    pub unverified_signers: Vec<String>,
}

impl Findings {
    /// No number of the span missing and no equivocation.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.equivocations.is_empty()
    }

    /// How many numbers are missing.
    pub fn missing_count(&self) -> u64 {
        self.missing
            .iter()
            .map(|(first, last)| (last - first).saturating_add(1))
            .sum()
    }

    /// How many events have a role.
    pub fn count(&self, role: Role) -> u64 {
        self.roles.values().filter(|r| **r == role).count() as u64
    }

    /// The latest verified cosignature time (Unix seconds): what the pack is "as of".
    pub fn as_of(&self) -> Option<u64> {
        self.cosigners.iter().map(|c| c.timestamp).max()
    }
}

/// A problem with the pack's contents: the event number it concerns, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentProblem {
    /// The event's number.
    pub sequence: u64,
    /// Why it cannot be in the pack.
    pub reason: String,
}

fn declared(event: &Event) -> Option<SequenceRange> {
    match event.kind() {
        Ok(EventKind::Unused(range)) => Some((range.first, range.last)),
        _ => None,
    }
}

fn intersects((first, last): SequenceRange, (from, to): SequenceRange) -> bool {
    first <= to && last >= from
}

/// The span of a selection over a set of events (see [`Findings::span`]).
pub fn span_of(selection: &Selection, events: &BTreeMap<u64, Event>) -> Option<SequenceRange> {
    if !selection.has_window() {
        return (selection.from_sequence <= selection.to_sequence)
            .then_some((selection.from_sequence, selection.to_sequence));
    }
    let in_window = |(n, e): (&u64, &Event)| selection.selects(e).then_some(*n);
    let range = selection.from_sequence..=selection.to_sequence;
    let first = events.range(range.clone()).find_map(in_window)?;
    let last = events.range(range).rev().find_map(in_window)?;
    Some((first, last))
}

/// The role of each event, or the first event that has no business in the pack.
pub fn roles(
    selection: &Selection,
    span: Option<SequenceRange>,
    events: &BTreeMap<u64, Event>,
) -> Result<BTreeMap<u64, Role>, ContentProblem> {
    let mut roles = BTreeMap::new();
    for (sequence, event) in events {
        let in_span = span.is_some_and(|(first, last)| (first..=last).contains(sequence));
        let role = if in_span && selection.selects(event) {
            Role::Selected
        } else if in_span {
            Role::Context
        } else if declared(event).is_some_and(|r| span.is_some_and(|s| intersects(r, s))) {
            Role::Declaration
        } else {
            return Err(ContentProblem {
                sequence: *sequence,
                reason: "outside the selected numbers and not a declaration of unused ones \
                         among them"
                    .into(),
            });
        };
        roles.insert(*sequence, role);
    }
    Ok(roles)
}

/// Verifies the checkpoint's cosignatures from the policy's witnesses, returning
/// who cosigned when, and the names on the other signature lines.
pub fn cosigners(
    checkpoint: &SignedCheckpoint,
    log_key: &Ed25519Verifier,
    policy: Option<&Policy>,
) -> Result<(Vec<Cosigner>, Vec<String>), String> {
    let note = Note::parse(checkpoint.note()).map_err(|e| e.to_string())?;
    let mut cosigners = Vec::new();
    let mut unverified = Vec::new();
    for signature in note.signatures() {
        if signature.name() == log_key.name() && signature.key_id() == log_key.key_id() {
            continue;
        }
        let witness = policy.and_then(|p| {
            p.witnesses().iter().find(|w| {
                w.verifier.name() == signature.name() && w.verifier.key_id() == signature.key_id()
            })
        });
        match witness {
            Some(witness) => {
                let timestamp = witness
                    .verifier
                    .verify_cosignature(note.text(), signature)
                    .map_err(|e| format!("the cosignature of {}: {e}", witness.name))?;
                cosigners.push(Cosigner {
                    name: witness.name.clone(),
                    timestamp,
                });
            }
            None => unverified.push(signature.name().to_owned()),
        }
    }
    cosigners.sort_by(|a, b| a.name.cmp(&b.name).then(a.timestamp.cmp(&b.timestamp)));
    unverified.sort();
    unverified.dedup();
    Ok((cosigners, unverified))
}

/// Derives the findings from a pack's (verified) contents.
pub fn analyze(pack: &Pack, policy: Option<&Policy>) -> Result<Findings, (Option<u64>, String)> {
    let events: BTreeMap<u64, Event> = pack
        .events
        .iter()
        .map(|(n, e)| (*n, e.event.clone()))
        .collect();
    let span = span_of(&pack.selection, &events);
    let roles = roles(&pack.selection, span, &events).map_err(|p| (Some(p.sequence), p.reason))?;
    let ranges: Vec<SequenceRange> = events.values().filter_map(declared).collect();
    let (missing, declared_unused) = match span {
        Some((from, to)) => {
            let mut covered: Vec<SequenceRange> = events
                .keys()
                .filter(|n| (from..=to).contains(*n))
                .map(|n| (*n, *n))
                .collect();
            covered.extend(ranges.iter().copied());
            let clipped = ranges
                .iter()
                .filter(|r| intersects(**r, (from, to)))
                .map(|(first, last)| ((*first).max(from), (*last).min(to)))
                .collect();
            (uncovered(from, to, covered), merge(clipped))
        }
        None => (Vec::new(), Vec::new()),
    };
    let mut equivocations: Vec<u64> = pack.equivocations.iter().map(Event::sequence).collect();
    equivocations.dedup();
    let heartbeats = roles
        .iter()
        .filter(|(n, role)| {
            **role == Role::Selected
                && events
                    .get(*n)
                    .is_some_and(|e| matches!(e.kind(), Ok(EventKind::Heartbeat)))
        })
        .count() as u64;
    let (cosigners, unverified_signers) =
        cosigners(&pack.checkpoint, &pack.log_key, policy).map_err(|e| (None, e))?;
    Ok(Findings {
        span,
        roles,
        missing,
        declared_unused,
        equivocations,
        heartbeats,
        cosigners,
        unverified_signers,
    })
}

/// Ranges for people: `3, 7..=9`.
pub fn ranges_text(ranges: &[SequenceRange]) -> String {
    ranges
        .iter()
        .map(|(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}..={last}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Unix time in milliseconds, UTC, RFC 3339.
pub fn time_text(unix_ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_millis(time).to_string()
}
