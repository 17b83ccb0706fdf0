//! Configuration: one settings struct, [`WitnessSettings`], read from command-line
//! flags, `MERKLOG_WITNESS_*` environment variables, a TOML file and the defaults
//! declared on it, merged as merklogd merges its own. Precedence: flag >
//! environment > TOML > default. Unknown keys in the file are refused, naming
//! the key; durations take units (`500ms`, `5s`, `2m`, `1h30m`).
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
//! webhook-timeout = "10s"
//! log-format = "text"                      # or "json"
//! # tls-cert = "/etc/merklog-witness/tls/tls.crt"   # TLS (PEM); with tls-key
//! # tls-key = "/etc/merklog-witness/tls/tls.key"
//! # tls-reload-interval = "1m"             # also re-read on SIGHUP
//! # follow-ca-cert = "/etc/merklog-witness/log-ca.pem"  # for https:// grpc-url
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
//! grpc-url = "https://log.example.com:7800"
//! poll-interval = "2s"                     # [default: 2s]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgMatches, CommandFactory as _, FromArgMatches as _, Parser};
use merklog_daemon::tls::{ClientAuth, DEFAULT_RELOAD_INTERVAL, TlsFiles};
use merklog_daemon::{ConfigDuration, LogFormat};
use serde::{Deserialize, Serialize};

use crate::error::WitnessError;
use crate::failpoint::Failpoint;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./witness-data";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7900";
/// Default webhook timeout.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// One log the witness cosigns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The checkpoint origin line.
    pub origin: String,
    /// The log's verifier key (`name+hexid+base64`, Ed25519 note key).
    pub vkey: String,
}

/// Default interval between `GetCheckpoint` polls of a followed log.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// One log the witness follows by itself (pull mode, [`crate::follow`]); a
/// `[[follow]]` entry of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FollowConfig {
    /// The checkpoint origin line.
    pub origin: String,
    /// The log's verifier key, as for [`LogConfig::vkey`].
    pub vkey: String,
    /// The log's gRPC endpoint (`http://host:port` or `https://host:port`; a bare
    /// `host:port` means http).
    pub grpc_url: String,
    /// How often `GetCheckpoint` is polled when `WatchCheckpoints` is unavailable.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
}

fn default_poll_interval() -> Duration {
    DEFAULT_POLL_INTERVAL
}

/// Shortest accepted poll interval (a hostile config must not spin the witness).
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Longest accepted poll interval.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(24 * 3600);

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

    /// Refuses a poll interval outside 10ms to 24h.
    fn validate(&self) -> Result<(), WitnessError> {
        if (MIN_POLL_INTERVAL..=MAX_POLL_INTERVAL).contains(&self.poll_interval) {
            return Ok(());
        }
        Err(WitnessError::Config(format!(
            "poll-interval {} of followed log {:?} must be 10ms to 24h",
            humantime::format_duration(self.poll_interval),
            self.origin
        )))
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
    /// TLS on the listener ([`crate::run`]); `None`: plaintext.
    pub tls: Option<TlsFiles>,
    /// How often the TLS files are checked for changes.
    pub tls_reload_interval: Duration,
    /// CA certificates (PEM) for followed logs at `https://` URLs; `None`: the
    /// public web roots.
    pub follow_ca_cert: Option<PathBuf>,
}

impl WitnessConfig {
    /// A configuration with defaults for everything but the data directory and logs.
    pub fn new(data_dir: impl Into<PathBuf>, logs: Vec<LogConfig>) -> WitnessConfig {
        let defaults = WitnessSettings::default();
        WitnessConfig {
            data_dir: data_dir.into(),
            name: None,
            logs,
            follow: Vec::new(),
            submission_prefix: defaults.submission_prefix,
            monitoring_prefix: defaults.monitoring_prefix,
            webhook_url: None,
            webhook_timeout: defaults.webhook_timeout.get(),
            failpoint: None,
            tls: None,
            tls_reload_interval: defaults.tls_reload_interval.get(),
            follow_ca_cert: None,
        }
    }
}

/// Command line of `merklog-witness`: the settings plus what only a command
/// line says.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "merklog-witness",
    version,
    about = "A C2SP tlog-witness server",
    long_about = "A C2SP tlog-witness server.\n\n\
        Every setting can also come from the environment variable shown, or from the \
        --config TOML file under the flag's name; the logs to cosign are `[[log]]` and \
        `[[follow]]` entries of that file. Durations take units: 500ms, 5s, 2m, 1h30m.\n\n\
        Precedence: flag > environment variable > --config TOML file > default."
)]
pub struct Cli {
    /// TOML configuration file (logs are configured there as `[[log]]` and
    /// `[[follow]]` entries)
    #[arg(long, env = "MERKLOG_WITNESS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the resolved configuration as JSON and exit
    #[arg(long)]
    pub print_config: bool,

    /// Follow a merklog log over gRPC (pull mode), with the default poll interval;
    /// repeatable, added to the file's `[[follow]]` entries
    #[arg(long = "follow", num_args = 3, value_names = ["ORIGIN", "VKEY", "GRPC_URL"], action = clap::ArgAction::Append)]
    pub follow_flags: Vec<String>,

    /// Testing only: block forever at this point of the persist step.
    #[arg(long, env = "MERKLOG_WITNESS_TEST_FAILPOINT", value_enum, hide = true)]
    pub test_failpoint: Option<Failpoint>,

    /// The settings.
    #[command(flatten)]
    pub settings: WitnessSettings,
}

/// The witness's settings: each field is a flag (with its `MERKLOG_WITNESS_*`
/// environment variable) and a key of the TOML file, with its default; the
/// logs are tables only the file holds.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WitnessSettings {
    /// Data directory (keys, per-log state, evidence)
    #[arg(long, env = "MERKLOG_WITNESS_DATA_DIR", value_name = "DIR",
          default_value_os_t = WitnessSettings::default().data_dir)]
    pub data_dir: PathBuf,

    /// Listen address; port 0 picks a free port
    #[arg(long, env = "MERKLOG_WITNESS_LISTEN", value_name = "ADDR",
          default_value_t = WitnessSettings::default().listen)]
    pub listen: SocketAddr,

    /// Witness key name, used when generating the key on first start
    /// [default: HOSTNAME/merklog-witness]
    #[arg(long, env = "MERKLOG_WITNESS_NAME", value_name = "NAME")]
    pub name: Option<String>,

    /// Prefix of `POST <prefix>/add-checkpoint` [default: empty]
    #[arg(
        long,
        env = "MERKLOG_WITNESS_SUBMISSION_PREFIX",
        value_name = "PATH",
        default_value = "",
        hide_default_value = true
    )]
    pub submission_prefix: String,

    /// Prefix of `GET <prefix>/<hex sha256(origin)>/checkpoint` [default: empty]
    #[arg(
        long,
        env = "MERKLOG_WITNESS_MONITORING_PREFIX",
        value_name = "PATH",
        default_value = "",
        hide_default_value = true
    )]
    pub monitoring_prefix: String,

    /// URL that receives a JSON POST when a fork is detected
    #[arg(long, env = "MERKLOG_WITNESS_WEBHOOK_URL", value_name = "URL")]
    pub webhook_url: Option<String>,

    /// Timeout of one webhook delivery
    #[arg(long, env = "MERKLOG_WITNESS_WEBHOOK_TIMEOUT", value_name = "DURATION",
          default_value_t = WitnessSettings::default().webhook_timeout)]
    pub webhook_timeout: ConfigDuration,

    /// Log output format (JSON lines have the same shape as merklogd's)
    #[arg(long, env = "MERKLOG_WITNESS_LOG_FORMAT", value_name = "FORMAT",
          default_value_t = WitnessSettings::default().log_format)]
    pub log_format: LogFormat,

    /// Log filter, in tracing's env-filter syntax (e.g. "info" or
    /// "merklog_witness=debug,info")
    #[arg(long, env = "MERKLOG_WITNESS_LOG_LEVEL", value_name = "FILTER",
          default_value_t = WitnessSettings::default().log_level)]
    pub log_level: String,

    /// After binding, write the bound address to this file (for scripts and tests)
    #[arg(long, env = "MERKLOG_WITNESS_ADDR_FILE", value_name = "FILE")]
    pub addr_file: Option<PathBuf>,

    /// PEM certificate chain (leaf first) for TLS on the listener; with tls-key.
    /// Unset: plaintext. Reloaded when the file changes and on SIGHUP
    #[arg(long, env = "MERKLOG_WITNESS_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of tls-cert
    #[arg(long, env = "MERKLOG_WITNESS_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// How often the TLS files are checked for changes (they are also re-read on
    /// SIGHUP); a new file that does not load is logged and the old one kept
    #[arg(long, env = "MERKLOG_WITNESS_TLS_RELOAD_INTERVAL", value_name = "DURATION",
          default_value_t = WitnessSettings::default().tls_reload_interval)]
    pub tls_reload_interval: ConfigDuration,

    /// Allow a non-loopback listen address without TLS
    #[arg(long, env = "MERKLOG_WITNESS_INSECURE")]
    pub insecure: bool,

    /// PEM CA certificate(s) that followed logs at https:// grpc-urls must chain
    /// to (a private CA) [default: the public web roots]
    #[arg(long, env = "MERKLOG_WITNESS_FOLLOW_CA_CERT", value_name = "FILE")]
    pub follow_ca_cert: Option<PathBuf>,

    /// The logs to cosign (`[[log]]` in the file).
    #[arg(skip)]
    #[serde(default, rename = "log")]
    pub logs: Vec<LogConfig>,

    /// The logs to follow over gRPC (`[[follow]]` in the file, and `--follow`).
    #[arg(skip)]
    #[serde(default)]
    pub follow: Vec<FollowConfig>,
}

impl Default for WitnessSettings {
    fn default() -> Self {
        WitnessSettings {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7900))),
            name: None,
            submission_prefix: String::new(),
            monitoring_prefix: String::new(),
            webhook_url: None,
            webhook_timeout: ConfigDuration(DEFAULT_WEBHOOK_TIMEOUT),
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            addr_file: None,
            tls_cert: None,
            tls_key: None,
            tls_reload_interval: ConfigDuration(DEFAULT_RELOAD_INTERVAL),
            insecure: false,
            follow_ca_cert: None,
            logs: Vec::new(),
            follow: Vec::new(),
        }
    }
}

impl Cli {
    /// Parses this process's command line and environment (printing help, or a
    /// usage error and exiting, as clap does) and resolves the settings.
    pub fn load() -> Result<Self, WitnessError> {
        Self::resolve(&Self::command().get_matches())
    }

    /// Like [`Cli::load`] for the given arguments (the first is the program
    /// name); a usage error is returned, not printed.
    pub fn try_load_from<I, T>(args: I) -> Result<Self, WitnessError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command()
            .try_get_matches_from(args)
            .map_err(|e| WitnessError::Config(e.to_string()))?;
        Self::resolve(&matches)
    }

    /// Layers the file and defaults under what `matches` took from flags and
    /// the environment, adds the `--follow` flags to the file's entries, and
    /// checks the result.
    fn resolve(matches: &ArgMatches) -> Result<Self, WitnessError> {
        let mut cli =
            Self::from_arg_matches(matches).map_err(|e| WitnessError::Config(e.to_string()))?;
        cli.settings = merklog_daemon::layered(&cli.settings, matches, cli.config.as_deref())
            .map_err(|e| WitnessError::Config(e.to_string()))?;
        for values in cli.follow_flags.chunks(3) {
            cli.settings.follow.push(follow_flag(values)?);
        }
        for follow in &cli.settings.follow {
            follow.validate()?;
        }
        validate_prefix(&cli.settings.submission_prefix)?;
        validate_prefix(&cli.settings.monitoring_prefix)?;
        cli.settings.check_tls()?;
        Ok(cli)
    }

    /// What [`crate::Witness::open`] needs.
    pub fn witness_config(&self) -> WitnessConfig {
        let settings = &self.settings;
        WitnessConfig {
            data_dir: settings.data_dir.clone(),
            name: settings.name.clone(),
            logs: settings.logs.clone(),
            follow: settings.follow.clone(),
            submission_prefix: settings.submission_prefix.clone(),
            monitoring_prefix: settings.monitoring_prefix.clone(),
            webhook_url: settings.webhook_url.clone(),
            webhook_timeout: settings.webhook_timeout.get(),
            failpoint: self.test_failpoint,
            tls: settings.tls_files(),
            tls_reload_interval: settings.tls_reload_interval.get(),
            follow_ca_cert: settings.follow_ca_cert.clone(),
        }
    }
}

impl WitnessSettings {
    /// The TLS files, both or neither, and a non-loopback listen address only
    /// with TLS (the witness has no other way to protect its clients) unless
    /// `insecure` says plaintext is intended.
    fn check_tls(&self) -> Result<(), WitnessError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(WitnessError::Config(
                    "tls-cert is set without tls-key: TLS needs both".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(WitnessError::Config(
                    "tls-key is set without tls-cert: TLS needs both".into(),
                ));
            }
            _ => {}
        }
        if self.tls_reload_interval.get().is_zero() {
            return Err(WitnessError::Config(
                "tls-reload-interval must be positive".into(),
            ));
        }
        if self.tls_cert.is_none() && !self.insecure && !self.listen.ip().is_loopback() {
            return Err(WitnessError::Config(format!(
                "refusing to serve listen = {}, a non-loopback address, without TLS and \
                 without authentication: set tls-cert and tls-key (TLS; the witness takes \
                 no client credentials), or pass --insecure (insecure = true) to accept \
                 plaintext",
                self.listen
            )));
        }
        Ok(())
    }

    /// The TLS files of the listener, if TLS is configured.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return None;
        };
        Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
            client_auth: ClientAuth::Optional,
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

    /// Resolves `args` over a config file holding `file` (if any).
    fn load(args: &[&str], file: Option<&str>) -> Result<Cli, WitnessError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        let mut argv = vec!["merklog-witness".to_owned()];
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
            argv.extend(["--config".to_owned(), path.to_str().unwrap().to_owned()]);
        }
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        Cli::try_load_from(argv)
    }

    #[test]
    fn precedence_flag_over_file_over_default() {
        let file = r#"
data-dir = "/from/file"
listen = "127.0.0.1:1234"
monitoring-prefix = "/mon"
webhook-timeout = "3s"

[[log]]
origin = "example.com/a"
vkey = "example.com/a+00000000+AQ"
"#;
        let cli = load(&["--data-dir", "/from/flag"], Some(file)).unwrap();
        let config = cli.witness_config();
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(cli.settings.listen.port(), 1234);
        assert_eq!(config.monitoring_prefix, "/mon");
        assert_eq!(config.submission_prefix, "");
        assert_eq!(config.webhook_timeout, Duration::from_secs(3));
        assert_eq!(config.logs.len(), 1);
        assert_eq!(config.logs[0].origin, "example.com/a");
        assert_eq!(cli.settings.log_format, LogFormat::Text);
    }

    #[test]
    fn follow_entries() {
        let file = r#"
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
poll-interval = "500ms"

[[follow]]
origin = "example.com/c"
vkey = "example.com/c+00000000+AQ"
grpc-url = "log.example.com:7800"
poll-interval = "7s"
"#;
        let follow = load(&[], Some(file)).unwrap().witness_config().follow;
        assert_eq!(follow.len(), 3);
        assert_eq!(follow[0].poll_interval, DEFAULT_POLL_INTERVAL);
        assert_eq!(follow[0].grpc_url, "http://127.0.0.1:7800");
        assert_eq!(follow[1].poll_interval, Duration::from_millis(500));
        assert_eq!(follow[2].poll_interval, Duration::from_secs(7));
        assert_eq!(follow[1].log().origin, "example.com/b");

        let follow = load(
            &[
                "--follow",
                "example.com/d",
                "example.com/d+00000000+AQ",
                "127.0.0.1:1",
                "--follow",
                "example.com/e",
                "example.com/e+00000000+AQ",
                "http://127.0.0.1:2",
            ],
            Some(file),
        )
        .unwrap()
        .witness_config()
        .follow;
        assert_eq!(follow.len(), 5);
        assert_eq!(
            follow[3],
            FollowConfig::new("example.com/d", "example.com/d+00000000+AQ", "127.0.0.1:1")
        );
        assert_eq!(follow[4].grpc_url, "http://127.0.0.1:2");
        assert!(load(&["--follow", "a", "b"], None).is_err(), "three values");

        for bad in ["\"0s\"", "\"-1s\"", "\"2d\"", "\"5ms\"", "2", "\"soon\""] {
            let text = format!(
                "[[follow]]\norigin = \"o\"\nvkey = \"v\"\ngrpc-url = \"u\"\npoll-interval = {bad}\n"
            );
            let error = load(&[], Some(&text)).unwrap_err();
            assert!(
                matches!(&error, WitnessError::Config(m) if m.contains("poll-interval")),
                "{bad}: {error}"
            );
        }
        let error = load(&[], Some("[[follow]]\norigin = \"o\"\nvkey = \"v\"\n")).unwrap_err();
        assert!(error.to_string().contains("grpc-url"), "{error}");
    }

    #[test]
    fn defaults() {
        let cli = load(&[], None).unwrap();
        assert_eq!(cli.settings, WitnessSettings::default());
        let config = cli.witness_config();
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(cli.settings.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.webhook_timeout, DEFAULT_WEBHOOK_TIMEOUT);
        assert!(config.logs.is_empty());
        assert_eq!(config.failpoint, None);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values_by_name() {
        let error = load(&[], Some("lisen = \"127.0.0.1:1\"\n")).unwrap_err();
        assert!(
            matches!(&error, WitnessError::Config(m) if m.contains("lisen")),
            "{error}"
        );
        // The old unit-suffixed key is gone: durations carry their unit.
        let error = load(&[], Some("webhook-timeout-secs = 3\n")).unwrap_err();
        assert!(
            error.to_string().contains("webhook-timeout-secs"),
            "{error}"
        );
        let error = load(&[], Some("webhook-timeout = 3\n")).unwrap_err();
        assert!(error.to_string().contains("`webhook-timeout`"), "{error}");
        let error = load(&["--webhook-timeout", "3"], None).unwrap_err();
        assert!(error.to_string().contains("--webhook-timeout"), "{error}");
        let error = load(
            &[],
            Some("[[log]]\norigin = \"o\"\nvkey = \"v\"\nurl = \"x\"\n"),
        )
        .unwrap_err();
        assert!(error.to_string().contains("url"), "{error}");
        for bad in ["a", "/a/", "/a b", "//a", "/a?b"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
        for good in ["", "/a", "/witness/v1", "/a-b_c.d~"] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
    }
}
