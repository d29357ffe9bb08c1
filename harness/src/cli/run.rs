//! `roadtest run`: the target flags, a real run (its target chosen and said), the sim run, the report's views.

use std::io::{self, Write};
use std::path::PathBuf;

use super::{EXIT_FAILED, EXIT_PASSED, ScenarioArgs, ignore_broken_pipe, init_logging, runtime};
use crate::shutdown::termination;

/// The target flags of `roadtest run`.
#[derive(Debug, Clone, Copy)]
pub(super) struct RunTarget<'a> {
    /// `--target`, if given.
    pub(super) name: Option<&'a str>,
    pub(super) external: &'a crate::targets::external::ExternalArgs,
}

pub(super) fn run_scenario(
    args: &ScenarioArgs,
    target: RunTarget<'_>,
    out: Option<PathBuf>,
    json: bool,
    quiet: bool,
) -> Result<u8, String> {
    let scenario = args.load().map_err(|e| e.to_string())?;
    if !quiet {
        init_logging();
    }
    let mut options =
        crate::run::RunOptions::new(&scenario, &args.path).map_err(|e| e.to_string())?;
    if let Some(out) = out {
        options.out_dir = out;
    }
    options.progress = !quiet;
    let external = target.name == Some("external") || target.external.is_set();
    if external {
        let clusters = target
            .external
            .resolve(|key| std::env::var(key).ok())
            .map_err(|e| format!("{e}; see `roadtest run --help`"))?;
        options.external = Some(clusters);
    }
    options.target = match target.name {
        Some("containers") => Some(crate::targets::TargetKind::Containers),
        Some("local") => Some(crate::targets::TargetKind::Local),
        Some("external") => Some(crate::targets::TargetKind::External),
        None if external => {
            options.target_reason =
                Some("--kafka-bootstrap / --cql-contact given: the clusters there".into());
            Some(crate::targets::TargetKind::External)
        }
        _ => {
            // The default: containers when Docker answers, else local when installed, else sim.
            use crate::targets::containers::{choose_target, docker_ping, local_installed};
            match choose_target(None, docker_ping, local_installed()) {
                Ok((kind, why)) => {
                    options.target_reason = Some(why);
                    Some(kind)
                }
                Err(error) => {
                    eprintln!(
                        "roadtest: target sim: {error}; running the deterministic simulation instead"
                    );
                    return run_sim(args, Some(options.out_dir.clone()), json);
                }
            }
        }
    };
    let report = runtime()?
        .block_on(async {
            // Dropping the run on Ctrl-C/SIGTERM stops everything it started.
            tokio::select! {
                report = scenario.run(options.clone()) => report,
                _ = termination() => Err(crate::run::RunError::Interrupted),
            }
        })
        .map_err(|e| {
            format!(
                "{e}\nreplay with: {}",
                crate::run::replay_command(
                    &scenario,
                    &args.path,
                    options.target,
                    options.external.as_ref()
                )
            )
        })?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let written = if json {
        serde_json::to_string_pretty(&report)
            .map_err(io::Error::other)
            .and_then(|text| writeln!(out, "{text}"))
    } else {
        write!(out, "{}", report.summary_text())
    };
    ignore_broken_pipe(written)?;
    if let Err(message) = write_views(&report, &options.out_dir) {
        eprintln!("roadtest: warning: {message}");
    }
    eprintln!(
        "roadtest: report written to {}",
        options
            .out_dir
            .join(crate::report::REPORT_FILE_NAME)
            .display()
    );
    Ok(if report.passed {
        EXIT_PASSED
    } else {
        EXIT_FAILED
    })
}

/// `roadtest run --target sim`: the simulated run, reported like a real one.
pub(super) fn run_sim(args: &ScenarioArgs, out: Option<PathBuf>, json: bool) -> Result<u8, String> {
    let scenario = args.load().map_err(|e| e.to_string())?;
    let out_dir = out.unwrap_or_else(|| {
        let stamp =
            crate::report::format_rfc3339(std::time::SystemTime::now()).replace([':', '-'], "");
        PathBuf::from("reports/runs")
            .join(format!("{}-{}-sim-{stamp}", scenario.name, scenario.seed))
    });
    let report = crate::sim::run(&scenario, &args.path, &out_dir).map_err(|e| e.to_string())?;
    let text = if json {
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n"
    } else {
        report.summary_text()
    };
    ignore_broken_pipe(write!(io::stdout().lock(), "{text}"))?;
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

/// `roadtest explore`: many seeds on the sim; exit 1 if any failed.
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
