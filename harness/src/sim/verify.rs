//! Verification of a simulated run: the expected events, regenerated from the seed, against the rows of the simulated database.
//!
//! The same rules as [`crate::verify`]: vehicle by vehicle, rows in timestamp order merged with
//! the vehicle's regenerated stream; a row is found (every field identical, floats bit for bit),
//! corrupt, or unexpected; an expected event without a row is lost.

use crate::fleet::FleetPlan;
use crate::verify::{VerifyOutcome, compare_row, finish, note_lost, note_unexpected};
use crate::wire::{Event, vehicle_id};

use super::model::SimStore;

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
                    compare_row(event, &row.fields, &id, &mut outcome);
                    let intended = intended_us(event);
                    outcome
                        .e2e
                        .record(row.write_us.saturating_sub(intended), intended / 1000);
                    outcome.written.add(row.write_us / 1000, 1);
                    events.next();
                    rows.next();
                }
                (Some(event), found) if found.is_none_or(|&&(t, _)| event.timestamp_ms < t) => {
                    note_lost(&mut outcome, &id, event, intended_us(event) / 1000);
                    events.next();
                }
                (_, Some(&&(timestamp, row))) => {
                    note_unexpected(&mut outcome, &id, timestamp, row.fields.seq);
                    rows.next();
                }
                (Some(_), None) => unreachable!("handled by the lost arm"),
            }
        }
    }
    for (&(vehicle, timestamp), row) in store.strangers() {
        note_unexpected(
            &mut outcome,
            &vehicle_id(vehicle),
            timestamp,
            row.fields.seq,
        );
    }
    finish(&mut outcome);
    outcome
}
