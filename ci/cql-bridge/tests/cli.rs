//! The `cql-bridge` binary's command line: `--help`, exit code 2 on bad arguments, logs on
//! stderr, and exit 0 on SIGTERM.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cql-bridge");

#[test]
fn help_lists_the_options() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--listen",
        "--upstream",
        "--advertise-ip",
        "--max-frame-bytes",
    ] {
        assert!(text.contains(opt), "{opt} missing from:\n{text}");
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["--listen", "nonsense"][..],
        &["--upstream", "127.0.0.1"],
        &["--advertise-ip", "::1"],
        &["--max-frame-bytes", "0"],
        &["--max-frame-bytes", "4294967296"],
        &["--no-such-flag"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn sigterm_exits_0_and_logs_to_stderr() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(BIN)
        .args(["--listen", &port.to_string(), "--upstream", "127.0.0.1:9"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(port).is_err() {
        assert!(Instant::now() < deadline, "bridge never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "bridge ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        stderr.contains("cql-bridge ready") && stderr.contains("SIGTERM"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "logs must not go to stdout: {stdout}");
}
