//! The replay client's traffic: its queries by seq, offered arrivals, goodput, capacities, and
//! the one definition of a failure a user sees.

use std::collections::{BTreeMap, BTreeSet};

use crate::events::{Event, EventLog};

use super::vocabulary::TRAFFIC_TARGET;

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
    /// Its first `submitted` event (tenant, priority, ...).
    pub first: Option<&'a Event>,
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

    /// Whether it ended answered 200.
    pub fn served(&self) -> bool {
        self.end
            .is_some_and(|e| e.name == "answered" && e.u64("status") == Some(200))
    }

    /// Whether it ended refused for a reason of its own: a status other than 429 or 503
    /// (invalid SQL, say), which is no unserved demand.
    pub fn refused_as_invalid(&self) -> bool {
        self.end.is_some_and(|e| {
            e.name == "refused" && e.u64("status").is_some_and(|s| s != 429 && s != 503)
        })
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
            if q.first.is_none_or(|f| f.t_us > e.t_us) {
                q.first = Some(e);
            }
            if !settled {
                q.end = None;
            }
        } else if !settled {
            q.end = Some(e);
        }
    }
    seqs
}

/// Items grouped by their arrival time into consecutive windows of `w` from the first
/// arrival, each keyed by its start, keeping only the windows that are closed by `end`: one
/// more window has passed after them, time for their queries to end. `w` must not be 0.
pub fn closed_windows<T>(items: Vec<(u64, T)>, w: u64, end: u64) -> BTreeMap<u64, Vec<T>> {
    let Some(first) = items.iter().map(|i| i.0).min() else {
        return BTreeMap::new();
    };
    let mut windows: BTreeMap<u64, Vec<T>> = BTreeMap::new();
    for (t, item) in items {
        windows.entry((t - first) / w).or_default().push(item);
    }
    windows
        .into_iter()
        .filter(|(k, _)| first + (k + 2) * w <= end)
        .map(|(k, items)| (first + k * w, items))
        .collect()
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::judge::invariants::test_support::ev;

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
    fn capacities_must_be_positive() {
        assert_eq!(capacity(Some(2.5)), Ok(2.5));
        assert!(capacity(Some(0.0)).is_err());
        assert!(capacity(Some(f64::NAN)).is_err());
        assert!(capacity(None).unwrap_err().contains("capacity_per_s"));
    }
}
