//! The merge-join of one vehicle's stored rows against its expected events, with no I/O: the real verification and the simulation both feed it.
//!
//! The expected events come as an iterator in timestamp order; the rows are pushed one at a time,
//! also in timestamp order, so an async reader can feed them page by page as they arrive and
//! memory stays at one page whatever the vehicle's length. Each row is found (every field
//! identical, floats bit for bit), corrupt (a field differs) or unexpected (no event has its
//! timestamp); each expected event without a row is lost. The row's write time against the
//! event's intended send time gives its end-to-end latency.
//!
//! Limits: at most [`DISCREPANCY_COUNT_MAX`] discrepancies are kept per [`VerifyOutcome`], the
//! first noted; [`VerifyOutcome::keep_first_discrepancies`] puts them in (vehicle, seq) order.

use std::iter::Peekable;

use serde_json::Value;

use super::VerifyOutcome;
use crate::report::{DISCREPANCY_COUNT_MAX, Discrepancy};
use crate::table::Checked;
use crate::wire::{Event, FORMAT_VERSION, RowFields};

/// One stored row of a vehicle, as the merge reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoundRow {
    /// The row's clustering key: the event's timestamp, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// What the row holds.
    pub fields: RowFields,
    /// When the database wrote the row, µs since the run's start (0 if before it).
    pub written_us: u64,
}

/// The run's time base, as the merge needs it.
pub trait Timeline {
    /// When an event with this timestamp was meant to be sent, µs after the run's start.
    fn intended_offset_us(&self, timestamp_ms: i64) -> u64;
}

/// The merge-join of one vehicle: push its rows in timestamp order, then [`VehicleMerge::finish`].
///
/// Everything it decides goes into the [`VerifyOutcome`] it borrows, so several vehicles can
/// share one outcome (and its discrepancy cap) or each have their own.
#[derive(Debug)]
pub struct VehicleMerge<'a, E: Iterator<Item = Event>, T: Timeline> {
    /// The vehicle's id, as discrepancies name it.
    id: &'a str,
    /// The vehicle's expected events not yet decided, in timestamp order.
    expected: Peekable<E>,
    timeline: &'a T,
    outcome: &'a mut VerifyOutcome,
    checked: Checked,
}

impl<'a, E: Iterator<Item = Event>, T: Timeline> VehicleMerge<'a, E, T> {
    /// A merge of vehicle `id`, whose events are `expected` (in timestamp order), into `outcome`.
    pub fn new(
        id: &'a str,
        expected: E,
        timeline: &'a T,
        outcome: &'a mut VerifyOutcome,
    ) -> VehicleMerge<'a, E, T> {
        VehicleMerge {
            id,
            expected: expected.peekable(),
            timeline,
            outcome,
            checked: Checked::ALL,
        }
    }

    /// Compares only the `checked` fields (every field unless told).
    pub fn checking(mut self, checked: Checked) -> Self {
        self.checked = checked;
        self
    }

    /// The vehicle's next row (timestamps ascending): the events before it that have no row are
    /// lost; the row is found or corrupt if an event has its timestamp, unexpected otherwise.
    pub fn push_row(&mut self, row: &FoundRow) {
        while let Some(event) = self
            .expected
            .next_if(|event| event.timestamp_ms < row.timestamp_ms)
        {
            self.note_lost(&event);
        }
        match self
            .expected
            .next_if(|event| event.timestamp_ms == row.timestamp_ms)
        {
            Some(event) => self.note_matched(&event, row),
            None => self.note_unexpected(row),
        }
    }

    /// The vehicle has no more rows: every event not yet decided is lost.
    pub fn finish(mut self) {
        while let Some(event) = self.expected.next() {
            self.note_lost(&event);
        }
    }

    /// Pushes every row of `rows` (timestamps ascending), then finishes.
    pub fn merge_all(mut self, rows: impl IntoIterator<Item = FoundRow>) {
        for row in rows {
            self.push_row(&row);
        }
        self.finish();
    }

    /// A row at an expected event's timestamp: found or corrupt, with its latency and write time.
    fn note_matched(&mut self, event: &Event, row: &FoundRow) {
        self.outcome.expected += 1;
        compare_row(event, &row.fields, self.id, self.checked, self.outcome);
        let intended_us = self.timeline.intended_offset_us(event.timestamp_ms);
        self.outcome.e2e.record(
            row.written_us.saturating_sub(intended_us),
            intended_us / 1000,
        );
        self.outcome.written.add(row.written_us / 1000, 1);
    }

    /// An expected event without a row.
    fn note_lost(&mut self, event: &Event) {
        let intended_ms = self.timeline.intended_offset_us(event.timestamp_ms) / 1000;
        self.outcome.expected += 1;
        self.outcome.lost += 1;
        self.outcome.lost_by_intended_second.add(intended_ms, 1);
        let sent = serde_json::json!({"timestamp": event.timestamp_ms});
        note(self.outcome, self.id, event.seq, "row", sent, Value::Null);
    }

    /// A row nobody sent.
    fn note_unexpected(&mut self, row: &FoundRow) {
        self.outcome.unexpected += 1;
        let seq = row.fields.seq;
        let held = serde_json::json!({"timestamp": row.timestamp_ms, "seq": seq});
        note(self.outcome, self.id, seq, "row", Value::Null, held);
    }
}

/// Compares a row with the event of the same timestamp, exactly (floats bit for bit): counts it
/// found or corrupt and notes every field that differs.
fn compare_row(
    event: &Event,
    row: &RowFields,
    id: &str,
    checked: Checked,
    outcome: &mut VerifyOutcome,
) {
    let checks: [(&str, Value, Value, bool); 7] = [
        (
            "seq",
            event.seq.into(),
            row.seq.into(),
            row.seq == event.seq,
        ),
        float("latitude", event.latitude, row.latitude, checked),
        float("longitude", event.longitude, row.longitude, checked),
        float("speed", event.speed_kmh, row.speed, checked),
        float("temperature", event.temperature_c, row.temperature, checked),
        float("humidity", event.humidity_pct, row.humidity, checked),
        (
            "format_version",
            FORMAT_VERSION.into(),
            row.format_version.into(),
            row.format_version == FORMAT_VERSION,
        ),
    ];
    let mut corrupt = false;
    for (field, expected, found, same) in checks {
        if !same && checked.checks(field) {
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

/// A float field compared bit for bit; in a `float` column, against the sent value rounded to
/// single precision (what such a column can hold).
fn float(
    field: &'static str,
    sent: f64,
    found: f64,
    checked: Checked,
) -> (&'static str, Value, Value, bool) {
    let expected = if checked.single(field) {
        f64::from(sent as f32)
    } else {
        sent
    };
    (
        field,
        expected.into(),
        found.into(),
        expected.to_bits() == found.to_bits(),
    )
}

/// Notes a discrepancy while fewer than [`DISCREPANCY_COUNT_MAX`] are kept.
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

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
