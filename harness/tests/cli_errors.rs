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
