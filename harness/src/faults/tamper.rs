//! Tamper faults, planned: which stored rows a `tamper` fault changes, deletes or inserts, drawn from the seed, with no I/O.
//!
//! A tamper fault is proof that verification catches bad rows. It is carried out after the drain
//! (no consumer write can follow it) and before verification, by the real run through roadtest's
//! own CQL session and by the simulation on its store, the same way from the same seed. Its
//! trigger only says which rows it may touch: rows of events meant to be sent before it
//! (`at_s`: timestamps before scenario second `at_s`; `after_events = N`: timestamps up to the
//! N-th event of the fleet). Both sides read the same candidates: for up to
//! [`CANDIDATE_VEHICLE_COUNT_MAX`] vehicles drawn from the seed, the newest
//! [`ROWS_PER_VEHICLE`] stored rows before the trigger. From those the seed draws the rows
//! (component `tamper`, one generator per entry): `change` alters one field of each by the
//! smallest step (one ulp for a double, 1 for an integer; the first change is always to a
//! double), `delete` removes them, `insert` writes rows nobody sent (for fleet vehicles at
//! timestamps before the fleet's start, and for the vehicle just outside the fleet). Rows a
//! previous tamper fault touched are never chosen again, so the counts add up exactly.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::fleet::FleetPlan;
use crate::scenario::FLOAT_FIELDS;
use crate::scenario::{FaultAction, FaultSpec, Scenario, Service, TamperKind};
use crate::seed::{SimRng, rng_for};
use crate::table::Checked;
use crate::wire::RowFields;
use crate::wire::vehicle_id;

/// Vehicles whose rows a tamper fault reads as candidates, at most.
pub const CANDIDATE_VEHICLE_COUNT_MAX: usize = 64;
/// Stored rows read per candidate vehicle: its newest before the trigger.
pub const ROWS_PER_VEHICLE: usize = 100;
/// Rows one tamper fault may touch, at most.
pub const TAMPER_ROWS_MAX: u32 = 1000;

/// One tamper fault of the scenario, resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TamperPlan {
    /// Which `[[faults]]` entry it came from.
    pub entry: usize,
    pub kind: TamperKind,
    pub rows: u32,
    /// Only rows with timestamps before this (ms since the Unix epoch) may be changed or deleted.
    pub before_ms: i64,
}

/// A stored row a tamper fault may choose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub vehicle: u32,
    pub timestamp_ms: i64,
    pub fields: RowFields,
}

/// One write to the store that carries out a tamper fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TamperOp {
    /// Upsert the row (vehicle, timestamp) with these fields.
    Write(Candidate),
    /// Remove the row (vehicle, timestamp).
    Delete { vehicle: u32, timestamp_ms: i64 },
}

impl TamperOp {
    /// The row it touches: (vehicle, timestamp).
    pub fn key(&self) -> (u32, i64) {
        match *self {
            TamperOp::Write(row) => (row.vehicle, row.timestamp_ms),
            TamperOp::Delete {
                vehicle,
                timestamp_ms,
            } => (vehicle, timestamp_ms),
        }
    }
}

/// What a tamper fault did to one row, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TamperRecord {
    /// Which `[[faults]]` entry did it.
    pub entry: usize,
    pub vehicle_id: String,
    pub timestamp_ms: i64,
    /// The row's `seq` (as stored before a change or delete; as written by an insert).
    pub seq: u64,
    pub kind: TamperKind,
    /// For `change`: the field altered, as verification names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The tamper faults of a scenario, in the file's order.
pub fn plans(scenario: &Scenario) -> Vec<TamperPlan> {
    let fleet = FleetPlan::from_scenario(scenario);
    let spec_plan = |(entry, spec): (usize, &FaultSpec)| {
        let before_ms = match (spec.at_s, spec.after_events) {
            (Some(at_s), _) => fleet.start_ms + (at_s * 1000.0) as i64,
            (None, Some(events)) => {
                let index = usize::try_from(events.saturating_sub(1)).unwrap_or(usize::MAX);
                fleet
                    .events()
                    .nth(index)
                    .map_or(fleet.end_ms, |event| event.timestamp_ms + 1)
            }
            (None, None) => fleet.end_ms,
        };
        Some(TamperPlan {
            entry,
            kind: spec.kind?,
            rows: spec.rows?,
            before_ms,
        })
    };
    let tampers = scenario.faults.iter().enumerate();
    let tampers = tampers.filter(|(_, spec)| spec.action == FaultAction::Tamper);
    tampers.filter_map(spec_plan).collect()
}

/// Checks a `[[faults]]` entry's tamper keys: a tamper fault acts on `cassandra`, has `kind`,
/// `rows` in range and a fixed trigger; no other fault takes `kind` or `rows`.
pub(crate) fn check_spec(spec: &FaultSpec) -> Result<(), (&'static str, String)> {
    if spec.action != FaultAction::Tamper {
        return match (spec.kind, spec.rows) {
            (None, None) => Ok(()),
            (Some(_), _) => Err(("kind", "only tamper faults take kind and rows".into())),
            (None, Some(_)) => Err(("rows", "only tamper faults take kind and rows".into())),
        };
    }
    if spec.service != Service::Cassandra {
        return Err((
            "service",
            "a tamper fault acts on the stored rows: use service = \"cassandra\"".into(),
        ));
    }
    if spec.random.is_some() {
        return Err((
            "random",
            "a tamper fault takes at_s or after_events; random is not supported for tamper".into(),
        ));
    }
    if spec.kind.is_none() {
        return Err((
            "kind",
            "missing: a tamper fault needs kind = \"change\", \"delete\" or \"insert\"".into(),
        ));
    }
    match spec.rows {
        Some(rows) if (1..=TAMPER_ROWS_MAX).contains(&rows) => Ok(()),
        Some(rows) => Err((
            "rows",
            format!("{rows} is out of range; allowed 1 to {TAMPER_ROWS_MAX}"),
        )),
        None => Err((
            "rows",
            format!("missing: a tamper fault needs rows (1 to {TAMPER_ROWS_MAX})"),
        )),
    }
}

/// The seeded draws of one tamper fault: first the candidate vehicles, then the rows.
#[derive(Debug)]
pub struct TamperDraw {
    plan: TamperPlan,
    rng: SimRng,
    checked: Checked,
}

impl TamperDraw {
    pub fn new(seed: u64, plan: TamperPlan) -> TamperDraw {
        TamperDraw {
            plan,
            rng: rng_for(seed, "tamper", plan.entry as u64),
            checked: Checked::ALL,
        }
    }

    /// Changes only the fields verification compares in `checked` (a table of the user's own
    /// may hold fewer), by the smallest step its column holds; [`Checked::ALL`] by default.
    pub fn changing(mut self, checked: Checked) -> TamperDraw {
        self.checked = checked;
        self
    }

    /// The fault's plan.
    pub fn plan(&self) -> TamperPlan {
        self.plan
    }

    /// The vehicles whose rows are candidates, ascending: up to
    /// [`CANDIDATE_VEHICLE_COUNT_MAX`] of the fleet, drawn from the seed.
    pub fn vehicles(&mut self, vehicle_count: u32) -> Vec<u32> {
        let mut all: Vec<u32> = (0..vehicle_count).collect();
        let wanted = all.len().min(CANDIDATE_VEHICLE_COUNT_MAX);
        partial_shuffle(&mut self.rng, &mut all, wanted);
        all.truncate(wanted);
        all.sort_unstable();
        all
    }

    /// The writes that carry the fault out and their records. `candidates` are the stored rows
    /// read for [`TamperDraw::vehicles`] (any order); rows in `touched` are never chosen.
    pub fn choose(
        mut self,
        mut candidates: Vec<Candidate>,
        fleet: &FleetPlan,
        vehicles: &[u32],
        touched: &BTreeSet<(u32, i64)>,
    ) -> Vec<(TamperOp, TamperRecord)> {
        candidates.retain(|row| {
            row.timestamp_ms < self.plan.before_ms
                && !touched.contains(&(row.vehicle, row.timestamp_ms))
        });
        candidates.sort_by_key(|row| (row.vehicle, row.timestamp_ms));
        candidates.dedup_by_key(|row| (row.vehicle, row.timestamp_ms));
        match self.plan.kind {
            TamperKind::Change => self.change(candidates),
            TamperKind::Delete => self.delete(candidates),
            TamperKind::Insert => self.insert(&candidates, fleet, vehicles, touched),
        }
    }

    /// `rows` candidates, drawn without repetition (all of them if there are fewer).
    fn pick(&mut self, mut candidates: Vec<Candidate>) -> Vec<Candidate> {
        let wanted = candidates.len().min(self.plan.rows as usize);
        partial_shuffle(&mut self.rng, &mut candidates, wanted);
        candidates.truncate(wanted);
        candidates
    }

    fn change(&mut self, candidates: Vec<Candidate>) -> Vec<(TamperOp, TamperRecord)> {
        let chosen = self.pick(candidates);
        let checked = self.checked;
        let fields: Vec<&'static str> = Checked::FIELDS
            .into_iter()
            .filter(|field| checked.checks(field))
            .collect();
        let doubles: Vec<&'static str> = FLOAT_FIELDS
            .into_iter()
            .filter(|field| checked.checks(field))
            .collect();
        let mut done = Vec::with_capacity(chosen.len());
        for (index, row) in chosen.into_iter().enumerate() {
            // The first change is to a double: the smallest change verification must catch.
            let among = if index == 0 && !doubles.is_empty() {
                &doubles
            } else {
                &fields
            };
            let Some(&field) = among.get(self.rng.below(among.len() as u64) as usize) else {
                break;
            };
            let fields = nudge(row.fields, field, checked.single(field));
            let record = self.record(&row, TamperKind::Change, Some(field));
            done.push((TamperOp::Write(Candidate { fields, ..row }), record));
        }
        done
    }

    fn delete(&mut self, candidates: Vec<Candidate>) -> Vec<(TamperOp, TamperRecord)> {
        let chosen = self.pick(candidates);
        let delete = |row: &Candidate| TamperOp::Delete {
            vehicle: row.vehicle,
            timestamp_ms: row.timestamp_ms,
        };
        chosen
            .iter()
            .map(|row| (delete(row), self.record(row, TamperKind::Delete, None)))
            .collect()
    }

    /// Rows nobody sent: a quarter (at least one) for the vehicle just outside the fleet at
    /// timestamps within the run, the rest for fleet vehicles before the fleet's start.
    fn insert(
        &mut self,
        candidates: &[Candidate],
        fleet: &FleetPlan,
        vehicles: &[u32],
        touched: &BTreeSet<(u32, i64)>,
    ) -> Vec<(TamperOp, TamperRecord)> {
        let rows = self.plan.rows as usize;
        let strangers = (rows / 4).max(1);
        let mut used = touched.clone();
        let mut done = Vec::with_capacity(rows);
        for index in 0..rows {
            let (vehicle, low_ms, high_ms) = if index < rows - strangers && !vehicles.is_empty() {
                let vehicle = vehicles[self.rng.below(vehicles.len() as u64) as usize];
                (vehicle, fleet.start_ms - 86_400_000, fleet.start_ms)
            } else {
                // `max`: a guard for an empty run; scenarios last at least a second, so the
                // end is always the larger (any change to `start_ms + 1` cannot matter).
                (
                    fleet.vehicle_count,
                    fleet.start_ms,
                    fleet.end_ms.max(fleet.start_ms + 1),
                )
            };
            let timestamp_ms = loop {
                let span = (high_ms - low_ms) as u64;
                let timestamp_ms = low_ms + self.rng.below(span) as i64;
                if used.insert((vehicle, timestamp_ms)) {
                    break timestamp_ms;
                }
            };
            let fields = match candidates.len() {
                0 => RowFields {
                    seq: index as u64,
                    latitude: 0.0,
                    longitude: 0.0,
                    speed: 0.0,
                    temperature: 0.0,
                    humidity: 0.0,
                    format_version: crate::wire::FORMAT_VERSION,
                },
                count => candidates[self.rng.below(count as u64) as usize].fields,
            };
            let row = Candidate {
                vehicle,
                timestamp_ms,
                fields,
            };
            done.push((
                TamperOp::Write(row),
                self.record(&row, TamperKind::Insert, None),
            ));
        }
        done
    }

    fn record(&self, row: &Candidate, kind: TamperKind, field: Option<&str>) -> TamperRecord {
        TamperRecord {
            entry: self.plan.entry,
            vehicle_id: vehicle_id(row.vehicle),
            timestamp_ms: row.timestamp_ms,
            seq: row.fields.seq,
            kind,
            field: field.map(str::to_string),
        }
    }
}

/// Moves `wanted` items drawn without repetition to the front (a partial Fisher-Yates shuffle).
fn partial_shuffle<T>(rng: &mut SimRng, items: &mut [T], wanted: usize) {
    for index in 0..wanted.min(items.len()) {
        let other = index + rng.below((items.len() - index) as u64) as usize;
        items.swap(index, other);
    }
}

/// The smallest change of `field`: 1 for an integer, one ulp for a double (of its single
/// precision value when the column is a `float`, so the change survives the column).
fn nudge(mut fields: RowFields, field: &str, single: bool) -> RowFields {
    match field {
        "seq" => fields.seq += 1,
        "format_version" => fields.format_version += 1,
        _ => {
            if let Some(value) = fields.float_mut(field) {
                *value = if single {
                    f64::from(f32::from_bits((*value as f32).to_bits() + 1))
                } else {
                    f64::from_bits(value.to_bits() + 1)
                };
            }
        }
    }
    fields
}

#[cfg(test)]
#[path = "tamper_tests.rs"]
mod tests;
