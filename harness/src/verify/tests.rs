//! Unit tests of verification's pure parts: per-vehicle outcomes summed, the report filled from
//! the total, the run clock as the merge's time base. The parts that read Cassandra (`verify`,
//! `verify_vehicle`, `merge_rows`, `verify_strangers`) are proven by the real-service suites:
//! `harness/tests/faults.rs` (`tampered_rows_are_counted_exactly_and_named`: exact corrupt, lost
//! and unexpected counts, a stranger vehicle included) and every run that asserts found = expected.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::Scenario;

/// An outcome whose counts all differ, so a sum that mixes two of them up shows.
fn outcome(base: u64, vehicle: &str) -> VerifyOutcome {
    let mut outcome = VerifyOutcome {
        expected: base,
        found: base + 1,
        lost: base + 2,
        corrupt: base + 3,
        unexpected: base + 4,
        ..VerifyOutcome::default()
    };
    outcome.discrepancies.push(Discrepancy {
        vehicle_id: vehicle.to_string(),
        seq: base,
        field: "row".to_string(),
        expected: serde_json::Value::Null,
        found: serde_json::Value::Null,
    });
    outcome.e2e.record(base * 1_000, 1_500);
    outcome.written.add(1_500, base);
    outcome.lost_by_intended_second.add(2_500, 1);
    outcome
}

#[test]
fn outcomes_of_vehicles_add_up_count_by_count() {
    let mut total = outcome(10, "veh-b");
    total.merge(outcome(100, "veh-a"));
    assert_eq!(
        (
            total.expected,
            total.found,
            total.lost,
            total.corrupt,
            total.unexpected
        ),
        (110, 112, 114, 116, 118)
    );
    assert_eq!(total.e2e.count(), 2);
    assert_eq!(total.written.per_second(), [0, 110]);
    assert_eq!(total.lost_by_intended_second.per_second(), [0, 0, 2]);
    total.keep_first_discrepancies();
    let order: Vec<&str> = total
        .discrepancies
        .iter()
        .map(|d| d.vehicle_id.as_str())
        .collect();
    assert_eq!(order, ["veh-a", "veh-b"]);
}

#[test]
fn the_report_gets_the_counts_latency_throughput_and_redeliveries() {
    let scenario = Scenario::parse(
        "name = \"unit\"\nseed = 1\nduration_s = 2\n[fleet]\nvehicle_count = 1\n",
        Path::new("unit.toml"),
    )
    .expect("a scenario");
    let mut report = Report::new(
        &scenario,
        Path::new("unit.toml"),
        "sim",
        String::new(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600),
    );
    let outcome = outcome(10, "veh-a");
    outcome.fill_report(&mut report, 15, 2.0);
    let verify = &report.verify;
    assert_eq!(
        (
            verify.expected,
            verify.found,
            verify.lost,
            verify.corrupt,
            verify.unexpected
        ),
        (10, 11, 12, 13, 14)
    );
    // 15 rows written for 10 events sent: at least 5 redeliveries.
    assert_eq!(verify.duplicates_written, 5);
    assert_eq!(verify.discrepancies.len(), 1);
    assert_eq!(report.latency.e2e_ms.count, 1);
    let per_second: Vec<u64> = report
        .latency
        .e2e_intervals
        .iter()
        .map(|interval| interval.count)
        .collect();
    assert_eq!(per_second, [0, 1]);
    assert!(!report.latency.e2e_percentiles.is_empty());
    assert_eq!(report.throughput.written, [0, 10]);
    assert_eq!(report.throughput.written_per_s, 5.0);
    assert_eq!(report.throughput.peak_written_per_s, 10);
    // Fewer rows reported than events sent: no redelivery can be claimed.
    outcome.fill_report(&mut report, 3, 2.0);
    assert_eq!(report.verify.duplicates_written, 0);
}

#[test]
fn the_run_clock_is_the_merges_time_base() {
    let clock = RunClock::now(1_000_000, 2.0);
    // At speed-up 2, an event 3 s into the scenario is meant to be sent 1.5 s into the run.
    assert_eq!(Timeline::intended_offset_us(&clock, 1_003_000), 1_500_000);
    assert_eq!(
        Timeline::intended_offset_us(&clock, 1_003_000),
        clock.intended_offset_us(1_003_000)
    );
}
