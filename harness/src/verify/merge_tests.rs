//! Unit tests of the merge-join: every verdict, exact float comparison, paging, and the discrepancy list.

use serde_json::json;

use super::*;
use crate::measure::{IntervalSummary, LatencySummary};
use crate::scenario::FLOAT_FIELDS;

/// Scenario time zero of the tests.
const START_MS: i64 = 1_700_000_000_000;
/// The tests' vehicle.
const ID: &str = "veh-000007";

/// Scenario time zero is the run's start; events are meant to be sent at their timestamp.
#[derive(Debug)]
struct Plain;

impl Timeline for Plain {
    fn intended_offset_us(&self, timestamp_ms: i64) -> u64 {
        u64::try_from(timestamp_ms - START_MS).unwrap_or(0) * 1000
    }
}

/// `count` events of vehicle 7, 400 ms apart, every field distinct from every other.
fn events(count: u64) -> Vec<Event> {
    (0..count)
        .map(|seq| {
            let k = seq as f64;
            Event {
                vehicle_index: 7,
                seq,
                timestamp_ms: START_MS + 400 * seq as i64,
                latitude: 48.1 + k * 0.001,
                longitude: 11.5 + k * 0.002,
                speed_kmh: 30.25 + k,
                temperature_c: 21.5 - k * 0.1,
                humidity_pct: 40.0 + k * 0.3,
            }
        })
        .collect()
}

/// The row a faithful pipeline stores for `event`, written 3 ms after its intended send time.
fn row_of(event: &Event) -> FoundRow {
    FoundRow {
        timestamp_ms: event.timestamp_ms,
        fields: RowFields::of_event(event),
        written_us: Plain.intended_offset_us(event.timestamp_ms) + 3_000,
    }
}

fn rows_of(events: &[Event]) -> Vec<FoundRow> {
    events.iter().map(row_of).collect()
}

/// The outcome of one vehicle, discrepancies in report order.
fn merge(events: &[Event], rows: &[FoundRow]) -> VerifyOutcome {
    let mut outcome = VerifyOutcome::default();
    VehicleMerge::new(ID, events.iter().copied(), &Plain, &mut outcome)
        .merge_all(rows.iter().copied());
    outcome.keep_first_discrepancies();
    outcome
}

/// (expected, found, lost, corrupt, unexpected)
fn counts(outcome: &VerifyOutcome) -> [u64; 5] {
    [
        outcome.expected,
        outcome.found,
        outcome.lost,
        outcome.corrupt,
        outcome.unexpected,
    ]
}

/// Everything an outcome reports, comparable.
type Summary = (
    [u64; 5],
    Vec<Discrepancy>,
    LatencySummary,
    Vec<IntervalSummary>,
    Vec<u64>,
    Vec<u64>,
);

fn summary(outcome: &VerifyOutcome) -> Summary {
    (
        counts(outcome),
        outcome.discrepancies.clone(),
        outcome.e2e.summary(),
        outcome.e2e.intervals(),
        outcome.written.per_second(),
        outcome.lost_by_intended_second.per_second(),
    )
}

fn discrepancy(seq: u64, field: &str, expected: Value, found: Value) -> Discrepancy {
    Discrepancy {
        vehicle_id: ID.to_string(),
        seq,
        field: field.to_string(),
        expected,
        found,
    }
}

#[test]
fn rows_identical_to_the_events_are_found_with_their_latency_and_write_second() {
    let sent = events(5);
    let outcome = merge(&sent, &rows_of(&sent));
    assert_eq!(counts(&outcome), [5, 5, 0, 0, 0]);
    assert!(outcome.discrepancies.is_empty());
    assert_eq!(outcome.e2e.count(), 5);
    let e2e = outcome.e2e.summary();
    assert!((2.9..=3.1).contains(&e2e.min_ms) && (2.9..=3.1).contains(&e2e.max_ms));
    // Written at 3, 403, 803, 1203 and 1603 ms after the start.
    assert_eq!(outcome.written.per_second(), vec![3, 2]);
    // Each latency is charged to the second its event was meant to be sent in: 0, 400 and
    // 800 ms, then 1200 and 1600 ms.
    let per_second: Vec<(u64, u64)> = outcome
        .e2e
        .intervals()
        .iter()
        .map(|interval| (interval.start_s, interval.count))
        .collect();
    assert_eq!(per_second, [(0, 3), (1, 2)]);
    assert_eq!(outcome.lost_by_intended_second.total(), 0);
}

#[test]
fn a_row_written_before_its_intended_send_time_has_zero_latency() {
    let sent = events(3);
    let mut rows = rows_of(&sent);
    rows[2].written_us = 0;
    let outcome = merge(&sent, &rows);
    assert_eq!(counts(&outcome), [3, 3, 0, 0, 0]);
    assert_eq!(outcome.e2e.summary().min_ms, 0.0);
    assert_eq!(outcome.written.per_second(), vec![3]);
}

/// A field, how to change it alone in a row, and what its discrepancy then shows (sent, stored).
type FieldChange = (&'static str, fn(&mut RowFields), Value, Value);

#[test]
fn each_field_changed_alone_is_corrupt_naming_that_field() {
    let sent = events(3);
    let event = sent[1];
    let changes: [FieldChange; 7] = [
        ("seq", |f| f.seq = 9, json!(1), json!(9)),
        (
            "latitude",
            |f| f.latitude = 1.0,
            json!(event.latitude),
            json!(1.0),
        ),
        (
            "longitude",
            |f| f.longitude = 2.0,
            json!(event.longitude),
            json!(2.0),
        ),
        (
            "speed",
            |f| f.speed = 3.0,
            json!(event.speed_kmh),
            json!(3.0),
        ),
        (
            "temperature",
            |f| f.temperature = 4.0,
            json!(event.temperature_c),
            json!(4.0),
        ),
        (
            "humidity",
            |f| f.humidity = 5.0,
            json!(event.humidity_pct),
            json!(5.0),
        ),
        (
            "format_version",
            |f| f.format_version = 7,
            json!(FORMAT_VERSION),
            json!(7),
        ),
    ];
    for (field, change, expected, found) in changes {
        let mut rows = rows_of(&sent);
        change(&mut rows[1].fields);
        let outcome = merge(&sent, &rows);
        assert_eq!(counts(&outcome), [3, 2, 0, 1, 0], "{field}");
        assert_eq!(
            outcome.discrepancies,
            vec![discrepancy(1, field, expected, found)],
            "{field}"
        );
        // A corrupt row still arrived: its latency and write time count.
        assert_eq!(outcome.e2e.count(), 3, "{field}");
        assert_eq!(outcome.written.total(), 3, "{field}");
    }
}

#[test]
fn every_field_that_differs_is_named_and_the_row_counts_once() {
    let sent = events(1);
    let mut rows = rows_of(&sent);
    rows[0].fields.speed += 1.0;
    rows[0].fields.humidity += 1.0;
    let outcome = merge(&sent, &rows);
    assert_eq!(counts(&outcome), [1, 0, 0, 1, 0]);
    let fields: Vec<&str> = outcome
        .discrepancies
        .iter()
        .map(|d| d.field.as_str())
        .collect();
    assert_eq!(fields, ["speed", "humidity"]);
}

/// Sets every float field of a row to `value`.
fn set_floats(fields: &mut RowFields, value: f64) {
    fields.latitude = value;
    fields.longitude = value;
    fields.speed = value;
    fields.temperature = value;
    fields.humidity = value;
}

/// One event whose every float field is `sent`, against a row whose every float field is `stored`.
fn floats(sent: f64, stored: f64) -> VerifyOutcome {
    let mut event = events(1)[0];
    event.latitude = sent;
    event.longitude = sent;
    event.speed_kmh = sent;
    event.temperature_c = sent;
    event.humidity_pct = sent;
    let mut row = row_of(&event);
    set_floats(&mut row.fields, stored);
    merge(&[event], &[row])
}

fn float_fields_named(outcome: &VerifyOutcome) -> Vec<&str> {
    outcome
        .discrepancies
        .iter()
        .map(|d| d.field.as_str())
        .collect()
}

#[test]
fn negative_zero_against_zero_is_corrupt() {
    for (sent, stored) in [(0.0, -0.0), (-0.0, 0.0)] {
        let outcome = floats(sent, stored);
        assert_eq!(counts(&outcome), [1, 0, 0, 1, 0], "{sent} against {stored}");
        assert_eq!(float_fields_named(&outcome), FLOAT_FIELDS);
    }
}

#[test]
fn one_ulp_apart_is_corrupt() {
    for sent in [48.137_154_f64, -11.575_382, 1e-300, 0.0] {
        let stored = f64::from_bits(sent.to_bits() + 1);
        let outcome = floats(sent, stored);
        assert_eq!(counts(&outcome), [1, 0, 0, 1, 0], "{sent}");
        assert_eq!(float_fields_named(&outcome), FLOAT_FIELDS);
    }
}

#[test]
fn nan_with_the_same_bits_is_found_and_with_other_bits_corrupt() {
    let nan = f64::NAN;
    assert_eq!(counts(&floats(nan, nan)), [1, 1, 0, 0, 0]);
    let other_nan = f64::from_bits(nan.to_bits() + 1);
    assert!(other_nan.is_nan());
    let outcome = floats(nan, other_nan);
    assert_eq!(counts(&outcome), [1, 0, 0, 1, 0]);
    assert_eq!(float_fields_named(&outcome), FLOAT_FIELDS);
}

#[test]
fn rows_at_timestamps_nobody_sent_are_unexpected() {
    let sent = events(3);
    let mut rows = rows_of(&sent);
    let stray = |timestamp_ms: i64, seq: u64| FoundRow {
        timestamp_ms,
        fields: RowFields {
            seq,
            ..rows_of(&sent)[0].fields
        },
        written_us: 5_000,
    };
    // Before the first event, between two events (1 ms after one), and after the last.
    rows.insert(0, stray(START_MS - 1, 40));
    rows.insert(2, stray(START_MS + 1, 41));
    rows.push(stray(START_MS + 5_000, 42));
    let outcome = merge(&sent, &rows);
    assert_eq!(counts(&outcome), [3, 3, 0, 0, 3]);
    let held = |timestamp: i64, seq: u64| json!({"timestamp": timestamp, "seq": seq});
    assert_eq!(
        outcome.discrepancies,
        vec![
            discrepancy(40, "row", Value::Null, held(START_MS - 1, 40)),
            discrepancy(41, "row", Value::Null, held(START_MS + 1, 41)),
            discrepancy(42, "row", Value::Null, held(START_MS + 5_000, 42)),
        ]
    );
    // Unexpected rows have no latency and do not count as written events.
    assert_eq!(outcome.e2e.count(), 3);
    assert_eq!(outcome.written.total(), 3);
}

#[test]
fn expected_events_without_a_row_are_lost() {
    let sent = events(6);
    // No row for the first, a middle and the last event.
    let rows: Vec<FoundRow> = [1, 2, 4].iter().map(|&k| row_of(&sent[k])).collect();
    let outcome = merge(&sent, &rows);
    assert_eq!(counts(&outcome), [6, 3, 3, 0, 0]);
    let sent_at = |k: usize| json!({"timestamp": sent[k].timestamp_ms});
    assert_eq!(
        outcome.discrepancies,
        vec![
            discrepancy(0, "row", sent_at(0), Value::Null),
            discrepancy(3, "row", sent_at(3), Value::Null),
            discrepancy(5, "row", sent_at(5), Value::Null),
        ]
    );
    // Meant to be sent at 0, 1200 and 2000 ms.
    assert_eq!(outcome.lost_by_intended_second.per_second(), vec![1, 1, 1]);
    assert_eq!(outcome.e2e.count(), 3);
}

/// Events and rows with every verdict: lost, found, corrupt, unexpected, lost at the end.
fn mixed() -> (Vec<Event>, Vec<FoundRow>) {
    let sent = events(8);
    let mut rows = rows_of(&sent);
    rows[3].fields.temperature = -40.0;
    rows.remove(5);
    let mut stray = rows[2];
    stray.timestamp_ms += 1;
    stray.fields.seq = 99;
    rows.insert(3, stray);
    rows.remove(0);
    rows.pop();
    (sent, rows)
}

#[test]
fn pages_that_end_mid_vehicle_change_nothing() {
    let (sent, rows) = mixed();
    let whole = summary(&merge(&sent, &rows));
    assert_eq!(whole.0, [8, 4, 3, 1, 1]);
    // Every split into two pages, then pages of every size, the merge kept across pages.
    let splits = (0..=rows.len()).map(|at| vec![&rows[..at], &rows[at..]]);
    let sizes = (1..=rows.len()).map(|size| rows.chunks(size).collect::<Vec<_>>());
    for pages in splits.chain(sizes) {
        let mut outcome = VerifyOutcome::default();
        let mut vehicle = VehicleMerge::new(ID, sent.iter().copied(), &Plain, &mut outcome);
        for page in &pages {
            for row in *page {
                vehicle.push_row(row);
            }
        }
        vehicle.finish();
        outcome.keep_first_discrepancies();
        let sizes: Vec<usize> = pages.iter().map(|page| page.len()).collect();
        assert_eq!(summary(&outcome), whole, "pages of {sizes:?} rows");
    }
}

#[test]
fn a_vehicle_with_rows_but_no_expected_events_is_all_unexpected() {
    let rows = rows_of(&events(4));
    let outcome = merge(&[], &rows);
    assert_eq!(counts(&outcome), [0, 0, 0, 0, 4]);
    let seqs: Vec<u64> = outcome.discrepancies.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    assert!(outcome.e2e.is_empty());
    assert_eq!(outcome.written.total(), 0);
}

#[test]
fn an_empty_table_is_all_lost() {
    let mut total = VerifyOutcome::default();
    for vehicle in 0..3u32 {
        let id = crate::wire::vehicle_id(vehicle);
        let sent = events(4);
        let mut outcome = VerifyOutcome::default();
        VehicleMerge::new(&id, sent.into_iter(), &Plain, &mut outcome).finish();
        total.merge(outcome);
    }
    total.keep_first_discrepancies();
    assert_eq!(counts(&total), [12, 0, 12, 0, 0]);
    assert_eq!(total.discrepancies.len(), 12);
    assert!(
        total
            .discrepancies
            .iter()
            .all(|d| d.field == "row" && d.found.is_null())
    );
    assert!(total.e2e.is_empty());
    assert_eq!(total.written.total(), 0);
    // Meant to be sent at 0, 400, 800 and 1200 ms, by three vehicles.
    assert_eq!(total.lost_by_intended_second.per_second(), vec![9, 3]);
}

#[test]
fn discrepancies_are_listed_by_vehicle_then_seq_and_capped() {
    let cap = DISCREPANCY_COUNT_MAX as u64;
    let sent = events(cap + 10);
    let mut total = VerifyOutcome::default();
    // Vehicle 2 first, as a task finishing first would; its rows are all missing.
    let mut second = VerifyOutcome::default();
    VehicleMerge::new("veh-000002", sent.iter().copied(), &Plain, &mut second).finish();
    assert_eq!(
        second.discrepancies.len(),
        DISCREPANCY_COUNT_MAX,
        "capped while noting"
    );
    total.merge(second);
    // Vehicle 1: a stray row with a small seq after two lost events, then nothing.
    let mut first = VerifyOutcome::default();
    let mut stray = row_of(&sent[2]);
    stray.timestamp_ms += 1;
    stray.fields.seq = 0;
    let rows = [row_of(&sent[2]), stray];
    VehicleMerge::new("veh-000001", sent[..3].iter().copied(), &Plain, &mut first).merge_all(rows);
    total.merge(first);
    total.keep_first_discrepancies();
    assert_eq!(total.discrepancies.len(), DISCREPANCY_COUNT_MAX);
    let order: Vec<(&str, u64)> = total
        .discrepancies
        .iter()
        .map(|d| (d.vehicle_id.as_str(), d.seq))
        .collect();
    let mut expected = vec![("veh-000001", 0), ("veh-000001", 0), ("veh-000001", 1)];
    expected.extend((0..cap - 3).map(|seq| ("veh-000002", seq)));
    assert_eq!(order, expected);
    assert_eq!(counts(&total), [cap + 13, 1, cap + 12, 0, 1]);
}

#[test]
fn fields_the_message_leaves_out_are_not_checked_and_a_null_in_a_sent_one_is_corrupt() {
    let sent = events(3);
    let settings = crate::scenario::RecordSettings {
        humidity: String::new(),
        format_version: false,
        ..crate::scenario::RecordSettings::default()
    };
    let checked = Checked::of(&crate::wire::RecordFormat::new(&settings));
    assert!(checked.checks("seq") && checked.checks("temperature"));
    assert!(!checked.checks("humidity") && !checked.checks("format_version"));
    let mut rows = rows_of(&sent);
    // What a pipeline stores for fields it never received: nothing (read back as NaN and an
    // out-of-range version).
    for row in &mut rows {
        row.fields.humidity = f64::NAN;
        row.fields.format_version = u32::MAX;
    }
    // A sent field the consumer left empty.
    rows[1].fields.temperature = f64::NAN;
    let mut outcome = VerifyOutcome::default();
    VehicleMerge::new(ID, sent.iter().copied(), &Plain, &mut outcome)
        .checking(checked)
        .merge_all(rows.iter().copied());
    outcome.keep_first_discrepancies();
    assert_eq!(counts(&outcome), [3, 2, 0, 1, 0]);
    let fields: Vec<&str> = outcome
        .discrepancies
        .iter()
        .map(|d| d.field.as_str())
        .collect();
    assert_eq!(fields, ["temperature"]);
    // Checking every field, the same rows are all corrupt.
    assert_eq!(counts(&merge(&sent, &rows)), [3, 0, 0, 3, 0]);
}
