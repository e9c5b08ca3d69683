//! `retry_amplification`: per layer, in every 10 s window holding at least 20 of its attempts,
//! attempts / logical operations ≤ 1.1 (Google SRE: a 10 % retry budget). The layers: the
//! calls of each api (retried by the guard or the AWS SDK), and the deliveries of each queue
//! (a task handed out again is the queue's retry of it).
//!
//! Checks, from the provider's log alone: attempts are the provider `call` events of that
//! `api` that name their logical operation (the system's: background accounts and real clients
//! name none), placed at the time they reached the provider (`t_us − latency_us`). A call is a
//! retry when it is not the first call of its operation ([`super::calls::operation`]: the AWS
//! SDK invocation, else the guard's `op`), whichever layer repeated it: the guard, the SDK, or
//! both. Logical operations in a window = its attempts − its retries. Windows `[t, t + W)`
//! start at every call of the api; a window that would reach past the log's last event is
//! replaced by the last full window `[end − W, end]` (a log shorter than W is one window). A
//! window with at least `min_calls` calls fails when `attempts > max_ratio · logical` (or when
//! it holds no logical operation at all).
//!
//! The queue's layer, from the queue's own record: its `delivered` events of the system's
//! account, per queue, placed when the queue handed the message out; a delivery is a retry
//! when its `receive` is above 1. Its windows are judged as an api's, under the name
//! `deliveries of {queue}`.
//!
//! Does not check: amplification by layers that start new operations and leave no record of
//! it: a query resubmitted by the client, a re-plan after a restart. A task the queue hands
//! out again makes new operations at the provider, judged fresh in their api's layer; the
//! queue's layer counts it. A retry is counted in the window its call reached the provider.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::calls::{is_call, operation, started};
use super::obj;
use super::time::{log_end, secs};
use super::vocabulary::{PROVIDER_TARGET, is_background};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The largest attempts / logical operations allowed in a window.
pub const MAX_AMPLIFICATION: f64 = 1.1;

/// The window.
pub const AMPLIFICATION_WINDOW_US: u64 = 10_000_000;

/// The fewest calls of an api a window must hold to be judged.
pub const AMPLIFICATION_MIN_CALLS: u64 = 20;

/// The worst window of one api.
struct Breach<'a> {
    ratio: f64,
    api: String,
    start_us: u64,
    end_us: u64,
    calls: u64,
    retries: u64,
    events: Vec<&'a Event>,
}

/// Checks every api's attempts per logical operation in every `window_us` window with at least
/// `min_calls` calls.
pub fn retry_amplification(
    log: &EventLog,
    max_ratio: f64,
    window_us: u64,
    min_calls: u64,
) -> Verdict {
    // Per api: calls as (time, event, whether it is a retry), in time order.
    let mut system: Vec<(u64, &Event)> = log
        .of(PROVIDER_TARGET)
        .filter(|e| is_call(e))
        .filter(|e| e.str("account").is_some_and(|a| !is_background(a)))
        .filter(|e| operation(e).is_some())
        .map(|e| (started(e), e))
        .collect();
    system.sort_by_key(|p| p.0);
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut calls: BTreeMap<String, Vec<(u64, &Event, bool)>> = BTreeMap::new();
    for (t, e) in system {
        let (Some(api), Some(op)) = (e.str("api"), operation(e)) else {
            continue;
        };
        let retry = !seen.insert(op);
        calls
            .entry(api.to_string())
            .or_default()
            .push((t, e, retry));
    }
    // The queue's layer: each delivery an attempt of its message's work, in the log's order.
    for e in log
        .of(PROVIDER_TARGET)
        .filter(|e| e.name == "delivered")
        .filter(|e| e.str("account").is_some_and(|a| !is_background(a)))
    {
        let queue = e.str("queue").unwrap_or("?");
        let retry = e.u64("receive").unwrap_or(1) > 1;
        calls
            .entry(format!("deliveries of {queue}"))
            .or_default()
            .push((e.t_us, e, retry));
    }
    let end = log_end(log);
    let last_start = end.saturating_sub(window_us);
    let (mut judged, mut total_calls, mut total_retries) = (0u64, 0u64, 0u64);
    let mut worst: Option<Breach<'_>> = None;
    for (api, cs) in calls {
        // Retries among the first k calls.
        let mut before = vec![0u64; cs.len() + 1];
        for (k, c) in cs.iter().enumerate() {
            before[k + 1] = before[k] + u64::from(c.2);
        }
        total_calls += cs.len() as u64;
        total_retries += before[cs.len()];
        let mut starts: Vec<u64> = cs.iter().map(|p| p.0).filter(|&t| t < last_start).collect();
        starts.push(last_start);
        starts.sort_unstable();
        starts.dedup();
        let (mut clo, mut chi) = (0usize, 0usize);
        for s in starts {
            let (upper, shown_end) = if s == last_start {
                (end.saturating_add(1), end)
            } else {
                (s + window_us, s + window_us)
            };
            while clo < cs.len() && cs[clo].0 < s {
                clo += 1;
            }
            chi = chi.max(clo);
            while chi < cs.len() && cs[chi].0 < upper {
                chi += 1;
            }
            let n = (chi - clo) as u64;
            if n < min_calls.max(1) {
                continue;
            }
            judged += 1;
            let r = before[chi] - before[clo];
            let logical = n.saturating_sub(r);
            let over = logical == 0 || n as f64 > max_ratio * logical as f64 + 1e-9;
            let ratio = if logical == 0 {
                f64::INFINITY
            } else {
                n as f64 / logical as f64
            };
            if over && worst.as_ref().is_none_or(|w| ratio > w.ratio) {
                worst = Some(Breach {
                    ratio,
                    api: api.clone(),
                    start_us: s,
                    end_us: shown_end,
                    calls: n,
                    retries: r,
                    events: cs[clo..chi].iter().filter(|c| c.2).map(|c| c.1).collect(),
                });
            }
        }
    }
    if judged == 0 {
        return Verdict::Unknown {
            why: format!(
                "no api had {min_calls} or more system calls in any {} window",
                secs(window_us)
            ),
        };
    }
    let Some(b) = worst else {
        return Verdict::Pass {
            counts: obj(json!({
                "calls": total_calls, "retries": total_retries, "windows": judged,
            })),
        };
    };
    let logical = b.calls.saturating_sub(b.retries);
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{} made {} attempts for {} logical operations ({} retries, {:.2}×) in the window [{}, {}), over {:.2}×",
                b.api,
                b.calls,
                logical,
                b.retries,
                b.ratio,
                secs(b.start_us),
                secs(b.end_us),
                max_ratio
            ),
            counts: obj(json!({
                "attempts_in_window": b.calls, "retries_in_window": b.retries,
                "logical_in_window": logical, "window_start_us": b.start_us,
                "calls": total_calls, "retries": total_retries,
            })),
            events: b.events.into_iter().take(WITNESS_EVENTS).cloned().collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;

    /// A call of operation `op` (its `attempt`-th) of `api` from `account`.
    fn call(t_us: u64, account: &str, api: &str, op: &str, attempt: u64) -> Event {
        ev(
            t_us,
            "provider-r",
            PROVIDER_TARGET,
            "call",
            &[
                ("account", json!(account)),
                ("api", json!(api)),
                ("outcome", json!("ok")),
                ("latency_us", json!(1000)),
                ("op", json!(op)),
                ("attempt", json!(attempt)),
                ("sdk_attempt", json!(1)),
                ("sdk_invocation", json!("")),
            ],
        )
    }

    /// 10 calls a second of `api` for 60 s; call `k` is a retry (a second call of the
    /// operation of call k − 1) when `retried(k)`.
    fn steady(account: &str, api: &str, retried: impl Fn(u64) -> bool) -> Vec<Event> {
        let mut events = Vec::new();
        let mut op = 0;
        for k in 0..600 {
            let t = k * 100_000 + 1000;
            let attempt = if retried(k) && k > 0 {
                2
            } else {
                op += 1;
                1
            };
            events.push(call(t, account, api, &format!("w#{api}.{op}"), attempt));
        }
        events
    }

    fn check(events: Vec<Event>) -> Verdict {
        let mut events = events;
        events.sort_by_key(|e| e.t_us);
        retry_amplification(
            &EventLog::from_events(events),
            MAX_AMPLIFICATION,
            AMPLIFICATION_WINDOW_US,
            AMPLIFICATION_MIN_CALLS,
        )
    }

    #[test]
    fn few_retries_pass() {
        // One retry in 20 calls: 100 attempts for 95 operations in 10 s, 1.05×.
        let v = check(steady("100000000001", "AssumeRole", |k| k % 20 == 0));
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn a_retry_storm_fails_on_its_api() {
        let mut events = steady("100000000001", "AssumeRole", |_| false);
        // GetTable: every other call is a retry from 20 s to 30 s.
        events.extend(steady("300000000001", "GetTable", |k| {
            (200..300).contains(&k) && k % 2 == 0
        }));
        let Verdict::Fail { witness } = check(events) else {
            panic!("must fail")
        };
        assert!(
            witness.summary.starts_with("GetTable"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.counts["retries_in_window"], json!(50));
        assert_eq!(witness.counts["attempts_in_window"], json!(100));
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
    }

    #[test]
    fn sdk_retries_count_whatever_the_guard_says() {
        // Every operation an SDK invocation tried twice, each try the guard's first attempt:
        // the guard never retried, the provider saw every operation twice.
        let events: Vec<Event> = (0..600)
            .map(|k| {
                let mut e = call(
                    k * 100_000,
                    "100000000001",
                    "ReceiveMessage",
                    &format!("w#{k}"),
                    1,
                );
                e.fields
                    .insert("sdk_invocation".into(), json!(format!("w#0/{}", k / 2)));
                e.fields.insert("sdk_attempt".into(), json!(1 + k % 2));
                e
            })
            .collect();
        let Verdict::Fail { witness } = check(events) else {
            panic!("2 attempts per operation")
        };
        assert_eq!(witness.counts["retries_in_window"], json!(50));
    }

    /// The queue `q` hands out message `m` for the `receive`-th time.
    fn delivered(t_us: u64, q: &str, m: u64, receive: u64) -> Event {
        ev(
            t_us,
            "provider-r",
            PROVIDER_TARGET,
            "delivered",
            &[
                ("account", json!("100000000001")),
                ("queue", json!(q)),
                ("message_id", json!(format!("m-{m}"))),
                ("receive", json!(receive)),
            ],
        )
    }

    #[test]
    fn a_queue_handing_tasks_out_again_is_a_retrying_layer() {
        // 3 deliveries a second for 60 s; from 20 s to 30 s every third is a redelivery of a
        // task handed out 60 s before: 30 tasks, 10 of them again, 1.5x in that window.
        let deliveries = |again: bool| -> Vec<Event> {
            (0..180u64)
                .map(|k| {
                    let redelivery = again && (60..90).contains(&k) && k % 3 == 0;
                    delivered(
                        k * 333_333,
                        "stampede-tasks",
                        k,
                        if redelivery { 2 } else { 1 },
                    )
                })
                .collect()
        };
        assert_eq!(check(deliveries(false)).word(), "pass");
        let Verdict::Fail { witness } = check(deliveries(true)) else {
            panic!("must fail")
        };
        assert!(
            witness.summary.starts_with("deliveries of stampede-tasks"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.counts["retries_in_window"], json!(10));
        // A background account's queue is not the system's.
        let mut background = deliveries(true);
        for e in &mut background {
            e.fields.insert("account".into(), json!("200000000001"));
        }
        assert_eq!(check(background).word(), "unknown");
    }

    #[test]
    fn background_calls_and_sparse_windows_are_unknown() {
        // Background calls do not count; 1 system call a second never makes 20 in 10 s.
        let mut events = steady("200000000001", "AssumeRole", |_| true);
        events.extend((0..60).map(|k| {
            call(
                k * 1_000_000,
                "100000000001",
                "AssumeRole",
                &format!("o{k}"),
                1,
            )
        }));
        assert_eq!(check(events).word(), "unknown");
    }
}
