//! Measurement of a run: HDR latency recorders, per-second throughput series, RSS and CPU of processes.
//!
//! Every recorder takes the time of an observation as `at_ms`, milliseconds since the start of the
//! run, supplied by the caller, and buckets it into 1 s intervals (`interval = at_ms / 1000`). Each
//! task keeps its own recorders and merges them at the end, so the hot path takes no lock.
//!
//! - [`RunClock`] and [`epoch_us`]: the run's time base (monotonic start, its wall-clock time,
//!   each event's intended send time), shared by the producer, the consumer and verification.
//! - [`LatencyRecorder`]: latencies in microseconds, one HDR histogram for the whole run and one per
//!   second; summaries in milliseconds.
//! - [`ThroughputSeries`] and [`Throughput`]: counts per second of one stream, or of the three
//!   streams of the pipeline (produced, consumed, written).
//! - [`ProcessSampler`] and [`spawn_sampler`]: resident memory (MB) and CPU (% of one core) of named
//!   processes read from `/proc`, every [`SAMPLE_INTERVAL_MS`] ms.
//! - [`gc::GcFollower`]: Cassandra's heap and pauses from the JVM's GC log (no JMX).

mod clock;
pub mod gc;
mod latency;
mod process;
mod throughput;

pub use clock::{RunClock, epoch_us};
pub use latency::{
    IntervalSummary, LATENCY_MAX_US, LatencyRecorder, LatencySummary, PercentilePoint,
};
pub use process::{
    ProcessPoint, ProcessSampler, SAMPLE_INTERVAL_MS, TIMELINE_POINT_COUNT_MAX, clock_ticks_per_s,
    own_pid, read_process, spawn_sampler,
};
pub use throughput::{Throughput, ThroughputSeries};

/// Width of one interval of the per-second series, in ms.
pub const INTERVAL_MS: u64 = 1_000;

/// The most intervals a series keeps (48 h of run); later observations count in the last one.
///
/// Twice the longest scenario, so a slowed-down run and its drain still fit; the cap bounds memory.
pub const INTERVAL_COUNT_MAX: usize = 172_800;

/// The interval index of an offset from the run start, capped at [`INTERVAL_COUNT_MAX`] - 1.
pub fn interval_index(at_ms: u64) -> usize {
    let index = at_ms / INTERVAL_MS;
    usize::try_from(index).map_or(INTERVAL_COUNT_MAX - 1, |i| i.min(INTERVAL_COUNT_MAX - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_index_floors_and_caps() {
        assert_eq!(interval_index(0), 0);
        assert_eq!(interval_index(999), 0);
        assert_eq!(interval_index(1_000), 1);
        assert_eq!(interval_index(5_432), 5);
        assert_eq!(interval_index(u64::MAX), INTERVAL_COUNT_MAX - 1);
    }
}
