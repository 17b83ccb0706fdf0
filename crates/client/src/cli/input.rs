//! Reading entries: from files, from arguments, and line by line from stdin.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use merklog_proto::convert::MAX_ENTRY_BYTES_CAP;
use tokio::sync::mpsc;

use crate::ClientError;

/// Entries read ahead of the append stream.
const READ_AHEAD: usize = 4096;

/// Checks what the log accepts (1 to 65,535 bytes), naming the entry's source.
pub(super) fn check_entry(
    entry: &[u8],
    source: impl FnOnce() -> String,
) -> Result<(), ClientError> {
    if entry.is_empty() {
        return Err(ClientError::Input(format!(
            "{}: an entry must not be empty",
            source()
        )));
    }
    if entry.len() > MAX_ENTRY_BYTES_CAP {
        return Err(ClientError::Input(format!(
            "{}: the entry is {} bytes; the limit is {MAX_ENTRY_BYTES_CAP}",
            source(),
            entry.len()
        )));
    }
    Ok(())
}

/// Reads a whole file (`-` is stdin), refusing more than `limit` bytes.
pub(super) fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, ClientError> {
    let io = |source| ClientError::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io)?;
    } else {
        std::fs::File::open(path)
            .map_err(io)?
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io)?;
    }
    if bytes.len() as u64 > limit {
        return Err(ClientError::Input(format!(
            "{} is larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

/// The entries given as arguments and files, in that order, checked.
pub(super) fn collect_entries(
    args: &[String],
    files: &[PathBuf],
) -> Result<Vec<Bytes>, ClientError> {
    let mut entries = Vec::with_capacity(args.len() + files.len());
    for (i, arg) in args.iter().enumerate() {
        check_entry(arg.as_bytes(), || format!("argument {}", i + 1))?;
        entries.push(Bytes::copy_from_slice(arg.as_bytes()));
    }
    for file in files {
        let bytes = read_file(file, MAX_ENTRY_BYTES_CAP as u64)?;
        check_entry(&bytes, || file.display().to_string())?;
        entries.push(Bytes::from(bytes));
    }
    Ok(entries)
}

/// Lines handed on together at most (bounds the read-ahead with the channel's
/// capacity).
const CHUNK_LINES: usize = 256;

/// Reads entries from `reader` one per line on a thread of its own: an entry is
/// the line's exact bytes without its `\n` (a `\r` stays). Empty lines are
/// skipped and counted. The first bad line or read error ends the stream with
/// that error. The line number of each entry is added to `sent_lines` before the
/// entry is handed on.
///
/// Lines are handed on in chunks: every line already in the reader's buffer goes
/// with the one before it, so input that is all there (a file, a short pipe) is
/// sent in as few calls as the batch limits allow, whatever the thread timing.
pub(super) fn spawn_line_reader<R: Read + Send + 'static>(
    mut reader: BufReader<R>,
    skipped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    sent_lines: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<u64>>>,
) -> mpsc::Receiver<Vec<Result<Bytes, ClientError>>> {
    let (sender, receiver) = mpsc::channel(READ_AHEAD / CHUNK_LINES);
    std::thread::spawn(move || {
        let mut line_number = 0u64;
        let mut chunk = Vec::new();
        loop {
            let mut line = Vec::new();
            // A line longer than the entry limit is read only up to just past it.
            let limit = MAX_ENTRY_BYTES_CAP as u64 + 2;
            let read = (&mut reader).take(limit).read_until(b'\n', &mut line);
            let item = match read {
                Ok(0) => {
                    if !chunk.is_empty() {
                        let _ = sender.blocking_send(chunk);
                    }
                    return;
                }
                Ok(_) => {
                    line_number += 1;
                    let complete = line.last() == Some(&b'\n');
                    if complete {
                        line.pop();
                    }
                    if !complete && line.len() as u64 >= limit {
                        Err(ClientError::Input(format!(
                            "stdin line {line_number}: longer than the {MAX_ENTRY_BYTES_CAP}-byte entry limit"
                        )))
                    } else if line.is_empty() {
                        skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    } else {
                        check_entry(&line, || format!("stdin line {line_number}"))
                            .map(|()| Bytes::from(line))
                    }
                }
                Err(source) => Err(ClientError::Read {
                    path: PathBuf::from("<stdin>"),
                    source,
                }),
            };
            let failed = item.is_err();
            if !failed && let Ok(mut lines) = sent_lines.lock() {
                lines.push_back(line_number);
            }
            chunk.push(item);
            // Hand on when the next line would need another read (which may
            // block on a pipe), when the chunk is full, or after an error.
            let hand_on = failed || chunk.len() >= CHUNK_LINES || reader.buffer().is_empty();
            if hand_on && (sender.blocking_send(std::mem::take(&mut chunk)).is_err() || failed) {
                return;
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn read_lines(input: Vec<u8>) -> (Vec<Result<Bytes, ClientError>>, u64) {
        let skipped = Arc::new(AtomicU64::new(0));
        let lines = Arc::default();
        let mut receiver = spawn_line_reader(
            BufReader::new(std::io::Cursor::new(input)),
            Arc::clone(&skipped),
            Arc::clone(&lines),
        );
        let mut items = Vec::new();
        while let Some(chunk) = receiver.blocking_recv() {
            items.extend(chunk);
        }
        (items, skipped.load(Ordering::Relaxed))
    }

    #[test]
    fn lines_are_entries_byte_for_byte() {
        let (items, skipped) = read_lines(b"a b\n\ncr\r\n\n\n{\"x\":1}\nlast".to_vec());
        let entries: Vec<Bytes> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            entries,
            ["a b", "cr\r", "{\"x\":1}", "last"].map(|s| Bytes::from(s.as_bytes()))
        );
        assert_eq!(skipped, 3);
        assert!(read_lines(Vec::new()).0.is_empty());
    }

    #[test]
    fn buffered_lines_are_handed_on_together() {
        let skipped = Arc::new(AtomicU64::new(0));
        let mut receiver = spawn_line_reader(
            BufReader::new(std::io::Cursor::new(b"a\nb\n\nc\n".to_vec())),
            skipped,
            Arc::default(),
        );
        let first = receiver.blocking_recv().unwrap();
        assert_eq!(first.len(), 3, "one chunk for input that is all there");
        assert!(receiver.blocking_recv().is_none());
    }

    #[test]
    fn an_oversize_line_ends_the_stream_with_its_number() {
        for len in [MAX_ENTRY_BYTES_CAP + 1, MAX_ENTRY_BYTES_CAP + 2, 200_000] {
            let mut input = b"ok\n".to_vec();
            input.extend(std::iter::repeat_n(b'x', len));
            input.extend_from_slice(b"\nnever read\n");
            let (items, _) = read_lines(input);
            assert_eq!(items.len(), 2, "len {len}");
            assert!(items[0].is_ok());
            let error = items[1].as_ref().unwrap_err().to_string();
            assert!(error.contains("stdin line 2"), "{error}");
        }
        // Exactly at the limit is fine.
        let mut input = vec![b'y'; MAX_ENTRY_BYTES_CAP];
        input.push(b'\n');
        let (items, _) = read_lines(input);
        assert_eq!(items[0].as_ref().unwrap().len(), MAX_ENTRY_BYTES_CAP);
    }

    #[test]
    fn arguments_and_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("entry");
        std::fs::write(&file, [0u8, 255, 10]).unwrap();
        let entries = collect_entries(&["one".into()], std::slice::from_ref(&file)).unwrap();
        assert_eq!(entries[1], Bytes::from_static(&[0, 255, 10]));
        assert!(collect_entries(&[String::new()], &[]).is_err());
        std::fs::write(&file, vec![1u8; MAX_ENTRY_BYTES_CAP + 1]).unwrap();
        assert!(collect_entries(&[], &[file]).is_err());
    }
}
