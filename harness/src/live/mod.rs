//! Live metrics in Prometheus's exposition format (OpenMetrics text, encoded by the
//! prometheus-client crate): a run's ([`RunMetrics`], `roadtest run --metrics-listen`) and the
//! reference consumer's ([`IngestMetrics`], `roadtest ingest --metrics-listen`), both served over
//! HTTP at `/metrics` by [`serve`]; and the alert webhook a run listens on ([`serve_alerts`]).
//! docs/monitoring.md lists every metric.

mod http;
mod ingest;
mod run;
mod webhook;

use std::collections::BTreeSet;

use prometheus_client::registry::Registry;

pub use self::http::{MetricsError, bind, serve};
pub use self::ingest::{IngestCounts, IngestMetrics};
pub use self::run::{LiveProgress, RunMetrics};
pub use self::webhook::{AlertInbox, Inbox, serve_alerts};

/// Where `roadtest run --metrics-listen` is documented to listen (deploy/prometheus scrapes it).
pub const RUN_METRICS_ADDRESS: &str = "127.0.0.1:9464";

/// The exposition of `registry` (OpenMetrics text, ending in `# EOF`).
pub fn text(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail; a metric that cannot encode would leave the text short.
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(%error, "a metric could not be encoded");
    }
    text
}

/// Every metric family roadtest run and the reference consumer expose, named as a query names
/// them: counters with their `_total`, histograms by their base name (their series add
/// `_bucket`, `_sum` and `_count`). Labelled families appear once they have a series, so the
/// run here has started and sampled a process, and the consumer has fired an alert.
pub fn exposed_families() -> BTreeSet<String> {
    let run = RunMetrics::new();
    run.started("scenario", 0, "target");
    run.process("process", Some(1.0), Some(1.0));
    let ingest = IngestMetrics::new();
    ingest.alert_fired("alert", "vehicle");
    let mut names = families(&text(&run.registry()));
    names.extend(families(&text(&ingest.registry())));
    names
}

/// The family names declared by the `# TYPE` lines of an exposition.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| match kind {
            "counter" => format!("{name}_total"),
            _ => name.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_prefixed_and_named_as_queried() {
        let names = exposed_families();
        assert!(
            names.iter().all(|name| name.starts_with("roadtest_")),
            "{names:?}"
        );
        for name in [
            "roadtest_events_produced_total",
            "roadtest_pipeline_lag_events",
            "roadtest_e2e_latency_seconds",
            "roadtest_process_resident_memory_bytes",
            "roadtest_run_info",
            "roadtest_ingest_records_written_total",
            "roadtest_ingest_batch_write_latency_seconds",
        ] {
            assert!(names.contains(name), "{name} missing from {names:?}");
        }
    }

    #[test]
    fn type_lines_name_the_families() {
        let text = "# TYPE a counter\n# TYPE b histogram\n# TYPE d gauge\na_total 1\n";
        let names: Vec<String> = families(text).into_iter().collect();
        assert_eq!(names, ["a_total", "b", "d"]);
    }
}
