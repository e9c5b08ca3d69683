//! The abuse policy: an account that keeps a region's metadata fleet above a threshold for a
//! sustained time is frozen for a set time, as the provider did on the day of the outage.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// When to freeze, and for how long. Defaults in [`AbusePolicy::default`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AbusePolicy {
    /// Fleet utilisation (offered load over capacity) which, averaged over `sustained`, counts
    /// as abusive. Default: 0.9.
    pub fleet_util_over: f64,
    /// The window the utilisation is averaged over. Default: 5 minutes.
    pub sustained: Duration,
    /// How long the account stays frozen. Default: 2 hours.
    pub freeze_for: Duration,
    /// The share of the fleet's calls over that time that makes an account the culprit.
    /// Default: 0.5.
    pub min_share: f64,
}

impl Default for AbusePolicy {
    fn default() -> Self {
        Self {
            fleet_util_over: 0.9,
            sustained: Duration::from_secs(300),
            freeze_for: Duration::from_secs(7200),
            min_share: 0.5,
        }
    }
}

/// A change of an account's standing, to be reported as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Frozen until the given time.
    Frozen {
        /// The account.
        account: String,
        /// When it thaws.
        until: Duration,
        /// Its share of the fleet's calls over the sustained period, in per mille.
        share_permille: u64,
    },
    /// Thawed.
    Thawed {
        /// The account.
        account: String,
    },
}

#[derive(Debug, Clone, Default)]
struct Second {
    total: u64,
    by_account: BTreeMap<String, u64>,
}

/// Watches a fleet's load per second and freezes the account behind a sustained overload.
#[derive(Debug, Clone)]
pub struct AbuseMonitor {
    policy: AbusePolicy,
    /// Completed and current seconds, oldest first, with the second's index.
    seconds: VecDeque<(u64, Second)>,
    /// First second of the current run of abusive seconds.
    over_since: Option<u64>,
    /// Frozen accounts and when they thaw.
    frozen: BTreeMap<String, Duration>,
    /// Last second evaluated.
    evaluated: Option<u64>,
}

impl AbuseMonitor {
    /// A monitor with nothing seen.
    pub fn new(policy: AbusePolicy) -> Self {
        Self {
            policy,
            seconds: VecDeque::new(),
            over_since: None,
            frozen: BTreeMap::new(),
            evaluated: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &AbusePolicy {
        &self.policy
    }

    /// Counts one call of `account` reaching the fleet at `now`.
    pub fn record(&mut self, account: &str, now: Duration) {
        let s = now.as_secs();
        if self.seconds.back().is_none_or(|(last, _)| *last != s) {
            self.seconds.push_back((s, Second::default()));
        }
        let (_, second) = self.seconds.back_mut().expect("pushed above");
        second.total += 1;
        *second.by_account.entry(account.to_string()).or_default() += 1;
    }

    /// Whether `account` is frozen at `now`.
    pub fn is_frozen(&self, account: &str, now: Duration) -> bool {
        self.frozen.get(account).is_some_and(|&until| now < until)
    }

    /// Freezes an account by hand (a fault), until `until`.
    pub fn freeze(&mut self, account: &str, until: Duration) {
        self.frozen.insert(account.to_string(), until);
    }

    /// Thaws an account by hand.
    pub fn thaw(&mut self, account: &str) -> bool {
        self.frozen.remove(account).is_some()
    }

    /// Evaluates every second completed before `now` against a fleet of `capacity_per_s`, and
    /// returns the freezes and thaws that result, in order. Call it at least once a second.
    pub fn evaluate(&mut self, now: Duration, capacity_per_s: f64) -> Vec<Standing> {
        let mut changes = Vec::new();
        let thawed: Vec<String> = self
            .frozen
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(a, _)| a.clone())
            .collect();
        for account in thawed {
            self.frozen.remove(&account);
            changes.push(Standing::Thawed { account });
            // Judged afresh: a full window of load after the thaw.
            self.over_since = Some(now.as_secs());
        }
        let current = now.as_secs();
        let window = self.policy.sustained.as_secs().max(1);
        let first_unevaluated = self.evaluated.map_or(0, |e| e + 1);
        for s in first_unevaluated..current {
            // The load averaged over the trailing window, as a provider's monitoring sees it:
            // a loaded fleet fluctuates second to second, and a closed-loop client settles
            // around the threshold rather than above it every single second.
            let start = *self.over_since.get_or_insert(s.saturating_sub(window - 1));
            if s + 1 < start + window {
                self.evaluated = Some(s);
                continue;
            }
            let total: u64 = self
                .seconds
                .iter()
                .filter(|(i, _)| (s + 1 - window..=s).contains(i))
                .map(|(_, sec)| sec.total)
                .sum();
            let mean = total as f64 / window as f64;
            if mean > self.policy.fleet_util_over * capacity_per_s
                && let Some(freeze) = self.culprit(s + 1 - window, s, now)
            {
                changes.push(freeze);
                // A fresh full window before the next verdict.
                self.over_since = Some(s + 1);
            }
            self.evaluated = Some(s);
        }
        // Keep what a future window can still need.
        while self
            .seconds
            .front()
            .is_some_and(|(i, _)| i + window < current)
        {
            self.seconds.pop_front();
        }
        changes
    }

    /// Freezes the account with the largest share of `[from, to]`, if it is large enough.
    fn culprit(&mut self, from: u64, to: u64, now: Duration) -> Option<Standing> {
        let mut by_account: BTreeMap<&str, u64> = BTreeMap::new();
        let mut total = 0;
        for (_, sec) in self.seconds.iter().filter(|(i, _)| (from..=to).contains(i)) {
            total += sec.total;
            for (a, n) in &sec.by_account {
                *by_account.entry(a.as_str()).or_default() += n;
            }
        }
        let (account, n) = by_account
            .into_iter()
            .max_by_key(|&(a, n)| (n, std::cmp::Reverse(a)))?;
        let share = n as f64 / total.max(1) as f64;
        if share < self.policy.min_share || self.is_frozen(account, now) {
            return None;
        }
        let account = account.to_string();
        let until = now + self.policy.freeze_for;
        self.frozen.insert(account.clone(), until);
        Some(Standing::Frozen {
            account,
            until,
            share_permille: (share * 1000.0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPACITY: f64 = 100.0;

    fn policy() -> AbusePolicy {
        AbusePolicy {
            fleet_util_over: 0.9,
            sustained: Duration::from_secs(60),
            freeze_for: Duration::from_secs(600),
            min_share: 0.5,
        }
    }

    /// Offers `loud` calls/s from account "loud" and 10/s from "quiet" over `[from_s, to_s)`,
    /// evaluating every second; returns the changes with the second they happened in.
    fn drive(m: &mut AbuseMonitor, from_s: u64, to_s: u64, loud: u64) -> Vec<(u64, Standing)> {
        let mut out = Vec::new();
        for s in from_s..to_s {
            for i in 0..loud {
                m.record(
                    "loud",
                    Duration::from_secs(s) + Duration::from_millis(i * 1000 / loud.max(1)),
                );
            }
            for i in 0..10 {
                m.record(
                    "quiet",
                    Duration::from_secs(s) + Duration::from_millis(i * 100 + 5),
                );
            }
            for c in m.evaluate(Duration::from_secs(s + 1), CAPACITY) {
                out.push((s + 1, c));
            }
        }
        out
    }

    #[test]
    fn freezes_only_after_the_sustained_period_and_thaws_on_time() {
        let mut m = AbuseMonitor::new(policy());
        let changes = drive(&mut m, 0, 200, 150);
        let (at, first) = &changes[0];
        assert_eq!(
            *at, 60,
            "frozen once 60 abusive seconds have passed, not before"
        );
        assert!(
            matches!(first, Standing::Frozen { account, until, .. } if account == "loud" && *until == Duration::from_secs(660))
        );
        assert!(m.is_frozen("loud", Duration::from_secs(659)));
        assert!(!m.is_frozen("quiet", Duration::from_secs(100)));
        let changes = m.evaluate(Duration::from_secs(660), CAPACITY);
        assert_eq!(
            changes,
            vec![Standing::Thawed {
                account: "loud".into()
            }]
        );
        assert!(!m.is_frozen("loud", Duration::from_secs(660)));
    }

    #[test]
    fn the_average_over_the_window_counts_not_every_second() {
        // A second-by-second swing between 70 and 150 (mean 110 > 90) is abuse...
        let mut m = AbuseMonitor::new(policy());
        let mut changes = Vec::new();
        for s in 0..100 {
            changes.extend(drive(&mut m, s, s + 1, if s % 2 == 0 { 150 } else { 70 }));
        }
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].0, 60);
        // ...and a dip that keeps the average under the threshold delays the freeze.
        let mut m = AbuseMonitor::new(policy());
        assert!(drive(&mut m, 0, 30, 150).is_empty());
        assert!(
            drive(&mut m, 30, 60, 0).is_empty(),
            "mean 85 over the first minute"
        );
        let changes = drive(&mut m, 60, 200, 150);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].0 > 60, "{:?}", changes[0]);
    }

    #[test]
    fn load_below_the_threshold_never_freezes() {
        let mut m = AbuseMonitor::new(policy());
        assert!(drive(&mut m, 0, 600, 70).is_empty());
    }

    #[test]
    fn no_account_with_a_large_share_means_no_freeze() {
        let mut m = AbuseMonitor::new(AbusePolicy {
            min_share: 0.95,
            ..policy()
        });
        assert!(drive(&mut m, 0, 200, 150).is_empty());
    }
}
