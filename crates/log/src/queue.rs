//! The bounded queue between callers (any thread, any task) and the sequencer thread.
//!
//! Capacity is counted in entries and in bytes, from the push until the sequencer has
//! handed the request's round to the writer ([`Queue::release`]), so a round being
//! prepared still holds its room; a push that does not fit fails at once (`QueueFull`),
//! it never blocks. Only the sequencer thread waits, on a condition
//! variable, and callers wake it only when it is actually waiting.
//!
//! The queue also knows whether the writer thread is busy with a round. While it is,
//! the sequencer takes the next batch only once the queue holds as many entries as
//! that round (or a full batch): a batch taken earlier could not be written any sooner,
//! and calls arriving during the write would wait a whole extra round behind it.
//! Under batched load the next round is still prepared during the write.
//!
//! Once the writer is free, a round of small concurrent calls may linger briefly for
//! more (group commit): each round has a fixed cost (signature, synced write, thread
//! hand-overs) that a two-core machine pays in CPU the calls themselves need, so rounds
//! of a few entries make everything slower. It lingers only after a round that held
//! several calls yet few entries, for at most half the last synced write, counted from
//! its first request's arrival; a lone caller is never held up.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_merkle::Hash;
use tokio::sync::oneshot;

use crate::LogError;
use crate::round::RoundReply;

/// A round of this many entries shares its fixed cost widely enough: lingering for more
/// would only add latency. Smaller rounds are also the ones the sequencer writes itself
/// while the writer is idle ([`Queue::write_here`]).
const WORTHWHILE_ROUND: usize = 64;

/// The longest adaptive linger, whatever the synced writes take.
const MAX_LINGER: Duration = Duration::from_millis(1);

/// One append call waiting to be sequenced.
pub(crate) struct Request {
    pub(crate) entries: Vec<Bytes>,
    /// `hash_leaf` of each entry, computed by the caller (off the sequencer thread).
    pub(crate) leaf_hashes: Vec<Hash>,
    /// Each entry's unique key, if it has one; empty when no entry has one (boxed:
    /// the request stays small, and most have none).
    pub(crate) keys: Box<[Option<Bytes>]>,
    /// Each entry's index terms; empty when no entry has any (boxed, like `keys`).
    pub(crate) terms: Box<[Vec<crate::IndexTerm>]>,
    pub(crate) bytes: usize,
    pub(crate) enqueued: Instant,
    pub(crate) reply: oneshot::Sender<Result<RoundReply, LogError>>,
}

/// What the sequencer gets from [`Queue::take_batch`].
pub(crate) enum Batch {
    /// Requests to integrate in one round, in queue order.
    Round(Vec<Request>),
    /// The queue was closed; these requests were still waiting and will not be sequenced.
    Closed(Vec<Request>),
}

#[derive(Default)]
struct State {
    items: VecDeque<Request>,
    /// Entries waiting in `items`.
    entries: usize,
    /// Entries and bytes holding capacity: waiting, or taken and not yet released.
    held_entries: usize,
    held_bytes: usize,
    closed: bool,
    sequencer_waiting: bool,
    /// The queued entries that let the waiting sequencer go on.
    wake_at: usize,
    /// Wake-ups sent by pushes.
    #[cfg(test)]
    push_wakes: usize,
    /// Rounds handed to the writer and not yet finished by it.
    writing: usize,
    /// Entries of the round handed over last.
    writing_entries: usize,
    /// Requests and entries of the batch taken last.
    last_requests: usize,
    last_entries: usize,
    /// How long the last synced write took.
    last_sync: Duration,
}

impl State {
    /// How long a non-full batch may wait for more since its first request arrived,
    /// and the entry count that ends the wait early.
    fn linger(&self, max_entries: usize, max_wait: Duration) -> (Duration, usize) {
        if !max_wait.is_zero() {
            (max_wait, max_entries)
        } else if self.last_requests >= 2 && self.last_entries < WORTHWHILE_ROUND {
            (
                (self.last_sync / 2).min(MAX_LINGER),
                WORTHWHILE_ROUND.min(max_entries),
            )
        } else {
            (Duration::ZERO, max_entries)
        }
    }
}

pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    capacity_entries: usize,
    capacity_bytes: usize,
}

impl Queue {
    pub(crate) fn new(capacity_entries: usize, capacity_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            capacity_entries,
            capacity_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue half-updated (every
        // critical section updates counters and items together), so recover the guard.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Enqueues `request`, or drops it (unanswered) with `QueueFull` / `ShuttingDown`.
    pub(crate) fn push(&self, request: Request) -> Result<(), LogError> {
        let mut state = self.lock();
        if state.closed {
            return Err(LogError::ShuttingDown);
        }
        let held_entries = state.held_entries.saturating_add(request.entries.len());
        let held_bytes = state.held_bytes.saturating_add(request.bytes);
        if held_entries > self.capacity_entries || held_bytes > self.capacity_bytes {
            return Err(LogError::QueueFull);
        }
        state.held_entries = held_entries;
        state.held_bytes = held_bytes;
        state.entries = state.entries.saturating_add(request.entries.len());
        state.items.push_back(request);
        // Waking the sequencer costs a system call and a context switch: only when it
        // can act, and only once (it re-checks everything under the lock).
        let wake = state.sequencer_waiting && state.entries >= state.wake_at;
        if wake {
            state.sequencer_waiting = false;
            #[cfg(test)]
            {
                state.push_wakes += 1;
            }
        }
        let waiting = state.entries;
        // Outside the lock: the woken sequencer need not wait for it, and the gauge's
        // registry look-up does not hold up other callers.
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        metrics::gauge!(crate::metrics::QUEUE_ENTRIES).set(waiting as f64);
        Ok(())
    }

    /// Whether [`close`](Queue::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Stops accepting requests and wakes the sequencer.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.ready.notify_all();
    }

    /// Blocks until at least one request is queued (or the queue is closed), then takes
    /// whole requests in order while they fit in `max_entries` (always at least one).
    ///
    /// If the queued entries do not fill a batch and `max_wait` is positive, waits until
    /// `max_wait` has passed since the first request was queued, or the batch is full.
    /// With `max_wait` zero it may linger likewise, as the module documentation says.
    ///
    /// While the writer is busy ([`handing_over`](Queue::handing_over) without a matching
    /// [`written`](Queue::written)), it first waits until the writer is done or the queue
    /// holds at least as many entries as the round being written.
    pub(crate) fn take_batch(&self, max_entries: usize, max_wait: Duration) -> Batch {
        let mut state = self.lock();
        loop {
            let wanted = if state.writing > 0 {
                state.writing_entries.clamp(1, max_entries.max(1))
            } else {
                1
            };
            if state.closed || state.entries >= wanted {
                break;
            }
            state = self.wait(state, wanted, None);
        }
        let (linger, enough) = state.linger(max_entries, max_wait);
        if !linger.is_zero() {
            let first = state.items.front().map(|r| r.enqueued);
            if let Some(deadline) = first.and_then(|t| t.checked_add(linger)) {
                while !state.closed && state.entries < enough {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    state = self.wait(state, enough, Some(deadline - now));
                }
            }
        }
        if state.closed {
            state.entries = 0;
            state.held_entries = 0;
            state.held_bytes = 0;
            return Batch::Closed(state.items.drain(..).collect());
        }
        let mut taken = Vec::new();
        let mut taken_entries = 0usize;
        while let Some(next) = state.items.front() {
            let n = next.entries.len();
            if !taken.is_empty() && taken_entries.saturating_add(n) > max_entries {
                break;
            }
            let Some(request) = state.items.pop_front() else {
                break;
            };
            taken_entries = taken_entries.saturating_add(n);
            state.entries = state.entries.saturating_sub(n);
            taken.push(request);
        }
        state.last_requests = taken.len();
        state.last_entries = taken_entries;
        let waiting = state.entries;
        drop(state);
        metrics::gauge!(crate::metrics::QUEUE_ENTRIES).set(waiting as f64);
        Batch::Round(taken)
    }

    /// Whether the sequencer should write a round of `entries` entries itself rather
    /// than hand it to the writer thread: the writer is idle and the round is small.
    /// Handing over costs two thread wake-ups per round, which a round of a few
    /// entries pays for nothing: it is the next batch's preparation that the writer
    /// thread lets overlap the write, and small rounds are cheap to prepare. A caller
    /// that gets true still reports the round through
    /// [`handing_over`](Queue::handing_over) and [`written`](Queue::written).
    pub(crate) fn write_here(&self, entries: usize) -> bool {
        entries < WORTHWHILE_ROUND && self.lock().writing == 0
    }

    /// The sequencer is about to hand a round of `entries` entries to the writer.
    pub(crate) fn handing_over(&self, entries: usize) {
        let mut state = self.lock();
        state.writing = state.writing.saturating_add(1);
        state.writing_entries = entries;
    }

    /// The writer finished a round handed over (or the hand-over failed); `sync` is
    /// how long its synced write took, if it made one.
    pub(crate) fn written(&self, sync: Option<Duration>) {
        let mut state = self.lock();
        state.writing = state.writing.saturating_sub(1);
        if let Some(sync) = sync {
            state.last_sync = sync;
        }
        let wake = state.sequencer_waiting;
        state.sequencer_waiting = false;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
    }

    /// Waits until the writer finished every round handed to it.
    pub(crate) fn wait_written(&self) {
        let mut state = self.lock();
        while state.writing > 0 {
            // No push lets it go on: only a finished write wakes it.
            state = self.wait(state, usize::MAX, None);
        }
    }

    /// Frees the room of taken requests (`entries` entries of `bytes` bytes in all).
    pub(crate) fn release(&self, entries: usize, bytes: usize) {
        let mut state = self.lock();
        state.held_entries = state.held_entries.saturating_sub(entries);
        state.held_bytes = state.held_bytes.saturating_sub(bytes);
    }

    /// Waits for a push that brings the queue to `wanted` entries, a finished write, a
    /// close or the timeout, whichever comes first.
    fn wait<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        wanted: usize,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        state.sequencer_waiting = true;
        state.wake_at = wanted;
        let mut state = match timeout {
            None => self
                .ready
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            Some(t) => {
                self.ready
                    .wait_timeout(state, t)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0
            }
        };
        state.sequencer_waiting = false;
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        n: usize,
        bytes_each: usize,
    ) -> (Request, oneshot::Receiver<Result<RoundReply, LogError>>) {
        let (tx, rx) = oneshot::channel();
        let entries: Vec<Bytes> = (0..n).map(|_| Bytes::from(vec![1u8; bytes_each])).collect();
        (
            Request {
                leaf_hashes: vec![[0u8; 32].into(); n],
                keys: Box::default(),
                terms: Box::default(),
                bytes: n * bytes_each,
                entries,
                enqueued: Instant::now(),
                reply: tx,
            },
            rx,
        )
    }

    #[test]
    fn full_by_entries_or_bytes_is_refused_at_once() {
        let queue = Queue::new(10, 100);
        assert!(queue.push(request(6, 1).0).is_ok());
        let err = queue.push(request(5, 1).0).err().unwrap();
        assert_eq!(err, LogError::QueueFull);
        assert!(queue.push(request(4, 1).0).is_ok());
        let queue = Queue::new(10, 100);
        let err = queue.push(request(2, 51).0).err().unwrap();
        assert_eq!(err, LogError::QueueFull);
    }

    #[test]
    fn batches_take_whole_requests_in_order() {
        let queue = Queue::new(100, 10_000);
        for n in [3, 4, 5] {
            assert!(queue.push(request(n, 1).0).is_ok());
        }
        let Batch::Round(first) = queue.take_batch(8, Duration::ZERO) else {
            panic!("closed")
        };
        assert_eq!(
            first.iter().map(|r| r.entries.len()).collect::<Vec<_>>(),
            [3, 4]
        );
        // A request larger than the batch limit is still taken alone.
        let Batch::Round(second) = queue.take_batch(2, Duration::ZERO) else {
            panic!("closed")
        };
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].entries.len(), 5);
        // Taken requests hold their room until released.
        assert!(queue.push(request(100, 1).0).is_err());
        queue.release(12, 12);
        assert!(queue.push(request(100, 1).0).is_ok());
    }

    #[test]
    fn close_hands_back_waiting_requests_and_refuses_new_ones() {
        let queue = Queue::new(100, 10_000);
        assert!(queue.push(request(1, 1).0).is_ok());
        queue.close();
        let Batch::Closed(left) = queue.take_batch(8, Duration::ZERO) else {
            panic!("not closed")
        };
        assert_eq!(left.len(), 1);
        let err = queue.push(request(1, 1).0).err().unwrap();
        assert_eq!(err, LogError::ShuttingDown);
    }

    fn taken_in(queue: &std::sync::Arc<Queue>) -> std::sync::mpsc::Receiver<usize> {
        let (tx, rx) = std::sync::mpsc::channel();
        let queue = queue.clone();
        std::thread::spawn(move || {
            if let Batch::Round(batch) = queue.take_batch(100, Duration::ZERO) {
                let _ = tx.send(batch.iter().map(|r| r.entries.len()).sum());
            }
        });
        rx
    }

    /// A queue whose writer is busy with a round of `round` entries, holding `queued`
    /// entries, and a sequencer that has not taken them after 50 ms.
    fn busy_writer(
        round: usize,
        queued: usize,
    ) -> (std::sync::Arc<Queue>, std::sync::mpsc::Receiver<usize>) {
        let queue = std::sync::Arc::new(Queue::new(100, 10_000));
        queue.handing_over(round);
        assert!(queue.push(request(queued, 1).0).is_ok());
        let taken = taken_in(&queue);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            taken.try_recv().is_err(),
            "took {queued} entries while a round of {round} was written"
        );
        (queue, taken)
    }

    #[test]
    fn while_the_writer_is_busy_waits_for_as_many_entries_as_its_round() {
        let (queue, taken) = busy_writer(3, 1);
        assert!(queue.push(request(2, 1).0).is_ok());
        assert_eq!(taken.recv_timeout(Duration::from_secs(10)), Ok(3));
    }

    #[test]
    fn a_finished_write_releases_a_smaller_batch() {
        let (queue, taken) = busy_writer(50, 2);
        queue.written(None);
        assert_eq!(taken.recv_timeout(Duration::from_secs(10)), Ok(2));
        // An idle writer: taken at once.
        assert!(queue.push(request(1, 1).0).is_ok());
        assert_eq!(
            taken_in(&queue).recv_timeout(Duration::from_secs(10)),
            Ok(1)
        );
        // A round larger than a batch waits only for a full batch.
        queue.release(3, 3);
        queue.handing_over(500);
        assert!(queue.push(request(100, 1).0).is_ok());
        assert_eq!(
            taken_in(&queue).recv_timeout(Duration::from_secs(10)),
            Ok(100)
        );
    }

    #[test]
    fn lingers_only_after_rounds_of_several_small_calls() {
        let sync = Duration::from_micros(600);
        let state = |last_requests, last_entries| State {
            last_requests,
            last_entries,
            last_sync: sync,
            ..State::default()
        };
        // Several calls, few entries: half a sync, or until a worthwhile round.
        assert_eq!(
            state(4, 4).linger(8192, Duration::ZERO),
            (sync / 2, WORTHWHILE_ROUND)
        );
        assert_eq!(state(4, 4).linger(10, Duration::ZERO), (sync / 2, 10));
        // A lone caller is never held up; large rounds need no more.
        assert_eq!(state(1, 1).linger(8192, Duration::ZERO).0, Duration::ZERO);
        assert_eq!(
            state(2, 1000).linger(8192, Duration::ZERO).0,
            Duration::ZERO
        );
        // Slow syncs do not make the linger unbounded.
        let slow = State {
            last_sync: Duration::from_secs(1),
            ..state(4, 4)
        };
        assert_eq!(slow.linger(8192, Duration::ZERO).0, MAX_LINGER);
        // A configured wait replaces the adaptive one.
        let wait = Duration::from_millis(5);
        assert_eq!(state(1, 1).linger(8192, wait), (wait, 8192));
    }

    #[test]
    fn a_batch_records_its_size_and_a_write_its_sync() {
        let queue = Queue::new(100, 10_000);
        for _ in 0..3 {
            assert!(queue.push(request(2, 1).0).is_ok());
        }
        let Batch::Round(batch) = queue.take_batch(100, Duration::ZERO) else {
            panic!("closed")
        };
        assert_eq!(batch.len(), 3);
        queue.handing_over(6);
        queue.written(Some(Duration::from_micros(800)));
        let state = queue.lock();
        assert_eq!((state.last_requests, state.last_entries), (3, 6));
        assert_eq!(state.last_sync, Duration::from_micros(800));
        assert_eq!(state.writing, 0);
    }

    #[test]
    fn pushes_wake_the_sequencer_once_it_can_go_on_and_only_once() {
        let queue = std::sync::Arc::new(Queue::new(100, 10_000));
        queue.handing_over(3);
        let taken = taken_in(&queue);
        let waiting = || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !queue.lock().sequencer_waiting {
                assert!(Instant::now() < deadline, "the sequencer never waited");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        waiting();
        assert!(queue.push(request(1, 1).0).is_ok());
        assert!(queue.push(request(1, 1).0).is_ok());
        assert_eq!(
            queue.lock().push_wakes,
            0,
            "woken below the round being written"
        );
        assert!(queue.push(request(1, 1).0).is_ok());
        assert_eq!(taken.recv_timeout(Duration::from_secs(10)), Ok(3));
        assert_eq!(queue.lock().push_wakes, 1);
        // Idle writer: the first push wakes it, a second before it ran does not again.
        queue.written(None);
        queue.release(3, 3);
        let taken = taken_in(&queue);
        waiting();
        {
            let state = queue.lock();
            assert!(state.sequencer_waiting);
        }
        assert!(queue.push(request(1, 1).0).is_ok());
        assert!(queue.push(request(1, 1).0).is_ok());
        let first = taken.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!((1..=2).contains(&first));
        assert_eq!(queue.lock().push_wakes, 2);
    }

    #[test]
    fn only_small_rounds_are_written_by_the_sequencer_and_only_while_the_writer_is_idle() {
        let queue = Queue::new(100, 10_000);
        assert!(queue.write_here(1));
        assert!(queue.write_here(WORTHWHILE_ROUND - 1));
        assert!(!queue.write_here(WORTHWHILE_ROUND));
        queue.handing_over(1);
        assert!(!queue.write_here(1));
        queue.written(None);
        assert!(queue.write_here(1));
    }

    #[test]
    fn waiting_for_the_writer_ends_when_every_handed_round_is_written() {
        let queue = std::sync::Arc::new(Queue::new(100, 10_000));
        queue.handing_over(1);
        queue.handing_over(0);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = queue.clone();
        std::thread::spawn(move || {
            waiter.wait_written();
            let _ = tx.send(());
        });
        std::thread::sleep(Duration::from_millis(50));
        queue.written(None);
        assert!(queue.push(request(1, 1).0).is_ok());
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            rx.try_recv().is_err(),
            "returned with a round still written"
        );
        queue.written(None);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(()));
    }

    #[test]
    fn closing_wakes_a_sequencer_waiting_for_the_writer() {
        let queue = std::sync::Arc::new(Queue::new(100, 10_000));
        queue.handing_over(5);
        assert!(queue.push(request(1, 1).0).is_ok());
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = queue.clone();
        std::thread::spawn(move || {
            let closed = matches!(waiter.take_batch(100, Duration::ZERO), Batch::Closed(_));
            let _ = tx.send(closed);
        });
        std::thread::sleep(Duration::from_millis(50));
        queue.close();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
    }

    #[test]
    fn waits_for_more_until_the_first_entry_is_old_enough() {
        let queue = std::sync::Arc::new(Queue::new(100, 10_000));
        assert!(queue.push(request(1, 1).0).is_ok());
        let pusher = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                assert!(queue.push(request(1, 1).0).is_ok());
            })
        };
        // The batch limit is 2: the wait ends when the second request arrives, long
        // before the 5 s deadline.
        let started = Instant::now();
        let Batch::Round(batch) = queue.take_batch(2, Duration::from_secs(5)) else {
            panic!("closed")
        };
        pusher.join().unwrap();
        assert_eq!(batch.len(), 2);
        assert!(started.elapsed() < Duration::from_secs(4));
    }
}
