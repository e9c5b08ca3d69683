//! `tenant_fairness`: tenants with demand get their share of goodput: Jain's index over them
//! is at least 0.9.
//!
//! Checks: for each tenant t with demand, `x_t = succeeded_t / min(demand_t, fair)`, where
//! `fair = Σ succeeded / n` over the n tenants with demand, and Jain's index
//! `J = (Σ x)² / (n · Σ x²)` is at least `min_index`. Counts are of queries:
//! - from the client's events (`stampede::traffic`), when the log has them: a tenant's demand
//!   is its `submitted` queries, except those refused for good with a status other than 429 or
//!   503 (invalid SQL is not unserved demand); its goodput is its queries `answered` with
//!   status 200. A tenant whose queries were all shed by admission control still has demand.
//! - otherwise from the coordinators' (`stampede::query`): demand is a tenant's `accepted`
//!   queries, goodput those of them that `succeeded`. A tenant shed entirely is then not seen.
//!
//! Unknown with fewer than 2 tenants with demand, or when no query succeeded.
//!
//! Does not check: goodput per second or within the query's deadline beyond what the terminal
//! status says (a query answered 200 met its deadline, if it had one), nor how demand and
//! goodput moved over the run: the index is over the whole log.

use std::collections::BTreeMap;

use serde_json::json;

use super::obj;
use super::vocabulary::{QUERY_TARGET, TRAFFIC_TARGET};
use super::{Verdict, Witness};
use crate::events::{Event, EventLog};

/// The lowest Jain's index allowed.
pub const MIN_JAIN_INDEX: f64 = 0.9;

/// Per tenant: demand, goodput.
type Tally<'a> = BTreeMap<&'a str, (u64, u64)>;

fn from_traffic(log: &EventLog) -> Tally<'_> {
    let mut seqs: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
    for e in log.of(TRAFFIC_TARGET) {
        if let Some(seq) = e.u64("seq") {
            seqs.entry(seq).or_default().push(e);
        }
    }
    let mut tally = Tally::new();
    for events in seqs.values() {
        let Some(tenant) = events
            .iter()
            .find(|e| e.name == "submitted")
            .and_then(|e| e.str("tenant"))
        else {
            continue;
        };
        let last = events.iter().max_by_key(|e| e.t_us).copied();
        let invalid = last.is_some_and(|e| {
            e.name == "refused" && e.u64("status").is_some_and(|s| s != 429 && s != 503)
        });
        if invalid {
            continue;
        }
        let ok = events
            .iter()
            .any(|e| e.name == "answered" && e.u64("status") == Some(200));
        let t = tally.entry(tenant).or_default();
        t.0 += 1;
        t.1 += u64::from(ok);
    }
    tally
}

fn from_queries(log: &EventLog) -> Tally<'_> {
    let mut tenant_of: BTreeMap<&str, &str> = BTreeMap::new();
    let mut tally = Tally::new();
    for e in log.of(QUERY_TARGET) {
        if e.name == "accepted"
            && let (Some(id), Some(tenant)) = (e.str("query_id"), e.str("tenant"))
            && tenant_of.insert(id, tenant).is_none()
        {
            tally.entry(tenant).or_default().0 += 1;
        }
    }
    for e in log.of(QUERY_TARGET).filter(|e| e.name == "succeeded") {
        if let Some(tenant) = e.str("query_id").and_then(|id| tenant_of.get(id)) {
            tally.entry(tenant).or_default().1 += 1;
        }
    }
    tally
}

/// Checks Jain's index of the tenants' goodput, each against the least of its demand and
/// its fair share.
pub fn tenant_fairness(log: &EventLog, min_index: f64) -> Verdict {
    let (source, tally) = if log.of(TRAFFIC_TARGET).any(|e| e.name == "submitted") {
        ("client", from_traffic(log))
    } else {
        ("coordinators", from_queries(log))
    };
    let n = tally.len();
    if n < 2 {
        return Verdict::Unknown {
            why: format!("{n} tenant(s) with demand: fairness needs two"),
        };
    }
    let total: u64 = tally.values().map(|t| t.1).sum();
    if total == 0 {
        return Verdict::Unknown {
            why: "no query succeeded".into(),
        };
    }
    let fair = total as f64 / n as f64;
    let xs: Vec<(&str, f64)> = tally
        .iter()
        .map(|(t, &(demand, good))| (*t, good as f64 / (demand as f64).min(fair)))
        .collect();
    let sum: f64 = xs.iter().map(|x| x.1).sum();
    let squares: f64 = xs.iter().map(|x| x.1 * x.1).sum();
    let index = sum * sum / (n as f64 * squares);
    let per_tenant: serde_json::Map<String, serde_json::Value> = tally
        .iter()
        .map(|(t, (d, g))| (t.to_string(), json!({ "demand": d, "succeeded": g })))
        .collect();
    let rounded = (index * 1000.0).round() / 1000.0;
    if index >= min_index {
        return Verdict::Pass {
            counts: obj(json!({
                "tenants": n, "succeeded": total, "jain_index": rounded, "from": source,
            })),
        };
    }
    let (least, least_x) = xs
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or(("?", 0.0));
    let (demand, good) = tally.get(least).copied().unwrap_or_default();
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "Jain's index over {n} tenants is {rounded:.3}, under {min_index}; {least} got {good} of its {demand} queries where its fair share was {fair:.1} (x = {least_x:.2})"
            ),
            counts: obj(json!({
                "tenants": n, "succeeded": total, "jain_index": rounded, "from": source,
                "per_tenant": per_tenant,
            })),
            events: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::test_support::ev;

    /// Client events: `n` queries of `tenant` from `seq`, the first `ok` answered 200 and the
    /// rest shed for good (429 after the last resubmission).
    fn client(seq: u64, tenant: &str, n: u64, ok: u64) -> Vec<Event> {
        let mut out = Vec::new();
        for k in 0..n {
            let s = seq + k;
            out.push(ev(
                s,
                "traffic",
                TRAFFIC_TARGET,
                "submitted",
                &[("seq", json!(s)), ("tenant", json!(tenant))],
            ));
            let end = if k < ok {
                ev(
                    s + 1000,
                    "traffic",
                    TRAFFIC_TARGET,
                    "answered",
                    &[("seq", json!(s)), ("status", json!(200))],
                )
            } else {
                ev(
                    s + 1000,
                    "traffic",
                    TRAFFIC_TARGET,
                    "refused",
                    &[
                        ("seq", json!(s)),
                        ("status", json!(429)),
                        ("retry_after_s", json!(1)),
                    ],
                )
            };
            out.push(end);
        }
        out
    }

    fn check(events: Vec<Event>) -> Verdict {
        tenant_fairness(&EventLog::from_events(events), MIN_JAIN_INDEX)
    }

    #[test]
    fn a_heavy_tenant_held_to_its_share_passes() {
        // A wants 100 and gets 30; B wants 10 and gets all 10; C wants 30 and gets 30.
        // Fair share 70 / 3 = 23.3: x = 1.29, 1, 1.29; J = 0.98.
        let mut events = client(0, "tenant-a", 100, 30);
        events.extend(client(1000, "tenant-b", 10, 10));
        events.extend(client(2000, "tenant-c", 30, 30));
        let v = check(events);
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn a_starved_tenant_fails() {
        // A floods and gets 60; B's 10 are all shed: x = 2, 0; J = 0.5.
        let mut events = client(0, "tenant-a", 100, 60);
        events.extend(client(1000, "tenant-b", 10, 0));
        let Verdict::Fail { witness } = check(events) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["jain_index"], json!(0.5));
        assert!(
            witness.summary.contains("tenant-b got 0 of its 10"),
            "{}",
            witness.summary
        );
    }

    #[test]
    fn invalid_queries_are_not_demand() {
        let mut events = client(0, "tenant-a", 10, 10);
        events.extend(client(1000, "tenant-b", 10, 10));
        events.push(ev(
            5000,
            "traffic",
            TRAFFIC_TARGET,
            "submitted",
            &[("seq", json!(5000)), ("tenant", json!("tenant-b"))],
        ));
        events.push(ev(
            5001,
            "traffic",
            TRAFFIC_TARGET,
            "refused",
            &[("seq", json!(5000)), ("status", json!(400))],
        ));
        let Verdict::Pass { counts } = check(events) else {
            panic!("must pass")
        };
        assert_eq!(counts["jain_index"], json!(1.0));
    }

    #[test]
    fn without_the_client_the_coordinators_count() {
        let q = |t: u64, name: &str, id: &str, tenant: &str| {
            ev(
                t,
                "coordinator-r",
                QUERY_TARGET,
                name,
                &[("query_id", json!(id)), ("tenant", json!(tenant))],
            )
        };
        let events = vec![
            q(1, "accepted", "a1", "tenant-a"),
            q(2, "accepted", "a2", "tenant-a"),
            q(3, "accepted", "b1", "tenant-b"),
            q(4, "succeeded", "a1", ""),
            q(5, "succeeded", "a2", ""),
            q(6, "failed", "b1", ""),
        ];
        let Verdict::Fail { witness } = check(events) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["from"], json!("coordinators"));
    }

    #[test]
    fn one_tenant_is_unknown() {
        assert_eq!(check(client(0, "tenant-a", 10, 5)).word(), "unknown");
    }
}
