//! `retry_hygiene`: retries done right. A retry honours the provider's `Retry-After`; nothing
//! retries an error that retrying cannot cure; no attempt begins after its query's deadline.
//!
//! Checks three clauses:
//! 1. Retry-After: every `stampede::mechanism` `retry` event with `retry_after_us > 0` (the
//!    provider answered with `Retry-After`) has `delay_us ≥ retry_after_us`: the retry waits at
//!    least as long as it was told. `delay_us` is the wait the guard chose before its next
//!    attempt; the local rate limiter may add to it, never take from it. This clause reads
//!    the guard's own report: the provider's log does not say what an answer's headers were.
//!    And no fake sends `Retry-After` (the AWS services they imitate do not on throttles), so
//!    in every scenario today the clause is never reached: `with_retry_after` is 0 in the
//!    counts, a pass says nothing about it, and it is left out of the sometimes state.
//! 2. No retry after a non-retryable error: the system's provider `call`s (non-empty `op`, the
//!    same on every retry of one logical operation) grouped by `op`. A call is non-retryable
//!    when its outcome is `frozen`, or `error` with a `code` not in `retryable_codes`
//!    (`throttled` and `timeout` are retryable). An op fails when, after its attempt n ended
//!    non-retryable, a call of a higher `attempt` began (`t_us − latency_us`) at or after that
//!    end: an attempt sent before the error came back (its predecessor timed out at the client)
//!    did not retry the error. Calls without an `attempt` (0) are not judged.
//!    The queue's redelivery is a retry too, of the whole task: across the deliveries of one
//!    task message, the same logical operation ([`logical_operations`]: the k-th call on one
//!    api and resource in each delivery) fails when, after it ended non-retryable in delivery
//!    n, a later delivery (a higher `receive`) tried it again, beginning at or after that end.
//!    A redelivery may cure what the guard may not retry, and is not judged on it: a frozen
//!    account (the freeze ends by itself, and the drain controller holds the backlog until it
//!    does), a lookup of something absent (the next delivery reads the table afresh), and the
//!    codes in `redeliverable_codes` (credentials or a signature too old: the next delivery
//!    brings new ones).
//! 3. No attempt after the deadline: each system call with a `query_id` whose `stampede::query`
//!    `accepted` carries `deadline_ms > 0` must begin by the deadline (`accepted` time +
//!    `deadline_ms`) plus `grace`. A call that began in time may end after it. Queries without
//!    a deadline, and query ids no `accepted` names, are skipped.
//!
//! Never unknown: a log with no retries and no deadlines passes with zero counts (the
//! sometimes check says whether the run got there). Does not check: retries by layers that log
//! no `op` or `attempt` (an SDK's own retries, visible only as `sdk_attempt`; real clients);
//! whether a retryable error was retried at all; backoff between retries that had no
//! `Retry-After`; deadlines of work no query owns (background refreshes); that the deadline
//! the system propagates is the one the query was accepted with.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::calls::{is_absent, is_system_call, started};
use super::obj;
use super::operations::{delivery, logical_operations};
use super::time::{micros, secs};
use super::vocabulary::{MECHANISM_TARGET, PROVIDER_TARGET, QUERY_TARGET};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// Parameters of `retry_hygiene`, from the scenario (`invariants: [{retry_hygiene: {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The error codes a client may retry: a call that ended `error` with another code is not
    /// to be retried. Default: `InternalError`, `InternalFailure`, `InternalServiceException`,
    /// `ServiceUnavailable`, `SlowDown`, `RequestTimeout`, `Throttling`, `ThrottlingException`,
    /// `TooManyRequestsException`, `RequestLimitExceeded`.
    pub retryable_codes: Vec<String>,
    /// How long after a query's deadline an attempt may still begin. Default `0s`.
    pub grace: Span,
    /// Error codes that end a call non-retryable but that a later delivery of its task may
    /// cure, bringing fresh credentials and a fresh signature. Default: `ExpiredToken`,
    /// `ExpiredTokenException`, `RequestExpired`.
    pub redeliverable_codes: Vec<String>,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            retryable_codes: [
                "InternalError",
                "InternalFailure",
                // The fake Glue's 503 (and the real one's 5xx).
                "InternalServiceException",
                "ServiceUnavailable",
                "SlowDown",
                "RequestTimeout",
                "Throttling",
                "ThrottlingException",
                "TooManyRequestsException",
                "RequestLimitExceeded",
            ]
            .map(String::from)
            .to_vec(),
            grace: Span(std::time::Duration::ZERO),
            redeliverable_codes: ["ExpiredToken", "ExpiredTokenException", "RequestExpired"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// One violation: the events that show it, and the time of the one at fault.
struct Offence<'a> {
    at_us: u64,
    events: Vec<&'a Event>,
}

/// Clause 1: the retries, those told to wait, and those that came early (in time order).
struct RetryAfter<'a> {
    retries: usize,
    told: usize,
    early: Vec<&'a Event>,
}

fn retry_after(log: &EventLog) -> RetryAfter<'_> {
    let retries: Vec<&Event> = log
        .of(MECHANISM_TARGET)
        .filter(|e| e.name == "retry")
        .collect();
    let told: Vec<&Event> = retries
        .iter()
        .copied()
        .filter(|e| e.u64("retry_after_us").is_some_and(|d| d > 0))
        .collect();
    let mut early: Vec<&Event> = told
        .iter()
        .copied()
        .filter(|e| e.u64("delay_us").unwrap_or(0) < e.u64("retry_after_us").unwrap_or(0))
        .collect();
    early.sort_by_key(|e| e.t_us);
    RetryAfter {
        retries: retries.len(),
        told: told.len(),
        early,
    }
}

/// Whether a call's end forbids a retry.
fn non_retryable(e: &Event, p: &Params) -> bool {
    match e.str("outcome") {
        Some("frozen") => true,
        Some("error") => {
            let code = e.str("code").unwrap_or("");
            !p.retryable_codes.iter().any(|c| c == code)
        }
        _ => false,
    }
}

/// A call's attempt, when it has one (from 1).
fn attempt(e: &Event) -> Option<u64> {
    e.u64("attempt").filter(|&a| a > 0)
}

/// Clause 2: per op, the first non-retryable call that was retried and its retry.
struct NoRetry<'a> {
    ops: usize,
    non_retryable: usize,
    /// (the non-retryable call, the retry), by the retry's time.
    retried: Vec<(&'a Event, &'a Event)>,
}

fn no_retry<'a>(log: &'a EventLog, p: &Params) -> NoRetry<'a> {
    let mut ops: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in log.of(PROVIDER_TARGET).filter(|e| is_system_call(e)) {
        if attempt(e).is_some() {
            ops.entry(e.str("op").unwrap_or("")).or_default().push(e);
        }
    }
    let (mut non_retryable_calls, mut retried) = (0usize, Vec::new());
    for calls in ops.values_mut() {
        calls.sort_by_key(|e| (attempt(e), started(e), e.t_us));
        let mut first: Option<(&Event, &Event)> = None;
        for c in calls.iter().copied().filter(|c| non_retryable(c, p)) {
            non_retryable_calls += 1;
            if first.is_some() {
                continue;
            }
            let n = attempt(c);
            first = calls
                .iter()
                .copied()
                .find(|r| attempt(r) > n && started(r) >= c.t_us)
                .map(|r| (c, r));
        }
        retried.extend(first);
    }
    retried.sort_by_key(|(c, r)| (r.t_us, c.t_us));
    NoRetry {
        ops: ops.len(),
        non_retryable: non_retryable_calls,
        retried,
    }
}

/// Whether a call's end forbids a redelivery of its task: non-retryable, and not something a
/// later delivery may cure (a freeze, something absent, `redeliverable_codes`).
fn incurable(e: &Event, p: &Params) -> bool {
    e.str("outcome") == Some("error")
        && non_retryable(e, p)
        && !is_absent(e)
        && !p
            .redeliverable_codes
            .iter()
            .any(|c| Some(c.as_str()) == e.str("code"))
}

/// The queue's receive count of the delivery a call works on.
fn receive(e: &Event) -> Option<u64> {
    delivery(e).map(|(_, r)| r)
}

/// Clause 2 across the queue: per logical operation of a task, the first call that ended
/// incurably and a call of a later delivery that tried it again after that end; by the
/// retry's time.
fn redelivered<'a>(log: &'a EventLog, p: &Params) -> Vec<(&'a Event, &'a Event)> {
    let mut out = Vec::new();
    for l in logical_operations(log).values() {
        if !l.queue_retried() {
            continue;
        }
        let first = l
            .calls
            .iter()
            .copied()
            .filter(|c| incurable(c, p))
            .find_map(|c| {
                let n = receive(c)?;
                l.calls
                    .iter()
                    .copied()
                    .filter(|r| receive(r).is_some_and(|m| m > n) && started(r) >= c.t_us)
                    .min_by_key(|r| (started(r), r.t_us))
                    .map(|r| (c, r))
            });
        out.extend(first);
    }
    out.sort_by_key(|(c, r)| (r.t_us, c.t_us));
    out
}

/// The first `accepted` of each query that has a deadline, with the deadline's instant.
fn deadlines(log: &EventLog) -> BTreeMap<&str, (&Event, u64)> {
    let mut out = BTreeMap::new();
    for e in log.of(QUERY_TARGET).filter(|e| e.name == "accepted") {
        let (Some(id), Some(ms)) = (e.str("query_id"), e.u64("deadline_ms")) else {
            continue;
        };
        if id.is_empty() || ms == 0 {
            continue;
        }
        let at = e.t_us.saturating_add(ms.saturating_mul(1000));
        out.entry(id)
            .and_modify(|d: &mut (&Event, u64)| {
                if e.t_us < d.0.t_us {
                    *d = (e, at);
                }
            })
            .or_insert((e, at));
    }
    out
}

/// The system's calls for a query that has a deadline, with its `accepted` and deadline.
fn deadline_calls(log: &EventLog) -> Vec<(&Event, &Event, u64)> {
    let deadlines = deadlines(log);
    log.of(PROVIDER_TARGET)
        .filter(|e| is_system_call(e))
        .filter_map(|e| {
            let (accepted, at) = deadlines.get(e.str("query_id")?)?;
            Some((e, *accepted, *at))
        })
        .collect()
}

/// Clause 3: the calls judged, the queries they serve, and those that began too late (by start).
struct Deadline<'a> {
    calls: usize,
    queries: usize,
    /// (the late call, its query's `accepted`, the deadline's instant).
    late: Vec<(&'a Event, &'a Event, u64)>,
}

fn deadline<'a>(log: &'a EventLog, p: &Params) -> Deadline<'a> {
    let calls = deadline_calls(log);
    let grace = micros(p.grace);
    let queries = calls
        .iter()
        .filter_map(|(e, ..)| e.str("query_id"))
        .collect::<BTreeSet<_>>()
        .len();
    let mut late: Vec<(&Event, &Event, u64)> = calls
        .iter()
        .copied()
        .filter(|(e, _, at)| started(e) > at.saturating_add(grace))
        .collect();
    late.sort_by_key(|(e, ..)| (started(e), e.t_us));
    Deadline {
        calls: calls.len(),
        queries,
        late,
    }
}

/// The witness's events: the first offence of each failing clause, then the others in time,
/// whole offences while they fit, at most [`WITNESS_EVENTS`], in time order.
fn witness_events(clauses: Vec<Vec<Offence<'_>>>) -> Vec<Event> {
    let mut firsts = Vec::new();
    let mut rest = Vec::new();
    for clause in clauses {
        let mut it = clause.into_iter();
        firsts.extend(it.next());
        rest.extend(it);
    }
    firsts.sort_by_key(|o| o.at_us);
    rest.sort_by_key(|o| o.at_us);
    let mut shown: Vec<&Event> = Vec::new();
    for o in firsts.into_iter().chain(rest) {
        let new: Vec<&Event> = o
            .events
            .into_iter()
            .filter(|e| !shown.iter().any(|s| std::ptr::eq(*s, *e)))
            .collect();
        if shown.len() + new.len() <= WITNESS_EVENTS {
            shown.extend(new);
        }
    }
    shown.sort_by_key(|e| e.t_us);
    shown.into_iter().cloned().collect()
}

/// Checks that retries wait as long as `Retry-After` says, that no non-retryable error is
/// retried, and that no attempt begins after its query's deadline.
pub fn retry_hygiene(log: &EventLog, p: &Params) -> Verdict {
    let ra = retry_after(log);
    let nr = no_retry(log, p);
    let rd = redelivered(log, p);
    let dl = deadline(log, p);
    let mut counts = obj(json!({
        "retries": ra.retries,
        "with_retry_after": ra.told,
        "ops": nr.ops,
        "non_retryable": nr.non_retryable,
        "deadline_calls": dl.calls,
        "queries_with_deadline": dl.queries,
    }));
    if ra.early.is_empty() && nr.retried.is_empty() && rd.is_empty() && dl.late.is_empty() {
        return Verdict::Pass { counts };
    }
    let mut summary = Vec::new();
    if let Some(first) = ra.early.first() {
        summary.push(format!(
            "{} of {} retries told to wait by Retry-After came early, the first on {} at t={} ({} api): waited {} µs of {} µs",
            ra.early.len(),
            ra.told,
            first.host,
            secs(first.t_us),
            first.str("api").unwrap_or("?"),
            first.u64("delay_us").unwrap_or(0),
            first.u64("retry_after_us").unwrap_or(0)
        ));
    }
    if let Some((call, retry)) = nr.retried.first() {
        summary.push(format!(
            "{} of {} operations were retried after a non-retryable error, the first {} ({} api): attempt {} ended {} {} at t={}, attempt {} began at t={}",
            nr.retried.len(),
            nr.ops,
            call.str("op").unwrap_or("?"),
            call.str("api").unwrap_or("?"),
            attempt(call).unwrap_or(0),
            call.str("outcome").unwrap_or("?"),
            call.str("code").unwrap_or(""),
            secs(call.t_us),
            attempt(retry).unwrap_or(0),
            secs(started(retry))
        ));
    }
    if let Some((call, retry)) = rd.first() {
        summary.push(format!(
            "{} operations were tried again by a redelivery of their task after a non-retryable error, the first {} on {} (message {}): delivery {} ended {} {} at t={}, delivery {} began it again at t={}",
            rd.len(),
            call.str("api").unwrap_or("?"),
            call.str("resource").unwrap_or("?"),
            delivery(call).map_or("?", |(m, _)| m),
            receive(call).unwrap_or(0),
            call.str("outcome").unwrap_or("?"),
            call.str("code").unwrap_or(""),
            secs(call.t_us),
            receive(retry).unwrap_or(0),
            secs(started(retry))
        ));
    }
    if let Some((call, accepted, at)) = dl.late.first() {
        summary.push(format!(
            "{} of {} calls for queries with a deadline began after it, the first {} ({} api, attempt {}) of query {} at t={}, {} after its deadline at t={} (accepted at t={})",
            dl.late.len(),
            dl.calls,
            call.str("op").unwrap_or("?"),
            call.str("api").unwrap_or("?"),
            attempt(call).unwrap_or(0),
            call.str("query_id").unwrap_or("?"),
            secs(started(call)),
            secs(started(call) - at),
            secs(*at),
            secs(accepted.t_us)
        ));
    }
    counts.insert("early".into(), ra.early.len().into());
    counts.insert(
        "retried_after_non_retryable".into(),
        nr.retried.len().into(),
    );
    counts.insert("redelivered_after_non_retryable".into(), rd.len().into());
    counts.insert("late_attempts".into(), dl.late.len().into());
    let events = witness_events(vec![
        ra.early
            .iter()
            .map(|e| Offence {
                at_us: e.t_us,
                events: vec![*e],
            })
            .collect(),
        nr.retried
            .iter()
            .map(|(c, r)| Offence {
                at_us: r.t_us,
                events: vec![*c, *r],
            })
            .collect(),
        rd.iter()
            .map(|(c, r)| Offence {
                at_us: r.t_us,
                events: vec![*c, *r],
            })
            .collect(),
        dl.late
            .iter()
            .map(|(c, a, _)| Offence {
                at_us: c.t_us,
                events: vec![*a, *c],
            })
            .collect(),
    ]);
    Verdict::Fail {
        witness: Witness {
            summary: summary.join("; "),
            counts,
            events,
        },
    }
}

/// Whether the run reached the state that gives the verdict meaning: each clause that can
/// judge something here had something to judge. One of the system's attempts ended in an
/// error that retrying cannot cure (clause 2), and a query with a deadline made calls (clause
/// 3). Clause 1 is left out of the state, since no fake sends `Retry-After`; a retry alone,
/// which any injected fault makes, no longer reaches it.
pub fn sometimes(log: &EventLog, p: &Params) -> (bool, &'static str) {
    // Clause 2 had something to judge: one of the system's attempts ended in an error that
    // retrying cannot cure (a lookup of something absent is an answer, not such an error).
    let refused = log.of(PROVIDER_TARGET).any(|e| {
        is_system_call(e)
            && attempt(e).is_some()
            && non_retryable(e, p)
            && !super::calls::is_absent(e)
    });
    // Clause 1 is not part of the state: no service the fakes imitate sends `Retry-After`.
    (
        refused && !deadline_calls(log).is_empty(),
        "one of the system's attempts ended in an error retrying cannot cure, and a query with a deadline made calls",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;

    const MS: u64 = 1_000;
    const S: u64 = 1_000_000;

    fn retry(t_us: u64, delay_us: u64, retry_after_us: u64) -> Event {
        ev(
            t_us,
            "worker-r-0",
            MECHANISM_TARGET,
            "retry",
            &[
                ("api", json!("AssumeRole")),
                ("attempt", json!(1)),
                ("delay_us", json!(delay_us)),
                ("retry_after_us", json!(retry_after_us)),
            ],
        )
    }

    /// A provider call of `op`, attempt `attempt`, that ended at `t_us` after `latency_us`.
    fn call(
        t_us: u64,
        latency_us: u64,
        op: &str,
        attempt: u64,
        query_id: &str,
        outcome: &str,
        code: &str,
    ) -> Event {
        ev(
            t_us,
            "provider-r",
            PROVIDER_TARGET,
            "call",
            &[
                ("api", json!("GetObject")),
                ("op", json!(op)),
                ("attempt", json!(attempt)),
                ("query_id", json!(query_id)),
                ("outcome", json!(outcome)),
                ("code", json!(code)),
                ("latency_us", json!(latency_us)),
            ],
        )
    }

    fn accepted(t_us: u64, query_id: &str, deadline_ms: u64) -> Event {
        ev(
            t_us,
            "coordinator-r",
            QUERY_TARGET,
            "accepted",
            &[
                ("query_id", json!(query_id)),
                ("deadline_ms", json!(deadline_ms)),
            ],
        )
    }

    fn check(events: Vec<Event>) -> Verdict {
        retry_hygiene(&EventLog::from_events(events), &Params::default())
    }

    #[test]
    fn waiting_at_least_retry_after_passes() {
        // Without Retry-After any delay will do; with it, at least that long.
        let Verdict::Pass { counts } = check(vec![
            retry(1, 10, 0),
            retry(2, 1_000_000, 1_000_000),
            retry(3, 2_000_000, 1_000_000),
        ]) else {
            panic!("must pass")
        };
        assert_eq!(counts["with_retry_after"], json!(2));
        assert_eq!(counts["retries"], json!(3));
    }

    #[test]
    fn retrying_before_retry_after_fails() {
        let Verdict::Fail { witness } = check(vec![
            retry(1, 2_000_000, 1_000_000),
            retry(5, 999_999, 1_000_000),
        ]) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["early"], json!(1));
        assert_eq!(witness.counts["retried_after_non_retryable"], json!(0));
        assert_eq!(witness.events.len(), 1);
        assert_eq!(witness.events[0].t_us, 5);
        assert!(
            witness.summary.contains("Retry-After"),
            "{}",
            witness.summary
        );
    }

    #[test]
    fn no_retries_pass() {
        let Verdict::Pass { counts } = check(vec![]) else {
            panic!("an empty log passes")
        };
        assert_eq!(counts["ops"], json!(0));
        assert_eq!(counts["deadline_calls"], json!(0));
    }

    #[test]
    fn retrying_retryable_errors_and_giving_up_on_others_passes() {
        let Verdict::Pass { counts } = check(vec![
            // Throttled, timed out, 5xx: each may be retried.
            call(10 * MS, MS, "w#1.1", 1, "", "throttled", "SlowDown"),
            call(20 * MS, MS, "w#1.1", 2, "", "timeout", ""),
            call(30 * MS, MS, "w#1.1", 3, "", "error", "InternalError"),
            call(40 * MS, MS, "w#1.1", 4, "", "ok", ""),
            // Not found and frozen: given up on at once.
            call(10 * MS, MS, "w#1.2", 1, "", "error", "NoSuchKey"),
            call(10 * MS, MS, "w#1.3", 1, "", "frozen", "AccountProblem"),
            // Calls of no op (background, real clients) are not the system's.
            call(10 * MS, MS, "", 1, "", "error", "AccessDenied"),
            call(20 * MS, MS, "", 2, "", "error", "AccessDenied"),
        ]) else {
            panic!("must pass")
        };
        assert_eq!(counts["ops"], json!(3));
        assert_eq!(counts["non_retryable"], json!(2));
    }

    #[test]
    fn retrying_a_non_retryable_error_fails() {
        let Verdict::Fail { witness } = check(vec![
            call(10 * MS, MS, "w#1.1", 1, "", "error", "AccessDenied"),
            call(60 * MS, MS, "w#1.1", 2, "", "error", "AccessDenied"),
            call(90 * MS, MS, "w#1.1", 3, "", "ok", ""),
            call(10 * MS, MS, "w#1.2", 1, "", "frozen", "AccountProblem"),
            call(30 * MS, MS, "w#1.2", 2, "", "frozen", "AccountProblem"),
            call(10 * MS, MS, "w#1.3", 1, "", "error", "InternalError"),
            call(30 * MS, MS, "w#1.3", 2, "", "ok", ""),
        ]) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["retried_after_non_retryable"], json!(2));
        assert_eq!(witness.counts["early"], json!(0));
        assert_eq!(witness.counts["late_attempts"], json!(0));
        // Each op's first non-retryable call and its retry, in time order.
        let shown: Vec<(u64, &str, u64)> = witness
            .events
            .iter()
            .map(|e| (e.t_us, e.str("op").unwrap(), e.u64("attempt").unwrap()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (10 * MS, "w#1.2", 1),
                (10 * MS, "w#1.1", 1),
                (30 * MS, "w#1.2", 2),
                (60 * MS, "w#1.1", 2),
            ]
        );
        assert!(
            witness.summary.contains("w#1.2") && witness.summary.contains("frozen"),
            "{}",
            witness.summary
        );
    }

    #[test]
    fn an_attempt_sent_before_the_error_came_back_is_no_retry_of_it() {
        // Attempt 1 timed out at the client and attempt 2 went out at 20 ms; attempt 1's
        // answer, a non-retryable error, came back only at 50 ms.
        assert_eq!(
            check(vec![
                call(50 * MS, 50 * MS, "w#1.1", 1, "", "error", "AccessDenied"),
                call(30 * MS, 10 * MS, "w#1.1", 2, "", "ok", ""),
            ])
            .word(),
            "pass"
        );
    }

    #[test]
    fn retryable_codes_decide_what_may_be_retried() {
        let log = EventLog::from_events(vec![
            call(10 * MS, MS, "w#1.1", 1, "", "error", "NoSuchKey"),
            call(30 * MS, MS, "w#1.1", 2, "", "ok", ""),
        ]);
        assert!(retry_hygiene(&log, &Params::default()).is_fail());
        let lenient = Params {
            retryable_codes: vec!["NoSuchKey".into()],
            ..Params::default()
        };
        assert_eq!(retry_hygiene(&log, &lenient).word(), "pass");
        // And a code the defaults allow fails once the list leaves it out.
        let log = EventLog::from_events(vec![
            call(10 * MS, MS, "w#1.1", 1, "", "error", "InternalError"),
            call(30 * MS, MS, "w#1.1", 2, "", "ok", ""),
        ]);
        assert_eq!(retry_hygiene(&log, &Params::default()).word(), "pass");
        assert!(retry_hygiene(&log, &lenient).is_fail());
    }

    /// A call of guard operation `op` on AssumeRole of lake 1's role, in delivery `receive` of
    /// message `m-1`, ended at `t_us` after 1 ms.
    fn delivered(t_us: u64, op: &str, receive: u64, outcome: &str, code: &str) -> Event {
        let mut e = call(t_us, MS, op, 1, "", outcome, code);
        e.fields.insert("api".into(), json!("AssumeRole"));
        e.fields.insert(
            "resource".into(),
            json!("arn:aws:iam::300000000001:role/stampede-lake-reader"),
        );
        e.fields.insert("task_message".into(), json!("m-1"));
        e.fields.insert("receive".into(), json!(receive));
        e
    }

    #[test]
    fn a_task_handed_out_again_after_an_access_denial_fails() {
        // Delivery 1 was denied; 60 s later the queue handed the task out again and its
        // worker asked again.
        let Verdict::Fail { witness } = check(vec![
            delivered(S, "w0#1.1", 1, "error", "AccessDenied"),
            delivered(61 * S, "w1#1.7", 2, "error", "AccessDenied"),
        ]) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["redelivered_after_non_retryable"], json!(1));
        assert_eq!(witness.counts["retried_after_non_retryable"], json!(0));
        assert!(
            witness.summary.contains("redelivery") && witness.summary.contains("message m-1"),
            "{}",
            witness.summary
        );
        let shown: Vec<u64> = witness.events.iter().map(|e| e.t_us).collect();
        assert_eq!(shown, vec![S, 61 * S]);
    }

    #[test]
    fn a_redelivery_after_what_it_may_cure_passes() {
        for (outcome, code) in [
            // A freeze ends by itself; the next delivery reads the table afresh; and it
            // brings fresh credentials.
            ("frozen", "AccessDenied"),
            ("error", "NoSuchKey"),
            ("error", "ExpiredToken"),
            // A retryable error may be retried by any layer (how many is another invariant's).
            ("throttled", "Throttling"),
        ] {
            let v = check(vec![
                delivered(S, "w0#1.1", 1, outcome, code),
                delivered(61 * S, "w1#1.7", 2, "ok", ""),
            ]);
            assert_eq!(v.word(), "pass", "{outcome} {code}");
        }
        // A delivery already under way when the denial came back (its visibility ran out
        // first) did not retry it.
        assert_eq!(
            check(vec![
                delivered(10 * S, "w0#1.1", 1, "error", "AccessDenied"),
                delivered(5 * S, "w1#1.7", 2, "ok", ""),
            ])
            .word(),
            "pass"
        );
    }

    #[test]
    fn attempts_by_the_deadline_pass() {
        // Query q has 1 s from its acceptance at 1 s: its deadline is at 2 s. A call begun at
        // 1.9 s may end at 2.5 s; a query with no deadline may call whenever it likes.
        let Verdict::Pass { counts } = check(vec![
            accepted(S, "q", 1_000),
            accepted(S, "r", 0),
            call(S + 100 * MS, 100 * MS, "w#1.1", 1, "q", "ok", ""),
            call(2 * S + 500 * MS, 600 * MS, "w#1.2", 1, "q", "ok", ""),
            call(2 * S, 0, "w#1.3", 1, "q", "ok", ""),
            call(90 * S, MS, "w#1.4", 1, "r", "ok", ""),
            // A query the log never accepted is skipped.
            call(90 * S, MS, "w#1.5", 1, "unknown", "ok", ""),
        ]) else {
            panic!("must pass")
        };
        assert_eq!(counts["deadline_calls"], json!(3));
        assert_eq!(counts["queries_with_deadline"], json!(1));
    }

    #[test]
    fn an_attempt_after_the_deadline_fails() {
        let events = vec![
            accepted(S, "q", 1_000),
            call(S + 100 * MS, 100 * MS, "w#1.1", 1, "q", "timeout", ""),
            call(2 * S + 300 * MS, 200 * MS, "w#1.1", 2, "q", "ok", ""),
        ];
        let Verdict::Fail { witness } = check(events.clone()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["late_attempts"], json!(1));
        assert_eq!(witness.counts["deadline_calls"], json!(2));
        // The query's acceptance and the late call.
        let shown: Vec<(u64, &str)> = witness
            .events
            .iter()
            .map(|e| (e.t_us, e.name.as_str()))
            .collect();
        assert_eq!(shown, vec![(S, "accepted"), (2 * S + 300 * MS, "call")]);
        assert!(witness.summary.contains("query q"), "{}", witness.summary);
        // Grace lets it through.
        let graceful = Params {
            grace: Span(std::time::Duration::from_millis(100)),
            ..Params::default()
        };
        assert_eq!(
            retry_hygiene(&EventLog::from_events(events), &graceful).word(),
            "pass"
        );
    }

    #[test]
    fn every_failing_clause_is_named_and_shown() {
        let Verdict::Fail { witness } = check(vec![
            retry(5 * S, 10, 1_000_000),
            call(S, MS, "w#1.1", 1, "", "error", "AccessDenied"),
            call(2 * S, MS, "w#1.1", 2, "", "ok", ""),
            accepted(S, "q", 1_000),
            call(3 * S, MS, "w#1.2", 1, "q", "ok", ""),
        ]) else {
            panic!("must fail")
        };
        for clause in ["Retry-After", "non-retryable", "deadline"] {
            assert!(witness.summary.contains(clause), "{}", witness.summary);
        }
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
        let times: Vec<u64> = witness.events.iter().map(|e| e.t_us).collect();
        assert!(times.is_sorted(), "{times:?}");
    }

    #[test]
    fn sometimes_needs_an_incurable_error_and_a_deadline_with_calls() {
        let p = Params::default();
        let reached = |events: Vec<Event>| sometimes(&EventLog::from_events(events), &p).0;
        let deadline = || {
            vec![
                accepted(S, "q", 1_000),
                call(S, MS, "w#1.1", 1, "q", "ok", ""),
            ]
        };
        assert!(!reached(vec![]));
        // A deadline alone, or with retries (which any fault makes), judges two clauses of
        // three at most: not reached.
        assert!(!reached(deadline()));
        let mut retried = deadline();
        retried.extend([retry(1, 10, 0), call(2 * S, MS, "w#1.2", 2, "", "ok", "")]);
        assert!(!reached(retried));
        // A lookup of something absent is an answer, not an incurable error.
        let mut absent = deadline();
        absent.push(call(2 * S, MS, "w#1.3", 1, "", "error", "NoSuchKey"));
        assert!(!reached(absent));
        // Access denied with a deadline's calls: both judged clauses have something.
        let mut denied = deadline();
        denied.push(call(2 * S, MS, "w#1.3", 1, "", "error", "AccessDenied"));
        assert!(reached(denied));
        assert!(!reached(vec![call(
            2 * S,
            MS,
            "w#1.3",
            1,
            "",
            "error",
            "AccessDenied"
        )]));
    }

    #[test]
    fn params_read_from_a_scenario() {
        let p: Params =
            serde_json::from_value(json!({ "retryable_codes": ["X"], "grace": "250ms" })).unwrap();
        assert_eq!(p.retryable_codes, vec!["X".to_string()]);
        assert_eq!(micros(p.grace), 250 * MS);
        assert!(serde_json::from_value::<Params>(json!({ "graces": "1s" })).is_err());
        let p: Params =
            serde_json::from_value(json!({ "redeliverable_codes": ["InvalidToken"] })).unwrap();
        assert_eq!(p.redeliverable_codes, vec!["InvalidToken".to_string()]);
        assert_eq!(
            serde_json::from_value::<Params>(json!({})).unwrap(),
            Params::default()
        );
    }
}
