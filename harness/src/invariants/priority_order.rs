//! `priority_order`: admission never lets a batch query overtake an interactive one on the same
//! coordinator (no priority inversion).
//!
//! Checks: the `stampede::query` `accepted` events (with `priority`: 1 interactive, 0 batch) and
//! each query's first `started`, both on the same coordinator host. It fails when a batch query
//! accepted strictly later than an interactive query on that host started strictly before it:
//! the interactive query waited in the admission queue while a batch one that came after it
//! went first. Unknown when no query was `queued`: admission never made anyone wait, so the
//! order of the queue was never tested.
//!
//! Does not check: queries that never started (cancelled, shed or timed out while queued) or
//! that a restarted coordinator re-planned (`recovered`), nor the catalogue's shed rate by
//! priority and interactive goodput against demand. Admission may also order by tenant within
//! a priority; that order is not checked here.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::obj;
use super::time::secs;
use super::vocabulary::QUERY_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The `priority` of an interactive query.
pub const INTERACTIVE: u64 = 1;

/// One query on its coordinator: accepted, started.
struct Query<'a> {
    accepted: &'a Event,
    started: &'a Event,
    interactive: bool,
}

/// Checks that no batch query accepted after an interactive one starts before it.
pub fn priority_order(log: &EventLog) -> Verdict {
    let queued = log.of(QUERY_TARGET).filter(|e| e.name == "queued").count() as u64;
    if queued == 0 {
        return Verdict::Unknown {
            why: "no query was queued: admission never made one wait".into(),
        };
    }
    let mut accepted: BTreeMap<&str, &Event> = BTreeMap::new();
    let mut started: BTreeMap<&str, &Event> = BTreeMap::new();
    let mut recovered: BTreeSet<&str> = BTreeSet::new();
    for e in log.of(QUERY_TARGET) {
        let Some(id) = e.str("query_id") else {
            continue;
        };
        match e.name.as_str() {
            "accepted" => {
                accepted.entry(id).or_insert(e);
            }
            "started" => {
                started.entry(id).or_insert(e);
            }
            "recovered" => {
                recovered.insert(id);
            }
            _ => {}
        }
    }
    // Per coordinator: its queries in the order they were accepted.
    let mut hosts: BTreeMap<&str, Vec<Query<'_>>> = BTreeMap::new();
    for (id, a) in &accepted {
        let Some(s) = started.get(id) else { continue };
        if recovered.contains(id) || s.host != a.host {
            continue;
        }
        hosts.entry(a.host.as_str()).or_default().push(Query {
            accepted: a,
            started: s,
            interactive: a.u64("priority") == Some(INTERACTIVE),
        });
    }
    let (mut compared, mut inversions) = (0u64, 0u64);
    let mut first: Option<(&Query<'_>, &Query<'_>)> = None;
    for queries in hosts.values_mut() {
        queries.sort_by_key(|q| (q.accepted.t_us, q.started.t_us));
        compared += queries.len() as u64;
        // The interactive query accepted so far that started last, among those accepted
        // strictly earlier than the current one.
        let mut latest: Option<&Query<'_>> = None;
        let mut i = 0;
        while i < queries.len() {
            let t = queries[i].accepted.t_us;
            let mut j = i;
            while j < queries.len() && queries[j].accepted.t_us == t {
                let b = &queries[j];
                if !b.interactive
                    && let Some(iq) = latest
                    && iq.started.t_us > b.started.t_us
                {
                    inversions += 1;
                    if first.is_none_or(|(_, fb)| b.started.t_us < fb.started.t_us) {
                        first = Some((iq, b));
                    }
                }
                j += 1;
            }
            for q in &queries[i..j] {
                if q.interactive && latest.is_none_or(|l| q.started.t_us > l.started.t_us) {
                    latest = Some(q);
                }
            }
            i = j;
        }
    }
    let Some((iq, b)) = first else {
        return Verdict::Pass {
            counts: obj(json!({ "queries": compared, "queued": queued })),
        };
    };
    let mut events = vec![iq.accepted, b.accepted, b.started, iq.started];
    events.sort_by_key(|e| e.t_us);
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "on {}, batch query {} accepted at {} started at {}, before interactive query {} accepted earlier at {} started at {} ({inversions} batch queries overtook an interactive one)",
                b.accepted.host,
                b.accepted.str("query_id").unwrap_or("?"),
                secs(b.accepted.t_us),
                secs(b.started.t_us),
                iq.accepted.str("query_id").unwrap_or("?"),
                secs(iq.accepted.t_us),
                secs(iq.started.t_us)
            ),
            counts: obj(json!({
                "inversions": inversions, "queries": compared, "queued": queued,
            })),
            events: events.into_iter().take(WITNESS_EVENTS).cloned().collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::test_support::ev;

    fn q(t_s: u64, host: &str, name: &str, id: &str, priority: Option<u64>) -> Event {
        let mut fields = vec![("query_id", json!(id))];
        if let Some(p) = priority {
            fields.push(("priority", json!(p)));
        }
        ev(t_s * 1_000_000, host, QUERY_TARGET, name, &fields)
    }

    fn log(mut events: Vec<Event>) -> EventLog {
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn interactive_first_passes() {
        let v = priority_order(&log(vec![
            q(1, "c1", "accepted", "b1", Some(0)),
            q(1, "c1", "queued", "b1", None),
            q(2, "c1", "accepted", "i1", Some(1)),
            q(2, "c1", "queued", "i1", None),
            q(5, "c1", "started", "i1", None),
            q(6, "c1", "started", "b1", None),
            // A later batch query on another coordinator may start first.
            q(3, "c2", "accepted", "b2", Some(0)),
            q(4, "c2", "started", "b2", None),
        ]));
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn a_batch_query_overtaking_fails() {
        let Verdict::Fail { witness } = priority_order(&log(vec![
            q(1, "c1", "accepted", "i1", Some(1)),
            q(1, "c1", "queued", "i1", None),
            q(2, "c1", "accepted", "b1", Some(0)),
            q(3, "c1", "started", "b1", None),
            q(4, "c1", "started", "i1", None),
        ])) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["inversions"], json!(1));
        assert_eq!(witness.events.len(), 4);
        assert!(witness.summary.contains("b1"), "{}", witness.summary);
    }

    #[test]
    fn nothing_queued_is_unknown() {
        let v = priority_order(&log(vec![
            q(1, "c1", "accepted", "i1", Some(1)),
            q(2, "c1", "accepted", "b1", Some(0)),
            q(3, "c1", "started", "b1", None),
            q(4, "c1", "started", "i1", None),
        ]));
        assert_eq!(v.word(), "unknown");
    }
}
