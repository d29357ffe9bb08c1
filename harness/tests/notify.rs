//! `roadtest run --notify-webhook`: the verdict arrives as JSON at a real HTTP listener when the
//! run ends; a webhook that does not answer is a warning, never another exit code; a bad URL is
//! refused before anything runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

fn smoke() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml")
}

fn run(url: &str, out: &str) -> Output {
    let dir = std::env::temp_dir().join(format!("roadtest-notify-{}-{out}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .arg("run")
        .arg(smoke())
        .args([
            "--target",
            "sim",
            "--quiet",
            "--notify-webhook",
            url,
            "--out",
        ])
        .arg(&dir)
        .output()
        .expect("roadtest runs");
    let _ = std::fs::remove_dir_all(dir);
    output
}

/// Answers one HTTP request with 200 and returns its request line and JSON body.
fn receive_one(listener: TcpListener) -> std::thread::JoinHandle<(String, serde_json::Value)> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("a connection");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut request_line = String::new();
        reader.read_line(&mut request_line).expect("request line");
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("a length");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("the body");
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .expect("answer");
        let json = serde_json::from_slice(&body).expect("a JSON body");
        (request_line, json)
    })
}

#[test]
fn the_verdict_is_posted_as_json_when_the_run_ends() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!(
        "http://{}/hooks/roadtest",
        listener.local_addr().expect("addr")
    );
    let received = receive_one(listener);
    let output = run(&url, "posted");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let (request_line, verdict) = received.join().expect("the listener");
    assert!(
        request_line.starts_with("POST /hooks/roadtest "),
        "{request_line}"
    );
    assert_eq!(verdict["scenario"], "smoke");
    assert_eq!(verdict["seed"], 42);
    assert_eq!(verdict["target"], "sim");
    assert_eq!(verdict["verdict"], "passed");
    assert_eq!(verdict["events"]["expected"], 600);
    assert_eq!(verdict["events"]["lost"], 0);
    assert!(
        verdict["latency_e2e_ms"]["p99"]
            .as_f64()
            .is_some_and(|p99| p99 > 0.0)
    );
    let replay = verdict["replay"].as_str().unwrap_or_default();
    assert!(replay.contains("--seed 42"), "{verdict}");
    assert!(stderr.contains("verdict posted"), "{stderr}");
}

#[test]
fn a_webhook_that_does_not_answer_is_a_warning_and_the_exit_code_stays() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a port")
        .port();
    let output = run(&format!("http://127.0.0.1:{port}/hook"), "refused");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("could not post the verdict"), "{stderr}");
}

#[test]
fn a_webhook_that_is_not_an_http_url_is_refused_before_the_run() {
    for url in ["hooks.example.com/x", "ftp://example.com", "http://"] {
        let output = run(url, "bad");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.contains("--notify-webhook"), "{url}: {stderr}");
        assert!(
            !stderr.contains("roadtest smoke"),
            "{url}: ran anyway: {stderr}"
        );
    }
}
