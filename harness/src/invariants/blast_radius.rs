//! `blast_radius`: a config version that turned out bad never got past the canaries.
//!
//! Checks, for each version pushed (`stampede::config` `config_pushed`): if any node rolled it
//! back (`config_rolled_back`: its canary judged it bad), no node applied it outside the canary
//! set (`config_applied` with `canary` false), before or after the rollback.
//!
//! Does not check:
//! - a bad version that no canary judged. Without canaries (the naive preset applies a push
//!   everywhere with `canary` false and never rolls back) the log does not say whether the
//!   version was bad, so such a run passes: this checker cannot fail when `config_canary` is
//!   off. It needs an event that judges a version whatever the preset (e.g. each node's call
//!   outcomes per applied version, as `config_rolled_back` reports for the canary).
//! - that the fleet returned to the last known good config: which version a node runs after
//!   a rollback is not an event; `config_rolled_back` says only that the canary went back.
//! - the canary set's size: `canary` is a flag per node, with no fraction of the fleet.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::common::{CONFIG_TARGET, obj, secs};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// Checks that no rolled-back config version was applied beyond the canaries.
pub fn blast_radius(log: &EventLog) -> Verdict {
    let config: Vec<&Event> = log.of(CONFIG_TARGET).collect();
    let pushed: BTreeSet<u64> = config
        .iter()
        .filter(|e| e.name == "config_pushed")
        .filter_map(|e| e.u64("version"))
        .collect();
    if pushed.is_empty() {
        return Verdict::Unknown {
            why: "no config was pushed".into(),
        };
    }
    let mut rolled_back: BTreeMap<u64, &Event> = BTreeMap::new();
    for e in config.iter().filter(|e| e.name == "config_rolled_back") {
        if let Some(v) = e.u64("version") {
            rolled_back.entry(v).or_insert(e);
        }
    }
    let fleet_wide = |v: u64| {
        config.iter().copied().filter(move |e| {
            e.name == "config_applied"
                && e.u64("version") == Some(v)
                && e.fields.get("canary").and_then(serde_json::Value::as_bool) == Some(false)
        })
    };
    let mut offending: Vec<&Event> = Vec::new();
    let mut bad_versions: Vec<u64> = Vec::new();
    for &v in &pushed {
        let Some(rollback) = rolled_back.get(&v) else {
            continue;
        };
        let spread: Vec<&Event> = fleet_wide(v).collect();
        if !spread.is_empty() {
            bad_versions.push(v);
            offending.push(rollback);
            offending.extend(spread);
        }
    }
    let rolled = pushed
        .iter()
        .filter(|v| rolled_back.contains_key(v))
        .count();
    if offending.is_empty() {
        let applied: usize = pushed.iter().map(|&v| fleet_wide(v).count()).sum();
        return Verdict::Pass {
            counts: obj(json!({
                "versions_pushed": pushed.len(), "versions_rolled_back": rolled,
                "fleet_wide_applies": applied,
            })),
        };
    }
    offending.sort_by_key(|e| e.t_us);
    let nodes: BTreeSet<&str> = offending
        .iter()
        .filter(|e| e.name == "config_applied")
        .map(|e| e.host.as_str())
        .collect();
    let v = bad_versions[0];
    let rollback = rolled_back[&v];
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "config version {v}, rolled back by {} at t={}, was applied beyond the canaries on {} nodes ({})",
                rollback.host,
                secs(rollback.t_us),
                nodes.len(),
                nodes.iter().copied().collect::<Vec<_>>().join(", ")
            ),
            counts: obj(json!({
                "versions_pushed": pushed.len(), "versions_rolled_back": rolled,
                "bad_versions_spread": bad_versions.len(), "nodes": nodes.len(),
            })),
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
    use crate::invariants::common::test_support::ev;

    fn c(t_us: u64, host: &str, name: &str, version: u64, canary: Option<bool>) -> Event {
        let mut fields = vec![("version", json!(version))];
        if let Some(c) = canary {
            fields.push(("canary", json!(c)));
        }
        ev(t_us, host, CONFIG_TARGET, name, &fields)
    }

    fn check(events: Vec<Event>) -> Verdict {
        blast_radius(&EventLog::from_events(events))
    }

    #[test]
    fn a_bad_version_stopped_at_the_canary_passes() {
        let v = check(vec![
            c(1, "coordinator-r", "config_pushed", 2, None),
            c(5, "worker-r-0", "config_applied", 2, Some(true)),
            c(35, "worker-r-0", "config_rolled_back", 2, None),
            c(40, "worker-r-1", "config_skipped", 2, None),
            // A good version after it reaches the fleet.
            c(50, "coordinator-r", "config_pushed", 3, None),
            c(55, "worker-r-0", "config_applied", 3, Some(true)),
            c(85, "worker-r-0", "config_promoted", 3, None),
            c(90, "worker-r-1", "config_applied", 3, Some(false)),
        ]);
        let Verdict::Pass { counts } = v else {
            panic!("{v:?}")
        };
        assert_eq!(counts["versions_rolled_back"], json!(1));
        assert_eq!(counts["fleet_wide_applies"], json!(1));
    }

    #[test]
    fn a_rolled_back_version_on_other_nodes_fails() {
        // One region's canary promoted it, another's rolled it back.
        let v = check(vec![
            c(1, "coordinator-a", "config_pushed", 2, None),
            c(5, "worker-a-0", "config_applied", 2, Some(true)),
            c(5, "worker-b-0", "config_applied", 2, Some(true)),
            c(35, "worker-a-0", "config_promoted", 2, None),
            c(36, "worker-b-0", "config_rolled_back", 2, None),
            c(40, "worker-a-1", "config_applied", 2, Some(false)),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["nodes"], json!(1));
        assert_eq!(witness.events[0].name, "config_rolled_back");
        assert_eq!(witness.events[1].host, "worker-a-1");
    }

    #[test]
    fn no_push_is_unknown() {
        assert_eq!(check(vec![]).word(), "unknown");
    }
}
