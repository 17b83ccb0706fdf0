//! Results: per run, per step, and the whole report as a Markdown table and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::procstat::Machine;
use crate::stats::LatencySummary;
use crate::verify::Checked;

/// Which system a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// The log under test.
    Merklog,
    /// The no-storage gRPC echo (transport ceiling).
    GrpcEcho,
    /// Raw RocksDB synced batches (storage ceiling).
    Rocksdb,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            Self::Merklog => "merklog",
            Self::GrpcEcho => "grpc echo",
            Self::Rocksdb => "rocksdb",
        }
    }
}

/// What one run (one system, one call pattern, one window) measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The system.
    pub system: System,
    /// Window length, seconds.
    pub seconds: f64,
    /// Entries acknowledged (or written, for RocksDB) per second in the window.
    pub entries_per_s: f64,
    /// Successful calls (stream requests, synced batches) per second.
    pub calls_per_s: f64,
    /// Proofs fetched per second (readers).
    pub proofs_per_s: f64,
    /// Acknowledgement latency (writers), proof latency (readers), or synced-batch
    /// write latency (RocksDB).
    pub latency: LatencySummary,
    /// Readers' proof latency when a run has both writers and readers.
    pub read_latency: Option<LatencySummary>,
    /// Offered entries per second (open loop).
    pub offered_per_s: Option<f64>,
    /// Average cores used by the server process (for RocksDB: by the writing process).
    pub server_cpu_cores: Option<f64>,
    /// Average cores used by the hammer itself.
    pub client_cpu_cores: Option<f64>,
    /// Peak resident memory of the server process during the run, MiB.
    pub server_peak_rss_mib: Option<f64>,
    /// Growth of the data directory per entry appended in the run (noisy: RocksDB
    /// deletes WAL files and compacts whenever it likes).
    pub disk_bytes_per_entry: Option<f64>,
    /// Bytes the server process wrote to storage per entry (WAL, flushes,
    /// compactions), from `/proc/<pid>/io`.
    pub disk_written_per_entry: Option<f64>,
    /// Fraction of the run's wall time the sequencer spent in rounds (1.0: it never
    /// waited for work), from the server's metrics.
    pub sequencer_busy: Option<f64>,
    /// Mean round duration, ms, from the server's metrics.
    pub round_ms: Option<f64>,
    /// Fraction of round time spent in the synced write, from the server's metrics.
    pub commit_share: Option<f64>,
    /// Entries per sequencer round (distinct checkpoints seen), or per synced batch.
    pub entries_per_round: Option<f64>,
    /// Tree size at the end of the run.
    pub tree_size: Option<u64>,
    /// RESOURCE_EXHAUSTED answers (retried).
    pub rejected: u64,
    /// Failed calls by cause.
    pub errors: BTreeMap<String, u64>,
    /// Open-loop sends skipped (in-flight cap reached).
    pub missed: u64,
    /// Calls abandoned unanswered at the end of the drain.
    pub abandoned: u64,
    /// What was verified in this run.
    pub checked: Checked,
}

/// A fill of the tree before a read step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Fill {
    /// Tree size before.
    pub from: u64,
    /// Tree size after.
    pub to: u64,
    /// Seconds it took.
    pub seconds: f64,
}

/// One step of the suite: the same call pattern against each system.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// Step id, e.g. `W2/16`.
    pub id: String,
    /// Workload, e.g. `W2`.
    pub workload: String,
    /// What the step does.
    pub title: String,
    /// The target for this step, if any.
    pub target: Option<String>,
    /// The tree fill that preceded it.
    pub fill: Option<Fill>,
    /// The runs: merklog first, then the baselines.
    pub runs: Vec<RunResult>,
}

impl StepResult {
    fn run(&self, system: System) -> Option<&RunResult> {
        self.runs.iter().find(|r| r.system == system)
    }

    /// merklog's rate as a fraction of a baseline's (entries/s for writes, proofs/s
    /// for reads).
    pub fn ratio(&self, baseline: System) -> Option<f64> {
        let ours = self.run(System::Merklog)?;
        let theirs = self.run(baseline)?;
        let (a, b) = if ours.entries_per_s > 0.0 || theirs.entries_per_s > 0.0 {
            (ours.entries_per_s, theirs.entries_per_s)
        } else {
            (ours.proofs_per_s, theirs.proofs_per_s)
        };
        (b > 0.0).then(|| a / b)
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `merklog-hammer` and its version.
    pub tool: String,
    /// Seconds since the Unix epoch at the start.
    pub started_unix: u64,
    /// Quick mode.
    pub quick: bool,
    /// The machine.
    pub machine: Machine,
    /// The server under test (how it was started).
    pub server: String,
    /// The command line.
    pub command: Vec<String>,
    /// How acknowledgements were sampled for verification.
    pub verification: String,
    /// The steps.
    pub steps: Vec<StepResult>,
    /// Everything verified over the run.
    pub checked: Checked,
    /// The first verification failures, as evidence.
    pub failure_messages: Vec<String>,
    /// Final tree size.
    pub final_tree_size: Option<u64>,
    /// Final size of the server's data directory, bytes.
    pub final_disk_bytes: Option<u64>,
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

fn rate(value: f64) -> String {
    if value == 0.0 {
        "-".to_owned()
    } else if value >= 100.0 {
        // Thousands separators keep six-digit rates readable.
        let whole = value.round() as u64;
        let digits = whole.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{value:.1}")
    }
}

fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

impl Report {
    /// Why the run failed, if it did: verification failures, runs of merklog that
    /// got no answers, and (in quick mode) any error or abandoned call.
    pub fn failures(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.checked.failures > 0 {
            reasons.push(format!(
                "{} checks failed; first: {}",
                self.checked.failures,
                self.failure_messages.first().map_or("?", String::as_str)
            ));
        }
        for step in &self.steps {
            for run in &step.runs {
                let errors: u64 = run.errors.values().sum();
                if run.system == System::Merklog
                    && run.latency.count == 0
                    && run.read_latency.is_none_or(|l| l.count == 0)
                {
                    reasons.push(format!(
                        "{}: merklog answered nothing in the window",
                        step.id
                    ));
                }
                if errors > 0 && (self.quick || run.system == System::Merklog) {
                    reasons.push(format!(
                        "{} ({}): {errors} failed calls {:?}",
                        step.id,
                        run.system.label(),
                        run.errors
                    ));
                }
                if self.quick && run.abandoned > 0 {
                    reasons.push(format!(
                        "{} ({}): {} calls unanswered at the end",
                        step.id,
                        run.system.label(),
                        run.abandoned
                    ));
                }
            }
        }
        reasons
    }

    /// The results as a Markdown table, one row per run.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| step | pattern | system | entries/s | proofs/s | p50 ms | p90 ms | p99 ms | max ms \
             | server CPU | client CPU | server RSS MiB | disk B/entry | written B/entry \
             | entries/round | seq busy | notes |\n",
        );
        out.push_str(
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: \
             | ---: | ---: | ---: | ---: | --- |\n",
        );
        for step in &self.steps {
            for (i, run) in step.runs.iter().enumerate() {
                let (id, title) = if i == 0 {
                    (step.id.as_str(), step.title.as_str())
                } else {
                    ("", "")
                };
                let mut notes = Vec::new();
                if run.system == System::Merklog {
                    if let Some(ratio) = step.ratio(System::GrpcEcho) {
                        notes.push(format!("{ratio:.2}× echo"));
                    }
                    if let Some(ratio) = step.ratio(System::Rocksdb) {
                        notes.push(format!("{ratio:.2}× rocksdb"));
                    }
                    if let Some(fill) = &step.fill {
                        notes.push(format!(
                            "filled {}→{} at {}/s",
                            fill.from,
                            fill.to,
                            rate((fill.to - fill.from) as f64 / fill.seconds.max(1e-9))
                        ));
                    }
                }
                if let (Some(round), Some(share)) = (run.round_ms, run.commit_share) {
                    notes.push(format!(
                        "rounds {} ms, {:.0}% in the synced write",
                        ms(round),
                        share * 100.0
                    ));
                }
                if let Some(offered) = run.offered_per_s {
                    notes.push(format!("offered {}/s", rate(offered)));
                }
                if run.rejected > 0 {
                    notes.push(format!("{} busy", run.rejected));
                }
                if run.missed > 0 {
                    notes.push(format!("{} not sent", run.missed));
                }
                if run.abandoned > 0 {
                    notes.push(format!("{} unanswered", run.abandoned));
                }
                for (cause, count) in &run.errors {
                    notes.push(format!("{count} {cause}"));
                }
                let _ = writeln!(
                    out,
                    "| {id} | {title} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    run.system.label(),
                    rate(run.entries_per_s),
                    rate(run.proofs_per_s),
                    ms(run.latency.p50_ms),
                    ms(run.latency.p90_ms),
                    ms(run.latency.p99_ms),
                    ms(run.latency.max_ms),
                    opt(run.server_cpu_cores, 2),
                    opt(run.client_cpu_cores, 2),
                    opt(run.server_peak_rss_mib, 0),
                    opt(run.disk_bytes_per_entry, 0),
                    opt(run.disk_written_per_entry, 0),
                    opt(run.entries_per_round, 1),
                    opt(run.sequencer_busy, 2),
                    notes.join("; ")
                );
            }
        }
        out
    }

    /// A few lines about the run and what was verified.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "machine: {} CPUs, {}, {} GiB RAM, kernel {}, data on {}",
            m.cpus,
            m.cpu_model.as_deref().unwrap_or("unknown CPU"),
            m.memory_bytes.map_or(0, |b| b >> 30),
            m.kernel.as_deref().unwrap_or("?"),
            m.filesystem.as_deref().unwrap_or("?")
        );
        let _ = writeln!(out, "server: {}", self.server);
        let c = &self.checked;
        let _ = writeln!(
            out,
            "verified: {} checkpoint signatures, {} inclusion proofs of acknowledged entries \
             ({} acknowledged entries not sampled; {}), {} fetched inclusion proofs, {} \
             consistency proofs; {} failures",
            c.checkpoints,
            c.acknowledged_entries,
            c.unsampled_entries,
            self.verification,
            c.inclusion_proofs,
            c.consistency_proofs,
            c.failures
        );
        if let (Some(size), Some(bytes)) = (self.final_tree_size, self.final_disk_bytes) {
            let _ = writeln!(
                out,
                "final tree size {size}, data directory {:.1} MiB ({:.0} B/entry)",
                bytes as f64 / (1 << 20) as f64,
                bytes as f64 / size.max(1) as f64
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(system: System, entries_per_s: f64, count: u64) -> RunResult {
        RunResult {
            system,
            seconds: 1.0,
            entries_per_s,
            calls_per_s: entries_per_s,
            proofs_per_s: 0.0,
            latency: LatencySummary {
                count,
                p50_ms: 1.0,
                p90_ms: 2.0,
                p99_ms: 3.0,
                max_ms: 4.0,
            },
            read_latency: None,
            offered_per_s: None,
            server_cpu_cores: Some(0.5),
            client_cpu_cores: None,
            server_peak_rss_mib: None,
            disk_bytes_per_entry: None,
            disk_written_per_entry: None,
            sequencer_busy: None,
            round_ms: None,
            commit_share: None,
            entries_per_round: Some(12.0),
            tree_size: None,
            rejected: 0,
            errors: BTreeMap::new(),
            missed: 0,
            abandoned: 0,
            checked: Checked::default(),
        }
    }

    fn report(steps: Vec<StepResult>) -> Report {
        Report {
            tool: "merklog-hammer".into(),
            started_unix: 0,
            quick: true,
            machine: Machine::describe(std::path::Path::new("/")),
            server: "test".into(),
            command: vec![],
            verification: "all".into(),
            steps,
            checked: Checked::default(),
            failure_messages: vec![],
            final_tree_size: None,
            final_disk_bytes: None,
        }
    }

    #[test]
    fn table_rows_and_ratios() {
        let step = StepResult {
            id: "W2/16".into(),
            workload: "W2".into(),
            title: "256 B unary, 16 in flight".into(),
            target: None,
            fill: None,
            runs: vec![
                run(System::Merklog, 15_000.0, 10),
                run(System::GrpcEcho, 20_000.0, 10),
                run(System::Rocksdb, 30_000.0, 10),
            ],
        };
        assert_eq!(step.ratio(System::GrpcEcho), Some(0.75));
        let r = report(vec![step]);
        let table = r.markdown();
        assert_eq!(table.lines().count(), 5);
        assert!(table.contains("| W2/16 | 256 B unary, 16 in flight | merklog | 15,000 |"));
        assert!(table.contains("0.75× echo; 0.50× rocksdb"));
        assert!(r.failures().is_empty());
        assert!(r.summary().contains("verified: 0 checkpoint signatures"));
    }

    #[test]
    fn silent_runs_and_errors_fail_the_report() {
        let mut broken = run(System::Merklog, 0.0, 0);
        broken.errors.insert("Unavailable".into(), 3);
        let step = StepResult {
            id: "W1".into(),
            workload: "W1".into(),
            title: String::new(),
            target: None,
            fill: None,
            runs: vec![broken],
        };
        let mut r = report(vec![step]);
        r.checked.failures = 1;
        r.failure_messages.push("inclusion proof of index 3".into());
        let reasons = r.failures();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("index 3"));
    }
}
