//! Latency recording: one HDR histogram (microseconds) for the whole run and one per 1 s interval.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
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
    /// By interval index, a histogram for each that saw a value (auto-resizing, 2 significant
    /// digits): indexed directly, because recording is a run's hottest path.
    intervals: Vec<Option<Histogram<u32>>>,
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

/// One point of a percentile distribution: `percentile`% of the values were at most `value_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PercentilePoint {
    /// The percentile, 0 to 100 (99.9 is the 99.9th percentile; 100 is the largest value).
    pub percentile: f64,
    /// The latency at that percentile, in ms.
    pub value_ms: f64,
}

/// Points of [`LatencyRecorder::percentile_curve`] per halving of the remaining fraction
/// (50%, 75%, 87.5%, ... get this many points each): the HdrHistogram convention, spread evenly on
/// a log scale of 1/(1 - p).
const CURVE_POINTS_PER_HALVING: u32 = 4;

/// The most halvings [`LatencyRecorder::percentile_curve`] walks (2^-40 of the values, far beyond
/// any run's count); bounds the curve to about 160 points.
const CURVE_HALVING_COUNT_MAX: u32 = 40;

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
            intervals: Vec::new(),
        }
    }

    /// Records one latency of `latency_us` observed `at_ms` after the run start.
    ///
    /// Values above [`LATENCY_MAX_US`] count as [`LATENCY_MAX_US`].
    pub fn record(&mut self, latency_us: u64, at_ms: u64) {
        let value_us = latency_us.min(LATENCY_MAX_US);
        self.run.saturating_record(value_us);
        let interval = self.interval_mut(interval_index(at_ms));
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
        let interval = self.interval_mut(interval_index(at_ms));
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
        for (index, histogram) in other.intervals.iter().enumerate() {
            if let Some(histogram) = histogram {
                add_histogram(self.interval_mut(index), histogram);
            }
        }
    }

    /// The histogram of interval `index`, made when it is first needed.
    fn interval_mut(&mut self, index: usize) -> &mut Histogram<u32> {
        if index >= self.intervals.len() {
            self.intervals.resize_with(index + 1, || None);
        }
        self.intervals[index].get_or_insert_with(new_interval_histogram)
    }

    /// The histogram of interval `index`, if it saw a value.
    fn interval(&self, index: usize) -> Option<&Histogram<u32>> {
        self.intervals.get(index).and_then(Option::as_ref)
    }

    /// The last interval index that saw a value.
    fn last_interval(&self) -> Option<usize> {
        self.intervals.iter().rposition(Option::is_some)
    }

    /// Each distinct value recorded (µs, as the histogram holds it) with its count, ascending.
    pub fn values(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.run
            .iter_recorded()
            .map(|value| (value.value_iterated_to(), value.count_at_value()))
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

    /// The percentile distribution of the whole run, HdrHistogram style: points at 0%, then ever
    /// closer to 100% (4 per halving of what remains: 15.9%, 29.3%, ..., 50%, ..., 99%, 99.9%, ...)
    /// until fewer than one value remains beyond, then the maximum at 100%.
    ///
    /// Percentiles strictly increase and values never decrease along the curve; empty when
    /// nothing was recorded. Plotted against 1/(1 - p) on a log scale it shows the tail.
    pub fn percentile_curve(&self) -> Vec<PercentilePoint> {
        if self.run.is_empty() {
            return Vec::new();
        }
        let count = self.run.len() as f64;
        let mut curve = vec![PercentilePoint {
            percentile: 0.0,
            value_ms: milliseconds(self.run.min()),
        }];
        for step in 1..=CURVE_POINTS_PER_HALVING * CURVE_HALVING_COUNT_MAX {
            let remaining = 0.5f64.powf(f64::from(step) / f64::from(CURVE_POINTS_PER_HALVING));
            if remaining * count < 1.0 {
                break;
            }
            let quantile = 1.0 - remaining;
            curve.push(PercentilePoint {
                percentile: quantile * 100.0,
                value_ms: milliseconds(self.run.value_at_quantile(quantile)),
            });
        }
        curve.push(PercentilePoint {
            percentile: 100.0,
            value_ms: milliseconds(self.run.max()),
        });
        // value_at_quantile reports the highest value equivalent to the bucket, which may exceed
        // the exact maximum: keep the curve monotone.
        let mut highest_ms = 0.0f64;
        for point in &mut curve {
            highest_ms = highest_ms.max(point.value_ms);
            point.value_ms = highest_ms;
        }
        curve
    }

    /// Writes the per-second histograms as an HdrHistogram interval log (the format of Java's
    /// `HistogramLogWriter`, read by `HistogramLogProcessor` and other HdrHistogram tools): one
    /// interval per second from second 0 to the last second that saw a value (empty seconds
    /// included), values in microseconds, V2 compressed, timestamps relative to `start_epoch_s`
    /// (seconds since the Unix epoch of the run start), written as both StartTime and BaseTime.
    pub fn write_interval_log(&self, out: &mut impl Write, start_epoch_s: f64) -> io::Result<()> {
        let start = std::time::UNIX_EPOCH + Duration::from_secs_f64(start_epoch_s.max(0.0));
        let mut serializer = V2DeflateSerializer::new();
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment("[Histogram log format version 1.3]")
            .add_comment(
                "roadtest end-to-end latency, one interval per second; values in microseconds \
                 (HistogramLogProcessor -outputValueUnitRatio 1000 prints ms); max column in ms",
            )
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1_000.0)
            .begin_log_with(out, &mut serializer)?;
        let Some(last) = self.last_interval() else {
            return Ok(());
        };
        let empty = new_interval_histogram();
        for index in 0..=last {
            let histogram = self.interval(index).unwrap_or(&empty);
            writer
                .write_histogram(
                    histogram,
                    Duration::from_secs(index as u64),
                    Duration::from_secs(1),
                    None,
                )
                .map_err(|error| io::Error::other(error.to_string()))?;
        }
        Ok(())
    }

    /// [`write_interval_log`](LatencyRecorder::write_interval_log) into a new file at `path`
    /// (replaced if it exists), flushed.
    pub fn write_interval_log_file(&self, path: &Path, start_epoch_s: f64) -> io::Result<()> {
        let mut out = io::BufWriter::new(std::fs::File::create(path)?);
        self.write_interval_log(&mut out, start_epoch_s)?;
        out.flush()
    }

    /// One summary per second from second 0 to the last second that saw a value; seconds without
    /// values are listed with `count` 0, so outages show as gaps.
    pub fn intervals(&self) -> Vec<IntervalSummary> {
        let Some(last) = self.last_interval() else {
            return Vec::new();
        };
        (0..=last)
            .map(|index| {
                let start_s = index as u64;
                match self.interval(index) {
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
    fn percentile_curve_is_monotone_and_reaches_the_tail() {
        assert!(LatencyRecorder::new().percentile_curve().is_empty());
        let mut recorder = LatencyRecorder::new();
        for ms in 1..=10_000u64 {
            recorder.record(ms * 1_000, ms);
        }
        let curve = recorder.percentile_curve();
        assert!(
            curve.len() > 40 && curve.len() < 80,
            "{} points",
            curve.len()
        );
        for pair in curve.windows(2) {
            assert!(pair[0].percentile < pair[1].percentile, "{pair:?}");
            assert!(pair[0].value_ms <= pair[1].value_ms, "{pair:?}");
        }
        let first = curve.first().unwrap();
        let last = curve.last().unwrap();
        assert_eq!(first.percentile, 0.0);
        assert_close(first.value_ms, 1.0, 0.001);
        assert_eq!(last.percentile, 100.0);
        assert_close(last.value_ms, 10_000.0, 0.001);
        // The tail is resolved down to about one value in the count.
        let deepest = curve[curve.len() - 2].percentile;
        assert!(
            deepest > 99.98,
            "deepest percentile before the max: {deepest}"
        );
        let p50 = curve
            .iter()
            .find(|p| (p.percentile - 50.0).abs() < 1e-9)
            .unwrap();
        assert_close(p50.value_ms, 5_000.0, 0.001);
    }

    #[test]
    fn interval_log_reads_back_with_the_same_counts() {
        use hdrhistogram::serialization::Deserializer;
        use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

        let mut recorder = LatencyRecorder::new();
        for i in 0..500u64 {
            recorder.record(1_000 + i * 97, i * 7); // seconds 0 to 3
        }
        recorder.record_n(2_500_000, 3, 5_200); // second 5; second 4 stays empty
        let mut log = Vec::new();
        recorder
            .write_interval_log(&mut log, 1_767_225_600.25)
            .unwrap();
        let text = String::from_utf8(log.clone()).unwrap();
        assert!(
            text.starts_with("#[Histogram log format version 1.3]\n"),
            "{text}"
        );
        assert!(text.contains("#[StartTime: 1767225600.250"), "{text}");
        assert!(text.contains("#[BaseTime: 1767225600.250"), "{text}");

        let mut deserializer = Deserializer::new();
        let mut starts_s = Vec::new();
        let mut counts = Vec::new();
        let mut headers = 0;
        for entry in IntervalLogIterator::new(&log) {
            match entry.unwrap() {
                LogEntry::StartTime(_) | LogEntry::BaseTime(_) => headers += 1,
                LogEntry::Interval(interval) => {
                    assert_eq!(interval.duration(), Duration::from_secs(1));
                    starts_s.push(interval.start_timestamp().as_secs());
                    // V2 compressed, as Java's HistogramLogWriter writes and its reader expects.
                    assert!(interval.encoded_histogram().starts_with("HISTF"));
                    let bytes = base64_decode(interval.encoded_histogram());
                    let histogram: Histogram<u64> =
                        deserializer.deserialize(&mut bytes.as_slice()).unwrap();
                    counts.push(histogram.len());
                    if !histogram.is_empty() {
                        // The max column is in ms.
                        assert_close(interval.max(), histogram.max() as f64 / 1_000.0, 0.01);
                    }
                }
            }
        }
        assert_eq!(headers, 2);
        assert_eq!(starts_s, vec![0, 1, 2, 3, 4, 5]);
        let expected: Vec<u64> = recorder.intervals().iter().map(|i| i.count).collect();
        assert_eq!(counts, expected);
        assert_eq!(counts.iter().sum::<u64>(), 503);
        assert_eq!(counts[4], 0);

        let empty = LatencyRecorder::new();
        let mut log = Vec::new();
        empty.write_interval_log(&mut log, 0.0).unwrap();
        assert_eq!(IntervalLogIterator::new(&log).count(), 2, "headers only");
    }

    /// Standard base64 (with padding), enough to read the interval log back in a test.
    fn base64_decode(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bits = 0u32;
        let mut bit_count = 0;
        let mut bytes = Vec::new();
        for byte in text.bytes().filter(|b| *b != b'=') {
            let value = ALPHABET.iter().position(|a| *a == byte).unwrap() as u32;
            bits = (bits << 6) | value;
            bit_count += 6;
            if bit_count >= 8 {
                bit_count -= 8;
                bytes.push((bits >> bit_count) as u8);
                bits &= (1 << bit_count) - 1;
            }
        }
        bytes
    }

    #[test]
    fn summary_serializes_with_unit_on_the_parent_key() {
        let json = serde_json::to_value(LatencySummary::default()).unwrap();
        for key in ["count", "min", "p50", "p90", "p99", "p999", "max", "mean"] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
    }
}
