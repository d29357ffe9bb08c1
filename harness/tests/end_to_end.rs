//! The main job on real services: the smoke scenario through Tansu, the reference consumer and Cassandra, nothing lost.

use std::path::PathBuf;
use std::process::Command;

use roadtest::Scenario;
use roadtest::report::Report;
use roadtest::run::RunOptions;

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("roadtest-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Fails (never skips) when the services are not installed.
fn require_services() {
    let home = roadtest::targets::local::roadtest_home();
    assert!(
        home.join("bin/tansu").exists() && home.join("bin/cassandra-node").exists(),
        "the local services are not installed under {}; run `ci/services install` (or `ci/test`)",
        home.display()
    );
}

/// One full local target at a time: each brings its own Cassandra, and two on 2 cores starve
/// each other (the tests of this file run on parallel threads).
static ONE_TARGET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_scenario_arrives_complete_and_exact() {
    let _one = ONE_TARGET.lock().await;
    require_services();
    let path = scenario_path("smoke.toml");
    let scenario = Scenario::load(&path)
        .expect("smoke.toml loads")
        .with_seed(7);
    let mut options = RunOptions::new(&scenario, &path).expect("run options");
    options.local.roadtest_binary = PathBuf::from(env!("CARGO_BIN_EXE_roadtest"));
    // These suites are about the local services (Tansu's memory storage, Cassandra 2.1).
    options.target = Some(roadtest::targets::TargetKind::Local);
    options.out_dir = out_dir("smoke");
    let report = scenario
        .run(options.clone())
        .await
        .unwrap_or_else(|error| panic!("the smoke run could not be carried out: {error}"));
    report.assert_no_loss();
    report.assert_passed();
    let verify = &report.verify;
    assert!(
        verify.expected > 500,
        "only {} events expected",
        verify.expected
    );
    assert_eq!(verify.found, verify.expected);
    assert_eq!(report.producer.sent, verify.expected);
    assert_eq!(report.seed, 7);
    assert_eq!(report.latency.e2e_ms.count, verify.expected);
    assert!(report.latency.e2e_ms.p50_ms > 0.0);
    for process in ["roadtest", "broker", "cassandra", "consumer", "cql-bridge"] {
        assert!(
            report
                .memory
                .peak_rss_mb
                .get(process)
                .is_some_and(|mb| *mb > 1.0),
            "no RSS sampled for {process}: {:?}",
            report.memory.peak_rss_mb
        );
    }
    // The report on disk is the one returned, and carries the keys CI reads.
    let on_disk = Report::read(&options.out_dir).expect("report.json readable");
    assert_eq!(on_disk, report);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(options.out_dir.join("report.json")).expect("read"))
            .expect("report.json is JSON");
    for pointer in [
        "/seed",
        "/verify/expected",
        "/verify/lost",
        "/latency/e2e_ms/p99",
        "/throughput/written_per_s",
        "/memory/peak_rss_mb/cassandra",
        "/expectations/0/passed",
        "/passed",
    ] {
        assert!(
            json.pointer(pointer).is_some(),
            "report.json lacks {pointer}"
        );
    }
    let _ = std::fs::remove_dir_all(&options.out_dir);
}

#[test]
fn a_failed_expectation_exits_1_with_the_report_written() {
    let _one = ONE_TARGET.blocking_lock();
    require_services();
    let out = out_dir("failing");
    let text = std::fs::read_to_string(scenario_path("smoke.toml")).expect("smoke.toml");
    let scenario = out.with_extension("toml");
    std::fs::write(
        &scenario,
        text.replace(
            "latency_e2e_p99_ms_max = 5000",
            "latency_e2e_p99_ms_max = 5000\nthroughput_written_per_s_min = 1000000",
        ),
    )
    .expect("write scenario");
    let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .arg("run")
        .arg(&scenario)
        .args(["--duration-s", "5", "--quiet", "--out"])
        .arg(&out)
        .output()
        .expect("roadtest runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("FAIL throughput_written_per_s_min"),
        "{stdout}"
    );
    let report = Report::read(&out).expect("report.json written for a failed run");
    assert!(!report.passed);
    assert_eq!(
        report.verify.lost, 0,
        "a failed throughput bar must not mean lost data"
    );
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&scenario);
}
