//! What a running consumer tells the outside: a JSON stats file (merged by `roadtest run`) and Prometheus metrics over HTTP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::core::{IngestCore, IngestStats};
use crate::live::{IngestCounts, IngestMetrics};

/// A histogram of µs from 1 µs to one hour at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, crate::measure::LATENCY_MAX_US, 3)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// A histogram as (value µs, count) pairs: compact, exact at its precision, and mergeable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramPairs(pub Vec<(u64, u64)>);

impl HistogramPairs {
    pub fn from_histogram(histogram: &Histogram<u64>) -> HistogramPairs {
        HistogramPairs(
            histogram
                .iter_recorded()
                .map(|value| (value.value_iterated_to(), value.count_at_value()))
                .collect(),
        )
    }

    /// Adds every value into `recorder` (as recorded at the run's start: stages keep no timeline).
    pub fn add_to(&self, recorder: &mut crate::measure::LatencyRecorder) {
        for &(value_us, count) in &self.0 {
            recorder.record_n(value_us, count, 0);
        }
    }
}

/// The consumer's stats file, rewritten atomically every half second and on exit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConsumerReport {
    pub pid: u32,
    /// Whether the consumer has partitions assigned and is consuming.
    pub consuming: bool,
    /// Whether it exited after a clean shutdown.
    pub exited_cleanly: bool,
    pub core: IngestStats,
    /// Broker timestamp of the message -> received by the consumer, µs.
    pub consume_us: HistogramPairs,
    /// Received -> row acknowledged by the database, µs.
    pub write_ack_us: HistogramPairs,
    /// Batch write latency, µs.
    pub batch_write_us: HistogramPairs,
    /// Records consumed per wall-clock second (seconds since the Unix epoch).
    pub consumed_per_epoch_second: BTreeMap<u64, u64>,
    /// Consumer lag summed over the assigned partitions, at the last check.
    pub lag: i64,
}

impl ConsumerReport {
    /// Writes the file atomically (temp file + rename).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let temporary = path.with_extension("json.tmp");
        std::fs::write(
            &temporary,
            serde_json::to_vec(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(temporary, path)
    }

    /// Reads every consumer stats file in `dir` (one per consumer process), in file-name order.
    pub fn read_all(dir: &Path) -> Vec<(PathBuf, ConsumerReport)> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .filter_map(|path| {
                let bytes = std::fs::read(&path).ok()?;
                let report = serde_json::from_slice(&bytes).ok()?;
                Some((path, report))
            })
            .collect()
    }
}

/// What the consumer measures, and where it publishes it.
#[derive(Debug)]
pub(super) struct Telemetry {
    pub(super) report: ConsumerReport,
    /// Broker timestamp -> received, µs.
    pub(super) consume_us: Histogram<u64>,
    /// Received -> row acknowledged, µs.
    pub(super) write_ack_us: Histogram<u64>,
    /// Batch write latency, µs.
    batch_write_us: Histogram<u64>,
    metrics: IngestMetrics,
    stats_path: Option<PathBuf>,
    /// When the stats were last published.
    pub(super) published: Instant,
}

impl Telemetry {
    /// One batch acknowledged `micros` after its write started.
    pub(super) fn batch_written(&mut self, micros: u64) {
        let _ = self.batch_write_us.record(micros);
        self.metrics.batch_written(micros);
    }

    /// Empty measurements of this process, published to `metrics` and (if given) a
    /// `consumer-PID.json` file in `stats_dir`.
    pub(super) fn new(metrics: IngestMetrics, stats_dir: Option<&Path>) -> Telemetry {
        let pid = std::process::id();
        Telemetry {
            report: ConsumerReport {
                pid,
                ..ConsumerReport::default()
            },
            consume_us: latency_histogram(),
            write_ack_us: latency_histogram(),
            batch_write_us: latency_histogram(),
            metrics,
            stats_path: stats_dir.map(|dir| dir.join(format!("consumer-{pid}.json"))),
            published: Instant::now(),
        }
    }

    /// Refreshes the metrics page and rewrites the stats file.
    pub(super) fn publish(&mut self, core: &IngestCore) {
        self.published = Instant::now();
        let report = &mut self.report;
        report.core = core.stats();
        report.consume_us = HistogramPairs::from_histogram(&self.consume_us);
        report.write_ack_us = HistogramPairs::from_histogram(&self.write_ack_us);
        report.batch_write_us = HistogramPairs::from_histogram(&self.batch_write_us);
        let core = &report.core;
        self.metrics.publish(IngestCounts {
            consumed: core.consumed,
            written: core.written,
            write_failures: core.write_failures,
            retries: core.retries,
            dead_lettered: core.dead_lettered,
            in_flight_batches: core.in_flight_batches,
            lag: report.lag,
        });
        if let Some(path) = &self.stats_path
            && let Err(error) = report.write(path)
        {
            tracing::warn!(%error, path = %path.display(), "cannot write the stats file");
        }
    }
}
