//! `alert_fires`: the scenario's alert rules raise at least one page within T of the first
//! user-visible failure, and no more than N alerts in all.
//!
//! Checks: the first user-visible failure is the earliest end of a query at the client (its
//! `stampede::traffic` `answered`, `unanswered` or final `refused`) that is a failure its user
//! sees, as [`super::clients::user_visible_failure`] defines it: no answer, refused for load for
//! good (429 or 503 after its resubmissions), or ended 5xx. A page is a `stampede::alert`
//! `firing` (see [`crate::judge::alerts`]). The run passes when both hold:
//!
//! - paged: a `firing` at a time in `[t_fail, t_fail + within]`, or an alert already firing at
//!   `t_fail` (its rule fired before and had not `resolved`: someone is already paged);
//! - quiet: the `firing` events of the whole run are at most `max_alerts`.
//!
//! A run with no user-visible failure passes when it is quiet (and its sometimes check says the
//! interesting state was not reached). A failure and no alert event at all is a fail (no page),
//! not unknown: the rules' silence is the outcome incident 6 of docs/why.md describes. Unknown:
//! the log ends before `t_fail + within` with no page yet, and it is quiet, so the run stopped
//! before a late page could tell.
//!
//! Does not check: whether the page was about the failure (any rule's `firing` counts), how
//! fast the alert resolved, or failures after the first (one page per incident suffices). Not
//! failures: 200, 400 (the user's own), 499 (cancelled by the user), and a refusal the client
//! resubmitted after (honest backpressure the user did not see as an end).

use std::collections::BTreeSet;

use serde_json::json;

use super::clients::{ClientQuery, client_queries};
use super::obj;
use super::time::{log_end, micros, secs};
use super::vocabulary::ALERT_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};
use crate::span::Span;

/// Parameters of `alert_fires`, from the scenario (`invariants: [{alert_fires: {...}}]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// T: how soon after the first user-visible failure a page must go out. Default `60s`.
    pub within: Span,
    /// N: the most `firing` alerts allowed over the whole run. Default 5.
    pub max_alerts: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            within: Span(std::time::Duration::from_secs(60)),
            max_alerts: 5,
        }
    }
}

/// The ends of the queries that failed in their user's eyes, in time order.
fn failures(log: &EventLog) -> Vec<&Event> {
    let mut ends: Vec<&Event> = client_queries(log)
        .into_values()
        .filter(ClientQuery::failed)
        .filter_map(|q| q.end)
        .collect();
    ends.sort_by_key(|e| e.t_us);
    ends
}

/// The failure in words: `answered 500 (seq 7)`.
fn describe(e: &Event) -> String {
    let seq = e
        .u64("seq")
        .map_or(String::new(), |s| format!(" (seq {s})"));
    match e.u64("status") {
        Some(status) => format!("{} {status}{seq}", e.name),
        None => format!("{}{seq}", e.name),
    }
}

/// Checks that the first user-visible failure was paged within `within`, and that alerts were
/// few.
pub fn alert_fires(log: &EventLog, p: &Params) -> Verdict {
    let within = micros(p.within);
    let failed = failures(log);
    let failure_count = failed.len() as u64;
    let first_failure = failed.first().copied();
    let mut firings: Vec<&Event> = log
        .of(ALERT_TARGET)
        .filter(|e| e.name == "firing")
        .collect();
    firings.sort_by_key(|e| e.t_us);
    let total = firings.len() as u64;
    let noisy = total > p.max_alerts;

    let mut c = obj(json!({
        "firings": total,
        "max_alerts": p.max_alerts,
        "within_us": within,
        "user_visible_failures": failure_count,
    }));
    let mut events: Vec<&Event> = Vec::new();
    let mut clauses: Vec<String> = Vec::new();

    if let Some(fail) = first_failure {
        let t_fail = fail.t_us;
        let deadline = t_fail.saturating_add(within);
        // The rules firing at t_fail: those that fired before it and had not resolved.
        let mut open: BTreeSet<&str> = BTreeSet::new();
        for e in log.of(ALERT_TARGET).filter(|e| e.t_us < t_fail) {
            let rule = e.str("rule").unwrap_or("");
            match e.name.as_str() {
                "firing" => {
                    open.insert(rule);
                }
                "resolved" => {
                    open.remove(rule);
                }
                _ => {}
            }
        }
        let next_page = firings.iter().find(|e| e.t_us >= t_fail).copied();
        let paged_in_time = next_page.is_some_and(|e| e.t_us <= deadline);
        c.insert("first_failure_us".into(), t_fail.into());
        c.insert(
            "first_page_after_us".into(),
            json!(next_page.map(|e| e.t_us)),
        );
        c.insert(
            "page_delay_us".into(),
            json!(next_page.map(|e| e.t_us - t_fail)),
        );
        c.insert("already_firing".into(), json!(open.len()));
        if open.is_empty() && !paged_in_time {
            let end = log_end(log);
            if next_page.is_none() && end < deadline && !noisy {
                return Verdict::Unknown {
                    why: format!(
                        "the first user-visible failure was at {} and the log ends at {}, less than {} later, with no page yet",
                        secs(t_fail),
                        secs(end),
                        secs(within)
                    ),
                };
            }
            events.push(fail);
            let late = match next_page {
                Some(page) => {
                    events.push(page);
                    format!(
                        "the first page ({}) came at {}, {} later",
                        page.str("rule").unwrap_or("?"),
                        secs(page.t_us),
                        secs(page.t_us - t_fail)
                    )
                }
                None if total == 0 => "no alert fired at all".to_string(),
                None => "no alert fired after it".to_string(),
            };
            clauses.push(format!(
                "the first user-visible failure, {} at {}, got no page within {}: {late}",
                describe(fail),
                secs(t_fail),
                secs(within)
            ));
        }
    }
    if noisy {
        events.extend(firings.iter().take(WITNESS_EVENTS));
        clauses.push(format!(
            "{total} alerts fired, over the limit of {} (the first at {})",
            p.max_alerts,
            secs(firings[0].t_us)
        ));
    }
    if clauses.is_empty() {
        return Verdict::Pass { counts: c };
    }
    events.sort_by_key(|e| e.t_us);
    events.dedup_by(|a, b| std::ptr::eq(*a, *b));
    events.truncate(WITNESS_EVENTS);
    Verdict::Fail {
        witness: Witness {
            summary: clauses.join("; and "),
            counts: c,
            events: events.into_iter().cloned().collect(),
        },
    }
}

/// Whether a user-visible failure happened: without one, there was nothing to page about.
pub fn sometimes(log: &EventLog, _p: &Params) -> (bool, &'static str) {
    (
        !failures(log).is_empty(),
        "a query failed visibly to its user",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::test_support::ev;
    use crate::judge::invariants::vocabulary::TRAFFIC_TARGET;

    const S: u64 = 1_000_000;

    fn traffic(t_s: u64, name: &str, seq: u64, status: Option<u64>) -> Event {
        let mut fields = vec![("seq", json!(seq))];
        if let Some(s) = status {
            fields.push(("status", json!(s)));
        }
        ev(t_s * S, "traffic", TRAFFIC_TARGET, name, &fields)
    }

    fn alert(t_s: u64, name: &str, rule: &str) -> Event {
        ev(
            t_s * S,
            "monitor",
            ALERT_TARGET,
            name,
            &[
                ("rule", json!(rule)),
                ("signal", json!("failed_queries")),
                ("value", json!(3.0)),
                ("threshold", json!(2.0)),
            ],
        )
    }

    /// A query answered 200 every 10 s up to `end_s`, plus `more`.
    fn log(end_s: u64, more: Vec<Event>) -> EventLog {
        let mut events: Vec<Event> = (0..=end_s / 10)
            .map(|k| traffic(k * 10, "answered", 1000 + k, Some(200)))
            .collect();
        events.extend(more);
        events.sort_by_key(|e| e.t_us);
        EventLog::from_events(events)
    }

    #[test]
    fn a_page_soon_after_the_first_failure_passes() {
        let l = log(
            300,
            vec![
                traffic(100, "answered", 1, Some(500)),
                traffic(105, "answered", 2, Some(504)),
                alert(130, "firing", "errors"),
                alert(200, "resolved", "errors"),
            ],
        );
        let Verdict::Pass { counts } = alert_fires(&l, &Params::default()) else {
            panic!("must pass")
        };
        assert_eq!(counts["page_delay_us"], json!(30 * S));
        assert_eq!(counts["user_visible_failures"], json!(2));
        assert_eq!(counts["firings"], json!(1));
        assert!(sometimes(&l, &Params::default()).0);
    }

    #[test]
    fn a_page_already_out_counts() {
        let l = log(
            300,
            vec![
                alert(50, "firing", "backlog"),
                alert(60, "firing", "throttles"),
                alert(70, "resolved", "throttles"),
                traffic(100, "unanswered", 1, None),
            ],
        );
        let Verdict::Pass { counts } = alert_fires(&l, &Params::default()) else {
            panic!("must pass")
        };
        assert_eq!(counts["already_firing"], json!(1));
        // Once resolved, an earlier page does not cover a later failure.
        let l = log(
            300,
            vec![
                alert(60, "firing", "throttles"),
                alert(70, "resolved", "throttles"),
                traffic(100, "unanswered", 1, None),
            ],
        );
        assert!(alert_fires(&l, &Params::default()).is_fail());
    }

    #[test]
    fn a_late_page_fails_with_the_failure_and_the_page() {
        let l = log(
            400,
            vec![
                // A 429 or 503 the client resubmitted after is backpressure, and a 200 is
                // fine: the first failure is the final 503 at 100 s.
                traffic(40, "refused", 9, Some(429)),
                traffic(41, "refused", 9, Some(503)),
                traffic(45, "answered", 9, Some(200)),
                traffic(90, "refused", 1, Some(503)),
                traffic(100, "refused", 1, Some(503)),
                traffic(110, "answered", 2, Some(500)),
                alert(250, "firing", "errors"),
            ],
        );
        let Verdict::Fail { witness } = alert_fires(&l, &Params::default()) else {
            panic!("must fail")
        };
        assert!(
            witness.summary.contains("refused 503 (seq 1) at 100.000s")
                && witness.summary.contains("no page within 60.000s")
                && witness.summary.contains("came at 250.000s, 150.000s later"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.counts["first_failure_us"], json!(100 * S));
        assert_eq!(witness.counts["page_delay_us"], json!(150 * S));
        let names: Vec<&str> = witness.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["refused", "firing"]);
    }

    #[test]
    fn silence_after_a_failure_fails_rather_than_unknown() {
        let l = log(300, vec![traffic(100, "answered", 1, Some(500))]);
        let Verdict::Fail { witness } = alert_fires(&l, &Params::default()) else {
            panic!("must fail")
        };
        assert!(
            witness.summary.ends_with("no alert fired at all"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.counts["first_page_after_us"], json!(null));
        assert_eq!(witness.events.len(), 1);
        assert_eq!(witness.events[0].t_us, 100 * S);
    }

    #[test]
    fn too_many_alerts_fail_even_without_failures() {
        let noise: Vec<Event> = (0..7)
            .map(|k| alert(20 + 10 * k, "firing", "flappy"))
            .collect();
        let l = log(300, noise);
        assert!(!sometimes(&l, &Params::default()).0);
        let Verdict::Fail { witness } = alert_fires(&l, &Params::default()) else {
            panic!("must fail")
        };
        assert!(
            witness
                .summary
                .starts_with("7 alerts fired, over the limit of 5"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
        assert_eq!(witness.events[0].t_us, 20 * S);
        // Within the limit, a run without failures passes.
        let p = Params {
            max_alerts: 7,
            ..Params::default()
        };
        assert_eq!(alert_fires(&l, &p).word(), "pass");
    }

    #[test]
    fn both_clauses_are_named() {
        let mut more: Vec<Event> = (0..6).map(|k| alert(200 + k, "firing", "late")).collect();
        more.push(traffic(100, "unanswered", 1, None));
        let Verdict::Fail { witness } = alert_fires(&log(300, more), &Params::default()) else {
            panic!("must fail")
        };
        assert!(
            witness.summary.contains("no page within") && witness.summary.contains("6 alerts"),
            "{}",
            witness.summary
        );
        assert_eq!(witness.events[0].name, "unanswered");
        assert_eq!(witness.events.len(), WITNESS_EVENTS);
    }

    #[test]
    fn a_log_that_ends_too_soon_is_unknown() {
        let l = log(120, vec![traffic(100, "answered", 1, Some(504))]);
        let v = alert_fires(&l, &Params::default());
        let Verdict::Unknown { why } = v else {
            panic!("must be unknown: {v:?}")
        };
        assert!(why.contains("less than 60.000s later"), "{why}");
        // Once the log covers T, a page 70 s late fails; with T = 90 s it is in time.
        let l = log(
            300,
            vec![
                traffic(100, "answered", 1, Some(504)),
                alert(170, "firing", "e"),
            ],
        );
        assert!(alert_fires(&l, &Params::default()).is_fail());
        let p = Params {
            within: Span(std::time::Duration::from_secs(90)),
            ..Params::default()
        };
        assert_eq!(alert_fires(&l, &p).word(), "pass");
    }

    #[test]
    fn only_failures_a_user_sees_count() {
        // The user's own (400), the user's cancel (499), and refusals resubmitted after are not
        // failures: with no page at all, the run passes and the state was not reached.
        let calm = vec![
            traffic(100, "refused", 1, Some(400)),
            traffic(110, "answered", 2, Some(499)),
            traffic(120, "refused", 3, Some(429)),
            traffic(121, "submitted", 3, None),
            traffic(130, "answered", 3, Some(200)),
        ];
        let l = log(300, calm.clone());
        let Verdict::Pass { counts } = alert_fires(&l, &Params::default()) else {
            panic!("must pass")
        };
        assert_eq!(counts["user_visible_failures"], json!(0));
        assert!(!sometimes(&l, &Params::default()).0);
        // A 429 that is the seq's last word is refused for good: a failure, and unpaged.
        let mut more = calm;
        more.push(traffic(150, "refused", 4, Some(429)));
        let l = log(300, more);
        assert!(sometimes(&l, &Params::default()).0);
        let Verdict::Fail { witness } = alert_fires(&l, &Params::default()) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["first_failure_us"], json!(150 * S));
        assert!(
            witness.summary.contains("refused 429 (seq 4) at 150.000s"),
            "{}",
            witness.summary
        );
    }

    #[test]
    fn params_have_the_documented_defaults() {
        let p: Params = serde_json::from_str(r#"{"within": "2m"}"#).unwrap();
        assert_eq!(p.within.0.as_secs(), 120);
        assert_eq!(p.max_alerts, 5);
        assert!(serde_json::from_str::<Params>(r#"{"max": 3}"#).is_err());
    }
}
