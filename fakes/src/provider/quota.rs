//! Token buckets: the provider's request quotas per (account, api), refilled at a steady rate
//! up to a burst, as EC2, IAM and STS document theirs.

use std::collections::BTreeMap;
use std::time::Duration;

/// A rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Tokens added per second.
    pub rate_per_s: f64,
    /// Most tokens the bucket holds; a full bucket admits this many calls at once.
    pub burst: f64,
}

/// One bucket. Starts full.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    limit: Limit,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket at time `now`.
    pub fn new(limit: Limit, now: Duration) -> Self {
        Self {
            limit,
            tokens: limit.burst,
            last: now,
        }
    }

    /// Takes one token if there is one. Time never runs backwards here: an earlier `now` than
    /// the last one refills nothing.
    pub fn try_take(&mut self, now: Duration) -> bool {
        if now > self.last {
            let refill = (now - self.last).as_secs_f64() * self.limit.rate_per_s;
            self.tokens = (self.tokens + refill).min(self.limit.burst);
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Changes the limit, keeping the tokens (capped at the new burst).
    pub fn set_limit(&mut self, limit: Limit) {
        self.limit = limit;
        self.tokens = self.tokens.min(limit.burst);
    }
}

/// The quotas of one region: a limit per api, and a bucket per (account, api) once used.
#[derive(Debug, Clone, Default)]
pub struct QuotaTable {
    limits: BTreeMap<String, Limit>,
    buckets: BTreeMap<(String, String), TokenBucket>,
}

impl QuotaTable {
    /// A table with these limits by api name; apis without a limit are not rate-limited.
    pub fn new(limits: BTreeMap<String, Limit>) -> Self {
        Self {
            limits,
            buckets: BTreeMap::new(),
        }
    }

    /// The limit of an api, if it has one.
    pub fn limit(&self, api: &str) -> Option<Limit> {
        self.limits.get(api).copied()
    }

    /// Sets (or replaces) an api's limit for every account, e.g. to inject throttling.
    pub fn set_limit(&mut self, api: &str, limit: Limit) {
        self.limits.insert(api.to_string(), limit);
        for ((_, a), bucket) in self.buckets.iter_mut() {
            if a == api {
                bucket.set_limit(limit);
            }
        }
    }

    /// Removes an api's limit: it is no longer rate-limited.
    pub fn remove_limit(&mut self, api: &str) {
        self.limits.remove(api);
        self.buckets.retain(|(_, a), _| a != api);
    }

    /// Whether `account` may call `api` now; takes a token if so.
    pub fn admit(&mut self, account: &str, api: &str, now: Duration) -> bool {
        let Some(limit) = self.limits.get(api).copied() else {
            return true;
        };
        self.buckets
            .entry((account.to_string(), api.to_string()))
            .or_insert_with(|| TokenBucket::new(limit, now))
            .try_take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(bucket: &mut TokenBucket, rate_per_s: f64, seconds: f64) -> u64 {
        let n = (rate_per_s * seconds) as u64;
        (0..n)
            .filter(|i| bucket.try_take(Duration::from_secs_f64(*i as f64 / rate_per_s)))
            .count() as u64
    }

    #[test]
    fn twice_the_rate_for_a_minute_admits_rate_times_duration_plus_burst() {
        let limit = Limit {
            rate_per_s: 50.0,
            burst: 100.0,
        };
        let mut bucket = TokenBucket::new(limit, Duration::ZERO);
        let admitted = offer(&mut bucket, 100.0, 60.0) as f64;
        let expected = 50.0 * 60.0 + 100.0;
        assert!(
            (admitted - expected).abs() <= 0.01 * expected,
            "admitted {admitted}, expected {expected}"
        );
    }

    #[test]
    fn under_the_rate_everything_passes() {
        let mut bucket = TokenBucket::new(
            Limit {
                rate_per_s: 10.0,
                burst: 1.0,
            },
            Duration::ZERO,
        );
        assert_eq!(offer(&mut bucket, 5.0, 10.0), 50);
    }

    #[test]
    fn buckets_are_per_account_and_api() {
        let mut t = QuotaTable::new(
            [(
                "AssumeRole".to_string(),
                Limit {
                    rate_per_s: 1.0,
                    burst: 1.0,
                },
            )]
            .into(),
        );
        assert!(t.admit("a", "AssumeRole", Duration::ZERO));
        assert!(!t.admit("a", "AssumeRole", Duration::ZERO));
        assert!(t.admit("b", "AssumeRole", Duration::ZERO));
        assert!(
            t.admit("a", "GetTable", Duration::ZERO),
            "no limit, no throttling"
        );
        t.set_limit(
            "AssumeRole",
            Limit {
                rate_per_s: 1000.0,
                burst: 5.0,
            },
        );
        assert!(t.admit("a", "AssumeRole", Duration::from_millis(10)));
    }
}
