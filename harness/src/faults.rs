//! The fault schedule: resolved from the scenario and its seed, checked, and what happened to each fault.
//!
//! A scenario's `[[faults]]` entries are resolved once into [`PlannedFault`]s: `at_s` and
//! `after_events` triggers as written, `random` triggers drawn from the run's seed (component
//! `faults`, one generator per entry), so the same seed replays the same schedule. This module is
//! pure planning: it imports only the scenario, the seeds and the measurement types. The real
//! run's executor (`run::faults`) and the simulation carry the schedule out and record a
//! [`FaultRecord`] per fault.

use serde::{Deserialize, Serialize};

use crate::measure::IntervalSummary;
use crate::scenario::{FaultAction, FaultSpec, Scenario, Service};
use crate::seed::rng_for;

pub mod tamper;

/// When a planned fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// At this scenario second.
    AtS(f64),
    /// Right after this many events were produced.
    AfterEvents(u64),
}

/// One fault of the resolved schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedFault {
    /// Which `[[faults]]` entry it came from.
    pub entry: usize,
    pub action: FaultAction,
    pub service: Service,
    pub trigger: Trigger,
    pub duration_s: f64,
    /// For network faults: the condition the proxy applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkFault>,
}

/// The network condition of a network fault (a serializable mirror of the proxy's condition).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkFault {
    Latency { delay_ms: u64, jitter_ms: u64 },
    Bandwidth { bytes_per_s: u64 },
    Blackhole,
    Reset,
}

impl NetworkFault {
    fn of(spec: &FaultSpec) -> Option<NetworkFault> {
        match spec.action {
            FaultAction::Latency => Some(NetworkFault::Latency {
                delay_ms: spec.delay_ms.unwrap_or(0),
                jitter_ms: spec.jitter_ms.unwrap_or(0),
            }),
            FaultAction::Bandwidth => Some(NetworkFault::Bandwidth {
                bytes_per_s: spec.bytes_per_s.unwrap_or(0),
            }),
            FaultAction::Blackhole => Some(NetworkFault::Blackhole),
            FaultAction::Reset => Some(NetworkFault::Reset),
            FaultAction::Kill | FaultAction::Stop | FaultAction::Pause | FaultAction::Tamper => {
                None
            }
        }
    }
}

/// Resolves a scenario's faults into a schedule sorted by trigger (times first, by time; then
/// event counts). Seeded: the same scenario and seed always give the same schedule. Tamper
/// faults are not in it: they act after the drain ([`tamper::plans`]).
pub fn resolve(scenario: &Scenario) -> Vec<PlannedFault> {
    let mut planned = Vec::new();
    for (entry, spec) in scenario.faults.iter().enumerate() {
        if spec.action == FaultAction::Tamper {
            continue;
        }
        let fault = |trigger| PlannedFault {
            entry,
            action: spec.action,
            service: spec.service,
            trigger,
            duration_s: if spec.action == FaultAction::Reset {
                0.0
            } else {
                spec.duration_s
            },
            network: NetworkFault::of(spec),
        };
        if let Some(at_s) = spec.at_s {
            planned.push(fault(Trigger::AtS(at_s)));
        }
        if let Some(events) = spec.after_events {
            planned.push(fault(Trigger::AfterEvents(events)));
        }
        if let Some(random) = &spec.random {
            let mut rng = rng_for(scenario.seed, "faults", entry as u64);
            let [earliest, latest] = random.between_s;
            let mut times: Vec<f64> = (0..random.count)
                .map(|_| rng.uniform(earliest, latest))
                .collect();
            times.sort_by(f64::total_cmp);
            planned.extend(times.into_iter().map(|at_s| fault(Trigger::AtS(at_s))));
        }
    }
    planned.sort_by(|a, b| match (a.trigger, b.trigger) {
        (Trigger::AtS(x), Trigger::AtS(y)) => x.total_cmp(&y).then(a.entry.cmp(&b.entry)),
        (Trigger::AtS(_), Trigger::AfterEvents(_)) => std::cmp::Ordering::Less,
        (Trigger::AfterEvents(_), Trigger::AtS(_)) => std::cmp::Ordering::Greater,
        (Trigger::AfterEvents(x), Trigger::AfterEvents(y)) => x.cmp(&y).then(a.entry.cmp(&b.entry)),
    });
    planned
}

/// The end-to-end p99 a fault's latency recovery is judged against: the scenario's
/// `latency_e2e_p99_ms_max`, else 1000 ms.
pub fn latency_threshold_ms(scenario: &Scenario) -> f64 {
    scenario
        .expectations
        .latency_e2e_p99_ms_max
        .unwrap_or(1000.0)
}

/// A problem with one `[[faults]]` entry: the key within the entry and what is allowed.
type SpecProblem = (&'static str, String);

/// Checks one `[[faults]]` entry: exactly one trigger, every value in range.
pub(crate) fn check_spec(spec: &FaultSpec, duration_s: f64) -> Result<(), SpecProblem> {
    check_trigger(spec, duration_s)?;
    check_action_values(spec)?;
    tamper::check_spec(spec)?;
    if spec.action.is_network() && spec.service == Service::Consumer {
        return Err((
            "service",
            "network faults act between the clients and a server: use broker or cassandra".into(),
        ));
    }
    if !(spec.duration_s > 0.0 && spec.duration_s <= duration_s) {
        return Err((
            "duration_s",
            format!(
                "{} is out of range; allowed greater than 0, at most the run's duration_s ({duration_s})",
                spec.duration_s
            ),
        ));
    }
    Ok(())
}

/// Exactly one trigger, inside the run.
fn check_trigger(spec: &FaultSpec, duration_s: f64) -> Result<(), SpecProblem> {
    let triggers = usize::from(spec.at_s.is_some())
        + usize::from(spec.after_events.is_some())
        + usize::from(spec.random.is_some());
    if triggers != 1 {
        return Err((
            "at_s",
            format!("give exactly one trigger: at_s, after_events or random (found {triggers})"),
        ));
    }
    if let Some(at_s) = spec.at_s
        && !(0.0..duration_s).contains(&at_s)
    {
        return Err((
            "at_s",
            format!("{at_s} is outside the run; allowed 0 <= at_s < duration_s ({duration_s})"),
        ));
    }
    if spec.after_events == Some(0) {
        return Err((
            "after_events",
            "0 is out of range; allowed 1 or more".into(),
        ));
    }
    let Some(random) = &spec.random else {
        return Ok(());
    };
    if !(1..=100).contains(&random.count) {
        return Err((
            "random.count",
            format!("{} is out of range; allowed 1 to 100", random.count),
        ));
    }
    let [earliest, latest] = random.between_s;
    if !(0.0 <= earliest && earliest < latest && latest <= duration_s) {
        return Err((
            "random.between_s",
            format!(
                "[{earliest}, {latest}] must satisfy 0 <= earliest < latest <= duration_s ({duration_s})"
            ),
        ));
    }
    Ok(())
}

/// The values only some actions take: present where needed, in range, absent elsewhere.
fn check_action_values(spec: &FaultSpec) -> Result<(), SpecProblem> {
    match spec.action {
        FaultAction::Latency => check_latency(spec.delay_ms, spec.jitter_ms.unwrap_or(0))?,
        FaultAction::Bandwidth => match spec.bytes_per_s {
            Some(rate) if (1_000..=1_000_000_000).contains(&rate) => {}
            Some(rate) => {
                return Err((
                    "bytes_per_s",
                    format!("{rate} is out of range; allowed 1000 to 1000000000"),
                ));
            }
            None => {
                return Err((
                    "bytes_per_s",
                    "missing: a bandwidth fault needs bytes_per_s (1000 to 1000000000)".into(),
                ));
            }
        },
        _ => {}
    }
    let latency = spec.action == FaultAction::Latency;
    let stray = [
        ("delay_ms", spec.delay_ms.is_some() && !latency),
        ("jitter_ms", spec.jitter_ms.is_some() && !latency),
        (
            "bytes_per_s",
            spec.bytes_per_s.is_some() && spec.action != FaultAction::Bandwidth,
        ),
    ];
    if let Some((key, _)) = stray.iter().find(|(_, stray)| *stray) {
        return Err((
            key,
            "only latency faults take delay_ms and jitter_ms, only bandwidth faults bytes_per_s"
                .into(),
        ));
    }
    Ok(())
}

/// A latency fault's delay (1 to 60000 ms) and jitter (at most the delay).
fn check_latency(delay_ms: Option<u64>, jitter_ms: u64) -> Result<(), SpecProblem> {
    match delay_ms {
        Some(delay_ms) if (1..=60_000).contains(&delay_ms) && jitter_ms <= delay_ms => Ok(()),
        Some(delay_ms) if (1..=60_000).contains(&delay_ms) => Err((
            "jitter_ms",
            format!("{jitter_ms} is out of range; allowed 0 to delay_ms ({delay_ms})"),
        )),
        Some(delay_ms) => Err((
            "delay_ms",
            format!("{delay_ms} is out of range; allowed 1 to 60000"),
        )),
        None => Err((
            "delay_ms",
            "missing: a latency fault needs delay_ms (1 to 60000)".into(),
        )),
    }
}

/// Time-triggered faults on one service may not overlap: the second would act on a service that
/// is already down or paused. Returns the entries of the first overlapping pair.
pub(crate) fn first_overlap(planned: &[PlannedFault]) -> Option<(&PlannedFault, &PlannedFault)> {
    for (index, later) in planned.iter().enumerate() {
        let Trigger::AtS(later_s) = later.trigger else {
            continue;
        };
        for earlier in &planned[..index] {
            let Trigger::AtS(earlier_s) = earlier.trigger else {
                continue;
            };
            if earlier.service == later.service && later_s < earlier_s + earlier.duration_s {
                return Some((earlier, later));
            }
        }
    }
    None
}

/// What happened to one fault, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub entry: usize,
    pub action: FaultAction,
    pub service: Service,
    pub trigger: Trigger,
    pub duration_s: f64,
    /// For network faults: the condition applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkFault>,
    /// Wall seconds since the run's start when it was injected (`null` if it never fired).
    pub at_s: Option<f64>,
    /// Wall seconds since the run's start when the restart or resume began.
    pub recovery_started_at_s: Option<f64>,
    /// From the restart or resume until the service was ready again (consumer: consuming again).
    pub ready_after_s: Option<f64>,
    /// The pipeline's backlog when the fault was injected: events sent (and not failed) that no
    /// consumer had written yet, those the producer still held included (during a broker outage
    /// nothing is acknowledged, yet the pipeline falls behind).
    pub lag_before: Option<i64>,
    /// From injection until the pipeline lag was back to its pre-fault level (null: it never was,
    /// e.g. because events were lost).
    pub lag_recovered_after_s: Option<f64>,
    /// From injection until end-to-end p99 latency per second was back under the threshold.
    pub latency_recovered_after_s: Option<f64>,
    /// The latency threshold used (the scenario's `latency_e2e_p99_ms_max`, else 1000 ms).
    pub latency_threshold_ms: f64,
    /// Expected events, intended from this fault until the next, that never arrived.
    pub events_lost: u64,
    /// What went wrong carrying it out, if anything.
    pub error: Option<String>,
}

impl FaultRecord {
    /// The record of `fault` before it fires: what was planned, nothing observed yet.
    pub fn planned(fault: &PlannedFault, latency_threshold_ms: f64) -> FaultRecord {
        FaultRecord {
            entry: fault.entry,
            action: fault.action,
            service: fault.service,
            trigger: fault.trigger,
            duration_s: fault.duration_s,
            network: fault.network,
            at_s: None,
            recovery_started_at_s: None,
            ready_after_s: None,
            lag_before: None,
            lag_recovered_after_s: None,
            latency_recovered_after_s: None,
            latency_threshold_ms,
            events_lost: 0,
            error: None,
        }
    }

    /// `action service`, as the views label a fault (`kill consumer`, `latency cassandra`).
    pub fn label(&self) -> String {
        let name = |value: serde_json::Result<serde_json::Value>| match value {
            Ok(serde_json::Value::String(text)) => text,
            _ => String::new(),
        };
        format!(
            "{} {}",
            name(serde_json::to_value(self.action)),
            name(serde_json::to_value(self.service))
        )
    }
}

/// Completes fault records with what only the verification knows: latency recovery from the
/// per-second end-to-end latency, and lost events per fault window.
pub fn complete_records(
    records: &mut [FaultRecord],
    e2e_intervals: &[IntervalSummary],
    lost_per_second: &[u64],
) {
    let starts: Vec<f64> = records.iter().filter_map(|r| r.at_s).collect();
    for (index, record) in records.iter_mut().enumerate() {
        let Some(at_s) = record.at_s else { continue };
        let window_end_s = starts.get(index + 1).copied().unwrap_or(f64::INFINITY);
        // A slow second ending exactly at `at_s` would count as recovered after 0 s, as no slow
        // second does: `>` against `>=` cannot change a record.
        let in_window = |second: usize| {
            let start = second as f64;
            start + 1.0 > at_s && start < window_end_s
        };
        let last_slow = e2e_intervals
            .iter()
            .filter(|interval| in_window(interval.start_s as usize))
            .filter(|interval| interval.count > 0 && interval.p99_ms > record.latency_threshold_ms)
            .map(|interval| interval.start_s as f64 + 1.0)
            .next_back();
        record.latency_recovered_after_s = Some(last_slow.map_or(0.0, |end| (end - at_s).max(0.0)));
        // Losses are charged to the fault nearest before them, and those before the first fault
        // to the first (a database crash loses writes acknowledged before it).
        let loss_from_s = if index == 0 { 0.0 } else { at_s };
        record.events_lost = lost_in_window(lost_per_second, loss_from_s, window_end_s);
    }
}

/// Lost events intended from the second `from_s` falls in up to the second `to_s` falls in (not
/// included). Back-to-back windows share no second, so their counts add up to the total: a
/// second in which one fault ends and the next fires is the next one's.
pub fn lost_in_window(lost_per_second: &[u64], from_s: f64, to_s: f64) -> u64 {
    let (first, end) = (from_s.floor(), to_s.floor());
    lost_per_second
        .iter()
        .enumerate()
        .filter(|(second, _)| {
            let start = *second as f64;
            start >= first && start < end
        })
        .map(|(_, lost)| lost)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SCENARIO: &str = r#"
name = "unit"
seed = 42
duration_s = 60
[fleet]
vehicle_count = 3
rate_hz = 1.0
[[faults]]
action = "kill"
service = "consumer"
random = { count = 3, between_s = [10.0, 50.0] }
[[faults]]
action = "pause"
service = "cassandra"
after_events = 100
[[faults]]
action = "stop"
service = "broker"
at_s = 5
"#;

    fn scenario() -> Scenario {
        let scenario = Scenario::parse(SCENARIO, Path::new("unit.toml")).unwrap();
        scenario.validate(Path::new("unit.toml")).unwrap();
        scenario
    }

    #[test]
    fn the_schedule_replays_with_the_seed_and_changes_with_it() {
        let planned = resolve(&scenario());
        assert_eq!(planned, resolve(&scenario()));
        assert_eq!(planned.len(), 5);
        assert_eq!(planned[0].trigger, Trigger::AtS(5.0));
        let random: Vec<f64> = planned
            .iter()
            .filter(|f| f.entry == 0)
            .map(|f| match f.trigger {
                Trigger::AtS(at_s) => at_s,
                Trigger::AfterEvents(_) => panic!("random faults are timed"),
            })
            .collect();
        assert_eq!(random.len(), 3);
        assert!(random.windows(2).all(|w| w[0] <= w[1]));
        assert!(random.iter().all(|t| (10.0..50.0).contains(t)));
        assert_eq!(planned[4].trigger, Trigger::AfterEvents(100));
        let other = resolve(&scenario().with_seed(43));
        assert_ne!(planned, other, "another seed draws other times");
    }

    /// The key `check_spec` names for one `[[faults]]` entry in a run of `duration_s`, if any.
    fn problem(entry: &str, duration_s: f64) -> Option<&'static str> {
        let spec: FaultSpec = toml::from_str(entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
        check_spec(&spec, duration_s).err().map(|(key, _)| key)
    }

    fn kill(rest: &str) -> String {
        format!("action = \"kill\"\nservice = \"consumer\"\n{rest}")
    }

    fn network(action: &str, rest: &str) -> String {
        format!("action = \"{action}\"\nservice = \"broker\"\nat_s = 1\nduration_s = 5\n{rest}")
    }

    #[test]
    fn a_duration_and_a_random_window_are_checked_at_their_boundaries() {
        assert_eq!(problem(&kill("at_s = 1\nduration_s = 60"), 60.0), None);
        assert_eq!(
            problem(&kill("at_s = 1\nduration_s = 60.5"), 60.0),
            Some("duration_s")
        );
        assert_eq!(
            problem(&kill("at_s = 1\nduration_s = 0"), 60.0),
            Some("duration_s")
        );
        let random =
            |window: &str| kill(&format!("random = {{ count = 2, between_s = {window} }}"));
        assert_eq!(problem(&random("[0.0, 60.0]"), 60.0), None);
        for outside in [
            "[10.0, 10.0]",
            "[-1.0, 10.0]",
            "[10.0, 60.5]",
            "[20.0, 10.0]",
        ] {
            assert_eq!(
                problem(&random(outside), 60.0),
                Some("random.between_s"),
                "{outside}"
            );
        }
    }

    #[test]
    fn network_values_are_required_in_range_and_refused_where_they_do_not_belong() {
        let latency = |rest: &str| problem(&network("latency", rest), 60.0);
        assert_eq!(latency("delay_ms = 1\njitter_ms = 1"), None);
        assert_eq!(latency("delay_ms = 60000"), None);
        assert_eq!(latency("delay_ms = 0"), Some("delay_ms"));
        assert_eq!(latency("delay_ms = 60001"), Some("delay_ms"));
        assert_eq!(latency("delay_ms = 0\njitter_ms = 5"), Some("delay_ms"));
        assert_eq!(latency("delay_ms = 10\njitter_ms = 11"), Some("jitter_ms"));
        assert_eq!(latency(""), Some("delay_ms"));
        assert_eq!(
            latency("delay_ms = 10\nbytes_per_s = 1000"),
            Some("bytes_per_s")
        );
        let bandwidth = |rest: &str| problem(&network("bandwidth", rest), 60.0);
        assert_eq!(bandwidth("bytes_per_s = 1000"), None);
        assert_eq!(bandwidth("bytes_per_s = 1000000000"), None);
        assert_eq!(bandwidth("bytes_per_s = 999"), Some("bytes_per_s"));
        assert_eq!(bandwidth("bytes_per_s = 1000000001"), Some("bytes_per_s"));
        assert_eq!(bandwidth(""), Some("bytes_per_s"));
        assert_eq!(
            bandwidth("bytes_per_s = 1000\ndelay_ms = 5"),
            Some("delay_ms")
        );
        assert_eq!(
            problem(&kill("at_s = 1\nbytes_per_s = 1000"), 60.0),
            Some("bytes_per_s")
        );
        assert_eq!(
            problem(&kill("at_s = 1\njitter_ms = 5"), 60.0),
            Some("jitter_ms")
        );
    }

    #[test]
    fn a_network_fault_carries_its_condition_and_recovery_has_a_threshold() {
        let text = format!(
            "{SCENARIO}[[faults]]\naction = \"latency\"\nservice = \"cassandra\"\nat_s = 20\n\
             duration_s = 3\ndelay_ms = 200\njitter_ms = 50\n[expectations]\n\
             latency_e2e_p99_ms_max = 750\n"
        );
        let scenario = Scenario::parse(&text, Path::new("unit.toml")).unwrap();
        let latency = resolve(&scenario)
            .into_iter()
            .find(|fault| fault.entry == 3)
            .expect("the latency fault is planned");
        let condition = NetworkFault::Latency {
            delay_ms: 200,
            jitter_ms: 50,
        };
        assert_eq!(latency.network, Some(condition));
        assert_eq!(latency_threshold_ms(&scenario), 750.0);
        assert_eq!(latency_threshold_ms(&super::tests::scenario()), 1000.0);
    }

    #[test]
    fn faults_on_one_service_overlap_only_while_the_first_lasts() {
        let fault = |at_s: f64, service: Service| PlannedFault {
            entry: 0,
            action: FaultAction::Kill,
            service,
            trigger: Trigger::AtS(at_s),
            duration_s: 5.0,
            network: None,
        };
        let back_to_back = [
            fault(10.0, Service::Consumer),
            fault(15.0, Service::Consumer),
        ];
        assert!(first_overlap(&back_to_back).is_none());
        let overlapping = [
            fault(10.0, Service::Consumer),
            fault(14.9, Service::Consumer),
        ];
        assert!(first_overlap(&overlapping).is_some());
        let elsewhere = [fault(10.0, Service::Consumer), fault(12.0, Service::Broker)];
        assert!(first_overlap(&elsewhere).is_none());
    }

    #[test]
    fn a_fault_window_starts_in_the_second_it_fires_and_ends_where_the_next_one_fires() {
        let record = |at_s: f64| FaultRecord {
            entry: 0,
            action: FaultAction::Kill,
            service: Service::Consumer,
            trigger: Trigger::AtS(at_s),
            duration_s: 1.0,
            network: None,
            at_s: Some(at_s),
            recovery_started_at_s: None,
            ready_after_s: None,
            lag_before: None,
            lag_recovered_after_s: None,
            latency_recovered_after_s: None,
            latency_threshold_ms: 100.0,
            events_lost: 0,
            error: None,
        };
        // The first fault fires half-way through second 10, the second exactly at 20 s.
        let mut records = vec![record(10.5), record(20.0)];
        let second = |start_s: u64, count: u64, p99_ms: f64| IntervalSummary {
            start_s,
            count,
            p50_ms: 1.0,
            p99_ms,
            max_ms: p99_ms,
        };
        let mut intervals: Vec<IntervalSummary> = (0..25).map(|s| second(s, 10, 50.0)).collect();
        intervals[10] = second(10, 10, 500.0); // slow in the second the first fault fires
        intervals[15] = second(15, 0, 900.0); // no samples: not slow, whatever its p99
        intervals[17] = second(17, 10, 100.0); // at the threshold: not slow
        intervals[20] = second(20, 10, 500.0); // the second fault's own second
        let mut lost = vec![0u64; 25];
        lost[5] = 2; // before the first fault: its
        lost[19] = 5; // the last second before the second fault: the first's
        lost[20] = 3; // the second fault's
        complete_records(&mut records, &intervals, &lost);
        assert_eq!(records[0].latency_recovered_after_s, Some(0.5));
        assert_eq!(records[1].latency_recovered_after_s, Some(1.0));
        assert_eq!(records[0].events_lost, 7);
        assert_eq!(records[1].events_lost, 3);
    }

    #[test]
    fn faults_firing_mid_second_share_no_second_of_losses() {
        // Three kills a few milliseconds into their seconds, as a run fires them: every lost
        // event is charged to exactly one, the second each fires in to that one.
        let lost: Vec<u64> = (0..26).map(|second| second % 4 + 1).collect();
        let starts = [6.002, 13.004, 20.001];
        let charged: Vec<u64> = (0..3)
            .map(|index| {
                let from_s = if index == 0 { 0.0 } else { starts[index] };
                let to_s = starts.get(index + 1).copied().unwrap_or(f64::INFINITY);
                lost_in_window(&lost, from_s, to_s)
            })
            .collect();
        assert_eq!(charged.iter().sum::<u64>(), lost.iter().sum::<u64>());
        assert_eq!(charged[1], lost[13..20].iter().sum::<u64>());
    }

    #[test]
    fn losses_and_slow_seconds_are_charged_to_the_right_fault() {
        let record = |at_s: f64| FaultRecord {
            entry: 0,
            action: FaultAction::Kill,
            service: Service::Cassandra,
            trigger: Trigger::AtS(at_s),
            duration_s: 2.0,
            network: None,
            at_s: Some(at_s),
            recovery_started_at_s: Some(at_s + 2.0),
            ready_after_s: Some(3.0),
            lag_before: Some(0),
            lag_recovered_after_s: None,
            latency_recovered_after_s: None,
            latency_threshold_ms: 100.0,
            events_lost: 0,
            error: None,
        };
        let mut records = vec![record(10.0), record(20.0)];
        let slow = |start_s: u64, p99_ms: f64| IntervalSummary {
            start_s,
            count: 10,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            max_ms: p99_ms,
        };
        let intervals: Vec<IntervalSummary> = (0..30)
            .map(|s| {
                slow(
                    s,
                    if (10..14).contains(&s) || s == 21 {
                        500.0
                    } else {
                        50.0
                    },
                )
            })
            .collect();
        let mut lost = vec![0u64; 30];
        lost[5] = 2; // before the first fault: charged to it
        lost[12] = 3;
        lost[25] = 7;
        complete_records(&mut records, &intervals, &lost);
        assert_eq!(records[0].events_lost, 5);
        assert_eq!(records[1].events_lost, 7);
        assert_eq!(records[0].latency_recovered_after_s, Some(4.0));
        assert_eq!(records[1].latency_recovered_after_s, Some(2.0));
    }
}
