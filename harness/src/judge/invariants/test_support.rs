//! Building events for the checkers' tests.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::events::Event;
use crate::judge::invariants::vocabulary::{FAULT_TARGET, PROVIDER_TARGET, TRAFFIC_TARGET};

/// An event of `target` named `name` at `t_us` on `host`, with `fields`.
pub fn ev(t_us: u64, host: &str, target: &str, name: &str, fields: &[(&str, Value)]) -> Event {
    Event {
        t_us,
        host: host.into(),
        target: target.into(),
        name: name.into(),
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

/// Fault `id`'s window of `kind` from `t0_s` to `t1_s` (no end when `None`), as the timeline
/// logs it, with `fields` (`region`, `api`, ...) on both events.
pub fn fault_window(
    id: u64,
    kind: &str,
    (t0_s, t1_s): (u64, Option<u64>),
    fields: &[(&str, Value)],
) -> Vec<Event> {
    let mut all = vec![("id", json!(id)), ("fault", json!(kind))];
    all.extend(fields.iter().cloned());
    let at = |name: &str, t_s: u64| ev(t_s * 1_000_000, "harness", FAULT_TARGET, name, &all);
    let mut out = vec![at("fault_start", t0_s)];
    out.extend(t1_s.map(|t| at("fault_end", t)));
    out
}

/// `base` with `overrides` put over it, field by field.
fn fields_over(base: &[(&str, Value)], overrides: &[(&str, Value)]) -> Vec<(String, Value)> {
    let mut fields: BTreeMap<String, Value> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    for (k, v) in overrides {
        fields.insert(k.to_string(), v.clone());
    }
    fields.into_iter().collect()
}

/// The replay client's `accepted` of query `seq`: a coordinator answered 202.
pub fn client_accepted(t_us: u64, seq: u64) -> Event {
    ev(
        t_us,
        "traffic",
        TRAFFIC_TARGET,
        "accepted",
        &[("seq", json!(seq)), ("query_id", json!(format!("q{seq}")))],
    )
}

/// An event with `fields` given as owned pairs.
fn ev_owned(
    t_us: u64,
    host: &str,
    target: &str,
    name: &str,
    fields: Vec<(String, Value)>,
) -> Event {
    Event {
        t_us,
        host: host.into(),
        target: target.into(),
        name: name.into(),
        fields: fields.into_iter().collect(),
    }
}

/// The replay client's first submission of query `seq` (tenant `tenant-00`).
pub fn submitted(t_us: u64, seq: u64) -> Event {
    submitted_with(t_us, seq, &[])
}

/// [`submitted`] with other or further fields (`sql_valid`, say).
pub fn submitted_with(t_us: u64, seq: u64, fields: &[(&str, Value)]) -> Event {
    let base = [
        ("seq", json!(seq)),
        ("tenant", json!("tenant-00")),
        ("coordinator", json!("c")),
    ];
    ev_owned(
        t_us,
        "traffic",
        TRAFFIC_TARGET,
        "submitted",
        fields_over(&base, fields),
    )
}

/// A provider `call` of the system's account as the fakes log it, every field present: an
/// `ok` `ReceiveMessage` that names no operation, attempt or query, with `fields` over that.
pub fn system_call(t_us: u64, fields: &[(&str, Value)]) -> Event {
    let base = [
        ("account", json!("100000000001")),
        ("region", json!("r")),
        ("service", json!("sqs")),
        ("api", json!("ReceiveMessage")),
        ("principal", json!("100000000001")),
        ("action", json!("sqs:Call")),
        ("resource", json!("tasks")),
        ("range", json!("")),
        ("outcome", json!("ok")),
        ("code", json!("")),
        ("bytes", json!(0)),
        ("latency_us", json!(1000)),
        ("op", json!("")),
        ("attempt", json!(0)),
        ("query_id", json!("")),
        ("sdk_attempt", json!(0)),
        ("sdk_invocation", json!("")),
        ("task_message", json!("")),
        ("receive", json!(0)),
    ];
    ev_owned(
        t_us,
        "provider-r",
        PROVIDER_TARGET,
        "call",
        fields_over(&base, fields),
    )
}

/// The replay client's answer to query `seq`, with its HTTP `status`.
pub fn answered(t_us: u64, seq: u64, status: u64) -> Event {
    ev(
        t_us,
        "traffic",
        TRAFFIC_TARGET,
        "answered",
        &[("seq", json!(seq)), ("status", json!(status))],
    )
}
