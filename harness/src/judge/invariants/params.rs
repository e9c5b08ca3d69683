//! Invariant parameters as scenario files write them: `invariants: [name, {name: {key: value}}]`.
//!
//! Each parametrised checker has a `Params` struct whose defaults are docs/invariants.md's numbers;
//! the newer checkers keep theirs in their own files. A scenario's parameters are checked
//! against these types when the file is read, so a wrong key or value is reported with its
//! line and column, and are kept as JSON in the parsed scenario.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::InvariantName;
use crate::span::Span;

fn secs(s: u64) -> Span {
    Span(std::time::Duration::from_secs(s))
}

/// For checkers that take no parameters: only `{}` is accepted.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `throttle_rate`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleRate {
    /// The largest throttled share of the system's calls in a window. Default: 0.01.
    pub max_share: f64,
    /// The window. Default: `60s`.
    pub window: Span,
}

impl Default for ThrottleRate {
    fn default() -> Self {
        Self {
            max_share: super::MAX_THROTTLED,
            window: Span(std::time::Duration::from_micros(super::THROTTLE_WINDOW_US)),
        }
    }
}

/// `collateral_damage`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollateralDamage {
    /// The largest failed share of other accounts' calls in a window. Default: 0.01.
    pub max_share: f64,
    /// The window. Default: `60s`.
    pub window: Span,
    /// Windows with fewer background calls are not judged. Default: 20.
    pub min_calls: u64,
}

impl Default for CollateralDamage {
    fn default() -> Self {
        Self {
            max_share: super::MAX_COLLATERAL_ERRORS,
            window: Span(std::time::Duration::from_micros(
                super::COLLATERAL_WINDOW_US,
            )),
            min_calls: super::COLLATERAL_MIN_CALLS,
        }
    }
}

/// `attempt_cap`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttemptCap {
    /// The most attempts of one operation. Default: 3.
    pub max_attempts: u64,
}

impl Default for AttemptCap {
    fn default() -> Self {
        Self {
            max_attempts: super::MAX_ATTEMPTS,
        }
    }
}

/// `progress_visible`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgressVisible {
    /// How soon after acceptance the first status must come. Default: `5s`.
    pub first_within: Span,
    /// The longest silence of a running query. Default: `30s`.
    pub every: Span,
}

impl Default for ProgressVisible {
    fn default() -> Self {
        Self {
            first_within: secs(super::FIRST_STATUS_WITHIN_US / 1_000_000),
            every: secs(super::PROGRESS_EVERY_US / 1_000_000),
        }
    }
}

/// `coalesced`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Coalesced {
    /// The most calls of one key in flight at once. Default: 1.
    pub max_in_flight: u64,
}

impl Default for Coalesced {
    fn default() -> Self {
        Self {
            max_in_flight: super::MAX_IN_FLIGHT,
        }
    }
}

/// `failback_ramp`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailbackRamp {
    /// The most credential fetches in any second after a region returns. Default: the
    /// scenario's AssumeRole quota rate, else 20.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_per_s: Option<u64>,
    /// How long after the return fetches are watched. Default: `60s`.
    pub ramp: Span,
}

impl Default for FailbackRamp {
    fn default() -> Self {
        Self {
            max_per_s: None,
            ramp: secs(super::RAMP_US / 1_000_000),
        }
    }
}

/// `retry_amplification`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryAmplification {
    /// The most attempts per logical operation in a window. Default: 1.1.
    pub max_ratio: f64,
    /// The window. Default: `10s`.
    pub window: Span,
    /// Windows with fewer calls of an api are not judged. Default: 20.
    pub min_calls: u64,
}

impl Default for RetryAmplification {
    fn default() -> Self {
        Self {
            max_ratio: super::MAX_AMPLIFICATION,
            window: secs(super::AMPLIFICATION_WINDOW_US / 1_000_000),
            min_calls: super::AMPLIFICATION_MIN_CALLS,
        }
    }
}

/// `backlog_drains`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BacklogDrains {
    /// The slack s on the drain bound (1 + s) × B / (μ − λ). Default: 0.25.
    pub slack: f64,
}

impl Default for BacklogDrains {
    fn default() -> Self {
        Self {
            slack: super::backlog_drains::SLACK,
        }
    }
}

/// `bounded_queues`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoundedQueues {
    /// The most queries running on a coordinator. Default: the system's configured limit.
    pub max_running: Option<u64>,
    /// The most queries waiting on a coordinator. Default: the system's configured limit.
    pub max_queued: Option<u64>,
}

fn typed<'de, P, D>(d: D) -> Result<Value, D::Error>
where
    P: Deserialize<'de> + Serialize,
    D: Deserializer<'de>,
{
    let params = P::deserialize(d)?;
    serde_json::to_value(params).map_err(D::Error::custom)
}

/// Reads `name`'s parameters with their checker's type, answering them as JSON.
pub fn deserialize<'de, D: Deserializer<'de>>(
    name: InvariantName,
    d: D,
) -> Result<Value, D::Error> {
    use InvariantName as N;
    match name {
        N::ThrottleRate => typed::<ThrottleRate, D>(d),
        N::CollateralDamage => typed::<CollateralDamage, D>(d),
        N::AttemptCap => typed::<AttemptCap, D>(d),
        N::ProgressVisible => typed::<ProgressVisible, D>(d),
        N::Coalesced => typed::<Coalesced, D>(d),
        N::FailbackRamp => typed::<FailbackRamp, D>(d),
        N::TenantFairness => typed::<super::tenant_fairness::Params, D>(d),
        N::RetryAmplification => typed::<RetryAmplification, D>(d),
        N::BacklogDrains => typed::<BacklogDrains, D>(d),
        N::BoundedQueues => typed::<BoundedQueues, D>(d),
        N::FanoutBound => typed::<super::fanout_bound::Params, D>(d),
        N::SingleRetryLayer => typed::<super::single_retry_layer::Params, D>(d),
        N::RetriesOffPeak => typed::<super::retries_off_peak::Params, D>(d),
        N::BacksOffAfterThrottle => typed::<super::backs_off_after_throttle::Params, D>(d),
        N::AlertFires => typed::<super::alert_fires::Params, D>(d),
        N::LittlesLaw => typed::<super::littles_law::Params, D>(d),
        N::GoodputUnderOverload => typed::<super::goodput_under_overload::Params, D>(d),
        N::FlatLatencyUnderOverload => typed::<super::flat_latency_under_overload::Params, D>(d),
        N::NoMetastability => typed::<super::no_metastability::Params, D>(d),
        N::QueueCostFlat => typed::<super::queue_cost_flat::Params, D>(d),
        N::BlastRadius => typed::<super::blast_radius::Params, D>(d),
        N::RetryHygiene => typed::<super::retry_hygiene::Params, D>(d),
        N::PriorityOrder => typed::<super::priority_order::Params, D>(d),
        _ => typed::<NoParams, D>(d),
    }
}

/// The parameters a scenario gave, as `P`: its defaults where the scenario says nothing.
pub fn of<P: DeserializeOwned + Default>(params: &Value) -> P {
    if params.is_null() {
        return P::default();
    }
    // The scenario's parameters were read with this type when the file was parsed.
    serde_json::from_value(params.clone()).expect("parameters were checked when parsed")
}
