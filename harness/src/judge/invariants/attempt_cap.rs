//! `attempt_cap`: no logical operation is tried more than N times, whichever layers retry it.
//!
//! Evidence: the provider's log, not the retry layers' own reports. A logical operation is
//! what [`logical_operations`] makes of the calls: an AWS SDK invocation (`sdk_invocation`, the
//! same on each of the SDK's own attempts, each of which the guard may retry under it), or, for
//! a call outside the SDK (`object_store`'s S3 calls, IMDS), the guard's operation (`op`, the
//! same on each of the guard's attempts); and, for work on a task, the same operation in every
//! delivery of the task's message (`task_message`, `receive`), since the queue's redelivery runs the
//! task again. Its attempts are the provider calls that carry it: every try that reached the
//! provider, made by whichever layer. Fails when an operation has more than `max_attempts`
//! calls; the witness is the operation that first went over, with its calls.
//!
//! Unknown when no system call names its operation (the system's layers are not visible).
//!
//! Does not count tries that never reached the provider (a request lost on the network).

use std::collections::BTreeMap;

use serde_json::json;

use super::obj;
use super::operations::logical_operations;
use super::time::secs;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The most attempts one operation may get.
pub const MAX_ATTEMPTS: u64 = 3;

/// The system's calls by logical operation.
fn operations(log: &EventLog) -> BTreeMap<String, Vec<&Event>> {
    logical_operations(log)
        .into_iter()
        .map(|(key, l)| (key, l.calls))
        .collect()
}

/// Checks that no logical operation reached the provider more than `max_attempts` times.
pub fn attempt_cap(log: &EventLog, max_attempts: u64) -> Verdict {
    let ops = operations(log);
    if ops.is_empty() {
        return Verdict::Unknown {
            why: "no provider call names its operation: the system's retry layers are not visible"
                .into(),
        };
    }
    let highest = ops.values().map(Vec::len).max().unwrap_or(0);
    let retried = ops.values().filter(|calls| calls.len() > 1).count();
    let over: Vec<(&str, &Vec<&Event>)> = ops
        .iter()
        .filter(|(_, calls)| calls.len() as u64 > max_attempts)
        .map(|(op, calls)| (op.as_str(), calls))
        .collect();
    // The operation whose cap-breaking attempt came first.
    let Some((op, calls)) = over
        .iter()
        .min_by_key(|(_, calls)| calls[max_attempts as usize].t_us)
        .copied()
    else {
        return Verdict::Pass {
            counts: obj(json!({
                "operations": ops.len(), "retried": retried, "highest_attempts": highest,
            })),
        };
    };
    let breaking = calls[max_attempts as usize];
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{} operations were tried more than {max_attempts} times; the first, {op} ({} {}), reached its attempt {} at {} and was tried {} times in all (the most: {highest})",
                over.len(),
                breaking.str("api").unwrap_or("?"),
                breaking.str("resource").unwrap_or(""),
                max_attempts + 1,
                secs(breaking.t_us),
                calls.len(),
            ),
            counts: obj(json!({
                "operations": ops.len(), "operations_over_cap": over.len(),
                "retried": retried, "highest_attempts": highest, "operation": op,
            })),
            events: calls
                .iter()
                .take(WITNESS_EVENTS)
                .map(|e| (*e).clone())
                .collect(),
        },
    }
}

/// Sometimes: some logical operation reached the provider more than once.
pub fn sometimes(log: &EventLog) -> (bool, &'static str) {
    (
        operations(log).values().any(|calls| calls.len() > 1),
        "an operation was tried more than once at the provider",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::system_call;

    /// A failed call of operation `op`, attempt `attempt`, SDK attempt `sdk_attempt` of SDK
    /// invocation `invocation`.
    fn call(t_us: u64, op: &str, attempt: u64, sdk_attempt: u64, invocation: &str) -> Event {
        system_call(
            t_us,
            &[
                ("outcome", json!("error")),
                ("op", json!(op)),
                ("attempt", json!(attempt)),
                ("sdk_attempt", json!(sdk_attempt)),
                ("sdk_invocation", json!(invocation)),
            ],
        )
    }

    #[test]
    fn three_tries_at_either_layer_pass() {
        let log = EventLog::from_events(vec![
            // The guard tries three times within one SDK attempt.
            call(1, "w#0.1", 1, 1, "w#0/1"),
            call(2, "w#0.1", 2, 1, "w#0/1"),
            call(3, "w#0.1", 3, 1, "w#0/1"),
            // object_store: the guard's operation alone.
            call(4, "w#0.2", 1, 0, ""),
            call(5, "w#0.2", 2, 0, ""),
            // One try, no retry.
            call(6, "w#0.3", 1, 1, "w#0/2"),
            // A background call: no operation.
            call(7, "", 0, 0, ""),
        ]);
        let Verdict::Pass { counts } = attempt_cap(&log, MAX_ATTEMPTS) else {
            panic!("must pass")
        };
        assert_eq!(counts["operations"], json!(3));
        assert_eq!(counts["retried"], json!(2));
        assert_eq!(counts["highest_attempts"], json!(3));
        assert!(sometimes(&log).0);
    }

    #[test]
    fn the_layers_attempts_multiply_and_fail() {
        // Two SDK attempts, each retried twice by the guard: four tries of one invocation,
        // though neither layer went past its own cap.
        let log = EventLog::from_events(vec![
            call(10, "w#0.1", 1, 1, "w#0/7"),
            call(20, "w#0.1", 2, 1, "w#0/7"),
            call(30, "w#0.2", 1, 2, "w#0/7"),
            call(40, "w#0.2", 2, 2, "w#0/7"),
            call(50, "w#0.3", 1, 1, "w#0/8"),
        ]);
        let Verdict::Fail { witness } = attempt_cap(&log, MAX_ATTEMPTS) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["operation"], json!("w#0/7"));
        assert_eq!(witness.counts["highest_attempts"], json!(4));
        assert_eq!(witness.events.len(), 4);
        assert!(witness.summary.contains("at 0.000s"), "{}", witness.summary);
    }

    #[test]
    fn one_layer_past_the_cap_fails() {
        let log = EventLog::from_events((1..=5).map(|a| call(a * 10, "w#0.4", a, 0, "")).collect());
        let Verdict::Fail { witness } = attempt_cap(&log, MAX_ATTEMPTS) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["operations_over_cap"], json!(1));
        assert_eq!(attempt_cap(&log, 5).word(), "pass");
    }

    #[test]
    fn operations_tried_once_do_not_reach_the_sometimes_state() {
        let log = EventLog::from_events(vec![
            call(1, "w#0.1", 1, 1, "w#0/1"),
            call(2, "w#0.2", 1, 0, ""),
        ]);
        assert_eq!(attempt_cap(&log, MAX_ATTEMPTS).word(), "pass");
        assert!(!sometimes(&log).0);
    }

    #[test]
    fn a_task_the_queue_hands_out_again_adds_its_tries() {
        let task = |t, op: &str, attempt, receive| {
            let mut e = call(t, op, attempt, 0, "");
            e.fields.insert("task_message".into(), json!("m-2"));
            e.fields.insert("receive".into(), json!(receive));
            e
        };
        // Three deliveries, each reading once: three tries in all.
        let once: Vec<Event> = (1..=3)
            .map(|r| task(r * 100, &format!("w#{r}.1"), 1, r))
            .collect();
        assert_eq!(
            attempt_cap(&EventLog::from_events(once), MAX_ATTEMPTS).word(),
            "pass"
        );
        // Two deliveries, each with two tries by the guard: four.
        let log = EventLog::from_events(vec![
            task(100, "w#1.1", 1, 1),
            task(110, "w#1.1", 2, 1),
            task(200, "w#2.1", 1, 2),
            task(210, "w#2.1", 2, 2),
        ]);
        let Verdict::Fail { witness } = attempt_cap(&log, MAX_ATTEMPTS) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["highest_attempts"], json!(4));
        assert_eq!(witness.events.len(), 4);
    }

    #[test]
    fn without_operations_it_is_unknown() {
        let log = EventLog::from_events(vec![call(1, "", 0, 2, "")]);
        assert_eq!(attempt_cap(&log, MAX_ATTEMPTS).word(), "unknown");
        assert!(!sometimes(&log).0);
    }
}
