//! `recovers`: after the first fault ends, goodput gets back to 90 % of its level before the
//! fault within `T_max = max(60 s, 2 × (t1 − t0))` and stays there.
//!
//! Checks: the trigger is the first `stampede::fault` event that starts a fault (`freeze`,
//! `region_down`, `throttle`, `latency`, `fleet_capacity`, `host_crash`, `partition`) at t0;
//! it ends at t1, the first matching end ([`super::faults::fault_end`]): for `freeze` the earlier of its `duration_ms` and a
//! `thaw` of the same account; `region_up` of the same region; the next `throttle` of the same
//! region and api, `latency` or `fleet_capacity` of the same region; `host_restart` of the same
//! host; `heal` of the same pair. Goodput is the `stampede::traffic` `answered` events with
//! status 200; G0 is their count over `[0, t0)` scaled to a window of W = 60 s. The recovery
//! time t* is the first t ≥ t1 from which every window `[s, s + W)` with s in
//! `[t, min(t + T_stable, end) − W]` holds at least 0.9 × G0 answers (T_stable = 120 s; a log
//! that ends sooner is judged up to its end). Window counts change only at answers, so every
//! start is checked exactly. Fails when t* − t1 > T_max, or when goodput never stays back.
//!
//! Unknown: no fault, a fault that never ends, no answer before t0, or no full window between
//! t1 and the end of the log. Does not check: faults after the first; the drain bound the
//! catalogue adds to T_max (see `backlog_drains`); whether offered load itself was back at its
//! level (a replay that offers less after the fault looks like a failure to recover). G0 counts
//! from time 0, so a warm-up before the first answer lowers it.

use serde_json::json;

use super::clients::goodput;
use super::faults::{fault_end, first_fault};
use super::obj;
use super::time::{log_end, secs};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The goodput window.
pub const GOODPUT_WINDOW_US: u64 = 60_000_000;

/// How long goodput must stay back.
pub const T_STABLE_US: u64 = 120_000_000;

/// The share of the baseline goodput that counts as recovered.
pub const RECOVERED_SHARE: f64 = 0.9;

/// The least recovery bound; the bound is this or twice the fault's length.
pub const T_MAX_MIN_US: u64 = 60_000_000;

/// Checks recovery from the first fault.
pub fn recovers(log: &EventLog) -> Verdict {
    let Some(start) = first_fault(log) else {
        return Verdict::Unknown {
            why: "no fault: nothing to recover from".into(),
        };
    };
    let t0 = start.t_us;
    let Some((t1, end_event)) = fault_end(log, start) else {
        return Verdict::Unknown {
            why: format!(
                "the {} at {} never ended: recovery cannot be judged",
                start.name,
                secs(t0)
            ),
        };
    };
    let answers = goodput(log);
    let times: Vec<u64> = answers.iter().map(|e| e.t_us).collect();
    let before = times.partition_point(|&t| t < t0) as u64;
    if before == 0 || t0 == 0 {
        return Verdict::Unknown {
            why: format!(
                "no query was answered 200 before the {} at {}: no baseline",
                start.name,
                secs(t0)
            ),
        };
    }
    let w = GOODPUT_WINDOW_US;
    let g0 = before as f64 * w as f64 / t0 as f64;
    let need = RECOVERED_SHARE * g0;
    let end = log_end(log);
    if end < t1.saturating_add(w) {
        return Verdict::Unknown {
            why: format!(
                "the log ends at {}, less than {} after the fault ended at {}",
                secs(end),
                secs(w),
                secs(t1)
            ),
        };
    }
    let last_start = end - w;
    let count =
        |s: u64| (times.partition_point(|&t| t < s + w) - times.partition_point(|&t| t < s)) as u64;
    // Window starts where the count changes: an answer leaves just after it, one enters at
    // its time less W.
    let mut points: Vec<u64> = vec![t1];
    for &a in &times {
        points.push(a + 1);
        points.push(a.saturating_sub(w));
    }
    points.retain(|&p| (t1..=last_start).contains(&p));
    points.sort_unstable();
    points.dedup();
    // Segments of constant count [p_k, p_{k+1}); the last one closes at last_start.
    let mut recovered_at = t1;
    let mut worst: Option<(u64, u64)> = None;
    let mut never = false;
    for (k, &p) in points.iter().enumerate() {
        let n = count(p);
        if (n as f64) >= need - 1e-9 {
            continue;
        }
        if worst.is_none_or(|(m, _)| n < m) {
            worst = Some((n, p));
        }
        // A bad window at p beyond the horizon of the current candidate: it has held.
        if p > recovered_at + (T_STABLE_US - w) {
            break;
        }
        match points.get(k + 1) {
            Some(&next) => recovered_at = next,
            None => never = true,
        }
    }
    let t_max = T_MAX_MIN_US.max(2 * (t1 - t0));
    let took = recovered_at - t1;
    let c = obj(json!({
        "t0_us": t0, "t1_us": t1, "baseline_per_window": g0, "answered_before": before,
        "recovery_us": if never { None } else { Some(took) }, "t_max_us": t_max,
        "worst_window": worst.map(|(n, _)| n), "worst_window_start_us": worst.map(|(_, s)| s),
    }));
    if !never && took <= t_max {
        return Verdict::Pass { counts: c };
    }
    let mut events: Vec<Event> = vec![start.clone()];
    events.extend(end_event.cloned());
    if let Some((_, s)) = worst {
        let lo = times.partition_point(|&t| t < s);
        events.extend(
            answers[lo..]
                .iter()
                .take(WITNESS_EVENTS)
                .map(|e| (*e).clone()),
        );
    }
    events.truncate(WITNESS_EVENTS);
    let (wn, ws) = worst.unwrap_or((0, t1));
    let summary = if never {
        format!(
            "after the {} from {} to {}, goodput never stayed at 0.9 × {g0:.1} per 60 s: {wn} answered in [{}, {}), still short at the end of the log",
            start.name,
            secs(t0),
            secs(t1),
            secs(ws),
            secs(ws + w)
        )
    } else {
        format!(
            "after the {} from {} to {}, goodput got back to 0.9 × {g0:.1} per 60 s only at {}, {} after the fault ended, over T_max {} (worst: {wn} answered in [{}, {}))",
            start.name,
            secs(t0),
            secs(t1),
            secs(recovered_at),
            secs(took),
            secs(t_max),
            secs(ws),
            secs(ws + w)
        )
    };
    Verdict::Fail {
        witness: Witness {
            summary,
            counts: c,
            events,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::test_support::ev;
    use crate::invariants::vocabulary::{FAULT_TARGET, TRAFFIC_TARGET};

    fn answered(t_us: u64, status: u64) -> Event {
        ev(
            t_us,
            "traffic",
            TRAFFIC_TARGET,
            "answered",
            &[("status", json!(status)), ("seq", json!(t_us))],
        )
    }

    fn fault(t_s: u64, name: &str, fields: &[(&str, serde_json::Value)]) -> Event {
        ev(t_s * 1_000_000, "harness", FAULT_TARGET, name, fields)
    }

    /// One answer a second over [from, to) seconds, except in [gap_from, gap_to).
    fn answers(from: u64, to: u64, gap: std::ops::Range<u64>) -> Vec<Event> {
        (from..to)
            .filter(|s| !gap.contains(s))
            .map(|s| answered(s * 1_000_000 + 500_000, 200))
            .collect()
    }

    fn log(mut events: Vec<Event>) -> EventLog {
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn goodput_back_soon_after_the_fault_passes() {
        // 1/s for 100 s, nothing during a 30 s outage, back 10 s after it ends.
        let mut e = answers(0, 400, 100..140);
        e.push(fault(100, "region_down", &[("region", json!("r"))]));
        e.push(fault(130, "region_up", &[("region", json!("r"))]));
        let v = recovers(&log(e));
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn goodput_that_stays_low_fails() {
        // Back at a third of the rate after the fault: never recovers.
        let mut e = answers(0, 100, 0..0);
        e.extend(
            (150..400)
                .filter(|s| s % 3 == 0)
                .map(|s| answered(s * 1_000_000, 200)),
        );
        e.push(fault(
            100,
            "freeze",
            &[("account", json!("1")), ("duration_ms", json!(30_000))],
        ));
        let Verdict::Fail { witness } = recovers(&log(e)) else {
            panic!("must fail")
        };
        assert!(witness.summary.contains("never"), "{}", witness.summary);
        assert_eq!(witness.events[0].name, "freeze");
    }

    #[test]
    fn a_slow_recovery_fails() {
        // A 10 s throttle; goodput is back only 200 s later (T_max 60 s).
        let mut e = answers(0, 600, 100..310);
        e.push(fault(
            100,
            "throttle",
            &[("region", json!("r")), ("api", json!("GetTable"))],
        ));
        e.push(fault(
            110,
            "throttle",
            &[("region", json!("r")), ("api", json!("GetTable"))],
        ));
        // 500 errors during the outage are not goodput.
        e.extend((100..310).map(|s| answered(s * 1_000_000, 500)));
        let Verdict::Fail { witness } = recovers(&log(e)) else {
            panic!("must fail")
        };
        assert!(witness.summary.contains("only at"), "{}", witness.summary);
    }

    #[test]
    fn no_fault_or_no_baseline_or_no_end_is_unknown() {
        assert_eq!(recovers(&log(answers(0, 100, 0..0))).word(), "unknown");
        let mut e = answers(50, 300, 0..0);
        e.push(fault(10, "host_crash", &[("host", json!("c1"))]));
        e.push(fault(20, "host_restart", &[("host", json!("c1"))]));
        assert_eq!(recovers(&log(e)).word(), "unknown");
        let mut e = answers(0, 300, 0..0);
        e.push(fault(
            100,
            "partition",
            &[("a", json!("x")), ("b", json!("y"))],
        ));
        assert_eq!(recovers(&log(e)).word(), "unknown");
        let mut e = answers(0, 300, 0..0);
        e.push(fault(
            100,
            "partition",
            &[("a", json!("x")), ("b", json!("y"))],
        ));
        e.push(fault(110, "heal", &[("a", json!("y")), ("b", json!("x"))]));
        assert_eq!(recovers(&log(e)).word(), "pass");
    }
}
