//! Benchmark of the sim target: simulated events per second of wall time on one core (producer, broker, IngestCore, database, verification), for a simulated minute and a simulated hour.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roadtest::Scenario;
use roadtest::sim::{SimLatencies, simulate};
use std::hint::black_box;

/// 1,000 vehicles at 1 Hz: 1,000 events per simulated second, for `duration_s`.
fn scenario(duration_s: u64) -> Scenario {
    let text = format!(
        "name = \"sim-bench\"\nseed = 42\nduration_s = {duration_s}\n\n\
         [fleet]\nvehicle_count = 1000\nrate_hz = 1.0\n\n[pipeline]\npartitions = 6\n"
    );
    Scenario::parse(&text, Path::new("sim-bench.toml")).expect("the bench scenario is valid")
}

/// Real time over wall time is `duration_s` over the reported time per iteration: 1,000x for the
/// hour is 3.6 s per iteration or less. The hour runs only when measuring (`cargo bench`): under
/// `cargo test` the benches run once each in a debug build, where the minute shows it works.
fn simulated(c: &mut Criterion) {
    let path = Path::new("sim-bench.toml");
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let hour = measuring.then_some(("1000_vehicles_1hz_3600s", 3600));
    for (name, duration_s) in [("1000_vehicles_1hz_60s", 60)].into_iter().chain(hour) {
        let scenario = scenario(duration_s);
        group.throughput(Throughput::Elements(1000 * duration_s));
        group.bench_function(name, |b| {
            b.iter(|| {
                let report = simulate(black_box(&scenario), path, SimLatencies::default())
                    .expect("simulates");
                assert!(report.passed);
                black_box(report.verify.found)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, simulated);
criterion_main!(benches);
