//! The subcommands' bodies: `run`, `sweep`, `capacity`, `gameday`, `serve`, and what a run
//! writes (`output`, `report_data`). `main.rs` parses the arguments and dispatches here.

pub mod capacity;
pub mod capacity_cli;
pub mod compare;
pub mod gameday;
pub mod output;
pub mod report_data;
pub mod run;
pub mod run_cli;
pub mod serve;
pub mod serve_cli;
pub mod sweep;
pub mod terminal;
pub mod trace;
