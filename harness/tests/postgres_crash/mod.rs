//! The PostgreSQL crash without synchronous commit, as the local and the containers target must both carry it out: `scenarios/postgres-crash` killed three times, and what its report must say.

use roadtest::Scenario;
use roadtest::report::Report;

/// `postgres-crash` (1,000 events/s, synchronous_commit off) for 26 s with three kills (6, 13
/// and 20 s, 2 s down) instead of one. A kill loses the commits since the WAL writer's last
/// write; about one kill in twenty lands right after that write, before the consumer's next
/// commit, and loses nothing. Three kills all doing so: about 1e-4.
pub fn killed_three_times(scenario: &mut Scenario) {
    scenario.duration_s = 26;
    let kill = scenario.faults[0].clone();
    scenario.faults = [6.0, 13.0, 20.0]
        .into_iter()
        .map(|at_s| {
            let mut fault = kill.clone();
            fault.at_s = Some(at_s);
            fault.duration_s = 2.0;
            fault
        })
        .collect();
}

/// The report of [`killed_three_times`]: rows were lost, each of them acknowledged by
/// PostgreSQL, counted exactly and charged to the kills; nothing corrupt or unexpected.
pub fn assert_acknowledged_rows_lost_and_counted(report: &Report) {
    let verify = &report.verify;
    assert_eq!(
        (verify.corrupt, verify.unexpected),
        (0, 0),
        "{:?}",
        report.errors
    );
    assert!(
        verify.lost > 0,
        "synchronous_commit off must lose rows to a kill -9"
    );
    assert_eq!(verify.found + verify.lost, verify.expected);
    // PostgreSQL acknowledged every event (the consumer wrote them all and committed their
    // offsets), so each lost row is an acknowledged one: none was waiting to be written.
    let written: u64 = report
        .consumer
        .processes
        .iter()
        .map(|process| process.stats.written)
        .sum();
    assert!(
        written >= verify.expected,
        "acknowledged {written} of {}",
        verify.expected
    );
    // Each lost row is charged to the kill nearest before it: the three add up to the total.
    let charged: Vec<u64> = (0..3)
        .map(|index| {
            let fault = serde_json::to_value(&report.faults[index]).expect("a fault as JSON");
            assert_eq!(fault["service"], "postgres", "{fault}");
            fault["events_lost"].as_u64().unwrap_or(0)
        })
        .collect();
    assert_eq!(charged.iter().sum::<u64>(), verify.lost, "{charged:?}");
    let versions = &report.target.service_versions;
    assert!(
        versions["postgres"].contains("synchronous_commit off"),
        "{versions:?}"
    );
}
