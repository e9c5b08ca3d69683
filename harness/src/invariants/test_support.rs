//! Building events for the checkers' tests.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::events::Event;

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
