//! Tests of the evaluator and the expected alerts.

use std::path::Path;

use super::*;

fn rule(name: &str, field: &str, above: Option<f64>, below: Option<f64>, for_s: f64) -> AlertRule {
    AlertRule {
        name: name.to_string(),
        field: field.to_string(),
        above,
        below,
        for_s,
    }
}

fn speeding(for_s: f64) -> AlertRule {
    rule("speeding", "speed", Some(130.0), None, for_s)
}

fn event(vehicle_index: u32, timestamp_ms: i64, speed_kmh: f64) -> Event {
    Event {
        vehicle_index,
        seq: 0,
        timestamp_ms,
        latitude: 52.5,
        longitude: 13.4,
        speed_kmh,
        temperature_c: 20.0,
        humidity_pct: 50.0,
    }
}

/// What `evaluator` fires over `events`, as (vehicle index, at_ms).
fn fired(evaluator: &mut Evaluator, events: &[Event]) -> Vec<(String, i64)> {
    events
        .iter()
        .flat_map(|event| evaluator.observe(event))
        .map(|fired| (fired.vehicle_id, fired.at_ms))
        .collect()
}

fn veh(index: u32) -> String {
    crate::wire::vehicle_id(index)
}

#[test]
fn fires_once_when_the_condition_has_held_for_s_and_rearms_on_an_event_that_does_not_hold() {
    let mut evaluator = Evaluator::new(&[speeding(10.0)]).expect("valid");
    let events = [
        event(0, 1_000, 131.0), // starts holding
        event(0, 6_000, 140.0),
        event(0, 10_999, 135.0), // 9.999 s: not yet
        event(0, 11_000, 135.0), // 10 s: fires
        event(0, 30_000, 150.0), // still holding: fired already
        event(0, 31_000, 130.0), // not above 130: re-arms
        event(0, 32_000, 131.0),
        event(0, 41_999, 131.0),
        event(0, 42_000, 131.0), // fires again
    ];
    assert_eq!(
        fired(&mut evaluator, &events),
        [(veh(0), 11_000), (veh(0), 42_000)]
    );
}

#[test]
fn for_s_zero_fires_on_the_first_holding_event() {
    let mut evaluator =
        Evaluator::new(&[rule("cold", "temperature", None, Some(0.0), 0.0)]).expect("valid");
    let mut cold = event(3, 5_000, 50.0);
    cold.temperature_c = -1.0;
    let mut colder = event(3, 6_000, 50.0);
    colder.temperature_c = -2.0;
    let fired: Vec<Fired> = [event(3, 4_000, 50.0), cold, colder]
        .iter()
        .flat_map(|event| evaluator.observe(event))
        .collect();
    assert_eq!(
        fired,
        [Fired {
            alert: "cold".to_string(),
            vehicle_id: "veh-000003".to_string(),
            at_ms: 5_000,
        }]
    );
}

#[test]
fn a_gap_between_events_counts_only_by_their_timestamps() {
    let mut evaluator = Evaluator::new(&[speeding(10.0)]).expect("valid");
    // Two holding events 20 s apart: held from the first to the second.
    let events = [event(0, 0, 140.0), event(0, 20_000, 140.0)];
    assert_eq!(fired(&mut evaluator, &events), [(veh(0), 20_000)]);
}

#[test]
fn redeliveries_are_ignored_and_fire_nothing_twice() {
    let events = [
        event(0, 0, 140.0),
        event(0, 5_000, 140.0),
        event(0, 10_000, 140.0),
        event(0, 11_000, 120.0),
    ];
    let mut evaluator = Evaluator::new(&[speeding(10.0)]).expect("valid");
    let mut redelivered = Vec::new();
    for (index, event) in events.iter().enumerate() {
        redelivered.push(*event);
        // After each event, everything up to it again, as a consumer restarting from an older
        // offset sees it.
        redelivered.extend_from_slice(&events[..=index]);
    }
    assert_eq!(fired(&mut evaluator, &redelivered), [(veh(0), 10_000)]);
    // A redelivered event that would not hold does not re-arm either.
    let mut evaluator = Evaluator::new(&[speeding(10.0)]).expect("valid");
    let again = [
        event(0, 0, 120.0),
        event(0, 1_000, 140.0),
        event(0, 0, 120.0), // redelivery of an older event that does not hold
        event(0, 11_000, 140.0),
    ];
    assert_eq!(fired(&mut evaluator, &again), [(veh(0), 11_000)]);
}

#[test]
fn vehicles_and_rules_keep_their_own_state() {
    let rules = [
        speeding(2.0),
        rule("crawling", "speed", None, Some(10.0), 0.0),
    ];
    let mut evaluator = Evaluator::new(&rules).expect("valid");
    let events = [
        event(0, 0, 140.0),
        event(1, 500, 5.0),
        event(1, 1_000, 140.0),
        event(0, 1_000, 140.0),
        event(1, 2_500, 140.0),
        event(0, 2_000, 140.0),
        event(1, 3_000, 140.0),
    ];
    let fired: Vec<(String, String, i64)> = events
        .iter()
        .flat_map(|event| evaluator.observe(event))
        .map(|fired| (fired.alert, fired.vehicle_id, fired.at_ms))
        .collect();
    assert_eq!(
        fired,
        [
            ("crawling".to_string(), veh(1), 500),
            ("speeding".to_string(), veh(0), 2_000),
            ("speeding".to_string(), veh(1), 3_000),
        ]
    );
}

#[test]
fn a_decoded_record_is_evaluated_as_its_event() {
    let sent = event(7, 1_000, 140.0);
    let (record, index) = Record::decode(&sent.to_json()).expect("decodes");
    let mut from_record = Evaluator::new(&[speeding(0.0)]).expect("valid");
    let mut from_event = Evaluator::new(&[speeding(0.0)]).expect("valid");
    let fired = from_record.observe_record(&record, index);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired, from_event.observe(&sent));
    assert!(
        from_record.observe_record(&record, index).is_empty(),
        "redelivered"
    );
}

#[test]
fn an_invalid_rule_is_refused() {
    let error = Evaluator::new(&[rule("x", "speed", None, None, 1.0)]).expect_err("refused");
    assert_eq!((error.rule.as_str(), error.key), ("x", "above"));
}

fn scenario_file(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

fn with_alerts(alerts: &str) -> Scenario {
    let text = format!(
        "name = \"alerts\"\nseed = 5\nduration_s = 60\n[fleet]\nvehicle_count = 60\nrate_hz = 4.0\n\
         motion = \"mixed\"\nspeeding_share = 0.5\n{alerts}"
    );
    let file = Path::new("alerts.toml");
    let scenario = Scenario::parse(&text, file).expect("parses");
    scenario.validate(file).expect("valid");
    scenario
}

#[test]
fn the_expected_alerts_are_what_the_evaluator_fires_on_the_producers_stream() {
    let scenario = with_alerts(
        "[[alerts]]\nname = \"speeding\"\nfield = \"speed\"\nabove = 130.0\nfor_s = 10\n\
         [[alerts]]\nname = \"fast\"\nfield = \"speed\"\nabove = 100.0\nfor_s = 0\n",
    );
    let expected = expected_alerts(&scenario).expect("valid rules");
    // The producer's order: all vehicles merged by timestamp, each event sent twice.
    let mut evaluator = Evaluator::new(&scenario.alerts).expect("valid rules");
    let mut streamed = Vec::new();
    for event in FleetPlan::from_scenario(&scenario).events() {
        streamed.extend(evaluator.observe(&event));
        assert!(evaluator.observe(&event).is_empty());
    }
    streamed.sort_by(|a, b| {
        (a.at_ms, &a.vehicle_id, &a.alert).cmp(&(b.at_ms, &b.vehicle_id, &b.alert))
    });
    assert_eq!(expected, streamed);
    let speeding = expected
        .iter()
        .filter(|alert| alert.alert == "speeding")
        .count();
    assert!((3..=30).contains(&speeding), "{speeding} speeding alerts");
    assert!(expected.len() > speeding, "the 100 km/h rule fires too");
    assert!(expected.is_sorted_by_key(|alert| alert.at_ms));
}

#[test]
fn without_speeding_no_vehicle_breaks_130_kmh_and_no_rules_expect_nothing() {
    let mut scenario = with_alerts(
        "[[alerts]]\nname = \"speeding\"\nfield = \"speed\"\nabove = 130.0\nfor_s = 0\n",
    );
    scenario.fleet.speeding_share = 0.0;
    assert_eq!(expected_alerts(&scenario).expect("valid"), []);
    scenario.fleet.speeding_share = 0.5;
    assert!(!expected_alerts(&scenario).expect("valid").is_empty());
    scenario.alerts.clear();
    assert_eq!(expected_alerts(&scenario).expect("valid"), []);
}

#[test]
fn alerts_ci_expects_a_handful_of_speeding_alerts() {
    let scenario = scenario_file("alerts-ci.toml");
    let expected = expected_alerts(&scenario).expect("valid rules");
    println!(
        "alerts-ci, seed {}: {} alerts expected, vehicles {:?}",
        scenario.seed,
        expected.len(),
        expected
            .iter()
            .map(|alert| format!(
                "{} at +{} ms",
                alert.vehicle_id,
                alert.at_ms - scenario.start_timestamp_ms
            ))
            .collect::<Vec<_>>()
    );
    assert!((3..=20).contains(&expected.len()), "{}", expected.len());
    // Another seed expects other alerts: the seed decides them.
    let other = expected_alerts(&scenario.clone().with_seed(scenario.seed + 1)).expect("valid");
    assert_ne!(expected, other);
}
