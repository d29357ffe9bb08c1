//! Verification of a simulated run: the expected events, regenerated from the seed, against the rows of the simulated database.
//!
//! The same rules as [`crate::verify`]: vehicle by vehicle, rows in timestamp order merged with
//! the vehicle's regenerated stream; a row is found (every field identical, floats bit for bit),
//! corrupt, or unexpected; an expected event without a row is lost.

use serde_json::Value;

use crate::fleet::FleetPlan;
use crate::report::{DISCREPANCY_COUNT_MAX, Discrepancy};
use crate::verify::VerifyOutcome;
use crate::wire::{Event, FORMAT_VERSION, vehicle_id};

use super::model::{SimStore, StoredRow};

/// Verifies every vehicle of `plan` against `store`; times are µs since the run start.
pub fn verify_store(plan: &FleetPlan, store: &SimStore) -> VerifyOutcome {
    let mut outcome = VerifyOutcome::default();
    let intended_us =
        |event: &Event| u64::try_from(event.timestamp_ms - plan.start_ms).unwrap_or(0) * 1000;
    for vehicle in 0..plan.vehicle_count {
        let id = vehicle_id(vehicle);
        let rows = store.rows_of(vehicle);
        let mut rows = rows.iter().peekable();
        let mut events = plan.vehicle(vehicle).peekable();
        loop {
            match (events.peek(), rows.peek()) {
                (None, None) => break,
                (Some(event), Some(&&(timestamp, row))) if event.timestamp_ms == timestamp => {
                    outcome.expected += 1;
                    compare(event, &row, &id, &mut outcome);
                    let intended = intended_us(event);
                    outcome
                        .e2e
                        .record(row.write_us.saturating_sub(intended), intended / 1000);
                    outcome.written.add(row.write_us / 1000, 1);
                    events.next();
                    rows.next();
                }
                (Some(event), found) if found.is_none_or(|&&(t, _)| event.timestamp_ms < t) => {
                    outcome.expected += 1;
                    outcome.lost += 1;
                    outcome
                        .lost_by_intended_second
                        .add(intended_us(event) / 1000, 1);
                    let sent = serde_json::json!({"timestamp": event.timestamp_ms});
                    note(&mut outcome, &id, event.seq, "row", sent, Value::Null);
                    events.next();
                }
                (_, Some(&&(timestamp, row))) => {
                    unexpected(&mut outcome, &id, timestamp, &row);
                    rows.next();
                }
                (Some(_), None) => unreachable!("handled by the lost arm"),
            }
        }
    }
    for (&(vehicle, timestamp), row) in store.strangers() {
        unexpected(&mut outcome, &vehicle_id(vehicle), timestamp, row);
    }
    outcome
        .discrepancies
        .sort_by(|a, b| (&a.vehicle_id, a.seq).cmp(&(&b.vehicle_id, b.seq)));
    outcome.discrepancies.truncate(DISCREPANCY_COUNT_MAX);
    outcome
}

fn unexpected(outcome: &mut VerifyOutcome, id: &str, timestamp: i64, row: &StoredRow) {
    outcome.unexpected += 1;
    let held = serde_json::json!({"timestamp": timestamp, "seq": row.seq});
    note(outcome, id, row.seq, "row", Value::Null, held);
}

fn compare(event: &Event, row: &StoredRow, id: &str, outcome: &mut VerifyOutcome) {
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
    // Keep the first per vehicle order; the final sort and cut happen once at the end.
    if outcome.discrepancies.len() < DISCREPANCY_COUNT_MAX * 4 {
        outcome.discrepancies.push(Discrepancy {
            vehicle_id: id.to_string(),
            seq,
            field: field.to_string(),
            expected,
            found,
        });
    }
}
