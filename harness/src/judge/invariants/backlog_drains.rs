//! `backlog_drains`: after a freeze of the system's account ends at t1, the backlog waiting then
//! (B lakes of the queries open at t1) drains: every one of those queries succeeds, within
//! `(1 + slack) · B / (μ − λ)`, where μ is the usable rate (lakes per second the provider
//! admits: the scenario's AssumeRole quota, one role per lake) and λ the fresh arrivals during
//! the drain (lakes of queries accepted after t1); and the account is not frozen again while it
//! drains.
//!
//! The trigger is the first thaw of the system's account: the `fault_end` of an
//! `account.freeze` fault, or the provider's `account_thawed`. A query of the backlog that fails, or never ends, fails the
//! check: the work was dropped, not drained. Not checked here: `provider_quota` during the
//! drain (list that invariant as well).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::obj;
use super::vocabulary::{PROVIDER_TARGET, QUERY_TARGET, TASK_TARGET, TERMINAL};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// Slack over the ideal drain time (AWS Builders' Library: s = 0.25).
pub const SLACK: f64 = 0.25;

/// When the first freeze of `account` ended, if one did.
fn thaw(log: &EventLog, account: &str) -> Option<u64> {
    let fault = super::faults::of_kind(log, "account.freeze")
        .into_iter()
        .find(|w| w.str("account") == Some(account))
        .and_then(|w| w.end)
        .map(|e| e.t_us);
    let provider = log
        .of(PROVIDER_TARGET)
        .find(|e| e.name == "account_thawed" && e.str("account") == Some(account))
        .map(|e| e.t_us);
    match (fault, provider) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The sometimes state: `account` thawed while a query of the system was still open, so there
/// was a backlog to drain (a freeze of another account, or one with nothing waiting, is not it).
pub fn sometimes(log: &EventLog, account: &str) -> (bool, &'static str) {
    const STATE: &str = "the system's account thawed with queries still open";
    let Some(t1) = thaw(log, account) else {
        return (false, STATE);
    };
    let mut open = BTreeSet::new();
    for e in log.of(QUERY_TARGET).filter(|e| e.t_us < t1) {
        let Some(id) = e.str("query_id") else {
            continue;
        };
        if e.name == "accepted" {
            open.insert(id);
        } else if TERMINAL.contains(&e.name.as_str()) {
            open.remove(id);
        }
    }
    (!open.is_empty(), STATE)
}

/// Checks the drain after the first thaw of `account`, with `usable_per_s` lakes per second.
pub fn backlog_drains(
    log: &EventLog,
    account: &str,
    usable_per_s: Option<f64>,
    slack: f64,
) -> Verdict {
    let Some(t1) = thaw(log, account) else {
        return Verdict::Unknown {
            why: format!("account {account} was never frozen and thawed: no backlog to drain"),
        };
    };
    let Some(mu) = usable_per_s.filter(|m| *m > 0.0) else {
        return Verdict::Unknown {
            why: "no usable rate: the scenario's provider has no AssumeRole quota".into(),
        };
    };
    // Each query: its lakes, when accepted, which lakes were done before t1, how it ended.
    let mut lakes: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut ended: BTreeMap<&str, &Event> = BTreeMap::new();
    for e in log.of(QUERY_TARGET) {
        let Some(id) = e.str("query_id") else {
            continue;
        };
        if e.name == "accepted" {
            lakes.insert(id, (e.u64("lakes").unwrap_or(0), e.t_us));
        } else if TERMINAL.contains(&e.name.as_str()) {
            ended.entry(id).or_insert(e);
        }
    }
    let mut done_before: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for e in log
        .of(TASK_TARGET)
        .filter(|e| e.name == "task_done" && e.t_us < t1)
    {
        if let (Some(id), Some(lake)) = (e.str("query_id"), e.u64("lake")) {
            done_before.entry(id).or_default().insert(lake);
        }
    }
    let open: Vec<&str> = lakes
        .iter()
        .filter(|(id, (_, accepted))| {
            *accepted < t1 && ended.get(*id).is_none_or(|end| end.t_us >= t1)
        })
        .map(|(id, _)| *id)
        .collect();
    let backlog: u64 = open
        .iter()
        .map(|id| {
            let total = lakes[id].0;
            total.saturating_sub(done_before.get(id).map_or(0, |d| d.len() as u64))
        })
        .sum();
    if backlog == 0 {
        return Verdict::Unknown {
            why: format!(
                "nothing was waiting when the freeze ended at t={:.3}s",
                t1 as f64 / 1e6
            ),
        };
    }
    // Every query of the backlog must succeed.
    let lost: Vec<&Event> = open
        .iter()
        .filter_map(|id| ended.get(id).copied())
        .filter(|e| e.name != "succeeded")
        .collect();
    let never = open.iter().filter(|id| !ended.contains_key(*id)).count();
    if !lost.is_empty() || never > 0 {
        return Verdict::Fail {
            witness: Witness {
                summary: format!(
                    "of {} queries waiting when the freeze ended at t={:.3}s, {} did not succeed and {never} never ended: the backlog was dropped, not drained",
                    open.len(),
                    t1 as f64 / 1e6,
                    lost.len()
                ),
                counts: obj(
                    json!({ "backlog_lakes": backlog, "failed": lost.len(), "never_ended": never }),
                ),
                events: lost.into_iter().take(WITNESS_EVENTS).cloned().collect(),
            },
        };
    }
    let drained_at = open.iter().map(|id| ended[id].t_us).max().unwrap_or(t1);
    let drain_s = (drained_at - t1) as f64 / 1e6;
    let fresh: u64 = lakes
        .values()
        .filter(|(_, accepted)| (t1..drained_at).contains(accepted))
        .map(|(n, _)| *n)
        .sum();
    let lambda = if drain_s > 0.0 {
        fresh as f64 / drain_s
    } else {
        0.0
    };
    if lambda >= mu {
        return Verdict::Unknown {
            why: format!(
                "fresh arrivals ({lambda:.1} lakes/s) outpace the usable rate ({mu:.1}/s): no drain can be promised"
            ),
        };
    }
    let bound_s = (1.0 + slack) * backlog as f64 / (mu - lambda);
    let refrozen: Vec<&Event> = log
        .of(PROVIDER_TARGET)
        .filter(|e| e.name == "account_frozen" && e.str("account") == Some(account))
        .filter(|e| (t1..=drained_at).contains(&e.t_us))
        .collect();
    let c = obj(json!({
        "backlog_lakes": backlog,
        "queries": open.len(),
        "drain_ms": drained_at.saturating_sub(t1) / 1000,
        "bound_ms": (bound_s * 1000.0) as u64,
        "fresh_lakes": fresh,
    }));
    if !refrozen.is_empty() {
        return Verdict::Fail {
            witness: Witness {
                summary: format!(
                    "the account was frozen again while draining, at t={:.3}s",
                    refrozen[0].t_us as f64 / 1e6
                ),
                counts: c,
                events: refrozen.into_iter().take(WITNESS_EVENTS).cloned().collect(),
            },
        };
    }
    if drain_s > bound_s {
        let last: Vec<Event> = open
            .iter()
            .map(|id| ended[id].clone())
            .filter(|e| e.t_us == drained_at)
            .take(WITNESS_EVENTS)
            .collect();
        return Verdict::Fail {
            witness: Witness {
                summary: format!(
                    "the backlog of {backlog} lakes took {drain_s:.1}s to drain after t={:.3}s, over the bound of {bound_s:.1}s",
                    t1 as f64 / 1e6
                ),
                counts: c,
                events: last,
            },
        };
    }
    Verdict::Pass { counts: c }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{ev, fault_window};
    use super::*;

    const SYS: &str = "100000000001";

    fn freeze(t_s: u64, for_s: u64) -> Vec<Event> {
        let account = [("account", json!(SYS))];
        fault_window(0, "account.freeze", (t_s, Some(t_s + for_s)), &account)
    }

    fn query(t_s: u64, id: &str, name: &str, lakes: u64) -> Event {
        ev(
            t_s * 1_000_000,
            "c",
            QUERY_TARGET,
            name,
            &[("query_id", json!(id)), ("lakes", json!(lakes))],
        )
    }

    fn done(t_s: u64, id: &str, lake: u64) -> Event {
        ev(
            t_s * 1_000_000,
            "w",
            TASK_TARGET,
            "task_done",
            &[("query_id", json!(id)), ("lake", json!(lake))],
        )
    }

    #[test]
    fn a_backlog_that_succeeds_in_time_passes_and_one_dropped_fails() {
        // 100 lakes accepted at 10 s, 20 done before the freeze (20 s to 80 s); 80 wait.
        let mut events = vec![query(10, "q", "accepted", 100)];
        events.extend(freeze(20, 60));
        events.extend((0..20).map(|l| done(15, "q", l)));
        let ok = {
            let mut e = events.clone();
            e.push(query(90, "q", "succeeded", 100));
            EventLog::from_events(sort(e))
        };
        let v = backlog_drains(&ok, SYS, Some(10.0), SLACK);
        // 80 lakes at 10/s: 8 s ideal, 10 s bound; it took 10 s.
        assert_eq!(v.word(), "pass", "{v:?}");
        let slow = {
            let mut e = events.clone();
            e.push(query(95, "q", "succeeded", 100));
            EventLog::from_events(sort(e))
        };
        assert_eq!(backlog_drains(&slow, SYS, Some(10.0), SLACK).word(), "fail");
        let dropped = {
            let mut e = events.clone();
            e.push(query(85, "q", "failed", 100));
            EventLog::from_events(sort(e))
        };
        let Verdict::Fail { witness } = backlog_drains(&dropped, SYS, Some(10.0), SLACK) else {
            panic!("a failed backlog query fails the check")
        };
        assert!(witness.summary.contains("dropped"));
        let refrozen = {
            let mut e = events.clone();
            e.push(ev(
                85_000_000,
                "p",
                PROVIDER_TARGET,
                "account_frozen",
                &[("account", json!(SYS))],
            ));
            e.push(query(88, "q", "succeeded", 100));
            EventLog::from_events(sort(e))
        };
        assert_eq!(
            backlog_drains(&refrozen, SYS, Some(10.0), SLACK).word(),
            "fail"
        );
    }

    #[test]
    fn the_state_is_a_thaw_with_queries_open() {
        let mut open = vec![query(10, "q", "accepted", 5)];
        open.extend(freeze(20, 60));
        assert!(sometimes(&EventLog::from_events(open.clone()), SYS).0);
        let mut done = open;
        done.insert(1, query(15, "q", "succeeded", 5));
        assert!(!sometimes(&EventLog::from_events(sort(done)), SYS).0);
        let mut other = vec![query(10, "q", "accepted", 5)];
        other.extend(fault_window(
            0,
            "account.freeze",
            (20, Some(80)),
            &[("account", json!("200000000001"))],
        ));
        assert!(!sometimes(&EventLog::from_events(other), SYS).0);
    }

    #[test]
    fn no_freeze_or_no_backlog_is_unknown() {
        let quiet = EventLog::from_events(vec![
            query(1, "q", "accepted", 5),
            query(2, "q", "succeeded", 5),
        ]);
        assert_eq!(
            backlog_drains(&quiet, SYS, Some(10.0), SLACK).word(),
            "unknown"
        );
        let idle = EventLog::from_events(freeze(1, 5));
        assert_eq!(
            backlog_drains(&idle, SYS, Some(10.0), SLACK).word(),
            "unknown"
        );
    }

    fn sort(mut e: Vec<Event>) -> Vec<Event> {
        e.sort_by_key(|e| e.t_us);
        e
    }
}
