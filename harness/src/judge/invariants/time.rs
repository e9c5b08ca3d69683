//! Virtual time in the checkers: a scenario's spans in microseconds, the log's end, and
//! microseconds as witnesses print them.

use crate::events::EventLog;
use crate::span::Span;

/// The time of the log's last event (0 for an empty log).
pub fn log_end(log: &EventLog) -> u64 {
    log.events().iter().map(|e| e.t_us).max().unwrap_or(0)
}

/// A span of virtual time in microseconds (saturating).
pub fn micros(s: Span) -> u64 {
    u64::try_from(s.0.as_micros()).unwrap_or(u64::MAX)
}

/// Microseconds as seconds with millisecond precision, for witnesses.
pub fn secs(t_us: u64) -> String {
    format!("{:.3}s", t_us as f64 / 1e6)
}
