//! `roadtest compare NEW BASELINE`: every gated metric of two reports side by side, its change and
//! a verdict from the gate rules ([`super::gate`]); as a text table and as JUnit XML.
//!
//! What the gate refuses or fails, beyond regressions:
//! - runs from different kinds of target (`target.name`: `sim`, `local`, `containers`,
//!   `external`) are not compared at all ([`CompareError::TargetMismatch`], exit 2) unless the
//!   caller allows it ([`CompareOptions::allow_target_mismatch`]); an empty `target.name` is an
//!   unknown kind and matches nothing;
//! - a metric the baseline has and the new run lacks fails ([`Verdict::Missing`]);
//! - a scenario hash that differs from the baseline's fails ([`Verdict::ScenarioChanged`]);
//! - the tolerances come from the baseline's scenario or a gate file, never from the new run.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::baseline::BaselineRecord;
use super::gate::{Better, Rule, Verdict, noise_of, whole_seconds};
use super::{ExpectationResult, Report, ReportError};
use crate::gate_settings::{GateSettings, GateSettingsError};

/// Two reports that could not be compared (exit 2): one is unreadable, they come from different
/// kinds of target, or the gate settings are bad.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A report could not be read (the message names the file).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The baseline's resolved scenario has a `gate` table that does not parse or validate.
    #[error("{file}: scenario.resolved.{key}: {message}")]
    BaselineGate {
        file: PathBuf,
        key: String,
        message: String,
    },
    /// The gate file given on the command line is unreadable or invalid.
    #[error(transparent)]
    GateFile(#[from] GateSettingsError),
    /// The runs come from different kinds of target, and that was not allowed.
    #[error(
        "cannot compare runs from different kinds of target: the new run {new_file} ran on \
         target `{new_target}`, the baseline {baseline_file} on target `{baseline_target}`; \
         their timings and memory are not comparable. Run the new one with \
         `--target {baseline_target}` (or compare it with a baseline from `{new_target}`), or pass \
         --allow-target-mismatch to compare anyway"
    )]
    TargetMismatch {
        new_file: PathBuf,
        new_target: String,
        baseline_file: PathBuf,
        baseline_target: String,
    },
}

/// How `roadtest compare` is asked to compare.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompareOptions {
    /// Compare runs from different kinds of target instead of refusing (said in the output).
    pub allow_target_mismatch: bool,
    /// Take the tolerances from this gate file instead of the baseline's scenario.
    pub gate_file: Option<PathBuf>,
}

/// A value of a compared row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A measurement.
    Number(f64),
    /// A yes/no fact, like whether the run passed: no ratio, no change.
    YesNo(bool),
    /// Text compared for equality, like the scenario hash.
    Text(String),
}

/// One metric of both reports, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// What is compared, like `e2e p99` or `peak RSS cassandra`.
    pub name: String,
    /// Unit of the values: `ms`, `/s`, `MB`, `events` or empty.
    pub unit: &'static str,
    /// The baseline's value; `None` when the baseline does not have the metric.
    pub baseline: Option<Value>,
    /// The new report's value; `None` when the new report does not have the metric.
    pub new: Option<Value>,
    /// What the gate allows, like `<= 1.50x` or `>= 0.70x`; empty when nothing is gated.
    pub tolerance: String,
    /// The verdict.
    pub verdict: Verdict,
}

impl MetricRow {
    /// new / baseline, when both are numbers and the baseline is not 0.
    pub fn ratio(&self) -> Option<f64> {
        match (&self.baseline, &self.new) {
            (Some(Value::Number(baseline)), Some(Value::Number(new))) if *baseline != 0.0 => {
                Some(new / baseline)
            }
            _ => None,
        }
    }

    /// The change in percent of the baseline, when there is a ratio.
    pub fn change_percent(&self) -> Option<f64> {
        self.ratio().map(|ratio| (ratio - 1.0) * 100.0)
    }

    /// The row's name with its unit, like `e2e p99 (ms)`.
    pub fn label(&self) -> String {
        if self.unit.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.unit)
        }
    }

    /// A value of this row for people: `-` when absent, `yes`/`no` for yes/no values.
    pub fn show(value: Option<&Value>) -> String {
        match value {
            None => "-".to_string(),
            Some(Value::Number(number)) => show_number(*number),
            Some(Value::YesNo(yes)) => if *yes { "yes" } else { "no" }.to_string(),
            Some(Value::Text(text)) => text.clone(),
        }
    }

    /// One line saying why the row failed (or how it moved otherwise).
    pub fn explanation(&self) -> String {
        let change = self
            .change_percent()
            .map(|percent| format!(" ({percent:+.1}%)"))
            .unwrap_or_default();
        let tolerance = if self.tolerance.is_empty() {
            String::new()
        } else {
            format!(", tolerance {}", self.tolerance)
        };
        format!(
            "{}: {} -> {}{change}{tolerance}: {}",
            self.label(),
            Self::show(self.baseline.as_ref()),
            Self::show(self.new.as_ref()),
            self.verdict.as_str()
        )
    }
}

/// Two reports compared: the rows, the new report's expectations and the gate's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportComparison {
    /// Where the new report came from (for people).
    pub new_label: String,
    /// Where the baseline came from (for people).
    pub baseline_label: String,
    /// The kind of target the new run ran on (`target.name`).
    pub new_target: String,
    /// The kind of target the baseline ran on.
    pub baseline_target: String,
    /// The settings the rows were judged with.
    pub settings: GateSettings,
    /// Where the settings came from, for people: the baseline's scenario or a gate file.
    pub settings_source: String,
    /// One row per metric, in a fixed order.
    pub rows: Vec<MetricRow>,
    /// The new report's own expectations, as it checked them.
    pub expectations: Vec<ExpectationResult>,
    /// Things a reader should know, like two different machines.
    pub notes: Vec<String>,
    /// Scenario name of the new report.
    pub scenario: String,
    /// Seed of the new report.
    pub seed: u64,
    /// The new report's replay command.
    pub replay_command: String,
}

/// Reads `new` and `baseline` (each a report.json or a run directory), refuses runs from
/// different kinds of target unless allowed, and compares them with the baseline's gate
/// settings (or the gate file's).
pub fn compare_files(
    new: &Path,
    baseline: &Path,
    options: &CompareOptions,
) -> Result<ReportComparison, CompareError> {
    let new_report = Report::read(new)?;
    let baseline_report = Report::read(baseline)?;
    let record = BaselineRecord::read(baseline)?;
    check_targets(&new_report, &baseline_report, options.allow_target_mismatch).map_err(
        |(new_target, baseline_target)| CompareError::TargetMismatch {
            new_file: new.to_path_buf(),
            new_target,
            baseline_file: baseline.to_path_buf(),
            baseline_target,
        },
    )?;
    let (settings, source) = settings_for(&baseline_report, baseline, options)?;
    let mut comparison = compare(&new_report, &baseline_report, settings);
    comparison.settings_source = source;
    comparison.new_label = new.display().to_string();
    comparison.baseline_label = baseline.display().to_string();
    if let Some(record) = record {
        comparison.notes.push(record.describe());
    }
    Ok(comparison)
}

/// The kind of target of a report, `(unknown)` when it has none.
fn target_kind(report: &Report) -> &str {
    if report.target.name.is_empty() {
        "(unknown)"
    } else {
        &report.target.name
    }
}

/// Ok when both runs ran on the same kind of target (or a mismatch is allowed); else the two
/// kinds, new first. An unknown kind matches nothing.
pub fn check_targets(new: &Report, baseline: &Report, allow: bool) -> Result<(), (String, String)> {
    let same = !new.target.name.is_empty() && new.target.name == baseline.target.name;
    if same || allow {
        Ok(())
    } else {
        Err((
            target_kind(new).to_string(),
            target_kind(baseline).to_string(),
        ))
    }
}

/// The gate settings and where they came from: the gate file when given, else the baseline's
/// resolved scenario (defaults when it has no `[gate]` table). Never the new run's.
fn settings_for(
    baseline: &Report,
    baseline_file: &Path,
    options: &CompareOptions,
) -> Result<(GateSettings, String), CompareError> {
    if let Some(file) = &options.gate_file {
        let settings = GateSettings::read_file(file)?;
        return Ok((settings, format!("gate file {}", file.display())));
    }
    let settings =
        GateSettings::from_resolved(&baseline.scenario.resolved).map_err(|(key, message)| {
            CompareError::BaselineGate {
                file: baseline_file.to_path_buf(),
                key,
                message,
            }
        })?;
    let source = if baseline.scenario.resolved.get("gate").is_some() {
        "the baseline's scenario [gate]"
    } else {
        "defaults (the baseline's scenario has no [gate] table)"
    };
    Ok((settings, source.to_string()))
}

/// Compares `new` against `baseline` under `settings` (the caller chose them and checked the
/// targets; a target mismatch is noted here).
pub fn compare(new: &Report, baseline: &Report, settings: GateSettings) -> ReportComparison {
    let mut rows = vec![scenario_row(new, baseline)];
    rows.extend(latency_rows(new, baseline, &settings));
    rows.extend(throughput_rows(new, baseline, &settings));
    rows.extend(memory_rows(new, baseline, &settings));
    rows.extend(count_rows(new, baseline));
    rows.push(passed_row(new, baseline));
    ReportComparison {
        new_label: "new".to_string(),
        baseline_label: "baseline".to_string(),
        new_target: target_kind(new).to_string(),
        baseline_target: target_kind(baseline).to_string(),
        settings,
        settings_source: "given".to_string(),
        rows,
        expectations: new.expectations.clone(),
        notes: notes(new, baseline),
        scenario: new.scenario.name.clone(),
        seed: new.seed,
        replay_command: new.replay_command.clone(),
    }
}

/// The scenario hash (first 64 bits of SHA-256 of the scenario without its seed, hex) must be
/// the baseline's: a changed scenario is judged against a baseline of itself, never another.
/// The one exception: the same load into another consumer (a consumer of the user's own
/// against the reference consumer), which is what such a comparison is for.
fn scenario_row(new: &Report, baseline: &Report) -> MetricRow {
    let (verdict, tolerance) = if new.scenario.hash == baseline.scenario.hash {
        (Verdict::Ok, "same")
    } else if same_load_other_consumer(new, baseline) {
        (Verdict::Ok, "same load, another consumer")
    } else {
        (Verdict::ScenarioChanged, "same")
    };
    MetricRow {
        name: "scenario hash".to_string(),
        unit: "",
        baseline: Some(Value::Text(baseline.scenario.hash.clone())),
        new: Some(Value::Text(new.scenario.hash.clone())),
        tolerance: tolerance.to_string(),
        verdict,
    }
}

/// The load hash of a report's scenario ([`crate::Scenario::load_hash`]), from the resolved
/// scenario it carries (so baselines recorded before the load hash existed have one too).
fn load_hash(report: &Report) -> Option<String> {
    let scenario: crate::Scenario =
        serde_json::from_value(report.scenario.resolved.clone()).ok()?;
    Some(scenario.load_hash())
}

/// Whether two runs sent the same load into different consumers.
fn same_load_other_consumer(new: &Report, baseline: &Report) -> bool {
    consumer_name(new) != consumer_name(baseline)
        && load_hash(new).is_some_and(|hash| Some(hash) == load_hash(baseline))
}

/// A consumer as a comparison names it.
fn consumer_name(report: &Report) -> String {
    if report.consumer.runs_elsewhere {
        "a consumer running elsewhere".to_string()
    } else {
        report.consumer.own_name().map_or_else(
            || "the reference consumer".to_string(),
            |name| format!("`{name}`"),
        )
    }
}

/// The baseline's per-second e2e latencies of one kind (p50, p99 or max), seconds with rows only.
fn per_second(report: &Report, pick: fn(&crate::measure::IntervalSummary) -> f64) -> Vec<f64> {
    report
        .latency
        .e2e_intervals
        .iter()
        .filter(|interval| interval.count > 0)
        .map(pick)
        .collect()
}

/// e2e p50, p99 and max; a report without latency samples does not have them.
fn latency_rows(new: &Report, baseline: &Report, settings: &GateSettings) -> Vec<MetricRow> {
    type Pick = fn(&crate::measure::IntervalSummary) -> f64;
    type Summary = fn(&crate::measure::LatencySummary) -> f64;
    let kinds: [(&str, Summary, Pick, f64); 3] = [
        (
            "e2e p50",
            |s| s.p50_ms,
            |i| i.p50_ms,
            settings.latency_ratio_max,
        ),
        (
            "e2e p99",
            |s| s.p99_ms,
            |i| i.p99_ms,
            settings.latency_ratio_max,
        ),
        (
            "e2e max",
            |s| s.max_ms,
            |i| i.max_ms,
            settings.latency_max_ratio_max,
        ),
    ];
    let value = |report: &Report, summary: Summary| {
        let e2e = &report.latency.e2e_ms;
        (e2e.count > 0).then(|| summary(e2e))
    };
    kinds
        .into_iter()
        .map(|(name, summary, pick, ratio_bound)| {
            let rule = Rule {
                better: Better::Lower,
                ratio_bound,
                noise: noise_of(&per_second(baseline, pick), settings.noise_sigmas),
                floor: settings.latency_rise_ms_min,
            };
            let (base, fresh) = (value(baseline, summary), value(new, summary));
            judged(name, "ms", base, fresh, rule)
        })
        .collect()
}

/// Written/s and produced/s, with the noise of the baseline's whole seconds.
fn throughput_rows(new: &Report, baseline: &Report, settings: &GateSettings) -> Vec<MetricRow> {
    let (fresh, base) = (&new.throughput, &baseline.throughput);
    [
        (
            "written",
            fresh.written_per_s,
            base.written_per_s,
            &base.written,
        ),
        (
            "produced",
            fresh.produced_per_s,
            base.produced_per_s,
            &base.produced,
        ),
    ]
    .into_iter()
    .map(|(name, new_per_s, baseline_per_s, counts)| {
        let rule = Rule {
            better: Better::Higher,
            ratio_bound: settings.throughput_ratio_min,
            noise: noise_of(&whole_seconds(counts), settings.noise_sigmas),
            floor: 0.0,
        };
        judged(name, "/s", Some(baseline_per_s), Some(new_per_s), rule)
    })
    .collect()
}

/// Peak RSS of every process either run measured, with the noise of the baseline's timeline.
fn memory_rows(new: &Report, baseline: &Report, settings: &GateSettings) -> Vec<MetricRow> {
    let mut processes: Vec<&String> = new
        .memory
        .peak_rss_mb
        .keys()
        .chain(baseline.memory.peak_rss_mb.keys())
        .collect();
    processes.sort();
    processes.dedup();
    processes
        .into_iter()
        .map(|process| {
            let samples: Vec<f64> = baseline
                .memory
                .timelines
                .get(process)
                .map(|points| points.iter().filter_map(|p| p.rss_mb).collect())
                .unwrap_or_default();
            let rule = Rule {
                better: Better::Lower,
                ratio_bound: settings.memory_ratio_max,
                noise: noise_of(&samples, settings.noise_sigmas),
                floor: settings.memory_rise_mb_min,
            };
            let base = baseline.memory.peak_rss_mb.get(process).copied();
            let fresh = new.memory.peak_rss_mb.get(process).copied();
            judged(&format!("peak RSS {process}"), "MB", base, fresh, rule)
        })
        .collect()
}

/// Lost, corrupt and unexpected events: any rise above the baseline's count regresses.
fn count_rows(new: &Report, baseline: &Report) -> Vec<MetricRow> {
    let exact = Rule {
        better: Better::Lower,
        ratio_bound: 1.0,
        noise: 0.0,
        floor: 0.0,
    };
    let (fresh, base) = (&new.verify, &baseline.verify);
    [
        ("lost", fresh.lost, base.lost),
        ("corrupt", fresh.corrupt, base.corrupt),
        ("unexpected", fresh.unexpected, base.unexpected),
    ]
    .into_iter()
    .map(|(name, new_count, baseline_count)| {
        let (base, fresh) = (Some(baseline_count as f64), Some(new_count as f64));
        let mut row = judged(name, "events", base, fresh, exact);
        row.tolerance = "<= baseline".to_string();
        row
    })
    .collect()
}

/// Whether the new run passed its own expectations: it must.
fn passed_row(new: &Report, baseline: &Report) -> MetricRow {
    MetricRow {
        name: "run passed".to_string(),
        unit: "",
        baseline: Some(Value::YesNo(baseline.passed)),
        new: Some(Value::YesNo(new.passed)),
        tolerance: "must pass".to_string(),
        verdict: match (new.passed, baseline.passed) {
            (false, _) => Verdict::Regression,
            (true, false) => Verdict::Better,
            (true, true) => Verdict::Ok,
        },
    }
}

/// A measured metric judged by `rule`: missing in the new run fails, a metric only the new run
/// has is shown and not judged.
fn judged(
    name: &str,
    unit: &'static str,
    baseline: Option<f64>,
    new: Option<f64>,
    rule: Rule,
) -> MetricRow {
    let (tolerance, verdict) = match (baseline, new) {
        (Some(baseline), Some(new)) => {
            let judgement = rule.judge(baseline, new);
            let sign = match rule.better {
                Better::Lower => "<=",
                Better::Higher => ">=",
            };
            let tolerance = format!("{sign} {:.2}x", judgement.tolerance_ratio);
            (tolerance, judgement.verdict)
        }
        (Some(_), None) => ("present".to_string(), Verdict::Missing),
        (None, _) => (String::new(), Verdict::Ok),
    };
    MetricRow {
        name: name.to_string(),
        unit,
        baseline: baseline.map(Value::Number),
        new: new.map(Value::Number),
        tolerance,
        verdict,
    }
}

fn notes(new: &Report, baseline: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    if new.target.name != baseline.target.name {
        notes.push(format!(
            "TARGET MISMATCH allowed (--allow-target-mismatch): the new run ran on {}, the \
             baseline on {}; their timings and memory are not comparable",
            target_kind(new),
            target_kind(baseline)
        ));
    }
    if same_load_other_consumer(new, baseline) {
        notes.push(format!(
            "ANOTHER CONSUMER: the same load (scenario {} against {}) into {} in the new run \
             and {} in the baseline",
            new.scenario.name,
            baseline.scenario.name,
            consumer_name(new),
            consumer_name(baseline)
        ));
    } else if new.scenario.hash != baseline.scenario.hash {
        notes.push(format!(
            "the scenario changed: {} (hash {}) against a baseline of {} (hash {}); if the \
             change is intended, record a new baseline: roadtest run {} --target {} --out DIR, \
             then roadtest baseline DIR --out BASELINE",
            new.scenario.name,
            new.scenario.hash,
            baseline.scenario.name,
            baseline.scenario.hash,
            new.scenario.path,
            target_kind(baseline)
        ));
    }
    if new.machine.cores != baseline.machine.cores {
        notes.push(format!(
            "different machines: {} cores against {}",
            new.machine.cores, baseline.machine.cores
        ));
    }
    if !baseline.passed {
        notes.push("the baseline itself did not pass its expectations".to_string());
    }
    notes
}

impl ReportComparison {
    /// The rows that fail the gate (regressed, missing in the new run, scenario changed).
    pub fn failures(&self) -> impl Iterator<Item = &MetricRow> {
        self.rows.iter().filter(|row| row.verdict.fails())
    }

    /// True when no row failed (the new report's `passed` is one of the rows).
    pub fn gate_passed(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The comparison for people: a header, one line per metric, the notes and the gate's verdict.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_text(&mut text);
        text
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "roadtest compare: {} (scenario {}, seed {}, target {}) against {} (target {})",
            self.new_label,
            self.scenario,
            self.seed,
            self.new_target,
            self.baseline_label,
            self.baseline_target
        )?;
        writeln!(out, "tolerances from {}", self.settings_source)?;
        self.write_rows(out)?;
        for note in &self.notes {
            writeln!(out, "note: {note}")?;
        }
        let failures: Vec<&str> = self.failures().map(|row| row.name.as_str()).collect();
        if failures.is_empty() {
            writeln!(out, "gate: PASSED (no metric failed)")
        } else {
            writeln!(
                out,
                "gate: FAILED: {} failed ({}); replay the new run with: {}",
                failures.len(),
                failures.join(", "),
                self.replay_command
            )
        }
    }

    fn write_rows(&self, out: &mut String) -> std::fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|row| row.label().len())
            .max()
            .unwrap_or(0)
            .max("metric".len());
        writeln!(
            out,
            "{:<width$}  {:>16}  {:>16}  {:>8}  {:>8}  {:>11}  verdict",
            "metric", "baseline", "new", "ratio", "change", "tolerance"
        )?;
        for row in &self.rows {
            let ratio = row
                .ratio()
                .map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
            let change = row
                .change_percent()
                .map_or_else(|| "-".to_string(), |p| format!("{p:+.1}%"));
            let mark = if row.verdict.fails() {
                row.verdict.as_str().to_uppercase()
            } else {
                row.verdict.as_str().to_string()
            };
            writeln!(
                out,
                "{:<width$}  {:>16}  {:>16}  {:>8}  {:>8}  {:>11}  {mark}",
                row.label(),
                MetricRow::show(row.baseline.as_ref()),
                MetricRow::show(row.new.as_ref()),
                ratio,
                change,
                row.tolerance
            )?;
        }
        Ok(())
    }
}

/// Whole numbers without decimals, others with up to two (three below 10).
fn show_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.abs() < 10.0 {
        format!("{value:.3}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::seed::rng_for;

    /// A real report: 1,000 vehicles at 1 Hz for 60 s on the local target (memory timelines
    /// thinned to one sample a second). It predates `latency.e2e_percentiles`.
    const STEADY_REPORT: &str = include_str!("testdata/steady-1000-vehicles.json");

    pub(crate) fn steady_report() -> Report {
        serde_json::from_str(STEADY_REPORT).expect("the fixture is a valid report")
    }

    fn verdict_of<'a>(comparison: &'a ReportComparison, name: &str) -> &'a MetricRow {
        comparison
            .rows
            .iter()
            .find(|row| row.name == name)
            .unwrap_or_else(|| panic!("no row {name}"))
    }

    fn regressed(comparison: &ReportComparison) -> Vec<&str> {
        comparison.failures().map(|row| row.name.as_str()).collect()
    }

    fn scale_latency(report: &mut Report, factor: f64) {
        let scale = |summary: &mut crate::measure::LatencySummary| {
            for value in [
                &mut summary.min_ms,
                &mut summary.p50_ms,
                &mut summary.p90_ms,
                &mut summary.p99_ms,
                &mut summary.p999_ms,
                &mut summary.max_ms,
                &mut summary.mean_ms,
            ] {
                *value *= factor;
            }
        };
        scale(&mut report.latency.e2e_ms);
        report.latency.stages.values_mut().for_each(scale);
        for interval in &mut report.latency.e2e_intervals {
            interval.p50_ms *= factor;
            interval.p99_ms *= factor;
            interval.max_ms *= factor;
        }
        for point in &mut report.latency.e2e_percentiles {
            point.value_ms *= factor;
        }
    }

    fn scale_throughput(report: &mut Report, factor: f64) {
        let throughput = &mut report.throughput;
        for series in [
            &mut throughput.produced,
            &mut throughput.consumed,
            &mut throughput.written,
        ] {
            for count in series.iter_mut() {
                *count = (*count as f64 * factor).round() as u64;
            }
        }
        throughput.produced_per_s *= factor;
        throughput.consumed_per_s *= factor;
        throughput.written_per_s *= factor;
        throughput.peak_written_per_s = (throughput.peak_written_per_s as f64 * factor) as u64;
    }

    /// The same run as it might come out again on a noisy machine: every number moved by a few
    /// percent, latencies by up to 25%.
    fn honest_rerun(seed: u64) -> Report {
        let mut report = steady_report();
        let mut rng = rng_for(seed, "compare-test", 0);
        scale_latency(&mut report, rng.uniform(0.75, 1.25));
        scale_throughput(&mut report, rng.uniform(0.97, 1.03));
        for peak in report.memory.peak_rss_mb.values_mut() {
            *peak *= rng.uniform(0.9, 1.1);
        }
        report.seed = seed;
        report
    }

    #[test]
    fn the_fixture_is_a_real_passing_run() {
        let report = steady_report();
        assert!(report.passed);
        assert_eq!(report.verify.expected, 60_030);
        assert!(report.latency.e2e_intervals.len() >= 60);
        assert!(report.latency.e2e_percentiles.is_empty(), "older schema");
    }

    #[test]
    fn a_run_against_itself_is_ok_everywhere() {
        let report = steady_report();
        let comparison = compare(&report, &report, GateSettings::default());
        assert!(comparison.gate_passed());
        assert!(
            comparison.rows.iter().all(|row| row.verdict == Verdict::Ok),
            "{}",
            comparison.to_text()
        );
        assert_eq!(comparison.rows.len(), 1 + 3 + 2 + 5 + 3 + 1);
        assert!(comparison.notes.is_empty(), "{:?}", comparison.notes);
    }

    #[test]
    fn honest_reruns_with_noise_pass_the_gate() {
        let baseline = steady_report();
        for seed in 1..=20 {
            let rerun = honest_rerun(seed);
            let comparison = compare(&rerun, &baseline, GateSettings::default());
            assert!(
                comparison.gate_passed(),
                "seed {seed}:\n{}",
                comparison.to_text()
            );
        }
    }

    #[test]
    fn halved_throughput_fails_the_gate() {
        let baseline = steady_report();
        let mut halved = baseline.clone();
        scale_throughput(&mut halved, 0.5);
        let comparison = compare(&halved, &baseline, GateSettings::default());
        assert_eq!(
            regressed(&comparison),
            ["written", "produced"],
            "{}",
            comparison.to_text()
        );
        let written = verdict_of(&comparison, "written");
        assert!((written.ratio().unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(written.tolerance, ">= 0.70x");
        // Also when the scenario loosens the ratio bound as far as it goes: noise never hides 2x.
        let loose = GateSettings {
            throughput_ratio_min: 0.51,
            noise_sigmas: 10.0,
            ..GateSettings::default()
        };
        let comparison = compare(&halved, &baseline, loose);
        assert!(!comparison.gate_passed(), "{}", comparison.to_text());
    }

    #[test]
    fn doubled_latency_fails_the_gate() {
        let baseline = steady_report();
        let mut doubled = baseline.clone();
        scale_latency(&mut doubled, 2.0);
        let comparison = compare(&doubled, &baseline, GateSettings::default());
        assert_eq!(
            regressed(&comparison),
            ["e2e p50", "e2e p99"],
            "{}",
            comparison.to_text()
        );
        // The max may move more: one slow event sets it.
        assert_ne!(
            verdict_of(&comparison, "e2e max").verdict,
            Verdict::Regression
        );
        // The baseline's per-second p99s are noisy, so the tolerance is wider than 1.5x, but
        // below 2x.
        let p99 = verdict_of(&comparison, "e2e p99");
        assert!(p99.tolerance.starts_with("<= 1.") && p99.tolerance != "<= 1.50x");
    }

    #[test]
    fn lost_events_and_a_failed_verdict_fail_the_gate() {
        let baseline = steady_report();
        let mut lossy = baseline.clone();
        lossy.verify.lost = 3;
        lossy.verify.unexpected = 1;
        let comparison = compare(&lossy, &baseline, GateSettings::default());
        assert_eq!(regressed(&comparison), ["lost", "unexpected"]);
        let mut failed = baseline.clone();
        failed.passed = false;
        let comparison = compare(&failed, &baseline, GateSettings::default());
        assert_eq!(regressed(&comparison), ["run passed"]);
        let passed = verdict_of(&comparison, "run passed");
        assert_eq!(passed.ratio(), None);
        assert_eq!(
            passed.explanation(),
            "run passed: yes -> no, tolerance must pass: regression"
        );
        // Fewer losses than the baseline is better, not a regression.
        let mut baseline_lossy = baseline.clone();
        baseline_lossy.verify.corrupt = 2;
        let comparison = compare(&baseline, &baseline_lossy, GateSettings::default());
        assert!(comparison.gate_passed());
        assert_eq!(verdict_of(&comparison, "corrupt").verdict, Verdict::Better);
    }

    #[test]
    fn memory_growth_beyond_ratio_and_floor_regresses() {
        let baseline = steady_report();
        let mut grown = baseline.clone();
        *grown.memory.peak_rss_mb.get_mut("cassandra").unwrap() *= 2.0;
        // The consumer triples, but by less than the 32 MB floor.
        *grown.memory.peak_rss_mb.get_mut("consumer").unwrap() *= 3.0;
        grown
            .memory
            .peak_rss_mb
            .insert("newcomer".to_string(), 10.0);
        let comparison = compare(&grown, &baseline, GateSettings::default());
        assert_eq!(regressed(&comparison), ["peak RSS cassandra"]);
        let newcomer = verdict_of(&comparison, "peak RSS newcomer");
        assert_eq!(
            (&newcomer.baseline, &newcomer.new),
            (&None, &Some(Value::Number(10.0)))
        );
        assert_eq!(newcomer.verdict, Verdict::Ok);
    }

    #[test]
    fn text_lists_every_metric_and_the_verdict() {
        let baseline = steady_report();
        let mut doubled = baseline.clone();
        scale_latency(&mut doubled, 2.0);
        doubled.scenario.hash = "0000000000000000".to_string();
        let text = compare(&doubled, &baseline, GateSettings::default()).to_text();
        assert!(
            text.starts_with(
                "roadtest compare: new (scenario steady, seed 42, target local) against baseline (target local)\n"
            ),
            "{text}"
        );
        assert!(text.contains("e2e p99 (ms)"), "{text}");
        assert!(text.contains("2.00x"), "{text}");
        assert!(text.contains("+100.0%"), "{text}");
        assert!(text.contains("REGRESSION"), "{text}");
        assert!(text.contains("peak RSS cql-bridge (MB)"), "{text}");
        assert!(text.contains("SCENARIO CHANGED"), "{text}");
        assert!(text.contains("note: the scenario changed"), "{text}");
        assert!(
            text.contains("roadtest baseline DIR --out BASELINE"),
            "{text}"
        );
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("gate: FAILED: 3 failed (scenario hash, e2e p50, e2e p99); replay the new run with: roadtest run"),
            "{text}"
        );
        let passing = compare(&baseline, &baseline, GateSettings::default()).to_text();
        assert!(
            passing.ends_with("gate: PASSED (no metric failed)\n"),
            "{passing}"
        );
    }

    /// A fresh temp dir for one test.
    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("roadtest-compare-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn tolerances_come_from_the_baseline_never_from_the_new_run() {
        let dir = temp_dir("settings");
        let mut baseline = steady_report();
        baseline.scenario.resolved["gate"] = serde_json::json!({"latency_ratio_max": 1.2});
        let baseline_file = baseline.write(&dir.join("baseline")).unwrap();
        let mut new = steady_report();
        // The new run loosens its own gate, and even writes a bad one: neither counts.
        new.scenario.resolved["gate"] = serde_json::json!({"latency_ratio_max": 0.5});
        new.write(&dir.join("new")).unwrap();
        let options = CompareOptions::default();
        let comparison = compare_files(&dir.join("new"), &baseline_file, &options).unwrap();
        assert_eq!(comparison.settings.latency_ratio_max, 1.2);
        assert_eq!(comparison.settings_source, "the baseline's scenario [gate]");
        assert!(comparison.new_label.ends_with("new"));
        // A bad gate table in the baseline is named with its file and key.
        baseline.scenario.resolved["gate"] = serde_json::json!({"latency_ratio_max": 0.5});
        baseline.write(&dir.join("baseline")).unwrap();
        let error = compare_files(&dir.join("new"), &baseline_file, &options).unwrap_err();
        assert!(
            matches!(error, CompareError::BaselineGate { ref key, .. } if key == "gate.latency_ratio_max"),
            "{error}"
        );
        // A gate file replaces the baseline's table (bad or not).
        let gate_file = dir.join("gate.toml");
        std::fs::write(&gate_file, "latency_ratio_max = 1.7\n").unwrap();
        let with_file = CompareOptions {
            gate_file: Some(gate_file.clone()),
            ..CompareOptions::default()
        };
        let comparison = compare_files(&dir.join("new"), &baseline_file, &with_file).unwrap();
        assert_eq!(comparison.settings.latency_ratio_max, 1.7);
        assert_eq!(
            comparison.settings_source,
            format!("gate file {}", gate_file.display())
        );
        std::fs::write(&gate_file, "latency_drop = 1.7\n").unwrap();
        let error = compare_files(&dir.join("new"), &baseline_file, &with_file).unwrap_err();
        assert!(matches!(error, CompareError::GateFile(_)), "{error}");
        assert!(error.to_string().contains("latency_drop"), "{error}");
        let missing = compare_files(&dir.join("nowhere"), &baseline_file, &options).unwrap_err();
        assert!(matches!(missing, CompareError::Report(_)), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn different_kinds_of_target_are_refused_unless_allowed() {
        let baseline = steady_report();
        let mut sim = baseline.clone();
        sim.target.name = "sim".to_string();
        assert_eq!(
            check_targets(&sim, &baseline, false),
            Err(("sim".to_string(), "local".to_string()))
        );
        assert_eq!(check_targets(&sim, &baseline, true), Ok(()));
        assert_eq!(check_targets(&baseline, &baseline, false), Ok(()));
        // An unknown kind matches nothing, not even another unknown one.
        let mut unknown = baseline.clone();
        unknown.target.name = String::new();
        assert_eq!(
            check_targets(&unknown, &unknown, false),
            Err(("(unknown)".to_string(), "(unknown)".to_string()))
        );
        let dir = temp_dir("targets");
        let new_file = sim.write(&dir.join("new")).unwrap();
        let baseline_file = baseline.write(&dir.join("baseline")).unwrap();
        let error =
            compare_files(&new_file, &baseline_file, &CompareOptions::default()).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, CompareError::TargetMismatch { .. }),
            "{message}"
        );
        for needle in [
            "`sim`",
            "`local`",
            "new/report.json",
            "baseline/report.json",
            "--allow-target-mismatch",
        ] {
            assert!(message.contains(needle), "{message} lacks {needle}");
        }
        let allowed = CompareOptions {
            allow_target_mismatch: true,
            ..CompareOptions::default()
        };
        let text = compare_files(&new_file, &baseline_file, &allowed)
            .unwrap()
            .to_text();
        assert!(text.contains("note: TARGET MISMATCH allowed (--allow-target-mismatch): the new run ran on sim, the baseline on local"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_metric_the_new_run_lacks_fails_the_gate() {
        let baseline = steady_report();
        let mut sim_like = baseline.clone();
        sim_like.memory = crate::report::MemorySection::default();
        let comparison = compare(&sim_like, &baseline, GateSettings::default());
        assert_eq!(
            regressed(&comparison),
            [
                "peak RSS broker",
                "peak RSS cassandra",
                "peak RSS consumer",
                "peak RSS cql-bridge",
                "peak RSS roadtest"
            ]
        );
        let broker = verdict_of(&comparison, "peak RSS broker");
        assert_eq!(broker.verdict, Verdict::Missing);
        assert_eq!(broker.new, None);
        assert!(
            broker
                .explanation()
                .ends_with(" -> -, tolerance present: missing in new run"),
            "{}",
            broker.explanation()
        );
        let text = comparison.to_text();
        assert!(text.contains("MISSING IN NEW RUN"), "{text}");
        // A run without latency samples lacks its latencies.
        let mut silent = baseline.clone();
        silent.latency.e2e_ms = crate::measure::LatencySummary::default();
        let comparison = compare(&silent, &baseline, GateSettings::default());
        assert_eq!(verdict_of(&comparison, "e2e p99").verdict, Verdict::Missing);
        // What only the new run has is shown, not judged.
        let comparison = compare(&baseline, &silent, GateSettings::default());
        assert_eq!(verdict_of(&comparison, "e2e p99").verdict, Verdict::Ok);
    }

    #[test]
    fn a_changed_scenario_fails_the_gate_and_says_how_to_refresh() {
        let baseline = steady_report();
        let mut changed = baseline.clone();
        changed.scenario.hash = "0123456789abcdef".to_string();
        let comparison = compare(&changed, &baseline, GateSettings::default());
        assert_eq!(regressed(&comparison), ["scenario hash"]);
        let row = verdict_of(&comparison, "scenario hash");
        assert_eq!(row.verdict, Verdict::ScenarioChanged);
        assert_eq!(
            row.explanation(),
            "scenario hash: 145a40ea78ae689b -> 0123456789abcdef, tolerance same: scenario changed"
        );
        assert!(
            comparison.notes.iter().any(|note| note.contains(
                "record a new baseline: roadtest run scenarios/steady.toml --target local --out DIR"
            )),
            "{:?}",
            comparison.notes
        );
    }

    #[test]
    fn the_same_load_into_another_consumer_is_compared_and_said_so() {
        let baseline = steady_report();
        let own_consumer = |command: &[&str], batch_size: u64| {
            let mut report = baseline.clone();
            report.consumer.command = command.iter().map(ToString::to_string).collect();
            let resolved = &mut report.scenario.resolved["pipeline"]["consumer"];
            resolved["batch_size"] = batch_size.into();
            if !command.is_empty() {
                resolved["command"] = serde_json::json!(command);
            }
            report.scenario.hash = "0123456789abcdef".to_string();
            report
        };
        let python = own_consumer(&["python3", "consumer.py"], 100);
        let comparison = compare(&python, &baseline, GateSettings::default());
        assert_eq!(regressed(&comparison), Vec::<&str>::new());
        let row = verdict_of(&comparison, "scenario hash");
        assert_eq!(row.verdict, Verdict::Ok);
        assert_eq!(row.tolerance, "same load, another consumer");
        let note = comparison
            .notes
            .iter()
            .find(|note| note.starts_with("ANOTHER CONSUMER"))
            .expect("the note names both consumers");
        assert!(note.contains("into `python3 consumer.py` in the new run and the reference consumer in the baseline"), "{note}");
        // The same consumer with other settings is a changed scenario, as is another load.
        let retuned = own_consumer(&[], 7);
        let comparison = compare(&retuned, &baseline, GateSettings::default());
        assert_eq!(regressed(&comparison), ["scenario hash"]);
        let mut more = python.clone();
        more.scenario.resolved["fleet"]["vehicle_count"] = 1001.into();
        let comparison = compare(&more, &baseline, GateSettings::default());
        assert_eq!(regressed(&comparison), ["scenario hash"]);
    }
}
