//! `retry_hygiene`: a retry honours the provider's `Retry-After`.
//!
//! Checks: every `stampede::mechanism` `retry` event with `retry_after_us > 0` (the provider
//! answered with `Retry-After`) has `delay_us ≥ retry_after_us`: the retry waits at least as
//! long as it was told. `delay_us` is the wait the guard chose before its next attempt; the
//! local rate limiter may add to it, never take from it.
//!
//! Does not check the catalogue's other two parts:
//! - no retry after a non-retryable error: a `retry` event does not say which error it
//!   retries, and nothing links it to the provider `call` that failed (the call is logged on
//!   the provider's host). It needs the error code (or outcome) on `retry`.
//! - no attempt after the deadline: neither provider calls nor `retry` events carry the
//!   deadline of the query they serve (`deadline_dropped` shows the mechanism acting, not its
//!   absence). It needs `deadline_us` on `retry` (or a query id on provider calls and the
//!   deadline on `accepted`).

use serde_json::json;

use super::common::{MECHANISM_TARGET, obj, secs};
use super::{Verdict, WITNESS_EVENTS, Witness};
use crate::events::{Event, EventLog};

/// Checks that every retry told to wait by `Retry-After` waited that long.
pub fn retry_hygiene(log: &EventLog) -> Verdict {
    let retries: Vec<&Event> = log
        .of(MECHANISM_TARGET)
        .filter(|e| e.name == "retry")
        .collect();
    let told: Vec<&Event> = retries
        .iter()
        .copied()
        .filter(|e| e.u64("retry_after_us").is_some_and(|d| d > 0))
        .collect();
    let early: Vec<&Event> = told
        .iter()
        .copied()
        .filter(|e| e.u64("delay_us").unwrap_or(0) < e.u64("retry_after_us").unwrap_or(0))
        .collect();
    if early.is_empty() {
        return Verdict::Pass {
            counts: obj(json!({ "retries": retries.len(), "with_retry_after": told.len() })),
        };
    }
    let first = early[0];
    Verdict::Fail {
        witness: Witness {
            summary: format!(
                "{} of {} retries told to wait by Retry-After came early, the first on {} at t={} ({} api): waited {} µs of {} µs",
                early.len(),
                told.len(),
                first.host,
                secs(first.t_us),
                first.str("api").unwrap_or("?"),
                first.u64("delay_us").unwrap_or(0),
                first.u64("retry_after_us").unwrap_or(0)
            ),
            counts: obj(json!({
                "early": early.len(), "with_retry_after": told.len(), "retries": retries.len(),
            })),
            events: early.into_iter().take(WITNESS_EVENTS).cloned().collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::common::test_support::ev;

    fn retry(t_us: u64, delay_us: u64, retry_after_us: u64) -> Event {
        ev(
            t_us,
            "worker-r-0",
            MECHANISM_TARGET,
            "retry",
            &[
                ("api", json!("AssumeRole")),
                ("attempt", json!(1)),
                ("delay_us", json!(delay_us)),
                ("retry_after_us", json!(retry_after_us)),
            ],
        )
    }

    #[test]
    fn waiting_at_least_retry_after_passes() {
        // Without Retry-After any delay will do; with it, at least that long.
        let log = EventLog::from_events(vec![
            retry(1, 10, 0),
            retry(2, 1_000_000, 1_000_000),
            retry(3, 2_000_000, 1_000_000),
        ]);
        let Verdict::Pass { counts } = retry_hygiene(&log) else {
            panic!("must pass")
        };
        assert_eq!(counts["with_retry_after"], json!(2));
    }

    #[test]
    fn retrying_before_retry_after_fails() {
        let log = EventLog::from_events(vec![
            retry(1, 2_000_000, 1_000_000),
            retry(5, 999_999, 1_000_000),
        ]);
        let Verdict::Fail { witness } = retry_hygiene(&log) else {
            panic!("must fail")
        };
        assert_eq!(witness.counts["early"], json!(1));
        assert_eq!(witness.events[0].t_us, 5);
    }

    #[test]
    fn no_retries_pass() {
        assert_eq!(retry_hygiene(&EventLog::from_events(vec![])).word(), "pass");
    }
}
