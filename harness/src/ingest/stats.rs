//! What a running consumer tells the outside: a JSON stats file (merged by `roadtest run`) and Prometheus metrics over HTTP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::core::{IngestCore, IngestStats};

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

/// Prometheus text exposition of a consumer report.
pub fn prometheus_text(report: &ConsumerReport, batch_write_us: &Histogram<u64>) -> String {
    let core = &report.core;
    let mut text = String::new();
    let metrics = [
        (
            "records_consumed_total",
            "counter",
            "Records read from Kafka.",
            core.consumed,
        ),
        (
            "records_written_total",
            "counter",
            "Rows acknowledged by Cassandra.",
            core.written,
        ),
        (
            "write_failures_total",
            "counter",
            "Batch writes that failed (and were retried).",
            core.write_failures,
        ),
        (
            "write_retries_total",
            "counter",
            "Batch write retries.",
            core.retries,
        ),
        (
            "records_dead_lettered_total",
            "counter",
            "Undecodable records sent to the dead-letter topic.",
            core.dead_lettered,
        ),
        (
            "batches_in_flight",
            "gauge",
            "Batches being written or waiting for retry.",
            core.in_flight_batches,
        ),
        (
            "lag_records",
            "gauge",
            "Records behind the end of the assigned partitions.",
            report.lag.max(0) as u64,
        ),
    ];
    for (name, kind, help, value) in metrics {
        text.push_str(&format!(
            "# HELP roadtest_ingest_{name} {help}\n# TYPE roadtest_ingest_{name} {kind}\nroadtest_ingest_{name} {value}\n"
        ));
    }
    text.push_str("# HELP roadtest_ingest_batch_write_latency_seconds Batch write latency.\n");
    text.push_str("# TYPE roadtest_ingest_batch_write_latency_seconds summary\n");
    for quantile in [0.5, 0.9, 0.99, 1.0] {
        let seconds = batch_write_us.value_at_quantile(quantile) as f64 / 1e6;
        text.push_str(&format!(
            "roadtest_ingest_batch_write_latency_seconds{{quantile=\"{quantile}\"}} {seconds}\n"
        ));
    }
    text.push_str(&format!(
        "roadtest_ingest_batch_write_latency_seconds_count {}\n",
        batch_write_us.len()
    ));
    text
}

/// Serves `GET /metrics` (any path) with the current text until the task is dropped.
pub async fn serve_metrics(listener: TcpListener, current: Arc<Mutex<String>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let current = Arc::clone(&current);
        tokio::spawn(async move {
            // Read the request head (bounded), then answer; the path is not inspected.
            let mut request = [0u8; 4096];
            let mut read = 0;
            while read < request.len() {
                match stream.read(&mut request[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
                if request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let body = current.lock().map(|text| text.clone()).unwrap_or_default();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
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
    pub(super) batch_write_us: Histogram<u64>,
    metrics_text: Arc<Mutex<String>>,
    stats_path: Option<PathBuf>,
    /// When the stats were last published.
    pub(super) published: Instant,
}

impl Telemetry {
    /// Empty measurements of this process, published to `metrics_text` and (if given) a
    /// `consumer-PID.json` file in `stats_dir`.
    pub(super) fn new(metrics_text: Arc<Mutex<String>>, stats_dir: Option<&Path>) -> Telemetry {
        let pid = std::process::id();
        Telemetry {
            report: ConsumerReport {
                pid,
                ..ConsumerReport::default()
            },
            consume_us: latency_histogram(),
            write_ack_us: latency_histogram(),
            batch_write_us: latency_histogram(),
            metrics_text,
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
        if let Ok(mut text) = self.metrics_text.lock() {
            *text = prometheus_text(report, &self.batch_write_us);
        }
        if let Some(path) = &self.stats_path
            && let Err(error) = report.write(path)
        {
            tracing::warn!(%error, path = %path.display(), "cannot write the stats file");
        }
    }
}
