//! A consumer of the user's own under test: the example Python consumer (examples/python-consumer) on the local and containers targets, as a program and as an image, started, killed and verified through roadtest's environment contract.

use std::path::PathBuf;
use std::time::Duration;

use roadtest::Scenario;
use roadtest::report::Report;
use roadtest::run::RunOptions;

mod services;

/// One full local target at a time (the tests of this file run on parallel threads).
static ONE_TARGET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn example(name: &str) -> (Scenario, PathBuf) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/python-consumer")
        .join(format!("{name}.toml"));
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    (scenario, path)
}

/// Runs an example scenario on the local target; fails (never skips) when the services or the
/// consumer's virtual environment are missing, saying how to install them.
async fn run(name: &str) -> Report {
    let (scenario, path) = example(name);
    run_scenario(name, &scenario, &path)
        .await
        .unwrap_or_else(|error| panic!("{name}: the run could not be carried out: {error}"))
}

/// Fails (never skips) when the example consumer's virtual environment is missing.
fn require_venv() {
    let home = roadtest::targets::local::roadtest_home();
    let venv = std::env::var_os("PYTHON_CONSUMER_VENV")
        .map_or_else(|| home.join("python-consumer/venv"), PathBuf::from);
    assert!(
        venv.join("bin/python").exists(),
        "the example consumer's virtual environment is missing at {}; run \
         examples/python-consumer/install (ci/test does)",
        venv.display()
    );
}

/// Runs a scenario on the external target: the shared services (`roadtest services up`).
async fn run_external(
    name: &str,
    scenario: &Scenario,
    path: &std::path::Path,
    clusters: roadtest::run::ExternalClusters,
) -> Result<Report, roadtest::run::RunError> {
    let target = roadtest::targets::TargetKind::External;
    run_on(name, scenario, path, target, Some(clusters)).await
}

/// Runs a scenario on the local target; fails (never skips) when its services are missing.
async fn run_scenario(
    name: &str,
    scenario: &Scenario,
    path: &std::path::Path,
) -> Result<Report, roadtest::run::RunError> {
    let home = roadtest::targets::local::roadtest_home();
    assert!(
        home.join("bin/tansu").exists(),
        "the local services are not installed under {}; run `roadtest services install` (or `ci/test`)",
        home.display()
    );
    require_venv();
    let target = roadtest::targets::TargetKind::Local;
    run_on(name, scenario, path, target, None).await
}

/// One run at a time, through the library, its output folder removed afterwards.
async fn run_on(
    name: &str,
    scenario: &Scenario,
    path: &std::path::Path,
    target: roadtest::targets::TargetKind,
    clusters: Option<roadtest::run::ExternalClusters>,
) -> Result<Report, roadtest::run::RunError> {
    let _one = ONE_TARGET.lock().await;
    let mut options = RunOptions::new(scenario, path).expect("run options");
    options.local.roadtest_binary = PathBuf::from(env!("CARGO_BIN_EXE_roadtest"));
    options.target = Some(target);
    options.external = clusters;
    options.out_dir =
        std::env::temp_dir().join(format!("roadtest-python-{}-{name}", std::process::id()));
    options.progress = false;
    let report = scenario.run(options.clone()).await;
    let _ = std::fs::remove_dir_all(&options.out_dir);
    report
}

/// The consumer the report names, and its sampled memory: the Python process itself ran.
fn assert_the_python_consumer_ran(report: &Report, commit: &str) {
    assert_eq!(
        report.consumer.command,
        ["./consumer", "--commit", commit],
        "the report names the consumer under test"
    );
    let rss = report.memory.peak_rss_mb.get("consumer").copied();
    // The interpreter with confluent-kafka and cassandra-driver loaded takes about 50 MB; the
    // bash wrapper alone (had it not exec'd) would take under 5 MB.
    assert!(rss.is_some_and(|mb| mb > 20.0), "consumer RSS {rss:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_consumer_passes_smoke_with_nothing_lost() {
    let report = run("smoke").await;
    report.assert_no_loss();
    report.assert_passed();
    assert_the_python_consumer_ran(&report, "after-write");
    assert_eq!(report.verify.expected, 600, "20 vehicles at 1 Hz for 30 s");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // smoke's load into another consumer: it compares with the reference consumer's baseline.
    let baseline_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../reports/baselines/smoke.json");
    let baseline = Report::read(&baseline_path).expect("the committed smoke baseline");
    let settings = roadtest::gate_settings::GateSettings::default();
    let comparison = roadtest::report::compare::compare(&report, &baseline, settings);
    let hash = comparison
        .rows
        .iter()
        .find(|row| row.name == "scenario hash")
        .expect("a scenario hash row");
    assert_eq!(hash.tolerance, "same load, another consumer", "{hash:?}");
    let note = comparison.notes.join("\n");
    assert!(
        note.contains("into `./consumer --commit after-write` in the new run and the reference consumer in the baseline"),
        "{note}"
    );
}

/// The same consumer writing PostgreSQL on the local target: its own message format, its own
/// table (created by the consumer, mapped column by column) and its own write-time column, to
/// which every row's latency is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_consumer_writes_its_own_postgresql_table_with_nothing_lost() {
    let report = run("postgres").await;
    report.assert_no_loss();
    report.assert_passed();
    assert_the_python_consumer_ran(&report, "after-write");
    assert_eq!(report.verify.expected, 600, "20 vehicles at 1 Hz for 30 s");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.memory.peak_rss_mb.contains_key("postgres"));
    // Every row carried its written_at, stamped by the consumer after it read the event: each
    // one's latency is measured, none is negative, and a batch waits up to a second (BATCH_AGE_S).
    let e2e = &report.latency.e2e_ms;
    assert_eq!(e2e.count, 600, "{e2e:?}");
    assert!(e2e.min_ms > 0.0 && e2e.p99_ms < 5000.0, "{e2e:?}");
}

/// The same consumer on the containers target (roadtest's images where no registry answers):
/// started on the host beside the containers, its own table created in the Cassandra container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_consumer_passes_smoke_on_containers_with_nothing_lost() {
    let (scenario, path) = example("smoke");
    require_venv();
    let target = roadtest::targets::TargetKind::Containers;
    let report = run_on("containers-smoke", &scenario, &path, target, None)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "smoke on containers could not be carried out: {error}\n(`ci/docker up` and \
                 `ci/images build` give a daemon and images)"
            )
        });
    report.assert_no_loss();
    report.assert_passed();
    assert_eq!(report.target.name, "containers");
    assert_the_python_consumer_ran(&report, "after-write");
    assert_eq!(report.verify.expected, 600, "20 vehicles at 1 Hz for 30 s");
}

/// Fails (never skips) when a Docker image is missing, saying how to build it.
fn require_image(image: &str) {
    let inspected = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output();
    assert!(
        inspected
            .as_ref()
            .is_ok_and(|output| output.status.success()),
        "the image {image} is not on this host's Docker ({inspected:?}); build it with \
         `ci/docker up && ci/images build && examples/python-consumer/image` (ci/test does)"
    );
}

/// The same consumer as a Docker image (examples/python-consumer/image) on the containers
/// target: a container on the host's network with roadtest's environment, killed with `docker
/// kill` while Cassandra is down and started again with `docker start`, nothing lost; its
/// memory is the container's, from Docker's stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_consumer_as_an_image_is_killed_and_started_again_through_docker() {
    let (scenario, path) = example("container");
    require_image(&scenario.pipeline.consumer.image);
    let target = roadtest::targets::TargetKind::Containers;
    let report = run_on("container", &scenario, &path, target, None)
        .await
        .unwrap_or_else(|error| panic!("container.toml could not be carried out: {error}"));
    report.assert_no_loss();
    report.assert_passed();
    assert_eq!(report.target.name, "containers");
    assert_eq!(
        report.consumer.image, "roadtest-local/python-consumer:example",
        "the report names the image under test"
    );
    assert!(report.consumer.command.is_empty(), "{:?}", report.consumer);
    assert_eq!(report.faults.len(), 2, "{:?}", report.faults);
    for fault in &report.faults {
        assert!(fault.at_s.is_some() && fault.error.is_none(), "{fault:?}");
        assert!(fault.recovery_started_at_s.is_some(), "{fault:?}");
    }
    // The interpreter with its two drivers, as Docker counts the container's memory.
    let rss = report.memory.peak_rss_mb.get("consumer").copied();
    assert!(rss.is_some_and(|mb| mb > 20.0), "consumer memory {rss:?}");
}

/// The same image writing PostgreSQL (container-postgres.toml): the consumer's container beside
/// PostgreSQL's, each killed with `docker kill` and started again, nothing lost; every row's
/// latency measured to the `written_at` the consumer stamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_consumer_image_writes_postgresql_in_docker_through_both_kills() {
    let (scenario, path) = example("container-postgres");
    require_image(&scenario.pipeline.consumer.image);
    let target = roadtest::targets::TargetKind::Containers;
    let report = run_on("container-postgres", &scenario, &path, target, None)
        .await
        .unwrap_or_else(|error| {
            panic!("container-postgres.toml could not be carried out: {error}")
        });
    report.assert_no_loss();
    report.assert_passed();
    // The run counted the rows through PostgreSQL's restart too (its own connection broke with
    // the kill): the drain saw them all written instead of waiting for an idle consumer.
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.target.name, "containers");
    assert!(report.consumer.command.is_empty(), "{:?}", report.consumer);
    let services: Vec<String> = report
        .faults
        .iter()
        .map(|fault| {
            assert!(fault.error.is_none(), "{fault:?}");
            serde_json::to_value(fault).expect("a fault as JSON")["service"].to_string()
        })
        .collect();
    assert_eq!(services, ["\"postgres\"", "\"consumer\""]);
    assert_eq!(report.latency.e2e_ms.count, report.verify.found);
    for name in ["postgres", "consumer"] {
        let mb = report.memory.peak_rss_mb.get(name).copied();
        assert!(mb.is_some_and(|mb| mb > 1.0), "{name}: {mb:?}");
    }
}

/// An image whose program ends at once (the Python base runs `python3` with no input) is
/// reported with its exit status, seen through Docker's wait, before any load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_image_that_exits_while_starting_is_reported_with_its_status() {
    let (mut scenario, path) = example("container");
    let base = "roadtest-local/python:3.11-bookworm";
    require_image(base);
    scenario.pipeline.consumer.image = base.to_string();
    scenario.faults.clear();
    let target = roadtest::targets::TargetKind::Containers;
    let error = run_on("image-exits", &scenario, &path, target, None)
        .await
        .expect_err("a consumer that exits at once cannot be run")
        .to_string();
    assert!(
        error.contains("exited while starting (exit status: 0)"),
        "{error}"
    );
}

/// Tampering goes through the consumer's own table: each of its columns (an `int`, doubles, a
/// `float`) is changed by one step at least once and caught, the counts exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_through_the_consumers_own_table_is_counted_exactly_in_every_column() {
    let report = run("tamper").await;
    report.assert_tampering_counted();
    report.assert_passed();
    assert_eq!(
        (
            report.verify.corrupt,
            report.verify.lost,
            report.verify.unexpected
        ),
        (30, 3, 4),
        "every tampered row found; replay: {}",
        report.replay_command
    );
    let changed: std::collections::BTreeSet<&str> = report
        .tampered
        .iter()
        .filter_map(|record| record.field.as_deref())
        .collect();
    // The fields the message sends and the table holds (no format_version in either).
    let compared = [
        "humidity",
        "latitude",
        "longitude",
        "seq",
        "speed",
        "temperature",
    ];
    // corrupt = 30 with each of them changed: a change in any one column is caught.
    assert_eq!(changed, compared.into(), "each compared column changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committing_after_the_write_loses_nothing_when_the_consumer_is_killed() {
    let report = run("crash-after-write").await;
    report.assert_no_loss();
    report.assert_passed();
    assert_the_python_consumer_ran(&report, "after-write");
    // Both faults happened: Cassandra down 8-14 s, the consumer killed at 10 s and started again.
    assert_eq!(report.faults.len(), 2, "{:?}", report.faults);
    for fault in &report.faults {
        assert!(fault.at_s.is_some() && fault.error.is_none(), "{fault:?}");
        assert!(fault.recovery_started_at_s.is_some(), "{fault:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_is_caught_losing_the_batch_it_held_when_killed() {
    let report = run("crash-auto-commit").await;
    assert_the_python_consumer_ran(&report, "auto");
    let verify = &report.verify;
    assert!(verify.lost > 0, "auto-commit lost nothing: {verify:?}");
    assert_eq!(verify.found + verify.lost, verify.expected, "{verify:?}");
    assert_eq!((verify.corrupt, verify.unexpected), (0, 0), "{verify:?}");
    assert!(!report.passed, "lost_max = 0 must fail the run");
    // The report names the events lost. They are the batch the consumer was retrying while
    // Cassandra was down (from 8 s) when it was killed (10 s): events from before the kill,
    // at 5 Hz sequence numbers below 50, plus a second's slack for the batch window.
    assert!(!verify.discrepancies.is_empty(), "{verify:?}");
    for discrepancy in &verify.discrepancies {
        assert_eq!(discrepancy.field, "row", "{discrepancy:?}");
        assert!(discrepancy.found.is_null(), "{discrepancy:?}");
        assert!(
            discrepancy.seq < 55,
            "lost event {discrepancy:?} was sent after the consumer's kill"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_column_the_consumers_table_lacks_stops_the_run_before_any_load() {
    // On the shared services as existing clusters, where whatever a run leaves stays.
    let (kafka, cql) = services::services();
    require_venv();
    let before = services::run_keyspaces(&cql).await;
    // The consumer creates its table with `lat`; the scenario says the latitude is elsewhere.
    let (mut scenario, path) = example("smoke");
    scenario.pipeline.table.latitude = "latitude_deg".to_string();
    let error = run_external("smoke-bad-column", &scenario, &path, clusters(&kafka, &cql))
        .await
        .expect_err("the table check must stop the run")
        .to_string();
    assert!(
        error.starts_with(
            "pipeline.table.latitude: column `latitude_deg` is not in table `vehicle_readings` \
             (its columns: "
        ),
        "{error}"
    );
    assert!(
        error.contains("humidity_pct") && error.contains("recorded_at"),
        "the table's real columns are listed: {error}"
    );
    // Nothing the run created is left behind: its keyspace (made by the consumer it started)
    // is dropped with its topics.
    assert_eq!(services::run_keyspaces(&cql).await, before);
}

/// The shared services as the external target's clusters.
fn clusters(kafka: &str, cql: &str) -> roadtest::run::ExternalClusters {
    roadtest::run::ExternalClusters {
        kafka: roadtest::clients::KafkaConnection::plaintext(kafka),
        cql: roadtest::clients::CqlConnection {
            contact_points: vec![cql.to_string()],
            ..Default::default()
        },
        postgres: None,
        kafka_replication_factor: 1,
        cql_replication: roadtest::clients::cql::REPLICATION_ONE.to_string(),
    }
}

/// The example consumer started as its operators would, outside roadtest: on the services'
/// broker and database, reading the scenario's fixed topic and writing its fixed keyspace.
struct RunningElsewhere(std::process::Child);

impl RunningElsewhere {
    fn start(scenario: &Scenario, kafka: &str, cql: &str, log: &std::path::Path) -> Self {
        let program =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/python-consumer/consumer");
        let log = std::fs::File::create(log).expect("the consumer's log");
        let child = std::process::Command::new(program)
            .args(["--commit", "after-write"])
            .env("ROADTEST_KAFKA_BOOTSTRAP", kafka)
            .env("ROADTEST_TOPIC", &scenario.pipeline.topic)
            .env("ROADTEST_GROUP", "python-consumer-elsewhere")
            .env("ROADTEST_CQL_CONTACT", cql)
            .env("ROADTEST_KEYSPACE", &scenario.pipeline.keyspace)
            .env("ROADTEST_TABLE", &scenario.pipeline.table.name)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("the example consumer starts");
        RunningElsewhere(child)
    }
}

impl Drop for RunningElsewhere {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_running_elsewhere_on_fixed_names_is_verified_run_after_run() {
    let (kafka, cql) = services::services();
    require_venv();
    let (scenario, path) = example("elsewhere");
    let connection = roadtest::clients::KafkaConnection::plaintext(&kafka);
    // The pipeline's topic exists before its consumer subscribes, as in production.
    let topic = [(
        scenario.pipeline.topic.as_str(),
        scenario.pipeline.partitions,
    )];
    roadtest::clients::kafka::create_topics(&connection, &topic, 1, Duration::from_secs(30))
        .await
        .expect("the fixed topic");
    let log = std::env::temp_dir().join(format!("roadtest-elsewhere-{}.log", std::process::id()));
    let _consumer = RunningElsewhere::start(&scenario, &kafka, &cql, &log);
    let clusters = clusters(&kafka, &cql);
    // Two runs into the same table: each verifies its own rows only.
    let mut starts = Vec::new();
    for round in ["first", "second"] {
        let label = format!("elsewhere-{round}");
        let report = run_external(&label, &scenario, &path, clusters.clone())
            .await
            .unwrap_or_else(|error| {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("{round} run: {error}\nthe consumer's log:\n{tail}")
            });
        report.assert_no_loss();
        report.assert_passed();
        assert!(report.consumer.runs_elsewhere);
        // 20 vehicles at 1 Hz for 20 s, give or take the jitter of the first samples; every
        // one of this run's, none of the earlier run's (assert_no_loss: unexpected = 0).
        let expected = report.verify.expected;
        assert!((380..=420).contains(&expected), "{expected} events");
        let start = report.scenario.resolved["start_timestamp_ms"].as_i64();
        assert!(
            report.replay_command.contains("--start-timestamp-ms"),
            "{}",
            report.replay_command
        );
        starts.push(start.expect("the run's time base"));
    }
    assert!(
        starts[1] > starts[0],
        "each run has a time base of its own: {starts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_exits_while_starting_is_reported_with_its_status_and_log() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml");
    let mut scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    scenario.pipeline.consumer.command = ["sh", "-c", "echo cannot reach the broker >&2; exit 3"]
        .map(String::from)
        .to_vec();
    let error = run_scenario("exits-at-start", &scenario, &path)
        .await
        .expect_err("a consumer that exits at once cannot be run")
        .to_string();
    assert!(
        error.contains("exited while starting (exit status: 3)"),
        "{error}"
    );
    assert!(
        error.contains("cannot reach the broker"),
        "its log's tail: {error}"
    );
}
