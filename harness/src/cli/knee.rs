//! `roadtest knee`: the flags checked (the target chosen as `roadtest run` chooses it), the search run step by step on that target, the curve printed as it goes, knee.json and knee.svg written.

use std::path::{Path, PathBuf};

use super::run::{Destination, RunFlags, RunPlan, TargetArg};
use super::{EXIT_FAILED, EXIT_PASSED, ScenarioArgs, init_logging, runtime};
use crate::Scenario;
use crate::knee::search::SearchBounds;
use crate::knee::{KneeSettings, SimSteps, StepRunner, find_knee, step_line};
use crate::report::Report;
use crate::targets::TargetKind;

/// The flags of `roadtest knee`.
#[derive(Debug, clap::Args)]
pub(super) struct KneeArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// The end-to-end p99 a sustained rate must stay within, in ms
    #[arg(long, value_name = "MS")]
    p99_ms: f64,
    /// The first rate tried, in events/s [default: the scenario's own rate]
    #[arg(long, value_name = "R")]
    min_rate: Option<f64>,
    /// No higher rate is tried, in events/s
    #[arg(long, value_name = "R", default_value_t = KneeSettings::MAX_RATE_DEFAULT)]
    max_rate: f64,
    /// Seconds at the start of each step that are not judged
    #[arg(long, value_name = "S", default_value_t = KneeSettings::SETTLE_S_DEFAULT)]
    settle_s: u64,
    /// Seconds after the settle period that are judged (3 or more)
    #[arg(long, value_name = "S", default_value_t = KneeSettings::HOLD_S_DEFAULT)]
    hold_s: u64,
    /// Where the steps run [default: chosen as for `roadtest run`]
    #[arg(long, value_enum)]
    target: Option<TargetArg>,
    /// Folder for knee.json, knee.svg and one run folder per step [default: reports/runs/NAME-SEED-TIME]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// No progress of each step's run on stderr
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    external: Box<crate::targets::external::ExternalArgs>,
}

impl KneeArgs {
    /// The search's settings, checked; `own_rate` is the scenario's rate (the default lowest).
    fn settings(&self, own_rate: f64) -> Result<KneeSettings, String> {
        let min_rate = self.min_rate.unwrap_or(own_rate.round().max(1.0));
        if !(self.p99_ms.is_finite() && self.p99_ms > 0.0) {
            return Err(format!(
                "--p99-ms {}: give a latency above 0 ms",
                self.p99_ms
            ));
        }
        if !(min_rate.is_finite() && min_rate >= 1.0) {
            return Err(format!("--min-rate {min_rate}: give 1 event/s or more"));
        }
        if !(self.max_rate.is_finite() && self.max_rate >= min_rate) {
            return Err(format!(
                "--max-rate {} is below --min-rate {min_rate}; give a higher one",
                self.max_rate
            ));
        }
        if self.hold_s < 3 {
            return Err(format!(
                "--hold-s {}: the lag's trend needs 3 seconds or more",
                self.hold_s
            ));
        }
        let duration = self.settle_s + self.hold_s;
        if duration > crate::scenario::DURATION_S_MAX {
            return Err(format!(
                "--settle-s + --hold-s is {duration} s, over the longest run ({} s)",
                crate::scenario::DURATION_S_MAX
            ));
        }
        Ok(KneeSettings {
            p99_ms: self.p99_ms,
            bounds: SearchBounds {
                min_rate,
                max_rate: self.max_rate,
                resolution: KneeSettings::RESOLUTION_DEFAULT,
                max_steps: KneeSettings::MAX_STEPS_DEFAULT,
            },
            settle_s: self.settle_s,
            hold_s: self.hold_s,
        })
    }
}

/// Steps on a real target: each one a whole run (services started and stopped, verified);
/// Ctrl-C or SIGTERM stops the run in progress and the search.
struct RealSteps {
    kind: TargetKind,
    scenario_path: PathBuf,
    external: Option<crate::run::ExternalClusters>,
    progress: bool,
    runtime: tokio::runtime::Runtime,
}

impl StepRunner for RealSteps {
    fn target(&self) -> &'static str {
        self.kind.name()
    }

    fn run(&mut self, scenario: &Scenario, out_dir: &Path) -> Result<Report, String> {
        let mut options = crate::run::RunOptions::new(scenario, &self.scenario_path)
            .map_err(|e| e.to_string())?;
        options.out_dir = out_dir.to_path_buf();
        options.progress = self.progress;
        options.target = Some(self.kind);
        options.external = self.external.clone();
        super::run::run_until_stopped(&self.runtime, scenario, options).map_err(|e| e.to_string())
    }
}

/// `roadtest knee`: exit 0 when a rate was sustained, 1 when not even the lowest was.
pub(super) fn knee(args: &KneeArgs) -> Result<u8, String> {
    let flags = RunFlags {
        target: args.target,
        external: &args.external,
        out: args.out.as_deref(),
        json: false,
        quiet: args.quiet,
        notify_webhook: None,
        metrics_listen: None,
        metrics_linger: std::time::Duration::ZERO,
        alert_listen: None,
        consumer_metrics_listen: None,
    };
    let plan = RunPlan::check(&args.scenario, flags)?;
    let scenario = &plan.scenario;
    let own_rate = f64::from(scenario.fleet.vehicle_count) * 1000.0 / scenario.sample_interval_ms();
    let settings = args.settings(own_rate)?;
    if !args.quiet {
        init_logging();
    }
    if let Some(why) = &plan.reason {
        eprintln!("roadtest: knee: target chosen: {why}");
    }
    let path = args.scenario.path.clone();
    let report = match plan.destination {
        Destination::Sim => {
            let latencies =
                crate::sim::calibrate::latencies_from_env().map_err(|e| e.to_string())?;
            let mut runner = SimSteps {
                scenario_path: path,
                latencies,
            };
            search(scenario, &settings, &mut runner, &plan.out_dir)?
        }
        Destination::Real(kind) => {
            let mut runner = RealSteps {
                kind,
                scenario_path: path,
                external: plan.external.clone(),
                progress: !args.quiet,
                runtime: runtime()?,
            };
            search(scenario, &settings, &mut runner, &plan.out_dir)?
        }
    };
    let knee_file = plan.out_dir.join(crate::knee::KNEE_FILE_NAME);
    eprintln!(
        "roadtest: knee written to {} (and knee.svg)",
        knee_file.display()
    );
    Ok(match report.knee_events_per_s {
        Some(_) => EXIT_PASSED,
        None => EXIT_FAILED,
    })
}

/// Runs the search, printing the curve on stdout as each step is judged and the result last.
fn search(
    scenario: &Scenario,
    settings: &KneeSettings,
    runner: &mut impl StepRunner,
    out_dir: &Path,
) -> Result<crate::knee::KneeReport, String> {
    println!(
        "knee of {} (seed {}) on {}: e2e p99 <= {} ms, settle {} s, hold {} s per step",
        scenario.name,
        scenario.seed,
        runner.target(),
        settings.p99_ms,
        settings.settle_s,
        settings.hold_s
    );
    println!("{}", crate::knee::STEP_HEADER);
    let report = find_knee(scenario, settings, runner, out_dir, |step| {
        println!("{}", step_line(step));
    })?;
    let line = match report.outcome {
        crate::knee::search::KneeOutcome::Knee { rate, above } => {
            format!("knee: {rate:.0} events/s sustained ({above:.0} events/s was not)")
        }
        crate::knee::search::KneeOutcome::AtLeast { rate } => format!(
            "knee: {rate:.0} events/s or more (the highest rate tried was sustained; raise --max-rate)"
        ),
        crate::knee::search::KneeOutcome::Below { rate } => {
            format!("knee: below {rate:.0} events/s (not even --min-rate was sustained; lower it)")
        }
    };
    println!("{line}");
    Ok(report)
}
