//! The same seed gives byte-identical events: a golden checksum, and invariance under thread count and vehicle subset.

use std::path::PathBuf;
use std::process::Command;

use roadtest::Scenario;
use roadtest::fleet::FleetPlan;
use roadtest::wire::Event;
use sha2::{Digest, Sha256};

/// SHA-256 of the first 100,000 events of scenarios/golden.toml (seed 7) as NDJSON.
/// If a change to the fleet model or wire format moves it on purpose, update it and say so in the commit.
const GOLDEN_SHA256: &str = "32ac6260b2bf2f37c77533f5899152017bc01a2a60f6c1623cd62292ff9b6dcf";
const GOLDEN_EVENTS: usize = 100_000;

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

fn golden_plan() -> FleetPlan {
    let scenario = Scenario::load(scenario_path("golden.toml")).expect("golden scenario loads");
    FleetPlan::from_scenario(&scenario)
}

fn ndjson<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    for event in events {
        event
            .write_line(&mut out, &mut scratch)
            .expect("write to memory");
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn golden_checksum_of_the_first_100000_events() {
    let events: Vec<Event> = golden_plan().events().take(GOLDEN_EVENTS).collect();
    assert_eq!(events.len(), GOLDEN_EVENTS);
    assert_eq!(
        sha256_hex(&ndjson(&events)),
        GOLDEN_SHA256,
        "the event stream changed"
    );
}

#[test]
fn the_cli_writes_the_same_bytes() {
    let output = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .arg("events")
        .arg(scenario_path("golden.toml"))
        .args(["--seed", "7", "--limit", &GOLDEN_EVENTS.to_string()])
        .output()
        .expect("roadtest runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(sha256_hex(&output.stdout), GOLDEN_SHA256);
}

/// Generates every vehicle's stream on `threads` threads, then orders them as the merge does.
fn generated_on_threads(plan: &FleetPlan, threads: u32) -> Vec<Event> {
    let mut events: Vec<Event> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                scope.spawn(move || {
                    (worker..plan.vehicle_count)
                        .step_by(threads as usize)
                        .flat_map(|vehicle| plan.vehicle(vehicle))
                        .collect::<Vec<Event>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("worker finished"))
            .collect()
    });
    events.sort_by_key(|event| (event.timestamp_ms, event.vehicle_index));
    events
}

#[test]
fn thread_count_does_not_change_a_byte() {
    let mut plan = golden_plan();
    plan.end_ms = plan.start_ms + 120_000;
    let merged: Vec<Event> = plan.events().collect();
    let expected = ndjson(&merged);
    for threads in [1, 2, 3, 8] {
        assert_eq!(
            ndjson(&generated_on_threads(&plan, threads)),
            expected,
            "{threads} threads"
        );
    }
}

#[test]
fn a_subset_of_vehicles_gets_exactly_their_events() {
    let mut plan = golden_plan();
    plan.end_ms = plan.start_ms + 120_000;
    let subset = [3u32, 17, 200, 399];
    let from_full: Vec<Event> = plan
        .events()
        .filter(|event| subset.contains(&event.vehicle_index))
        .collect();
    let from_subset: Vec<Event> = plan.events_of(subset).collect();
    assert!(!from_subset.is_empty());
    assert_eq!(ndjson(&from_subset), ndjson(&from_full));
    // And in any order of asking.
    let reversed: Vec<Event> = plan.events_of(subset.iter().rev().copied()).collect();
    assert_eq!(ndjson(&reversed), ndjson(&from_full));
}

#[test]
fn different_seeds_give_different_fleets() {
    let plan = golden_plan();
    let mut other = plan;
    other.seed += 1;
    let a: Vec<Event> = plan.events().take(1000).collect();
    let b: Vec<Event> = other.events().take(1000).collect();
    let same = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.latitude == y.latitude || x.temperature_c == y.temperature_c)
        .count();
    assert_eq!(
        same, 0,
        "{same} of 1000 events share a position or temperature"
    );
}
