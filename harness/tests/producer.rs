//! The producer (`roadtest::drive`) against a real broker: it keeps its schedule at a modest rate,
//! it counts the deliveries that fail when the broker stays unreachable past the message
//! timeout, and it holds no more than its buffer while the broker does not answer. Each test runs its own Tansu behind a fault proxy; Tansu advertises the proxy, so every
//! connection of the producer passes through it.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use roadtest::Scenario;
use roadtest::clients::KafkaConnection;
use roadtest::clients::kafka::{ProducerSettings, create_topics};
use roadtest::drive::{Destination, DriveCounters, DriveOutcome, drive};
use roadtest::fleet::FleetPlan;
use roadtest::measure::RunClock;
use roadtest::targets::proxy::{FaultProxy, NetworkCondition};
use roadtest::wire::RecordFormat;
use support::{Tansu, free_port, loopback};

const TOPIC: &str = "telemetry";

/// A broker behind a fault proxy, and the topic created.
struct Broker {
    proxy: FaultProxy,
    kafka: KafkaConnection,
    tansu: Tansu,
}

async fn broker(label: &str) -> Broker {
    // The proxy's upstream port is chosen first, so Tansu can advertise the proxy.
    let tansu_port = free_port();
    let proxy = FaultProxy::start("broker", loopback(0), loopback(tansu_port), 1)
        .await
        .expect("start the proxy");
    let tansu = Tansu::start(tansu_port, &proxy.local_addr().to_string(), label).await;
    let kafka = KafkaConnection::plaintext(proxy.local_addr().to_string());
    create_topics(&kafka, &[(TOPIC, 3)], 1, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("create the topic: {e}\n{}", tansu.log_tail()));
    Broker {
        proxy,
        kafka,
        tansu,
    }
}

fn plan(vehicles: u32, rate_hz: f64, duration_s: u32) -> FleetPlan {
    let text = format!(
        "name = \"producer\"\nseed = 42\nduration_s = {duration_s}\n\n\
         [fleet]\nvehicle_count = {vehicles}\nrate_hz = {rate_hz}\n"
    );
    let scenario = Scenario::parse(&text, Path::new("producer.toml")).expect("a valid scenario");
    FleetPlan::from_scenario(&scenario)
}

/// How many events `plan` sends from second `from_s` to second `until_s` of the scenario.
fn plan_events_between(plan: &FleetPlan, from_s: u64, until_s: u64) -> u64 {
    plan.expected_events_by(until_s as i64 * 1000) - plan.expected_events_by(from_s as i64 * 1000)
}

/// Drives `plan` on a thread of its own, as a run does.
async fn drive_plan(
    plan: FleetPlan,
    kafka: &KafkaConnection,
    settings: ProducerSettings,
) -> DriveOutcome {
    let clock = RunClock::now(plan.start_ms, 1.0);
    let kafka = kafka.clone();
    let counters = Arc::new(DriveCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    tokio::task::spawn_blocking(move || {
        let format = RecordFormat::default();
        let destination = Destination {
            topic: TOPIC,
            format: &format,
        };
        drive(&plan, &kafka, destination, settings, clock, counters, stop)
    })
    .await
    .expect("the producer thread")
    .expect("the producer starts")
}

/// Drives `plan` while the broker is blackholed from second `from_s` for `for_s` seconds.
async fn drive_through_blackhole(
    broker: &Broker,
    plan: FleetPlan,
    settings: ProducerSettings,
    from_s: u64,
    for_s: u64,
) -> DriveOutcome {
    let producing = drive_plan(plan, &broker.kafka, settings);
    let partition = async {
        tokio::time::sleep(Duration::from_secs(from_s)).await;
        broker.proxy.set(NetworkCondition::Blackhole);
        tokio::time::sleep(Duration::from_secs(for_s)).await;
        broker.proxy.clear();
    };
    tokio::join!(producing, partition).0
}

/// 500 events/s is a small fraction of what this producer sends (see docs/benchmarks.md): each
/// send is handed to librdkafka without waiting, so the only lateness is the thread's wake-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_modest_rate_the_producer_keeps_its_schedule() {
    let broker = broker("producer-schedule").await;
    let plan = plan(50, 10.0, 10);
    let expected = plan.expected_events_by(i64::MAX);
    let outcome = drive_plan(plan, &broker.kafka, ProducerSettings::new(false)).await;
    let behind = outcome.behind_schedule.summary();
    eprintln!("producer: {expected} events, behind schedule {behind:?}");
    assert_eq!(outcome.sent, expected);
    assert_eq!(outcome.acknowledged, expected, "{:?}", outcome.first_errors);
    assert_eq!(outcome.failed_deliveries, 0);
    assert_eq!(outcome.behind_schedule.count(), expected);
    assert_eq!(outcome.produce_ack.count(), expected);
    assert!(
        behind.p99_ms < 50.0,
        "1 send in 100 was more than 50 ms late at 500 events/s: {behind:?}"
    );
    let per_second: u64 = outcome.acknowledged_per_second.iter().sum();
    assert_eq!(per_second, expected);
    broker.tansu.remove_log();
}

/// While the broker is blackholed, every message sent waits; those still waiting when the message
/// timeout passes fail, and the producer counts each one, and only those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_past_the_message_timeout_in_a_blackhole_are_counted_failed() {
    const BLACKHOLE_FROM_S: u64 = 3;
    const BLACKHOLE_FOR_S: u64 = 6;
    let timeout = Duration::from_secs(2);
    let broker = broker("producer-blackhole").await;
    let plan = plan(20, 10.0, 12);
    let expected = plan.expected_events_by(i64::MAX);
    let before_blackhole = plan.expected_events_by(BLACKHOLE_FROM_S as i64 * 1000);
    let doomed_until_s = BLACKHOLE_FROM_S + BLACKHOLE_FOR_S - timeout.as_secs();
    let doomed = plan_events_between(&plan, BLACKHOLE_FROM_S, doomed_until_s);
    let slack = plan_events_between(&plan, 0, 1) * 3 / 4;
    let settings = ProducerSettings {
        message_timeout: timeout,
        ..ProducerSettings::new(false)
    };
    let outcome =
        drive_through_blackhole(&broker, plan, settings, BLACKHOLE_FROM_S, BLACKHOLE_FOR_S).await;
    eprintln!(
        "producer: {expected} sent, {} acknowledged, {} failed; first errors {:?}",
        outcome.acknowledged, outcome.failed_deliveries, outcome.first_errors
    );
    assert_eq!(outcome.sent, expected);
    assert_eq!(
        outcome.acknowledged + outcome.failed_deliveries,
        expected,
        "every delivery is reported once, acknowledged or failed"
    );
    // Sends in the first BLACKHOLE_FOR_S - timeout seconds of the blackhole cannot be
    // acknowledged in time, the others can (the proxy delivers what it held once it heals).
    // Allowed: 0.75 s of sends either way, for the blackhole's start against the producer's clock
    // and librdkafka's timeout scan.
    assert!(
        outcome.failed_deliveries.abs_diff(doomed) <= slack,
        "{} deliveries failed; the {doomed} sent in seconds {BLACKHOLE_FROM_S}..{doomed_until_s} \
         should have (give or take {slack})",
        outcome.failed_deliveries
    );
    assert!(outcome.acknowledged >= before_blackhole);
    assert!(
        outcome
            .first_errors
            .iter()
            .all(|error| error.contains("timed out")),
        "{:?}",
        outcome.first_errors
    );
    broker.tansu.remove_log();
}

/// With the broker blackholed, acknowledgements stop: once the records waiting for one fill the
/// producer's buffer (1 MB, about 4,400 records, 2.2 s of this plan), each send waits, so sends
/// fall seconds behind schedule instead of piling up in memory; nothing is lost once it heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_makes_sends_wait_instead_of_holding_more() {
    const BLACKHOLE_FROM_S: u64 = 3;
    const BLACKHOLE_FOR_S: u64 = 6;
    let broker = broker("producer-buffer").await;
    let plan = plan(20, 100.0, 12);
    let expected = plan.expected_events_by(i64::MAX);
    let settings = ProducerSettings::new(false).with_buffer_mb(1);
    let outcome =
        drive_through_blackhole(&broker, plan, settings, BLACKHOLE_FROM_S, BLACKHOLE_FOR_S).await;
    let behind = outcome.behind_schedule.summary();
    eprintln!("producer: {expected} events, behind schedule {behind:?}");
    assert_eq!(outcome.sent, expected);
    assert_eq!(outcome.acknowledged, expected, "{:?}", outcome.first_errors);
    assert_eq!(outcome.failed_deliveries, 0);
    // Unbounded, the producer would have sent everything on time (the first test); bounded, it
    // waited for most of the blackhole's last 3.8 s.
    assert!(
        behind.max_ms >= 2_000.0,
        "no send waited 2 s for room in a 1 MB buffer during a 6 s blackhole: {behind:?}"
    );
    broker.tansu.remove_log();
}
