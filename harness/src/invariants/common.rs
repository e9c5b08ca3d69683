//! What several checkers share: the event targets, who an account is, what a call of the
//! system is, the client's queries (offered load, goodput, and the one definition of a failure
//! a user sees), the first fault and its end, spans and counts, and ratios over sliding
//! windows.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::events::{Event, EventLog};
use crate::scenario::Span;

// Each target is the constant its producer logs with, so a checker cannot drift from it.

/// The target the provider reports calls on.
pub const PROVIDER_TARGET: &str = stampede_fakes::provider::call::PROVIDER_EVENTS;

/// The target the system reports its protective mechanisms' decisions on.
pub const MECHANISM_TARGET: &str = stampede_system::guard::MECHANISM_EVENTS;

/// The target the system reports query lifecycle events on.
pub const QUERY_TARGET: &str = stampede_system::coordinator::QUERY_EVENTS;

/// The target workers report a lake's fragment of a query on.
pub const TASK_TARGET: &str = stampede_system::worker::TASK_EVENTS;

/// The target the replay client reports on.
pub const TRAFFIC_TARGET: &str = crate::traffic::TRAFFIC_EVENTS;

/// The target of the replay client's meter.
pub const METER_TARGET: &str = crate::traffic::METER_EVENTS;

/// The target of the scenario's alerts.
pub const ALERT_TARGET: &str = crate::alerts::ALERT_TARGET;

/// The target of config changes at run time.
pub const CONFIG_TARGET: &str = stampede_system::config_agent::CONFIG_EVENTS;

/// The target of the fault timeline.
pub const FAULT_TARGET: &str = crate::control::FAULT_EVENTS;

/// Query lifecycle event names that end a query.
pub const TERMINAL: [&str; 5] = [
    "succeeded",
    "failed",
    "rejected",
    "cancelled",
    "deadline_exceeded",
];

/// The system's own account.
pub const SYSTEM_ACCOUNT: &str = stampede_fakes::iam::SYSTEM_ACCOUNT;

fn twelve_digits_from(account: &str, first: u8) -> bool {
    account.len() == 12
        && account.as_bytes()[0] == first
        && account.bytes().all(|b| b.is_ascii_digit())
}

/// A background account: another customer of the region (12 digits starting with `2`).
pub fn is_background(account: &str) -> bool {
    twelve_digits_from(account, b'2')
}

/// A lake account (12 digits starting with `3`): lake `i` is account `3{i:011}`.
pub fn lake_of_account(account: &str) -> Option<u64> {
    if twelve_digits_from(account, b'3') {
        account[1..].parse().ok()
    } else {
        None
    }
}

/// Whether `e` is a provider `call`.
pub fn is_call(e: &Event) -> bool {
    e.is(PROVIDER_TARGET, "call")
}

/// Whether `e` is a provider `call` of the system: one that names its operation (a non-empty
/// `op`). Background accounts and real clients send none.
pub fn is_system_call(e: &Event) -> bool {
    is_call(e) && e.str("op").is_some_and(|o| !o.is_empty())
}

/// The client host of a provider call: the part of its `op` before `#` (the whole `op` when it
/// has no `#`; `""` when it has none).
pub fn client_host(e: &Event) -> &str {
    let op = e.str("op").unwrap_or("");
    op.split_once('#').map_or(op, |(host, _)| host)
}

/// When a provider call reached the provider: its event's time less its latency.
pub fn started(e: &Event) -> u64 {
    e.t_us.saturating_sub(e.u64("latency_us").unwrap_or(0))
}

/// The time of the log's last event (0 for an empty log).
pub fn log_end(log: &EventLog) -> u64 {
    log.events().iter().map(|e| e.t_us).max().unwrap_or(0)
}

/// A span of virtual time in microseconds (saturating).
pub fn micros(s: Span) -> u64 {
    u64::try_from(s.0.as_micros()).unwrap_or(u64::MAX)
}

/// Microseconds as seconds with millisecond precision, for witnesses.
pub fn secs(t_us: u64) -> String {
    format!("{:.3}s", t_us as f64 / 1e6)
}

/// A `json!({...})` object as the map verdicts hold.
pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A capacity in queries per second, if `capacity_per_s` is a usable one; otherwise why not.
pub fn capacity(capacity_per_s: Option<f64>) -> Result<f64, String> {
    match capacity_per_s {
        Some(c) if c.is_finite() && c > 0.0 => Ok(c),
        Some(c) => Err(format!(
            "capacity_per_s is {c}: load needs a positive capacity"
        )),
        None => Err(
            "no capacity_per_s given: offered load cannot be told as a multiple of capacity".into(),
        ),
    }
}

/// Whether a query's final status at the client is a failure its user sees. This is the one
/// definition of a user-visible failure: the client's meter counts its `failed` with it (so
/// the `metrics` alert rules read it), and `alert_fires` judges pages against it.
///
/// A failure a user sees is a query that ends without an answer it can use, for reasons not
/// its own:
/// - no answer (`unanswered`, status 0);
/// - refused for load for good: 429 or 503 after its resubmissions (the seq's final `refused`,
///   see [`client_queries`]);
/// - ended 5xx: 500 failed, 504 deadline exceeded (any status of 500 or more).
///
/// Not failures: 200; 400 (invalid SQL: the user's own, as is any other 4xx); 499 (cancelled
/// by the user). A refusal the client resubmits after is not the query's end, so not a failure.
pub fn user_visible_failure(final_status: u64) -> bool {
    final_status == 0 || final_status == 429 || final_status >= 500
}

/// A query as the replay client saw it (`stampede::traffic`, by `seq`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientQuery<'a> {
    /// When it was first `submitted`; `None` when the log has no `submitted` of its seq.
    pub submitted_us: Option<u64>,
    /// The event that ended it: its `answered` or `unanswered`, or its final `refused`; `None`
    /// while it had not ended.
    pub end: Option<&'a Event>,
}

impl ClientQuery<'_> {
    /// The status it ended with: 0 when unanswered, else its end's `status`.
    pub fn final_status(&self) -> Option<u64> {
        let end = self.end?;
        if end.name == "unanswered" {
            Some(0)
        } else {
            end.u64("status")
        }
    }

    /// Whether it ended in a failure its user sees ([`user_visible_failure`]).
    pub fn failed(&self) -> bool {
        self.final_status().is_some_and(user_visible_failure)
    }
}

/// The replay client's queries by `seq`, read in log order. A seq ends at its `answered` or
/// `unanswered`, which nothing after undoes, or at its last `refused` when no `submitted` of
/// the seq follows it: a refusal followed by a resubmission is not the end (the query is still
/// the user's, waiting), and a later refusal or answer takes its place as the end.
pub fn client_queries(log: &EventLog) -> BTreeMap<u64, ClientQuery<'_>> {
    let mut seqs: BTreeMap<u64, ClientQuery<'_>> = BTreeMap::new();
    for e in log.of(TRAFFIC_TARGET) {
        let name = e.name.as_str();
        if !matches!(name, "submitted" | "refused" | "answered" | "unanswered") {
            continue;
        }
        let Some(seq) = e.u64("seq") else { continue };
        let q = seqs.entry(seq).or_default();
        // Answered or unanswered: settled.
        let settled = q.end.is_some_and(|end| end.name != "refused");
        if name == "submitted" {
            q.submitted_us = Some(q.submitted_us.map_or(e.t_us, |t| t.min(e.t_us)));
            if !settled {
                q.end = None;
            }
        } else if !settled {
            q.end = Some(e);
        }
    }
    seqs
}

/// The first `submitted` event of each seq (the offered arrivals), in time order: a later
/// `submitted` of the same seq is a resubmission and adds no load.
pub fn arrivals(log: &EventLog) -> Vec<&Event> {
    let mut submitted: Vec<&Event> = log
        .of(TRAFFIC_TARGET)
        .filter(|e| e.name == "submitted")
        .collect();
    submitted.sort_by_key(|e| e.t_us);
    let mut seen = BTreeSet::new();
    submitted.retain(|e| e.u64("seq").is_some_and(|s| seen.insert(s)));
    submitted
}

/// The `answered` events with status 200 (goodput), in time order.
pub fn goodput(log: &EventLog) -> Vec<&Event> {
    let mut answers: Vec<&Event> = log
        .of(TRAFFIC_TARGET)
        .filter(|e| e.name == "answered" && e.u64("status") == Some(200))
        .collect();
    answers.sort_by_key(|e| e.t_us);
    answers
}

/// Whether client event `e` is a submission that did not become goodput there: an `answered`
/// other than 200, a `refused` or an `unanswered`. Witnesses show them where goodput went.
pub fn missed_goodput(e: &Event) -> bool {
    match e.name.as_str() {
        "answered" => e.u64("status") != Some(200),
        "refused" | "unanswered" => true,
        _ => false,
    }
}

/// Fault events that start a fault.
pub const FAULT_STARTS: [&str; 8] = [
    "freeze",
    "region_down",
    "throttle",
    "errors",
    "latency",
    "fleet_capacity",
    "host_crash",
    "partition",
];

/// The first fault of the run: the first `stampede::fault` event in [`FAULT_STARTS`].
pub fn first_fault(log: &EventLog) -> Option<&Event> {
    log.of(FAULT_TARGET)
        .find(|e| FAULT_STARTS.contains(&e.name.as_str()))
}

/// When the fault started by `start` ended, and the event that ended it if one did (a freeze
/// may end by its own duration). The end is the first matching fault event at or after it: for
/// `freeze` the earlier of its `duration_ms` and a `thaw` of the same account; `region_up` of
/// the same region; the next `throttle` (or `errors`) of the same region and api, `latency` or
/// `fleet_capacity` of the same region; `host_restart` of the same host; `heal` of the same
/// pair, either way round. `None`: it never ended.
pub fn fault_end<'a>(log: &'a EventLog, start: &'a Event) -> Option<(u64, Option<&'a Event>)> {
    let same = |e: &Event, k: &str| e.str(k) == start.str(k);
    let after = log
        .of(FAULT_TARGET)
        .filter(|e| e.t_us >= start.t_us && !std::ptr::eq(*e, start));
    let mut ends = after.filter(|e| match start.name.as_str() {
        "freeze" => e.name == "thaw" && same(e, "account"),
        "region_down" => e.name == "region_up" && same(e, "region"),
        "throttle" | "errors" => e.name == start.name && same(e, "region") && same(e, "api"),
        "latency" | "fleet_capacity" => e.name == start.name && same(e, "region"),
        "host_crash" => e.name == "host_restart" && same(e, "host"),
        "partition" => {
            e.name == "heal"
                && ((same(e, "a") && same(e, "b"))
                    || (e.str("a") == start.str("b") && e.str("b") == start.str("a")))
        }
        _ => false,
    });
    let event = ends.next().map(|e| (e.t_us, Some(e)));
    let timed = (start.name == "freeze")
        .then(|| start.u64("duration_ms"))
        .flatten()
        .map(|ms| (start.t_us.saturating_add(ms.saturating_mul(1000)), None));
    match (event, timed) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

impl RatioBreach<'_> {
    /// The witness of this window: `what` names the bad calls ("background calls ... failed"),
    /// `counts` adds the checker's own totals to the window's.
    pub fn witness(
        self,
        prefix: &str,
        what: &str,
        max_ratio: f64,
        mut counts: Map<String, Value>,
    ) -> super::Witness {
        counts.insert("bad_in_window".into(), self.bad.into());
        counts.insert("calls_in_window".into(), self.total.into());
        counts.insert("window_start_us".into(), self.start_us.into());
        super::Witness {
            summary: format!(
                "{prefix}{} of {} {what} ({:.1} %) in the window [{}, {}), over {:.1} %",
                self.bad,
                self.total,
                100.0 * self.bad as f64 / self.total.max(1) as f64,
                secs(self.start_us),
                secs(self.end_us),
                100.0 * max_ratio
            ),
            counts,
            events: self
                .events
                .into_iter()
                .take(super::WITNESS_EVENTS)
                .cloned()
                .collect(),
        }
    }
}

/// The window in which `bad / total` was furthest over its limit.
#[derive(Debug)]
pub struct RatioBreach<'a> {
    /// Where the window starts.
    pub start_us: u64,
    /// Where it ends: exclusive, except for the last window, which holds the log's end.
    pub end_us: u64,
    /// Points in it that were bad.
    pub bad: u64,
    /// All points in it.
    pub total: u64,
    /// The bad points' events, in time order.
    pub events: Vec<&'a Event>,
}

/// Ratios over sliding windows of `width_us`: `points` are (time, bad, event) sorted by time.
/// Windows start at every point's time, as long as they end by `end_us` (the log's end); the
/// last window is `[end_us − width_us, end_us]`, so a window cut short by the end of the run
/// never judges a handful of points. A log shorter than one window is one window. A window is
/// judged only with at least `min_total` points. Answers the window with the highest ratio
/// among those where `bad > max_ratio · total` (the earliest of equals), and how many windows
/// were judged.
pub fn worst_ratio_breach<'a>(
    points: &[(u64, bool, &'a Event)],
    width_us: u64,
    end_us: u64,
    max_ratio: f64,
    min_total: u64,
) -> (Option<RatioBreach<'a>>, u64) {
    let last_start = end_us.saturating_sub(width_us);
    let mut starts: Vec<u64> = points
        .iter()
        .map(|p| p.0)
        .filter(|&t| t < last_start)
        .collect();
    starts.push(last_start);
    starts.dedup();
    let mut bad_before = Vec::with_capacity(points.len() + 1);
    bad_before.push(0u64);
    for p in points {
        bad_before.push(bad_before[bad_before.len() - 1] + u64::from(p.1));
    }
    let (mut lo, mut hi, mut judged) = (0usize, 0usize, 0u64);
    let mut worst: Option<(f64, u64, u64, usize, usize)> = None;
    for s in starts {
        // The last window is closed at the end of the log.
        let (upper, shown_end) = if s == last_start {
            (end_us.saturating_add(1), end_us)
        } else {
            (s + width_us, s + width_us)
        };
        while lo < points.len() && points[lo].0 < s {
            lo += 1;
        }
        hi = hi.max(lo);
        while hi < points.len() && points[hi].0 < upper {
            hi += 1;
        }
        let total = (hi - lo) as u64;
        if total == 0 || total < min_total {
            continue;
        }
        judged += 1;
        let bad = bad_before[hi] - bad_before[lo];
        let ratio = bad as f64 / total as f64;
        if bad as f64 > max_ratio * total as f64 + 1e-9 && worst.is_none_or(|(r, ..)| ratio > r) {
            worst = Some((ratio, s, shown_end, lo, hi));
        }
    }
    let breach = worst.map(|(_, start_us, end_us, lo, hi)| RatioBreach {
        start_us,
        end_us,
        bad: bad_before[hi] - bad_before[lo],
        total: (hi - lo) as u64,
        events: points[lo..hi].iter().filter(|p| p.1).map(|p| p.2).collect(),
    });
    (breach, judged)
}

/// The sliding-window maximum of points in `[s, s + width_us)` for `s` at every point's time:
/// `times` sorted. Answers the largest count, and the index range of its first window.
pub fn max_in_window(times: &[u64], width_us: u64) -> (u64, std::ops::Range<usize>) {
    let (mut best, mut range, mut hi) = (0u64, 0..0, 0usize);
    for lo in 0..times.len() {
        hi = hi.max(lo);
        while hi < times.len() && times[hi] < times[lo] + width_us {
            hi += 1;
        }
        let n = (hi - lo) as u64;
        if n > best {
            best = n;
            range = lo..hi;
        }
    }
    (best, range)
}

#[cfg(test)]
pub mod test_support {
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::test_support::ev;
    use super::*;

    #[test]
    fn accounts_are_told_apart() {
        assert!(is_background("200000000007"));
        assert!(!is_background("100000000001"));
        assert!(!is_background("2000"));
        assert_eq!(lake_of_account("300000000042"), Some(42));
        assert_eq!(lake_of_account("100000000001"), None);
        assert_eq!(lake_of_account("anonymous"), None);
    }

    #[test]
    fn failures_a_user_sees() {
        // No answer, refused for load for good, ended 5xx.
        for status in [0, 429, 503, 500, 504] {
            assert!(user_visible_failure(status), "{status}");
        }
        // Served, the user's own invalid SQL, the user's cancel.
        for status in [200, 400, 499] {
            assert!(!user_visible_failure(status), "{status}");
        }
    }

    #[test]
    fn a_query_ends_at_its_answer_or_final_refusal() {
        let t = |t_us: u64, name: &str, seq: u64, status: Option<u64>| {
            let mut fields = vec![("seq", json!(seq))];
            fields.extend(status.map(|s| ("status", json!(s))));
            ev(t_us, "traffic", TRAFFIC_TARGET, name, &fields)
        };
        let log = EventLog::from_events(vec![
            // Refused twice, then answered: the refusals were not its end.
            t(0, "submitted", 1, None),
            t(1, "refused", 1, Some(429)),
            t(2, "refused", 1, Some(503)),
            t(3, "answered", 1, Some(200)),
            // Refused, resubmitted, refused for good.
            t(0, "submitted", 2, None),
            t(1, "refused", 2, Some(503)),
            t(2, "submitted", 2, None),
            t(4, "refused", 2, Some(503)),
            // Refused and resubmitted, with no answer yet: not ended.
            t(0, "submitted", 3, None),
            t(1, "refused", 3, Some(429)),
            t(2, "submitted", 3, None),
            // No answer; nothing after it undoes that.
            t(0, "submitted", 4, None),
            t(5, "unanswered", 4, None),
            t(6, "refused", 4, Some(429)),
            // The user's own.
            t(0, "submitted", 5, None),
            t(1, "refused", 5, Some(400)),
        ]);
        let q = client_queries(&log);
        let ends: Vec<(u64, Option<u64>, Option<u64>, bool)> = q
            .iter()
            .map(|(s, q)| (*s, q.end.map(|e| e.t_us), q.final_status(), q.failed()))
            .collect();
        assert_eq!(
            ends,
            vec![
                (1, Some(3), Some(200), false),
                (2, Some(4), Some(503), true),
                (3, None, None, false),
                (4, Some(5), Some(0), true),
                (5, Some(1), Some(400), false),
            ]
        );
        assert_eq!(q[&2].submitted_us, Some(0));
    }

    #[test]
    fn calls_of_the_system_name_their_client() {
        let call = |op: &str| ev(5, "p", PROVIDER_TARGET, "call", &[("op", json!(op))]);
        assert!(is_system_call(&call("worker-r-0#3.17")));
        assert_eq!(client_host(&call("worker-r-0#3.17")), "worker-r-0");
        assert_eq!(client_host(&call("bare")), "bare");
        assert!(!is_system_call(&call("")));
        assert_eq!(client_host(&call("")), "");
        let not_a_call = ev(5, "p", PROVIDER_TARGET, "fleet", &[("op", json!("a#1"))]);
        assert!(!is_system_call(&not_a_call));
    }

    #[test]
    fn faults_pair_with_their_end() {
        let f = |t_s: u64, name: &str, fields: &[(&str, Value)]| {
            ev(t_s * 1_000_000, "harness", FAULT_TARGET, name, fields)
        };
        let r = |x: &str| ("region", json!(x));
        // A throttle ends at the next throttle of its region and api; another region's does not.
        let log = EventLog::from_events(vec![
            f(5, "region_up", &[r("a")]),
            f(10, "throttle", &[r("a"), ("api", json!("GetTable"))]),
            f(20, "throttle", &[r("b"), ("api", json!("GetTable"))]),
            f(30, "throttle", &[r("a"), ("api", json!("GetTable"))]),
        ]);
        let start = first_fault(&log).expect("a fault");
        assert_eq!(start.t_us, 10_000_000);
        let (t1, by) = fault_end(&log, start).expect("it ended");
        assert_eq!(t1, 30_000_000);
        assert_eq!(by.map(|e| e.t_us), Some(30_000_000));
        // A freeze ends by its duration when no thaw comes first.
        let log = EventLog::from_events(vec![
            f(
                10,
                "freeze",
                &[("account", json!("1")), ("duration_ms", json!(5_000))],
            ),
            f(40, "thaw", &[("account", json!("1"))]),
        ]);
        let start = first_fault(&log).expect("a fault");
        assert_eq!(fault_end(&log, start), Some((15_000_000, None)));
        // A crash with no restart never ends.
        let log = EventLog::from_events(vec![f(10, "host_crash", &[("host", json!("c"))])]);
        assert_eq!(fault_end(&log, first_fault(&log).expect("a fault")), None);
        assert!(first_fault(&EventLog::from_events(vec![f(1, "region_up", &[r("a")])])).is_none());
    }

    #[test]
    fn capacities_must_be_positive() {
        assert_eq!(capacity(Some(2.5)), Ok(2.5));
        assert!(capacity(Some(0.0)).is_err());
        assert!(capacity(Some(f64::NAN)).is_err());
        assert!(capacity(None).unwrap_err().contains("capacity_per_s"));
    }

    #[test]
    fn ratio_windows_stop_at_the_log_end() {
        let e = ev(0, "h", "t", "n", &[("x", json!(1))]);
        // 100 good points over 100 s and one bad at 99.5 s: only the last window, from 40 s to
        // the end, holds it, with 60 good ones; a window starting at the bad point would hold
        // it alone.
        let mut points: Vec<(u64, bool, &Event)> =
            (0..100).map(|k| (k * 1_000_000, false, &e)).collect();
        points.push((99_500_000, true, &e));
        let (breach, judged) = worst_ratio_breach(&points, 60_000_000, 100_000_000, 0.02, 1);
        assert!(breach.is_none(), "{breach:?}");
        assert!(judged > 0);
        let (breach, _) = worst_ratio_breach(&points, 60_000_000, 100_000_000, 0.01, 1);
        let breach = breach.expect("1 of 61 is over 1 %");
        assert_eq!((breach.bad, breach.total), (1, 61));
        assert_eq!(breach.start_us, 40_000_000);
    }

    #[test]
    fn window_maximum() {
        let (n, r) = max_in_window(&[0, 10, 20, 1000, 1001, 1002, 1003], 100);
        assert_eq!((n, r), (4, 3..7));
    }
}
