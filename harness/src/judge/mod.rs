//! Judging a run: the invariants' checkers over the event log, the alert rules, and the
//! registry that picks each listed invariant's checker and its sometimes state.

pub mod alerts;
pub mod checks;
pub mod invariants;
