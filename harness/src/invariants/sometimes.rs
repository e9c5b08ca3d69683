//! "Sometimes" checks: for each "always" invariant, whether the run reached the state that makes
//! its verdict mean something (after Antithesis and Jepsen). `never_frozen` passing in a run
//! whose fleet never carried real load proves little; the report says so next to the verdict.
//!
//! Each is a predicate over the log; it does not change the verdict.

use serde::Serialize;

use super::vocabulary::{
    FAULT_TARGET, PROVIDER_TARGET, QUERY_TARGET, TRAFFIC_TARGET, is_background,
};
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

fn any_fault(log: &EventLog, names: &[&str]) -> bool {
    log.of(FAULT_TARGET)
        .any(|e| names.contains(&e.name.as_str()))
}

/// The sometimes check of invariant `name`, if it has one.
pub fn sometimes(name: &str, log: &EventLog) -> Option<Sometimes> {
    let (reached, state) = match name {
        "no_lost_queries" => (
            log.of(QUERY_TARGET).any(|e| e.name == "accepted"),
            "a query was accepted",
        ),
        // By the system's own load: a freeze injected by the scenario does not count.
        "never_frozen" => (
            log.of(PROVIDER_TARGET).any(|e| {
                e.name == "fleet" && e.u64("utilisation_permille").is_some_and(|u| u >= 500)
            }),
            "the metadata fleet ran at half its capacity or more",
        ),
        "throttle_rate" => (
            any_call(log, |e| e.str("outcome") == Some("throttled")),
            "the provider throttled a call",
        ),
        "collateral_damage" => (
            any_call(log, |e| e.str("account").is_some_and(is_background))
                && log.of(PROVIDER_TARGET).any(|e| {
                    e.name == "fleet" && e.u64("utilisation_permille").is_some_and(|u| u >= 500)
                }),
            "other accounts called while the fleet ran at half its capacity or more",
        ),
        "attempt_cap" => super::attempt_cap::sometimes(log),
        "retry_amplification" => super::attempt_cap::sometimes(log),
        "progress_visible" => {
            super::progress_visible::sometimes(log, super::progress_visible::PROGRESS_EVERY_US)
        }
        // The client's view: it was refused, whatever the reason, or a query had to wait.
        "explicit_backpressure" => (
            log.of(TRAFFIC_TARGET).any(|e| e.name == "refused")
                || log.of(QUERY_TARGET).any(|e| e.name == "queued"),
            "a query was refused or made to wait",
        ),
        "coalesced" => super::coalesced::sometimes(log),
        "tenant_isolation" => (
            any_call(log, |e| {
                e.str("service") == Some("s3")
                    && e.str("resource")
                        .is_some_and(|r| r.starts_with("arn:aws:s3:::lake-"))
            }),
            "a lake's bucket was read",
        ),
        "failback_ramp" => (any_fault(log, &["region_up"]), "a region came back"),
        "backlog_drains" => (
            any_fault(log, &["freeze"])
                || log.of(PROVIDER_TARGET).any(|e| e.name == "account_thawed"),
            "a frozen account thawed",
        ),
        "recovers" => super::recovers::sometimes(log),
        "invalid_sql_costs_nothing" => (
            super::invalid_sql_costs_nothing::reached(log),
            "the client submitted a query whose SQL was invalid",
        ),
        _ => return None,
    };
    Some(Sometimes { reached, state })
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
        assert!(!sometimes("never_frozen", &idle).unwrap().reached);
        let loaded = EventLog::from_events(vec![ev(
            1,
            "p",
            PROVIDER_TARGET,
            "fleet",
            &[("utilisation_permille", json!(900))],
        )]);
        assert!(sometimes("never_frozen", &loaded).unwrap().reached);
        assert!(!sometimes("attempt_cap", &loaded).unwrap().reached);
        assert_eq!(sometimes("deterministic", &loaded), None);
    }
}
