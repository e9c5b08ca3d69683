//! Invariants: pure checkers over the event log, each answering pass, fail with a witness, or
//! unknown with a reason (after Jepsen's checkers).

mod never_frozen;
mod no_lost_queries;
mod provider_quota;

use serde::Serialize;

use crate::events::{Event, EventLog};
use crate::scenario::Scenario;

pub use never_frozen::never_frozen;
pub use no_lost_queries::no_lost_queries;
pub use provider_quota::{Quota, provider_quota};

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

/// The checkers that read only the log, by name. `deterministic` needs two runs and lives in
/// [`crate::run`].
pub fn check_log(name: &str, log: &EventLog, scenario: &Scenario) -> Option<Verdict> {
    match name {
        "no_lost_queries" => Some(no_lost_queries(log)),
        "never_frozen" => Some(never_frozen(log, &[stampede_fakes::iam::SYSTEM_ACCOUNT])),
        "provider_quota" => {
            let quotas = scenario
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
                .collect();
            // Background accounts are other customers; every other account is the system's
            // own or a lake's, which the system calls as.
            let background = |a: &str| a.len() == 12 && a.starts_with('2');
            Some(provider_quota(log, &quotas, |a| !background(a)))
        }
        _ => None,
    }
}
