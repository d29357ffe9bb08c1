//! Throughput: counts per 1 s interval of one stream, and of the pipeline's three streams.

use super::interval_index;

/// Counts of one stream (events produced, consumed or written) per 1 s interval of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThroughputSeries {
    /// Count of interval `i` (seconds `i .. i + 1` of the run) at index `i`.
    counts: Vec<u64>,
}

/// The three streams of the pipeline, each per second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throughput {
    /// Events the producers had acknowledged by the broker.
    pub produced: ThroughputSeries,
    /// Events the consumer read from the broker.
    pub consumed: ThroughputSeries,
    /// Rows the database acknowledged.
    pub written: ThroughputSeries,
}

impl ThroughputSeries {
    /// An empty series.
    pub fn new() -> ThroughputSeries {
        ThroughputSeries::default()
    }

    /// Adds `count` events observed `at_ms` after the run start.
    pub fn add(&mut self, at_ms: u64, count: u64) {
        let index = interval_index(at_ms);
        if self.counts.len() <= index {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] = self.counts[index].saturating_add(count);
    }

    /// Adds every count of `other`, interval by interval.
    pub fn merge(&mut self, other: &ThroughputSeries) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (into, count) in self.counts.iter_mut().zip(&other.counts) {
            *into = into.saturating_add(*count);
        }
    }

    /// Counts per second from second 0 to the last second that saw an event (0 where none did).
    pub fn per_second(&self) -> Vec<u64> {
        self.counts.clone()
    }

    /// All events of the series.
    pub fn total(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |sum, count| sum.saturating_add(*count))
    }

    /// Mean events per second over a span of `over_s` seconds (usually the measured part of the
    /// run); 0 when the span is not positive.
    pub fn mean_per_s(&self, over_s: f64) -> f64 {
        if over_s > 0.0 {
            self.total() as f64 / over_s
        } else {
            0.0
        }
    }

    /// The busiest second's count.
    pub fn peak_per_s(&self) -> u64 {
        self.counts.iter().copied().max().unwrap_or(0)
    }
}

impl Throughput {
    /// Three empty series.
    pub fn new() -> Throughput {
        Throughput::default()
    }

    /// Adds every count of `other`, stream by stream.
    pub fn merge(&mut self, other: &Throughput) {
        self.produced.merge(&other.produced);
        self.consumed.merge(&other.consumed);
        self.written.merge(&other.written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_whole_second_buckets() {
        let mut series = ThroughputSeries::new();
        series.add(0, 5);
        series.add(999, 5);
        series.add(1_000, 3);
        series.add(4_200, 7);
        assert_eq!(series.per_second(), vec![10, 3, 0, 0, 7]);
        assert_eq!(series.total(), 20);
        assert_eq!(series.peak_per_s(), 10);
        assert_eq!(series.mean_per_s(5.0), 4.0);
        assert_eq!(series.mean_per_s(0.0), 0.0);
    }

    #[test]
    fn empty_series_has_no_buckets() {
        let series = ThroughputSeries::new();
        assert!(series.per_second().is_empty());
        assert_eq!(series.peak_per_s(), 0);
        assert_eq!(series.mean_per_s(10.0), 0.0);
    }

    #[test]
    fn merge_adds_interval_by_interval() {
        let mut a = Throughput::new();
        a.written.add(0, 1);
        a.produced.add(2_500, 4);
        let mut b = Throughput::new();
        b.written.add(1_500, 2);
        b.written.add(100, 1);
        a.merge(&b);
        assert_eq!(a.written.per_second(), vec![2, 2]);
        assert_eq!(a.produced.per_second(), vec![0, 0, 4]);
        assert!(a.consumed.per_second().is_empty());
    }
}
