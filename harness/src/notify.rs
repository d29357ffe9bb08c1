//! `roadtest run --notify-webhook URL`: when a run ends, its verdict (scenario, seed, target,
//! passed or failed, the key numbers, the replay command) is posted as JSON to a webhook (a chat
//! bot, an incident tool, a CI dashboard). A post that fails is said on stderr and never changes
//! the run's exit code: the report is the record, the post only a notice.

use std::time::Duration;

use serde_json::{Value, json};

use crate::report::Report;

/// How long one post may take, connecting included.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks a webhook URL before anything runs: `http://` or `https://` and a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(format!(
            "--notify-webhook: {url:?} is not an http:// or https:// URL with a host (like \
             https://hooks.example.com/roadtest)"
        )),
    }
}

/// The verdict of a run that produced a report.
pub fn verdict(report: &Report, report_path: &std::path::Path) -> Value {
    let (verify, e2e) = (&report.verify, &report.latency.e2e_ms);
    json!({
        "roadtest": env!("CARGO_PKG_VERSION"),
        "scenario": report.scenario.name,
        "seed": report.seed,
        "target": report.target.name,
        "verdict": if report.passed { "passed" } else { "failed" },
        "passed": report.passed,
        "events": {
            "expected": verify.expected,
            "found": verify.found,
            "lost": verify.lost,
            "corrupt": verify.corrupt,
            "unexpected": verify.unexpected,
        },
        "latency_e2e_ms": { "p50": e2e.p50_ms, "p99": e2e.p99_ms, "max": e2e.max_ms },
        "written_per_s": report.throughput.written_per_s,
        "failed_expectations": report
            .expectations
            .iter()
            .filter(|expectation| !expectation.passed)
            .map(|expectation| expectation.name.clone())
            .collect::<Vec<_>>(),
        "errors": report.errors,
        "report": report_path.display().to_string(),
        "replay": report.replay_command,
    })
}

/// The verdict of a run that could not be carried out (no report).
pub fn error_verdict(scenario: &str, seed: u64, error: &str) -> Value {
    json!({
        "roadtest": env!("CARGO_PKG_VERSION"),
        "scenario": scenario,
        "seed": seed,
        "verdict": "error",
        "passed": false,
        "error": error,
    })
}

/// Posts `verdict` to `url`; on failure says so on stderr (never an error of the run).
pub fn post(url: &str, verdict: &Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(POST_TIMEOUT))
        .build()
        .into();
    let body = verdict.to_string();
    let sent = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.as_bytes());
    match sent {
        Ok(_) => eprintln!("roadtest: verdict posted to {url}"),
        Err(error) => eprintln!(
            "roadtest: warning: could not post the verdict to {url}: {error} (the run's exit \
             code is unchanged)"
        ),
    }
}
