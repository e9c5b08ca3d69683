//! `invalid_sql_costs_nothing`: a query whose SQL is invalid causes no provider call.
//!
//! Evidence, none of it the system's word: which queries were invalid comes from the replay
//! client (`submitted` carries `sql_valid`, the client's own check of the SQL it sends: planned
//! by a DataFusion session of its own against the schema the lakes' data is written with, not
//! by the system's validator, `world::traffic::sql_is_valid`); which query id each got comes from the client too (`accepted`, or
//! `answered`, with `query_id`); and what each cost comes from the provider's log, where every
//! system call carries the `query_id` the system's guard sent with it.
//!
//! Checks: no system provider call carries the id of a query whose SQL was invalid. Fails with
//! the calls charged to such queries (counts per query and the first calls). An invalid query
//! refused before acceptance has no id, so nothing can be charged to it: the check counts
//! those as costing nothing, and cannot see calls a system might make on a query's behalf
//! before refusing it without an id (this system makes none).
//!
//! Unknown when the client submitted no invalid SQL (or its log does not say which SQL was
//! valid): then the check proves nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::calls::is_system_call;
use super::obj;
use super::time::secs;
use super::vocabulary::{PROVIDER_TARGET, TRAFFIC_TARGET};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The client's submissions whose SQL was invalid, by `seq`.
pub fn invalid_submissions(log: &EventLog) -> BTreeSet<u64> {
    log.of(TRAFFIC_TARGET)
        .filter(|e| e.name == "submitted" && e.bool("sql_valid") == Some(false))
        .filter_map(|e| e.u64("seq"))
        .collect()
}

/// Checks that no provider call works for a query whose SQL was invalid.
pub fn invalid_sql_costs_nothing(log: &EventLog) -> Verdict {
    let invalid = invalid_submissions(log);
    if invalid.is_empty() {
        return Verdict::Unknown {
            why: "the client submitted no query with invalid SQL (or did not say which were)"
                .into(),
        };
    }
    // The ids the system gave the invalid queries, as the client heard them.
    let mut ids: BTreeMap<&str, u64> = BTreeMap::new();
    for e in log.of(TRAFFIC_TARGET) {
        if !matches!(e.name.as_str(), "accepted" | "answered") {
            continue;
        }
        if let (Some(seq), Some(id)) = (e.u64("seq"), e.str("query_id"))
            && invalid.contains(&seq)
            && !id.is_empty()
        {
            ids.insert(id, seq);
        }
    }
    let charged: Vec<&Event> = log
        .of(PROVIDER_TARGET)
        .filter(|e| is_system_call(e))
        .filter(|e| e.str("query_id").is_some_and(|q| ids.contains_key(q)))
        .collect();
    let counts = json!({
        "invalid_submitted": invalid.len(),
        "invalid_accepted": ids.len(),
        "calls_for_invalid": charged.len(),
    });
    let Some(first) = charged.first() else {
        return Verdict::Pass {
            counts: obj(counts),
        };
    };
    let queries: BTreeSet<&str> = charged.iter().filter_map(|e| e.str("query_id")).collect();
    let mut counts = obj(counts);
    counts.insert("queries_charged".into(), queries.len().into());
    let apis: BTreeSet<&str> = charged.iter().filter_map(|e| e.str("api")).collect();
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{} provider calls ({}) worked for {} of {} queries whose SQL was invalid; the first, {} {} for {} at {}",
                charged.len(),
                apis.into_iter().collect::<Vec<_>>().join(", "),
                queries.len(),
                invalid.len(),
                first.str("api").unwrap_or("?"),
                first.str("resource").unwrap_or(""),
                first.str("query_id").unwrap_or("?"),
                secs(first.t_us),
            ),
            counts,
            events: charged.into_iter().take(WITNESS_EVENTS).cloned().collect(),
        },
    }
}

/// Sometimes: the client submitted a query whose SQL was invalid.
pub fn reached(log: &EventLog) -> bool {
    !invalid_submissions(log).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::{ev, submitted_with, system_call};

    fn submitted(t_us: u64, seq: u64, valid: bool) -> Event {
        submitted_with(t_us, seq, &[("sql_valid", json!(valid))])
    }

    fn accepted(t_us: u64, seq: u64, id: &str) -> Event {
        ev(
            t_us,
            "traffic",
            TRAFFIC_TARGET,
            "accepted",
            &[("seq", json!(seq)), ("query_id", json!(id))],
        )
    }

    fn refused(t_us: u64, seq: u64) -> Event {
        ev(
            t_us,
            "traffic",
            TRAFFIC_TARGET,
            "refused",
            &[
                ("seq", json!(seq)),
                ("status", json!(400)),
                ("retry_after_s", json!(0)),
                ("error", json!("invalid SQL at line 1, column 8")),
            ],
        )
    }

    /// A provider call of the system for query `query_id`.
    fn call(t_us: u64, api: &str, query_id: &str) -> Event {
        system_call(
            t_us,
            &[
                ("api", json!(api)),
                ("op", json!("worker-r-0#1.7")),
                ("attempt", json!(1)),
                ("query_id", json!(query_id)),
            ],
        )
    }

    #[test]
    fn refused_invalid_sql_and_calls_for_valid_queries_pass() {
        let log = EventLog::from_events(vec![
            submitted(1_000, 0, false),
            refused(2_000, 0),
            submitted(3_000, 1, true),
            accepted(4_000, 1, "c-q0"),
            call(5_000, "AssumeRole", "c-q0"),
        ]);
        let v = invalid_sql_costs_nothing(&log);
        assert_eq!(v.word(), "pass", "{v:?}");
        assert!(reached(&log));
    }

    #[test]
    fn calls_for_an_accepted_invalid_query_fail() {
        let log = EventLog::from_events(vec![
            submitted(1_000, 0, false),
            accepted(2_000, 0, "c-q0"),
            submitted(2_500, 1, true),
            accepted(2_600, 1, "c-q1"),
            call(3_000, "AssumeRole", "c-q0"),
            call(4_000, "GetTable", "c-q0"),
            call(4_500, "GetTable", "c-q1"),
        ]);
        let Verdict::Fail { witness } = invalid_sql_costs_nothing(&log) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["calls_for_invalid"], json!(2));
        assert_eq!(witness.counts["queries_charged"], json!(1));
        assert_eq!(witness.events.len(), 2);
        assert!(witness.summary.contains("c-q0"), "{}", witness.summary);
    }

    #[test]
    fn an_invalid_query_accepted_but_costing_nothing_passes() {
        let log =
            EventLog::from_events(vec![submitted(1_000, 0, false), accepted(2_000, 0, "c-q0")]);
        assert_eq!(invalid_sql_costs_nothing(&log).word(), "pass");
    }

    #[test]
    fn without_invalid_sql_it_is_unknown() {
        let log = EventLog::from_events(vec![
            submitted(1_000, 0, true),
            accepted(2_000, 0, "c-q0"),
            call(3_000, "AssumeRole", "c-q0"),
        ]);
        assert_eq!(invalid_sql_costs_nothing(&log).word(), "unknown");
        assert!(!reached(&log));
    }
}
