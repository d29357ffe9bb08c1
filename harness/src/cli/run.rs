//! `roadtest run`: the flags checked once into a run plan (the target, sim included, chosen once; the output folder fixed), the run, the report and its views.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{EXIT_FAILED, EXIT_PASSED, ScenarioArgs, ignore_broken_pipe, init_logging, runtime};
use crate::Scenario;
use crate::scenario::Sink;
use crate::shutdown::termination;
use crate::targets::TargetKind;
use crate::targets::containers::{choose_target, docker_ping, images_available, local_installed};

/// `--target`: where the pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum TargetArg {
    /// Kafka and Cassandra (or ScyllaDB) in Docker via testcontainers.
    Containers,
    /// The real services as child processes (`roadtest services install`).
    Local,
    /// Existing clusters: --kafka-bootstrap, --cql-contact and the security flags.
    External,
    /// The deterministic simulation on a virtual clock (needs no services).
    Sim,
}

/// The flags of `roadtest run`, as parsed.
#[derive(Debug, Clone, Copy)]
pub(super) struct RunFlags<'a> {
    pub(super) target: Option<TargetArg>,
    pub(super) external: &'a crate::targets::external::ExternalArgs,
    pub(super) out: Option<&'a Path>,
    pub(super) json: bool,
    pub(super) quiet: bool,
    /// Where to post the verdict when the run ends.
    pub(super) notify_webhook: Option<&'a str>,
    /// Where to serve live metrics while the run goes.
    pub(super) metrics_listen: Option<SocketAddr>,
    /// How long to keep serving them after the run.
    pub(super) metrics_linger: Duration,
    /// Where the alert webhook listens (a scenario with alert rules).
    pub(super) alert_listen: Option<SocketAddr>,
    /// Where the reference consumer serves its metrics.
    pub(super) consumer_metrics_listen: Option<SocketAddr>,
}

/// Where a run goes, chosen once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Destination {
    Real(TargetKind),
    Sim,
}

/// The checked settings of one `roadtest run`: the scenario, where it runs and why, and the
/// output folder, all decided before anything starts.
#[derive(Debug)]
pub(super) struct RunPlan {
    pub(super) scenario: Scenario,
    pub(super) destination: Destination,
    /// Why the destination was chosen, when roadtest chose it.
    pub(super) reason: Option<String>,
    pub(super) out_dir: PathBuf,
    pub(super) external: Option<crate::run::ExternalClusters>,
}

impl RunPlan {
    /// Raw flags -> checked plan: loads the scenario, resolves the external clusters, chooses
    /// the target (the default: external when its flags are given, else containers when Docker
    /// answers, else local when installed, else sim) and fixes the output folder.
    pub(super) fn check(args: &ScenarioArgs, flags: RunFlags<'_>) -> Result<RunPlan, String> {
        if let Some(url) = flags.notify_webhook {
            crate::notify::check_url(url)?;
        }
        let external_flags = flags.external.is_set();
        if external_flags && flags.target.is_some_and(|t| t != TargetArg::External) {
            return Err(format!(
                "--kafka-bootstrap, --cql-contact, --postgres-url, the --kafka-*/--cql-* \
                 security flags, --kafka-replication-factor and --cql-replication apply to \
                 --target external only, and the target is {}",
                target_name(flags.target)
            ));
        }
        let scenario = args.load().map_err(|e| e.to_string())?;
        let external = match external_flags || flags.target == Some(TargetArg::External) {
            true => Some(
                flags
                    .external
                    .resolve(|key| std::env::var(key).ok())
                    .map_err(|e| format!("{e}; see `roadtest run --help`"))?,
            ),
            false => None,
        };
        let (destination, reason) = choose(flags.target, external_flags, scenario.pipeline.sink);
        // A consumer of the user's own needs a real target (an image, the containers target),
        // and its program must exist.
        let why = reason
            .as_deref()
            .map_or_else(String::new, |why| format!(" ({why})"));
        match destination {
            Destination::Real(kind) => {
                crate::run::check_consumer_program(&scenario, &args.path, kind)
                    .map_err(|e| format!("{e}{why}"))?;
            }
            Destination::Sim if !scenario.pipeline.consumer.is_reference() => {
                return Err(format!(
                    "{}: pipeline.consumer: a consumer of your own (`command` or `image`) needs \
                     a real target, and this run would be simulated{why}; the simulation runs \
                     roadtest's reference consumer only. Use --target local (install its \
                     services with `roadtest services install`), containers or external",
                    args.path.display()
                ));
            }
            Destination::Sim => {}
        }
        if flags.metrics_listen.is_some() && destination == Destination::Sim {
            return Err(format!(
                "--metrics-listen serves a real run's metrics, and this run would be \
                 simulated{why} on a virtual clock, in well under its scenario time; use \
                 --target local, containers or external, or leave out --metrics-listen"
            ));
        }
        let out_dir = flags.out.map_or_else(
            || default_out_dir(&scenario, destination),
            Path::to_path_buf,
        );
        Ok(RunPlan {
            scenario,
            destination,
            reason,
            out_dir,
            external,
        })
    }
}

fn target_name(target: Option<TargetArg>) -> &'static str {
    match target {
        Some(TargetArg::Containers) => "containers",
        Some(TargetArg::Local) => "local",
        Some(TargetArg::External) => "external",
        Some(TargetArg::Sim) => "sim",
        None => "the default",
    }
}

/// The destination the flags ask for, else the default and why.
fn choose(
    target: Option<TargetArg>,
    external_flags: bool,
    sink: Sink,
) -> (Destination, Option<String>) {
    match target {
        Some(TargetArg::Containers) => (Destination::Real(TargetKind::Containers), None),
        Some(TargetArg::Local) => (Destination::Real(TargetKind::Local), None),
        Some(TargetArg::External) => (Destination::Real(TargetKind::External), None),
        Some(TargetArg::Sim) => (Destination::Sim, None),
        None if external_flags => (
            Destination::Real(TargetKind::External),
            Some("--kafka-bootstrap / --cql-contact given: the clusters there".into()),
        ),
        None => match choose_target(
            None,
            docker_ping,
            || images_available(sink),
            local_installed(),
        ) {
            Ok((kind, why)) => (Destination::Real(kind), Some(why)),
            Err(error) => (
                Destination::Sim,
                Some(format!(
                    "{error}; running the deterministic simulation instead"
                )),
            ),
        },
    }
}

/// `reports/runs/NAME-SEED-TIME` (`NAME-SEED-sim-TIME` for the sim).
fn default_out_dir(scenario: &Scenario, destination: Destination) -> PathBuf {
    let stamp = crate::report::format_rfc3339(SystemTime::now()).replace([':', '-'], "");
    let sim = if destination == Destination::Sim {
        "sim-"
    } else {
        ""
    };
    PathBuf::from("reports/runs").join(format!("{}-{}-{sim}{stamp}", scenario.name, scenario.seed))
}

/// `roadtest run`: checks the flags once, runs on the chosen target (or the sim), prints the
/// summary (or the report with --json) and writes the report's views next to it.
pub(super) fn run_scenario(args: &ScenarioArgs, flags: RunFlags<'_>) -> Result<u8, String> {
    let plan = RunPlan::check(args, flags)?;
    if !flags.quiet {
        init_logging();
    }
    let report = match plan.destination {
        Destination::Sim => {
            if let Some(why) = &plan.reason {
                eprintln!("roadtest: target sim: {why}");
            }
            crate::sim::run(&plan.scenario, &args.path, &plan.out_dir).map_err(|e| e.to_string())
        }
        Destination::Real(kind) => run_real(args, &plan, kind, flags),
    };
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            if let Some(url) = flags.notify_webhook {
                let scenario = &plan.scenario;
                crate::notify::post(
                    url,
                    &crate::notify::error_verdict(&scenario.name, scenario.seed, &error),
                );
            }
            return Err(error);
        }
    };
    let code = present(&report, &plan.out_dir, flags.json)?;
    if let Some(url) = flags.notify_webhook {
        let path = plan.out_dir.join(crate::report::REPORT_FILE_NAME);
        crate::notify::post(url, &crate::notify::verdict(&report, &path));
    }
    Ok(code)
}

/// A run on a real target; Ctrl-C or SIGTERM stops everything it started.
fn run_real(
    args: &ScenarioArgs,
    plan: &RunPlan,
    kind: TargetKind,
    flags: RunFlags<'_>,
) -> Result<crate::report::Report, String> {
    let scenario = &plan.scenario;
    let mut options =
        crate::run::RunOptions::new(scenario, &args.path).map_err(|e| e.to_string())?;
    options.out_dir = plan.out_dir.clone();
    options.progress = !flags.quiet;
    options.target = Some(kind);
    options.target_reason = plan.reason.clone();
    options.external = plan.external.clone();
    options.alert_listen = flags.alert_listen;
    options.consumer_metrics_listen = flags.consumer_metrics_listen;
    let runtime = runtime()?;
    // Bound before anything starts: a port in use stops the run while nothing needs undoing.
    let server = match flags.metrics_listen {
        Some(address) => Some(serve_metrics(&runtime, address, &mut options)?),
        None => None,
    };
    let report = run_until_stopped(&runtime, scenario, options).map_err(|e| {
        let replay =
            crate::run::replay_command(scenario, &args.path, Some(kind), plan.external.as_ref());
        format!("{e}\nreplay with: {replay}")
    });
    if let Some(server) = server {
        if !flags.metrics_linger.is_zero() {
            eprintln!(
                "roadtest: serving the final metrics for {} s more",
                flags.metrics_linger.as_secs()
            );
            runtime.block_on(async { tokio::time::sleep(flags.metrics_linger).await });
        }
        server.abort();
    }
    report
}

/// Listens on `address` and serves the run's live metrics there (`options.metrics`).
fn serve_metrics(
    runtime: &tokio::runtime::Runtime,
    address: SocketAddr,
    options: &mut crate::run::RunOptions,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = runtime
        .block_on(crate::live::bind(address))
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_or(address, |bound| bound);
    eprintln!("roadtest: live metrics at http://{address}/metrics");
    let metrics = crate::live::RunMetrics::new();
    let server = runtime.spawn(crate::live::serve(listener, metrics.registry()));
    options.metrics = Some(metrics);
    Ok(server)
}

/// Runs a scenario on a real target until it ends or Ctrl-C / SIGTERM stops it (and everything
/// it started).
pub(super) fn run_until_stopped(
    runtime: &tokio::runtime::Runtime,
    scenario: &Scenario,
    options: crate::run::RunOptions,
) -> Result<crate::report::Report, crate::run::RunError> {
    runtime.block_on(async {
        tokio::select! {
            report = scenario.run(options) => report,
            _ = termination() => Err(crate::run::RunError::Interrupted),
        }
    })
}

/// Prints the summary (or the whole report with `json`), writes the views and returns the exit
/// code: passed or failed.
fn present(report: &crate::report::Report, out_dir: &Path, json: bool) -> Result<u8, String> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let written = if json {
        serde_json::to_string_pretty(report)
            .map_err(io::Error::other)
            .and_then(|text| writeln!(out, "{text}"))
    } else {
        write!(out, "{}", report.summary_text())
    };
    ignore_broken_pipe(written)?;
    if let Err(message) = write_views(report, out_dir) {
        eprintln!("roadtest: warning: {message}");
    }
    eprintln!(
        "roadtest: report written to {}",
        out_dir.join(crate::report::REPORT_FILE_NAME).display()
    );
    Ok(if report.passed {
        EXIT_PASSED
    } else {
        EXIT_FAILED
    })
}

/// Writes report.html and latency.png next to a report and returns the page's path; a PNG that
/// cannot be written, or has no text for want of a font, is a warning on stderr.
pub(super) fn write_views(
    report: &crate::report::Report,
    dir: &std::path::Path,
) -> Result<PathBuf, String> {
    let html = crate::report::write_html(report, dir).map_err(|e| e.to_string())?;
    match crate::report::write_latency_png(report, dir) {
        Ok(png) if png.font.is_none() => eprintln!(
            "roadtest: warning: {} has no text: no font found (install fonts-dejavu-core or set {})",
            png.path.display(),
            crate::report::FONT_ENV
        ),
        Ok(_) => {}
        Err(error) => eprintln!("roadtest: warning: {error}"),
    }
    Ok(html)
}
