//! One report assembly for every run: the real run and the simulation hand over what they measured, and the report is built from it the same way.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use crate::alerts::AlertsSection;
use crate::faults::tamper::TamperRecord;
use crate::faults::{FaultRecord, complete_records};
use crate::measure::{LatencyRecorder, LatencySummary, ThroughputSeries};
use crate::report::{ConsumerSection, MemorySection, Report, format_rfc3339};
use crate::scenario::Scenario;
use crate::targets::containers::OomKill;
use crate::verify::VerifyOutcome;

/// What a run measured, whoever ran it.
#[derive(Debug)]
pub struct RunFacts<'a> {
    /// `target.name` in the report (`local`, `sim`, ...).
    pub target_name: &'a str,
    pub replay_command: String,
    pub started_at: SystemTime,
    /// Wall-clock seconds the run took.
    pub duration_s: f64,
    pub service_versions: BTreeMap<String, String>,
    /// Produce acknowledgement, consume and write acknowledgement latencies.
    pub stages: [&'a LatencyRecorder; 3],
    /// Events per second acknowledged by the broker and read by the consumers.
    pub produced: &'a ThroughputSeries,
    pub consumed: &'a ThroughputSeries,
    /// Seconds the rates are averaged over.
    pub span_s: f64,
    pub sent: u64,
    pub failed_deliveries: u64,
    /// How late the producer's sends were (the sim sends on time).
    pub behind_schedule_ms: Option<LatencySummary>,
    /// Rows the consumers say they wrote (redeliveries included).
    pub written_by_consumer: u64,
    pub consumer: ConsumerSection,
    pub memory: MemorySection,
    /// The faults as carried out; losses and latency recovery are completed here.
    pub faults: Vec<FaultRecord>,
    /// What the tamper faults did to the stored rows.
    pub tampered: Vec<TamperRecord>,
    /// Containers the kernel killed for lack of memory; losses are completed here.
    pub oom_kills: Vec<OomKill>,
    /// The alerts against the seed's, when the scenario has rules.
    pub alerts: Option<AlertsSection>,
    pub errors: Vec<String>,
}

/// Builds the report of a run from what it measured and what verification found, and judges
/// the scenario's expectations.
pub fn assemble(
    scenario: &Scenario,
    scenario_path: &Path,
    facts: RunFacts<'_>,
    verified: &VerifyOutcome,
) -> Report {
    let mut report = Report::new(
        scenario,
        scenario_path,
        facts.target_name,
        facts.replay_command,
        facts.started_at,
    );
    report.git_commit = option_env!("ROADTEST_GIT_COMMIT").map(str::to_string);
    report.target.service_versions = facts.service_versions;
    report.finished_at = format_rfc3339(SystemTime::now());
    report.duration_s = facts.duration_s;
    verified.fill_report(&mut report, facts.written_by_consumer, facts.span_s);
    report.set_stages_and_flow(facts.stages, facts.produced, facts.consumed, facts.span_s);
    report.producer.sent = facts.sent;
    report.producer.failed_deliveries = facts.failed_deliveries;
    if let Some(behind) = facts.behind_schedule_ms {
        report.producer.behind_schedule_ms = behind;
    }
    report.consumer = facts.consumer;
    report.memory = facts.memory;
    let mut faults = facts.faults;
    complete_records(
        &mut faults,
        &report.latency.e2e_intervals,
        &verified.lost_by_intended_second.per_second(),
    );
    report.faults = faults;
    report.tampered = facts.tampered;
    report.oom_kills = facts.oom_kills;
    let lost_per_second = verified.lost_by_intended_second.per_second();
    let starts: Vec<f64> = report.oom_kills.iter().map(|kill| kill.at_s).collect();
    for (index, kill) in report.oom_kills.iter_mut().enumerate() {
        let from_s = if index == 0 { 0.0 } else { kill.at_s };
        let to_s = starts.get(index + 1).copied().unwrap_or(f64::INFINITY);
        kill.events_lost = crate::faults::lost_in_window(&lost_per_second, from_s, to_s);
    }
    report.errors = facts.errors;
    report.alerts = facts.alerts;
    report.check_expectations(&scenario.expectations);
    report
}
