//! The system's API types. A submission is also one line of the native trace format (the
//! audit log writes exactly what the API received), so recorded traffic replays as it is.
//!
//! ```text
//! {"format":"stampede-trace","version":1}
//! {"t_ms":1000,"tenant":"tenant-00","user":"ana","sql":"SELECT count(*) FROM telemetry","lakes":{"tenant":"tenant-00"},"priority":"interactive","deadline_ms":60000}
//! ```

use serde::{Deserialize, Serialize};

use crate::engine::{Answer, SqlError};

/// One submitted query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Submit time, milliseconds from the start of the trace. Non-decreasing down the file.
    pub t_ms: u64,
    /// The tenant the researcher works for.
    pub tenant: String,
    /// Who submitted it.
    pub user: String,
    /// The query, against the `telemetry` table.
    pub sql: String,
    /// Which lakes it runs over.
    pub lakes: LakeSelector,
    /// Scheduling class. Default: `batch`.
    #[serde(default)]
    pub priority: Priority,
    /// How long the user is willing to wait, from submission, if bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

/// Which lakes a query runs over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LakeSelector {
    /// Every lake of the world.
    All,
    /// Every lake of one tenant.
    Tenant(String),
    /// These lakes, by index.
    Ids(Vec<u32>),
}

/// Scheduling class of a query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// A person is waiting.
    Interactive,
    /// Nobody is watching closely.
    #[default]
    Batch,
}

/// Where a query stands, as `GET /v1/queries/{id}` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Waiting for admission.
    Queued,
    /// Fanned out; fragments coming in.
    Running,
    /// Answered.
    Succeeded,
    /// Could not be answered.
    Failed,
    /// Cancelled by the user.
    Cancelled,
    /// Not answered before its deadline.
    DeadlineExceeded,
}

impl Phase {
    /// Whether the query has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Phase::Queued | Phase::Running)
    }

    /// The lifecycle event name of a terminal phase.
    pub fn event(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Running => "started",
            Phase::Succeeded => "succeeded",
            Phase::Failed => "failed",
            Phase::Cancelled => "cancelled",
            Phase::DeadlineExceeded => "deadline_exceeded",
        }
    }
}

/// The coordinator's answer about one query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Its id.
    pub query_id: String,
    /// Where it stands.
    pub phase: Phase,
    /// Place in the admission queue, while queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// Lakes answered so far.
    pub lakes_done: u32,
    /// Lakes in all.
    pub lakes_total: u32,
    /// Rows read from the lakes answered so far.
    pub rows_so_far: u64,
    /// Estimated milliseconds to the answer, once there is a rate to estimate from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_ms: Option<u64>,
    /// The answer, once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The body of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// For invalid SQL: where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlError>,
    /// For shedding: seconds to wait before trying again (also in `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}
