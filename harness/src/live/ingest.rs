//! The reference consumer's metrics (`roadtest ingest --metrics-listen`), raised from its stats
//! each time it publishes them.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The consumer's counts at one moment (its core's stats and its lag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestCounts {
    pub consumed: u64,
    pub written: u64,
    pub write_failures: u64,
    pub retries: u64,
    pub dead_lettered: u64,
    pub in_flight_batches: u64,
    /// Records behind the end of the assigned partitions (negative: not known, shown as 0).
    pub lag: i64,
}

/// The handles of the consumer's metrics; clones share them.
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    registry: Arc<Registry>,
    consumed: Counter,
    written: Counter,
    write_failures: Counter,
    retries: Counter,
    dead_lettered: Counter,
    in_flight: Gauge,
    lag: Gauge,
    batch_write: Histogram,
    alerts_fired: Family<Vec<(String, String)>, Counter>,
}

impl Default for IngestMetrics {
    fn default() -> IngestMetrics {
        IngestMetrics::new()
    }
}

impl IngestMetrics {
    /// Every metric registered, all at zero.
    pub fn new() -> IngestMetrics {
        let mut registry = Registry::with_prefix("roadtest_ingest");
        let metrics = IngestMetrics {
            registry: Arc::new(Registry::default()),
            consumed: Counter::default(),
            written: Counter::default(),
            write_failures: Counter::default(),
            retries: Counter::default(),
            dead_lettered: Counter::default(),
            in_flight: Gauge::default(),
            lag: Gauge::default(),
            batch_write: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            alerts_fired: Family::default(),
        };
        let counters: [(&str, &str, &Counter); 5] = [
            (
                "records_consumed",
                "Records read from Kafka",
                &metrics.consumed,
            ),
            (
                "records_written",
                "Rows the database acknowledged",
                &metrics.written,
            ),
            (
                "write_failures",
                "Batch writes that failed (and were retried)",
                &metrics.write_failures,
            ),
            ("write_retries", "Batch write retries", &metrics.retries),
            (
                "records_dead_lettered",
                "Undecodable records sent to the dead-letter topic",
                &metrics.dead_lettered,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "batches_in_flight",
            "Batches being written or waiting for retry",
            metrics.in_flight.clone(),
        );
        registry.register(
            "lag_records",
            "Records behind the end of the assigned partitions",
            metrics.lag.clone(),
        );
        registry.register(
            "alerts_fired",
            "Alerts the consumer's alerter fired, by alert and vehicle",
            metrics.alerts_fired.clone(),
        );
        registry.register_with_unit(
            "batch_write_latency",
            "Batch write latency",
            Unit::Seconds,
            metrics.batch_write.clone(),
        );
        IngestMetrics {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    /// The registry to serve.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// The consumer's counts now.
    pub fn publish(&self, stats: IngestCounts) {
        for (counter, total) in [
            (&self.consumed, stats.consumed),
            (&self.written, stats.written),
            (&self.write_failures, stats.write_failures),
            (&self.retries, stats.retries),
            (&self.dead_lettered, stats.dead_lettered),
        ] {
            let now = counter.get();
            if total > now {
                counter.inc_by(total - now);
            }
        }
        self.in_flight
            .set(i64::try_from(stats.in_flight_batches).unwrap_or(i64::MAX));
        self.lag.set(stats.lag.max(0));
    }

    /// One alert fired by the consumer's alerter.
    pub fn alert_fired(&self, alert: &str, vehicle_id: &str) {
        let labels = vec![
            ("alert".to_string(), alert.to_string()),
            ("vehicle_id".to_string(), vehicle_id.to_string()),
        ];
        self.alerts_fired.get_or_create(&labels).inc();
    }

    /// One batch acknowledged after `micros`.
    pub fn batch_written(&self, micros: u64) {
        self.batch_write.observe(micros as f64 / 1e6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_become_the_consumers_metrics() {
        let metrics = IngestMetrics::new();
        metrics.publish(IngestCounts {
            consumed: 10,
            written: 9,
            write_failures: 1,
            lag: -4,
            ..IngestCounts::default()
        });
        metrics.batch_written(2_500);
        metrics.alert_fired("speeding", "veh-000003");
        let text = super::super::text(&metrics.registry());
        for line in [
            "roadtest_ingest_records_consumed_total 10",
            "roadtest_ingest_records_written_total 9",
            "roadtest_ingest_write_failures_total 1",
            "roadtest_ingest_lag_records 0",
            "roadtest_ingest_batch_write_latency_seconds_count 1",
            "roadtest_ingest_alerts_fired_total{alert=\"speeding\",vehicle_id=\"veh-000003\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }
}
