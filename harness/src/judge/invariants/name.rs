//! The invariants this build can check, by the names scenario files use.

use serde::Deserialize;

/// The invariants this build can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvariantName {
    /// Every accepted query ends exactly once.
    NoLostQueries,
    /// The provider never froze the system's account.
    NeverFrozen,
    /// Every (account, service, api) of the system stays within its quota in every 1 s, 10 s
    /// and 60 s window.
    ProviderQuota,
    /// The same seed gives the same event-log digest.
    Deterministic,
    /// At most 1 % of the system's provider calls are throttled in any 60 s window.
    ThrottleRate,
    /// At most 1 % of background accounts' calls fail in any 60 s window of 20 or more.
    CollateralDamage,
    /// No retry leads past the third attempt of a call.
    AttemptCap,
    /// Every retry told to wait by `Retry-After` waits that long.
    RetryHygiene,
    /// An accepted query's first status comes within 5 s; a running one's progress every 30 s.
    ProgressVisible,
    /// Every submitted query is answered or refused explicitly: no silent drop, no hang.
    ExplicitBackpressure,
    /// At most one sts or glue call per (client host, principal, action, resource) in flight at
    /// once.
    Coalesced,
    /// No user receives rows of a lake its tenant may not read; only a lake's own role touches
    /// its data; only the system assumes roles.
    TenantIsolation,
    /// A bad config version (rolled back by a canary, or failing calls on a node) never reaches
    /// beyond the canaries, and every node that ran it leaves it within 2 minutes.
    BlastRadius,
    /// After a region comes back, at most 20 credential fetches a second for 60 s.
    FailbackRamp,
    /// Jain's index of tenants' goodput against their fair share is at least 0.9.
    TenantFairness,
    /// After a freeze ends, the queries waiting then all succeed within 1.25 × B / (μ − λ),
    /// and the account is not frozen again meanwhile.
    BacklogDrains,
    /// Queries running and waiting on each coordinator stay within the configured limits.
    BoundedQueues,
    /// Per api, in every 10 s window of 20 or more system calls, attempts / (attempts −
    /// retries) ≤ 1.1 (retries of the guard only; queue redeliveries are not separated).
    RetryAmplification,
    /// After the first fault ends, goodput (200 answers) is back at 0.9 × its level before the
    /// fault within max(60 s, 2 × the fault's length) and stays there.
    Recovers,
    /// Invalid SQL is refused before acceptance: no failed query has an SQL, schema or plan
    /// error.
    InvalidSqlCostsNothing,
    /// No batch query accepted after an interactive one on the same coordinator starts first.
    PriorityOrder,
    /// Within a cache lifetime (15 min), at most one provider operation per (principal, action, resource) key that queries need.
    FanoutBound,
    /// At most one layer (the AWS SDK or the system's guard) retries any one operation.
    SingleRetryLayer,
    /// In seconds at 90 % of an api's quota, at most 10 % of calls are retries; retry delays are spread (coefficient of variation at least 0.5).
    RetriesOffPeak,
    /// After a throttle, a caller's rate over the next 5 s is at most 0.9 × its rate over the 5 s before.
    BacksOffAfterThrottle,
    /// The alert rules page within 60 s of the first failure a user sees, and raise at most 5 alerts in all.
    AlertFires,
    /// The client meter agrees with the events: |L − λW| / L ≤ 5 % over the run (at least 10 min).
    LittlesLaw,
    /// At offered load m × capacity, goodput (200 answers a second) is at least 0.9 × capacity for m ≥ 2 and 0.8 × capacity for m ≥ 10 (needs capacity_per_s).
    GoodputUnderOverload,
    /// The p99 latency of queries arriving at 2× capacity is at most 1.5 × the p99 at 0.8× (needs capacity_per_s).
    FlatLatencyUnderOverload,
    /// Once offered load is back at its level before the first fault, goodput is not below half its level for more than 120 s.
    NoMetastability,
    /// Per-lake drain time does not grow with the backlog: draining 2B takes at most 2.2 × draining B.
    QueueCostFlat,
}

impl InvariantName {
    /// Every invariant this build can check, in catalogue order.
    pub const ALL: [InvariantName; 31] = [
        Self::NoLostQueries,
        Self::NeverFrozen,
        Self::ProviderQuota,
        Self::Deterministic,
        Self::ThrottleRate,
        Self::CollateralDamage,
        Self::AttemptCap,
        Self::RetryHygiene,
        Self::ProgressVisible,
        Self::ExplicitBackpressure,
        Self::Coalesced,
        Self::TenantIsolation,
        Self::BlastRadius,
        Self::FailbackRamp,
        Self::TenantFairness,
        Self::BacklogDrains,
        Self::BoundedQueues,
        Self::RetryAmplification,
        Self::Recovers,
        Self::InvalidSqlCostsNothing,
        Self::PriorityOrder,
        Self::FanoutBound,
        Self::SingleRetryLayer,
        Self::RetriesOffPeak,
        Self::BacksOffAfterThrottle,
        Self::AlertFires,
        Self::LittlesLaw,
        Self::GoodputUnderOverload,
        Self::FlatLatencyUnderOverload,
        Self::NoMetastability,
        Self::QueueCostFlat,
    ];

    /// The invariant of this name, if there is one.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == name)
    }

    /// The stable name used in scenario files and results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoLostQueries => "no_lost_queries",
            Self::NeverFrozen => "never_frozen",
            Self::ProviderQuota => "provider_quota",
            Self::Deterministic => "deterministic",
            Self::ThrottleRate => "throttle_rate",
            Self::CollateralDamage => "collateral_damage",
            Self::AttemptCap => "attempt_cap",
            Self::RetryHygiene => "retry_hygiene",
            Self::ProgressVisible => "progress_visible",
            Self::ExplicitBackpressure => "explicit_backpressure",
            Self::Coalesced => "coalesced",
            Self::TenantIsolation => "tenant_isolation",
            Self::BlastRadius => "blast_radius",
            Self::FailbackRamp => "failback_ramp",
            Self::TenantFairness => "tenant_fairness",
            Self::BacklogDrains => "backlog_drains",
            Self::BoundedQueues => "bounded_queues",
            Self::RetryAmplification => "retry_amplification",
            Self::Recovers => "recovers",
            Self::InvalidSqlCostsNothing => "invalid_sql_costs_nothing",
            Self::PriorityOrder => "priority_order",
            Self::FanoutBound => "fanout_bound",
            Self::SingleRetryLayer => "single_retry_layer",
            Self::RetriesOffPeak => "retries_off_peak",
            Self::BacksOffAfterThrottle => "backs_off_after_throttle",
            Self::AlertFires => "alert_fires",
            Self::LittlesLaw => "littles_law",
            Self::GoodputUnderOverload => "goodput_under_overload",
            Self::FlatLatencyUnderOverload => "flat_latency_under_overload",
            Self::NoMetastability => "no_metastability",
            Self::QueueCostFlat => "queue_cost_flat",
        }
    }
}
