//! Exporting a pack: a source's events with inclusion proofs against one checkpoint
//! (the latest the server publishes, cosigned when it has witnesses), the declarations
//! and equivocation evidence that bear on completeness, and an earlier checkpoint the
//! client verified before (from its state file) with the consistency proof to it.
//! Everything is verified as it arrives, exactly as `source audit` does.

use std::collections::{BTreeMap, BTreeSet};

use merklog_event::{Event, EventKind, SourceKey};
use merklog_merkle::LeafIndex;
use merklog_receipt::PublicKey;

use super::model::{
    EarlierCheckpoint, Findings, Pack, PackEvent, PackReceipts, QueryTerms, Selection, analyze,
    span_of,
};
use crate::query::QueryFilter;
use crate::source_pages::verified_event;
use crate::sources::{merge, uncovered};
use crate::{Client, ClientError, SequenceRange};

/// How many declarations are looked up outside the scanned numbers.
const MAX_DECLARATION_LOOKUPS: usize = 256;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The source.
    pub source: String,
    /// First number (default 0).
    pub from_sequence: Option<u64>,
    /// Last number (default: the highest the log reports).
    pub to_sequence: Option<u64>,
    /// Window start, Unix ms of the signed source timestamp (inclusive).
    pub since_ms: Option<u64>,
    /// Window end, Unix ms (exclusive).
    pub until_ms: Option<u64>,
    /// The source key as the exporter knows it; without it, the registry's.
    pub source_key: Option<SourceKey>,
    /// Select by these terms on the events' audit-event payloads, found through
    /// `QueryEvents` (the source and the numbers still bound the selection).
    pub query: Option<QueryTerms>,
    /// The receipt key as the exporter knows it; without it, the one served.
    pub receipt_key: Option<PublicKey>,
}

impl Client {
    /// Fetches, verifies and assembles an evidence pack's contents.
    pub async fn export_evidence(
        &mut self,
        request: &ExportRequest,
    ) -> Result<(Pack, Findings), ClientError> {
        let prior = self.latest().cloned();
        let status = self
            .list_sources()
            .await?
            .into_iter()
            .find(|s| s.name == request.source);
        let key = match (&request.source_key, &status) {
            (Some(key), _) => key.clone(),
            (None, Some(status)) => SourceKey::parse(&status.vkey).map_err(|e| {
                ClientError::Malformed(format!("the registry's key of {:?}: {e}", request.source))
            })?,
            (None, None) => {
                return Err(ClientError::Input(format!(
                    "the log has no registered source {:?}",
                    request.source
                )));
            }
        };
        if key.name() != request.source {
            return Err(ClientError::Input(format!(
                "the source key is for {:?}, not {:?}",
                key.name(),
                request.source
            )));
        }
        let from = request.from_sequence.unwrap_or(0);
        let to = match (request.to_sequence, &status) {
            (Some(to), _) => to,
            (None, Some(s)) if s.has_events => s.highest_sequence,
            _ => {
                return Err(ClientError::Input(format!(
                    "the log reports no events of {:?}; give --to-seq",
                    request.source
                )));
            }
        };
        if from > to {
            return Err(ClientError::Input(format!(
                "--from-seq {from} is after --to-seq {to}"
            )));
        }
        if let (Some(since), Some(until)) = (request.since_ms, request.until_ms)
            && since >= until
        {
            return Err(ClientError::Input("--since must be before --until".into()));
        }
        let selection = Selection {
            source: request.source.clone(),
            from_sequence: from,
            to_sequence: to,
            since_ms: request.since_ms,
            until_ms: request.until_ms,
            query: request.query.clone(),
        };

        // A query finds the matching numbers; the source's events between the first
        // and the last of them are then scanned like any range, so the pack shows
        // their completeness and holds every matching event among them, whether or
        // not the query returned it.
        let (mut scan_from, mut scan_to, mut wanted_size) = (from, to, 0);
        if let Some(terms) = &request.query {
            if terms.is_empty() {
                return Err(ClientError::Input(
                    "a query selection needs --actor, --model or --action".into(),
                ));
            }
            let filter = QueryFilter {
                actor: terms.actor.clone(),
                model: terms.model.clone(),
                action: terms.action.clone(),
                source: Some(request.source.clone()),
                since_ms: 0,
                until_ms: None,
            };
            let answer = self.query_events(&filter, None).await?;
            let numbers: BTreeSet<u64> = answer
                .events
                .iter()
                .filter_map(|e| Event::parse(&e.entry).ok())
                .filter(|e| e.source() == request.source && (from..=to).contains(&e.sequence()))
                .filter(|e| selection.selects(e))
                .map(|e| e.sequence())
                .collect();
            if let (Some(first), Some(last)) = (numbers.first(), numbers.last()) {
                (scan_from, scan_to) = (*first, *last);
            }
            wanted_size = answer.checkpoint.size().0;
        }

        // Every page against one checkpoint: the first page's (the latest, or the
        // query's).
        let mut scanned: BTreeMap<u64, PackEvent> = BTreeMap::new();
        let mut claimed_unused: Vec<SequenceRange> = Vec::new();
        let mut others: Vec<Event> = Vec::new();
        let mut checkpoint: Option<merklog_note::SignedCheckpoint> = None;
        let mut pages = self.source_pages(&key, scan_from, scan_to, wanted_size);
        while let Some(page) = self.next_source_page(&mut pages).await? {
            if wanted_size != 0 && page.checkpoint.size().0 != wanted_size {
                return Err(ClientError::Malformed(format!(
                    "a page asked for against size {wanted_size} came against size {}",
                    page.checkpoint.size().0
                )));
            }
            if let Some(first) = &checkpoint
                && (page.checkpoint.size() != first.size()
                    || page.checkpoint.root() != first.root())
            {
                return Err(ClientError::Malformed(format!(
                    "a page asked for against size {} came against size {}",
                    first.size().0,
                    page.checkpoint.size().0
                )));
            }
            for ((event, index), proof) in page.events.into_iter().zip(page.proofs) {
                let sequence = event.sequence();
                match scanned.get(&sequence) {
                    Some(seen) if seen.event.as_bytes() != event.as_bytes() => others.push(event),
                    Some(_) => {}
                    None => {
                        scanned.insert(
                            sequence,
                            PackEvent {
                                event,
                                index,
                                proof,
                            },
                        );
                    }
                }
            }
            claimed_unused.extend(page.declared_unused);
            for claim in page.equivocations {
                let logged = verified_event(&claim.logged_envelope, claim.sequence, &key);
                let other = verified_event(&claim.other_envelope, claim.sequence, &key);
                if let (Ok(_), Ok(other)) = (logged, other)
                    && claim.logged_envelope != claim.other_envelope
                {
                    others.push(other);
                }
            }
            if checkpoint.is_none() {
                checkpoint = Some(page.checkpoint);
            }
        }
        let Some(checkpoint) = checkpoint else {
            return Err(ClientError::Malformed("no page was served".into()));
        };

        // The selection's span, and the events the pack keeps.
        let plain: BTreeMap<u64, Event> =
            scanned.iter().map(|(n, e)| (*n, e.event.clone())).collect();
        let span = span_of(&selection, &plain);
        let mut events: BTreeMap<u64, PackEvent> = BTreeMap::new();
        if let Some((first, last)) = span {
            for (n, e) in scanned.range(first..=last) {
                events.insert(*n, e.clone());
            }
            // Declarations among the scanned numbers, outside the span.
            for (n, e) in &scanned {
                if let Ok(EventKind::Unused(r)) = e.event.kind()
                    && r.first <= last
                    && r.last >= first
                {
                    events.insert(*n, e.clone());
                }
            }
            // Declarations the server reports that lie beyond the scanned numbers
            // (a declaration is usually numbered just after the range it declares).
            let known = |events: &BTreeMap<u64, PackEvent>| -> Vec<SequenceRange> {
                events
                    .values()
                    .filter_map(|e| match e.event.kind() {
                        Ok(EventKind::Unused(r)) => Some((r.first, r.last)),
                        _ => None,
                    })
                    .collect()
            };
            let mut lookups = 0;
            for (claim_first, claim_last) in merge(claimed_unused) {
                let (a, b) = (claim_first.max(first), claim_last.min(last));
                if a > b || uncovered(a, b, known(&events)).is_empty() {
                    continue;
                }
                let Some(own) = claim_last.checked_add(1) else {
                    continue;
                };
                if lookups >= MAX_DECLARATION_LOOKUPS || events.contains_key(&own) {
                    continue;
                }
                lookups += 1;
                let page = self
                    .source_page(&key, own, own, checkpoint.size().0)
                    .await?;
                for ((event, index), proof) in page.events.into_iter().zip(page.proofs) {
                    if let Ok(EventKind::Unused(r)) = event.kind()
                        && r.first <= last
                        && r.last >= first
                    {
                        events.insert(
                            event.sequence(),
                            PackEvent {
                                event,
                                index,
                                proof,
                            },
                        );
                    }
                }
            }
        }
        others.retain(|o| {
            events
                .get(&o.sequence())
                .is_some_and(|e| e.event.as_bytes() != o.as_bytes())
        });
        others.sort_by(|a, b| {
            a.sequence()
                .cmp(&b.sequence())
                .then_with(|| a.as_bytes().cmp(b.as_bytes()))
        });
        others.dedup_by(|a, b| a.as_bytes() == b.as_bytes());

        // The checkpoint this client verified before, linked to this one.
        let mut earlier = Vec::new();
        if let Some(prior) = prior
            && prior.size() < checkpoint.size()
            && prior.size().0 > 0
            && self.trust().open(prior.note()).is_ok()
        {
            let consistency = self.prove_consistency(&prior, &checkpoint).await?;
            earlier.push(EarlierCheckpoint {
                checkpoint: prior,
                consistency,
            });
        }

        // One receipt verified; the others reuse its signature with their own proofs.
        let receipts = match events.values().next() {
            Some(first) => {
                let (key, head) = self
                    .receipt_tree_head(
                        &checkpoint,
                        LeafIndex(first.index),
                        first.event.as_bytes(),
                        request.receipt_key.as_ref(),
                    )
                    .await?;
                Some(PackReceipts { key, head })
            }
            None => None,
        };

        let policy = self.trust().policy().cloned();
        let pack = Pack {
            selection,
            log_key: self.trust().verifier().clone(),
            policy_text: policy.as_ref().map(|p| p.to_text()),
            source_key: key,
            checkpoint,
            earlier,
            events,
            equivocations: others,
            receipts,
        };
        let findings = analyze(&pack, policy.as_ref()).map_err(|(_, reason)| {
            ClientError::Malformed(format!("the exported contents do not add up: {reason}"))
        })?;
        Ok((pack, findings))
    }
}
