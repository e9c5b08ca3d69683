//! The regional metadata fleet: finite capacity shared by every account of a region.
//!
//! A fleet is `servers` workers taking requests first come, first served. Each request's
//! service time grows with the utilisation of the last second (a loaded fleet thrashes), so
//! past saturation the queue grows, waits pass the client timeout, and requests fail for every
//! account in the region, not only the loud one. The queue is bounded: a request that would
//! wait longer than `max_queue_wait` is shed at once.

use std::collections::VecDeque;
use std::time::Duration;

/// The shape of a fleet. Defaults in [`FleetConfig::default`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetConfig {
    /// Parallel workers. Default: 16.
    pub servers: u32,
    /// Service time of one request on an idle fleet. Default: 4ms (so 4,000 requests/s).
    pub base_service: Duration,
    /// How much slower a request is served at full utilisation: service time is
    /// `base × (1 + slowdown × min(u, 1)²)`. Default: 1.0 (twice as slow at saturation).
    pub slowdown: f64,
    /// When the client gives up. Default: 1s.
    pub timeout: Duration,
    /// Longest queue wait admitted; longer waits are shed. Default: 2s.
    pub max_queue_wait: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            servers: 16,
            base_service: Duration::from_millis(4),
            slowdown: 1.0,
            timeout: Duration::from_secs(1),
            max_queue_wait: Duration::from_secs(2),
        }
    }
}

impl FleetConfig {
    /// Requests per second the fleet serves when idle-fast: `servers / base_service`.
    pub fn capacity_per_s(&self) -> f64 {
        f64::from(self.servers) / self.base_service.as_secs_f64()
    }
}

/// What the fleet does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetAnswer {
    /// Answered after `latency`.
    Served {
        /// Queue wait plus service time.
        latency: Duration,
    },
    /// The client gave up after `after` (the fleet still does the work: wasted capacity).
    TimedOut {
        /// The client timeout.
        after: Duration,
    },
    /// Refused at once: the queue is full.
    Shed,
}

/// A fleet's state.
#[derive(Debug, Clone)]
pub struct Fleet {
    config: FleetConfig,
    /// When each worker is next free.
    free_at: Vec<Duration>,
    /// Arrival times within the last second, for utilisation.
    recent: VecDeque<Duration>,
    /// Fraction of the workers in service (a capacity cut lowers it).
    available: f64,
}

impl Fleet {
    /// An idle fleet.
    pub fn new(config: FleetConfig) -> Self {
        Self {
            free_at: vec![Duration::ZERO; config.servers.max(1) as usize],
            config,
            recent: VecDeque::new(),
            available: 1.0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// Keeps only `fraction` (0 to 1) of the workers in service, e.g. to inject a capacity cut.
    pub fn set_available(&mut self, fraction: f64) {
        self.available = fraction.clamp(0.0, 1.0);
    }

    /// The fraction of the workers in service.
    pub fn available(&self) -> f64 {
        self.available
    }

    fn servers_in_service(&self) -> usize {
        ((self.free_at.len() as f64 * self.available).round() as usize).max(1)
    }

    /// Offered load over the last second, relative to the capacity in service.
    pub fn utilisation(&mut self, now: Duration) -> f64 {
        while self
            .recent
            .front()
            .is_some_and(|&t| t + Duration::from_secs(1) <= now)
        {
            self.recent.pop_front();
        }
        let capacity = self.config.capacity_per_s() * self.servers_in_service() as f64
            / self.free_at.len() as f64;
        self.recent.len() as f64 / capacity
    }

    /// Admits one request arriving at `now`.
    pub fn admit(&mut self, now: Duration) -> FleetAnswer {
        self.recent.push_back(now);
        let u = self.utilisation(now);
        let n = self.servers_in_service();
        let (server, free) = self.free_at[..n]
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|&(i, t)| (t, i))
            .expect("at least one server");
        let start = free.max(now);
        let wait = start - now;
        if wait > self.config.max_queue_wait {
            return FleetAnswer::Shed;
        }
        let factor = 1.0 + self.config.slowdown * u.min(1.0).powi(2);
        let service = self.config.base_service.mul_f64(factor);
        self.free_at[server] = start + service;
        let latency = wait + service;
        if latency > self.config.timeout {
            FleetAnswer::TimedOut {
                after: self.config.timeout,
            }
        } else {
            FleetAnswer::Served { latency }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offers `rate_per_s` evenly for `seconds`; returns (mean latency of served, served, failed).
    fn offer(
        fleet: &mut Fleet,
        start: Duration,
        rate_per_s: f64,
        seconds: f64,
    ) -> (Duration, u64, u64) {
        let n = (rate_per_s * seconds) as u64;
        let (mut total, mut served, mut failed) = (Duration::ZERO, 0, 0);
        for i in 0..n {
            match fleet.admit(start + Duration::from_secs_f64(i as f64 / rate_per_s)) {
                FleetAnswer::Served { latency } => {
                    total += latency;
                    served += 1;
                }
                _ => failed += 1,
            }
        }
        (total / served.max(1) as u32, served, failed)
    }

    #[test]
    fn latency_rises_monotonically_with_utilisation() {
        let config = FleetConfig::default();
        let capacity = config.capacity_per_s();
        let mut last = Duration::ZERO;
        // Service time grows with load, so the fleet saturates below its idle capacity: stay
        // under the knee here (0.6 × (1 + 0.6²) < 1).
        for fraction in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] {
            let (latency, _, failed) = offer(
                &mut Fleet::new(config),
                Duration::ZERO,
                capacity * fraction,
                5.0,
            );
            assert_eq!(failed, 0, "below capacity nothing fails (at {fraction})");
            assert!(
                latency > last,
                "latency {latency:?} at {fraction} is not above {last:?}"
            );
            last = latency;
        }
    }

    #[test]
    fn past_saturation_requests_time_out_or_are_shed() {
        let config = FleetConfig::default();
        let (_, served, failed) = offer(
            &mut Fleet::new(config),
            Duration::ZERO,
            config.capacity_per_s() * 2.0,
            10.0,
        );
        assert!(failed > served, "served {served}, failed {failed}");
    }

    #[test]
    fn a_capacity_cut_saturates_a_load_that_was_fine() {
        let config = FleetConfig::default();
        let rate = config.capacity_per_s() * 0.6;
        let (_, _, failed) = offer(&mut Fleet::new(config), Duration::ZERO, rate, 10.0);
        assert_eq!(failed, 0);
        let mut cut = Fleet::new(config);
        cut.set_available(0.25);
        let (_, _, failed) = offer(&mut cut, Duration::ZERO, rate, 10.0);
        assert!(failed > 0);
    }
}
