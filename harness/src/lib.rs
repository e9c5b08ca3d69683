//! stampede: a chaos and load-replay harness for a data-lake query system.
//!
//! A scenario builds one deterministic world on turmoil: the fake provider's hosts, the system's
//! nodes, and a replay client. The harness steps the simulation, records every event in virtual
//! time, and checks invariants over the log. Its stages are its rooms: [`input`] reads what a
//! user gives (scenarios, traces, recorded traffic), [`world`] lowers a scenario to a plan and
//! runs it, [`judge`] checks the log, and [`commands`] are the subcommands. See
//! ARCHITECTURE.md for the map.

pub mod commands;
pub mod events;
pub mod exit;
pub mod input;
pub mod judge;
pub mod rng;
pub mod span;
pub mod world;

pub use commands::run::{
    Prepared, RunError, RunOptions, RunReport, prepare, prepare_scaled, run, run_with,
};
pub use exit::Exit;
