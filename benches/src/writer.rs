//! Writers: unary calls of one entry or a batch, or bidirectional append streams;
//! closed-loop (each writer sends its next call when the previous one is answered)
//! or open-loop (calls scheduled at a fixed rate, whatever the answers do).
//!
//! Latency is measured from the send (closed loop) or from the *scheduled* send time
//! (open loop), so a server that falls behind shows its queueing instead of
//! silently lowering the offered load. RESOURCE_EXHAUSTED answers are counted and
//! retried after 1 ms with the original start time. Every answer goes through the
//! [`Checker`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_proto::v1;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::BenchError;
use crate::payload::EntryMaker;
use crate::signed::Signing;
use crate::stats::{Phase, Recorder, Tally, code_label};
use crate::target::Client;
use crate::verify::Checker;

/// Pause after RESOURCE_EXHAUSTED or another error before trying again.
const BACKOFF: Duration = Duration::from_millis(1);
/// Open-loop scheduler tick.
const TICK: Duration = Duration::from_millis(1);

/// How writers call the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `Append` calls.
    Unary,
    /// `AppendStream` streams, each with up to `window` requests unanswered.
    Stream {
        /// Requests in flight per stream.
        window: usize,
    },
    /// OpenTelemetry `LogsService/Export` calls on the OTLP/gRPC port (see
    /// [`crate::otlp`]).
    Otlp {
        /// Requests and answers gzip-compressed (the Collector's default; the SDKs'
        /// exporters send uncompressed unless told otherwise).
        gzip: bool,
    },
}

/// What the writers of one run do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteSpec {
    /// Concurrent writers (closed loop), streams, or the in-flight cap (open loop).
    pub writers: usize,
    /// Bytes per entry.
    pub entry_bytes: usize,
    /// Entries per call or stream request.
    pub per_call: usize,
    /// Unary or streams.
    pub mode: Mode,
    /// Open loop: offered entries per second. `None`: closed loop.
    pub rate: Option<f64>,
    /// Stop after sending this many entries (for filling a tree); `None`: until the
    /// window closes.
    pub budget: Option<u64>,
    /// Every entry an ai-audit/v1 profile document (indexed by the server).
    pub profile: bool,
}

/// Entries still to send, when a run has a budget.
#[derive(Debug, Clone)]
struct Budget(Option<Arc<AtomicU64>>);

impl Budget {
    /// Takes up to `n` entries from the budget; returns how many (0 once it is spent).
    fn take(&self, n: usize) -> usize {
        match &self.0 {
            None => n,
            Some(left) => {
                let wanted = n as u64;
                match left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                    (l > 0).then(|| l.saturating_sub(wanted))
                }) {
                    Ok(before) => usize::try_from(before.min(wanted)).unwrap_or(0),
                    Err(_) => 0,
                }
            }
        }
    }
}

/// Everything a writer task needs.
#[derive(Clone)]
struct Ctx {
    phase: Phase,
    checker: Arc<Checker>,
    recorder: Recorder,
    budget: Budget,
    per_call: usize,
    /// The OTLP/gRPC port, for [`Mode::Otlp`].
    otlp: Option<std::net::SocketAddr>,
    entry_bytes: usize,
}

fn deadline(at: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(at)
}

/// The entry makers of a run of `spec`, entries unique to `nonce`: one per writer
/// (closed loop), or the scheduler's one (open loop). Each makes its first `ahead`
/// entries now, the makers spread over every core: signing an event costs the hammer
/// about what checking it costs the log, and a real source signs on its own machine,
/// so a signed step can keep its signing out of the measured window.
pub fn makers(spec: &WriteSpec, nonce: u64, signing: &Signing, ahead: usize) -> Vec<EntryMaker> {
    let writers: Vec<u32> = match spec.rate {
        Some(_) => vec![u32::MAX],
        None => (0..spec.writers).map(|w| w as u32).collect(),
    };
    let mut makers: Vec<EntryMaker> = writers
        .into_iter()
        .map(|writer| {
            EntryMaker::new(nonce, writer, spec.entry_bytes)
                .with_profile(spec.profile)
                .with_signing(signing.clone())
        })
        .collect();
    if ahead > 0 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = makers.len().div_ceil(cores).max(1);
        std::thread::scope(|scope| {
            for part in makers.chunks_mut(chunk) {
                scope.spawn(move || part.iter_mut().for_each(|m| m.make_ahead(ahead)));
            }
        });
    }
    makers
}

/// Runs the writers of `spec` over `clients` (round robin) through `phase` with
/// `makers` (from [`makers`]) and returns what they counted.
pub async fn run_writers(
    clients: &[Client],
    spec: &WriteSpec,
    phase: Phase,
    checker: Arc<Checker>,
    makers: Vec<EntryMaker>,
    otlp: Option<std::net::SocketAddr>,
) -> Result<Tally, BenchError> {
    if clients.is_empty() || spec.writers == 0 || spec.per_call == 0 || makers.is_empty() {
        return Err(BenchError::Usage(
            "a write run needs clients, writers and entries per call".into(),
        ));
    }
    let ctx = Ctx {
        phase,
        checker,
        recorder: Recorder::new()?,
        budget: Budget(spec.budget.map(|b| Arc::new(AtomicU64::new(b)))),
        per_call: spec.per_call,
        otlp,
        entry_bytes: spec.entry_bytes,
    };
    match (spec.mode, spec.rate) {
        (Mode::Unary, Some(rate)) => {
            // Not empty: checked above.
            if let Some(maker) = makers.into_iter().next() {
                open_loop(clients, spec, rate, &ctx, maker).await;
            }
        }
        (Mode::Stream { .. } | Mode::Otlp { .. }, Some(_)) => {
            return Err(BenchError::Usage(
                "open-loop rates are for unary writers".into(),
            ));
        }
        (mode, None) => {
            let mut tasks = JoinSet::new();
            for (writer, maker) in makers.into_iter().enumerate() {
                let client = clients[writer % clients.len()].clone();
                let ctx = ctx.clone();
                match mode {
                    Mode::Unary => tasks.spawn(unary_writer(client, maker, ctx)),
                    Mode::Stream { window } => {
                        tasks.spawn(stream_writer(client, maker, window.max(1), ctx))
                    }
                    Mode::Otlp { gzip } => {
                        let addr = ctx.otlp.ok_or_else(|| {
                            BenchError::Usage("the server has no OTLP/gRPC port".into())
                        })?;
                        let client = crate::otlp::client(addr, gzip).await?;
                        tasks.spawn(otlp_writer(client, maker, ctx))
                    }
                };
            }
            join_bounded(tasks, &ctx).await;
        }
    }
    Ok(ctx.recorder.snapshot())
}

/// Waits for writer tasks until the drain ends, then aborts the rest.
async fn join_bounded(mut tasks: JoinSet<()>, ctx: &Ctx) {
    let finished = tokio::time::timeout_at(deadline(ctx.phase.drain_until + BACKOFF), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        let left = tasks.len() as u64;
        ctx.recorder.with(|t| t.abandoned += left);
        tasks.abort_all();
    }
}

async fn unary_writer(mut client: Client, mut maker: EntryMaker, ctx: Ctx) {
    while ctx.phase.open() {
        let n = ctx.budget.take(ctx.per_call);
        if n == 0 {
            break;
        }
        let entries = maker.next_batch(n);
        call_until_answered(&mut client, entries, Instant::now(), &ctx).await;
    }
}

async fn otlp_writer(
    mut client: opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient<
        tonic::transport::Channel,
    >,
    mut maker: EntryMaker,
    ctx: Ctx,
) {
    while ctx.phase.open() {
        let n = ctx.budget.take(ctx.per_call);
        if n == 0 {
            break;
        }
        let entries = maker.next_batch(n);
        let request = crate::otlp::request(&entries, ctx.entry_bytes);
        crate::otlp::export_until_answered(
            &mut client,
            request,
            entries.len() as u64,
            Instant::now(),
            &ctx.phase,
            &ctx.recorder,
        )
        .await;
    }
}

/// One append, retried on RESOURCE_EXHAUSTED until answered or the drain ends.
async fn call_until_answered(
    client: &mut Client,
    entries: Vec<Bytes>,
    started: Instant,
    ctx: &Ctx,
) {
    loop {
        let request = v1::AppendRequest {
            entries: entries.clone(),
            include_tlog_proof: false,
        };
        let answer =
            tokio::time::timeout_at(deadline(ctx.phase.drain_until), client.append(request)).await;
        match answer {
            Err(_) => {
                ctx.recorder.with(|t| t.abandoned += 1);
                return;
            }
            Ok(Ok(response)) => {
                let response = response.into_inner();
                ctx.checker.append(&entries, &response);
                ctx.recorder
                    .with(|t| t.success(&ctx.phase, started, entries.len() as u64));
                return;
            }
            Ok(Err(status)) if status.code() == Code::ResourceExhausted => {
                ctx.recorder.with(|t| t.rejected += 1);
                if Instant::now() + BACKOFF >= ctx.phase.drain_until {
                    ctx.recorder.with(|t| t.abandoned += 1);
                    return;
                }
                tokio::time::sleep(BACKOFF).await;
            }
            Ok(Err(status)) => {
                ctx.recorder.with(|t| t.error(code_label(status.code())));
                tokio::time::sleep(BACKOFF).await;
                return;
            }
        }
    }
}

/// Open loop: a scheduler sends calls at `rate` entries per second, each in its own
/// task, at most `spec.writers` in flight (beyond that a send is counted as missed).
async fn open_loop(
    clients: &[Client],
    spec: &WriteSpec,
    rate: f64,
    ctx: &Ctx,
    mut maker: EntryMaker,
) {
    let calls_per_second = (rate / spec.per_call as f64).max(1e-3);
    let permits = Arc::new(Semaphore::new(spec.writers));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while ctx.phase.open() {
        tick.tick().await;
        let now = Instant::now();
        loop {
            let scheduled = start + Duration::from_secs_f64(sent as f64 / calls_per_second);
            if scheduled > now || scheduled >= ctx.phase.measure_to {
                break;
            }
            let client_index = (sent % clients.len() as u64) as usize;
            sent += 1;
            let n = ctx.budget.take(spec.per_call);
            if n == 0 {
                break;
            }
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                ctx.recorder.with(|t| t.missed += 1);
                continue;
            };
            let mut client = clients[client_index].clone();
            let entries = maker.next_batch(n);
            let ctx = ctx.clone();
            tasks.spawn(async move {
                call_until_answered(&mut client, entries, scheduled, &ctx).await;
                drop(permit);
            });
        }
        // Reap finished calls so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    join_bounded(tasks, ctx).await;
}

/// One bidirectional stream with up to `window` requests unanswered.
async fn stream_writer(mut client: Client, mut maker: EntryMaker, window: usize, ctx: Ctx) {
    let (tx, rx) = mpsc::channel::<v1::AppendStreamRequest>(window);
    let drain = deadline(ctx.phase.drain_until);
    let mut inbound =
        match tokio::time::timeout_at(drain, client.append_stream(ReceiverStream::new(rx))).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                ctx.recorder.with(|t| t.error(code_label(status.code())));
                return;
            }
            Err(_) => {
                ctx.recorder.with(|t| t.abandoned += 1);
                return;
            }
        };
    let mut in_flight: HashMap<u64, (Instant, Vec<Bytes>)> = HashMap::new();
    let mut retries: VecDeque<(Instant, Vec<Bytes>)> = VecDeque::new();
    let mut sequence = 0u64;
    loop {
        while in_flight.len() < window && ctx.phase.open() {
            let (started, entries) = match retries.pop_front() {
                Some(retry) => retry,
                None => match ctx.budget.take(ctx.per_call) {
                    0 => break,
                    n => (Instant::now(), maker.next_batch(n)),
                },
            };
            let request = v1::AppendStreamRequest {
                sequence,
                request: Some(v1::AppendRequest {
                    entries: entries.clone(),
                    include_tlog_proof: false,
                }),
            };
            if tx.send(request).await.is_err() {
                break;
            }
            in_flight.insert(sequence, (started, entries));
            sequence += 1;
        }
        if in_flight.is_empty() {
            break;
        }
        let message = match tokio::time::timeout_at(drain, inbound.message()).await {
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => {
                ctx.recorder.with(|t| t.error("stream ended early"));
                break;
            }
            Ok(Err(status)) => {
                ctx.recorder.with(|t| t.error(code_label(status.code())));
                break;
            }
            Err(_) => break,
        };
        let (answered, result) = match merklog_proto::convert::stream_answer(message) {
            Ok(answer) => answer,
            Err(e) => {
                ctx.checker.fail(format!("stream answer: {e}"));
                continue;
            }
        };
        let Some((started, entries)) = in_flight.remove(&answered) else {
            ctx.checker.fail(format!(
                "stream answer for sequence {answered}, which is not in flight"
            ));
            continue;
        };
        match result {
            Ok(response) => {
                ctx.checker.append(&entries, &response);
                ctx.recorder
                    .with(|t| t.success(&ctx.phase, started, entries.len() as u64));
            }
            Err(status) if status.code() == Code::ResourceExhausted => {
                ctx.recorder.with(|t| t.rejected += 1);
                retries.push_back((started, entries));
                tokio::time::sleep(BACKOFF).await;
            }
            Err(status) => ctx.recorder.with(|t| t.error(code_label(status.code()))),
        }
    }
    let lost = (in_flight.len() + retries.len()) as u64;
    if lost > 0 {
        ctx.recorder.with(|t| t.abandoned += lost);
    }
    // Dropping the sender half-closes the stream.
    drop(tx);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::SignedSources;
    use merklog_event::Event;

    #[test]
    fn makers_sign_ahead_in_order_then_sign_live() {
        let spec = WriteSpec {
            writers: 3,
            entry_bytes: 64,
            per_call: 1,
            mode: Mode::Unary,
            rate: None,
            budget: None,
            profile: false,
        };
        let signing: Signing = Some(Arc::new(SignedSources::generate(3).unwrap()));
        let mut made = makers(&spec, 11, &signing, 4);
        assert_eq!(made.len(), 3);
        // The four were signed already: the next event of writer 0's source is 4.
        let mut other = EntryMaker::new(99, 0, 64).with_signing(signing.clone());
        assert_eq!(Event::parse(&other.next_entry()).unwrap().sequence(), 4);
        for (writer, maker) in made.iter_mut().enumerate() {
            // The four made ahead come first, in order, then one signed now.
            let numbers: Vec<u64> = maker
                .next_batch(5)
                .iter()
                .map(|bytes| Event::parse(bytes).unwrap().sequence())
                .collect();
            let live = if writer == 0 { 5 } else { 4 };
            assert_eq!(numbers, vec![0, 1, 2, 3, live]);
        }
        // Open loop: the scheduler's one maker.
        let open = WriteSpec {
            rate: Some(100.0),
            ..spec
        };
        assert_eq!(super::makers(&open, 12, &signing, 0).len(), 1);
    }
}
