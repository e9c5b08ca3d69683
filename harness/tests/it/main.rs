//! The harness's integration tests, one binary:
//!
//! - `determinism`: the same seed gives the same event log, another seed another one.
//! - `correctness`: answers in the simulation equal DataFusion run directly over the same data.
//! - `cli`: exit codes, error locations, and the run directory of the `stampede` binary.
//! - `faults`: provider controls at virtual times (a freeze, a regional outage) fail just their window.
//! - `malformed`: garbage requests to every fake get the service's error and change nothing.
//! - `provider`: quotas, the shared fleet and freezes in simulation, through the real STS client.
//! - `queue`: the queue through the real SQS client in virtual time: visibility, long polls, redrive.
//! - `real_clients`: the AWS SDK and `object_store` against the fakes on loopback.
//! - `system`: the query system in simulation: 500-lake answers, invalid SQL, a coordinator crash.

mod arrivals;
mod cli;
mod correctness;
mod determinism;
mod faults;
mod malformed;
mod provider;
mod queue;
mod real_clients;
mod system;

use std::path::PathBuf;

/// A path under the repository's `scenarios/` folder.
pub fn scenario(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(rel)
}
