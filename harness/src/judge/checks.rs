//! Which checker runs, with which parameters, for a scenario: the scenario's invariant specs
//! and world (its quotas, the system's limits) turned into each checker's arguments. The
//! checkers themselves (`invariants/`) read the event log and their parameters, nothing else.

use std::collections::BTreeMap;

use crate::events::EventLog;
use crate::input::scenario::{InvariantName as N, InvariantSpec, Scenario};
use crate::judge::invariants::{
    Quota, Verdict, alert_fires, attempt_cap, backlog_drains, backs_off_after_throttle,
    blast_radius, bounded_queues, coalesced, collateral_damage, explicit_backpressure,
    failback_ramp, fanout_bound, flat_latency_under_overload, goodput_under_overload,
    invalid_sql_costs_nothing, is_background, littles_law, micros, never_frozen, no_lost_queries,
    no_metastability, params, priority_order, progress_visible, provider_quota, queue_cost_flat,
    recovers, retries_off_peak, retry_amplification, retry_hygiene, single_retry_layer, sometimes,
    tenant_fairness, tenant_isolation, throttle_rate,
};

/// The checkers that read only the log, with the scenario's parameters. `deterministic` needs
/// two runs and lives in [`crate::commands::run`].
pub fn check_log(spec: &InvariantSpec, log: &EventLog, scenario: &Scenario) -> Option<Verdict> {
    let verdict = match spec.name {
        N::NoLostQueries => no_lost_queries(log),
        N::NeverFrozen => never_frozen(log, &[stampede_fakes::iam::SYSTEM_ACCOUNT]),
        // Background accounts are other customers; every other account is the system's own
        // or a lake's, which the system calls as.
        N::ProviderQuota => provider_quota(log, &quotas(scenario), |a| !is_background(a)),
        N::ThrottleRate => {
            let p: params::ThrottleRate = spec.params();
            throttle_rate(log, p.max_share, micros(p.window))
        }
        N::CollateralDamage => {
            let p: params::CollateralDamage = spec.params();
            collateral_damage(log, p.max_share, micros(p.window), p.min_calls)
        }
        N::AttemptCap => attempt_cap(log, spec.params::<params::AttemptCap>().max_attempts),
        N::RetryHygiene => retry_hygiene(log, &spec.params()),
        N::ProgressVisible => {
            let p: params::ProgressVisible = spec.params();
            progress_visible(log, micros(p.first_within), micros(p.every))
        }
        N::ExplicitBackpressure => explicit_backpressure(log),
        N::Coalesced => coalesced(log, spec.params::<params::Coalesced>().max_in_flight),
        N::TenantIsolation => tenant_isolation(
            log,
            crate::judge::invariants::tenant_isolation::Tenancy {
                tenants: scenario.world.lakes.tenants,
                shared: scenario.world.lakes.shared,
            },
        ),
        N::BlastRadius => blast_radius(log, &spec.params()),
        N::FailbackRamp => {
            let p: params::FailbackRamp = spec.params();
            // R_max from the provider's quota on credentials, as the catalogue has it.
            let r_max = p.max_per_s.unwrap_or_else(|| {
                quotas(scenario)
                    .get("AssumeRole")
                    .map_or(crate::judge::invariants::R_MAX, |q| {
                        q.rate_per_s.ceil() as u64
                    })
            });
            failback_ramp(log, r_max, micros(p.ramp))
        }
        N::TenantFairness => tenant_fairness(log, &spec.params()),
        N::BoundedQueues => {
            let (max_running, max_queued) = queue_limits(spec, scenario);
            bounded_queues::bounded_queues(log, max_running, max_queued)
        }
        N::BacklogDrains => {
            let usable = quotas(scenario).get("AssumeRole").map(|q| q.rate_per_s);
            backlog_drains::backlog_drains(
                log,
                stampede_fakes::iam::SYSTEM_ACCOUNT,
                usable,
                spec.params::<params::BacklogDrains>().slack,
            )
        }
        N::RetryAmplification => {
            let p: params::RetryAmplification = spec.params();
            retry_amplification(log, p.max_ratio, micros(p.window), p.min_calls)
        }
        N::Recovers => recovers(log),
        N::InvalidSqlCostsNothing => invalid_sql_costs_nothing(log),
        N::PriorityOrder => priority_order::priority_order(log, &spec.params()),
        N::FanoutBound => fanout_bound::fanout_bound(log, &spec.params()),
        N::SingleRetryLayer => single_retry_layer::single_retry_layer(log, &spec.params()),
        N::RetriesOffPeak => {
            retries_off_peak::retries_off_peak(log, &retries_off_peak_params(spec, scenario))
        }
        N::BacksOffAfterThrottle => {
            backs_off_after_throttle::backs_off_after_throttle(log, &spec.params())
        }
        N::AlertFires => alert_fires::alert_fires(log, &spec.params()),
        N::LittlesLaw => littles_law::littles_law(log, &spec.params()),
        N::GoodputUnderOverload => {
            goodput_under_overload::goodput_under_overload(log, &spec.params())
        }
        N::FlatLatencyUnderOverload => {
            flat_latency_under_overload::flat_latency_under_overload(log, &spec.params())
        }
        N::NoMetastability => no_metastability::no_metastability(log, &spec.params()),
        N::QueueCostFlat => queue_cost_flat::queue_cost_flat(log, &spec.params()),
        // Two runs, not one log: `crate::commands::run` judges it.
        N::Deterministic => return None,
    };
    Some(verdict)
}

/// `retries_off_peak`'s parameters, its capacities taken from the provider's quotas where the
/// scenario gives none.
fn retries_off_peak_params(spec: &InvariantSpec, scenario: &Scenario) -> retries_off_peak::Params {
    let mut p: retries_off_peak::Params = spec.params();
    if p.quotas.is_empty() {
        p.quotas = quotas(scenario)
            .into_iter()
            .map(|(api, q)| (api, q.rate_per_s))
            .collect();
    }
    p
}

/// `bounded_queues`' limits, (running, queued): the scenario's, else the system's own.
fn queue_limits(spec: &InvariantSpec, scenario: &Scenario) -> (u64, u64) {
    let t = crate::world::lower::system_config(scenario).tuning;
    let p: params::BoundedQueues = spec.params();
    (
        p.max_running.unwrap_or(u64::from(t.max_running_queries)),
        p.max_queued.unwrap_or(u64::from(t.max_queued_queries)),
    )
}

/// The scenario's provider quotas, by api.
pub(crate) fn quotas(scenario: &Scenario) -> BTreeMap<String, Quota> {
    scenario
        .world
        .provider
        .quotas
        .iter()
        .map(|(api, q)| {
            let quota = Quota {
                rate_per_s: q.rate_per_s,
                burst: q.burst,
            };
            (api.clone(), quota)
        })
        .collect()
}

/// The sometimes check of `spec`: whether the run reached the state that gives its verdict
/// meaning, for the invariants that have one.
pub fn sometimes_of(
    spec: &InvariantSpec,
    log: &EventLog,
    scenario: &Scenario,
) -> Option<sometimes::Sometimes> {
    let (reached, state) = match spec.name {
        N::FanoutBound => fanout_bound::sometimes(log, &spec.params()),
        N::SingleRetryLayer => single_retry_layer::sometimes(log, &spec.params()),
        N::RetriesOffPeak => {
            retries_off_peak::sometimes(log, &retries_off_peak_params(spec, scenario))
        }
        N::BacksOffAfterThrottle => backs_off_after_throttle::sometimes(log, &spec.params()),
        N::AlertFires => alert_fires::sometimes(log, &spec.params()),
        N::LittlesLaw => littles_law::sometimes(log, &spec.params()),
        N::GoodputUnderOverload => goodput_under_overload::sometimes(log, &spec.params()),
        N::FlatLatencyUnderOverload => flat_latency_under_overload::sometimes(log, &spec.params()),
        N::NoMetastability => no_metastability::sometimes(log, &spec.params()),
        N::QueueCostFlat => queue_cost_flat::sometimes(log, &spec.params()),
        N::PriorityOrder => priority_order::sometimes(log, &spec.params()),
        N::TenantFairness => tenant_fairness::sometimes(log, &spec.params()),
        N::BlastRadius => blast_radius::sometimes(log, &spec.params()),
        N::RetryHygiene => retry_hygiene::sometimes(log, &spec.params()),
        N::ProviderQuota => {
            provider_quota::sometimes(log, &quotas(scenario), |a| !is_background(a))
        }
        N::BoundedQueues => bounded_queues::sometimes(log, queue_limits(spec, scenario).0),
        N::NoLostQueries
        | N::NeverFrozen
        | N::Deterministic
        | N::ThrottleRate
        | N::CollateralDamage
        | N::AttemptCap
        | N::ProgressVisible
        | N::ExplicitBackpressure
        | N::Coalesced
        | N::TenantIsolation
        | N::FailbackRamp
        | N::BacklogDrains
        | N::RetryAmplification
        | N::Recovers
        | N::InvalidSqlCostsNothing => {
            return sometimes::sometimes(spec.name, log);
        }
    };
    Some(sometimes::Sometimes { reached, state })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::InvariantName;

    fn scenario() -> Scenario {
        let yaml = "name: t\nduration: 1m\nworld:\n  regions: [r]\n  lakes: { count: 1 }\ntraffic:\n  replay: t.jsonl\n";
        crate::input::scenario::parse(std::path::Path::new("t.yaml"), yaml).expect("a scenario")
    }

    #[test]
    fn every_invariant_has_a_checker_and_a_sometimes_check() {
        let (log, scenario) = (EventLog::default(), scenario());
        for name in InvariantName::ALL {
            if name == InvariantName::Deterministic {
                continue;
            }
            let spec = InvariantSpec::named(name);
            assert!(
                check_log(&spec, &log, &scenario).is_some(),
                "{} has no checker",
                name.as_str()
            );
            assert!(
                sometimes_of(&spec, &log, &scenario).is_some_and(|s| !s.reached),
                "{} has no sometimes check, or one reached on an empty log",
                name.as_str()
            );
        }
    }
}
