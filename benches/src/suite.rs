//! Running the planned steps ([`crate::plan`]) against merklog and the two baselines,
//! and collecting the report.
//!
//! Each write step runs merklog, then the echo with the same pattern, then raw
//! RocksDB with the step's entry size and merklog's measured entries per round as
//! the batch size. Each read step runs merklog, then the echo shaped for the same
//! tree size.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use merklog_proto::v1;

use crate::BenchError;
use crate::cli::RunArgs;
use crate::metrics::RoundCounters;
use crate::payload::Rng;
use crate::plan::{FILL_LIMIT, StepPlan, closed, plan};
use crate::procstat::{self, Machine};
use crate::reader::{ReadSpec, run_readers};
use crate::report::{Fill, Report, RunResult, StepResult, System};
use crate::rocks::{self, RocksSpec};
use crate::signed::{self, SignedSources, Signing};
use crate::stats::{Phase, Tally};
use crate::target::{self, Client, Target};
use crate::verify::{Checker, Sample};
use crate::writer::{Mode, WriteSpec, makers, run_writers};

/// Everything a run holds on to.
struct Bench {
    args: RunArgs,
    work: PathBuf,
    log: Target,
    log_clients: Vec<Client>,
    checker: Arc<Checker>,
    echo: Option<(Target, Vec<Client>)>,
    nonce: u64,
    signing: Signing,
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

    let signing = if args.signed {
        Some(Arc::new(SignedSources::generate(signed::SOURCES)?))
    } else {
        None
    };
    let (log, server) = start_log(&args, work.path(), signing.as_deref()).await?;
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
        signing,
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
async fn start_log(
    args: &RunArgs,
    work: &Path,
    signing: Option<&SignedSources>,
) -> Result<(Target, String), BenchError> {
    if let Some(url) = &args.server {
        if signing.is_some() {
            return Err(BenchError::Usage(
                "--signed registers the run's sources with the merklogd the hammer starts; \
                 it does not work with --server"
                    .into(),
            ));
        }
        let vkey = args
            .vkey
            .as_deref()
            .ok_or_else(|| BenchError::Usage("--server needs --vkey".into()))?;
        let mut target = Target::external(url, vkey, args.ca_cert.as_deref())?;
        if args.token {
            let token = std::env::var("MERKLOG_TOKEN").map_err(|_| {
                BenchError::Usage("--token with --server reads the token from MERKLOG_TOKEN".into())
            })?;
            target = target.with_token(token);
        }
        return Ok((target, format!("running server at {url}")));
    }
    let tls = if args.tls {
        Some(target::TestCertificates::create(work)?)
    } else {
        None
    };
    let tokens_file = work.join("tokens");
    let token = if args.token {
        Some(target::create_bench_token(&tokens_file)?)
    } else {
        None
    };
    let tokens_file = token.as_ref().map(|_| tokens_file.as_path());
    let sources_file = work.join("sources.toml");
    let sources_file = match signing {
        Some(sources) => {
            sources.write_registry(&sources_file)?;
            Some(sources_file.as_path())
        }
        None => None,
    };
    let over = match (args.tls, args.token) {
        (true, true) => ", over TLS, every call with a bearer token",
        (true, false) => ", over TLS",
        (false, true) => ", every call with a bearer token",
        (false, false) => "",
    };
    let over = if signing.is_some() {
        format!("{over}, every entry a signed source event")
    } else {
        over.to_owned()
    };
    let options = target::ServeOptions {
        tls: tls.as_ref(),
        tokens_file,
        sources_file,
    };
    let authenticate = |target: Target| match &token {
        Some(token) => target.with_token(token.clone()),
        None => target,
    };
    if args.in_process {
        let log = authenticate(Target::in_process_merklogd(work, &options).await?);
        return Ok((
            log,
            format!("merklog server inside the hammer's process{over}"),
        ));
    }
    let binary = target::find_merklogd(args.merklogd.as_deref()).ok_or_else(|| {
        BenchError::Usage(
            "no merklogd binary found: build it (cargo build --release -p merklog-server), \
             or pass --merklogd PATH, --in-process or --server URL"
                .into(),
        )
    })?;
    let log = authenticate(Target::spawn_merklogd(&binary, work, &options).await?);
    let description = format!(
        "merklogd child process {} (pid {}){over}, data in {}",
        binary.display(),
        log.pid.unwrap_or(0),
        log.data_dir
            .as_deref()
            .map_or_else(String::new, |d| d.display().to_string())
    );
    Ok((log, description))
}

/// The latest published tree size.
async fn tree_size(clients: &[Client]) -> Result<u64, BenchError> {
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
    async fn take(target: &Target, clients: &[Client], checker: &Checker) -> Self {
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
                crate::echo::MAX_ENTRIES_PER_CALL,
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
            makers(&spec, self.nonce, &None, 0),
            None,
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
        self.nonce = self.nonce.wrapping_add(1);
        // Entries signed ahead are made before the CPU counters and the clock start.
        let ahead = if self.signing.is_some() {
            self.args.presign
        } else {
            0
        };
        let makers = match write {
            // Signing ahead takes seconds of CPU: off the runtime's threads, which
            // also drive the connections (and the server, with --in-process).
            Some(spec) => {
                let (spec, signing, nonce) = (spec.clone(), self.signing.clone(), self.nonce);
                let made =
                    tokio::task::spawn_blocking(move || makers(&spec, nonce, &signing, ahead))
                        .await
                        .map_err(|e| BenchError::Setup(format!("making entries ahead: {e}")))?;
                Some(made)
            }
            None => None,
        };
        let before = Before::take(target, clients, &checker).await;
        let phase = self.phase();
        let writers = async {
            match (write, makers) {
                (Some(spec), Some(makers)) => run_writers(
                    clients,
                    spec,
                    phase,
                    Arc::clone(&checker),
                    makers,
                    target.otlp_grpc,
                )
                .await
                .map(Some),
                _ => Ok(None),
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
