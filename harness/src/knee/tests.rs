//! The knee search on the simulation with a database of known capacity: the knee it finds is the truth within 10%, the same every time; and the scenario of a step.

use std::path::{Path, PathBuf};

use super::*;

fn smoke() -> (Scenario, PathBuf) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml");
    let scenario = Scenario::load(&path).expect("smoke.toml loads");
    (scenario, path)
}

fn settings() -> KneeSettings {
    KneeSettings {
        p99_ms: 250.0,
        bounds: SearchBounds {
            min_rate: 250.0,
            max_rate: 64_000.0,
            resolution: KneeSettings::RESOLUTION_DEFAULT,
            max_steps: KneeSettings::MAX_STEPS_DEFAULT,
        },
        settle_s: 5,
        hold_s: 10,
    }
}

/// A knee search on the sim whose database stores `capacity` rows/s, in a folder of its own.
fn search(capacity: f64, name: &str) -> KneeReport {
    let (scenario, path) = smoke();
    let latencies = SimLatencies {
        database_rows_per_s: Some(capacity),
        ..SimLatencies::default()
    };
    let mut runner = SimSteps {
        scenario_path: path,
        latencies,
    };
    let out = std::env::temp_dir().join(format!("roadtest-knee-{name}-{}", std::process::id()));
    let report = find_knee(&scenario, &settings(), &mut runner, &out, |_| {}).expect("searches");
    assert!(out.join(KNEE_FILE_NAME).exists() && out.join(KNEE_CHART_FILE_NAME).exists());
    let _ = std::fs::remove_dir_all(&out);
    report
}

#[test]
fn the_knee_found_on_the_simulation_is_its_databases_capacity_within_ten_percent() {
    let capacity = 2_000.0;
    let report = search(capacity, "capacity");
    let knee = report.knee_events_per_s.expect("a rate was sustained");
    assert!(
        (knee - capacity).abs() <= 0.10 * capacity,
        "knee {knee} against a capacity of {capacity}: {:#?}",
        report.steps
    );
    let KneeOutcome::Knee { above, .. } = report.outcome else {
        panic!("{:?}", report.outcome);
    };
    assert!(
        above > capacity,
        "the first rate not sustained is above capacity: {above}"
    );
    // Doubling from 250/s crossed the capacity at 4,000/s, then bisection narrowed it.
    let rates: Vec<f64> = report
        .steps
        .iter()
        .map(|s| s.figures.rate_events_per_s)
        .collect();
    assert_eq!(&rates[..5], [250.0, 500.0, 1_000.0, 2_000.0, 4_000.0]);
    for step in &report.steps {
        let rate = step.figures.rate_events_per_s;
        assert_eq!(step.figures.sustained, rate <= knee, "{step:?}");
    }
    let overloaded = &report.steps[4].figures;
    assert!(
        overloaded.written_per_s <= capacity * 1.01,
        "{overloaded:?}"
    );
    assert!(overloaded.lag_slope_per_s > 1_500.0, "{overloaded:?}");
}

#[test]
fn the_same_seed_and_capacity_give_the_same_search_step_for_step() {
    assert_eq!(search(1_500.0, "again-1"), search(1_500.0, "again-2"));
}

#[test]
fn a_step_is_the_scenario_open_loop_at_its_rate_with_no_ramp_and_no_faults() {
    let (scenario, path) = smoke();
    let settings = settings();
    let step = step_scenario(&scenario, 1_000.0, &settings);
    assert_eq!(step.fleet.vehicle_count, 20);
    assert_eq!(step.fleet.rate_hz, Some(50.0));
    assert_eq!(step.fleet.sample_interval_ms, None);
    assert_eq!(step.duration_s, 15);
    assert!(step.faults.is_empty() && step.fleet.ramp.is_none());
    step.validate(&path).expect("a step is a valid scenario");
    // Past 100 samples/s per vehicle, vehicles are added.
    let fast = step_scenario(&scenario, 10_000.0, &settings);
    assert_eq!(fast.fleet.vehicle_count, 100);
    assert_eq!(fast.fleet.rate_hz, Some(100.0));
    fast.validate(&path).expect("valid");
    let events =
        crate::fleet::FleetPlan::from_scenario(&fast).expected_events_by(fast.duration_ms());
    assert!(
        (events as f64 - 150_000.0).abs() < 150_000.0 * 0.03,
        "{events}"
    );
}
