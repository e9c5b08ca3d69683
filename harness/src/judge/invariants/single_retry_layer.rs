//! `single_retry_layer`: per operation, at most one layer retries: the AWS SDK's retries, the
//! system's own retry layer (the guard) and the task queue's redelivery must not multiply each
//! other.
//!
//! Checks: the provider `call`s, grouped into logical operations ([`logical_operations`]): by
//! `sdk_invocation` (the SDK invocation the system names, the same across the SDK's own
//! retries) when the call has one, else by `op` (the guard's operation id, the same across the
//! guard's retries); and across the deliveries of one task message (`task_message`, `receive`),
//! the same operation of each delivery. A layer retried an operation when the SDK did (some
//! call's `sdk_attempt` > 1), when the guard did (some call's `attempt` > 1), or when the
//! queue did (its calls name more than one delivery). Fails when an operation was retried by
//! more than `max_layers` layers; the witness is the operation whose first call came first.
//!
//! Unknown: no call has an `op` (the guard's layer is not visible). Calls with neither an
//! `sdk_invocation` nor an `op` (background accounts, real clients) are not operations here.
//! Without invocation ids in the log, an SDK retry starts a new guard operation and shows only
//! on it: the check then sees both layers only when the guard retried within an SDK attempt
//! after the first, not guard retries within the SDK's first attempt. Does not check how many
//! attempts a layer made (`attempt_cap`, `retry_amplification`).

use serde_json::json;

use super::calls::{is_call, is_system_call};
use super::obj;
use super::operations::{Logical, logical_operations};
use super::time::secs;
use super::vocabulary::PROVIDER_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// Parameters of `single_retry_layer`, from the scenario (`invariants: [{single_retry_layer:
/// {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The most layers that may retry one operation. Default 1.
    pub max_layers: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self { max_layers: 1 }
    }
}

/// Checks that no operation was retried by more than `max_layers` layers.
pub fn single_retry_layer(log: &EventLog, p: &Params) -> Verdict {
    let has_op = log.of(PROVIDER_TARGET).any(is_system_call);
    if !has_op {
        return Verdict::Unknown {
            why: "no provider call names its operation: the system's retry layer is not visible"
                .into(),
        };
    }
    let ops = logical_operations(log);
    let (mut sdk_retried, mut guard_retried, mut queue_retried, mut over) = (0u64, 0, 0, 0);
    let mut first: Option<(&str, &Logical<'_>)> = None;
    for (id, o) in &ops {
        sdk_retried += u64::from(o.sdk_retried());
        guard_retried += u64::from(o.guard_retried());
        queue_retried += u64::from(o.queue_retried());
        if o.layers() <= p.max_layers {
            continue;
        }
        over += 1;
        if first.is_none_or(|(_, f)| o.first_start() < f.first_start()) {
            first = Some((id.as_str(), o));
        }
    }
    let mut counts = obj(json!({
        "operations": ops.len(),
        "sdk_retried": sdk_retried,
        "guard_retried": guard_retried,
        "queue_retried": queue_retried,
    }));
    let Some((id, o)) = first else {
        return Verdict::Pass { counts };
    };
    counts.insert("operations_over".into(), over.into());
    counts.insert("operation".into(), id.into());
    counts.insert("calls".into(), o.calls.len().into());
    counts.insert("max_sdk_attempt".into(), o.max_sdk_attempt.into());
    counts.insert("max_attempt".into(), o.max_attempt.into());
    counts.insert("deliveries".into(), o.deliveries.len().into());
    // Show the first call and the first call each layer retried, then the rest in order.
    let mut calls = o.calls.clone();
    calls.sort_by_key(|e| e.t_us);
    let mut shown: Vec<&Event> = vec![calls[0]];
    let retried_by = |key: &str| calls.iter().find(|e| e.u64(key).unwrap_or(0) > 1).copied();
    shown.extend(retried_by("sdk_attempt"));
    shown.extend(retried_by("attempt"));
    let first_receive = calls[0].u64("receive").unwrap_or(0);
    shown.extend(
        calls
            .iter()
            .find(|e| e.u64("receive").unwrap_or(0) != first_receive)
            .copied(),
    );
    for e in &calls {
        if shown.len() >= WITNESS_EVENTS {
            break;
        }
        if !shown.iter().any(|s| std::ptr::eq(*s, *e)) {
            shown.push(e);
        }
    }
    shown.sort_by_key(|e| e.t_us);
    shown.dedup_by(|a, b| std::ptr::eq(*a, *b));
    let mut layers = Vec::new();
    if o.sdk_retried() {
        layers.push(format!("the SDK (attempts up to {})", o.max_sdk_attempt));
    }
    if o.guard_retried() {
        layers.push(format!("the guard (attempts up to {})", o.max_attempt));
    }
    if o.queue_retried() {
        layers.push(format!("the queue ({} deliveries)", o.deliveries.len()));
    }
    let summary = format!(
        "operation {id} from {} was retried by {} over {} calls, over {} layer{}; {over} of {} operations so",
        secs(calls[0].t_us),
        layers.join(" and "),
        o.calls.len(),
        p.max_layers,
        if p.max_layers == 1 { "" } else { "s" },
        ops.len(),
    );
    Verdict::Fail {
        witness: Witness {
            summary,
            counts,
            events: shown.into_iter().cloned().collect(),
        },
    }
}

/// Whether some layer retried a call, so that there was something to stack.
pub fn sometimes(log: &EventLog, _p: &Params) -> (bool, &'static str) {
    let retried = log.of(PROVIDER_TARGET).any(|e| {
        is_call(e)
            && (e.u64("attempt").unwrap_or(0) > 1
                || e.u64("sdk_attempt").unwrap_or(0) > 1
                || e.u64("receive").unwrap_or(0) > 1)
    });
    (retried, "a retry layer retried a provider call")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::system_call;

    fn call(t_us: u64, op: &str, attempt: u64, sdk_attempt: u64, invocation: &str) -> Event {
        system_call(
            t_us,
            &[
                ("service", json!("glue")),
                ("api", json!("GetTable")),
                ("outcome", json!("error")),
                ("op", json!(op)),
                ("attempt", json!(attempt)),
                ("query_id", json!("q1")),
                ("sdk_attempt", json!(sdk_attempt)),
                ("sdk_invocation", json!(invocation)),
            ],
        )
    }

    fn log(mut events: Vec<Event>) -> EventLog {
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn one_layer_retrying_passes() {
        let e = vec![
            // The guard retries, the SDK does not.
            call(10, "w#0.1", 1, 1, "inv-a"),
            call(20, "w#0.1", 2, 1, "inv-a"),
            call(31, "w#0.1", 3, 1, "inv-a"),
            // The SDK retries, each of its attempts one guard attempt.
            call(40, "w#0.2", 1, 1, "inv-b"),
            call(51, "w#0.3", 1, 2, "inv-b"),
            // object_store: no SDK headers, the guard retries.
            call(60, "w#0.4", 1, 0, ""),
            call(71, "w#0.4", 2, 0, ""),
            // A background call: no operation.
            call(80, "", 0, 3, ""),
        ];
        let v = single_retry_layer(&log(e), &Params::default());
        let Verdict::Pass { counts } = v else {
            panic!("must pass: {v:?}")
        };
        assert_eq!(counts["operations"], json!(3));
        assert_eq!(counts["sdk_retried"], json!(1));
        assert_eq!(counts["guard_retried"], json!(2));
    }

    #[test]
    fn both_layers_retrying_one_operation_fails() {
        let e = vec![
            // The SDK's first attempt: the guard tries three times.
            call(100, "w#0.1", 1, 1, "inv-a"),
            call(200, "w#0.1", 2, 1, "inv-a"),
            call(300, "w#0.1", 3, 1, "inv-a"),
            // Its second attempt: three more.
            call(400, "w#0.2", 1, 2, "inv-a"),
            call(500, "w#0.2", 2, 2, "inv-a"),
            call(600, "w#0.2", 3, 2, "inv-a"),
            // Without invocation ids: the guard retries within the SDK's second attempt.
            call(1000, "w#0.3", 1, 2, ""),
            call(1100, "w#0.3", 2, 2, ""),
        ];
        let Verdict::Fail { witness } = single_retry_layer(&log(e), &Params::default()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["operation"], json!("inv-a"));
        assert_eq!(witness.counts["operations_over"], json!(2));
        assert_eq!(witness.counts["max_sdk_attempt"], json!(2));
        assert_eq!(witness.counts["max_attempt"], json!(3));
        assert!(
            witness.summary.starts_with("operation inv-a from 0.000s"),
            "{}",
            witness.summary
        );
        // The first call, the guard's first retry and the SDK's first retry are shown.
        let times: Vec<u64> = witness.events.iter().map(|e| e.t_us).collect();
        assert_eq!(times, vec![100, 200, 300, 400, 500]);
        // Allowing both layers passes.
        let e = vec![call(1, "w#0.1", 1, 2, ""), call(2, "w#0.1", 2, 2, "")];
        let p = Params { max_layers: 2 };
        assert_eq!(single_retry_layer(&log(e), &p).word(), "pass");
    }

    #[test]
    fn the_witness_shows_each_layers_retry() {
        // Many guard retries before the SDK's: the SDK's retry is still shown.
        let mut e: Vec<Event> = (1..=8).map(|a| call(a * 10, "w#0.1", a, 1, "i")).collect();
        e.push(call(1000, "w#0.2", 1, 2, "i"));
        let Verdict::Fail { witness } = single_retry_layer(&log(e), &Params::default()) else {
            panic!("must fail")
        };
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
        assert_eq!(witness.events[0].u64("attempt"), Some(1));
        assert_eq!(witness.events[1].u64("attempt"), Some(2));
        assert_eq!(witness.events[4].u64("sdk_attempt"), Some(2));
    }

    #[test]
    fn no_operation_ids_is_unknown() {
        let e = vec![call(1, "", 0, 1, "inv"), call(2, "", 0, 2, "inv")];
        assert_eq!(
            single_retry_layer(&log(e), &Params::default()).word(),
            "unknown"
        );
    }

    #[test]
    fn the_guard_and_the_queue_retrying_one_read_fails() {
        let task = |t, op, attempt, receive| {
            let mut e = call(t, op, attempt, 0, "");
            e.fields.insert("task_message".into(), json!("m-9"));
            e.fields.insert("receive".into(), json!(receive));
            e
        };
        // The guard tries the read three times; the task fails and the queue hands it out
        // again, and the read is tried once more.
        let e = vec![
            task(10, "w#0.1", 1, 1),
            task(20, "w#0.1", 2, 1),
            task(30, "w#0.1", 3, 1),
            task(5000, "w#1.4", 1, 2),
        ];
        let Verdict::Fail { witness } = single_retry_layer(&log(e), &Params::default()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["queue_retried"], json!(1));
        assert_eq!(witness.counts["deliveries"], json!(2));
        assert!(
            witness
                .summary
                .contains("the guard (attempts up to 3) and the queue (2 deliveries)"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.events.last().map(|e| e.t_us), Some(5000));
        // The queue alone retrying passes.
        let e = vec![task(10, "w#0.1", 1, 1), task(5000, "w#1.4", 1, 2)];
        let v = single_retry_layer(&log(e), &Params::default());
        let Verdict::Pass { counts } = v else {
            panic!("must pass: {v:?}")
        };
        assert_eq!(counts["queue_retried"], json!(1));
        assert_eq!(counts["guard_retried"], json!(0));
        let e = vec![task(5000, "w#1.4", 1, 2)];
        assert!(sometimes(&log(e), &Params::default()).0);
    }

    #[test]
    fn the_witness_is_the_operation_that_began_first() {
        // Two operations over the bound; the one that sorts first by id began later.
        let e = vec![
            call(50_000, "w#0.9", 1, 1, "b-later"),
            call(60_000, "w#0.9", 2, 1, "b-later"),
            call(70_000, "w#0.10", 1, 2, "b-later"),
            call(10_000, "w#0.1", 1, 1, "z-earlier"),
            call(20_000, "w#0.1", 2, 1, "z-earlier"),
            call(30_000, "w#0.2", 1, 2, "z-earlier"),
        ];
        let Verdict::Fail { witness } = single_retry_layer(&log(e), &Params::default()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["operation"], json!("z-earlier"));
        assert_eq!(witness.counts["operations_over"], json!(2));
    }

    #[test]
    fn sometimes_needs_a_retry() {
        let p = Params::default();
        let e = vec![call(1, "w#0.1", 1, 1, ""), call(2, "w#0.2", 1, 0, "")];
        assert!(!sometimes(&log(e), &p).0);
        let e = vec![call(1, "w#0.1", 2, 0, "")];
        assert_eq!(
            sometimes(&log(e), &p),
            (true, "a retry layer retried a provider call")
        );
        let e = vec![call(1, "", 0, 2, "")];
        assert!(sometimes(&log(e), &p).0);
    }
}
