//! The run's clock: its monotonic start, the wall-clock time it corresponds to, and the intended send time of each event.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The run's time base: a monotonic start and the wall-clock time it corresponds to.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    pub start: Instant,
    /// Microseconds since the Unix epoch at `start`.
    pub start_epoch_us: u64,
    /// Scenario time zero, ms since the Unix epoch (the fleet's `start_ms`).
    pub scenario_start_ms: i64,
    pub speedup: f64,
}

impl RunClock {
    pub fn now(scenario_start_ms: i64, speedup: f64) -> RunClock {
        RunClock {
            start: Instant::now(),
            start_epoch_us: epoch_us(),
            scenario_start_ms,
            speedup,
        }
    }

    /// When an event with this timestamp is meant to be sent, µs after the run's start.
    pub fn intended_offset_us(&self, timestamp_ms: i64) -> u64 {
        let scenario_us = (timestamp_ms - self.scenario_start_ms).max(0) as f64 * 1000.0;
        (scenario_us / self.speedup) as u64
    }

    /// The intended send time as µs since the Unix epoch (comparable with Cassandra's WRITETIME).
    pub fn intended_epoch_us(&self, timestamp_ms: i64) -> u64 {
        self.start_epoch_us + self.intended_offset_us(timestamp_ms)
    }

    /// µs since the run's start.
    pub fn elapsed_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// Microseconds since the Unix epoch.
pub fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
