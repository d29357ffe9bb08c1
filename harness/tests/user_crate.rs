//! roadtest from a user's own crate: a fresh crate outside this workspace, with roadtest as a path
//! dev-dependency and the README's `cargo test` example pasted in verbatim (read from the README,
//! so the two cannot drift), is built and run three times, each time on the default target: with
//! Docker and the images (containers), without Docker on the local services with `roadtest` on
//! `PATH`, and with nothing installed (simulated). Needs the services installed (`roadtest
//! services install`), a Docker daemon and the images (`ci/docker up`, `ci/images build`); fails,
//! never skips, without them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The first `rust` code block under the README's "From `cargo test`" heading.
fn readme_example() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let section = readme
        .split("### From `cargo test`")
        .nth(1)
        .expect("README has a \"From `cargo test`\" section");
    let code = section
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a rust block in that section");
    format!("{code}\n")
}

/// A crate like a user's: its own folder and workspace, roadtest and tokio as dev-dependencies,
/// the README's test, and the scenario file it loads.
fn user_crate(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("tests")).expect("crate folder");
    std::fs::create_dir_all(dir.join("scenarios")).expect("scenarios folder");
    let manifest = format!(
        "[package]\nname = \"pipeline\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dev-dependencies]\nroadtest = {{ path = {:?} }}\n\
         tokio = {{ version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }}\n\n\
         [workspace]\n",
        repo().join("harness")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("Cargo.toml");
    std::fs::create_dir_all(dir.join("src")).expect("src");
    std::fs::write(dir.join("src/lib.rs"), "//! A user's pipeline.\n").expect("lib.rs");
    std::fs::write(dir.join("tests/smoke.rs"), readme_example()).expect("the README's test");
    std::fs::copy(
        repo().join("scenarios/smoke.toml"),
        dir.join("scenarios/smoke.toml"),
    )
    .expect("smoke.toml");
    // The same dependency versions as this workspace, so the build reuses what it can.
    std::fs::copy(repo().join("Cargo.lock"), dir.join("Cargo.lock")).expect("Cargo.lock");
}

/// Where the user's machine has Docker: the daemon this machine has, or none.
#[derive(Clone, Copy)]
enum Docker {
    Here,
    Nowhere,
}

/// `cargo test` in the user's crate, with `home` as ROADTEST_HOME and `path` as PATH.
fn cargo_test(dir: &Path, home: &Path, path: &str, docker: Docker) -> Output {
    let target = roadtest::targets::local::roadtest_home().join("user-crate-target");
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args(["test", "--offline", "--quiet", "--", "--nocapture"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env("ROADTEST_HOME", home)
        .env("PATH", path)
        .env_remove("ROADTEST_BIN")
        .env_remove("ROADTEST_KAFKA_IMAGE")
        .env_remove("ROADTEST_CASSANDRA_IMAGE");
    match docker {
        Docker::Here => command.env_remove("DOCKER_HOST"),
        Docker::Nowhere => command.env("DOCKER_HOST", "unix:///nonexistent/roadtest/docker.sock"),
    };
    command.output().expect("cargo runs")
}

/// Runs the user's test with `home`, `path` and `docker`; it must pass, and its run must say it
/// went to `target`.
fn passes_on(dir: &Path, home: &Path, path: &str, docker: Docker, target: &str) {
    let started = Instant::now();
    let output = cargo_test(dir, home, path, docker);
    eprintln!(
        "user crate: {target} run (with any build) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("test result: ok. 1 passed"), "{said}");
    assert!(
        said.contains(&format!("roadtest: target {target}:")),
        "the run should have gone to target {target}, saying why: {said}"
    );
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_readme_example_passes_in_a_fresh_crate_on_containers_local_services_and_simulated() {
    let home = roadtest::targets::local::roadtest_home();
    assert!(
        home.join("bin/tansu").exists() && home.join("bin/cassandra-node").exists(),
        "the local services are not installed under {}; run `roadtest services install`",
        home.display()
    );
    assert!(
        home.join("images.env").exists(),
        "no images.env under {}: run `ci/docker up` and `ci/images build`",
        home.display()
    );
    let dir = std::env::temp_dir().join(format!("roadtest-user-crate-{}", std::process::id()));
    user_crate(&dir);
    // `roadtest` on PATH, as `cargo install` leaves it: the consumer and the bridge run as it.
    let binary_dir = Path::new(env!("CARGO_BIN_EXE_roadtest"))
        .parent()
        .expect("the binary's folder");
    let system_path = std::env::var("PATH").unwrap_or_default();
    let with_roadtest = format!("{}:{system_path}", binary_dir.display());

    // Docker with the images (ROADTEST_HOME's images.env names roadtest's local ones): the
    // default target is containers.
    passes_on(&dir, &home, &with_roadtest, Docker::Here, "containers");
    // No Docker: the local services.
    passes_on(&dir, &home, &with_roadtest, Docker::Nowhere, "local");
    // Nothing installed and no roadtest on PATH: the same test passes, simulated, and says why.
    let empty = dir.join("empty-home");
    passes_on(&dir, &empty, &system_path, Docker::Nowhere, "sim");
    let _ = std::fs::remove_dir_all(&dir);
}
