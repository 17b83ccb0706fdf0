//! Unique keys: an optional opaque key per entry, of which the log lets at most one
//! leaf hold each. A caller with its own notion of identity (for signed events, a
//! source and its sequence number) gives each entry that identity as its key; the
//! log then tells three outcomes apart without knowing what the key means:
//! - new: nobody holds the key; the round stores `key -> (index, leaf hash, time)`
//!   in the same synced write as the leaf;
//! - duplicate: the holder is this very entry (same leaf hash), answered like any
//!   duplicate;
//! - conflict: another entry holds the key; the whole call is refused
//!   ([`LogError::KeyConflict`]) and nothing of it is written.
//!
//! Checked on the sequencer thread before the round's dedup, against the store (one
//! batched read per round), the rounds still in the writer's hands, and earlier
//! calls of the same round. A refused call is answered with the round, after its
//! write, so the holder it names is durable (and, with a witness policy, published)
//! by then.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use merklog_merkle::Hash;

use crate::queue::Request;
use crate::round::AssignedSlot;
use crate::{KeyRecord, LogError, LogStore};

/// Key rows of rounds handed to the writer, until they are durable: the store
/// cannot know them yet.
#[derive(Default)]
pub(crate) struct InFlightKeys {
    records: HashMap<Bytes, KeyRecord>,
    /// Per round, in order: its size once durable, and its keys.
    rounds: VecDeque<(u64, Vec<Bytes>)>,
}

impl InFlightKeys {
    pub(crate) fn push(&mut self, size: u64, rows: &[(Bytes, KeyRecord)]) {
        if rows.is_empty() {
            return;
        }
        self.records
            .extend(rows.iter().map(|(key, record)| (key.clone(), *record)));
        self.rounds
            .push_back((size, rows.iter().map(|(key, _)| key.clone()).collect()));
    }

    /// Forgets the rounds that are durable: the store answers for them now.
    pub(crate) fn retire(&mut self, durable: u64) {
        while self
            .rounds
            .front()
            .is_some_and(|(size, _)| *size <= durable)
        {
            if let Some((_, keys)) = self.rounds.pop_front() {
                for key in keys {
                    self.records.remove(&key);
                }
            }
        }
    }
}

/// Who holds the key a refused entry asked for.
enum Holder {
    /// A leaf already in the log or in a round before this one.
    Known(KeyRecord),
    /// An entry of an earlier call of this round, by leaf hash: its index is known
    /// once the round's indexes are assigned.
    ThisRound(Hash),
    /// An earlier entry of the same call.
    SameCall,
}

/// A call refused for a key conflict, with the conflicting entry's position.
pub(crate) struct Refused {
    request: Request,
    entry: usize,
    holder: Holder,
}

/// Why a call is refused: the conflicting entry's position and the key's holder.
pub(crate) struct Verdict {
    entry: usize,
    holder: Holder,
}

/// Checks a round's calls in order: `None` for a call that may proceed, a
/// [`Verdict`] for one refused for a key conflict. One batched store read for every
/// key not claimed in flight.
pub(crate) fn check(
    requests: &[Request],
    store: &dyn LogStore,
    in_flight: &InFlightKeys,
) -> Result<Vec<Option<Verdict>>, LogError> {
    if requests.iter().all(|r| r.keys.is_empty()) {
        return Ok(Vec::new());
    }
    let mut ask: Vec<Bytes> = Vec::new();
    let mut asked: HashSet<&Bytes> = HashSet::new();
    for key in requests.iter().flat_map(|r| r.keys.iter().flatten()) {
        if !in_flight.records.contains_key(key) && asked.insert(key) {
            ask.push(key.clone());
        }
    }
    let stored: HashMap<Bytes, KeyRecord> = if ask.is_empty() {
        HashMap::new()
    } else {
        let found = store
            .lookup_keys(&ask)
            .map_err(|e| LogError::Unavailable(format!("unique-key lookup failed: {e}")))?;
        if found.len() != ask.len() {
            return Err(LogError::Unavailable(
                "unique-key lookup returned the wrong count".into(),
            ));
        }
        ask.into_iter()
            .zip(found)
            .filter_map(|(key, record)| record.map(|r| (key, r)))
            .collect()
    };
    let mut claimed: HashMap<Bytes, Hash> = HashMap::new();
    let mut verdicts = Vec::with_capacity(requests.len());
    'calls: for request in requests {
        let mut mine: HashMap<&Bytes, Hash> = HashMap::new();
        for (entry, (key, hash)) in request.keys.iter().zip(&request.leaf_hashes).enumerate() {
            let Some(key) = key else { continue };
            let known = in_flight
                .records
                .get(key)
                .or_else(|| stored.get(key))
                .copied();
            let holder = match (known, claimed.get(key), mine.get(key)) {
                (Some(record), _, _) if record.leaf_hash != *hash => Some(Holder::Known(record)),
                (None, Some(other), _) if other != hash => Some(Holder::ThisRound(*other)),
                (None, _, Some(other)) if other != hash => Some(Holder::SameCall),
                _ => None,
            };
            if let Some(holder) = holder {
                verdicts.push(Some(Verdict { entry, holder }));
                continue 'calls;
            }
            if known.is_none() {
                mine.insert(key, *hash);
            }
        }
        let claims: Vec<(Bytes, Hash)> = mine
            .into_iter()
            .map(|(key, hash)| (key.clone(), hash))
            .collect();
        claimed.extend(claims);
        verdicts.push(None);
    }
    Ok(verdicts)
}

/// Splits the calls by their verdicts (no verdicts: every call proceeds).
pub(crate) fn split(
    requests: Vec<Request>,
    verdicts: Vec<Option<Verdict>>,
) -> (Vec<Request>, Vec<Refused>) {
    if verdicts.is_empty() {
        return (requests, Vec::new());
    }
    let mut accepted = Vec::with_capacity(requests.len());
    let mut refused = Vec::new();
    for (request, verdict) in requests.into_iter().zip(verdicts) {
        match verdict {
            None => accepted.push(request),
            Some(Verdict { entry, holder }) => refused.push(Refused {
                request,
                entry,
                holder,
            }),
        }
    }
    (accepted, refused)
}

/// The key rows a round writes: one per key first claimed by a new leaf of the
/// round. (A keyed entry that duplicates a leaf stored before it had a key gets no
/// row: the leaf is already in the log under no key.)
pub(crate) fn rows(
    requests: &[Request],
    assignments: &[AssignedSlot],
    recorded_ms: u64,
) -> Vec<(Bytes, KeyRecord)> {
    let mut seen: HashSet<&Bytes> = HashSet::new();
    let mut rows = Vec::new();
    let mut slots = assignments.iter();
    for request in requests {
        let mine: Vec<&AssignedSlot> = slots.by_ref().take(request.entries.len()).collect();
        for ((key, hash), slot) in request.keys.iter().zip(&request.leaf_hashes).zip(mine) {
            let Some(key) = key else { continue };
            if slot.old || !seen.insert(key) {
                continue;
            }
            rows.push((
                key.clone(),
                KeyRecord {
                    index: slot.index,
                    leaf_hash: *hash,
                    recorded_ms,
                },
            ));
        }
    }
    rows
}

/// The answers of the refused calls, naming the holder's index where the round
/// assigned it.
pub(crate) fn refusals(
    refused: Vec<Refused>,
    accepted: &[Request],
    assignments: &[AssignedSlot],
) -> Vec<(Request, LogError)> {
    let mut answers = Vec::with_capacity(refused.len());
    for Refused {
        request,
        entry,
        holder,
    } in refused
    {
        let existing_index = match holder {
            Holder::Known(record) => Some(record.index),
            Holder::ThisRound(hash) => accepted
                .iter()
                .flat_map(|r| r.leaf_hashes.iter())
                .zip(assignments)
                .find(|(h, _)| **h == hash)
                .map(|(_, slot)| slot.index),
            Holder::SameCall => None,
        };
        let error = LogError::KeyConflict {
            index: entry,
            existing_index,
        };
        answers.push((request, error));
    }
    answers
}

/// Fails refused calls with `error` instead of their conflict: their round failed
/// before the holders were known.
pub(crate) fn fail_unresolved(refused: Vec<Refused>, error: &LogError) {
    for Refused { request, .. } in refused {
        let _ = request.reply.send(Err(error.clone()));
    }
}
