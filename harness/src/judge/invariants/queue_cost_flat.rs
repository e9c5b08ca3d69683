//! `queue_cost_flat`: the cost of a job does not grow with the length of the queue. Draining a
//! backlog of 2B takes at most 2.2 × the time it takes to drain B.
//!
//! Checks: the backlog is the lakes waiting. An accepted query adds the `lakes` of its
//! `stampede::query` `accepted` event. Each `stampede::task` `task_done` of a new lake of that
//! query takes one off; a repeated delivery of the same lake does not. The query's terminal
//! event (`succeeded`, `failed`, `deadline_exceeded`, `cancelled`, `rejected`) drops what it
//! has left to 0. The backlog is read after all events at one time. An episode is a maximal
//! period of backlog > 0 that ends (drops to 0) before the log does. Its size B is its peak,
//! t_p is the last time it stood at its peak, and its drain time is D = t_end − t_p. Episodes
//! with B < `min_backlog` are ignored, and so are episodes that did not drain by work: a
//! query that ends other than `succeeded` drops its lakes left, which were abandoned, not
//! drained, and its episode is not judged. For every pair with B2 ≥ `min_growth` × B1 (and B2 > B1), the
//! per-lake drain time must not grow by more than `max_ratio` / 2: D2 / B2 ≤ (`max_ratio` / 2)
//! × D1 / B1. So doubling the backlog may at most `max_ratio`-fold its drain time. The witness
//! is the pair with the largest growth.
//!
//! Unknown: fewer than two episodes of different sizes that qualify. Not checked: arrivals
//! during a drain (they lengthen D as they would in the system's queue); `recovered` queries
//! (a restarted coordinator's re-plan does not change the backlog here); episodes still open at
//! the end of the log; whether the drain was within its bound (see `backlog_drains`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::obj;
use super::time::secs;
use super::vocabulary::{QUERY_TARGET, TASK_TARGET, TERMINAL};
use super::{Verdict, Witness};
use crate::events::{Event, EventLog};

/// Parameters of `queue_cost_flat`, from the scenario (`invariants: [{queue_cost_flat: {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The largest allowed ratio of the drain time of 2B to that of B. Default 2.2.
    pub max_ratio: f64,
    /// How much bigger an episode's peak must be than another's to compare them. Default 1.5.
    pub min_growth: f64,
    /// The least peak, in lakes, of an episode that is judged. Default 100.
    pub min_backlog: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            max_ratio: 2.2,
            min_growth: 1.5,
            min_backlog: 100,
        }
    }
}

/// A period of backlog > 0 that drained.
#[derive(Debug, Clone, Copy)]
struct Episode<'a> {
    /// Its peak, in lakes.
    peak: u64,
    /// The last time it stood at its peak, and the last event at that time.
    t_peak: u64,
    at_peak: &'a Event,
    /// When it reached 0, and the last event at that time.
    t_end: u64,
    at_end: &'a Event,
    /// Lakes that left the backlog because their query ended without them (failed, late,
    /// cancelled) rather than by work.
    abandoned: u64,
}

impl Episode<'_> {
    /// Drain time per lake, in microseconds.
    fn cost(&self) -> f64 {
        (self.t_end - self.t_peak) as f64 / self.peak as f64
    }
}

/// A query still waiting: lakes left and lakes done.
struct Open {
    left: u64,
    done: BTreeSet<String>,
}

/// A `lake` field, number or string.
fn lake(e: &Event) -> Option<String> {
    match e.fields.get("lake")? {
        serde_json::Value::String(s) => Some(s.clone()),
        v => Some(v.to_string()),
    }
}

/// Every episode that ended, in time order, and how many were still open at the end.
fn episodes(log: &EventLog) -> (Vec<Episode<'_>>, u64) {
    let mut events: Vec<&Event> = log
        .events()
        .iter()
        .filter(|e| {
            (e.target == QUERY_TARGET
                && (e.name == "accepted" || TERMINAL.contains(&e.name.as_str())))
                || e.is(TASK_TARGET, "task_done")
        })
        .collect();
    events.sort_by_key(|e| e.t_us);
    let mut open: BTreeMap<&str, Open> = BTreeMap::new();
    let mut closed: BTreeSet<&str> = BTreeSet::new();
    let (mut backlog, mut out) = (0u64, Vec::new());
    let mut current: Option<(u64, u64, &Event)> = None;
    let mut abandoned = 0u64;
    for (i, e) in events.iter().enumerate() {
        let Some(id) = e.str("query_id") else {
            continue;
        };
        if e.name == "accepted" {
            if !closed.contains(id) && !open.contains_key(id) {
                let left = e.u64("lakes").unwrap_or(0);
                backlog += left;
                let done = BTreeSet::new();
                open.insert(id, Open { left, done });
            }
        } else if e.name == "task_done" {
            if let (Some(q), Some(l)) = (open.get_mut(id), lake(e))
                && q.left > 0
                && q.done.insert(l)
            {
                q.left -= 1;
                backlog -= 1;
            }
        } else if let Some(q) = open.remove(id) {
            backlog -= q.left;
            if e.name != "succeeded" {
                abandoned += q.left;
            }
            closed.insert(id);
        }
        // Read the backlog once all events at this time are in.
        if events.get(i + 1).is_some_and(|n| n.t_us == e.t_us) {
            continue;
        }
        if backlog > 0 {
            // The last time at the peak: the drain starts when it leaves the peak for good.
            let c = current.get_or_insert((backlog, e.t_us, e));
            if backlog >= c.0 {
                *c = (backlog, e.t_us, e);
            }
        } else if let Some((peak, t_peak, at_peak)) = current.take() {
            out.push(Episode {
                peak,
                t_peak,
                at_peak,
                t_end: e.t_us,
                at_end: e,
                abandoned,
            });
        }
        if backlog == 0 {
            abandoned = 0;
        }
    }
    (out, u64::from(current.is_some()))
}

/// The comparison of episodes: the pair furthest over the bound, and how many pairs there were.
struct Comparison<'a> {
    judged: Vec<Episode<'a>>,
    pairs: u64,
    /// (smaller, bigger, growth of the per-lake cost), the largest growth over the bound.
    worst: Option<(Episode<'a>, Episode<'a>, f64)>,
}

fn compare<'a>(all: &[Episode<'a>], p: &Params) -> Comparison<'a> {
    let mut judged: Vec<Episode<'a>> = all
        .iter()
        .filter(|e| e.peak >= p.min_backlog.max(1) && e.abandoned == 0)
        .copied()
        .collect();
    judged.sort_by_key(|e| (e.peak, e.t_peak));
    // The cheapest smaller episode among the first k: the strictest comparison for a bigger.
    let mut cheapest: Vec<usize> = Vec::with_capacity(judged.len());
    for (k, e) in judged.iter().enumerate() {
        let best = match cheapest.last() {
            Some(&b) if judged[b].cost() <= e.cost() => b,
            _ => k,
        };
        cheapest.push(best);
    }
    let (mut pairs, mut worst) = (0u64, None);
    let allowed = p.max_ratio / 2.0;
    for big in &judged {
        let smaller = judged.partition_point(|e| {
            e.peak < big.peak && e.peak as f64 * p.min_growth <= big.peak as f64 + 1e-9
        });
        if smaller == 0 {
            continue;
        }
        pairs += smaller as u64;
        let small = judged[cheapest[smaller - 1]];
        let growth = big.cost() / small.cost();
        if growth > allowed + 1e-9 && worst.is_none_or(|(_, _, g)| growth > g) {
            worst = Some((small, *big, growth));
        }
    }
    Comparison {
        judged,
        pairs,
        worst,
    }
}

/// Checks that the per-lake drain time does not grow with the size of the backlog.
pub fn queue_cost_flat(log: &EventLog, p: &Params) -> Verdict {
    let (all, unfinished) = episodes(log);
    let c = compare(&all, p);
    if c.pairs == 0 {
        return Verdict::Unknown {
            why: format!(
                "{} backlog episodes drained, {} of them of {} lakes or more: no two of sizes at least {} × apart",
                all.len(),
                c.judged.len(),
                p.min_backlog,
                p.min_growth
            ),
        };
    }
    let mut counts = obj(json!({
        "episodes": all.len(), "judged_episodes": c.judged.len(), "unfinished_episodes": unfinished,
        "pairs": c.pairs, "largest_backlog": c.judged.last().map_or(0, |e| e.peak),
    }));
    let Some((small, big, growth)) = c.worst else {
        return Verdict::Pass { counts };
    };
    let ms = |e: &Episode| e.cost() / 1000.0;
    counts.extend(obj(json!({
        "small_backlog": small.peak, "small_drain_us": small.t_end - small.t_peak,
        "small_us_per_lake": small.cost(),
        "big_backlog": big.peak, "big_drain_us": big.t_end - big.t_peak,
        "big_us_per_lake": big.cost(),
        "growth": growth, "max_growth": p.max_ratio / 2.0,
    })));
    let mut events: Vec<Event> = [small.at_peak, small.at_end, big.at_peak, big.at_end]
        .into_iter()
        .cloned()
        .collect();
    events.sort_by_key(|e| e.t_us);
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "draining {} lakes from {} took {} ({:.3} ms a lake), {growth:.2} × the {:.3} ms a lake of draining {} lakes from {} in {}: over {} (a backlog {:.1} × as big drained {:.2} × as long)",
                big.peak,
                secs(big.t_peak),
                secs(big.t_end - big.t_peak),
                ms(&big),
                ms(&small),
                small.peak,
                secs(small.t_peak),
                secs(small.t_end - small.t_peak),
                p.max_ratio / 2.0,
                big.peak as f64 / small.peak as f64,
                (big.t_end - big.t_peak) as f64 / (small.t_end - small.t_peak) as f64
            ),
            counts,
            events,
        },
    }
}

/// Whether two backlog episodes of different enough sizes drained.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    let (all, _) = episodes(log);
    (
        compare(&all, p).pairs > 0,
        "two backlogs of different sizes built up and drained",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;

    fn query(t_us: u64, name: &str, id: &str, lakes: Option<u64>) -> Event {
        let mut f = vec![("query_id", json!(id))];
        f.extend(lakes.map(|n| ("lakes", json!(n))));
        ev(t_us, "coordinator", QUERY_TARGET, name, &f)
    }

    fn done(t_us: u64, id: &str, lake: u64) -> Event {
        ev(
            t_us,
            "worker",
            TASK_TARGET,
            "task_done",
            &[("query_id", json!(id)), ("lake", json!(lake))],
        )
    }

    /// At `at_s` seconds, `queries` queries of `lakes` lakes each; their lakes are done one
    /// after the other every `per_lake_us`, and each query succeeds with its last lake.
    fn burst(at_s: u64, name: &str, queries: u64, lakes: u64, per_lake_us: u64) -> Vec<Event> {
        let t0 = at_s * 1_000_000;
        let mut events = Vec::new();
        let mut t = t0;
        for q in 0..queries {
            let id = format!("{name}-{q}");
            events.push(query(t0, "accepted", &id, Some(lakes)));
            for l in 0..lakes {
                t += per_lake_us;
                events.push(done(t, &id, l));
            }
            events.push(query(t, "succeeded", &id, None));
        }
        events
    }

    fn log(parts: Vec<Vec<Event>>) -> EventLog {
        let mut events: Vec<Event> = parts.into_iter().flatten().collect();
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn a_backlog_its_queries_abandoned_is_not_drained() {
        // 200 lakes drained by work; then 400 lakes, of which 380 are dropped at once by their
        // queries failing: fast, but not a drain, so not judged.
        let mut failing = burst(100, "b", 20, 20, 10_000);
        for e in failing.iter_mut().filter(|e| e.name == "succeeded") {
            e.name = "failed".into();
        }
        failing.retain(|e| e.name != "task_done" || e.str("query_id") == Some("b-0"));
        let l = log(vec![burst(0, "a", 10, 20, 10_000), failing]);
        let (all, _) = episodes(&l);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].abandoned, 380);
        assert_eq!(queue_cost_flat(&l, &Params::default()).word(), "unknown");
    }

    #[test]
    fn flat_per_lake_cost_passes() {
        // 200 lakes at 10 ms each, then 400 at 10.5 ms each: 5 % dearer, within 10 %.
        let l = log(vec![
            burst(0, "a", 10, 20, 10_000),
            burst(100, "b", 20, 20, 10_500),
        ]);
        let Verdict::Pass { counts } = queue_cost_flat(&l, &Params::default()) else {
            panic!("must pass")
        };
        assert_eq!(counts["judged_episodes"], json!(2));
        assert_eq!(counts["pairs"], json!(1));
        assert_eq!(counts["largest_backlog"], json!(400));
    }

    #[test]
    fn cost_growing_with_the_queue_fails() {
        // 200 lakes at 10 ms, 400 at 15 ms (the queue scans itself): draining twice as much
        // takes three times as long.
        let l = log(vec![
            burst(0, "a", 10, 20, 10_000),
            burst(100, "b", 20, 20, 15_000),
        ]);
        let Verdict::Fail { witness } = queue_cost_flat(&l, &Params::default()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["small_backlog"], json!(200));
        assert_eq!(witness.counts["big_backlog"], json!(400));
        assert_eq!(witness.counts["big_drain_us"], json!(6_000_000));
        assert_eq!(witness.counts["growth"], json!(1.5));
        assert!(
            witness
                .summary
                .contains("draining 400 lakes from 100.000s took 6.000s"),
            "{}",
            witness.summary
        );
        let names: Vec<&str> = witness.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["accepted", "succeeded", "accepted", "succeeded"]);
    }

    #[test]
    fn each_bigger_backlog_is_held_to_the_cheapest_small_enough_one() {
        // 200 lakes at 10 ms, 300 at 8 ms (exactly 1.5 × as big), 600 at 12 ms, 1,200 at
        // 13 ms: the 600 and the 1,200 are each held to the 300's 8 ms, and the 1,200 is worst.
        let l = log(vec![
            burst(0, "a", 10, 20, 10_000),
            burst(100, "b", 15, 20, 8_000),
            burst(200, "c", 30, 20, 12_000),
            burst(300, "d", 60, 20, 13_000),
        ]);
        let Verdict::Fail { witness } = queue_cost_flat(&l, &Params::default()) else {
            panic!("13 ms against 8 ms")
        };
        assert_eq!(witness.counts["pairs"], json!(6));
        assert_eq!(witness.counts["small_backlog"], json!(300));
        assert_eq!(witness.counts["big_backlog"], json!(1200));
        assert_eq!(witness.counts["growth"], json!(1.625));
        assert!(
            witness.summary.contains("(13.000 ms a lake)")
                && witness.summary.contains("8.000 ms a lake"),
            "{}",
            witness.summary
        );
        // A cheaper backlog too close in size to the bigger one is no comparison for it.
        let l = log(vec![
            burst(0, "a", 10, 20, 10_000),
            burst(100, "g", 35, 10, 5_000),
            burst(200, "c", 20, 20, 12_000),
        ]);
        let Verdict::Fail { witness } = queue_cost_flat(&l, &Params::default()) else {
            panic!("12 ms against 10 ms")
        };
        assert_eq!(witness.counts["small_backlog"], json!(200));
        assert_eq!(witness.counts["growth"], json!(1.2));
        // Exactly at the bound passes.
        let l = log(vec![
            burst(0, "a", 10, 20, 10_000),
            burst(100, "c", 20, 20, 11_000),
        ]);
        assert_eq!(queue_cost_flat(&l, &Params::default()).word(), "pass");
    }

    #[test]
    fn small_and_dropped_backlogs_are_not_judged() {
        // A 50-lake episode drained fast would fail the 400; it is under min_backlog. A query
        // accepted and failed at the same time never adds to the backlog.
        let mut dropped = vec![query(200_000_000, "accepted", "x", Some(300))];
        dropped.push(query(200_000_000, "failed", "x", None));
        let l = log(vec![
            burst(0, "a", 10, 20, 10_000),
            burst(50, "s", 5, 10, 1_000),
            burst(100, "b", 20, 20, 10_500),
            dropped,
        ]);
        let Verdict::Pass { counts } = queue_cost_flat(&l, &Params::default()) else {
            panic!("must pass")
        };
        assert_eq!(counts["episodes"], json!(3));
        assert_eq!(counts["judged_episodes"], json!(2));
        let loose = Params {
            min_backlog: 10,
            ..Params::default()
        };
        assert!(queue_cost_flat(&l, &loose).is_fail());
    }

    #[test]
    fn a_terminal_event_or_a_repeated_task_ends_the_wait_once() {
        // A query of 150 lakes: 100 done (one of them twice), then it is cancelled.
        let mut e = vec![query(0, "accepted", "q", Some(150))];
        e.extend((0..100).map(|l| done(1000 * (l + 1), "q", l)));
        e.push(done(100_500, "q", 99));
        e.push(query(200_000, "cancelled", "q", None));
        let l = log(vec![e]);
        let (eps, unfinished) = episodes(&l);
        assert_eq!(unfinished, 0);
        assert_eq!(eps.len(), 1);
        assert_eq!(
            (eps[0].peak, eps[0].t_peak, eps[0].t_end),
            (150, 0, 200_000)
        );
        assert_eq!(eps[0].at_end.name, "cancelled");
    }

    #[test]
    fn only_acceptances_tasks_and_ends_move_the_backlog() {
        // A query of 3 lakes, accepted twice (a retried submission), a status line and a
        // client's own `accepted` between, a fourth lake's task beyond its count, then done.
        let e = vec![
            query(0, "accepted", "q", Some(3)),
            query(1000, "accepted", "q", Some(3)),
            query(1500, "progress", "q", None),
            ev(
                1600,
                "client",
                "stampede::traffic",
                "accepted",
                &[("query_id", json!("q"))],
            ),
            done(2000, "q", 0),
            done(3000, "q", 1),
            done(4000, "q", 2),
            done(4500, "q", 3),
            query(5000, "succeeded", "q", None),
        ];
        let l = log(vec![e]);
        let (eps, unfinished) = episodes(&l);
        assert_eq!(unfinished, 0);
        assert_eq!(eps.len(), 1);
        assert_eq!((eps[0].peak, eps[0].t_peak, eps[0].t_end), (3, 1000, 4000));
        assert_eq!(eps[0].abandoned, 0);
    }

    #[test]
    fn one_size_only_is_unknown() {
        let p = Params::default();
        let one = log(vec![burst(0, "a", 10, 20, 10_000)]);
        assert_eq!(queue_cost_flat(&one, &p).word(), "unknown");
        // Two episodes of 200 and 250 lakes: not 1.5 × apart.
        let close = log(vec![
            burst(0, "a", 10, 20, 10_000),
            burst(100, "b", 10, 25, 50_000),
        ]);
        let Verdict::Unknown { why } = queue_cost_flat(&close, &p) else {
            panic!("must be unknown")
        };
        assert!(why.starts_with("2 backlog episodes"), "{why}");
        // One that never drains is not an episode.
        let mut open = burst(0, "a", 10, 20, 10_000);
        open.push(query(100_000_000, "accepted", "z", Some(900)));
        let open = log(vec![open]);
        let (eps, unfinished) = episodes(&open);
        assert_eq!((eps.len(), unfinished), (1, 1));
    }

    #[test]
    fn sometimes_needs_two_sizes() {
        let p = Params::default();
        let two = log(vec![
            burst(0, "a", 10, 20, 10_000),
            burst(100, "b", 20, 20, 1),
        ]);
        assert_eq!(
            sometimes(&two, &p),
            (true, "two backlogs of different sizes built up and drained")
        );
        assert!(!sometimes(&log(vec![burst(0, "a", 10, 20, 10_000)]), &p).0);
    }
}
