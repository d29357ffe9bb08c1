//! The reference consumer's decision core (batching, commit after write, retries, poison records, rebalances) with no I/O.
//!
//! [`IngestCore`] is a sans-I/O state machine. An adapter feeds it events (a record arrived, a
//! write finished, time passed, partitions moved) and carries out the [`Action`]s it queues,
//! draining them with [`IngestCore::next_action`] after every event. The core reads no clock and
//! does no I/O: time comes in as `now_ms`, so the rdkafka/scylla adapters and the deterministic
//! simulation drive the very same code. Actions come out first-in first-out, and within one event
//! in a fixed order (writes by batch id, dead letters by partition then offset, commits by
//! partition), so equal inputs give equal outputs.
//!
//! Guarantees with [`CommitPolicy::AfterWrite`] (at-least-once):
//! - a partition's committed offset `n` means every record below `n` that this core saw on it
//!   since it was assigned is durably handled: its batch write was acknowledged, or (for a record
//!   that failed to decode) its dead-letter produce was acknowledged ([`IngestCore::on_dead_letter_ok`]);
//! - a failed write or dead-letter produce is retried after capped exponential backoff, never dropped;
//! - on revoke the core commits what is done on those partitions and forgets the rest; the new
//!   owner reads those records again. Rows of a revoked partition still in flight are written
//!   anyway (rows are idempotent upserts) but no longer tracked, and left out of later retries.
//!
//! A commit is treated as done once emitted: a failed commit only means some records are read
//! again, which at-least-once allows. [`CommitPolicy::BeforeWrite`] (at-most-once, unsafe on
//! purpose) makes an offset committable as soon as its record is received.
//!
//! Limits: the open batch holds at most `batch_size` rows; [`IngestCore::should_pause`] asks the
//! adapter to stop fetching at `max_in_flight_batches` batches (written or waiting for retry) or
//! [`DEAD_LETTERS_IN_FLIGHT_MAX`] unacknowledged dead letters. An adapter that checks it before
//! every record keeps at most `max_in_flight_batches + 1` batches (a linger or shutdown may seal
//! one more), so pending offsets and queued actions stay bounded.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use crate::scenario::{CommitPolicy, ConsumerSettings};
use crate::wire::{Event, Record};

/// The largest batch the core accepts (the scenario's limit).
pub const BATCH_SIZE_MAX: u64 = ConsumerSettings::BATCH_SIZE_MAX as u64;
/// The most batches in flight (written or waiting for retry) the core accepts as a limit.
pub const IN_FLIGHT_BATCHES_MAX: u64 = ConsumerSettings::IN_FLIGHT_MAX as u64;
/// The longest linger and commit interval, in ms.
pub const INTERVAL_MS_MAX: u64 = 60_000;
/// The longest retry backoff, in ms.
pub const RETRY_BACKOFF_MS_MAX: u64 = 600_000;
/// Dead letters awaiting acknowledgement at which [`IngestCore::should_pause`] turns true.
pub const DEAD_LETTERS_IN_FLIGHT_MAX: usize = 1_024;

/// How the core batches, retries and commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestSettings {
    /// Rows per batch write (1..=[`BATCH_SIZE_MAX`]).
    pub batch_size: usize,
    /// Batches written or waiting for retry at which fetching pauses (1..=[`IN_FLIGHT_BATCHES_MAX`]).
    pub max_in_flight_batches: usize,
    /// A partial batch is sealed this long after its first row (0..=[`INTERVAL_MS_MAX`]).
    pub linger_ms: u64,
    /// When offsets become committable.
    pub commit: CommitPolicy,
    /// Least time between two periodic commits (0..=[`INTERVAL_MS_MAX`]).
    pub commit_interval_ms: u64,
    /// Wait before the first retry; doubles per failed attempt (1..=`retry_backoff_max_ms`).
    pub retry_backoff_initial_ms: u64,
    /// Cap of the retry wait (`retry_backoff_initial_ms`..=[`RETRY_BACKOFF_MS_MAX`]).
    pub retry_backoff_max_ms: u64,
}

/// A setting out of its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ingest settings: {key} is {value}, allowed is {min}..={max}")]
pub struct IngestSettingsError {
    pub key: &'static str,
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

impl IngestSettings {
    /// The scenario's consumer settings plus defaults: linger 20 ms, commit every 200 ms,
    /// retry backoff 50 ms doubling up to 5,000 ms.
    pub fn from_consumer(consumer: &ConsumerSettings) -> IngestSettings {
        IngestSettings {
            batch_size: consumer.batch_size as usize,
            max_in_flight_batches: consumer.max_in_flight as usize,
            linger_ms: 20,
            commit: consumer.commit,
            commit_interval_ms: 200,
            retry_backoff_initial_ms: 50,
            retry_backoff_max_ms: 5_000,
        }
    }

    /// Checks every setting against its range.
    pub fn validate(&self) -> Result<(), IngestSettingsError> {
        let (batch_size, in_flight) = (self.batch_size as u64, self.max_in_flight_batches as u64);
        let (initial, cap) = (self.retry_backoff_initial_ms, self.retry_backoff_max_ms);
        let rules = [
            ("batch_size", batch_size, 1, BATCH_SIZE_MAX),
            ("max_in_flight_batches", in_flight, 1, IN_FLIGHT_BATCHES_MAX),
            ("linger_ms", self.linger_ms, 0, INTERVAL_MS_MAX),
            (
                "commit_interval_ms",
                self.commit_interval_ms,
                0,
                INTERVAL_MS_MAX,
            ),
            ("retry_backoff_initial_ms", initial, 1, RETRY_BACKOFF_MS_MAX),
            ("retry_backoff_max_ms", cap, initial, RETRY_BACKOFF_MS_MAX),
        ];
        match rules
            .into_iter()
            .find(|&(_, value, min, max)| !(min..=max).contains(&value))
        {
            Some((key, value, min, max)) => Err(IngestSettingsError {
                key,
                value,
                min,
                max,
            }),
            None => Ok(()),
        }
    }

    /// The wait after failed attempt `attempt` (1-based): initial * 2^(attempt-1), capped.
    pub fn retry_backoff_ms(&self, attempt: u32) -> u64 {
        let factor = 1u64
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u64::MAX);
        self.retry_backoff_initial_ms
            .saturating_mul(factor)
            .min(self.retry_backoff_max_ms)
    }
}

/// One decoded record on its way to the database.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub partition: i32,
    pub offset: i64,
    /// When the core received it (adapter clock), for latency measurement.
    pub received_at_ms: u64,
    /// Fleet index of `record.vehicle_id`.
    pub vehicle_index: u32,
    pub record: Record,
}

/// How loud a [`Action::Log`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LogLevel {
    Info,
    Warn,
}

/// What the adapter must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write these rows (idempotent upserts), then report [`IngestCore::on_write_ok`] or
    /// [`IngestCore::on_write_failed`] with `batch_id`. `attempt` counts from 1; a retry sends
    /// the same `batch_id` again, possibly with fewer rows (rows of revoked partitions dropped).
    Write {
        batch_id: u64,
        attempt: u32,
        rows: Arc<[Row]>,
    },
    /// Produce this undecodable record to the dead-letter topic, then report
    /// [`IngestCore::on_dead_letter_ok`] or [`IngestCore::on_dead_letter_failed`].
    DeadLetter {
        partition: i32,
        offset: i64,
        payload: Vec<u8>,
        reason: String,
    },
    /// Commit these (partition, next offset to read) pairs, sorted by partition.
    Commit { offsets: Vec<(i32, i64)> },
    /// Something worth a log line (a failed write or dead-letter produce).
    Log { level: LogLevel, message: String },
}

/// Counters of the core.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct IngestStats {
    /// Records accepted (decoded or dead-lettered).
    pub consumed: u64,
    /// Rows whose write was acknowledged.
    pub written: u64,
    /// Failed write attempts.
    pub write_failures: u64,
    /// Write attempts after the first.
    pub retries: u64,
    /// Records that failed to decode.
    pub dead_lettered: u64,
    /// Failed dead-letter produce attempts.
    pub dead_letter_failures: u64,
    /// Batches being written or waiting for retry.
    pub in_flight_batches: u64,
    /// Dead letters not yet acknowledged.
    pub dead_letters_in_flight: u64,
    /// Records ignored: partition not assigned, or shutdown begun (they will be read again).
    pub ignored: u64,
    /// Reports for unknown or already settled batches or dead letters (after a revoke, or duplicates).
    pub stale_reports: u64,
    /// Last committed next offset per partition.
    pub committed: BTreeMap<i32, i64>,
    /// Partitions whose log the broker lost (a restart without storage): each one read again
    /// from its beginning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs_lost: Vec<LogLost>,
}

/// The broker lost a partition's log: its end went back, as after a restart on memory storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct LogLost {
    pub partition: i32,
    /// The end (high watermark) the partition had reached, and where it was found after.
    pub end_before: i64,
    pub end_after: i64,
}

/// What the core tracks of one assigned partition.
#[derive(Debug)]
struct PartitionState {
    /// Distinguishes this assignment from earlier ones of the same partition.
    generation: u64,
    /// Offsets seen but not yet durably handled (AfterWrite only).
    pending: BTreeSet<i64>,
    lowest_seen: Option<i64>,
    highest_seen: Option<i64>,
    committed: Option<i64>,
}

impl PartitionState {
    /// The next offset to read such that everything below it is handled; `None` until at
    /// least the first record seen is handled.
    fn committable(&self) -> Option<i64> {
        let (lowest, highest) = (self.lowest_seen?, self.highest_seen?);
        let next = self.pending.first().copied().unwrap_or(highest + 1);
        (next > lowest).then_some(next)
    }
}

/// A sealed batch.
#[derive(Debug)]
struct Batch {
    rows: Arc<[Row]>,
    /// (partition, generation) of its rows at sealing, sorted by partition.
    generations: Vec<(i32, u64)>,
    attempt: u32,
    /// `None` while being written; `Some(due)` while waiting to be retried.
    retry_due_ms: Option<u64>,
}

/// A record being dead-lettered.
#[derive(Debug)]
struct DeadLetter {
    payload: Vec<u8>,
    reason: String,
    attempt: u32,
    retry_due_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Draining,
    Drained,
}

/// The consumer's decisions; see the module documentation.
#[derive(Debug)]
pub struct IngestCore {
    settings: IngestSettings,
    partitions: BTreeMap<i32, PartitionState>,
    open_rows: Vec<Row>,
    open_since_ms: u64,
    batches: BTreeMap<u64, Batch>,
    dead_letters: BTreeMap<(i32, i64), DeadLetter>,
    actions: VecDeque<Action>,
    next_batch_id: u64,
    next_generation: u64,
    /// Generations of partitions whose log the broker lost: their rows are still written (nobody
    /// will read them again), their offsets never committed.
    lost_generations: BTreeSet<u64>,
    last_commit_ms: Option<u64>,
    phase: Phase,
    stats: IngestStats,
}

impl IngestCore {
    /// A core with no partitions assigned.
    pub fn new(settings: IngestSettings) -> Result<IngestCore, IngestSettingsError> {
        settings.validate()?;
        Ok(IngestCore {
            open_rows: Vec::with_capacity(settings.batch_size),
            settings,
            partitions: BTreeMap::new(),
            open_since_ms: 0,
            batches: BTreeMap::new(),
            dead_letters: BTreeMap::new(),
            actions: VecDeque::new(),
            next_batch_id: 0,
            next_generation: 0,
            lost_generations: BTreeSet::new(),
            last_commit_ms: None,
            phase: Phase::Running,
            stats: IngestStats::default(),
        })
    }

    pub fn settings(&self) -> &IngestSettings {
        &self.settings
    }

    /// The oldest queued action; drain after every event.
    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// True while the adapter should stop fetching records.
    pub fn should_pause(&self) -> bool {
        self.batches.len() >= self.settings.max_in_flight_batches
            || self.dead_letters.len() >= DEAD_LETTERS_IN_FLIGHT_MAX
    }

    /// True once shutdown has begun, nothing is in flight or waiting, and the final commit is queued.
    pub fn is_drained(&self) -> bool {
        self.phase == Phase::Drained
    }

    /// The counters, with the in-flight gauges filled in.
    pub fn stats(&self) -> IngestStats {
        let mut stats = self.stats.clone();
        stats.in_flight_batches = self.batches.len() as u64;
        stats.dead_letters_in_flight = self.dead_letters.len() as u64;
        stats
    }

    /// The earliest time at which [`IngestCore::on_tick`] has something to do, if any.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let linger = (!self.open_rows.is_empty())
            .then(|| self.open_since_ms.saturating_add(self.settings.linger_ms));
        let batch_retries = self.batches.values().filter_map(|batch| batch.retry_due_ms);
        let dead_letter_retries = self
            .dead_letters
            .values()
            .filter_map(|letter| letter.retry_due_ms);
        let commit_wanted = self.partitions.values().any(|state| {
            state
                .committable()
                .is_some_and(|next| state.committed.is_none_or(|done| next > done))
        });
        let commit = commit_wanted.then(|| {
            self.last_commit_ms.map_or(0, |last| {
                last.saturating_add(self.settings.commit_interval_ms)
            })
        });
        linger
            .into_iter()
            .chain(batch_retries)
            .chain(dead_letter_retries)
            .chain(commit)
            .min()
    }

    /// Takes over these partitions with fresh tracking; already assigned ones are kept as they are.
    pub fn on_partitions_assigned(&mut self, partitions: &[i32]) {
        for &partition in partitions {
            if !self.partitions.contains_key(&partition) {
                let state = self.fresh_partition();
                self.partitions.insert(partition, state);
            }
        }
    }

    fn fresh_partition(&mut self) -> PartitionState {
        let generation = self.next_generation;
        self.next_generation += 1;
        PartitionState {
            generation,
            pending: BTreeSet::new(),
            lowest_seen: None,
            highest_seen: None,
            committed: None,
        }
    }

    /// The broker lost `lost.partition`'s log (its end went back): the offsets read so far name
    /// records the new log does not hold. The rows already read are still written, since nobody
    /// will read them again, but their offsets are never committed; the partition starts over
    /// with fresh tracking, and the adapter reads it again from its beginning.
    pub fn on_log_lost(&mut self, lost: LogLost) {
        if !self.partitions.contains_key(&lost.partition) {
            return;
        }
        self.seal();
        let fresh = self.fresh_partition();
        if let Some(old) = self.partitions.insert(lost.partition, fresh) {
            self.lost_generations.insert(old.generation);
        }
        self.stats.logs_lost.push(lost);
        self.actions.push_back(Action::Log {
            level: LogLevel::Warn,
            message: format!(
                "the broker lost the log of partition {}: its end went back from {} to {} (a \
                 restart without storage?); reading it again from its beginning. Events it held \
                 that were not read yet are gone; rows already read are still written",
                lost.partition, lost.end_before, lost.end_after
            ),
        });
    }

    /// Commits what is done on these partitions (one `Commit`, even if unchanged), then forgets
    /// their unwritten rows, retries and dead letters. In-flight writes are not waited for: an
    /// adapter wanting fewer re-reads may let them finish (with a timeout) before calling this.
    pub fn on_partitions_revoked(&mut self, partitions: &[i32]) {
        let revoked: BTreeSet<i32> = partitions.iter().copied().collect();
        self.commit_where(|partition| revoked.contains(&partition), true);
        self.partitions
            .retain(|partition, _| !revoked.contains(partition));
        self.open_rows
            .retain(|row| !revoked.contains(&row.partition));
        let (partitions, lost) = (&self.partitions, &self.lost_generations);
        self.batches.retain(|_, batch| {
            batch.retry_due_ms.is_none() || keep_current_rows(partitions, lost, batch)
        });
        self.dead_letters
            .retain(|(partition, _), _| !revoked.contains(partition));
        self.finish_if_drained();
    }

    /// A record fetched from `partition` at `offset`.
    pub fn on_record(&mut self, partition: i32, offset: i64, payload: &[u8], now_ms: u64) {
        if !self.take(partition, offset) {
            return;
        }
        match Record::decode(payload) {
            Ok((record, vehicle_index)) => {
                self.push_row(partition, offset, record, vehicle_index, now_ms);
            }
            Err(error) => self.dead_letter(partition, offset, payload, error.to_string()),
        }
    }

    /// The record of `event` fetched from `partition` at `offset`: what [`Self::on_record`] does
    /// with the event's encoding (roadtest's record), without the JSON. The simulation's broker
    /// carries events, not bytes; a test checks that both give the same actions.
    pub fn on_event(&mut self, partition: i32, offset: i64, event: &Event, now_ms: u64) {
        if self.take(partition, offset) {
            let record = Record::from_event(event);
            self.push_row(partition, offset, record, event.vehicle_index, now_ms);
        }
    }

    /// Counts a fetched record and notes its offset as pending; false when it is ignored (its
    /// partition is not assigned, or the core is stopping).
    fn take(&mut self, partition: i32, offset: i64) -> bool {
        let Some(state) = self.partitions.get_mut(&partition) else {
            self.stats.ignored += 1;
            return false;
        };
        if self.phase != Phase::Running {
            self.stats.ignored += 1;
            return false;
        }
        self.stats.consumed += 1;
        let lowest = state.lowest_seen.get_or_insert(offset);
        *lowest = offset.min(*lowest);
        let highest = state.highest_seen.get_or_insert(offset);
        *highest = offset.max(*highest);
        if self.settings.commit == CommitPolicy::AfterWrite {
            state.pending.insert(offset);
        }
        true
    }

    fn push_row(
        &mut self,
        partition: i32,
        offset: i64,
        record: Record,
        vehicle_index: u32,
        now_ms: u64,
    ) {
        if self.open_rows.is_empty() {
            self.open_since_ms = now_ms;
        }
        self.open_rows.push(Row {
            partition,
            offset,
            received_at_ms: now_ms,
            vehicle_index,
            record,
        });
        if self.open_rows.len() >= self.settings.batch_size {
            self.seal();
        }
    }

    fn dead_letter(&mut self, partition: i32, offset: i64, payload: &[u8], reason: String) {
        self.stats.dead_lettered += 1;
        let payload = payload.to_vec();
        self.actions.push_back(Action::DeadLetter {
            partition,
            offset,
            payload: payload.clone(),
            reason: reason.clone(),
        });
        let letter = DeadLetter {
            payload,
            reason,
            attempt: 1,
            retry_due_ms: None,
        };
        self.dead_letters.insert((partition, offset), letter);
    }

    /// Time passed: seals a lingering partial batch, sends due retries, commits if the interval passed.
    pub fn on_tick(&mut self, now_ms: u64) {
        if !self.open_rows.is_empty()
            && now_ms.saturating_sub(self.open_since_ms) >= self.settings.linger_ms
        {
            self.seal();
        }
        for (&batch_id, batch) in &mut self.batches {
            if batch.retry_due_ms.is_some_and(|due| due <= now_ms) {
                batch.retry_due_ms = None;
                batch.attempt += 1;
                self.stats.retries += 1;
                let (attempt, rows) = (batch.attempt, Arc::clone(&batch.rows));
                self.actions.push_back(Action::Write {
                    batch_id,
                    attempt,
                    rows,
                });
            }
        }
        for (&(partition, offset), letter) in &mut self.dead_letters {
            if letter.retry_due_ms.is_some_and(|due| due <= now_ms) {
                letter.retry_due_ms = None;
                letter.attempt += 1;
                self.actions.push_back(Action::DeadLetter {
                    partition,
                    offset,
                    payload: letter.payload.clone(),
                    reason: letter.reason.clone(),
                });
            }
        }
        let interval_passed = self
            .last_commit_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= self.settings.commit_interval_ms);
        if interval_passed && self.commit_where(|_| true, false) {
            self.last_commit_ms = Some(now_ms);
        }
        self.finish_if_drained();
    }

    /// The write of `batch_id` was acknowledged: its rows are durable.
    pub fn on_write_ok(&mut self, batch_id: u64, _now_ms: u64) {
        let Some(batch) = self.batches.remove(&batch_id) else {
            self.stats.stale_reports += 1;
            return;
        };
        self.stats.written += batch.rows.len() as u64;
        for row in batch.rows.iter() {
            if let Some(state) = self.partitions.get_mut(&row.partition)
                && batch_generation(&batch.generations, row.partition) == Some(state.generation)
            {
                state.pending.remove(&row.offset);
            }
        }
        self.finish_if_drained();
    }

    /// The write of `batch_id` failed: it is retried after backoff (rows of revoked partitions left out).
    pub fn on_write_failed(&mut self, batch_id: u64, error: &str, now_ms: u64) {
        let Some(batch) = self
            .batches
            .get_mut(&batch_id)
            .filter(|b| b.retry_due_ms.is_none())
        else {
            self.stats.stale_reports += 1;
            return;
        };
        self.stats.write_failures += 1;
        let backoff_ms = self.settings.retry_backoff_ms(batch.attempt);
        let (attempt, row_count) = (batch.attempt, batch.rows.len());
        let message = if keep_current_rows(&self.partitions, &self.lost_generations, batch) {
            batch.retry_due_ms = Some(now_ms.saturating_add(backoff_ms));
            format!(
                "write of batch {batch_id} ({row_count} rows) failed on attempt {attempt}: \
                 {error}; retrying in {backoff_ms} ms"
            )
        } else {
            self.batches.remove(&batch_id);
            format!(
                "write of batch {batch_id} failed on attempt {attempt}: {error}; \
                 not retried, its partitions were revoked"
            )
        };
        self.actions.push_back(Action::Log {
            level: LogLevel::Warn,
            message,
        });
        self.finish_if_drained();
    }

    /// The dead letter of (`partition`, `offset`) was acknowledged: that offset is handled.
    pub fn on_dead_letter_ok(&mut self, partition: i32, offset: i64) {
        if self.dead_letters.remove(&(partition, offset)).is_none() {
            self.stats.stale_reports += 1;
            return;
        }
        if let Some(state) = self.partitions.get_mut(&partition) {
            state.pending.remove(&offset);
        }
        self.finish_if_drained();
    }

    /// The dead letter of (`partition`, `offset`) failed: it is produced again after backoff.
    pub fn on_dead_letter_failed(&mut self, partition: i32, offset: i64, error: &str, now_ms: u64) {
        let key = (partition, offset);
        let Some(letter) = self
            .dead_letters
            .get_mut(&key)
            .filter(|l| l.retry_due_ms.is_none())
        else {
            self.stats.stale_reports += 1;
            return;
        };
        self.stats.dead_letter_failures += 1;
        let backoff_ms = self.settings.retry_backoff_ms(letter.attempt);
        letter.retry_due_ms = Some(now_ms.saturating_add(backoff_ms));
        let message = format!(
            "dead letter of partition {partition} offset {offset} failed on attempt {}: {error}; \
             retrying in {backoff_ms} ms",
            letter.attempt
        );
        self.actions.push_back(Action::Log {
            level: LogLevel::Warn,
            message,
        });
    }

    /// Stops taking records, seals the open batch, then acts as a tick. Once nothing is in flight
    /// or waiting, a final `Commit` of every partition seen is queued and [`Self::is_drained`] turns true.
    pub fn begin_shutdown(&mut self, now_ms: u64) {
        if self.phase == Phase::Running {
            self.phase = Phase::Draining;
            self.seal();
        }
        self.on_tick(now_ms);
    }

    fn seal(&mut self) {
        if self.open_rows.is_empty() {
            return;
        }
        let rows = std::mem::replace(
            &mut self.open_rows,
            Vec::with_capacity(self.settings.batch_size),
        );
        let rows: Arc<[Row]> = rows.into();
        let seen: BTreeSet<i32> = rows.iter().map(|row| row.partition).collect();
        let generations = seen
            .into_iter()
            .filter_map(|partition| Some((partition, self.partitions.get(&partition)?.generation)))
            .collect();
        let batch_id = self.next_batch_id;
        self.next_batch_id += 1;
        let batch = Batch {
            rows: Arc::clone(&rows),
            generations,
            attempt: 1,
            retry_due_ms: None,
        };
        self.batches.insert(batch_id, batch);
        self.actions.push_back(Action::Write {
            batch_id,
            attempt: 1,
            rows,
        });
    }

    /// Queues a `Commit` of the selected partitions' committable offsets (only advanced ones
    /// unless `include_unchanged`); returns whether one was queued.
    fn commit_where(&mut self, selected: impl Fn(i32) -> bool, include_unchanged: bool) -> bool {
        let mut offsets = Vec::new();
        for (&partition, state) in &mut self.partitions {
            let Some(next) = state.committable().filter(|_| selected(partition)) else {
                continue;
            };
            let advanced = state.committed.is_none_or(|done| next > done);
            if advanced || include_unchanged {
                // Never move a commit backwards (a re-read record below it may be pending again).
                let next = state.committed.map_or(next, |done| next.max(done));
                state.committed = Some(next);
                self.stats.committed.insert(partition, next);
                offsets.push((partition, next));
            }
        }
        let queued = !offsets.is_empty();
        if queued {
            self.actions.push_back(Action::Commit { offsets });
        }
        queued
    }

    fn finish_if_drained(&mut self) {
        if self.phase == Phase::Draining
            && self.open_rows.is_empty()
            && self.batches.is_empty()
            && self.dead_letters.is_empty()
        {
            self.commit_where(|_| true, true);
            self.phase = Phase::Drained;
        }
    }
}

/// The generation a batch's rows of `partition` were sealed under.
fn batch_generation(generations: &[(i32, u64)], partition: i32) -> Option<u64> {
    let index = generations
        .binary_search_by_key(&partition, |&(p, _)| p)
        .ok()?;
    Some(generations[index].1)
}

/// Drops rows of partitions revoked since sealing (another consumer reads them again); rows
/// of a lost log stay. Returns whether any rows are left.
fn keep_current_rows(
    partitions: &BTreeMap<i32, PartitionState>,
    lost_generations: &BTreeSet<u64>,
    batch: &mut Batch,
) -> bool {
    let generations = &batch.generations;
    let current = |row: &Row| {
        let sealed = batch_generation(generations, row.partition);
        sealed.is_some_and(|generation| lost_generations.contains(&generation))
            || partitions.get(&row.partition).map(|state| state.generation) == sealed
    };
    if !batch.rows.iter().all(current) {
        batch.rows = batch
            .rows
            .iter()
            .filter(|row| current(row))
            .cloned()
            .collect();
    }
    !batch.rows.is_empty()
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
