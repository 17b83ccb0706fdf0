//! A small deterministic PRNG (xorshift64*), so failures reproduce from the seed.

/// A seeded generator; not for anything but picking test inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced: xorshift never leaves zero).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// A seed from `MERKLOG_TEST_SEED`, else from the clock; the caller prints it so
    /// a failing run can be repeated.
    pub fn from_env_or_clock() -> (Self, u64) {
        let seed = std::env::var("MERKLOG_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        (Self::new(seed), seed)
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `[0, n)`; `0` for `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn a_seed_repeats_its_sequence_and_stays_in_bounds() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let first: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        let mut other = Rng::new(43);
        assert_ne!(first, (0..8).map(|_| other.next_u64()).collect::<Vec<_>>());
        // Zero would be a fixed point of xorshift.
        assert_ne!(Rng::new(0).next_u64(), 0);
        let mut c = Rng::new(7);
        assert!((0..1000).all(|_| c.below(10) < 10));
        assert_eq!(c.below(0), 0);
    }
}
