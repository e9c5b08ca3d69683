//! The one place that reads the wall clock: timing runs for people and benchmarks. Nothing read
//! here reaches a simulation or any output that must be deterministic.

use std::time::Duration;

/// Measures wall time since it was started.
#[derive(Debug, Clone, Copy)]
pub struct WallTimer(std::time::Instant);

impl WallTimer {
    /// Starts timing now.
    #[allow(clippy::disallowed_methods)] // The harness's own timing, outside every simulation.
    pub fn start() -> Self {
        Self(std::time::Instant::now())
    }

    /// Wall time since start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// The wall-clock time in Unix seconds, for the fakes served for real: their clients compare
/// credential expiry with their own clocks. Never used inside a simulation.
#[allow(clippy::disallowed_methods)] // Real mode only: the fakes face real clients' clocks.
pub fn wall_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The wall-clock time now, for real clients signing requests to the fakes served for real.
/// Never used inside a simulation.
pub fn wall_now() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(wall_unix_secs())
}
