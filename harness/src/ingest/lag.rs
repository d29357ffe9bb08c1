//! Consumer lag, measured off the event loop: a thread asks the broker for high watermarks (over its own connection, each query with its own timeout) and publishes the sum for the loop to read.
//!
//! The loop only notes positions and reads the last measurement, so a broker that holds
//! ListOffsets requests back (Tansu does) delays the lag figure, never the fetching and writing.
//!
//! The same measurements notice a broker that lost a partition's log: a log's end (high
//! watermark) never goes back, except when the broker lost what it held (a restart on memory
//! storage, an unclean leader election). The consumer's position is then beyond the new log's end,
//! where nothing will ever arrive; the loop hears of it ([`LagProbe::lost_logs`]) and reads the
//! partition again from its beginning.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError, channel, sync_channel};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::core::LogLost;
use crate::clients::kafka::kafka_error;
use crate::clients::{ClientError, KafkaConnection};

/// How long one high-watermark query may wait for the broker.
const WATERMARK_TIMEOUT: Duration = Duration::from_millis(500);

/// The event loop's side of the lag measurement; none of its methods waits.
#[derive(Debug)]
pub(super) struct LagProbe {
    /// The next offset to read, per assigned partition that has delivered a record since it was
    /// assigned (a partition without a position has an unknown lag, left out as librdkafka did).
    positions: BTreeMap<i32, i64>,
    /// The assigned partitions: each one's end is watched, with or without a position.
    assigned: BTreeSet<i32>,
    /// Partitions and positions to measure; holds one request at most, more are skipped.
    requests: SyncSender<Request>,
    /// The last measurement, records.
    lag_records: Arc<AtomicI64>,
    /// Logs the measuring thread found lost.
    lost: Receiver<LogLost>,
}

/// One measurement: every assigned partition, with the position when it has one.
type Request = Vec<(i32, Option<i64>)>;

impl LagProbe {
    /// Starts the measuring thread; `high_watermark(partition)` asks the broker and may block up
    /// to its own timeout (`None`: unknown). The thread ends when the probe is dropped.
    pub(super) fn spawn(
        mut high_watermark: impl FnMut(i32) -> Option<i64> + Send + 'static,
    ) -> std::io::Result<LagProbe> {
        let (requests, received) = sync_channel::<Request>(1);
        let (found_lost, lost) = channel();
        let lag_records = Arc::new(AtomicI64::new(0));
        let published = Arc::clone(&lag_records);
        std::thread::Builder::new()
            .name("roadtest-lag".into())
            .spawn(move || {
                let mut ends = LogEnds::default();
                while let Ok(request) = received.recv() {
                    let lag = ends.measure(&request, &mut high_watermark, &found_lost);
                    published.store(lag, Ordering::Relaxed);
                }
            })?;
        Ok(LagProbe {
            positions: BTreeMap::new(),
            assigned: BTreeSet::new(),
            requests,
            lag_records,
            lost,
        })
    }

    /// Watches the ends of newly assigned partitions.
    pub(super) fn on_assigned(&mut self, partitions: &[i32]) {
        self.assigned.extend(partitions);
    }

    /// The partition is read again from its beginning: its position is unknown until a record
    /// comes.
    pub(super) fn on_rewound(&mut self, partition: i32) {
        self.positions.remove(&partition);
    }

    /// Logs found lost since the last call.
    pub(super) fn lost_logs(&self) -> Vec<LogLost> {
        self.lost.try_iter().collect()
    }

    /// Notes a record handed to the loop: its partition's position is the next offset.
    pub(super) fn on_record(&mut self, partition: i32, offset: i64) {
        self.positions.insert(partition, offset.saturating_add(1));
    }

    /// Forgets the positions of revoked partitions.
    pub(super) fn on_revoked(&mut self, partitions: &[i32]) {
        self.positions
            .retain(|partition, _| !partitions.contains(partition));
        self.assigned
            .retain(|partition| !partitions.contains(partition));
    }

    /// Asks for a measurement at the current positions; skipped while one is still waiting.
    pub(super) fn request(&self) {
        let request = self
            .assigned
            .iter()
            .chain(self.positions.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|&partition| (partition, self.positions.get(&partition).copied()))
            .collect();
        match self.requests.try_send(request) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!("the lag thread has stopped; lag stays at its last value");
            }
        }
    }

    /// The last measurement (0 before the first): records behind the end of the assigned
    /// partitions.
    pub(super) fn lag_records(&self) -> i64 {
        self.lag_records.load(Ordering::Relaxed)
    }
}

/// The measuring thread's memory: the furthest end seen of each partition (kept across
/// revocations: the topic's log is the same whoever reads it), and the ends found behind it once.
#[derive(Debug, Default)]
struct LogEnds {
    furthest: BTreeMap<i32, i64>,
    went_back: BTreeSet<i32>,
}

impl LogEnds {
    /// Asks for the end of every partition of `request` and returns the lag. A partition whose
    /// end is behind the furthest seen twice in a row (a new Kafka leader's high watermark can
    /// lag for a moment), with the consumer's position beyond it or unknown, is reported to
    /// `lost` and watched from its new end.
    fn measure(
        &mut self,
        request: &Request,
        mut high_watermark: impl FnMut(i32) -> Option<i64>,
        lost: &Sender<LogLost>,
    ) -> i64 {
        let mut ends = Vec::new();
        for &(partition, position) in request {
            let Some(end) = high_watermark(partition) else {
                continue;
            };
            let furthest = self.furthest.entry(partition).or_insert(end);
            let behind = end < *furthest && position.is_none_or(|position| position > end);
            if !behind {
                *furthest = end.max(*furthest);
                self.went_back.remove(&partition);
            } else if !self.went_back.insert(partition) {
                let _ = lost.send(LogLost {
                    partition,
                    end_before: *furthest,
                    end_after: end,
                });
                *furthest = end;
                self.went_back.remove(&partition);
            }
            if let Some(position) = position {
                ends.push((partition, position, end));
            }
        }
        lag_records(&ends)
    }
}

/// A high-watermark query for `topic` over a client of its own (its own connection to the
/// broker, so a held-back query delays no fetch of the consumer's).
pub(super) fn watermark_query(
    kafka: &KafkaConnection,
    topic: &str,
) -> Result<impl FnMut(i32) -> Option<i64> + Send + 'static, ClientError> {
    let client: BaseConsumer = kafka
        .client_config()
        .create()
        .map_err(|e| kafka_error(&kafka.bootstrap, "create the lag client", e))?;
    let topic = topic.to_string();
    Ok(move |partition| {
        client
            .fetch_watermarks(&topic, partition, WATERMARK_TIMEOUT)
            .ok()
            .map(|(_, high)| high)
    })
}

/// Records behind the high watermarks, summed over (partition, position, high watermark).
/// Partitions whose watermark is below the position are left out: Tansu 0.6 (memory storage)
/// reports the first offset of the last batch + 1 as the high watermark, so below our position
/// it is unknown, not "no lag" (and not a lost log either: only an end that goes back is).
fn lag_records(measured: &[(i32, i64, i64)]) -> i64 {
    measured
        .iter()
        .filter(|(_, position, high)| high >= position)
        .map(|(_, position, high)| high - position)
        .sum()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// Polls the probe until it reports `expected` or `deadline` passes.
    fn wait_for(probe: &LagProbe, expected: i64, deadline: Duration) -> i64 {
        let started = Instant::now();
        while probe.lag_records() != expected && started.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        probe.lag_records()
    }

    #[test]
    fn lag_sums_known_watermarks_at_or_above_the_position() {
        let watermarks = |partition| match partition {
            0 => Some(150),
            1 => None,     // the query timed out
            2 => Some(40), // below the position: unknown (Tansu)
            _ => Some(7),
        };
        let request = [
            (0, Some(100)),
            (1, Some(5)),
            (2, Some(50)),
            (3, Some(7)),
            (4, None),
        ];
        let (lost, found) = channel();
        let mut ends = LogEnds::default();
        assert_eq!(ends.measure(&request.to_vec(), watermarks, &lost), 50);
        assert_eq!(ends.measure(&Vec::new(), watermarks, &lost), 0);
        assert!(found.try_recv().is_err(), "no end went back");
    }

    #[test]
    fn an_end_that_goes_back_is_a_lost_log_reported_once() {
        let (lost, found) = channel();
        let mut ends = LogEnds::default();
        let request = vec![(0, Some(3_000)), (1, None)];
        ends.measure(&request, |_| Some(3_001), &lost);
        ends.measure(&request, |_| None, &lost); // the broker is down
        // Behind once, then caught up: a new leader's lagging high watermark, not a loss.
        ends.measure(&request, |_| Some(2_990), &lost);
        ends.measure(&request, |_| Some(3_001), &lost);
        assert!(found.try_recv().is_err());
        // Behind twice in a row, below the position (or with none): lost, reported once.
        ends.measure(&request, |p| Some(if p == 0 { 12 } else { 3_001 }), &lost);
        ends.measure(&request, |p| Some(if p == 0 { 40 } else { 3_002 }), &lost);
        ends.measure(&request, |p| Some(if p == 0 { 41 } else { 3_002 }), &lost);
        let reported: Vec<LogLost> = found.try_iter().collect();
        assert_eq!(
            reported,
            vec![LogLost {
                partition: 0,
                end_before: 3_001,
                end_after: 40
            }]
        );
        // An end behind the furthest but not behind the position: still readable, not lost.
        let mut ends = LogEnds::default();
        let reading = vec![(0, Some(10))];
        for end in [500, 20, 20, 20] {
            ends.measure(&reading, |_| Some(end), &lost);
        }
        assert!(found.try_recv().is_err());
    }

    #[test]
    fn positions_follow_records_and_revocations() -> std::io::Result<()> {
        let mut probe = LagProbe::spawn(|_| Some(1_000))?;
        probe.on_record(0, 99);
        probe.on_record(1, 499);
        probe.on_record(0, 199);
        probe.request();
        assert_eq!(wait_for(&probe, 1_300, Duration::from_secs(5)), 1_300);
        probe.on_revoked(&[0]);
        probe.request();
        assert_eq!(wait_for(&probe, 500, Duration::from_secs(5)), 500);
        Ok(())
    }

    #[test]
    fn a_broker_that_holds_queries_back_never_holds_the_loop() -> std::io::Result<()> {
        let mut probe = LagProbe::spawn(|_| {
            std::thread::sleep(Duration::from_millis(300));
            Some(10)
        })?;
        probe.on_record(0, 4);
        let started = Instant::now();
        for _ in 0..100 {
            probe.request();
            let _ = probe.lag_records();
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "requests waited {:?}",
            started.elapsed()
        );
        assert_eq!(wait_for(&probe, 5, Duration::from_secs(5)), 5);
        Ok(())
    }
}
