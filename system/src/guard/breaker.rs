//! A circuit breaker: closed until `failures` calls in a row fail, then open (calls fail fast)
//! for `open_for`, then half-open: one probe, whose outcome closes or reopens it.

use std::time::Duration;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through; `failures` in a row so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Calls fail fast until `until`.
    Open {
        /// When a probe may go.
        until: Duration,
    },
    /// One probe is out; if it has not reported by `until` (it may have been cancelled),
    /// another may go.
    HalfOpen {
        /// When another probe may go.
        until: Duration,
    },
}

/// What the breaker did on a call or an outcome, for the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It opened.
    Opened,
    /// It closed.
    Closed,
    /// Nothing worth an event.
    None,
}

/// One breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    failures: u32,
    open_for: Duration,
    state: State,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(failures: u32, open_for: Duration) -> Self {
        Self {
            failures: failures.max(1),
            open_for,
            state: State::Closed { failures: 0 },
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// May a call go at `now`? An open breaker whose time is up lets one probe through.
    pub fn allow(&mut self, now: Duration) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } | State::HalfOpen { until } if now >= until => {
                self.state = State::HalfOpen {
                    until: now + self.open_for,
                };
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    /// A call succeeded.
    pub fn success(&mut self) -> Change {
        let was_closed = matches!(self.state, State::Closed { .. });
        self.state = State::Closed { failures: 0 };
        if was_closed {
            Change::None
        } else {
            Change::Closed
        }
    }

    /// A call failed in a way that counts against the dependency (timeouts, 5xx, throttles).
    pub fn failure(&mut self, now: Duration) -> Change {
        match self.state {
            State::Closed { failures } if failures + 1 < self.failures => {
                self.state = State::Closed {
                    failures: failures + 1,
                };
                Change::None
            }
            State::Closed { .. } | State::HalfOpen { .. } => {
                self.state = State::Open {
                    until: now + self.open_for,
                };
                Change::Opened
            }
            State::Open { .. } => Change::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_probes_and_closes() {
        let s = Duration::from_secs;
        let mut b = Breaker::new(3, s(5));
        assert_eq!(b.failure(s(0)), Change::None);
        assert_eq!(b.success(), Change::None, "a success resets the count");
        assert_eq!(b.failure(s(1)), Change::None);
        assert_eq!(b.failure(s(1)), Change::None);
        assert_eq!(b.failure(s(1)), Change::Opened);
        assert!(!b.allow(s(3)));
        assert!(b.allow(s(6)), "one probe after open_for");
        assert!(!b.allow(s(6)), "only one");
        assert_eq!(b.failure(s(6)), Change::Opened, "a failed probe reopens");
        assert!(b.allow(s(11)));
        assert!(!b.allow(s(12)));
        assert!(b.allow(s(16)), "a probe that never reported is replaced");
        assert_eq!(b.success(), Change::Closed);
        assert!(b.allow(s(16)));
    }
}
