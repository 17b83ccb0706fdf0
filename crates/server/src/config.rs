//! Configuration: one settings struct, [`ServerConfig`], read from command-line
//! flags, `MERKLOGD_*` environment variables, an optional TOML file and the
//! defaults declared on it, in that order of precedence
//! (flag > environment > file > default). The layering runs when [`crate::cli`]
//! resolves the command line.
//!
//! The TOML file uses the flags' long names as keys (`data-dir = "/var/lib/merklog"`,
//! `max-batch-wait = "2ms"`); unknown keys are refused, naming the key, so a typo
//! is not silently ignored.
//!
//! Durations (`max-batch-wait`, `witness-timeout`, `witness-resend-interval`,
//! `append-timeout`, `fail-open-after`, `tls-reload-interval`) are written with units, `500ms`, `5s`,
//! `2m` or `1h30m` ([`ConfigDuration`]), in flags, environment variables and the
//! file alike.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use merklog_daemon::tls::{ClientAuth, DEFAULT_RELOAD_INTERVAL, TlsFiles};
use merklog_daemon::{ConfigDuration, LogFormat};
use merklog_log::LogConfig;
use merklog_proto::convert::Limits;
use serde::{Deserialize, Serialize};

use crate::ServerError;
use crate::auth::settings::{LimitValues, PrincipalConfig, PrincipalLimits, ReadAccess};
use crate::otlp::settings::{DEFAULT_OTLP_GRPC_ADDR, DEFAULT_OTLP_HTTP_ADDR, OtlpListen};
use crate::receipts::settings::{IssuerConfig, ReceiptAlgorithm};
use crate::rules::rule::RuleConfig;
use crate::schema::Schema;
use crate::sources::settings::EntriesMode;

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
/// Default TTL of the cluster election lease.
pub const DEFAULT_CLUSTER_LEASE_TTL: Duration = Duration::from_secs(5);

/// Default interval of the tokens file check.
pub const DEFAULT_TOKENS_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// Default interval of the sources file check.
pub const DEFAULT_SOURCES_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// Default timeout of one rule alert webhook attempt.
pub const DEFAULT_ALERT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap of concurrent calls on one gRPC connection.
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// Default cap of a gRPC request's header list (bytes).
pub const DEFAULT_MAX_HEADER_LIST_BYTES: u32 = 16 << 10;
/// Default HTTP/2 keepalive ping interval.
pub const DEFAULT_HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Default HTTP/2 keepalive ping timeout.
pub const DEFAULT_HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How much of the stored tree `merklogd` checks before it serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyOnStart {
    /// Re-derive the signed root from the O(log n) right-edge tiles (a mismatch
    /// refuses to sign; reads still work)
    #[default]
    Root,
    /// Also recompute every hash tile from every entry bundle, as `merklogd fsck`
    /// does, and refuse to start on the first bad one (reads the whole log)
    Full,
}

impl std::fmt::Display for VerifyOnStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyOnStart::Root => "root",
            VerifyOnStart::Full => "full",
        })
    }
}

/// The server's settings: each field is a flag (with its `MERKLOGD_*`
/// environment variable) and a key of the TOML file, with its default.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerConfig {
    /// Data directory holding the database and the log key
    #[arg(long, env = "MERKLOGD_DATA_DIR", value_name = "DIR",
          default_value_os_t = ServerConfig::default().data_dir)]
    pub data_dir: PathBuf,

    /// gRPC listen address; port 0 picks a free port (the bound address is logged)
    #[arg(long, env = "MERKLOGD_LISTEN", value_name = "ADDR",
          default_value_t = ServerConfig::default().listen)]
    pub listen: SocketAddr,

    /// tlog-tiles HTTP listen address (/checkpoint, /tile/...)
    #[arg(long, env = "MERKLOGD_HTTP_LISTEN", value_name = "ADDR",
          default_value_t = ServerConfig::default().http_listen)]
    pub http_listen: SocketAddr,

    /// Prometheus metrics listen address (/metrics)
    #[arg(long, env = "MERKLOGD_METRICS_LISTEN", value_name = "ADDR",
          default_value_t = ServerConfig::default().metrics_listen)]
    pub metrics_listen: SocketAddr,

    /// OTLP/gRPC listen address (opentelemetry.proto.collector.logs.v1.LogsService,
    /// gzip accepted), or `off`
    #[arg(long, env = "MERKLOGD_OTLP_GRPC_ADDR", value_name = "ADDR|off",
          default_value_t = ServerConfig::default().otlp_grpc_addr)]
    pub otlp_grpc_addr: OtlpListen,

    /// OTLP/HTTP listen address (POST /v1/logs, protobuf or JSON), or `off`
    #[arg(long, env = "MERKLOGD_OTLP_HTTP_ADDR", value_name = "ADDR|off",
          default_value_t = ServerConfig::default().otlp_http_addr)]
    pub otlp_http_addr: OtlpListen,

    /// Require every entry to be an audit event of this profile (`ai-audit/v1`):
    /// a call with one that does not conform is refused whole. Unset: any entry
    #[arg(long, env = "MERKLOGD_SCHEMA", value_name = "PROFILE")]
    pub schema: Option<Schema>,

    /// The log's origin (checkpoint first line and key name), fixed at first start
    /// [default: HOSTNAME/merklog]. Later starts refuse a different value.
    #[arg(long, env = "MERKLOGD_ORIGIN", value_name = "ORIGIN")]
    pub origin: Option<String>,

    /// Most entries the sequencer integrates in one round (one synced write)
    #[arg(long, env = "MERKLOGD_MAX_BATCH_ENTRIES", value_name = "N",
          default_value_t = ServerConfig::default().max_batch_entries)]
    pub max_batch_entries: usize,

    /// How long a non-full round may wait for more entries; 0s means natural
    /// batching only (lowest latency)
    #[arg(long, env = "MERKLOGD_MAX_BATCH_WAIT", value_name = "DURATION",
          default_value_t = ServerConfig::default().max_batch_wait)]
    pub max_batch_wait: ConfigDuration,

    /// Most entries waiting in the sequencer queue; beyond it appends get
    /// RESOURCE_EXHAUSTED
    #[arg(long, env = "MERKLOGD_QUEUE_CAPACITY", value_name = "N",
          default_value_t = ServerConfig::default().queue_capacity)]
    pub queue_capacity: usize,

    /// Most entry bytes waiting in the sequencer queue
    #[arg(long, env = "MERKLOGD_QUEUE_CAPACITY_BYTES", value_name = "BYTES",
          default_value_t = ServerConfig::default().queue_capacity_bytes)]
    pub queue_capacity_bytes: usize,

    /// Largest accepted entry in bytes, at most 65535 (the tlog-tiles bundle limit)
    #[arg(long, env = "MERKLOGD_MAX_ENTRY_BYTES", value_name = "BYTES",
          default_value_t = ServerConfig::default().max_entry_bytes)]
    pub max_entry_bytes: usize,

    /// Most entries in one Append call or stream request. The gRPC request size cap
    /// is derived from it: entries-per-call x (max-entry-bytes + 4) + 64 bytes
    #[arg(long, env = "MERKLOGD_MAX_ENTRIES_PER_CALL", value_name = "N",
          default_value_t = ServerConfig::default().max_entries_per_call)]
    pub max_entries_per_call: usize,

    /// Most entries returned by one GetEntries call, at most 1024
    #[arg(long, env = "MERKLOGD_MAX_ENTRIES_PER_PAGE", value_name = "N",
          default_value_t = ServerConfig::default().max_entries_per_page)]
    pub max_entries_per_page: usize,

    /// Log output format (JSON lines have the same shape as merklog-witness's)
    #[arg(long, env = "MERKLOGD_LOG_FORMAT", value_name = "FORMAT",
          default_value_t = ServerConfig::default().log_format)]
    pub log_format: LogFormat,

    /// Log filter, in tracing's env-filter syntax (e.g. "info" or
    /// "merklog_log=debug,info")
    #[arg(long, env = "MERKLOGD_LOG_LEVEL", value_name = "FILTER",
          default_value_t = ServerConfig::default().log_level)]
    pub log_level: String,

    /// Once serving, write the bound addresses to this file as JSON
    /// ({"grpc":..,"http":..,"metrics":..}); for scripts and tests using port 0
    #[arg(long, env = "MERKLOGD_ADDR_FILE", value_name = "FILE")]
    pub addr_file: Option<PathBuf>,

    /// C2SP tlog-policy file naming the witnesses (with their URLs) and the quorum
    /// that must cosign a checkpoint before it is published. Its `log` line must be
    /// this log's verifier key (`<data-dir>/log.vkey`). Without it, checkpoints are
    /// published as soon as they are durable
    #[arg(long, env = "MERKLOGD_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Timeout of one request to a witness
    #[arg(long, env = "MERKLOGD_WITNESS_TIMEOUT", value_name = "DURATION",
          default_value_t = ServerConfig::default().witness_timeout)]
    pub witness_timeout: ConfigDuration,

    /// Publish a checkpoint without the witness quorum once it has waited this long
    /// (fail open), e.g. "30s". Unset: never publish without the quorum (fail
    /// closed)
    #[arg(long, env = "MERKLOGD_FAIL_OPEN_AFTER", value_name = "DURATION")]
    pub fail_open_after: Option<ConfigDuration>,

    /// While idle, re-send the latest checkpoint to the witnesses this often, so
    /// fresh cosignature timestamps show the log is alive
    #[arg(long, env = "MERKLOGD_WITNESS_RESEND_INTERVAL", value_name = "DURATION",
          default_value_t = ServerConfig::default().witness_resend_interval)]
    pub witness_resend_interval: ConfigDuration,

    /// Refusals in a row (a 4xx that is neither a size conflict nor a rate limit)
    /// after which a witness is taken as refusing this log rather than briefly
    /// failing; an answer that the log is frozen or forked counts at once
    #[arg(long, env = "MERKLOGD_WITNESS_REFUSAL_LIMIT", value_name = "N",
          default_value_t = ServerConfig::default().witness_refusal_limit)]
    pub witness_refusal_limit: u32,

    /// With a policy: how long an append waits for a checkpoint that met the quorum
    /// before it fails with UNAVAILABLE (its entries stay durable and are published
    /// later; retrying is safe)
    #[arg(long, env = "MERKLOGD_APPEND_TIMEOUT", value_name = "DURATION",
          default_value_t = ServerConfig::default().append_timeout)]
    pub append_timeout: ConfigDuration,

    /// PEM certificate chain (leaf first) for TLS on the gRPC and tiles HTTP ports;
    /// with tls-key. Unset: plaintext. Reloaded when the file changes and on SIGHUP
    #[arg(long, env = "MERKLOGD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of tls-cert
    #[arg(long, env = "MERKLOGD_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// PEM bundle of the CAs that client certificates must chain to. Set: the gRPC
    /// and tiles HTTP ports verify client certificates against it (mutual TLS); a
    /// certificate from another CA fails the handshake, and so does none unless
    /// tokens or principal tables are configured (a token may come instead)
    #[arg(long, env = "MERKLOGD_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,

    /// How often the TLS files are checked for changes (they are also re-read on
    /// SIGHUP); a new file that does not load is logged and the old one kept
    #[arg(long, env = "MERKLOGD_TLS_RELOAD_INTERVAL", value_name = "DURATION",
          default_value_t = ServerConfig::default().tls_reload_interval)]
    pub tls_reload_interval: ConfigDuration,

    /// Allow the gRPC or tiles HTTP port on a non-loopback address without TLS and
    /// without authentication (anyone who can reach it can append, in plaintext)
    #[arg(long, env = "MERKLOGD_INSECURE")]
    pub insecure: bool,

    /// PEM bundle of extra CAs trusted for the policy's https:// witness URLs (a
    /// private CA); the public web roots are trusted as well
    #[arg(long, env = "MERKLOGD_WITNESS_CA_CERT", value_name = "FILE")]
    pub witness_ca_cert: Option<PathBuf>,

    /// Bearer tokens file (see `merklogd token create`). Setting it turns on
    /// authentication: appends then need a principal with the append role. A
    /// missing file holds no tokens; the file is reloaded when it changes and
    /// on SIGHUP
    #[arg(long, env = "MERKLOGD_TOKENS_FILE", value_name = "FILE")]
    pub tokens_file: Option<PathBuf>,

    /// How often the tokens file is checked for changes
    #[arg(long, env = "MERKLOGD_TOKENS_RELOAD_INTERVAL", value_name = "DURATION",
          default_value_t = ServerConfig::default().tokens_reload_interval)]
    pub tokens_reload_interval: ConfigDuration,

    /// Who may read (proofs, entries, checkpoints, the watch, tiles): `public`,
    /// or `authenticated` principals with the read role
    #[arg(long, env = "MERKLOGD_READ_ACCESS", value_name = "ACCESS",
          default_value_t = ServerConfig::default().read_access)]
    pub read_access: ReadAccess,

    /// Default per-principal limit: entries appended per second (unset:
    /// unlimited); `[[principal]]` tables override each limit
    #[arg(long, env = "MERKLOGD_PRINCIPAL_ENTRIES_PER_SECOND", value_name = "N")]
    pub principal_entries_per_second: Option<u32>,

    /// Default per-principal burst of entries [default: one second's worth]
    #[arg(long, env = "MERKLOGD_PRINCIPAL_ENTRIES_BURST", value_name = "N")]
    pub principal_entries_burst: Option<u32>,

    /// Default per-principal limit: entry bytes appended per second (unset:
    /// unlimited)
    #[arg(
        long,
        env = "MERKLOGD_PRINCIPAL_BYTES_PER_SECOND",
        value_name = "BYTES"
    )]
    pub principal_bytes_per_second: Option<u32>,

    /// Default per-principal burst of entry bytes [default: one second's worth]
    #[arg(long, env = "MERKLOGD_PRINCIPAL_BYTES_BURST", value_name = "BYTES")]
    pub principal_bytes_burst: Option<u32>,

    /// Default per-principal limit: append streams open at once (unset:
    /// unlimited)
    #[arg(long, env = "MERKLOGD_PRINCIPAL_MAX_STREAMS", value_name = "N")]
    pub principal_max_streams: Option<u32>,

    /// Most concurrent HTTP/2 streams (calls) on one gRPC connection
    #[arg(long, env = "MERKLOGD_MAX_STREAMS_PER_CONNECTION", value_name = "N",
          default_value_t = ServerConfig::default().max_streams_per_connection)]
    pub max_streams_per_connection: u32,

    /// Largest HTTP/2 header list a gRPC client may send, in bytes
    #[arg(long, env = "MERKLOGD_MAX_HEADER_LIST_BYTES", value_name = "BYTES",
          default_value_t = ServerConfig::default().max_header_list_bytes)]
    pub max_header_list_bytes: u32,

    /// Interval of HTTP/2 keepalive pings on idle gRPC connections
    #[arg(long, env = "MERKLOGD_HTTP2_KEEPALIVE_INTERVAL", value_name = "DURATION",
          default_value_t = ServerConfig::default().http2_keepalive_interval)]
    pub http2_keepalive_interval: ConfigDuration,

    /// A connection whose keepalive ping is not answered within this time is
    /// closed (dead or stalled peers free their resources)
    #[arg(long, env = "MERKLOGD_HTTP2_KEEPALIVE_TIMEOUT", value_name = "DURATION",
          default_value_t = ServerConfig::default().http2_keepalive_timeout)]
    pub http2_keepalive_timeout: ConfigDuration,

    /// Close gRPC connections older than this (clients reconnect), so no
    /// connection holds resources forever. Unset: no limit
    #[arg(long, env = "MERKLOGD_MAX_CONNECTION_AGE", value_name = "DURATION")]
    pub max_connection_age: Option<ConfigDuration>,

    /// Refuse to create a new log without an explicit origin (instead of taking
    /// the host name, which in a container is random and could never change
    /// afterwards). The container image sets it
    #[arg(long, env = "MERKLOGD_REQUIRE_ORIGIN")]
    pub require_origin: bool,

    /// What to check of the stored tree at start-up: `root` (the signed root
    /// against the right-edge tiles) or `full` (every tile against every entry;
    /// start-up then reads the whole log)
    #[arg(long, env = "MERKLOGD_VERIFY_ON_START", value_name = "CHECK",
          default_value_t = ServerConfig::default().verify_on_start)]
    pub verify_on_start: VerifyOnStart,

    /// Sources registry: a TOML file of `[[source]]` tables (name, vkey,
    /// principals, heartbeat-interval; see deploy/sources.toml). Signed events of
    /// unregistered sources are refused. A missing file registers no source; the
    /// file is reloaded when it changes and on SIGHUP
    #[arg(long, env = "MERKLOGD_SOURCES_FILE", value_name = "FILE")]
    pub sources_file: Option<PathBuf>,

    /// How often the sources file is checked for changes
    #[arg(long, env = "MERKLOGD_SOURCES_RELOAD_INTERVAL", value_name = "DURATION",
          default_value_t = ServerConfig::default().sources_reload_interval)]
    pub sources_reload_interval: ConfigDuration,

    /// Which entries the log accepts: `mixed` (signed source events and unsigned
    /// entries) or `sources-only` (signed events of registered sources only)
    #[arg(long, env = "MERKLOGD_ENTRIES", value_name = "MODE",
          default_value_t = ServerConfig::default().entries)]
    pub entries: EntriesMode,

    /// URL (http or https) POSTed a JSON alert when a source equivocates (best
    /// effort: the evidence on disk and the error log line are the record)
    #[arg(long, env = "MERKLOGD_SOURCE_ALERT_WEBHOOK", value_name = "URL")]
    pub source_alert_webhook: Option<String>,

    /// Principals and their roles and limits: `[[principal]]` tables of the
    /// configuration file only (see `PrincipalConfig`).
    #[arg(skip)]
    #[serde(default)]
    pub principal: Vec<PrincipalConfig>,

    /// Cluster mode: the bucket that holds the log as tlog-tiles objects
    /// (`s3://BUCKET[?endpoint=URL&region=REGION]`, credentials from the
    /// `AWS_*` environment; or `file:///DIR`); the data directory becomes this
    /// node's cache. Unset: the data directory alone holds the log
    #[arg(long, env = "MERKLOGD_CLUSTER_BUCKET", value_name = "URL")]
    pub cluster_bucket: Option<String>,

    /// Cluster mode: where the fenced checkpoint lives, `object-store` (the
    /// bucket's conditional update; the default) or `etcd://HOST:PORT/KEY`
    #[arg(long, env = "MERKLOGD_CLUSTER_LOCK", value_name = "LOCK")]
    pub cluster_lock: Option<String>,

    /// Cluster mode with an etcd lock: the TTL of the election lease (whole
    /// seconds). A leader that cannot renew it within the TTL stops signing, and a
    /// standby takes over once it expired
    #[arg(long, env = "MERKLOGD_CLUSTER_LEASE_TTL", value_name = "DURATION",
          default_value_t = ServerConfig::default().cluster_lease_ttl)]
    pub cluster_lease_ttl: ConfigDuration,

    /// Cluster mode with an etcd lock: the gRPC URL this node advertises while it
    /// leads; standbys name it when they turn an append away. Default: http:// and
    /// the bound gRPC address
    #[arg(long, env = "MERKLOGD_CLUSTER_ADVERTISE", value_name = "URL")]
    pub cluster_advertise: Option<String>,

    /// Cluster mode: serve the log from the bucket without signing (no key, no
    /// lock): reads and the tiles HTTP API from the data directory as a cache that
    /// follows the bucket's public checkpoint; appends are turned away
    #[arg(long, env = "MERKLOGD_READ_ONLY")]
    pub read_only: bool,

    /// Algorithm of the receipt key (`<data-dir>/receipt.key`) generated on first
    /// start: `ed25519` (COSE EdDSA) or `es256`. An existing key must match
    #[arg(long, env = "MERKLOGD_RECEIPT_ALGORITHM", value_name = "ALG",
          default_value_t = ServerConfig::default().receipt_algorithm)]
    pub receipt_algorithm: ReceiptAlgorithm,

    /// SCITT issuers whose signed statements `POST /entries` registers:
    /// `[[scitt-issuer]]` tables (`name`, `key`) of the configuration file only
    #[arg(skip)]
    #[serde(default)]
    pub scitt_issuer: Vec<IssuerConfig>,

    /// Rules over audit events: `[[rule]]` tables (`name`, `when`, and for
    /// windowed counts `count-by`, `threshold`, `window`) of the configuration
    /// file only; see docs/rules.md
    #[arg(skip)]
    #[serde(default)]
    pub rule: Vec<RuleConfig>,

    /// URL (http or https) POSTed a JSON alert each time a rule fires (retried with
    /// backoff; the alert entry in the log is the record)
    #[arg(long, env = "MERKLOGD_ALERT_WEBHOOK", value_name = "URL")]
    pub alert_webhook: Option<String>,

    /// Timeout of one attempt to deliver a rule alert to the webhook
    #[arg(long, env = "MERKLOGD_ALERT_WEBHOOK_TIMEOUT", value_name = "DURATION",
          default_value_t = ServerConfig::default().alert_webhook_timeout)]
    pub alert_webhook_timeout: ConfigDuration,
}

impl Default for ServerConfig {
    /// The embedded defaults (the sequencer's and the wire limits' own defaults).
    fn default() -> Self {
        let log = LogConfig::default();
        let limits = Limits::default();
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            listen: default_addr(DEFAULT_LISTEN, 7800),
            http_listen: default_addr(DEFAULT_HTTP_LISTEN, 7801),
            metrics_listen: default_addr(DEFAULT_METRICS_LISTEN, 7802),
            otlp_grpc_addr: OtlpListen::default_of(DEFAULT_OTLP_GRPC_ADDR, 4317),
            otlp_http_addr: OtlpListen::default_of(DEFAULT_OTLP_HTTP_ADDR, 4318),
            schema: None,
            origin: None,
            max_batch_entries: log.max_batch_entries,
            max_batch_wait: ConfigDuration(log.max_batch_wait),
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
            witness_refusal_limit: merklog_log::DEFAULT_WITNESS_REFUSAL_LIMIT,
            append_timeout: ConfigDuration(log.append_timeout),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_reload_interval: ConfigDuration(DEFAULT_RELOAD_INTERVAL),
            insecure: false,
            witness_ca_cert: None,
            tokens_file: None,
            tokens_reload_interval: ConfigDuration(DEFAULT_TOKENS_RELOAD_INTERVAL),
            read_access: ReadAccess::Public,
            principal_entries_per_second: None,
            principal_entries_burst: None,
            principal_bytes_per_second: None,
            principal_bytes_burst: None,
            principal_max_streams: None,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
            max_header_list_bytes: DEFAULT_MAX_HEADER_LIST_BYTES,
            http2_keepalive_interval: ConfigDuration(DEFAULT_HTTP2_KEEPALIVE_INTERVAL),
            http2_keepalive_timeout: ConfigDuration(DEFAULT_HTTP2_KEEPALIVE_TIMEOUT),
            max_connection_age: None,
            require_origin: false,
            verify_on_start: VerifyOnStart::Root,
            sources_file: None,
            sources_reload_interval: ConfigDuration(DEFAULT_SOURCES_RELOAD_INTERVAL),
            entries: EntriesMode::Mixed,
            source_alert_webhook: None,
            principal: Vec::new(),
            cluster_bucket: None,
            cluster_lock: None,
            cluster_lease_ttl: ConfigDuration(DEFAULT_CLUSTER_LEASE_TTL),
            cluster_advertise: None,
            read_only: false,
            receipt_algorithm: ReceiptAlgorithm::Ed25519,
            scitt_issuer: Vec::new(),
            rule: Vec::new(),
            alert_webhook: None,
            alert_webhook_timeout: ConfigDuration(DEFAULT_ALERT_WEBHOOK_TIMEOUT),
        }
    }
}

/// Parses one of the constant default addresses above.
fn default_addr(text: &str, port: u16) -> SocketAddr {
    text.parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], port)))
}

impl ServerConfig {
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
        if self.entries == EntriesMode::SourcesOnly && self.sources_file.is_none() {
            return Err(ServerError::Config(
                "entries = \"sources-only\" needs a sources-file (no source could write)".into(),
            ));
        }
        let positive = [
            ("witness-timeout", Some(self.witness_timeout)),
            (
                "witness-resend-interval",
                Some(self.witness_resend_interval),
            ),
            ("append-timeout", Some(self.append_timeout)),
            ("fail-open-after", self.fail_open_after),
            ("tls-reload-interval", Some(self.tls_reload_interval)),
            ("tokens-reload-interval", Some(self.tokens_reload_interval)),
            (
                "sources-reload-interval",
                Some(self.sources_reload_interval),
            ),
            (
                "http2-keepalive-interval",
                Some(self.http2_keepalive_interval),
            ),
            (
                "http2-keepalive-timeout",
                Some(self.http2_keepalive_timeout),
            ),
            ("max-connection-age", self.max_connection_age),
            ("cluster-lease-ttl", Some(self.cluster_lease_ttl)),
        ];
        if self.witness_refusal_limit == 0 {
            return Err(ServerError::Config(
                "witness-refusal-limit must be at least 1".to_owned(),
            ));
        }
        for (name, value) in positive {
            if value.is_some_and(|d| d.0.is_zero()) {
                return Err(ServerError::Config(format!("{name} must be positive")));
            }
        }
        self.check_tls()?;
        self.check_exposure()?;
        if self.max_streams_per_connection == 0 || self.max_header_list_bytes == 0 {
            return Err(ServerError::Config(
                "max-streams-per-connection and max-header-list-bytes must be positive".into(),
            ));
        }
        self.default_limits()?;
        crate::receipts::settings::issuer_registry(&self.scitt_issuer)?;
        // Every rule's CEL compiles, or the server does not start.
        crate::rules::rule::compile_all(&self.rule).map_err(ServerError::Config)?;
        if self.alert_webhook_timeout.get().is_zero() {
            return Err(ServerError::Config(
                "alert-webhook-timeout must be more than 0".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for table in &self.principal {
            let (principal, _) = table.identity()?;
            self.limits_of(table)?;
            if !names.insert(principal) {
                return Err(ServerError::Config(format!(
                    "[[principal]] {} appears twice",
                    table.name
                )));
            }
        }
        Ok(())
    }

    /// The TLS files, both or neither; a client CA only with TLS.
    fn check_tls(&self) -> Result<(), ServerError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => Err(ServerError::Config(
                "tls-cert is set without tls-key: TLS needs both".into(),
            )),
            (None, Some(_)) => Err(ServerError::Config(
                "tls-key is set without tls-cert: TLS needs both".into(),
            )),
            (None, None) if self.tls_client_ca.is_some() => Err(ServerError::Config(
                "tls-client-ca needs TLS: set tls-cert and tls-key too".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses a non-loopback gRPC or tiles address that would serve plaintext
    /// to anyone, unless `insecure` says that is intended. The metrics port is
    /// not checked: it serves no log data and takes no writes.
    fn check_exposure(&self) -> Result<(), ServerError> {
        if self.insecure || self.tls_cert.is_some() || self.has_authentication() {
            return Ok(());
        }
        let otlp = [
            ("otlp-grpc-addr", self.otlp_grpc_addr.0),
            ("otlp-http-addr", self.otlp_http_addr.0),
        ];
        let otlp = otlp
            .into_iter()
            .filter_map(|(name, addr)| Some((name, addr?)));
        for (name, addr) in [("listen", self.listen), ("http-listen", self.http_listen)]
            .into_iter()
            .chain(otlp)
        {
            if !addr.ip().is_loopback() {
                return Err(ServerError::Config(format!(
                    "refusing to serve {name} = {addr}, a non-loopback address, without TLS \
                     and without authentication: set tls-cert and tls-key (TLS), and \
                     tls-client-ca (client certificates) to authenticate writers; or pass \
                     --insecure (insecure = true) to accept plaintext, unauthenticated access"
                )));
            }
        }
        Ok(())
    }

    /// Whether clients must authenticate: with a client certificate from
    /// `tls-client-ca`, or as a principal of the tokens file or a
    /// `[[principal]]` table.
    pub fn has_authentication(&self) -> bool {
        self.tls_client_ca.is_some() || self.auth_enabled()
    }

    /// The TLS files of the gRPC and tiles HTTP ports, if TLS is configured.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return None;
        };
        Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: self.tls_client_ca.clone(),
            // With tokens or principal tables a caller may bring a token instead
            // of a certificate (a presented certificate is still verified, and
            // the access-control layer refuses a caller without either);
            // otherwise the certificate is the only credential and is required.
            client_auth: if self.auth_enabled() {
                ClientAuth::Optional
            } else {
                ClientAuth::Required
            },
        })
    }

    /// True if callers must authenticate: a tokens file or `[[principal]]`
    /// tables are configured. Without it every caller is the principal
    /// `anonymous` with every role.
    pub fn auth_enabled(&self) -> bool {
        self.tokens_file.is_some() || !self.principal.is_empty()
    }

    fn default_limit_values(&self) -> LimitValues {
        LimitValues {
            entries_per_second: self.principal_entries_per_second,
            entries_burst: self.principal_entries_burst,
            bytes_per_second: self.principal_bytes_per_second,
            bytes_burst: self.principal_bytes_burst,
            max_streams: self.principal_max_streams,
        }
    }

    /// The limits of principals without a `[[principal]]` table.
    pub(crate) fn default_limits(&self) -> Result<PrincipalLimits, ServerError> {
        self.default_limit_values().resolve(
            "principal-* limits",
            self.max_entries_per_call,
            self.max_entry_bytes,
        )
    }

    /// The limits of the principal of one `[[principal]]` table.
    pub(crate) fn limits_of(
        &self,
        table: &PrincipalConfig,
    ) -> Result<PrincipalLimits, ServerError> {
        LimitValues::from(table)
            .over(self.default_limit_values())
            .resolve(
                &format!("[[principal]] {}", table.name),
                self.max_entries_per_call,
                self.max_entry_bytes,
            )
    }

    /// The sequencer's configuration.
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            max_batch_entries: self.max_batch_entries,
            max_batch_wait: self.max_batch_wait.get(),
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
    use crate::Cli;

    /// Resolves `args` over a config file holding `file` (if any).
    fn load(args: &[&str], file: Option<&str>) -> Result<ServerConfig, ServerError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("merklogd.toml");
        let mut argv = vec!["merklogd".to_owned()];
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
            argv.extend(["--config".to_owned(), path.to_str().unwrap().to_owned()]);
        }
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        Cli::try_load_from(argv).map(|cli| cli.settings)
    }

    #[test]
    fn defaults_are_the_embedded_ones() {
        let config = load(&[], None).unwrap();
        assert_eq!(config, ServerConfig::default());
        assert_eq!(config.data_dir, PathBuf::from("./merklog-data"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:7800");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:7801");
        assert_eq!(config.metrics_listen.to_string(), "127.0.0.1:7802");
        assert_eq!(config.max_entry_bytes, 65_535);
        assert_eq!(config.max_entries_per_call, 256);
        assert_eq!(config.max_batch_wait.get(), Duration::ZERO);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.origin, None);
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let file = r#"
            data-dir = "/from/file"
            listen = "127.0.0.1:9000"
            http-listen = "127.0.0.1:9001"
            origin = "file.example/log"
            max-batch-wait = "3ms"
            log-format = "json"
            "#;
        let config = load(
            &["--data-dir", "/from/flag", "--listen", "127.0.0.1:0"],
            Some(file),
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:9001");
        assert_eq!(config.metrics_listen.to_string(), "127.0.0.1:7802");
        assert_eq!(config.origin.as_deref(), Some("file.example/log"));
        assert_eq!(config.max_batch_wait.get(), Duration::from_millis(3));
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn file_typos_and_bad_values_are_refused_by_name() {
        let err = load(&[], Some("data_dir = \"x\"")).unwrap_err().to_string();
        assert!(err.contains("data_dir"), "{err}");
        let err = load(&[], Some("listen = \"nowhere\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`listen`"), "{err}");
        // The old unit-suffixed key is gone: durations carry their unit.
        let err = load(&[], Some("max-batch-wait-ms = 3"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max-batch-wait-ms"), "{err}");
        let err = load(&[], Some("max-batch-wait = 3"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`max-batch-wait`"), "{err}");
        let err = load(&["--log-format", "xml"], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--log-format"), "{err}");
        let err = load(&["--witness-timeout", "5"], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--witness-timeout") && err.contains("500ms, 5s"),
            "{err}"
        );
        let err = load(&[], Some("witness-timeout = \"5 fortnights\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`witness-timeout`"), "{err}");
    }

    #[test]
    fn inconsistent_limits_are_refused() {
        let err = load(&["--max-entry-bytes", "65536"], None).unwrap_err();
        assert!(err.to_string().contains("max_entry_bytes"), "{err}");

        let err = load(
            &["--max-entries-per-call", "100", "--max-batch-entries", "50"],
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("max-entries-per-call"), "{err}");

        assert!(load(&["--origin", "has space"], None).is_err());
    }

    #[test]
    fn log_config_carries_the_knobs() {
        let config = load(
            &[
                "--max-batch-entries",
                "1000",
                "--max-batch-wait",
                "5ms",
                "--queue-capacity",
                "4000",
            ],
            None,
        )
        .unwrap();
        let log = config.log_config();
        assert_eq!(log.max_batch_entries, 1000);
        assert_eq!(log.max_batch_wait, Duration::from_millis(5));
        assert_eq!(log.queue_capacity, 4000);
    }

    #[test]
    fn witness_settings_merge_and_zero_is_refused() {
        let file = r#"
            policy = "/etc/merklog/policy.txt"
            witness-timeout = "2s"
            fail-open-after = "5m"
            witness-refusal-limit = 5
            "#;
        let config = load(
            &["--witness-timeout", "750ms", "--append-timeout", "3s"],
            Some(file),
        )
        .unwrap();
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
        assert_eq!(config.witness_refusal_limit, 5);
        assert_eq!(
            load(&[], None).unwrap().witness_refusal_limit,
            merklog_log::DEFAULT_WITNESS_REFUSAL_LIMIT
        );
        let err = load(&["--witness-refusal-limit", "0"], None).unwrap_err();
        assert!(err.to_string().contains("witness-refusal-limit"), "{err}");
        assert!(
            config.log_config().witnessing.is_none(),
            "added by Server::open"
        );

        for flag in ["--witness-timeout", "--append-timeout", "--fail-open-after"] {
            let err = load(&[flag, "0ms"], None).unwrap_err();
            assert!(
                err.to_string().contains("must be positive"),
                "{flag}: {err}"
            );
        }
    }

    #[test]
    fn tls_settings_and_the_exposure_check() {
        let config = load(
            &[
                "--tls-cert",
                "/tls/cert.pem",
                "--tls-key",
                "/tls/key.pem",
                "--tls-reload-interval",
                "30s",
            ],
            Some("tls-client-ca = \"/tls/ca.pem\"\nwitness-ca-cert = \"/tls/w.pem\"\n"),
        )
        .unwrap();
        assert!(config.has_authentication());
        let files = config.tls_files().unwrap();
        assert_eq!(files.cert, PathBuf::from("/tls/cert.pem"));
        assert_eq!(files.client_ca, Some(PathBuf::from("/tls/ca.pem")));
        assert_eq!(files.client_auth, ClientAuth::Required);
        assert_eq!(config.tls_reload_interval.get(), Duration::from_secs(30));
        assert_eq!(config.witness_ca_cert, Some(PathBuf::from("/tls/w.pem")));
        assert!(!load(&[], None).unwrap().has_authentication());
        assert!(load(&[], None).unwrap().tls_files().is_none());
        // With tokens a caller may bring a token instead of a certificate.
        let with_tokens = load(
            &[
                "--tls-cert",
                "/c",
                "--tls-key",
                "/k",
                "--tls-client-ca",
                "/ca",
            ],
            Some("tokens-file = \"/tokens\"\n"),
        )
        .unwrap();
        assert_eq!(
            with_tokens.tls_files().unwrap().client_auth,
            ClientAuth::Optional
        );
        // A tokens file is authentication: a wider address needs no --insecure.
        assert!(
            load(
                &["--listen", "0.0.0.0:7800"],
                Some("tokens-file = \"/tokens\"\n")
            )
            .unwrap()
            .has_authentication()
        );

        for (args, needle) in [
            (&["--tls-cert", "/c"][..], "without tls-key"),
            (&["--tls-key", "/k"][..], "without tls-cert"),
            (&["--tls-client-ca", "/ca"][..], "tls-client-ca needs TLS"),
            (
                &[
                    "--tls-cert",
                    "/c",
                    "--tls-key",
                    "/k",
                    "--tls-reload-interval",
                    "0s",
                ][..],
                "tls-reload-interval must be positive",
            ),
        ] {
            let err = load(args, None).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }

        // Loopback (v4 or v6) is fine; a wider gRPC or tiles address needs TLS,
        // authentication or --insecure. The metrics port is not checked.
        for listen in ["127.0.0.1:0", "[::1]:0"] {
            load(&["--listen", listen], None).unwrap();
        }
        load(&["--metrics-listen", "0.0.0.0:0"], None).unwrap();
        for flag in [
            "--listen",
            "--http-listen",
            "--otlp-grpc-addr",
            "--otlp-http-addr",
        ] {
            let err = load(&[flag, "0.0.0.0:7800"], None).unwrap_err().to_string();
            for needle in ["0.0.0.0:7800", "tls-cert", "tls-client-ca", "--insecure"] {
                assert!(err.contains(needle), "{flag}: {needle}: {err}");
            }
            load(&[flag, "0.0.0.0:7800", "--insecure"], None).unwrap();
            load(&[flag, "0.0.0.0:7800"], Some("insecure = true\n")).unwrap();
            load(
                &[flag, "0.0.0.0:7800", "--tls-cert", "/c", "--tls-key", "/k"],
                None,
            )
            .unwrap();
        }
    }

    #[test]
    fn access_settings_and_principal_tables() {
        let file = r#"
            tokens-file = "/etc/merklog/tokens"
            read-access = "authenticated"
            principal-entries-per-second = 1000
            max-entries-per-call = 100

            [[principal]]
            name = "spiffe://prod.example/collector"
            roles = ["append", "read"]
            entries-per-second = 10
            entries-burst = 100
            "#;
        let config = load(&["--principal-max-streams", "4"], Some(file)).unwrap();
        assert!(config.auth_enabled());
        assert_eq!(config.read_access, ReadAccess::Authenticated);
        assert_eq!(config.principal.len(), 1);
        let limits = config.limits_of(&config.principal[0]).unwrap();
        let entries = limits.entries.unwrap();
        assert_eq!((entries.per_second.get(), entries.burst.get()), (10, 100));
        assert_eq!(limits.max_streams.map(|n| n.get()), Some(4));
        let defaults = config.default_limits().unwrap();
        assert_eq!(defaults.entries.unwrap().burst.get(), 1000);
        assert!(defaults.bytes.is_none());
        assert!(!ServerConfig::default().auth_enabled());

        for (bad, needle) in [
            ("[[principal]]\nname = \"a b\"\n", "principal"),
            (
                "[[principal]]\nname = \"x\"\nroles = [\"write\"]\n",
                "write",
            ),
            (
                "[[principal]]\nname = \"x\"\n[[principal]]\nname = \"x\"\n",
                "twice",
            ),
            (
                "[[principal]]\nname = \"x\"\nentries-burst = 5\n",
                "needs a rate",
            ),
            ("principal-entries-per-second = 10\n", "at least 256"),
            ("principal-bytes-per-second = 0\n", "positive"),
            ("[[principal]]\nname = \"x\"\nspeed = 1\n", "speed"),
        ] {
            let err = load(&[], Some(bad)).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn otlp_listeners_and_schema_mode() {
        let config = load(&[], None).unwrap();
        assert_eq!(config.otlp_grpc_addr.to_string(), "127.0.0.1:4317");
        assert_eq!(config.otlp_http_addr.to_string(), "127.0.0.1:4318");
        assert_eq!(config.schema, None);
        let config = load(
            &["--otlp-http-addr", "127.0.0.1:9318"],
            Some("otlp-grpc-addr = \"off\"\nschema = \"ai-audit/v1\"\n"),
        )
        .unwrap();
        assert_eq!(config.otlp_grpc_addr, OtlpListen(None));
        assert_eq!(config.otlp_http_addr.to_string(), "127.0.0.1:9318");
        assert_eq!(config.schema, Some(Schema::AiAuditV1));
        let err = load(&["--schema", "ai-audit/v9"], None).unwrap_err();
        assert!(err.to_string().contains("ai-audit/v9"), "{err}");
        let err = load(&["--otlp-grpc-addr", "nowhere"], None).unwrap_err();
        assert!(err.to_string().contains("nowhere"), "{err}");
    }
}

#[cfg(test)]
mod receipt_settings_tests {
    use super::*;
    use crate::Cli;

    fn load(args: &[&str], file: Option<&str>) -> Result<ServerConfig, ServerError> {
        let dir = tempfile::tempdir().unwrap();
        let mut argv = vec!["merklogd".to_owned()];
        if let Some(text) = file {
            let path = dir.path().join("merklogd.toml");
            std::fs::write(&path, text).unwrap();
            argv.push("--config".to_owned());
            argv.push(path.display().to_string());
        }
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let config = Cli::try_load_from(argv)?.settings;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn receipt_algorithm_and_issuers() {
        assert_eq!(
            load(&[], None).unwrap().receipt_algorithm,
            ReceiptAlgorithm::Ed25519
        );
        assert_eq!(
            load(&["--receipt-algorithm", "es256"], None)
                .unwrap()
                .receipt_algorithm,
            ReceiptAlgorithm::Es256
        );
        let key = "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
        let file = format!(
            "receipt-algorithm = \"es256\"\n[[scitt-issuer]]\nname = \"https://issuer.example\"\nkey = \"{key}\"\n"
        );
        let config = load(&[], Some(&file)).unwrap();
        assert_eq!(config.receipt_algorithm, ReceiptAlgorithm::Es256);
        assert_eq!(config.scitt_issuer[0].name, "https://issuer.example");

        let twice =
            format!("{file}[[scitt-issuer]]\nname = \"https://issuer.example\"\nkey = \"{key}\"\n");
        let err = load(&[], Some(&twice)).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
        let bad = "[[scitt-issuer]]\nname = \"x\"\nkey = \"ed25519:AAAA\"\n";
        let err = load(&[], Some(bad)).unwrap_err().to_string();
        assert!(
            err.contains("scitt-issuer") && err.contains("\"x\""),
            "{err}"
        );
    }
}
