//! The deterministic simulation target: the whole pipeline in one process on a virtual clock, reported like a real run.
//!
//! `roadtest run SCENARIO --target sim` drives the scenario's fleet through a simulated broker,
//! the real [`crate::ingest::core::IngestCore`] and a simulated Cassandra ([`world`]), applies the
//! same fault schedule ([`crate::faults::resolve`]), verifies the rows like a real run and writes
//! the same report (`target.name = "sim"`). Everything in the report except the wall-clock
//! metadata (`started_at`, `finished_at`, `duration_s`, `machine`, `git_commit`) depends only on
//! the scenario and its seed. [`explore`] runs many seeds and shrinks failures.
//!
//! What the sim models: per-vehicle keyed partitions with offsets; seeded produce, fetch and
//! write latencies; one consumer group's committed offsets; a consumer kill dropping all of the
//! core's memory and restarting from the committed offsets after the fault's duration; a stop
//! draining first; Cassandra's periodic commit-log sync (every 10 s; a crash loses acknowledged
//! rows not yet synced) or batch sync; tamper faults on the store after the run ([`tamper`]); a broker on memory
//! storage, as the local target's: a kill or stop loses its logs and the group's offsets, and the
//! consumer notices a second after the broker is back (its position beyond the new log's end)
//! and reads the new log from offset 0. Not modelled: a durable broker, rebalances between several consumers, dead letters (the fleet sends
//! none), bandwidth beyond an added per-request delay, connection resets other than failing the
//! database writes in flight.

pub mod calibrate;
pub mod explore;
pub mod model;
pub mod tamper;
pub mod verify;
pub mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::assemble::RunFacts;
use crate::fleet::FleetPlan;
use crate::report::{ConsumerProcess, ConsumerSection, Report, ReportError, SimSection};
use crate::scenario::Scenario;
use crate::verify::VerifyOutcome;

pub use model::{LatencyModel, SimLatencies};

/// The value of `target.name` in a simulated run's report.
pub const TARGET_NAME: &str = crate::report::SIM_TARGET_NAME;

/// A simulated run could not be carried out (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("sim: {0}")]
    Setup(String),
    #[error(transparent)]
    Calibrate(#[from] calibrate::CalibrateError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("{path}: cannot write the interval log: {source}")]
    IntervalLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot create the output directory: {source}")]
    OutDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The command that replays a simulated run.
pub fn replay_command(scenario: &Scenario, scenario_path: &Path) -> String {
    scenario.replay_command(scenario_path, Some(TARGET_NAME), "")
}

/// Simulates `scenario` and returns its report (nothing written).
pub fn simulate(
    scenario: &Scenario,
    scenario_path: &Path,
    latencies: SimLatencies,
) -> Result<Report, SimError> {
    simulate_verified(scenario, scenario_path, latencies).map(|(report, _)| report)
}

/// Simulates `scenario`; returns its report and the verification behind it.
fn simulate_verified(
    scenario: &Scenario,
    scenario_path: &Path,
    latencies: SimLatencies,
) -> Result<(Report, VerifyOutcome), SimError> {
    let started_at = SystemTime::now();
    let wall = std::time::Instant::now();
    let world = world::World::new(scenario, latencies).map_err(SimError::Setup)?;
    let latencies = serde_json::to_value(latencies).unwrap_or_default();
    let (outcome, mut store) = world.run();
    let plan = FleetPlan::from_scenario(scenario);
    let tampered = tamper::tamper_store(scenario, &plan, &mut store);
    let verified = verify::verify_store(&plan, &store);
    drop(store);

    let written_by_consumer: u64 = outcome.consumers.iter().map(|c| c.1.written).sum();
    let consumer = consumer_section(&outcome, latencies);
    let facts = RunFacts {
        target_name: TARGET_NAME,
        replay_command: replay_command(scenario, scenario_path),
        started_at,
        duration_s: wall.elapsed().as_secs_f64(),
        service_versions: BTreeMap::from([(
            "sim".to_string(),
            format!("roadtest {} virtual clock", env!("CARGO_PKG_VERSION")),
        )]),
        stages: [&outcome.produce_ack, &outcome.consume, &outcome.write_ack],
        produced: &outcome.produced,
        consumed: &outcome.consumed,
        span_s: (scenario.duration_s as f64).max(1.0),
        sent: outcome.sent,
        failed_deliveries: 0,
        behind_schedule_ms: None,
        written_by_consumer,
        consumer,
        memory: Default::default(),
        faults: outcome.faults,
        tampered,
        oom_kills: Vec::new(),
        // The simulation models no webhook: its reports judge no alert expectation.
        alerts: None,
        errors: outcome.errors,
    };
    let report = crate::assemble::assemble(scenario, scenario_path, facts, &verified);
    Ok((report, verified))
}

/// The simulated consumers' processes and the simulation's own figures.
fn consumer_section(outcome: &world::SimOutcome, latencies: serde_json::Value) -> ConsumerSection {
    ConsumerSection {
        command: Vec::new(),
        image: String::new(),
        runs_elsewhere: false,
        processes: outcome
            .consumers
            .iter()
            .map(|(incarnation, stats, clean)| ConsumerProcess {
                pid: None,
                incarnation: Some(*incarnation),
                exited_cleanly: *clean,
                stats: stats.clone(),
            })
            .collect(),
        sim: Some(SimSection {
            virtual_end_s: outcome.end_us as f64 / 1e6,
            steps: outcome.steps,
            database_rows_lost_in_crashes: outcome.rows_lost_in_crashes,
            latencies,
        }),
    }
}

/// `roadtest run --target sim`: simulates the scenario and writes report.json and the
/// end-to-end interval log (e2e.hlog, times from the virtual clock's start) to `out_dir`.
pub fn run(scenario: &Scenario, scenario_path: &Path, out_dir: &Path) -> Result<Report, SimError> {
    eprintln!(
        "roadtest: seed {} (scenario {}, hash {}); replay with: {}",
        scenario.seed,
        scenario.name,
        scenario.hash(),
        replay_command(scenario, scenario_path)
    );
    simulate_into(scenario, scenario_path, out_dir)
}

/// Simulates the scenario and writes report.json and e2e.hlog to `out_dir` (the seed is the
/// caller's to log).
pub fn simulate_into(
    scenario: &Scenario,
    scenario_path: &Path,
    out_dir: &Path,
) -> Result<Report, SimError> {
    let latencies = calibrate::latencies_from_env()?;
    simulate_into_with(scenario, scenario_path, out_dir, latencies)
}

/// [`simulate_into`] with these latencies instead of the environment's.
pub fn simulate_into_with(
    scenario: &Scenario,
    scenario_path: &Path,
    out_dir: &Path,
    latencies: SimLatencies,
) -> Result<Report, SimError> {
    std::fs::create_dir_all(out_dir).map_err(|source| SimError::OutDir {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let (report, verified) = simulate_verified(scenario, scenario_path, latencies)?;
    report.write(out_dir)?;
    let hlog = out_dir.join("e2e.hlog");
    verified
        .e2e
        .write_interval_log_file(&hlog, 0.0)
        .map_err(|source| SimError::IntervalLog { path: hlog, source })?;
    Ok(report)
}

/// A report as JSON with the wall-clock metadata blanked, for determinism comparisons.
pub fn without_wall_clock(report: &Report) -> String {
    let mut report = report.clone();
    report.started_at = String::new();
    report.finished_at = String::new();
    report.duration_s = 0.0;
    report.machine = Default::default();
    report.git_commit = None;
    serde_json::to_string_pretty(&report).unwrap_or_default()
}
