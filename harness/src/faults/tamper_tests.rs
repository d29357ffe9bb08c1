//! Unit tests of the tamper plan: seeded choice, smallest changes, validation.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;

const SCENARIO: &str = r#"
name = "unit"
seed = 42
duration_s = 20
[fleet]
vehicle_count = 10
rate_hz = 1.0
[[faults]]
action = "tamper"
service = "cassandra"
at_s = 15
kind = "change"
rows = 5
"#;

fn scenario(extra: &str) -> Result<Scenario, String> {
    let text = format!("{SCENARIO}{extra}");
    let scenario = Scenario::parse(&text, Path::new("unit.toml")).map_err(|e| e.to_string())?;
    scenario
        .validate(Path::new("unit.toml"))
        .map_err(|e| e.to_string())?;
    Ok(scenario)
}

fn candidates(fleet: &FleetPlan, vehicles: &[u32]) -> Vec<Candidate> {
    fleet
        .events_of(vehicles.iter().copied())
        .map(|event| Candidate {
            vehicle: event.vehicle_index,
            timestamp_ms: event.timestamp_ms,
            fields: RowFields::of_event(&event),
        })
        .collect()
}

fn draw(scenario: &Scenario, kind: TamperKind) -> Vec<(TamperOp, TamperRecord)> {
    let fleet = FleetPlan::from_scenario(scenario);
    let plan = TamperPlan {
        kind,
        ..plans(scenario)[0]
    };
    let mut draw = TamperDraw::new(scenario.seed, plan);
    let vehicles = draw.vehicles(fleet.vehicle_count);
    draw.choose(
        candidates(&fleet, &vehicles),
        &fleet,
        &vehicles,
        &BTreeSet::new(),
    )
}

#[test]
fn the_same_seed_chooses_the_same_rows_and_another_seed_others() {
    let scenario = scenario("").unwrap();
    for kind in [TamperKind::Change, TamperKind::Delete, TamperKind::Insert] {
        let first = draw(&scenario, kind);
        assert_eq!(first.len(), 5);
        assert_eq!(first, draw(&scenario, kind));
        assert_ne!(
            first,
            draw(&scenario.clone().with_seed(43), kind),
            "{kind:?}"
        );
    }
}

#[test]
fn changes_are_the_smallest_and_only_before_the_trigger() {
    let scenario = scenario("").unwrap();
    let fleet = FleetPlan::from_scenario(&scenario);
    let before_ms = plans(&scenario)[0].before_ms;
    assert_eq!(before_ms, fleet.start_ms + 15_000);
    let changes = draw(&scenario, TamperKind::Change);
    let keys: BTreeSet<_> = changes.iter().map(|(op, _)| op.key()).collect();
    assert_eq!(keys.len(), changes.len(), "distinct rows");
    let original = candidates(&fleet, &(0..fleet.vehicle_count).collect::<Vec<_>>());
    for (index, (op, record)) in changes.iter().enumerate() {
        let TamperOp::Write(row) = op else {
            panic!("a change writes")
        };
        assert!(row.timestamp_ms < before_ms);
        let old = original
            .iter()
            .find(|c| (c.vehicle, c.timestamp_ms) == op.key())
            .unwrap();
        let field = record.field.as_deref().unwrap();
        if index == 0 {
            assert!(!matches!(field, "seq" | "format_version"), "{field}");
        }
        assert_eq!(nudge(old.fields, field, false), row.fields);
        assert_ne!(old.fields, row.fields);
    }
    let ulp = f64::from_bits(1.5f64.to_bits() + 1);
    assert_eq!(ulp - 1.5, f64::EPSILON, "one ulp above 1.5");
}

#[test]
fn inserts_are_rows_nobody_sent_and_one_is_outside_the_fleet() {
    let scenario = scenario("").unwrap();
    let fleet = FleetPlan::from_scenario(&scenario);
    let inserts = draw(&scenario, TamperKind::Insert);
    let strangers = inserts
        .iter()
        .filter(|(op, _)| op.key().0 == fleet.vehicle_count)
        .count();
    assert_eq!(strangers, 1);
    for (op, record) in &inserts {
        let (vehicle, timestamp_ms) = op.key();
        if vehicle < fleet.vehicle_count {
            assert!(timestamp_ms < fleet.start_ms, "{record:?}");
        }
        assert_eq!(record.kind, TamperKind::Insert);
    }
}

#[test]
fn rows_touched_before_are_never_chosen_again() {
    let scenario = scenario("").unwrap();
    let fleet = FleetPlan::from_scenario(&scenario);
    let plan = TamperPlan {
        rows: 1000,
        ..plans(&scenario)[0]
    };
    let mut first = TamperDraw::new(1, plan);
    let vehicles = first.vehicles(fleet.vehicle_count);
    let all = candidates(&fleet, &vehicles);
    let touched: BTreeSet<_> = all
        .iter()
        .take(20)
        .map(|c| (c.vehicle, c.timestamp_ms))
        .collect();
    let before = all
        .iter()
        .filter(|c| c.timestamp_ms < plan.before_ms)
        .count();
    assert!(
        before >= 140,
        "about 10 vehicles x 15 events before second 15"
    );
    let chosen = first.choose(all, &fleet, &vehicles, &touched);
    assert!(chosen.iter().all(|(op, _)| !touched.contains(&op.key())));
    assert_eq!(chosen.len(), before - touched.len(), "all the others");
}

#[test]
fn bad_tamper_entries_are_refused_naming_the_key() {
    let replace = |from: &str, to: &str| {
        let text = SCENARIO.replace(from, to);
        let scenario = Scenario::parse(&text, Path::new("unit.toml")).map_err(|e| e.to_string())?;
        scenario
            .validate(Path::new("unit.toml"))
            .map_err(|e| e.to_string())
    };
    let cases = [
        (
            "service = \"cassandra\"",
            "service = \"broker\"",
            "faults[0].service",
        ),
        ("rows = 5", "rows = 0", "faults[0].rows"),
        ("rows = 5", "rows = 1001", "faults[0].rows"),
        ("rows = 5", "", "faults[0].rows"),
        ("kind = \"change\"", "", "faults[0].kind"),
        (
            "at_s = 15",
            "random = { count = 1, between_s = [1.0, 2.0] }",
            "faults[0].random",
        ),
    ];
    for (from, to, key) in cases {
        let error = replace(from, to).unwrap_err();
        assert!(error.contains(key), "{error}");
    }
    let kill_with_rows =
        "[[faults]]\naction = \"kill\"\nservice = \"consumer\"\nat_s = 1\nrows = 3\n";
    let error = scenario(kill_with_rows).unwrap_err();
    assert!(error.contains("faults[1].rows"), "{error}");
    let after = "[[faults]]\naction = \"tamper\"\nservice = \"cassandra\"\nafter_events = 30\nkind = \"delete\"\nrows = 2\n";
    let scenario = scenario(after).unwrap();
    let planned = plans(&scenario);
    assert_eq!(planned[1].kind, TamperKind::Delete);
    let thirtieth = FleetPlan::from_scenario(&scenario)
        .events()
        .nth(29)
        .unwrap();
    assert_eq!(planned[1].before_ms, thirtieth.timestamp_ms + 1);
}

#[test]
fn a_row_written_at_the_trigger_itself_is_not_a_candidate() {
    let scenario = scenario("").unwrap();
    let fleet = FleetPlan::from_scenario(&scenario);
    let plan = TamperPlan {
        kind: TamperKind::Delete,
        rows: 3,
        ..plans(&scenario)[0]
    };
    let row = |timestamp_ms: i64| Candidate {
        vehicle: 0,
        timestamp_ms,
        fields: RowFields::of_event(&fleet.vehicle(0).next().expect("an event")),
    };
    // Exactly at the trigger, and one millisecond before it.
    let rows = vec![row(plan.before_ms), row(plan.before_ms - 1)];
    let chosen = TamperDraw::new(scenario.seed, plan).choose(rows, &fleet, &[0], &BTreeSet::new());
    let keys: Vec<_> = chosen.iter().map(|(op, _)| op.key()).collect();
    assert_eq!(keys, [(0, plan.before_ms - 1)]);
}

#[test]
fn each_field_is_nudged_alone_by_the_smallest_step_upwards() {
    let scenario = scenario("").unwrap();
    let fleet = FleetPlan::from_scenario(&scenario);
    let base = RowFields::of_event(&fleet.vehicle(0).next().expect("an event"));
    let up = |value: f64| f64::from_bits(value.to_bits() + 1);
    for name in crate::scenario::VALUE_FIELDS {
        let nudged = nudge(base, name, false);
        let mut expected = base;
        match name {
            "seq" => expected.seq += 1,
            "latitude" => expected.latitude = up(base.latitude),
            "longitude" => expected.longitude = up(base.longitude),
            "speed" => expected.speed = up(base.speed),
            "temperature" => expected.temperature = up(base.temperature),
            "humidity" => expected.humidity = up(base.humidity),
            _ => expected.format_version += 1,
        }
        // Bit for bit: every other field as it was.
        assert_eq!(format!("{nudged:?}"), format!("{expected:?}"), "{name}");
    }
}

#[test]
fn a_float_column_is_nudged_by_one_single_precision_step() {
    for value in [52.520_008_123_456_78, -13.404_954_1, 0.0, -0.0, 1e-3] {
        let fields = RowFields {
            humidity: value,
            ..RowFields::from_columns(1, [0.0; 5], 1)
        };
        let stored = f64::from(value as f32);
        let nudged = nudge(fields, "humidity", true).humidity;
        // What a float column holds after the change: exactly the nudged value, one step away
        // from what it held, so verification (which rounds the sent value the same way) sees it.
        assert_eq!(
            f64::from(nudged as f32).to_bits(),
            nudged.to_bits(),
            "{value}"
        );
        assert_ne!(
            (nudged as f32).to_bits(),
            stored.to_bits() as u32,
            "{value}"
        );
        assert_eq!(
            (nudged as f32).to_bits(),
            (value as f32).to_bits() + 1,
            "{value}"
        );
    }
}

/// `rows` changes of the unit scenario's candidates, comparing what `settings` sends.
fn changes_sending(
    settings: &crate::scenario::RecordSettings,
    rows: u32,
) -> Vec<(TamperOp, TamperRecord)> {
    let scenario = scenario("").unwrap();
    let fleet = FleetPlan::from_scenario(&scenario);
    let plan = TamperPlan {
        rows,
        ..plans(&scenario)[0]
    };
    let checked = Checked::of(&crate::wire::RecordFormat::new(settings));
    let mut draw = TamperDraw::new(scenario.seed, plan).changing(checked);
    let vehicles = draw.vehicles(fleet.vehicle_count);
    let rows = candidates(&fleet, &vehicles);
    draw.choose(rows, &fleet, &vehicles, &BTreeSet::new())
}

#[test]
fn a_change_alters_only_fields_the_table_holds_and_first_a_double() {
    let settings = crate::scenario::RecordSettings {
        format_version: false,
        latitude: String::new(),
        ..crate::scenario::RecordSettings::default()
    };
    let changes = changes_sending(&settings, 200);
    let fields: BTreeSet<&str> = changes
        .iter()
        .filter_map(|(_, record)| record.field.as_deref())
        .collect();
    let expected = ["humidity", "longitude", "seq", "speed", "temperature"];
    assert_eq!(
        fields,
        BTreeSet::from(expected),
        "each compared field, no other"
    );
    let first = changes[0].1.field.as_deref();
    assert!(matches!(
        first,
        Some("humidity" | "longitude" | "speed" | "temperature")
    ));
}

#[test]
fn a_change_with_no_double_compared_alters_an_integer() {
    let settings = crate::scenario::RecordSettings {
        latitude: String::new(),
        longitude: String::new(),
        speed: String::new(),
        temperature: String::new(),
        humidity: String::new(),
        ..crate::scenario::RecordSettings::default()
    };
    let changes = changes_sending(&settings, 5);
    assert_eq!(changes.len(), 5);
    for (_, record) in changes {
        let field = record.field.as_deref();
        assert!(matches!(field, Some("seq" | "format_version")), "{field:?}");
    }
}

#[test]
fn a_partial_shuffle_draws_distinct_items_from_the_whole_list() {
    let mut rng = rng_for(42, "tamper", 0);
    let mut items: Vec<u32> = (0..100).collect();
    partial_shuffle(&mut rng, &mut items, 10);
    let mut drawn = items[..10].to_vec();
    assert_ne!(
        drawn,
        (0..10).collect::<Vec<_>>(),
        "not simply the first ten"
    );
    assert!(
        drawn.iter().any(|&item| item >= 50),
        "from the whole list: {drawn:?}"
    );
    drawn.sort_unstable();
    drawn.dedup();
    assert_eq!(drawn.len(), 10, "distinct");
    items.sort_unstable();
    assert_eq!(items, (0..100).collect::<Vec<_>>(), "a permutation");
}

#[test]
fn a_quarter_of_the_inserts_are_strangers_within_the_run_the_rest_within_the_day_before() {
    let scenario = scenario("").unwrap();
    let fleet = FleetPlan::from_scenario(&scenario);
    let plan = TamperPlan {
        kind: TamperKind::Insert,
        rows: 8,
        ..plans(&scenario)[0]
    };
    let mut draw = TamperDraw::new(scenario.seed, plan);
    let vehicles = draw.vehicles(fleet.vehicle_count);
    let inserts = draw.choose(
        candidates(&fleet, &vehicles),
        &fleet,
        &vehicles,
        &BTreeSet::new(),
    );
    assert_eq!(inserts.len(), 8);
    let (strangers, known): (Vec<_>, Vec<_>) = inserts
        .iter()
        .map(|(op, _)| op.key())
        .partition(|(vehicle, _)| *vehicle == fleet.vehicle_count);
    assert_eq!(strangers.len(), 2, "8 / 4");
    for (_, timestamp_ms) in &strangers {
        assert!(
            (fleet.start_ms..fleet.end_ms).contains(timestamp_ms),
            "{timestamp_ms}"
        );
    }
    for (_, timestamp_ms) in &known {
        let day_before = fleet.start_ms - 86_400_000..fleet.start_ms;
        assert!(day_before.contains(timestamp_ms), "{timestamp_ms}");
    }
}
