//! A real Prometheus (Debian's `prometheus`) scrapes a real run's live metrics on the local
//! target; what it stored after the run equals the run's report.json. It loads the alert rules of
//! deploy/prometheus too, which must be healthy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roadtest::Scenario;
use roadtest::live::RunMetrics;
use roadtest::run::RunOptions;

mod monitoring;

use self::monitoring::{Service, get, repo};

/// Starts Prometheus scraping `target` every second, with the repository's alert rules.
fn start_prometheus(target: SocketAddr) -> Service {
    let rules = repo().join("deploy/prometheus/rules/roadtest.rules.yml");
    monitoring::prometheus(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: roadtest\n    static_configs:\n      - targets: ['{target}']\n",
        rules.display()
    ))
}

/// The value of an instant query that returns one sample, if it does.
fn query(prometheus: &Service, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = get(
        prometheus.address,
        &format!("/api/v1/query?query={encoded}"),
    )
    .ok()?;
    let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
    let value = answer["data"]["result"].as_array()?.first()?["value"][1].as_str()?;
    value.parse().ok()
}

fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

async fn run_with_metrics(path: &Path, metrics: RunMetrics) -> roadtest::report::Report {
    let home = roadtest::targets::local::roadtest_home();
    assert!(
        home.join("bin/tansu").exists(),
        "the local services are not installed under {}; run `roadtest services install` (or `ci/test`)",
        home.display()
    );
    let scenario = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
    let mut options = RunOptions::new(&scenario, path).expect("run options");
    options.local.roadtest_binary = PathBuf::from(env!("CARGO_BIN_EXE_roadtest"));
    options.target = Some(roadtest::targets::TargetKind::Local);
    options.out_dir = std::env::temp_dir().join(format!("roadtest-scraped-{}", std::process::id()));
    options.progress = false;
    options.metrics = Some(metrics);
    let report = scenario
        .run(options.clone())
        .await
        .expect("the run is carried out");
    let _ = std::fs::remove_dir_all(&options.out_dir);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_run_and_holds_the_reports_totals() {
    let metrics = RunMetrics::new();
    let listener = roadtest::live::bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("a metrics port");
    let target = listener.local_addr().expect("its address");
    let server = tokio::spawn(roadtest::live::serve(listener, metrics.registry()));
    let prometheus = tokio::task::spawn_blocking(move || start_prometheus(target))
        .await
        .expect("Prometheus started");
    let path = repo().join("scenarios/smoke-postgres.toml");
    let report = run_with_metrics(&path, metrics).await;
    report.assert_no_loss();
    let written: u64 = (report.consumer.processes.iter())
        .map(|process| process.stats.written + process.stats.dead_lettered)
        .sum();
    let expected = [
        ("roadtest_events_produced_total", report.producer.sent),
        (
            "roadtest_events_acknowledged_total",
            report.producer.sent - report.producer.failed_deliveries,
        ),
        (
            "roadtest_e2e_latency_seconds_count",
            report.latency.e2e_ms.count,
        ),
        ("roadtest_events_written_total", written),
    ];
    let scraped = tokio::task::spawn_blocking(move || {
        // The last series to change is e2e, filled after the verification: once Prometheus has
        // it, the scrape after the run is in.
        let (name, count) = expected[2];
        wait_for(Duration::from_secs(20), "a scrape after the run", || {
            query(&prometheus, name).filter(|value| *value == count as f64)
        });
        let values: Vec<(String, Option<f64>, u64)> = expected
            .iter()
            .map(|(name, total)| (name.to_string(), query(&prometheus, name), *total))
            .collect();
        let up = query(&prometheus, "up{job=\"roadtest\"}");
        let rules = get(prometheus.address, "/api/v1/rules").expect("the rules");
        (values, up, rules)
    })
    .await
    .expect("queries");
    server.abort();
    let (values, up, rules) = scraped;
    for (name, value, total) in values {
        assert_eq!(
            value,
            Some(total as f64),
            "{name}: Prometheus has {value:?}, report.json {total}"
        );
    }
    assert_eq!(up, Some(1.0));
    let rules: serde_json::Value = serde_json::from_str(&rules).expect("rules as JSON");
    let loaded = rules["data"]["groups"][0]["rules"]
        .as_array()
        .expect("a rule group");
    assert!(loaded.len() >= 4, "{rules}");
    assert!(loaded.iter().all(|rule| rule["health"] == "ok"), "{rules}");
}
