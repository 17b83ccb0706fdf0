//! Command-line options of `merklog-hammer`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::reader::ReadKind;

/// `merklog-hammer` command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "merklog-hammer",
    version,
    about = "Load generator for merklog: verifying writers and readers, workloads W1-W6, \
             same-run RocksDB and gRPC-echo baselines",
    long_about = "Load generator for merklog.\n\n\
        With no arguments it starts its own merklogd (the release binary of this build when \
        there is one) on a temporary data directory, starts the gRPC echo baseline as a \
        child process, runs the workloads W1-W6 with the raw RocksDB and echo \
        baselines next to each, checks every checkpoint signature and the inclusion proofs \
        of acknowledged entries, and prints a Markdown table. Every loop is bounded in \
        time; all traffic goes to 127.0.0.1.\n\n\
        Exit status: 0 when every check passed, 1 when a proof or checkpoint failed to \
        verify or a run got no answers (or, with --quick, any error), 2 when the run could \
        not be set up."
)]
pub struct Cli {
    /// Internal commands.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of a benchmark run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Internal commands (hidden from the help).
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the gRPC echo baseline on a loopback port and write its address as JSON.
    #[command(hide = true)]
    EchoServer {
        /// Where to write `{"grpc": "127.0.0.1:port"}` once serving.
        #[arg(long)]
        addr_file: PathBuf,
    },
}

/// Custom-run modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CustomMode {
    /// Unary `Append` calls of `--per-call` entries.
    Unary,
    /// `AppendStream` streams (`--writers` streams, `--window` requests in flight).
    Stream,
    /// Readers only.
    Read,
    /// OpenTelemetry `LogsService/Export` calls of `--per-call` records (gzip unless
    /// --otlp-uncompressed) on the OTLP/gRPC port, one record per entry of `--bytes`
    Otlp,
}

/// Reader proof kinds on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadKindArg {
    /// Inclusion proofs by index.
    Inclusion,
    /// Consistency proofs from a verified checkpoint.
    Consistency,
}

impl From<ReadKindArg> for ReadKind {
    fn from(kind: ReadKindArg) -> Self {
        match kind {
            ReadKindArg::Inclusion => ReadKind::Inclusion,
            ReadKindArg::Consistency => ReadKind::Consistency,
        }
    }
}

/// Options of a benchmark run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Run every workload briefly on small trees, check every acknowledgement, and
    /// exit non-zero on any failed check or error
    #[arg(long)]
    pub quick: bool,

    /// Workloads to run, comma-separated (W1..W6, R for the RocksDB anchor) [default: all]
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub only: Vec<String>,

    /// Target a running merklogd (e.g. http://127.0.0.1:7800) instead of starting one;
    /// it must accept 1,000 entries per call for W3
    #[arg(long, value_name = "URL", requires = "vkey")]
    pub server: Option<String>,

    /// Serve and call the log over TLS: the merklogd the hammer starts gets a
    /// certificate from a CA made for the run (the echo baseline stays plaintext)
    #[arg(long, conflicts_with = "server")]
    pub tls: bool,

    /// Authenticate every call with a bearer token: the merklogd the hammer starts
    /// gets a tokens file holding one append + read token; with --server the token
    /// comes from MERKLOG_TOKEN (the echo baseline gets it too, and ignores it)
    #[arg(long)]
    pub token: bool,

    /// Make every entry a signed source event (docs/event-format.md) whose payload
    /// is the entry it would be otherwise: the merklogd the hammer starts gets a
    /// sources registry of the run's sources (one per writer, up to 512) and checks
    /// each event on ingest
    #[arg(long, conflicts_with = "server")]
    pub signed: bool,

    /// With --signed: events each writer signs before a step's clock and CPU counters
    /// start (a real source signs on its own machine, not on the log's cores); past
    /// them, events are signed as they are sent
    #[arg(long, value_name = "N", default_value_t = 0, requires = "signed")]
    pub presign: usize,

    /// With an https:// --server: the CA certificate(s) its certificate chains to
    /// [default: the public web roots]
    #[arg(long, value_name = "FILE", requires = "server")]
    pub ca_cert: Option<PathBuf>,

    /// The target's verifier key, or a file holding it (with --server)
    #[arg(long, value_name = "KEY|FILE")]
    pub vkey: Option<String>,

    /// The target's Prometheus endpoint (with --server), e.g. 127.0.0.1:7802, for the
    /// sequencer figures
    #[arg(long, value_name = "ADDR", requires = "server")]
    pub server_metrics: Option<std::net::SocketAddr>,

    /// The merklogd binary to start [default: $MERKLOGD_BIN, else target/release/merklogd,
    /// else a merklogd next to this binary]
    #[arg(long, value_name = "PATH", conflicts_with = "server")]
    pub merklogd: Option<PathBuf>,

    /// Run the server and the echo inside this process (server CPU and RSS are then
    /// not reported)
    #[arg(long, conflicts_with_all = ["server", "merklogd"])]
    pub in_process: bool,

    /// Parent directory of the temporary data directories [default: the system's]
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,

    /// gRPC connections to each server (calls are spread round robin)
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub connections: usize,

    /// Warm-up before each measured window, seconds [default: 2; quick: 0.1]
    #[arg(long, value_name = "S")]
    pub warmup_secs: Option<f64>,

    /// Measured window of each run, seconds [default: 10; quick: 0.4]
    #[arg(long, value_name = "S")]
    pub measure_secs: Option<f64>,

    /// Acknowledged entries whose inclusion proof is checked per answer: the first,
    /// the last and random others [default: 8; quick: all]
    #[arg(long, value_name = "K")]
    pub verify_per_answer: Option<usize>,

    /// Check the inclusion proof of every acknowledged entry
    #[arg(long, conflicts_with = "verify_per_answer")]
    pub verify_all: bool,

    /// Skip the RocksDB and gRPC-echo baselines
    #[arg(long)]
    pub no_baselines: bool,

    /// Concurrent readers (W6, and `--mode read`) [default: 64]
    #[arg(long, value_name = "N")]
    pub readers: Option<usize>,

    /// W6 tree sizes [default: 1000000,10000000; quick: 2000,20000]
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub w6_sizes: Vec<u64>,

    /// W5 offered rates in entries/s [default: 1000,5000,10000,20000; quick: 50,100,200,400]
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub w5_rates: Vec<f64>,

    /// Write the JSON report to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also write the Markdown table to this file
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,

    /// Instead of the suite, run one custom step in this mode
    #[arg(long, value_enum)]
    pub mode: Option<CustomMode>,

    /// Custom step: writers (unary), streams (stream), or the in-flight cap (with --rate)
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub writers: usize,

    /// Custom step: entries per call or stream request
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub per_call: usize,

    /// Custom step: bytes per entry (at least 20)
    #[arg(long, default_value_t = 256, value_name = "B")]
    pub bytes: usize,

    /// Custom step: every entry an ai-audit/v1 profile document of --bytes bytes (16
    /// actors, 4 models), which the server parses and indexes (actor, model, action
    /// rows in the round's batch); compare with the same step without it
    #[arg(long)]
    pub profile: bool,

    /// Custom step, otlp: send Export calls uncompressed (the OpenTelemetry SDKs'
    /// exporters' default) instead of gzip (the Collector's)
    #[arg(long)]
    pub otlp_uncompressed: bool,

    /// Custom step: open loop at this many entries/s (unary only)
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// Custom step: requests in flight per stream
    #[arg(long, default_value_t = 16, value_name = "W")]
    pub window: usize,

    /// Custom step: what readers fetch
    #[arg(long, value_enum, default_value = "inclusion")]
    pub read_kind: ReadKindArg,
}

impl RunArgs {
    /// The warm-up of each run.
    pub fn warmup(&self) -> Duration {
        secs(self.warmup_secs, if self.quick { 0.1 } else { 2.0 })
    }

    /// The measured window of each run.
    pub fn measure(&self) -> Duration {
        secs(self.measure_secs, if self.quick { 0.4 } else { 10.0 })
    }

    /// How long calls in flight at the end of a window may still take.
    pub fn drain(&self) -> Duration {
        Duration::from_secs(if self.quick { 15 } else { 30 })
    }
}

fn secs(value: Option<f64>, default: f64) -> Duration {
    let value = value.unwrap_or(default);
    if value.is_finite() && value > 0.0 {
        Duration::from_secs_f64(value.min(3600.0))
    } else {
        Duration::from_secs_f64(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("merklog-hammer").chain(args.iter().copied()))
    }

    #[test]
    fn quick_scales_the_durations_down() {
        let cli = parse(&["--quick"]).unwrap();
        assert!(cli.run.measure() < Duration::from_secs(1));
        let cli = parse(&["--measure-secs", "3", "--warmup-secs=-1"]).unwrap();
        assert_eq!(cli.run.measure(), Duration::from_secs(3));
        assert_eq!(cli.run.warmup(), Duration::from_secs(2));
    }

    #[test]
    fn conflicting_targets_are_refused() {
        assert!(
            parse(&["--server", "http://127.0.0.1:1"]).is_err(),
            "needs --vkey"
        );
        assert!(parse(&["--in-process", "--merklogd", "/x"]).is_err());
        assert!(parse(&["--verify-all", "--verify-per-answer", "2"]).is_err());
        let cli = parse(&["--only", "W1,W6", "--w6-sizes", "10,20"]).unwrap();
        assert_eq!(cli.run.only, ["W1", "W6"]);
        assert_eq!(cli.run.w6_sizes, [10, 20]);
        let cli = parse(&["echo-server", "--addr-file", "/tmp/x"]).unwrap();
        assert!(matches!(cli.command, Some(Command::EchoServer { .. })));
    }
}
