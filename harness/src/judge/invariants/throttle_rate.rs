//! `throttle_rate`: of the provider calls the system makes, at most 1 % are throttled in any
//! 60 s window.
//!
//! Checks: every provider `call` of an account that is not a background account (the system's
//! own and the lake accounts it calls as), placed at the time it reached the provider
//! (`t_us − latency_us`); in every window `[t, t + W)` starting at such a call, `throttled /
//! calls ≤ max_ratio`. Windows that would reach past the log's last event are replaced by the
//! last full window `[end − W, end]` (a log shorter than W is one window), so that the end of
//! the run does not leave a window of a handful of calls. Only the outcome `throttled` counts:
//! `frozen`, `error` and `timeout` are not throttles.
//!
//! Does not check: throttles the system imposes on itself before calling (`throttled_locally`
//! is a protective mechanism, not a provider throttle).

use serde_json::json;

use super::Verdict;
use super::calls::{is_call, started};
use super::obj;
use super::time::log_end;
use super::vocabulary::{PROVIDER_TARGET, is_background};
use super::windows::worst_ratio_breach;
use crate::events::{Event, EventLog};

/// The largest share of throttled calls allowed in a window.
pub const MAX_THROTTLED: f64 = 0.01;

/// The window.
pub const THROTTLE_WINDOW_US: u64 = 60_000_000;

/// Checks the system's throttled share of provider calls in every `window_us` window.
pub fn throttle_rate(log: &EventLog, max_ratio: f64, window_us: u64) -> Verdict {
    let mut points: Vec<(u64, bool, &Event)> = log
        .of(PROVIDER_TARGET)
        .filter(|e| is_call(e))
        .filter(|e| e.str("account").is_some_and(|a| !is_background(a)))
        .map(|e| (started(e), e.str("outcome") == Some("throttled"), e))
        .collect();
    if points.is_empty() {
        return Verdict::Unknown {
            why: "the system made no provider calls".into(),
        };
    }
    points.sort_by_key(|p| p.0);
    let throttled = points.iter().filter(|p| p.1).count() as u64;
    let calls = points.len() as u64;
    let (breach, windows) = worst_ratio_breach(&points, window_us, log_end(log), max_ratio, 1);
    let Some(b) = breach else {
        return Verdict::Pass {
            counts: obj(json!({ "calls": calls, "throttled": throttled, "windows": windows })),
        };
    };
    Verdict::Fail {
        witness: b.witness(
            "",
            "system calls were throttled",
            max_ratio,
            obj(json!({ "throttled": throttled, "calls": calls })),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;

    fn call(t_us: u64, account: &str, outcome: &str) -> Event {
        ev(
            t_us,
            "provider-r",
            PROVIDER_TARGET,
            "call",
            &[
                ("account", json!(account)),
                ("service", json!("sts")),
                ("api", json!("AssumeRole")),
                ("outcome", json!(outcome)),
                ("latency_us", json!(1000)),
            ],
        )
    }

    /// 10 calls a second for 120 s from `account`, the k-th of them throttled when `bad(k)`.
    fn steady(account: &str, bad: impl Fn(u64) -> bool) -> Vec<Event> {
        (0..1200)
            .map(|k| {
                let outcome = if bad(k) { "throttled" } else { "ok" };
                call(k * 100_000 + 1000, account, outcome)
            })
            .collect()
    }

    #[test]
    fn rare_throttles_pass() {
        // One throttle every 20 s: at most 3 of 600 in any 60 s.
        let log = EventLog::from_events(steady("100000000001", |k| k % 200 == 0));
        let v = throttle_rate(&log, MAX_THROTTLED, THROTTLE_WINDOW_US);
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn a_burst_of_throttles_fails_with_its_window() {
        // 10 throttles in a row at 30 s: 10 of 600 in the windows holding them.
        let log = EventLog::from_events(steady("300000000004", |k| (300..310).contains(&k)));
        let Verdict::Fail { witness } = throttle_rate(&log, MAX_THROTTLED, THROTTLE_WINDOW_US)
        else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["bad_in_window"], json!(10));
        assert_eq!(
            witness.events.len(),
            crate::judge::invariants::WITNESS_EVENTS
        );
        assert_eq!(witness.events[0].t_us, 30_001_000);
    }

    #[test]
    fn background_throttles_do_not_count() {
        let mut events = steady("100000000001", |_| false);
        events.extend(steady("200000000001", |_| true));
        events.sort_by_key(|e| e.t_us);
        let log = EventLog::from_events(events);
        assert_eq!(
            throttle_rate(&log, MAX_THROTTLED, THROTTLE_WINDOW_US).word(),
            "pass"
        );
    }

    #[test]
    fn no_system_calls_is_unknown() {
        let log = EventLog::from_events(steady("200000000001", |_| true));
        assert_eq!(
            throttle_rate(&log, MAX_THROTTLED, THROTTLE_WINDOW_US).word(),
            "unknown"
        );
    }
}
