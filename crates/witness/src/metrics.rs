//! The witness's metrics, recorded through the `metrics` facade and rendered by
//! `metrics-exporter-prometheus` at `/metrics`.
//!
//! Each [`crate::Witness`] has its own recorder rather than the process-global
//! one, so several witnesses in one process (and a witness embedded next to
//! merklogd, which installs the global recorder) keep separate counts. Every
//! series is registered when the witness opens, so a scrape shows zeros rather
//! than missing series before the first event.

use metrics::{Counter, Gauge, Key, KeyName, Label, Level, Metadata, Recorder as _, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Status codes counted separately for `add-checkpoint`; anything else is `other`.
const STATUS_CODES: [u16; 9] = [200, 400, 403, 404, 409, 413, 422, 500, 503];

const ADD_CHECKPOINT_REQUESTS: &str = "merklog_witness_add_checkpoint_requests_total";
const COSIGNATURES: &str = "merklog_witness_cosignatures_total";
const FORKS: &str = "merklog_witness_forks_detected_total";
const BAD_PROOFS: &str = "merklog_witness_bad_consistency_proofs_total";
const EVIDENCE_DROPPED: &str = "merklog_witness_evidence_dropped_total";
const WEBHOOK_FAILURES: &str = "merklog_witness_webhook_failures_total";
const LOGS: &str = "merklog_witness_logs";
const FROZEN_LOGS: &str = "merklog_witness_frozen_logs";
const FOLLOW_PULLED: &str = "merklog_witness_follow_checkpoints_pulled_total";
const FOLLOW_COSIGNED: &str = "merklog_witness_follow_cosigned_total";
const FOLLOW_ERRORS: &str = "merklog_witness_follow_errors_total";

/// Where registrations come from (the exporter ignores it; the facade needs it).
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// One witness's recorder and its registered series.
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    requests: Vec<(u16, Counter)>,
    requests_other: Counter,
    cosignatures: Counter,
    forks: Counter,
    bad_proofs: Counter,
    evidence_dropped: Counter,
    webhook_failures: Counter,
    logs: Gauge,
    frozen_logs: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A recorder with every witness-wide series registered and described.
    pub(crate) fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        for (name, help) in [
            (
                ADD_CHECKPOINT_REQUESTS,
                "add-checkpoint answers by HTTP status.",
            ),
            (COSIGNATURES, "Cosignatures returned."),
            (
                FORKS,
                "Validly signed checkpoints with one size and two roots.",
            ),
            (
                BAD_PROOFS,
                "Validly signed checkpoints whose consistency proof failed.",
            ),
            (
                EVIDENCE_DROPPED,
                "Evidence not saved because the per-log cap was reached.",
            ),
            (
                WEBHOOK_FAILURES,
                "Alarm webhook deliveries that failed or were dropped.",
            ),
            (FOLLOW_PULLED, "Checkpoints received from followed logs."),
            (
                FOLLOW_COSIGNED,
                "Checkpoints of followed logs cosigned by the follower.",
            ),
            (
                FOLLOW_ERRORS,
                "Follower failures: connections, RPCs, malformed answers, refused checkpoints.",
            ),
        ] {
            recorder.describe_counter(
                KeyName::from_const_str(name),
                None,
                SharedString::const_str(help),
            );
        }
        recorder.describe_gauge(
            KeyName::from_const_str(LOGS),
            None,
            SharedString::const_str("Configured logs."),
        );
        recorder.describe_gauge(
            KeyName::from_const_str(FROZEN_LOGS),
            None,
            SharedString::const_str("Logs frozen after a detected fork."),
        );
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
        };
        let status = |code: String| vec![Label::new("status", code)];
        let requests = STATUS_CODES
            .iter()
            .map(|&code| {
                (
                    code,
                    counter(ADD_CHECKPOINT_REQUESTS, status(code.to_string())),
                )
            })
            .collect();
        let requests_other = counter(ADD_CHECKPOINT_REQUESTS, status("other".to_owned()));
        let cosignatures = counter(COSIGNATURES, Vec::new());
        let forks = counter(FORKS, Vec::new());
        let bad_proofs = counter(BAD_PROOFS, Vec::new());
        let evidence_dropped = counter(EVIDENCE_DROPPED, Vec::new());
        let webhook_failures = counter(WEBHOOK_FAILURES, Vec::new());
        let logs = recorder.register_gauge(&Key::from_static_name(LOGS), &METADATA);
        let frozen_logs = recorder.register_gauge(&Key::from_static_name(FROZEN_LOGS), &METADATA);
        Metrics {
            recorder,
            handle,
            requests,
            requests_other,
            cosignatures,
            forks,
            bad_proofs,
            evidence_dropped,
            webhook_failures,
            logs,
            frozen_logs,
        }
    }

    /// The counters of one followed log, labelled with its origin.
    pub(crate) fn follow_counters(&self, origin: &str) -> FollowCounters {
        let counter = |name: &'static str| {
            let labels = vec![Label::new("origin", origin.to_owned())];
            self.recorder
                .register_counter(&Key::from_parts(name, labels), &METADATA)
        };
        FollowCounters {
            pulled: counter(FOLLOW_PULLED),
            cosigned: counter(FOLLOW_COSIGNED),
            errors: counter(FOLLOW_ERRORS),
        }
    }

    pub(crate) fn count_request(&self, status: u16) {
        match self.requests.iter().find(|(code, _)| *code == status) {
            Some((_, counter)) => counter.increment(1),
            None => self.requests_other.increment(1),
        }
    }
    pub(crate) fn count_cosignature(&self) {
        self.cosignatures.increment(1);
    }
    pub(crate) fn count_fork(&self) {
        self.forks.increment(1);
    }
    pub(crate) fn count_bad_proof(&self) {
        self.bad_proofs.increment(1);
    }
    pub(crate) fn count_evidence_dropped(&self) {
        self.evidence_dropped.increment(1);
    }
    pub(crate) fn count_webhook_failure(&self) {
        self.webhook_failures.increment(1);
    }

    /// The Prometheus text page; `logs` and `frozen_logs` are gauges the caller
    /// computes at scrape time.
    pub(crate) fn render(&self, logs: usize, frozen_logs: usize) -> String {
        self.logs.set(logs as f64);
        self.frozen_logs.set(frozen_logs as f64);
        self.handle.render()
    }
}

/// Pull-mode counters of one followed log ([`crate::follow`]).
#[derive(Debug, Clone)]
pub(crate) struct FollowCounters {
    pulled: Counter,
    cosigned: Counter,
    errors: Counter,
}

impl FollowCounters {
    /// A checkpoint received from the log (stream message or poll answer).
    pub(crate) fn count_pulled(&self) {
        self.pulled.increment(1);
    }
    /// A checkpoint the follower got cosigned.
    pub(crate) fn count_cosigned(&self) {
        self.cosigned.increment(1);
    }
    /// A failure: connection, RPC, malformed answer, refused checkpoint.
    pub(crate) fn count_error(&self) {
        self.errors.increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts() {
        let m = Metrics::new();
        let text = m.render(0, 0);
        assert!(
            text.contains("merklog_witness_forks_detected_total 0\n"),
            "{text}"
        );
        assert!(text.contains("merklog_witness_add_checkpoint_requests_total{status=\"409\"} 0\n"));
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
        assert!(text.contains("merklog_witness_logs 3\n"));
        assert!(text.contains("merklog_witness_frozen_logs 1\n"));
        assert!(text.contains("# HELP merklog_witness_forks_detected_total "));
        assert!(text.contains("# TYPE merklog_witness_forks_detected_total counter"));
        // A second recorder keeps its own counts.
        assert!(
            Metrics::new()
                .render(0, 0)
                .contains("merklog_witness_forks_detected_total 0\n")
        );
    }

    #[test]
    fn render_follow_counts() {
        let m = Metrics::new();
        let a = m.follow_counters("example.com/a");
        a.count_pulled();
        a.count_pulled();
        a.count_cosigned();
        let b = m.follow_counters("we\"ird\\");
        b.count_error();
        let text = m.render(2, 0);
        assert!(text.contains(
            "merklog_witness_follow_checkpoints_pulled_total{origin=\"example.com/a\"} 2\n"
        ));
        assert!(
            text.contains("merklog_witness_follow_cosigned_total{origin=\"example.com/a\"} 1\n")
        );
        assert!(text.contains("merklog_witness_follow_errors_total{origin=\"example.com/a\"} 0\n"));
        assert!(text.contains("merklog_witness_follow_errors_total{origin=\"we\\\"ird\\\\\"} 1\n"));
    }
}
