//! `attempt_cap`: no call is tried more than N times.
//!
//! Checks: every `stampede::mechanism` `retry` event (the system's call guard, one per retry,
//! with `attempt` the attempt that failed, from 1): the attempt it leads to, `attempt + 1`, is
//! at most `max_attempts`. A call that succeeds or fails on its first attempt logs no `retry`,
//! so a log without retries passes.
//!
//! Does not check: attempts across layers of one logical operation. A task redelivered by the
//! queue (`stampede::task` `task_failed` with `receives`) and a query resubmitted by the client
//! (`stampede::traffic` `refused`) retry at other layers, and no event links a provider call to
//! the task or query it serves, so the product of the layers' attempts (what the catalogue's
//! "per logical operation" means) is not computed; that needs an operation id on `retry`,
//! `task_failed` and provider `call` events.

use serde_json::json;

use super::obj;
use super::time::secs;
use super::vocabulary::MECHANISM_TARGET;
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// The most attempts one call may get.
pub const MAX_ATTEMPTS: u64 = 3;

/// Checks that no `retry` leads to an attempt beyond `max_attempts`.
pub fn attempt_cap(log: &EventLog, max_attempts: u64) -> Verdict {
    let retries: Vec<&Event> = log
        .of(MECHANISM_TARGET)
        .filter(|e| e.name == "retry")
        .collect();
    let over: Vec<&Event> = retries
        .iter()
        .copied()
        .filter(|e| e.u64("attempt").is_some_and(|a| a + 1 > max_attempts))
        .collect();
    let highest = retries
        .iter()
        .filter_map(|e| e.u64("attempt"))
        .max()
        .map_or(1, |a| a + 1);
    if over.is_empty() {
        return Verdict::Pass {
            counts: obj(json!({ "retries": retries.len(), "highest_attempt": highest })),
        };
    }
    let first = over[0];
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{} retries went beyond attempt {max_attempts}, the first on {} at t={} (to attempt {}); the highest attempt was {highest}",
                over.len(),
                first.host,
                secs(first.t_us),
                first.u64("attempt").unwrap_or(0) + 1
            ),
            counts: obj(json!({
                "retries_over_cap": over.len(), "retries": retries.len(), "highest_attempt": highest,
            })),
            events: over.into_iter().take(WITNESS_EVENTS).cloned().collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::test_support::ev;

    fn retry(t_us: u64, attempt: u64) -> Event {
        ev(
            t_us,
            "worker-r-0",
            MECHANISM_TARGET,
            "retry",
            &[
                ("api", json!("GetObject")),
                ("attempt", json!(attempt)),
                ("delay_us", json!(1000)),
                ("retry_after_us", json!(0)),
            ],
        )
    }

    #[test]
    fn retries_up_to_the_third_attempt_pass() {
        let log = EventLog::from_events(vec![retry(1, 1), retry(2, 2), retry(3, 1)]);
        let Verdict::Pass { counts } = attempt_cap(&log, MAX_ATTEMPTS) else {
            panic!("must pass")
        };
        assert_eq!(counts["highest_attempt"], json!(3));
    }

    #[test]
    fn a_fourth_attempt_fails() {
        let log = EventLog::from_events(vec![retry(1, 1), retry(2, 2), retry(3, 3), retry(4, 4)]);
        let Verdict::Fail { witness } = attempt_cap(&log, MAX_ATTEMPTS) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["retries_over_cap"], json!(2));
        assert_eq!(witness.counts["highest_attempt"], json!(5));
        assert_eq!(witness.events[0].t_us, 3);
    }

    #[test]
    fn no_retries_pass() {
        let log = EventLog::from_events(vec![]);
        assert_eq!(attempt_cap(&log, MAX_ATTEMPTS).word(), "pass");
    }
}
