//! The workloads of issue 8 and the run that measures them against merklog and the
//! two baselines.
//!
//! | step | entries | pattern |
//! | --- | --- | --- |
//! | W1 | 64 B | 512 concurrent unary writers, one entry per call |
//! | W2/n | 256 B | unary, n = 1, 16, 64, 256 calls in flight |
//! | W3/k | 256 B | 16 unary writers, k = 100 and 1,000 entries per call |
//! | W4/s | 256 B | s = 1, 4, 16 append streams, 100 entries per request, 16 requests in flight each |
//! | W5/r | 2,350 B | open loop, one entry per call, r = 1k, 5k, 10k, 20k entries/s offered |
//! | W6/…@n | - | 64 readers, random inclusion (then consistency) proofs at tree size n = 10^6, 10^7 |
//! | R | 256 B | raw RocksDB alone, 256 entries per synced batch (the anchor) |
//!
//! Each write step runs merklog, then the echo with the same pattern, then raw
//! RocksDB with the step's entry size and merklog's measured entries per round as
//! the batch size. Each read step runs merklog, then the echo shaped for the same
//! tree size. `--quick` shortens every window, lowers the W5 rates and W6 sizes,
//! and checks every acknowledgement.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use merklog_proto::v1::{self, log_client::LogClient};
use tonic::transport::Channel;

use crate::BenchError;
use crate::cli::{CustomMode, RunArgs};
use crate::metrics::RoundCounters;
use crate::payload::Rng;
use crate::procstat::{self, Machine};
use crate::reader::{ReadKind, ReadSpec, run_readers};
use crate::report::{Fill, Report, RunResult, StepResult, System};
use crate::rocks::{self, RocksSpec};
use crate::stats::{Phase, Tally};
use crate::target::{self, Target};
use crate::verify::{Checker, Sample};
use crate::writer::{Mode, WriteSpec, run_writers};

/// Entries per stream request in W4 and in fills.
const STREAM_REQUEST_ENTRIES: usize = 100;
/// Requests in flight per stream in W4.
const STREAM_WINDOW: usize = 16;
/// Writers of W3.
const BATCH_WRITERS: usize = 16;
/// In-flight cap of the open-loop W5 scheduler.
const OPEN_LOOP_CAP: usize = 8192;
/// Longest a tree fill may take.
const FILL_LIMIT: Duration = Duration::from_secs(1800);

/// One planned step.
#[derive(Debug, Clone)]
pub struct StepPlan {
    /// Step id.
    pub id: String,
    /// Workload name.
    pub workload: &'static str,
    /// What it does.
    pub title: String,
    /// The target, if any.
    pub target: Option<&'static str>,
    /// Writers.
    pub write: Option<WriteSpec>,
    /// Readers.
    pub read: Option<ReadSpec>,
    /// Grow the tree to at least this size first.
    pub fill_to: Option<u64>,
    /// A RocksDB-only step.
    pub rocks_only: Option<RocksSpec>,
}

fn closed(writers: usize, entry_bytes: usize, per_call: usize, mode: Mode) -> WriteSpec {
    WriteSpec {
        writers,
        entry_bytes,
        per_call,
        mode,
        rate: None,
        budget: None,
    }
}

fn step(id: String, workload: &'static str, title: String) -> StepPlan {
    StepPlan {
        id,
        workload,
        title,
        target: None,
        write: None,
        read: None,
        fill_to: None,
        rocks_only: None,
    }
}

/// The steps `args` asks for: the W1-W6 suite (and the RocksDB anchor), or one
/// custom step.
pub fn plan(args: &RunArgs) -> Result<Vec<StepPlan>, BenchError> {
    if let Some(mode) = args.mode {
        return custom_plan(args, mode).map(|s| vec![s]);
    }
    let wanted =
        |name: &str| args.only.is_empty() || args.only.iter().any(|w| w.eq_ignore_ascii_case(name));
    let readers = args.readers.unwrap_or(64);
    let mut steps = Vec::new();
    if wanted("W1") {
        let mut s = step("W1".into(), "W1", "64 B unary, 512 writers".into());
        s.write = Some(closed(512, 64, 1, Mode::Unary));
        s.target = Some(">= 15,000/s, >= 0.75x echo");
        steps.push(s);
    }
    if wanted("W2") {
        for n in [1, 16, 64, 256] {
            let mut s = step(
                format!("W2/{n}"),
                "W2",
                format!("256 B unary, {n} in flight"),
            );
            s.write = Some(closed(n, 256, 1, Mode::Unary));
            if n == 256 {
                s.target = Some(">= 15,000/s, >= 0.75x echo");
            }
            steps.push(s);
        }
    }
    if wanted("W3") {
        for k in [100, 1000] {
            let mut s = step(
                format!("W3/{k}"),
                "W3",
                format!("256 B, {k} per call, {BATCH_WRITERS} writers"),
            );
            s.write = Some(closed(BATCH_WRITERS, 256, k, Mode::Unary));
            if k == 1000 {
                s.target = Some(">= 200,000/s, >= 0.7x rocksdb");
            }
            steps.push(s);
        }
    }
    if wanted("W4") {
        for streams in [1, 4, 16] {
            let mut s = step(
                format!("W4/{streams}"),
                "W4",
                format!("256 B, {streams} streams × {STREAM_REQUEST_ENTRIES}/request"),
            );
            s.write = Some(closed(
                streams,
                256,
                STREAM_REQUEST_ENTRIES,
                Mode::Stream {
                    window: STREAM_WINDOW,
                },
            ));
            if streams == 16 {
                s.target = Some(">= 200,000/s");
            }
            steps.push(s);
        }
    }
    if wanted("W5") {
        let rates = if !args.w5_rates.is_empty() {
            args.w5_rates.clone()
        } else if args.quick {
            vec![50.0, 100.0, 200.0, 400.0]
        } else {
            vec![1000.0, 5000.0, 10_000.0, 20_000.0]
        };
        for rate in rates {
            let mut s = step(
                format!("W5/{}", rate_label(rate)),
                "W5",
                format!("2,350 B unary, open loop {}/s", rate_label(rate)),
            );
            s.write = Some(WriteSpec {
                rate: Some(rate),
                ..closed(OPEN_LOOP_CAP, 2350, 1, Mode::Unary)
            });
            if (rate - 10_000.0).abs() < 0.5 {
                s.target = Some("p99 < 20 ms");
            }
            steps.push(s);
        }
    }
    if wanted("W6") {
        let sizes = if !args.w6_sizes.is_empty() {
            args.w6_sizes.clone()
        } else if args.quick {
            vec![2000, 20_000]
        } else {
            vec![1_000_000, 10_000_000]
        };
        for size in sizes {
            for kind in [ReadKind::Inclusion, ReadKind::Consistency] {
                let name = match kind {
                    ReadKind::Inclusion => "inclusion",
                    ReadKind::Consistency => "consistency",
                };
                let mut s = step(
                    format!("W6/{name}@{}", size_label(size)),
                    "W6",
                    format!(
                        "{name} proofs, {readers} readers, tree {}",
                        size_label(size)
                    ),
                );
                s.read = Some(ReadSpec {
                    readers,
                    kind,
                    emulated_size: Some(size),
                });
                if kind == ReadKind::Inclusion {
                    s.fill_to = Some(size);
                    if size >= 10_000_000 {
                        s.target = Some(">= 15,000/s");
                    }
                }
                steps.push(s);
            }
        }
    }
    if wanted("R") {
        let mut s = step(
            "R".into(),
            "R",
            "rocksdb alone, 256 B × 256 per sync".into(),
        );
        s.rocks_only = Some(RocksSpec {
            entry_bytes: 256,
            batch: 256,
        });
        s.target = Some("anchor: ~82,000/s");
        steps.push(s);
    }
    if steps.is_empty() {
        return Err(BenchError::Usage(format!(
            "--only {:?} names no workload (W1..W6, R)",
            args.only
        )));
    }
    Ok(steps)
}

fn custom_plan(args: &RunArgs, mode: CustomMode) -> Result<StepPlan, BenchError> {
    if args.bytes < crate::payload::HEADER_BYTES {
        return Err(BenchError::Usage(format!(
            "--bytes must be at least {} (entries carry a unique header)",
            crate::payload::HEADER_BYTES
        )));
    }
    let mut s = step("custom".into(), "custom", String::new());
    let read = |readers: usize| ReadSpec {
        readers,
        kind: args.read_kind.into(),
        emulated_size: None,
    };
    match mode {
        CustomMode::Read => {
            s.read = Some(read(args.readers.unwrap_or(64)));
            s.title = format!("{:?} readers", args.read_kind);
        }
        CustomMode::Unary | CustomMode::Stream => {
            let mode = if mode == CustomMode::Unary {
                Mode::Unary
            } else {
                Mode::Stream {
                    window: args.window,
                }
            };
            s.write = Some(WriteSpec {
                rate: args.rate,
                ..closed(args.writers, args.bytes, args.per_call, mode)
            });
            s.title = format!(
                "{} B, {} {:?} writers × {}/call{}",
                args.bytes,
                args.writers,
                mode,
                args.per_call,
                args.rate.map(|r| format!(", {r}/s")).unwrap_or_default()
            );
            if let Some(readers) = args.readers.filter(|r| *r > 0) {
                s.read = Some(read(readers));
            }
        }
    }
    Ok(s)
}

fn rate_label(rate: f64) -> String {
    if rate >= 1000.0 && (rate / 1000.0).fract() == 0.0 {
        format!("{}k", rate / 1000.0)
    } else {
        format!("{rate}")
    }
}

fn size_label(size: u64) -> String {
    let exponent = (size as f64).log10();
    if size >= 1000 && 10u64.checked_pow(exponent.round() as u32) == Some(size) {
        format!("10^{}", exponent.round())
    } else {
        size.to_string()
    }
}

/// Everything a run holds on to.
struct Bench {
    args: RunArgs,
    work: PathBuf,
    log: Target,
    log_clients: Vec<LogClient<Channel>>,
    checker: Arc<Checker>,
    echo: Option<(Target, Vec<LogClient<Channel>>)>,
    nonce: u64,
}

/// Runs the suite (or the custom step) `args` describes and returns the report.
/// `command` is recorded in it.
pub async fn run_suite(args: RunArgs, command: Vec<String>) -> Result<Report, BenchError> {
    let steps = plan(&args)?;
    let quick = args.quick;
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut builder = tempfile::Builder::new();
    builder.prefix("merklog-hammer-");
    let work = match &args.work_dir {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
    .map_err(|e| BenchError::io("creating the work directory", e))?;
    let machine = Machine::describe(work.path());

    let (log, server) = start_log(&args, work.path()).await?;
    let sample = if args.verify_all || (args.quick && args.verify_per_answer.is_none()) {
        Sample::All
    } else {
        Sample::PerAnswer(args.verify_per_answer.unwrap_or(8).max(1))
    };
    let verification = match sample {
        Sample::All => "every acknowledged entry checked".to_owned(),
        Sample::PerAnswer(k) => {
            format!("up to {k} entries per answer checked: the first, the last, random others")
        }
    };
    let checker = Arc::new(Checker::new(
        log.verifier.clone(),
        log.origin.clone(),
        sample,
    ));
    let log_clients = log.connect(args.connections).await?;
    let echo = if args.no_baselines {
        None
    } else {
        let echo = if args.in_process {
            Target::in_process_echo().await?
        } else {
            Target::spawn_echo(work.path()).await?
        };
        let clients = echo.connect(args.connections).await?;
        Some((echo, clients))
    };
    let mut bench = Bench {
        args,
        work: work.path().to_owned(),
        log,
        log_clients,
        checker,
        echo,
        nonce: Rng::seed_from_clock(),
    };

    let mut results = Vec::with_capacity(steps.len());
    let mut outcome = Ok(());
    for plan in &steps {
        match bench.run_step(plan).await {
            Ok(result) => results.push(result),
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }

    let final_tree_size = tree_size(&bench.log_clients).await.ok();
    let Bench {
        log, checker, echo, ..
    } = bench;
    let data_dir = log.data_dir.clone();
    if let Some((echo, _)) = echo {
        echo.stop().await?;
    }
    log.stop().await?;
    outcome?;
    Ok(Report {
        tool: format!("merklog-hammer {}", env!("CARGO_PKG_VERSION")),
        started_unix,
        quick,
        machine,
        server,
        command,
        verification,
        steps: results,
        checked: checker.checked(),
        failure_messages: checker.failure_messages(),
        final_tree_size,
        final_disk_bytes: data_dir.as_deref().map(procstat::dir_bytes),
    })
}

/// Starts (or reaches) the log under test; returns it and a description.
async fn start_log(args: &RunArgs, work: &Path) -> Result<(Target, String), BenchError> {
    if let Some(url) = &args.server {
        let vkey = args
            .vkey
            .as_deref()
            .ok_or_else(|| BenchError::Usage("--server needs --vkey".into()))?;
        return Ok((
            Target::external(url, vkey)?,
            format!("running server at {url}"),
        ));
    }
    if args.in_process {
        let log = Target::in_process_merklogd(work).await?;
        return Ok((log, "merklog server inside the hammer's process".to_owned()));
    }
    let binary = target::find_merklogd(args.merklogd.as_deref()).ok_or_else(|| {
        BenchError::Usage(
            "no merklogd binary found: build it (cargo build --release -p merklog-server), \
             or pass --merklogd PATH, --in-process or --server URL"
                .into(),
        )
    })?;
    let log = Target::spawn_merklogd(&binary, work).await?;
    let description = format!(
        "merklogd child process {} (pid {}), data in {}",
        binary.display(),
        log.pid.unwrap_or(0),
        log.data_dir
            .as_deref()
            .map_or_else(String::new, |d| d.display().to_string())
    );
    Ok((log, description))
}

/// The latest published tree size.
async fn tree_size(clients: &[LogClient<Channel>]) -> Result<u64, BenchError> {
    let mut client = clients
        .first()
        .cloned()
        .ok_or_else(|| BenchError::Setup("no connection".into()))?;
    let checkpoint = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .map_err(|status| BenchError::rpc("GetCheckpoint", &status))?;
    Ok(checkpoint.into_inner().size)
}

/// Process-level figures before a run.
struct Before {
    started: Instant,
    server_cpu: Option<f64>,
    client_cpu: Option<f64>,
    rss_reset: bool,
    disk: Option<u64>,
    written: Option<u64>,
    rounds: Option<RoundCounters>,
    size: Option<u64>,
    checked: crate::verify::Checked,
}

impl Before {
    async fn take(target: &Target, clients: &[LogClient<Channel>], checker: &Checker) -> Self {
        let rss_reset = target.pid.is_some_and(procstat::reset_peak_rss);
        Self {
            started: Instant::now(),
            server_cpu: target.pid.and_then(|p| procstat::cpu_seconds(Some(p))),
            client_cpu: procstat::cpu_seconds(None),
            rss_reset,
            disk: target.data_dir.as_deref().map(procstat::dir_bytes),
            written: target.pid.and_then(|p| procstat::disk_write_bytes(Some(p))),
            rounds: match target.metrics {
                Some(addr) => crate::metrics::scrape(addr).await,
                None => None,
            },
            size: tree_size(clients).await.ok(),
            checked: checker.checked(),
        }
    }
}

fn cores(before: Option<f64>, after: Option<f64>, seconds: f64) -> Option<f64> {
    Some((after? - before?) / seconds.max(1e-9))
}

impl Bench {
    fn phase(&self) -> Phase {
        Phase::starting_now(self.args.warmup(), self.args.measure(), self.args.drain())
    }

    async fn run_step(&mut self, plan: &StepPlan) -> Result<StepResult, BenchError> {
        let mut result = StepResult {
            id: plan.id.clone(),
            workload: plan.workload.to_owned(),
            title: plan.title.clone(),
            target: plan.target.map(str::to_owned),
            fill: None,
            runs: Vec::new(),
        };
        if let Some(spec) = plan.rocks_only {
            result.runs.push(self.measure_rocks(spec).await?);
            progress(&result);
            return Ok(result);
        }
        if let Some(size) = plan.fill_to {
            result.fill = self.fill(size).await?;
        }
        let merklog = self
            .measure_server(System::Merklog, plan.write.as_ref(), plan.read.as_ref())
            .await?;
        let batch = merklog.entries_per_round;
        result.runs.push(merklog);
        if self.echo.is_some() {
            result.runs.push(
                self.measure_server(System::GrpcEcho, plan.write.as_ref(), plan.read.as_ref())
                    .await?,
            );
        }
        if let (Some(write), false) = (&plan.write, self.args.no_baselines) {
            let spec = RocksSpec {
                entry_bytes: write.entry_bytes,
                batch: batch.map_or(write.per_call, |b| b.round().max(1.0) as usize),
            };
            result.runs.push(self.measure_rocks(spec).await?);
        }
        progress(&result);
        Ok(result)
    }

    /// Grows the log to `size` entries of 64 B with batched streams.
    async fn fill(&mut self, size: u64) -> Result<Option<Fill>, BenchError> {
        let from = tree_size(&self.log_clients).await?;
        if from >= size {
            return Ok(None);
        }
        eprintln!("filling the tree from {from} to {size} entries ...");
        let spec = WriteSpec {
            budget: Some(size - from),
            ..closed(
                4,
                64,
                target::MAX_ENTRIES_PER_CALL,
                Mode::Stream { window: 8 },
            )
        };
        let now = Instant::now();
        let phase = Phase {
            measure_from: now,
            measure_to: now + FILL_LIMIT,
            drain_until: now + FILL_LIMIT + self.args.drain(),
        };
        self.nonce = self.nonce.wrapping_add(1);
        let tally = run_writers(
            &self.log_clients,
            &spec,
            phase,
            Arc::clone(&self.checker),
            self.nonce,
        )
        .await?;
        let to = tree_size(&self.log_clients).await?;
        if to < size {
            return Err(BenchError::Setup(format!(
                "filling the tree stopped at {to} of {size} entries ({} errors: {:?})",
                tally.error_count(),
                tally.errors
            )));
        }
        Ok(Some(Fill {
            from,
            to,
            seconds: now.elapsed().as_secs_f64(),
        }))
    }

    async fn measure_server(
        &mut self,
        system: System,
        write: Option<&WriteSpec>,
        read: Option<&ReadSpec>,
    ) -> Result<RunResult, BenchError> {
        let (target, clients, checker) = match system {
            System::GrpcEcho => match &self.echo {
                Some((echo, clients)) => (
                    echo,
                    clients,
                    Arc::new(Checker::new(None, None, Sample::All)),
                ),
                None => return Err(BenchError::Setup("no echo server".into())),
            },
            _ => (&self.log, &self.log_clients, Arc::clone(&self.checker)),
        };
        let before = Before::take(target, clients, &checker).await;
        let phase = self.phase();
        self.nonce = self.nonce.wrapping_add(1);
        let nonce = self.nonce;
        let writers = async {
            match write {
                Some(spec) => run_writers(clients, spec, phase, Arc::clone(&checker), nonce)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let readers = async {
            match read {
                Some(spec) => {
                    let spec = ReadSpec {
                        emulated_size: if system == System::GrpcEcho {
                            spec.emulated_size
                        } else {
                            None
                        },
                        ..*spec
                    };
                    run_readers(clients, &spec, phase, Arc::clone(&checker))
                        .await
                        .map(Some)
                }
                None => Ok(None),
            }
        };
        let (written, read_tally) = tokio::join!(writers, readers);
        let (written, read_tally): (Option<Tally>, Option<Tally>) = (written?, read_tally?);
        let elapsed = before.started.elapsed().as_secs_f64();
        let server_cpu = target.pid.and_then(|p| procstat::cpu_seconds(Some(p)));
        let client_cpu = procstat::cpu_seconds(None);
        let rss = target
            .pid
            .filter(|_| before.rss_reset)
            .and_then(|p| procstat::peak_rss_bytes(Some(p)));
        let size = if system == System::Merklog {
            tree_size(clients).await.ok()
        } else {
            None
        };
        let disk = target.data_dir.as_deref().map(procstat::dir_bytes);
        let written_bytes = target.pid.and_then(|p| procstat::disk_write_bytes(Some(p)));
        let rounds = match (before.rounds, target.metrics) {
            (Some(earlier), Some(addr)) => crate::metrics::scrape(addr)
                .await
                .map(|later| earlier.since(&later))
                .filter(|r| r.rounds > 0.0),
            _ => None,
        };
        let checked = checker.checked();
        let appended = match (before.size, size) {
            (Some(a), Some(b)) if b > a => Some(b - a),
            _ => None,
        };
        let seconds = phase.seconds();
        let main = written.as_ref().or(read_tally.as_ref());
        let mut errors = std::collections::BTreeMap::new();
        let (mut rejected, mut missed, mut abandoned) = (0, 0, 0);
        for tally in written.iter().chain(read_tally.iter()) {
            for (cause, count) in &tally.errors {
                *errors.entry(cause.clone()).or_insert(0) += count;
            }
            rejected += tally.rejected;
            missed += tally.missed;
            abandoned += tally.abandoned;
        }
        let new_checkpoints = checked.checkpoints - before.checked.checkpoints;
        Ok(RunResult {
            system,
            seconds,
            entries_per_s: written.as_ref().map_or(0.0, |t| t.entries as f64 / seconds),
            calls_per_s: main.map_or(0.0, |t| t.calls as f64 / seconds),
            proofs_per_s: read_tally
                .as_ref()
                .map_or(0.0, |t| t.calls as f64 / seconds),
            latency: main.map(|t| t.latency.summary()).unwrap_or_default(),
            read_latency: read_tally
                .as_ref()
                .filter(|_| written.is_some())
                .map(|t| t.latency.summary()),
            offered_per_s: write.and_then(|w| w.rate),
            server_cpu_cores: cores(before.server_cpu, server_cpu, elapsed),
            client_cpu_cores: cores(before.client_cpu, client_cpu, elapsed),
            server_peak_rss_mib: rss.map(|b| b as f64 / (1 << 20) as f64),
            disk_bytes_per_entry: match (before.disk, disk, appended) {
                (Some(a), Some(b), Some(n)) => Some((b as f64 - a as f64) / n as f64),
                _ => None,
            },
            disk_written_per_entry: match (before.written, written_bytes, appended) {
                (Some(a), Some(b), Some(n)) => Some(b.saturating_sub(a) as f64 / n as f64),
                _ => None,
            },
            sequencer_busy: rounds.map(|r| r.round_seconds / elapsed.max(1e-9)),
            round_ms: rounds.map(|r| 1000.0 * r.round_seconds / r.rounds),
            commit_share: rounds
                .filter(|r| r.round_seconds > 0.0)
                .map(|r| r.commit_seconds / r.round_seconds),
            // The server's own count when it is known; else distinct checkpoints seen.
            entries_per_round: match rounds {
                Some(r) if written.is_some() => Some(r.entries / r.rounds),
                _ => written
                    .as_ref()
                    .filter(|t| t.total_entries > 0 && new_checkpoints > 0 && checker.verifies())
                    .map(|t| t.total_entries as f64 / new_checkpoints as f64),
            },
            tree_size: size,
            rejected,
            errors,
            missed,
            abandoned,
            checked: crate::verify::Checked {
                checkpoints: new_checkpoints,
                acknowledged_entries: checked.acknowledged_entries
                    - before.checked.acknowledged_entries,
                unsampled_entries: checked.unsampled_entries - before.checked.unsampled_entries,
                inclusion_proofs: checked.inclusion_proofs - before.checked.inclusion_proofs,
                consistency_proofs: checked.consistency_proofs - before.checked.consistency_proofs,
                failures: checked.failures - before.checked.failures,
            },
        })
    }

    async fn measure_rocks(&self, spec: RocksSpec) -> Result<RunResult, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("rocksdb-baseline-")
            .tempdir_in(&self.work)
            .map_err(|e| BenchError::io("creating the RocksDB baseline directory", e))?;
        let phase = self.phase();
        let cpu_before = procstat::cpu_seconds(None);
        let written_before = procstat::disk_write_bytes(None);
        let started = Instant::now();
        let path = dir.path().to_owned();
        let outcome = tokio::task::spawn_blocking(move || rocks::run(&path, spec, phase))
            .await
            .map_err(|e| BenchError::Setup(format!("RocksDB baseline task: {e}")))??;
        let elapsed = started.elapsed().as_secs_f64();
        let seconds = phase.seconds();
        let tally = outcome.tally;
        Ok(RunResult {
            system: System::Rocksdb,
            seconds,
            entries_per_s: tally.entries as f64 / seconds,
            calls_per_s: tally.calls as f64 / seconds,
            proofs_per_s: 0.0,
            latency: tally.latency.summary(),
            read_latency: None,
            offered_per_s: None,
            server_cpu_cores: cores(cpu_before, procstat::cpu_seconds(None), elapsed),
            client_cpu_cores: None,
            server_peak_rss_mib: None,
            disk_bytes_per_entry: (tally.total_entries > 0)
                .then(|| outcome.disk_bytes as f64 / tally.total_entries as f64),
            disk_written_per_entry: match (written_before, procstat::disk_write_bytes(None)) {
                (Some(a), Some(b)) if tally.total_entries > 0 => {
                    Some(b.saturating_sub(a) as f64 / tally.total_entries as f64)
                }
                _ => None,
            },
            sequencer_busy: None,
            round_ms: None,
            commit_share: None,
            entries_per_round: Some(spec.batch as f64),
            tree_size: None,
            rejected: 0,
            errors: tally.errors,
            missed: 0,
            abandoned: 0,
            checked: crate::verify::Checked::default(),
        })
    }
}

/// One line per run on stderr while the suite goes on.
fn progress(step: &StepResult) {
    for run in &step.runs {
        eprintln!(
            "{:<22} {:<10} {:>10.0} entries/s {:>9.0} proofs/s  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
            step.id,
            format!("{:?}", run.system),
            run.entries_per_s,
            run.proofs_per_s,
            run.latency.p50_ms,
            run.latency.p99_ms,
            run.latency.max_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn args(argv: &[&str]) -> RunArgs {
        crate::Cli::try_parse_from(std::iter::once("merklog-hammer").chain(argv.iter().copied()))
            .unwrap()
            .run
    }

    #[test]
    fn the_full_suite_has_every_workload() {
        let steps = plan(&args(&[])).unwrap();
        let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "W1",
                "W2/1",
                "W2/16",
                "W2/64",
                "W2/256",
                "W3/100",
                "W3/1000",
                "W4/1",
                "W4/4",
                "W4/16",
                "W5/1k",
                "W5/5k",
                "W5/10k",
                "W5/20k",
                "W6/inclusion@10^6",
                "W6/consistency@10^6",
                "W6/inclusion@10^7",
                "W6/consistency@10^7",
                "R"
            ]
        );
        let w5 = steps.iter().find(|s| s.id == "W5/10k").unwrap();
        let write = w5.write.as_ref().unwrap();
        assert_eq!((write.entry_bytes, write.rate), (2350, Some(10_000.0)));
        assert_eq!(w5.target, Some("p99 < 20 ms"));
        let w6 = steps.iter().find(|s| s.id == "W6/inclusion@10^7").unwrap();
        assert_eq!(w6.fill_to, Some(10_000_000));
    }

    #[test]
    fn quick_and_filters_and_custom_steps() {
        let steps = plan(&args(&["--quick", "--only", "w5,W6"])).unwrap();
        assert_eq!(steps.len(), 4 + 4);
        assert_eq!(steps[0].write.as_ref().unwrap().rate, Some(50.0));
        assert_eq!(steps[4].fill_to, Some(2000));
        assert!(plan(&args(&["--only", "W9"])).is_err());

        let custom = plan(&args(&[
            "--mode",
            "stream",
            "--writers",
            "3",
            "--per-call",
            "10",
            "--readers",
            "2",
        ]))
        .unwrap();
        assert_eq!(custom.len(), 1);
        let write = custom[0].write.as_ref().unwrap();
        assert_eq!(write.mode, Mode::Stream { window: 16 });
        assert_eq!(custom[0].read.unwrap().readers, 2);
        assert!(plan(&args(&["--mode", "unary", "--bytes", "8"])).is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(rate_label(10_000.0), "10k");
        assert_eq!(rate_label(50.0), "50");
        assert_eq!(size_label(10_000_000), "10^7");
        assert_eq!(size_label(2000), "2000");
    }
}
