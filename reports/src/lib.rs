//! stampede-reports: renders plain data (counts, verdicts, series) for people and for CI.
//!
//! It knows nothing of simulations or event logs: callers hand it numbers and strings.

pub mod table;

pub use table::Table;
