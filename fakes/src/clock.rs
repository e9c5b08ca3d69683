//! Time as the fakes see it: a duration since the provider started. In a simulation the
//! harness supplies virtual time; served for real, tokio's clock.

use std::fmt::Debug;
use std::time::Duration;

/// A source of "now", as time since the provider started.
pub trait Clock: Debug + Send + Sync + 'static {
    /// Time since the start.
    fn now(&self) -> Duration;
}

/// tokio's clock, from the moment this was made. Under a simulator tokio's clock is virtual,
/// but it restarts with a host; the harness supplies a clock that does not.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading zero now.
    pub fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A Unix time in seconds as RFC 3339 in UTC without fractions (`2026-01-01T06:00:00Z`), the
/// form IMDS and STS write and botocore parses strictly.
pub fn rfc3339(unix_secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(unix_secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_is_seconds_in_utc() {
        assert_eq!(
            super::rfc3339(1_767_225_600 + 6 * 3600),
            "2026-01-01T06:00:00Z"
        );
    }
}
