//! Queries over audit events (`merklog.v1.Query`), verified: every page's checkpoint
//! (signature, witness policy, consistency with what was seen before), every
//! entry's inclusion proof against it, and that every returned entry is an audit
//! event matching the filters and the time window, in time order.
//!
//! What a verified answer proves: each returned entry is in the log at its index.
//! What it does not prove: that no matching entry was left out; the server could
//! omit some. Only per-source sequence numbers make that checkable:
//! [`Client::query_completeness`] pages through the source's events over the
//! matched numbers and names numbers missing from the log and matching events the
//! query left out.

use std::collections::BTreeSet;

use bytes::Bytes;
use merklog_event::profile::AuditEvent;
use merklog_event::{Event, SourceKey, looks_like_event};
use merklog_merkle::{LeafIndex, hash_leaf};
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1;

use crate::client::call;
use crate::sources::SequenceRange;
use crate::{Client, ClientError, SignedCheckpoint};

/// What a query asks for: every given filter must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryFilter {
    /// The actor's id.
    pub actor: Option<String>,
    /// The model's id.
    pub model: Option<String>,
    /// The action.
    pub action: Option<String>,
    /// The source of a signed event.
    pub source: Option<String>,
    /// Event times from this one (Unix ms, inclusive).
    pub since_ms: u64,
    /// Event times before this one (Unix ms, exclusive); `None`: no bound.
    pub until_ms: Option<u64>,
}

/// One verified match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueriedEvent {
    /// The entry's index in the log.
    pub index: u64,
    /// The time it is filed at, Unix ms.
    pub time_ms: u64,
    /// The entry's exact bytes.
    pub entry: Bytes,
    /// The audit event it carries.
    pub event: AuditEvent,
    /// For a signed source event: its source and sequence number.
    pub signed: Option<(String, u64)>,
}

/// A verified answer: every event's proof checked against `checkpoint`.
#[derive(Debug, Clone)]
pub struct QueryAnswer {
    /// The checkpoint every proof was checked against.
    pub checkpoint: SignedCheckpoint,
    /// The matches, in time order.
    pub events: Vec<QueriedEvent>,
}

/// What [`Client::query_completeness`] found for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCompleteness {
    /// The source.
    pub source: String,
    /// The numbers checked: from the first matched number to the last, inclusive
    /// (`None` when nothing matched).
    pub range: Option<SequenceRange>,
    /// Events of the source in that range, verified.
    pub events: u64,
    /// Numbers in the range the log does not hold.
    pub missing: Vec<SequenceRange>,
    /// Indexes of verified events of the source in the range that match the query
    /// but were not returned by it.
    pub left_out: Vec<u64>,
}

impl SourceCompleteness {
    /// Nothing missing, nothing left out.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.left_out.is_empty()
    }
}

/// The audit event an entry carries, and for a signed event its envelope: a profile
/// document, or an envelope whose payload is one.
pub(crate) fn audit_event(entry: &[u8]) -> Option<(AuditEvent, Option<Event>)> {
    let envelope = looks_like_event(entry)
        .then(|| Event::parse(entry).ok())
        .flatten();
    let event = AuditEvent::from_leaf(entry).or_else(|| {
        envelope
            .as_ref()
            .and_then(|e| AuditEvent::from_leaf(e.payload()))
    })?;
    Some((event, envelope))
}

impl QueryFilter {
    fn check(&self) -> Result<(), ClientError> {
        if self.actor.is_none()
            && self.model.is_none()
            && self.action.is_none()
            && self.source.is_none()
        {
            return Err(ClientError::Input(
                "give at least one of --actor, --model, --action, --source".into(),
            ));
        }
        if self.until_ms.is_some_and(|until| until <= self.since_ms) {
            return Err(ClientError::Input(
                "the time window is empty: --until must be after --since".into(),
            ));
        }
        Ok(())
    }

    /// Whether an audit event (and its envelope) filed at `time_ms` matches.
    pub(crate) fn matches(
        &self,
        event: &AuditEvent,
        envelope: Option<&Event>,
        time_ms: u64,
    ) -> bool {
        let same = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        same(&self.actor, Some(&event.actor.id))
            && same(&self.action, Some(&event.action))
            && same(
                &self.model,
                event.model.as_ref().and_then(|m| m.id.as_deref()),
            )
            && same(&self.source, envelope.map(Event::source))
            && time_ms >= self.since_ms
            && self.until_ms.is_none_or(|until| time_ms < until)
    }
}

/// Checks one served event: its proof, and that it matches the filter.
fn verify_served(
    filter: &QueryFilter,
    served: v1::QueriedEvent,
    checkpoint: &SignedCheckpoint,
) -> Result<QueriedEvent, ClientError> {
    let index = served.index;
    if index >= checkpoint.size().0 {
        return Err(ClientError::Malformed(format!(
            "QueryEvents returned index {index}, beyond the checkpoint's size {}",
            checkpoint.size()
        )));
    }
    let proof = proof_from_wire("inclusion_proof", &served.inclusion_proof)
        .map_err(|e| ClientError::Malformed(e.to_string()))?;
    Client::check_inclusion(
        &hash_leaf(&served.entry),
        LeafIndex(index),
        &proof,
        checkpoint,
    )?;
    let not_matching = |why: &str| {
        ClientError::Malformed(format!(
            "QueryEvents returned entry {index}, which {why}: the server answers wrongly"
        ))
    };
    let (event, envelope) =
        audit_event(&served.entry).ok_or_else(|| not_matching("is not an audit event"))?;
    // The time it is filed at is the event's own when it has one.
    let own_time = event
        .time_unix_ms()
        .or_else(|| envelope.as_ref().map(Event::timestamp_ms));
    if own_time.is_some_and(|t| t != served.time_unix_ms) {
        return Err(not_matching("is filed at another time than it carries"));
    }
    if !filter.matches(&event, envelope.as_ref(), served.time_unix_ms) {
        return Err(not_matching("does not match the query"));
    }
    Ok(QueriedEvent {
        index,
        time_ms: served.time_unix_ms,
        entry: served.entry,
        signed: envelope.map(|e| (e.source().to_owned(), e.sequence())),
        event,
    })
}

impl Client {
    /// Every entry matching `filter` (up to `limit`), verified (see the module docs),
    /// all against ONE checkpoint: the first page's (the latest published), which
    /// the next pages are asked for by size.
    pub async fn query_events(
        &mut self,
        filter: &QueryFilter,
        limit: Option<usize>,
    ) -> Result<QueryAnswer, ClientError> {
        filter.check()?;
        let mut tree_size = 0u64;
        let mut token = Bytes::new();
        let mut answer: Option<QueryAnswer> = None;
        loop {
            let response = call(
                "QueryEvents",
                &self.server,
                self.options.request_timeout,
                self.query.query_events(v1::QueryEventsRequest {
                    actor: filter.actor.clone().unwrap_or_default(),
                    model: filter.model.clone().unwrap_or_default(),
                    action: filter.action.clone().unwrap_or_default(),
                    source: filter.source.clone().unwrap_or_default(),
                    since_unix_ms: filter.since_ms,
                    until_unix_ms: filter.until_ms.unwrap_or(0),
                    tree_size,
                    page_size: 0,
                    page_token: token.clone(),
                }),
            )
            .await?;
            let Some(wire) = response.checkpoint else {
                return Err(ClientError::Malformed(
                    "QueryEvents answered without a checkpoint".into(),
                ));
            };
            let checkpoint = self.trust.open_wire(wire)?;
            if tree_size != 0 && checkpoint.size().0 != tree_size {
                return Err(ClientError::Malformed(format!(
                    "asked for tree size {tree_size}, QueryEvents answered with {}",
                    checkpoint.size()
                )));
            }
            self.observe(&checkpoint, tree_size == 0).await?;
            tree_size = checkpoint.size().0;
            let answer = answer.get_or_insert_with(|| QueryAnswer {
                checkpoint: checkpoint.clone(),
                events: Vec::new(),
            });
            for served in response.events {
                let event = verify_served(filter, served, &checkpoint)?;
                if let Some(previous) = answer.events.last()
                    && previous.time_ms > event.time_ms
                {
                    return Err(ClientError::Malformed(format!(
                        "QueryEvents returned entry {} out of time order",
                        event.index
                    )));
                }
                answer.events.push(event);
            }
            if let Some(limit) = limit
                && answer.events.len() >= limit
            {
                answer.events.truncate(limit);
                break;
            }
            if response.next_page_token.is_empty() {
                break;
            }
            if response.next_page_token == token {
                return Err(ClientError::Malformed(
                    "QueryEvents repeated its page token".into(),
                ));
            }
            token = response.next_page_token;
        }
        answer.ok_or_else(|| ClientError::Malformed("QueryEvents answered nothing".into()))
    }

    /// Checks that `answer` left out nothing of `source` between its first and
    /// last matched sequence numbers: pages through the source's events there
    /// (GetSourceEvents, against the answer's checkpoint), verifying each signature
    /// (with `key`, or the registry's key when `None`) and proof, and names numbers
    /// the log does not hold and matching events the answer does not list.
    pub async fn query_completeness(
        &mut self,
        filter: &QueryFilter,
        answer: &QueryAnswer,
        source: &str,
        key: Option<SourceKey>,
    ) -> Result<SourceCompleteness, ClientError> {
        let numbers: BTreeSet<u64> = answer
            .events
            .iter()
            .filter_map(|e| e.signed.as_ref())
            .filter(|(s, _)| s == source)
            .map(|(_, n)| *n)
            .collect();
        let (Some(&from), Some(&to)) = (numbers.first(), numbers.last()) else {
            return Ok(SourceCompleteness {
                source: source.to_owned(),
                range: None,
                events: 0,
                missing: Vec::new(),
                left_out: Vec::new(),
            });
        };
        let key = match key {
            Some(key) => key,
            None => {
                let status = self
                    .list_sources()
                    .await?
                    .into_iter()
                    .find(|s| s.name == source)
                    .ok_or_else(|| {
                        ClientError::Input(format!("the log has no registered source {source:?}"))
                    })?;
                SourceKey::parse(&status.vkey).map_err(|e| {
                    ClientError::Malformed(format!("the registry's key of {source:?}: {e}"))
                })?
            }
        };
        let returned: BTreeSet<u64> = answer.events.iter().map(|e| e.index).collect();
        let tree_size = answer.checkpoint.size().0;
        let mut held: Vec<SequenceRange> = Vec::new();
        let mut left_out = Vec::new();
        let mut events = 0u64;
        let mut pages = self.source_pages(&key, from, to, tree_size);
        while let Some(page) = self.next_source_page(&mut pages).await? {
            if page.checkpoint.root() != answer.checkpoint.root() {
                return Err(ClientError::Malformed(
                    "GetSourceEvents answered with another checkpoint than the query's".into(),
                ));
            }
            for (event, index) in &page.events {
                events += 1;
                held.push((event.sequence(), event.sequence()));
                let matched = audit_event(event.as_bytes()).is_some_and(|(audit, envelope)| {
                    let time = audit
                        .time_unix_ms()
                        .or_else(|| envelope.as_ref().map(Event::timestamp_ms));
                    time.is_some_and(|t| filter.matches(&audit, envelope.as_ref(), t))
                });
                if matched && !returned.contains(index) {
                    left_out.push(*index);
                }
            }
        }
        Ok(SourceCompleteness {
            source: source.to_owned(),
            range: Some((from, to)),
            events,
            missing: crate::sources::uncovered(from, to, held),
            left_out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use merklog_merkle::Hash;
    use merklog_note::Ed25519Signer;

    const DOC: &str = r#"{"profile":"ai-audit/v1","time":"2026-03-01T12:00:00Z",
        "actor":{"id":"alice","kind":"human"},"action":"chat","model":{"id":"m-1"}}"#;

    /// A signed checkpoint of a two-leaf log whose leaf 0 is `leaf`.
    fn checkpoint(leaf: &[u8]) -> SignedCheckpoint {
        let signer = Ed25519Signer::from_seed("example.com/q", &[2u8; 32]).unwrap();
        let body = merklog_note::Checkpoint {
            origin: "example.com/q".into(),
            size: 2,
            root: merklog_merkle::hash_children(&hash_leaf(leaf), &hash_leaf(b"other")),
            extensions: Vec::new(),
        };
        SignedCheckpoint::sign(body, &signer).unwrap()
    }

    fn served(entry: &[u8], proof: &[Hash], time: u64) -> v1::QueriedEvent {
        v1::QueriedEvent {
            index: 0,
            time_unix_ms: time,
            entry: Bytes::copy_from_slice(entry),
            inclusion_proof: merklog_proto::convert::proof_to_wire(proof),
        }
    }

    #[test]
    fn a_served_event_is_accepted_only_with_its_proof_and_matching_the_filter() {
        let checkpoint = checkpoint(DOC.as_bytes());
        let proof = vec![hash_leaf(b"other")];
        let time = 1_772_366_400_000;
        let filter = QueryFilter {
            actor: Some("alice".into()),
            ..QueryFilter::default()
        };
        let ok = verify_served(&filter, served(DOC.as_bytes(), &proof, time), &checkpoint);
        assert_eq!(ok.unwrap().event.actor.id, "alice");
        // A tampered proof.
        let bad = vec![hash_leaf(b"tampered")];
        let error =
            verify_served(&filter, served(DOC.as_bytes(), &bad, time), &checkpoint).unwrap_err();
        assert!(error.is_verification_failure(), "{error}");
        // Another filter, a time outside the window, a wrong filed time.
        let bob = QueryFilter {
            actor: Some("bob".into()),
            ..QueryFilter::default()
        };
        assert!(verify_served(&bob, served(DOC.as_bytes(), &proof, time), &checkpoint).is_err());
        let later = QueryFilter {
            since_ms: time + 1,
            ..filter.clone()
        };
        assert!(verify_served(&later, served(DOC.as_bytes(), &proof, time), &checkpoint).is_err());
        assert!(
            verify_served(
                &filter,
                served(DOC.as_bytes(), &proof, time + 5),
                &checkpoint
            )
            .is_err()
        );
        // Beyond the checkpoint.
        let mut beyond = served(DOC.as_bytes(), &proof, time);
        beyond.index = 2;
        assert!(verify_served(&filter, beyond, &checkpoint).is_err());
    }

    #[test]
    fn a_filter_needs_one_term_and_a_window() {
        assert!(QueryFilter::default().check().is_err());
        let filter = QueryFilter {
            model: Some("m".into()),
            since_ms: 5,
            until_ms: Some(5),
            ..QueryFilter::default()
        };
        assert!(filter.check().is_err());
    }
}
