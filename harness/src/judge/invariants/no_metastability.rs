//! `no_metastability`: after a fault ends and offered load is back at its baseline, goodput does
//! not stay below half its baseline for longer than T_m = 120 s. A system that stays low that
//! long is "metastable": the fault is gone, but something it started (a retry storm, a backlog
//! of expired work) keeps goodput down.
//!
//! Checks: the trigger is the first fault that triggers a recovery and ended, as in `recovers`
//! ([`super::faults::first_trigger`]): its `fault_start` at t0, its `fault_end` at t1. Goodput
//! is the `stampede::traffic` `answered` events with status 200. The
//! offered arrivals are the first `submitted` of each `seq`. Baselines are rates over the span
//! `[t0 − baseline, t0)`, or `[0, t0)` if `baseline` is not set: G0 for goodput and O0 for
//! offered load. Every window `[s, s + W)` with s ≥ t1 that ends by the log's last event is
//! classified:
//! - *at baseline load*: offered ≥ `back_share` × O0.
//! - *starved*: at baseline load, and goodput < `low_share` × G0.
//!
//! Load is back at t_b, the first start of a window at baseline load. A run of starved
//! window starts ends at the first window at baseline load that is not starved. Windows below
//! baseline load neither extend nor end a run. Fails, naming the state "metastable", when a
//! run spans more than `t_m` of window starts. Window counts change only where an arrival or
//! an answer enters or leaves a window, so every start is checked exactly.
//!
//! Unknown: no fault; a fault that never ends; no arrival or no 200 answer in the baseline
//! span; load never back at baseline before the end of the log. Not checked: faults after the
//! first; how fast goodput comes back (see `recovers`); windows whose offered load is below
//! baseline. Low goodput there may be the load's doing, as when the replay ends before the
//! run does.

use serde_json::json;

use super::clients::{arrivals, goodput, missed_goodput};
use super::faults::first_trigger;
use super::obj;
use super::time::{log_end, micros, secs};
use super::vocabulary::TRAFFIC_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// Parameters of `no_metastability`, from the scenario
/// (`invariants: [{no_metastability: {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The window over which offered load and goodput are rates. Default `60s`.
    pub window: Span,
    /// How far before the fault the baselines G0 and O0 are measured. Default: unset, so from
    /// time 0.
    pub baseline: Option<Span>,
    /// Offered load counts as back at baseline at this share of O0 or more. Default 0.9.
    pub back_share: f64,
    /// Goodput under this share of G0 is starved. Default 0.5.
    pub low_share: f64,
    /// The longest run of starved window starts allowed. Default `120s`.
    pub t_m: Span,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            window: Span(std::time::Duration::from_secs(60)),
            baseline: None,
            back_share: 0.9,
            low_share: 0.5,
            t_m: Span(std::time::Duration::from_secs(120)),
        }
    }
}

/// A run of starved window starts `[from, to)`.
#[derive(Debug, Clone, Copy)]
struct Run {
    from: u64,
    to: u64,
    /// Arrivals in the window at `from`.
    offered: u64,
    /// The fewest 200 answers in any of its windows.
    lowest: u64,
    /// Whether it was still going at the end of the log.
    ongoing: bool,
}

/// What the log shows after the first fault.
struct Analysis<'a> {
    start: &'a Event,
    end_event: &'a Event,
    t1: u64,
    t_b: u64,
    /// Baseline 200 answers and arrivals, per window.
    g0: f64,
    o0: f64,
    /// The longest run, and the first that spanned more than `t_m`.
    longest: Option<Run>,
    metastable: Option<Run>,
    runs: u64,
}

fn analyse<'a>(log: &'a EventLog, p: &Params) -> Result<Analysis<'a>, String> {
    let (start, end_event) = first_trigger(log)?;
    let t1 = end_event.t_us;
    let t0 = start.t_us;
    let w = micros(p.window);
    if w == 0 {
        return Err("the window is empty: no rate can be measured".into());
    }
    let from = p.baseline.map_or(0, |b| t0.saturating_sub(micros(b)));
    let arrived: Vec<u64> = arrivals(log).iter().map(|e| e.t_us).collect();
    let answered: Vec<u64> = goodput(log).iter().map(|e| e.t_us).collect();
    let within = |v: &[u64], a: u64, b: u64| {
        (v.partition_point(|&t| t < b) - v.partition_point(|&t| t < a)) as u64
    };
    let (g_before, o_before) = (within(&answered, from, t0), within(&arrived, from, t0));
    if g_before == 0 || o_before == 0 {
        return Err(format!(
            "no query was {} in [{}, {}) before the {}: no baseline",
            if o_before == 0 {
                "submitted"
            } else {
                "answered 200"
            },
            secs(from),
            secs(t0),
            super::faults::kind(start)
        ));
    }
    let span = (t0 - from) as f64;
    let (g0, o0) = (
        g_before as f64 * w as f64 / span,
        o_before as f64 * w as f64 / span,
    );
    let end = log_end(log);
    let never_back = || {
        format!(
            "offered load never came back to {} × {:.2}/s after the {} ended at {}",
            p.back_share,
            o0 / (w as f64 / 1e6),
            super::faults::kind(start),
            secs(t1)
        )
    };
    if end < t1.saturating_add(w) {
        return Err(never_back());
    }
    let last = end - w;
    // Window starts where a count changes: a point x enters the window at x − W + 1 and leaves
    // it at x + 1.
    let mut points = vec![t1];
    for &x in arrived.iter().chain(&answered) {
        points.push(x + 1);
        if x + 1 >= w {
            points.push(x + 1 - w);
        }
    }
    points.retain(|&s| (t1..=last).contains(&s));
    points.sort_unstable();
    points.dedup();
    let (need_load, starved_below) = (p.back_share * o0 - 1e-9, p.low_share * g0 - 1e-9);
    let (mut a, mut g) = ([0usize; 2], [0usize; 2]);
    let mut t_b = None;
    let (mut current, mut longest, mut metastable, mut runs): (Option<Run>, Option<Run>, _, u64) =
        (None, None, None, 0);
    let mut close = |r: Run| {
        runs += 1;
        if longest.is_none_or(|l: Run| r.to - r.from > l.to - l.from) {
            longest = Some(r);
        }
        if r.to - r.from > micros(p.t_m) && metastable.is_none() {
            metastable = Some(r);
        }
    };
    for (k, &s) in points.iter().enumerate() {
        for (v, ix) in [(&arrived, &mut a), (&answered, &mut g)] {
            while ix[0] < v.len() && v[ix[0]] < s {
                ix[0] += 1;
            }
            ix[1] = ix[1].max(ix[0]);
            while ix[1] < v.len() && v[ix[1]] < s + w {
                ix[1] += 1;
            }
        }
        let (offered, good) = ((a[1] - a[0]) as u64, (g[1] - g[0]) as u64);
        if (offered as f64) < need_load {
            continue;
        }
        t_b.get_or_insert(s);
        let to = points.get(k + 1).copied().unwrap_or(last + 1);
        if (good as f64) < starved_below {
            let r = current.get_or_insert(Run {
                from: s,
                to,
                offered,
                lowest: good,
                ongoing: false,
            });
            r.to = to;
            r.lowest = r.lowest.min(good);
        } else if let Some(r) = current.take() {
            close(r);
        }
    }
    if let Some(mut r) = current {
        r.ongoing = true;
        close(r);
    }
    let Some(t_b) = t_b else {
        return Err(never_back());
    };
    Ok(Analysis {
        start,
        end_event,
        t1,
        t_b,
        g0,
        o0,
        longest,
        metastable,
        runs,
    })
}

/// Checks that goodput does not stay starved once offered load is back after the first fault.
pub fn no_metastability(log: &EventLog, p: &Params) -> Verdict {
    let a = match analyse(log, p) {
        Ok(a) => a,
        Err(why) => return Verdict::Unknown { why },
    };
    let w = micros(p.window);
    let ws = w as f64 / 1e6;
    let mut counts = obj(json!({
        "t0_us": a.start.t_us, "t1_us": a.t1, "load_back_us": a.t_b,
        "baseline_goodput_per_s": a.g0 / ws, "baseline_offered_per_s": a.o0 / ws,
        "starved_runs": a.runs,
        "longest_starved_us": a.longest.map_or(0, |r| r.to - r.from),
    }));
    let Some(r) = a.metastable else {
        return Verdict::Pass { counts };
    };
    counts.extend(obj(json!({
        "metastable_from_us": r.from, "metastable_for_us": r.to - r.from,
        "ongoing_at_end": r.ongoing, "offered_per_s": r.offered as f64 / ws,
        "lowest_goodput_per_s": r.lowest as f64 / ws, "t_m_us": micros(p.t_m),
    })));
    let mut events: Vec<Event> = vec![a.start.clone()];
    events.push(a.end_event.clone());
    let in_window = |e: &&Event| (r.from..r.from + w).contains(&e.t_us);
    let lost: Vec<&Event> = log
        .of(TRAFFIC_TARGET)
        .filter(in_window)
        .filter(|e| missed_goodput(e))
        .collect();
    let shown = if lost.is_empty() {
        arrivals(log).into_iter().filter(in_window).collect()
    } else {
        lost
    };
    events.extend(shown.into_iter().cloned());
    events.truncate(WITNESS_EVENTS);
    events.sort_by_key(|e| e.t_us);
    let summary = format!(
        "metastable: after the {} from {} to {} and offered load back at {}, goodput stayed under {} × its baseline {:.2}/s for {} of window starts from {}{} (offered {:.2}/s against a baseline of {:.2}/s; goodput as low as {:.2}/s), over T_m {}",
        super::faults::kind(a.start),
        secs(a.start.t_us),
        secs(a.t1),
        secs(a.t_b),
        p.low_share,
        a.g0 / ws,
        secs(r.to - r.from),
        secs(r.from),
        if r.ongoing {
            ", still low at the end of the log"
        } else {
            ""
        },
        r.offered as f64 / ws,
        a.o0 / ws,
        r.lowest as f64 / ws,
        secs(micros(p.t_m))
    );
    Verdict::Fail {
        witness: Witness {
            summary,
            counts,
            events,
        },
    }
}

/// Whether offered load came back at its baseline after a fault.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    (
        analyse(log, p).is_ok(),
        "offered load came back at its baseline after a fault",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::{ev, fault_window};

    /// Two arrivals a second over [from, to) seconds, each answered a second later: 200 when
    /// `good(second)`, 504 otherwise.
    fn traffic(from: u64, to: u64, good: impl Fn(u64) -> bool) -> Vec<Event> {
        let mut events = Vec::new();
        for s in from..to {
            for half in 0..2 {
                let t = s * 1_000_000 + half * 500_000;
                let seq = 2 * s + half;
                let status = if good(s) { 200 } else { 504 };
                events.push(ev(
                    t,
                    "traffic",
                    TRAFFIC_TARGET,
                    "submitted",
                    &[("seq", json!(seq))],
                ));
                events.push(ev(
                    t + 1_000_000,
                    "traffic",
                    TRAFFIC_TARGET,
                    "answered",
                    &[("seq", json!(seq)), ("status", json!(status))],
                ));
            }
        }
        events
    }

    fn outage(from: u64, to: u64) -> Vec<Event> {
        fault_window(
            0,
            "region.outage",
            (from, Some(to)),
            &[("region", json!("r"))],
        )
    }

    fn log(mut events: Vec<Event>) -> EventLog {
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn goodput_back_within_t_m_passes() {
        // An outage over [100, 130); goodput low until 200, so starved starts span [130, 170).
        let mut e = traffic(0, 500, |s| !(100..200).contains(&s));
        e.extend(outage(100, 130));
        let Verdict::Pass { counts } = no_metastability(&log(e), &Params::default()) else {
            panic!("must pass")
        };
        assert_eq!(counts["load_back_us"], json!(130_000_000));
        // 198 answers in [0, 100): the first comes at 1 s.
        assert_eq!(counts["baseline_goodput_per_s"], json!(1.98));
        let longest = counts["longest_starved_us"].as_u64().unwrap();
        assert!((39_000_000..=41_000_000).contains(&longest), "{longest}");
    }

    #[test]
    fn goodput_that_stays_down_is_metastable() {
        // After the outage, load is back at 2/s but only 504s come back, until 400 s.
        let mut e = traffic(0, 600, |s| !(100..400).contains(&s));
        e.extend(outage(100, 130));
        let Verdict::Fail { witness } = no_metastability(&log(e), &Params::default()) else {
            panic!("must fail")
        };
        assert!(
            witness.summary.starts_with("metastable"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.counts["metastable_from_us"], json!(130_000_000));
        let long = witness.counts["metastable_for_us"].as_u64().unwrap();
        assert!((239_000_000..=241_000_000).contains(&long), "{long}");
        assert_eq!(witness.counts["ongoing_at_end"], json!(false));
        assert_eq!(witness.counts["lowest_goodput_per_s"], json!(0.0));
        assert_eq!(witness.events[0].name, "fault_start");
        assert_eq!(witness.events[1].name, "fault_end");
        assert_eq!(witness.events[2].u64("status"), Some(504));
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
    }

    #[test]
    fn a_stuck_system_at_the_end_of_the_log_is_metastable() {
        let mut e = traffic(0, 400, |s| s < 100);
        e.extend(outage(100, 130));
        let Verdict::Fail { witness } = no_metastability(&log(e), &Params::default()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["ongoing_at_end"], json!(true));
        assert!(witness.summary.contains("still low"), "{}", witness.summary);
    }

    #[test]
    fn load_that_stops_is_not_metastability() {
        // The replay ends at 300 s and the log at 600 s: no goodput, but no load either.
        let mut e = traffic(0, 300, |_| true);
        e.extend(outage(100, 130));
        e.push(ev(600_000_000, "h", "stampede::other", "tick", &[]));
        let v = no_metastability(&log(e), &Params::default());
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn the_baseline_span_can_be_shortened() {
        // 4/s (two streams) until 50 s, then 2/s: with the whole [0, 100) as baseline, 2/s is
        // not back at 0.9 × 3/s; measured over the last 40 s it is.
        let mut e = traffic(0, 500, |_| true);
        e.extend(traffic(0, 50, |_| true).into_iter().map(|mut x| {
            let seq = x.u64("seq").unwrap_or(0);
            x.fields.insert("seq".into(), json!(seq + 1_000_000));
            x
        }));
        e.extend(outage(100, 130));
        let l = log(e);
        let Verdict::Unknown { why } = no_metastability(&l, &Params::default()) else {
            panic!("must be unknown")
        };
        assert!(why.contains("never came back"), "{why}");
        assert!(!sometimes(&l, &Params::default()).0);
        let recent = Params {
            baseline: Some(Span(std::time::Duration::from_secs(40))),
            ..Params::default()
        };
        assert_eq!(no_metastability(&l, &recent).word(), "pass");
    }

    #[test]
    fn no_fault_no_end_or_no_baseline_is_unknown() {
        let p = Params::default();
        let Verdict::Unknown { why } = no_metastability(&log(traffic(0, 300, |_| true)), &p) else {
            panic!("must be unknown")
        };
        assert!(why.starts_with("no fault"), "{why}");
        let mut e = traffic(0, 300, |_| true);
        e.extend(fault_window(
            0,
            "host.crash",
            (100, None),
            &[("host", json!("c"))],
        ));
        assert!(
            matches!(no_metastability(&log(e), &p), Verdict::Unknown { why } if why.contains("no fault ended"))
        );
        let mut e = traffic(0, 300, |s| s >= 100);
        e.extend(outage(100, 130));
        assert!(
            matches!(no_metastability(&log(e), &p), Verdict::Unknown { why } if why.contains("no baseline"))
        );
    }

    #[test]
    fn a_freeze_ends_at_its_end() {
        let mut e = traffic(0, 500, |s| !(100..400).contains(&s));
        let account = [("account", json!("1"))];
        e.extend(fault_window(
            0,
            "account.freeze",
            (100, Some(120)),
            &account,
        ));
        let Verdict::Fail { witness } = no_metastability(&log(e), &Params::default()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["t1_us"], json!(120_000_000));
        assert_eq!(witness.events[1].name, "fault_end");
        assert_eq!(witness.events[2].u64("status"), Some(504));
    }

    #[test]
    fn sometimes_sees_load_back_after_a_fault() {
        let mut e = traffic(0, 500, |_| true);
        e.extend(outage(100, 130));
        assert_eq!(
            sometimes(&log(e), &Params::default()),
            (true, "offered load came back at its baseline after a fault")
        );
        assert!(!sometimes(&log(traffic(0, 500, |_| true)), &Params::default()).0);
    }
}
