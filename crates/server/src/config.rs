//! Configuration: command-line flags, `MERKLOGD_*` environment variables, an
//! optional TOML file and embedded defaults, in that order of precedence
//! (flag > environment > file > default).
//!
//! The TOML file uses the flags' long names as keys (`data-dir = "/var/lib/merklog"`,
//! `max-batch-wait-ms = 2`); unknown keys are refused so a typo is not silently
//! ignored.
//!
//! Durations (`witness-timeout`, `witness-resend-interval`, `append-timeout`,
//! `fail-open-after`) are written with a unit, `500ms`, `5s`, `2m` or `1h`
//! ([`ConfigDuration`]), in flags, environment variables and the file alike.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use merklog_log::LogConfig;
use merklog_proto::convert::Limits;
use serde::{Deserialize, Serialize};

use crate::ServerError;

/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "./merklog-data";
/// Default gRPC listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7800";
/// Default tlog-tiles HTTP listen address.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:7801";
/// Default Prometheus metrics listen address.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:7802";
/// Default timeout of one witness request.
pub const DEFAULT_WITNESS_TIMEOUT: Duration = Duration::from_secs(5);
/// Default idle re-send interval of the latest checkpoint to the witnesses.
pub const DEFAULT_WITNESS_RESEND_INTERVAL: Duration = Duration::from_secs(60);

/// A duration written with a unit: `250ms`, `5s`, `2m`, `1h` (a whole number
/// and one of `ms`, `s`, `m`, `h`). Flags, environment variables and the TOML
/// file all use this text form, and `--print-config` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for ConfigDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{text:?} is not a duration: write a whole number and a unit, \
                 e.g. 500ms, 5s, 2m or 1h"
            )
        };
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = text.split_at(split);
        if number.is_empty() {
            return Err(bad());
        }
        let number: u64 = number.parse().map_err(|_| bad())?;
        let millis = match unit {
            "ms" => Some(number),
            "s" => number.checked_mul(1000),
            "m" => number.checked_mul(60_000),
            "h" => number.checked_mul(3_600_000),
            _ => None,
        }
        .ok_or_else(bad)?;
        Ok(Self(Duration::from_millis(millis)))
    }
}

impl TryFrom<String> for ConfigDuration {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl std::fmt::Display for ConfigDuration {
    /// The largest unit that states the value exactly (sub-millisecond parts,
    /// which the text form cannot express, are dropped).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let millis = self.0.as_millis();
        let (value, unit) = if millis == 0 {
            (0, "s")
        } else if millis.is_multiple_of(3_600_000) {
            (millis / 3_600_000, "h")
        } else if millis.is_multiple_of(60_000) {
            (millis / 60_000, "m")
        } else if millis.is_multiple_of(1000) {
            (millis / 1000, "s")
        } else {
            (millis, "ms")
        };
        write!(f, "{value}{unit}")
    }
}

impl From<ConfigDuration> for String {
    fn from(duration: ConfigDuration) -> Self {
        duration.to_string()
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `merklogd` command line. Every flag can also come from the environment
/// variable shown, or from the `--config` TOML file under the flag's name.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "merklogd",
    version,
    about = "merklog transparency log server: gRPC append/proof API and C2SP tlog-tiles HTTP read API",
    long_about = "merklog transparency log server.\n\n\
        With no arguments it starts on the embedded defaults: data in ./merklog-data, \
        gRPC on 127.0.0.1:7800, tlog-tiles HTTP on 127.0.0.1:7801, Prometheus metrics on \
        127.0.0.1:7802. On first start it fixes the log's origin and generates the log key \
        (<data-dir>/log.key, mode 0600, and <data-dir>/log.vkey, also printed to stdout).\n\n\
        Precedence: flag > environment variable > --config TOML file > default."
)]
pub struct Cli {
    /// Data directory holding the database and the log key [default: ./merklog-data]
    #[arg(long, env = "MERKLOGD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// gRPC listen address; port 0 picks a free port (the bound address is logged)
    /// [default: 127.0.0.1:7800]
    #[arg(long, env = "MERKLOGD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// tlog-tiles HTTP listen address (/checkpoint, /tile/...) [default: 127.0.0.1:7801]
    #[arg(long, env = "MERKLOGD_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,

    /// Prometheus metrics listen address (/metrics) [default: 127.0.0.1:7802]
    #[arg(long, env = "MERKLOGD_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// The log's origin (checkpoint first line and key name), fixed at first start
    /// [default: HOSTNAME/merklog]. Later starts refuse a different value.
    #[arg(long, env = "MERKLOGD_ORIGIN", value_name = "ORIGIN")]
    pub origin: Option<String>,

    /// TOML configuration file using the flags' names as keys
    #[arg(long, env = "MERKLOGD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Most entries the sequencer integrates in one round (one synced write)
    /// [default: 8192]
    #[arg(long, env = "MERKLOGD_MAX_BATCH_ENTRIES", value_name = "N")]
    pub max_batch_entries: Option<usize>,

    /// How long a non-full round may wait for more entries, in milliseconds; 0 means
    /// natural batching only (lowest latency) [default: 0]
    #[arg(long, env = "MERKLOGD_MAX_BATCH_WAIT_MS", value_name = "MS")]
    pub max_batch_wait_ms: Option<u64>,

    /// Most entries waiting in the sequencer queue; beyond it appends get
    /// RESOURCE_EXHAUSTED [default: 65536]
    #[arg(long, env = "MERKLOGD_QUEUE_CAPACITY", value_name = "N")]
    pub queue_capacity: Option<usize>,

    /// Most entry bytes waiting in the sequencer queue [default: 67108864]
    #[arg(long, env = "MERKLOGD_QUEUE_CAPACITY_BYTES", value_name = "BYTES")]
    pub queue_capacity_bytes: Option<usize>,

    /// Largest accepted entry in bytes, at most 65535 (the tlog-tiles bundle limit)
    /// [default: 65535]
    #[arg(long, env = "MERKLOGD_MAX_ENTRY_BYTES", value_name = "BYTES")]
    pub max_entry_bytes: Option<usize>,

    /// Most entries in one Append call or stream request. The gRPC request size cap
    /// is derived from it: entries-per-call x (max-entry-bytes + 4) + 64 bytes
    /// [default: 256]
    #[arg(long, env = "MERKLOGD_MAX_ENTRIES_PER_CALL", value_name = "N")]
    pub max_entries_per_call: Option<usize>,

    /// Most entries returned by one GetEntries call, at most 1024 [default: 256]
    #[arg(long, env = "MERKLOGD_MAX_ENTRIES_PER_PAGE", value_name = "N")]
    pub max_entries_per_page: Option<usize>,

    /// Log output format [default: text]
    #[arg(long, env = "MERKLOGD_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log filter, in tracing's env-filter syntax (e.g. "info" or
    /// "merklog_log=debug,info") [default: info]
    #[arg(long, env = "MERKLOGD_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// C2SP tlog-policy file naming the witnesses (with their URLs) and the quorum
    /// that must cosign a checkpoint before it is published. Its `log` line must be
    /// this log's verifier key (`<data-dir>/log.vkey`). Without it, checkpoints are
    /// published as soon as they are durable [default: none]
    #[arg(long, env = "MERKLOGD_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Timeout of one request to a witness, e.g. "5s" or "500ms" [default: 5s]
    #[arg(long, env = "MERKLOGD_WITNESS_TIMEOUT", value_name = "DURATION")]
    pub witness_timeout: Option<ConfigDuration>,

    /// Publish a checkpoint without the witness quorum once it has waited this long
    /// (fail open), e.g. "30s". Unset: never publish without the quorum (fail
    /// closed) [default: unset]
    #[arg(long, env = "MERKLOGD_FAIL_OPEN_AFTER", value_name = "DURATION")]
    pub fail_open_after: Option<ConfigDuration>,

    /// While idle, re-send the latest checkpoint to the witnesses this often, so
    /// fresh cosignature timestamps show the log is alive [default: 60s]
    #[arg(
        long,
        env = "MERKLOGD_WITNESS_RESEND_INTERVAL",
        value_name = "DURATION"
    )]
    pub witness_resend_interval: Option<ConfigDuration>,

    /// With a policy: how long an append waits for a checkpoint that met the quorum
    /// before it fails with UNAVAILABLE (its entries stay durable and are published
    /// later; retrying is safe) [default: 10s]
    #[arg(long, env = "MERKLOGD_APPEND_TIMEOUT", value_name = "DURATION")]
    pub append_timeout: Option<ConfigDuration>,

    /// Once serving, write the bound addresses to this file as JSON
    /// ({"grpc":..,"http":..,"metrics":..}); for scripts and tests using port 0
    #[arg(long, env = "MERKLOGD_ADDR_FILE", value_name = "FILE")]
    pub addr_file: Option<PathBuf>,

    /// Print the resolved configuration as JSON and exit
    #[arg(long)]
    pub print_config: bool,
}

/// The `--config` file: the same keys as the flags (except `config` itself).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Cli::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Cli::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`Cli::http_listen`].
    pub http_listen: Option<SocketAddr>,
    /// See [`Cli::metrics_listen`].
    pub metrics_listen: Option<SocketAddr>,
    /// See [`Cli::origin`].
    pub origin: Option<String>,
    /// See [`Cli::max_batch_entries`].
    pub max_batch_entries: Option<usize>,
    /// See [`Cli::max_batch_wait_ms`].
    pub max_batch_wait_ms: Option<u64>,
    /// See [`Cli::queue_capacity`].
    pub queue_capacity: Option<usize>,
    /// See [`Cli::queue_capacity_bytes`].
    pub queue_capacity_bytes: Option<usize>,
    /// See [`Cli::max_entry_bytes`].
    pub max_entry_bytes: Option<usize>,
    /// See [`Cli::max_entries_per_call`].
    pub max_entries_per_call: Option<usize>,
    /// See [`Cli::max_entries_per_page`].
    pub max_entries_per_page: Option<usize>,
    /// See [`Cli::log_format`].
    pub log_format: Option<LogFormat>,
    /// See [`Cli::log_level`].
    pub log_level: Option<String>,
    /// See [`Cli::addr_file`].
    pub addr_file: Option<PathBuf>,
    /// See [`Cli::policy`].
    pub policy: Option<PathBuf>,
    /// See [`Cli::witness_timeout`].
    pub witness_timeout: Option<ConfigDuration>,
    /// See [`Cli::fail_open_after`].
    pub fail_open_after: Option<ConfigDuration>,
    /// See [`Cli::witness_resend_interval`].
    pub witness_resend_interval: Option<ConfigDuration>,
    /// See [`Cli::append_timeout`].
    pub append_timeout: Option<ConfigDuration>,
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::Io {
            context: format!("reading config file {}", path.display()),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            ServerError::Config(format!("config file {}: {}", path.display(), e.message()))
        })
    }
}

/// The resolved server configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerConfig {
    /// Data directory (database, `log.key`, `log.vkey`).
    pub data_dir: PathBuf,
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// tlog-tiles HTTP listen address.
    pub http_listen: SocketAddr,
    /// Prometheus metrics listen address.
    pub metrics_listen: SocketAddr,
    /// Origin requested for a new log (or checked against an existing one).
    pub origin: Option<String>,
    /// Sequencer: most entries per round.
    pub max_batch_entries: usize,
    /// Sequencer: longest wait for a non-full round, in milliseconds.
    pub max_batch_wait_ms: u64,
    /// Sequencer: queue capacity in entries.
    pub queue_capacity: usize,
    /// Sequencer: queue capacity in bytes.
    pub queue_capacity_bytes: usize,
    /// Largest accepted entry.
    pub max_entry_bytes: usize,
    /// Most entries per append call or stream request.
    pub max_entries_per_call: usize,
    /// Most entries per `GetEntries` page.
    pub max_entries_per_page: usize,
    /// Log output format.
    pub log_format: LogFormat,
    /// Log filter directive.
    pub log_level: String,
    /// Where to write the bound addresses once serving.
    pub addr_file: Option<PathBuf>,
    /// The tlog-policy file; `None` publishes without witnesses.
    pub policy: Option<PathBuf>,
    /// Timeout of one witness request.
    pub witness_timeout: ConfigDuration,
    /// Publish without the quorum after this wait; `None` = fail closed.
    pub fail_open_after: Option<ConfigDuration>,
    /// Idle re-send interval of the latest checkpoint.
    pub witness_resend_interval: ConfigDuration,
    /// With a policy: longest wait of an append for a published checkpoint.
    pub append_timeout: ConfigDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let log = LogConfig::default();
        let limits = Limits::default();
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            listen: default_addr(DEFAULT_LISTEN, 7800),
            http_listen: default_addr(DEFAULT_HTTP_LISTEN, 7801),
            metrics_listen: default_addr(DEFAULT_METRICS_LISTEN, 7802),
            origin: None,
            max_batch_entries: log.max_batch_entries,
            max_batch_wait_ms: u64::try_from(log.max_batch_wait.as_millis()).unwrap_or(0),
            queue_capacity: log.queue_capacity,
            queue_capacity_bytes: log.queue_capacity_bytes,
            max_entry_bytes: log.max_entry_bytes,
            max_entries_per_call: limits.max_entries_per_call(),
            max_entries_per_page: limits.max_entries_per_page(),
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            addr_file: None,
            policy: None,
            witness_timeout: ConfigDuration(DEFAULT_WITNESS_TIMEOUT),
            fail_open_after: None,
            witness_resend_interval: ConfigDuration(DEFAULT_WITNESS_RESEND_INTERVAL),
            append_timeout: ConfigDuration(log.append_timeout),
        }
    }
}

/// Parses one of the constant default addresses above.
fn default_addr(text: &str, port: u16) -> SocketAddr {
    text.parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], port)))
}

impl ServerConfig {
    /// Resolves flags (and environment, already folded in by clap) over the
    /// `--config` file over the defaults, then checks the result.
    pub fn resolve(cli: Cli) -> Result<Self, ServerError> {
        let file = match &cli.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Self::merge(cli, file)
    }

    /// Merges already-read sources (flag > file > default) and checks the result.
    pub fn merge(cli: Cli, file: FileConfig) -> Result<Self, ServerError> {
        let d = Self::default();
        let config = Self {
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            listen: cli.listen.or(file.listen).unwrap_or(d.listen),
            http_listen: cli
                .http_listen
                .or(file.http_listen)
                .unwrap_or(d.http_listen),
            metrics_listen: cli
                .metrics_listen
                .or(file.metrics_listen)
                .unwrap_or(d.metrics_listen),
            origin: cli.origin.or(file.origin),
            max_batch_entries: cli
                .max_batch_entries
                .or(file.max_batch_entries)
                .unwrap_or(d.max_batch_entries),
            max_batch_wait_ms: cli
                .max_batch_wait_ms
                .or(file.max_batch_wait_ms)
                .unwrap_or(d.max_batch_wait_ms),
            queue_capacity: cli
                .queue_capacity
                .or(file.queue_capacity)
                .unwrap_or(d.queue_capacity),
            queue_capacity_bytes: cli
                .queue_capacity_bytes
                .or(file.queue_capacity_bytes)
                .unwrap_or(d.queue_capacity_bytes),
            max_entry_bytes: cli
                .max_entry_bytes
                .or(file.max_entry_bytes)
                .unwrap_or(d.max_entry_bytes),
            max_entries_per_call: cli
                .max_entries_per_call
                .or(file.max_entries_per_call)
                .unwrap_or(d.max_entries_per_call),
            max_entries_per_page: cli
                .max_entries_per_page
                .or(file.max_entries_per_page)
                .unwrap_or(d.max_entries_per_page),
            log_format: cli.log_format.or(file.log_format).unwrap_or(d.log_format),
            log_level: cli.log_level.or(file.log_level).unwrap_or(d.log_level),
            addr_file: cli.addr_file.or(file.addr_file),
            policy: cli.policy.or(file.policy),
            witness_timeout: cli
                .witness_timeout
                .or(file.witness_timeout)
                .unwrap_or(d.witness_timeout),
            fail_open_after: cli.fail_open_after.or(file.fail_open_after),
            witness_resend_interval: cli
                .witness_resend_interval
                .or(file.witness_resend_interval)
                .unwrap_or(d.witness_resend_interval),
            append_timeout: cli
                .append_timeout
                .or(file.append_timeout)
                .unwrap_or(d.append_timeout),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values work together (the same checks `run` relies on).
    pub fn validate(&self) -> Result<(), ServerError> {
        let limits = self.limits()?;
        self.log_config()
            .validate()
            .map_err(|e| ServerError::Config(e.to_string()))?;
        if limits.max_entries_per_call() > self.max_batch_entries {
            return Err(ServerError::Config(format!(
                "max-entries-per-call ({}) must not exceed max-batch-entries ({})",
                limits.max_entries_per_call(),
                self.max_batch_entries
            )));
        }
        let page_cap = usize::try_from(merklog_log::MAX_ENTRIES_PER_READ).unwrap_or(usize::MAX);
        if limits.max_entries_per_page() > page_cap {
            return Err(ServerError::Config(format!(
                "max-entries-per-page ({}) must not exceed {page_cap}",
                limits.max_entries_per_page()
            )));
        }
        if let Some(origin) = &self.origin {
            crate::keys::check_origin(origin)?;
        }
        let positive = [
            ("witness-timeout", Some(self.witness_timeout)),
            (
                "witness-resend-interval",
                Some(self.witness_resend_interval),
            ),
            ("append-timeout", Some(self.append_timeout)),
            ("fail-open-after", self.fail_open_after),
        ];
        for (name, value) in positive {
            if value.is_some_and(|d| d.0.is_zero()) {
                return Err(ServerError::Config(format!("{name} must be positive")));
            }
        }
        Ok(())
    }

    /// The sequencer's configuration.
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            max_batch_entries: self.max_batch_entries,
            max_batch_wait: Duration::from_millis(self.max_batch_wait_ms),
            queue_capacity: self.queue_capacity,
            queue_capacity_bytes: self.queue_capacity_bytes,
            max_entry_bytes: self.max_entry_bytes,
            // Witnessing needs the log's key: `Server::open` adds it.
            witnessing: None,
            append_timeout: self.append_timeout.get(),
        }
    }

    /// The wire request limits.
    pub fn limits(&self) -> Result<Limits, ServerError> {
        Limits::new(
            self.max_entry_bytes,
            self.max_entries_per_call,
            self.max_entries_per_page,
        )
        .map_err(|e| ServerError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["merklogd"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap()
    }

    #[test]
    fn defaults_are_the_embedded_ones() {
        let config = ServerConfig::merge(Cli::default(), FileConfig::default()).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./merklog-data"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:7800");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:7801");
        assert_eq!(config.metrics_listen.to_string(), "127.0.0.1:7802");
        assert_eq!(config.max_entry_bytes, 65_535);
        assert_eq!(config.max_entries_per_call, 256);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.origin, None);
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            data-dir = "/from/file"
            listen = "127.0.0.1:9000"
            http-listen = "127.0.0.1:9001"
            origin = "file.example/log"
            max-batch-wait-ms = 3
            log-format = "json"
            "#,
        )
        .unwrap();
        let cli = parse(&["--data-dir", "/from/flag", "--listen", "127.0.0.1:0"]);
        let config = ServerConfig::merge(cli, file).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:9001");
        assert_eq!(config.metrics_listen.to_string(), "127.0.0.1:7802");
        assert_eq!(config.origin.as_deref(), Some("file.example/log"));
        assert_eq!(config.max_batch_wait_ms, 3);
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn file_typos_and_bad_values_are_refused() {
        let err = toml::from_str::<FileConfig>("data_dir = \"x\"").unwrap_err();
        assert!(err.message().contains("unknown field"), "{err}");
        assert!(toml::from_str::<FileConfig>("listen = \"nowhere\"").is_err());
        assert!(Cli::try_parse_from(["merklogd", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn inconsistent_limits_are_refused() {
        let cli = parse(&["--max-entry-bytes", "65536"]);
        let err = ServerConfig::merge(cli, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("max_entry_bytes"), "{err}");

        let cli = parse(&["--max-entries-per-call", "100", "--max-batch-entries", "50"]);
        let err = ServerConfig::merge(cli, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("max-entries-per-call"), "{err}");

        let cli = parse(&["--origin", "has space"]);
        assert!(ServerConfig::merge(cli, FileConfig::default()).is_err());
    }

    #[test]
    fn log_config_carries_the_knobs() {
        let cli = parse(&[
            "--max-batch-entries",
            "1000",
            "--max-batch-wait-ms",
            "5",
            "--queue-capacity",
            "4000",
        ]);
        let config = ServerConfig::merge(cli, FileConfig::default()).unwrap();
        let log = config.log_config();
        assert_eq!(log.max_batch_entries, 1000);
        assert_eq!(log.max_batch_wait, Duration::from_millis(5));
        assert_eq!(log.queue_capacity, 4000);
    }

    #[test]
    fn durations_need_a_unit_and_print_back() {
        let parse = |text: &str| text.parse::<ConfigDuration>().map(ConfigDuration::get);
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "5",
            "s",
            "-1s",
            "+1s",
            "1.5s",
            "5 s",
            " 5s",
            "5S",
            "1d",
            "5sec",
            "99999999999999999999s",
            "9999999999999999h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        for (value, text) in [
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(7200), "2h"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(ConfigDuration(value).to_string(), text);
            assert_eq!(parse(text), Ok(value), "{text}");
        }
    }

    #[test]
    fn witness_settings_merge_and_zero_is_refused() {
        let file: FileConfig = toml::from_str(
            r#"
            policy = "/etc/merklog/policy.txt"
            witness-timeout = "2s"
            fail-open-after = "5m"
            "#,
        )
        .unwrap();
        let cli = parse(&["--witness-timeout", "750ms", "--append-timeout", "3s"]);
        let config = ServerConfig::merge(cli, file).unwrap();
        assert_eq!(
            config.policy,
            Some(PathBuf::from("/etc/merklog/policy.txt"))
        );
        assert_eq!(config.witness_timeout.get(), Duration::from_millis(750));
        assert_eq!(
            config.fail_open_after.map(ConfigDuration::get),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            config.witness_resend_interval.get(),
            DEFAULT_WITNESS_RESEND_INTERVAL
        );
        assert_eq!(config.log_config().append_timeout, Duration::from_secs(3));
        assert!(
            config.log_config().witnessing.is_none(),
            "added by Server::open"
        );

        assert!(toml::from_str::<FileConfig>("witness-timeout = 5").is_err());
        for flag in ["--witness-timeout", "--append-timeout", "--fail-open-after"] {
            let err =
                ServerConfig::merge(parse(&[flag, "0ms"]), FileConfig::default()).unwrap_err();
            assert!(
                err.to_string().contains("must be positive"),
                "{flag}: {err}"
            );
        }
    }
}
