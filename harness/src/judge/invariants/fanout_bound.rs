//! `fanout_bound`: queries do not each pay the provider for the same credential or table: one
//! fetch of a key serves every query that needs it for the cache's lifetime.
//!
//! Checks: the provider `call`s with a non-empty `query_id` (the query that caused them) on the
//! metadata services (`services`, default `sts`, `glue`, `imds`), keyed by (`principal`,
//! `action`, `resource`). What counts is logical operations, the distinct `op`s (the system's
//! retries of one operation are one operation; a call without `op` is an operation of its
//! own), each placed at the start (`t_us − latency_us`) of its first call. For every key and
//! every window `[t, t + ttl)` starting at one of its operations, the operations in the window
//! that succeeded (a call of the operation answered `ok`) are at most `max_per_key`: a cache
//! saves successful fetches. A failed fetch may be fetched again by a new operation, but not
//! without end: all operations in the window, failed or not, are at most `max_per_key` +
//! `failed_refetches` (default 2, as `attempt_cap` allows three tries), so a query that fetches
//! one key twenty times and fails every time fails here too. Fails with the key whose window
//! held the most operations (the earliest of equals).
//!
//! Unknown: no metadata call names a query. Does not check: S3 reads (a query's own data),
//! calls of no query (queue polls, config reads), whether a single query needed the keys it
//! fetched, or how many attempts an operation took (`retry_amplification`, `attempt_cap`).
//! Keys include the client host (the part of `op` before `#`), so two nodes fetching one lake
//! role are two keys: caches are per node.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::calls::{client_host, is_call, started};
use super::obj;
use super::time::{micros, secs};
use super::vocabulary::{PROVIDER_TARGET, TASK_TARGET};
use super::windows::max_in_window;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// Parameters of `fanout_bound`, from the scenario (`invariants: [{fanout_bound: {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The services whose keys a cache should serve. Default `["sts", "glue", "imds"]`.
    pub services: Vec<String>,
    /// The window over which one fetch should serve every query: the cache's lifetime.
    /// Default `15m`.
    pub ttl: Span,
    /// The most operations per key in any window of `ttl`. Default 1.
    pub max_per_key: u64,
    /// New operations allowed on top of `max_per_key` for a key whose fetches failed. Default 2.
    pub failed_refetches: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            services: vec!["sts".into(), "glue".into(), "imds".into()],
            ttl: Span(std::time::Duration::from_secs(15 * 60)),
            max_per_key: 1,
            failed_refetches: 2,
        }
    }
}

/// A (client host, principal, action, resource) key: each node has its own cache.
type Key<'a> = (&'a str, &'a str, &'a str, &'a str);

/// One logical operation: the start and event of its first call, and its query.
struct Operation<'a> {
    start: u64,
    first: &'a Event,
    query: &'a str,
    /// Whether a call of it was answered `ok`.
    ok: bool,
}

/// The metadata calls that name a query, as operations per key, each key's sorted by start.
fn operations<'a>(log: &'a EventLog, p: &Params) -> (BTreeMap<Key<'a>, Vec<Operation<'a>>>, u64) {
    // Per key, per op (the call itself when it has none), the first call.
    let mut by_op: BTreeMap<(Key<'a>, &'a str, usize), Operation<'a>> = BTreeMap::new();
    let mut calls = 0u64;
    for (i, e) in log.of(PROVIDER_TARGET).enumerate() {
        if !is_call(e) {
            continue;
        }
        let query = e.str("query_id").unwrap_or("");
        let service = e.str("service").unwrap_or("");
        if query.is_empty() || !p.services.iter().any(|s| s == service) {
            continue;
        }
        calls += 1;
        let op = e.str("op").unwrap_or("");
        let key = (
            client_host(e),
            e.str("principal").unwrap_or(""),
            e.str("action").unwrap_or(""),
            e.str("resource").unwrap_or(""),
        );
        // Calls without an op are told apart by their place in the log.
        let id = (key, op, if op.is_empty() { i } else { 0 });
        let s = started(e);
        let ok = e.str("outcome") == Some("ok");
        let o = by_op.entry(id).or_insert(Operation {
            start: s,
            first: e,
            query,
            ok,
        });
        o.ok |= ok;
        if s < o.start {
            o.start = s;
            o.first = e;
            o.query = query;
        }
    }
    let mut by_key: BTreeMap<Key<'a>, Vec<Operation<'a>>> = BTreeMap::new();
    for ((key, ..), o) in by_op {
        by_key.entry(key).or_default().push(o);
    }
    for ops in by_key.values_mut() {
        ops.sort_by_key(|o| (o.start, o.first.t_us));
    }
    (by_key, calls)
}

/// Checks that each metadata key is fetched at most `max_per_key` times per `ttl`.
pub fn fanout_bound(log: &EventLog, p: &Params) -> Verdict {
    let (by_key, calls) = operations(log, p);
    if by_key.is_empty() {
        return Verdict::Unknown {
            why: format!(
                "no provider call of {} names a query: fan-out cannot be charged to queries",
                p.services.join(", ")
            ),
        };
    }
    let ttl = micros(p.ttl);
    let mut per_query: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut operations, mut over_keys) = (0u64, 0u64);
    // The worst key: its window's count, start, and index range.
    let mut worst: Option<(u64, u64, Key<'_>, std::ops::Range<usize>)> = None;
    for (key, ops) in &by_key {
        operations += ops.len() as u64;
        for o in ops {
            *per_query.entry(o.query).or_default() += 1;
        }
        let starts: Vec<u64> = ops.iter().map(|o| o.start).collect();
        let ok: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].ok).collect();
        let ok_starts: Vec<u64> = ok.iter().map(|&k| starts[k]).collect();
        let (n_ok, ok_range) = max_in_window(&ok_starts, ttl);
        let (n_all, all_range) = max_in_window(&starts, ttl);
        let (n, range) = if n_ok > p.max_per_key {
            // The successful operations' window, as indices of all operations.
            (n_ok, ok[ok_range.start]..ok[ok_range.end - 1] + 1)
        } else if n_all > p.max_per_key + p.failed_refetches {
            (n_all, all_range)
        } else {
            continue;
        };
        over_keys += 1;
        let at = starts[range.start];
        if worst
            .as_ref()
            .is_none_or(|(m, t, ..)| n > *m || (n == *m && at < *t))
        {
            worst = Some((n, at, *key, range));
        }
    }
    let queries = per_query.len() as u64;
    let max_per_query = per_query.values().copied().max().unwrap_or(0);
    let mut counts = obj(json!({
        "queries": queries,
        "keys": by_key.len(),
        "operations": operations,
        "calls": calls,
        "operations_per_query": operations as f64 / queries.max(1) as f64,
        "max_operations_per_query": max_per_query,
    }));
    let Some((n, at, (host, principal, action, resource), range)) = worst else {
        return Verdict::Pass { counts };
    };
    let ops = &by_key[&(host, principal, action, resource)][range];
    let queries_of_key: BTreeSet<&str> = ops.iter().map(|o| o.query).collect();
    counts.insert("key_operations".into(), n.into());
    counts.insert("key_queries".into(), queries_of_key.len().into());
    counts.insert("keys_over".into(), over_keys.into());
    counts.insert("window_start_us".into(), at.into());
    counts.insert("principal".into(), principal.into());
    counts.insert("action".into(), action.into());
    counts.insert("resource".into(), resource.into());
    counts.insert(
        "queries_of_key".into(),
        json!(
            queries_of_key
                .iter()
                .take(WITNESS_EVENTS)
                .collect::<Vec<_>>()
        ),
    );
    let summary = format!(
        "{action} of {resource} by {principal} was fetched in {n} operations for {} queries within [{}, {}), over {} per {}; {over_keys} keys over the bound",
        queries_of_key.len(),
        secs(at),
        secs(at + ttl),
        p.max_per_key,
        secs(ttl),
    );
    Verdict::Fail {
        witness: Witness {
            summary,
            counts,
            events: ops
                .iter()
                .take(WITNESS_EVENTS)
                .map(|o| o.first.clone())
                .collect(),
        },
    }
}

/// Whether two queries needed the same key while it could serve both: calls of one key by two
/// queries, or tasks of two queries on one lake within `ttl` of each other. The second is what
/// a working cache shows: the second query then makes no call, so calls alone would say the
/// state was never reached exactly when the cache does its job.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    const STATE: &str = "two queries needed the same key";
    let (by_key, _) = operations(log, p);
    let shared_call = by_key.values().any(|ops| {
        let mut queries = ops.iter().map(|o| o.query);
        let first = queries.next();
        queries.any(|q| Some(q) != first)
    });
    if shared_call {
        return (true, STATE);
    }
    let ttl = micros(p.ttl);
    let mut by_lake: BTreeMap<u64, Vec<(u64, &str)>> = BTreeMap::new();
    for e in log.of(TASK_TARGET) {
        if e.name != "task_done" && e.name != "task_failed" {
            continue;
        }
        if let (Some(lake), Some(query)) = (e.u64("lake"), e.str("query_id")) {
            by_lake.entry(lake).or_default().push((e.t_us, query));
        }
    }
    let shared_lake = by_lake.into_values().any(|mut tasks| {
        tasks.sort_unstable();
        // The latest task, and the latest of a query other than its.
        let mut last: Option<(u64, &str)> = None;
        let mut last_other: Option<u64> = None;
        for (t, q) in tasks {
            if let Some((lt, lq)) = last {
                let other = if lq != q { Some(lt) } else { last_other };
                if other.is_some_and(|o| t - o < ttl) {
                    return true;
                }
                if lq != q {
                    last_other = Some(lt);
                }
            }
            last = Some((t, q));
        }
        false
    });
    (shared_lake, STATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;

    const MIN_US: u64 = 60_000_000;

    fn call(t_us: u64, resource: &str, op: &str, attempt: u64, query: &str) -> Event {
        ev(
            t_us,
            "provider-r",
            PROVIDER_TARGET,
            "call",
            &[
                ("account", json!("100000000001")),
                ("service", json!("sts")),
                ("api", json!("AssumeRole")),
                (
                    "principal",
                    json!("arn:aws:iam::100000000001:role/worker-r-0"),
                ),
                ("action", json!("sts:AssumeRole")),
                ("resource", json!(resource)),
                ("outcome", json!("ok")),
                ("latency_us", json!(1000)),
                ("op", json!(op)),
                ("attempt", json!(attempt)),
                ("query_id", json!(query)),
            ],
        )
    }

    fn task(t_us: u64, lake: u64, query: &str) -> Event {
        ev(
            t_us,
            "worker-r-0",
            TASK_TARGET,
            "task_done",
            &[("query_id", json!(query)), ("lake", json!(lake))],
        )
    }

    fn log(mut events: Vec<Event>) -> EventLog {
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn one_fetch_per_key_and_ttl_passes() {
        // Two lakes' roles, each fetched once (one retried), then again after the cache
        // expired; a third query rides the cache with a task only.
        let e = vec![
            call(1000, "role/lake-1", "worker-r-0#0.1", 1, "q1"),
            call(3000, "role/lake-1", "worker-r-0#0.1", 2, "q1"),
            call(2000, "role/lake-2", "worker-r-0#0.2", 1, "q2"),
            call(16 * MIN_US, "role/lake-1", "worker-r-0#0.3", 1, "q3"),
            // A queue poll names no query.
            call(5000, "role/lake-1", "worker-r-0#0.4", 1, ""),
        ];
        let v = fanout_bound(&log(e), &Params::default());
        let Verdict::Pass { counts } = v else {
            panic!("must pass: {v:?}")
        };
        assert_eq!(counts["queries"], json!(3));
        assert_eq!(counts["keys"], json!(2));
        assert_eq!(counts["operations"], json!(3));
        assert_eq!(counts["calls"], json!(4));
    }

    #[test]
    fn each_query_fetching_the_same_role_fails() {
        // Ten queries each fetch lake 1's role within a minute: no cache, no coalescing.
        let mut e: Vec<Event> = (0..10)
            .map(|k| {
                call(
                    k * 5_000_000 + 1000,
                    "role/lake-1",
                    &format!("worker-r-0#0.{k}"),
                    1,
                    &format!("q{k}"),
                )
            })
            .collect();
        // Lake 2 twice: over the bound too, but less so.
        e.push(call(1000, "role/lake-2", "worker-r-0#0.20", 1, "q0"));
        e.push(call(2000, "role/lake-2", "worker-r-0#0.21", 1, "q1"));
        let Verdict::Fail { witness } = fanout_bound(&log(e), &Params::default()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["key_operations"], json!(10));
        assert_eq!(witness.counts["key_queries"], json!(10));
        assert_eq!(witness.counts["keys_over"], json!(2));
        assert_eq!(witness.counts["resource"], json!("role/lake-1"));
        assert!(
            witness.summary.contains("10 operations for 10 queries"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
        assert_eq!(witness.events[0].t_us, 1000);
        assert_eq!(witness.events[1].str("query_id"), Some("q1"));
    }

    #[test]
    fn failed_fetches_may_be_fetched_again_but_not_without_end() {
        let failed = |t: u64, op: &str| {
            let mut e = call(t, "role/lake-1", op, 1, "q1");
            e.fields.insert("outcome".into(), json!("throttled"));
            e
        };
        // Two failed operations, then one that succeeds: within the bound.
        let e = vec![
            failed(1000, "a#0.1"),
            failed(2000, "a#0.2"),
            call(3000, "role/lake-1", "a#0.3", 1, "q1"),
        ];
        let v = fanout_bound(&EventLog::from_events(e), &Params::default());
        assert_eq!(v.word(), "pass", "{v:?}");
        // Twenty operations of one query on one key, every one failed: over it.
        let e: Vec<Event> = (0..20)
            .map(|k| failed(1000 + k * 1000, &format!("a#0.{k}")))
            .collect();
        let Verdict::Fail { witness } = fanout_bound(&EventLog::from_events(e), &Params::default())
        else {
            panic!("twenty fetches of one key")
        };
        assert_eq!(witness.counts["key_operations"], json!(20));
    }

    #[test]
    fn a_looser_bound_or_shorter_ttl_passes() {
        let e = vec![
            call(1000, "role/lake-1", "a#0.1", 1, "q1"),
            call(2 * MIN_US, "role/lake-1", "a#0.2", 1, "q2"),
        ];
        assert!(fanout_bound(&log(e.clone()), &Params::default()).is_fail());
        let p = Params {
            ttl: Span(std::time::Duration::from_secs(60)),
            ..Params::default()
        };
        assert_eq!(fanout_bound(&log(e.clone()), &p).word(), "pass");
        let p = Params {
            max_per_key: 2,
            ..Params::default()
        };
        assert_eq!(fanout_bound(&log(e), &p).word(), "pass");
    }

    #[test]
    fn no_query_on_metadata_calls_is_unknown() {
        let e = vec![call(1000, "role/lake-1", "a#0.1", 1, "")];
        let Verdict::Unknown { why } = fanout_bound(&log(e), &Params::default()) else {
            panic!("must be unknown")
        };
        assert!(why.contains("names a query"), "{why}");
        // Calls of a service outside the list do not count either.
        let e = vec![call(1000, "role/lake-1", "a#0.1", 1, "q1")];
        let p = Params {
            services: vec!["glue".into()],
            ..Params::default()
        };
        assert_eq!(fanout_bound(&log(e), &p).word(), "unknown");
    }

    #[test]
    fn an_operation_that_succeeded_on_a_retry_is_a_successful_fetch() {
        // Two operations on one key: the first throttled, then answered on its retry.
        let mut throttled = call(1000, "role/lake-1", "a#0.1", 1, "q1");
        throttled
            .fields
            .insert("outcome".into(), json!("throttled"));
        let e = vec![
            throttled,
            call(2000, "role/lake-1", "a#0.1", 2, "q1"),
            call(3000, "role/lake-1", "a#0.2", 1, "q2"),
            call(4000, "role/lake-2", "a#0.3", 1, "q2"),
        ];
        let Verdict::Fail { witness } = fanout_bound(&log(e), &Params::default()) else {
            panic!("two successful fetches of one key")
        };
        assert_eq!(witness.counts["key_operations"], json!(2));
        assert_eq!(witness.counts["max_operations_per_query"], json!(2));
        assert_eq!(witness.counts["operations_per_query"], json!(1.5));
    }

    #[test]
    fn an_operation_starts_with_its_earliest_call_whatever_the_log_order() {
        // Operation a#0.1's second call is logged first but began later; a tie in start keeps
        // the call logged first.
        let slow = |t: u64, latency: u64, op: &str, q: &str| {
            let mut e = call(t, "role/lake-1", op, 1, q);
            e.fields.insert("latency_us".into(), json!(latency));
            e
        };
        let e = vec![
            slow(3000, 1000, "a#0.1", "q1"),
            slow(5000, 4000, "a#0.1", "q1"),
            slow(8000, 1000, "a#0.2", "q2"),
            slow(9000, 2000, "a#0.2", "q2"),
        ];
        let Verdict::Fail { witness } = fanout_bound(&EventLog::from_events(e), &Params::default())
        else {
            panic!("two fetches of one key")
        };
        assert_eq!(witness.counts["window_start_us"], json!(1000));
        let firsts: Vec<u64> = witness.events.iter().map(|e| e.t_us).collect();
        assert_eq!(firsts, vec![5000, 8000]);
    }

    #[test]
    fn the_worst_key_has_the_most_operations_then_the_earliest_window() {
        // (resource, operations, start of the first): e and f tie c, later and at once.
        let keys = [
            ("role/a", 3, 1000),
            ("role/b", 5, 9000),
            ("role/c", 5, 2000),
            ("role/d", 4, 500),
            ("role/e", 5, 3000),
            ("role/f", 5, 2000),
        ];
        let mut e = Vec::new();
        for (r, n, at) in keys {
            for k in 0..n {
                let t = at + 1000 + k * 10;
                e.push(call(t, r, &format!("{r}#0.{k}"), 1, &format!("q{k}")));
            }
        }
        let Verdict::Fail { witness } = fanout_bound(&log(e), &Params::default()) else {
            panic!("six keys over the bound")
        };
        assert_eq!(witness.counts["resource"], json!("role/c"));
        assert_eq!(witness.counts["key_operations"], json!(5));
        assert_eq!(witness.counts["keys_over"], json!(6));
    }

    #[test]
    fn sometimes_sees_two_queries_on_one_key() {
        let p = Params::default();
        // One query alone: not reached.
        let e = vec![
            call(1000, "role/lake-1", "a#0.1", 1, "q1"),
            task(2000, 1, "q1"),
            task(3000, 1, "q1"),
        ];
        assert!(!sometimes(&log(e), &p).0);
        // Two queries' calls on one key.
        let e = vec![
            call(1000, "role/lake-1", "a#0.1", 1, "q1"),
            call(2000, "role/lake-1", "a#0.2", 1, "q2"),
        ];
        assert_eq!(
            sometimes(&log(e), &p),
            (true, "two queries needed the same key")
        );
        // One call, but a second query's task on the lake a minute later (a cache hit).
        let e = vec![
            call(1000, "role/lake-1", "a#0.1", 1, "q1"),
            task(2000, 1, "q1"),
            task(3000, 1, "q1"),
            task(MIN_US, 1, "q2"),
        ];
        assert!(sometimes(&log(e), &p).0);
        // The second query came after the cache's lifetime.
        let e = vec![task(2000, 1, "q1"), task(20 * MIN_US, 1, "q2")];
        assert!(!sometimes(&log(e), &p).0);
        // Exactly the lifetime apart is after it; two minutes apart late in the run is within.
        let e = vec![task(0, 1, "q1"), task(15 * MIN_US, 1, "q2")];
        assert!(!sometimes(&log(e), &p).0);
        let e = vec![task(10 * MIN_US, 1, "q1"), task(12 * MIN_US, 1, "q2")];
        assert!(sometimes(&log(e), &p).0);
        // One query calling one key twice is not two queries.
        let e = vec![
            call(1000, "role/lake-1", "a#0.1", 1, "q1"),
            call(2000, "role/lake-1", "a#0.2", 1, "q1"),
        ];
        assert!(!sometimes(&log(e), &p).0);
        // A query's own tasks are measured against the other query's latest, not its own.
        let e = vec![
            task(0, 1, "q1"),
            task(20 * MIN_US, 1, "q2"),
            task(21 * MIN_US, 1, "q2"),
            task(22 * MIN_US, 1, "q2"),
        ];
        assert!(!sometimes(&log(e), &p).0);
    }
}
