//! Counting what happens in a measurement window: latency histograms
//! (HdrHistogram, microseconds) and per-run tallies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::BenchError;

/// Longest latency recorded exactly: 60 s (longer values saturate).
const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Latency {
    /// An empty histogram.
    pub fn new() -> Result<Self, BenchError> {
        Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .map(Self)
            .map_err(|e| BenchError::Setup(format!("latency histogram: {e}")))
    }

    /// Records one latency (at least 1 µs).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Latency) -> Result<(), BenchError> {
        self.0
            .add(&other.0)
            .map_err(|e| BenchError::Setup(format!("merging latency histograms: {e}")))
    }

    /// The percentiles in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: self.0.len(),
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p90_ms: ms(self.0.value_at_quantile(0.90)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            max_ms: ms(self.0.max()),
        }
    }
}

/// Latency percentiles of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of recorded latencies.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

/// The time line of one run: a warm-up, the measured window, and a bounded drain in
/// which answers to calls already sent are still verified but not counted.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// When the measured window opens.
    pub measure_from: Instant,
    /// When it closes; no call is started after it.
    pub measure_to: Instant,
    /// Calls still unanswered after this are abandoned (and reported).
    pub drain_until: Instant,
}

impl Phase {
    /// A phase starting now.
    pub fn starting_now(warmup: Duration, measure: Duration, drain: Duration) -> Self {
        let measure_from = Instant::now() + warmup;
        let measure_to = measure_from + measure;
        Self {
            measure_from,
            measure_to,
            drain_until: measure_to + drain,
        }
    }

    /// True when `at` falls in the measured window.
    pub fn measures(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.measure_to
    }

    /// The measured window's length in seconds.
    pub fn seconds(&self) -> f64 {
        (self.measure_to - self.measure_from).as_secs_f64()
    }

    /// True while new calls may start.
    pub fn open(&self) -> bool {
        Instant::now() < self.measure_to
    }
}

/// A shared tally, locked briefly per answer.
#[derive(Debug, Clone)]
pub struct Recorder(Arc<Mutex<Tally>>);

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Result<Self, BenchError> {
        Ok(Self(Arc::new(Mutex::new(Tally::new()?))))
    }

    /// Runs `f` on the tally.
    pub fn with<R>(&self, f: impl FnOnce(&mut Tally) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The tally so far.
    pub fn snapshot(&self) -> Tally {
        self.with(|t| t.clone())
    }
}

/// What one worker (or a whole run, once merged) counted.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Latency of calls completed in the window (acknowledgements, or proofs).
    pub latency: Latency,
    /// Entries acknowledged in the window.
    pub entries: u64,
    /// Successful calls (or stream requests, or proofs) completed in the window.
    pub calls: u64,
    /// Entries acknowledged in any phase (warm-up, window, drain).
    pub total_entries: u64,
    /// RESOURCE_EXHAUSTED answers (retried after a short pause).
    pub rejected: u64,
    /// Failed calls by status code or cause.
    pub errors: BTreeMap<String, u64>,
    /// Open-loop sends skipped because too many calls were already in flight.
    pub missed: u64,
    /// Calls abandoned unanswered at the end of the drain.
    pub abandoned: u64,
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Result<Self, BenchError> {
        Ok(Self {
            latency: Latency::new()?,
            entries: 0,
            calls: 0,
            total_entries: 0,
            rejected: 0,
            errors: BTreeMap::new(),
            missed: 0,
            abandoned: 0,
        })
    }

    /// Counts one successful call of `entries` entries, sent (or scheduled) at
    /// `started` and answered now.
    pub fn success(&mut self, phase: &Phase, started: Instant, entries: u64) {
        let now = Instant::now();
        self.total_entries += entries;
        if phase.measures(now) {
            self.entries += entries;
            self.calls += 1;
            self.latency.record(now.saturating_duration_since(started));
        }
    }

    /// Counts one failed call.
    pub fn error(&mut self, cause: impl Into<String>) {
        *self.errors.entry(cause.into()).or_insert(0) += 1;
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &Tally) -> Result<(), BenchError> {
        self.latency.merge(&other.latency)?;
        self.entries += other.entries;
        self.calls += other.calls;
        self.total_entries += other.total_entries;
        self.rejected += other.rejected;
        for (cause, count) in &other.errors {
            *self.errors.entry(cause.clone()).or_insert(0) += count;
        }
        self.missed += other.missed;
        self.abandoned += other.abandoned;
        Ok(())
    }

    /// Total failed calls.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A stable label for a gRPC status code.
pub fn code_label(code: tonic::Code) -> String {
    format!("{code:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_merge() {
        let mut a = Latency::new().unwrap();
        for ms in 1..=100u64 {
            a.record(Duration::from_millis(ms));
        }
        let mut b = Latency::new().unwrap();
        b.record(Duration::from_secs(2));
        a.merge(&b).unwrap();
        let s = a.summary();
        assert_eq!(s.count, 101);
        assert!((s.p50_ms - 51.0).abs() < 0.2, "{s:?}");
        assert!((s.p99_ms - 100.0).abs() < 0.2, "{s:?}");
        assert!((s.max_ms - 2000.0).abs() < 2.0, "{s:?}");
    }

    #[test]
    fn only_the_window_is_counted() {
        let phase = Phase::starting_now(
            Duration::from_millis(50),
            Duration::from_secs(60),
            Duration::ZERO,
        );
        let mut tally = Tally::new().unwrap();
        tally.success(&phase, Instant::now(), 5); // still in the warm-up
        assert_eq!((tally.entries, tally.total_entries), (0, 5));
        std::thread::sleep(Duration::from_millis(60));
        tally.success(&phase, Instant::now(), 3);
        assert_eq!((tally.entries, tally.calls, tally.total_entries), (3, 1, 8));
        tally.error("Unavailable");
        let mut merged = Tally::new().unwrap();
        merged.merge(&tally).unwrap();
        merged.merge(&tally).unwrap();
        assert_eq!((merged.entries, merged.error_count()), (6, 2));
    }
}
