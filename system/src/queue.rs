//! The queue protocol between the coordinator and the workers: what a task on the region's
//! durable queue says, the queue's name, and how a worker tells the coordinator that a
//! fragment could not be computed.

use serde::{Deserialize, Serialize};

/// The queue every region's tasks go through.
pub const TASK_QUEUE: &str = "stampede-tasks";

/// The header a worker sets on a fragment that could not be computed.
pub const FRAGMENT_ERROR: &str = "x-stampede-fragment-error";

/// One task on the queue: a lake's fragment of a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The query.
    pub query_id: String,
    /// The lake.
    pub lake: u32,
    /// Columns to read.
    pub columns: Vec<String>,
    /// Where to send the fragment: the coordinator's base URL.
    pub reply_to: String,
    /// The query's deadline as Unix milliseconds, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_unix_ms: Option<u64>,
    /// The query's SQL, when the coordinator did not check it (`validate_sql` off): the
    /// worker plans it against the lake's table once it has read the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}
