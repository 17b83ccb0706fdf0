//! The spool's journal: one append-only file of checksummed records, replayed on
//! start (see the module documentation of [`crate::source`] for the format and what
//! each write makes durable).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use merklog_merkle::hash_leaf;

use crate::ClientError;

/// The journal's file name inside the spool directory.
pub(crate) const JOURNAL: &str = "journal";
/// A compacted journal being written; renamed over [`JOURNAL`] once synced.
const JOURNAL_TMP: &str = "journal.tmp";

/// Length prefix and checksum before each record body.
const HEADER_LEN: usize = 4 + 32;
/// No record body is larger (an envelope is at most 64 KiB; acknowledgement
/// records are split to stay below it). A larger length is a torn or foreign tail.
const MAX_BODY_LEN: usize = 1 << 20;
/// Ranges per acknowledgement record.
const MAX_ACK_RANGES: usize = 4096;

const KIND_EVENT: u8 = 1;
const KIND_RESERVE: u8 = 2;
const KIND_ACK: u8 = 3;
const KIND_FILE: u8 = 4;
const KIND_CURSOR: u8 = 5;
const KIND_NEXT: u8 = 6;
const KIND_IDENTITY: u8 = 7;

/// Which file an input position belongs to: its device and inode, so a file
/// renamed away (rotation) or replaced is told from the one that was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    /// The device number.
    pub dev: u64,
    /// The inode number.
    pub ino: u64,
}

/// A followed input file as the spool knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputPosition {
    /// The spool's id of this (path, file) pair.
    pub file: u32,
    /// The file that was being read at that path.
    pub identity: FileIdentity,
    /// The byte offset just after the last line whose event is journaled.
    pub offset: u64,
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// A signed event, journaled before it is sent; with the input position after
    /// the line it came from, so the line and the position are durable together.
    Event {
        sequence: u64,
        position: Option<(u32, u64)>,
        envelope: Bytes,
    },
    /// Every number below `until` is reserved (may have been given to an event).
    Reserve { until: u64 },
    /// These inclusive ranges of numbers are acknowledged by the log.
    Ack { ranges: Vec<(u64, u64)> },
    /// Input file `id` is the file `identity` at `path`, read from offset 0; it
    /// replaces whatever was tracked at that path.
    File {
        id: u32,
        identity: FileIdentity,
        path: PathBuf,
    },
    /// Input file `file` was consumed up to `offset` (without an event: a skipped
    /// line, a truncation).
    Cursor { file: u32, offset: u64 },
    /// The next number to give is at least `sequence` (kept by compaction, which
    /// drops acknowledged events).
    Next { sequence: u64 },
    /// The vkey of the source this spool belongs to.
    Identity { vkey: String },
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

impl Record {
    /// Appends the record (header and body) to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        match self {
            Record::Event {
                sequence,
                position,
                envelope,
            } => {
                body.push(KIND_EVENT);
                put_u64(&mut body, *sequence);
                match position {
                    Some((file, offset)) => {
                        body.push(1);
                        put_u32(&mut body, *file);
                        put_u64(&mut body, *offset);
                    }
                    None => body.push(0),
                }
                body.extend_from_slice(envelope);
            }
            Record::Reserve { until } => {
                body.push(KIND_RESERVE);
                put_u64(&mut body, *until);
            }
            Record::Ack { ranges } => {
                body.push(KIND_ACK);
                for (first, last) in ranges {
                    put_u64(&mut body, *first);
                    put_u64(&mut body, *last);
                }
            }
            Record::File { id, identity, path } => {
                body.push(KIND_FILE);
                put_u32(&mut body, *id);
                put_u64(&mut body, identity.dev);
                put_u64(&mut body, identity.ino);
                body.extend_from_slice(path.as_os_str().as_bytes());
            }
            Record::Cursor { file, offset } => {
                body.push(KIND_CURSOR);
                put_u32(&mut body, *file);
                put_u64(&mut body, *offset);
            }
            Record::Next { sequence } => {
                body.push(KIND_NEXT);
                put_u64(&mut body, *sequence);
            }
            Record::Identity { vkey } => {
                body.push(KIND_IDENTITY);
                body.extend_from_slice(vkey.as_bytes());
            }
        }
        // Bodies are far below 4 GiB (an envelope is at most 64 KiB).
        put_u32(out, u32::try_from(body.len()).unwrap_or(u32::MAX));
        out.extend_from_slice(hash_leaf(&body).as_bytes());
        out.extend_from_slice(&body);
    }

    /// Decodes a body whose checksum matched; `None` if it is not a record.
    fn decode(body: &[u8]) -> Option<Record> {
        let (&kind, rest) = body.split_first()?;
        let mut r = Fields(rest);
        let record = match kind {
            KIND_EVENT => {
                let sequence = r.u64()?;
                let position = match r.u8()? {
                    0 => None,
                    1 => Some((r.u32()?, r.u64()?)),
                    _ => return None,
                };
                return Some(Record::Event {
                    sequence,
                    position,
                    envelope: Bytes::copy_from_slice(r.0),
                });
            }
            KIND_RESERVE => Record::Reserve { until: r.u64()? },
            KIND_ACK => {
                if r.0.len() % 16 != 0 {
                    return None;
                }
                let mut ranges = Vec::with_capacity(r.0.len() / 16);
                while !r.0.is_empty() {
                    ranges.push((r.u64()?, r.u64()?));
                }
                Record::Ack { ranges }
            }
            KIND_FILE => {
                let id = r.u32()?;
                let identity = FileIdentity {
                    dev: r.u64()?,
                    ino: r.u64()?,
                };
                let path = PathBuf::from(std::ffi::OsString::from_vec(r.0.to_vec()));
                return Some(Record::File { id, identity, path });
            }
            KIND_CURSOR => Record::Cursor {
                file: r.u32()?,
                offset: r.u64()?,
            },
            KIND_NEXT => Record::Next { sequence: r.u64()? },
            KIND_IDENTITY => {
                return Some(Record::Identity {
                    vkey: String::from_utf8(r.0.to_vec()).ok()?,
                });
            }
            _ => return None,
        };
        r.0.is_empty().then_some(record)
    }
}

/// Reads big-endian fields off the front of a slice.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }
}

/// Splits journal bytes into records. Stops at the first record that is short,
/// oversize, fails its checksum or does not decode: a write torn by a crash (the
/// journal is only ever appended to, so only its tail can be torn). Returns the
/// records and the length of the good prefix.
pub(crate) fn parse_journal(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + HEADER_LEN) {
        let mut len = [0u8; 4];
        len.copy_from_slice(&header[..4]);
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_BODY_LEN {
            break;
        }
        let Some(body) = bytes.get(at + HEADER_LEN..at + HEADER_LEN + len) else {
            break;
        };
        if hash_leaf(body).as_bytes()[..] != header[4..] {
            break;
        }
        let Some(record) = Record::decode(body) else {
            break;
        };
        records.push(record);
        at += HEADER_LEN + len;
    }
    (records, at)
}

/// What the journal says, replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct State {
    /// The next number to give to an event.
    pub(crate) next: u64,
    /// Every number below this is reserved.
    pub(crate) reserved_until: u64,
    /// Journaled, not acknowledged: number -> envelope.
    pub(crate) pending: BTreeMap<u64, Bytes>,
    /// Followed input files by id.
    pub(crate) files: BTreeMap<u32, (PathBuf, FileIdentity, u64)>,
    /// The next input file id.
    pub(crate) next_file: u32,
    /// The vkey the spool belongs to.
    pub(crate) identity: Option<String>,
}

impl State {
    pub(crate) fn apply(&mut self, record: &Record) {
        match record {
            Record::Event {
                sequence,
                position,
                envelope,
            } => {
                self.pending.insert(*sequence, envelope.clone());
                self.next = self.next.max(sequence.saturating_add(1));
                if let Some((file, offset)) = position {
                    self.set_offset(*file, *offset);
                }
            }
            Record::Reserve { until } => self.reserved_until = *until,
            Record::Ack { ranges } => {
                for &(first, last) in ranges {
                    let done: Vec<u64> =
                        self.pending.range(first..=last).map(|(s, _)| *s).collect();
                    for sequence in done {
                        self.pending.remove(&sequence);
                    }
                }
            }
            Record::File { id, identity, path } => {
                self.files.retain(|_, (p, _, _)| p != path);
                self.files.insert(*id, (path.clone(), *identity, 0));
                self.next_file = self.next_file.max(id.saturating_add(1));
            }
            Record::Cursor { file, offset } => self.set_offset(*file, *offset),
            Record::Next { sequence } => self.next = self.next.max(*sequence),
            Record::Identity { vkey } => self.identity = Some(vkey.clone()),
        }
    }

    fn set_offset(&mut self, file: u32, offset: u64) {
        if let Some((_, _, at)) = self.files.get_mut(&file) {
            *at = offset;
        }
    }

    /// The records that rebuild this state and nothing else (acknowledged events
    /// are left out).
    fn snapshot(&self) -> Vec<Record> {
        let mut records = Vec::new();
        if let Some(vkey) = &self.identity {
            records.push(Record::Identity { vkey: vkey.clone() });
        }
        records.push(Record::Reserve {
            until: self.reserved_until,
        });
        records.push(Record::Next {
            sequence: self.next,
        });
        for (id, (path, identity, offset)) in &self.files {
            records.push(Record::File {
                id: *id,
                identity: *identity,
                path: path.clone(),
            });
            records.push(Record::Cursor {
                file: *id,
                offset: *offset,
            });
        }
        for (sequence, envelope) in &self.pending {
            records.push(Record::Event {
                sequence: *sequence,
                position: None,
                envelope: envelope.clone(),
            });
        }
        records
    }
}

/// Inclusive ranges covering a sorted list of numbers, in records of bounded size.
pub(crate) fn ack_records(sequences: &[u64]) -> Vec<Record> {
    let mut sorted = sequences.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for sequence in sorted {
        match ranges.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(sequence) => *last = sequence,
            _ => ranges.push((sequence, sequence)),
        }
    }
    ranges
        .chunks(MAX_ACK_RANGES)
        .map(|chunk| Record::Ack {
            ranges: chunk.to_vec(),
        })
        .collect()
}

/// The journal file, its replayed state, and the durability bookkeeping.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    file: File,
    /// Bytes of good records in the file.
    len: u64,
    pub(crate) state: State,
    /// Set after a write or sync failed in a way that leaves the file's tail
    /// unknown: nothing more is written (a later record behind a torn one would be
    /// lost at recovery, and a failed sync may have lost pages).
    poisoned: bool,
}

/// What opening a spool found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Opened {
    /// Records replayed.
    pub(crate) records: usize,
    /// Bytes of a torn last record that were dropped.
    pub(crate) torn_bytes: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.to_owned(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), ClientError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl Spool {
    /// Opens (creating) the spool in `dir` and replays its journal, dropping a torn
    /// tail, then compacts it.
    pub(crate) fn open(dir: &Path) -> Result<(Spool, Opened), ClientError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(JOURNAL);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path))?;
        let (records, good) = parse_journal(&bytes);
        let torn_bytes = (bytes.len() - good) as u64;
        let mut state = State::default();
        for record in &records {
            state.apply(record);
        }
        // The journal is replaced right away by its compacted form, which also
        // drops a torn tail: nothing is ever appended behind one.
        let mut spool = Spool {
            dir: dir.to_owned(),
            file,
            len: good as u64,
            state,
            poisoned: false,
        };
        spool.compact()?;
        Ok((
            spool,
            Opened {
                records: records.len(),
                torn_bytes,
            },
        ))
    }

    /// The journal's size in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends records in one write and syncs it; the state changes only once the
    /// sync returned. On failure nothing is applied.
    pub(crate) fn write(&mut self, records: &[Record]) -> Result<(), ClientError> {
        let path = self.dir.join(JOURNAL);
        if self.poisoned {
            return Err(ClientError::Io {
                path,
                source: std::io::Error::other(
                    "an earlier journal write failed; restart to recover the spool",
                ),
            });
        }
        let mut bytes = Vec::new();
        for record in records {
            record.encode(&mut bytes);
        }
        let written = self
            .file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            // Cut a partly written tail so no later record lands behind it; if even
            // that fails, stop writing.
            if self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data())
                .is_err()
            {
                self.poisoned = true;
            }
            return Err(ClientError::Io { path, source });
        }
        self.len += bytes.len() as u64;
        for record in records {
            self.state.apply(record);
        }
        Ok(())
    }

    /// Rewrites the journal as the records of the current state (pending events,
    /// reservation, next number, input positions): written to a temporary file,
    /// synced, renamed over the journal, directory synced. A crash at any point
    /// leaves either the old or the new journal, both of which replay to the same
    /// state.
    pub(crate) fn compact(&mut self) -> Result<(), ClientError> {
        let tmp = self.dir.join(JOURNAL_TMP);
        let path = self.dir.join(JOURNAL);
        let mut bytes = Vec::new();
        for record in self.state.snapshot() {
            record.encode(&mut bytes);
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        self.len = bytes.len() as u64;
        self.poisoned = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sequence: u64, position: Option<(u32, u64)>) -> Record {
        Record::Event {
            sequence,
            position,
            envelope: Bytes::from(format!("envelope {sequence}")),
        }
    }

    fn all_kinds() -> Vec<Record> {
        vec![
            Record::Identity {
                vkey: "a.example/s+01020304+AQID".into(),
            },
            Record::Reserve { until: 1024 },
            Record::File {
                id: 3,
                identity: FileIdentity { dev: 7, ino: 99 },
                path: PathBuf::from("/var/log/app.log"),
            },
            event(0, Some((3, 17))),
            event(1, None),
            Record::Ack {
                ranges: vec![(0, 0), (5, 9)],
            },
            Record::Cursor {
                file: 3,
                offset: 40,
            },
            Record::Next { sequence: 12 },
        ]
    }

    #[test]
    fn every_record_kind_round_trips() {
        let records = all_kinds();
        let mut bytes = Vec::new();
        for record in &records {
            record.encode(&mut bytes);
        }
        let (parsed, good) = parse_journal(&bytes);
        assert_eq!(parsed, records);
        assert_eq!(good, bytes.len());
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_at_the_last_whole_record() {
        let mut bytes = Vec::new();
        event(0, None).encode(&mut bytes);
        event(1, None).encode(&mut bytes);
        let whole = bytes.len();
        let mut last = Vec::new();
        event(2, Some((0, 5))).encode(&mut last);
        // Every strict prefix of the last record is a torn write.
        for cut in 0..last.len() {
            let mut torn = bytes.clone();
            torn.extend_from_slice(&last[..cut]);
            let (parsed, good) = parse_journal(&torn);
            assert_eq!(parsed.len(), 2, "cut at {cut}");
            assert_eq!(good, whole, "cut at {cut}");
        }
        // A flipped byte anywhere in the last record fails its checksum.
        for at in 4..last.len() {
            let mut corrupt = bytes.clone();
            let mut record = last.clone();
            record[at] ^= 0x40;
            corrupt.extend_from_slice(&record);
            assert_eq!(parse_journal(&corrupt).1, whole, "flip at {at}");
        }
    }

    #[test]
    fn replay_tracks_pending_numbers_and_positions() {
        let mut state = State::default();
        for record in all_kinds() {
            state.apply(&record);
        }
        assert_eq!(state.next, 12);
        assert_eq!(state.reserved_until, 1024);
        assert_eq!(state.pending.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(
            state.files.get(&3),
            Some(&(
                PathBuf::from("/var/log/app.log"),
                FileIdentity { dev: 7, ino: 99 },
                40
            ))
        );
        // A new file at the same path replaces the old one.
        state.apply(&Record::File {
            id: 4,
            identity: FileIdentity { dev: 7, ino: 100 },
            path: PathBuf::from("/var/log/app.log"),
        });
        assert_eq!(state.files.len(), 1);
        assert_eq!(state.files[&4].2, 0);
        assert_eq!(state.next_file, 5);
        // The snapshot replays to the same state.
        let mut again = State::default();
        for record in state.snapshot() {
            again.apply(&record);
        }
        assert_eq!(again, state);
    }

    #[test]
    fn acknowledgements_become_ranges() {
        assert_eq!(
            ack_records(&[5, 3, 4, 9, 1, 4]),
            vec![Record::Ack {
                ranges: vec![(1, 1), (3, 5), (9, 9)]
            }]
        );
        let spread: Vec<u64> = (0..(MAX_ACK_RANGES as u64 + 1)).map(|i| i * 2).collect();
        assert_eq!(ack_records(&spread).len(), 2);
    }

    #[test]
    fn reopening_drops_a_torn_tail_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, opened) = Spool::open(dir.path()).unwrap();
        assert_eq!(opened.torn_bytes, 0);
        spool
            .write(&[Record::Reserve { until: 8 }, event(0, None), event(1, None)])
            .unwrap();
        drop(spool);
        let path = dir.path().join(JOURNAL);
        let mut torn = Vec::new();
        event(2, None).encode(&mut torn);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn[..torn.len() - 3]).unwrap();
        drop(file);
        let (spool, opened) = Spool::open(dir.path()).unwrap();
        assert_eq!(opened.torn_bytes, torn.len() as u64 - 3);
        assert_eq!(spool.state.next, 2);
        assert_eq!(spool.state.pending.len(), 2);
        // Compaction rewrote the journal without the torn bytes.
        let (records, good) = parse_journal(&std::fs::read(&path).unwrap());
        assert_eq!(good as u64, std::fs::metadata(&path).unwrap().len());
        assert!(records.contains(&Record::Reserve { until: 8 }));
    }
}
