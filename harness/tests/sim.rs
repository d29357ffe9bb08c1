//! The sim target: same seed, same report; explore independent of threads; it catches unsafe commits and finds no loss with the safe one; `roadtest knee` finds a simulated database's capacity.

use std::path::{Path, PathBuf};
use std::process::Command;

use roadtest::Scenario;
use roadtest::scenario::CommitPolicy;
use roadtest::sim::explore::{explore, explore_text, shrink};
use roadtest::sim::{SimLatencies, simulate, without_wall_clock};

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

fn load(name: &str) -> (Scenario, PathBuf) {
    let path = scenario_path(name);
    let scenario = Scenario::load(&path).expect("the scenario loads");
    (scenario, path)
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("roadtest-sim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `unsafe-commit-ci` with commits before the write (at-most-once, so it loses events), written
/// as `unsafe.toml` in a fresh folder named for `name`; returns (folder, file).
fn at_most_once_variant(name: &str) -> (PathBuf, PathBuf) {
    let dir = out_dir(name);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("unsafe.toml");
    let text = std::fs::read_to_string(scenario_path("unsafe-commit-ci.toml"))
        .expect("reads the scenario")
        .replace("after-write", "before-write");
    std::fs::write(&file, text).expect("writes the scenario");
    (dir, file)
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let (scenario, path) = load("crash-consumer.toml");
    let first = simulate(&scenario, &path, SimLatencies::default()).expect("simulates");
    let second = simulate(&scenario, &path, SimLatencies::default()).expect("simulates");
    assert_eq!(without_wall_clock(&first), without_wall_clock(&second));
    assert_eq!(first.target.name, "sim");
    assert!(first.verify.expected > 10_000);
    assert_eq!(first.verify.found, first.verify.expected);
    // The one expected count is what the fleet sent.
    let plan = roadtest::fleet::FleetPlan::from_scenario(&scenario);
    let expected = plan.expected_events_by(scenario.duration_ms());
    assert_eq!(
        (first.producer.sent, first.verify.expected),
        (expected, expected)
    );
    assert!(first.latency.e2e_ms.count > 0);
    let other = simulate(
        &scenario.clone().with_seed(7),
        &path,
        SimLatencies::default(),
    )
    .expect("simulates");
    assert_ne!(without_wall_clock(&first), without_wall_clock(&other));
}

#[test]
fn run_target_sim_writes_identical_reports_and_exits_like_a_real_run() {
    let path = scenario_path("crash-consumer-ci.toml");
    let mut bodies = Vec::new();
    for attempt in ["a", "b"] {
        let dir = out_dir(attempt);
        let status = Command::new(env!("CARGO_BIN_EXE_roadtest"))
            .args(["run", path.to_str().expect("utf-8 path"), "--target", "sim"])
            .args(["--seed", "5", "--out", dir.to_str().expect("utf-8 path")])
            .output()
            .expect("roadtest runs");
        assert_eq!(status.status.code(), Some(0), "{status:?}");
        let report = roadtest::report::Report::read(&dir).expect("report.json is written");
        assert_eq!(report.target.name, "sim");
        assert_eq!(report.seed, 5);
        assert!(report.replay_command.contains("--target sim"));
        bodies.push(without_wall_clock(&report));
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert_eq!(bodies[0], bodies[1]);

    // A failed expectation exits 1.
    let (dir, file) = at_most_once_variant("unsafe");
    let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .args(["run", file.to_str().expect("utf-8 path"), "--target", "sim"])
        .args(["--out", dir.join("run").to_str().expect("utf-8 path")])
        .output()
        .expect("roadtest runs");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explore_prints_the_same_with_one_or_two_threads() {
    let path = scenario_path("crash-consumer-ci.toml");
    let mut outputs = Vec::new();
    for jobs in ["1", "2"] {
        let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
            .args(["explore", path.to_str().expect("utf-8 path")])
            .args(["--seeds", "0..12", "--jobs", jobs])
            .output()
            .expect("roadtest runs");
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        outputs.push(String::from_utf8_lossy(&output.stdout).to_string());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert!(
        outputs[0].contains("12 runs, 12 passed, 0 failed"),
        "{}",
        outputs[0]
    );

    // Failing seeds too: every one listed with its replay command, in seed order, exit 1.
    let (dir, file) = at_most_once_variant("explore");
    let mut outputs = Vec::new();
    for jobs in ["1", "2"] {
        let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
            .args(["explore", file.to_str().expect("utf-8 path")])
            .args(["--seeds", "3..=8", "--jobs", jobs])
            .output()
            .expect("roadtest runs");
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        outputs.push(String::from_utf8_lossy(&output.stdout).to_string());
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(outputs[0], outputs[1]);
    assert!(outputs[0].contains("FAIL seed 3:"), "{}", outputs[0]);
    assert!(outputs[0].contains("--seed 8 --vehicles 20 --duration-s 25 --target sim"));
    assert!(
        outputs[0].contains("6 runs, 0 passed, 6 failed"),
        "{}",
        outputs[0]
    );
}

#[test]
fn before_write_commits_lose_data_within_100_seeds() {
    let (mut scenario, path) = load("crash-consumer.toml");
    scenario.pipeline.consumer.commit = CommitPolicy::BeforeWrite;
    let mut lossy = None;
    for seed in 0..100 {
        let report = simulate(
            &scenario.clone().with_seed(seed),
            &path,
            SimLatencies::default(),
        )
        .expect("simulates");
        if report.verify.lost > 0 {
            assert!(!report.passed);
            lossy = Some(seed);
            break;
        }
    }
    let seed = lossy.expect("before-write loses data on some seed of 0..100");
    // The failing case shrinks and still fails.
    let (small, report, _) = shrink(
        &scenario.clone().with_seed(seed),
        &path,
        SimLatencies::default(),
    )
    .expect("shrinks")
    .expect("the seed fails");
    assert!(report.verify.lost > 0);
    assert!(strictly_smaller(&small, &scenario.clone().with_seed(seed)));
}

/// Whether a shrunk case is smaller than the original in at least one dimension (fewer vehicles,
/// fewer seconds or fewer resolved faults) and larger in none: a shrink that removes nothing fails.
fn strictly_smaller(small: &Scenario, original: &Scenario) -> bool {
    let size = |s: &Scenario| {
        (
            s.fleet.vehicle_count,
            s.duration_s,
            roadtest::faults::resolve(s).len(),
        )
    };
    let (small, original) = (size(small), size(original));
    small.0 <= original.0 && small.1 <= original.1 && small.2 <= original.2 && small != original
}

#[test]
fn explore_shrink_writes_a_case_whose_printed_replay_fails_the_same_way() {
    let (dir, file) = at_most_once_variant("shrink");
    let shrunk_dir = dir.join("shrunk");
    let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .args(["explore", file.to_str().expect("utf-8 path")])
        .args(["--seeds", "3..4", "--shrink", "--out"])
        .arg(&shrunk_dir)
        .output()
        .expect("roadtest runs");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("smallest failing case of seed 3"))
        .unwrap_or_else(|| panic!("no shrunk case in:\n{stdout}"));
    let lost: u64 = summary
        .split("lost ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no lost count in {summary:?}"));
    assert!(lost > 0, "{summary}");
    let shrunk_file = shrunk_dir.join("shrunk.toml");
    let small = Scenario::load(&shrunk_file).expect("the shrunk case loads");
    let original = Scenario::load(&file).expect("loads").with_seed(3);
    assert!(strictly_smaller(&small, &original), "{stdout}");
    assert!(stdout.contains(&small.hash()), "{stdout}");

    // The printed replay command, as printed (plus an output folder), fails the same way.
    let shrunk_text = &stdout[stdout.find(summary).unwrap_or(0)..];
    let replay = shrunk_text
        .lines()
        .find_map(|line| line.trim().strip_prefix("replay: roadtest run"))
        .unwrap_or_else(|| panic!("no replay command in:\n{stdout}"));
    let replay_args: Vec<&str> = replay.split_whitespace().collect();
    assert_eq!(
        replay_args,
        [
            shrunk_file.to_str().expect("utf-8 path"),
            "--seed",
            "3",
            "--target",
            "sim"
        ]
    );
    let run_dir = dir.join("replay");
    let replayed = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .arg("run")
        .args(&replay_args)
        .args(["--quiet", "--out"])
        .arg(&run_dir)
        .output()
        .expect("roadtest runs");
    assert_eq!(replayed.status.code(), Some(1), "{replayed:?}");
    let report = roadtest::report::Report::read(&run_dir).expect("report.json is written");
    assert_eq!(report.verify.lost, lost);
    assert_eq!(report.seed, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn after_write_commits_lose_nothing_over_many_seeds() {
    // 1,000 seeds of crash-consumer.toml were run by hand (see docs/benchmarks.md); cargo test runs fewer.
    let (scenario, path) = load("crash-consumer-ci.toml");
    assert_eq!(scenario.pipeline.consumer.commit, CommitPolicy::AfterWrite);
    let results = explore(&scenario, &path, 0..200, 2, SimLatencies::default()).expect("explores");
    assert_eq!(results.len(), 200);
    assert!(
        results.iter().all(|r| r.passed),
        "{}",
        explore_text(&results, &(0..200))
    );
    let (scenario, path) = load("crash-consumer.toml");
    let results = explore(&scenario, &path, 0..20, 2, SimLatencies::default()).expect("explores");
    assert!(
        results.iter().all(|r| r.passed),
        "{}",
        explore_text(&results, &(0..20))
    );
}

#[test]
fn a_database_crash_with_periodic_sync_loses_acknowledged_rows_and_batch_sync_does_not() {
    let (mut scenario, path) = load("cassandra-crash-ci.toml");
    let batch = simulate(&scenario, &path, SimLatencies::default()).expect("simulates");
    assert!(batch.passed, "{:?}", batch.verify);
    scenario.pipeline.cassandra_commitlog_sync = roadtest::scenario::CommitlogSync::Periodic;
    let periodic = simulate(&scenario, &path, SimLatencies::default()).expect("simulates");
    assert!(periodic.verify.lost > 0);
    assert!(!periodic.passed);
}

#[test]
fn tampered_simulated_rows_are_counted_exactly_and_named() {
    let (scenario, path) = load("tamper-ci.toml");
    let report = simulate(&scenario, &path, SimLatencies::default()).expect("simulates");
    assert_eq!(report.tampered.len(), 12, "{:?}", report.tampered);
    assert_eq!(
        (
            report.verify.corrupt,
            report.verify.lost,
            report.verify.unexpected
        ),
        (5, 3, 4)
    );
    report.assert_tampering_counted();
    report.assert_passed();
    let stranger = roadtest::wire::vehicle_id(scenario.fleet.vehicle_count);
    assert!(report.tampered.iter().any(|t| t.vehicle_id == stranger));
    // Same seed, same tampering; another seed tampers other rows.
    let again = simulate(&scenario, &path, SimLatencies::default()).expect("simulates");
    assert_eq!(report.tampered, again.tampered);
    let other = simulate(
        &scenario.clone().with_seed(7),
        &path,
        SimLatencies::default(),
    )
    .expect("simulates");
    assert_ne!(report.tampered, other.tampered);
    other.assert_tampering_counted();
}

/// `roadtest knee` on the simulation whose database stores 1,200 rows/s (a latencies file with
/// `database_rows_per_s`): it prints the curve, ends with the knee, exits 0 and writes knee.json
/// and knee.svg; with --min-rate above the capacity it says the knee is below and exits 1.
#[test]
fn knee_on_the_simulation_finds_the_databases_capacity_and_says_when_it_is_below_the_range() {
    let out = out_dir("knee");
    let latencies = out.with_extension("latencies.json");
    std::fs::create_dir_all(out.parent().expect("parent")).expect("temp dir");
    let capacity = roadtest::sim::SimLatencies {
        database_rows_per_s: Some(1_200.0),
        ..roadtest::sim::SimLatencies::default()
    };
    std::fs::write(&latencies, serde_json::to_string(&capacity).expect("json")).expect("writes");
    let knee = |min_rate: &str, out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_roadtest"))
            .args([
                "knee",
                scenario_path("smoke.toml").to_str().expect("utf-8"),
                "--target",
                "sim",
            ])
            .args([
                "--p99-ms",
                "250",
                "--settle-s",
                "5",
                "--hold-s",
                "10",
                "--quiet",
            ])
            .args([
                "--min-rate",
                min_rate,
                "--out",
                out.to_str().expect("utf-8"),
            ])
            .env("ROADTEST_SIM_LATENCIES", &latencies)
            .output()
            .expect("roadtest runs")
    };
    let output = knee("100", &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("sustained") && stdout.contains("not sustained"),
        "{stdout}"
    );
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("knee.json")).expect("knee.json"))
            .expect("json");
    let found = result["knee_events_per_s"].as_f64().expect("a knee");
    assert!((found - 1_200.0).abs() <= 120.0, "{found}: {stdout}");
    assert!(
        stdout.contains(&format!("knee: {found:.0} events/s sustained")),
        "{stdout}"
    );
    let steps = result["steps"].as_array().expect("steps");
    for key in ["rate_events_per_s", "p99_ms", "written_per_s", "sustained"] {
        assert!(
            steps.iter().all(|step| step.get(key).is_some()),
            "{key} in every step"
        );
    }
    assert!(out.join("knee.svg").exists());
    let below = out.with_extension("below");
    let output = knee("5000", &below);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("knee: below 5000 events/s"), "{stdout}");
    for dir in [&out, &below] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_file(&latencies);
}
