//! Benchmark of the sim target: simulated events per second of wall time on one core (producer, broker, IngestCore, database, verification).

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roadtest::Scenario;
use roadtest::sim::{SimLatencies, simulate};
use std::hint::black_box;

/// 1,000 vehicles at 1 Hz: 1,000 events per simulated second.
const SCENARIO: &str = r#"
name = "sim-bench"
seed = 42
duration_s = 60

[fleet]
vehicle_count = 1000
rate_hz = 1.0

[pipeline]
partitions = 6
"#;

fn simulated_minute(c: &mut Criterion) {
    let path = Path::new("sim-bench.toml");
    let scenario = Scenario::parse(SCENARIO, path).expect("the bench scenario is valid");
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    group.throughput(Throughput::Elements(60_000));
    group.bench_function("1000_vehicles_1hz_60s", |b| {
        b.iter(|| {
            let report =
                simulate(black_box(&scenario), path, SimLatencies::default()).expect("simulates");
            assert!(report.passed);
            black_box(report.verify.found)
        })
    });
    group.finish();
}

criterion_group!(benches, simulated_minute);
criterion_main!(benches);
