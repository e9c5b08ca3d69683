//! "Sometimes" checks: for each "always" invariant, whether the run reached the state that makes
//! its verdict mean something (after Antithesis and Jepsen). `never_frozen` passing in a run
//! whose fleet never carried real load proves little; the report says so next to the verdict.
//!
//! Each is a predicate over the log; it does not change the verdict. A checker with its own file
//! keeps its state there (its `sometimes`); the states of the checkers whose rule is a few lines
//! are here. `judge::checks::judge` pairs every invariant's verdict with its state in one
//! exhaustive match, so an invariant without either does not compile.

use serde::Serialize;

use super::vocabulary::{PROVIDER_TARGET, QUERY_TARGET, TERMINAL, TRAFFIC_TARGET, is_background};
use crate::events::EventLog;

/// Whether the interesting state was reached, and what that state is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sometimes {
    /// Reached or not.
    pub reached: bool,
    /// The state, in words.
    pub state: &'static str,
}

fn any_call(log: &EventLog, pred: impl Fn(&crate::events::Event) -> bool) -> bool {
    log.of(PROVIDER_TARGET).any(|e| e.name == "call" && pred(e))
}

/// A sometimes state: whether it was reached, and what it is.
pub type State = (bool, &'static str);

/// `no_lost_queries`: a query was open (accepted, not yet ended) while the system met trouble:
/// a fault's window was open, or one of the system's provider calls failed (throttled, frozen,
/// timed out, or an error other than a lookup of something absent), or the system queued,
/// shed or failed work, took a config push, ran a config it later rolled back (from its
/// `config_applied` to its `config_rolled_back`), or re-planned a query after a restart. A query
/// accepted and answered on a quiet day loses nothing by construction and proves little.
pub fn no_lost_queries(log: &EventLog) -> State {
    const STATE: &str = "a query was open while a fault was, a system call failed, a node ran a config it then rolled back, or the system queued, shed, failed or re-planned work";
    // Each query's open span, by the client's and coordinator's events.
    let mut spans: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for e in log.of(QUERY_TARGET) {
        let Some(id) = e.str("query_id") else {
            continue;
        };
        if e.name == "accepted" {
            spans.entry(id).or_insert((e.t_us, u64::MAX)).0 = e.t_us;
        } else if TERMINAL.contains(&e.name.as_str())
            && let Some(span) = spans.get_mut(id)
        {
            span.1 = span.1.min(e.t_us);
        }
    }
    let open_at = |t: u64| spans.values().any(|&(a, z)| a <= t && t < z);
    let open_over = |from: u64, to: u64| spans.values().any(|&(a, z)| a < to && from < z);
    let trouble_call = log.of(PROVIDER_TARGET).any(|e| {
        e.name == "call"
            && e.str("account").is_some_and(|a| !is_background(a))
            && e.str("outcome").is_some_and(|o| o != "ok")
            && !super::calls::is_absent(e)
            && open_at(e.t_us)
    });
    let in_fault = super::faults::windows(log)
        .iter()
        .any(|w| open_over(w.start.t_us, w.end.map_or(u64::MAX, |e| e.t_us)));
    // The system's own signs of trouble, seen on its coordinators and workers: load it made
    // wait or refused, work that failed, a config pushed, a query re-planned after a restart.
    const TROUBLE: [&str; 8] = [
        "queued",
        "shed",
        "task_failed",
        "enqueue_waiting",
        "failed",
        "deadline_exceeded",
        "recovered",
        "config_pushed",
    ];
    let signs = log
        .events()
        .iter()
        .any(|e| TROUBLE.contains(&e.name.as_str()) && open_at(e.t_us));
    // A node ran a config that it later rolled back: a bad config was live.
    let mut applied: std::collections::BTreeMap<(&str, u64), u64> = Default::default();
    let mut bad_config = false;
    for e in log.events() {
        let key = (e.host.as_str(), e.u64("version").unwrap_or(0));
        match e.name.as_str() {
            "config_applied" => {
                applied.insert(key, e.t_us);
            }
            "config_rolled_back" => {
                if let Some(from) = applied.remove(&key) {
                    bad_config |= open_over(from, e.t_us);
                }
            }
            _ => {}
        }
    }
    (trouble_call || in_fault || signs || bad_config, STATE)
}

/// `never_frozen`, by the system's own load: a freeze injected by the scenario does not count.
pub fn never_frozen(log: &EventLog) -> State {
    (
        fleet_at_half(log),
        "the metadata fleet ran at half its capacity or more",
    )
}

fn fleet_at_half(log: &EventLog) -> bool {
    log.of(PROVIDER_TARGET)
        .any(|e| e.name == "fleet" && e.u64("utilisation_permille").is_some_and(|u| u >= 500))
}

/// `throttle_rate`: the system's call; a throttle of another account's proves nothing of the
/// system.
pub fn throttle_rate(log: &EventLog) -> State {
    (
        any_call(log, |e| {
            e.str("outcome") == Some("throttled")
                && e.str("account").is_some_and(|a| !is_background(a))
        }),
        "the provider throttled a call of the system's",
    )
}

/// `collateral_damage`: other accounts called while the fleet was loaded.
pub fn collateral_damage(log: &EventLog) -> State {
    (
        any_call(log, |e| e.str("account").is_some_and(is_background)) && fleet_at_half(log),
        "other accounts called while the fleet ran at half its capacity or more",
    )
}

/// `explicit_backpressure`, from the client's view: it was refused, whatever the reason, or a
/// query had to wait.
pub fn explicit_backpressure(log: &EventLog) -> State {
    (
        log.of(TRAFFIC_TARGET).any(|e| e.name == "refused")
            || log.of(QUERY_TARGET).any(|e| e.name == "queued"),
        "a query was refused or made to wait",
    )
}

/// `tenant_isolation`: a lake's bucket was read.
pub fn tenant_isolation(log: &EventLog) -> State {
    (
        any_call(log, |e| {
            e.str("service") == Some("s3")
                && e.str("resource")
                    .is_some_and(|r| r.starts_with("arn:aws:s3:::lake-"))
        }),
        "a lake's bucket was read",
    )
}

/// `invalid_sql_costs_nothing`: the client submitted invalid SQL.
pub fn invalid_sql(log: &EventLog) -> State {
    (
        super::invalid_sql_costs_nothing::reached(log),
        "the client submitted a query whose SQL was invalid",
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::ev;
    use super::*;

    #[test]
    fn reached_only_when_the_state_happened() {
        let idle = EventLog::from_events(vec![ev(
            1,
            "p",
            PROVIDER_TARGET,
            "fleet",
            &[("utilisation_permille", json!(70))],
        )]);
        assert!(!never_frozen(&idle).0);
        let loaded = EventLog::from_events(vec![ev(
            1,
            "p",
            PROVIDER_TARGET,
            "fleet",
            &[("utilisation_permille", json!(900))],
        )]);
        assert!(never_frozen(&loaded).0);
        assert!(!super::super::attempt_cap::sometimes(&loaded).0);
    }

    #[test]
    fn no_lost_queries_needs_trouble_while_a_query_is_open() {
        let q = |t: u64, name: &str| ev(t, "c", QUERY_TARGET, name, &[("query_id", json!("q1"))]);
        let call = |t: u64, outcome: &str, code: &str| {
            ev(
                t,
                "p",
                PROVIDER_TARGET,
                "call",
                &[
                    ("account", json!("100000000001")),
                    ("outcome", json!(outcome)),
                    ("code", json!(code)),
                ],
            )
        };
        let log = |mut events: Vec<crate::events::Event>| {
            events.sort_by_key(|e| e.t_us);
            EventLog::from_events(events)
        };
        // A quiet query, and a lookup of something absent while it runs: not reached.
        let quiet = log(vec![
            q(10, "accepted"),
            call(15, "error", "NoSuchKey"),
            q(20, "succeeded"),
        ]);
        assert!(!no_lost_queries(&quiet).0);
        // A throttle after the query ended: not reached.
        let after = log(vec![
            q(10, "accepted"),
            q(20, "succeeded"),
            call(25, "throttled", "Throttling"),
        ]);
        assert!(!no_lost_queries(&after).0);
        // A throttle while it runs, another query queued, or a fault open over it: reached.
        let throttled = log(vec![
            q(10, "accepted"),
            call(15, "throttled", "Throttling"),
            q(20, "succeeded"),
        ]);
        assert!(no_lost_queries(&throttled).0);
        let queued = log(vec![q(10, "accepted"), q(12, "queued"), q(20, "succeeded")]);
        assert!(no_lost_queries(&queued).0);
        let mut faulted = vec![q(10, "accepted"), q(20, "succeeded")];
        faulted.extend(super::super::test_support::fault_window(
            0,
            "api.throttle",
            (0, None),
            &[],
        ));
        assert!(no_lost_queries(&log(faulted)).0);
        // A node ran a config from 12 to 18 and rolled it back: reached; one it kept, or one
        // it rolled back after the query ended, is not.
        let config =
            |t: u64, name: &str| ev(t, "w", "stampede::config", name, &[("version", json!(1))]);
        let rolled_back = |from: u64, to: u64| {
            log(vec![
                q(10, "accepted"),
                q(20, "succeeded"),
                config(from, "config_applied"),
                config(to, "config_rolled_back"),
            ])
        };
        assert!(no_lost_queries(&rolled_back(12, 18)).0);
        assert!(!no_lost_queries(&rolled_back(22, 28)).0);
        let kept = log(vec![
            q(10, "accepted"),
            config(12, "config_applied"),
            q(20, "succeeded"),
        ]);
        assert!(!no_lost_queries(&kept).0);
    }
}
