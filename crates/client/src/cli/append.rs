//! `merklog append`: sends entries, verifies every receipt, and on a failure says
//! which entries the log acknowledged.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use indicatif::ProgressBar;
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;

use super::AppendArgs;
use super::context::{Context, count, finish, retry_line};
use super::input::{collect_entries, spawn_line_reader};
use super::output::{print_json, print_line, progress_bar};
use crate::{AppendReceipt, ClientError, SignedCheckpoint, StreamOptions};

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

pub(super) async fn append(context: &Context, args: AppendArgs) -> Result<(), ClientError> {
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
                .append_stream(
                    ReceiverStream::new(reader).flat_map(futures::stream::iter),
                    &options,
                    &mut on_receipt,
                )
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
