//! `progress_visible`: a user is never left without news of a query: an answer to each
//! submission within 5 s, and from acceptance to the end, news at least every 30 s.
//!
//! Reads the replay client's view (`stampede::traffic`, per `seq`): what the user received,
//! not what the coordinator says it sent. The news a user gets is
//! - the answer to a submission: `refused` (with its `Retry-After`), `accepted` (the 202, whose
//!   body is the query's first status) or `unanswered`;
//! - a `status` the client saw when polling that differs from the last one it saw: another
//!   phase, another place in the queue, more lakes answered (the client logs only changes; a
//!   status that says the same as a minute ago is no news);
//! - the end: `answered`.
//!
//! Checks, per seq:
//! - each `submitted` is answered within `first_within_us`;
//! - from `accepted` to the end, no gap between news exceeds `every_us`: a query queued with a
//!   place that never moves, or running with no lake answered for longer, fails, as does one
//!   whose tasks wait behind a backlog.
//!
//! A query still open at the end of the log is judged up to the log's last event.
//!
//! Unknown: no query was submitted. Does not check: whether the estimate in a status is good,
//! nor news for a query the client gave up on (it has ended).

use std::collections::BTreeMap;

use serde_json::json;

use super::obj;
use super::time::{log_end, secs};
use super::vocabulary::TRAFFIC_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The most time from a submission to its answer.
pub const FIRST_STATUS_WITHIN_US: u64 = 5_000_000;

/// The most time between news of an accepted query.
pub const PROGRESS_EVERY_US: u64 = 30_000_000;

/// One silence too long: the event it began with, the one that ended it (none: the log's end),
/// how long, and the limit.
struct Silence<'a> {
    since: &'a Event,
    until: Option<&'a Event>,
    gap_us: u64,
    limit_us: u64,
    what: &'static str,
}

#[derive(Default)]
struct Life<'a> {
    /// A submission not yet answered.
    asked: Option<&'a Event>,
    /// Accepted and not ended: the last news.
    news: Option<&'a Event>,
    ended: bool,
}

/// Checks the news every query's user got against the two limits.
pub fn progress_visible(log: &EventLog, first_within_us: u64, every_us: u64) -> Verdict {
    let mut lives: BTreeMap<u64, Life<'_>> = BTreeMap::new();
    let mut silences: Vec<Silence<'_>> = Vec::new();
    for e in log.of(TRAFFIC_TARGET) {
        let Some(seq) = e.u64("seq") else { continue };
        let name = e.name.as_str();
        let life = lives.entry(seq).or_default();
        if life.ended {
            continue;
        }
        match name {
            "submitted" => {
                life.asked = Some(e);
                continue;
            }
            "refused" | "accepted" | "unanswered" | "status" | "answered" => {}
            _ => continue,
        }
        if let Some(asked) = life.asked.take() {
            push_if_long(
                &mut silences,
                asked,
                Some(e),
                first_within_us,
                "waited for an answer",
            );
        }
        if let Some(last) = life.news {
            push_if_long(&mut silences, last, Some(e), every_us, "heard nothing");
        }
        match name {
            "accepted" | "status" => life.news = Some(e),
            "answered" | "unanswered" => {
                life.ended = true;
                life.news = None;
            }
            _ => {}
        }
    }
    if lives.is_empty() {
        return Verdict::Unknown {
            why: "no query was submitted".into(),
        };
    }
    let end = log_end(log);
    for life in lives.values().filter(|l| !l.ended) {
        for (since, limit_us, what) in [
            (life.asked, first_within_us, "waited for an answer"),
            (life.news, every_us, "heard nothing"),
        ] {
            if let Some(since) = since
                && end - since.t_us > limit_us
            {
                silences.push(Silence {
                    since,
                    until: None,
                    gap_us: end - since.t_us,
                    limit_us,
                    what,
                });
            }
        }
    }
    let queries = lives.len();
    let accepted = log
        .of(TRAFFIC_TARGET)
        .filter(|e| e.name == "accepted")
        .count();
    if silences.is_empty() {
        return Verdict::Pass {
            counts: obj(json!({ "queries": queries, "accepted": accepted })),
        };
    }
    silences.sort_by_key(|s| (s.since.t_us, s.until.map(|u| u.t_us)));
    let silent_queries = silences
        .iter()
        .filter_map(|s| s.since.u64("seq"))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let first = &silences[0];
    let summary = format!(
        "{silent_queries} of {queries} queries left their users without news too long; the first, seq {}, {} for {:.1} s from its {} at t={} ({}), over {} s",
        first.since.u64("seq").unwrap_or(0),
        first.what,
        first.gap_us as f64 / 1e6,
        first.since.name,
        secs(first.since.t_us),
        match first.until {
            Some(u) => format!("until its {} at t={}", u.name, secs(u.t_us)),
            None => "to the end of the log".into(),
        },
        first.limit_us / 1_000_000
    );
    let mut witness_events: Vec<Event> = Vec::new();
    for s in &silences {
        for e in std::iter::once(s.since).chain(s.until) {
            if witness_events.len() < WITNESS_EVENTS && !witness_events.contains(e) {
                witness_events.push(e.clone());
            }
        }
    }
    witness_events.sort_by_key(|e| e.t_us);
    Verdict::Fail {
        witness: Witness {
            summary,
            counts: obj(json!({
                "queries": queries, "accepted": accepted, "silent_queries": silent_queries,
                "silences": silences.len(),
            })),
            events: witness_events,
        },
    }
}

/// The sometimes state: a query was still open `every_us` after its acceptance, so its user
/// needed news after the first answer.
pub fn sometimes(log: &EventLog, every_us: u64) -> (bool, &'static str) {
    let mut accepted: BTreeMap<u64, u64> = BTreeMap::new();
    let mut long = false;
    for e in log.of(TRAFFIC_TARGET) {
        let Some(seq) = e.u64("seq") else { continue };
        match e.name.as_str() {
            "accepted" => {
                accepted.insert(seq, e.t_us);
            }
            "answered" | "unanswered" => {
                if let Some(t) = accepted.remove(&seq) {
                    long |= e.t_us - t > every_us;
                }
            }
            _ => {}
        }
    }
    let end = log_end(log);
    long |= accepted.values().any(|&t| end - t > every_us);
    (long, "a query was still open 30 s after it was accepted")
}

/// Records the silence from `since` to `until` if it is longer than `limit_us`.
fn push_if_long<'a>(
    silences: &mut Vec<Silence<'a>>,
    since: &'a Event,
    until: Option<&'a Event>,
    limit_us: u64,
    what: &'static str,
) {
    let gap_us = until.map_or(0, |u| u.t_us.saturating_sub(since.t_us));
    if gap_us > limit_us {
        silences.push(Silence {
            since,
            until,
            gap_us,
            limit_us,
            what,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;

    const S: u64 = 1_000_000;

    fn c(t_s: f64, name: &str, seq: u64) -> Event {
        ev(
            (t_s * 1e6) as u64,
            "traffic",
            TRAFFIC_TARGET,
            name,
            &[("seq", json!(seq))],
        )
    }

    fn check(events: Vec<Event>) -> Verdict {
        let mut events = events;
        events.sort_by_key(|e| e.t_us);
        progress_visible(
            &EventLog::from_events(events),
            FIRST_STATUS_WITHIN_US,
            PROGRESS_EVERY_US,
        )
    }

    /// Submitted at `t`, accepted at once, a new status every 5 s until answered at `end`.
    fn followed(seq: u64, t: f64, end: f64) -> Vec<Event> {
        let mut out = vec![c(t, "submitted", seq), c(t, "accepted", seq)];
        let mut p = t + 5.0;
        while p < end {
            out.push(c(p, "status", seq));
            p += 5.0;
        }
        out.push(c(end, "answered", seq));
        out
    }

    #[test]
    fn regular_news_passes_and_refusals_are_news() {
        let mut events = followed(1, 0.0, 100.0);
        // Refused twice with Retry-After 20 s, then accepted, queued, moved up, answered.
        events.extend([
            c(10.0, "submitted", 2),
            c(10.0, "refused", 2),
            c(30.0, "submitted", 2),
            c(30.1, "refused", 2),
            c(50.0, "submitted", 2),
            c(50.0, "accepted", 2),
            c(70.0, "status", 2),
            c(95.0, "status", 2),
            c(120.0, "answered", 2),
        ]);
        let Verdict::Pass { counts } = check(events) else {
            panic!("news every 5 to 25 s")
        };
        assert_eq!(counts["accepted"], 2);
    }

    #[test]
    fn a_late_answer_to_a_submission_fails() {
        let v = check(vec![
            c(1.0, "submitted", 1),
            c(6.5, "accepted", 1),
            c(7.0, "answered", 1),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("5.5 s without an answer")
        };
        assert_eq!(witness.events[0].name, "submitted");
        assert_eq!(witness.events[1].name, "accepted");
        assert!(
            witness.summary.contains("waited for an answer"),
            "{}",
            witness.summary
        );
    }

    #[test]
    fn a_status_that_does_not_change_for_too_long_fails() {
        // The client logs only changes: 35 s between two is 35 s of the same status.
        let v = check(vec![
            c(0.0, "submitted", 1),
            c(0.0, "accepted", 1),
            c(5.0, "status", 1),
            c(40.0, "status", 1),
            c(41.0, "answered", 1),
        ]);
        let Verdict::Fail { witness } = v else {
            panic!("35 s without news")
        };
        assert!(
            witness.summary.contains("heard nothing"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.events[0].t_us, 5 * S);
        assert_eq!(witness.counts["silent_queries"], 1);
    }

    #[test]
    fn a_query_open_at_the_end_is_judged_to_the_last_event() {
        // Submitted, never answered, and the log goes on 10 s: fails.
        let mut events = followed(2, 0.0, 20.0);
        events.push(c(10.0, "submitted", 1));
        assert_eq!(check(events).word(), "fail");
        // Accepted, and the log ends 20 s after its last news: not yet due.
        let events = vec![
            c(0.0, "submitted", 1),
            c(0.0, "accepted", 1),
            c(5.0, "status", 1),
            c(25.0, "submitted", 2),
            c(25.0, "accepted", 2),
        ];
        assert_eq!(check(events).word(), "pass");
        // Accepted, and nothing for 31 s to the end: fails.
        let events = vec![
            c(0.0, "submitted", 1),
            c(0.0, "accepted", 1),
            c(31.0, "submitted", 2),
            c(31.0, "accepted", 2),
        ];
        assert_eq!(check(events).word(), "fail");
    }

    #[test]
    fn news_after_the_end_is_not_needed() {
        let v = check(vec![
            c(0.0, "submitted", 1),
            c(0.0, "accepted", 1),
            c(1.0, "answered", 1),
            c(100.0, "submitted", 2),
            c(100.0, "accepted", 2),
            c(101.0, "answered", 2),
        ]);
        assert_eq!(v.word(), "pass", "{v:?}");
    }

    #[test]
    fn the_sometimes_state_is_a_query_open_past_the_limit() {
        let quick = EventLog::from_events(followed(1, 0.0, 20.0));
        assert!(!sometimes(&quick, PROGRESS_EVERY_US).0);
        let slow = EventLog::from_events(followed(1, 0.0, 31.0));
        assert!(sometimes(&slow, PROGRESS_EVERY_US).0);
        let open = EventLog::from_events(vec![c(0.0, "accepted", 1), c(31.0, "submitted", 2)]);
        assert!(sometimes(&open, PROGRESS_EVERY_US).0);
    }

    #[test]
    fn the_limits_are_inclusive_and_the_gap_to_the_end_is_measured() {
        // News exactly 30 s apart, and a query open exactly 30 s at the end: within.
        let v = check(vec![
            c(10.0, "submitted", 1),
            c(10.0, "accepted", 1),
            c(40.0, "status", 1),
            c(70.0, "answered", 1),
            c(70.0, "submitted", 2),
            c(75.0, "accepted", 2),
            c(105.0, "submitted", 3),
            c(105.0, "refused", 3),
        ]);
        assert_eq!(v.word(), "pass", "{v:?}");
        // Open 31 s at the end of the log: the gap is to the end.
        let Verdict::Fail { witness } = check(vec![
            c(10.0, "submitted", 1),
            c(10.0, "accepted", 1),
            c(41.0, "submitted", 2),
            c(41.0, "refused", 2),
        ]) else {
            panic!("31 s without news")
        };
        assert!(
            witness.summary.contains("for 31.0 s"),
            "{}",
            witness.summary
        );
        assert!(
            witness.summary.contains("to the end of the log"),
            "{}",
            witness.summary
        );
    }

    #[test]
    fn a_witness_shows_each_event_once() {
        // Two silences share the status at 35 s.
        let Verdict::Fail { witness } = check(vec![
            c(0.0, "submitted", 1),
            c(0.0, "accepted", 1),
            c(35.0, "status", 1),
            c(70.0, "answered", 1),
        ]) else {
            panic!("two gaps of 35 s")
        };
        assert_eq!(witness.counts["silences"], 2);
        assert_eq!(witness.events.len(), 3, "{:?}", witness.events);
        // Many silences: at most WITNESS_EVENTS events.
        let mut many = Vec::new();
        for seq in 0..20 {
            many.push(c(0.0, "submitted", seq));
            many.push(c(0.0, "accepted", seq));
            many.push(c(40.0 + seq as f64, "answered", seq));
        }
        let Verdict::Fail { witness } = check(many) else {
            panic!("twenty silent queries")
        };
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
    }

    #[test]
    fn the_sometimes_state_measures_from_acceptance() {
        let log = |events: Vec<Event>| EventLog::from_events(events);
        // Accepted at 20 s, answered at 25 s, the log goes on to 100 s: quick.
        let quick = log(vec![
            c(20.0, "accepted", 1),
            c(25.0, "answered", 1),
            c(100.0, "submitted", 2),
            c(100.0, "refused", 2),
        ]);
        assert!(!sometimes(&quick, PROGRESS_EVERY_US).0);
        // Answered exactly 30 s after, or open exactly 30 s at the end: not past the limit.
        let exact = log(vec![c(20.0, "accepted", 1), c(50.0, "answered", 1)]);
        assert!(!sometimes(&exact, PROGRESS_EVERY_US).0);
        let open = log(vec![c(20.0, "accepted", 1), c(50.0, "submitted", 2)]);
        assert!(!sometimes(&open, PROGRESS_EVERY_US).0);
        let short_open = log(vec![c(20.0, "accepted", 1), c(25.0, "submitted", 2)]);
        assert!(!sometimes(&short_open, PROGRESS_EVERY_US).0);
    }

    #[test]
    fn no_queries_is_unknown() {
        assert_eq!(check(vec![]).word(), "unknown");
    }
}
