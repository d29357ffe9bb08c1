//! The discrete-event loop of the sim target: producer, broker, the real `IngestCore` and the database on one virtual clock.
//!
//! Events sit in a binary heap ordered by (virtual time in µs, sequence number), so equal times
//! run in the order they were scheduled; nothing reads the wall clock, no thread or async runtime
//! is involved, and every random draw comes from a generator of [`crate::seed::rng_for`].

use crate::wire::RowFields;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::faults::{FaultRecord, PlannedFault, Trigger};
use crate::fleet::{EventStream, FleetPlan};
use crate::ingest::core::{Action, IngestCore, IngestSettings, IngestStats, Row};
use crate::measure::{LatencyRecorder, ThroughputSeries};
use crate::scenario::{BrokerStorage, CommitlogSync, PipelineSettings, Scenario, Sink};
use crate::seed::{SimRng, rng_for};
use crate::wire::Event;

use super::model::{SimBroker, SimLatencies, SimStore, StoredRow, partition_of};

mod lifecycle;

/// Records handed to the core per fetch, at most (Kafka's `max.poll.records` default).
const FETCH_RECORDS_MAX: usize = 500;
/// A write to a database that is down fails after this long (connection refused), µs.
const REFUSED_US: u64 = 2_000;
/// Cassandra's periodic commit-log sync interval, µs.
const COMMITLOG_SYNC_US: u64 = 10_000_000;
/// PostgreSQL's WAL writer delay (`wal_writer_delay`): with `synchronous_commit` off, commits are
/// flushed this often, µs.
const WAL_WRITER_US: u64 = 200_000;
/// Cassandra's batch-sync group window, added to every write, µs.
const BATCH_WINDOW_US: u64 = 2_000;
/// How the simulated database makes acknowledged writes durable: before acknowledging them
/// (`Batch`), or every so many µs (`Periodic`, the interval: what a crash can lose).
fn durability(pipeline: &PipelineSettings) -> (CommitlogSync, u64) {
    match pipeline.sink {
        Sink::Cassandra => (pipeline.cassandra_commitlog_sync, COMMITLOG_SYNC_US),
        Sink::Postgres if pipeline.postgres_synchronous_commit => {
            (CommitlogSync::Batch, WAL_WRITER_US)
        }
        Sink::Postgres => (CommitlogSync::Periodic, WAL_WRITER_US),
    }
}

/// How often the end of the run is checked once the producer is done, µs.
const DRAIN_CHECK_US: u64 = 100_000;
/// How long after the broker is back the consumer notices that its log was lost: the real one
/// measures the log's end every half second and needs it gone back twice in a row.
const LOST_LOG_NOTICED_US: u64 = 1_000_000;
/// The most virtual time the drain may take after the scenario's end, µs.
pub const DRAIN_LIMIT_US: u64 = 600_000_000;

/// What happens at one point of virtual time.
#[derive(Debug)]
enum Happening {
    Send,
    Poll {
        incarnation: u64,
    },
    Tick {
        incarnation: u64,
    },
    WriteDone(Box<WriteInFlight>),
    WriteResult {
        incarnation: u64,
        batch_id: u64,
        ok: bool,
    },
    ConsumerStart,
    FaultStart(usize),
    FaultEnd(usize),
    Sync {
        incarnation: u64,
    },
    DrainCheck,
    /// The consumer's lag measurements see the logs the broker lost.
    LostLogsNoticed,
}

#[derive(Debug)]
struct WriteInFlight {
    batch_id: u64,
    consumer_incarnation: u64,
    database_incarnation: u64,
    rows: Arc<[Row]>,
}

#[derive(Debug)]
struct Scheduled {
    at_us: u64,
    sequence: u64,
    happening: Happening,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.sequence) == (other.at_us, other.sequence)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at_us, self.sequence).cmp(&(other.at_us, other.sequence))
    }
}

/// A service's condition under faults.
#[derive(Debug, Default, Clone, Copy)]
struct Condition {
    down: bool,
    /// Nothing passes before this time (pause, blackhole, a broker outage).
    stalled_until_us: u64,
    /// Added latency (network latency or bandwidth faults): (delay, jitter) in µs.
    extra: Option<(u64, u64)>,
    incarnation: u64,
}

/// The one consumer process.
#[derive(Debug, Default)]
struct Consumer {
    core: Option<IngestCore>,
    incarnation: u64,
    positions: Vec<i64>,
    stopping: bool,
    final_shutdown: bool,
    waiting: bool,
    poll_at: Option<u64>,
    tick_at: Option<u64>,
    condition: Condition,
}

/// Everything a simulated run measured.
#[derive(Debug, Default)]
pub struct SimOutcome {
    pub sent: u64,
    pub produce_ack: LatencyRecorder,
    pub consume: LatencyRecorder,
    pub write_ack: LatencyRecorder,
    pub produced: ThroughputSeries,
    pub consumed: ThroughputSeries,
    /// (incarnation, final stats, exited cleanly) per consumer process.
    pub consumers: Vec<(u64, IngestStats, bool)>,
    pub faults: Vec<FaultRecord>,
    pub errors: Vec<String>,
    /// Virtual time when the run ended, µs.
    pub end_us: u64,
    /// Happenings processed.
    pub steps: u64,
    pub rows_lost_in_crashes: u64,
}

/// The simulated pipeline.
#[derive(Debug)]
pub struct World {
    heap: BinaryHeap<Reverse<Scheduled>>,
    /// The producer's next send, (due µs, sequence): kept out of `heap`, see [`World::pop`].
    next_send: Option<(u64, u64)>,
    sequence: u64,
    now_us: u64,
    start_ms: i64,
    end_us: u64,
    settings: IngestSettings,
    latencies: SimLatencies,
    stream: EventStream,
    pending_event: Option<Event>,
    producer_done: bool,
    broker: SimBroker,
    broker_condition: Condition,
    /// `pipeline.broker_storage = "durable"`: a restart keeps the logs and committed offsets.
    broker_keeps_log: bool,
    store: SimStore,
    database: Condition,
    /// When the database (of finite capacity) has served every write queued so far, µs.
    database_free_at_us: u64,
    batch_sync: bool,
    /// How often the database flushes what it acknowledged (periodic durability), µs.
    sync_interval_us: u64,
    consumer: Consumer,
    faults: Vec<PlannedFault>,
    /// Indices into `faults` of event-count triggers not yet fired, by count.
    after_events: Vec<usize>,
    rng_broker: SimRng,
    rng_consumer: SimRng,
    rng_database: SimRng,
    rng_network: SimRng,
    out: SimOutcome,
    finished: bool,
}

impl World {
    /// A world for `scenario` with the given latency parameters.
    pub fn new(scenario: &Scenario, latencies: SimLatencies) -> Result<World, String> {
        if !scenario.pipeline.consumer.is_reference() {
            return Err(
                "pipeline.consumer: the simulation runs roadtest's reference consumer, not a \
                 consumer of your own (`command` or `image`); run this scenario on a real \
                 target (--target local, containers or external)"
                    .to_string(),
            );
        }
        let plan = FleetPlan::from_scenario(scenario);
        let settings = IngestSettings::from_consumer(&scenario.pipeline.consumer);
        settings.validate().map_err(|e| e.to_string())?;
        let faults = crate::faults::resolve(scenario);
        let threshold_ms = crate::faults::latency_threshold_ms(scenario);
        let durability = durability(&scenario.pipeline);
        let records = faults
            .iter()
            .map(|planned| FaultRecord::planned(planned, threshold_ms))
            .collect();
        let mut after_events: Vec<usize> = (0..faults.len())
            .filter(|&i| matches!(faults[i].trigger, Trigger::AfterEvents(_)))
            .collect();
        after_events.reverse();
        let mut world = World {
            heap: BinaryHeap::new(),
            next_send: None,
            sequence: 0,
            now_us: 0,
            start_ms: plan.start_ms,
            end_us: scenario.duration_s * 1_000_000,
            settings,
            latencies,
            stream: plan.events(),
            pending_event: None,
            producer_done: false,
            broker: SimBroker::new(scenario.pipeline.partitions),
            broker_condition: Condition::default(),
            broker_keeps_log: scenario.pipeline.broker_storage == BrokerStorage::Durable,
            store: SimStore::new(
                plan.vehicle_count,
                plan.samples_per_vehicle_max(),
                durability.0,
            ),
            database: Condition::default(),
            database_free_at_us: 0,
            batch_sync: durability.0 == CommitlogSync::Batch,
            sync_interval_us: durability.1,
            consumer: Consumer::default(),
            faults,
            after_events,
            rng_broker: rng_for(scenario.seed, "sim-broker", 0),
            rng_consumer: rng_for(scenario.seed, "sim-consumer", 0),
            rng_database: rng_for(scenario.seed, "sim-database", 0),
            rng_network: rng_for(scenario.seed, "sim-network", 0),
            out: SimOutcome {
                faults: records,
                ..SimOutcome::default()
            },
            finished: false,
        };
        for index in 0..world.faults.len() {
            if let Trigger::AtS(at_s) = world.faults[index].trigger {
                world.schedule((at_s * 1e6) as u64, Happening::FaultStart(index));
            }
        }
        world.schedule(world.sync_interval_us, Happening::Sync { incarnation: 0 });
        world.schedule(0, Happening::ConsumerStart);
        world.next_send();
        Ok(world)
    }

    /// Runs to the end and returns the measurements and the database.
    pub fn run(mut self) -> (SimOutcome, SimStore) {
        while !self.finished {
            let Some((at_us, happening)) = self.pop() else {
                self.out
                    .errors
                    .push("the simulation ran out of events before the drain ended".into());
                break;
            };
            self.now_us = at_us;
            self.out.steps += 1;
            self.handle(happening);
        }
        self.out.end_us = self.now_us;
        self.out.rows_lost_in_crashes = self.store.rows_lost_in_crashes;
        if let Some(core) = self.consumer.core.take() {
            let clean = core.is_drained();
            self.out
                .consumers
                .push((self.consumer.incarnation, core.stats(), clean));
        }
        (self.out, self.store)
    }

    fn schedule(&mut self, at_us: u64, happening: Happening) {
        self.sequence += 1;
        let at_us = at_us.max(self.now_us);
        if matches!(happening, Happening::Send) {
            // One send is due at a time (the next is scheduled when it happens).
            self.next_send = Some((at_us, self.sequence));
            return;
        }
        self.heap.push(Reverse(Scheduled {
            at_us,
            sequence: self.sequence,
            happening,
        }));
    }

    /// The next happening: the heap's first, or the send due before it (sends, one per event,
    /// wait beside the heap; the order is the same as if they were in it).
    fn pop(&mut self) -> Option<(u64, Happening)> {
        let send_first = match (self.next_send, self.heap.peek()) {
            (Some(send), Some(Reverse(first))) => send < (first.at_us, first.sequence),
            (send, _) => send.is_some(),
        };
        if send_first {
            return self
                .next_send
                .take()
                .map(|(at_us, _)| (at_us, Happening::Send));
        }
        self.heap
            .pop()
            .map(|Reverse(next)| (next.at_us, next.happening))
    }

    fn now_ms(&self) -> u64 {
        self.now_us / 1000
    }

    fn intended_us(&self, event: &Event) -> u64 {
        u64::try_from(event.timestamp_ms - self.start_ms).unwrap_or(0) * 1000
    }

    fn extra_us(condition: Condition, rng: &mut SimRng) -> u64 {
        condition.extra.map_or(0, |(delay, jitter)| {
            let offset = (rng.signed_unit() * jitter as f64) as i64;
            delay.saturating_add_signed(offset)
        })
    }

    fn handle(&mut self, happening: Happening) {
        match happening {
            Happening::Send => self.send(),
            Happening::Poll { incarnation } if incarnation == self.consumer.incarnation => {
                self.consumer.poll_at = None;
                self.poll();
            }
            Happening::Tick { incarnation } if incarnation == self.consumer.incarnation => {
                if self.consumer.tick_at == Some(self.now_us) {
                    self.consumer.tick_at = None;
                }
                if let Some(until) = self.consumer_stalled() {
                    self.schedule(until, Happening::Tick { incarnation });
                } else if let Some(core) = self.consumer.core.as_mut() {
                    core.on_tick(self.now_us / 1000);
                    self.after_core();
                }
            }
            Happening::WriteDone(write) => self.write_done(*write),
            Happening::WriteResult {
                incarnation,
                batch_id,
                ok,
            } if incarnation == self.consumer.incarnation => {
                if let Some(until) = self.consumer_stalled() {
                    let happening = Happening::WriteResult {
                        incarnation,
                        batch_id,
                        ok,
                    };
                    self.schedule(until, happening);
                    return;
                }
                let now_ms = self.now_ms();
                if let Some(core) = self.consumer.core.as_mut() {
                    if ok {
                        core.on_write_ok(batch_id, now_ms);
                    } else {
                        core.on_write_failed(batch_id, "the database is unavailable", now_ms);
                    }
                    self.after_core();
                }
            }
            Happening::ConsumerStart => self.consumer_start(),
            Happening::FaultStart(index) => self.fault_start(index),
            Happening::FaultEnd(index) => self.fault_end(index),
            Happening::Sync { incarnation } if incarnation == self.database.incarnation => {
                if !self.database.down {
                    self.store.sync();
                }
                self.schedule(
                    self.now_us + self.sync_interval_us,
                    Happening::Sync { incarnation },
                );
            }
            Happening::DrainCheck => self.drain_check(),
            Happening::LostLogsNoticed => self.lost_logs_noticed(),
            // Stale: meant for an earlier incarnation.
            Happening::Poll { .. }
            | Happening::Tick { .. }
            | Happening::WriteResult { .. }
            | Happening::Sync { .. } => {}
        }
    }

    fn next_send(&mut self) {
        self.pending_event = self.stream.next();
        match self.pending_event {
            Some(event) => {
                let at = self.intended_us(&event);
                self.schedule(at, Happening::Send);
            }
            None => {
                self.producer_done = true;
                self.schedule(self.now_us + DRAIN_CHECK_US, Happening::DrainCheck);
            }
        }
    }

    fn send(&mut self) {
        let Some(event) = self.pending_event else {
            return;
        };
        self.out.sent += 1;
        let intended_us = self.intended_us(&event);
        let condition = self.broker_condition;
        let latency = self.latencies.produce.draw(&mut self.rng_broker)
            + Self::extra_us(condition, &mut self.rng_network);
        // A producer retries while the broker is down or stalled; the broker keeps its log.
        let ack_us = self.now_us.max(condition.stalled_until_us) + latency;
        let partition = partition_of(event.vehicle_index, self.broker.partition_count() as u32);
        let visible_us = self.broker.append(partition, event, ack_us);
        let at_ms = intended_us / 1000;
        self.out
            .produce_ack
            .record(ack_us.saturating_sub(intended_us), at_ms);
        self.out.produced.add(ack_us / 1000, 1);
        if self.consumer.waiting {
            self.consumer.waiting = false;
            let fetch = self.latencies.fetch.draw(&mut self.rng_consumer);
            self.schedule_poll(visible_us + fetch);
        }
        while let Some(&index) = self.after_events.last() {
            match self.faults[index].trigger {
                Trigger::AfterEvents(count) if count <= self.out.sent => {
                    self.after_events.pop();
                    self.schedule(self.now_us, Happening::FaultStart(index));
                }
                _ => break,
            }
        }
        self.next_send();
    }

    fn schedule_poll(&mut self, at_us: u64) {
        if self.consumer.poll_at.is_none_or(|at| at_us < at) {
            self.consumer.poll_at = Some(at_us);
            let incarnation = self.consumer.incarnation;
            self.schedule(at_us, Happening::Poll { incarnation });
        }
    }

    /// Until when the consumer process is frozen, if it is now.
    fn consumer_stalled(&self) -> Option<u64> {
        (self.consumer.condition.stalled_until_us > self.now_us)
            .then_some(self.consumer.condition.stalled_until_us)
    }

    /// Decides the next fetch: soon if records are visible, at their visibility, or wait for appends.
    fn want_poll(&mut self) {
        let Some(core) = self.consumer.core.as_ref() else {
            return;
        };
        if self.consumer.stopping || core.should_pause() {
            return;
        }
        let earliest = (0..self.broker.partition_count())
            .filter_map(|p| self.broker.get(p, self.consumer.positions[p]).map(|e| e.1))
            .min();
        match earliest {
            Some(visible_us) => {
                let fetch = self.latencies.fetch.draw(&mut self.rng_consumer)
                    + Self::extra_us(self.consumer.condition, &mut self.rng_network);
                let stalled = self.broker_condition.stalled_until_us;
                self.schedule_poll(visible_us.max(self.now_us).max(stalled) + fetch);
            }
            None => self.consumer.waiting = true,
        }
    }

    fn poll(&mut self) {
        if let Some(until) = self.consumer_stalled() {
            self.schedule_poll(until);
            return;
        }
        if self.broker_condition.stalled_until_us > self.now_us {
            self.schedule_poll(self.broker_condition.stalled_until_us);
            return;
        }
        let now_ms = self.now_ms();
        let Some(core) = self.consumer.core.as_mut() else {
            return;
        };
        if self.consumer.stopping {
            return;
        }
        let mut taken = 0;
        let partitions = self.broker.partition_count();
        'fetch: for partition in 0..partitions {
            loop {
                if taken >= FETCH_RECORDS_MAX || core.should_pause() {
                    break 'fetch;
                }
                let offset = self.consumer.positions[partition];
                let Some(&(event, visible_us)) = self.broker.get(partition, offset) else {
                    break;
                };
                if visible_us > self.now_us {
                    break;
                }
                core.on_event(partition as i32, offset, &event, now_ms);
                self.consumer.positions[partition] = offset + 1;
                taken += 1;
                let intended_us =
                    u64::try_from(event.timestamp_ms - self.start_ms).unwrap_or(0) * 1000;
                self.out
                    .consume
                    .record(self.now_us.saturating_sub(intended_us), intended_us / 1000);
                self.out.consumed.add(now_ms, 1);
            }
        }
        self.after_core();
    }

    /// Carries out the core's queued actions, then plans its next tick and fetch.
    fn after_core(&mut self) {
        while let Some(action) = self
            .consumer
            .core
            .as_mut()
            .and_then(IngestCore::next_action)
        {
            match action {
                Action::Write { batch_id, rows, .. } => self.issue_write(batch_id, rows),
                Action::Commit { offsets } => {
                    if !self.broker_condition.down
                        && self.broker_condition.stalled_until_us <= self.now_us
                    {
                        for (partition, offset) in offsets {
                            self.broker.commit(partition as usize, offset);
                        }
                    }
                }
                Action::DeadLetter {
                    partition, offset, ..
                } => {
                    if let Some(core) = self.consumer.core.as_mut() {
                        core.on_dead_letter_ok(partition, offset);
                    }
                }
                Action::Log { .. } => {}
            }
        }
        let Some(core) = self.consumer.core.as_ref() else {
            return;
        };
        if self.consumer.stopping && core.is_drained() && !self.consumer.final_shutdown {
            // A stop fault: the process exits cleanly once drained.
            self.consumer_exit(true);
            return;
        }
        if let Some(deadline_ms) = core.next_deadline_ms() {
            let at_us = (deadline_ms * 1000).max(self.now_us + 1);
            if self.consumer.tick_at.is_none_or(|at| at_us < at) {
                self.consumer.tick_at = Some(at_us);
                let incarnation = self.consumer.incarnation;
                self.schedule(at_us, Happening::Tick { incarnation });
            }
        }
        if self.consumer.poll_at.is_none() {
            self.want_poll();
        }
    }

    fn issue_write(&mut self, batch_id: u64, rows: Arc<[Row]>) {
        let write = WriteInFlight {
            batch_id,
            consumer_incarnation: self.consumer.incarnation,
            database_incarnation: self.database.incarnation,
            rows,
        };
        let at_us = if self.database.down {
            self.now_us + REFUSED_US
        } else {
            let mut latency = self.latencies.write.draw(&mut self.rng_database)
                + self.latencies.write_per_row_us * write.rows.len() as u64
                + Self::extra_us(self.database, &mut self.rng_network)
                + Self::extra_us(self.consumer.condition, &mut self.rng_network);
            if self.batch_sync {
                latency += BATCH_WINDOW_US;
            }
            let start_us = self.now_us.max(self.database.stalled_until_us);
            self.queue_for_capacity(start_us, write.rows.len()) + latency
        };
        self.schedule(at_us, Happening::WriteDone(Box::new(write)));
    }

    /// When a write of `rows` that can start at `start_us` has been served by a database of
    /// finite capacity (after the writes queued before it), and the queue's new end; `start_us`
    /// itself without a capacity.
    fn queue_for_capacity(&mut self, start_us: u64, rows: usize) -> u64 {
        let Some(rows_per_s) = self.latencies.database_rows_per_s else {
            return start_us;
        };
        let service_us = (rows as f64 * 1e6 / rows_per_s).round() as u64;
        let served_us = start_us.max(self.database_free_at_us) + service_us;
        self.database_free_at_us = served_us;
        served_us
    }

    fn write_done(&mut self, write: WriteInFlight) {
        if self.database.stalled_until_us > self.now_us {
            let until = self.database.stalled_until_us;
            self.schedule(until, Happening::WriteDone(Box::new(write)));
            return;
        }
        let ok = !self.database.down && write.database_incarnation == self.database.incarnation;
        if ok {
            // The rows land whether or not the consumer that sent them is still alive.
            for row in write.rows.iter() {
                let record = &row.record;
                let stored = StoredRow {
                    fields: RowFields::of_record(record),
                    write_us: self.now_us,
                };
                self.store
                    .upsert(row.vehicle_index, record.timestamp, stored);
                if write.consumer_incarnation == self.consumer.incarnation {
                    let received_us = row.received_at_ms * 1000;
                    let at_ms = u64::try_from(record.timestamp - self.start_ms).unwrap_or(0);
                    self.out
                        .write_ack
                        .record(self.now_us.saturating_sub(received_us), at_ms);
                }
            }
        }
        let happening = Happening::WriteResult {
            incarnation: write.consumer_incarnation,
            batch_id: write.batch_id,
            ok,
        };
        self.handle(happening);
    }
}
