//! `coalesced`: the system never has two calls for the same thing in flight at once: concurrent
//! needs of one credential or one table share a single call.
//!
//! Checks: the provider `call`s of service `sts` or `glue` by accounts that are not background
//! accounts, keyed by (client host, `principal`, `action`, `resource`), the client host read
//! from the call's `op` (`{host}#…`); each call is in flight over `[t_us − latency_us, t_us)`
//! (it is logged when it ends). At no time are more than `max_in_flight` calls of one key in
//! flight. Every outcome counts: a throttled call was in flight too.
//!
//! Does not check: S3 reads (parallel range reads of one object are intended) and IMDS (the
//! instance's own credentials, fetched per node); two nodes' concurrent fetches of one key
//! (caches are per node, so they are not coalesced, nor expected to be), whether or not the
//! nodes sign as one principal.

use std::collections::BTreeMap;

use serde_json::json;

use super::calls::{client_host, is_call, started};
use super::obj;
use super::time::secs;
use super::vocabulary::{PROVIDER_TARGET, is_background};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The most calls of one key in flight at once.
pub const MAX_IN_FLIGHT: u64 = 1;

/// The services whose calls must be coalesced.
pub const COALESCED_SERVICES: [&str; 2] = ["sts", "glue"];

/// Checks that at most `max_in_flight` calls per (client host, principal, action, resource)
/// overlap.
pub fn coalesced(log: &EventLog, max_in_flight: u64) -> Verdict {
    type Key<'a> = (&'a str, &'a str, &'a str, &'a str);
    let mut by_key: BTreeMap<Key<'_>, Vec<&Event>> = BTreeMap::new();
    for e in log.of(PROVIDER_TARGET).filter(|e| is_call(e)) {
        let (Some(account), Some(service)) = (e.str("account"), e.str("service")) else {
            continue;
        };
        if is_background(account) || !COALESCED_SERVICES.contains(&service) {
            continue;
        }
        let key = (
            client_host(e),
            e.str("principal").unwrap_or(""),
            e.str("action").unwrap_or(""),
            e.str("resource").unwrap_or(""),
        );
        by_key.entry(key).or_default().push(e);
    }
    if by_key.is_empty() {
        return Verdict::Unknown {
            why: "the system made no sts or glue calls".into(),
        };
    }
    let calls: usize = by_key.values().map(Vec::len).sum();
    let keys = by_key.len();
    let (mut overlapping, mut peak) = (0u64, 0u64);
    // The first overlap: its key, the calls in flight when it began.
    let mut first: Option<(Key<'_>, Vec<&Event>)> = None;
    for (key, mut events) in by_key {
        // Calls with no duration are never in flight.
        events.retain(|e| started(e) < e.t_us);
        events.sort_by_key(|e| (started(e), e.t_us));
        let mut open: Vec<&Event> = Vec::new();
        for e in events {
            let s = started(e);
            open.retain(|o| o.t_us > s);
            open.push(e);
            let n = open.len() as u64;
            peak = peak.max(n);
            if n > max_in_flight {
                overlapping += 1;
                if first
                    .as_ref()
                    .is_none_or(|(_, f)| s < started(f[f.len() - 1]))
                {
                    first = Some((key, open.clone()));
                }
            }
        }
    }
    let Some(((host, principal, action, resource), in_flight)) = first else {
        return Verdict::Pass {
            counts: obj(json!({ "calls": calls, "keys": keys })),
        };
    };
    let last = in_flight[in_flight.len() - 1];
    let at_once = in_flight.len();
    let mut witness_events: Vec<Event> = in_flight.into_iter().cloned().collect();
    witness_events.sort_by_key(|e| e.t_us);
    witness_events.truncate(WITNESS_EVENTS);
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{overlapping} calls began while another of their key was in flight (at most {peak} at once); the first: {action} on `{resource}` by {principal} from {host} at t={} ({} in flight)",
                secs(started(last)),
                at_once,
            ),
            counts: obj(json!({
                "calls": calls, "keys": keys, "overlapping_calls": overlapping, "peak_in_flight": peak,
            })),
            events: witness_events,
        },
    }
}

/// The sometimes state, from the provider's log: two queries' tasks read one lake from one
/// node at the same time (S3 calls of one client host on one bucket, of different queries, in
/// flight together), so they needed its credential and table at once and a cache had
/// something to coalesce. Not the cache's own report that it coalesced.
pub fn sometimes(log: &EventLog) -> (bool, &'static str) {
    const STATE: &str = "two queries read one lake from one node at the same time";
    // Per (client host, bucket): the latest end of each query's calls so far.
    let mut calls: Vec<(u64, u64, (&str, &str), &str)> = log
        .of(PROVIDER_TARGET)
        .filter(|e| is_call(e) && e.str("service") == Some("s3"))
        .filter_map(|e| {
            let query = e.str("query_id").filter(|q| !q.is_empty())?;
            let bucket = e
                .str("resource")?
                .strip_prefix("arn:aws:s3:::")?
                .split('/')
                .next()?;
            Some((started(e), e.t_us, (client_host(e), bucket), query))
        })
        .collect();
    calls.sort_unstable();
    // Per (client host, bucket): the queries with calls still in flight, and until when.
    let mut ends: BTreeMap<(&str, &str), BTreeMap<&str, u64>> = BTreeMap::new();
    for (start, end, key, query) in calls {
        let seen = ends.entry(key).or_default();
        // Calls come in order of start: one that ended by now overlaps nothing later.
        seen.retain(|_, e| *e > start);
        if seen.keys().any(|q| *q != query) {
            return (true, STATE);
        }
        let e = seen.entry(query).or_default();
        *e = (*e).max(end);
    }
    (false, STATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;

    fn call(end_us: u64, latency_us: u64, service: &str, resource: &str, account: &str) -> Event {
        ev(
            end_us,
            "provider-r",
            PROVIDER_TARGET,
            "call",
            &[
                ("account", json!(account)),
                ("service", json!(service)),
                ("api", json!("AssumeRole")),
                (
                    "principal",
                    json!("arn:aws:sts::100000000001:assumed-role/stampede-worker/i-0"),
                ),
                ("action", json!(format!("{service}:Get"))),
                ("resource", json!(resource)),
                ("outcome", json!("ok")),
                ("latency_us", json!(latency_us)),
            ],
        )
    }

    const SYS: &str = "100000000001";

    fn check(mut events: Vec<Event>) -> Verdict {
        events.sort_by_key(|e| e.t_us);
        coalesced(&EventLog::from_events(events), MAX_IN_FLIGHT)
    }

    #[test]
    fn back_to_back_and_distinct_keys_pass() {
        let v = check(vec![
            // One key, one call after the other ([0, 10), [10, 20)).
            call(10, 10, "sts", "role-1", SYS),
            call(20, 10, "sts", "role-1", SYS),
            // Other keys at the same time.
            call(15, 10, "sts", "role-2", SYS),
            call(15, 10, "glue", "role-1", SYS),
            // S3 and background calls do not count.
            call(15, 10, "s3", "role-1", SYS),
            call(15, 10, "sts", "role-1", "200000000001"),
        ]);
        let Verdict::Pass { counts } = v else {
            panic!("{v:?}")
        };
        assert_eq!(counts["keys"], json!(3));
    }

    #[test]
    fn overlapping_calls_of_one_key_fail() {
        let v = check(vec![
            call(100, 100, "glue", "db.telemetry", SYS),
            call(150, 100, "glue", "db.telemetry", SYS),
            call(160, 100, "glue", "db.telemetry", SYS),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["overlapping_calls"], json!(2));
        assert_eq!(witness.counts["peak_in_flight"], json!(3));
        assert_eq!(witness.events.len(), 2);
        assert_eq!(witness.events[1].t_us, 150);
    }

    #[test]
    fn sometimes_sees_two_queries_reading_one_lake_from_one_node_at_once() {
        let read = |end_us: u64, op: &str, query: &str, bucket: &str| {
            let mut e = call(
                end_us,
                1000,
                "s3",
                &format!("arn:aws:s3:::{bucket}/telemetry/part-0.parquet"),
                "300000000001",
            );
            e.fields.insert("op".into(), json!(op));
            e.fields.insert("query_id".into(), json!(query));
            e
        };
        let log = |events: Vec<Event>| {
            let mut events = events;
            events.sort_by_key(|e| e.t_us);
            EventLog::from_events(events)
        };
        // One query's parallel reads, then another query's after them: nothing to coalesce.
        let apart = log(vec![
            read(1000, "w-0#1.1", "q1", "lake-1"),
            read(1500, "w-0#1.2", "q1", "lake-1"),
            read(3000, "w-0#1.3", "q2", "lake-1"),
        ]);
        assert!(!sometimes(&apart).0);
        // Two nodes, or two lakes, at once: caches are per node and key.
        let elsewhere = log(vec![
            read(1000, "w-0#1.1", "q1", "lake-1"),
            read(1500, "w-1#1.2", "q2", "lake-1"),
            read(1500, "w-0#1.3", "q2", "lake-2"),
        ]);
        assert!(!sometimes(&elsewhere).0);
        let together = log(vec![
            read(1000, "w-0#1.1", "q1", "lake-1"),
            read(1500, "w-0#1.2", "q2", "lake-1"),
        ]);
        assert!(sometimes(&together).0);
    }

    /// An AssumeRole as a node logs it: its instance's role session, its `op`.
    fn assume(end_us: u64, latency_us: u64, principal_node: &str, op_node: &str) -> Event {
        let mut e = call(
            end_us,
            latency_us,
            "sts",
            "arn:aws:iam::300000000007:role/stampede-lake-reader",
            SYS,
        );
        e.fields.insert(
            "principal".into(),
            json!(format!(
                "arn:aws:sts::100000000001:assumed-role/stampede-worker/{principal_node}"
            )),
        );
        e.fields
            .insert("op".into(), json!(format!("{op_node}#0.17")));
        e
    }

    #[test]
    fn two_nodes_fetching_one_role_at_once_pass_even_under_one_principal() {
        // Each node with its own instance session, as the per-instance IMDS gives them.
        let own = check(vec![
            assume(
                78_500_000,
                20_000,
                "worker-eu-west-1-5",
                "worker-eu-west-1-5",
            ),
            assume(
                78_509_000,
                20_000,
                "worker-eu-west-1-7",
                "worker-eu-west-1-7",
            ),
        ]);
        assert_eq!(own.word(), "pass", "{own:?}");
        // Both under one shared principal, as a region's one IMDS session once gave them:
        // still two caches, so still no overlap.
        let shared = check(vec![
            assume(
                78_500_000,
                20_000,
                "provider-eu-west-1",
                "worker-eu-west-1-5",
            ),
            assume(
                78_509_000,
                20_000,
                "provider-eu-west-1",
                "worker-eu-west-1-7",
            ),
        ]);
        assert_eq!(shared.word(), "pass", "{shared:?}");
        // One node twice at once is an overlap, whatever its principal.
        let Verdict::Fail { witness } = check(vec![
            assume(
                78_500_000,
                20_000,
                "worker-eu-west-1-5",
                "worker-eu-west-1-5",
            ),
            assume(
                78_509_000,
                20_000,
                "worker-eu-west-1-5",
                "worker-eu-west-1-5",
            ),
        ]) else {
            panic!("one node's two fetches of one key overlap")
        };
        assert!(
            witness.summary.contains("from worker-eu-west-1-5"),
            "{}",
            witness.summary
        );
    }

    #[test]
    fn no_calls_is_unknown() {
        assert_eq!(check(vec![call(1, 1, "s3", "b", SYS)]).word(), "unknown");
    }
}
