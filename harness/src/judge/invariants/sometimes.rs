//! "Sometimes" checks: for each "always" invariant, whether the run reached the state that makes
//! its verdict mean something (after Antithesis and Jepsen). `never_frozen` passing in a run
//! whose fleet never carried real load proves little; the report says so next to the verdict.
//!
//! Each is a predicate over the log; it does not change the verdict.

use serde::Serialize;

use super::InvariantName;
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

/// The sometimes check of invariant `name`, if it has one.
pub fn sometimes(name: InvariantName, log: &EventLog) -> Option<Sometimes> {
    use InvariantName as N;
    let (reached, state) = match name {
        N::NoLostQueries => (
            log.of(QUERY_TARGET).any(|e| e.name == "accepted"),
            "a query was accepted",
        ),
        // By the system's own load: a freeze injected by the scenario does not count.
        N::NeverFrozen => (
            log.of(PROVIDER_TARGET).any(|e| {
                e.name == "fleet" && e.u64("utilisation_permille").is_some_and(|u| u >= 500)
            }),
            "the metadata fleet ran at half its capacity or more",
        ),
        // The system's call: a throttle of another account's proves nothing of the system.
        N::ThrottleRate => (
            any_call(log, |e| {
                e.str("outcome") == Some("throttled")
                    && e.str("account").is_some_and(|a| !is_background(a))
            }),
            "the provider throttled a call of the system's",
        ),
        N::CollateralDamage => (
            any_call(log, |e| e.str("account").is_some_and(is_background))
                && log.of(PROVIDER_TARGET).any(|e| {
                    e.name == "fleet" && e.u64("utilisation_permille").is_some_and(|u| u >= 500)
                }),
            "other accounts called while the fleet ran at half its capacity or more",
        ),
        N::AttemptCap => super::attempt_cap::sometimes(log),
        N::RetryAmplification => super::attempt_cap::sometimes(log),
        N::ProgressVisible => {
            super::progress_visible::sometimes(log, super::progress_visible::PROGRESS_EVERY_US)
        }
        // The client's view: it was refused, whatever the reason, or a query had to wait.
        N::ExplicitBackpressure => (
            log.of(TRAFFIC_TARGET).any(|e| e.name == "refused")
                || log.of(QUERY_TARGET).any(|e| e.name == "queued"),
            "a query was refused or made to wait",
        ),
        N::Coalesced => super::coalesced::sometimes(log),
        N::TenantIsolation => (
            any_call(log, |e| {
                e.str("service") == Some("s3")
                    && e.str("resource")
                        .is_some_and(|r| r.starts_with("arn:aws:s3:::lake-"))
            }),
            "a lake's bucket was read",
        ),
        N::FailbackRamp => super::failback_ramp::sometimes(log, super::failback_ramp::RAMP_US),
        N::BacklogDrains => {
            super::backlog_drains::sometimes(log, super::vocabulary::SYSTEM_ACCOUNT)
        }
        N::Recovers => super::recovers::sometimes(log),
        N::InvalidSqlCostsNothing => (
            super::invalid_sql_costs_nothing::reached(log),
            "the client submitted a query whose SQL was invalid",
        ),
        // Judged with the scenario's parameters (`checks::sometimes_of`), or with no state to reach.
        N::ProviderQuota
        | N::Deterministic
        | N::RetryHygiene
        | N::BlastRadius
        | N::TenantFairness
        | N::BoundedQueues
        | N::PriorityOrder
        | N::FanoutBound
        | N::SingleRetryLayer
        | N::RetriesOffPeak
        | N::BacksOffAfterThrottle
        | N::AlertFires
        | N::LittlesLaw
        | N::GoodputUnderOverload
        | N::FlatLatencyUnderOverload
        | N::NoMetastability
        | N::QueueCostFlat => return None,
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
        assert!(
            !sometimes(InvariantName::NeverFrozen, &idle)
                .unwrap()
                .reached
        );
        let loaded = EventLog::from_events(vec![ev(
            1,
            "p",
            PROVIDER_TARGET,
            "fleet",
            &[("utilisation_permille", json!(900))],
        )]);
        assert!(
            sometimes(InvariantName::NeverFrozen, &loaded)
                .unwrap()
                .reached
        );
        assert!(
            !sometimes(InvariantName::AttemptCap, &loaded)
                .unwrap()
                .reached
        );
        assert_eq!(sometimes(InvariantName::Deterministic, &loaded), None);
    }
}
