//! `explicit_backpressure`: every query a user submits gets an explicit answer: never a silent
//! drop, never a hang.
//!
//! Checks, per `seq` of the replay client (`stampede::traffic`):
//! - a `submitted` seq ends explicitly: its last event is `answered` (a terminal status), or a
//!   `refused` after which the client gave up (a refusal it was not asked to retry, or the last
//!   of its resubmissions: the client logs no `answered` for it);
//! - no `unanswered` event (no coordinator answered, or it stopped answering);
//! - no seq whose last event is its `submitted`, its `accepted` (taken by a coordinator,
//!   perhaps after refusals, and never answered) or a `status` (news of its progress, and no
//!   answer after it) by the end of the log: a hang;
//! - every refusal with status 429 or 503 (backpressure) says when to come back
//!   (`retry_after_s > 0`, the `Retry-After` header).
//!
//! Does not check: "a hang past the deadline" against the query's own deadline (the client's
//! events do not carry it), so a query still open when the log ends fails whatever its
//! deadline; nor that a `queued` status carried a position and an estimate (the coordinator's
//! `queued` event has the position only, and the client's polls are not events).

use std::collections::BTreeMap;

use serde_json::json;

use super::obj;
use super::time::secs;
use super::vocabulary::TRAFFIC_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// Statuses that mean "come back later" and must say when.
pub const BACKPRESSURE_STATUSES: [u64; 2] = [429, 503];

/// Checks that every submitted query was answered or refused explicitly.
pub fn explicit_backpressure(log: &EventLog) -> Verdict {
    let mut seqs: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
    for e in log.of(TRAFFIC_TARGET) {
        if let Some(seq) = e.u64("seq") {
            seqs.entry(seq).or_default().push(e);
        }
    }
    let submitted = seqs
        .values()
        .filter(|es| es.iter().any(|e| e.name == "submitted"))
        .count();
    if submitted == 0 {
        return Verdict::Unknown {
            why: "the client submitted no query".into(),
        };
    }
    let mut offending: Vec<&Event> = Vec::new();
    let (mut unanswered, mut hung, mut silent_refusals) = (0u64, 0u64, 0u64);
    let (mut answered, mut refused) = (0u64, 0u64);
    for events in seqs.values_mut() {
        events.sort_by_key(|e| e.t_us);
        for e in events.iter() {
            if e.name == "unanswered" {
                unanswered += 1;
                offending.push(e);
            }
            if e.name == "refused"
                && e.u64("status")
                    .is_some_and(|s| BACKPRESSURE_STATUSES.contains(&s))
                && e.u64("retry_after_s").unwrap_or(0) == 0
            {
                silent_refusals += 1;
                offending.push(e);
            }
        }
        let Some(last) = events.last() else {
            continue;
        };
        match last.name.as_str() {
            "answered" => answered += 1,
            "refused" => refused += 1,
            // Submitted, or accepted (perhaps after refusals), perhaps with news of its
            // progress, and never answered.
            "submitted" | "accepted" | "status" => {
                hung += 1;
                offending.push(last);
            }
            _ => {}
        }
    }
    if offending.is_empty() {
        return Verdict::Pass {
            counts: obj(
                json!({ "submitted": submitted, "answered": answered, "refused": refused }),
            ),
        };
    }
    offending.sort_by_key(|e| e.t_us);
    let first = offending[0];
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "of {submitted} submitted queries, {unanswered} got no answer, {hung} were still waiting at the end of the log, and {silent_refusals} refusals came without Retry-After; the first: seq {} {} at t={}",
                first.u64("seq").unwrap_or(0),
                first.name,
                secs(first.t_us)
            ),
            counts: obj(json!({
                "submitted": submitted, "answered": answered, "refused": refused,
                "unanswered": unanswered, "hung": hung, "refusals_without_retry_after": silent_refusals,
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
    use crate::judge::invariants::test_support::ev;

    fn t(t_us: u64, name: &str, seq: u64, extra: &[(&str, serde_json::Value)]) -> Event {
        let mut fields = vec![("seq", json!(seq))];
        fields.extend(extra.iter().cloned());
        ev(t_us, "traffic", TRAFFIC_TARGET, name, &fields)
    }

    fn refused(t_us: u64, seq: u64, status: u64, retry_after_s: u64) -> Event {
        t(
            t_us,
            "refused",
            seq,
            &[
                ("status", json!(status)),
                ("retry_after_s", json!(retry_after_s)),
            ],
        )
    }

    fn check(events: Vec<Event>) -> Verdict {
        explicit_backpressure(&EventLog::from_events(events))
    }

    #[test]
    fn answers_and_explicit_refusals_pass() {
        let v = check(vec![
            t(1, "submitted", 0, &[]),
            t(2, "submitted", 1, &[]),
            t(3, "submitted", 2, &[]),
            // Shed with Retry-After, resubmitted, answered.
            refused(4, 1, 429, 2),
            t(5, "answered", 0, &[("status", json!(200))]),
            t(6, "answered", 1, &[("status", json!(504))]),
            // Invalid SQL: refused for good, no answered event follows.
            refused(7, 2, 400, 0),
            // An answer the client never asked for is no submission.
            t(8, "answered", 9, &[("status", json!(200))]),
        ]);
        let Verdict::Pass { counts } = v else {
            panic!("{v:?}")
        };
        assert_eq!(counts["refused"], json!(1));
        assert_eq!(counts["answered"], json!(3));
        assert_eq!(counts["submitted"], json!(3));
    }

    #[test]
    fn an_unanswered_query_fails() {
        let v = check(vec![
            t(1, "submitted", 0, &[]),
            t(
                9,
                "unanswered",
                0,
                &[("error", json!("no coordinator answered"))],
            ),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["unanswered"], json!(1));
    }

    #[test]
    fn a_query_without_an_end_fails() {
        let v = check(vec![
            t(1, "submitted", 0, &[]),
            t(2, "submitted", 1, &[]),
            t(5, "answered", 1, &[("status", json!(200))]),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["hung"], json!(1));
        assert_eq!(witness.events[0].u64("seq"), Some(0));
    }

    #[test]
    fn a_query_refused_then_accepted_and_never_answered_fails() {
        let v = check(vec![
            t(1, "submitted", 0, &[]),
            refused(2, 0, 429, 3),
            t(3_000_002, "accepted", 0, &[("query_id", json!("c-q0"))]),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["hung"], json!(1));
        assert_eq!(witness.events[0].name, "accepted");
    }

    #[test]
    fn a_query_whose_progress_stopped_and_never_ended_fails() {
        let v = check(vec![
            t(1, "submitted", 0, &[]),
            t(2, "accepted", 0, &[("query_id", json!("c-q0"))]),
            t(3, "status", 0, &[("phase", json!("running"))]),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["hung"], json!(1));
        assert_eq!(witness.events[0].name, "status");
    }

    #[test]
    fn a_429_without_retry_after_fails() {
        let v = check(vec![t(1, "submitted", 0, &[]), refused(2, 0, 429, 0)]);
        let Verdict::Fail { witness } = v else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["refusals_without_retry_after"], json!(1));
    }

    #[test]
    fn no_submissions_is_unknown() {
        assert_eq!(check(vec![]).word(), "unknown");
    }
}
