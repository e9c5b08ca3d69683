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

/// The verdict of `spec` on `log` and its sometimes state (whether the run reached the state
/// that gives the verdict meaning), with the scenario's parameters: one arm per invariant, each
/// giving both, so that an invariant lacking either does not compile. `None` for
/// `deterministic`, which needs two runs and lives in [`crate::commands::run`].
pub fn judge(
    spec: &InvariantSpec,
    log: &EventLog,
    scenario: &Scenario,
) -> Option<(Verdict, sometimes::Sometimes)> {
    let (verdict, (reached, state)) = match spec.name {
        N::NoLostQueries => (no_lost_queries(log), sometimes::no_lost_queries(log)),
        N::NeverFrozen => (
            never_frozen(log, &[stampede_fakes::iam::SYSTEM_ACCOUNT]),
            sometimes::never_frozen(log),
        ),
        // Background accounts are other customers; every other account is the system's own
        // or a lake's, which the system calls as.
        N::ProviderQuota => {
            let system = |a: &str| !is_background(a);
            (
                provider_quota(log, &quotas(scenario), system),
                provider_quota::sometimes(log, &quotas(scenario), system),
            )
        }
        N::ThrottleRate => {
            let p: params::ThrottleRate = spec.params();
            (
                throttle_rate(log, p.max_share, micros(p.window)),
                sometimes::throttle_rate(log),
            )
        }
        N::CollateralDamage => {
            let p: params::CollateralDamage = spec.params();
            (
                collateral_damage(log, p.max_share, micros(p.window), p.min_calls),
                sometimes::collateral_damage(log),
            )
        }
        N::AttemptCap => (
            attempt_cap(log, spec.params::<params::AttemptCap>().max_attempts),
            attempt_cap::sometimes(log),
        ),
        N::RetryHygiene => by_params(spec, log, retry_hygiene, retry_hygiene::sometimes),
        N::ProgressVisible => {
            let p: params::ProgressVisible = spec.params();
            (
                progress_visible(log, micros(p.first_within), micros(p.every)),
                progress_visible::sometimes(log, progress_visible::PROGRESS_EVERY_US),
            )
        }
        N::ExplicitBackpressure => (
            explicit_backpressure(log),
            sometimes::explicit_backpressure(log),
        ),
        N::Coalesced => (
            coalesced(log, spec.params::<params::Coalesced>().max_in_flight),
            coalesced::sometimes(log),
        ),
        N::TenantIsolation => (
            tenant_isolation(
                log,
                crate::judge::invariants::tenant_isolation::Tenancy {
                    tenants: scenario.world.lakes.tenants,
                    shared: scenario.world.lakes.shared,
                },
            ),
            sometimes::tenant_isolation(log),
        ),
        N::BlastRadius => by_params(spec, log, blast_radius, blast_radius::sometimes),
        N::FailbackRamp => failback(spec, log, scenario),
        N::TenantFairness => by_params(spec, log, tenant_fairness, tenant_fairness::sometimes),
        N::BoundedQueues => {
            let (max_running, max_queued) = queue_limits(spec, scenario);
            (
                bounded_queues::bounded_queues(log, max_running, max_queued),
                bounded_queues::sometimes(log, max_running),
            )
        }
        N::BacklogDrains => backlog(spec, log, scenario),
        N::RetryAmplification => {
            let p: params::RetryAmplification = spec.params();
            (
                retry_amplification(log, p.max_ratio, micros(p.window), p.min_calls),
                attempt_cap::sometimes(log),
            )
        }
        N::Recovers => (recovers(log), recovers::sometimes(log)),
        N::InvalidSqlCostsNothing => (invalid_sql_costs_nothing(log), sometimes::invalid_sql(log)),
        N::PriorityOrder => by_params(
            spec,
            log,
            priority_order::priority_order,
            priority_order::sometimes,
        ),
        N::FanoutBound => by_params(
            spec,
            log,
            fanout_bound::fanout_bound,
            fanout_bound::sometimes,
        ),
        N::SingleRetryLayer => by_params(
            spec,
            log,
            single_retry_layer::single_retry_layer,
            single_retry_layer::sometimes,
        ),
        N::RetriesOffPeak => {
            let p = retries_off_peak_params(spec, scenario);
            (
                retries_off_peak::retries_off_peak(log, &p),
                retries_off_peak::sometimes(log, &p),
            )
        }
        N::BacksOffAfterThrottle => by_params(
            spec,
            log,
            backs_off_after_throttle::backs_off_after_throttle,
            backs_off_after_throttle::sometimes,
        ),
        N::AlertFires => by_params(spec, log, alert_fires::alert_fires, alert_fires::sometimes),
        N::LittlesLaw => by_params(spec, log, littles_law::littles_law, littles_law::sometimes),
        N::GoodputUnderOverload => by_params(
            spec,
            log,
            goodput_under_overload::goodput_under_overload,
            goodput_under_overload::sometimes,
        ),
        N::FlatLatencyUnderOverload => by_params(
            spec,
            log,
            flat_latency_under_overload::flat_latency_under_overload,
            flat_latency_under_overload::sometimes,
        ),
        N::NoMetastability => by_params(
            spec,
            log,
            no_metastability::no_metastability,
            no_metastability::sometimes,
        ),
        N::QueueCostFlat => by_params(
            spec,
            log,
            queue_cost_flat::queue_cost_flat,
            queue_cost_flat::sometimes,
        ),
        // Two runs, not one log: `crate::commands::run` judges it.
        N::Deterministic => return None,
    };
    Some((verdict, sometimes::Sometimes { reached, state }))
}

/// `failback_ramp`, with R_max from the provider's quota on credentials, as the catalogue has
/// it, unless the spec gives one.
fn failback(
    spec: &InvariantSpec,
    log: &EventLog,
    scenario: &Scenario,
) -> (Verdict, sometimes::State) {
    let p: params::FailbackRamp = spec.params();
    let r_max = p.max_per_s.unwrap_or_else(|| {
        quotas(scenario)
            .get("AssumeRole")
            .map_or(crate::judge::invariants::R_MAX, |q| {
                q.rate_per_s.ceil() as u64
            })
    });
    (
        failback_ramp(log, r_max, micros(p.ramp)),
        failback_ramp::sometimes(log, micros(p.ramp)),
    )
}

/// `backlog_drains` of the system's account, at the rate its AssumeRole quota allows.
fn backlog(
    spec: &InvariantSpec,
    log: &EventLog,
    scenario: &Scenario,
) -> (Verdict, sometimes::State) {
    let usable = quotas(scenario).get("AssumeRole").map(|q| q.rate_per_s);
    let account = stampede_fakes::iam::SYSTEM_ACCOUNT;
    let slack = spec.params::<params::BacklogDrains>().slack;
    (
        backlog_drains::backlog_drains(log, account, usable, slack),
        backlog_drains::sometimes(log, account),
    )
}

/// The verdict and the state of a checker whose parameters are the spec's own.
fn by_params<P: serde::de::DeserializeOwned + Default>(
    spec: &InvariantSpec,
    log: &EventLog,
    check: fn(&EventLog, &P) -> Verdict,
    state: fn(&EventLog, &P) -> sometimes::State,
) -> (Verdict, sometimes::State) {
    let p: P = spec.params();
    (check(log, &p), state(log, &p))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::invariants::InvariantName;

    fn scenario() -> Scenario {
        let yaml = "name: t\nduration: 1m\nworld:\n  regions: [r]\n  lakes: { count: 1 }\ntraffic:\n  replay: t.jsonl\n";
        crate::input::scenario::parse(std::path::Path::new("t.yaml"), yaml).expect("a scenario")
    }

    #[test]
    fn every_invariant_but_deterministic_is_judged_with_a_state_unreached_on_an_empty_log() {
        let (log, scenario) = (EventLog::default(), scenario());
        for name in InvariantName::ALL {
            let judged = judge(&InvariantSpec::named(name), &log, &scenario);
            if name == InvariantName::Deterministic {
                assert!(judged.is_none());
                continue;
            }
            let (_, state) = judged.expect("judged");
            assert!(!state.reached, "{} reached on an empty log", name.as_str());
        }
    }
}
