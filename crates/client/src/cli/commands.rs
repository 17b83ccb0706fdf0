//! What each command does.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;
use merklog_merkle::{LeafIndex, TreeSize, hash_leaf};
use merklog_note::{MAX_NOTE_SIZE, MAX_PROOF_SIZE, Policy, keyfile};
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;

use super::input::{collect_entries, read_file, spawn_line_reader};
use super::output::{
    checkpoint_json, entry_json, entry_text, print_json, print_line, progress_bar,
};
use super::source::Session;
use super::{
    AppendArgs, AuditArgs, CheckpointArgs, Cli, Command, ConsistencyArgs, FsckArgs, HealthArgs,
    KeyCommand, KeyGenerateArgs, ProveArgs, SourceCommand, SourceKeyCommand, VerifyArgs, WatchArgs,
};
use crate::encoding::b64;
use crate::error::human_duration;
use crate::state::write_atomically;
use crate::{
    AppendReceipt, BearerToken, Client, ClientError, ClientOptions, ClientTls, RetryNotice,
    SignedCheckpoint, StateFile, StreamOptions, TrustedLog, WatchOptions, code_name,
    default_state_path, load_verifier_key, offline, parse_hash,
};

/// Policy files larger than this are refused.
const MAX_POLICY_FILE_LEN: u64 = MAX_NOTE_SIZE as u64;
/// Entry files given to `verify` and `prove --entry` larger than this are refused.
const MAX_ENTRY_FILE_LEN: u64 = 16 << 20;

/// The options every command shares.
/// The environment variable holding the bearer token.
const TOKEN_ENV: &str = "MERKLOG_TOKEN";

/// Largest token file read.
const MAX_TOKEN_FILE_LEN: u64 = 4096;

struct Context {
    server: String,
    log_key: Option<String>,
    policy: Option<PathBuf>,
    state_file: Option<PathBuf>,
    no_state: bool,
    json: bool,
    tls: ClientTls,
    token_file: Option<PathBuf>,
    connect_timeout: Duration,
    timeout: Duration,
    retries: u32,
    retry_for: Option<Duration>,
}

impl Context {
    fn policy(&self) -> Result<Option<Policy>, ClientError> {
        let Some(path) = &self.policy else {
            return Ok(None);
        };
        let bytes = read_file(path, MAX_POLICY_FILE_LEN)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ClientError::Input(format!("{} is not UTF-8", path.display())))?;
        Policy::parse(&text)
            .map(Some)
            .map_err(|e| ClientError::Input(format!("policy {}: {e}", path.display())))
    }

    fn log_key(&self) -> Result<Option<merklog_note::Ed25519Verifier>, ClientError> {
        self.log_key.as_deref().map(load_verifier_key).transpose()
    }

    fn trust(&self) -> Result<TrustedLog, ClientError> {
        match (self.log_key()?, self.policy()?) {
            (Some(key), policy) => Ok(TrustedLog::new(key, policy)),
            (None, Some(policy)) => TrustedLog::from_policy(policy),
            (None, None) => Err(ClientError::Input(
                "the log's verifier key is needed: --log-key (or MERKLOG_LOG_KEY) with the key \
                 text or a file such as merklog-data/log.vkey"
                    .into(),
            )),
        }
    }

    fn state(&self) -> Option<StateFile> {
        if self.no_state {
            return None;
        }
        let path = self.state_file.clone().or_else(default_state_path);
        if path.is_none() {
            eprintln!(
                "merklog: warning: no state file (HOME and XDG_STATE_HOME are unset); \
                 rollbacks across runs go unnoticed. Use --state-file."
            );
        }
        path.map(StateFile::new)
    }

    /// The bearer token: from `--token-file` / MERKLOG_TOKEN_FILE, or from the
    /// environment variable MERKLOG_TOKEN (never a flag: argv is public); both
    /// at once is an error.
    fn token(&self) -> Result<Option<BearerToken>, ClientError> {
        let from_env = std::env::var_os(TOKEN_ENV).filter(|v| !v.is_empty());
        match (&self.token_file, from_env) {
            (Some(_), Some(_)) => Err(ClientError::Input(format!(
                "both --token-file and {TOKEN_ENV} are set; use one"
            ))),
            (Some(path), None) => {
                let bytes = read_file(path, MAX_TOKEN_FILE_LEN)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| ClientError::Input(format!("{} is not UTF-8", path.display())))?;
                BearerToken::new(&text).map(Some)
            }
            (None, Some(value)) => {
                let text = value
                    .into_string()
                    .map_err(|_| ClientError::Input(format!("{TOKEN_ENV} is not UTF-8")))?;
                BearerToken::new(&text).map(Some)
            }
            (None, None) => Ok(None),
        }
    }

    /// The connection settings from the global flags.
    fn client_options(&self) -> Result<ClientOptions, ClientError> {
        for (flag, value) in [
            ("--connect-timeout", self.connect_timeout),
            ("--timeout", self.timeout),
        ] {
            if value.is_zero() {
                return Err(ClientError::Input(format!(
                    "{flag} must be more than 0 (a call that may not take any time always fails)"
                )));
            }
        }
        Ok(ClientOptions {
            connect_timeout: self.connect_timeout,
            request_timeout: self.timeout,
            append_retries: self.retries,
            retry_for: self.retry_for,
            tls: self.tls.clone(),
            token: self.token()?,
            ..ClientOptions::default()
        })
    }

    /// What the signed-source commands need.
    fn session(&self) -> Result<Session, ClientError> {
        Ok(Session {
            server: self.server.clone(),
            trust: self.trust()?,
            options: self.client_options()?,
            state: self.state(),
            json: self.json,
        })
    }

    async fn connect(&self) -> Result<Client, ClientError> {
        let trust = self.trust()?;
        let options = self.client_options()?;
        Client::connect(&self.server, trust, self.state(), options).await
    }
}

/// The progress line of a retry, for people waiting on stderr.
fn retry_line(notice: &RetryNotice) -> String {
    let budget = match (notice.max_attempts, notice.remaining) {
        (Some(max), _) => format!("attempt {} of {max}", notice.attempt),
        (None, Some(remaining)) => format!(
            "attempt {}, retrying for {} more",
            notice.attempt,
            human_duration(remaining)
        ),
        (None, None) => format!("attempt {}", notice.attempt),
    };
    format!(
        "merklog: {}: {} ({}); {budget} failed, next in {}",
        notice.rpc,
        notice.status.message(),
        code_name(notice.status.code()),
        human_duration(notice.delay)
    )
}

/// Saves what was verified (also after a failure: the state then holds the last
/// checkpoint that did verify), then returns the command's result.
fn finish<T>(client: &mut Client, result: Result<T, ClientError>) -> Result<T, ClientError> {
    let saved = client.save_state();
    let value = result?;
    saved?;
    Ok(value)
}

/// Runs one command.
pub(super) async fn execute(cli: Cli) -> Result<(), ClientError> {
    let context = Context {
        server: cli.server,
        log_key: cli.log_key,
        policy: cli.policy,
        state_file: cli.state_file,
        no_state: cli.no_state,
        json: cli.json,
        tls: ClientTls {
            ca_cert: cli.ca_cert,
            client_cert: cli.client_cert,
            client_key: cli.client_key,
        },
        token_file: cli.token_file,
        connect_timeout: cli.connect_timeout,
        timeout: cli.timeout,
        retries: cli.retries,
        retry_for: cli.retry_for,
    };
    match cli.command {
        Command::Key(KeyCommand::Generate(args)) => key_generate(&context, args),
        Command::Verify(args) => verify(&context, args),
        Command::Append(args) => append(&context, args).await,
        Command::Checkpoint(args) => checkpoint(&context, args).await,
        Command::Prove(args) => prove(&context, args).await,
        Command::Consistency(args) => consistency(&context, args).await,
        Command::Watch(args) => watch(&context, args).await,
        Command::Audit(args) => audit(&context, args).await,
        Command::Health(args) => health(&context, args).await,
        Command::Fsck(args) => fsck(&context, args).await,
        Command::Source(SourceCommand::Key(SourceKeyCommand::Generate(args))) => key_generate(
            &context,
            KeyGenerateArgs {
                name: args.name,
                key_file: args.out,
                witness: false,
            },
        ),
        Command::Source(SourceCommand::Status(args)) => {
            super::source::status(context.session()?, args).await
        }
        Command::Source(SourceCommand::Audit(args)) => {
            super::source::audit(context.session()?, args).await
        }
        Command::Emit(args) => super::emit::execute(context.session()?, args).await,
    }
}

/// "1 entry", "2 entries".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A file name made from a key name.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn key_generate(context: &Context, args: KeyGenerateArgs) -> Result<(), ClientError> {
    let key_file = args
        .key_file
        .unwrap_or_else(|| PathBuf::from(format!("{}.key", file_stem(&args.name))));
    let vkey_file = key_file.with_extension("vkey");
    if vkey_file.exists() {
        return Err(ClientError::Input(format!(
            "{} already exists; not overwriting it",
            vkey_file.display()
        )));
    }
    if let Some(parent) = key_file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ClientError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    let bad_key = |e: merklog_note::NoteError| ClientError::Input(format!("key: {e}"));
    let (signer, vkey) = if args.witness {
        merklog_note::generate_cosigner(&args.name).map_err(bad_key)?
    } else {
        merklog_note::generate_ed25519(&args.name).map_err(bad_key)?
    };
    keyfile::write_signer_key(&key_file, &signer).map_err(|e| match e {
        merklog_note::NoteError::KeyFileIo { path, source } => ClientError::Io { path, source },
        other => bad_key(other),
    })?;
    let io = |source| ClientError::Io {
        path: vkey_file.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&vkey_file)
        .map_err(io)?;
    std::io::Write::write_all(&mut file, format!("{vkey}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    if context.json {
        print_json(&json!({
            "name": args.name,
            "kind": if args.witness { "witness" } else { "log" },
            "vkey": vkey,
            "key_file": key_file,
            "vkey_file": vkey_file,
        }));
    } else {
        print_line(&format!(
            "wrote the signer key to {} (mode 0600: keep it secret)",
            key_file.display()
        ));
        print_line(&format!(
            "wrote the verifier key to {}:",
            vkey_file.display()
        ));
        print_line(&vkey);
    }
    Ok(())
}

fn verify(context: &Context, args: VerifyArgs) -> Result<(), ClientError> {
    // Offline by construction: nothing here builds a client or a socket.
    let proof = read_file(&args.proof, MAX_PROOF_SIZE as u64)?;
    let entry = read_file(&args.entry, MAX_ENTRY_FILE_LEN)?;
    let key = context.log_key()?;
    let policy = context.policy()?;
    let verified = match offline::verify_proof_file(&proof, &entry, key.as_ref(), policy.as_ref()) {
        Ok(verified) => verified,
        Err(error) => {
            // A text editor or `echo` adds a final newline that the logged event
            // did not have; say so when that is the only difference.
            let trimmed = entry
                .strip_suffix(b"\r\n")
                .or_else(|| entry.strip_suffix(b"\n"));
            if let Some(trimmed) = trimmed.filter(|_| error.is_verification_failure())
                && let Ok(without) =
                    offline::verify_proof_file(&proof, trimmed, key.as_ref(), policy.as_ref())
            {
                eprintln!(
                    "merklog: hint: {} ends with a newline, which is part of the entry's bytes; \
                     without it, the entry verifies at index {}. Write entry files without the \
                     final newline (e.g. printf '%s' ...)",
                    args.entry.display(),
                    without.index
                );
            }
            return Err(error);
        }
    };
    let checkpoint = &verified.checkpoint;
    if context.json {
        print_json(&json!({
            "ok": true,
            "index": verified.index,
            "leaf_hash": verified.leaf_hash.to_string(),
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": checkpoint.root.to_string(),
            "witness_quorum": policy.is_some(),
        }));
    } else {
        print_line(&format!(
            "OK: the entry (leaf hash {}) is at index {} of {}, in the signed tree of size {} (root {}){}",
            verified.leaf_hash,
            verified.index,
            checkpoint.origin,
            checkpoint.size,
            checkpoint.root,
            if policy.is_some() {
                ", cosigned by the policy's witness quorum"
            } else {
                ""
            }
        ));
    }
    Ok(())
}

/// Prints receipts, saves proof files and keeps the tally of an append.
struct AppendPrinter {
    json: bool,
    proof_dir: Option<PathBuf>,
    bar: ProgressBar,
    entries: u64,
    duplicates: u64,
    checkpoint: Option<Arc<SignedCheckpoint>>,
}

impl AppendPrinter {
    /// What was acknowledged, in one line.
    fn summary(&self) -> String {
        let checkpoint = self
            .checkpoint
            .as_ref()
            .map(|c| format!("; checkpoint {}", c.summary()))
            .unwrap_or_default();
        format!(
            "{} acknowledged ({} already in the log), every inclusion proof verified{checkpoint}",
            count(self.entries, "entry", "entries"),
            self.duplicates
        )
    }

    fn receipt(&mut self, receipt: &AppendReceipt) -> Result<(), ClientError> {
        let proof_file = match &self.proof_dir {
            Some(dir) => {
                let path = dir.join(format!("{}.tlog-proof", receipt.index.0));
                write_replacing(&path, &receipt.tlog_proof().to_bytes())?;
                Some(path)
            }
            None => None,
        };
        self.entries += 1;
        self.duplicates += u64::from(receipt.duplicate);
        if self
            .checkpoint
            .as_ref()
            .is_none_or(|c| c.size() < receipt.checkpoint.size())
        {
            self.checkpoint = Some(Arc::clone(&receipt.checkpoint));
        }
        let json = self.json;
        self.bar.suspend(|| {
            if json {
                print_json(&json!({
                    "index": receipt.index.0,
                    "duplicate": receipt.duplicate,
                    "leaf_hash": receipt.leaf_hash.to_string(),
                    "checkpoint_size": receipt.checkpoint.size().0,
                    "root": receipt.checkpoint.root().to_string(),
                    "proof_file": proof_file,
                }));
            } else {
                let proof = proof_file
                    .as_ref()
                    .map(|p| format!("  proof {}", p.display()))
                    .unwrap_or_default();
                print_line(&format!(
                    "#{} {}  leaf {}  checkpoint {}{proof}",
                    receipt.index.0,
                    if receipt.duplicate {
                        "duplicate"
                    } else {
                        "appended "
                    },
                    receipt.leaf_hash,
                    receipt.checkpoint.size().0,
                ));
            }
        });
        self.bar.inc(1);
        Ok(())
    }
}

/// Writes a file through a temporary name and a rename, without `fsync` (proof
/// files can be fetched again with `merklog prove`; the directory is synced once
/// at the end).
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_owned(),
        source,
    };
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&temp, bytes).map_err(io)?;
    std::fs::rename(&temp, path).map_err(io)
}

/// Where each entry of an append came from, so that a failure can name the first
/// one the log did not acknowledge.
enum Sources {
    /// Arguments then files, all read before sending.
    Given(Vec<String>),
    /// Stdin line numbers of the entries read but not yet acknowledged, oldest
    /// first (the reader adds, receipts remove).
    Stdin(Arc<Mutex<VecDeque<u64>>>),
}

impl Sources {
    /// The source of the entry after `acknowledged` acknowledged ones, if any.
    fn first_unacknowledged(&self, acknowledged: u64) -> Option<(String, Option<u64>)> {
        match self {
            Sources::Given(names) => usize::try_from(acknowledged)
                .ok()
                .and_then(|i| names.get(i))
                .map(|name| (name.clone(), None)),
            Sources::Stdin(lines) => lines
                .lock()
                .ok()?
                .front()
                .map(|&line| (format!("stdin line {line}"), Some(line))),
        }
    }

    fn acknowledged_one(&self) {
        if let Sources::Stdin(lines) = self
            && let Ok(mut lines) = lines.lock()
        {
            lines.pop_front();
        }
    }
}

async fn append(context: &Context, args: AppendArgs) -> Result<(), ClientError> {
    let batch_size = args.batch_size as usize;
    let given = if args.entries.is_empty() && args.files.is_empty() {
        None
    } else {
        Some(collect_entries(&args.entries, &args.files)?)
    };
    let sources = match &given {
        Some(_) => Sources::Given(
            (1..=args.entries.len())
                .map(|i| format!("argument {i}"))
                .chain(args.files.iter().map(|f| format!("file {}", f.display())))
                .collect(),
        ),
        None => Sources::Stdin(Arc::default()),
    };
    if let Some(dir) = &args.proof_dir {
        std::fs::create_dir_all(dir).map_err(|source| ClientError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let mut client = context.connect().await?;
    let options = StreamOptions {
        batch_entries: batch_size,
        window: args.window as usize,
        ..StreamOptions::default()
    };
    let bar = progress_bar(given.as_ref().map(|g| g.len() as u64), "entries");
    {
        let bar = bar.clone();
        client.on_retry(move |notice| bar.suspend(|| eprintln!("{}", retry_line(notice))));
    }
    let mut printer = AppendPrinter {
        json: context.json,
        proof_dir: args.proof_dir.clone(),
        bar,
        entries: 0,
        duplicates: 0,
        checkpoint: None,
    };
    let skipped = Arc::new(AtomicU64::new(0));
    let mut on_receipt = |r: &AppendReceipt| {
        sources.acknowledged_one();
        printer.receipt(r)
    };
    let result = match given {
        Some(entries) if entries.len() <= batch_size => match client.append(entries).await {
            Ok(receipts) => receipts.iter().try_for_each(&mut on_receipt),
            Err(e) => Err(e),
        },
        Some(entries) => {
            let stream = futures::stream::iter(entries.into_iter().map(Ok));
            client
                .append_stream(stream, &options, &mut on_receipt)
                .await
                .map(|_| ())
        }
        None => {
            let Sources::Stdin(lines) = &sources else {
                return Err(ClientError::Input("stdin without a line list".into()));
            };
            let reader = spawn_line_reader(
                std::io::BufReader::new(std::io::stdin()),
                Arc::clone(&skipped),
                Arc::clone(lines),
            );
            client
                .append_stream(ReceiverStream::new(reader), &options, &mut on_receipt)
                .await
                .map(|_| ())
        }
    };
    printer.bar.finish_and_clear();
    let summary = printer.summary();
    let result = match result {
        Ok(()) => Ok(()),
        Err(error) => Err(explain_partial_append(
            context, &sources, &printer, &summary, error,
        )),
    };
    finish(&mut client, result)?;
    if let Some(dir) = &args.proof_dir {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| ClientError::Io {
                path: dir.clone(),
                source,
            })?;
    }
    let skipped = skipped.load(Ordering::Relaxed);
    if !context.json {
        eprintln!("merklog: {summary}");
    }
    if skipped > 0 {
        eprintln!(
            "merklog: skipped {}",
            count(skipped, "empty line", "empty lines")
        );
    }
    Ok(())
}

/// After a failed append: says on stderr (and in JSON) which entries the log
/// acknowledged and which not, and returns the error to report.
fn explain_partial_append(
    context: &Context,
    sources: &Sources,
    printer: &AppendPrinter,
    summary: &str,
    error: ClientError,
) -> ClientError {
    let input_error = matches!(error, ClientError::Input(_) | ClientError::Read { .. });
    let maybe_durable = match &error {
        ClientError::Timeout { .. } | ClientError::RetriesExhausted { .. } => true,
        ClientError::Rpc { status, .. } => matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::Internal
        ),
        _ => false,
    };
    if printer.entries == 0 && !input_error && !maybe_durable {
        // Refused outright: nothing to tell apart.
        return error;
    }
    let first = sources.first_unacknowledged(printer.entries);
    let (name, line) = match (&first, input_error) {
        (Some((name, line)), false) => (Some(name.clone()), *line),
        // An input error names its own line; nothing after it was read.
        _ => (None, None),
    };
    let what_happened = if input_error {
        let bad = error_line(&error).map_or_else(
            || "the entry named below".to_owned(),
            |line| format!("stdin line {line}"),
        );
        if printer.entries == 0 {
            format!("no entry was sent; {bad} is not valid (below)")
        } else {
            format!(
                "{summary} (receipts above): every line before {bad} is in the log; {bad} \
                 and the lines after it were not sent"
            )
        }
    } else {
        match &name {
            Some(name) => format!(
                "{summary}{}; from {name} on, the entries were not acknowledged: the log may \
                 or may not hold them. Appending them again is safe: an entry already in the \
                 log comes back with its index",
                if printer.entries > 0 {
                    " (receipts above)"
                } else {
                    ""
                }
            ),
            None => summary.to_owned(),
        }
    };
    if !context.json {
        eprintln!("merklog: {what_happened}");
    } else {
        print_json(&json!({
            "event": "summary",
            "ok": false,
            "acknowledged": printer.entries,
            "duplicates": printer.duplicates,
            "input_error": input_error,
            "first_unacknowledged": name,
            "first_unsent_line": line.or_else(|| if input_error { error_line(&error) } else { None }),
        }));
    }
    error
}

/// The stdin line number an input error names, if any.
fn error_line(error: &ClientError) -> Option<u64> {
    let text = error.to_string();
    let rest = text.strip_prefix("stdin line ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

async fn checkpoint(context: &Context, args: CheckpointArgs) -> Result<(), ClientError> {
    let mut client = context.connect().await?;
    let previous = client.latest().cloned();
    let result = client.checkpoint().await;
    let checkpoint = finish(&mut client, result)?;
    if let Some(out) = &args.out {
        write_atomically(out, checkpoint.note())?;
    }
    if context.json {
        let mut value = checkpoint_json(&checkpoint);
        value["note"] = json!(checkpoint.note_text());
        value["previous_size"] = json!(previous.as_ref().map(|p| p.size().0));
        print_json(&value);
    } else {
        print_line(&format!("verified checkpoint: {}", checkpoint.summary()));
        let history = match &previous {
            None => "first checkpoint of this log seen here; remembered from now on".to_owned(),
            Some(p) if p.size() == checkpoint.size() => {
                format!(
                    "unchanged since the last verified checkpoint (size {})",
                    p.size().0
                )
            }
            Some(p) => format!(
                "consistent with the last verified checkpoint (size {}): consistency proof verified",
                p.size().0
            ),
        };
        print_line(&history);
        print_line("");
        print!("{}", checkpoint.note_text());
    }
    Ok(())
}

async fn prove(context: &Context, args: ProveArgs) -> Result<(), ClientError> {
    if context.json && args.out.as_deref() == Some(Path::new("-")) {
        return Err(ClientError::Input(
            "--json with --out -: stdout would carry both the proof file and the JSON; write \
             the proof to a file (--out FILE) to get the JSON result"
                .into(),
        ));
    }
    let leaf_hash = match (&args.hash, &args.entry) {
        (Some(hash), _) => Some(parse_hash(hash)?),
        (None, Some(file)) => Some(hash_leaf(&read_file(file, MAX_ENTRY_FILE_LEN)?)),
        (None, None) => None,
    };
    let mut client = context.connect().await?;
    let result = match (leaf_hash, args.index) {
        (Some(hash), _) => client.prove_leaf_hash(&hash).await,
        (None, Some(index)) => client.prove_index(LeafIndex(index)).await,
        (None, None) => Err(ClientError::Input(
            "name the entry: INDEX, --hash or --entry".into(),
        )),
    };
    let receipt = finish(&mut client, result)?;
    let bytes = receipt.tlog_proof().to_bytes();
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.tlog-proof", receipt.index.0)));
    let to_stdout = out == Path::new("-");
    if to_stdout {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&bytes)
            .and_then(|()| stdout.flush())
            .map_err(|source| ClientError::Io {
                path: out.clone(),
                source,
            })?;
    } else {
        write_atomically(&out, &bytes)?;
    }
    let message = format!(
        "entry {} (leaf hash {}) is in {}: inclusion proof verified{}",
        receipt.index.0,
        receipt.leaf_hash,
        receipt.checkpoint.summary(),
        if to_stdout {
            String::new()
        } else {
            format!("; wrote {}", out.display())
        }
    );
    if to_stdout {
        eprintln!("merklog: {message}");
    } else if context.json {
        let mut value = checkpoint_json(&receipt.checkpoint);
        value["index"] = json!(receipt.index.0);
        value["leaf_hash"] = json!(receipt.leaf_hash.to_string());
        value["proof_file"] = json!(out);
        print_json(&value);
    } else {
        print_line(&message);
    }
    Ok(())
}

/// A checkpoint named on the command line: a tree size or a signed note file.
async fn resolve_checkpoint(
    client: &mut Client,
    spec: &str,
) -> Result<SignedCheckpoint, ClientError> {
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        let size: u64 = spec
            .parse()
            .map_err(|_| ClientError::Input(format!("tree size {spec} is too large")))?;
        return client.checkpoint_at(TreeSize(size)).await;
    }
    let note = read_file(Path::new(spec), MAX_NOTE_SIZE as u64)?;
    let checkpoint = client.trust().open(&note)?;
    client.observe(&checkpoint, false).await?;
    Ok(checkpoint)
}

async fn consistency(context: &Context, args: ConsistencyArgs) -> Result<(), ClientError> {
    let mut client = context.connect().await?;
    let result = async {
        let old = resolve_checkpoint(&mut client, &args.old).await?;
        let new = match &args.new {
            Some(spec) => resolve_checkpoint(&mut client, spec).await?,
            None => client.checkpoint().await?,
        };
        if old.size() > new.size() {
            return Err(ClientError::Input(format!(
                "OLD (size {}) is larger than NEW (size {})",
                old.size().0,
                new.size().0
            )));
        }
        let proof = client.prove_consistency(&old, &new).await?;
        Ok((old, new, proof))
    }
    .await;
    let (old, new, proof) = finish(&mut client, result)?;
    if context.json {
        print_json(&json!({
            "ok": true,
            "old": checkpoint_json(&old),
            "new": checkpoint_json(&new),
            "proof": proof.iter().map(|h| b64(h.as_bytes())).collect::<Vec<_>>(),
        }));
    } else {
        print_line(&format!(
            "consistent: size {} (root {}) is a prefix of size {} (root {}); proof of {} hashes verified",
            old.size().0,
            old.root(),
            new.size().0,
            new.root(),
            proof.len()
        ));
    }
    Ok(())
}

async fn watch(context: &Context, args: WatchArgs) -> Result<(), ClientError> {
    let mut client = context.connect().await?;
    let deadline = args.stop_after.map(|t| tokio::time::Instant::now() + t);
    let options = WatchOptions {
        from: args.from,
        resume: !args.no_resume,
        reconnect: !args.no_reconnect,
    };
    let mut watch = client.watch_with(options).await?;
    watch.on_reconnect(|notice| {
        eprintln!(
            "merklog: watch: {}; reconnecting in {} (attempt {}), then carrying on from the last \
             verified checkpoint",
            notice.reason,
            human_duration(notice.delay),
            notice.attempt
        );
    });
    let mut updates = 0u64;
    let outcome = loop {
        if args.max_updates.is_some_and(|max| updates >= max) {
            break Ok(());
        }
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, watch.next()).await {
                Ok(next) => next,
                Err(_) => break Ok(()),
            },
            None => watch.next().await,
        };
        let event = match next {
            Ok(Some(event)) => event,
            Ok(None) => {
                break Err(ClientError::rpc(
                    "WatchCheckpoints",
                    tonic::Status::unavailable("the server ended the checkpoint stream"),
                ));
            }
            Err(e) => break Err(e),
        };
        if !event.initial {
            updates += 1;
        }
        let checkpoint = &event.checkpoint;
        if context.json {
            let mut value = checkpoint_json(checkpoint);
            value["event"] = json!("checkpoint");
            value["initial"] = json!(event.initial);
            value["first_index"] = json!(event.first_index);
            print_json(&value);
        } else {
            let note = match (event.initial, event.entries.is_empty()) {
                (true, true) => " (current)".to_owned(),
                (true, false) => format!(
                    " (current; the {} from index {} verified)",
                    count(event.entries.len() as u64, "entry", "entries"),
                    event.first_index
                ),
                (false, _) => " (consistent, entries verified)".to_owned(),
            };
            print_line(&format!("checkpoint {}{note}", checkpoint.summary()));
        }
        if !args.no_entries {
            for (index, entry) in (event.first_index..).zip(&event.entries) {
                if context.json {
                    print_json(&entry_json(index, entry));
                } else {
                    print_line(&format!("entry {index} {}", entry_text(entry)));
                }
            }
        }
        if let Err(e) = watch.save_state() {
            break Err(e);
        }
    };
    drop(watch);
    finish(&mut client, outcome)
}

async fn audit(context: &Context, _args: AuditArgs) -> Result<(), ClientError> {
    let mut client = context.connect().await?;
    let bar = progress_bar(Some(0), "entries");
    let result = client
        .audit(|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    let report = finish(&mut client, result)?;
    let checkpoint = &report.checkpoint;
    if context.json {
        let mut value = checkpoint_json(checkpoint);
        value["ok"] = json!(true);
        value["entries"] = json!(report.entries);
        print_json(&value);
    } else {
        print_line(&format!(
            "audit OK: {} entries rebuild the signed root of {}",
            report.entries,
            checkpoint.summary()
        ));
    }
    Ok(())
}

/// `merklog health`: SERVING is success; any other answer is [`ClientError::NotServing`].
async fn health(context: &Context, _args: HealthArgs) -> Result<(), ClientError> {
    let options = context.client_options()?;
    match crate::health::check_health(&context.server, &options).await? {
        crate::health::Serving::Serving => {
            if context.json {
                print_json(&json!({"ok": true, "status": "SERVING"}));
            } else {
                print_line("SERVING");
            }
            Ok(())
        }
        crate::health::Serving::Not(status) => Err(ClientError::NotServing {
            server: context.server.clone(),
            status,
        }),
    }
}

/// `merklog fsck`: every tile served at --server against the entry bundles.
async fn fsck(context: &Context, _args: FsckArgs) -> Result<(), ClientError> {
    let trust = context.trust()?;
    let ca_cert = match &context.tls.ca_cert {
        Some(path) => Some(read_file(path, MAX_ENTRY_FILE_LEN)?),
        None => None,
    };
    let bar = progress_bar(Some(0), "entries");
    let result = crate::fsck::fsck_tiles(
        &context.server,
        &trust,
        ca_cert.as_deref(),
        context.timeout,
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await;
    bar.finish_and_clear();
    let report = result?;
    if context.json {
        let mut value = checkpoint_json(&report.checkpoint);
        value["ok"] = json!(true);
        value["bundles"] = json!(report.bundles);
        value["tiles"] = json!(report.tiles);
        print_json(&value);
    } else {
        print_line(&format!(
            "fsck OK: {} entry bundles and {} hash tiles rebuild the signed root of {}",
            report.bundles,
            report.tiles,
            report.checkpoint.summary()
        ));
    }
    Ok(())
}
