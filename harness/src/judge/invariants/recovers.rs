//! `recovers`: after the first fault ends, goodput gets back to 90 % of its level before the
//! fault within `T_max = max(60 s, 2 × (t1 − t0))` and stays there.
//!
//! Checks: the trigger is the first fault whose kind triggers a recovery
//! ([`super::faults::TRIGGERS`]: a generated burst, or a fault of the world on the system) and
//! that ended: its `fault_start` at t0, and its `fault_end` (the same `id`) at t1. Goodput is
//! the `stampede::traffic` `answered` events with status 200; G0 is their count over `[0, t0)`
//! scaled to a window of W = 60 s. The recovery time t* is the first t ≥ t1 from which every
//! window `[s, s + W)` with s in `[t, min(t + T_stable, end) − W]` holds at least 0.9 × G0
//! answers (T_stable = 120 s; a log that ends sooner is judged up to its end). Window counts
//! change only at answers, so every start is checked exactly. Fails when t* − t1 > T_max, or
//! when goodput never stays back.
//!
//! Unknown: no fault, no fault that ends, no answer before t0, or no full window between t1
//! and the end of the log. Does not check: faults after the first; the drain bound the
//! catalogue adds to T_max (see `backlog_drains`); whether offered load itself was back at its
//! level (a replay that offers less after the fault looks like a failure to recover). G0 counts
//! from time 0, so a warm-up before the first answer lowers it.

use serde_json::json;

use super::clients::goodput;
use super::faults::first_trigger;
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
    let (start, end_event) = match first_trigger(log) {
        Ok(t) => t,
        Err(why) => return Verdict::Unknown { why },
    };
    let t1 = end_event.t_us;
    let t0 = start.t_us;
    let answers = goodput(log);
    let g = match Goodput::before(&answers, start) {
        Ok(g) => g,
        Err(why) => return Verdict::Unknown { why },
    };
    let (times, before, need) = (&g.times, g.before, g.need);
    let w = GOODPUT_WINDOW_US;
    let g0 = g.g0;
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
    let count = |s: u64| g.count(s);
    let mut points: Vec<u64> = g
        .changes(t1)
        .filter(|&p| (t1..=last_start).contains(&p))
        .collect();
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
        // Back in time; it must also be seen to hold for T_stable.
        if recovered_at + T_STABLE_US > end {
            return Verdict::Unknown {
                why: format!(
                    "goodput was back at {}, {} after the {} ended, but the log ends at {}, before it could be seen to hold for {}",
                    secs(recovered_at),
                    secs(took),
                    super::faults::kind(start),
                    secs(end),
                    secs(T_STABLE_US)
                ),
            };
        }
        return Verdict::Pass { counts: c };
    }
    if never && end < t1 + t_max {
        return Verdict::Unknown {
            why: format!(
                "goodput was not yet back when the log ended at {}, {} after the {} ended, within T_max {}",
                secs(end),
                secs(end - t1),
                super::faults::kind(start),
                secs(t_max)
            ),
        };
    }
    let mut events: Vec<Event> = vec![start.clone()];
    events.push(end_event.clone());
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
            super::faults::kind(start),
            secs(t0),
            secs(t1),
            secs(ws),
            secs(ws + w)
        )
    } else {
        format!(
            "after the {} from {} to {}, goodput got back to 0.9 × {g0:.1} per 60 s only at {}, {} after the fault ended, over T_max {} (worst: {wn} answered in [{}, {}))",
            super::faults::kind(start),
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

/// The sometimes state: after the trigger began, goodput fell under 0.9 × its level before in
/// some full window, so the system had something to recover from.
pub fn sometimes(log: &EventLog) -> (bool, &'static str) {
    const STATE: &str = "goodput fell under 0.9 × its level before the first fault or overload";
    let Ok((start, _)) = first_trigger(log) else {
        return (false, STATE);
    };
    let answers = goodput(log);
    let Ok(g) = Goodput::before(&answers, start) else {
        return (false, STATE);
    };
    let end = log_end(log);
    let dipped = g
        .changes(start.t_us)
        .filter(|&s| s >= start.t_us && s + GOODPUT_WINDOW_US <= end)
        .any(|s| (g.count(s) as f64) < g.need - 1e-9);
    (dipped, STATE)
}

/// The times of the 200 answers, and their level before the trigger.
struct Goodput {
    times: Vec<u64>,
    /// Answers before the trigger.
    before: u64,
    /// Their rate per goodput window, and the share of it that counts as recovered.
    g0: f64,
    need: f64,
}

impl Goodput {
    /// The baseline before `start`, or why there is none.
    fn before(answers: &[&Event], start: &Event) -> Result<Self, String> {
        let t0 = start.t_us;
        let times: Vec<u64> = answers.iter().map(|e| e.t_us).collect();
        let before = times.partition_point(|&t| t < t0) as u64;
        if before == 0 || t0 == 0 {
            return Err(format!(
                "no query was answered 200 before the {} at {}: no baseline",
                super::faults::kind(start),
                secs(t0)
            ));
        }
        let g0 = before as f64 * GOODPUT_WINDOW_US as f64 / t0 as f64;
        Ok(Self {
            times,
            before,
            g0,
            need: RECOVERED_SHARE * g0,
        })
    }

    /// Answers in the window `[s, s + W)`.
    fn count(&self, s: u64) -> u64 {
        let w = GOODPUT_WINDOW_US;
        (self.times.partition_point(|&t| t < s + w) - self.times.partition_point(|&t| t < s)) as u64
    }

    /// `from` and the window starts where the count changes: an answer leaves just after it,
    /// one enters at its time less W.
    fn changes(&self, from: u64) -> impl Iterator<Item = u64> + '_ {
        std::iter::once(from).chain(
            self.times
                .iter()
                .flat_map(|&a| [a + 1, a.saturating_sub(GOODPUT_WINDOW_US)]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::{ev, fault_window};
    use crate::judge::invariants::vocabulary::TRAFFIC_TARGET;

    fn answered(t_us: u64, status: u64) -> Event {
        ev(
            t_us,
            "traffic",
            TRAFFIC_TARGET,
            "answered",
            &[("status", json!(status)), ("seq", json!(t_us))],
        )
    }

    fn outage(from: u64, to: u64) -> Vec<Event> {
        fault_window(
            0,
            "region.outage",
            (from, Some(to)),
            &[("region", json!("r"))],
        )
    }

    fn burst(id: u64, from: u64, to: u64) -> Vec<Event> {
        fault_window(id, "traffic.burst", (from, Some(to)), &[])
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
        e.extend(outage(100, 130));
        let log = log(e);
        let v = recovers(&log);
        let Verdict::Pass { counts } = v else {
            panic!("must pass: {v:?}")
        };
        // The first 60 s window from 134.5 s holds 54 answers, 0.9 × the baseline's 60; the
        // worst, from the fault's end at 130 s, 50.
        assert_eq!(counts["recovery_us"], json!(4_500_000));
        assert_eq!(counts["worst_window"], json!(50));
        assert_eq!(counts["worst_window_start_us"], json!(130_000_000));
        assert_eq!(counts["baseline_per_window"], json!(60.0));
        assert!(sometimes(&log).0, "goodput fell during the outage");
        // A fault that never dented goodput reaches no sometimes state.
        let mut e = answers(0, 400, 0..0);
        e.extend(outage(100, 130));
        assert!(!sometimes(&super::tests::log(e)).0);
    }

    #[test]
    fn a_recovery_not_seen_to_hold_or_not_yet_due_is_unknown() {
        // Back 10 s after the fault, but the log ends 60 s later: not seen to hold for 120 s.
        let mut e = answers(0, 200, 100..140);
        e.extend(outage(100, 130));
        let v = recovers(&log(e));
        assert!(
            matches!(&v, Verdict::Unknown { why } if why.contains("before it could be seen to hold")),
            "{v:?}"
        );
        // Not back when the log ends 70 s after the fault, within T_max (120 s): unknown.
        let mut e = answers(0, 100, 0..0);
        e.extend(burst(0, 100, 160));
        e.push(answered(230_000_000, 500));
        let v = recovers(&log(e));
        assert!(
            matches!(&v, Verdict::Unknown { why } if why.contains("not yet back")),
            "{v:?}"
        );
    }

    #[test]
    fn a_fault_that_lasts_the_run_is_no_trigger_but_an_overload_is() {
        // Latency from time 0 to the end, an overload from 100 s to 130 s, goodput gone for
        // good after it: judged against the overload, and fails.
        let mut e = answers(0, 100, 0..0);
        e.extend(fault_window(
            0,
            "latency",
            (0, None),
            &[("region", json!("r"))],
        ));
        e.extend(burst(1, 100, 130));
        e.push(answered(500_000_000, 500));
        let Verdict::Fail { witness } = recovers(&log(e)) else {
            panic!("never back after the overload")
        };
        assert!(
            witness.summary.contains("after the traffic.burst"),
            "{}",
            witness.summary
        );
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
        e.extend(fault_window(
            0,
            "account.freeze",
            (100, Some(130)),
            &[("account", json!("1"))],
        ));
        let Verdict::Fail { witness } = recovers(&log(e)) else {
            panic!("must fail")
        };
        assert!(witness.summary.contains("never"), "{}", witness.summary);
        assert_eq!(witness.events[0].str("fault"), Some("account.freeze"));
    }

    #[test]
    fn a_slow_recovery_fails() {
        // A 10 s throttle; goodput is back only 200 s later (T_max 60 s).
        let mut e = answers(0, 600, 100..310);
        e.extend(fault_window(
            0,
            "api.throttle",
            (100, Some(110)),
            &[("region", json!("r")), ("api", json!("GetTable"))],
        ));
        // 500 errors during the outage are not goodput.
        e.extend((100..310).map(|s| answered(s * 1_000_000, 500)));
        let Verdict::Fail { witness } = recovers(&log(e)) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["recovery_us"], json!(194_500_000));
        assert_eq!(witness.counts["worst_window"], json!(0));
        assert_eq!(witness.counts["worst_window_start_us"], json!(110_000_000));
        assert!(witness.summary.contains("only at"), "{}", witness.summary);
    }

    #[test]
    fn no_fault_or_no_baseline_or_no_end_is_unknown() {
        assert_eq!(recovers(&log(answers(0, 100, 0..0))).word(), "unknown");
        let mut e = answers(50, 300, 0..0);
        let crash = [("host", json!("c1"))];
        e.extend(fault_window(0, "host.crash", (10, Some(20)), &crash));
        assert_eq!(recovers(&log(e)).word(), "unknown");
        let pair = [("a", json!("x")), ("b", json!("y"))];
        let mut e = answers(0, 300, 0..0);
        e.extend(fault_window(0, "network.partition", (100, None), &pair));
        assert_eq!(recovers(&log(e)).word(), "unknown");
        let mut e = answers(0, 300, 0..0);
        e.extend(fault_window(
            0,
            "network.partition",
            (100, Some(110)),
            &pair,
        ));
        assert_eq!(recovers(&log(e)).word(), "pass");
    }
}
