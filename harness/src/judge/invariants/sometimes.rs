//! "Sometimes" checks: for each "always" invariant, whether the run reached the state that makes
//! its verdict mean something (after Antithesis and Jepsen). `never_frozen` passing in a run
//! whose fleet never carried real load proves little; the report says so next to the verdict.
//!
//! Each is a predicate over the log; it does not change the verdict. A checker with its own file
//! keeps its state there (its `sometimes`); the states of the checkers whose rule is a few lines
//! are here. `judge::checks::judge` pairs every invariant's verdict with its state in one
//! exhaustive match, so an invariant without either does not compile.

use serde::Serialize;

use super::vocabulary::{PROVIDER_TARGET, QUERY_TARGET, TRAFFIC_TARGET, is_background};
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

/// `no_lost_queries`: a query was accepted.
pub fn no_lost_queries(log: &EventLog) -> State {
    (
        log.of(QUERY_TARGET).any(|e| e.name == "accepted"),
        "a query was accepted",
    )
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
}
