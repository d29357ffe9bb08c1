//! Consumer lag, measured off the event loop: a thread asks the broker for high watermarks (over its own connection, each query with its own timeout) and publishes the sum for the loop to read.
//!
//! The loop only notes positions and reads the last measurement, so a broker that holds
//! ListOffsets requests back (Tansu does) delays the lag figure, never the fetching and writing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

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
    /// Positions to measure against; holds one request at most, more are skipped.
    requests: SyncSender<Vec<(i32, i64)>>,
    /// The last measurement, records.
    lag_records: Arc<AtomicI64>,
}

impl LagProbe {
    /// Starts the measuring thread; `high_watermark(partition)` asks the broker and may block up
    /// to its own timeout (`None`: unknown). The thread ends when the probe is dropped.
    pub(super) fn spawn(
        mut high_watermark: impl FnMut(i32) -> Option<i64> + Send + 'static,
    ) -> std::io::Result<LagProbe> {
        let (requests, received) = sync_channel::<Vec<(i32, i64)>>(1);
        let lag_records = Arc::new(AtomicI64::new(0));
        let published = Arc::clone(&lag_records);
        std::thread::Builder::new()
            .name("roadtest-lag".into())
            .spawn(move || measure_until_closed(&received, &published, &mut high_watermark))?;
        Ok(LagProbe {
            positions: BTreeMap::new(),
            requests,
            lag_records,
        })
    }

    /// Notes a record handed to the loop: its partition's position is the next offset.
    pub(super) fn on_record(&mut self, partition: i32, offset: i64) {
        self.positions.insert(partition, offset.saturating_add(1));
    }

    /// Forgets the positions of revoked partitions.
    pub(super) fn on_revoked(&mut self, partitions: &[i32]) {
        self.positions
            .retain(|partition, _| !partitions.contains(partition));
    }

    /// Asks for a measurement at the current positions; skipped while one is still waiting.
    pub(super) fn request(&self) {
        let positions = self.positions.iter().map(|(&p, &o)| (p, o)).collect();
        match self.requests.try_send(positions) {
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

/// Measures each request until the probe is dropped.
fn measure_until_closed(
    requests: &Receiver<Vec<(i32, i64)>>,
    published: &AtomicI64,
    high_watermark: &mut impl FnMut(i32) -> Option<i64>,
) {
    while let Ok(positions) = requests.recv() {
        published.store(
            lag_records(&positions, &mut *high_watermark),
            Ordering::Relaxed,
        );
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

/// Records behind the high watermarks, summed. Partitions whose watermark is unknown are left
/// out, and so are those whose watermark is below the position: Tansu 0.6 (memory storage)
/// reports the first offset of the last batch + 1 as the high watermark, so below our position
/// it is unknown, not "no lag".
fn lag_records(
    positions: &[(i32, i64)],
    mut high_watermark: impl FnMut(i32) -> Option<i64>,
) -> i64 {
    positions
        .iter()
        .filter_map(|&(partition, position)| {
            let high = high_watermark(partition)?;
            (high >= position).then_some(high - position)
        })
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
        let positions = [(0, 100), (1, 5), (2, 50), (3, 7)];
        assert_eq!(lag_records(&positions, watermarks), 50);
        assert_eq!(lag_records(&[], watermarks), 0);
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
