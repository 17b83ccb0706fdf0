//! Per-principal limits on appends: entries per second and entry bytes per
//! second (each a GCRA limiter with a burst, from the `governor` crate) and
//! append streams open at once. They are checked before entries reach the
//! sequencer's queue.
//!
//! An over-limit call answers RESOURCE_EXHAUSTED with the `retry-after`
//! metadata (see `merklog_proto::convert::set_retry_after`): how long until the
//! same call would pass. An over-limit call may still use up part of the
//! entries allowance (the two rates are checked one after the other).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock as _, DefaultClock};
use governor::{Quota, RateLimiter};
use merklog_auth::Principal;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use super::settings::{PrincipalLimits, Rate};

type Gcra = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    governor::middleware::NoOpMiddleware<<DefaultClock as governor::clock::Clock>::Instant>,
>;

/// The live limiter state of one principal.
struct PrincipalLimiter {
    entries: Option<Gcra>,
    bytes: Option<Gcra>,
    streams: Option<Arc<Semaphore>>,
}

impl PrincipalLimiter {
    fn new(limits: PrincipalLimits) -> Self {
        let gcra = |rate: Rate| {
            RateLimiter::direct(Quota::per_second(rate.per_second).allow_burst(rate.burst))
        };
        Self {
            entries: limits.entries.map(gcra),
            bytes: limits.bytes.map(gcra),
            streams: limits.max_streams.map(|n| {
                Arc::new(Semaphore::new(
                    usize::try_from(n.get()).unwrap_or(usize::MAX),
                ))
            }),
        }
    }
}

/// Why a call was refused (the `reason` label of the rejection metric).
pub(crate) const RATE_LIMITED: &str = "rate_limited";
/// A principal already has its most streams open.
pub(crate) const STREAM_LIMITED: &str = "stream_limit";

/// The limits of every principal, created on a principal's first append.
/// Only principals allowed to append get here, so the map is bounded by the
/// configuration and the tokens file.
pub(crate) struct Limiter {
    defaults: PrincipalLimits,
    overrides: HashMap<Principal, PrincipalLimits>,
    live: Mutex<HashMap<Principal, Arc<PrincipalLimiter>>>,
    clock: DefaultClock,
}

impl Limiter {
    pub(crate) fn new(
        defaults: PrincipalLimits,
        overrides: HashMap<Principal, PrincipalLimits>,
    ) -> Self {
        Self {
            defaults,
            overrides,
            live: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    fn of(&self, principal: &Principal) -> Arc<PrincipalLimiter> {
        let mut live = match self.live.lock() {
            Ok(live) => live,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(live.entry(principal.clone()).or_insert_with(|| {
            let limits = self
                .overrides
                .get(principal)
                .copied()
                .unwrap_or(self.defaults);
            Arc::new(PrincipalLimiter::new(limits))
        }))
    }

    /// Takes `entries` entries of `bytes` bytes from the principal's allowance,
    /// or says when to retry.
    pub(crate) fn check_append(
        &self,
        principal: &Principal,
        entries: usize,
        bytes: usize,
    ) -> Result<(), Status> {
        let limiter = self.of(principal);
        let checks = [
            ("entries", &limiter.entries, entries),
            ("bytes", &limiter.bytes, bytes),
        ];
        for (what, gcra, amount) in checks {
            let Some(gcra) = gcra else { continue };
            let amount = NonZeroU32::new(u32::try_from(amount).unwrap_or(u32::MAX))
                .unwrap_or(NonZeroU32::MIN);
            match gcra.check_n(amount) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    let mut status = Status::resource_exhausted(format!(
                        "principal {principal} is over its {what} rate; retry after {} ms",
                        wait.as_millis().max(1)
                    ));
                    merklog_proto::convert::set_retry_after(&mut status, wait);
                    return Err(status);
                }
                Err(too_many) => {
                    return Err(Status::resource_exhausted(format!(
                        "a call of {amount} {what} exceeds principal {principal}'s burst of \
                         {}: send smaller calls",
                        too_many.0
                    )));
                }
            }
        }
        Ok(())
    }

    /// A permit for one more append stream of the principal (held while the
    /// stream is open), or RESOURCE_EXHAUSTED.
    pub(crate) fn open_stream(
        &self,
        principal: &Principal,
    ) -> Result<Option<OwnedSemaphorePermit>, Status> {
        let limiter = self.of(principal);
        let Some(streams) = &limiter.streams else {
            return Ok(None);
        };
        Arc::clone(streams)
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "principal {principal} has its most append streams open"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(per_second: u32, burst: u32) -> PrincipalLimits {
        let rate = Rate {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        };
        PrincipalLimits {
            entries: Some(rate),
            bytes: None,
            max_streams: NonZeroU32::new(1),
        }
    }

    #[test]
    fn over_the_burst_waits_and_says_how_long() {
        let slow = Principal::new("slow").unwrap();
        let free = Principal::new("free").unwrap();
        let limiter = Limiter::new(
            PrincipalLimits::default(),
            HashMap::from([(slow.clone(), limits(1, 4))]),
        );
        limiter.check_append(&slow, 4, 10).unwrap();
        let refused = limiter.check_append(&slow, 1, 1).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        let hint = merklog_proto::convert::retry_after(&refused).unwrap();
        assert!(
            hint > Duration::ZERO && hint <= Duration::from_secs(1),
            "{hint:?}"
        );
        let too_big = limiter.check_append(&slow, 5, 1).unwrap_err();
        assert!(merklog_proto::convert::retry_after(&too_big).is_none());
        for _ in 0..100 {
            limiter.check_append(&free, 256, 1 << 20).unwrap();
        }
        let stream = limiter.open_stream(&slow).unwrap();
        assert!(stream.is_some());
        assert!(limiter.open_stream(&slow).is_err());
        drop(stream);
        assert!(limiter.open_stream(&slow).unwrap().is_some());
        assert!(limiter.open_stream(&free).unwrap().is_none());
    }
}
