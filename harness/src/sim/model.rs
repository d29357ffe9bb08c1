//! The simulated services of the sim target: seeded latency draws, a broker on memory or durable storage and a database with a commit log.
//!
//! The broker keeps partitions of events (keyed by vehicle id with FNV-1a, a stable hash; real
//! Kafka uses murmur2, which only changes which partition a vehicle lands on), offsets, and one
//! consumer group's committed offsets. Like the local target's Tansu on memory storage, a killed
//! or stopped broker keeps nothing: its logs begin again at offset 0 and the group's offsets are
//! gone ([`SimBroker::lose_everything`]); on durable storage the world never calls that. The store keeps rows
//! by (vehicle, timestamp) and an undo log of writes since the last commit-log sync: a crash
//! rolls those back, as Cassandra's periodic sync loses acknowledged writes not yet synced.

use crate::wire::RowFields;
use std::collections::{BTreeMap, VecDeque};

use crate::scenario::CommitlogSync;
use crate::seed::SimRng;
use crate::wire::Event;

/// A latency distribution: a fixed base plus an exponential tail, capped at 50 means.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyModel {
    /// The least latency, in µs.
    pub base_us: u64,
    /// Mean of the exponential part, in µs.
    pub mean_extra_us: f64,
}

impl LatencyModel {
    /// One draw, in µs (`libm::log`, so every platform draws the same value).
    pub fn draw(&self, rng: &mut SimRng) -> u64 {
        let extra = -self.mean_extra_us * libm::log(1.0 - rng.unit());
        self.base_us + extra.min(self.mean_extra_us * 50.0) as u64
    }
}

/// The latency parameters of the simulated services.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimLatencies {
    /// Producer send until broker acknowledgement (and visibility to the consumer).
    pub produce: LatencyModel,
    /// One fetch round trip of the consumer.
    pub fetch: LatencyModel,
    /// One batch write until acknowledgement.
    pub write: LatencyModel,
    /// Added to a write per row, in µs.
    pub write_per_row_us: u64,
    /// A database of finite capacity: rows it stores per second, one batch after another (a
    /// queue in front of one server); a write waits for the batches before it, then takes its
    /// rows' share of a second, then `write`'s latency. `None` (the default): no queue, any
    /// number of writes at once. With it the pipeline's highest sustainable rate is known,
    /// which is how `roadtest knee` is tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_rows_per_s: Option<f64>,
}

impl Default for SimLatencies {
    /// Loopback-sized defaults: produce 1 ms + exp(1 ms), fetch 0.5 ms + exp(0.5 ms),
    /// write 1 ms + exp(2 ms) + 5 µs per row.
    fn default() -> Self {
        SimLatencies {
            produce: LatencyModel {
                base_us: 1_000,
                mean_extra_us: 1_000.0,
            },
            fetch: LatencyModel {
                base_us: 500,
                mean_extra_us: 500.0,
            },
            write: LatencyModel {
                base_us: 1_000,
                mean_extra_us: 2_000.0,
            },
            write_per_row_us: 5,
            database_rows_per_s: None,
        }
    }
}

/// The partition of a vehicle: FNV-1a of its id `veh-NNNNNN`, modulo the partition count.
pub fn partition_of(vehicle_index: u32, partitions: u32) -> usize {
    let hash = crate::seed::fnv1a(crate::wire::vehicle_id(vehicle_index).as_bytes());
    (hash % u64::from(partitions.max(1))) as usize
}

/// One partition's log; entries below the committed offset are trimmed, until the log is lost
/// once (a commit from before the loss would trim the new log's unread records).
#[derive(Debug, Default)]
struct PartitionLog {
    base_offset: i64,
    untrimmed: bool,
    /// (event, time it became visible, in µs).
    entries: VecDeque<(Event, u64)>,
    last_visible_us: u64,
}

/// The simulated broker.
#[derive(Debug)]
pub struct SimBroker {
    partitions: Vec<PartitionLog>,
    committed: Vec<Option<i64>>,
    /// Each partition's end before the logs were lost, until the consumer notices.
    ends_before_loss: Option<Vec<i64>>,
}

impl SimBroker {
    pub fn new(partitions: u32) -> SimBroker {
        let count = partitions.max(1) as usize;
        SimBroker {
            partitions: (0..count).map(|_| PartitionLog::default()).collect(),
            committed: vec![None; count],
            ends_before_loss: None,
        }
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Appends an event acknowledged at `ack_us`; it becomes visible no earlier than the
    /// partition's previous record (offset order is visibility order). Returns the visible time.
    pub fn append(&mut self, partition: usize, event: Event, ack_us: u64) -> u64 {
        let log = &mut self.partitions[partition];
        let visible_us = ack_us.max(log.last_visible_us);
        log.last_visible_us = visible_us;
        log.entries.push_back((event, visible_us));
        visible_us
    }

    /// The next offset to be written on `partition`.
    pub fn end_offset(&self, partition: usize) -> i64 {
        let log = &self.partitions[partition];
        log.base_offset + log.entries.len() as i64
    }

    /// The record at `offset`, if held.
    pub fn get(&self, partition: usize, offset: i64) -> Option<&(Event, u64)> {
        let log = &self.partitions[partition];
        let index = usize::try_from(offset - log.base_offset).ok()?;
        log.entries.get(index)
    }

    /// The group's committed offset of `partition` (0 when none: `auto.offset.reset = earliest`).
    pub fn committed(&self, partition: usize) -> i64 {
        self.committed[partition].unwrap_or(0)
    }

    /// A restart on memory storage: every log begins again at offset 0, empty, and the group's
    /// committed offsets are gone. Each partition's end before is kept for
    /// [`SimBroker::take_ends_before_loss`].
    pub fn lose_everything(&mut self) {
        let ends = (0..self.partitions.len())
            .map(|p| self.end_offset(p))
            .collect();
        self.ends_before_loss = Some(ends);
        for log in &mut self.partitions {
            *log = PartitionLog {
                untrimmed: true,
                ..PartitionLog::default()
            };
        }
        self.committed.fill(None);
    }

    /// Each partition's end before the last loss, once.
    pub fn take_ends_before_loss(&mut self) -> Option<Vec<i64>> {
        self.ends_before_loss.take()
    }

    /// Commits `offset` (the next to read) and trims what is below it.
    pub fn commit(&mut self, partition: usize, offset: i64) {
        let Some(slot) = self.committed.get_mut(partition) else {
            return;
        };
        *slot = Some(offset);
        let log = &mut self.partitions[partition];
        while !log.untrimmed && log.base_offset < offset && !log.entries.is_empty() {
            log.entries.pop_front();
            log.base_offset += 1;
        }
    }
}

/// A row as the simulated database holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredRow {
    /// What the row holds, as verification compares it.
    pub fields: RowFields,
    /// Virtual time of the write, in µs since the run start (Cassandra's WRITETIME).
    pub write_us: u64,
}

/// The simulated database: rows by vehicle, sorted by timestamp, and the unsynced writes.
#[derive(Debug)]
pub struct SimStore {
    vehicles: Vec<Vec<(i64, StoredRow)>>,
    /// Rows of vehicles outside the fleet (nobody sent them).
    strangers: BTreeMap<(u32, i64), StoredRow>,
    /// Writes since the last sync with what they replaced (periodic sync only).
    undo: Vec<(u32, i64, Option<StoredRow>)>,
    sync: CommitlogSync,
    /// Acknowledged rows rolled back by crashes.
    pub rows_lost_in_crashes: u64,
}

impl SimStore {
    /// A store with room for `rows_per_vehicle` rows of each vehicle (more can be added).
    pub fn new(vehicle_count: u32, rows_per_vehicle: usize, sync: CommitlogSync) -> SimStore {
        SimStore {
            vehicles: (0..vehicle_count)
                .map(|_| Vec::with_capacity(rows_per_vehicle))
                .collect(),
            strangers: BTreeMap::new(),
            undo: Vec::new(),
            sync,
            rows_lost_in_crashes: 0,
        }
    }

    /// An upsert of the row (vehicle, timestamp).
    pub fn upsert(&mut self, vehicle: u32, timestamp: i64, row: StoredRow) {
        let previous = match self.vehicles.get_mut(vehicle as usize) {
            Some(rows) => put(rows, timestamp, Some(row)),
            None => self.strangers.insert((vehicle, timestamp), row),
        };
        if self.sync == CommitlogSync::Periodic {
            self.undo.push((vehicle, timestamp, previous));
        }
    }

    /// The commit log is synced: every write so far survives a crash.
    pub fn sync(&mut self) {
        self.undo.clear();
    }

    /// A crash: writes since the last sync are rolled back, newest first.
    pub fn crash(&mut self) {
        self.rows_lost_in_crashes += self.undo.len() as u64;
        while let Some((vehicle, timestamp, previous)) = self.undo.pop() {
            match self.vehicles.get_mut(vehicle as usize) {
                Some(rows) => {
                    put(rows, timestamp, previous);
                }
                None => {
                    match previous {
                        Some(row) => self.strangers.insert((vehicle, timestamp), row),
                        None => self.strangers.remove(&(vehicle, timestamp)),
                    };
                }
            }
        }
    }

    /// Sets (Some) or removes (None) the row (vehicle, timestamp) outside the commit log's
    /// bookkeeping: a tamper fault after the drain, which no crash follows.
    pub fn tamper(&mut self, vehicle: u32, timestamp: i64, row: Option<StoredRow>) {
        match (self.vehicles.get_mut(vehicle as usize), row) {
            (Some(rows), row) => {
                put(rows, timestamp, row);
            }
            (None, Some(row)) => {
                self.strangers.insert((vehicle, timestamp), row);
            }
            (None, None) => {
                self.strangers.remove(&(vehicle, timestamp));
            }
        }
    }

    /// The rows of a fleet vehicle in timestamp order.
    pub fn rows_of(&self, vehicle: u32) -> &[(i64, StoredRow)] {
        self.vehicles
            .get(vehicle as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// Rows of vehicles outside the fleet, by (vehicle, timestamp).
    pub fn strangers(&self) -> &BTreeMap<(u32, i64), StoredRow> {
        &self.strangers
    }
}

/// Sets (Some) or removes (None) the row at `timestamp` of a sorted list; returns the old row.
fn put(
    rows: &mut Vec<(i64, StoredRow)>,
    timestamp: i64,
    row: Option<StoredRow>,
) -> Option<StoredRow> {
    // Rows mostly arrive in timestamp order: check the end first.
    let position = match rows.last() {
        Some(&(last, _)) if last < timestamp => Err(rows.len()),
        _ => rows.binary_search_by_key(&timestamp, |&(t, _)| t),
    };
    match (position, row) {
        (Ok(index), Some(row)) => Some(std::mem::replace(&mut rows[index].1, row)),
        (Ok(index), None) => Some(rows.remove(index).1),
        (Err(index), Some(row)) => {
            rows.insert(index, (timestamp, row));
            None
        }
        (Err(_), None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: u64, write_us: u64) -> StoredRow {
        StoredRow {
            fields: RowFields {
                seq,
                latitude: 1.0,
                longitude: 2.0,
                speed: 3.0,
                temperature: 4.0,
                humidity: 5.0,
                format_version: 1,
            },
            write_us,
        }
    }

    #[test]
    fn a_crash_rolls_back_only_unsynced_writes() {
        let mut store = SimStore::new(2, 0, CommitlogSync::Periodic);
        store.upsert(0, 10, row(0, 1));
        store.sync();
        store.upsert(0, 10, row(0, 2));
        store.upsert(0, 20, row(1, 3));
        store.crash();
        assert_eq!(store.rows_of(0), &[(10, row(0, 1))]);
        assert_eq!(store.rows_lost_in_crashes, 2);
        let mut batch = SimStore::new(1, 0, CommitlogSync::Batch);
        batch.upsert(0, 5, row(0, 1));
        batch.crash();
        assert_eq!(batch.rows_of(0).len(), 1);
    }

    #[test]
    fn commits_trim_the_log_and_offsets_stay() {
        let mut broker = SimBroker::new(2);
        let event = crate::wire::Event {
            vehicle_index: 0,
            seq: 0,
            timestamp_ms: 0,
            latitude: 0.0,
            longitude: 0.0,
            speed_kmh: 0.0,
            temperature_c: 0.0,
            humidity_pct: 0.0,
        };
        assert_eq!(broker.append(1, event, 50), 50);
        assert_eq!(broker.append(1, event, 10), 50);
        broker.commit(1, 1);
        assert_eq!(broker.end_offset(1), 2);
        assert!(broker.get(1, 0).is_none());
        assert_eq!(broker.get(1, 1).map(|e| e.1), Some(50));
        assert_eq!(broker.committed(1), 1);
        assert_eq!(broker.committed(0), 0);
        // A restart on memory storage: empty logs from offset 0, no committed offsets, and a
        // stale commit (from before the loss) trims nothing of the new log.
        broker.lose_everything();
        assert_eq!(broker.take_ends_before_loss(), Some(vec![0, 2]));
        assert_eq!(broker.take_ends_before_loss(), None);
        assert_eq!(broker.end_offset(1), 0);
        assert_eq!(broker.committed(1), 0);
        broker.append(1, event, 60);
        broker.append(1, event, 70);
        broker.commit(1, 2);
        assert_eq!(broker.committed(1), 2);
        assert_eq!(broker.get(1, 0).map(|e| e.1), Some(60));
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        let first: Vec<usize> = (0..50).map(|v| partition_of(v, 3)).collect();
        let again: Vec<usize> = (0..50).map(|v| partition_of(v, 3)).collect();
        assert_eq!(first, again);
        assert!(first.iter().all(|&p| p < 3));
        assert!((0..3).all(|p| first.contains(&p)));
    }
}
