//! Per-witness counters, rendered in the Prometheus text exposition format at
//! `/metrics`.
//!
//! The counters live in the [`crate::Witness`] value rather than in a process-global
//! recorder, so several witnesses in one process (tests) keep separate counts.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Status codes counted separately for `add-checkpoint`; anything else is `other`.
const STATUS_CODES: [u16; 9] = [200, 400, 403, 404, 409, 413, 422, 500, 503];

/// The witness's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: [AtomicU64; STATUS_CODES.len()],
    requests_other: AtomicU64,
    cosignatures: AtomicU64,
    forks: AtomicU64,
    bad_proofs: AtomicU64,
    evidence_dropped: AtomicU64,
    webhook_failures: AtomicU64,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// Cosignatures returned.
    pub cosignatures: u64,
    /// Forks detected (two signed roots at one size).
    pub forks: u64,
    /// Consistency proofs that failed to verify.
    pub bad_proofs: u64,
    /// Evidence not written because the per-log cap was reached.
    pub evidence_dropped: u64,
    /// Webhook deliveries that failed or were dropped.
    pub webhook_failures: u64,
}

impl Metrics {
    pub(crate) fn count_request(&self, status: u16) {
        match STATUS_CODES.iter().position(|&c| c == status) {
            Some(i) => {
                if let Some(counter) = self.requests.get(i) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.requests_other.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    pub(crate) fn count_cosignature(&self) {
        self.cosignatures.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_fork(&self) {
        self.forks.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_bad_proof(&self) {
        self.bad_proofs.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_evidence_dropped(&self) {
        self.evidence_dropped.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_webhook_failure(&self) {
        self.webhook_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Current values.
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            cosignatures: self.cosignatures.load(Ordering::Relaxed),
            forks: self.forks.load(Ordering::Relaxed),
            bad_proofs: self.bad_proofs.load(Ordering::Relaxed),
            evidence_dropped: self.evidence_dropped.load(Ordering::Relaxed),
            webhook_failures: self.webhook_failures.load(Ordering::Relaxed),
        }
    }

    /// Prometheus text format. `logs` and `frozen_logs` are gauges computed by the caller.
    pub(crate) fn render(&self, logs: usize, frozen_logs: usize) -> String {
        let mut out = String::new();
        let s = self.snapshot();
        // Writing to a String cannot fail; the results are ignored on purpose.
        let _ = writeln!(
            out,
            "# HELP merklog_witness_add_checkpoint_requests_total add-checkpoint answers by HTTP status.\n\
             # TYPE merklog_witness_add_checkpoint_requests_total counter"
        );
        for (code, counter) in STATUS_CODES.iter().zip(&self.requests) {
            let _ = writeln!(
                out,
                "merklog_witness_add_checkpoint_requests_total{{status=\"{code}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "merklog_witness_add_checkpoint_requests_total{{status=\"other\"}} {}",
            self.requests_other.load(Ordering::Relaxed)
        );
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "merklog_witness_cosignatures_total",
            "Cosignatures returned.",
            s.cosignatures,
        );
        counter(
            "merklog_witness_forks_detected_total",
            "Validly signed checkpoints with one size and two roots.",
            s.forks,
        );
        counter(
            "merklog_witness_bad_consistency_proofs_total",
            "Validly signed checkpoints whose consistency proof failed.",
            s.bad_proofs,
        );
        counter(
            "merklog_witness_evidence_dropped_total",
            "Evidence not saved because the per-log cap was reached.",
            s.evidence_dropped,
        );
        counter(
            "merklog_witness_webhook_failures_total",
            "Alarm webhook deliveries that failed or were dropped.",
            s.webhook_failures,
        );
        let _ = writeln!(
            out,
            "# HELP merklog_witness_logs Configured logs.\n# TYPE merklog_witness_logs gauge\nmerklog_witness_logs {logs}"
        );
        let _ = writeln!(
            out,
            "# HELP merklog_witness_frozen_logs Logs frozen after a detected fork.\n# TYPE merklog_witness_frozen_logs gauge\nmerklog_witness_frozen_logs {frozen_logs}"
        );
        out
    }
}

/// Pull-mode counters of one followed log ([`crate::follow`]).
#[derive(Debug, Default)]
pub(crate) struct FollowCounters {
    pulled: AtomicU64,
    cosigned: AtomicU64,
    errors: AtomicU64,
}

/// A point-in-time copy of one followed log's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FollowMetricsSnapshot {
    /// Checkpoints received from the log (stream messages and poll answers).
    pub pulled: u64,
    /// Checkpoints the follower got cosigned.
    pub cosigned: u64,
    /// Failures: connections, RPCs, malformed answers, refused checkpoints.
    pub errors: u64,
}

impl FollowCounters {
    pub(crate) fn count_pulled(&self) {
        self.pulled.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_cosigned(&self) {
        self.cosigned.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn snapshot(&self) -> FollowMetricsSnapshot {
        FollowMetricsSnapshot {
            pulled: self.pulled.load(Ordering::Relaxed),
            cosigned: self.cosigned.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// A follow counter family: name, help text, and its value in a snapshot.
type FollowFamily = (
    &'static str,
    &'static str,
    fn(&FollowMetricsSnapshot) -> u64,
);

/// Appends the pull-mode counters, one series per followed origin.
pub(crate) fn render_follow<'a>(
    out: &mut String,
    logs: impl Iterator<Item = (&'a str, &'a FollowCounters)> + Clone,
) {
    let families: [FollowFamily; 3] = [
        (
            "merklog_witness_follow_checkpoints_pulled_total",
            "Checkpoints received from followed logs.",
            |s| s.pulled,
        ),
        (
            "merklog_witness_follow_cosigned_total",
            "Checkpoints of followed logs cosigned by the follower.",
            |s| s.cosigned,
        ),
        (
            "merklog_witness_follow_errors_total",
            "Follower failures: connections, RPCs, malformed answers, refused checkpoints.",
            |s| s.errors,
        ),
    ];
    for (name, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (origin, counters) in logs.clone() {
            let _ = writeln!(
                out,
                "{name}{{origin=\"{}\"}} {}",
                escape_label(origin),
                value(&counters.snapshot())
            );
        }
    }
}

/// Escapes a Prometheus label value (backslash, double quote, newline).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts() {
        let m = Metrics::default();
        m.count_request(200);
        m.count_request(200);
        m.count_request(418);
        m.count_fork();
        let text = m.render(3, 1);
        assert!(text.contains("merklog_witness_add_checkpoint_requests_total{status=\"200\"} 2\n"));
        assert!(
            text.contains("merklog_witness_add_checkpoint_requests_total{status=\"other\"} 1\n")
        );
        assert!(text.contains("merklog_witness_forks_detected_total 1\n"));
        assert!(text.contains("merklog_witness_frozen_logs 1\n"));
        assert_eq!(m.snapshot().forks, 1);
    }

    #[test]
    fn render_follow_counts() {
        let a = FollowCounters::default();
        a.count_pulled();
        a.count_pulled();
        a.count_cosigned();
        let b = FollowCounters::default();
        b.count_error();
        let logs = [("example.com/a", &a), ("we\"ird\\", &b)];
        let mut text = String::new();
        render_follow(&mut text, logs.iter().map(|(o, c)| (*o, *c)));
        assert!(text.contains(
            "merklog_witness_follow_checkpoints_pulled_total{origin=\"example.com/a\"} 2\n"
        ));
        assert!(
            text.contains("merklog_witness_follow_cosigned_total{origin=\"example.com/a\"} 1\n")
        );
        assert!(text.contains("merklog_witness_follow_errors_total{origin=\"we\\\"ird\\\\\"} 1\n"));
        assert_eq!(
            a.snapshot(),
            FollowMetricsSnapshot {
                pulled: 2,
                cosigned: 1,
                errors: 0
            }
        );
    }
}
