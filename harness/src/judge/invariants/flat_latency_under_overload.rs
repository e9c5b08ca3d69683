//! `flat_latency_under_overload`: overload does not slow down the queries the system accepts.
//! The p99 latency of queries that arrived at 2× capacity is ≤ 1.5 × the p99 of queries that
//! arrived at 0.8× capacity.
//!
//! Checks: a query's arrival is the first `stampede::traffic` `submitted` of its `seq`. Its
//! latency is the time from its acceptance as the client saw it (its `accepted`, the 202) to
//! its end there (`answered`, whatever the status, or `unanswered`): the latency of the
//! queries the system took on, which load shedding is there to keep low. A shed query's waits
//! before it came back are not in it; a query that ends 504 at its deadline is in it with its
//! time to the 504 (counting only the 200s would judge the survivors), and one still open at
//! the end of the log with its time so far. Arrivals are bucketed into consecutive windows of
//! W from the first arrival. A bucket's offered load is its arrivals / W. A query is low-load
//! if its bucket offered ≤ `low` × `capacity_per_s` and came before the first high-load bucket
//! (the baseline: after overload, low-load queries may wait behind its backlog, which
//! `recovers` and `no_metastability` judge). It is high-load if its bucket offered ≥
//! `high` × capacity. Buckets that reach past the log's last event are left out, because their
//! load is not fully known. p99 is by nearest rank (the ⌈0.99 · n⌉-th smallest). Fails when
//! p99(high) > `max_ratio` × p99(low). The witness is the slowest high-load ends.
//!
//! Unknown: no `capacity_per_s`, or fewer than `min_queries` accepted queries on either side.
//! Not checked: queries never accepted (refused for good; `goodput_under_overload` and
//! `explicit_backpressure` judge them), and load between the two levels.

use std::collections::BTreeMap;

use serde_json::json;

use super::clients::{arrivals, capacity};
use super::obj;
use super::time::{log_end, micros, secs};
use super::vocabulary::TRAFFIC_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// Parameters of `flat_latency_under_overload`, from the scenario
/// (`invariants: [{flat_latency_under_overload: {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Queries per second the system is provisioned for. No default: without it the verdict
    /// is unknown.
    pub capacity_per_s: Option<f64>,
    /// The buckets arrivals are counted in, from the first arrival. Default `60s`.
    pub window: Span,
    /// Low load: a bucket's offered load at most this share of capacity. Default 0.8.
    pub low: f64,
    /// High load: a bucket's offered load at least this multiple of capacity. Default 2.0.
    pub high: f64,
    /// The largest allowed p99(high) / p99(low). Default 1.5.
    pub max_ratio: f64,
    /// The fewest answered queries each side needs for a p99. Default 20.
    pub min_queries: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            capacity_per_s: None,
            window: Span(std::time::Duration::from_secs(60)),
            low: 0.8,
            high: 2.0,
            max_ratio: 1.5,
            min_queries: 20,
        }
    }
}

/// Answered queries by load: (latency in µs, the answer), for low and high load.
struct Sides<'a> {
    low: Vec<(u64, &'a Event)>,
    high: Vec<(u64, &'a Event)>,
    low_buckets: u64,
    high_buckets: u64,
}

/// Splits the answered queries by the offered load of their arrival's bucket; `Err` says why
/// it cannot.
fn sides<'a>(log: &'a EventLog, p: &Params) -> Result<Sides<'a>, String> {
    let cap = capacity(p.capacity_per_s)?;
    let w = micros(p.window);
    if w == 0 {
        return Err("the window is empty: no rate can be measured".into());
    }
    let arrived = arrivals(log);
    let Some(first) = arrived.first().map(|e| e.t_us) else {
        return Err("no query was submitted".into());
    };
    let end = log_end(log);
    let bucket = |t: u64| (t - first) / w;
    let mut per_bucket: BTreeMap<u64, u64> = BTreeMap::new();
    let mut arrival: BTreeMap<u64, u64> = BTreeMap::new();
    for e in &arrived {
        *per_bucket.entry(bucket(e.t_us)).or_default() += 1;
        if let Some(seq) = e.u64("seq") {
            arrival.insert(seq, e.t_us);
        }
    }
    let ws = w as f64 / 1e6;
    // Which side each complete bucket is on: Some(true) high, Some(false) low.
    let side: BTreeMap<u64, bool> = per_bucket
        .iter()
        .filter(|(k, _)| first.saturating_add((*k + 1).saturating_mul(w)) <= end)
        .filter_map(|(k, n)| {
            let offered = *n as f64 / ws;
            if offered >= p.high * cap - 1e-9 {
                Some((*k, true))
            } else if offered <= p.low * cap + 1e-9 {
                Some((*k, false))
            } else {
                None
            }
        })
        .collect();
    // Low load is the system's baseline: the low-load buckets before the first high-load one.
    // After overload, low-load queries may still wait behind its backlog; how fast that clears
    // is `recovers`' and `no_metastability`'s to judge, not a baseline.
    let first_high = side.iter().find(|(_, h)| **h).map(|(k, _)| *k);
    let side: BTreeMap<u64, bool> = side
        .into_iter()
        .filter(|(k, h)| *h || first_high.is_none_or(|f| *k < f))
        .collect();
    let mut s = Sides {
        low: Vec::new(),
        high: Vec::new(),
        low_buckets: side.values().filter(|h| !**h).count() as u64,
        high_buckets: side.values().filter(|h| **h).count() as u64,
    };
    // When each query was accepted, as the client saw it (its 202): its latency runs from
    // there, so the waits of a query that was shed and came back are not counted against the
    // queries that were served. It ends at the query's answer, whatever its status: a query
    // that ends 504 at its deadline or 500 was as slow as that for its user (counting only the
    // 200s would keep the survivors). A query still open at the end of the log counts with
    // its time so far, a lower bound, and the end of the log as its event.
    let mut open: BTreeMap<u64, &Event> = BTreeMap::new();
    let mut ended: Vec<(u64, u64, &Event)> = Vec::new();
    for e in log.of(TRAFFIC_TARGET) {
        let Some(seq) = e.u64("seq") else { continue };
        match e.name.as_str() {
            "accepted" => {
                open.insert(seq, e);
            }
            "answered" | "unanswered" => {
                if let Some(a) = open.remove(&seq) {
                    ended.push((seq, e.t_us.saturating_sub(a.t_us), e));
                }
            }
            _ => {}
        }
    }
    ended.extend(open.into_iter().map(|(seq, a)| (seq, end - a.t_us, a)));
    for (seq, latency, e) in ended {
        let Some(&t) = arrival.get(&seq) else {
            continue;
        };
        match side.get(&bucket(t)) {
            Some(true) => s.high.push((latency, e)),
            Some(false) => s.low.push((latency, e)),
            None => {}
        }
    }
    Ok(s)
}

/// The nearest-rank p99 of `latencies` sorted ascending (not empty).
fn p99(sorted: &[(u64, &Event)]) -> u64 {
    let rank = (sorted.len() * 99).div_ceil(100).max(1);
    sorted[rank - 1].0
}

/// Checks that the p99 latency at high load stays within `max_ratio` of that at low load.
pub fn flat_latency_under_overload(log: &EventLog, p: &Params) -> Verdict {
    let mut s = match sides(log, p) {
        Ok(s) => s,
        Err(why) => return Verdict::Unknown { why },
    };
    let (nl, nh) = (s.low.len() as u64, s.high.len() as u64);
    if nl < p.min_queries || nh < p.min_queries || nl == 0 || nh == 0 {
        return Verdict::Unknown {
            why: format!(
                "{nl} accepted queries arrived at ≤ {} × capacity and {nh} at ≥ {} × capacity: a p99 needs {} on each side",
                p.low,
                p.high,
                p.min_queries.max(1)
            ),
        };
    }
    s.low.sort_by_key(|q| q.0);
    s.high.sort_by_key(|q| q.0);
    let (pl, ph) = (p99(&s.low), p99(&s.high));
    let ratio = if pl == 0 {
        if ph == 0 { 1.0 } else { f64::INFINITY }
    } else {
        ph as f64 / pl as f64
    };
    let mut counts = obj(json!({
        "low_queries": nl, "high_queries": nh, "low_buckets": s.low_buckets,
        "high_buckets": s.high_buckets, "p99_low_us": pl, "p99_high_us": ph,
        "max_ratio": p.max_ratio,
    }));
    // JSON has no infinity: a zero low p99 leaves the ratio out.
    if ratio.is_finite() {
        counts.insert("ratio".into(), ratio.into());
    }
    if ph as f64 <= p.max_ratio * pl as f64 + 1e-9 {
        return Verdict::Pass { counts };
    }
    let mut events: Vec<Event> = s
        .high
        .iter()
        .rev()
        .take(WITNESS_EVENTS)
        .map(|q| q.1.clone())
        .collect();
    events.sort_by_key(|e| e.t_us);
    let slowest = s.high.last().map_or(0, |q| q.0);
    counts.insert("slowest_high_us".into(), slowest.into());
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "p99 latency of queries arriving at ≥ {} × capacity was {} over {nh} answers, more than {} × the p99 of {} at ≤ {} × capacity ({nl} answers); the slowest took {}",
                p.high,
                secs(ph),
                p.max_ratio,
                secs(pl),
                p.low,
                secs(slowest)
            ),
            counts,
            events,
        },
    }
}

/// Whether both low and high load had enough answered queries for a p99.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    const STATE: &str =
        "enough queries were answered both at low load and at twice the capacity or more";
    let reached = sides(log, p).is_ok_and(|s| {
        let need = p.min_queries.max(1);
        s.low.len() as u64 >= need && s.high.len() as u64 >= need
    });
    (reached, STATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::{answered, client_accepted, ev, submitted};

    #[test]
    fn latency_runs_from_acceptance_not_from_a_shed_first_try() {
        // Query 0 is shed, comes back 60 s later, is accepted and answered in 1 s.
        let log = EventLog::from_events(vec![
            submitted(0, 0),
            client_accepted(60_000_000, 0),
            answered(61_000_000, 0, 200),
            submitted(200_000_000, 1),
        ]);
        let p = Params {
            capacity_per_s: Some(1.0),
            window: Span(std::time::Duration::from_secs(60)),
            ..Params::default()
        };
        let s = sides(&log, &p).expect("sides");
        assert_eq!(
            s.low.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            [1_000_000]
        );
    }

    /// Phases of (seconds, arrivals a second, latency in ms of each answer), one after the
    /// other from time 0; a 60 s quiet tail closes the last bucket.
    fn run(phases: &[(u64, u64, u64)]) -> EventLog {
        run_from(0, phases, 60)
    }

    /// As [`run`], from `start` µs, with a quiet tail of `tail_s` seconds.
    fn run_from(start: u64, phases: &[(u64, u64, u64)], tail_s: u64) -> EventLog {
        let (mut events, mut seq, mut t0) = (Vec::new(), 0u64, start);
        for &(secs, per_s, latency_ms) in phases {
            for k in 0..secs * per_s {
                let t = t0 + k * 1_000_000 / per_s;
                events.push(submitted(t, seq));
                events.push(client_accepted(t, seq));
                events.push(answered(t + latency_ms * 1000, seq, 200));
                seq += 1;
            }
            t0 += secs * 1_000_000;
        }
        events.push(ev(
            t0 + tail_s * 1_000_000,
            "h",
            "stampede::other",
            "tick",
            &[],
        ));
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    /// Two minutes at exactly 0.8× capacity, a minute each at 0.9× and 1.5× (neither side),
    /// three minutes at exactly 2×; answers in 1 s, then exactly 1.5 s.
    const AT_THE_BOUNDS: [(u64, u64, u64); 4] =
        [(120, 8, 1000), (60, 9, 10), (60, 15, 10), (180, 20, 1500)];

    #[test]
    fn loads_and_the_ratio_at_their_bounds_count() {
        let check = |log: &EventLog| {
            let Verdict::Pass { counts } = flat_latency_under_overload(log, &params()) else {
                panic!("exactly 1.5 × passes")
            };
            assert_eq!(counts["low_queries"], json!(960));
            assert_eq!(counts["high_queries"], json!(3600));
            assert_eq!(counts["low_buckets"], json!(2));
            assert_eq!(counts["high_buckets"], json!(3));
            assert_eq!(counts["ratio"], json!(1.5));
        };
        check(&run(&AT_THE_BOUNDS));
        // Buckets start at the first arrival, wherever it falls.
        check(&run_from(20_000_000, &AT_THE_BOUNDS, 60));
        // A bucket the log ends inside is not judged: 30 s at 5× after the rest.
        let mut phases = AT_THE_BOUNDS.to_vec();
        phases.push((30, 50, 9000));
        check(&run_from(0, &phases, 0));
    }

    #[test]
    fn enough_queries_on_each_side_decides() {
        let log = run(&AT_THE_BOUNDS);
        let with = |min_queries| Params {
            min_queries,
            ..params()
        };
        assert_eq!(flat_latency_under_overload(&log, &with(960)).word(), "pass");
        assert_eq!(
            flat_latency_under_overload(&log, &with(961)).word(),
            "unknown"
        );
        assert_eq!(
            flat_latency_under_overload(&log, &with(3601)).word(),
            "unknown"
        );
        // More low-load answers than high-load ones: 1,920 and 1,200.
        let fewer_high = run(&[(240, 8, 1000), (60, 20, 1000)]);
        assert_eq!(
            flat_latency_under_overload(&fewer_high, &with(1200)).word(),
            "pass"
        );
        assert_eq!(
            flat_latency_under_overload(&fewer_high, &with(1500)).word(),
            "unknown"
        );
        // With no minimum, a side without queries still cannot give a p99.
        let low_only = run(&[(180, 5, 1000)]);
        assert_eq!(
            flat_latency_under_overload(&low_only, &with(0)).word(),
            "unknown"
        );
        let high_only = run(&[(180, 25, 1000)]);
        assert_eq!(
            flat_latency_under_overload(&high_only, &with(0)).word(),
            "unknown"
        );
    }

    #[test]
    fn an_instant_baseline_passes_only_an_instant_overload() {
        let flat = run(&[(120, 5, 0), (120, 25, 0)]);
        let Verdict::Pass { counts } = flat_latency_under_overload(&flat, &params()) else {
            panic!("0 against 0 passes")
        };
        assert_eq!(counts["ratio"], json!(1.0));
        let slower = run(&[(120, 5, 0), (120, 25, 1)]);
        let Verdict::Fail { witness } = flat_latency_under_overload(&slower, &params()) else {
            panic!("1 ms against 0 fails")
        };
        assert!(
            witness.counts.get("ratio").is_none(),
            "no infinite ratio in JSON"
        );
    }

    fn params() -> Params {
        Params {
            capacity_per_s: Some(10.0),
            ..Params::default()
        }
    }

    #[test]
    fn latency_that_stays_flat_passes() {
        // 120 s at 5/s (0.5×), 120 s at 25/s (2.5×); 1.0 s then 1.4 s.
        let log = run(&[(120, 5, 1000), (120, 25, 1400)]);
        let Verdict::Pass { counts } = flat_latency_under_overload(&log, &params()) else {
            panic!("must pass")
        };
        assert_eq!(counts["low_queries"], json!(600));
        assert_eq!(counts["high_queries"], json!(3000));
        assert_eq!(counts["p99_high_us"], json!(1_400_000));
        assert_eq!(counts["low_buckets"], json!(2));
    }

    #[test]
    fn low_load_after_the_overload_is_no_baseline() {
        // 1 s at low load, 3 s under overload, then 9 s at low load again, behind its backlog:
        // the baseline is the 1 s before it, and 3 s is over 1.5 × that.
        let log = run(&[(120, 5, 1000), (120, 25, 3000), (120, 5, 9000)]);
        let Verdict::Fail { witness } = flat_latency_under_overload(&log, &params()) else {
            panic!("3 s against a baseline of 1 s")
        };
        assert_eq!(witness.counts["low_buckets"], json!(2));
        assert_eq!(witness.counts["p99_low_us"], json!(1_000_000));
    }

    #[test]
    fn latency_that_grows_under_overload_fails() {
        // 2 s answers at 0.5× capacity, 5 s answers at 2.5×: 2.5 times slower.
        let log = run(&[(120, 5, 2000), (120, 25, 5000)]);
        let Verdict::Fail { witness } = flat_latency_under_overload(&log, &params()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["p99_low_us"], json!(2_000_000));
        assert_eq!(witness.counts["p99_high_us"], json!(5_000_000));
        assert_eq!(witness.counts["ratio"], json!(2.5));
        assert!(witness.summary.contains("5.000s"), "{}", witness.summary);
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
        assert!(witness.events.iter().all(|e| e.name == "answered"));
        assert!(witness.events.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    }

    #[test]
    fn the_p99_is_by_nearest_rank() {
        // 100 low-load answers at 1 s, the slowest at 3 s: rank 99 is still 1 s; at high load
        // two slow ones of 100 put rank 99 at 1.6 s, which is over 1.5 × 1 s.
        let e = ev(0, "h", "t", "n", &[]);
        let mut v: Vec<(u64, &Event)> = (0..99).map(|_| (1_000_000, &e)).collect();
        v.push((3_000_000, &e));
        assert_eq!(p99(&v), 1_000_000);
        v[98].0 = 1_600_000;
        v.sort_by_key(|q| q.0);
        assert_eq!(p99(&v), 1_600_000);
        assert_eq!(p99(&v[..1]), 1_000_000);
    }

    #[test]
    fn too_few_queries_or_no_capacity_is_unknown() {
        // No high-load bucket at all: 3 minutes at 0.5×.
        let log = run(&[(180, 5, 1000)]);
        let Verdict::Unknown { why } = flat_latency_under_overload(&log, &params()) else {
            panic!("must be unknown")
        };
        assert!(why.starts_with("900 accepted queries"), "{why}");
        let both = run(&[(120, 5, 1000), (120, 25, 1000)]);
        assert_eq!(
            flat_latency_under_overload(&both, &Params::default()).word(),
            "unknown"
        );
        let strict = Params {
            min_queries: 1000,
            ..params()
        };
        assert_eq!(
            flat_latency_under_overload(&both, &strict).word(),
            "unknown"
        );
    }

    #[test]
    fn late_failed_and_open_queries_count_with_their_time() {
        // At low load answers in 1 s; at high load every query ends 504 after 9 s, but one
        // that is still open when the log ends, 30 s after it was accepted.
        let mut events = Vec::new();
        let mut seq = 0;
        for k in 0..(5 * 120) {
            let t = k * 200_000;
            events.push(submitted(t, seq));
            events.push(client_accepted(t, seq));
            events.push(answered(t + 1_000_000, seq, 200));
            seq += 1;
        }
        for k in 0..(25 * 120) {
            let t = 120_000_000 + k * 40_000;
            events.push(submitted(t, seq));
            events.push(client_accepted(t, seq));
            if k != 0 {
                events.push(answered(t + 9_000_000, seq, 504));
            }
            seq += 1;
        }
        events.push(ev(150_000_000, "h", "stampede::other", "tick", &[]));
        events.push(ev(300_000_000, "h", "stampede::other", "tick", &[]));
        events.sort_by_key(|e| e.t_us);
        let log = EventLog::from_events(events);
        let s = sides(&log, &params()).expect("capacity given");
        assert_eq!(s.high.len(), 3000);
        assert_eq!(s.high_buckets, 2);
        assert_eq!(s.high.iter().map(|q| q.0).max(), Some(180_000_000));
        let Verdict::Fail { witness } = flat_latency_under_overload(&log, &params()) else {
            panic!("9 s against 1 s")
        };
        assert_eq!(witness.counts["p99_high_us"], json!(9_000_000));
        assert!(sometimes(&log, &params()).0);
    }

    #[test]
    fn sometimes_needs_both_regimes() {
        let both = run(&[(120, 5, 1000), (120, 25, 1000)]);
        assert_eq!(
            sometimes(&both, &params()),
            (
                true,
                "enough queries were answered both at low load and at twice the capacity or more"
            )
        );
        assert!(!sometimes(&run(&[(240, 25, 1000)]), &params()).0);
        assert!(!sometimes(&both, &Params::default()).0);
    }
}
