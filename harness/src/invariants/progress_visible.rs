//! `progress_visible`: a user is never left without news of an accepted query: the first
//! status comes within 5 s of acceptance, and a running query reports progress at least
//! every 30 s.
//!
//! Checks, per query id on `stampede::query`:
//! - after `accepted`, the query's next status event (`queued`, `started`, `progress` or a
//!   terminal one: `succeeded`, `failed`, `rejected`, `cancelled`, `deadline_exceeded`) comes
//!   at most `first_within_us` later;
//! - while it runs (from `started` to its terminal event) no gap between its status events
//!   (`started`, `progress`, the terminal one) exceeds `every_us`;
//! - a coordinator that restarts re-plans open queries (`recovered`): the running period ends
//!   there (the gap up to `recovered`, the coordinator's downtime included, still counts), and
//!   the query needs its next status within `first_within_us` again, as after `accepted`
//!   (a recovered query goes back through admission, `queued` or `started`).
//!
//! A query still open at the end of the log is judged up to the log's last event: a status
//! still due, or a running gap, longer than allowed by then fails.
//!
//! Does not check: progress while a query waits in the queue (`queued` is logged once, with
//! its position; what a user polling it sees later is not an event), nor what a status says
//! (that `progress` moved, or that the estimate is there): only that one was given.

use std::collections::BTreeMap;

use serde_json::json;

use super::obj;
use super::time::{log_end, secs};
use super::vocabulary::{QUERY_TARGET, TERMINAL};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The most time from acceptance to the first status.
pub const FIRST_STATUS_WITHIN_US: u64 = 5_000_000;

/// The most time between statuses of a running query.
pub const PROGRESS_EVERY_US: u64 = 30_000_000;

/// One silence too long: the event it began with, the one that ended it (none: the log's end),
/// how long, and the limit.
struct Silence<'a> {
    since: &'a Event,
    until: Option<&'a Event>,
    gap_us: u64,
    limit_us: u64,
    what: &'static str,
}

#[derive(Default)]
struct Life<'a> {
    /// The event that asked for a status within the first limit, until one comes.
    due: Option<&'a Event>,
    /// While running: the last status.
    running_since: Option<&'a Event>,
    ended: bool,
}

/// Checks the status events of every accepted query against the two limits.
pub fn progress_visible(log: &EventLog, first_within_us: u64, every_us: u64) -> Verdict {
    let mut events: Vec<&Event> = log.of(QUERY_TARGET).collect();
    events.sort_by_key(|e| e.t_us);
    let mut lives: BTreeMap<&str, Life<'_>> = BTreeMap::new();
    let mut silences: Vec<Silence<'_>> = Vec::new();
    for e in events {
        let Some(id) = e.str("query_id") else {
            continue;
        };
        let name = e.name.as_str();
        if name == "accepted" {
            lives.entry(id).or_default().due = Some(e);
            continue;
        }
        let Some(life) = lives.get_mut(id) else {
            // Never accepted in this log: no_lost_queries says so.
            continue;
        };
        if life.ended {
            continue;
        }
        let status =
            name == "queued" || name == "started" || name == "progress" || TERMINAL.contains(&name);
        if !status && name != "recovered" {
            continue;
        }
        if let Some(last) = life.running_since {
            let gap_us = e.t_us - last.t_us;
            if gap_us > every_us {
                silences.push(Silence {
                    since: last,
                    until: Some(e),
                    gap_us,
                    limit_us: every_us,
                    what: "ran without progress",
                });
            }
        }
        if name == "recovered" {
            life.running_since = None;
            life.due = Some(e);
            continue;
        }
        if let Some(asked) = life.due.take() {
            let gap_us = e.t_us - asked.t_us;
            if gap_us > first_within_us {
                silences.push(Silence {
                    since: asked,
                    until: Some(e),
                    gap_us,
                    limit_us: first_within_us,
                    what: "waited for a status",
                });
            }
        }
        if TERMINAL.contains(&name) {
            life.ended = true;
            life.running_since = None;
        } else if name == "started" || life.running_since.is_some() {
            life.running_since = Some(e);
        }
    }
    if lives.is_empty() {
        return Verdict::Unknown {
            why: "no query was accepted".into(),
        };
    }
    let end = log_end(log);
    for life in lives.values().filter(|l| !l.ended) {
        for (since, limit_us, what) in [
            (life.due, first_within_us, "waited for a status"),
            (life.running_since, every_us, "ran without progress"),
        ] {
            if let Some(since) = since
                && end - since.t_us > limit_us
            {
                silences.push(Silence {
                    since,
                    until: None,
                    gap_us: end - since.t_us,
                    limit_us,
                    what,
                });
            }
        }
    }
    let queries = lives.len();
    if silences.is_empty() {
        return Verdict::Pass {
            counts: obj(json!({ "queries": queries })),
        };
    }
    silences.sort_by_key(|s| (s.since.t_us, s.until.map(|u| u.t_us)));
    let silent_queries = silences
        .iter()
        .filter_map(|s| s.since.str("query_id"))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let first = &silences[0];
    let summary = format!(
        "{silent_queries} of {queries} queries went silent too long; the first, {}, {} for {:.1} s from t={} ({}), over {} s",
        first.since.str("query_id").unwrap_or("?"),
        first.what,
        first.gap_us as f64 / 1e6,
        secs(first.since.t_us),
        match first.until {
            Some(u) => format!("until {} at t={}", u.name, secs(u.t_us)),
            None => "to the end of the log".into(),
        },
        first.limit_us / 1_000_000
    );
    let mut witness_events: Vec<Event> = Vec::new();
    for s in &silences {
        for e in std::iter::once(s.since).chain(s.until) {
            if witness_events.len() < WITNESS_EVENTS && !witness_events.contains(e) {
                witness_events.push(e.clone());
            }
        }
    }
    witness_events.sort_by_key(|e| e.t_us);
    Verdict::Fail {
        witness: Witness {
            summary,
            counts: obj(json!({
                "queries": queries, "silent_queries": silent_queries, "silences": silences.len(),
            })),
            events: witness_events,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::test_support::ev;

    const S: u64 = 1_000_000;

    fn q(t_s: f64, name: &str, id: &str) -> Event {
        let t_us = (t_s * 1e6) as u64;
        ev(
            t_us,
            "coordinator-r",
            QUERY_TARGET,
            name,
            &[("query_id", json!(id))],
        )
    }

    fn check(events: Vec<Event>) -> Verdict {
        progress_visible(
            &EventLog::from_events(events),
            FIRST_STATUS_WITHIN_US,
            PROGRESS_EVERY_US,
        )
    }

    /// A query accepted at `t`, started at once, with progress every 5 s until `end`.
    fn reported(id: &str, t: f64, end: f64) -> Vec<Event> {
        let mut out = vec![q(t, "accepted", id), q(t, "started", id)];
        let mut p = t + 5.0;
        while p < end {
            out.push(q(p, "progress", id));
            p += 5.0;
        }
        out.push(q(end, "succeeded", id));
        out
    }

    #[test]
    fn regular_progress_passes() {
        let mut events = reported("a", 0.0, 100.0);
        // Queued for a minute, then run: a queue wait is not a running gap.
        events.extend([
            q(10.0, "accepted", "b"),
            q(10.1, "queued", "b"),
            q(70.0, "started", "b"),
            q(95.0, "progress", "b"),
            q(120.0, "failed", "b"),
        ]);
        events.sort_by_key(|e| e.t_us);
        let v = check(events);
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn a_late_first_status_fails() {
        let v = check(vec![
            q(1.0, "accepted", "a"),
            q(6.5, "started", "a"),
            q(7.0, "succeeded", "a"),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("5.5 s without a status")
        };
        assert_eq!(witness.events[0].name, "accepted");
        assert_eq!(witness.events[1].name, "started");
    }

    #[test]
    fn a_running_gap_fails() {
        let v = check(vec![
            q(0.0, "accepted", "a"),
            q(0.1, "started", "a"),
            q(5.0, "progress", "a"),
            q(40.0, "progress", "a"),
            q(41.0, "succeeded", "a"),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("35 s without progress")
        };
        assert!(
            witness.summary.contains("ran without progress"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.events[0].t_us, 5 * S);
    }

    #[test]
    fn a_query_open_at_the_end_is_judged_to_the_last_event() {
        // Accepted, never a status, and the log goes on 10 s: fails.
        let mut events = reported("b", 0.0, 20.0);
        events.insert(0, q(10.0, "accepted", "a"));
        events.sort_by_key(|e| e.t_us);
        assert_eq!(check(events).word(), "fail");
        // Started, and the log ends 20 s after its last progress: not yet due.
        let events = vec![
            q(0.0, "accepted", "a"),
            q(0.0, "started", "a"),
            q(5.0, "progress", "a"),
            q(25.0, "accepted", "b"),
            q(25.0, "queued", "b"),
        ];
        assert_eq!(check(events).word(), "pass");
    }

    #[test]
    fn a_recovered_query_needs_a_status_again() {
        // Restarted after 20 s down, re-planned and started at once: passes.
        let events = vec![
            q(0.0, "accepted", "a"),
            q(0.0, "started", "a"),
            q(5.0, "progress", "a"),
            q(25.0, "recovered", "a"),
            q(25.0, "started", "a"),
            q(30.0, "succeeded", "a"),
        ];
        assert_eq!(check(events).word(), "pass");
        // Re-planned, and nothing for 10 s: fails.
        let events = vec![
            q(0.0, "accepted", "a"),
            q(0.0, "started", "a"),
            q(5.0, "progress", "a"),
            q(25.0, "recovered", "a"),
            q(35.0, "succeeded", "a"),
        ];
        assert_eq!(check(events).word(), "fail");
    }

    #[test]
    fn no_queries_is_unknown() {
        assert_eq!(check(vec![]).word(), "unknown");
    }
}
