//! Sets of sequence numbers kept as disjoint inclusive ranges: what a source has in
//! the log (events and declared-unused numbers), and the gaps below its highest.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent inclusive ranges, by first number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// Adds `first..=last` (merged with overlapping and adjacent ranges).
    pub(crate) fn insert(&mut self, first: u64, last: u64) {
        if first > last {
            return;
        }
        let (mut first, mut last) = (first, last);
        // The range starting at or before `first` may overlap or touch it.
        if let Some((&start, &end)) = self.ranges.range(..=first).next_back()
            && end.saturating_add(1) >= first
        {
            first = start;
            last = last.max(end);
            self.ranges.remove(&start);
        }
        // Ranges starting inside (or right after) the new one are absorbed.
        loop {
            let next = self
                .ranges
                .range(first..)
                .next()
                .map(|(&start, &end)| (start, end));
            match next {
                Some((start, end)) if start <= last.saturating_add(1) => {
                    last = last.max(end);
                    self.ranges.remove(&start);
                }
                _ => break,
            }
        }
        self.ranges.insert(first, last);
    }

    /// The first number from 0 up that is not in the set.
    pub(crate) fn first_missing(&self) -> u64 {
        match self.ranges.get(&0) {
            Some(&end) => end.saturating_add(1),
            None => 0,
        }
    }

    /// The ranges of `from..=to` that are NOT in the set, in order.
    pub(crate) fn missing_in(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if from > to {
            return out;
        }
        let mut at = from;
        let start_key = self
            .ranges
            .range(..=from)
            .next_back()
            .map_or(from, |(&s, _)| s);
        for (&start, &end) in self.ranges.range(start_key..) {
            if start > to {
                break;
            }
            if end < at {
                continue;
            }
            if start > at {
                out.push((at, start - 1));
            }
            if end >= to {
                return out;
            }
            at = end + 1;
        }
        out.push((at, to));
        out
    }

    /// Every range, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }
}

/// The ranges of `a` not in `b` (both as sorted disjoint lists).
pub(crate) fn difference(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut set = RangeSet::default();
    for &(first, last) in b {
        set.insert(first, last);
    }
    let mut out = Vec::new();
    for &(first, last) in a {
        out.extend(set.missing_in(first, last));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn inserts_merge_and_gaps_are_the_complement() {
        let mut set = RangeSet::default();
        for n in [0, 1, 2, 5, 7, 6, 10] {
            set.insert(n, n);
        }
        assert_eq!(set.iter().collect::<Vec<_>>(), [(0, 2), (5, 7), (10, 10)]);
        assert_eq!(set.first_missing(), 3);
        assert_eq!(set.missing_in(0, 10), [(3, 4), (8, 9)]);
        assert_eq!(set.missing_in(4, 12), [(4, 4), (8, 9), (11, 12)]);
        set.insert(3, 9);
        assert_eq!(set.iter().collect::<Vec<_>>(), [(0, 10)]);
        assert_eq!(set.missing_in(0, 10), []);
        assert_eq!(difference(&[(0, 10)], &[(2, 3), (8, 20)]), [(0, 1), (4, 7)]);
        let mut top = RangeSet::default();
        top.insert(u64::MAX - 1, u64::MAX);
        top.insert(0, 0);
        assert_eq!(top.missing_in(0, u64::MAX), [(1, u64::MAX - 2)]);
    }
}
