//! Signature checks of concurrent calls, verified together.
//!
//! One Ed25519 verification costs tens of microseconds, and a batch verification
//! costs less per signature, but a call that carries one event has nothing to
//! batch with. So calls that arrive while others are being checked wait in one
//! queue, and one verification thread takes everything queued (up to
//! [`MAX_EVENTS`]) as one batch: under load the batches grow with the concurrency,
//! and a lone call is checked at once, on its own handler task. A call large
//! enough to be a good batch by itself skips the queue and is checked on a
//! blocking thread of its own, so large calls use every core.
//!
//! A merged batch that fails says only that some signature in it is bad, so every
//! call of it is then checked on its own: one caller's forged signature never
//! refuses another caller's events, and costs its batch-mates checks of their own
//! (only a principal admitted for a registered source gets this far).
//! Batch and single verification accept the same honest signatures (see
//! [`merklog_event::verify_batch`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use merklog_event::{Event, SourceKey, verify_batch};
use tokio::sync::oneshot;
use tonic::Status;

use super::ingest::{self, Screened};

/// Most events verified in one merged batch: the cost per signature falls little
/// beyond this, and a failed batch is checked again call by call.
const MAX_EVENTS: usize = 512;
/// A call with at most this many events, arriving while no other call is being
/// checked, is verified on its own task (it would be a batch of its own anyway,
/// and this saves two thread hand-offs).
const INLINE_EVENTS: usize = 4;
/// A call with at least this many events is a batch of its own: it gains little
/// from the queue, and checking it on its own thread keeps other cores busy.
const OWN_BATCH_EVENTS: usize = 16;

/// A call's screened entries, waiting for their signatures to be checked.
struct Job {
    screened: Screened,
    reply: oneshot::Sender<(Screened, Result<(), Status>)>,
}

/// The shared queue of signature checks and its thread.
pub(crate) struct Verifier {
    jobs: mpsc::Sender<Job>,
    /// Calls between entering [`Verifier::verify`] and getting their answer.
    in_flight: Arc<AtomicUsize>,
}

impl Verifier {
    /// Starts the verification thread; it ends when the verifier is dropped.
    pub(crate) fn start() -> std::io::Result<Verifier> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("merklog-verify".to_owned())
            .spawn(move || run(&queue))?;
        Ok(Verifier {
            jobs,
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Checks every signature of a call (all or nothing); a failure names the first
    /// bad entry of this call.
    pub(crate) async fn verify(&self, screened: Screened) -> Result<Screened, Status> {
        let counted = InFlight::enter(&self.in_flight);
        if counted.alone() && screened.signed.len() <= INLINE_EVENTS {
            return ingest::verify(&screened.signed).map(|()| screened);
        }
        if screened.signed.len() >= OWN_BATCH_EVENTS {
            return tokio::task::spawn_blocking(move || {
                ingest::verify(&screened.signed).map(|()| screened)
            })
            .await
            .map_err(|e| Status::internal(format!("verification task: {e}")))?;
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { screened, reply })
            .map_err(|_| Status::unavailable("signature verification has stopped"))?;
        let (screened, result) = answer
            .await
            .map_err(|_| Status::internal("signature verification ended without an answer"))?;
        result.map(|()| screened)
    }
}

/// Counts a call in flight until it is dropped (also when the caller goes away).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(counter))
    }

    /// Whether no other call is being checked.
    fn alone(&self) -> bool {
        self.0.load(Ordering::Acquire) == 1
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The verification thread: takes whatever is queued as one batch, until every
/// sender is gone.
fn run(queue: &mpsc::Receiver<Job>) {
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(mpsc::RecvError) => return,
            },
        };
        let mut events = first.screened.signed.len();
        let mut batch = vec![first];
        while events < MAX_EVENTS {
            let Ok(job) = queue.try_recv() else { break };
            if events + job.screened.signed.len() > MAX_EVENTS {
                carried = Some(job);
                break;
            }
            events += job.screened.signed.len();
            batch.push(job);
        }
        // A caller that went away needs no answer.
        batch.retain(|job| !job.reply.is_closed());
        let calls: Vec<&Screened> = batch.iter().map(|job| &job.screened).collect();
        let results = check(&calls);
        for (job, result) in batch.into_iter().zip(results) {
            // The caller may have gone since; then nothing waits for the answer.
            let _ = job.reply.send((job.screened, result));
        }
    }
}

/// The verdict on each call: one batch over all of them, and each on its own when
/// that fails (or when there is only one).
fn check(calls: &[&Screened]) -> Vec<Result<(), Status>> {
    let merged_ok = calls.len() > 1 && {
        let items: Vec<(&Event, &SourceKey)> = calls
            .iter()
            .flat_map(|call| call.signed.iter().map(|s| (&s.event, &s.source.key)))
            .collect();
        verify_batch(&items).is_ok()
    };
    calls
        .iter()
        .map(|call| {
            if merged_ok {
                Ok(())
            } else {
                ingest::verify(&call.signed)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::sources::registry::Registry;
    use crate::sources::settings::EntriesMode;
    use bytes::Bytes;
    use merklog_auth::Principal;
    use merklog_event::EventDraft;
    use merklog_note::Ed25519Signer;

    const SOURCES: [&str; 2] = ["a.example/one", "a.example/two"];

    fn signer(name: &str) -> Ed25519Signer {
        Ed25519Signer::from_seed(name, &[7u8; 32]).unwrap()
    }

    fn registry() -> Registry {
        let mut text = String::new();
        for name in SOURCES {
            text.push_str(&format!(
                "[[source]]\nname = \"{name}\"\nvkey = \"{}\"\nprincipals = [\"*\"]\n",
                signer(name).verifier().to_vkey()
            ));
        }
        Registry::parse(&text, "log.example").unwrap()
    }

    fn event(source: &str, sequence: u64) -> Bytes {
        let payload = format!("{{\"n\":{sequence}}}");
        let event = Event::sign(
            &signer(source),
            &EventDraft {
                source,
                sequence,
                timestamp_ms: 1_700_000_000_000,
                media_type: "application/json",
                payload: payload.as_bytes(),
            },
        )
        .unwrap();
        Bytes::copy_from_slice(event.as_bytes())
    }

    /// The event with one byte of its payload changed: it parses, and its
    /// signature does not verify.
    fn forged(source: &str, sequence: u64) -> Bytes {
        let mut bytes = event(source, sequence).to_vec();
        let payload = format!("{{\"n\":{sequence}}}");
        let at = bytes
            .windows(payload.len())
            .rposition(|w| w == payload.as_bytes())
            .unwrap();
        bytes[at + 1] ^= 0x01;
        Bytes::from(bytes)
    }

    fn screen(entries: &[Bytes]) -> Screened {
        ingest::screen(
            &registry(),
            EntriesMode::Mixed,
            &Principal::anonymous(),
            entries,
        )
        .unwrap_or_else(|status| panic!("screening refused: {status}"))
    }

    #[test]
    fn a_forged_call_refuses_only_itself() {
        let calls = [
            screen(&[event(SOURCES[0], 1)]),
            screen(&[event(SOURCES[1], 1), forged(SOURCES[1], 2)]),
            screen(&[event(SOURCES[0], 2), event(SOURCES[1], 3)]),
        ];
        let results = check(&calls.iter().collect::<Vec<_>>());
        assert!(results[0].is_ok());
        let refused = results[1].as_ref().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            refused.message().contains("entries[1]"),
            "{}",
            refused.message()
        );
        assert!(results[2].is_ok());
        // Honest calls merged pass in one batch.
        let honest = [
            screen(&[event(SOURCES[0], 1)]),
            screen(&[event(SOURCES[1], 1)]),
        ];
        assert!(
            check(&honest.iter().collect::<Vec<_>>())
                .iter()
                .all(Result::is_ok)
        );
        // A lone forged call is refused on its own.
        let alone = [screen(&[forged(SOURCES[0], 9)])];
        assert!(check(&alone.iter().collect::<Vec<_>>())[0].is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_share_the_queue_and_each_gets_its_own_answer() {
        let verifier = Arc::new(Verifier::start().unwrap());
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let verifier = Arc::clone(&verifier);
            tasks.push(tokio::spawn(async move {
                let source = SOURCES[(i % 2) as usize];
                let entry = if i % 9 == 4 {
                    forged(source, i)
                } else {
                    event(source, i)
                };
                (i, verifier.verify(screen(&[entry])).await)
            }));
        }
        // Calls large enough to be checked on their own thread, alongside.
        let large: Vec<Bytes> = (100..120).map(|n| event(SOURCES[0], n)).collect();
        let mut forged_large = large.clone();
        forged_large[17] = forged(SOURCES[0], 117);
        let (honest, refused) = tokio::join!(
            verifier.verify(screen(&large)),
            verifier.verify(screen(&forged_large))
        );
        assert_eq!(honest.unwrap().signed.len(), 20);
        let refused = refused.err().unwrap();
        assert!(
            refused.message().starts_with("entries[17]"),
            "{}",
            refused.message()
        );
        for task in tasks {
            let (i, result) = task.await.unwrap();
            match result {
                Ok(screened) => {
                    assert!(i % 9 != 4, "call {i}: a forged event was accepted");
                    assert_eq!(screened.signed[0].event.sequence(), i);
                }
                Err(status) => {
                    assert_eq!(i % 9, 4, "call {i}: an honest event was refused: {status}");
                }
            }
        }
    }
}
