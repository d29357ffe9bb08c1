//! Crash recovery on real services: the CI-sized fault scenarios, each with what it must show (PostgreSQL's among them).

use std::path::PathBuf;

use roadtest::Scenario;
use roadtest::fleet::FleetPlan;
use roadtest::report::Report;
use roadtest::run::RunOptions;
use roadtest::scenario::CommitPolicy;
use roadtest::sim::{SimLatencies, simulate};

mod postgres_crash;

fn scenario(name: &str) -> (Scenario, PathBuf) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    (scenario, path)
}

/// One full local target at a time: each brings its own Cassandra, and two on 2 cores starve
/// each other (the tests of this file run on parallel threads).
static ONE_TARGET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs a scenario on the local target; fails (never skips) when the services are not installed.
async fn run(scenario: &Scenario, path: &PathBuf, label: &str) -> Report {
    let _one = ONE_TARGET.lock().await;
    let home = roadtest::targets::local::roadtest_home();
    assert!(
        home.join("bin/tansu").exists(),
        "the local services are not installed under {}; run `roadtest services install` (or `ci/test`)",
        home.display()
    );
    let mut options = RunOptions::new(scenario, path).expect("run options");
    options.local.roadtest_binary = PathBuf::from(env!("CARGO_BIN_EXE_roadtest"));
    // These suites are about the local services (Tansu's memory storage, Cassandra 2.1).
    options.target = Some(roadtest::targets::TargetKind::Local);
    options.out_dir =
        std::env::temp_dir().join(format!("roadtest-faults-{}-{label}", std::process::id()));
    options.progress = false;
    let report = scenario
        .run(options.clone())
        .await
        .unwrap_or_else(|error| panic!("{label}: the run could not be carried out: {error}"));
    let _ = std::fs::remove_dir_all(&options.out_dir);
    report
}

/// Fault `index` of the report as its JSON object (the report.json form).
fn fault(report: &Report, index: usize) -> serde_json::Value {
    let record = report
        .faults
        .get(index)
        .unwrap_or_else(|| panic!("no fault {index} in the report: {:?}", report.faults));
    serde_json::to_value(record).expect("a fault record as JSON")
}

/// The partitions whose lost log a consumer of the run noticed, one entry per notice, sorted.
fn partitions_noticed(report: &Report) -> Vec<i32> {
    let processes = report.consumer.processes.iter();
    let mut noticed: Vec<i32> = processes
        .flat_map(|p| p.stats.logs_lost.iter().map(|lost| lost.partition))
        .collect();
    noticed.sort_unstable();
    noticed
}

/// When a lost event was meant to be sent, ms into the run.
fn sent_at_ms(example: &roadtest::report::Discrepancy, scenario: &Scenario) -> i64 {
    example.expected["timestamp"].as_i64().expect("a timestamp") - scenario.start_timestamp_ms
}

fn number(value: &serde_json::Value, key: &str) -> f64 {
    value
        .get(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("fault record lacks {key}: {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumer_loses_nothing() {
    let (scenario, path) = scenario("crash-consumer-ci");
    let report = run(&scenario, &path, "crash-consumer").await;
    report.assert_no_loss();
    report.assert_passed();
    let killed = fault(&report, 0);
    assert_eq!(killed["action"], "kill");
    assert!(killed["error"].is_null(), "{killed}");
    assert!(number(&killed, "ready_after_s") > 0.0, "{killed}");
    // Present (not null): the lag came back to its level before the kill.
    assert!(number(&killed, "lag_recovered_after_s") > 0.0, "{killed}");
    // Events sent while the consumer was down (2 s, then its restart) waited at least that long.
    assert!(
        report.latency.e2e_ms.max_ms >= 2000.0,
        "{:?}",
        report.latency.e2e_ms
    );
    assert_eq!(number(&killed, "events_lost"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gracefully_stopped_consumer_loses_nothing_and_exits_cleanly() {
    let (scenario, path) = scenario("graceful-restart-ci");
    let report = run(&scenario, &path, "graceful-restart").await;
    report.assert_no_loss();
    report.assert_passed();
    let processes = &report.consumer.processes;
    assert_eq!(
        processes.len(),
        2,
        "one consumer before the stop, one after: {processes:?}"
    );
    assert!(
        processes.iter().all(|p| p.exited_cleanly),
        "every consumer must exit cleanly on SIGTERM: {processes:?}"
    );
    assert!(number(&fault(&report, 0), "ready_after_s") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cassandra_crash_with_batch_commitlog_loses_nothing() {
    let (scenario, path) = scenario("cassandra-crash-ci");
    let report = run(&scenario, &path, "cassandra-crash").await;
    report.assert_no_loss();
    report.assert_passed();
    let crash = fault(&report, 0);
    assert_eq!(crash["service"], "cassandra");
    assert!(crash["error"].is_null(), "{crash}");
    assert!(
        number(&crash, "ready_after_s") > 0.5,
        "Cassandra restarts in seconds: {crash}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_on_memory_storage_is_reported_plainly() {
    let (scenario, path) = scenario("broker-restart-ci");
    let report = run(&scenario, &path, "broker-restart").await;
    let verify = &report.verify;
    let restart = fault(&report, 0);
    eprintln!(
        "broker-restart: expected {}, found {}, lost {}; producer sent {}, failed {}; \
         errors {:?}\nfault {restart}\nlost examples {:?}",
        verify.expected,
        verify.found,
        verify.lost,
        report.producer.sent,
        report.producer.failed_deliveries,
        report.errors,
        verify
            .discrepancies
            .iter()
            .map(|d| (d.vehicle_id.as_str(), d.seq))
            .collect::<Vec<_>>()
    );
    assert_eq!(verify.corrupt, 0);
    assert_eq!(verify.unexpected, 0);
    assert!(
        report.errors.iter().any(|e| e.contains("kept nothing")),
        "the report must say the broker kept nothing: {:?}",
        report.errors
    );
    assert!(restart["error"].is_null(), "{restart}");
    assert_eq!(number(&restart, "events_lost") as u64, verify.lost);
    // Tansu's new log begins again at offset 0, behind the consumer's position. The consumer
    // either notices the end that went back and reads the new log from its beginning, or
    // crashes inside librdkafka 2.12.1 on Tansu's answer for the vanished topic (a zero topic id
    // with a current leader: a NULL topic name reaches strcmp) and, restarted by the scenario's
    // `restart = "on-failure"`, reads the new log from its beginning (the group's offsets went
    // with the broker). Either way the crash must be in the report, not silently lost.
    let processes = &report.consumer.processes;
    let mut noticed = partitions_noticed(&report);
    noticed.dedup();
    let crashes: Vec<&String> = report
        .errors
        .iter()
        .filter(|e| e.contains("the consumer exited during the run"))
        .collect();
    assert!(
        !noticed.is_empty() || !crashes.is_empty(),
        "the consumer neither noticed the lost log nor crashed: {processes:?} {:?}",
        report.errors
    );
    let unclean = processes.iter().filter(|p| !p.exited_cleanly).count();
    assert_eq!(
        unclean,
        crashes.len(),
        "every consumer that did not exit cleanly is reported as an exit during the run, and \
         only those: {processes:?} {crashes:?}"
    );
    assert!(
        crashes.iter().all(|e| e.contains("started again")),
        "{crashes:?}"
    );
    assert_eq!(
        processes.len() - unclean,
        1,
        "one consumer, the last one started, stops cleanly at the end: {processes:?}"
    );
    // Every event the consumer had read before the kill is stored: it wrote all the events
    // sent before the kill but the lag it had then (give or take one second of sends, for the
    // kill's moment).
    let plan = FleetPlan::from_scenario(&scenario);
    let kill_ms = (number(&restart, "at_s") * 1000.0) as i64;
    let before_kill = plan.expected_events_by(kill_ms);
    let held = number(&restart, "lag_before") as u64 + plan.expected_events_by(1000);
    assert!(
        verify.found + held >= before_kill,
        "found {} events; {before_kill} were sent before the kill, {held} at most were not yet read",
        verify.found
    );
    // And every event lost was sent around the kill: none before the lag it had then, and,
    // once every partition's new log is read from its beginning (all noticed, or a consumer
    // started again), none after the broker was back. A partition not noticed (its end was not
    // seen going back twice: seen in 1 run of 11) loses the events of its new log up to the old
    // position, and the report says which partitions were noticed.
    let reread = !crashes.is_empty() || noticed.len() == scenario.pipeline.partitions as usize;
    let back_ms = match reread {
        true => kill_ms + (number(&restart, "duration_s") * 1000.0) as i64 + 1000,
        false => i64::MAX,
    };
    // Sends Tansu refused once it was back ("Unknown broker error" while the topics are made
    // again; seen in 1 run of 12) were never acknowledged: the report counts them as failed
    // deliveries, and they may be lost whenever they were sent.
    let outside: Vec<_> = verify
        .discrepancies
        .iter()
        .filter(|example| !(kill_ms - 1000..back_ms).contains(&sent_at_ms(example, &scenario)))
        .collect();
    assert!(
        outside.len() as u64 <= report.producer.failed_deliveries,
        "{} events lost outside the kill (at {kill_ms} ms, the broker back by {back_ms} ms, \
         partitions noticed {noticed:?}), more than the {} deliveries that failed: {outside:?}",
        outside.len(),
        report.producer.failed_deliveries
    );
    report.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_on_durable_storage_loses_nothing_and_the_consumer_resumes() {
    let home = roadtest::targets::local::roadtest_home();
    assert!(
        home.join("bin/tansu-durable").exists(),
        "the durable broker is not built under {}; run `roadtest services install` (or `ci/test`)",
        home.display()
    );
    let (scenario, path) = scenario("broker-restart-durable-ci");
    let report = run(&scenario, &path, "broker-restart-durable").await;
    let restart = fault(&report, 0);
    eprintln!(
        "broker-restart-durable: {:?}; producer sent {}, failed {}; errors {:?}\nfault {restart}",
        report.verify, report.producer.sent, report.producer.failed_deliveries, report.errors
    );
    let broker = &report.target.service_versions["broker"];
    assert!(broker.contains("SQLite"), "{broker}");
    report.assert_no_loss();
    assert_eq!(report.producer.failed_deliveries, 0);
    assert!(restart["error"].is_null(), "{restart}");
    assert_eq!(number(&restart, "events_lost"), 0.0, "{restart}");
    // The broker came back with its log: no end went back, no consumer crashed or was started
    // again, and the one consumer caught up with what was sent during the outage.
    assert!(
        partitions_noticed(&report).is_empty(),
        "{:?}",
        report.consumer.processes
    );
    let processes = &report.consumer.processes;
    assert!(
        processes.len() == 1 && processes[0].exited_cleanly,
        "{processes:?} {:?}",
        report.errors
    );
    assert!(number(&restart, "ready_after_s") > 0.0, "{restart}");
    assert!(
        number(&restart, "lag_recovered_after_s") >= 0.0,
        "the consumer never caught up after the restart: {restart}"
    );
    report.assert_passed();
}

#[test]
fn the_simulated_broker_restart_on_durable_storage_loses_nothing() {
    let (scenario, path) = scenario("broker-restart-durable-ci");
    let report =
        simulate(&scenario, &path, SimLatencies::default()).unwrap_or_else(|e| panic!("{e}"));
    report.assert_no_loss();
    assert!(
        !report.errors.iter().any(|e| e.contains("kept nothing")),
        "{:?}",
        report.errors
    );
    assert!(partitions_noticed(&report).is_empty());
    let restart = fault(&report, 0);
    assert_eq!(number(&restart, "events_lost"), 0.0, "{restart}");
    assert!(
        number(&restart, "latency_recovered_after_s") >= 0.0,
        "{restart}"
    );
    report.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_at_most_once_consumer_is_caught_losing_events() {
    let (safe, path) = scenario("unsafe-commit-ci");
    let mut unsafe_policy = safe.clone();
    unsafe_policy.pipeline.consumer.commit = CommitPolicy::BeforeWrite;
    let report = run(&unsafe_policy, &path, "before-write").await;
    assert!(
        report.verify.lost > 0,
        "commit before write + consumer kill while Cassandra is down must lose events: {:?}",
        report.verify
    );
    assert!(!report.passed);
    let safe_report = run(&safe, &path, "after-write").await;
    safe_report.assert_no_loss();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_broker_heals_without_loss() {
    let (scenario, path) = scenario("network-partition-ci");
    let report = run(&scenario, &path, "network-partition").await;
    report.assert_no_loss();
    report.assert_passed();
    let partition = fault(&report, 0);
    assert_eq!(partition["action"], "blackhole");
    assert!(partition["error"].is_null(), "{partition}");
    assert!(
        number(&partition, "lag_recovered_after_s") >= 0.0,
        "{partition}"
    );
    // Events meant for the partition's seconds arrived late: the latency shows the outage.
    assert!(
        report.latency.e2e_ms.max_ms > 1000.0,
        "a 4 s partition must show in the end-to-end latency: {:?}",
        report.latency.e2e_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_and_reset_database_path_loses_nothing() {
    let (scenario, path) = scenario("slow-database-ci");
    let report = run(&scenario, &path, "slow-database").await;
    report.assert_no_loss();
    report.assert_passed();
    let slow = fault(&report, 0);
    assert_eq!(slow["network"]["latency"]["delay_ms"], 150);
    assert!(slow["error"].is_null(), "{slow}");
    let write_ack = &report.latency.stages["write_ack_ms"];
    assert!(
        write_ack.max_ms >= 300.0,
        "150 ms each way must show in the write acknowledgements: {write_ack:?}"
    );
    assert_eq!(fault(&report, 1)["action"], "reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_rows_are_counted_exactly_and_named() {
    let (scenario, path) = scenario("tamper-ci");
    let report = run(&scenario, &path, "tamper").await;
    assert_eq!(report.tampered.len(), 12, "{:?}", report.tampered);
    assert_eq!(
        (
            report.verify.corrupt,
            report.verify.lost,
            report.verify.unexpected
        ),
        (5, 3, 4),
        "{:?}",
        report.verify.discrepancies
    );
    report.assert_tampering_counted();
    report.assert_passed();
    let stranger = roadtest::wire::vehicle_id(scenario.fleet.vehicle_count);
    assert!(report.tampered.iter().any(|t| t.vehicle_id == stranger));
    // Every row was stored, on the sim too: the same seed tampers the same rows and fields.
    let latencies = roadtest::sim::SimLatencies::default();
    let simulated = roadtest::sim::simulate(&scenario, &path, latencies).expect("simulates");
    assert_eq!(report.tampered, simulated.tampered);
}

// PostgreSQL as the database: a kill -9 loses acknowledged rows exactly when synchronous commit
// is off, every row has its commit time, and the simulation follows the same setting.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_postgres_with_synchronous_commit_loses_nothing_and_every_row_has_its_commit_time()
{
    let (scenario, path) = scenario("postgres-crash-ci");
    let report = run(&scenario, &path, "postgres-sync-on").await;
    let verify = &report.verify;
    assert!(report.passed, "{:?}", report.errors);
    assert_eq!((verify.lost, verify.corrupt, verify.unexpected), (0, 0, 0));
    assert_eq!(verify.found, verify.expected);
    let crash = fault(&report, 0);
    assert_eq!(crash["service"], "postgres");
    assert!(crash["error"].is_null(), "{crash}");
    assert!(
        crash["ready_after_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{crash}"
    );
    // Each row's latency comes from its transaction's commit timestamp: one per row found.
    let e2e = &report.latency.e2e_ms;
    assert_eq!(e2e.count, verify.found, "every row has a commit time");
    assert!(
        e2e.p50_ms > 0.0 && e2e.p50_ms < 2_000.0,
        "e2e p50 {} ms",
        e2e.p50_ms
    );
    let versions = &report.target.service_versions;
    let postgres = versions.get("postgres").map(String::as_str).unwrap_or("");
    assert!(postgres.contains("PostgreSQL") && postgres.contains("synchronous_commit on"));
    assert!(!versions.contains_key("cassandra"), "{versions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_postgres_without_synchronous_commit_loses_acknowledged_rows_counted_exactly() {
    let (mut scenario, path) = scenario("postgres-crash");
    postgres_crash::killed_three_times(&mut scenario);
    let report = run(&scenario, &path, "postgres-sync-off").await;
    postgres_crash::assert_acknowledged_rows_lost_and_counted(&report);
}

#[test]
fn the_simulation_loses_rows_to_a_postgres_kill_only_without_synchronous_commit() {
    let lost = |name: &str| {
        let (scenario, path) = scenario(name);
        let report = simulate(&scenario, &path, SimLatencies::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((report.verify.corrupt, report.verify.unexpected), (0, 0));
        report.verify.lost
    };
    assert!(
        lost("postgres-crash") > 0,
        "the simulated kill without synchronous commit lost nothing"
    );
    assert_eq!(lost("postgres-crash-ci"), 0);
}

#[test]
fn the_simulated_broker_restart_loses_only_what_the_broker_held_and_the_new_log_is_read() {
    let (scenario, path) = scenario("broker-restart-ci");
    let report =
        simulate(&scenario, &path, SimLatencies::default()).unwrap_or_else(|e| panic!("{e}"));
    let verify = &report.verify;
    assert_eq!((verify.corrupt, verify.unexpected), (0, 0));
    assert!(
        report.errors.iter().any(|e| e.contains("kept nothing")),
        "{:?}",
        report.errors
    );
    // As the real consumer does: every partition's position was beyond its new log's end.
    let noticed = partitions_noticed(&report);
    let every: Vec<i32> = (0..scenario.pipeline.partitions as i32).collect();
    assert_eq!(noticed, every, "{:?}", report.consumer.processes);
    // Lost: what the broker held unread at the kill, never more than a second of sends, and
    // nothing sent once it was back.
    let plan = FleetPlan::from_scenario(&scenario);
    let restart = fault(&report, 0);
    let kill_ms = (number(&restart, "at_s") * 1000.0) as i64;
    let back_ms = kill_ms + (number(&restart, "duration_s") * 1000.0) as i64;
    assert!(verify.lost <= plan.expected_events_by(1000), "{verify:?}");
    for example in &verify.discrepancies {
        let offset_ms = sent_at_ms(example, &scenario);
        assert!(
            (kill_ms - 1000..back_ms).contains(&offset_ms),
            "an event sent {offset_ms} ms into the run was lost: {example:?}"
        );
    }
    assert_eq!(number(&restart, "events_lost") as u64, verify.lost);
}
