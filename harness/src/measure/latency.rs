//! Latency recording: one HDR histogram (microseconds) for the whole run and one per 1 s interval.

use std::collections::BTreeMap;

use hdrhistogram::{Counter, Histogram};
use serde::{Deserialize, Serialize};

use super::interval_index;

/// The largest latency a recorder tells apart: 1 hour in µs. Larger values count as this value.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;

/// Precision of the whole-run histogram: 3 significant digits (error below 0.1%).
const RUN_SIGNIFICANT_DIGITS: u8 = 3;

/// Precision of the per-second histograms: 2 significant digits (error below 1%).
///
/// A run keeps one of these per second, so they trade precision for size: about 7 KB each for
/// latencies up to 1 s, against about 80 KB at 3 digits.
const INTERVAL_SIGNIFICANT_DIGITS: u8 = 2;

/// Records latencies of one kind (end to end, or one stage) for the whole run and per second.
///
/// Keep one recorder per task and [`merge`](LatencyRecorder::merge) them at the end: recording
/// takes no lock. Values are microseconds and times are ms since the run start; the caller passes
/// saturating values (a clock that went backwards gives 0, never a negative number).
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    /// Every value of the run, 1 µs ..= [`LATENCY_MAX_US`], 3 significant digits.
    run: Histogram<u64>,
    /// One histogram per interval index that saw a value, auto-resizing, 2 significant digits.
    intervals: BTreeMap<usize, Histogram<u32>>,
}

/// Distribution of a set of latencies, in milliseconds; every field is 0 when `count` is 0.
///
/// In JSON the unit sits on the parent key (`"e2e_ms": {"p50": ...}`), so the keys are
/// `count, min, p50, p90, p99, p999, max, mean`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of values recorded.
    pub count: u64,
    /// Smallest value.
    #[serde(rename = "min")]
    pub min_ms: f64,
    /// Median.
    #[serde(rename = "p50")]
    pub p50_ms: f64,
    /// 90th percentile.
    #[serde(rename = "p90")]
    pub p90_ms: f64,
    /// 99th percentile.
    #[serde(rename = "p99")]
    pub p99_ms: f64,
    /// 99.9th percentile.
    #[serde(rename = "p999")]
    pub p999_ms: f64,
    /// Largest value.
    #[serde(rename = "max")]
    pub max_ms: f64,
    /// Arithmetic mean.
    #[serde(rename = "mean")]
    pub mean_ms: f64,
}

/// Latencies of one 1 s interval of the run; the percentiles are 0 when `count` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct IntervalSummary {
    /// Start of the interval, in seconds since the run start.
    pub start_s: u64,
    /// Number of values recorded in the interval.
    pub count: u64,
    /// Median of the interval.
    pub p50_ms: f64,
    /// 99th percentile of the interval.
    pub p99_ms: f64,
    /// Largest value of the interval.
    pub max_ms: f64,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder.
    pub fn new() -> LatencyRecorder {
        LatencyRecorder {
            run: Histogram::new_with_bounds(1, LATENCY_MAX_US, RUN_SIGNIFICANT_DIGITS)
                .expect("constant histogram bounds are valid"),
            intervals: BTreeMap::new(),
        }
    }

    /// Records one latency of `latency_us` observed `at_ms` after the run start.
    ///
    /// Values above [`LATENCY_MAX_US`] count as [`LATENCY_MAX_US`].
    pub fn record(&mut self, latency_us: u64, at_ms: u64) {
        let value_us = latency_us.min(LATENCY_MAX_US);
        self.run.saturating_record(value_us);
        let interval = self
            .intervals
            .entry(interval_index(at_ms))
            .or_insert_with(new_interval_histogram);
        // `record` grows the auto-resizing histogram; `saturating_record` would not.
        if interval.record(value_us).is_err() {
            interval.saturating_record(value_us);
        }
    }

    /// Records `count` latencies of `latency_us` observed `at_ms` after the run start, as `count`
    /// calls of [`record`](LatencyRecorder::record) would.
    pub fn record_n(&mut self, latency_us: u64, count: u64, at_ms: u64) {
        if count == 0 {
            return;
        }
        let value_us = latency_us.min(LATENCY_MAX_US);
        self.run.saturating_record_n(value_us, count);
        let interval = self
            .intervals
            .entry(interval_index(at_ms))
            .or_insert_with(new_interval_histogram);
        // Interval counters are u32: add a larger count in u32-sized parts.
        let mut remaining = count;
        while remaining > 0 {
            let part = u32::try_from(remaining).unwrap_or(u32::MAX);
            if interval.record_n(value_us, part).is_err() {
                interval.saturating_record_n(value_us, part);
            }
            remaining -= u64::from(part);
        }
    }

    /// Adds everything `other` recorded; the result equals recording both streams into one recorder.
    pub fn merge(&mut self, other: &LatencyRecorder) {
        add_histogram(&mut self.run, &other.run);
        for (index, histogram) in &other.intervals {
            let into = self
                .intervals
                .entry(*index)
                .or_insert_with(new_interval_histogram);
            add_histogram(into, histogram);
        }
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.run.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.run.is_empty()
    }

    /// The distribution over the whole run, in ms.
    pub fn summary(&self) -> LatencySummary {
        if self.run.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.run.len(),
            min_ms: milliseconds(self.run.min()),
            p50_ms: milliseconds(self.run.value_at_quantile(0.50)),
            p90_ms: milliseconds(self.run.value_at_quantile(0.90)),
            p99_ms: milliseconds(self.run.value_at_quantile(0.99)),
            p999_ms: milliseconds(self.run.value_at_quantile(0.999)),
            max_ms: milliseconds(self.run.max()),
            mean_ms: self.run.mean() / 1_000.0,
        }
    }

    /// One summary per second from second 0 to the last second that saw a value; seconds without
    /// values are listed with `count` 0, so outages show as gaps.
    pub fn intervals(&self) -> Vec<IntervalSummary> {
        let Some(last) = self.intervals.keys().next_back().copied() else {
            return Vec::new();
        };
        (0..=last)
            .map(|index| {
                let start_s = index as u64;
                match self.intervals.get(&index) {
                    Some(histogram) if !histogram.is_empty() => IntervalSummary {
                        start_s,
                        count: histogram.len(),
                        p50_ms: milliseconds(histogram.value_at_quantile(0.50)),
                        p99_ms: milliseconds(histogram.value_at_quantile(0.99)),
                        max_ms: milliseconds(histogram.max()),
                    },
                    _ => IntervalSummary {
                        start_s,
                        ..IntervalSummary::default()
                    },
                }
            })
            .collect()
    }
}

fn new_interval_histogram() -> Histogram<u32> {
    Histogram::new(INTERVAL_SIGNIFICANT_DIGITS).expect("constant histogram precision is valid")
}

/// Adds `from` into `into`; if the histograms cannot be added directly (different layouts), the
/// recorded values are recorded again one bucket at a time.
fn add_histogram<T: Counter>(into: &mut Histogram<T>, from: &Histogram<T>) {
    if into.add(from).is_err() {
        for bucket in from.iter_recorded() {
            let (value, count) = (bucket.value_iterated_to(), bucket.count_at_value());
            if into.record_n(value, count).is_err() {
                into.saturating_record_n(value, count);
            }
        }
    }
}

fn milliseconds(value_us: u64) -> f64 {
    value_us as f64 / 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: f64, expected: f64, relative: f64) {
        assert!(
            (actual - expected).abs() <= expected.abs() * relative,
            "{actual} is not within {relative} of {expected}"
        );
    }

    #[test]
    fn summary_of_one_to_a_thousand_ms() {
        let mut recorder = LatencyRecorder::new();
        for ms in 1..=1000u64 {
            recorder.record(ms * 1_000, 0);
        }
        let summary = recorder.summary();
        assert_eq!(summary.count, 1000);
        assert_close(summary.min_ms, 1.0, 0.001);
        assert_close(summary.p50_ms, 500.0, 0.001);
        assert_close(summary.p90_ms, 900.0, 0.001);
        assert_close(summary.p99_ms, 990.0, 0.001);
        assert_close(summary.p999_ms, 999.0, 0.001);
        assert_close(summary.max_ms, 1000.0, 0.001);
        assert_close(summary.mean_ms, 500.5, 0.001);
    }

    #[test]
    fn empty_recorder_summarizes_to_zero() {
        let recorder = LatencyRecorder::default();
        assert!(recorder.is_empty());
        assert_eq!(recorder.summary(), LatencySummary::default());
        assert!(recorder.intervals().is_empty());
    }

    #[test]
    fn record_n_equals_repeated_record() {
        let mut one_by_one = LatencyRecorder::new();
        let mut batched = LatencyRecorder::new();
        for (latency_us, count, at_ms) in [(1_500, 3, 0), (80_000, 5, 2_100), (7, 1, 2_999)] {
            for _ in 0..count {
                one_by_one.record(latency_us, at_ms);
            }
            batched.record_n(latency_us, count, at_ms);
        }
        batched.record_n(123, 0, 9_000);
        assert_eq!(batched.summary(), one_by_one.summary());
        assert_eq!(batched.intervals(), one_by_one.intervals());
        let mut huge = LatencyRecorder::new();
        huge.record_n(1_000, 5_000_000_000, 0);
        assert_eq!(huge.count(), 5_000_000_000);
        assert_eq!(huge.intervals()[0].count, 5_000_000_000);
    }

    #[test]
    fn values_beyond_an_hour_are_capped() {
        let mut recorder = LatencyRecorder::new();
        recorder.record(u64::MAX, 0);
        recorder.record(0, 0);
        let summary = recorder.summary();
        assert_eq!(summary.count, 2);
        assert_eq!(summary.min_ms, 0.0);
        assert_close(summary.max_ms, LATENCY_MAX_US as f64 / 1_000.0, 0.001);
    }

    #[test]
    fn merge_equals_recording_into_one() {
        let mut whole = LatencyRecorder::new();
        let mut parts = [
            LatencyRecorder::new(),
            LatencyRecorder::new(),
            LatencyRecorder::new(),
        ];
        for i in 0..3_000u64 {
            let latency_us = (i * 7_919) % 250_000 + 1;
            let at_ms = i * 3;
            whole.record(latency_us, at_ms);
            parts[(i % 3) as usize].record(latency_us, at_ms);
        }
        let mut merged = LatencyRecorder::new();
        for part in &parts {
            merged.merge(part);
        }
        assert_eq!(merged.summary(), whole.summary());
        assert_eq!(merged.intervals(), whole.intervals());
        assert_eq!(merged.count(), 3_000);
    }

    #[test]
    fn intervals_bucket_by_whole_seconds_and_keep_gaps() {
        let mut recorder = LatencyRecorder::new();
        recorder.record(10_000, 0);
        recorder.record(20_000, 999);
        recorder.record(50_000, 1_000);
        recorder.record(300_000, 3_500);
        let intervals = recorder.intervals();
        let starts: Vec<u64> = intervals.iter().map(|i| i.start_s).collect();
        assert_eq!(starts, vec![0, 1, 2, 3]);
        let counts: Vec<u64> = intervals.iter().map(|i| i.count).collect();
        assert_eq!(counts, vec![2, 1, 0, 1]);
        assert_close(intervals[0].max_ms, 20.0, 0.01);
        assert_close(intervals[1].p50_ms, 50.0, 0.01);
        assert_eq!(intervals[2].p99_ms, 0.0);
        assert_close(intervals[3].p99_ms, 300.0, 0.01);
    }

    #[test]
    fn adding_histograms_of_other_layouts_keeps_every_count() {
        let mut into = Histogram::<u64>::new_with_bounds(1, 1_000, 3).unwrap();
        into.record(10).unwrap();
        let mut from = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3).unwrap();
        from.record(20).unwrap();
        from.record(5_000_000).unwrap();
        add_histogram(&mut into, &from);
        assert_eq!(into.len(), 3);
        assert!(into.max() >= 1_000, "the large value saturates at the top");
    }

    #[test]
    fn summary_serializes_with_unit_on_the_parent_key() {
        let json = serde_json::to_value(LatencySummary::default()).unwrap();
        for key in ["count", "min", "p50", "p90", "p99", "p999", "max", "mean"] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
    }
}
