//! Configuration: command-line flags, `MERKLOG_WITNESS_*` environment variables and a
//! TOML file, in the same style as merklogd. Precedence: flag > environment > TOML >
//! default.
//!
//! Example TOML file (every key optional except the logs the witness should cosign):
//!
//! ```toml
//! data-dir = "/var/lib/merklog-witness"
//! listen = "0.0.0.0:7900"
//! name = "witness.example.com/w1"          # used only when the key is generated
//! submission-prefix = ""                   # POST <prefix>/add-checkpoint
//! monitoring-prefix = ""                   # GET <prefix>/<hex sha256(origin)>/checkpoint
//! webhook-url = "https://alerts.example.com/hook"
//! webhook-timeout-secs = 10
//! log-format = "text"                      # or "json"
//!
//! [[log]]
//! origin = "example.com/log"
//! vkey = "example.com/log+3f6a2b1c+AQ..."
//!
//! # Pull mode: follow a merklog log over gRPC (see [`crate::follow`]). The log
//! # becomes known to the witness like a `[[log]]` entry; if it is also listed under
//! # `[[log]]`, the vkeys must be equal.
//! [[follow]]
//! origin = "example.com/other"
//! vkey = "example.com/other+0a1b2c3d+AQ..."
//! grpc-url = "http://log.example.com:7800"
//! poll-interval = 2                        # seconds (fractions allowed) [default: 2]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::error::WitnessError;
use crate::failpoint::Failpoint;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./witness-data";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7900";
/// Default webhook timeout.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// One log the witness cosigns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The checkpoint origin line.
    pub origin: String,
    /// The log's verifier key (`name+hexid+base64`, Ed25519 note key).
    pub vkey: String,
}

/// Default interval between `GetCheckpoint` polls of a followed log.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// One log the witness follows by itself (pull mode, [`crate::follow`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FollowConfig {
    /// The checkpoint origin line.
    pub origin: String,
    /// The log's verifier key, as for [`LogConfig::vkey`].
    pub vkey: String,
    /// The log's gRPC endpoint (`http://host:port`; a bare `host:port` means http).
    pub grpc_url: String,
    /// How often `GetCheckpoint` is polled when `WatchCheckpoints` is unavailable.
    pub poll_interval: Duration,
}

impl FollowConfig {
    /// A follow entry with the default poll interval.
    pub fn new(origin: &str, vkey: &str, grpc_url: &str) -> FollowConfig {
        FollowConfig {
            origin: origin.to_owned(),
            vkey: vkey.to_owned(),
            grpc_url: grpc_url.to_owned(),
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    /// The log entry this follow entry implies.
    pub fn log(&self) -> LogConfig {
        LogConfig {
            origin: self.origin.clone(),
            vkey: self.vkey.clone(),
        }
    }
}

/// A `[[follow]]` entry as written in the TOML file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileFollowConfig {
    /// See [`FollowConfig::origin`].
    pub origin: String,
    /// See [`FollowConfig::vkey`].
    pub vkey: String,
    /// See [`FollowConfig::grpc_url`].
    pub grpc_url: String,
    /// Seconds between polls (fractions allowed) [default: 2].
    pub poll_interval: Option<f64>,
}

/// Shortest accepted poll interval (a hostile config must not spin the witness).
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Longest accepted poll interval.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(24 * 3600);

impl FileFollowConfig {
    /// Validates the poll interval and applies the default.
    pub fn resolve(self) -> Result<FollowConfig, WitnessError> {
        let poll_interval = match self.poll_interval {
            None => DEFAULT_POLL_INTERVAL,
            Some(secs) => {
                let interval = Duration::try_from_secs_f64(secs).map_err(|_| {
                    WitnessError::Config(format!(
                        "poll-interval {secs} of followed log {:?} is not a duration in seconds",
                        self.origin
                    ))
                })?;
                if !(MIN_POLL_INTERVAL..=MAX_POLL_INTERVAL).contains(&interval) {
                    return Err(WitnessError::Config(format!(
                        "poll-interval {secs} of followed log {:?} must be 0.01 to 86400 seconds",
                        self.origin
                    )));
                }
                interval
            }
        };
        Ok(FollowConfig {
            origin: self.origin,
            vkey: self.vkey,
            grpc_url: self.grpc_url,
            poll_interval,
        })
    }
}

/// Everything [`crate::Witness::open`] needs.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    /// Where keys and per-log state live.
    pub data_dir: PathBuf,
    /// Witness key name, used when the key is generated on first start; if set and a
    /// key already exists, it must match the stored key's name.
    pub name: Option<String>,
    /// The logs to cosign.
    pub logs: Vec<LogConfig>,
    /// The logs to follow over gRPC (pull mode); each is also a log to cosign.
    pub follow: Vec<FollowConfig>,
    /// Prefix of `add-checkpoint` (empty, or starting with `/` and not ending with `/`).
    pub submission_prefix: String,
    /// Prefix of the monitoring API (same rules).
    pub monitoring_prefix: String,
    /// Optional alarm webhook.
    pub webhook_url: Option<String>,
    /// Timeout of one webhook delivery.
    pub webhook_timeout: Duration,
    /// Test-only crash point (see [`crate::failpoint`]).
    pub failpoint: Option<Failpoint>,
}

impl WitnessConfig {
    /// A configuration with defaults for everything but the data directory and logs.
    pub fn new(data_dir: impl Into<PathBuf>, logs: Vec<LogConfig>) -> WitnessConfig {
        WitnessConfig {
            data_dir: data_dir.into(),
            name: None,
            logs,
            follow: Vec::new(),
            submission_prefix: String::new(),
            monitoring_prefix: String::new(),
            webhook_url: None,
            webhook_timeout: DEFAULT_WEBHOOK_TIMEOUT,
            failpoint: None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Command-line interface of `merklog-witness`.
#[derive(Debug, Parser)]
#[command(
    name = "merklog-witness",
    version,
    about = "A C2SP tlog-witness server"
)]
pub struct Cli {
    /// TOML configuration file (logs are configured there as `[[log]]` and
    /// `[[follow]]` entries).
    #[arg(long, env = "MERKLOG_WITNESS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (keys, per-log state, evidence) [default: ./witness-data].
    #[arg(long, env = "MERKLOG_WITNESS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen address; port 0 picks a free port [default: 127.0.0.1:7900].
    #[arg(long, env = "MERKLOG_WITNESS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Witness key name, used when generating the key on first start
    /// (default: `<hostname>/merklog-witness`).
    #[arg(long, env = "MERKLOG_WITNESS_NAME")]
    pub name: Option<String>,
    /// Prefix of `POST <prefix>/add-checkpoint` [default: empty].
    #[arg(long, env = "MERKLOG_WITNESS_SUBMISSION_PREFIX")]
    pub submission_prefix: Option<String>,
    /// Prefix of `GET <prefix>/<hex sha256(origin)>/checkpoint` [default: empty].
    #[arg(long, env = "MERKLOG_WITNESS_MONITORING_PREFIX")]
    pub monitoring_prefix: Option<String>,
    /// URL that receives a JSON POST when a fork is detected.
    #[arg(long, env = "MERKLOG_WITNESS_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Timeout of one webhook delivery in seconds [default: 10].
    #[arg(long, env = "MERKLOG_WITNESS_WEBHOOK_TIMEOUT_SECS")]
    pub webhook_timeout_secs: Option<u64>,
    /// Log output format [default: text].
    #[arg(long, env = "MERKLOG_WITNESS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Follow a merklog log over gRPC (pull mode), with the default poll interval;
    /// repeatable, added to the file's `[[follow]]` entries.
    #[arg(long, num_args = 3, value_names = ["ORIGIN", "VKEY", "GRPC_URL"], action = clap::ArgAction::Append)]
    pub follow: Vec<String>,
    /// After binding, write the bound address to this file (for scripts and tests).
    #[arg(long, env = "MERKLOG_WITNESS_ADDR_FILE")]
    pub addr_file: Option<PathBuf>,
    /// Testing only: block forever at this point of the persist step.
    #[arg(long, env = "MERKLOG_WITNESS_TEST_FAILPOINT", value_enum, hide = true)]
    pub test_failpoint: Option<Failpoint>,
}

/// The TOML file's keys.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// See [`Cli::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Cli::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`Cli::name`].
    pub name: Option<String>,
    /// See [`Cli::submission_prefix`].
    pub submission_prefix: Option<String>,
    /// See [`Cli::monitoring_prefix`].
    pub monitoring_prefix: Option<String>,
    /// See [`Cli::webhook_url`].
    pub webhook_url: Option<String>,
    /// See [`Cli::webhook_timeout_secs`].
    pub webhook_timeout_secs: Option<u64>,
    /// See [`Cli::log_format`].
    pub log_format: Option<LogFormat>,
    /// The logs to cosign.
    #[serde(default, rename = "log")]
    pub logs: Vec<LogConfig>,
    /// The logs to follow over gRPC.
    #[serde(default, rename = "follow")]
    pub follow: Vec<FileFollowConfig>,
}

/// The resolved settings of the binary.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The witness configuration.
    pub witness: WitnessConfig,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Log output format.
    pub log_format: LogFormat,
    /// Where to write the bound address, if anywhere.
    pub addr_file: Option<PathBuf>,
}

impl Cli {
    /// Merges flags and environment (already in `self`) with the TOML file and defaults.
    pub fn resolve(self) -> Result<Settings, WitnessError> {
        let file = match &self.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let listen = match self.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|e| WitnessError::Config(format!("default listen address: {e}")))?,
        };
        let witness = WitnessConfig {
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            name: self.name.or(file.name),
            logs: file.logs,
            follow: file
                .follow
                .into_iter()
                .map(FileFollowConfig::resolve)
                .chain(self.follow.chunks(3).map(follow_flag))
                .collect::<Result<_, _>>()?,
            submission_prefix: self
                .submission_prefix
                .or(file.submission_prefix)
                .unwrap_or_default(),
            monitoring_prefix: self
                .monitoring_prefix
                .or(file.monitoring_prefix)
                .unwrap_or_default(),
            webhook_url: self.webhook_url.or(file.webhook_url),
            webhook_timeout: self
                .webhook_timeout_secs
                .or(file.webhook_timeout_secs)
                .map_or(DEFAULT_WEBHOOK_TIMEOUT, Duration::from_secs),
            failpoint: self.test_failpoint,
        };
        validate_prefix(&witness.submission_prefix)?;
        validate_prefix(&witness.monitoring_prefix)?;
        Ok(Settings {
            witness,
            listen,
            log_format: self
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            addr_file: self.addr_file,
        })
    }
}

/// One `--follow ORIGIN VKEY GRPC_URL` occurrence.
fn follow_flag(values: &[String]) -> Result<FollowConfig, WitnessError> {
    match values {
        [origin, vkey, grpc_url] => Ok(FollowConfig::new(origin, vkey, grpc_url)),
        _ => Err(WitnessError::Config(
            "--follow takes three values: ORIGIN VKEY GRPC_URL".into(),
        )),
    }
}

/// Reads and parses a TOML configuration file.
pub fn read_file_config(path: &Path) -> Result<FileConfig, WitnessError> {
    let text = std::fs::read_to_string(path).map_err(|e| WitnessError::Storage {
        path: path.to_path_buf(),
        source: e,
    })?;
    toml::from_str(&text).map_err(|e| WitnessError::Config(format!("{}: {e}", path.display())))
}

/// A URL path prefix is empty, or starts with `/`, does not end with `/`, and holds
/// no characters that would change the route's meaning.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), WitnessError> {
    if prefix.is_empty() {
        return Ok(());
    }
    let ok = prefix.starts_with('/')
        && !prefix.ends_with('/')
        && !prefix.contains("//")
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(WitnessError::Config(format!(
            "URL prefix {prefix:?} must be empty or like \"/a/b\" (no trailing slash)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_flag_over_file_over_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(
            &path,
            r#"
data-dir = "/from/file"
listen = "127.0.0.1:1234"
monitoring-prefix = "/mon"
webhook-timeout-secs = 3

[[log]]
origin = "example.com/a"
vkey = "example.com/a+00000000+AQ"
"#,
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "merklog-witness",
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            "/from/flag",
        ])
        .unwrap();
        let settings = cli.resolve().unwrap();
        assert_eq!(settings.witness.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(settings.listen.port(), 1234);
        assert_eq!(settings.witness.monitoring_prefix, "/mon");
        assert_eq!(settings.witness.submission_prefix, "");
        assert_eq!(settings.witness.webhook_timeout, Duration::from_secs(3));
        assert_eq!(settings.witness.logs.len(), 1);
        assert_eq!(settings.witness.logs[0].origin, "example.com/a");
        assert_eq!(settings.log_format, LogFormat::Text);
    }

    #[test]
    fn follow_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(
            &path,
            r#"
[[log]]
origin = "example.com/a"
vkey = "example.com/a+00000000+AQ"

[[follow]]
origin = "example.com/a"
vkey = "example.com/a+00000000+AQ"
grpc-url = "http://127.0.0.1:7800"

[[follow]]
origin = "example.com/b"
vkey = "example.com/b+00000000+AQ"
grpc-url = "log.example.com:7800"
poll-interval = 0.5

[[follow]]
origin = "example.com/c"
vkey = "example.com/c+00000000+AQ"
grpc-url = "log.example.com:7800"
poll-interval = 7
"#,
        )
        .unwrap();
        let cli =
            Cli::try_parse_from(["merklog-witness", "--config", path.to_str().unwrap()]).unwrap();
        let follow = cli.resolve().unwrap().witness.follow;
        assert_eq!(follow.len(), 3);
        assert_eq!(follow[0].poll_interval, DEFAULT_POLL_INTERVAL);
        assert_eq!(follow[0].grpc_url, "http://127.0.0.1:7800");
        assert_eq!(follow[1].poll_interval, Duration::from_millis(500));
        assert_eq!(follow[2].poll_interval, Duration::from_secs(7));
        assert_eq!(follow[1].log().origin, "example.com/b");

        let cli = Cli::try_parse_from([
            "merklog-witness",
            "--config",
            path.to_str().unwrap(),
            "--follow",
            "example.com/d",
            "example.com/d+00000000+AQ",
            "127.0.0.1:1",
            "--follow",
            "example.com/e",
            "example.com/e+00000000+AQ",
            "http://127.0.0.1:2",
        ])
        .unwrap();
        let follow = cli.resolve().unwrap().witness.follow;
        assert_eq!(follow.len(), 5);
        assert_eq!(
            follow[3],
            FollowConfig::new("example.com/d", "example.com/d+00000000+AQ", "127.0.0.1:1")
        );
        assert_eq!(follow[4].grpc_url, "http://127.0.0.1:2");
        assert!(
            Cli::try_parse_from(["merklog-witness", "--follow", "a", "b"]).is_err(),
            "three values"
        );

        for bad in ["0", "-1", "1e9", "nan"] {
            std::fs::write(
                &path,
                format!(
                    "[[follow]]\norigin = \"o\"\nvkey = \"v\"\ngrpc-url = \"u\"\npoll-interval = {bad}\n"
                ),
            )
            .unwrap();
            let cli = Cli::try_parse_from(["merklog-witness", "--config", path.to_str().unwrap()])
                .unwrap();
            assert!(
                matches!(cli.resolve(), Err(WitnessError::Config(_))),
                "{bad}"
            );
        }
        std::fs::write(&path, "[[follow]]\norigin = \"o\"\nvkey = \"v\"\n").unwrap();
        assert!(read_file_config(&path).is_err(), "grpc-url is required");
    }

    #[test]
    fn defaults() {
        let settings = Cli::try_parse_from(["merklog-witness"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(settings.witness.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(settings.listen.to_string(), DEFAULT_LISTEN);
        assert!(settings.witness.logs.is_empty());
        assert_eq!(settings.witness.failpoint, None);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:1\"\n").unwrap();
        assert!(matches!(
            read_file_config(&path),
            Err(WitnessError::Config(_))
        ));
        for bad in ["a", "/a/", "/a b", "//a", "/a?b"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
        for good in ["", "/a", "/witness/v1", "/a-b_c.d~"] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
    }
}
