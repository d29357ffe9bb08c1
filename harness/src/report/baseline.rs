//! `roadtest baseline RUN --out FILE`: a passed run's report.json plus a `baseline` record (target, machine, scenario hash), the file `roadtest compare` judges new runs against.
//!
//! A baseline file is the run's report (every key of `report.json`, so `roadtest compare` and
//! `roadtest report` read it like any report) with one more top-level key, `baseline`:
//!
//! | key | meaning |
//! |---|---|
//! | `baseline.recorded_at` | when the baseline was written, RFC 3339 UTC |
//! | `baseline.from` | the run's report.json, as given |
//! | `baseline.target` | the kind of target the run ran on (`local`, `sim`, ...) |
//! | `baseline.machine.{hostname,cores,memory_mb,os}` | the host that ran it; `hostname` is null when the baseline was recorded on another host than the run's |
//! | `baseline.scenario_name`, `.scenario_hash` | the scenario; the hash is the first 64 bits of SHA-256 of its canonical JSON without the seed, in hex |
//!
//! Plain report.json files (older baselines, run directories) are read as baselines too.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{MachineSection, Report, ReportError};

/// What the `baseline` key of a baseline file records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRecord {
    /// When the baseline was written, RFC 3339 UTC.
    pub recorded_at: String,
    /// The run's report.json (or run directory), as given to `roadtest baseline`.
    pub from: String,
    /// The kind of target the run ran on.
    pub target: String,
    /// The host that ran the run.
    pub machine: BaselineMachine,
    /// The scenario's name.
    pub scenario_name: String,
    /// First 64 bits of SHA-256 of the scenario's canonical JSON without its seed, hex.
    pub scenario_hash: String,
}

/// The host of a baseline's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineMachine {
    /// Its host name; `None` when the baseline was recorded on another host than the run's.
    pub hostname: Option<String>,
    /// Logical cores.
    pub cores: u32,
    /// Total memory, MB.
    pub memory_mb: u64,
    /// Operating system and kernel release.
    pub os: String,
}

/// A baseline that could not be recorded or read.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The run's report could not be read.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The run failed its expectations: it is no baseline.
    #[error(
        "{file}: the run failed ({failed}); a failed run is no baseline: fix the cause, run \
         the scenario again and record a run that passed"
    )]
    RunFailed { file: PathBuf, failed: String },
    /// The baseline file could not be written.
    #[error("{file}: cannot write the baseline: {source}")]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// The report and its record, as one JSON object.
#[derive(Serialize)]
struct BaselineFile<'a> {
    #[serde(flatten)]
    report: &'a Report,
    baseline: &'a BaselineRecord,
}

impl BaselineRecord {
    /// The record of a baseline made from `report` (read from `from`) on the host `here` named
    /// `hostname`, at `recorded_at`. Refuses a run that did not pass. The host name is kept only
    /// when `here` looks like the run's machine (same cores and memory).
    pub fn of(
        report: &Report,
        from: &Path,
        here: &MachineSection,
        hostname: Option<String>,
        recorded_at: String,
    ) -> Result<BaselineRecord, BaselineError> {
        if !report.passed {
            return Err(BaselineError::RunFailed {
                file: from.to_path_buf(),
                failed: failed_expectations(report),
            });
        }
        let machine = &report.machine;
        let same_host = here.cores == machine.cores && here.memory_mb == machine.memory_mb;
        Ok(BaselineRecord {
            recorded_at,
            from: from.display().to_string(),
            target: report.target.name.clone(),
            machine: BaselineMachine {
                hostname: hostname.filter(|_| same_host),
                cores: machine.cores,
                memory_mb: machine.memory_mb,
                os: machine.os.clone(),
            },
            scenario_name: report.scenario.name.clone(),
            scenario_hash: report.scenario.hash.clone(),
        })
    }

    /// Writes `report` with this record to `file`, atomically (a temporary file renamed into place).
    pub fn write(&self, report: &Report, file: &Path) -> Result<(), BaselineError> {
        let write_error = |source| BaselineError::Write {
            file: file.to_path_buf(),
            source,
        };
        let document = BaselineFile {
            report,
            baseline: self,
        };
        let mut json = serde_json::to_vec_pretty(&document)
            .map_err(|error| write_error(std::io::Error::other(error)))?;
        json.push(b'\n');
        let name = file.file_name().map_or_else(
            || "baseline".into(),
            |name| name.to_string_lossy().into_owned(),
        );
        let temporary = file.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let written = std::fs::File::create(&temporary)
            .and_then(|mut out| out.write_all(&json).and_then(|()| out.sync_all()))
            .and_then(|()| std::fs::rename(&temporary, file));
        if written.is_err() {
            // Best effort: the error about the real file is what matters.
            let _ = std::fs::remove_file(&temporary);
        }
        written.map_err(write_error)
    }

    /// The `baseline` record of a baseline file (or run directory), `None` for a plain report.
    pub fn read(path: &Path) -> Result<Option<BaselineRecord>, ReportError> {
        let (file, text) = super::store::read_text(path)?;
        let parse_error = |key: String, message: String| ReportError::Parse {
            file: file.clone(),
            key,
            message,
        };
        let mut value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|error| parse_error("(syntax)".to_string(), error.to_string()))?;
        match value.get_mut("baseline").map(serde_json::Value::take) {
            None => Ok(None),
            Some(record) => serde_path_to_error::deserialize(record)
                .map(Some)
                .map_err(|error| {
                    let key = match error.path().to_string() {
                        path if path == "." => "baseline".to_string(),
                        path => format!("baseline.{path}"),
                    };
                    parse_error(key, error.inner().to_string())
                }),
        }
    }

    /// One line for people: where and from what the baseline was recorded.
    pub fn describe(&self) -> String {
        format!(
            "baseline recorded {} from a {} run on {} ({} cores, {} MB), scenario {} (hash {})",
            self.recorded_at,
            self.target,
            self.machine
                .hostname
                .as_deref()
                .unwrap_or("an unnamed host"),
            self.machine.cores,
            self.machine.memory_mb,
            self.scenario_name,
            self.scenario_hash
        )
    }
}

/// The failed expectations of a report, like `lost_max: 3 > 0`, or why it failed otherwise.
fn failed_expectations(report: &Report) -> String {
    let failed: Vec<String> = report
        .expectations
        .iter()
        .filter(|expectation| !expectation.passed)
        .map(|expectation| {
            format!(
                "{}: measured {}, limit {}",
                expectation.name, expectation.value, expectation.threshold
            )
        })
        .collect();
    if failed.is_empty() {
        "passed is false".to_string()
    } else {
        failed.join("; ")
    }
}

/// The host name of this machine, as the kernel has it.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::tests::steady_report;

    fn record_of(report: &Report, here: &MachineSection) -> Result<BaselineRecord, BaselineError> {
        BaselineRecord::of(
            report,
            Path::new("runs/steady/report.json"),
            here,
            Some("ci-runner-1".to_string()),
            "2026-11-30T20:00:00.000Z".to_string(),
        )
    }

    #[test]
    fn a_failed_run_is_refused_naming_what_failed() {
        let mut failed = steady_report();
        failed.passed = false;
        failed.expectations[0].passed = false;
        failed.expectations[0].value = 3.0;
        let error = record_of(&failed, &failed.machine.clone())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "runs/steady/report.json: the run failed (lost_max: measured 3, limit 0)"
            ),
            "{error}"
        );
        assert!(error.contains("a failed run is no baseline"), "{error}");
    }

    #[test]
    fn the_record_names_target_machine_and_scenario_hash() {
        let report = steady_report();
        let record = record_of(&report, &report.machine.clone()).unwrap();
        assert_eq!(record.target, "local");
        assert_eq!(record.scenario_hash, report.scenario.hash);
        assert_eq!(record.machine.hostname.as_deref(), Some("ci-runner-1"));
        assert_eq!(record.machine.cores, report.machine.cores);
        // Recorded on another kind of host: the host name is not the run's, so it is left out.
        let elsewhere = MachineSection {
            cores: report.machine.cores + 6,
            ..report.machine.clone()
        };
        assert_eq!(
            record_of(&report, &elsewhere).unwrap().machine.hostname,
            None
        );
    }

    #[test]
    fn a_baseline_file_reads_as_a_report_and_as_a_record() {
        let dir = std::env::temp_dir().join(format!("roadtest-baseline-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let report = steady_report();
        let plain = report.write(&dir).unwrap();
        assert_eq!(BaselineRecord::read(&plain).unwrap(), None);
        let record = record_of(&report, &report.machine.clone()).unwrap();
        let file = dir.join("steady.json");
        record.write(&report, &file).unwrap();
        assert_eq!(Report::read(&file).unwrap(), report);
        assert_eq!(BaselineRecord::read(&file).unwrap(), Some(record.clone()));
        assert!(
            record
                .describe()
                .contains("from a local run on ci-runner-1")
        );
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        json["baseline"]["cores"] = serde_json::json!(2);
        std::fs::write(&file, json.to_string()).unwrap();
        let error = BaselineRecord::read(&file).unwrap_err().to_string();
        assert!(error.contains("baseline.cores"), "{error}");
        let unwritable = record.write(&report, &dir.join("no/such/dir/x.json"));
        assert!(matches!(unwritable, Err(BaselineError::Write { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
