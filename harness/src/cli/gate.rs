//! `roadtest compare` and `roadtest baseline`: the CI gate's two commands, from arguments to exit code.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_FAILED, EXIT_PASSED, ignore_broken_pipe};
use crate::report::baseline::{BaselineRecord, hostname};
use crate::report::compare::{CompareOptions, compare_files};
use crate::report::{MachineSection, Report, format_rfc3339};

/// `roadtest compare NEW BASELINE [--gate] [--gate-file FILE] [--allow-target-mismatch] [--junit FILE]`.
#[derive(Debug, Args)]
pub(super) struct CompareArgs {
    /// The new run: its directory or report.json.
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// The baseline: a file written by `roadtest baseline` (like reports/baselines/NAME.json), a
    /// report.json or a run directory.
    #[arg(value_name = "BASELINE")]
    baseline: PathBuf,
    /// Exit 1 when a metric regressed past its tolerance, is missing in the new run, or the
    /// scenario changed since the baseline.
    #[arg(long)]
    gate: bool,
    /// Take the tolerances from this TOML file (the keys of a scenario's `[gate]` table, at its
    /// top level) instead of the baseline's scenario. The new run's own `[gate]` is never used.
    #[arg(long, value_name = "FILE")]
    gate_file: Option<PathBuf>,
    /// Compare runs from different kinds of target (sim, local, containers, external) instead of
    /// refusing with exit 2; the output says so.
    #[arg(long)]
    allow_target_mismatch: bool,
    /// Also write the comparison as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

/// `roadtest baseline RUN --out FILE`.
#[derive(Debug, Args)]
pub(super) struct BaselineArgs {
    /// The run: its directory or report.json. It must have passed.
    #[arg(value_name = "RUN")]
    run: PathBuf,
    /// The baseline file to write, like reports/baselines/NAME.json (replaced if it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// The table on stdout, JUnit on request; with `--gate`, exit 1 when a row failed.
pub(super) fn compare(args: &CompareArgs) -> Result<u8, String> {
    let options = CompareOptions {
        allow_target_mismatch: args.allow_target_mismatch,
        gate_file: args.gate_file.clone(),
    };
    let comparison =
        compare_files(&args.new, &args.baseline, &options).map_err(|e| e.to_string())?;
    if let Some(file) = &args.junit {
        std::fs::write(file, comparison.to_junit())
            .map_err(|e| format!("{}: cannot write the JUnit file: {e}", file.display()))?;
    }
    let stdout = io::stdout();
    ignore_broken_pipe(write!(stdout.lock(), "{}", comparison.to_text()))?;
    Ok(if args.gate && !comparison.gate_passed() {
        EXIT_FAILED
    } else {
        EXIT_PASSED
    })
}

/// Writes the baseline; a failed run, an unreadable report or an unwritable file is an error
/// (exit 2: nothing was recorded).
pub(super) fn baseline(args: &BaselineArgs) -> Result<u8, String> {
    let report = Report::read(&args.run).map_err(|e| e.to_string())?;
    let here = MachineSection::detect();
    let recorded_at = format_rfc3339(std::time::SystemTime::now());
    let record = BaselineRecord::of(&report, &args.run, &here, hostname(), recorded_at)
        .map_err(|e| e.to_string())?;
    record
        .write(&report, &args.out)
        .map_err(|e| e.to_string())?;
    say_what_was_recorded(&record, &args.out);
    Ok(EXIT_PASSED)
}

fn say_what_was_recorded(record: &BaselineRecord, out: &Path) {
    eprintln!("roadtest: wrote {}: {}", out.display(), record.describe());
    if record.machine.hostname.is_none() {
        eprintln!(
            "roadtest: note: this host differs from the run's ({} cores, {} MB), so the run's \
             host name is unknown and left out",
            record.machine.cores, record.machine.memory_mb
        );
    }
    if record.target != "local" {
        eprintln!(
            "roadtest: note: the run's target is {}; CI gates compare against local runs",
            record.target
        );
    }
}
