//! `roadtest compare NEW BASELINE`: every gated metric of two reports side by side, its change and
//! a verdict from the gate rules ([`super::gate`]); as a text table and as JUnit XML.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::gate::{Better, Rule, Verdict, noise_of, whole_seconds};
use super::{ExpectationResult, Report, ReportError};
use crate::gate_settings::GateSettings;

/// Two reports that could not be compared: one is unreadable, or the new one's gate settings are bad.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A report could not be read (the message names the file).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The new report's resolved scenario has a `gate` table that does not parse or validate.
    #[error("{file}: scenario.resolved.{key}: {message}")]
    Gate {
        file: PathBuf,
        key: String,
        message: String,
    },
}

/// One metric of both reports, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// What is compared, like `e2e p99` or `peak RSS cassandra`.
    pub name: String,
    /// Unit of the values: `ms`, `/s`, `MB`, `events` or empty.
    pub unit: &'static str,
    /// The baseline's value; `None` when the baseline does not have the metric.
    pub baseline: Option<f64>,
    /// The new report's value; `None` when the new report does not have the metric.
    pub new: Option<f64>,
    /// What the gate allows, like `<= 1.50x` or `>= 0.70x`; empty when nothing is gated.
    pub tolerance: String,
    /// A yes/no row (1 is yes, 0 is no), like `run passed`: no ratio, no change.
    pub yes_no: bool,
    /// The verdict.
    pub verdict: Verdict,
}

impl MetricRow {
    /// new / baseline, when both exist, the baseline is not 0 and the row is not yes/no.
    pub fn ratio(&self) -> Option<f64> {
        if self.yes_no {
            return None;
        }
        match (self.baseline, self.new) {
            (Some(baseline), Some(new)) if baseline != 0.0 => Some(new / baseline),
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

    /// A value of this row for people: `-` when absent, `yes`/`no` for yes/no rows.
    pub fn show(&self, value: Option<f64>) -> String {
        match value {
            None => "-".to_string(),
            Some(value) if self.yes_no => if value > 0.0 { "yes" } else { "no" }.to_string(),
            Some(value) => number(value),
        }
    }

    /// One line saying why the row regressed (or how it moved otherwise).
    pub fn explanation(&self) -> String {
        let value = |v: Option<f64>| self.show(v);
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
            value(self.baseline),
            value(self.new),
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
    /// The settings the rows were judged with (the new report's scenario's `[gate]`).
    pub settings: GateSettings,
    /// One row per metric, in a fixed order.
    pub rows: Vec<MetricRow>,
    /// The new report's own expectations, as it checked them.
    pub expectations: Vec<ExpectationResult>,
    /// Things a reader should know, like two different scenarios.
    pub notes: Vec<String>,
    /// Scenario name of the new report.
    pub scenario: String,
    /// Seed of the new report.
    pub seed: u64,
    /// The new report's replay command.
    pub replay_command: String,
}

/// Reads `new` and `baseline` (each a report.json or a run directory) and compares them with the
/// new report's gate settings.
pub fn compare_files(new: &Path, baseline: &Path) -> Result<ReportComparison, CompareError> {
    let new_report = Report::read(new)?;
    let baseline_report = Report::read(baseline)?;
    let settings =
        GateSettings::from_resolved(&new_report.scenario.resolved).map_err(|(key, message)| {
            CompareError::Gate {
                file: new.to_path_buf(),
                key,
                message,
            }
        })?;
    let mut comparison = compare(&new_report, &baseline_report, settings);
    comparison.new_label = new.display().to_string();
    comparison.baseline_label = baseline.display().to_string();
    Ok(comparison)
}

/// Compares `new` against `baseline` under `settings`.
pub fn compare(new: &Report, baseline: &Report, settings: GateSettings) -> ReportComparison {
    let mut rows = Vec::new();
    let sigmas = settings.noise_sigmas;
    let per_second = |report: &Report, pick: fn(&crate::measure::IntervalSummary) -> f64| {
        report
            .latency
            .e2e_intervals
            .iter()
            .filter(|interval| interval.count > 0)
            .map(pick)
            .collect::<Vec<f64>>()
    };
    let latency = [
        (
            "e2e p50",
            new.latency.e2e_ms.p50_ms,
            baseline.latency.e2e_ms.p50_ms,
            per_second(baseline, |i| i.p50_ms),
            settings.latency_ratio_max,
        ),
        (
            "e2e p99",
            new.latency.e2e_ms.p99_ms,
            baseline.latency.e2e_ms.p99_ms,
            per_second(baseline, |i| i.p99_ms),
            settings.latency_ratio_max,
        ),
        (
            "e2e max",
            new.latency.e2e_ms.max_ms,
            baseline.latency.e2e_ms.max_ms,
            per_second(baseline, |i| i.max_ms),
            settings.latency_max_ratio_max,
        ),
    ];
    for (name, new_ms, baseline_ms, samples, ratio_bound) in latency {
        let rule = Rule {
            better: Better::Lower,
            ratio_bound,
            noise: noise_of(&samples, sigmas),
            floor: settings.latency_rise_ms_min,
        };
        rows.push(judged(name, "ms", baseline_ms, new_ms, rule));
    }
    let throughput = [
        (
            "written",
            new.throughput.written_per_s,
            baseline.throughput.written_per_s,
            &baseline.throughput.written,
        ),
        (
            "produced",
            new.throughput.produced_per_s,
            baseline.throughput.produced_per_s,
            &baseline.throughput.produced,
        ),
    ];
    for (name, new_per_s, baseline_per_s, counts) in throughput {
        let rule = Rule {
            better: Better::Higher,
            ratio_bound: settings.throughput_ratio_min,
            noise: noise_of(&whole_seconds(counts), sigmas),
            floor: 0.0,
        };
        rows.push(judged(name, "/s", baseline_per_s, new_per_s, rule));
    }
    let mut processes: Vec<&String> = new
        .memory
        .peak_rss_mb
        .keys()
        .chain(baseline.memory.peak_rss_mb.keys())
        .collect();
    processes.sort();
    processes.dedup();
    for process in processes {
        let name = format!("peak RSS {process}");
        let new_mb = new.memory.peak_rss_mb.get(process).copied();
        let baseline_mb = baseline.memory.peak_rss_mb.get(process).copied();
        match (baseline_mb, new_mb) {
            (Some(baseline_mb), Some(new_mb)) => {
                let samples: Vec<f64> = baseline
                    .memory
                    .timelines
                    .get(process)
                    .map(|points| points.iter().filter_map(|p| p.rss_mb).collect())
                    .unwrap_or_default();
                let rule = Rule {
                    better: Better::Lower,
                    ratio_bound: settings.memory_ratio_max,
                    noise: noise_of(&samples, sigmas),
                    floor: settings.memory_rise_mb_min,
                };
                rows.push(judged(&name, "MB", baseline_mb, new_mb, rule));
            }
            // A process only one run had is shown, not judged.
            (baseline_mb, new_mb) => rows.push(MetricRow {
                name,
                unit: "MB",
                baseline: baseline_mb,
                new: new_mb,
                tolerance: String::new(),
                yes_no: false,
                verdict: Verdict::Ok,
            }),
        }
    }
    let exact = Rule {
        better: Better::Lower,
        ratio_bound: 1.0,
        noise: 0.0,
        floor: 0.0,
    };
    for (name, new_count, baseline_count) in [
        ("lost", new.verify.lost, baseline.verify.lost),
        ("corrupt", new.verify.corrupt, baseline.verify.corrupt),
        (
            "unexpected",
            new.verify.unexpected,
            baseline.verify.unexpected,
        ),
    ] {
        let mut row = judged(
            name,
            "events",
            baseline_count as f64,
            new_count as f64,
            exact,
        );
        row.tolerance = "<= baseline".to_string();
        rows.push(row);
    }
    rows.push(MetricRow {
        name: "run passed".to_string(),
        unit: "",
        baseline: Some(if baseline.passed { 1.0 } else { 0.0 }),
        new: Some(if new.passed { 1.0 } else { 0.0 }),
        tolerance: "must pass".to_string(),
        yes_no: true,
        verdict: match (new.passed, baseline.passed) {
            (false, _) => Verdict::Regression,
            (true, false) => Verdict::Better,
            (true, true) => Verdict::Ok,
        },
    });
    ReportComparison {
        new_label: "new".to_string(),
        baseline_label: "baseline".to_string(),
        settings,
        rows,
        expectations: new.expectations.clone(),
        notes: notes(new, baseline),
        scenario: new.scenario.name.clone(),
        seed: new.seed,
        replay_command: new.replay_command.clone(),
    }
}

fn judged(name: &str, unit: &'static str, baseline: f64, new: f64, rule: Rule) -> MetricRow {
    let judgement = rule.judge(baseline, new);
    let sign = match rule.better {
        Better::Lower => "<=",
        Better::Higher => ">=",
    };
    MetricRow {
        name: name.to_string(),
        unit,
        baseline: Some(baseline),
        new: Some(new),
        tolerance: format!("{sign} {:.2}x", judgement.tolerance_ratio),
        yes_no: false,
        verdict: judgement.verdict,
    }
}

fn notes(new: &Report, baseline: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    if new.scenario.hash != baseline.scenario.hash {
        notes.push(format!(
            "different scenarios: {} (hash {}) against {} (hash {}); the comparison may not mean much",
            new.scenario.name, new.scenario.hash, baseline.scenario.name, baseline.scenario.hash
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
    /// The rows that fail the gate.
    pub fn regressions(&self) -> impl Iterator<Item = &MetricRow> {
        self.rows
            .iter()
            .filter(|row| row.verdict == Verdict::Regression)
    }

    /// True when no row regressed (the new report's `passed` is one of the rows).
    pub fn gate_passed(&self) -> bool {
        self.regressions().next().is_none()
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
            "roadtest compare: {} (scenario {}, seed {}) against {}",
            self.new_label, self.scenario, self.seed, self.baseline_label
        )?;
        let width = self
            .rows
            .iter()
            .map(|row| row.label().len())
            .max()
            .unwrap_or(0)
            .max("metric".len());
        writeln!(
            out,
            "{:<width$}  {:>12}  {:>12}  {:>8}  {:>8}  {:>11}  verdict",
            "metric", "baseline", "new", "ratio", "change", "tolerance"
        )?;
        for row in &self.rows {
            let value = |v: Option<f64>| row.show(v);
            let ratio = row
                .ratio()
                .map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
            let change = row
                .change_percent()
                .map_or_else(|| "-".to_string(), |p| format!("{p:+.1}%"));
            let mark = if row.verdict == Verdict::Regression {
                "REGRESSION"
            } else {
                row.verdict.as_str()
            };
            writeln!(
                out,
                "{:<width$}  {:>12}  {:>12}  {:>8}  {:>8}  {:>11}  {mark}",
                row.label(),
                value(row.baseline),
                value(row.new),
                ratio,
                change,
                row.tolerance
            )?;
        }
        for note in &self.notes {
            writeln!(out, "note: {note}")?;
        }
        let regressions: Vec<&str> = self.regressions().map(|row| row.name.as_str()).collect();
        if regressions.is_empty() {
            writeln!(out, "gate: PASSED (no metric regressed)")
        } else {
            writeln!(
                out,
                "gate: FAILED: {} regressed ({}); replay the new run with: {}",
                regressions.len(),
                regressions.join(", "),
                self.replay_command
            )
        }
    }
}

/// Whole numbers without decimals, others with up to two (three below 10).
fn number(value: f64) -> String {
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
        comparison
            .regressions()
            .map(|row| row.name.as_str())
            .collect()
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
        assert_eq!(comparison.rows.len(), 3 + 2 + 5 + 3 + 1);
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
        assert_eq!((newcomer.baseline, newcomer.new), (None, Some(10.0)));
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
            text.starts_with("roadtest compare: new (scenario steady, seed 42) against baseline\n"),
            "{text}"
        );
        assert!(text.contains("e2e p99 (ms)"), "{text}");
        assert!(text.contains("2.00x"), "{text}");
        assert!(text.contains("+100.0%"), "{text}");
        assert!(text.contains("REGRESSION"), "{text}");
        assert!(text.contains("peak RSS cql-bridge (MB)"), "{text}");
        assert!(text.contains("note: different scenarios"), "{text}");
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("gate: FAILED: 2 regressed (e2e p50, e2e p99); replay the new run with: roadtest run"),
            "{text}"
        );
        let passing = compare(&baseline, &baseline, GateSettings::default()).to_text();
        assert!(
            passing.ends_with("gate: PASSED (no metric regressed)\n"),
            "{passing}"
        );
    }

    #[test]
    fn files_and_bad_gate_settings() {
        let dir = std::env::temp_dir().join(format!("roadtest-compare-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let baseline = steady_report();
        let baseline_file = baseline.write(&dir.join("baseline")).unwrap();
        let mut new = baseline.clone();
        new.scenario.resolved["gate"] = serde_json::json!({"latency_ratio_max": 0.5});
        new.write(&dir.join("new")).unwrap();
        let error = compare_files(&dir.join("new"), &baseline_file).unwrap_err();
        assert!(
            matches!(error, CompareError::Gate { ref key, .. } if key == "gate.latency_ratio_max"),
            "{error}"
        );
        new.scenario.resolved["gate"] = serde_json::json!({"latency_ratio_max": 1.2});
        new.write(&dir.join("new")).unwrap();
        let comparison = compare_files(&dir.join("new"), &baseline_file).unwrap();
        assert_eq!(comparison.settings.latency_ratio_max, 1.2);
        assert!(comparison.new_label.ends_with("new"));
        let missing = compare_files(&dir.join("nowhere"), &baseline_file).unwrap_err();
        assert!(matches!(missing, CompareError::Report(_)), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
