//! `bounded_queues`: on every coordinator, the queries running and the queries waiting for
//! admission stay within the system's configured limits (`max_running_queries`,
//! `max_queued_queries`) at all times, whether or not admission control is switched on: a
//! system without it simply has nothing holding it to them.
//!
//! Judged from the replay client's view, not the coordinators' own gauges. The client logs
//! which coordinator accepted each query (`accepted`, with its `coordinator` and `phase`), each
//! change of phase it saw when polling (`status`), and the answer (`answered`); each change
//! says how long the phase before it surely held (`prev_held_us`: from the answer that first
//! showed it to the sending of the last poll that still did). A query's phase only moves
//! forward (queued, running, ended), so it surely:
//!
//! - was **open** (accepted, not ended) from its acceptance to the end of the span in which
//!   its last phase before the end surely held;
//! - was **running** over each span in which a `running` phase surely held.
//!
//! Fails when, at some instant, more queries were surely running on one coordinator than
//! `max_running`, or more were surely open than `max_running + max_queued`. Every span is
//! within the truth, so a coordinator that keeps its limits never fails; one that breaks them
//! for less than a poll (1 s) between two polls may pass unseen. A coordinator that crashes
//! and re-admits its queries after a restart may show a query running on both sides of the
//! restart: the check then counts it over the gap. Not checked: the workers' in-flight
//! tasks (bounded by construction, `task_concurrency`), memory, and the durable task queue,
//! whose backlog is meant to grow.

use std::collections::BTreeMap;

use serde_json::json;

use super::obj;
use super::time::secs;
use super::vocabulary::TRAFFIC_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// What the client surely saw of one query.
struct Seen<'a> {
    coordinator: &'a str,
    accepted: &'a Event,
    /// When it was surely open: `[from, to)`.
    open: (u64, u64),
    /// When it was surely running.
    running: Vec<(u64, u64)>,
}

/// Every accepted query's spans, in acceptance order.
fn seen(log: &EventLog) -> Vec<Seen<'_>> {
    let mut by_seq: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
    for e in log.of(TRAFFIC_TARGET) {
        if matches!(e.name.as_str(), "accepted" | "status" | "answered")
            && let Some(seq) = e.u64("seq")
        {
            by_seq.entry(seq).or_default().push(e);
        }
    }
    let mut out = Vec::new();
    for events in by_seq.into_values() {
        let Some(pos) = events.iter().position(|e| e.name == "accepted") else {
            continue;
        };
        let accepted = events[pos];
        // The phase changes the client saw from acceptance on: (when, phase, the event).
        let mut phases: Vec<(u64, &str)> =
            vec![(accepted.t_us, accepted.str("phase").unwrap_or(""))];
        let mut running = Vec::new();
        let mut open_to = accepted.t_us;
        for e in &events[pos + 1..] {
            let phase = if e.name == "answered" {
                "ended"
            } else {
                e.str("phase").unwrap_or("")
            };
            let &(since, before) = phases.last().expect("one at least");
            if phase == before {
                continue;
            }
            let held_to = since.saturating_add(e.u64("prev_held_us").unwrap_or(0));
            open_to = open_to.max(held_to);
            if before == "running" && held_to > since {
                running.push((since, held_to));
            }
            phases.push((e.t_us, phase));
        }
        out.push(Seen {
            coordinator: accepted.str("coordinator").unwrap_or(""),
            accepted,
            open: (accepted.t_us, open_to),
            running,
        });
    }
    out
}

/// The most spans of `spans` that hold at one instant, when it was first reached, and the
/// indices of the spans then holding.
fn busiest(spans: &[(u64, u64, usize)]) -> (u64, u64, Vec<usize>) {
    // Ends sort before starts at the same instant: spans are half-open.
    let mut edges: Vec<(u64, bool, usize)> = spans
        .iter()
        .filter(|(a, z, _)| z > a)
        .flat_map(|&(a, z, i)| [(a, true, i), (z, false, i)])
        .collect();
    edges.sort();
    let (mut best, mut at, mut holding, mut witnesses) = (0u64, 0u64, Vec::new(), Vec::new());
    for (t, start, i) in edges {
        if start {
            holding.push(i);
            if holding.len() as u64 > best {
                best = holding.len() as u64;
                at = t;
                witnesses = holding.clone();
            }
        } else {
            holding.retain(|&j| j != i);
        }
    }
    (best, at, witnesses)
}

/// The client's view per coordinator: (peak running, when, queries then), (peak open, when,
/// queries then).
type Peaks = ((u64, u64, Vec<usize>), (u64, u64, Vec<usize>));

/// Spans `[from, to)` of the query at an index.
type Spans = Vec<(u64, u64, usize)>;

fn peaks(seen: &[Seen<'_>]) -> BTreeMap<String, Peaks> {
    let mut by: BTreeMap<&str, (Spans, Spans)> = BTreeMap::new();
    for (i, q) in seen.iter().enumerate() {
        let (running, open) = by.entry(q.coordinator).or_default();
        running.extend(q.running.iter().map(|&(a, z)| (a, z, i)));
        open.push((q.open.0, q.open.1, i));
    }
    by.into_iter()
        .map(|(c, (running, open))| (c.to_string(), (busiest(&running), busiest(&open))))
        .collect()
}

/// Checks the client's view of every coordinator against `max_running` and `max_queued`.
pub fn bounded_queues(log: &EventLog, max_running: u64, max_queued: u64) -> Verdict {
    let seen = seen(log);
    if seen.iter().all(|q| q.open.1 <= q.open.0) {
        return Verdict::Unknown {
            why: "the client saw no query open over two polls".into(),
        };
    }
    let peaks = peaks(&seen);
    let max_open = max_running + max_queued;
    let peak_running = peaks.values().map(|p| p.0.0).max().unwrap_or(0);
    let peak_open = peaks.values().map(|p| p.1.0).max().unwrap_or(0);
    let counts = obj(json!({
        "peak_running": peak_running,
        "peak_open": peak_open,
        "max_running": max_running,
        "max_queued": max_queued,
        "queries": seen.len(),
    }));
    let over = peaks
        .iter()
        .find_map(|(c, ((run, run_at, run_q), (open, open_at, open_q)))| {
            if *run > max_running {
                Some((c, "running", *run, max_running, *run_at, run_q))
            } else if *open > max_open {
                Some((
                    c,
                    "accepted and not ended",
                    *open,
                    max_open,
                    *open_at,
                    open_q,
                ))
            } else {
                None
            }
        });
    let Some((coordinator, what, n, limit, at, queries)) = over else {
        return Verdict::Pass { counts };
    };
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "the client saw {n} queries {what} at once on {coordinator} at t={}, over its limit of {limit}",
                secs(at)
            ),
            counts,
            events: queries
                .iter()
                .take(WITNESS_EVENTS)
                .map(|&i| seen[i].accepted.clone())
                .collect(),
        },
    }
}

/// Sometimes: the client saw a coordinator run as many queries at once as its limit allows,
/// so the limit mattered.
pub fn sometimes(log: &EventLog, max_running: u64) -> (bool, &'static str) {
    let seen = seen(log);
    (
        peaks(&seen).values().any(|p| p.0.0 >= max_running.max(1)),
        "the client saw a coordinator run as many queries at once as its limit allows",
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_support::ev;
    use super::*;

    const S: u64 = 1_000_000;

    /// Query `seq` on coordinator `c`: accepted at `at` s as `phase`, then the phase changes
    /// `(when s, phase, held s of the phase before)`, the last `ended` for the answer.
    fn query(seq: u64, c: &str, at: u64, phase: &str, changes: &[(u64, &str, u64)]) -> Vec<Event> {
        let mut out = vec![ev(
            at * S,
            "client",
            TRAFFIC_TARGET,
            "accepted",
            &[
                ("seq", json!(seq)),
                ("coordinator", json!(c)),
                ("phase", json!(phase)),
            ],
        )];
        for &(t, phase, held) in changes {
            let name = if phase == "ended" {
                "answered"
            } else {
                "status"
            };
            out.push(ev(
                t * S,
                "client",
                TRAFFIC_TARGET,
                name,
                &[
                    ("seq", json!(seq)),
                    ("phase", json!(phase)),
                    ("prev_held_us", json!(held * S)),
                ],
            ));
        }
        out
    }

    fn check(queries: Vec<Vec<Event>>, max_running: u64, max_queued: u64) -> Verdict {
        let mut events: Vec<Event> = queries.into_iter().flatten().collect();
        events.sort_by_key(|e| e.t_us);
        bounded_queues(&EventLog::from_events(events), max_running, max_queued)
    }

    #[test]
    fn queries_surely_running_over_the_limit_fail() {
        // Three queries running from 10 s to at least 18 s on one coordinator, limit 2.
        let three = |c2: &str| {
            vec![
                query(0, "c", 10, "running", &[(20, "ended", 8)]),
                query(1, "c", 10, "running", &[(20, "ended", 8)]),
                query(2, c2, 11, "running", &[(20, "ended", 7)]),
            ]
        };
        let Verdict::Fail { witness } = check(three("c"), 2, 10) else {
            panic!("three running, limit two")
        };
        assert_eq!(witness.counts["peak_running"], json!(3));
        assert_eq!(witness.events.len(), 3);
        assert!(
            witness
                .summary
                .contains("3 queries running at once on c at t=11.000s"),
            "{}",
            witness.summary
        );
        // On two coordinators, each keeps its limit.
        assert_eq!(check(three("d"), 2, 10).word(), "pass");
        // One seen running only once holds no span: it may have ended at once.
        let once = vec![
            query(0, "c", 10, "running", &[(20, "ended", 8)]),
            query(1, "c", 10, "running", &[(20, "ended", 8)]),
            query(2, "c", 11, "running", &[(12, "ended", 0)]),
        ];
        assert_eq!(check(once, 2, 10).word(), "pass");
    }

    #[test]
    fn queued_queries_count_as_open_not_running() {
        // Two running, three queued behind them: limit 2 running, 2 queued.
        let mut qs = vec![
            query(0, "c", 10, "running", &[(30, "ended", 19)]),
            query(1, "c", 10, "running", &[(30, "ended", 19)]),
        ];
        for k in 2..5 {
            // They run one at a time after the first two: from 31 s, 41 s, 51 s.
            let run = 31 + 10 * (k - 2);
            qs.push(query(
                k,
                "c",
                11,
                "queued",
                &[(run, "running", run - 12), (run + 9, "ended", 8)],
            ));
        }
        let Verdict::Fail { witness } = check(qs.clone(), 2, 2) else {
            panic!("five open, limit four")
        };
        assert_eq!(witness.counts["peak_open"], json!(5));
        assert!(
            witness.summary.contains("accepted and not ended"),
            "{}",
            witness.summary
        );
        // With room for three waiting, it passes: the queued ones ran after the first two.
        assert_eq!(check(qs, 3, 3).word(), "pass");
    }

    #[test]
    fn nothing_seen_twice_is_unknown_and_the_state_needs_a_full_coordinator() {
        let quick = vec![query(0, "c", 10, "running", &[(11, "ended", 0)])];
        assert_eq!(check(quick, 4, 64).word(), "unknown");
        let two = vec![
            query(0, "c", 10, "running", &[(20, "ended", 8)]),
            query(1, "c", 10, "running", &[(20, "ended", 8)]),
        ];
        let log = |qs: Vec<Vec<Event>>| {
            let mut events: Vec<Event> = qs.into_iter().flatten().collect();
            events.sort_by_key(|e| e.t_us);
            EventLog::from_events(events)
        };
        assert!(sometimes(&log(two.clone()), 2).0);
        assert!(!sometimes(&log(two), 3).0);
    }
}
