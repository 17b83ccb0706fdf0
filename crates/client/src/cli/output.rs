//! Printing: human lines, JSON objects, entries, progress bars.

use std::io::Write as _;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::encoding::b64;
use crate::state::write_atomically;
use crate::{ClientError, SignedCheckpoint};

/// Prints one JSON value as a line on stdout. A closed stdout (e.g. `| head`)
/// is not an error worth reporting.
pub(super) fn print_json(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
}

/// Prints a human line on stdout.
pub(super) fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// Writes a verified proof or receipt to `out` (`-`: stdout) and says so. `verified`
/// tells what was checked; `value` is the JSON answer, completed with the file under
/// `file_field`. When the bytes went to stdout the message goes to stderr, so the
/// output stays exactly the file.
pub(super) fn write_verified(
    json_output: bool,
    out: &Path,
    bytes: &[u8],
    verified: &str,
    mut value: Value,
    file_field: &str,
) -> Result<(), ClientError> {
    let to_stdout = out == Path::new("-");
    if to_stdout {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(bytes)
            .and_then(|()| stdout.flush())
            .map_err(|source| ClientError::Io {
                path: out.to_path_buf(),
                source,
            })?;
        eprintln!("merklog: {verified}");
    } else {
        write_atomically(out, bytes)?;
        if json_output {
            value[file_field] = json!(out);
            print_json(&value);
        } else {
            print_line(&format!("{verified}; wrote {}", out.display()));
        }
    }
    Ok(())
}

/// The JSON description of a checkpoint.
pub(super) fn checkpoint_json(checkpoint: &SignedCheckpoint) -> Value {
    json!({
        "origin": checkpoint.origin(),
        "size": checkpoint.size().0,
        "root": checkpoint.root().to_string(),
        "root_base64": b64(checkpoint.root().as_bytes()),
    })
}

/// An entry for people: its text when it is printable UTF-8, else base64.
pub(super) fn entry_text(entry: &[u8]) -> String {
    match std::str::from_utf8(entry) {
        Ok(text) if !text.chars().any(|c| c.is_control() && c != '\t') => text.to_owned(),
        _ => format!("base64:{}", b64(entry)),
    }
}

/// An entry for scripts: base64 always, and the text when it is UTF-8.
pub(super) fn entry_json(index: u64, entry: &[u8]) -> Value {
    json!({
        "event": "entry",
        "index": index,
        "leaf_hash": merklog_merkle::hash_leaf(entry).to_string(),
        "entry": std::str::from_utf8(entry).ok(),
        "entry_base64": b64(entry),
    })
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub(super) fn progress_bar(length: Option<u64>, what: &str) -> ProgressBar {
    let bar = match length {
        Some(length) => ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if length.is_some() {
        format!("{{bar:40}} {{human_pos}}/{{human_len}} {what} ({{elapsed}}, {{eta}} left)")
    } else {
        format!("{{spinner}} {{human_pos}} {what} ({{elapsed}})")
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
