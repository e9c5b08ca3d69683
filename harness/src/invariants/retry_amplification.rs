//! `retry_amplification`: per api, in every 10 s window holding at least 20 of the system's
//! calls of that api, attempts / logical operations ≤ 1.1 (Google SRE: a 10 % retry budget).
//!
//! Checks: attempts are the provider `call` events of that `api` from accounts that are not
//! background accounts, placed at the time they reached the provider (`t_us − latency_us`);
//! retries are the `stampede::mechanism` `retry` events of that `api` (each means one extra
//! attempt), at their own time; logical operations = attempts − retries. Windows `[t, t + W)`
//! start at every call and retry of the api; a window that would reach past the log's last event
//! is replaced by the last full window `[end − W, end]` (a log shorter than W is one window).
//! A window with at least `min_calls` calls fails when `attempts > max_ratio · logical` (or
//! when it holds no logical operation at all).
//!
//! Does not check: amplification by other layers. Calls repeated without a `retry` event — a
//! task the queue redelivers, a query resubmitted by the client, a re-plan after a restart —
//! are indistinguishable here from fresh logical operations, so they are not separated: this
//! measures the guard's retry layer only. A retry whose next attempt falls in the next window
//! is counted where the `retry` event is.

use std::collections::BTreeMap;

use serde_json::json;

use super::calls::{is_call, started};
use super::obj;
use super::time::{log_end, secs};
use super::vocabulary::{MECHANISM_TARGET, PROVIDER_TARGET, is_background};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The largest attempts / logical operations allowed in a window.
pub const MAX_AMPLIFICATION: f64 = 1.1;

/// The window.
pub const AMPLIFICATION_WINDOW_US: u64 = 10_000_000;

/// The fewest calls of an api a window must hold to be judged.
pub const AMPLIFICATION_MIN_CALLS: u64 = 20;

/// The worst window of one api.
struct Breach<'a> {
    ratio: f64,
    api: &'a str,
    start_us: u64,
    end_us: u64,
    calls: u64,
    retries: u64,
    events: Vec<&'a Event>,
}

/// Checks every api's attempts per logical operation in every `window_us` window with at least
/// `min_calls` calls.
pub fn retry_amplification(
    log: &EventLog,
    max_ratio: f64,
    window_us: u64,
    min_calls: u64,
) -> Verdict {
    // Per api: calls and retries, as (time, event).
    let mut calls: BTreeMap<&str, Vec<(u64, &Event)>> = BTreeMap::new();
    let mut retries: BTreeMap<&str, Vec<(u64, &Event)>> = BTreeMap::new();
    for e in log.of(PROVIDER_TARGET).filter(|e| is_call(e)) {
        if let (Some(account), Some(api)) = (e.str("account"), e.str("api"))
            && !is_background(account)
        {
            calls.entry(api).or_default().push((started(e), e));
        }
    }
    for e in log.of(MECHANISM_TARGET).filter(|e| e.name == "retry") {
        if let Some(api) = e.str("api") {
            retries.entry(api).or_default().push((e.t_us, e));
        }
    }
    let end = log_end(log);
    let last_start = end.saturating_sub(window_us);
    let (mut judged, mut total_calls, mut total_retries) = (0u64, 0u64, 0u64);
    let mut worst: Option<Breach<'_>> = None;
    let none = Vec::new();
    for (api, mut cs) in calls {
        let mut rs = retries.get(api).unwrap_or(&none).clone();
        cs.sort_by_key(|p| p.0);
        rs.sort_by_key(|p| p.0);
        total_calls += cs.len() as u64;
        total_retries += rs.len() as u64;
        let mut starts: Vec<u64> = cs
            .iter()
            .chain(rs.iter())
            .map(|p| p.0)
            .filter(|&t| t < last_start)
            .collect();
        starts.push(last_start);
        starts.sort_unstable();
        starts.dedup();
        let (mut clo, mut chi, mut rlo, mut rhi) = (0usize, 0usize, 0usize, 0usize);
        for s in starts {
            let (upper, shown_end) = if s == last_start {
                (end.saturating_add(1), end)
            } else {
                (s + window_us, s + window_us)
            };
            while clo < cs.len() && cs[clo].0 < s {
                clo += 1;
            }
            chi = chi.max(clo);
            while chi < cs.len() && cs[chi].0 < upper {
                chi += 1;
            }
            while rlo < rs.len() && rs[rlo].0 < s {
                rlo += 1;
            }
            rhi = rhi.max(rlo);
            while rhi < rs.len() && rs[rhi].0 < upper {
                rhi += 1;
            }
            let n = (chi - clo) as u64;
            if n < min_calls.max(1) {
                continue;
            }
            judged += 1;
            let r = (rhi - rlo) as u64;
            let logical = n.saturating_sub(r);
            let over = logical == 0 || n as f64 > max_ratio * logical as f64 + 1e-9;
            let ratio = if logical == 0 {
                f64::INFINITY
            } else {
                n as f64 / logical as f64
            };
            if over && worst.as_ref().is_none_or(|w| ratio > w.ratio) {
                worst = Some(Breach {
                    ratio,
                    api,
                    start_us: s,
                    end_us: shown_end,
                    calls: n,
                    retries: r,
                    events: rs[rlo..rhi].iter().map(|p| p.1).collect(),
                });
            }
        }
    }
    if judged == 0 {
        return Verdict::Unknown {
            why: format!(
                "no api had {min_calls} or more system calls in any {} window",
                secs(window_us)
            ),
        };
    }
    let Some(b) = worst else {
        return Verdict::Pass {
            counts: obj(json!({
                "calls": total_calls, "retries": total_retries, "windows": judged,
            })),
        };
    };
    let logical = b.calls.saturating_sub(b.retries);
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{} made {} attempts for {} logical operations ({} retries, {:.2}×) in the window [{}, {}), over {:.2}×",
                b.api,
                b.calls,
                logical,
                b.retries,
                b.ratio,
                secs(b.start_us),
                secs(b.end_us),
                max_ratio
            ),
            counts: obj(json!({
                "attempts_in_window": b.calls, "retries_in_window": b.retries,
                "logical_in_window": logical, "window_start_us": b.start_us,
                "calls": total_calls, "retries": total_retries,
            })),
            events: b.events.into_iter().take(WITNESS_EVENTS).cloned().collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::test_support::ev;

    fn call(t_us: u64, account: &str, api: &str) -> Event {
        ev(
            t_us,
            "provider-r",
            PROVIDER_TARGET,
            "call",
            &[
                ("account", json!(account)),
                ("api", json!(api)),
                ("outcome", json!("ok")),
                ("latency_us", json!(1000)),
            ],
        )
    }

    fn retry(t_us: u64, api: &str) -> Event {
        ev(
            t_us,
            "worker-1",
            MECHANISM_TARGET,
            "retry",
            &[("api", json!(api)), ("attempt", json!(1))],
        )
    }

    /// 10 calls a second of `api` for 60 s, and a retry at every call `k` for which `retried(k)`.
    fn steady(account: &str, api: &str, retried: impl Fn(u64) -> bool) -> Vec<Event> {
        let mut events = Vec::new();
        for k in 0..600 {
            let t = k * 100_000 + 1000;
            events.push(call(t, account, api));
            if retried(k) {
                events.push(retry(t + 10, api));
            }
        }
        events
    }

    fn check(events: Vec<Event>) -> Verdict {
        let mut events = events;
        events.sort_by_key(|e| e.t_us);
        retry_amplification(
            &EventLog::from_events(events),
            MAX_AMPLIFICATION,
            AMPLIFICATION_WINDOW_US,
            AMPLIFICATION_MIN_CALLS,
        )
    }

    #[test]
    fn few_retries_pass() {
        // One retry in 20 calls: 100 attempts for 95 operations in 10 s, 1.05×.
        let v = check(steady("100000000001", "AssumeRole", |k| k % 20 == 0));
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn a_retry_storm_fails_on_its_api() {
        let mut events = steady("100000000001", "AssumeRole", |_| false);
        // GetTable: every other call is a retry from 20 s to 30 s.
        events.extend(steady("300000000001", "GetTable", |k| {
            (200..300).contains(&k) && k % 2 == 0
        }));
        let Verdict::Fail { witness } = check(events) else {
            panic!("must fail")
        };
        assert!(
            witness.summary.starts_with("GetTable"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.counts["retries_in_window"], json!(50));
        assert_eq!(witness.counts["attempts_in_window"], json!(100));
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
    }

    #[test]
    fn background_calls_and_sparse_windows_are_unknown() {
        // Background calls do not count; 1 system call a second never makes 20 in 10 s.
        let mut events = steady("200000000001", "AssumeRole", |_| true);
        events.extend((0..60).map(|k| call(k * 1_000_000, "100000000001", "AssumeRole")));
        assert_eq!(check(events).word(), "unknown");
    }
}
