//! One step of the knee search, judged over its hold: the rate sent, the rows written, the trend of the pipeline's lag and the end-to-end p99, each against its criterion.

use std::path::Path;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use serde::Serialize;

/// The share of the offered rate the broker must acknowledge over the hold.
pub const SENT_MIN: f64 = 0.95;
/// The share of the acknowledged events that must be written over the hold.
pub const WRITTEN_MIN: f64 = 0.98;
/// The lag may grow by this share of the offered rate per second (or by twice the slope's
/// standard error, if more) and still count as not growing: noise, not a backlog.
pub const LAG_SLOPE_FLOOR: f64 = 0.01;

/// The seconds of a step that are judged: `[from_s, to_s)` of its per-second series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub from_s: usize,
    pub to_s: usize,
}

impl Hold {
    fn seconds(&self) -> f64 {
        (self.to_s - self.from_s) as f64
    }
}

/// What a step measured over its hold, and whether the rate was sustained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepFigures {
    pub rate_events_per_s: f64,
    /// Acknowledged by the broker, per second of the hold.
    pub sent_per_s: f64,
    /// Written to the database (each row at its last write), per second of the hold.
    pub written_per_s: f64,
    /// End-to-end latency of the events sent during the hold (`None`: none arrived).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The least-squares trend of acknowledged-but-unwritten events over the hold, events/s per
    /// second, and the most it may be and count as flat.
    pub lag_slope_per_s: f64,
    pub lag_slope_allowed_per_s: f64,
    pub sustained: bool,
    /// The criteria it missed, in words (empty when sustained).
    pub missed: Vec<String>,
}

/// Judges a step at `rate` from its per-second series (`produced`: acknowledged; `written`)
/// and the end-to-end latencies of its hold, against `p99_target_ms`.
pub fn judge(
    rate: f64,
    hold: Hold,
    produced: &[u64],
    written: &[u64],
    latency: Option<&Histogram<u64>>,
    p99_target_ms: f64,
) -> StepFigures {
    let in_hold = |series: &[u64]| -> u64 {
        (hold.from_s..hold.to_s)
            .map(|second| series.get(second).copied().unwrap_or(0))
            .sum()
    };
    let (sent, wrote) = (in_hold(produced), in_hold(written));
    let sent_per_s = sent as f64 / hold.seconds();
    let written_per_s = wrote as f64 / hold.seconds();
    let (slope, error) = lag_trend(produced, written, hold);
    let allowed = (LAG_SLOPE_FLOOR * rate).max(2.0 * error);
    let quantile = |q: f64| latency.map(|h| h.value_at_quantile(q) as f64 / 1000.0);
    let (p50_ms, p99_ms) = (quantile(0.50), quantile(0.99));
    let mut missed = Vec::new();
    if sent_per_s < SENT_MIN * rate {
        missed.push(format!(
            "sent {sent_per_s:.0}/s, under {:.0}% of {rate:.0}/s",
            SENT_MIN * 100.0
        ));
    }
    if (wrote as f64) < WRITTEN_MIN * sent as f64 {
        missed.push(format!(
            "wrote {written_per_s:.0}/s, under {:.0}% of the {sent_per_s:.0}/s sent",
            WRITTEN_MIN * 100.0
        ));
    }
    if slope > allowed {
        missed.push(format!(
            "lag grew {slope:.1} events/s per second (allowed {allowed:.1})"
        ));
    }
    match p99_ms {
        Some(p99) if p99 > p99_target_ms => {
            missed.push(format!("e2e p99 {p99:.1} ms over {p99_target_ms} ms"));
        }
        None => missed.push("no event sent in the hold arrived".to_string()),
        Some(_) => {}
    }
    StepFigures {
        rate_events_per_s: rate,
        sent_per_s,
        written_per_s,
        p50_ms,
        p99_ms,
        lag_slope_per_s: slope,
        lag_slope_allowed_per_s: allowed,
        sustained: missed.is_empty(),
        missed,
    }
}

/// The least-squares slope of the lag (acknowledged minus written, cumulated) over the hold's
/// seconds, and its standard error.
pub fn lag_trend(produced: &[u64], written: &[u64], hold: Hold) -> (f64, f64) {
    let mut lag = 0i64;
    let mut points = Vec::new();
    for second in 0..hold.to_s {
        let get = |series: &[u64]| series.get(second).copied().unwrap_or(0) as i64;
        lag += get(produced) - get(written);
        if second >= hold.from_s {
            points.push((second as f64, lag as f64));
        }
    }
    let n = points.len() as f64;
    if points.len() < 3 {
        return (0.0, 0.0);
    }
    let mean_t = points.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_lag = points.iter().map(|(_, l)| l).sum::<f64>() / n;
    let spread: f64 = points.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    let slope = points
        .iter()
        .map(|(t, l)| (t - mean_t) * (l - mean_lag))
        .sum::<f64>()
        / spread;
    let residuals: f64 = points
        .iter()
        .map(|(t, l)| (l - mean_lag - slope * (t - mean_t)).powi(2))
        .sum();
    let error = (residuals / (n - 2.0) / spread).sqrt();
    (slope, error)
}

/// The end-to-end latencies of the events sent during `hold`: the intervals of a run's
/// `e2e.hlog` (one per second of intended send time, from the run's start) merged.
pub fn hold_latency(hlog: &Path, hold: Hold) -> Result<Option<Histogram<u64>>, String> {
    let text = std::fs::read(hlog).map_err(|e| format!("{}: {e}", hlog.display()))?;
    let mut merged: Option<Histogram<u64>> = None;
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&text) {
        let entry = entry.map_err(|e| format!("{}: not an interval log: {e:?}", hlog.display()))?;
        let LogEntry::Interval(interval) = entry else {
            continue;
        };
        let second = interval.start_timestamp().as_secs_f64().round() as usize;
        if second < hold.from_s || second >= hold.to_s {
            continue;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .map_err(|e| format!("{}: an interval is not base64: {e}", hlog.display()))?;
        let histogram: Histogram<u64> = deserializer
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("{}: an interval does not decode: {e:?}", hlog.display()))?;
        let all = merged.get_or_insert_with(|| {
            let mut all = Histogram::new_from(&histogram);
            all.auto(true);
            all
        });
        all.add(&histogram)
            .map_err(|e| format!("{}: cannot merge intervals: {e:?}", hlog.display()))?;
    }
    Ok(merged.filter(|histogram| !histogram.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Hold = Hold {
        from_s: 5,
        to_s: 15,
    };

    /// A step at 1,000/s judged over `HOLD` against a p99 target of 50 ms.
    fn judged(produced: &[u64], written: &[u64], latency: Option<&Histogram<u64>>) -> StepFigures {
        judge(1_000.0, HOLD, produced, written, latency, 50.0)
    }

    fn assert_missed(figures: &StepFigures, index: usize, start: &str) {
        let missed = &figures.missed;
        assert!(missed[index].starts_with(start), "{missed:?}");
    }

    fn histogram(p99_ms: u64) -> Histogram<u64> {
        let mut histogram = Histogram::new(2).expect("histogram");
        histogram.auto(true);
        // 98 fast values and 2 slow ones: the slow one is the p99.
        for _ in 0..98 {
            histogram.record(1_000).expect("records");
        }
        histogram.record_n(p99_ms * 1000, 2).expect("records");
        histogram
    }

    #[test]
    fn a_pipeline_that_keeps_up_is_sustained() {
        let steady = vec![1_000u64; 15];
        let figures = judged(&steady, &steady, Some(&histogram(1)));
        assert!(figures.sustained, "{figures:?}");
        assert_eq!(
            (figures.sent_per_s, figures.written_per_s),
            (1_000.0, 1_000.0)
        );
        assert_eq!(figures.lag_slope_per_s, 0.0);
    }

    #[test]
    fn a_growing_backlog_fails_on_the_written_share_and_the_lag_trend() {
        let produced = vec![1_000u64; 15];
        let written = vec![900u64; 15];
        let figures = judged(&produced, &written, Some(&histogram(1)));
        assert!(!figures.sustained);
        assert!(
            (figures.lag_slope_per_s - 100.0).abs() < 1e-9,
            "{figures:?}"
        );
        assert_eq!(figures.missed.len(), 2, "{:?}", figures.missed);
        assert_missed(&figures, 0, "wrote 900/s");
        assert_missed(&figures, 1, "lag grew 100.0");
    }

    #[test]
    fn a_short_send_and_a_slow_p99_are_each_named() {
        let produced = vec![900u64; 15];
        let figures = judged(&produced, &produced, Some(&histogram(80)));
        assert!(!figures.sustained);
        assert_missed(&figures, 0, "sent 900/s");
        assert_missed(&figures, 1, "e2e p99 80");
        let none = judged(&produced, &produced, None);
        assert!(
            none.missed.iter().any(|m| m.contains("arrived")),
            "{none:?}"
        );
    }

    #[test]
    fn noise_in_the_lag_is_not_a_trend() {
        let produced = vec![1_000u64; 15];
        // Writes in alternate seconds' batches: the lag swings, but does not grow.
        let written: Vec<u64> = (0..15)
            .map(|s| if s % 2 == 0 { 1_400 } else { 600 })
            .collect();
        let (slope, _) = lag_trend(&produced, &written, HOLD);
        let figures = judged(&produced, &written, Some(&histogram(1)));
        assert!(
            slope.abs() <= figures.lag_slope_allowed_per_s,
            "{figures:?}"
        );
        assert!(figures.sustained, "{figures:?}");
    }

    #[test]
    fn the_hold_latency_merges_only_the_holds_seconds_of_an_interval_log() {
        let mut recorder = crate::measure::LatencyRecorder::new();
        for second in 0..20u64 {
            let latency_us = if (5..15).contains(&second) {
                2_000
            } else {
                900_000
            };
            for _ in 0..10 {
                recorder.record(latency_us, second * 1_000);
            }
        }
        let dir = std::env::temp_dir().join(format!("roadtest-knee-hlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let hlog = dir.join("e2e.hlog");
        recorder
            .write_interval_log_file(&hlog, 0.0)
            .expect("writes");
        let merged = hold_latency(&hlog, HOLD).expect("reads").expect("values");
        assert_eq!(merged.len(), 100);
        assert!(
            merged.max() < 3_000,
            "only the hold's seconds: {}",
            merged.max()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
