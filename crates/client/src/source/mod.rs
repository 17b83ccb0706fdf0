//! A signed, sequenced source: numbers and signs events, journals them in a synced
//! spool before they are sent, sends them in batches until the log acknowledges them,
//! and after a crash re-sends what was not acknowledged and declares the numbers it
//! had reserved but never used.
//!
//! # The spool
//!
//! A spool is a directory owned by one source (one signing key) and one process
//! at a time; a source key is used with one spool only (the spool is what keeps a
//! number from being given twice, so two spools for one key would sign different
//! events under the same numbers: equivocation). It holds:
//!
//! - `journal`: an append-only sequence of records. Each record is a 4-byte
//!   big-endian body length, the 32-byte checksum `SHA-256(0x00 || body)`, and the
//!   body, whose first byte is its kind:
//!   - *identity*: the source's vkey (the spool refuses another key);
//!   - *reserve* `until`: every number below `until` is reserved;
//!   - *event* `sequence`, optional input position (file id, offset after the line),
//!     envelope: a signed event, journaled before it is sent;
//!   - *ack* ranges: numbers the log acknowledged (new or already present);
//!   - *file* id, device, inode, path: an input file being followed, from offset 0;
//!   - *cursor* file id, offset: input consumed without an event (a skipped line,
//!     a truncated file starting over);
//!   - *next* `sequence`: the next number is at least this one.
//! - `journal.tmp`: a compacted journal being written (see below); ignored at
//!   start.
//! - `lock`: the process id of the emitter using the spool.
//!
//! # What is durable when
//!
//! Every call that writes ([`Source::emit`], [`Source::emit_batch`],
//! [`Source::heartbeat`], acknowledgements, input tracking) appends its records in
//! one `write` and returns only after `fdatasync` returned. So when `emit` returns,
//! the event, its number and the input position after its line are on disk
//! together; an event is sent only after that. Numbers are reserved in blocks
//! ([`SourceOptions::reserve_block`]): a *reserve* record is written (in the same
//! synced write as the first event that needs it) before any number of the block is
//! given out, so a number is never given twice, even after a crash. A clean
//! [`Source::close`] shrinks the reservation to the next unused number.
//!
//! Compaction rewrites the journal as the records of its current state
//! (acknowledged events dropped) into `journal.tmp`, syncs it, renames it over
//! `journal` and syncs the directory: a crash leaves the old or the new journal, and
//! both replay to the same state.
//!
//! # Start-up recovery
//!
//! [`Source::open`] replays the journal from the start and stops at the first record
//! that is short, oversize or fails its checksum: the tail torn by a crash during a
//! write (the journal is only appended to). That record's `emit` never returned, so
//! its event was never accepted nor sent; it is dropped (the journal is compacted at
//! once, so nothing is ever written behind it). Then:
//! - events journaled and not acknowledged are queued to be sent again with their
//!   original bytes (at-least-once: the log stores identical bytes once and
//!   answers a repeat as a duplicate, which counts as acknowledged);
//! - numbers reserved but never given to an event (the rest of the block the
//!   crashed process was using, and any torn event's number) are declared in one
//!   signed unused-sequence event, numbered from a new block, so an auditor does not
//!   read an honest crash as a gap; a number lost any other way still reads as one.

mod sender;
mod spool;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use merklog_event::{Event, EventDraft, MEDIA_TYPE_HEARTBEAT, MEDIA_TYPE_UNUSED, UnusedRange};
use merklog_note::{Ed25519Signer, Signer as _};

pub use sender::SendSummary;
pub use spool::{FileIdentity, InputPosition};

use crate::ClientError;
use spool::{Record, Spool, ack_records};

/// The lock file's name inside the spool directory.
const LOCK: &str = "lock";

/// How a [`Source`] numbers, batches and compacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOptions {
    /// Numbers reserved at once. After a crash, the unused rest of a block is
    /// declared unused; larger blocks mean fewer reservation records.
    pub reserve_block: u64,
    /// Most events per Append call.
    pub batch_entries: usize,
    /// An Append call is closed once it holds this many bytes.
    pub batch_bytes: usize,
    /// Compact the journal when it grew past this many bytes and nothing is
    /// waiting to be sent.
    pub compact_after_bytes: u64,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            reserve_block: 1024,
            batch_entries: 256,
            batch_bytes: 4 << 20,
            compact_after_bytes: 16 << 20,
        }
    }
}

/// One event to journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmitItem<'a> {
    /// The payload's media type.
    pub media_type: &'a str,
    /// The payload's exact bytes.
    pub payload: &'a [u8],
    /// For a line read from a followed file: the file's id (see
    /// [`Source::track_input`]) and the offset just after the line, made durable
    /// with the event.
    pub position: Option<(u32, u64)>,
}

/// What [`Source::open`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Journal records replayed.
    pub records: usize,
    /// Bytes of a torn last record (a crash during a write) that were dropped.
    pub torn_bytes: u64,
    /// Journaled events not yet acknowledged, to be sent again.
    pub unacknowledged: usize,
    /// The numbers declared unused, and the declaration's own number.
    pub declared_unused: Option<(UnusedRange, u64)>,
    /// The next number to be given.
    pub next_sequence: u64,
}

/// A signing, journaling source of events (see the module documentation).
///
/// Writing methods block on `fdatasync`; call them from a blocking thread (such as
/// `tokio::task::spawn_blocking`) in async code. One [`Source`] may be shared
/// (`Arc`) between a thread that emits and a task that sends.
pub struct Source {
    signer: Ed25519Signer,
    options: SourceOptions,
    dir: PathBuf,
    spool: Mutex<Spool>,
    /// Woken when something is journaled.
    work: tokio::sync::Notify,
    /// When the last event (of any kind) was journaled.
    last_emit: Mutex<Instant>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.signer.name())
            .field("spool", &self.dir)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn event_error(error: merklog_event::EventError) -> ClientError {
    ClientError::Input(format!("event: {error}"))
}

/// Takes the spool's lock file: refused while a live process holds it (its id is
/// in the file and `/proc/<id>` exists), taken over from a dead one.
fn lock(dir: &Path) -> Result<(), ClientError> {
    let path = dir.join(LOCK);
    let ours = std::process::id();
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(holder) = text.trim().parse::<u32>()
        && holder != ours
        && Path::new(&format!("/proc/{holder}")).exists()
    {
        return Err(ClientError::Input(format!(
            "spool {} is in use by process {holder}; one emitter per spool (a second one \
             would give the same numbers to other events)",
            dir.display()
        )));
    }
    std::fs::write(&path, format!("{ours}\n")).map_err(|source| ClientError::Io { path, source })
}

impl Source {
    /// Opens (or creates) the spool in `dir` for the source whose key is `signer`
    /// (the key's name is the source's name), and recovers it: drops a torn last
    /// record, queues unacknowledged events, and declares the reserved numbers that
    /// were never used in one signed, journaled event.
    pub fn open(
        signer: Ed25519Signer,
        dir: &Path,
        options: SourceOptions,
    ) -> Result<(Source, Recovery), ClientError> {
        let options = SourceOptions {
            reserve_block: options.reserve_block.max(1),
            batch_entries: options.batch_entries.max(1),
            batch_bytes: options.batch_bytes.max(1),
            ..options
        };
        std::fs::create_dir_all(dir).map_err(|source| ClientError::Io {
            path: dir.to_owned(),
            source,
        })?;
        lock(dir)?;
        let (mut spool, opened) = Spool::open(dir)?;
        let vkey = signer.verifier().to_vkey();
        match &spool.state.identity {
            Some(owner) if *owner != vkey => {
                return Err(ClientError::Input(format!(
                    "spool {} belongs to the source key {owner}, not {vkey}",
                    dir.display()
                )));
            }
            Some(_) => {}
            None => spool.write(&[Record::Identity { vkey }])?,
        }
        let mut declared_unused = None;
        let state = &spool.state;
        if state.reserved_until > state.next {
            // Numbers next..reserved_until were reserved by a process that did not
            // close cleanly and never given to a journaled event.
            let range = UnusedRange {
                first: state.next,
                last: state.reserved_until - 1,
            };
            let own = state.reserved_until;
            let payload = range.to_payload();
            let event = Event::sign(
                &signer,
                &EventDraft {
                    source: signer.name(),
                    sequence: own,
                    timestamp_ms: now_ms(),
                    media_type: MEDIA_TYPE_UNUSED,
                    payload: &payload,
                },
            )
            .map_err(event_error)?;
            spool.write(&[
                Record::Reserve {
                    until: own.saturating_add(options.reserve_block),
                },
                Record::Event {
                    sequence: own,
                    position: None,
                    envelope: Bytes::from(event.into_bytes()),
                },
            ])?;
            declared_unused = Some((range, own));
        }
        let recovery = Recovery {
            records: opened.records,
            torn_bytes: opened.torn_bytes,
            unacknowledged: spool
                .state
                .pending
                .len()
                .saturating_sub(usize::from(declared_unused.is_some())),
            declared_unused,
            next_sequence: spool.state.next,
        };
        let source = Source {
            signer,
            options,
            dir: dir.to_owned(),
            spool: Mutex::new(spool),
            work: tokio::sync::Notify::new(),
            last_emit: Mutex::new(Instant::now()),
        };
        if !source.spool()?.state.pending.is_empty() {
            source.work.notify_one();
        }
        Ok((source, recovery))
    }

    fn spool(&self) -> Result<MutexGuard<'_, Spool>, ClientError> {
        self.spool
            .lock()
            .map_err(|_| ClientError::Input("the spool's lock was poisoned by a panic".into()))
    }

    /// The source's name (its key's name).
    pub fn name(&self) -> &str {
        self.signer.name()
    }

    /// The source's verifier key.
    pub fn vkey(&self) -> String {
        self.signer.verifier().to_vkey()
    }

    /// The spool directory.
    pub fn spool_dir(&self) -> &Path {
        &self.dir
    }

    /// The options in use.
    pub fn options(&self) -> &SourceOptions {
        &self.options
    }

    /// Signs and journals one event; returns its number once it is durable.
    pub fn emit(&self, media_type: &str, payload: &[u8]) -> Result<u64, ClientError> {
        let numbers = self.emit_batch(&[EmitItem {
            media_type,
            payload,
            position: None,
        }])?;
        numbers
            .first()
            .copied()
            .ok_or_else(|| ClientError::Input("no event was journaled".into()))
    }

    /// Signs and journals several events (consecutive numbers) in one synced
    /// write; returns their numbers once they are durable. Nothing is journaled if
    /// one cannot be signed (e.g. its envelope would exceed 65,535 bytes).
    pub fn emit_batch(&self, items: &[EmitItem<'_>]) -> Result<Vec<u64>, ClientError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut spool = self.spool()?;
        let first = spool.state.next;
        let count = items.len() as u64;
        let end = first.saturating_add(count);
        let mut records = Vec::with_capacity(items.len() + 1);
        if end > spool.state.reserved_until {
            records.push(Record::Reserve {
                until: end.saturating_add(self.options.reserve_block),
            });
        }
        let timestamp_ms = now_ms();
        let mut numbers = Vec::with_capacity(items.len());
        for (sequence, item) in (first..end).zip(items) {
            let event = Event::sign(
                &self.signer,
                &EventDraft {
                    source: self.signer.name(),
                    sequence,
                    timestamp_ms,
                    media_type: item.media_type,
                    payload: item.payload,
                },
            )
            .map_err(event_error)?;
            records.push(Record::Event {
                sequence,
                position: item.position,
                envelope: Bytes::from(event.into_bytes()),
            });
            numbers.push(sequence);
        }
        spool.write(&records)?;
        drop(spool);
        if let Ok(mut last) = self.last_emit.lock() {
            *last = Instant::now();
        }
        self.work.notify_one();
        Ok(numbers)
    }

    /// Journals a heartbeat (an empty event of the reserved heartbeat type).
    pub fn heartbeat(&self) -> Result<u64, ClientError> {
        self.emit(MEDIA_TYPE_HEARTBEAT, &[])
    }

    /// Journals a heartbeat if no event was journaled for `every`; returns its
    /// number if it did.
    pub fn heartbeat_if_idle(&self, every: Duration) -> Result<Option<u64>, ClientError> {
        let idle = self
            .last_emit
            .lock()
            .map(|last| last.elapsed() >= every)
            .unwrap_or(true);
        if idle {
            self.heartbeat().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Where the spool says the input at `path` was read up to.
    pub fn input_position(&self, path: &Path) -> Result<Option<InputPosition>, ClientError> {
        let spool = self.spool()?;
        Ok(spool
            .state
            .files
            .iter()
            .find(|(_, (p, _, _))| p == path)
            .map(|(id, (_, identity, offset))| InputPosition {
                file: *id,
                identity: *identity,
                offset: *offset,
            }))
    }

    /// Starts tracking the file `identity` at `path` from offset 0 (a new file, or
    /// the file that replaced a rotated one); returns its id. Durable on return.
    pub fn track_input(&self, path: &Path, identity: FileIdentity) -> Result<u32, ClientError> {
        let mut spool = self.spool()?;
        let id = spool.state.next_file;
        spool.write(&[Record::File {
            id,
            identity,
            path: path.to_owned(),
        }])?;
        Ok(id)
    }

    /// Records that input file `file` was consumed up to `offset` without an event
    /// (a skipped line; a truncated file read again from 0). Durable on return.
    pub fn set_input_offset(&self, file: u32, offset: u64) -> Result<(), ClientError> {
        self.spool()?.write(&[Record::Cursor { file, offset }])
    }

    /// Journaled events not yet acknowledged, lowest numbers first, up to the
    /// batch limits.
    pub fn unacknowledged(&self) -> Result<Vec<(u64, Bytes)>, ClientError> {
        let spool = self.spool()?;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        for (sequence, envelope) in &spool.state.pending {
            if batch.len() >= self.options.batch_entries || bytes >= self.options.batch_bytes {
                break;
            }
            bytes = bytes.saturating_add(envelope.len());
            batch.push((*sequence, envelope.clone()));
        }
        Ok(batch)
    }

    /// How many journaled events await acknowledgement.
    pub fn pending(&self) -> Result<usize, ClientError> {
        Ok(self.spool()?.state.pending.len())
    }

    /// The next number to be given.
    pub fn next_sequence(&self) -> Result<u64, ClientError> {
        Ok(self.spool()?.state.next)
    }

    /// Marks events acknowledged by the log (synced), and compacts the journal
    /// when it is large and nothing is waiting.
    pub fn acknowledge(&self, sequences: &[u64]) -> Result<(), ClientError> {
        let mut spool = self.spool()?;
        spool.write(&ack_records(sequences))?;
        if spool.state.pending.is_empty() && spool.len() > self.options.compact_after_bytes {
            spool.compact()?;
        }
        Ok(())
    }

    /// Waits until something is journaled (returns at once if something was since
    /// the last wait).
    pub async fn journaled(&self) {
        self.work.notified().await;
    }

    /// Closes the spool cleanly: the reservation shrinks to the next unused number
    /// (so the next start declares nothing unused) and the journal is compacted.
    /// Unacknowledged events stay journaled and are sent by the next start.
    pub fn close(&self) -> Result<(), ClientError> {
        let mut spool = self.spool()?;
        let next = spool.state.next;
        spool.write(&[Record::Reserve { until: next }])?;
        spool.compact()?;
        let _ = std::fs::remove_file(self.dir.join(LOCK));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
