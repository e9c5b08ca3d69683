//! Retries: which errors may be retried, the delay before each attempt (full jitter or fixed),
//! and a retry budget over a sliding window (Finagle's, tower's `TpsBudget`):
//! `retries ≤ ratio · requests + min_per_s · window`.

use std::collections::VecDeque;
use std::time::Duration;

use rand::Rng;

/// What a failed attempt allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Worth another attempt; not before `after` when the provider said so (`Retry-After`).
    Yes {
        /// The provider's `Retry-After`, if it sent one.
        after: Option<Duration>,
        /// Whether the provider throttled us (the adaptive rate reacts).
        throttled: bool,
    },
    /// Retrying cannot help: access denied, frozen, invalid input.
    No,
}

/// The delay before retry number `n` (1 for the first retry): with jitter,
/// `U(0, min(cap, base·2^(n-1)))`; without, `base` every time (the naive system's fixed pause).
pub fn delay(n: u32, base: Duration, cap: Duration, jitter: bool, rng: &mut impl Rng) -> Duration {
    if !jitter {
        return base;
    }
    let ceiling = base
        .saturating_mul(1u32 << (n.saturating_sub(1)).min(20))
        .min(cap);
    let micros = ceiling.as_micros() as u64;
    Duration::from_micros(if micros == 0 {
        0
    } else {
        rng.random_range(0..=micros)
    })
}

/// A retry budget over a sliding window.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    ratio: f64,
    min_per_s: f64,
    window: Duration,
    requests: VecDeque<Duration>,
    retries: VecDeque<Duration>,
}

impl RetryBudget {
    /// A budget of `ratio` retries per request plus `min_per_s` per second, over `window`.
    pub fn new(ratio: f64, min_per_s: f64, window: Duration) -> Self {
        Self {
            ratio,
            min_per_s,
            window,
            requests: VecDeque::new(),
            retries: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Duration) {
        let start = now.saturating_sub(self.window);
        while self.requests.front().is_some_and(|&t| t < start) {
            self.requests.pop_front();
        }
        while self.retries.front().is_some_and(|&t| t < start) {
            self.retries.pop_front();
        }
    }

    /// Records a first attempt at `now`.
    pub fn deposit(&mut self, now: Duration) {
        self.expire(now);
        self.requests.push_back(now);
    }

    /// Takes a retry from the budget at `now`, if there is one left.
    pub fn withdraw(&mut self, now: Duration) -> bool {
        self.expire(now);
        let allowed =
            self.ratio * self.requests.len() as f64 + self.min_per_s * self.window.as_secs_f64();
        if (self.retries.len() as f64) < allowed.floor() {
            self.retries.push_back(now);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn full_jitter_stays_under_the_exponential_ceiling_and_spreads() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        let delays: Vec<f64> = (0..1000)
            .map(|_| delay(3, base, cap, true, &mut rng).as_secs_f64())
            .collect();
        assert!(delays.iter().all(|&d| d <= 0.4));
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        let sd = (delays.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / 1000.0).sqrt();
        // Uniform: coefficient of variation 1/√3 ≈ 0.577.
        assert!((sd / mean - 0.577).abs() < 0.05, "{}", sd / mean);
        assert!(delay(9, base, cap, true, &mut rng) <= cap);
        assert_eq!(delay(3, base, cap, false, &mut rng), base);
    }

    #[test]
    fn the_budget_allows_a_tenth_of_requests_plus_a_floor() {
        let mut b = RetryBudget::new(0.1, 1.0, Duration::from_secs(10));
        let t = Duration::from_secs(5);
        for _ in 0..100 {
            b.deposit(t);
        }
        let granted = (0..100).filter(|_| b.withdraw(t)).count();
        assert_eq!(granted, 20, "0.1 × 100 + 1/s × 10 s");
        // Once the window has passed, the old requests no longer count.
        assert!(b.withdraw(Duration::from_secs(16)));
        let later = (0..100)
            .filter(|_| b.withdraw(Duration::from_secs(16)))
            .count();
        assert_eq!(later, 9);
    }
}
