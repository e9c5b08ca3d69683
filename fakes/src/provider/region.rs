//! One region of the provider: the quotas, the shared metadata fleet, the abuse policy and
//! the S3 prefix limits, combined into one admission decision per call.

use std::collections::BTreeMap;
use std::time::Duration;

use super::abuse::{AbuseMonitor, AbusePolicy, Standing};
use super::fleet::{Fleet, FleetAnswer, FleetConfig};
use super::quota::{Limit, QuotaTable, TokenBucket};

/// S3's documented request rates per partitioned prefix.
pub const S3_PREFIX_READS_PER_S: f64 = 5500.0;
/// S3's documented write rate per partitioned prefix.
pub const S3_PREFIX_WRITES_PER_S: f64 = 3500.0;

/// How a region of the provider behaves. Defaults in [`ProviderConfig::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Quota per api name (`AssumeRole`, `GetTable`, ...), per account. Default: none.
    pub quotas: BTreeMap<String, Limit>,
    /// The shared metadata fleet (STS, catalog; IMDS is per instance).
    pub fleet: FleetConfig,
    /// When an account is frozen.
    pub abuse: AbusePolicy,
    /// S3 reads per second per partitioned prefix. Default: 5,500.
    pub s3_prefix_reads_per_s: f64,
    /// S3 writes per second per partitioned prefix. Default: 3,500.
    pub s3_prefix_writes_per_s: f64,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            quotas: BTreeMap::new(),
            fleet: FleetConfig::default(),
            abuse: AbusePolicy::default(),
            s3_prefix_reads_per_s: S3_PREFIX_READS_PER_S,
            s3_prefix_writes_per_s: S3_PREFIX_WRITES_PER_S,
        }
    }
}

/// The provider's decision on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Serve it after `delay`.
    Proceed {
        /// Time the call takes before its answer.
        delay: Duration,
    },
    /// The account is frozen: access denied.
    Frozen,
    /// Over a quota or a prefix limit.
    Throttled,
    /// The fleet's queue is full: refused at once.
    Shed,
    /// The fleet did not answer in time; the client sees a timeout after `after`.
    TimedOut {
        /// The client timeout.
        after: Duration,
    },
}

/// The S3 side of a call: which partition it touches, and whether it writes.
#[derive(Debug, Clone, Copy)]
pub struct S3Access<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The object key (or listing prefix).
    pub key: &'a str,
    /// Whether the call writes.
    pub write: bool,
}

/// One region's provider state. Pure: time comes in as an argument.
#[derive(Debug, Clone)]
pub struct RegionModel {
    config: ProviderConfig,
    quotas: QuotaTable,
    fleet: Fleet,
    abuse: AbuseMonitor,
    prefixes: BTreeMap<(String, bool), TokenBucket>,
    extra_latency: Duration,
    /// Per api: the share of calls that fail and how much failure is owed, both in millionths
    /// (each call adds the share; a call fails when a whole one is owed), so the share is exact
    /// and needs no randomness.
    errors: BTreeMap<String, (u64, u64)>,
}

impl RegionModel {
    /// A region at rest.
    pub fn new(config: ProviderConfig) -> Self {
        Self {
            quotas: QuotaTable::new(config.quotas.clone()),
            fleet: Fleet::new(config.fleet),
            abuse: AbuseMonitor::new(config.abuse),
            prefixes: BTreeMap::new(),
            extra_latency: Duration::ZERO,
            errors: BTreeMap::new(),
            config,
        }
    }

    /// Admits a call to a metadata service (STS, catalog): the freeze, then the fleet, then the
    /// quota. The quota is the service's own decision, made on its fleet: a throttled request
    /// was still received and judged there, so it costs the fleet a request's work and counts
    /// towards the account's calls for the abuse policy, as every call an account makes does.
    /// It is answered at once.
    pub fn admit_metadata(&mut self, account: &str, api: &str, now: Duration) -> Admission {
        if self.abuse.is_frozen(account, now) {
            return Admission::Frozen;
        }
        self.abuse.record(account, now);
        let fleet = self.fleet.admit(now);
        if !self.quotas.admit(account, api, now) {
            return Admission::Throttled;
        }
        if self.fails(api) {
            return Admission::Shed;
        }
        match fleet {
            FleetAnswer::Served { latency } => Admission::Proceed {
                delay: latency + self.extra_latency,
            },
            FleetAnswer::TimedOut { after } => Admission::TimedOut { after },
            FleetAnswer::Shed => Admission::Shed,
        }
    }

    /// Admits a call to a service outside the fleet (queue): freeze and quota only.
    pub fn admit_plain(&mut self, account: &str, api: &str, now: Duration) -> Admission {
        if self.abuse.is_frozen(account, now) {
            return Admission::Frozen;
        }
        if !self.quotas.admit(account, api, now) {
            return Admission::Throttled;
        }
        if self.fails(api) {
            return Admission::Shed;
        }
        Admission::Proceed {
            delay: self.extra_latency,
        }
    }

    /// Admits an S3 call: freeze, the api quota, then the limit of its partitioned prefix
    /// (the bucket and the key's first path segment).
    pub fn admit_s3(
        &mut self,
        account: &str,
        api: &str,
        access: S3Access<'_>,
        now: Duration,
    ) -> Admission {
        let plain = self.admit_plain(account, api, now);
        if plain
            != (Admission::Proceed {
                delay: self.extra_latency,
            })
        {
            return plain;
        }
        let segment = access.key.split('/').next().unwrap_or("");
        let partition = format!("{}/{segment}", access.bucket);
        let rate = if access.write {
            self.config.s3_prefix_writes_per_s
        } else {
            self.config.s3_prefix_reads_per_s
        };
        let limit = Limit {
            rate_per_s: rate,
            burst: rate,
        };
        let bucket = self
            .prefixes
            .entry((partition, access.write))
            .or_insert_with(|| TokenBucket::new(limit, now));
        if bucket.try_take(now) {
            plain
        } else {
            Admission::Throttled
        }
    }

    /// Evaluates the abuse policy up to `now`; call it every second.
    pub fn tick(&mut self, now: Duration) -> Vec<Standing> {
        let capacity = self.fleet.config().capacity_per_s() * self.fleet.available();
        self.abuse.evaluate(now, capacity)
    }

    /// The fleet's utilisation over the last second.
    pub fn fleet_utilisation(&mut self, now: Duration) -> f64 {
        self.fleet.utilisation(now)
    }

    /// Fault control: freeze an account until `until`.
    pub fn freeze(&mut self, account: &str, until: Duration) {
        self.abuse.freeze(account, until);
    }

    /// Fault control: thaw an account now.
    pub fn thaw(&mut self, account: &str) -> bool {
        self.abuse.thaw(account)
    }

    /// Fault control: throttle an api to `rate_per_s` (burst of one second's worth).
    pub fn throttle(&mut self, api: &str, rate_per_s: f64) {
        self.quotas.set_limit(
            api,
            Limit {
                rate_per_s,
                burst: rate_per_s.max(1.0),
            },
        );
    }

    /// Fault control: lift a throttle of `api`: its own quota, if the provider has one, holds
    /// again; else it is not rate-limited.
    pub fn lift_throttle(&mut self, api: &str) {
        match self.config.quotas.get(api).copied() {
            Some(limit) => self.quotas.set_limit(api, limit),
            None => self.quotas.remove_limit(api),
        }
    }

    /// Fault control: add latency to every call.
    pub fn set_extra_latency(&mut self, latency: Duration) {
        self.extra_latency = latency;
    }

    /// Fault control: `share` (0 to 1) of `api`'s calls fail with the service's 503, as a
    /// failing dependency answers; 0 lifts it.
    pub fn set_errors(&mut self, api: &str, share: f64) {
        let millionths = (share.clamp(0.0, 1.0) * 1e6).round() as u64;
        if millionths == 0 {
            self.errors.remove(api);
        } else {
            self.errors.insert(api.to_string(), (millionths, 0));
        }
    }

    fn fails(&mut self, api: &str) -> bool {
        let Some((share, owed)) = self.errors.get_mut(api) else {
            return false;
        };
        *owed += *share;
        if *owed >= 1_000_000 {
            *owed -= 1_000_000;
            true
        } else {
            false
        }
    }

    /// Fault control: keep only `fraction` of the fleet in service.
    pub fn set_fleet_available(&mut self, fraction: f64) {
        self.fleet.set_available(fraction);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(key: &str) -> S3Access<'_> {
        S3Access {
            bucket: "b",
            key,
            write: false,
        }
    }

    #[test]
    fn an_error_share_fails_exactly_that_share_of_an_apis_calls() {
        let mut m = RegionModel::new(ProviderConfig::default());
        m.set_errors("GetTable", 0.3);
        let now = Duration::ZERO;
        let shed = (0..100)
            .filter(|_| m.admit_plain("300000000001", "GetTable", now) == Admission::Shed)
            .count();
        assert_eq!(shed, 30);
        assert!(matches!(
            m.admit_plain("300000000001", "AssumeRole", now),
            Admission::Proceed { .. }
        ));
        m.set_errors("GetTable", 0.0);
        assert!((0..10).all(|_| m.admit_plain("300000000001", "GetTable", now) != Admission::Shed));
    }

    #[test]
    fn s3_prefix_limits_hold_per_partition() {
        let mut r = RegionModel::new(ProviderConfig::default());
        // 11,000 reads spread over one second on one prefix: about half are throttled.
        let ok = (0..11_000)
            .filter(|i| {
                let now = Duration::from_micros(i * 1_000_000 / 11_000);
                matches!(
                    r.admit_s3("a", "GetObject", read("telemetry/x"), now),
                    Admission::Proceed { .. }
                )
            })
            .count() as f64;
        let expected = S3_PREFIX_READS_PER_S * 2.0;
        assert!(
            (ok - expected).abs() <= 0.01 * expected,
            "admitted {ok}, expected about {expected}"
        );
        // Another prefix of the same bucket has its own limit.
        assert!(matches!(
            r.admit_s3(
                "a",
                "GetObject",
                read("other/y"),
                Duration::from_millis(999)
            ),
            Admission::Proceed { .. }
        ));
        // Writes have their own, lower limit.
        let writes = (0..7_000)
            .filter(|i| {
                let now = Duration::from_secs(10) + Duration::from_micros(i * 1_000_000 / 7_000);
                let access = S3Access {
                    bucket: "b",
                    key: "telemetry/z",
                    write: true,
                };
                matches!(
                    r.admit_s3("a", "PutObject", access, now),
                    Admission::Proceed { .. }
                )
            })
            .count() as f64;
        let expected = S3_PREFIX_WRITES_PER_S * 2.0;
        assert!(
            (writes - expected).abs() <= 0.01 * expected,
            "admitted {writes} writes, expected about {expected}"
        );
    }

    #[test]
    fn a_frozen_account_is_refused_everywhere_until_thawed() {
        let mut r = RegionModel::new(ProviderConfig::default());
        r.freeze("a", Duration::from_secs(10));
        assert_eq!(
            r.admit_metadata("a", "AssumeRole", Duration::from_secs(1)),
            Admission::Frozen
        );
        assert_eq!(
            r.admit_plain("a", "SendMessage", Duration::from_secs(1)),
            Admission::Frozen
        );
        assert_eq!(
            r.admit_s3("a", "GetObject", read("k"), Duration::from_secs(1)),
            Admission::Frozen
        );
        assert!(matches!(
            r.admit_metadata("b", "AssumeRole", Duration::from_secs(1)),
            Admission::Proceed { .. }
        ));
        assert!(matches!(
            r.admit_metadata("a", "AssumeRole", Duration::from_secs(10)),
            Admission::Proceed { .. }
        ));
    }

    #[test]
    fn background_accounts_fail_when_a_loud_one_saturates_the_fleet() {
        let config = ProviderConfig::default();
        let capacity = config.fleet.capacity_per_s();
        let mut r = RegionModel::new(config);
        // A quiet account calls 20 times a second for 20 s; a loud one joins at 3x capacity
        // from 5 s to 15 s. Returns the quiet account's failures in each 5 s quarter.
        let mut failures = [0u32; 4];
        let step = Duration::from_secs_f64(1.0 / (capacity * 3.0));
        let mut t = Duration::ZERO;
        let mut next_quiet = Duration::ZERO;
        while t < Duration::from_secs(20) {
            if t >= next_quiet {
                if !matches!(
                    r.admit_metadata("quiet", "GetTable", t),
                    Admission::Proceed { .. }
                ) {
                    failures[(t.as_secs() / 5) as usize] += 1;
                }
                next_quiet += Duration::from_millis(50);
            }
            if (5..15).contains(&t.as_secs()) {
                let _ = r.admit_metadata("loud", "AssumeRole", t);
            }
            t += step;
        }
        assert_eq!(
            failures[0], 0,
            "an idle fleet serves everyone: {failures:?}"
        );
        assert!(
            failures[1] > 50 && failures[2] > 50,
            "the quiet account suffers too: {failures:?}"
        );
    }

    #[test]
    fn a_throttled_metadata_call_still_costs_the_fleet() {
        let mut config = ProviderConfig::default();
        config.quotas.insert(
            "AssumeRole".into(),
            Limit {
                rate_per_s: 1.0,
                burst: 1.0,
            },
        );
        let capacity = config.fleet.capacity_per_s();
        let mut r = RegionModel::new(config);
        let t = Duration::from_millis(500);
        let answers: Vec<Admission> = (0..4)
            .map(|_| r.admit_metadata("a", "AssumeRole", t))
            .collect();
        assert!(matches!(answers[0], Admission::Proceed { .. }));
        assert!(answers[1..].iter().all(|a| *a == Admission::Throttled));
        // Four requests reached the fleet, not one.
        assert_eq!(r.fleet_utilisation(t), 4.0 / capacity);
    }

    #[test]
    fn a_lifted_throttle_gives_the_api_its_own_quota_back() {
        let mut config = ProviderConfig::default();
        let own = Limit {
            rate_per_s: 5.0,
            burst: 5.0,
        };
        config.quotas.insert("AssumeRole".into(), own);
        let mut r = RegionModel::new(config);
        r.throttle("AssumeRole", 1.0);
        r.throttle("GetTable", 1.0);
        r.lift_throttle("AssumeRole");
        r.lift_throttle("GetTable");
        let proceeds = |r: &mut RegionModel, api: &str| {
            (0..20)
                .filter(|_| {
                    matches!(
                        r.admit_plain("a", api, Duration::from_secs(9)),
                        Admission::Proceed { .. }
                    )
                })
                .count()
        };
        assert_eq!(proceeds(&mut r, "AssumeRole"), 5, "its quota holds again");
        assert_eq!(proceeds(&mut r, "GetTable"), 20, "it had none");
    }

    #[test]
    fn injected_throttling_and_latency_apply() {
        let mut r = RegionModel::new(ProviderConfig::default());
        r.throttle("GetTable", 1.0);
        assert!(matches!(
            r.admit_metadata("a", "GetTable", Duration::ZERO),
            Admission::Proceed { .. }
        ));
        assert_eq!(
            r.admit_metadata("a", "GetTable", Duration::ZERO),
            Admission::Throttled
        );
        r.set_extra_latency(Duration::from_millis(250));
        let Admission::Proceed { delay } = r.admit_plain("a", "SendMessage", Duration::ZERO) else {
            panic!()
        };
        assert_eq!(delay, Duration::from_millis(250));
    }
}
