//! Tamper faults on the simulated database: the same seeded choice as a real run ([`crate::faults::tamper`]), carried out on the store after the run, before verification.

use std::collections::BTreeSet;

use crate::faults::tamper::{Candidate, TamperDraw, TamperOp, TamperRecord, plans};
use crate::fleet::FleetPlan;
use crate::scenario::Scenario;

use super::model::{SimStore, StoredRow};

/// Carries out the scenario's tamper faults on `store`, in the file's order; returns what they did.
pub fn tamper_store(
    scenario: &Scenario,
    fleet: &FleetPlan,
    store: &mut SimStore,
) -> Vec<TamperRecord> {
    let mut touched = BTreeSet::new();
    let mut records = Vec::new();
    for plan in plans(scenario) {
        let mut draw = TamperDraw::new(scenario.seed, plan);
        let vehicles = draw.vehicles(fleet.vehicle_count);
        let candidates = candidates(store, &vehicles, plan.before_ms);
        for (op, record) in draw.choose(candidates, fleet, &vehicles, &touched) {
            touched.insert(op.key());
            apply(store, op);
            records.push(record);
        }
    }
    records
}

/// The newest rows before `before_ms` of each vehicle, as a real run reads them.
fn candidates(store: &SimStore, vehicles: &[u32], before_ms: i64) -> Vec<Candidate> {
    let mut candidates = Vec::new();
    for &vehicle in vehicles {
        let rows = store.rows_of(vehicle);
        let end = rows.partition_point(|&(timestamp, _)| timestamp < before_ms);
        let start = end.saturating_sub(crate::faults::tamper::ROWS_PER_VEHICLE);
        candidates.extend(
            rows[start..end]
                .iter()
                .map(|&(timestamp_ms, row)| Candidate {
                    vehicle,
                    timestamp_ms,
                    fields: row.fields,
                }),
        );
    }
    candidates
}

/// One write of a tamper fault; a changed row keeps its write time, an inserted one has none.
fn apply(store: &mut SimStore, op: TamperOp) {
    match op {
        TamperOp::Write(row) => {
            let write_us = store
                .rows_of(row.vehicle)
                .iter()
                .find(|&&(timestamp, _)| timestamp == row.timestamp_ms)
                .map_or(0, |(_, stored)| stored.write_us);
            let stored = StoredRow {
                fields: row.fields,
                write_us,
            };
            store.tamper(row.vehicle, row.timestamp_ms, Some(stored));
        }
        TamperOp::Delete {
            vehicle,
            timestamp_ms,
        } => store.tamper(vehicle, timestamp_ms, None),
    }
}
