//! stampede-reports: renders plain data (counts, verdicts, series) for people and for CI.
//!
//! It knows nothing of simulations or event logs: callers hand it a [`RunData`] (or several)
//! and get back text: the terminal summary, `results.json`, `junit.xml`, `report.html`,
//! `report.md`, the compare page and the capacity page.

pub mod ladder;
pub mod latency;
pub mod page;
pub mod results;
pub mod run;
pub mod scaling;
pub mod summary;
pub mod svg;
pub mod table;

pub use latency::Latency;
pub use run::RunData;
pub use table::Table;
