//! `no_lost_queries`: every accepted query ends exactly once, and nothing ends that was never
//! accepted.

use std::collections::BTreeMap;

use serde_json::json;

use super::obj;
use super::vocabulary::{QUERY_TARGET, TERMINAL};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// Checks that every `accepted` query has exactly one terminal event, that no terminal event
/// belongs to a query never accepted, and that none is still open at the end of the log.
pub fn no_lost_queries(log: &EventLog) -> Verdict {
    #[derive(Default)]
    struct Life<'a> {
        accepted: Option<&'a Event>,
        terminals: Vec<&'a Event>,
    }
    let mut lives: BTreeMap<&str, Life<'_>> = BTreeMap::new();
    let mut offending: Vec<&Event> = Vec::new();
    let (mut doubled, mut orphaned) = (0u64, 0u64);
    for e in log.of(QUERY_TARGET) {
        let Some(id) = e.str("query_id") else {
            continue;
        };
        let life = lives.entry(id).or_default();
        if e.name == "accepted" {
            if life.accepted.is_some() {
                doubled += 1;
                offending.push(e);
            }
            life.accepted.get_or_insert(e);
        } else if TERMINAL.contains(&e.name.as_str()) {
            if life.accepted.is_none() {
                orphaned += 1;
                offending.push(e);
            } else if !life.terminals.is_empty() {
                doubled += 1;
                offending.push(e);
            }
            life.terminals.push(e);
        }
    }
    let accepted = lives.values().filter(|l| l.accepted.is_some()).count() as u64;
    let open: Vec<&Event> = lives
        .values()
        .filter(|l| l.terminals.is_empty())
        .filter_map(|l| l.accepted)
        .collect();
    let terminal = accepted - open.len() as u64;
    if open.is_empty() && doubled == 0 && orphaned == 0 {
        return Verdict::Pass {
            counts: obj(json!({ "accepted": accepted, "terminal": terminal })),
        };
    }
    offending.extend(open.iter().copied());
    offending.sort_by_key(|e| e.t_us);
    let summary = format!(
        "{} accepted queries never ended, {doubled} ended or were accepted twice, {orphaned} ended without being accepted",
        open.len()
    );
    let counts = obj(json!({
        "accepted": accepted, "terminal": terminal, "open": open.len(),
        "doubled": doubled, "orphaned": orphaned,
    }));
    Verdict::Fail {
        witness: Witness {
            summary,
            counts,
            events: offending
                .into_iter()
                .take(WITNESS_EVENTS)
                .cloned()
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, name: &str, id: &str) -> Event {
        Event {
            t_us: t,
            host: "worker".into(),
            target: QUERY_TARGET.into(),
            name: name.into(),
            fields: [("query_id".to_string(), json!(id))].into_iter().collect(),
        }
    }

    fn check(events: Vec<Event>, expect: &str) {
        let v = no_lost_queries(&EventLog::from_events(events));
        assert_eq!(v.word(), expect, "{v:?}");
    }

    #[test]
    fn each_accepted_query_ending_once_passes() {
        check(
            vec![
                ev(1, "accepted", "a"),
                ev(2, "accepted", "b"),
                ev(3, "failed", "b"),
                ev(4, "succeeded", "a"),
            ],
            "pass",
        );
    }

    #[test]
    fn an_open_query_fails_with_it_as_witness() {
        let v = no_lost_queries(&EventLog::from_events(vec![
            ev(1, "accepted", "a"),
            ev(2, "accepted", "b"),
            ev(3, "succeeded", "a"),
        ]));
        let Verdict::Fail { witness } = v else {
            panic!("{v:?}")
        };
        assert_eq!(witness.counts["open"], json!(1));
        assert_eq!(witness.events[0].str("query_id"), Some("b"));
    }

    #[test]
    fn ending_twice_fails() {
        check(
            vec![
                ev(1, "accepted", "a"),
                ev(2, "succeeded", "a"),
                ev(3, "failed", "a"),
            ],
            "fail",
        );
    }

    #[test]
    fn ending_without_acceptance_fails() {
        check(vec![ev(1, "succeeded", "a")], "fail");
    }

    #[test]
    fn empty_log_passes() {
        check(vec![], "pass");
    }
}
