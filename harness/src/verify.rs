//! Verification: the expected events, regenerated from the seed, against the rows found in Cassandra.
//!
//! Vehicle by vehicle, the rows are read in timestamp order and merged with the vehicle's
//! regenerated stream, so memory stays at one page of rows per vehicle in flight, whatever the
//! run's length. Each row is found (identical), corrupt (a field differs), or unexpected (nobody
//! sent it); each expected event without a row is lost. The row's `WRITETIME` against the
//! event's intended send time gives its end-to-end latency.

use std::sync::Arc;

use futures_util::StreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::clients::ClientError;
use crate::fleet::FleetPlan;
use crate::measure::{LatencyRecorder, RunClock, ThroughputSeries};
use crate::report::{DISCREPANCY_COUNT_MAX, Discrepancy, Report, VerifySection};
use crate::wire::{Event, FORMAT_VERSION, vehicle_id};

/// Vehicles verified at once.
const VEHICLES_IN_FLIGHT: usize = 16;

/// The verdict of one run's data.
#[derive(Debug, Clone, Default)]
pub struct VerifyOutcome {
    pub expected: u64,
    pub found: u64,
    pub lost: u64,
    pub corrupt: u64,
    pub unexpected: u64,
    /// The first discrepancies in (vehicle, seq) order.
    pub discrepancies: Vec<Discrepancy>,
    /// Intended send time -> row write time, per event found.
    pub e2e: LatencyRecorder,
    /// Rows by the second (of the run) Cassandra wrote them in.
    pub written: ThroughputSeries,
    /// Lost events by the second (of the run) they were meant to be sent in.
    pub lost_by_intended_second: ThroughputSeries,
}

impl VerifyOutcome {
    fn merge(&mut self, other: VerifyOutcome) {
        self.expected += other.expected;
        self.found += other.found;
        self.lost += other.lost;
        self.corrupt += other.corrupt;
        self.unexpected += other.unexpected;
        self.discrepancies.extend(other.discrepancies);
        self.e2e.merge(&other.e2e);
        self.written.merge(&other.written);
        self.lost_by_intended_second
            .merge(&other.lost_by_intended_second);
    }

    /// Writes the verification and what it measured into `report`: `verify`, the end-to-end
    /// latency, and the rows written per second over `span_s` seconds. `written_by_consumer` (rows
    /// the consumers reported writing) gives the redelivery lower bound.
    pub fn fill_report(&self, report: &mut Report, written_by_consumer: u64, span_s: f64) {
        report.latency.e2e_ms = self.e2e.summary();
        report.latency.e2e_intervals = self.e2e.intervals();
        report.latency.e2e_percentiles = self.e2e.percentile_curve();
        report.throughput.written_per_s = self.written.mean_per_s(span_s);
        report.throughput.peak_written_per_s = self.written.peak_per_s();
        report.throughput.written = self.written.per_second();
        report.verify = VerifySection {
            expected: self.expected,
            found: self.found,
            lost: self.lost,
            corrupt: self.corrupt,
            unexpected: self.unexpected,
            // A lower bound: rows written beyond one per event sent (killed consumers may not have
            // reported their last writes; events lost before the consumer hide redeliveries).
            duplicates_written: written_by_consumer.saturating_sub(self.expected),
            discrepancies: self.discrepancies.clone(),
        };
    }
}

/// A row as read back.
type Row = (CqlTimestamp, i64, f64, f64, f64, f64, f64, i32, i64);

/// Verifies every vehicle of `plan` against `keyspace.telemetry`.
pub async fn verify(
    session: Arc<Session>,
    keyspace: &str,
    plan: &FleetPlan,
    clock: RunClock,
) -> Result<VerifyOutcome, ClientError> {
    let statement = format!(
        "SELECT timestamp, seq, latitude, longitude, speed, temperature, humidity, \
         format_version, WRITETIME(seq) FROM {keyspace}.telemetry WHERE vehicle_id = ? \
         ORDER BY timestamp ASC"
    );
    let mut prepared = session
        .prepare(statement)
        .await
        .map_err(|e| cql_error("prepare the verification query", e))?;
    prepared.set_page_size(1000);
    let mut total = VerifyOutcome::default();
    let mut tasks = JoinSet::new();
    let mut next_vehicle = 0u32;
    loop {
        while tasks.len() < VEHICLES_IN_FLIGHT && next_vehicle < plan.vehicle_count {
            let (session, prepared, plan) = (Arc::clone(&session), prepared.clone(), *plan);
            let vehicle = next_vehicle;
            tasks.spawn(
                async move { verify_vehicle(&session, &prepared, &plan, vehicle, clock).await },
            );
            next_vehicle += 1;
        }
        match tasks.join_next().await {
            Some(Ok(outcome)) => total.merge(outcome?),
            Some(Err(join_error)) => {
                return Err(ClientError::Cql {
                    address: String::from("(verification task)"),
                    what: String::from("verify a vehicle"),
                    message: join_error.to_string(),
                });
            }
            None => break,
        }
    }
    finish(&mut total);
    Ok(total)
}

async fn verify_vehicle(
    session: &Session,
    prepared: &PreparedStatement,
    plan: &FleetPlan,
    vehicle: u32,
    clock: RunClock,
) -> Result<VerifyOutcome, ClientError> {
    let id = vehicle_id(vehicle);
    let pager = session
        .execute_iter(prepared.clone(), (id.as_str(),))
        .await
        .map_err(|e| cql_error(&format!("read the rows of {id}"), e))?;
    let mut rows = pager
        .rows_stream::<Row>()
        .map_err(|e| cql_error(&format!("read the rows of {id}"), e))?;
    let mut outcome = VerifyOutcome::default();
    let mut expected_events = plan.vehicle(vehicle).peekable();
    let mut row = next_row(&mut rows)
        .await
        .map_err(|e| cql_error(&format!("read the rows of {id}"), e))?;
    loop {
        match (expected_events.peek(), &row) {
            (None, None) => break,
            (Some(event), Some(found)) if event.timestamp_ms == found.0.0 => {
                outcome.expected += 1;
                let (_, seq, latitude, longitude, speed, temperature, humidity, version, write_us) =
                    *found;
                let fields = RowFields {
                    seq: u64::try_from(seq).unwrap_or(u64::MAX),
                    latitude,
                    longitude,
                    speed,
                    temperature,
                    humidity,
                    format_version: u32::try_from(version).unwrap_or(u32::MAX),
                };
                compare_row(event, &fields, &id, &mut outcome);
                // Latency: the row's write time (Cassandra's clock) minus the intended send time.
                let intended_us = clock.intended_epoch_us(event.timestamp_ms);
                let write_us = u64::try_from(write_us).unwrap_or(0);
                let at_ms = clock.intended_offset_us(event.timestamp_ms) / 1000;
                outcome
                    .e2e
                    .record(write_us.saturating_sub(intended_us), at_ms);
                outcome
                    .written
                    .add(write_us.saturating_sub(clock.start_epoch_us) / 1000, 1);
                expected_events.next();
                row = next_row(&mut rows)
                    .await
                    .map_err(|e| cql_error(&format!("read the rows of {id}"), e))?;
            }
            (Some(event), found) if found.as_ref().is_none_or(|f| event.timestamp_ms < f.0.0) => {
                let intended_ms = clock.intended_offset_us(event.timestamp_ms) / 1000;
                note_lost(&mut outcome, &id, event, intended_ms);
                expected_events.next();
            }
            (_, Some(found)) => {
                note_unexpected(
                    &mut outcome,
                    &id,
                    found.0.0,
                    u64::try_from(found.1).unwrap_or(0),
                );
                row = next_row(&mut rows)
                    .await
                    .map_err(|e| cql_error(&format!("read the rows of {id}"), e))?;
            }
            (Some(_), None) => unreachable!("handled by the lost arm"),
        }
    }
    Ok(outcome)
}

/// The fields of a row that verification compares with the event of the same timestamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowFields {
    pub seq: u64,
    pub latitude: f64,
    pub longitude: f64,
    pub speed: f64,
    pub temperature: f64,
    pub humidity: f64,
    pub format_version: u32,
}

/// Compares a row with the event of the same timestamp, exactly (floats bit for bit): counts it
/// found or corrupt and notes every field that differs.
pub(crate) fn compare_row(event: &Event, row: &RowFields, id: &str, outcome: &mut VerifyOutcome) {
    let checks: [(&str, Value, Value, bool); 7] = [
        (
            "seq",
            event.seq.into(),
            row.seq.into(),
            row.seq == event.seq,
        ),
        float("latitude", event.latitude, row.latitude),
        float("longitude", event.longitude, row.longitude),
        float("speed", event.speed_kmh, row.speed),
        float("temperature", event.temperature_c, row.temperature),
        float("humidity", event.humidity_pct, row.humidity),
        (
            "format_version",
            FORMAT_VERSION.into(),
            row.format_version.into(),
            row.format_version == FORMAT_VERSION,
        ),
    ];
    let mut corrupt = false;
    for (field, expected, found, same) in checks {
        if !same {
            corrupt = true;
            note(outcome, id, event.seq, field, expected, found);
        }
    }
    if corrupt {
        outcome.corrupt += 1;
    } else {
        outcome.found += 1;
    }
}

/// Counts an expected event without a row (`intended_ms`: when it was meant to be sent).
pub(crate) fn note_lost(outcome: &mut VerifyOutcome, id: &str, event: &Event, intended_ms: u64) {
    outcome.expected += 1;
    outcome.lost += 1;
    outcome.lost_by_intended_second.add(intended_ms, 1);
    let sent = serde_json::json!({"timestamp": event.timestamp_ms});
    note(outcome, id, event.seq, "row", sent, Value::Null);
}

/// Counts a row nobody sent.
pub(crate) fn note_unexpected(outcome: &mut VerifyOutcome, id: &str, timestamp_ms: i64, seq: u64) {
    outcome.unexpected += 1;
    let held = serde_json::json!({"timestamp": timestamp_ms, "seq": seq});
    note(outcome, id, seq, "row", Value::Null, held);
}

/// Keeps the first discrepancies in (vehicle, seq) order.
pub(crate) fn finish(outcome: &mut VerifyOutcome) {
    outcome
        .discrepancies
        .sort_by(|a, b| (&a.vehicle_id, a.seq).cmp(&(&b.vehicle_id, b.seq)));
    outcome.discrepancies.truncate(DISCREPANCY_COUNT_MAX);
}

fn float(field: &'static str, expected: f64, found: f64) -> (&'static str, Value, Value, bool) {
    (
        field,
        expected.into(),
        found.into(),
        expected.to_bits() == found.to_bits(),
    )
}

fn note(
    outcome: &mut VerifyOutcome,
    id: &str,
    seq: u64,
    field: &str,
    expected: Value,
    found: Value,
) {
    if outcome.discrepancies.len() < DISCREPANCY_COUNT_MAX {
        outcome.discrepancies.push(Discrepancy {
            vehicle_id: id.to_string(),
            seq,
            field: field.to_string(),
            expected,
            found,
        });
    }
}

/// The next row of a stream, or None at its end.
async fn next_row(
    rows: &mut (impl futures_util::Stream<Item = Result<Row, scylla::errors::NextRowError>> + Unpin),
) -> Result<Option<Row>, scylla::errors::NextRowError> {
    rows.next().await.transpose()
}

fn cql_error(what: &str, error: impl std::fmt::Display) -> ClientError {
    ClientError::Cql {
        address: String::from("(session)"),
        what: what.to_string(),
        message: error.to_string(),
    }
}
