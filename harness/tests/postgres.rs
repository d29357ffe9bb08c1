//! The PostgreSQL sink on real services: the reference consumer writes a PostgreSQL 15 the local
//! target starts, roadtest verifies every row and takes each row's write time from the commit
//! timestamp of its transaction; a kill -9 loses acknowledged rows exactly when
//! `synchronous_commit` is off. And the simulation follows the same setting.

use std::path::PathBuf;

use roadtest::Scenario;
use roadtest::report::Report;
use roadtest::run::RunOptions;
use roadtest::sim::{SimLatencies, simulate};
use roadtest::targets::TargetKind;

fn scenario(name: &str) -> (Scenario, PathBuf) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    (scenario, path)
}

/// One local target at a time: two on 2 cores starve each other.
static ONE_TARGET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs a scenario on the local target; a missing PostgreSQL or broker fails the run (never a
/// skip), with the message saying how to install it.
async fn run(scenario: &Scenario, path: &PathBuf, label: &str) -> Report {
    let _one = ONE_TARGET.lock().await;
    let mut options = RunOptions::new(scenario, path).expect("run options");
    options.local.roadtest_binary = PathBuf::from(env!("CARGO_BIN_EXE_roadtest"));
    options.target = Some(TargetKind::Local);
    options.out_dir =
        std::env::temp_dir().join(format!("roadtest-postgres-{}-{label}", std::process::id()));
    options.progress = false;
    let report = scenario
        .run(options.clone())
        .await
        .unwrap_or_else(|error| panic!("{label}: the run could not be carried out: {error}"));
    let _ = std::fs::remove_dir_all(&options.out_dir);
    report
}

/// Rows the reference consumer reported written (acknowledged by the database), over all its
/// processes.
fn acknowledged(report: &Report) -> u64 {
    let consumer = serde_json::to_value(&report.consumer).expect("the consumer section as JSON");
    consumer["processes"]
        .as_array()
        .map(|processes| {
            processes
                .iter()
                .filter_map(|process| process["stats"]["written"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

fn fault(report: &Report) -> serde_json::Value {
    let record = report.faults.first().expect("a fault in the report");
    serde_json::to_value(record).expect("a fault record as JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_postgres_with_synchronous_commit_loses_nothing_and_every_row_has_its_commit_time()
{
    let (scenario, path) = scenario("postgres-crash-ci");
    let report = run(&scenario, &path, "sync-on").await;
    let verify = &report.verify;
    assert!(report.passed, "{:?}", report.errors);
    assert_eq!((verify.lost, verify.corrupt, verify.unexpected), (0, 0, 0));
    assert_eq!(verify.found, verify.expected);
    let crash = fault(&report);
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
    // postgres-crash, shortened for CI: 1,000 events/s, so commits are in flight at the kill.
    let (mut scenario, path) = scenario("postgres-crash");
    scenario.duration_s = 20;
    scenario.faults[0].at_s = Some(10.0);
    let report = run(&scenario, &path, "sync-off").await;
    let verify = &report.verify;
    assert_eq!(
        (verify.corrupt, verify.unexpected),
        (0, 0),
        "{:?}",
        report.errors
    );
    assert!(
        verify.lost > 0,
        "synchronous_commit off must lose rows to a kill -9"
    );
    assert_eq!(verify.found + verify.lost, verify.expected);
    // PostgreSQL acknowledged every event (the consumer wrote them all and committed their
    // offsets), so each lost row is an acknowledged one: none was waiting to be written.
    assert!(
        acknowledged(&report) >= verify.expected,
        "acknowledged {} of {}",
        acknowledged(&report),
        verify.expected
    );
    let crash = fault(&report);
    assert_eq!(crash["events_lost"].as_u64(), Some(verify.lost), "{crash}");
    let versions = &report.target.service_versions;
    assert!(
        versions["postgres"].contains("synchronous_commit off"),
        "{versions:?}"
    );
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
