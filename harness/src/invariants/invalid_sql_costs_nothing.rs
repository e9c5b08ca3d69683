//! `invalid_sql_costs_nothing`: a query whose SQL is invalid causes no provider call.
//!
//! Checks: every `stampede::query` `refused` event with reason `invalid_sql` passes by
//! construction: the coordinator refuses before it accepts, so there is no query id, no task
//! and nothing to attribute a provider call to. The check fails when a query was accepted
//! although its SQL was invalid: a `failed` query whose `error` contains `SQL`, `Schema error`
//! or `Plan` (the parser's, the schema's and the planner's errors), since an accepted query's
//! tasks went to the queues and spent provider calls on its lakes before the error surfaced.
//!
//! Does not check: provider calls themselves. Calls carry no query id, so a refused query that
//! somehow called the provider cannot be seen, and a failed query is judged by its error text
//! alone (an error that names SQL for another reason fails it too, and invalid SQL reported in
//! other words passes). Unknown when the log holds neither an `invalid_sql` refusal nor such a
//! failure: no invalid SQL was submitted, so the check proves nothing.

use serde_json::json;

use super::obj;
use super::time::secs;
use super::vocabulary::QUERY_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// Error texts that say the SQL itself was invalid.
pub const INVALID_SQL_ERRORS: [&str; 3] = ["SQL", "Schema error", "Plan"];

/// Checks that invalid SQL is refused before any query (and so any call) exists.
pub fn invalid_sql_costs_nothing(log: &EventLog) -> Verdict {
    let refused = log
        .of(QUERY_TARGET)
        .filter(|e| e.name == "refused" && e.str("reason") == Some("invalid_sql"))
        .count() as u64;
    let accepted: Vec<&Event> = log
        .of(QUERY_TARGET)
        .filter(|e| e.name == "failed")
        .filter(|e| {
            e.str("error")
                .is_some_and(|err| INVALID_SQL_ERRORS.iter().any(|s| err.contains(s)))
        })
        .collect();
    if accepted.is_empty() {
        if refused == 0 {
            return Verdict::Unknown {
                why: "no invalid SQL was submitted: nothing was refused as invalid_sql".into(),
            };
        }
        return Verdict::Pass {
            counts: obj(json!({ "refused_invalid_sql": refused })),
        };
    }
    let first = accepted[0];
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{} queries were accepted with invalid SQL and failed later, the first {} at {} ({}): their tasks spent provider calls",
                accepted.len(),
                first.str("query_id").unwrap_or("?"),
                secs(first.t_us),
                first.str("error").unwrap_or("")
            ),
            counts: obj(json!({
                "accepted_invalid": accepted.len(), "refused_invalid_sql": refused,
            })),
            events: accepted.into_iter().take(WITNESS_EVENTS).cloned().collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::test_support::ev;

    fn refused(t_us: u64, reason: &str) -> Event {
        ev(
            t_us,
            "coordinator-1",
            QUERY_TARGET,
            "refused",
            &[
                ("tenant", json!("t")),
                ("reason", json!(reason)),
                ("line", json!(1)),
                ("column", json!(8)),
            ],
        )
    }

    fn failed(t_us: u64, id: &str, error: &str) -> Event {
        ev(
            t_us,
            "coordinator-1",
            QUERY_TARGET,
            "failed",
            &[("query_id", json!(id)), ("error", json!(error))],
        )
    }

    #[test]
    fn refusals_pass() {
        let log = EventLog::from_events(vec![
            refused(1_000, "invalid_sql"),
            failed(2_000, "q1", "lake 3 unreachable"),
        ]);
        let v = invalid_sql_costs_nothing(&log);
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn an_accepted_invalid_query_fails() {
        let log = EventLog::from_events(vec![
            refused(1_000, "invalid_sql"),
            failed(5_000, "q7", "Schema error: No field named nme"),
            failed(6_000, "q8", "SQL error: ParserError"),
        ]);
        let Verdict::Fail { witness } = invalid_sql_costs_nothing(&log) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["accepted_invalid"], json!(2));
        assert!(witness.summary.contains("q7"), "{}", witness.summary);
    }

    #[test]
    fn no_invalid_sql_is_unknown() {
        let log = EventLog::from_events(vec![refused(1_000, "no_lakes")]);
        assert_eq!(invalid_sql_costs_nothing(&log).word(), "unknown");
    }
}
