//! Tests of matching expected alerts with received ones.

use super::*;

/// Event time and wall time share their epoch here, the run starting 1,000 ms after scenario
/// time zero at speed-up 1.
fn wall_ms(at_ms: i64) -> i64 {
    at_ms + 1_000
}

fn expected(alert: &str, vehicle: &str, at_ms: i64) -> ExpectedAlert {
    ExpectedAlert {
        alert: alert.to_string(),
        vehicle_id: vehicle.to_string(),
        at_ms,
    }
}

fn received(alert: &str, vehicle: &str, received_at_ms: i64) -> ReceivedAlert {
    ReceivedAlert {
        alert: alert.to_string(),
        vehicle_id: vehicle.to_string(),
        reported_at_ms: None,
        received_at_ms,
    }
}

/// (expected, received, missed, spurious, duplicated).
fn counts(section: &AlertsSection) -> (u64, u64, u64, u64, u64) {
    (
        section.expected,
        section.received,
        section.missed,
        section.spurious,
        section.duplicated,
    )
}

#[test]
fn every_expected_alert_received_once_matches_with_its_latency() {
    let want = [
        expected("speeding", "veh-000001", 10_000),
        expected("speeding", "veh-000002", 12_000),
    ];
    // Received out of order: matching goes by arrival times, not by the order of posts.
    let got = [
        received("speeding", "veh-000002", 13_400),
        received("speeding", "veh-000001", 11_250),
    ];
    let section = match_alerts(&want, &got, wall_ms);
    assert_eq!(counts(&section), (2, 2, 0, 0, 0));
    assert_eq!(
        section.latency_ms,
        AlertLatency {
            p50: Some(250),
            p99: Some(400),
            max: Some(400)
        }
    );
    assert!(section.missed_examples.is_empty() && section.spurious_examples.is_empty());
    assert_eq!(section.malformed, 0);
}

#[test]
fn one_vehicle_firing_twice_needs_two_alerts() {
    let want = [
        expected("speeding", "veh-000001", 10_000),
        expected("speeding", "veh-000001", 40_000),
    ];
    // A slow pipeline: the first alert arrives after the second one was due; both still match,
    // in order.
    let slow = [
        received("speeding", "veh-000001", 45_000),
        received("speeding", "veh-000001", 46_000),
    ];
    let section = match_alerts(&want, &slow, wall_ms);
    assert_eq!(counts(&section), (2, 2, 0, 0, 0));
    assert_eq!(section.latency_ms.max, Some(34_000));
    assert_eq!(section.latency_ms.p50, Some(5_000));
    // Only one post: the second firing is missed.
    let once = [received("speeding", "veh-000001", 11_500)];
    let section = match_alerts(&want, &once, wall_ms);
    assert_eq!(counts(&section), (2, 1, 1, 0, 0));
    assert_eq!(section.missed_examples, [want[1].clone()]);
}

#[test]
fn a_second_identical_post_is_duplicated() {
    let want = [expected("speeding", "veh-000001", 10_000)];
    let twice = [
        received("speeding", "veh-000001", 11_500),
        received("speeding", "veh-000001", 11_500),
    ];
    let section = match_alerts(&want, &twice, wall_ms);
    assert_eq!(counts(&section), (1, 2, 0, 0, 1));
    assert_eq!(section.latency_ms.p99, Some(500));
    // A repeat between two firings of one vehicle is a duplicate of the first.
    let want = [
        expected("speeding", "veh-000001", 10_000),
        expected("speeding", "veh-000001", 40_000),
    ];
    let repeat = [
        received("speeding", "veh-000001", 11_500),
        received("speeding", "veh-000001", 20_000),
        received("speeding", "veh-000001", 41_200),
    ];
    let section = match_alerts(&want, &repeat, wall_ms);
    assert_eq!(counts(&section), (2, 3, 0, 0, 1));
    assert_eq!(section.latency_ms.max, Some(500));
}

#[test]
fn alerts_nobody_expects_or_that_come_too_early_are_spurious() {
    let want = [expected("speeding", "veh-000001", 10_000)];
    let got = [
        received("speeding", "veh-000009", 5_000), // never broke the rule
        received("cold", "veh-000001", 12_000),    // not that rule
        received("speeding", "veh-000001", 10_999), // before its completing event was sent
    ];
    let section = match_alerts(&want, &got, wall_ms);
    assert_eq!(counts(&section), (1, 3, 1, 3, 0));
    assert_eq!(
        section.spurious_examples,
        [got[0].clone(), got[2].clone(), got[1].clone()]
    );
    assert_eq!(section.missed_examples, [want[0].clone()]);
    assert_eq!(section.latency_ms, AlertLatency::default());
    // An alert at the very moment its event was due to be sent matches, with latency 0.
    let section = match_alerts(
        &want,
        &[received("speeding", "veh-000001", 11_000)],
        wall_ms,
    );
    assert_eq!(counts(&section), (1, 1, 0, 0, 0));
    assert_eq!(section.latency_ms.max, Some(0));
}

#[test]
fn examples_are_the_earliest_ten_and_the_section_serializes_with_its_keys() {
    let want: Vec<ExpectedAlert> = (0..25)
        .rev()
        .map(|vehicle| {
            expected(
                "speeding",
                &crate::wire::vehicle_id(vehicle),
                1_000 * i64::from(vehicle),
            )
        })
        .collect();
    let got: Vec<ReceivedAlert> = (100..115)
        .map(|vehicle| received("speeding", &crate::wire::vehicle_id(vehicle), 5_000))
        .collect();
    let section = match_alerts(&want, &got, wall_ms);
    assert_eq!(counts(&section), (25, 15, 25, 15, 0));
    assert_eq!(section.missed_examples.len(), EXAMPLES_MAX);
    assert_eq!(section.missed_examples[0].vehicle_id, "veh-000000");
    assert_eq!(section.missed_examples[9].at_ms, 9_000);
    assert_eq!(section.spurious_examples.len(), EXAMPLES_MAX);
    assert_eq!(section.spurious_examples[9].vehicle_id, "veh-000109");
    let json = serde_json::to_value(&section).expect("serializes");
    for key in [
        "expected",
        "received",
        "missed",
        "spurious",
        "duplicated",
        "malformed",
        "latency_ms",
        "missed_examples",
        "spurious_examples",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert_eq!(
        json["latency_ms"],
        serde_json::json!({"p50": null, "p99": null, "max": null})
    );
    let back: AlertsSection = serde_json::from_value(json).expect("reads back");
    assert_eq!(back, section);
}

#[test]
fn percentiles_are_nearest_rank() {
    let want: Vec<ExpectedAlert> = (0..100)
        .map(|vehicle| expected("a", &crate::wire::vehicle_id(vehicle), 0))
        .collect();
    let got: Vec<ReceivedAlert> = (0..100)
        .map(|vehicle| {
            received(
                "a",
                &crate::wire::vehicle_id(vehicle),
                1_000 + i64::from(vehicle) + 1,
            )
        })
        .collect();
    let latency = match_alerts(&want, &got, wall_ms).latency_ms;
    assert_eq!(
        latency,
        AlertLatency {
            p50: Some(50),
            p99: Some(99),
            max: Some(100)
        }
    );
}
