//! Threshold alerts on real runs (local target): the reference consumer's alerter raises exactly
//! the alerts the seed says, and a real Alertmanager (Debian's `prometheus-alertmanager`) between
//! the pipeline's alerting and roadtest's webhook delivers them in its own payload, matched just
//! as exactly; a malformed post is refused with 400 and counted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roadtest::Scenario;
use roadtest::alerts::expected_alerts;
use roadtest::fleet::FleetPlan;
use roadtest::live::RunMetrics;
use roadtest::run::RunOptions;
use roadtest::scenario::Sink;

/// One full local target at a time (the tests of this file run on parallel threads).
static ONE_TARGET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

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

fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
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

/// Alertmanager, stopped (and its folder removed) when dropped.
struct Alertmanager {
    child: Child,
    address: SocketAddr,
    dir: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts Alertmanager with deploy/alertmanager's configuration, delivering to `webhook`.
fn start_alertmanager(webhook: SocketAddr) -> Alertmanager {
    let binary = PathBuf::from("/usr/bin/prometheus-alertmanager");
    assert!(
        binary.exists(),
        "no {}: install Debian's prometheus-alertmanager (`ci/prometheus` does, and `ci/test` runs it)",
        binary.display()
    );
    let dir = std::env::temp_dir().join(format!("roadtest-alertmanager-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder for Alertmanager");
    let config = std::fs::read_to_string(repo().join("deploy/alertmanager/alertmanager.yml"))
        .expect("deploy/alertmanager/alertmanager.yml");
    assert!(config.contains("127.0.0.1:9466"), "the webhook URL moved");
    let config = config.replace("127.0.0.1:9466", &webhook.to_string());
    std::fs::write(dir.join("alertmanager.yml"), config).expect("write the config");
    let address = free_address();
    let log = std::fs::File::create(dir.join("alertmanager.log")).expect("a log file");
    let child = Command::new(binary)
        .arg(format!(
            "--config.file={}",
            dir.join("alertmanager.yml").display()
        ))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={address}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("alertmanager starts");
    let alertmanager = Alertmanager {
        child,
        address,
        dir,
    };
    let started = Instant::now();
    while ureq::get(&format!("http://{address}/-/ready"))
        .call()
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Alertmanager never got ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    alertmanager
}

/// The counter's value in the run's live metrics, once it has one.
fn produced(metrics: &RunMetrics) -> u64 {
    let text = roadtest::live::text(&metrics.registry());
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("roadtest_events_produced_total "));
    line.and_then(|value| value.parse().ok()).unwrap_or(0)
}

/// Plays the pipeline's alerting: once every event is produced (so every alert is due), posts
/// the alerts the rules raise to Alertmanager, and one malformed body straight to roadtest.
fn feed(alertmanager: SocketAddr, webhook: SocketAddr, scenario: Scenario, metrics: RunMetrics) {
    let events = FleetPlan::from_scenario(&scenario).expected_events_by(scenario.duration_ms());
    let started = Instant::now();
    while produced(&metrics) < events {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the run never produced all"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let alerts: Vec<serde_json::Value> = (expected_alerts(&scenario).expect("rules").iter())
        .map(|alert| {
            serde_json::json!({"labels": {"alertname": alert.alert, "vehicle_id": alert.vehicle_id}})
        })
        .collect();
    let url = format!("http://{alertmanager}/api/v2/alerts");
    let body = serde_json::Value::Array(alerts).to_string();
    let posted = ureq::post(&url)
        .header("content-type", "application/json")
        .send(body);
    posted.unwrap_or_else(|e| panic!("posting to Alertmanager: {e}"));
    let refused = ureq::post(&format!("http://{webhook}/alerts")).send("{\"alerts\": 3");
    assert!(refused.is_err(), "a malformed body was taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_delivers_the_alerts_in_its_own_payload_and_bad_posts_are_refused() {
    let _one = ONE_TARGET.lock().await;
    let (mut scenario, path) = alerts_ci();
    // The alerting is Alertmanager's here, and PostgreSQL starts in a second, not Cassandra's 20.
    scenario.pipeline.consumer.alerter = false;
    scenario.pipeline.sink = Sink::Postgres;
    // The feeder posts every alert once production ends: their latency is its wait, not a
    // pipeline's, so it is not judged here (the reference alerter's test judges it).
    scenario.expectations.alerts_latency_p99_ms_max = None;
    let expected = expected_alerts(&scenario).expect("the rules compile").len() as u64;
    let webhook = free_address();
    let alertmanager = tokio::task::spawn_blocking(move || start_alertmanager(webhook))
        .await
        .expect("Alertmanager started");
    let mut options = options(&scenario, &path, "alertmanager");
    options.alert_listen = Some(webhook);
    let metrics = RunMetrics::new();
    options.metrics = Some(metrics.clone());
    let (fed_scenario, address) = (scenario.clone(), alertmanager.address);
    let feeder = tokio::task::spawn_blocking(move || feed(address, webhook, fed_scenario, metrics));
    let report = scenario.run(options.clone()).await.expect("the run");
    feeder.await.expect("the feeder posted");
    let _ = std::fs::remove_dir_all(&options.out_dir);
    drop(alertmanager);
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
