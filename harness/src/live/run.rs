//! The metrics of a run: what the producer sent and the broker acknowledged, what the consumer
//! wrote, the lag, the faults, each process's memory and CPU, and end-to-end latency.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// A run's counts at one moment, as the run's watch loop sees them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveProgress {
    /// Seconds since the producer started.
    pub elapsed_s: f64,
    pub produced: u64,
    pub acknowledged: u64,
    pub written: u64,
    /// Acknowledged events no consumer has written yet.
    pub lag: i64,
    /// Whether the consumer under test is running.
    pub consumer_up: bool,
}

/// The handles of a run's metrics; clones share them. Counters are raised to the totals the run
/// reports, so a scrape never sees one go down.
#[derive(Debug, Clone)]
pub struct RunMetrics {
    registry: Arc<Registry>,
    info: Family<Labels, Gauge>,
    elapsed: FloatGauge,
    produced: Counter,
    acknowledged: Counter,
    written: Counter,
    lag: Gauge,
    consumer_up: Gauge,
    faults_active: Gauge,
    faults_started: Counter,
    e2e: Histogram,
    rss: Family<Labels, Gauge>,
    cpu: Family<Labels, FloatGauge>,
    heap_used: Gauge,
    heap_max: Gauge,
    gc_pause: Histogram,
}

impl Default for RunMetrics {
    fn default() -> RunMetrics {
        RunMetrics::new()
    }
}

impl RunMetrics {
    /// Every metric registered, all at zero.
    pub fn new() -> RunMetrics {
        let latency_buckets = || Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let metrics = RunMetrics {
            registry: Arc::new(Registry::default()),
            info: Family::default(),
            elapsed: FloatGauge::default(),
            produced: Counter::default(),
            acknowledged: Counter::default(),
            written: Counter::default(),
            lag: Gauge::default(),
            consumer_up: Gauge::default(),
            faults_active: Gauge::default(),
            faults_started: Counter::default(),
            e2e: latency_buckets(),
            rss: Family::default(),
            cpu: Family::default(),
            heap_used: Gauge::default(),
            heap_max: Gauge::default(),
            gc_pause: latency_buckets(),
        };
        let mut registry = Registry::with_prefix("roadtest");
        metrics.register_counts(&mut registry);
        metrics.register_measures(&mut registry);
        RunMetrics {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    fn register_counts(&self, registry: &mut Registry) {
        let gauges: [(&str, &str, Gauge); 5] = [
            (
                "pipeline_lag_events",
                "Events the broker acknowledged that no consumer has written yet",
                self.lag.clone(),
            ),
            (
                "consumer_up",
                "1 while the consumer under test runs, else 0",
                self.consumer_up.clone(),
            ),
            (
                "faults_active",
                "Faults in effect now",
                self.faults_active.clone(),
            ),
            (
                "cassandra_heap_used_bytes",
                "Cassandra's heap after its last collection (from its GC log)",
                self.heap_used.clone(),
            ),
            (
                "cassandra_heap_max_bytes",
                "Cassandra's heap limit (from its GC log)",
                self.heap_max.clone(),
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge);
        }
        let counters: [(&str, &str, Counter); 4] = [
            (
                "events_produced",
                "Events the producer sent",
                self.produced.clone(),
            ),
            (
                "events_acknowledged",
                "Events the broker acknowledged",
                self.acknowledged.clone(),
            ),
            (
                "events_written",
                "Rows the consumers reported written",
                self.written.clone(),
            ),
            (
                "faults_started",
                "Faults that have started",
                self.faults_started.clone(),
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter);
        }
    }

    fn register_measures(&self, registry: &mut Registry) {
        registry.register(
            "run_info",
            "The run: scenario, seed and target (always 1)",
            self.info.clone(),
        );
        registry.register_with_unit(
            "run_elapsed",
            "Seconds since the producer started",
            Unit::Seconds,
            self.elapsed.clone(),
        );
        registry.register_with_unit(
            "e2e_latency",
            "End-to-end latency of the verified rows (filled when the run has read them back)",
            Unit::Seconds,
            self.e2e.clone(),
        );
        registry.register_with_unit(
            "cassandra_gc_pause",
            "Cassandra's garbage-collection pauses (from its GC log)",
            Unit::Seconds,
            self.gc_pause.clone(),
        );
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory of a process of the run (PSS for a group)",
            Unit::Bytes,
            self.rss.clone(),
        );
        registry.register(
            "process_cpu_percent",
            "CPU of a process of the run, percent of one core",
            self.cpu.clone(),
        );
    }

    /// The registry to serve.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// Names the run (`roadtest_run_info`).
    pub fn started(&self, scenario: &str, seed: u64, target: &str) {
        let labels = vec![
            ("scenario".to_string(), scenario.to_string()),
            ("seed".to_string(), seed.to_string()),
            ("target".to_string(), target.to_string()),
        ];
        self.info.get_or_create(&labels).set(1);
    }

    /// The run's counts now.
    pub fn progress(&self, now: LiveProgress) {
        self.elapsed.set(now.elapsed_s);
        raise(&self.produced, now.produced);
        raise(&self.acknowledged, now.acknowledged);
        raise(&self.written, now.written);
        self.lag.set(now.lag);
        self.consumer_up.set(i64::from(now.consumer_up));
    }

    /// Rows written as counted once more after the run (raises the counter; never lowers it).
    pub fn written(&self, total: u64) {
        raise(&self.written, total);
    }

    /// Faults in effect now, and how many have started so far.
    pub fn faults(&self, (active, started): (usize, usize)) {
        self.faults_active
            .set(i64::try_from(active).unwrap_or(i64::MAX));
        raise(&self.faults_started, started as u64);
    }

    /// The latest sample of one process (`None`: not read this time, the value stays).
    pub fn process(&self, name: &str, rss_mb: Option<f64>, cpu_percent: Option<f64>) {
        let labels = vec![("process".to_string(), name.to_string())];
        if let Some(rss_mb) = rss_mb {
            self.rss
                .get_or_create(&labels)
                .set(megabytes_to_bytes(rss_mb));
        }
        if let Some(cpu_percent) = cpu_percent {
            self.cpu.get_or_create(&labels).set(cpu_percent);
        }
    }

    /// Fills the end-to-end histogram with the verified rows' latencies (once, at the end):
    /// each distinct latency in µs with how many rows had it.
    pub fn e2e(&self, latencies_us: impl IntoIterator<Item = (u64, u64)>) {
        for (latency_us, count) in latencies_us {
            for _ in 0..count {
                self.e2e.observe(latency_us as f64 / 1e6);
            }
        }
    }

    /// One garbage collection of Cassandra's: its pause, the heap after it, and the heap limit.
    pub fn gc(&self, pause_ms: f64, heap_used_mb: f64, heap_max_mb: f64) {
        self.gc_pause.observe(pause_ms / 1e3);
        self.heap_used.set(megabytes_to_bytes(heap_used_mb));
        self.heap_max.set(megabytes_to_bytes(heap_max_mb));
    }
}

fn megabytes_to_bytes(megabytes: f64) -> i64 {
    (megabytes * 1_048_576.0).round() as i64
}

/// Raises a counter to `total` (a counter never goes down; a smaller total leaves it).
fn raise(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_the_totals_and_never_go_down() {
        let metrics = RunMetrics::new();
        metrics.started("steady", 42, "local");
        let at = |produced, written| LiveProgress {
            produced,
            acknowledged: produced,
            written,
            lag: 3,
            consumer_up: true,
            elapsed_s: 1.5,
        };
        metrics.progress(at(10, 7));
        metrics.progress(at(12, 5));
        let text = super::super::text(&metrics.registry());
        for line in [
            "roadtest_events_produced_total 12",
            "roadtest_events_written_total 7",
            "roadtest_pipeline_lag_events 3",
            "roadtest_consumer_up 1",
            "roadtest_run_elapsed_seconds 1.5",
            "roadtest_run_info{scenario=\"steady\",seed=\"42\",target=\"local\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }

    #[test]
    fn processes_and_latencies_are_exposed_in_base_units() {
        let metrics = RunMetrics::new();
        metrics.process("cassandra", Some(512.0), Some(150.0));
        metrics.e2e([(3_000, 4)]);
        metrics.gc(12.0, 100.0, 200.0);
        let text = super::super::text(&metrics.registry());
        for line in [
            "roadtest_process_resident_memory_bytes{process=\"cassandra\"} 536870912",
            "roadtest_process_cpu_percent{process=\"cassandra\"} 150.0",
            "roadtest_e2e_latency_seconds_count 4",
            "roadtest_e2e_latency_seconds_bucket{le=\"0.004\"} 4",
            "roadtest_cassandra_gc_pause_seconds_count 1",
            "roadtest_cassandra_heap_max_bytes 209715200",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }
}
