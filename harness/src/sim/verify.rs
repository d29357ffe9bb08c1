//! Verification of a simulated run: the expected events, regenerated from the seed, against the rows of the simulated database.
//!
//! The same merge-join as a real run ([`crate::verify::VehicleMerge`]): vehicle by vehicle, the
//! rows in timestamp order against the vehicle's regenerated stream; a row is found (every field
//! identical, floats bit for bit), corrupt, or unexpected; an expected event without a row is
//! lost. Rows of vehicles outside the fleet are unexpected. All vehicles share one outcome, so
//! the discrepancies kept are the first noted in vehicle order.

use crate::fleet::FleetPlan;
use crate::verify::{FoundRow, Timeline, VehicleMerge, VerifyOutcome};
use crate::wire::{Event, vehicle_id};

use super::model::{SimStore, StoredRow};

/// The simulation's time base: scenario time zero is the run's start, without speed-up.
#[derive(Debug)]
struct SimTimeline {
    /// Scenario time zero, ms since the Unix epoch (the fleet's `start_ms`).
    start_ms: i64,
}

impl Timeline for SimTimeline {
    fn intended_offset_us(&self, timestamp_ms: i64) -> u64 {
        u64::try_from(timestamp_ms - self.start_ms).unwrap_or(0) * 1000
    }
}

/// Verifies every vehicle of `plan` against `store`; times are µs since the run start.
pub fn verify_store(plan: &FleetPlan, store: &SimStore) -> VerifyOutcome {
    let timeline = SimTimeline {
        start_ms: plan.start_ms,
    };
    let mut outcome = VerifyOutcome::default();
    for vehicle in 0..plan.vehicle_count {
        let id = vehicle_id(vehicle);
        let rows = store.rows_of(vehicle).iter();
        VehicleMerge::new(&id, plan.vehicle(vehicle), &timeline, &mut outcome)
            .merge_all(rows.map(|&(timestamp, row)| found_row(timestamp, row)));
    }
    for (&(vehicle, timestamp), &row) in store.strangers() {
        let id = vehicle_id(vehicle);
        VehicleMerge::new(&id, std::iter::empty::<Event>(), &timeline, &mut outcome)
            .merge_all([found_row(timestamp, row)]);
    }
    outcome.keep_first_discrepancies();
    outcome
}

fn found_row(timestamp_ms: i64, row: StoredRow) -> FoundRow {
    FoundRow {
        timestamp_ms,
        fields: row.fields,
        written_us: row.write_us,
    }
}
