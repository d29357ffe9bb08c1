//! The producer side: sends the fleet's events on an open schedule (never waiting for earlier sends) and records delivery.
//!
//! Each event has an intended send time: the run's start plus its scenario time divided by the
//! speed-up. The producer sends every event whose time has come, whatever happened before, and
//! records how far behind schedule it was; latency is always measured from the intended time, so
//! a stalled pipeline cannot hide its stalls (no coordinated omission).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use crate::clients::kafka::{ProducerSettings, kafka_error, producer_config};
use crate::clients::{ClientError, KafkaConnection};
use crate::fleet::FleetPlan;
use crate::measure::{LatencyRecorder, RunClock};
use crate::wire::RecordFormat;

/// Live counters the progress display and the drain check read.
#[derive(Debug, Default)]
pub struct DriveCounters {
    pub sent: AtomicU64,
    pub acknowledged: AtomicU64,
    pub failed: AtomicU64,
    pub finished: AtomicBool,
}

/// What the producer did.
#[derive(Debug)]
pub struct DriveOutcome {
    pub sent: u64,
    pub acknowledged: u64,
    pub failed_deliveries: u64,
    /// Intended send time -> broker acknowledgement.
    pub produce_ack: LatencyRecorder,
    /// How late each send was against its intended time.
    pub behind_schedule: LatencyRecorder,
    /// Acknowledged events per second of the run.
    pub acknowledged_per_second: Vec<u64>,
    /// The first delivery errors, for the report.
    pub first_errors: Vec<String>,
}

struct DeliveryState {
    produce_ack: LatencyRecorder,
    acknowledged_per_second: Vec<u64>,
    first_errors: Vec<String>,
}

struct DeliveryRecorder {
    clock: RunClock,
    counters: Arc<DriveCounters>,
    state: Mutex<DeliveryState>,
}

impl ClientContext for DeliveryRecorder {}

impl ProducerContext for DeliveryRecorder {
    /// The intended send offset (µs after the run's start).
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, intended_offset_us: usize) {
        let now_us = self.clock.elapsed_us();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match result {
            Ok(_) => {
                self.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                let latency_us = now_us.saturating_sub(intended_offset_us as u64);
                state.produce_ack.record(latency_us, now_us / 1000);
                let second = (now_us / 1_000_000) as usize;
                if state.acknowledged_per_second.len() <= second {
                    state.acknowledged_per_second.resize(second + 1, 0);
                }
                state.acknowledged_per_second[second] += 1;
            }
            Err((error, _)) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                if state.first_errors.len() < 10 {
                    state.first_errors.push(error.to_string());
                }
            }
        }
    }
}

/// Where the producer sends the events, and in which message format.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub topic: &'a str,
    pub format: &'a RecordFormat,
}

/// Produces every event of `plan` to `topic` on schedule (call it on a thread of its own);
/// returns when every event is sent and its delivery reported (acknowledged, or failed once
/// `settings.message_timeout` passed), or when `stop` is set.
pub fn drive(
    plan: &FleetPlan,
    kafka: &KafkaConnection,
    Destination { topic, format }: Destination<'_>,
    settings: ProducerSettings,
    clock: RunClock,
    counters: Arc<DriveCounters>,
    stop: Arc<AtomicBool>,
) -> Result<DriveOutcome, ClientError> {
    let recorder = DeliveryRecorder {
        clock,
        counters: Arc::clone(&counters),
        state: Mutex::new(DeliveryState {
            produce_ack: LatencyRecorder::new(),
            acknowledged_per_second: Vec::new(),
            first_errors: Vec::new(),
        }),
    };
    let producer: ThreadedProducer<DeliveryRecorder> = producer_config(kafka, settings)
        .create_with_context(recorder)
        .map_err(|e| kafka_error(&kafka.bootstrap, "create the producer", e))?;
    let mut behind_schedule = LatencyRecorder::new();
    let mut payload = Vec::with_capacity(256);
    let mut key = Vec::with_capacity(16);
    for event in plan.events() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let intended_us = clock.intended_offset_us(event.timestamp_ms);
        let now_us = clock.elapsed_us();
        if intended_us > now_us {
            std::thread::sleep(Duration::from_micros(intended_us - now_us));
        }
        // The send time, read once: how late the send is, and the record's timestamp.
        let send_us = clock.elapsed_us();
        behind_schedule.record(send_us.saturating_sub(intended_us), intended_us / 1000);
        payload.clear();
        format.encode(&event, &mut payload);
        key.clear();
        format.encode_key(&event, &mut key);
        let created_ms = ((clock.start_epoch_us + send_us) / 1000) as i64;
        let record = BaseRecord::with_opaque_to(topic, intended_us as usize)
            .key(key.as_slice())
            .payload(payload.as_slice())
            .timestamp(created_ms);
        send(&producer, record, &counters);
    }
    Ok(finish(&producer, &counters, behind_schedule, settings))
}

/// Hands `record` to librdkafka, waiting while its queue is full; counts it sent, or failed
/// when librdkafka refuses it outright.
fn send(
    producer: &ThreadedProducer<DeliveryRecorder>,
    mut record: BaseRecord<'_, [u8], [u8], usize>,
    counters: &DriveCounters,
) {
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                // librdkafka's queue is full: let it drain, then send the same record.
                record = returned;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((error, _)) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "produce failed");
                break;
            }
        }
    }
    counters.sent.fetch_add(1, Ordering::Relaxed);
}

/// Waits for the outstanding deliveries and gathers the outcome.
fn finish(
    producer: &ThreadedProducer<DeliveryRecorder>,
    counters: &DriveCounters,
    behind_schedule: LatencyRecorder,
    settings: ProducerSettings,
) -> DriveOutcome {
    // Each delivery has its own message timeout; the flush waits a little past the longest.
    let _ = producer.flush(settings.message_timeout + Duration::from_secs(30));
    counters.finished.store(true, Ordering::Relaxed);
    let sent = counters.sent.load(Ordering::Relaxed);
    let acknowledged = counters.acknowledged.load(Ordering::Relaxed);
    let failed_deliveries = counters.failed.load(Ordering::Relaxed);
    // Every delivery has been reported: take the recorders instead of copying them.
    let state = producer
        .context()
        .state
        .lock()
        .map(|mut state| {
            (
                std::mem::take(&mut state.produce_ack),
                std::mem::take(&mut state.acknowledged_per_second),
                std::mem::take(&mut state.first_errors),
            )
        })
        .unwrap_or_else(|_| (LatencyRecorder::new(), Vec::new(), Vec::new()));
    DriveOutcome {
        sent,
        acknowledged,
        failed_deliveries,
        produce_ack: state.0,
        behind_schedule,
        acknowledged_per_second: state.1,
        first_errors: state.2,
    }
}
