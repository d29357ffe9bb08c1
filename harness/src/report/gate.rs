//! The regression gate: how far a metric may move against a baseline before it counts as a
//! regression, from a ratio bound (the baseline scenario's `[gate]` table or a gate file, see
//! [`crate::gate_settings`]) widened by the baseline's own noise.
//!
//! # The rule
//!
//! A metric regresses when its change against the baseline is worse than its **tolerance**, and
//! (for latency and memory) the absolute change is larger than a small floor. The tolerance is the
//! looser of two bounds:
//!
//! - the **ratio bound** of the gate settings (`throughput_ratio_min`,
//!   `latency_ratio_max`, `latency_max_ratio_max`, `memory_ratio_max`);
//! - the **noise band**: `noise_sigmas` robust standard deviations (1.4826 x the median absolute
//!   deviation) of the baseline's own per-second samples of that metric (`throughput.written[]`,
//!   `latency.e2e_intervals[].p99_ms`, the RSS timeline, ...), relative to the baseline's value.
//!   The noise band never widens a tolerance to a 2x change ([`NOISE_RISE_RATIO_CEILING`],
//!   [`NOISE_DROP_RATIO_FLOOR`]): only an explicit ratio bound can, so with the defaults halving
//!   the throughput or doubling a latency percentile always fails.
//!
//! Lost, corrupt and unexpected events have no noise: any rise above the baseline regresses, and so
//! does a new report whose `passed` is false. A metric the baseline has and the new run lacks
//! fails ([`Verdict::Missing`]), and so does a scenario that changed since the baseline was
//! recorded ([`Verdict::ScenarioChanged`]).

use serde::Serialize;

/// Noise may widen a "lower is better" tolerance (latency, memory) up to this ratio, never further.
pub const NOISE_RISE_RATIO_CEILING: f64 = 1.9;

/// Noise may widen a "higher is better" tolerance (throughput) down to this ratio, never further.
pub const NOISE_DROP_RATIO_FLOOR: f64 = 0.55;

/// A change inside this fraction of the baseline is never called better or worse, only ok.
const CHANGE_FRACTION_MIN: f64 = 0.05;

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Throughput: more is better.
    Higher,
    /// Latency, memory, lost events: less is better.
    Lower,
}

/// The verdict on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within noise (or within 5% when there is no noise estimate).
    Ok,
    /// Better than the baseline beyond noise.
    Better,
    /// Worse than the baseline beyond noise, but inside the tolerance: worth a look, not a failure.
    Worse,
    /// Worse than the tolerance allows: fails the gate.
    Regression,
    /// The baseline has the metric and the new run does not: fails the gate.
    Missing,
    /// The new run's scenario hash differs from the baseline's: fails the gate.
    ScenarioChanged,
}

impl Verdict {
    /// `ok`, `better`, `worse` or `regression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::Regression => "regression",
            Verdict::Missing => "missing in new run",
            Verdict::ScenarioChanged => "scenario changed",
        }
    }

    /// True for the verdicts that fail the gate: regression, missing, scenario changed.
    pub fn fails(self) -> bool {
        matches!(
            self,
            Verdict::Regression | Verdict::Missing | Verdict::ScenarioChanged
        )
    }
}

/// How a measured metric is judged: its direction, ratio bound, noise and absolute floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Which way the metric improves.
    pub better: Better,
    /// For [`Better::Lower`] the largest allowed new/baseline ratio; for [`Better::Higher`] the
    /// smallest.
    pub ratio_bound: f64,
    /// The baseline's noise in the metric's unit (`noise_sigmas` robust standard deviations), or 0.
    pub noise: f64,
    /// A worsening smaller than this (in the metric's unit) never regresses.
    pub floor: f64,
}

/// The judgement of one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// The ratio the new value may reach: at most this ([`Better::Lower`]) or at least this
    /// ([`Better::Higher`]) times the baseline.
    pub tolerance_ratio: f64,
}

impl Rule {
    /// Judges `new` against `baseline`. Non-finite new values regress; a zero baseline only
    /// regresses past the floor.
    pub fn judge(&self, baseline: f64, new: f64) -> Judgement {
        let noise_fraction = if baseline > 0.0 {
            self.noise / baseline
        } else {
            0.0
        };
        let tolerance_ratio = match self.better {
            Better::Lower => self
                .ratio_bound
                .max((1.0 + noise_fraction).min(NOISE_RISE_RATIO_CEILING)),
            Better::Higher => self
                .ratio_bound
                .min((1.0 - noise_fraction).max(NOISE_DROP_RATIO_FLOOR)),
        };
        if !new.is_finite() || !baseline.is_finite() {
            return Judgement {
                verdict: Verdict::Regression,
                tolerance_ratio,
            };
        }
        // Positive when the new value is worse.
        let worsening = match self.better {
            Better::Lower => new - baseline,
            Better::Higher => baseline - new,
        };
        let beyond_tolerance = match self.better {
            Better::Lower => new > baseline * tolerance_ratio,
            Better::Higher => new < baseline * tolerance_ratio,
        };
        let noticeable = self
            .noise
            .max(baseline.abs() * CHANGE_FRACTION_MIN)
            .max(f64::MIN_POSITIVE);
        let verdict = if beyond_tolerance && worsening > self.floor {
            Verdict::Regression
        } else if worsening > noticeable && worsening > self.floor {
            Verdict::Worse
        } else if -worsening > noticeable {
            Verdict::Better
        } else {
            Verdict::Ok
        };
        Judgement {
            verdict,
            tolerance_ratio,
        }
    }
}

/// `noise_sigmas` robust standard deviations of `samples` (1.4826 x the median absolute
/// deviation, which ignores the few seconds of a spike or an outage); 0 for fewer than 3 samples.
pub fn noise_of(samples: &[f64], noise_sigmas: f64) -> f64 {
    let mut values: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if values.len() < 3 {
        return 0.0;
    }
    let center = median(&mut values);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    noise_sigmas * 1.4826 * median(&mut deviations)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// The per-second counts of a run without its first and last second, which are partial (the run
/// starts and stops inside them); all of them when there are fewer than 5.
pub fn whole_seconds(counts: &[u64]) -> Vec<f64> {
    let inner = if counts.len() >= 5 {
        &counts[1..counts.len() - 1]
    } else {
        counts
    };
    inner.iter().map(|&count| count as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(ratio_bound: f64, noise: f64, floor: f64) -> Rule {
        Rule {
            better: Better::Lower,
            ratio_bound,
            noise,
            floor,
        }
    }

    #[test]
    fn noise_is_robust_to_a_spike() {
        let steady = [100.0, 102.0, 98.0, 101.0, 99.0, 100.0, 100.0];
        let with_spike = [100.0, 102.0, 98.0, 101.0, 99.0, 100.0, 5_000.0];
        let quiet = noise_of(&steady, 3.0);
        assert!(quiet > 0.0 && quiet < 10.0, "{quiet}");
        assert!(noise_of(&with_spike, 3.0) < 10.0);
        assert_eq!(noise_of(&[1.0, 2.0], 3.0), 0.0);
        assert_eq!(noise_of(&steady, 0.0), 0.0);
        assert_eq!(whole_seconds(&[1, 5, 5, 5, 2]), [5.0, 5.0, 5.0]);
        assert_eq!(whole_seconds(&[1, 5]), [1.0, 5.0]);
    }

    #[test]
    fn the_looser_bound_wins_but_noise_never_hides_a_doubling() {
        // Quiet baseline: the ratio bound rules.
        let quiet = lower(1.5, 5.0, 0.0);
        assert_eq!(quiet.judge(100.0, 140.0).verdict, Verdict::Worse);
        assert_eq!(quiet.judge(100.0, 160.0).verdict, Verdict::Regression);
        assert_eq!(quiet.judge(100.0, 103.0).verdict, Verdict::Ok);
        assert_eq!(quiet.judge(100.0, 80.0).verdict, Verdict::Better);
        // Noisy baseline: the noise band widens the tolerance to 1.7x ...
        let noisy = lower(1.5, 70.0, 0.0);
        assert_eq!(noisy.judge(100.0, 160.0).verdict, Verdict::Ok);
        assert!((noisy.judge(100.0, 160.0).tolerance_ratio - 1.7).abs() < 1e-9);
        assert_eq!(noisy.judge(100.0, 175.0).verdict, Verdict::Regression);
        // ... but never to 2x.
        let chaotic = lower(1.5, 500.0, 0.0);
        assert_eq!(chaotic.judge(100.0, 200.0).verdict, Verdict::Regression);
        assert_eq!(
            chaotic.judge(100.0, 200.0).tolerance_ratio,
            NOISE_RISE_RATIO_CEILING
        );
        // An explicit ratio bound can be looser than that.
        assert_eq!(
            lower(3.0, 0.0, 0.0).judge(100.0, 200.0).verdict,
            Verdict::Worse
        );
    }

    #[test]
    fn throughput_drops_mirror_latency_rises() {
        let rule = Rule {
            better: Better::Higher,
            ratio_bound: 0.7,
            noise: 900.0,
            floor: 0.0,
        };
        let judged = rule.judge(1_000.0, 500.0);
        assert_eq!(judged.verdict, Verdict::Regression);
        assert_eq!(judged.tolerance_ratio, NOISE_DROP_RATIO_FLOOR);
        assert_eq!(rule.judge(1_000.0, 600.0).verdict, Verdict::Ok);
        assert_eq!(rule.judge(1_000.0, 2_000.0).verdict, Verdict::Better);
    }

    #[test]
    fn floors_zero_baselines_and_nan() {
        // A 3x rise of a 1 ms latency is under the 2 ms floor.
        let rule = lower(1.5, 0.0, 2.0);
        assert_eq!(rule.judge(1.0, 3.0).verdict, Verdict::Ok);
        assert_eq!(rule.judge(1.0, 3.5).verdict, Verdict::Regression);
        // Counts: any rise from zero regresses.
        let counts = lower(1.0, 0.0, 0.0);
        assert_eq!(counts.judge(0.0, 0.0).verdict, Verdict::Ok);
        assert_eq!(counts.judge(0.0, 1.0).verdict, Verdict::Regression);
        assert_eq!(counts.judge(3.0, 1.0).verdict, Verdict::Better);
        assert_eq!(counts.judge(3.0, f64::NAN).verdict, Verdict::Regression);
    }

    #[test]
    fn boundaries_belong_to_the_milder_verdict() {
        // Exactly at the tolerance is not beyond it.
        let quiet = lower(1.5, 0.0, 0.0);
        assert_eq!(quiet.judge(100.0, 150.0).verdict, Verdict::Worse);
        let higher = Rule {
            better: Better::Higher,
            ratio_bound: 0.7,
            noise: 0.0,
            floor: 0.0,
        };
        assert_eq!(higher.judge(1_000.0, 700.0).verdict, Verdict::Worse);
        // A change of exactly the noticeable size (here the noise, 5) is no change.
        let noisy = lower(1.5, 5.0, 0.0);
        assert_eq!(noisy.judge(100.0, 105.0).verdict, Verdict::Ok);
        assert_eq!(noisy.judge(100.0, 95.0).verdict, Verdict::Ok);
        // A zero baseline has no noise fraction: the ratio bound is the tolerance.
        assert_eq!(lower(1.5, 2.0, 0.0).judge(0.0, 1.0).tolerance_ratio, 1.5);
    }

    #[test]
    fn noise_is_the_median_absolute_deviation_scaled() {
        // Three samples are enough: median 2, deviations 1, 0, 1.
        assert_eq!(noise_of(&[1.0, 2.0, 3.0], 1.0), 1.4826);
        // An even count takes the mean of the middle two: median 3, deviations 5, 2, 1, 1
        // (median 1.5).
        assert_eq!(noise_of(&[8.0, 1.0, 4.0, 2.0], 2.0), 2.0 * 1.4826 * 1.5);
    }

    #[test]
    fn missing_and_changed_scenario_fail_like_a_regression() {
        let failing: Vec<Verdict> = [
            Verdict::Ok,
            Verdict::Better,
            Verdict::Worse,
            Verdict::Regression,
            Verdict::Missing,
            Verdict::ScenarioChanged,
        ]
        .into_iter()
        .filter(|verdict| verdict.fails())
        .collect();
        assert_eq!(
            failing,
            [
                Verdict::Regression,
                Verdict::Missing,
                Verdict::ScenarioChanged
            ]
        );
        assert_eq!(Verdict::Missing.as_str(), "missing in new run");
    }
}
