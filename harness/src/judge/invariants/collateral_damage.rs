//! `collateral_damage`: other customers of the region do not suffer for what the system does:
//! at most 1 % of background accounts' calls fail in any 60 s window.
//!
//! Checks: the provider `call`s of background accounts (12 digits starting with `2`), per
//! region, placed at the time they reached the provider (`t_us − latency_us`); in every window
//! `[t, t + W)` starting at such a call and holding at least `min_calls` of them, the calls
//! whose outcome is not `ok` (throttled, frozen, error, timeout) are at most `max_ratio` of
//! them. Windows that would reach past the log's last event are replaced by the last full
//! window `[end − W, end]`.
//!
//! Does not check: whether the system caused the errors. A fault on the timeline (fleet
//! capacity, latency, a throttle for every account) hurts background accounts too and fails
//! this check; scenarios that inject such faults should not list it, or expect it violated.

use std::collections::BTreeMap;

use serde_json::json;

use super::Verdict;
use super::calls::{is_call, started};
use super::obj;
use super::time::log_end;
use super::vocabulary::{PROVIDER_TARGET, is_background};
use super::windows::worst_ratio_breach;
use crate::events::{Event, EventLog};

/// The largest share of failed background calls allowed in a window.
pub const MAX_COLLATERAL_ERRORS: f64 = 0.01;

/// The window.
pub const COLLATERAL_WINDOW_US: u64 = 60_000_000;

/// Windows with fewer background calls are not judged.
pub const COLLATERAL_MIN_CALLS: u64 = 20;

/// Checks background accounts' error rate per region in every `window_us` window holding at
/// least `min_calls` of their calls.
pub fn collateral_damage(
    log: &EventLog,
    max_ratio: f64,
    window_us: u64,
    min_calls: u64,
) -> Verdict {
    let mut by_region: BTreeMap<&str, Vec<(u64, bool, &Event)>> = BTreeMap::new();
    for e in log.of(PROVIDER_TARGET).filter(|e| is_call(e)) {
        if e.str("account").is_some_and(is_background) {
            let region = e.str("region").unwrap_or("");
            let failed = e.str("outcome") != Some("ok");
            by_region
                .entry(region)
                .or_default()
                .push((started(e), failed, e));
        }
    }
    if by_region.is_empty() {
        return Verdict::Unknown {
            why: "no background account called the provider".into(),
        };
    }
    let end = log_end(log);
    let (mut calls, mut failed, mut windows) = (0u64, 0u64, 0u64);
    let mut worst: Option<(&str, super::windows::RatioBreach<'_>)> = None;
    for (region, mut points) in by_region {
        points.sort_by_key(|p| p.0);
        calls += points.len() as u64;
        failed += points.iter().filter(|p| p.1).count() as u64;
        let (breach, judged) = worst_ratio_breach(&points, window_us, end, max_ratio, min_calls);
        windows += judged;
        if let Some(b) = breach
            && worst
                .as_ref()
                .is_none_or(|(_, w)| b.bad * w.total > w.bad * b.total)
        {
            worst = Some((region, b));
        }
    }
    if windows == 0 {
        return Verdict::Unknown {
            why: format!(
                "no {} s window held {min_calls} background calls",
                window_us / 1_000_000
            ),
        };
    }
    let Some((region, b)) = worst else {
        return Verdict::Pass {
            counts: obj(json!({ "background_calls": calls, "failed": failed, "windows": windows })),
        };
    };
    Verdict::Fail {
        witness: b.witness(
            &format!("in {region}, "),
            "background calls failed",
            max_ratio,
            obj(json!({ "background_calls": calls, "failed": failed })),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;

    fn call(t_us: u64, account: &str, region: &str, outcome: &str) -> Event {
        ev(
            t_us,
            &format!("provider-{region}"),
            PROVIDER_TARGET,
            "call",
            &[
                ("account", json!(account)),
                ("region", json!(region)),
                ("service", json!("glue")),
                ("api", json!("GetTable")),
                ("outcome", json!(outcome)),
                ("latency_us", json!(0)),
            ],
        )
    }

    /// 5 background calls a second for 120 s in `region`, the k-th failing when `bad(k)`.
    fn background(region: &str, bad: impl Fn(u64) -> bool) -> Vec<Event> {
        (0..600)
            .map(|k| {
                let outcome = if bad(k) { "timeout" } else { "ok" };
                call(k * 200_000, "200000000003", region, outcome)
            })
            .collect()
    }

    fn check(events: Vec<Event>) -> Verdict {
        collateral_damage(
            &EventLog::from_events(events),
            MAX_COLLATERAL_ERRORS,
            COLLATERAL_WINDOW_US,
            COLLATERAL_MIN_CALLS,
        )
    }

    #[test]
    fn healthy_background_passes_whatever_the_system_suffers() {
        let mut events = background("r1", |k| k == 100);
        events.extend((0..100).map(|k| call(k * 1000, "100000000001", "r1", "throttled")));
        assert_eq!(check(events).word(), "pass");
    }

    #[test]
    fn failing_background_fails_in_its_region() {
        let mut events = background("r1", |_| false);
        events.extend(background("r2", |k| (400..410).contains(&k)));
        let Verdict::Fail { witness } = check(events) else {
            panic!("10 of 300 is over 1 %")
        };
        assert!(witness.summary.starts_with("in r2"), "{}", witness.summary);
        assert_eq!(witness.counts["bad_in_window"], json!(10));
        assert_eq!(witness.events[0].str("outcome"), Some("timeout"));
    }

    #[test]
    fn sparse_background_is_not_judged() {
        // 10 calls, all failed: no window holds 20.
        let events = (0..10)
            .map(|k| call(k * 10_000_000, "200000000001", "r1", "error"))
            .collect();
        assert_eq!(check(events).word(), "unknown");
    }

    #[test]
    fn no_background_is_unknown() {
        let events = vec![call(0, "100000000001", "r1", "ok")];
        assert_eq!(check(events).word(), "unknown");
    }
}
