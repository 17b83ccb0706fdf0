//! Entry bytes: unique, incompressible, cheap to make.
//!
//! Every entry starts with the run's nonce, the writer's number and the writer's
//! counter (20 bytes), so no two entries of a run are equal and the log never
//! answers "duplicate"; the rest is pseudo-random so LZ4 in the store cannot shrink
//! it below what real event payloads would cost on disk.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::signed::Signing;

/// The bytes every entry starts with: nonce (8) ‖ writer (4) ‖ counter (8).
pub const HEADER_BYTES: usize = 20;

/// A small deterministic PRNG (xorshift64*): fast, and a run repeats from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced, xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// A seed from the clock and the process id, for values that must differ
    /// between runs (the entry nonce).
    pub fn seed_from_clock() -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(1);
        (nanos as u64) ^ (u64::from(std::process::id()) << 32)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Fills `out` with pseudo-random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut chunks = out.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let tail = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        for (byte, value) in tail.iter_mut().zip(last) {
            *byte = value;
        }
    }
}

/// Makes the entries of one writer.
#[derive(Debug, Clone)]
pub struct EntryMaker {
    nonce: u64,
    writer: u32,
    counter: u64,
    size: usize,
    rng: Rng,
    signing: Signing,
    profile: bool,
    /// Entries made ahead of time, handed out before new ones are made.
    ready: VecDeque<Bytes>,
}

impl EntryMaker {
    /// Entries of `size` bytes (at least [`HEADER_BYTES`]) for writer `writer` of the
    /// run identified by `nonce`.
    pub fn new(nonce: u64, writer: u32, size: usize) -> Self {
        Self {
            nonce,
            writer,
            counter: 0,
            size: size.max(HEADER_BYTES),
            rng: Rng::new(nonce ^ (u64::from(writer) << 40) ^ 0x9e37_79b9_7f4a_7c15),
            signing: None,
            profile: false,
            ready: VecDeque::new(),
        }
    }

    /// With `profile`, every entry is an ai-audit/v1 profile document of `size`
    /// bytes (or the smallest such document, if larger): 16 actors (by writer), 4
    /// models, one action, times spread over a day; the unique header and the
    /// filler go, as hex, into its `resource` field. The server files each under
    /// its actor, model and action.
    pub fn with_profile(mut self, profile: bool) -> Self {
        self.profile = profile;
        self
    }

    /// The next entry's bytes as a profile document.
    fn profile_document(&self, raw: &[u8]) -> Vec<u8> {
        let second = self.counter % 86_400;
        let head = format!(
            r#"{{"profile":"ai-audit/v1","time":"2026-03-01T{:02}:{:02}:{:02}Z","actor":{{"id":"actor-{}","kind":"agent"}},"action":"chat","model":{{"id":"model-{}"}},"resource":""#,
            second / 3600,
            second / 60 % 60,
            second % 60,
            self.writer % 16,
            self.counter % 4,
        );
        let mut doc = head.into_bytes();
        // The header's hex comes first, so every document is unique.
        let room = self
            .size
            .saturating_sub(doc.len() + 2)
            .max(HEADER_BYTES * 2);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let hex = raw
            .iter()
            .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
            .cycle()
            .take(room);
        doc.extend(hex);
        doc.extend_from_slice(b"\"}");
        doc
    }

    /// With `signing`, every entry is a signed event envelope whose payload is the
    /// entry the maker would make otherwise (so it is that much longer).
    pub fn with_signing(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }

    /// Makes the next `n` entries now, to be handed out first: a step makes (and
    /// signs) them before its clock starts.
    pub fn make_ahead(&mut self, n: usize) {
        for _ in 0..n {
            let entry = self.make_entry();
            self.ready.push_back(entry);
        }
    }

    /// The next entry: one made ahead, else a new one.
    pub fn next_entry(&mut self) -> Bytes {
        match self.ready.pop_front() {
            Some(entry) => entry,
            None => self.make_entry(),
        }
    }

    fn make_entry(&mut self) -> Bytes {
        let mut entry = vec![0u8; self.size];
        let (header, rest) = entry.split_at_mut(HEADER_BYTES);
        header[..8].copy_from_slice(&self.nonce.to_be_bytes());
        header[8..12].copy_from_slice(&self.writer.to_be_bytes());
        header[12..20].copy_from_slice(&self.counter.to_be_bytes());
        self.rng.fill(rest);
        if self.profile {
            entry = self.profile_document(&entry);
        }
        self.counter += 1;
        match &self.signing {
            // The hammer's own sources and payloads always make a valid event; a
            // failure would be a bug in the event crate, shown by the log's refusal.
            Some(sources) => match sources.sign(self.writer, &entry) {
                Ok(event) => Bytes::from(event),
                Err(_) => Bytes::from(entry),
            },
            None => Bytes::from(entry),
        }
    }

    /// The next `n` entries.
    pub fn next_batch(&mut self, n: usize) -> Vec<Bytes> {
        (0..n).map(|_| self.next_entry()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_sized_unique_and_not_constant() {
        let mut a = EntryMaker::new(7, 0, 64);
        let mut b = EntryMaker::new(7, 1, 64);
        let batch: Vec<Bytes> = a
            .next_batch(100)
            .into_iter()
            .chain(b.next_batch(100))
            .collect();
        let unique: std::collections::HashSet<_> = batch.iter().collect();
        assert_eq!(unique.len(), 200);
        assert!(batch.iter().all(|e| e.len() == 64));
        // The filler is not a repeated byte (it would compress to nothing).
        let filler = &batch[0][HEADER_BYTES..];
        assert!(filler.iter().any(|b| *b != filler[0]));
        // Profile documents: the asked size, unique, each a valid document.
        let mut p = EntryMaker::new(7, 3, 400).with_profile(true);
        let docs = p.next_batch(50);
        assert!(docs.iter().all(|d| d.len() == 400), "{}", docs[0].len());
        let unique: std::collections::HashSet<_> = docs.iter().collect();
        assert_eq!(unique.len(), 50);
        let event = merklog_event::profile::AuditEvent::from_document(&docs[1]).unwrap();
        assert_eq!(event.actor.id, "actor-3");
        assert_eq!(event.model.unwrap().id.as_deref(), Some("model-1"));
        // Too small a size is raised to the header.
        assert_eq!(EntryMaker::new(1, 0, 3).next_entry().len(), HEADER_BYTES);
    }

    #[test]
    fn entries_made_ahead_come_first_and_in_order() {
        let mut plain = EntryMaker::new(9, 2, 64);
        let mut ahead = EntryMaker::new(9, 2, 64);
        ahead.make_ahead(3);
        let expected = plain.next_batch(5);
        assert_eq!(ahead.next_batch(5), expected);
    }

    #[test]
    fn rng_fill_covers_odd_lengths_and_below_stays_in_range() {
        let mut rng = Rng::new(0);
        let mut out = [0u8; 13];
        rng.fill(&mut out);
        assert!(out[8..].iter().any(|b| *b != 0));
        for n in [1u64, 2, 7, 1000] {
            assert!((0..100).all(|_| rng.below(n) < n));
        }
        assert_eq!(rng.below(0), 0);
    }
}
