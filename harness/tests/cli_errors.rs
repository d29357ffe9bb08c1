//! Bad input on the command line: every scenario error exits 2 with a message naming the file and key, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn roadtest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .args(args)
        .output()
        .expect("roadtest runs")
}

fn smoke() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml")
}

/// A scenario file made from smoke.toml with one text replacement, in a fresh temp dir.
fn variant(name: &str, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(smoke()).expect("smoke.toml readable");
    assert!(
        text.contains(from),
        "smoke.toml no longer contains {from:?}"
    );
    let dir = std::env::temp_dir().join(format!("roadtest-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write variant");
    path
}

/// Runs `validate` and `events` on a bad file; both must exit 2 and name every `needles` item.
fn assert_rejected(path: &Path, needles: &[&str]) {
    for command in ["validate", "events"] {
        let output = roadtest(&[command, path.to_str().expect("utf-8 path")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{command} wrote to stdout on error"
        );
        assert!(!stderr.contains("panicked"), "{command} panicked: {stderr}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{command}: {stderr:?} lacks {needle:?}"
            );
        }
    }
}

#[test]
fn unknown_key() {
    let path = variant(
        "unknown",
        "vehicle_count = 20",
        "vehicle_count = 20\ncars = 3",
    );
    assert_rejected(
        &path,
        &[
            "unknown.toml",
            "fleet.cars",
            "unknown field",
            "vehicle_count",
        ],
    );
}

#[test]
fn wrong_type() {
    let path = variant("type", "partitions = 3", "partitions = \"three\"");
    assert_rejected(&path, &["type.toml", "pipeline.partitions", "invalid type"]);
}

#[test]
fn out_of_range() {
    let path = variant("range", "vehicle_count = 20", "vehicle_count = 0");
    assert_rejected(
        &path,
        &["range.toml", "fleet.vehicle_count", "1 to 1000000"],
    );
    let path = variant("duration", "duration_s = 30", "duration_s = 100000");
    assert_rejected(&path, &["duration.toml", "duration_s", "1 to 86400"]);
}

#[test]
fn bad_tamper_faults() {
    let tamper = |service: &str, rest: &str| {
        format!("[[faults]]\naction = \"tamper\"\nservice = \"{service}\"\n{rest}\n\n[fleet]")
    };
    let path = variant(
        "tamper-service",
        "[fleet]",
        &tamper("broker", "at_s = 1\nkind = \"change\"\nrows = 3"),
    );
    assert_rejected(
        &path,
        &[
            "tamper-service.toml",
            "faults[0].service",
            "service = \"cassandra\"",
        ],
    );
    let path = variant(
        "tamper-rows",
        "[fleet]",
        &tamper("cassandra", "at_s = 1\nkind = \"delete\"\nrows = 5000"),
    );
    assert_rejected(&path, &["tamper-rows.toml", "faults[0].rows", "1 to 1000"]);
    let path = variant(
        "tamper-random",
        "[fleet]",
        &tamper(
            "cassandra",
            "random = { count = 1, between_s = [1.0, 2.0] }\nkind = \"insert\"\nrows = 3",
        ),
    );
    assert_rejected(
        &path,
        &[
            "tamper-random.toml",
            "faults[0].random",
            "not supported for tamper",
        ],
    );
    let path = variant(
        "tamper-fixed-names",
        "[fleet]",
        &tamper("cassandra", "at_s = 1\nkind = \"change\"\nrows = 3"),
    );
    let text = std::fs::read_to_string(&path).expect("variant");
    let fixed = text.replacen("[pipeline]\n", "[pipeline]\nfresh_names = false\n", 1);
    assert_ne!(fixed, text, "smoke.toml has a [pipeline] table");
    std::fs::write(&path, fixed).expect("write");
    assert_rejected(
        &path,
        &[
            "tamper-fixed-names.toml",
            "faults[0].action",
            "tamper needs fresh names",
        ],
    );
}

#[test]
fn invalid_toml() {
    let path = variant("syntax", "[fleet]", "[fleet");
    assert_rejected(&path, &["syntax.toml", "line"]);
}

#[test]
fn missing_or_unreadable_file() {
    assert_rejected(
        Path::new("/nonexistent/roadtest/missing.toml"),
        &["missing.toml", "cannot read"],
    );
    assert_rejected(&std::env::temp_dir(), &["cannot read"]);
}

#[test]
fn overrides_out_of_range_and_malformed_flags() {
    let smoke = smoke();
    let smoke = smoke.to_str().expect("utf-8 path");
    let output = roadtest(&["events", smoke, "--vehicles", "0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("fleet.vehicle_count"));
    let output = roadtest(&["events", smoke, "--seed", "minus-one"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--seed"));
    let output = roadtest(&["no-such-command"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn help_and_a_valid_scenario_exit_0() {
    let output = roadtest(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Exit codes"));
    let smoke = smoke();
    let output = roadtest(&["validate", smoke.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("hash"));
}

#[test]
fn the_same_seed_gives_the_same_bytes_twice() {
    let smoke = smoke();
    let smoke = smoke.to_str().expect("utf-8 path");
    let first = roadtest(&["events", smoke, "--seed", "42"]);
    let second = roadtest(&["events", smoke, "--seed", "42"]);
    let other = roadtest(&["events", smoke, "--seed", "43"]);
    assert!(first.status.success());
    assert!(!first.stdout.is_empty());
    assert_eq!(first.stdout, second.stdout);
    assert_ne!(first.stdout, other.stdout);
}

#[test]
fn the_containers_target_without_docker_exits_2_naming_the_socket() {
    // DOCKER_HOST points at a socket that cannot exist, so this holds with or without Docker.
    let smoke = smoke();
    let out = std::env::temp_dir().join(format!("roadtest-cli-{}-containers", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .env("DOCKER_HOST", "unix:///nonexistent/roadtest/docker.sock")
        .arg("run")
        .arg(&smoke)
        .args(["--target", "containers", "--out"])
        .arg(&out)
        .output()
        .expect("roadtest runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/roadtest/docker.sock"),
        "{stderr}"
    );
    assert!(stderr.contains("--target local"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn with_no_docker_and_no_local_services_the_default_target_is_sim() {
    let smoke = smoke();
    let base = std::env::temp_dir().join(format!("roadtest-cli-{}-fallback", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .env("DOCKER_HOST", "unix:///nonexistent/roadtest/docker.sock")
        .env("ROADTEST_HOME", base.join("empty-home"))
        .arg("run")
        .arg(&smoke)
        .args(["--quiet", "--out"])
        .arg(base.join("out"))
        .output()
        .expect("roadtest runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("target sim"),
        "the choice must be said on stderr: {stderr}"
    );
    let report = std::fs::read_to_string(base.join("out/report.json")).expect("report.json");
    assert!(
        report.contains("\"sim\""),
        "the report names the sim target"
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn bad_external_target_flags_exit_2_before_anything_starts() {
    let smoke = smoke();
    let smoke = smoke.to_str().expect("utf-8 path");
    let crash =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/cassandra-crash-ci.toml");
    let crash = crash.to_str().expect("utf-8 path");
    // Port 1 on localhost: the flags are refused before anything is contacted.
    let connect = [
        "--kafka-bootstrap",
        "127.0.0.1:1",
        "--cql-contact",
        "127.0.0.1:1",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", smoke, "--target", "external"],
            "--kafka-bootstrap",
        ),
        (
            vec![
                "run",
                smoke,
                "--target",
                "external",
                "--kafka-bootstrap",
                "b:9092",
            ],
            "--cql-contact",
        ),
        (
            [&["run", smoke, "--target", "local"][..], &connect].concat(),
            "apply to --target external only",
        ),
        (
            [&["run", smoke][..], &connect, &["--kafka-username", "bob"]].concat(),
            "--kafka-security-protocol sasl-plaintext or sasl-ssl",
        ),
        (
            [
                &["run", smoke][..],
                &connect,
                &[
                    "--kafka-security-protocol",
                    "sasl-ssl",
                    "--kafka-sasl-mechanism",
                    "scram-sha512",
                    "--kafka-username",
                    "bob",
                ],
            ]
            .concat(),
            "ROADTEST_KAFKA_PASSWORD",
        ),
        (
            [
                &["run", smoke][..],
                &connect,
                &["--cql-ca-file", "/nonexistent/ca.pem"],
            ]
            .concat(),
            "/nonexistent/ca.pem",
        ),
        (
            [&["run", crash][..], &connect].concat(),
            "cannot kill the cassandra",
        ),
    ];
    for (args, needle) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
            .args(&args)
            .env_remove("ROADTEST_KAFKA_PASSWORD")
            .output()
            .expect("roadtest runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// A real local report (1,000 vehicles for 60 s), the fixture of the report module's tests.
fn steady_report() -> serde_json::Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/report/testdata/steady-1000-vehicles.json");
    serde_json::from_str(&std::fs::read_to_string(file).expect("fixture readable"))
        .expect("fixture is JSON")
}

/// A fresh temp dir for one gate test.
fn gate_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("roadtest-cli-{}-gate-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `report` as `dir/NAME/report.json` and returns the file.
fn write_report(dir: &Path, name: &str, report: &serde_json::Value) -> PathBuf {
    let run = dir.join(name);
    std::fs::create_dir_all(&run).expect("run dir");
    let file = run.join("report.json");
    std::fs::write(&file, report.to_string()).expect("write report");
    file
}

/// Runs `roadtest compare NEW BASELINE --gate EXTRA...`; returns (exit code, stdout, stderr).
fn gate(new: &Path, baseline: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .arg("compare")
        .arg(new)
        .arg(baseline)
        .arg("--gate")
        .args(extra)
        .output()
        .expect("roadtest runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn compare_refuses_runs_from_different_kinds_of_target_unless_allowed() {
    let dir = gate_dir("targets");
    let baseline = write_report(&dir, "baseline", &steady_report());
    let mut sim = steady_report();
    sim["target"]["name"] = "sim".into();
    let new = write_report(&dir, "new", &sim);
    let (code, stdout, stderr) = gate(&new, &baseline, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    for needle in [
        "target `sim`",
        "target `local`",
        "new/report.json",
        "baseline/report.json",
        "--allow-target-mismatch",
    ] {
        assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    }
    let junit = dir.join("junit.xml");
    let junit_arg = junit.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = gate(
        &new,
        &baseline,
        &["--allow-target-mismatch", "--junit", junit_arg],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("note: TARGET MISMATCH allowed (--allow-target-mismatch)"),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains("<property name=\"target_mismatch_allowed\""),
        "{xml}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_metric_missing_in_the_new_run_or_a_changed_scenario_fails_the_gate() {
    let dir = gate_dir("failures");
    let baseline = write_report(&dir, "baseline", &steady_report());
    let (code, stdout, _) = gate(&baseline, &baseline, &[]);
    assert_eq!(code, Some(0), "{stdout}");
    let mut no_broker = steady_report();
    no_broker["memory"]["peak_rss_mb"]
        .as_object_mut()
        .expect("peak_rss_mb is an object")
        .remove("broker");
    let new = write_report(&dir, "no-broker", &no_broker);
    let (code, stdout, stderr) = gate(&new, &baseline, &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("MISSING IN NEW RUN"), "{stdout}");
    assert!(
        stdout.contains("gate: FAILED: 1 failed (peak RSS broker)"),
        "{stdout}"
    );
    let mut changed = steady_report();
    changed["scenario"]["hash"] = "0123456789abcdef".into();
    let new = write_report(&dir, "changed", &changed);
    let (code, stdout, stderr) = gate(&new, &baseline, &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("SCENARIO CHANGED"), "{stdout}");
    assert!(stdout.contains("roadtest baseline DIR --out"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tolerances_come_from_the_baseline_or_a_gate_file_never_the_new_run() {
    let dir = gate_dir("tolerances");
    let baseline = write_report(&dir, "baseline", &steady_report());
    // The new run doubles its latency and loosens its own gate to allow it: still a regression.
    let mut slower = steady_report();
    for key in ["p50", "p99"] {
        let doubled = slower["latency"]["e2e_ms"][key].as_f64().expect("number") * 2.0;
        slower["latency"]["e2e_ms"][key] = doubled.into();
    }
    slower["scenario"]["resolved"]["gate"] = serde_json::json!({"latency_ratio_max": 5.0});
    let new = write_report(&dir, "slower", &slower);
    let (code, stdout, _) = gate(&new, &baseline, &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("tolerances from defaults"), "{stdout}");
    // A gate file may loosen it, and the output says where the tolerances came from.
    let loose = dir.join("loose.toml");
    std::fs::write(&loose, "latency_ratio_max = 5.0\n").expect("write gate file");
    let loose_arg = loose.to_str().expect("utf-8 path");
    let (code, stdout, _) = gate(&new, &baseline, &["--gate-file", loose_arg]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("tolerances from gate file"), "{stdout}");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "latency_ratio_max = 5.0\nlatency_drop = 2\n").expect("write gate file");
    let bad_arg = bad.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = gate(&new, &baseline, &["--gate-file", bad_arg]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("bad.toml: latency_drop: unknown field"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn baseline_records_a_passed_run_and_refuses_a_failed_one() {
    let dir = gate_dir("baseline");
    let run = write_report(&dir, "run", &steady_report());
    let out = dir.join("steady.json");
    let output = roadtest(&[
        "baseline",
        run.parent().and_then(Path::to_str).expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("baseline written"))
            .expect("baseline is JSON");
    assert_eq!(written["baseline"]["target"], "local");
    assert_eq!(written["baseline"]["scenario_hash"], "145a40ea78ae689b");
    assert_eq!(written["baseline"]["machine"]["cores"], 2);
    assert!(written["baseline"]["machine"].get("hostname").is_some());
    let (code, stdout, _) = gate(&run, &out, &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("note: baseline recorded "), "{stdout}");
    let mut failed = steady_report();
    failed["passed"] = false.into();
    failed["expectations"][0]["passed"] = false.into();
    let failed_run = write_report(&dir, "failed", &failed);
    let refused = dir.join("refused.json");
    let output = roadtest(&[
        "baseline",
        failed_run.to_str().expect("utf-8 path"),
        "--out",
        refused.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("failed/report.json: the run failed (lost_max"),
        "{stderr}"
    );
    assert!(stderr.contains("a failed run is no baseline"), "{stderr}");
    assert!(!refused.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sim_run_is_not_gated_against_the_local_smoke_baseline() {
    let dir = gate_dir("sim-smoke");
    let smoke = smoke();
    let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .arg("run")
        .arg(&smoke)
        .args(["--target", "sim", "--quiet", "--out"])
        .arg(dir.join("run"))
        .output()
        .expect("roadtest runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let baseline =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../reports/baselines/smoke.json");
    let (code, _, stderr) = gate(&dir.join("run"), &baseline, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("target `sim`") && stderr.contains("target `local`"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn short_help_is_one_line_per_flag_and_long_help_has_examples_and_environment() {
    let short = roadtest(&["run", "-h"]);
    assert!(short.status.success());
    let short = String::from_utf8_lossy(&short.stdout);
    let long_lines: Vec<&str> = short.lines().filter(|line| line.len() > 200).collect();
    assert!(
        long_lines.is_empty(),
        "-h lines over 200 characters: {long_lines:?}"
    );
    assert!(!short.contains("Examples:"), "{short}");
    let long = roadtest(&["run", "--help"]);
    assert!(long.status.success());
    let long = String::from_utf8_lossy(&long.stdout);
    for wanted in [
        "Examples:",
        "[env: ROADTEST_HOME]",
        "[env: ROADTEST_CQL_PASSWORD]",
    ] {
        assert!(long.contains(wanted), "--help lacks {wanted}:\n{long}");
    }
    // Defaults are written one way, clap's.
    assert!(!long.contains("(default"), "{long}");
}

/// `roadtest services` runs the script built into the binary, from any folder, with nothing but
/// the binary: under an empty ROADTEST_HOME `status` lists the three services down (exit 3) and
/// writes the script and launcher there; an unknown action exits 2.
#[test]
fn services_run_from_the_binary_alone() {
    let home = std::env::temp_dir().join(format!("roadtest-cli-{}-services", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .args(["services", "status"])
        .env("ROADTEST_HOME", &home)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("roadtest runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    for service in ["tansu", "cassandra", "cql-bridge"] {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(service) && line.contains(" down ")),
            "{service} not listed as down: {stdout}"
        );
    }
    for file in ["services", "cassandra-node"] {
        assert!(home.join("lib/services").join(file).is_file(), "{file}");
    }
    let unknown = roadtest(&["services", "start"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("install, up, down, status"));
    let _ = std::fs::remove_dir_all(&home);
}

/// smoke.toml with a consumer of the user's own: `lines` go after its `commit` line.
fn own_consumer(name: &str, lines: &str) -> PathBuf {
    variant(
        name,
        "commit = \"after-write\"",
        &format!("commit = \"after-write\"\n{lines}"),
    )
}

#[test]
fn a_bad_own_consumer_is_refused_naming_the_key() {
    let path = own_consumer(
        "own-env",
        "command = [\"./c\"]\nenv = { ROADTEST_TOPIC = \"x\" }",
    );
    assert_rejected(&path, &["pipeline.consumer.env.ROADTEST_TOPIC", "contract"]);
    let path = own_consumer("own-empty", "command = [\"\"]");
    assert_rejected(&path, &["pipeline.consumer.command", "cannot be empty"]);
    let path = own_consumer("own-env-only", "env = { LOG_LEVEL = \"debug\" }");
    assert_rejected(&path, &["pipeline.consumer.env", "add `command`"]);
    let path = own_consumer("own-both", "command = [\"./c\"]\nimage = \"my/consumer:1\"");
    assert_rejected(&path, &["pipeline.consumer.image", "both set"]);
    let path = own_consumer("own-untagged", "image = \"my/consumer\"");
    assert_rejected(&path, &["pipeline.consumer.image", "no tag"]);
    let path = own_consumer("own-latest", "image = \"my/consumer:latest\"");
    assert_rejected(&path, &["pipeline.consumer.image", "pin a release tag"]);
    let path = own_consumer(
        "own-var",
        "command = [\"./c\"]\nenv = { \"LOG-LEVEL\" = \"x\" }",
    );
    assert_rejected(
        &path,
        &[
            "pipeline.consumer.env.LOG-LEVEL",
            "not a valid variable name",
        ],
    );
}

/// `roadtest run` of a scenario: (exit code, stderr); the output folder must not be created.
fn run_refused(path: &Path, target: &str) -> (Option<i32>, String) {
    let out = path.with_extension("out");
    let output = roadtest(&[
        "run",
        path.to_str().expect("utf-8 path"),
        "--target",
        target,
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(!out.exists(), "a refused run created {}", out.display());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.code(), stderr)
}

#[test]
fn an_own_consumer_that_cannot_run_exits_2_before_anything_starts() {
    let path = own_consumer(
        "own-missing",
        "command = [\"no-such-consumer-xyz\", \"--fast\"]",
    );
    let (code, stderr) = run_refused(&path, "local");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("own-missing.toml: pipeline.consumer.command"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`no-such-consumer-xyz` was not found in PATH"),
        "{stderr}"
    );
    let path = own_consumer("own-path", "command = [\"./bin/consumer\"]");
    let (code, stderr) = run_refused(&path, "local");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("bin/consumer does not exist"), "{stderr}");
    // The simulation runs only the reference consumer.
    let path = own_consumer("own-sim", "command = [\"sh\"]");
    let (code, stderr) = run_refused(&path, "sim");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("needs a real target"), "{stderr}");
    // An image runs on the containers target only.
    let path = own_consumer("own-image", "image = \"my/consumer:1.0\"");
    let (code, stderr) = run_refused(&path, "local");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("own-image.toml: pipeline.consumer.image: my/consumer:1.0")
            && stderr.contains("--target containers"),
        "{stderr}"
    );
    let (code, stderr) = run_refused(&path, "sim");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`command` or `image`"), "{stderr}");
}

/// smoke.toml with a consumer of the user's own and `record` as its `[pipeline.record]`.
fn own_record(name: &str, record: &str) -> PathBuf {
    own_consumer(
        name,
        &format!("command = [\"./consumer\"]\n\n[pipeline.record]\n{record}"),
    )
}

#[test]
fn a_bad_message_format_is_refused_naming_the_key() {
    let reference = variant(
        "record-ref",
        "[expectations]",
        "[pipeline.record]\nvehicle_id = \"vin\"\n\n[expectations]",
    );
    assert_rejected(
        &reference,
        &["pipeline.record", "needs a consumer of your own"],
    );
    for (name, record, needles) in [
        (
            "record-vehicle",
            "vehicle_id = \"\"",
            ["pipeline.record.vehicle_id", "cannot be left out"],
        ),
        (
            "record-twice",
            "seq = \"lat\"\nlatitude = \"lat\"",
            ["pipeline.record.latitude", "names two fields"],
        ),
        (
            "record-name",
            "speed = \"speed kmh\"",
            ["pipeline.record.speed", "not a usable field name"],
        ),
        (
            "record-key",
            "humidity = \"\"\nkey = \"humidity\"",
            ["pipeline.record.key", "not a field the message carries"],
        ),
        (
            "record-unknown",
            "colour = \"red\"",
            ["colour", "unknown field"],
        ),
        (
            "record-encoding",
            "timestamp_encoding = \"iso\"",
            ["timestamp_encoding", "epoch_ms"],
        ),
        (
            "record-empty",
            "seq = \"\"\nlatitude = \"\"\nlongitude = \"\"\nspeed = \"\"\ntemperature = \"\"\nhumidity = \"\"\nformat_version = false",
            ["pipeline.record", "at least one more field"],
        ),
    ] {
        assert_rejected(&own_record(name, record), &needles);
    }
}

#[test]
fn events_are_printed_in_the_pipelines_message_format() {
    let path = own_record(
        "record-events",
        "vehicle_id = \"vin\"\ntimestamp = \"at\"\ntimestamp_encoding = \"rfc3339\"\nhumidity = \"\"\nformat_version = false",
    );
    let output = roadtest(&["events", path.to_str().expect("utf-8 path"), "--limit", "1"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8(output.stdout).expect("utf-8");
    // The first event in time: some vehicle's first sample, in the first second.
    assert!(line.starts_with("{\"vin\":\"veh-0000"), "{line}");
    assert!(
        line.contains("\",\"seq\":0,\"at\":\"2026-01-01T00:00:00."),
        "{line}"
    );
    assert!(
        !line.contains("humidity") && !line.contains("format_version"),
        "{line}"
    );
}

/// smoke.toml with a consumer of the user's own and `table` as its `[pipeline.table]`.
fn own_table(name: &str, table: &str) -> PathBuf {
    own_consumer(
        name,
        &format!("command = [\"./consumer\"]\n\n[pipeline.table]\n{table}"),
    )
}

#[test]
fn a_bad_table_mapping_is_refused_naming_the_key() {
    let reference = variant(
        "table-ref",
        "[expectations]",
        "[pipeline.table]\nname = \"readings\"\n\n[expectations]",
    );
    assert_rejected(
        &reference,
        &["pipeline.table", "writes roadtest's table only"],
    );
    for (name, table, needles) in [
        (
            "table-name",
            "name = \"Readings\"",
            ["pipeline.table.name", "not a usable table name"],
        ),
        (
            "table-vehicle",
            "vehicle_id = \"\"",
            ["pipeline.table.vehicle_id", "needs a column"],
        ),
        (
            "table-twice",
            "seq = \"lat\"\nlatitude = \"lat\"",
            ["pipeline.table.latitude", "given to two fields"],
        ),
        (
            "table-column",
            "speed = \"speed-kmh\"",
            ["pipeline.table.speed", "not a usable column name"],
        ),
        (
            "table-unknown",
            "colour = \"red\"",
            ["colour", "unknown field"],
        ),
        ("table-create", "create = \"no\"", ["create", "bool"]),
    ] {
        assert_rejected(&own_table(name, table), &needles);
    }
}

#[test]
fn a_consumer_running_elsewhere_needs_fixed_names_and_gets_no_process_faults() {
    let fresh = own_consumer("elsewhere-fresh", "managed = false");
    assert_rejected(
        &fresh,
        &["pipeline.consumer.managed", "fresh_names = false"],
    );
    let with_command = own_consumer("elsewhere-command", "managed = false\ncommand = [\"./c\"]");
    assert_rejected(
        &with_command,
        &["pipeline.consumer.managed", "leave out command"],
    );
    let with_image = own_consumer("elsewhere-image", "managed = false\nimage = \"my/c:1\"");
    assert_rejected(
        &with_image,
        &["pipeline.consumer.managed", "leave out command, image"],
    );
    let fixed = "[pipeline]\ntopic = \"telemetry\"";
    let killed = variant(
        "elsewhere-kill",
        "commit = \"after-write\"",
        "commit = \"after-write\"\nmanaged = false\n\n[[faults]]\naction = \"kill\"\nservice = \"consumer\"\nat_s = 5",
    );
    let text = std::fs::read_to_string(&killed).expect("variant");
    std::fs::write(
        &killed,
        text.replacen(fixed, &format!("{fixed}\nfresh_names = false"), 1),
    )
    .expect("write");
    assert_rejected(
        &killed,
        &["faults[0].service", "cannot kill, stop or pause it"],
    );
}

#[test]
fn container_memory_settings_are_checked_naming_the_key() {
    let containers = |name: &str, keys: &str| {
        variant(
            name,
            "[fleet]",
            &format!("[pipeline.containers]\n{keys}\n\n[fleet]"),
        )
    };
    let small = containers("containers-small", "database_memory_mb = 100");
    assert_rejected(
        &small,
        &["pipeline.containers.database_memory_mb", "256 to 1048576"],
    );
    let heap = containers(
        "containers-heap",
        "database_memory_mb = 512\ncassandra_heap_mb = 512",
    );
    assert_rejected(
        &heap,
        &[
            "pipeline.containers.cassandra_heap_mb",
            "does not fit a 512 MB container",
        ],
    );
    let policy = containers("containers-restart", "database_restart = \"always\"");
    assert_rejected(&policy, &["database_restart", "on-failure"]);
    let unknown = containers("containers-unknown", "swap_mb = 10");
    assert_rejected(&unknown, &["swap_mb", "unknown field"]);
}

#[test]
fn bad_knee_flags_exit_2_naming_the_flag() {
    let smoke = smoke();
    let smoke = smoke.to_str().expect("utf-8 path");
    for (flags, needle) in [
        (&["--p99-ms", "0"][..], "--p99-ms 0"),
        (
            &["--p99-ms", "100", "--min-rate", "0.5"][..],
            "--min-rate 0.5",
        ),
        (
            &["--p99-ms", "100", "--min-rate", "500", "--max-rate", "100"][..],
            "--max-rate 100 is below --min-rate 500",
        ),
        (&["--p99-ms", "100", "--hold-s", "2"][..], "--hold-s 2"),
        (
            &["--p99-ms", "100", "--settle-s", "86400"][..],
            "over the longest run",
        ),
    ] {
        let mut args = vec!["knee", smoke, "--target", "sim"];
        args.extend_from_slice(flags);
        let output = roadtest(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(needle), "{flags:?}: {stderr}");
    }
    let output = roadtest(&["knee", smoke, "--target", "sim"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--p99-ms"), "{stderr}");
}

#[test]
fn a_postgres_url_with_a_password_or_beside_cql_contacts_exits_2_before_anything_starts() {
    let scenario =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke-postgres.toml");
    let out = std::env::temp_dir().join(format!("roadtest-cli-{}-pg-url", std::process::id()));
    for (flags, says) in [
        (
            &["--postgres-url", "postgresql://app:hunter2@127.0.0.1:1/db"][..],
            "ROADTEST_POSTGRES_PASSWORD",
        ),
        (
            &[
                "--postgres-url",
                "postgresql://app@127.0.0.1:1/db",
                "--cql-contact",
                "127.0.0.1:1",
            ],
            "not both",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
            .arg("run")
            .arg(&scenario)
            .args(["--target", "external", "--kafka-bootstrap", "127.0.0.1:1"])
            .args(flags)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("roadtest runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(
            !out.exists(),
            "nothing is written before the flags are right"
        );
    }
}

/// Runs the committed scenario `name` on the containers and on the external target, which must
/// refuse it with exit 2 before anything is started or contacted (no Docker, no clusters needed),
/// naming `key` and the local target.
fn refused_off_the_local_target(name: &str, key: &str) {
    let scenario =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"));
    let out = std::env::temp_dir().join(format!("roadtest-cli-{}-{name}", std::process::id()));
    for target in [
        &["--target", "containers"][..],
        &[
            "--target",
            "external",
            "--kafka-bootstrap",
            "127.0.0.1:1",
            "--cql-contact",
            "127.0.0.1:1",
        ],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
            .env("DOCKER_HOST", "unix:///nonexistent/roadtest/docker.sock")
            .arg("run")
            .arg(&scenario)
            .args(target)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("roadtest runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{target:?}: {stderr}");
        assert!(stderr.contains(key), "{target:?}: {stderr}");
        assert!(stderr.contains("--target local"), "{target:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_durable_broker_is_refused_where_roadtest_does_not_start_the_broker() {
    refused_off_the_local_target("broker-restart-durable-ci", "pipeline.broker_storage");
}

#[test]
fn the_postgres_sink_needs_its_url_on_the_external_target_and_its_keys_apply_to_it_only() {
    let scenario =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke-postgres.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .arg("run")
        .arg(&scenario)
        .args(["--target", "external", "--kafka-bootstrap", "127.0.0.1:1"])
        .args(["--cql-contact", "127.0.0.1:1"])
        .output()
        .expect("roadtest runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("pipeline.sink") && stderr.contains("--postgres-url"),
        "{stderr}"
    );
    let path = variant(
        "sync-commit-on-cassandra",
        "keyspace = \"roadtest\"",
        "keyspace = \"roadtest\"\npostgres_synchronous_commit = false",
    );
    assert_rejected(
        &path,
        &[
            "pipeline.postgres_synchronous_commit",
            "sink = \"postgres\"",
        ],
    );
    let path = variant(
        "write-time-on-cassandra",
        "keyspace = \"roadtest\"\n\n[pipeline.consumer]\n",
        "keyspace = \"roadtest\"\n\n[pipeline.table]\nwrite_time = \"written_at\"\n\n\
         [pipeline.consumer]\ncommand = [\"./consumer\"]\n",
    );
    assert_rejected(&path, &["pipeline.table.write_time", "sink = \"postgres\""]);
    let faults = "[[faults]]\naction = \"kill\"\nservice = \"cassandra\"\nat_s = 5\n\n[fleet]";
    let path = variant(
        "cassandra-fault-on-postgres",
        "keyspace = \"roadtest\"",
        "keyspace = \"roadtest\"\nsink = \"postgres\"",
    );
    let text = std::fs::read_to_string(&path).expect("variant readable");
    std::fs::write(&path, text.replacen("[fleet]", faults, 1)).expect("write variant");
    assert_rejected(&path, &["faults[0].service", "service = \"postgres\""]);
    let path = variant(
        "elsewhere-on-postgres",
        "keyspace = \"roadtest\"\n\n[pipeline.consumer]\n",
        "keyspace = \"roadtest\"\nsink = \"postgres\"\n\n[pipeline.consumer]\nmanaged = false\n",
    );
    assert_rejected(&path, &["pipeline.sink", "managed = false"]);
}

#[test]
fn metrics_listen_refuses_a_port_in_use_the_simulation_and_a_bad_address_with_exit_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = taken.local_addr().expect("its address").to_string();
    let smoke = smoke();
    let scenario = smoke.to_str().expect("utf-8 path");
    let cases: [(&[&str], &str); 3] = [
        // The port check comes before anything starts, so the local target need not exist:
        // the error is the port's whichever way the target would have gone.
        (
            &["--target", "local", "--metrics-listen", &address],
            &address,
        ),
        (
            &["--target", "sim", "--metrics-listen", "127.0.0.1:0"],
            "simulated",
        ),
        (
            &["--target", "sim", "--metrics-listen", "localhost"],
            "--metrics-listen",
        ),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["run", scenario];
        args.extend_from_slice(flags);
        let output = roadtest(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(needle), "{flags:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{flags:?}: {stderr}");
    }
}
