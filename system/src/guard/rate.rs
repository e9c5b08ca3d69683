//! Client-side rate limits per provider api: governor's GCRA on tokio's clock (virtual under a
//! simulator), with an AIMD factor that halves the rate on a throttle and grows it back.

use std::num::NonZeroU32;
use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::ApiQuota;

/// A point on tokio's clock, as nanoseconds since the clock's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(u64);

impl Add<Nanos> for TokioInstant {
    type Output = Self;
    fn add(self, other: Nanos) -> Self {
        Self(self.0.saturating_add(other.as_u64()))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_sub(earlier.0))
    }
    fn saturating_sub(&self, duration: Nanos) -> Self {
        Self(self.0.saturating_sub(duration.as_u64()))
    }
}

/// governor's clock, read from tokio's (virtual under turmoil, monotonic otherwise).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        TokioInstant(self.start.elapsed().as_nanos() as u64)
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// One api's local limit: GCRA at the configured rate times two factors, the adaptive one
/// (AIMD on throttles) and the drain controller's ramp.
pub struct ApiLimiter {
    limit: ApiQuota,
    aimd: f64,
    drain: f64,
    effective: f64,
    floor: f64,
    clock: TokioClock,
    gcra: Gcra,
}

impl std::fmt::Debug for ApiLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiLimiter")
            .field("limit", &self.limit)
            .field("aimd", &self.aimd)
            .field("drain", &self.drain)
            .finish()
    }
}

fn gcra(limit: ApiQuota, factor: f64, clock: &TokioClock) -> Gcra {
    let rate = (limit.rate_per_s * factor).max(0.001);
    let period = Duration::from_secs_f64(1.0 / rate);
    let burst =
        NonZeroU32::new((limit.burst * factor).floor().max(1.0) as u32).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    RateLimiter::direct_with_clock(quota, *clock)
}

impl ApiLimiter {
    /// A limiter admitting `limit`.
    pub fn new(limit: ApiQuota) -> Self {
        let clock = TokioClock::new();
        Self {
            gcra: gcra(limit, 1.0, &clock),
            limit,
            aimd: 1.0,
            drain: 1.0,
            effective: 1.0,
            floor: 0.05,
            clock,
        }
    }

    /// Takes a permit now, or says how long until one is free.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        self.gcra.check().map_err(|not| {
            not.wait_time_from(self.clock.now())
                .max(Duration::from_micros(1))
        })
    }

    /// The provider throttled us: halve the rate (multiplicative decrease). Returns the
    /// adaptive factor.
    pub fn on_throttle(&mut self) -> f64 {
        self.aimd = (self.aimd * 0.5).max(self.floor);
        self.rebuild();
        self.aimd
    }

    /// A call went through: grow the rate back by 1 % of the limit (additive increase).
    pub fn on_success(&mut self) -> f64 {
        if self.aimd < 1.0 {
            self.aimd = (self.aimd + 0.01).min(1.0);
            self.rebuild();
        }
        self.aimd
    }

    /// Sets the drain controller's factor.
    pub fn set_drain(&mut self, drain: f64) {
        self.drain = drain.clamp(self.floor, 1.0);
        self.rebuild();
    }

    /// Rebuilds the GCRA when the effective factor moved by 5 % or more (or back to full), so
    /// that a slow ramp does not reset the bucket on every call.
    fn rebuild(&mut self) {
        let factor = (self.aimd * self.drain).clamp(self.floor, 1.0);
        let moved = (factor - self.effective).abs() >= 0.05 * self.effective;
        if moved || (factor == 1.0 && self.effective != 1.0) {
            self.effective = factor;
            self.gcra = gcra(self.limit, factor, &self.clock);
        }
    }

    /// The adaptive factor.
    pub fn factor(&self) -> f64 {
        self.aimd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admits_burst_plus_rate_and_halves_on_throttle() {
        let mut l = ApiLimiter::new(ApiQuota {
            rate_per_s: 10.0,
            burst: 5.0,
        });
        let mut admitted = 0;
        let start = tokio::time::Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            match l.try_acquire() {
                Ok(()) => admitted += 1,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
        // b + ⌊t/T⌋ = 5 + 100 in a closed interval; the half-open [0, 10 s) misses the last.
        assert!((104..=105).contains(&admitted), "{admitted}");
        assert_eq!(l.on_throttle(), 0.5);
        assert_eq!(l.on_throttle(), 0.25);
        let mut admitted = 0;
        let start = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        while start.elapsed() < Duration::from_secs(11) {
            match l.try_acquire() {
                Ok(()) => admitted += 1,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
        assert!(
            (25..=27).contains(&admitted),
            "a quarter of the rate: {admitted}"
        );
    }
}
