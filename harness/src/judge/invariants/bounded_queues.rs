//! `bounded_queues`: on every coordinator, the queries running and the queries waiting for
//! admission stay within the system's configured limits (`max_running_queries`,
//! `max_queued_queries`) at all times, whether or not admission control is switched on: a
//! system without it simply has nothing holding it to them.
//!
//! Reads the coordinators' `admission` gauge, logged whenever either number changes: a
//! self-report, and the only exact one. The replay client learns that a query ended only at
//! its next poll (up to a second later), so its count of queries open would overstate a full
//! coordinator by those that just ended; the provider sees the calls of tasks, which go on in
//! the workers after their query ended, not the queries a coordinator runs. Not checked: the workers' in-flight tasks (bounded by construction, `task_concurrency`), memory,
//! and the durable task queue, whose backlog is meant to grow.

use std::collections::BTreeMap;

use serde_json::json;

use super::obj;
use super::vocabulary::QUERY_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// Checks every `admission` gauge against `max_running` and `max_queued`.
pub fn bounded_queues(log: &EventLog, max_running: u64, max_queued: u64) -> Verdict {
    let gauges: Vec<&Event> = log
        .of(QUERY_TARGET)
        .filter(|e| e.name == "admission")
        .collect();
    if gauges.is_empty() {
        return Verdict::Unknown {
            why: "no coordinator admitted a query".into(),
        };
    }
    let mut peak: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut over: Vec<&Event> = Vec::new();
    for e in &gauges {
        let (running, queued) = (e.u64("running").unwrap_or(0), e.u64("queued").unwrap_or(0));
        let p = peak.entry(e.host.as_str()).or_default();
        *p = (p.0.max(running), p.1.max(queued));
        if running > max_running || queued > max_queued {
            over.push(e);
        }
    }
    let (peak_running, peak_queued) = peak
        .values()
        .fold((0, 0), |a, p| (a.0.max(p.0), a.1.max(p.1)));
    let counts = obj(json!({
        "peak_running": peak_running,
        "peak_queued": peak_queued,
        "max_running": max_running,
        "max_queued": max_queued,
    }));
    let Some(first) = over.first() else {
        return Verdict::Pass { counts };
    };
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{} ran {} queries with {} waiting at t={:.3}s, over the limits of {max_running} running and {max_queued} waiting",
                first.host,
                first.u64("running").unwrap_or(0),
                first.u64("queued").unwrap_or(0),
                first.t_us as f64 / 1e6
            ),
            counts,
            events: over.into_iter().take(WITNESS_EVENTS).cloned().collect(),
        },
    }
}

/// Sometimes: a coordinator ran as many queries at once as its limit allows, so the limit
/// mattered. Read from the coordinators' own `admission` gauge, the only record of what runs.
pub fn sometimes(log: &EventLog, max_running: u64) -> (bool, &'static str) {
    (
        log.of(QUERY_TARGET).any(|e| {
            e.name == "admission" && e.u64("running").is_some_and(|r| r >= max_running.max(1))
        }),
        "a coordinator ran as many queries at once as its limit allows",
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_support::ev;
    use super::*;

    fn gauge(t: u64, running: u64, queued: u64) -> Event {
        ev(
            t,
            "coordinator-a",
            QUERY_TARGET,
            "admission",
            &[("running", json!(running)), ("queued", json!(queued))],
        )
    }

    #[test]
    fn within_limits_passes_over_them_fails_none_is_unknown() {
        let ok = EventLog::from_events(vec![gauge(1, 4, 0), gauge(2, 4, 64), gauge(3, 1, 0)]);
        assert_eq!(bounded_queues(&ok, 4, 64).word(), "pass");
        let over = EventLog::from_events(vec![gauge(1, 4, 0), gauge(2, 9, 0)]);
        let Verdict::Fail { witness } = bounded_queues(&over, 4, 64) else {
            panic!("9 running over a limit of 4")
        };
        assert_eq!(witness.events[0].t_us, 2);
        assert_eq!(
            bounded_queues(&EventLog::from_events(vec![]), 4, 64).word(),
            "unknown"
        );
    }
}
