//! `goodput_under_overload`: when offered load is m × capacity, the system still serves close
//! to its capacity. Goodput must be ≥ 0.9 × capacity for m ≥ 2 and ≥ 0.8 × capacity for m ≥ 10.
//!
//! Checks: the offered arrivals are the first `stampede::traffic` `submitted` event of each
//! `seq`. Later `submitted` events with the same seq are resubmissions after a 429/503 and add
//! no load. Goodput is the `answered` events with status 200: a query past its deadline ends
//! 504, so a 200 was served within its deadline. A window `[t, t + W)` starts at every arrival
//! and is judged if it ends by the log's last event. In it, offered = arrivals / W and goodput
//! = 200 answers / W. A window with offered ≥ 2 × `capacity_per_s` needs goodput ≥ `at_2x` ×
//! capacity. A window with offered ≥ 10 × capacity needs goodput ≥ `at_10x` × capacity. On
//! failure the witness is the window furthest below its bound, as a share of the bound.
//!
//! Capacity here is what the window's arrivals let a server of that capacity answer, if it
//! answers a query no sooner than L after it came (L: the shortest time any query of the run
//! took from its first submission to a 200): by the window's end at most min over u of
//! (B + arrivals in [t, u) + capacity × (t + W − L − u)), B being the queries that came
//! before t and had not ended by t, and never more than capacity × W. Mid-burst that is
//! capacity × W; at a
//! burst's onset, a window that held a few seconds of it is overloaded on average, though for
//! most of it there was only the load before the burst to serve (the 10x load-shedding pair,
//! seed 1: [198.5 s, 258.5 s) held 18 s of a burst at 3/s, 0.82/s on average, and 0.13/s of
//! goodput, all the load there was before the burst).
//!
//! Unknown: the scenario gives no `capacity_per_s` (overload is measured against it), or no
//! complete window reached twice the capacity. Not checked: windows that reach past the end of
//! the log, whose answers are still to come; whether the queries answered in a window were
//! offered in it (an answer counts in the window it arrives in); latency (see
//! `flat_latency_under_overload`); which queries were shed (see `priority_order` and
//! `tenant_fairness`).

use serde_json::json;

use super::clients::{arrivals, capacity, goodput, missed_goodput};
use super::obj;
use super::time::{log_end, micros, secs};
use super::vocabulary::TRAFFIC_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// Parameters of `goodput_under_overload`, from the scenario
/// (`invariants: [{goodput_under_overload: {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Queries per second the system is provisioned for. No default: without it the verdict
    /// is unknown.
    pub capacity_per_s: Option<f64>,
    /// The window over which offered load and goodput are rates. Default `60s`.
    pub window: Span,
    /// The least goodput, as a share of capacity, at 2× capacity or more. Default 0.9.
    pub at_2x: f64,
    /// The least goodput, as a share of capacity, at 10× capacity or more. Default 0.8.
    pub at_10x: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            capacity_per_s: None,
            window: Span(std::time::Duration::from_secs(60)),
            at_2x: 0.9,
            at_10x: 0.8,
        }
    }
}

/// The worst overloaded window: where it starts, its arrivals and 200 answers, its bound.
struct Breach {
    start: u64,
    offered: u64,
    good: u64,
    need_per_s: f64,
    share: f64,
}

/// What the windows showed.
struct Scan {
    windows: u64,
    overloaded: u64,
    at_10x: u64,
    breached: u64,
    peak_multiplier: f64,
    worst: Option<Breach>,
}

/// What the client saw of service: each arrival's end (its final answer, or never) sorted,
/// and the shortest time a query took from its first submission to a 200.
#[derive(Default)]
struct Service {
    ends: Vec<u64>,
    latency_us: u64,
}

impl Service {
    fn of(arrived: &[&Event], log: &EventLog) -> Self {
        let first: std::collections::BTreeMap<u64, u64> = arrived
            .iter()
            .filter_map(|e| Some((e.u64("seq")?, e.t_us)))
            .collect();
        let mut end: std::collections::BTreeMap<u64, u64> = Default::default();
        let mut latency_us = u64::MAX;
        for e in log.of(TRAFFIC_TARGET) {
            let Some(seq) = e.u64("seq") else { continue };
            if e.name == "answered" || e.name == "unanswered" {
                end.entry(seq).or_insert(e.t_us);
                if e.u64("status") == Some(200)
                    && let Some(&from) = first.get(&seq)
                {
                    latency_us = latency_us.min(e.t_us.saturating_sub(from));
                }
            }
        }
        let mut ends: Vec<u64> = end.into_values().collect();
        ends.sort_unstable();
        Self {
            ends,
            latency_us: if latency_us == u64::MAX {
                0
            } else {
                latency_us
            },
        }
    }

    /// Arrivals before `t` (there are `before` of them) not ended by `t`.
    fn backlog(&self, t: u64, before: usize) -> usize {
        before.saturating_sub(self.ends.partition_point(|&e| e < t))
    }
}

/// Every complete window starting at an arrival, against `capacity` per second.
fn scan(
    arrived: &[u64],
    answered: &[u64],
    service: &Service,
    end: u64,
    w: u64,
    cap: f64,
    p: &Params,
) -> Scan {
    let ws = w as f64 / 1e6;
    let mut s = Scan {
        windows: 0,
        overloaded: 0,
        at_10x: 0,
        breached: 0,
        peak_multiplier: 0.0,
        worst: None,
    };
    let (mut hi, mut glo, mut ghi) = (0usize, 0usize, 0usize);
    for lo in 0..arrived.len() {
        let t = arrived[lo];
        if lo > 0 && arrived[lo - 1] == t {
            continue;
        }
        // Windows are in start order: once one reaches past the end, all later ones do.
        if t.saturating_add(w) > end {
            break;
        }
        hi = hi.max(lo);
        while hi < arrived.len() && arrived[hi] < t + w {
            hi += 1;
        }
        while glo < answered.len() && answered[glo] < t {
            glo += 1;
        }
        ghi = ghi.max(glo);
        while ghi < answered.len() && answered[ghi] < t + w {
            ghi += 1;
        }
        s.windows += 1;
        let offered = (hi - lo) as u64;
        let m = offered as f64 / ws / cap;
        s.peak_multiplier = s.peak_multiplier.max(m);
        if m < 2.0 - 1e-9 {
            continue;
        }
        s.overloaded += 1;
        let share = if m >= 10.0 - 1e-9 {
            s.at_10x += 1;
            p.at_10x
        } else {
            p.at_2x
        };
        // What a server of `cap` a second, answering a query at the soonest `latency_us`
        // after it came, could have answered by the window's end: the work waiting at t and
        // what came before any u, plus `cap` a second from u until `latency_us` before the
        // end; never more than `cap` × W.
        let last = (t + w).saturating_sub(service.latency_us);
        let waiting = service.backlog(t, lo) as f64;
        let after = |u: u64| cap * last.saturating_sub(u) as f64 / 1e6;
        let possible = (lo..hi)
            .take_while(|&j| arrived[j] < last)
            .map(|j| waiting + (j - lo) as f64 + after(arrived[j]))
            .chain(std::iter::once(
                waiting + arrived[lo..hi].iter().filter(|&&a| a < last).count() as f64,
            ))
            .fold(cap * ws, f64::min);
        let need_per_s = share * possible / ws;
        let good = (ghi - glo) as u64;
        let got = good as f64 / ws;
        if got >= need_per_s - 1e-9 {
            continue;
        }
        s.breached += 1;
        let share = got / need_per_s;
        if s.worst.as_ref().is_none_or(|b| share < b.share) {
            s.worst = Some(Breach {
                start: t,
                offered,
                good,
                need_per_s,
                share,
            });
        }
    }
    s
}

/// Checks goodput in every complete window whose offered load is at least twice the capacity.
pub fn goodput_under_overload(log: &EventLog, p: &Params) -> Verdict {
    let cap = match capacity(p.capacity_per_s) {
        Ok(c) => c,
        Err(why) => return Verdict::Unknown { why },
    };
    let w = micros(p.window);
    if w == 0 {
        return Verdict::Unknown {
            why: "the window is empty: no rate can be measured".into(),
        };
    }
    let arrived = arrivals(log);
    let answered = goodput(log);
    let at: Vec<u64> = arrived.iter().map(|e| e.t_us).collect();
    let gt: Vec<u64> = answered.iter().map(|e| e.t_us).collect();
    let end = log_end(log);
    let service = Service::of(&arrived, log);
    let s = scan(&at, &gt, &service, end, w, cap, p);
    if s.overloaded == 0 {
        return Verdict::Unknown {
            why: if s.windows == 0 {
                format!(
                    "no window of {} starting at an arrival ends by the log's end at {}",
                    secs(w),
                    secs(end)
                )
            } else {
                format!(
                    "offered load peaked at {:.2} × capacity ({cap}/s) over {} windows: never twice the capacity",
                    s.peak_multiplier,
                    secs(w)
                )
            },
        };
    }
    let mut counts = obj(json!({
        "capacity_per_s": cap, "window_us": w, "arrivals": at.len(), "answered_200": gt.len(),
        "windows": s.windows, "overloaded_windows": s.overloaded, "windows_at_10x": s.at_10x,
        "peak_multiplier": s.peak_multiplier,
    }));
    let Some(b) = s.worst else {
        return Verdict::Pass { counts };
    };
    let ws = w as f64 / 1e6;
    let (offered, got) = (b.offered as f64 / ws, b.good as f64 / ws);
    let m = offered / cap;
    counts.extend(obj(json!({
        "breached_windows": s.breached, "window_start_us": b.start, "window_end_us": b.start + w,
        "arrivals_in_window": b.offered, "answered_200_in_window": b.good,
        "offered_per_s": offered, "goodput_per_s": got, "multiplier": m,
        "required_per_s": b.need_per_s,
    })));
    // The window's failures show where the goodput went: errors, deadlines, refusals, hangs.
    let in_window = |e: &&Event| (b.start..b.start + w).contains(&e.t_us);
    let mut events: Vec<Event> = log
        .of(TRAFFIC_TARGET)
        .filter(in_window)
        .filter(|e| missed_goodput(e))
        .take(WITNESS_EVENTS)
        .cloned()
        .collect();
    if events.is_empty() {
        events = arrived
            .iter()
            .copied()
            .filter(in_window)
            .take(WITNESS_EVENTS)
            .cloned()
            .collect();
    }
    events.sort_by_key(|e| e.t_us);
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "in [{}, {}) offered load was {offered:.2}/s ({m:.1} × capacity {cap}/s) but goodput only {got:.2}/s, under the {:.2}/s required ({} × capacity); {} of {} overloaded windows fell short",
                secs(b.start),
                secs(b.start + w),
                b.need_per_s,
                b.need_per_s / cap,
                s.breached,
                s.overloaded
            ),
            counts,
            events,
        },
    }
}

/// Whether some complete window offered at least twice the capacity.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    const STATE: &str = "offered load reached twice the capacity over a window";
    let (Ok(cap), w) = (capacity(p.capacity_per_s), micros(p.window)) else {
        return (false, STATE);
    };
    if w == 0 {
        return (false, STATE);
    }
    let at: Vec<u64> = arrivals(log).iter().map(|e| e.t_us).collect();
    let s = scan(&at, &[], &Service::default(), log_end(log), w, cap, p);
    (s.overloaded > 0, STATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::{answered, ev, submitted};

    fn refused(t_us: u64, seq: u64) -> Event {
        ev(
            t_us,
            "traffic",
            TRAFFIC_TARGET,
            "refused",
            &[
                ("seq", json!(seq)),
                ("status", json!(429)),
                ("retry_after_s", json!(1)),
            ],
        )
    }

    /// `per_s` arrivals a second over [0, secs) seconds; each answered 200 a second later when
    /// `served(seq)`, refused at once otherwise.
    fn run(per_s: u64, secs: u64, served: impl Fn(u64) -> bool) -> EventLog {
        let mut events = Vec::new();
        let mut seq = 0;
        for s in 0..secs {
            for k in 0..per_s {
                let t = s * 1_000_000 + k * (1_000_000 / per_s);
                events.push(submitted(t, seq));
                if served(seq) {
                    events.push(answered(t + 1_000_000, seq, 200));
                } else {
                    events.push(refused(t + 1000, seq));
                }
                seq += 1;
            }
        }
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    fn params(capacity: f64) -> Params {
        Params {
            capacity_per_s: Some(capacity),
            ..Params::default()
        }
    }

    #[test]
    fn serving_capacity_at_twice_the_load_passes() {
        // 20/s offered against a capacity of 10/s; every second query is served: 10/s.
        let log = run(20, 180, |seq| seq % 2 == 0);
        let Verdict::Pass { counts } = goodput_under_overload(&log, &params(10.0)) else {
            panic!("must pass")
        };
        assert!(counts["overloaded_windows"].as_u64().unwrap() > 100);
        assert_eq!(counts["windows_at_10x"], json!(0));
    }

    #[test]
    fn collapsing_goodput_under_overload_fails() {
        // 20/s offered, capacity 10/s, only one in four served: 5/s, under 9/s.
        let log = run(20, 180, |seq| seq % 4 == 0);
        let Verdict::Fail { witness } = goodput_under_overload(&log, &params(10.0)) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["multiplier"], json!(2.0));
        assert_eq!(witness.counts["arrivals_in_window"], json!(1200));
        assert!(witness.counts["goodput_per_s"].as_f64().unwrap() < 5.1);
        assert!(
            witness.summary.contains("2.0 × capacity"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
        assert!(witness.events.iter().all(|e| e.name == "refused"));
    }

    /// 1/s for 100 s, then 30/s for 60 s, then one arrival at 400 s; the base and half the
    /// burst are accepted, the rest refused, and a server of `rate` a second answers the
    /// accepted in order.
    fn burst_served_at(rate: f64) -> EventLog {
        let mut events = Vec::new();
        let (mut seq, mut free) = (0u64, 0u64);
        for s in 0..160u64 {
            let per_s = if s < 100 { 1 } else { 30 };
            for k in 0..per_s {
                let t = s * 1_000_000 + k * (1_000_000 / per_s);
                events.push(submitted(t, seq));
                if s < 100 || k % 2 == 0 {
                    free = free.max(t) + (1e6 / rate) as u64;
                    events.push(answered(free, seq, 200));
                } else {
                    events.push(refused(t + 1000, seq));
                }
                seq += 1;
            }
        }
        events.push(submitted(400_000_000, seq));
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn a_window_is_held_to_what_its_arrivals_allowed() {
        // Against a capacity of 10/s, a window from 90 s holds 50 s of the burst, 25/s on
        // average, but a server of 10/s could have answered only 10 + 10 × 50 by its end.
        let v = goodput_under_overload(&burst_served_at(10.0), &params(10.0));
        let Verdict::Pass { counts } = v else {
            panic!("must pass: {v:?}")
        };
        assert!(
            counts["overloaded_windows"].as_u64().unwrap() > 600,
            "{counts:?}"
        );
        // Served at 8/s, it fails, in a window that lies in the burst.
        let Verdict::Fail { witness } =
            goodput_under_overload(&burst_served_at(8.0), &params(10.0))
        else {
            panic!("8/s of a burst against 10/s")
        };
        assert!(witness.counts["window_start_us"].as_u64().unwrap() >= 90_000_000);
    }

    #[test]
    fn ten_times_the_load_has_the_lower_bound() {
        // 100/s against 10/s, 8.5/s served: enough at 10× (8/s), not at 2× (9/s).
        let log = run(100, 180, |seq| seq % 200 < 17);
        let v = goodput_under_overload(&log, &params(10.0));
        let Verdict::Pass { counts } = v else {
            panic!("must pass: {v:?}")
        };
        assert_eq!(counts["windows_at_10x"], counts["overloaded_windows"]);
        let strict = Params {
            at_10x: 0.9,
            ..params(10.0)
        };
        assert!(goodput_under_overload(&log, &strict).is_fail());
    }

    #[test]
    fn resubmissions_are_not_offered_load() {
        // 15/s first submissions, each also resubmitted once: 30 `submitted`/s but 1.5×.
        let mut events = Vec::new();
        for seq in 0..(15 * 180) {
            let t = seq * 1_000_000 / 15;
            events.push(submitted(t, seq));
            events.push(submitted(t + 500, seq));
        }
        events.sort_by_key(|e| e.t_us);
        let log = EventLog::from_events(events);
        let Verdict::Unknown { why } = goodput_under_overload(&log, &params(10.0)) else {
            panic!("must be unknown")
        };
        assert!(why.contains("1.50 × capacity"), "{why}");
        assert!(!sometimes(&log, &params(10.0)).0);
    }

    #[test]
    fn no_capacity_or_no_overload_is_unknown() {
        let log = run(20, 180, |_| true);
        let Verdict::Unknown { why } = goodput_under_overload(&log, &Params::default()) else {
            panic!("must be unknown")
        };
        assert!(why.contains("capacity_per_s"), "{why}");
        assert_eq!(
            goodput_under_overload(&log, &params(15.0)).word(),
            "unknown"
        );
        // A log shorter than one window has no complete window.
        let short = run(20, 30, |_| true);
        assert_eq!(
            goodput_under_overload(&short, &params(1.0)).word(),
            "unknown"
        );
    }

    #[test]
    fn sometimes_sees_twice_the_capacity() {
        let log = run(20, 180, |_| false);
        assert_eq!(
            sometimes(&log, &params(10.0)),
            (
                true,
                "offered load reached twice the capacity over a window"
            )
        );
        assert!(!sometimes(&log, &params(10.5)).0);
        assert!(!sometimes(&log, &Params::default()).0);
    }

    #[test]
    fn params_read_from_the_scenario() {
        let p: Params = serde_json::from_value(json!({"capacity_per_s": 5, "window": "30s"}))
            .expect("valid params");
        assert_eq!(p.capacity_per_s, Some(5.0));
        assert_eq!(micros(p.window), 30_000_000);
        assert_eq!(p.at_2x, 0.9);
        assert!(serde_json::from_value::<Params>(json!({"capacity": 5})).is_err());
    }
}
