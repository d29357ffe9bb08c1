//! Benchmarks of the fleet model and the wire encoding: events generated and encoded per second on one core.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roadtest::fleet::FleetPlan;
use roadtest::scenario::{MotionModel, Region};
use std::hint::black_box;

const EVENTS: u64 = 100_000;

fn plan(model: MotionModel) -> FleetPlan {
    FleetPlan {
        seed: 42,
        vehicle_count: 1_000,
        model,
        region: Region::default(),
        start_ms: 1_767_225_600_000,
        end_ms: 1_767_225_600_000 + 86_400_000,
        interval_ms: 1_000.0,
        jitter_fraction: 0.02,
        ramp: None,
        speeding_share: 0.0,
    }
}

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(EVENTS));
    for (name, model) in [
        ("urban", MotionModel::Urban),
        ("highway", MotionModel::Highway),
    ] {
        let plan = plan(model);
        // One vehicle's stream: the model's own cost per event.
        group.bench_function(format!("one_vehicle_{name}"), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for event in plan.vehicle(7).take(EVENTS as usize) {
                    sum += event.latitude;
                }
                black_box(sum)
            })
        });
    }
    // The whole fleet merged into emission-time order, as `roadtest events` and the producer use it.
    let plan = plan(MotionModel::Urban);
    group.bench_function("fleet_1000_merged", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for event in plan.events().take(EVENTS as usize) {
                sum += event.speed_kmh;
            }
            black_box(sum)
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let events: Vec<_> = plan(MotionModel::Urban)
        .events()
        .take(EVENTS as usize)
        .collect();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("json", |b| {
        let mut buffer = Vec::with_capacity(256);
        b.iter(|| {
            let mut bytes = 0;
            for event in &events {
                buffer.clear();
                event.encode_json(&mut buffer);
                bytes += buffer.len();
            }
            black_box(bytes)
        })
    });
    group.finish();
}

criterion_group!(benches, generate, encode);
criterion_main!(benches);
