//! The verdict: each expectation of the scenario checked against the run's numbers.

use serde::{Deserialize, Serialize};

use std::collections::BTreeSet;

use super::{DISCREPANCY_COUNT_MAX, Discrepancy, Report, VerifySection};
use crate::alerts::AlertsSection;
use crate::faults::tamper::TamperRecord;
use crate::scenario::{Expectations, TamperKind};

/// Which side of the threshold passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Passes when `value <= threshold`.
    AtMost,
    /// Passes when `value >= threshold`.
    AtLeast,
}

/// One expectation, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectationResult {
    /// The expectation's key in the scenario, like `lost_max`.
    pub name: String,
    /// Which side of the threshold passes.
    pub comparison: Comparison,
    /// The limit the scenario sets.
    pub threshold: f64,
    /// What the run measured.
    pub value: f64,
    /// Whether the value is on the passing side (a NaN value never passes).
    pub passed: bool,
}

impl ExpectationResult {
    /// Checks `value` against `threshold`.
    pub fn check(name: &str, comparison: Comparison, threshold: f64, value: f64) -> Self {
        let passed = match comparison {
            Comparison::AtMost => value <= threshold,
            Comparison::AtLeast => value >= threshold,
        };
        ExpectationResult {
            name: name.to_string(),
            comparison,
            threshold,
            value,
            passed,
        }
    }
}

/// One result per expectation, in this order: `lost_max`, `corrupt_max`, `unexpected_max`, then
/// `latency_e2e_p99_ms_max` and `throughput_written_per_s_min` when the scenario sets them.
pub fn evaluate_expectations(
    expectations: &Expectations,
    verify: &VerifySection,
    latency_p99_ms: f64,
    written_per_s: f64,
) -> Vec<ExpectationResult> {
    let mut results = vec![
        ExpectationResult::check(
            "lost_max",
            Comparison::AtMost,
            expectations.lost_max as f64,
            verify.lost as f64,
        ),
        ExpectationResult::check(
            "corrupt_max",
            Comparison::AtMost,
            expectations.corrupt_max as f64,
            verify.corrupt as f64,
        ),
        ExpectationResult::check(
            "unexpected_max",
            Comparison::AtMost,
            expectations.unexpected_max as f64,
            verify.unexpected as f64,
        ),
    ];
    if let Some(max_ms) = expectations.latency_e2e_p99_ms_max {
        results.push(ExpectationResult::check(
            "latency_e2e_p99_ms_max",
            Comparison::AtMost,
            max_ms,
            latency_p99_ms,
        ));
    }
    if let Some(min_per_s) = expectations.throughput_written_per_s_min {
        results.push(ExpectationResult::check(
            "throughput_written_per_s_min",
            Comparison::AtLeast,
            min_per_s,
            written_per_s,
        ));
    }
    results
}

/// The alert expectations the scenario sets, against a run's alerts section (a run without one,
/// such as a simulated run, judges none of them). The latency of no matched alert is 0 when
/// none was expected, else never passes.
pub fn alert_expectations(
    expectations: &Expectations,
    alerts: &AlertsSection,
) -> Vec<ExpectationResult> {
    let counts = [
        (
            "alerts_missed_max",
            expectations.alerts_missed_max,
            alerts.missed,
        ),
        (
            "alerts_spurious_max",
            expectations.alerts_spurious_max,
            alerts.spurious,
        ),
        (
            "alerts_duplicated_max",
            expectations.alerts_duplicated_max,
            alerts.duplicated,
        ),
    ];
    let mut results: Vec<ExpectationResult> = (counts.into_iter())
        .filter_map(|(name, max, value)| {
            let max = max?;
            Some(ExpectationResult::check(
                name,
                Comparison::AtMost,
                max as f64,
                value as f64,
            ))
        })
        .collect();
    if let Some(max_ms) = expectations.alerts_latency_p99_ms_max {
        let p99_ms = match (alerts.latency_ms.p99, alerts.expected) {
            (Some(p99), _) => p99 as f64,
            (None, 0) => 0.0,
            (None, _) => f64::NAN,
        };
        let name = "alerts_latency_p99_ms_max";
        results.push(ExpectationResult::check(
            name,
            Comparison::AtMost,
            max_ms,
            p99_ms,
        ));
    }
    results
}

impl Report {
    /// Sets `passed` to whether every expectation held, and returns it.
    ///
    /// Run errors do not change it: the caller decides whether an error invalidates the run
    /// (and then sets `passed = false` itself, or reports the run as not carried out).
    pub fn finish_verdict(&mut self) -> bool {
        self.passed = self.expectations.iter().all(|result| result.passed);
        self.passed
    }

    /// Checks the scenario's expectations against this report's measurements and sets the verdict.
    pub fn check_expectations(&mut self, expectations: &Expectations) -> bool {
        self.expectations = evaluate_expectations(
            expectations,
            &self.verify,
            self.latency.e2e_ms.p99_ms,
            self.throughput.written_per_s,
        );
        if let Some(alerts) = &self.alerts {
            (self.expectations).extend(alert_expectations(expectations, alerts));
        }
        self.finish_verdict()
    }

    /// One line per failed expectation and per listed discrepancy; empty when the run passed.
    pub fn failures(&self) -> Vec<String> {
        let expectations = self
            .expectations
            .iter()
            .filter(|result| !result.passed)
            .map(|result| {
                format!(
                    "expectation {} failed: value {} against threshold {}",
                    result.name, result.value, result.threshold
                )
            });
        let discrepancies = self.verify.discrepancies.iter().map(|d| {
            format!(
                "{} seq {}: {} expected {} found {}",
                d.vehicle_id, d.seq, d.field, d.expected, d.found
            )
        });
        expectations.chain(discrepancies).collect()
    }

    /// For `cargo test` suites: panics with the summary, the failures and the replay command
    /// unless every expectation held.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(
            self.passed,
            "roadtest run failed:\n{}\n{}",
            self.failures().join("\n"),
            self.summary_text()
        );
    }

    /// For `cargo test` suites: panics unless every expected event arrived exactly as sent.
    #[track_caller]
    pub fn assert_no_loss(&self) {
        let verify = &self.verify;
        assert!(
            verify.lost == 0 && verify.corrupt == 0 && verify.unexpected == 0,
            "lost {}, corrupt {}, unexpected {} of {} expected events:\n{}\nreplay: {}",
            verify.lost,
            verify.corrupt,
            verify.unexpected,
            verify.expected,
            self.failures().join("\n"),
            self.replay_command
        );
    }

    /// For `cargo test` suites of tamper faults: panics unless verification counted exactly what
    /// the tamper faults did (corrupt = changed, lost = deleted, unexpected = inserted) and its
    /// discrepancies name the same rows and fields (all of them while under the cap).
    #[track_caller]
    pub fn assert_tampering_counted(&self) {
        let count = |kind: TamperKind| self.tampered.iter().filter(|t| t.kind == kind).count();
        let verify = &self.verify;
        let counted = (verify.corrupt, verify.lost, verify.unexpected);
        let done = (
            count(TamperKind::Change) as u64,
            count(TamperKind::Delete) as u64,
            count(TamperKind::Insert) as u64,
        );
        assert_eq!(
            counted, done,
            "(corrupt, lost, unexpected) against (changed, deleted, inserted); replay: {}",
            self.replay_command
        );
        let tampered: BTreeSet<String> = self.tampered.iter().map(tamper_label).collect();
        let named: BTreeSet<String> = verify.discrepancies.iter().map(discrepancy_label).collect();
        if verify.discrepancies.len() < DISCREPANCY_COUNT_MAX {
            assert_eq!(named, tampered, "discrepancies against tampered rows");
        } else {
            assert!(
                named.is_subset(&tampered),
                "{named:?} not all in {tampered:?}"
            );
        }
    }
}

/// A tampered row as its discrepancy would name it.
fn tamper_label(record: &TamperRecord) -> String {
    let id = &record.vehicle_id;
    match record.kind {
        TamperKind::Change => {
            let field = record.field.as_deref().unwrap_or("?");
            format!("corrupt {id} seq {} {field}", record.seq)
        }
        TamperKind::Delete => format!("lost {id} seq {}", record.seq),
        TamperKind::Insert => format!("unexpected {id} at {}", record.timestamp_ms),
    }
}

/// A discrepancy as [`tamper_label`] names rows.
fn discrepancy_label(discrepancy: &Discrepancy) -> String {
    let id = &discrepancy.vehicle_id;
    match (discrepancy.expected.is_null(), discrepancy.found.is_null()) {
        (true, _) => format!("unexpected {id} at {}", discrepancy.found["timestamp"]),
        (false, true) => format!("lost {id} seq {}", discrepancy.seq),
        (false, false) => format!("corrupt {id} seq {} {}", discrepancy.seq, discrepancy.field),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(lost: u64, corrupt: u64, unexpected: u64) -> VerifySection {
        VerifySection {
            expected: 100,
            found: 100 - lost,
            lost,
            corrupt,
            unexpected,
            ..VerifySection::default()
        }
    }

    fn strict() -> Expectations {
        Expectations {
            lost_max: 0,
            corrupt_max: 0,
            unexpected_max: 1,
            latency_e2e_p99_ms_max: Some(250.0),
            throughput_written_per_s_min: Some(1_000.0),
            ..Expectations::default()
        }
    }

    #[test]
    fn alert_expectations_are_judged_only_where_set_and_an_unmeasured_latency_fails() {
        let expectations = Expectations {
            alerts_missed_max: Some(0),
            alerts_spurious_max: Some(1),
            alerts_latency_p99_ms_max: Some(2_000.0),
            ..Expectations::default()
        };
        let section = |missed, spurious, p99| AlertsSection {
            expected: 3,
            received: 3 - missed + spurious,
            missed,
            spurious,
            duplicated: 0,
            malformed: 0,
            latency_ms: crate::alerts::AlertLatency {
                p50: p99,
                p99,
                max: p99,
            },
            missed_examples: Vec::new(),
            spurious_examples: Vec::new(),
        };
        let judged = |alerts: &AlertsSection| -> Vec<(String, bool)> {
            (alert_expectations(&expectations, alerts).into_iter())
                .map(|result| (result.name, result.passed))
                .collect()
        };
        let names = [
            "alerts_missed_max",
            "alerts_spurious_max",
            "alerts_latency_p99_ms_max",
        ];
        let all = |passed: [bool; 3]| -> Vec<(String, bool)> {
            names.iter().map(|n| n.to_string()).zip(passed).collect()
        };
        assert_eq!(judged(&section(0, 1, Some(150))), all([true, true, true]));
        assert_eq!(
            judged(&section(1, 2, Some(2_500))),
            all([false, false, false])
        );
        assert_eq!(judged(&section(3, 0, None)), all([false, true, false]));
    }

    fn names(results: &[ExpectationResult]) -> Vec<&str> {
        results.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn a_clean_run_passes_every_expectation() {
        let results = evaluate_expectations(&strict(), &verify(0, 0, 1), 250.0, 1_000.0);
        assert_eq!(
            names(&results),
            [
                "lost_max",
                "corrupt_max",
                "unexpected_max",
                "latency_e2e_p99_ms_max",
                "throughput_written_per_s_min"
            ]
        );
        assert!(results.iter().all(|r| r.passed), "{results:?}");
        assert_eq!(results[2].threshold, 1.0);
        assert_eq!(results[4].comparison, Comparison::AtLeast);
    }

    #[test]
    fn each_expectation_fails_on_its_own() {
        let failing = |verify: VerifySection, p99_ms: f64, per_s: f64| -> Vec<String> {
            evaluate_expectations(&strict(), &verify, p99_ms, per_s)
                .into_iter()
                .filter(|r| !r.passed)
                .map(|r| r.name)
                .collect()
        };
        assert_eq!(failing(verify(1, 0, 0), 1.0, 5_000.0), ["lost_max"]);
        assert_eq!(failing(verify(0, 3, 0), 1.0, 5_000.0), ["corrupt_max"]);
        assert_eq!(failing(verify(0, 0, 2), 1.0, 5_000.0), ["unexpected_max"]);
        assert_eq!(
            failing(verify(0, 0, 0), 250.1, 5_000.0),
            ["latency_e2e_p99_ms_max"]
        );
        assert_eq!(
            failing(verify(0, 0, 0), f64::NAN, 5_000.0),
            ["latency_e2e_p99_ms_max"]
        );
        assert_eq!(
            failing(verify(0, 0, 0), 1.0, 999.9),
            ["throughput_written_per_s_min"]
        );
    }

    #[test]
    fn unset_limits_are_not_checked() {
        let results = evaluate_expectations(&Expectations::default(), &verify(0, 0, 0), 1e9, 0.0);
        assert_eq!(
            names(&results),
            ["lost_max", "corrupt_max", "unexpected_max"]
        );
    }

    #[test]
    fn verdict_follows_the_expectations() {
        let mut report = super::super::tests::sample_report();
        assert!(!report.finish_verdict(), "the sample lost an event");
        report.verify.lost = 0;
        report.expectations = evaluate_expectations(&strict(), &report.verify, 10.0, 2_000.0);
        assert!(report.finish_verdict());
        assert!(report.passed);
    }
}
