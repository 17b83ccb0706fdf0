//! Index terms: a secondary index that files entries under caller-chosen terms (for
//! audit events: actor, model, action, source) and times, written in the synced
//! batch of the round that sequences the entry.
//!
//! The log does not interpret a term: it is opaque bytes without a NUL byte. A row's
//! key is `term || 0x00 || time_ms (u64 BE) || leaf hash`, so one term's rows are
//! contiguous and sorted by time, a time window is one key range, and the leaf hash
//! makes every entry's row unique (rows never conflict; two entries filed under one
//! term at one time are two rows). The value is the entry's [`KeyRecord`] (index,
//! leaf hash, when the round was prepared).
//!
//! Rows are written only for entries new to the log: a duplicate (of a stored entry,
//! or of an earlier entry of the same round) writes none, so its first terms stand.

use bytes::Bytes;
use merklog_merkle::{HASH_SIZE, Hash};

use crate::KeyRecord;
use crate::round::AssignedSlot;

/// The longest term, in bytes.
pub const MAX_TERM_LEN: usize = 1024;

/// Bytes after the term and its NUL separator: the time and the leaf hash.
const SUFFIX_LEN: usize = 8 + HASH_SIZE;

/// One term an entry is filed under, and the time it is filed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTerm {
    /// The term: 1 to [`MAX_TERM_LEN`] bytes, none of them NUL.
    pub term: Bytes,
    /// The time to file it at, Unix milliseconds; `None` files it at the time its
    /// round is prepared.
    pub time_ms: Option<u64>,
}

/// One row of the index: an entry filed under a term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermHit {
    /// The time the entry is filed at, Unix milliseconds.
    pub time_ms: u64,
    /// The entry's index, leaf hash, and when its round was prepared.
    pub record: KeyRecord,
}

/// Why a term is not acceptable, if it is not.
pub(crate) fn check_term(term: &[u8]) -> Result<(), String> {
    if term.is_empty() {
        return Err("an empty index term".into());
    }
    if term.len() > MAX_TERM_LEN {
        return Err(format!(
            "an index term of {} bytes; the limit is {MAX_TERM_LEN}",
            term.len()
        ));
    }
    if term.contains(&0) {
        return Err("an index term holds a NUL byte".into());
    }
    Ok(())
}

/// The index key of an entry filed under `term` at `time_ms`.
pub fn term_key(term: &[u8], time_ms: u64, leaf_hash: &Hash) -> Vec<u8> {
    let mut key = Vec::with_capacity(term.len() + 1 + SUFFIX_LEN);
    key.extend_from_slice(term);
    key.push(0);
    key.extend_from_slice(&time_ms.to_be_bytes());
    key.extend_from_slice(leaf_hash.as_bytes());
    key
}

/// Splits an index key into its term, time and leaf hash.
pub fn parse_term_key(key: &[u8]) -> Option<(&[u8], u64, Hash)> {
    let split = key.len().checked_sub(SUFFIX_LEN + 1)?;
    let (term, rest) = key.split_at(split);
    let (&separator, rest) = rest.split_first()?;
    if separator != 0 || term.is_empty() || term.contains(&0) {
        return None;
    }
    let (time, hash) = rest.split_first_chunk::<8>()?;
    Some((term, u64::from_be_bytes(*time), Hash::try_from(hash).ok()?))
}

/// The key range `[start, end)` of `term`'s rows filed at `since_ms <= t < until_ms`
/// (`until_ms` = `u64::MAX`: no upper bound).
pub fn term_range(term: &[u8], since_ms: u64, until_ms: u64) -> (Vec<u8>, Vec<u8>) {
    let mut start = Vec::with_capacity(term.len() + 9);
    start.extend_from_slice(term);
    start.push(0);
    let mut end = start.clone();
    start.extend_from_slice(&since_ms.to_be_bytes());
    if until_ms == u64::MAX {
        // Just above every key of the term: no term holds a NUL, so no other term's
        // keys fall between.
        end.pop();
        end.push(1);
    } else {
        end.extend_from_slice(&until_ms.to_be_bytes());
    }
    (start, end)
}

/// The index rows a round writes: each term of each entry new to the log (and
/// first of its bytes in the round), filed at its time or at `recorded_ms`. `calls`
/// gives, per queued call in round order, its number of entries, their leaf hashes
/// and their terms (none, or one list per entry); `assignments` has a slot per entry.
pub(crate) fn rows<'a>(
    calls: impl IntoIterator<Item = (usize, &'a [Hash], &'a [Vec<IndexTerm>])>,
    assignments: &[AssignedSlot],
    recorded_ms: u64,
) -> Vec<(Vec<u8>, KeyRecord)> {
    let mut rows = Vec::new();
    let mut first = 0usize;
    for (entries, hashes, terms) in calls {
        // A call owns the next `entries` slots, whether or not it has terms.
        let end = first.saturating_add(entries).min(assignments.len());
        let mine = assignments.get(first..end).unwrap_or_default();
        first = end;
        if terms.is_empty() {
            continue;
        }
        for ((terms, hash), slot) in terms.iter().zip(hashes).zip(mine) {
            if slot.repeat {
                continue;
            }
            for term in terms {
                // A term given twice for one entry makes the same row twice: one
                // put overwrites the other with the same value.
                let key = term_key(&term.term, term.time_ms.unwrap_or(recorded_ms), hash);
                rows.push((
                    key,
                    KeyRecord {
                        index: slot.index,
                        leaf_hash: *hash,
                        recorded_ms,
                    },
                ));
            }
        }
    }
    // In key order, as `RoundWrite::terms` promises the store.
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_term_then_time() {
        let hash = Hash::from_bytes([7u8; 32]);
        let key = term_key(b"actor=a", 42, &hash);
        assert_eq!(parse_term_key(&key), Some((&b"actor=a"[..], 42, hash)));
        assert_eq!(parse_term_key(&key[1..]), Some((&b"ctor=a"[..], 42, hash)));
        assert_eq!(parse_term_key(&key[..key.len() - 1]), None);
        assert!(term_key(b"a", u64::MAX, &hash) < term_key(b"a\x01", 0, &hash));
        assert!(term_key(b"a", 1, &hash) < term_key(b"a", 2, &Hash::from_bytes([0; 32])));
        let (start, end) = term_range(b"a", 5, u64::MAX);
        for (time, inside) in [(4, false), (5, true), (u64::MAX, true)] {
            let key = term_key(b"a", time, &hash);
            assert_eq!(key >= start && key < end, inside, "{time}");
        }
        // A longer term starting with the same bytes is outside.
        let other = term_key(b"ab", 9, &hash);
        assert!(!(other >= start && other < end));
        let (start, end) = term_range(b"a", 5, 9);
        for (time, inside) in [(5, true), (8, true), (9, false)] {
            let key = term_key(b"a", time, &hash);
            assert_eq!(key >= start && key < end, inside, "{time}");
        }
    }

    #[test]
    fn a_rounds_rows_come_in_key_order() {
        let hashes: Vec<Hash> = (0..6u8)
            .map(|i| Hash::from_bytes([200 - i * 30; 32]))
            .collect();
        let terms: Vec<Vec<IndexTerm>> = (0..6)
            .map(|i| {
                ["actor=b", "actor=a"]
                    .iter()
                    .map(|t| IndexTerm {
                        term: Bytes::from_static(t.as_bytes()),
                        time_ms: Some(10 - i),
                    })
                    .collect()
            })
            .collect();
        let slots: Vec<AssignedSlot> = (0..9)
            .map(|index| AssignedSlot {
                index,
                repeat: false,
                old: false,
            })
            .collect();
        // A call of three entries without terms first: its slots are skipped.
        let calls = [(3, &hashes[..3], &[][..]), (6, &hashes[..], &terms[..])];
        let rows = rows(calls, &slots, 0);
        assert_eq!(rows.len(), 12);
        assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(rows.iter().map(|r| r.1.index).min(), Some(3));
    }

    #[test]
    fn bad_terms_are_named() {
        assert!(check_term(b"").is_err());
        assert!(check_term(b"a\0b").is_err());
        assert!(check_term(&vec![b'x'; MAX_TERM_LEN + 1]).is_err());
        assert!(check_term(&vec![b'x'; MAX_TERM_LEN]).is_ok());
    }
}
