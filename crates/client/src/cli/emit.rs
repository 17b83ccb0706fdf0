//! `merklog emit`: one signed event per input line, journaled in a spool before it is
//! sent; follows files like a log shipper.
//!
//! Input files are read by a thread of their own (journaling blocks on fdatasync)
//! while the async side sends what is journaled and sends heartbeats.
//!
//! Following (`tail -F` semantics): each file's read offset is kept in the spool,
//! written in the same synced record as the event of the line that ends there, so
//! a restart resumes exactly after the last journaled line. When a file is at its
//! end, its path is checked: another file at the path (another device or inode)
//! means it was rotated; the old file is read to its end, then the new one from
//! offset 0. A file shorter than the offset (same inode) was truncated
//! (`copytruncate`); it is read again from 0. On start, a path holding another file
//! than the one recorded is treated as rotated while nothing ran: the recorded file
//! is looked for by inode in the same directory (e.g. `app.log.1`) and its rest read
//! first. A line is the bytes before `\n` (a `\r` before it is dropped too); with
//! `--follow` a final line without `\n` waits for it, without `--follow` it is an
//! event at the end of the file. A line too long for one event is skipped with a
//! warning.

use std::fs::File;
use std::io::{BufRead as _, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use merklog_event::MAX_EVENT_LEN;
use merklog_note::{Signer as _, keyfile, parse_signer_key};
use serde_json::json;

use super::output::{print_json, print_line};
use super::parse_duration;
use super::source::Session;
use crate::source::{EmitItem, FileIdentity, Source, SourceOptions};
use crate::{Client, ClientError, SendSummary};

/// Bytes read from a file at once.
const CHUNK: usize = 1 << 20;
/// The longest wait between two attempts to reach the log.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// `merklog emit`
#[derive(Debug, Args)]
#[command(after_help = "\
Each line becomes one event signed with the source key: the payload is the line without \
its newline. Every event is numbered and journaled (synced) in the spool before it is sent, \
so a crash (even SIGKILL) loses nothing that was read and journaled and reuses no number; \
what was journaled but not acknowledged is sent again on the next start (the log stores \
identical bytes once), and numbers reserved but never used are declared in one signed \
unused-sequence event.

Files are followed like `tail -F`: each file's offset is kept in the spool, so a restart \
resumes after the last journaled line; rotation (another file at the path) and truncation \
are detected. Without --follow the command exits once every input has reached its end and \
everything is acknowledged; with --follow or --heartbeat-every it keeps running (SIGINT or \
SIGTERM stop it cleanly) and keeps retrying while the log is unreachable.

Set --heartbeat-every below the interval registered for the source on the log (half of it \
is a good choice): a heartbeat is sent when nothing else was for that long.")]
pub struct EmitArgs {
    /// The source's signing key file (`merklog source key generate`).
    #[arg(long, value_name = "FILE")]
    pub source_key: PathBuf,
    /// The spool directory (created if needed). One spool per source key and one
    /// emitter per spool: the spool is what keeps a number from being given to two
    /// events, so two spools for one key would equivocate.
    #[arg(long, value_name = "DIR")]
    pub spool: PathBuf,
    /// Input files, one event per line [default: stdin].
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The media type of the events.
    #[arg(long, value_name = "TYPE", default_value = "text/plain")]
    pub media_type: String,
    /// Keep following the files for new lines instead of exiting at their end.
    #[arg(long)]
    pub follow: bool,
    /// Keep running and send a heartbeat when nothing was sent for this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub heartbeat_every: Option<Duration>,
    /// How often followed files are checked for growth and rotation.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "200ms")]
    pub poll: Duration,
    /// Events per Append call (at most the server's max-entries-per-call).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch_size: u32,
    /// Sequence numbers reserved at once (the unused rest is declared after a crash).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub reserve_block: u64,
}

/// Lines to journal: payload, and the input position after the line.
type Lines = [(Vec<u8>, Option<(u32, u64)>)];

/// What the reading thread did.
#[derive(Debug, Default)]
struct ReadSummary {
    lines: u64,
    skipped: u64,
}

/// The reading thread's settings.
struct Reader {
    source: Arc<Source>,
    media_type: String,
    follow: bool,
    poll: Duration,
    batch: usize,
    /// The longest payload that fits in one envelope of this source.
    max_payload: usize,
    stop: Arc<AtomicBool>,
}

fn identity(meta: &std::fs::Metadata) -> FileIdentity {
    FileIdentity {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Read {
        path: path.to_owned(),
        source,
    }
}

/// A line without its `\n` (and a `\r` before it).
fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One followed file.
struct Tail {
    path: PathBuf,
    file: Option<File>,
    id: u32,
    identity: FileIdentity,
    offset: u64,
    /// Inside a line too long for an event: skip to its end.
    skipping: bool,
}

impl Reader {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Journals lines (payload, position after it) in one synced write.
    fn emit(&self, lines: &Lines) -> Result<(), ClientError> {
        let items: Vec<EmitItem<'_>> = lines
            .iter()
            .map(|(payload, position)| EmitItem {
                media_type: &self.media_type,
                payload,
                position: *position,
            })
            .collect();
        self.source.emit_batch(&items).map(|_| ())
    }

    fn too_long(&self, what: &str, len: usize) {
        eprintln!(
            "merklog: emit: warning: skipping {what}: {len} bytes, more than the {} that fit \
             in one event",
            self.max_payload
        );
    }

    /// Reads stdin to its end.
    fn stdin(&self) -> Result<ReadSummary, ClientError> {
        let mut input = std::io::BufReader::with_capacity(64 << 10, std::io::stdin());
        let mut summary = ReadSummary::default();
        let mut pending = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(io(Path::new("-")))?;
            if n > 0 {
                let payload = strip_newline(&line).to_vec();
                if payload.len() > self.max_payload {
                    self.too_long("a line of stdin", payload.len());
                    summary.skipped += 1;
                } else {
                    pending.push((payload, None));
                }
            }
            // Journal what is read when nothing more is buffered (the next read
            // would wait), at the batch size, and at the end.
            if !pending.is_empty()
                && (n == 0 || input.buffer().is_empty() || pending.len() >= self.batch)
            {
                self.emit(&pending)?;
                summary.lines += pending.len() as u64;
                pending.clear();
            }
            if n == 0 || self.stopped() {
                return Ok(summary);
            }
        }
    }

    /// Opens the file at `path` for following from the spool's position.
    fn start(&self, path: &Path) -> Result<Option<Tail>, ClientError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.follow => return Ok(None),
            Err(e) => return Err(io(path)(e)),
        };
        let meta = file.metadata().map_err(io(path))?;
        let now = identity(&meta);
        let position = self.source.input_position(path)?;
        let (id, offset) = match position {
            Some(p) if p.identity == now => {
                if meta.len() < p.offset {
                    eprintln!(
                        "merklog: emit: {} is shorter than when it was last read; reading it \
                         again from the start",
                        path.display()
                    );
                    self.source.set_input_offset(p.file, 0)?;
                    (p.file, 0)
                } else {
                    (p.file, p.offset)
                }
            }
            Some(p) => {
                // Rotated while nothing ran: finish the old file if it is still
                // next to the path, then start the new one.
                if let Some((old_path, old)) = find_by_identity(path, p.identity) {
                    eprintln!(
                        "merklog: emit: {} was rotated; reading the rest of {} first",
                        path.display(),
                        old_path.display()
                    );
                    let mut tail = Tail {
                        path: old_path,
                        file: Some(old),
                        id: p.file,
                        identity: p.identity,
                        offset: p.offset,
                        skipping: false,
                    };
                    let mut summary = ReadSummary::default();
                    while self.read_some(&mut tail, &mut summary)? {}
                    self.finish_partial(&mut tail, &mut summary)?;
                }
                (self.source.track_input(path, now)?, 0)
            }
            None => (self.source.track_input(path, now)?, 0),
        };
        Ok(Some(Tail {
            path: path.to_owned(),
            file: Some(file),
            id,
            identity: now,
            offset,
            skipping: false,
        }))
    }

    /// Reads complete lines from the tail's offset (up to a batch) and journals
    /// them; false when there was no complete line.
    fn read_some(&self, tail: &mut Tail, summary: &mut ReadSummary) -> Result<bool, ClientError> {
        let Some(file) = tail.file.as_mut() else {
            return Ok(false);
        };
        file.seek(SeekFrom::Start(tail.offset))
            .map_err(io(&tail.path))?;
        let mut chunk = Vec::with_capacity(CHUNK.min(64 << 10));
        file.take(CHUNK as u64)
            .read_to_end(&mut chunk)
            .map_err(io(&tail.path))?;
        let mut lines = Vec::new();
        let mut at = 0usize;
        while lines.len() < self.batch {
            let Some(end) = chunk[at..].iter().position(|b| *b == b'\n') else {
                break;
            };
            let line = &chunk[at..at + end + 1];
            at += end + 1;
            let next = tail.offset + at as u64;
            if tail.skipping {
                tail.skipping = false;
                self.source.set_input_offset(tail.id, next)?;
                continue;
            }
            let payload = strip_newline(line);
            if payload.len() > self.max_payload {
                self.too_long(&format!("a line of {}", tail.path.display()), payload.len());
                summary.skipped += 1;
                self.source.set_input_offset(tail.id, next)?;
                continue;
            }
            lines.push((payload.to_vec(), Some((tail.id, next))));
        }
        if at == 0 && chunk.len() == CHUNK {
            // A whole chunk without a newline: a line too long for any event.
            if !tail.skipping {
                self.too_long(&format!("a line of {}", tail.path.display()), CHUNK);
                summary.skipped += 1;
            }
            tail.skipping = true;
            tail.offset += CHUNK as u64;
            self.source.set_input_offset(tail.id, tail.offset)?;
            return Ok(true);
        }
        if lines.is_empty() {
            tail.offset += at as u64;
            return Ok(at > 0);
        }
        self.emit(&lines)?;
        summary.lines += lines.len() as u64;
        tail.offset += at as u64;
        Ok(true)
    }

    /// At the end of a file that is not followed: its last line without `\n`.
    fn finish_partial(
        &self,
        tail: &mut Tail,
        summary: &mut ReadSummary,
    ) -> Result<(), ClientError> {
        let Some(file) = tail.file.as_mut() else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(tail.offset))
            .map_err(io(&tail.path))?;
        let mut rest = Vec::new();
        file.take(self.max_payload as u64 + 2)
            .read_to_end(&mut rest)
            .map_err(io(&tail.path))?;
        if rest.is_empty() || tail.skipping {
            return Ok(());
        }
        let end = tail.offset + rest.len() as u64;
        let payload = strip_newline(&rest);
        if payload.len() > self.max_payload {
            self.too_long(
                &format!("the last line of {}", tail.path.display()),
                payload.len(),
            );
            summary.skipped += 1;
            return self.source.set_input_offset(tail.id, end);
        }
        self.emit(&[(payload.to_vec(), Some((tail.id, end)))])?;
        summary.lines += 1;
        tail.offset = end;
        Ok(())
    }

    /// At the end of a followed file: a new file at its path (rotation), a
    /// truncation, or the file appearing.
    fn check_path(&self, tail: &mut Tail, summary: &mut ReadSummary) -> Result<(), ClientError> {
        let Ok(meta) = std::fs::metadata(&tail.path) else {
            // Renamed away and not yet replaced: keep reading the open file.
            return Ok(());
        };
        let now = identity(&meta);
        if tail.file.is_none() || now != tail.identity {
            // Whatever was written to the old file before the rename is read first.
            while self.read_some(tail, summary)? {}
            let file = File::open(&tail.path).map_err(io(&tail.path))?;
            let now = identity(&file.metadata().map_err(io(&tail.path))?);
            tail.id = self.source.track_input(&tail.path, now)?;
            tail.file = Some(file);
            tail.identity = now;
            tail.offset = 0;
            tail.skipping = false;
        } else if meta.len() < tail.offset {
            eprintln!(
                "merklog: emit: {} was truncated; reading it again from the start",
                tail.path.display()
            );
            self.source.set_input_offset(tail.id, 0)?;
            tail.offset = 0;
            tail.skipping = false;
        }
        Ok(())
    }

    /// Reads the files until all are at their end (or forever with --follow).
    fn files(&self, paths: &[PathBuf]) -> Result<ReadSummary, ClientError> {
        let mut summary = ReadSummary::default();
        let mut tails = Vec::with_capacity(paths.len());
        for path in paths {
            match self.start(path)? {
                Some(tail) => tails.push(tail),
                None => tails.push(Tail {
                    path: path.clone(),
                    file: None,
                    id: 0,
                    identity: FileIdentity { dev: 0, ino: 0 },
                    offset: 0,
                    skipping: false,
                }),
            }
        }
        loop {
            let mut progressed = false;
            for tail in &mut tails {
                progressed |= self.read_some(tail, &mut summary)?;
            }
            if self.stopped() {
                return Ok(summary);
            }
            if progressed {
                continue;
            }
            if !self.follow {
                for tail in &mut tails {
                    self.finish_partial(tail, &mut summary)?;
                }
                return Ok(summary);
            }
            for tail in &mut tails {
                self.check_path(tail, &mut summary)?;
            }
            std::thread::sleep(self.poll);
        }
    }
}

/// The file in `path`'s directory with this identity (a rotated file), if any.
fn find_by_identity(path: &Path, wanted: FileIdentity) -> Option<(PathBuf, File)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let candidate = entry.path();
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && identity(&meta) == wanted
            && let Ok(file) = File::open(&candidate)
        {
            return Some((candidate, file));
        }
    }
    None
}

/// Errors after which the log may answer later: the network, a server restarting
/// or overloaded. Anything else (a refusal, a verification failure) stops.
fn transient(error: &ClientError) -> bool {
    match error {
        ClientError::Connect { .. }
        | ClientError::Timeout { .. }
        | ClientError::RetriesExhausted { .. } => true,
        ClientError::Rpc { status, .. } => matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::ResourceExhausted
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::DeadlineExceeded
        ),
        _ => false,
    }
}

fn load_signer(path: &Path) -> Result<merklog_note::Ed25519Signer, ClientError> {
    let text = keyfile::read_signer_key(path).map_err(|e| match e {
        merklog_note::NoteError::KeyFileIo { path, source } => ClientError::Read { path, source },
        other => ClientError::Input(format!("{}: {other}", path.display())),
    })?;
    parse_signer_key(text.expose_secret()).map_err(|e| {
        ClientError::Input(format!(
            "{} does not hold an Ed25519 signing key: {e}",
            path.display()
        ))
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ClientError::Input(format!("the spool writer failed: {e}")))?
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called,
/// so a signal arriving before the future is first polled still ends the run
/// cleanly (spool flushed) instead of killing the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    async move {
        let interrupted = async {
            match interrupt.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let terminated = async {
            match terminate.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = interrupted => {}
            _ = terminated => {}
        }
    }
}

/// Connects, retrying while the log is unreachable when `keep_trying`.
async fn connect(session: &Session, keep_trying: bool) -> Result<Client, ClientError> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match session.connect().await {
            Ok(client) => return Ok(client),
            Err(e) if keep_trying && transient(&e) => {
                eprintln!("merklog: emit: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `merklog emit`
pub(super) async fn execute(session: Session, args: EmitArgs) -> Result<(), ClientError> {
    let signer = load_signer(&args.source_key)?;
    // Everything in an envelope but the payload.
    let overhead = 4 + 1 + 1 + signer.name().len() + 4 + 8 + 8 + 1 + args.media_type.len() + 4 + 64;
    let max_payload = MAX_EVENT_LEN.saturating_sub(overhead);
    let options = SourceOptions {
        reserve_block: args.reserve_block,
        batch_entries: args.batch_size as usize,
        ..SourceOptions::default()
    };
    let spool = args.spool.clone();
    let (source, recovery) = blocking(move || Source::open(signer, &spool, options)).await?;
    let source = Arc::new(source);
    if recovery.torn_bytes > 0 {
        eprintln!(
            "merklog: emit: dropped a torn last journal record ({} bytes; it was never \
             accepted)",
            recovery.torn_bytes
        );
    }
    if recovery.unacknowledged > 0 {
        eprintln!(
            "merklog: emit: {} journaled events were not acknowledged; sending them again",
            recovery.unacknowledged
        );
    }
    if let Some((range, own)) = recovery.declared_unused {
        eprintln!(
            "merklog: emit: numbers {}..={} were reserved and never used; declared unused in \
             event {own}",
            range.first, range.last
        );
    }
    let keep_running = args.follow || args.heartbeat_every.is_some();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = Reader {
        source: Arc::clone(&source),
        media_type: args.media_type.clone(),
        follow: args.follow,
        poll: args.poll,
        batch: args.batch_size as usize,
        max_payload,
        stop: Arc::clone(&stop),
    };
    let files = args.files.clone();
    // A thread of its own, not the runtime's blocking pool: a read of stdin
    // cannot be interrupted, and must not hold the process open at exit.
    let (done_tx, mut done) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = if files.is_empty() {
            reader.stdin()
        } else {
            reader.files(&files)
        };
        let _ = done_tx.send(result);
    });

    let mut client = connect(&session, keep_running).await?;
    let mut reading = true;
    let mut read = ReadSummary::default();
    let mut sent = SendSummary::default();
    let mut heartbeats = 0u64;
    let tick_every = args
        .heartbeat_every
        .map(|every| (every / 4).max(Duration::from_millis(10)));
    let mut ticker = tokio::time::interval(tick_every.unwrap_or(Duration::from_secs(3600)));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(200);
    let outcome: Result<(), ClientError> = loop {
        match source.send_pending(&mut client).await {
            Ok(summary) => {
                sent.acknowledged += summary.acknowledged;
                sent.duplicates += summary.duplicates;
                sent.calls += summary.calls;
                backoff = Duration::from_millis(200);
            }
            Err(e) if keep_running && transient(&e) => {
                eprintln!(
                    "merklog: emit: {e}; {} events wait in the spool; retrying in {backoff:?}",
                    source.pending().unwrap_or(0)
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut shutdown => break Ok(()),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(e) => break Err(e),
        }
        if !reading && !keep_running && source.pending()? == 0 {
            break Ok(());
        }
        tokio::select! {
            () = source.journaled() => {}
            result = &mut done, if reading => {
                reading = false;
                match result {
                    Ok(Ok(summary)) => read = summary,
                    Ok(Err(e)) => break Err(e),
                    Err(_) => break Err(ClientError::Input("the input reader stopped".into())),
                }
            }
            _ = ticker.tick(), if tick_every.is_some() => {
                if let Some(every) = args.heartbeat_every {
                    let source = Arc::clone(&source);
                    if blocking(move || source.heartbeat_if_idle(every)).await?.is_some() {
                        heartbeats += 1;
                    }
                }
            }
            () = &mut shutdown => break Ok(()),
        }
    };
    stop.store(true, Ordering::Relaxed);
    let pending = source.pending().unwrap_or(0);
    let closing = Arc::clone(&source);
    let closed = blocking(move || closing.close()).await;
    let saved = client.save_state();
    outcome?;
    closed?;
    saved?;
    let next = source.next_sequence()?;
    if session.json {
        print_json(&json!({
            "ok": true,
            "source": source.name(),
            "lines": read.lines,
            "skipped_lines": read.skipped,
            "heartbeats": heartbeats,
            "acknowledged": sent.acknowledged,
            "duplicates": sent.duplicates,
            "unacknowledged": pending,
            "next_sequence": next,
        }));
    } else {
        print_line(&format!(
            "{}: {} lines journaled ({} skipped), {} heartbeats; {} events acknowledged by \
             the log ({} already there), {} waiting in the spool; next number {next}",
            source.name(),
            read.lines,
            read.skipped,
            heartbeats,
            sent.acknowledged,
            sent.duplicates,
            pending
        ));
    }
    Ok(())
}
