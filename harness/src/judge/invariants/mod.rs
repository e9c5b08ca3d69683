//! Invariants: pure checkers over the event log, each answering pass, fail with a witness, or
//! unknown with a reason (after Jepsen's checkers).

pub mod alert_fires;
pub mod attempt_cap;
pub mod backlog_drains;
pub mod backs_off_after_throttle;
pub mod blast_radius;
pub mod bounded_queues;
pub(crate) mod calls;
pub(crate) mod clients;
pub mod coalesced;
pub mod collateral_damage;
pub mod explicit_backpressure;
pub mod failback_ramp;
pub mod fanout_bound;
pub mod faults;
pub mod flat_latency_under_overload;
pub mod goodput_under_overload;
pub mod invalid_sql_costs_nothing;
pub mod littles_law;
pub mod name;
pub mod never_frozen;
pub mod no_lost_queries;
pub mod no_metastability;
mod operations;
pub mod params;
pub mod priority_order;
pub mod progress_visible;
pub mod provider_quota;
pub mod queue_cost_flat;
pub mod recovers;
pub mod retries_off_peak;
pub mod retry_amplification;
pub mod retry_hygiene;
pub mod single_retry_layer;
pub mod sometimes;
pub mod tenant_fairness;
pub mod tenant_isolation;
#[cfg(test)]
mod test_support;
pub mod throttle_rate;
mod time;
pub mod vocabulary;
mod windows;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::events::Event;

pub use attempt_cap::{MAX_ATTEMPTS, attempt_cap};
pub use blast_radius::blast_radius;
pub use clients::user_visible_failure;
pub use coalesced::{COALESCED_SERVICES, MAX_IN_FLIGHT, coalesced};
pub use collateral_damage::{
    COLLATERAL_MIN_CALLS, COLLATERAL_WINDOW_US, MAX_COLLATERAL_ERRORS, collateral_damage,
};
pub use explicit_backpressure::{BACKPRESSURE_STATUSES, explicit_backpressure};
pub use failback_ramp::{R_MAX, RAMP_US, failback_ramp};
pub use faults::TRIGGERS;
pub use invalid_sql_costs_nothing::invalid_sql_costs_nothing;
pub use name::InvariantName;
pub use never_frozen::never_frozen;
pub use no_lost_queries::no_lost_queries;
pub use priority_order::{INTERACTIVE, priority_order};
pub use progress_visible::{FIRST_STATUS_WITHIN_US, PROGRESS_EVERY_US, progress_visible};
pub use provider_quota::{Quota, provider_quota};
pub use recovers::{GOODPUT_WINDOW_US, RECOVERED_SHARE, T_MAX_MIN_US, T_STABLE_US, recovers};
pub use retry_amplification::{
    AMPLIFICATION_MIN_CALLS, AMPLIFICATION_WINDOW_US, MAX_AMPLIFICATION, retry_amplification,
};
pub use retry_hygiene::retry_hygiene;
pub use tenant_fairness::{MIN_JAIN_INDEX, tenant_fairness};
pub use tenant_isolation::tenant_isolation;
pub use throttle_rate::{MAX_THROTTLED, THROTTLE_WINDOW_US, throttle_rate};
pub use time::micros;
pub use vocabulary::is_background;

/// How many offending events a witness shows at most.
pub const WITNESS_EVENTS: usize = 5;

/// The answer of one checker.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The invariant held.
    Pass {
        /// What was checked, in numbers (e.g. how many queries).
        counts: serde_json::Map<String, serde_json::Value>,
    },
    /// The invariant was violated.
    Fail {
        /// The evidence.
        witness: Witness,
    },
    /// The log cannot tell.
    Unknown {
        /// Why not.
        why: String,
    },
}

impl Verdict {
    /// The short word used in summaries: `pass`, `fail` or `unknown`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Pass { .. } => "pass",
            Self::Fail { .. } => "fail",
            Self::Unknown { .. } => "unknown",
        }
    }

    /// Whether the invariant failed.
    pub fn is_fail(&self) -> bool {
        matches!(self, Self::Fail { .. })
    }
}

/// Why an invariant failed: a sentence, counts, and the first offending events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Witness {
    /// One sentence.
    pub summary: String,
    /// Offending counts, by name.
    pub counts: serde_json::Map<String, serde_json::Value>,
    /// The first offending events, in time order, at most [`WITNESS_EVENTS`].
    pub events: Vec<Event>,
}

/// A `json!({...})` object as the map verdicts hold.
fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}
