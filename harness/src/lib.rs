//! stampede: a chaos and load-replay harness for a data-lake query system.
//!
//! A scenario builds one deterministic world on turmoil: the fake provider's hosts, the system's
//! nodes, and a replay client. The harness steps the simulation, records every event in virtual
//! time, and checks invariants over the log. See ARCHITECTURE.md for the map.

pub mod alerts;
pub mod arrivals;
pub mod capacity;
pub mod checks;
pub mod clock;
pub mod cloudtrail;
pub mod control;
pub mod events;
pub mod exit;
pub mod gameday;
pub mod hosts;
pub mod input;
pub mod invariants;
pub mod net;
pub mod output;
pub mod report_data;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod span;
pub mod swarm;
pub mod sweep;
pub mod trace;
pub mod traffic;
pub mod world;
pub mod yaml;

pub use exit::Exit;
pub use run::{Prepared, RunError, RunReport, prepare, prepare_scaled, run};
