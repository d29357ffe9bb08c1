//! `roadtest knee`: the highest rate a pipeline sustains, found by roadtest. Each step runs the scenario open-loop at one rate (events/s) for a settle period, discarded, and a hold, judged ([`judge`]); the rates come from [`search`] (doubling, then bisection). The result is `knee.json` and `knee.svg` in the output folder, one run folder per step beside them.

pub mod judge;
pub mod search;

use std::path::{Path, PathBuf};

use serde::Serialize;

use self::judge::{Hold, StepFigures};
use self::search::{KneeOutcome, KneeSearch, Next, SearchBounds};
use crate::Scenario;
use crate::report::Report;
use crate::sim::SimLatencies;

/// The knee's result file, in the output folder.
pub const KNEE_FILE_NAME: &str = "knee.json";
/// Its chart: latency and throughput against the offered rate.
pub const KNEE_CHART_FILE_NAME: &str = "knee.svg";
/// The most samples per second one vehicle sends (the scenario's `fleet.rate_hz` limit): above
/// `vehicles x this`, a step adds vehicles.
const VEHICLE_RATE_MAX_HZ: f64 = 100.0;

/// How a knee search runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KneeSettings {
    /// The end-to-end p99 a sustained rate must stay within, ms.
    pub p99_ms: f64,
    pub bounds: SearchBounds,
    /// Seconds at the start of each step that are not judged (the pipeline warms up).
    pub settle_s: u64,
    /// Seconds after the settle period that are judged.
    pub hold_s: u64,
}

impl KneeSettings {
    pub const SETTLE_S_DEFAULT: u64 = 10;
    pub const HOLD_S_DEFAULT: u64 = 20;
    pub const RESOLUTION_DEFAULT: f64 = 0.05;
    pub const MAX_STEPS_DEFAULT: usize = 20;
    pub const MAX_RATE_DEFAULT: f64 = 1_000_000.0;

    fn hold(&self) -> Hold {
        let from_s = self.settle_s as usize;
        Hold {
            from_s,
            to_s: from_s + self.hold_s as usize,
        }
    }
}

/// Runs one step: the scenario as [`step_scenario`] made it, its report.json and e2e.hlog
/// written to the folder given.
pub trait StepRunner {
    /// The target's name, for knee.json.
    fn target(&self) -> &'static str;
    fn run(&mut self, scenario: &Scenario, out_dir: &Path) -> Result<Report, String>;
}

/// Steps on the simulation, with these latencies (a `database_rows_per_s` gives the database
/// a known capacity).
#[derive(Debug, Clone)]
pub struct SimSteps {
    pub scenario_path: PathBuf,
    pub latencies: SimLatencies,
}

impl StepRunner for SimSteps {
    fn target(&self) -> &'static str {
        "sim"
    }

    fn run(&mut self, scenario: &Scenario, out_dir: &Path) -> Result<Report, String> {
        crate::sim::simulate_into_with(scenario, &self.scenario_path, out_dir, self.latencies)
            .map_err(|e| e.to_string())
    }
}

/// One step as knee.json lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KneeStep {
    #[serde(flatten)]
    pub figures: StepFigures,
    pub vehicles: u32,
    /// The step's run folder (report.json, e2e.hlog), relative to the output folder.
    pub run_dir: String,
}

/// knee.json.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KneeReport {
    pub scenario: String,
    pub seed: u64,
    pub target: &'static str,
    pub p99_target_ms: f64,
    pub settle_s: u64,
    pub hold_s: u64,
    /// The highest rate sustained (`null` when not even the lowest was).
    pub knee_events_per_s: Option<f64>,
    pub outcome: KneeOutcome,
    /// In the order they ran.
    pub steps: Vec<KneeStep>,
}

/// The scenario of one step: open-loop at `rate` events/s for settle + hold seconds, at real
/// time, with no ramp and no faults; the scenario's vehicles at the rate each needs, more
/// vehicles when one would have to send more than 100 samples/s.
pub fn step_scenario(scenario: &Scenario, rate: f64, settings: &KneeSettings) -> Scenario {
    let mut step = scenario.clone();
    let needed = (rate / VEHICLE_RATE_MAX_HZ).ceil() as u32;
    let vehicles = scenario.fleet.vehicle_count.max(needed).max(1);
    step.fleet.vehicle_count = vehicles;
    step.fleet.sample_interval_ms = None;
    step.fleet.rate_hz = Some(rate / f64::from(vehicles));
    step.fleet.ramp = None;
    step.faults.clear();
    step.duration_s = settings.settle_s + settings.hold_s;
    step.pipeline.speedup = 1.0;
    step
}

/// Searches for the knee, one step after another, each in `out_dir/steps/NN-RATE/`; `shown`
/// hears of each step as it is judged. Writes knee.json (and returns it).
pub fn find_knee(
    scenario: &Scenario,
    settings: &KneeSettings,
    runner: &mut impl StepRunner,
    out_dir: &Path,
    mut shown: impl FnMut(&KneeStep),
) -> Result<KneeReport, String> {
    let mut search = KneeSearch::new(settings.bounds);
    let mut steps = Vec::new();
    let outcome = loop {
        let rate = match search.next() {
            Next::Try(rate) => rate,
            Next::Done(outcome) => break outcome,
        };
        let step = run_step(scenario, settings, runner, out_dir, steps.len(), rate)?;
        search.record(rate, step.figures.sustained);
        shown(&step);
        steps.push(step);
    };
    let report = KneeReport {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        target: runner.target(),
        p99_target_ms: settings.p99_ms,
        settle_s: settings.settle_s,
        hold_s: settings.hold_s,
        knee_events_per_s: outcome.sustained_rate(),
        outcome,
        steps,
    };
    write_knee(&report, out_dir)?;
    Ok(report)
}

fn run_step(
    scenario: &Scenario,
    settings: &KneeSettings,
    runner: &mut impl StepRunner,
    out_dir: &Path,
    index: usize,
    rate: f64,
) -> Result<KneeStep, String> {
    let step = step_scenario(scenario, rate, settings);
    let run_dir = format!("steps/{:02}-{rate:.0}-per-s", index + 1);
    let dir = out_dir.join(&run_dir);
    let report = runner
        .run(&step, &dir)
        .map_err(|error| format!("the step at {rate:.0} events/s could not run: {error}"))?;
    let hold = settings.hold();
    let latency = judge::hold_latency(&dir.join("e2e.hlog"), hold)?;
    let throughput = &report.throughput;
    let figures = judge::judge(
        rate,
        hold,
        &throughput.produced,
        &throughput.written,
        latency.as_ref(),
        settings.p99_ms,
    );
    Ok(KneeStep {
        figures,
        vehicles: step.fleet.vehicle_count,
        run_dir,
    })
}

/// Writes knee.json and knee.svg into `out_dir`.
fn write_knee(report: &KneeReport, out_dir: &Path) -> Result<(), String> {
    let write = |name: &str, text: String| {
        let path = out_dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    write(KNEE_FILE_NAME, json + "\n")?;
    let points: Vec<_> = report
        .steps
        .iter()
        .map(|step| crate::report::KneePoint {
            rate: step.figures.rate_events_per_s,
            p50_ms: step.figures.p50_ms,
            p99_ms: step.figures.p99_ms,
            written_per_s: step.figures.written_per_s,
            sustained: step.figures.sustained,
        })
        .collect();
    let chart = crate::report::knee_svg(&points, report.p99_target_ms, report.knee_events_per_s)?;
    write(KNEE_CHART_FILE_NAME, chart)
}

/// One line of the curve as `roadtest knee` prints it.
pub fn step_line(step: &KneeStep) -> String {
    let figures = &step.figures;
    let ms = |value: Option<f64>| value.map_or("-".to_string(), |ms| format!("{ms:.1}"));
    let verdict = match figures.sustained {
        true => "sustained".to_string(),
        false => format!("not sustained: {}", figures.missed.join("; ")),
    };
    format!(
        "{:>10.0} {:>10.0} {:>10.1} {:>10} {:>10} {:>12.1}  {verdict}",
        figures.rate_events_per_s,
        figures.sent_per_s,
        figures.written_per_s,
        ms(figures.p50_ms),
        ms(figures.p99_ms),
        figures.lag_slope_per_s,
    )
}

/// The header of [`step_line`]'s columns.
pub const STEP_HEADER: &str =
    "  rate (/s)  sent (/s) wrote (/s)   p50 (ms)   p99 (ms) lag slope (/s)  verdict";

#[cfg(test)]
mod tests;
