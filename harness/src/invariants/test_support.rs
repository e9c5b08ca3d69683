//! Building events for the checkers' tests.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::events::Event;
use crate::invariants::vocabulary::TRAFFIC_TARGET;

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
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The replay client's first submission of query `seq` (tenant `tenant-00`).
pub fn submitted(t_us: u64, seq: u64) -> Event {
    ev(
        t_us,
        "traffic",
        TRAFFIC_TARGET,
        "submitted",
        &[
            ("seq", json!(seq)),
            ("tenant", json!("tenant-00")),
            ("coordinator", json!("c")),
        ],
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
