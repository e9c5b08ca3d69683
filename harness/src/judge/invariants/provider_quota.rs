//! `provider_quota`: for each (account, service, api) with a quota and each window W in
//! {1 s, 10 s, 60 s}, the calls the provider received in any window `[t, t+W)` stay within
//! what its token bucket admits in W: `burst + rate · W`. Windows start at every call (two
//! pointers over the sorted start times). Calls count whatever their outcome: a throttled call
//! still reached the provider.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::calls::{is_call, started};
use super::obj;
use super::vocabulary::PROVIDER_TARGET;
use super::windows::max_in_window;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The windows checked.
pub const WINDOWS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(60),
];

/// A quota: sustained rate and burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Calls per second.
    pub rate_per_s: f64,
    /// Bucket size.
    pub burst: f64,
}

impl Quota {
    /// Calls the bucket admits in a window of `w`.
    pub fn within(&self, w: Duration) -> u64 {
        (self.burst + self.rate_per_s * w.as_secs_f64()).floor() as u64
    }
}

/// The worst window found: how far over (ratio), the key, its calls, the count, the quota, W.
type Excess<'a> = (f64, String, Vec<&'a Event>, u64, u64, Duration);

/// The calls of accounts for which `owned` is true, by (account, service, api), for the apis
/// in `quotas`, sorted by when they reached the provider.
fn owned_calls<'a>(
    log: &'a EventLog,
    quotas: &BTreeMap<String, Quota>,
    owned: impl Fn(&str) -> bool,
) -> BTreeMap<(&'a str, &'a str, &'a str), Vec<&'a Event>> {
    let mut calls: BTreeMap<(&str, &str, &str), Vec<&Event>> = BTreeMap::new();
    for e in log.of(PROVIDER_TARGET).filter(|e| is_call(e)) {
        let (Some(account), Some(service), Some(api)) =
            (e.str("account"), e.str("service"), e.str("api"))
        else {
            continue;
        };
        if quotas.contains_key(api) && owned(account) {
            calls.entry((account, service, api)).or_default().push(e);
        }
    }
    for events in calls.values_mut() {
        events.sort_by_key(|e| started(e));
    }
    calls
}

/// The highest share of a quota an owned account's calls of one api used in any window: 1.0
/// is the quota exactly.
pub fn peak_share(
    log: &EventLog,
    quotas: &BTreeMap<String, Quota>,
    owned: impl Fn(&str) -> bool,
) -> f64 {
    peak_shares(log, quotas, owned)
        .into_values()
        .fold(0.0, f64::max)
}

/// Per api, the highest share of its quota an owned account's calls used in any window.
pub fn peak_shares(
    log: &EventLog,
    quotas: &BTreeMap<String, Quota>,
    owned: impl Fn(&str) -> bool,
) -> BTreeMap<String, f64> {
    let mut peaks: BTreeMap<String, f64> = BTreeMap::new();
    for ((_, _, api), events) in owned_calls(log, quotas, owned) {
        let times: Vec<u64> = events.iter().map(|e| started(e)).collect();
        let peak = peaks.entry(api.to_string()).or_default();
        for w in WINDOWS {
            let allowed = quotas[api].within(w).max(1) as f64;
            let (n, _) = max_in_window(&times, w.as_micros() as u64);
            *peak = peak.max(n as f64 / allowed);
        }
    }
    peaks
}

/// Sometimes: an owned account's calls came to half a quota or more in some window, so that
/// the quota mattered.
pub fn sometimes(
    log: &EventLog,
    quotas: &BTreeMap<String, Quota>,
    owned: impl Fn(&str) -> bool,
) -> (bool, &'static str) {
    (
        peak_share(log, quotas, owned) >= 0.5,
        "the system's calls of an api came to half its quota or more in some window",
    )
}

/// Checks every account for which `owned` is true against `quotas` (by api name).
pub fn provider_quota(
    log: &EventLog,
    quotas: &BTreeMap<String, Quota>,
    owned: impl Fn(&str) -> bool,
) -> Verdict {
    if quotas.is_empty() {
        return Verdict::Unknown {
            why: "the scenario's provider has no quotas to check against".into(),
        };
    }
    let mut checked = 0u64;
    let mut worst: Option<Excess<'_>> = None;
    for ((account, service, api), events) in owned_calls(log, quotas, owned) {
        let quota = quotas[api];
        checked += events.len() as u64;
        let times: Vec<u64> = events.iter().map(|e| started(e)).collect();
        for w in WINDOWS {
            let allowed = quota.within(w);
            // The fullest window of this width: over the quota if any is.
            let (n, range) = max_in_window(&times, w.as_micros() as u64);
            let excess = n as f64 / allowed.max(1) as f64;
            if n > allowed && worst.as_ref().is_none_or(|(x, ..)| excess > *x) {
                worst = Some((
                    excess,
                    format!("{account} {service}:{api}"),
                    events[range].to_vec(),
                    n,
                    allowed,
                    w,
                ));
            }
        }
    }
    match worst {
        None => Verdict::Pass {
            counts: obj(json!({ "calls_checked": checked })),
        },
        Some((_, key, events, n, allowed, w)) => Verdict::Fail {
            witness: Witness {
                summary: format!(
                    "{key}: {n} calls in the {}s window from t={:.3}s, where the quota admits {allowed}",
                    w.as_secs(),
                    started(events[0]) as f64 / 1e6
                ),
                counts: obj(json!({ "calls": n, "allowed": allowed, "window_s": w.as_secs() })),
                events: events.into_iter().take(WITNESS_EVENTS).cloned().collect(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Fields;

    fn call(t_us: u64, account: &str) -> Event {
        Event {
            t_us,
            host: "provider-r".into(),
            target: PROVIDER_TARGET.into(),
            name: "call".into(),
            fields: Fields::from_iter([
                ("account".to_string(), json!(account)),
                ("service".to_string(), json!("sts")),
                ("api".to_string(), json!("AssumeRole")),
                ("outcome".to_string(), json!("ok")),
                ("latency_us".to_string(), json!(0)),
            ]),
        }
    }

    fn quotas() -> BTreeMap<String, Quota> {
        BTreeMap::from([(
            "AssumeRole".to_string(),
            Quota {
                rate_per_s: 10.0,
                burst: 5.0,
            },
        )])
    }

    #[test]
    fn calls_at_the_quota_pass() {
        // 5 at once (the burst), then 10 a second for a minute.
        let mut events: Vec<Event> = (0..5).map(|_| call(0, "a")).collect();
        events.extend((1..=600).map(|k| call(k * 100_000, "a")));
        let log = EventLog::from_events(events);
        assert_eq!(provider_quota(&log, &quotas(), |_| true).word(), "pass");
    }

    #[test]
    fn a_burst_over_the_bucket_fails_and_others_do_not_count() {
        let mut events: Vec<Event> = (0..16).map(|k| call(k * 10_000, "a")).collect();
        events.extend((0..100).map(|k| call(k, "background")));
        let log = EventLog::from_events(events);
        let Verdict::Fail { witness } = provider_quota(&log, &quotas(), |a| a == "a") else {
            panic!("16 calls in 1 s exceed 5 + 10")
        };
        assert_eq!(witness.counts["calls"], json!(16));
        assert_eq!(witness.counts["allowed"], json!(15));
        let only_background =
            EventLog::from_events((0..100).map(|k| call(k, "background")).collect());
        assert_eq!(
            provider_quota(&only_background, &quotas(), |a| a == "a").word(),
            "pass"
        );
    }

    #[test]
    fn sometimes_needs_the_owned_calls_to_come_near_the_quota() {
        // 7 calls in a second: under half of the 15 the bucket admits in 1 s.
        let light = EventLog::from_events((0..7).map(|k| call(k * 100_000, "a")).collect());
        assert!(!sometimes(&light, &quotas(), |_| true).0);
        // 8 of 15: over half.
        let near = EventLog::from_events((0..8).map(|k| call(k * 100_000, "a")).collect());
        assert!(sometimes(&near, &quotas(), |_| true).0);
        assert!((peak_share(&near, &quotas(), |_| true) - 8.0 / 15.0).abs() < 1e-9);
        // Other accounts near it do not count.
        assert!(!sometimes(&near, &quotas(), |a| a == "b").0);
    }
}
