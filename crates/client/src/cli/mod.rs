//! The `merklog` command line: argument definitions and the [`run`] entry point.
//!
//! Exit codes: [`EXIT_OK`] (0) success; [`EXIT_VERIFICATION_FAILED`] (1) a
//! checkpoint, proof, entry or the log's history failed verification (the
//! evidence is printed); [`EXIT_ERROR`] (2) a usage, I/O or network error
//! (nothing was shown to be wrong with the log).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::{ClientError, DEFAULT_SERVER};

mod alerts;
mod append;
mod commands;
mod context;
mod emit;
mod evidence;
mod input;
mod output;
mod query;
mod receipt;
mod source;

pub use alerts::{AlertsCommand, AlertsWatchArgs};
pub use emit::EmitArgs;
pub use evidence::{EvidenceCommand, EvidenceExportArgs, EvidenceVerifyArgs};
pub use query::QueryArgs;
pub use source::{
    SourceAuditArgs, SourceCommand, SourceKeyCommand, SourceKeyGenerateArgs, SourceStatusArgs,
};

/// Success.
pub const EXIT_OK: u8 = 0;
/// A verification failure: the server, a checkpoint or a proof is not to be trusted.
pub const EXIT_VERIFICATION_FAILED: u8 = 1;
/// A usage, I/O or network error.
pub const EXIT_ERROR: u8 = 2;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  verification failure: a signature, proof, entry or the log's history did not
     verify (the evidence is printed; with --json also as JSON on stdout)
     (`merklog health`: the server answered, but not SERVING)
  2  usage, configuration, file or network error, or a refusal by the log: nothing was
     shown to be wrong with the log. This includes a log key that belongs to another
     log, an unreachable server, retries that ran out (--retries, --retry-for), and
     FAILED_PRECONDITION, a log that refuses to sign (a witness froze it after seeing
     a fork, or its data does not match what it signed) until an operator acts, which
     is not retried

Connections: --connect-timeout bounds connecting, --timeout each call (and on a
stream each expected answer), so no command waits forever on a server that does not
answer. Appends answered UNAVAILABLE or RESOURCE_EXHAUSTED (such as \"waiting for
witness quorum\": the entries are durable, not yet published) are retried with
backoff, with a progress line on stderr for each retry; appending the same entries
again is always safe, an entry already in the log comes back with its index.

Every checkpoint is verified with the log key, every proof is checked, and the last
verified checkpoint of each log is kept in the state file, so a log that rolls back or
forks is caught even across runs.";

/// `merklog`: submit events to a merklog log, fetch proofs, and verify everything,
/// online or offline.
#[derive(Debug, Parser)]
#[command(
    name = "merklog",
    version,
    about = "Verifying client of a merklog transparency log",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// The log server's gRPC address (`http://host:port` or `https://host:port`;
    /// a bare `host:port` means http).
    #[arg(long, global = true, env = "MERKLOG_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub server: String,

    /// The log's verifier key: the key text (`<origin>+<id>+<base64>`) or a file
    /// holding it, such as `<data-dir>/log.vkey`.
    #[arg(long, global = true, env = "MERKLOG_LOG_KEY", value_name = "VKEY|FILE")]
    pub log_key: Option<String>,

    /// A tlog-policy file: checkpoints must carry its witness quorum's
    /// cosignatures (its `log` line is used when --log-key is absent).
    #[arg(long, global = true, env = "MERKLOG_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Where the last verified checkpoint of each log is kept [default:
    /// $XDG_STATE_HOME/merklog/state.json or ~/.local/state/merklog/state.json].
    #[arg(long, global = true, env = "MERKLOG_STATE_FILE", value_name = "FILE")]
    pub state_file: Option<PathBuf>,

    /// PEM file of the CA certificate(s) an https:// server's certificate must
    /// chain to (a private CA) [default: the public web roots].
    #[arg(long, global = true, env = "MERKLOG_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate chain to present to an https:// server (mutual
    /// TLS); needs --client-key.
    #[arg(long, global = true, env = "MERKLOG_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(long, global = true, env = "MERKLOG_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<PathBuf>,

    /// Do not read or write the state file (rollbacks across runs go unnoticed).
    #[arg(long, global = true)]
    pub no_state: bool,

    /// A file holding the bearer token sent on every call (the token itself
    /// can come only from the environment, MERKLOG_TOKEN: a command line is
    /// visible to every user of the machine).
    #[arg(long, global = true, env = "MERKLOG_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Machine-readable output: JSON on stdout (one object per line for streams).
    #[arg(long, global = true)]
    pub json: bool,

    /// How long to wait for the connection to the server.
    #[arg(long, global = true, env = "MERKLOG_CONNECT_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub connect_timeout: std::time::Duration,

    /// How long to wait for the answer to each call (on a stream: for each
    /// expected answer); a server that accepts but does not answer fails after it.
    #[arg(long, global = true, env = "MERKLOG_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub timeout: std::time::Duration,

    /// How often to retry an append answered UNAVAILABLE or RESOURCE_EXHAUSTED
    /// (such as "waiting for witness quorum"); 0 never retries.
    #[arg(
        long,
        global = true,
        env = "MERKLOG_RETRIES",
        value_name = "N",
        default_value_t = 8
    )]
    pub retries: u32,

    /// Retry such appends for this long instead of a number of times (e.g. 5m).
    #[arg(long, global = true, env = "MERKLOG_RETRY_FOR", value_name = "DURATION", value_parser = parse_duration)]
    pub retry_for: Option<std::time::Duration>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Key management.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Append entries and verify every acknowledgement (inclusion proof,
    /// checkpoint signature, consistency with what was seen before).
    Append(AppendArgs),
    /// Fetch, verify and print the log's latest checkpoint.
    Checkpoint(CheckpointArgs),
    /// Fetch and verify an entry's inclusion proof and write it as a tlog-proof file.
    Prove(ProveArgs),
    /// Verify a tlog-proof file for an entry, offline (no network connection).
    Verify(VerifyArgs),
    /// Fetch and verify a consistency proof between two checkpoints.
    Consistency(ConsistencyArgs),
    /// Follow the log: verify each new checkpoint and print the new entries.
    Watch(WatchArgs),
    /// Download every entry, rebuild the tree and compare with the signed root.
    Audit(AuditArgs),
    /// Ask the server's gRPC health service whether it serves: exit 0 when
    /// SERVING, 1 for any other answer (NOT_SERVING: it refuses to sign or its
    /// storage is damaged), 2 when it cannot be reached. Needs no log key; a
    /// container or load balancer health check.
    Health(HealthArgs),
    /// Check a log through its tlog-tiles HTTP API: --server is the tiles address
    /// here (such as http://127.0.0.1:7801). Verifies the checkpoint, recomputes
    /// every hash tile from the entry bundles and compares it with the served one,
    /// and the root with the signed one; the first bad tile is named (exit 1). For
    /// a data directory on disk use `merklogd fsck --data-dir DIR`.
    Fsck(FsckArgs),
    /// Signed sources: keys, status, and the audit of a source's events.
    #[command(subcommand)]
    Source(SourceCommand),
    /// Sign each input line as an event of a source, journal it in a spool and
    /// send it (follows files like a log shipper).
    Emit(EmitArgs),
    /// Evidence packs for auditors: export a source's events with every proof, and
    /// verify a pack offline.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Find audit events by actor, model, action, source and time, each verified
    /// in the log (what this does and does not prove: `merklog query --help`).
    Query(QueryArgs),
    /// Alerts raised by the log's rules: `merklog alerts watch` prints them as
    /// they come.
    #[command(subcommand)]
    Alerts(AlertsCommand),
}

/// `merklog fsck`
#[derive(Debug, Args)]
pub struct FsckArgs {}

/// `merklog health`
#[derive(Debug, Args)]
pub struct HealthArgs {}

/// `merklog key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a signer key file (mode 0600) and its verifier key file.
    Generate(KeyGenerateArgs),
}

/// `merklog key generate`
#[derive(Debug, Args)]
pub struct KeyGenerateArgs {
    /// The key name: for a log key, the log's origin (e.g. `example.com/log`).
    #[arg(long, value_name = "ORIGIN")]
    pub name: String,
    /// The signer key file to create (never overwritten); the verifier key goes
    /// next to it with the extension `.vkey` [default: ./NAME.key, with
    /// characters other than letters, digits, `.`, `-`, `_` replaced by `_`].
    /// Use `<data-dir>/log.key` to give merklogd a key before its first start.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Generate a witness cosigning key (tlog-cosignature, type 0x04) instead of
    /// a log key.
    #[arg(long)]
    pub witness: bool,
}

/// `merklog append`
#[derive(Debug, Args)]
#[command(after_help = "\
With neither ENTRY arguments nor --file, entries are read from stdin, one per line: an \
entry is exactly the line's bytes without its newline (a JSON line is not re-serialised, \
so `verify --entry` reproduces its leaf hash). Empty lines are skipped.

Arguments and files are all checked before anything is sent. Stdin is streamed: at a \
line the log cannot take (empty after all, or over 65,535 bytes) nothing more is sent, \
the receipts of every line before it are printed, and the command fails (exit 2) naming \
that line: every line before it is in the log, none from it on was sent. With --json the \
last line on stdout says the same (`ok`, `acknowledged`, `first_unsent_line`).

Identical entries are stored once: appending bytes that are already in the log returns \
the existing index (reported as `duplicate`). To record two real events that look the \
same, make them differ, e.g. with an event id or a timestamp.")]
pub struct AppendArgs {
    /// Entries to append, each argument's UTF-8 bytes one entry.
    #[arg(value_name = "ENTRY")]
    pub entries: Vec<String>,
    /// Append a file's whole content as one entry (repeatable).
    #[arg(long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Save each entry's tlog-proof as DIR/INDEX.tlog-proof.
    #[arg(long, value_name = "DIR")]
    pub proof_dir: Option<PathBuf>,
    /// Entries per request (at most the server's max-entries-per-call).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch_size: u32,
    /// Requests in flight at once when streaming.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub window: u32,
}

/// `merklog checkpoint`
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Also write the signed checkpoint note to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `merklog prove`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("leaf").required(true).args(["index", "hash", "entry"])))]
pub struct ProveArgs {
    /// The entry's index.
    #[arg(value_name = "INDEX")]
    pub index: Option<u64>,
    /// The entry's leaf hash, SHA-256(0x00 || entry), hex or base64.
    #[arg(long, value_name = "HASH")]
    pub hash: Option<String>,
    /// A file holding the entry's exact bytes.
    #[arg(long, value_name = "FILE")]
    pub entry: Option<PathBuf>,
    /// Where to write the tlog-proof (`-` for stdout) [default: ./INDEX.tlog-proof,
    /// or ./INDEX.cose with --format cose].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// What to write: a C2SP tlog-proof, or `cose`, an RFC 9942 COSE receipt signed by
    /// the log's receipt key (verified here first).
    #[arg(long, value_enum, default_value_t = ProveFormat::TlogProof)]
    pub format: ProveFormat,
    /// With --format cose: the receipt public key to pin (`ed25519:<base64>` or
    /// `es256:<base64>`, or a file holding it, such as the server's receipt.pub).
    /// Without it the key the server sends verifies the receipt (reported unpinned).
    #[arg(long, value_name = "KEY")]
    pub receipt_key: Option<String>,
}

/// `merklog prove --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProveFormat {
    /// c2sp.org/tlog-proof@v1.
    TlogProof,
    /// A COSE receipt (RFC 9942, RFC9162_SHA256).
    Cose,
}

/// `merklog verify`
#[derive(Debug, Args)]
#[command(after_help = "\
Fully offline: this command opens no network connection. It needs the log's key \
(--log-key) or a policy naming the log (--policy); with --policy the checkpoint must \
also carry the policy's witness quorum.")]
pub struct VerifyArgs {
    /// The tlog-proof file (c2sp.org/tlog-proof@v1).
    #[arg(value_name = "PROOF")]
    pub proof: PathBuf,
    /// A file holding the entry's exact bytes (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub entry: PathBuf,
}

/// `merklog consistency`
#[derive(Debug, Args)]
pub struct ConsistencyArgs {
    /// The older checkpoint: a tree size, or a file holding a signed checkpoint.
    #[arg(value_name = "OLD")]
    pub old: String,
    /// The newer checkpoint: a tree size, or a file holding a signed checkpoint
    /// [default: the latest checkpoint].
    #[arg(value_name = "NEW")]
    pub new: Option<String>,
}

/// `merklog watch`
#[derive(Debug, Args)]
#[command(after_help = "\
Starts from the last verified checkpoint of the state file: the entries added since \
then (while no watch ran) are fetched, verified and printed first. --from INDEX starts \
at that entry instead. When the server goes away or restarts, it reconnects with \
backoff (a line on stderr each time) and carries on from the last verified \
checkpoint, so no entry is skipped.

Stops with exit code 1 and the evidence at the first checkpoint that fails \
verification, is inconsistent with an earlier one, or whose entries do not rebuild \
its root. Stops with 0 after --max-updates new checkpoints or after --stop-after.")]
pub struct WatchArgs {
    /// Stop after this many new checkpoints (not counting the current one).
    #[arg(long, value_name = "N")]
    pub max_updates: Option<u64>,
    /// Stop after this long, with units: 500ms, 30s, 2m, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stop_after: Option<std::time::Duration>,
    /// Print (and verify) every entry from this index on, then follow the log.
    #[arg(long, value_name = "INDEX")]
    pub from: Option<u64>,
    /// Only the current checkpoint and what follows, not the entries added since
    /// the last verified checkpoint.
    #[arg(long, conflicts_with = "from")]
    pub no_resume: bool,
    /// Exit (code 2) when the connection is lost instead of reconnecting.
    #[arg(long)]
    pub no_reconnect: bool,
    /// Do not print entries, only checkpoints.
    #[arg(long)]
    pub no_entries: bool,
}

/// `merklog audit`
#[derive(Debug, Args)]
pub struct AuditArgs {}

/// A duration with units, as the daemons write theirs (`500ms`, `30s`, `1h30m`).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}): write e.g. 500ms, 5s, 2m or 1h30m"))
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("merklog: error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let json = cli.json;
    match runtime.block_on(commands::execute(cli)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(error) => report(&error, json),
    }
}

/// Prints an error (and its evidence) and picks the exit code.
fn report(error: &ClientError, json: bool) -> ExitCode {
    let verification = error.is_verification_failure();
    let evidence = error.evidence();
    if verification {
        eprintln!("merklog: VERIFICATION FAILED: {error}");
    } else {
        eprintln!("merklog: error: {error}");
    }
    if let Some(evidence) = &evidence {
        eprint!("{evidence}");
    }
    if json {
        output::print_json(&serde_json::json!({
            "ok": false,
            "verification_failure": verification,
            "error": error.to_string(),
            "evidence": evidence,
        }));
    }
    ExitCode::from(
        if verification || matches!(error, ClientError::NotServing { .. }) {
            EXIT_VERIFICATION_FAILED
        } else {
            EXIT_ERROR
        },
    )
}
