//! Threshold alerts on real runs (local target): the reference consumer's alerter raises exactly
//! the alerts the seed says; and a real Prometheus and Alertmanager (Debian's packages), relaying
//! the consumer's count of fired alerts through a rule, deliver them in Alertmanager's payload,
//! matched just as exactly; a malformed post is refused with 400 and counted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use roadtest::Scenario;
use roadtest::alerts::expected_alerts;
use roadtest::run::RunOptions;
use roadtest::scenario::Sink;

mod monitoring;

use self::monitoring::{Service, free_address, repo};

/// One full local target at a time (the tests of this file run on parallel threads).
static ONE_TARGET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn alerts_ci() -> (Scenario, PathBuf) {
    let path = repo().join("scenarios/alerts-ci.toml");
    (
        Scenario::load(&path).unwrap_or_else(|e| panic!("{e}")),
        path,
    )
}

fn options(scenario: &Scenario, path: &PathBuf, label: &str) -> RunOptions {
    let home = roadtest::targets::local::roadtest_home();
    assert!(
        home.join("bin/tansu").exists(),
        "the local services are not installed under {}; run `roadtest services install` (or `ci/test`)",
        home.display()
    );
    let mut options = RunOptions::new(scenario, path).expect("run options");
    options.local.roadtest_binary = PathBuf::from(env!("CARGO_BIN_EXE_roadtest"));
    options.target = Some(roadtest::targets::TargetKind::Local);
    options.out_dir =
        std::env::temp_dir().join(format!("roadtest-alerts-{}-{label}", std::process::id()));
    options.progress = false;
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_alerter_raises_exactly_the_seeded_alerts() {
    let _one = ONE_TARGET.lock().await;
    let (scenario, path) = alerts_ci();
    let expected = expected_alerts(&scenario).expect("the rules compile").len() as u64;
    assert!(expected > 0, "alerts-ci expects no alert");
    let options = options(&scenario, &path, "reference");
    let report = scenario.run(options.clone()).await.expect("the run");
    let _ = std::fs::remove_dir_all(&options.out_dir);
    report.assert_no_loss();
    report.assert_passed();
    let alerts = report.alerts.as_ref().expect("an alerts section");
    assert_eq!(alerts.expected, expected);
    assert_eq!(alerts.received, expected, "{alerts:?}");
    let wrong = (
        alerts.missed,
        alerts.spurious,
        alerts.duplicated,
        alerts.malformed,
    );
    assert_eq!(wrong, (0, 0, 0, 0), "{alerts:?}");
    let p99 = alerts.latency_ms.p99.expect("a latency");
    assert!((0..5_000).contains(&p99), "{alerts:?}");
    let names: Vec<&str> = report
        .expectations
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert!(names.contains(&"alerts_missed_max"), "{names:?}");
}

/// Alertmanager with deploy/alertmanager's configuration, delivering to `webhook`.
fn start_alertmanager(webhook: SocketAddr) -> Service {
    let config = std::fs::read_to_string(repo().join("deploy/alertmanager/alertmanager.yml"))
        .expect("deploy/alertmanager/alertmanager.yml");
    assert!(config.contains("127.0.0.1:9466"), "the webhook URL moved");
    let config = config.replace("127.0.0.1:9466", &webhook.to_string());
    monitoring::start(
        "prometheus-alertmanager",
        &config,
        |config, dir, address| {
            vec![
                format!("--config.file={}", config.display()),
                format!("--storage.path={}", dir.join("data").display()),
                format!("--web.listen-address={address}"),
                "--cluster.listen-address=".to_string(),
            ]
        },
    )
}

/// Prometheus relaying the reference consumer's alerts: it scrapes the consumer's count of
/// fired alerts every second, and a rule named after the scenario's turns each vehicle's into an
/// alert sent to Alertmanager.
fn start_relay(consumer: SocketAddr, alertmanager: SocketAddr, rules: &std::path::Path) -> Service {
    std::fs::write(
        rules,
        "groups:\n  - name: relay\n    rules:\n      - alert: speeding\n        \
         expr: roadtest_ingest_alerts_fired_total{alert=\"speeding\"} > 0\n",
    )
    .expect("write the rules");
    monitoring::prometheus(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{alertmanager}']\n\
         scrape_configs:\n  - job_name: roadtest-consumer\n    static_configs:\n      - targets: ['{consumer}']\n",
        rules.display()
    ))
}

/// Once the run's webhook listens, posts it one malformed body, which must be refused.
fn post_malformed(webhook: SocketAddr) {
    let started = Instant::now();
    while std::net::TcpStream::connect(webhook).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the webhook never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = ureq::post(&format!("http://{webhook}/alerts")).send("{\"alerts\": 3");
    assert!(refused.is_err(), "a malformed body was taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_and_alertmanager_relay_the_alerts_in_their_own_payload() {
    let _one = ONE_TARGET.lock().await;
    let (mut scenario, path) = alerts_ci();
    // The consumer counts what fires but posts nothing: Prometheus and Alertmanager do. And
    // PostgreSQL starts in a second, Cassandra in twenty.
    scenario.pipeline.consumer.alerter = false;
    scenario.pipeline.sink = Sink::Postgres;
    // Scrape, evaluation and Alertmanager's grouping add seconds to each alert.
    scenario.expectations.alerts_latency_p99_ms_max = Some(15_000.0);
    let expected = expected_alerts(&scenario).expect("the rules compile").len() as u64;
    let (webhook, consumer) = (free_address(), free_address());
    let rules = std::env::temp_dir().join(format!("roadtest-relay-{}.yml", std::process::id()));
    let relay_rules = rules.clone();
    let (alertmanager, prometheus) = tokio::task::spawn_blocking(move || {
        let alertmanager = start_alertmanager(webhook);
        let prometheus = start_relay(consumer, alertmanager.address, &relay_rules);
        (alertmanager, prometheus)
    })
    .await
    .expect("Alertmanager and Prometheus started");
    let mut options = options(&scenario, &path, "alertmanager");
    options.alert_listen = Some(webhook);
    options.consumer_metrics_listen = Some(consumer);
    let malformed = tokio::task::spawn_blocking(move || post_malformed(webhook));
    let report = scenario.run(options.clone()).await.expect("the run");
    malformed.await.expect("the malformed post was refused");
    let _ = std::fs::remove_dir_all(&options.out_dir);
    let _ = std::fs::remove_file(&rules);
    drop((prometheus, alertmanager));
    report.assert_no_loss();
    let alerts = report.alerts.as_ref().expect("an alerts section");
    assert_eq!(
        (alerts.expected, alerts.received),
        (expected, expected),
        "{alerts:?}"
    );
    let wrong = (alerts.missed, alerts.spurious, alerts.duplicated);
    assert_eq!(wrong, (0, 0, 0), "{alerts:?}");
    assert_eq!(alerts.malformed, 1, "{alerts:?}");
    report.assert_passed();
}

#[test]
fn an_alert_webhook_port_in_use_exits_2_before_anything_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = taken.local_addr().expect("its address").to_string();
    let scenario = repo().join("scenarios/alerts-ci.toml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .arg("run")
        .arg(&scenario)
        .args(["--target", "local", "--quiet", "--alert-listen", &address])
        .output()
        .expect("roadtest runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&address) && stderr.contains("--alert-listen"),
        "{stderr}"
    );
    assert!(!stderr.contains("starting the local services"), "{stderr}");
}
