//! Configuration: command-line flags, `MERKLOG_WITNESS_*` environment variables and a
//! TOML file, in the same style as merklogd. Precedence: flag > environment > TOML >
//! default.
//!
//! Example TOML file (every key optional except the logs the witness should cosign):
//!
//! ```toml
//! data_dir = "/var/lib/merklog-witness"
//! listen = "0.0.0.0:7900"
//! name = "witness.example.com/w1"          # used only when the key is generated
//! submission_prefix = ""                   # POST <prefix>/add-checkpoint
//! monitoring_prefix = ""                   # GET <prefix>/<hex sha256(origin)>/checkpoint
//! webhook_url = "https://alerts.example.com/hook"
//! webhook_timeout_secs = 10
//! log_format = "text"                      # or "json"
//!
//! [[log]]
//! origin = "example.com/log"
//! vkey = "example.com/log+3f6a2b1c+AQ..."
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
    /// TOML configuration file (logs are configured there as `[[log]]` entries).
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
    /// After binding, write the bound address to this file (for scripts and tests).
    #[arg(long, env = "MERKLOG_WITNESS_ADDR_FILE")]
    pub addr_file: Option<PathBuf>,
    /// Testing only: block forever at this point of the persist step.
    #[arg(long, env = "MERKLOG_WITNESS_TEST_FAILPOINT", value_enum, hide = true)]
    pub test_failpoint: Option<Failpoint>,
}

/// The TOML file's keys.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
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
data_dir = "/from/file"
listen = "127.0.0.1:1234"
monitoring_prefix = "/mon"
webhook_timeout_secs = 3

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
