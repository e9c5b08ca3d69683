//! `blast_radius`: a bad config version reaches at most the canary set, and every node that ran
//! it leaves it soon after, whatever the preset.
//!
//! Reads `stampede::config`. A version is *bad* when a canary rolled it back
//! (`config_rolled_back`), or when some node's `config_health` report under it shows more than
//! `max_failed_share` of at least `min_calls` call attempts failed. Every node reports its
//! health under the version it runs every 15 s, canary or not, so a bad version is seen even
//! when nothing canaries it (the naive preset). Then, for each bad version V:
//! - clause 1 (blast radius): no node applied V outside the canary set (`config_applied` V with
//!   `canary` not true), before or after V was seen to be bad;
//! - clause 2 (last known good): every node that applied V, canary or not, left it within
//!   `restore_within` of that apply: a `config_rolled_back` V or a `config_applied` of another
//!   version on the same node. A node whose last event (of any target) comes sooner than that
//!   is not judged: the log cannot say whether it would have left.
//!
//! Fails on the first bad version that breaks clause 1, else on the first that breaks clause
//! 2. Unknown when no config was pushed. Only pushed or applied versions are judged, so health
//! reports under the boot config (version 0) never count.
//!
//! Does not check:
//! - the canary set's size: `canary` is a flag per node, with no fraction of the fleet, so a
//!   run that marks every node a canary passes clause 1.
//! - that a node went back to the *last known good* version: `config_rolled_back` does not say
//!   which version the node runs after it. Clause 2 asks only that it left the bad one.
//! - why calls failed: a fault injected while a good version runs can make its health reports
//!   bad, and the version is then judged bad too.
//! - a node that crashes while running a bad version and stops logging: its log ends early.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::obj;
use super::time::{micros, secs};
use super::vocabulary::CONFIG_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// Parameters of `blast_radius`, from the scenario (`invariants: [{blast_radius: {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// A health report whose failed share of its calls is over this makes its version bad.
    /// Default 0.5.
    pub max_failed_share: f64,
    /// Health reports with fewer calls (ok plus failed) judge nothing. Default 10.
    pub min_calls: u64,
    /// How soon after applying a bad version a node must leave it. Default `2m`.
    pub restore_within: Span,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            max_failed_share: 0.5,
            min_calls: 10,
            restore_within: Span(std::time::Duration::from_secs(120)),
        }
    }
}

/// What the config events say of versions.
struct Versions<'a> {
    /// The config events, in time order.
    config: Vec<&'a Event>,
    /// Versions pushed.
    pushed: BTreeSet<u64>,
    /// Each bad version, with the first event that showed it bad.
    bad: BTreeMap<u64, &'a Event>,
}

fn calls(e: &Event) -> (u64, u64) {
    (e.u64("ok").unwrap_or(0), e.u64("failed").unwrap_or(0))
}

/// Whether health report `e` shows its version bad.
fn sick(e: &Event, p: &Params) -> bool {
    let (ok, failed) = calls(e);
    let total = ok + failed;
    total >= p.min_calls && failed as f64 > p.max_failed_share * total as f64
}

fn versions<'a>(log: &'a EventLog, p: &Params) -> Versions<'a> {
    let mut config: Vec<&Event> = log.of(CONFIG_TARGET).collect();
    config.sort_by_key(|e| e.t_us);
    let of = |name: &'static str| {
        config
            .iter()
            .filter(move |e| e.name == name)
            .filter_map(|e| e.u64("version"))
    };
    let pushed: BTreeSet<u64> = of("config_pushed").collect();
    let judged: BTreeSet<u64> = pushed
        .union(&of("config_applied").collect())
        .copied()
        .collect();
    let mut bad: BTreeMap<u64, &Event> = BTreeMap::new();
    for e in &config {
        let evidence = match e.name.as_str() {
            "config_rolled_back" => true,
            "config_health" => sick(e, p),
            _ => false,
        };
        if let Some(v) = e.u64("version").filter(|v| evidence && judged.contains(v)) {
            bad.entry(v).or_insert(e);
        }
    }
    Versions {
        config,
        pushed,
        bad,
    }
}

/// Why a version is bad, in words, from the event that showed it.
fn why_bad(evidence: &Event) -> String {
    if evidence.name == "config_rolled_back" {
        format!(
            "rolled back by {} at t={}",
            evidence.host,
            secs(evidence.t_us)
        )
    } else {
        let (ok, failed) = calls(evidence);
        format!(
            "{} reported {failed} failed of {} calls under it at t={}",
            evidence.host,
            ok + failed,
            secs(evidence.t_us)
        )
    }
}

/// A bad version's applies, judged.
#[derive(Default)]
struct Judged<'a> {
    /// Applies outside the canary set (clause 1).
    fleet_wide: Vec<&'a Event>,
    /// Applies the node did not leave within `restore_within` (clause 2).
    stuck: Vec<&'a Event>,
    /// Nodes that left every apply in time.
    restored: BTreeSet<&'a str>,
    /// Nodes whose log ended before an apply could be judged.
    not_judged: BTreeSet<&'a str>,
}

fn judge<'a>(
    vs: &Versions<'a>,
    v: u64,
    node_end: &BTreeMap<&str, u64>,
    within_us: u64,
) -> Judged<'a> {
    let mut j = Judged::default();
    let mut stuck_nodes = BTreeSet::new();
    for (i, e) in vs.config.iter().enumerate() {
        if e.name != "config_applied" || e.u64("version") != Some(v) {
            continue;
        }
        if e.fields.get("canary").and_then(serde_json::Value::as_bool) != Some(true) {
            j.fleet_wide.push(e);
        }
        let deadline = e.t_us.saturating_add(within_us);
        let left = vs.config[i + 1..].iter().find(|l| {
            l.host == e.host
                && match l.name.as_str() {
                    "config_rolled_back" => l.u64("version") == Some(v),
                    "config_applied" => l.u64("version") != Some(v),
                    _ => false,
                }
        });
        let host = e.host.as_str();
        if left.is_some_and(|l| l.t_us <= deadline) {
            j.restored.insert(host);
        } else if node_end.get(host).copied().unwrap_or(0) < deadline {
            j.not_judged.insert(host);
        } else {
            j.stuck.push(e);
            stuck_nodes.insert(host);
        }
    }
    j.restored.retain(|h| !stuck_nodes.contains(h));
    j
}

/// Checks that a bad config version reaches at most the canary set and that every node that
/// applied it leaves it within `p.restore_within`.
pub fn blast_radius(log: &EventLog, p: &Params) -> Verdict {
    let vs = versions(log, p);
    if vs.pushed.is_empty() {
        return Verdict::Unknown {
            why: "no config was pushed".into(),
        };
    }
    let mut node_end: BTreeMap<&str, u64> = BTreeMap::new();
    for e in log.events() {
        let end = node_end.entry(e.host.as_str()).or_insert(0);
        *end = (*end).max(e.t_us);
    }
    let within_us = micros(p.restore_within);
    let judged: Vec<(u64, Judged<'_>)> = vs
        .bad
        .keys()
        .map(|&v| (v, judge(&vs, v, &node_end, within_us)))
        .collect();
    let fleet_wide: usize = judged.iter().map(|(_, j)| j.fleet_wide.len()).sum();
    let stuck: usize = judged
        .iter()
        .map(|(_, j)| {
            j.stuck
                .iter()
                .map(|e| &e.host)
                .collect::<BTreeSet<_>>()
                .len()
        })
        .sum();
    let restored: usize = judged.iter().map(|(_, j)| j.restored.len()).sum();
    let not_judged: usize = judged.iter().map(|(_, j)| j.not_judged.len()).sum();
    let mut counts = obj(json!({
        "versions_pushed": vs.pushed.len(), "bad_versions": vs.bad.len(),
        "fleet_wide_applies": fleet_wide, "nodes_restored": restored,
        "nodes_not_judged": not_judged,
    }));
    let clause1 = judged.iter().find(|(_, j)| !j.fleet_wide.is_empty());
    let clause2 = judged.iter().find(|(_, j)| !j.stuck.is_empty());
    let (v, offending, what) = match (clause1, clause2) {
        (Some((v, j)), _) => (*v, &j.fleet_wide, "1 (blast radius)"),
        (None, Some((v, j))) => (*v, &j.stuck, "2 (last known good)"),
        (None, None) => return Verdict::Pass { counts },
    };
    let evidence = vs.bad[&v];
    let nodes: BTreeSet<&str> = offending.iter().map(|e| e.host.as_str()).collect();
    let nodes_list = nodes.iter().copied().collect::<Vec<_>>().join(", ");
    let summary = if clause1.is_some() {
        format!(
            "clause {what}: config version {v}, bad ({}), was applied outside the canary set on {} nodes ({nodes_list})",
            why_bad(evidence),
            nodes.len()
        )
    } else {
        format!(
            "clause {what}: config version {v}, bad ({}), was still running on {} nodes ({nodes_list}) {} after they applied it",
            why_bad(evidence),
            nodes.len(),
            secs(within_us)
        )
    };
    counts.insert("nodes_not_restored".into(), stuck.into());
    counts.insert("nodes".into(), nodes.len().into());
    // The event that shows the version bad always makes the witness, whenever it came.
    let mut events: Vec<&Event> = offending.iter().copied().take(WITNESS_EVENTS - 1).collect();
    events.push(evidence);
    events.sort_by_key(|e| e.t_us);
    Verdict::Fail {
        witness: Witness {
            summary,
            counts,
            events: events.into_iter().cloned().collect(),
        },
    }
}

/// Whether the run pushed a version that turned out bad: without one, `blast_radius` passing
/// says nothing.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    (
        !versions(log, p).bad.is_empty(),
        "a bad config version was pushed",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;

    const S: u64 = 1_000_000;

    fn c(t_s: u64, host: &str, name: &str, version: u64, canary: Option<bool>) -> Event {
        let mut fields = vec![("version", json!(version))];
        if let Some(c) = canary {
            fields.push(("canary", json!(c)));
        }
        ev(t_s * S, host, CONFIG_TARGET, name, &fields)
    }

    fn health(t_s: u64, host: &str, version: u64, ok: u64, failed: u64) -> Event {
        let fields = [
            ("version", json!(version)),
            ("ok", json!(ok)),
            ("failed", json!(failed)),
        ];
        ev(t_s * S, host, CONFIG_TARGET, "config_health", &fields)
    }

    fn check(events: Vec<Event>) -> Verdict {
        blast_radius(&EventLog::from_events(events), &Params::default())
    }

    fn witness(v: Verdict) -> Witness {
        match v {
            Verdict::Fail { witness } => witness,
            v => panic!("must fail: {v:?}"),
        }
    }

    const NODES: [&str; 3] = ["worker-r-0", "worker-r-1", "worker-r-2"];

    #[test]
    fn a_bad_version_stopped_at_the_canary_passes() {
        let mut events = vec![
            c(1, "coordinator-r", "config_pushed", 2, None),
            c(5, "worker-r-0", "config_applied", 2, Some(true)),
            c(35, "worker-r-0", "config_rolled_back", 2, None),
            c(40, "worker-r-1", "config_skipped", 2, None),
            c(40, "worker-r-2", "config_skipped", 2, None),
            // A good version after it reaches the fleet.
            c(50, "coordinator-r", "config_pushed", 3, None),
            c(55, "worker-r-0", "config_applied", 3, Some(true)),
            c(85, "worker-r-0", "config_promoted", 3, None),
            c(90, "worker-r-1", "config_applied", 3, Some(false)),
            c(90, "worker-r-2", "config_applied", 3, Some(false)),
        ];
        // Every node healthy under the boot config and under version 3, long after.
        for n in NODES {
            events.push(health(20, n, 0, 40, 0));
            events.push(health(300, n, 3, 40, 1));
        }
        let v = check(events);
        let Verdict::Pass { counts } = v else {
            panic!("{v:?}")
        };
        assert_eq!(counts["versions_pushed"], json!(2));
        assert_eq!(counts["bad_versions"], json!(1));
        assert_eq!(counts["fleet_wide_applies"], json!(0));
        assert_eq!(counts["nodes_restored"], json!(1));
    }

    #[test]
    fn a_bad_version_applied_everywhere_fails_clause_1() {
        // The naive preset: every node applies it at once, then reports its calls failing.
        let mut events = vec![c(1, "coordinator-r", "config_pushed", 2, None)];
        for n in NODES {
            events.push(c(5, n, "config_applied", 2, Some(false)));
        }
        for n in NODES {
            events.push(health(20, n, 2, 1, 39));
        }
        let w = witness(check(events));
        assert!(w.summary.starts_with("clause 1"), "{}", w.summary);
        assert!(
            w.summary
                .contains("worker-r-0 reported 39 failed of 40 calls"),
            "{}",
            w.summary
        );
        assert_eq!(w.counts["nodes"], json!(3));
        assert_eq!(w.counts["fleet_wide_applies"], json!(3));
        // The applies, then the report that showed the version bad.
        let names: Vec<&str> = w.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "config_applied",
                "config_applied",
                "config_applied",
                "config_health"
            ]
        );
    }

    #[test]
    fn a_rolled_back_version_on_other_nodes_fails() {
        // One region's canary promoted it, another's rolled it back.
        let w = witness(check(vec![
            c(1, "coordinator-a", "config_pushed", 2, None),
            c(5, "worker-a-0", "config_applied", 2, Some(true)),
            c(5, "worker-b-0", "config_applied", 2, Some(true)),
            c(35, "worker-a-0", "config_promoted", 2, None),
            c(36, "worker-b-0", "config_rolled_back", 2, None),
            c(40, "worker-a-1", "config_applied", 2, Some(false)),
        ]));
        assert!(
            w.summary.contains("rolled back by worker-b-0"),
            "{}",
            w.summary
        );
        assert_eq!(w.counts["nodes"], json!(1));
        assert_eq!(w.events[0].name, "config_rolled_back");
        assert_eq!(w.events[1].host, "worker-a-1");
    }

    #[test]
    fn a_canary_that_never_leaves_a_bad_version_fails_clause_2() {
        // The canary applies it, its calls fail, and it stays on it to the end of the run.
        let stuck = vec![
            c(1, "coordinator-r", "config_pushed", 2, None),
            c(5, "worker-r-0", "config_applied", 2, Some(true)),
            health(20, "worker-r-0", 2, 0, 30),
            health(200, "worker-r-0", 2, 0, 30),
        ];
        let w = witness(check(stuck.clone()));
        assert!(w.summary.starts_with("clause 2"), "{}", w.summary);
        assert_eq!(w.counts["nodes_not_restored"], json!(1));
        assert_eq!(w.events[0].name, "config_applied");
        // Leaving it too late fails too.
        let mut late = stuck.clone();
        late.push(c(150, "worker-r-0", "config_rolled_back", 2, None));
        assert!(check(late).is_fail());
        // Applying another version in time passes.
        let mut moved_on = stuck.clone();
        moved_on.push(c(60, "coordinator-r", "config_pushed", 3, None));
        moved_on.push(c(65, "worker-r-0", "config_applied", 3, Some(true)));
        assert_eq!(check(moved_on).word(), "pass");
        // A node whose log ends before the deadline is not judged.
        let v = check(stuck[..3].to_vec());
        let Verdict::Pass { counts } = v else {
            panic!("{v:?}")
        };
        assert_eq!(counts["nodes_not_judged"], json!(1));
    }

    #[test]
    fn health_below_min_calls_does_not_make_a_version_bad() {
        let mut events = vec![c(1, "coordinator-r", "config_pushed", 2, None)];
        for n in NODES {
            events.push(c(5, n, "config_applied", 2, Some(false)));
        }
        // 9 failed of 9 is too few calls; 5 of 10 is not over half.
        events.push(health(20, "worker-r-0", 2, 0, 9));
        events.push(health(20, "worker-r-1", 2, 5, 5));
        // Failures under the boot config judge no pushed version.
        events.push(health(3, "worker-r-2", 0, 0, 50));
        let log = EventLog::from_events(events);
        let v = blast_radius(&log, &Params::default());
        let Verdict::Pass { counts } = v else {
            panic!("{v:?}")
        };
        assert_eq!(counts["bad_versions"], json!(0));
        // A lower bar makes the same reports bad.
        let strict = Params {
            min_calls: 5,
            ..Params::default()
        };
        assert!(blast_radius(&log, &strict).is_fail());
    }

    #[test]
    fn no_push_is_unknown() {
        assert_eq!(check(vec![]).word(), "unknown");
        assert_eq!(
            check(vec![health(20, "worker-r-0", 0, 0, 50)]).word(),
            "unknown"
        );
    }

    #[test]
    fn sometimes_needs_a_bad_version() {
        let p = Params::default();
        let good = vec![
            c(1, "coordinator-r", "config_pushed", 2, None),
            c(5, "worker-r-0", "config_applied", 2, Some(false)),
            health(20, "worker-r-0", 2, 40, 0),
        ];
        assert!(!sometimes(&EventLog::from_events(good.clone()), &p).0);
        let mut sick = good.clone();
        sick.push(health(35, "worker-r-0", 2, 0, 40));
        assert!(sometimes(&EventLog::from_events(sick), &p).0);
        let mut rolled = good;
        rolled.push(c(36, "worker-r-1", "config_rolled_back", 2, None));
        assert!(sometimes(&EventLog::from_events(rolled), &p).0);
    }

    #[test]
    fn params_default_and_read_spans() {
        let p: Params = serde_json::from_value(json!({})).expect("defaults");
        assert_eq!(p, Params::default());
        let p: Params = serde_json::from_value(json!({"restore_within": "30s"})).expect("a span");
        assert_eq!(micros(p.restore_within), 30 * S);
        assert!(serde_json::from_value::<Params>(json!({"max_share": 0.1})).is_err());
    }
}
