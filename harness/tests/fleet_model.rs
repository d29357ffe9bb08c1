//! Physical properties of the fleet model, checked as property tests over many seeds.

use proptest::prelude::*;
use roadtest::fleet::FleetPlan;
use roadtest::fleet::motion::great_circle_distance_m;
use roadtest::scenario::{MotionModel, Region};
use roadtest::wire::Event;

fn plan(seed: u64, model: MotionModel, interval_ms: f64, jitter_fraction: f64) -> FleetPlan {
    FleetPlan {
        seed,
        vehicle_count: 50,
        model,
        region: Region::default(),
        start_ms: 1_767_225_600_000,
        end_ms: 1_767_225_600_000 + 1_800_000,
        interval_ms,
        jitter_fraction,
        ramp: None,
        speeding_share: 0.0,
    }
}

fn models() -> impl Strategy<Value = MotionModel> {
    prop_oneof![
        Just(MotionModel::Urban),
        Just(MotionModel::Highway),
        Just(MotionModel::Mixed)
    ]
}

/// Checks every pair of consecutive samples of one vehicle.
fn check_vehicle(plan: &FleetPlan, events: &[Event]) -> Result<(), TestCaseError> {
    let region = plan.region;
    prop_assert!(!events.is_empty());
    prop_assert_eq!(events[0].seq, 0);
    for event in events {
        prop_assert!(
            event.latitude >= region.latitude_min && event.latitude <= region.latitude_max
        );
        prop_assert!(
            event.longitude >= region.longitude_min && event.longitude <= region.longitude_max
        );
        prop_assert!((-30.0..=50.0).contains(&event.temperature_c));
        prop_assert!((5.0..=100.0).contains(&event.humidity_pct));
        prop_assert!(
            (0.0..=140.0).contains(&event.speed_kmh),
            "speed {}",
            event.speed_kmh
        );
        prop_assert!(event.timestamp_ms >= plan.start_ms && event.timestamp_ms < plan.end_ms);
    }
    for pair in events.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        prop_assert_eq!(after.seq, before.seq + 1);
        prop_assert!(
            after.timestamp_ms > before.timestamp_ms,
            "timestamps must strictly increase"
        );
        let dt_s = (after.timestamp_ms - before.timestamp_ms) as f64 / 1000.0;
        let jitter_ms = plan.interval_ms * plan.jitter_fraction * (1.0 + plan.jitter_fraction);
        prop_assert!((dt_s * 1000.0 - plan.interval_ms).abs() <= jitter_ms + 1.0);
        // The reported speed is the great-circle distance over the time between samples (2%).
        let measured_kmh = great_circle_distance_m(
            before.latitude,
            before.longitude,
            after.latitude,
            after.longitude,
        ) / dt_s
            * 3.6;
        prop_assert!(
            (measured_kmh - after.speed_kmh).abs() <= 0.02 * after.speed_kmh + 1e-9,
            "vehicle {} seq {}: reported {} km/h, moved {} km/h",
            after.vehicle_index,
            after.seq,
            after.speed_kmh,
            measured_kmh
        );
        // Smooth sensors: bounded change per sample.
        let root_dt = dt_s.sqrt();
        prop_assert!(
            (after.temperature_c - before.temperature_c).abs() <= 0.1 * root_dt + 0.01 * dt_s
        );
        prop_assert!(
            (after.humidity_pct - before.humidity_pct).abs() <= 0.3 * root_dt + 0.01 * dt_s
        );
    }
    // Acceleration limits: consecutive average speeds differ by at most a_max over the span.
    for triple in events.windows(3) {
        let span_s = (triple[2].timestamp_ms - triple[0].timestamp_ms) as f64 / 1000.0;
        let change_mps = (triple[2].speed_kmh - triple[1].speed_kmh).abs() / 3.6;
        prop_assert!(
            change_mps <= 3.5 * span_s / 2.0 + 1e-9,
            "speed jumped {change_mps} m/s"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn vehicles_move_like_vehicles(
        seed in any::<u64>(),
        model in models(),
        interval_ms in prop_oneof![Just(100.0), Just(1000.0), Just(5000.0)],
        jitter_fraction in 0.0..0.2f64,
        vehicle in 0u32..50,
    ) {
        let plan = plan(seed, model, interval_ms, jitter_fraction);
        let events: Vec<Event> = plan.vehicle(vehicle).collect();
        check_vehicle(&plan, &events)?;
    }
}

#[test]
fn a_city_fleet_stops_turns_and_spreads_out() {
    let plan = plan(3, MotionModel::Urban, 1000.0, 0.02);
    let mut stopped_samples = 0;
    let mut turned = 0;
    for vehicle in 0..plan.vehicle_count {
        let events: Vec<Event> = plan.vehicle(vehicle).collect();
        stopped_samples += events.iter().filter(|e| e.speed_kmh == 0.0).count();
        let bearing =
            |a: &Event, b: &Event| (b.longitude - a.longitude).atan2(b.latitude - a.latitude);
        let moving: Vec<&Event> = events.iter().filter(|e| e.speed_kmh > 5.0).collect();
        if let (Some(first), Some(last)) = (moving.windows(2).next(), moving.windows(2).last())
            && (bearing(first[0], first[1]) - bearing(last[0], last[1])).abs() > 0.3
        {
            turned += 1;
        }
    }
    assert!(
        stopped_samples > 100,
        "only {stopped_samples} stopped samples in 50 vehicle-hours/2"
    );
    assert!(turned > 25, "only {turned} of 50 vehicles changed heading");
    // Vehicles start spread over the region, not in one spot.
    let starts: Vec<Event> = (0..plan.vehicle_count)
        .filter_map(|v| plan.vehicle(v).next())
        .collect();
    let latitude_spread = starts.iter().map(|e| e.latitude).fold(f64::MIN, f64::max)
        - starts.iter().map(|e| e.latitude).fold(f64::MAX, f64::min);
    assert!(
        latitude_spread > 0.1,
        "start latitudes spread {latitude_spread} degrees"
    );
}

#[test]
fn a_ramp_adds_vehicles_evenly() {
    let mut plan = plan(5, MotionModel::Urban, 1000.0, 0.0);
    plan.vehicle_count = 100;
    plan.ramp = Some((10, 900_000));
    let first_ms = |v: u32| {
        plan.vehicle(v)
            .next()
            .map(|e| e.timestamp_ms - plan.start_ms)
    };
    assert!(first_ms(9).unwrap() < 1000);
    let joined = first_ms(10).unwrap();
    assert!(
        (10_000..11_000).contains(&joined),
        "vehicle 10 joined at {joined} ms"
    );
    let last = first_ms(99).unwrap();
    assert!(
        (900_000..901_000).contains(&last),
        "vehicle 99 joined at {last} ms"
    );
}
