//! The bounded queue between callers (any thread, any task) and the sequencer thread.
//!
//! Capacity is counted in entries and in bytes, from the push until the sequencer has
//! handed the request's round to the writer ([`Queue::release`]), so a round being
//! prepared still holds its room; a push that does not fit fails at once (`QueueFull`),
//! it never blocks. Only the sequencer thread waits, on a condition
//! variable, and callers wake it only when it is actually waiting.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_merkle::Hash;
use tokio::sync::oneshot;

use crate::LogError;
use crate::round::RoundReply;

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
        let (waiting, wake) = (state.entries, state.sequencer_waiting);
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
    pub(crate) fn take_batch(&self, max_entries: usize, max_wait: Duration) -> Batch {
        let mut state = self.lock();
        while state.items.is_empty() && !state.closed {
            state = self.wait(state, None);
        }
        if !max_wait.is_zero() {
            let first = state.items.front().map(|r| r.enqueued);
            if let Some(deadline) = first.and_then(|t| t.checked_add(max_wait)) {
                while !state.closed && state.entries < max_entries {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    state = self.wait(state, Some(deadline - now));
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
        let waiting = state.entries;
        drop(state);
        metrics::gauge!(crate::metrics::QUEUE_ENTRIES).set(waiting as f64);
        Batch::Round(taken)
    }

    /// Frees the room of taken requests (`entries` entries of `bytes` bytes in all).
    pub(crate) fn release(&self, entries: usize, bytes: usize) {
        let mut state = self.lock();
        state.held_entries = state.held_entries.saturating_sub(entries);
        state.held_bytes = state.held_bytes.saturating_sub(bytes);
    }

    fn wait<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        state.sequencer_waiting = true;
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
