//! `backs_off_after_throttle`: a caller the provider throttles slows down: after a throttle at
//! t0, its rate over `[t0 + rtt, t0 + rtt + Δ)` is at most β × its rate over `[t0 − Δ, t0)`.
//!
//! Checks: the system's provider `call`s (non-empty `op`), by caller: the client host (the part
//! of `op` before `#`) and the `api`. A call counts at its start (`t_us − latency_us`); a
//! throttle (outcome `throttled`) happens at t0, its event's time, when the provider answered.
//! A throttle is judged when the caller made at least `min_calls` calls in `[t0 − Δ, t0)` (its
//! rate before is meaningful) and the log reaches `t0 + rtt + Δ` (the window after is whole);
//! the calls in `[t0 + rtt, t0 + rtt + Δ)` must then be at most β × the calls before. Once a
//! throttle is judged, the caller's further throttles until `t0 + rtt + Δ` are part of the same
//! burst and not judged. Fails with the first judged throttle, in time, whose caller did not
//! slow down.
//!
//! Unknown: no judged throttle. Does not check: callers that are not the system's (background
//! accounts, real clients); whether the rate comes back up afterwards; throttles the system
//! imposes on itself (`throttled_locally`); other refusals (`frozen`, `error`, `timeout`).

use std::collections::BTreeMap;

use serde_json::json;

use super::calls::{client_host, is_system_call, started};
use super::obj;
use super::time::{log_end, micros, secs};
use super::vocabulary::PROVIDER_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// Parameters of `backs_off_after_throttle`, from the scenario (`invariants:
/// [{backs_off_after_throttle: {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The largest ratio of the rate after a throttle to the rate before. Default 0.9.
    pub beta: f64,
    /// The length of the windows before and after. Default `5s`.
    pub delta: Span,
    /// How long the throttle takes to reach the caller: the window after starts this much after
    /// t0. Default `100ms`.
    pub rtt: Span,
    /// The fewest calls in the window before for a throttle to be judged. Default 20.
    pub min_calls: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            beta: 0.9,
            delta: Span(std::time::Duration::from_secs(5)),
            rtt: Span(std::time::Duration::from_millis(100)),
            min_calls: 20,
        }
    }
}

/// One judged throttle.
struct Judged<'a> {
    host: &'a str,
    api: &'a str,
    throttle: &'a Event,
    before: u64,
    after: u64,
    /// The calls in the window after, in start order.
    calls_after: Vec<&'a Event>,
}

/// The judged throttles, per caller in time order, and how many throttles there were.
fn judged<'a>(log: &'a EventLog, p: &Params) -> (Vec<Judged<'a>>, u64) {
    let mut callers: BTreeMap<(&str, &str), Vec<&Event>> = BTreeMap::new();
    for e in log.of(PROVIDER_TARGET).filter(|e| is_system_call(e)) {
        callers
            .entry((client_host(e), e.str("api").unwrap_or("")))
            .or_default()
            .push(e);
    }
    let (delta, rtt) = (micros(p.delta), micros(p.rtt));
    let end = log_end(log);
    let (mut out, mut throttles) = (Vec::new(), 0u64);
    for ((host, api), mut calls) in callers {
        calls.sort_by_key(|e| (started(e), e.t_us));
        let starts: Vec<u64> = calls.iter().map(|e| started(e)).collect();
        let count = |from: u64, to: u64| {
            (starts.partition_point(|&s| s < to) - starts.partition_point(|&s| s < from)) as u64
        };
        let mut throttled: Vec<&Event> = calls
            .iter()
            .copied()
            .filter(|e| e.str("outcome") == Some("throttled"))
            .collect();
        throttled.sort_by_key(|e| e.t_us);
        throttles += throttled.len() as u64;
        // Throttles before this time belong to the burst of one already judged.
        let mut quiet_from = 0u64;
        for t in throttled {
            let t0 = t.t_us;
            if t0 < quiet_from || t0 + rtt + delta > end {
                continue;
            }
            let before = count(t0.saturating_sub(delta), t0);
            if before < p.min_calls {
                continue;
            }
            let (from, to) = (t0 + rtt, t0 + rtt + delta);
            let after = count(from, to);
            let lo = starts.partition_point(|&s| s < from);
            out.push(Judged {
                host,
                api,
                throttle: t,
                before,
                after,
                calls_after: calls[lo..].iter().take(WITNESS_EVENTS).copied().collect(),
            });
            quiet_from = to;
        }
    }
    (out, throttles)
}

/// Checks that callers slow down after the provider throttles them.
pub fn backs_off_after_throttle(log: &EventLog, p: &Params) -> Verdict {
    let (judged, throttles) = judged(log, p);
    if judged.is_empty() {
        return Verdict::Unknown {
            why: if throttles == 0 {
                "the provider throttled no call of the system".into()
            } else {
                format!(
                    "none of the {throttles} throttles hit a caller with at least {} calls in the {} before it and a whole window after it in the log",
                    p.min_calls,
                    secs(micros(p.delta))
                )
            },
        };
    }
    let slowed = |j: &Judged<'_>| j.after as f64 <= p.beta * j.before as f64 + 1e-9;
    let failed: Vec<&Judged<'_>> = judged.iter().filter(|j| !slowed(j)).collect();
    let mut counts = obj(json!({
        "throttles": throttles,
        "judged": judged.len(),
        "callers": judged.iter().map(|j| (j.host, j.api)).collect::<std::collections::BTreeSet<_>>().len(),
    }));
    let Some(first) = failed
        .iter()
        .copied()
        .min_by_key(|j| (j.throttle.t_us, j.host, j.api))
    else {
        return Verdict::Pass { counts };
    };
    let (delta, rtt) = (micros(p.delta), micros(p.rtt));
    let t0 = first.throttle.t_us;
    let per_s = |n: u64| n as f64 * 1e6 / delta.max(1) as f64;
    counts.insert("failed".into(), failed.len().into());
    counts.insert("host".into(), first.host.into());
    counts.insert("api".into(), first.api.into());
    counts.insert("t0_us".into(), t0.into());
    counts.insert("calls_before".into(), first.before.into());
    counts.insert("calls_after".into(), first.after.into());
    counts.insert("rate_before_per_s".into(), per_s(first.before).into());
    counts.insert("rate_after_per_s".into(), per_s(first.after).into());
    let summary = format!(
        "{} kept calling {} at {:.1}/s over [{}, {}) after a throttle at {}, against {:.1}/s before it: over {} × the rate before; {} of {} judged throttles so",
        first.host,
        first.api,
        per_s(first.after),
        secs(t0 + rtt),
        secs(t0 + rtt + delta),
        secs(t0),
        per_s(first.before),
        p.beta,
        failed.len(),
        judged.len()
    );
    let mut events: Vec<Event> = vec![first.throttle.clone()];
    events.extend(
        first
            .calls_after
            .iter()
            .take(WITNESS_EVENTS - 1)
            .map(|e| (*e).clone()),
    );
    Verdict::Fail {
        witness: Witness {
            summary,
            counts,
            events,
        },
    }
}

/// Whether a throttle hit a caller busy enough for its backing off to be judged.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    (
        !judged(log, p).0.is_empty(),
        "the provider throttled a busy caller of the system",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;

    const S: u64 = 1_000_000;

    fn call(t_us: u64, host: &str, api: &str, outcome: &str) -> Event {
        ev(
            t_us,
            "provider-r",
            PROVIDER_TARGET,
            "call",
            &[
                ("account", json!("100000000001")),
                ("service", json!("sts")),
                ("api", json!(api)),
                ("outcome", json!(outcome)),
                ("latency_us", json!(1000)),
                ("op", json!(format!("{host}#0.{t_us}"))),
                ("attempt", json!(1)),
            ],
        )
    }

    /// `per_s` calls a second from `host` over [from, to) seconds, each starting 1 ms before
    /// its event.
    fn steady(host: &str, from: u64, to: u64, per_s: u64) -> Vec<Event> {
        (from * per_s..to * per_s)
            .map(|k| call(k * S / per_s + 1000, host, "AssumeRole", "ok"))
            .collect()
    }

    fn log(mut events: Vec<Event>) -> EventLog {
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn halving_after_a_throttle_passes() {
        // 10/s, a burst of throttles at 10 s, then 5/s.
        let mut e = steady("worker-r-0", 0, 10, 10);
        e.extend((0..3).map(|k| call(10 * S + 2000 + k, "worker-r-0", "AssumeRole", "throttled")));
        // A later throttle within the same burst is not judged on its own.
        e.push(call(12 * S, "worker-r-0", "AssumeRole", "throttled"));
        e.extend(steady("worker-r-0", 10, 30, 5));
        // Another host's calls are another caller.
        e.extend(steady("worker-r-1", 0, 30, 20));
        let v = backs_off_after_throttle(&log(e), &Params::default());
        let Verdict::Pass { counts } = v else {
            panic!("must pass: {v:?}")
        };
        assert_eq!(counts["throttles"], json!(4));
        assert_eq!(counts["judged"], json!(1));
    }

    #[test]
    fn keeping_the_rate_fails() {
        let mut e = steady("worker-r-0", 0, 30, 10);
        e.push(call(10 * S + 2000, "worker-r-0", "AssumeRole", "throttled"));
        let Verdict::Fail { witness } = backs_off_after_throttle(&log(e), &Params::default())
        else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["host"], json!("worker-r-0"));
        assert_eq!(witness.counts["api"], json!("AssumeRole"));
        assert_eq!(witness.counts["t0_us"], json!(10 * S + 2000));
        // [5.002 s, 10.002 s) holds 50 steady calls and the throttled one.
        assert_eq!(witness.counts["calls_before"], json!(51));
        assert_eq!(witness.counts["calls_after"], json!(50));
        assert!(
            witness
                .summary
                .starts_with("worker-r-0 kept calling AssumeRole at 10.0/s"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
        assert_eq!(witness.events[0].str("outcome"), Some("throttled"));
        assert!(witness.events[1].t_us >= 10 * S + 2000 + 100_000);
    }

    #[test]
    fn a_looser_beta_passes() {
        // 51 calls before (the throttled one too), 45 after: under 0.9 × 51, over 0.8 × 51.
        let mut e = steady("w", 0, 10, 10);
        e.push(call(10 * S, "w", "AssumeRole", "throttled"));
        e.extend(steady("w", 10, 30, 9));
        let strict = Params {
            beta: 0.8,
            ..Params::default()
        };
        assert!(backs_off_after_throttle(&log(e.clone()), &strict).is_fail());
        assert_eq!(
            backs_off_after_throttle(&log(e), &Params::default()).word(),
            "pass"
        );
    }

    #[test]
    fn quiet_callers_and_no_throttles_are_unknown() {
        // 2/s is too few to judge.
        let mut e = steady("w", 0, 30, 2);
        e.push(call(10 * S, "w", "AssumeRole", "throttled"));
        let Verdict::Unknown { why } = backs_off_after_throttle(&log(e), &Params::default()) else {
            panic!("must be unknown")
        };
        assert!(why.contains("none of the 1 throttles"), "{why}");
        let Verdict::Unknown { why } =
            backs_off_after_throttle(&log(steady("w", 0, 30, 10)), &Params::default())
        else {
            panic!("must be unknown")
        };
        assert!(why.contains("throttled no call"), "{why}");
        // A throttle whose window after runs past the end of the log.
        let mut e = steady("w", 0, 12, 10);
        e.push(call(10 * S, "w", "AssumeRole", "throttled"));
        assert_eq!(
            backs_off_after_throttle(&log(e), &Params::default()).word(),
            "unknown"
        );
    }

    #[test]
    fn background_calls_are_not_callers() {
        let mut e = steady("w", 0, 30, 10);
        for c in &mut e {
            c.fields.insert("op".into(), json!(""));
        }
        e.push(call(10 * S, "w", "AssumeRole", "throttled"));
        // Only the throttled call is the system's: too few calls before it.
        assert_eq!(
            backs_off_after_throttle(&log(e), &Params::default()).word(),
            "unknown"
        );
    }

    #[test]
    fn sometimes_needs_a_judged_throttle() {
        let p = Params::default();
        assert!(!sometimes(&log(steady("w", 0, 30, 10)), &p).0);
        let mut e = steady("w", 0, 30, 10);
        e.push(call(10 * S, "w", "AssumeRole", "throttled"));
        assert_eq!(
            sometimes(&log(e), &p),
            (true, "the provider throttled a busy caller of the system")
        );
    }
}
