//! Logical operations as the provider saw them, across every layer that tries them again: the
//! AWS SDK's attempts of one invocation, the guard's attempts of one operation, and the queue's
//! deliveries of one task.
//!
//! A call's operation within one try of its work is [`operation`]: its SDK invocation, else
//! the guard's `op`. A task the queue hands out again runs afresh, so its calls get new
//! operation ids; what links them is the delivery each call names (`task_message`, the task
//! message's id, and `receive`, its receive count). Within one delivery, the operations are
//! ordered by their first call, and the k-th operation on one (api, resource, range) is the
//! same logical operation as the k-th on it in any other delivery of the message: one byte
//! range read twice per task is two logical operations, each tried again by a redelivery.
//! Work a later delivery skipped (credentials it found cached) is not counted as tried again.

use std::collections::{BTreeMap, BTreeSet};

use super::calls::{is_call, operation, started};
use super::vocabulary::PROVIDER_TARGET;
use crate::events::{Event, EventLog};

/// One logical operation: its calls in the log's order and how far each layer tried it.
#[derive(Debug, Default)]
pub struct Logical<'a> {
    /// Every call of it, by every layer, in the log's order.
    pub calls: Vec<&'a Event>,
    /// The highest SDK attempt among its calls (0 outside the SDK).
    pub max_sdk_attempt: u64,
    /// The highest guard attempt among its calls.
    pub max_attempt: u64,
    /// The queue deliveries it was tried in (receive counts; empty outside a task).
    pub deliveries: BTreeSet<u64>,
}

impl Logical<'_> {
    /// Whether the SDK tried it more than once.
    pub fn sdk_retried(&self) -> bool {
        self.max_sdk_attempt > 1
    }

    /// Whether the guard tried it more than once.
    pub fn guard_retried(&self) -> bool {
        self.max_attempt > 1
    }

    /// Whether the queue's redelivery of its task tried it again.
    pub fn queue_retried(&self) -> bool {
        self.deliveries.len() > 1
    }

    /// How many layers tried it more than once.
    pub fn layers(&self) -> u64 {
        u64::from(self.sdk_retried())
            + u64::from(self.guard_retried())
            + u64::from(self.queue_retried())
    }

    /// When its first call reached the provider.
    pub fn first_start(&self) -> u64 {
        self.calls.iter().map(|e| started(e)).min().unwrap_or(0)
    }
}

/// The delivery a call works on: its message id and receive count, when it names one.
pub fn delivery(e: &Event) -> Option<(&str, u64)> {
    let message = e.str("task_message").filter(|m| !m.is_empty())?;
    Some((message, e.u64("receive").unwrap_or(0)))
}

/// What an operation does: its api, resource and range.
fn signature(e: &Event) -> String {
    let field = |k: &str| e.str(k).unwrap_or("");
    format!("{} {} {}", field("api"), field("resource"), field("range"))
        .trim_end()
        .to_string()
}

/// The system's calls as logical operations, keyed by the operation's id outside a task, and
/// by `{message} {api} {resource} [{range}] #{k}` within one.
pub fn logical_operations(log: &EventLog) -> BTreeMap<String, Logical<'_>> {
    // Calls by their operation within one try.
    let mut tries: BTreeMap<&str, Vec<(usize, &Event)>> = BTreeMap::new();
    for (i, e) in log.of(PROVIDER_TARGET).filter(|e| is_call(e)).enumerate() {
        if let Some(id) = operation(e) {
            tries.entry(id).or_default().push((i, e));
        }
    }
    // The operations of each delivery, in the order they began.
    let mut by_delivery: BTreeMap<(&str, u64), Vec<(u64, &str)>> = BTreeMap::new();
    let mut key_of: BTreeMap<&str, String> = BTreeMap::new();
    for (id, calls) in &tries {
        match delivery(calls[0].1) {
            Some(d) => {
                let first = calls.iter().map(|(_, e)| started(e)).min().unwrap_or(0);
                by_delivery.entry(d).or_default().push((first, id));
            }
            None => {
                key_of.insert(id, (*id).to_string());
            }
        }
    }
    for ((message, _), mut ops) in by_delivery {
        ops.sort_unstable();
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        for (_, id) in ops {
            let sig = signature(tries[id][0].1);
            let k = seen.entry(sig.clone()).or_default();
            *k += 1;
            key_of.insert(id, format!("{message} {sig} #{k}"));
        }
    }
    let mut out: BTreeMap<String, Logical<'_>> = BTreeMap::new();
    let mut order: BTreeMap<String, Vec<(usize, &Event)>> = BTreeMap::new();
    for (id, calls) in tries {
        order.entry(key_of[id].clone()).or_default().extend(calls);
    }
    for (key, mut calls) in order {
        calls.sort_unstable_by_key(|(i, _)| *i);
        let l = out.entry(key).or_default();
        for (_, e) in calls {
            l.max_sdk_attempt = l.max_sdk_attempt.max(e.u64("sdk_attempt").unwrap_or(0));
            l.max_attempt = l.max_attempt.max(e.u64("attempt").unwrap_or(0));
            if let Some((_, receive)) = delivery(e) {
                l.deliveries.insert(receive);
            }
            l.calls.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::judge::invariants::test_support::system_call;

    /// A call of guard operation `op`, attempt `attempt`, on `api` `resource`, in delivery
    /// `receive` of message `m-1` (none when `receive` is 0).
    pub(crate) fn task_call(t_us: u64, op: &str, attempt: u64, api: &str, receive: u64) -> Event {
        let message = if receive == 0 { "" } else { "m-1" };
        system_call(
            t_us,
            &[
                ("op", json!(op)),
                ("attempt", json!(attempt)),
                ("api", json!(api)),
                ("resource", json!("arn:aws:s3:::lake-1/part-0.parquet")),
                ("task_message", json!(message)),
                ("receive", json!(receive)),
            ],
        )
    }

    #[test]
    fn layers_count_each_layer_that_retried_once() {
        let layered = |sdk: u64, guard: u64, deliveries: &[u64]| Logical {
            calls: Vec::new(),
            max_sdk_attempt: sdk,
            max_attempt: guard,
            deliveries: deliveries.iter().copied().collect(),
        };
        assert_eq!(layered(2, 3, &[1, 2]).layers(), 3);
        assert_eq!(layered(2, 1, &[1]).layers(), 1);
        assert_eq!(layered(0, 2, &[1, 3]).layers(), 2);
        assert_eq!(layered(3, 1, &[2, 3]).layers(), 2);
        assert_eq!(layered(1, 1, &[]).layers(), 0);
    }

    #[test]
    fn each_delivery_of_a_task_tries_its_operations_again() {
        let log = EventLog::from_events(vec![
            // Delivery 1: credentials, then the same object read twice, the first read retried.
            task_call(10, "w#0.1", 1, "AssumeRole", 1),
            task_call(20, "w#0.2", 1, "GetObject", 1),
            task_call(30, "w#0.2", 2, "GetObject", 1),
            task_call(40, "w#0.3", 1, "GetObject", 1),
            // Delivery 2: credentials cached; both reads again.
            task_call(100, "w#0.7", 1, "GetObject", 2),
            task_call(110, "w#0.8", 1, "GetObject", 2),
            // The coordinator's call outside any task.
            task_call(120, "c#0.1", 1, "SendMessage", 0),
        ]);
        let ops = logical_operations(&log);
        let keys: Vec<&str> = ops.keys().map(String::as_str).collect();
        let object = "arn:aws:s3:::lake-1/part-0.parquet";
        assert_eq!(
            keys,
            vec![
                "c#0.1".to_string(),
                format!("m-1 AssumeRole {object} #1"),
                format!("m-1 GetObject {object} #1"),
                format!("m-1 GetObject {object} #2"),
            ]
        );
        let first_read = &ops[&format!("m-1 GetObject {object} #1")];
        let times: Vec<u64> = first_read.calls.iter().map(|e| e.t_us).collect();
        assert_eq!(times, vec![20, 30, 100]);
        assert!(first_read.guard_retried() && first_read.queue_retried());
        assert_eq!(first_read.layers(), 2);
        // Its first call ended at 20 µs after a 1 ms latency: it reached the provider at 0.
        assert_eq!(first_read.first_start(), 0);
        let second_read = &ops[&format!("m-1 GetObject {object} #2")];
        assert_eq!((second_read.layers(), second_read.calls.len()), (1, 2));
        let credentials = &ops[&format!("m-1 AssumeRole {object} #1")];
        assert_eq!(credentials.layers(), 0);
        assert!(!ops["c#0.1"].queue_retried());
    }
}
