//! The JSON report of a run (`report.json`): the source of truth every view, comparison and gate reads.
//!
//! # Report schema, version 1
//!
//! One JSON object per run, written to `<run dir>/report.json`. Keys marked **gate** are read by CI
//! and gates: renaming or moving one is a breaking change and needs a new `schema_version`.
//! Units are the last part of a key name (`duration_s`, `peak_rss_mb`); inside an object whose key
//! carries the unit (`e2e_ms`), the fields are bare (`p99`). Maps are sorted by key.
//!
//! | Key path | Type | Meaning |
//! |---|---|---|
//! | `schema_version` | integer | Always 1 for this layout. |
//! | `roadtest_version` | string | Version of the roadtest that ran. |
//! | `git_commit` | string or null | Commit roadtest was built from, when known. |
//! | `seed` | integer | **gate** The root seed; the run replays from it. |
//! | `scenario.name`, `.hash`, `.path` | string | Scenario name, stable content hash (first 64 bits of SHA-256 of the canonical scenario JSON, seed excluded, 16 hex digits), file. |
//! | `scenario.resolved` | object | The full scenario after overrides, as it ran. |
//! | `target.name` | string | Where the pipeline ran (`containers`, `local`, `external`, `sim`). |
//! | `target.service_versions.<service>` | string | Version of each service of the pipeline. |
//! | `machine.cores`, `.memory_mb`, `.os` | int, int, string | The host that ran roadtest. |
//! | `started_at`, `finished_at` | string | Wall-clock start and end, RFC 3339 UTC (`2026-01-01T00:00:00.000Z`). |
//! | `duration_s` | number | Wall-clock length of the run. |
//! | `replay_command` | string | The command that replays this run. |
//! | `latency.e2e_ms.{count,min,p50,p90,p99,p999,max,mean}` | number | End-to-end latency from the intended send time to the write acknowledgement, ms; **gate**: `p50`, `p99`, `max`. |
//! | `latency.stages.<stage>.{count,min,...,mean}` | number | Per stage, ms: `produce_ack_ms`, `consume_ms`, `write_ack_ms`. |
//! | `latency.e2e_intervals[]` | list | Per second of the run: `start_s`, `count`, `p50_ms`, `p99_ms`, `max_ms`. |
//! | `latency.e2e_percentiles[]` | list | The end-to-end percentile distribution: `percentile` (0 to 100) and `value_ms`, HdrHistogram style (ever closer to 100); empty in reports written before it existed. |
//! | `throughput.produced_per_s`, `.consumed_per_s` | number | Mean events per second over the run. |
//! | `throughput.written_per_s` | number | **gate** Mean rows written per second over the run. |
//! | `throughput.peak_written_per_s` | integer | Rows written in the busiest second. |
//! | `throughput.produced[]`, `.consumed[]`, `.written[]` | list of integers | Counts per second. |
//! | `producer.sent`, `.failed_deliveries` | integer | Events handed to the broker, deliveries that failed. |
//! | `producer.behind_schedule_ms.{count,...,p99,max,...}` | number | How late sends were against their schedule, ms. |
//! | `memory.peak_rss_mb.<process>` | number | **gate** Highest resident memory of each process, MB. |
//! | `memory.peak_cpu_percent.<process>` | number | Highest CPU of each process, % of one core. |
//! | `memory.timelines.<process>[]` | list | Samples: `at_ms`, `rss_mb` and `cpu_percent` (null when absent). |
//! | `memory.gc.cassandra` | object | From Cassandra's GC log (a Cassandra roadtest starts with its launcher: local target, roadtest's image on containers; absent elsewhere): `collections`, `full_collections`, `pause_ms.{p50,p99,max}`, `gc_time_percent` (% of the run paused), `heap_max_mb`, `heap_used_mb[]` (`at_s`, `before`, `after`: MB around each collection). |
//! | `consumer.processes[]` | list | Each consumer process: `pid` (real runs) or `incarnation` (sim), `exited_cleanly`, `stats` (the core's counters: consumed, written, committed offsets per partition, ...). |
//! | `consumer.sim` | object | Simulated runs only: `virtual_end_s`, `steps`, `database_rows_lost_in_crashes`, `latencies`. |
//! | `verify.expected` | integer | **gate** Events the seed says were sent. |
//! | `verify.found` | integer | **gate** Expected events found in the database. |
//! | `verify.lost` | integer | **gate** Expected events not found. |
//! | `verify.corrupt` | integer | **gate** Rows found whose fields differ from what was sent. |
//! | `verify.unexpected` | integer | **gate** Rows found that nobody sent. |
//! | `verify.duplicates_written` | integer | At least this many writes beyond the first of one event (at-least-once redelivery): rows the consumers reported writing minus events sent. |
//! | `verify.discrepancies[]` | list | Up to 20 examples: `vehicle_id`, `seq`, `field`, `expected`, `found`. |
//! | `faults[]` | list of objects | Each planned fault as executed, real and simulated alike: `entry`, `action`, `service`, `trigger`, `duration_s`, `network`, `at_s` (null: never fired), `recovery_started_at_s`, `ready_after_s`, `lag_before`, `lag_recovered_after_s`, `latency_recovered_after_s`, `latency_threshold_ms`, `events_lost`, `error`. |
//! | `tampered[]` | list of objects | Rows `tamper` faults changed, deleted or inserted after the drain: `entry`, `vehicle_id`, `timestamp_ms`, `seq`, `kind` (`change`, `delete`, `insert`), `field` (for `change`). Absent in older reports (read as empty). |
//! | `alerts` | object | With `[[alerts]]` on a real target: `expected`, `received`, `missed`, `spurious`, `duplicated`, `malformed` (posts refused), `latency_ms.{p50,p99,max}` (completing event's intended send time to arrival; null without a match), `missed_examples[]`, `spurious_examples[]`. Absent otherwise. |
//! | `oom_kills[]` | list of objects | Containers the kernel killed for lack of memory during the run (containers target; from Docker's events): `service`, `at_s`, `exit_code` (137), `restarted_at_s` (by Docker's restart policy; null: it stayed down), `events_before` (events meant to be sent by then), `events_lost` (lost events intended from it until the next). Absent when there were none. |
//! | `errors[]` | list of strings | Outages and problems met during the run. |
//! | `expectations[]` | list | **gate** One per expectation: `name`, `comparison` (`at_most`/`at_least`), `threshold`, `value`, `passed`. |
//! | `passed` | bool | **gate** The verdict: every expectation held. |

pub mod baseline;
mod bitmap;
mod charts;
pub mod compare;
pub mod gate;
mod html;
mod junit;
mod knee_chart;
mod store;
mod text;
mod verdict;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::alerts::AlertsSection;
use crate::faults::FaultRecord;
use crate::faults::tamper::TamperRecord;
use crate::ingest::core::IngestStats;
use crate::measure::gc::GcSection;
use crate::measure::{
    IntervalSummary, LatencyRecorder, LatencySummary, PercentilePoint, ProcessPoint,
    ThroughputSeries,
};
use crate::scenario::Scenario;
use crate::targets::containers::OomKill;

pub use crate::time::format_rfc3339;
pub use bitmap::FONT_ENV;
pub use charts::{LATENCY_PNG_FILE_NAME, LatencyPng, write_latency_png};
pub use html::{HTML_FILE_NAME, render_html, write_html};
pub use knee_chart::{KneePoint, knee_svg};
pub use store::{REPORT_FILE_NAME, ReportError};
pub use verdict::{Comparison, ExpectationResult, evaluate_expectations};

/// The value of `target.name` in a simulated run's report (the views label such runs).
pub const SIM_TARGET_NAME: &str = "sim";

/// `consumer`: every consumer process of the run with its own final statistics, and what the
/// simulation adds about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumerSection {
    /// A consumer of the user's own: its command as the scenario gives it. Empty: roadtest's
    /// reference consumer, whose figures fill `processes` and the consume and write stages (a
    /// consumer of the user's own reports nothing of itself; its rows are counted instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// A consumer of the user's own as a Docker image (`NAME:TAG`), run as a container; its
    /// memory and CPU are the container's (`memory`, `cpu` under `consumer`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// The consumer ran elsewhere (`managed = false`): roadtest started nothing and counted its
    /// rows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub runs_elsewhere: bool,
    pub processes: Vec<ConsumerProcess>,
    /// Simulated runs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimSection>,
}

impl ConsumerSection {
    /// How a consumer of the user's own is named (its command, or `image NAME:TAG`); `None`
    /// for the reference consumer and for one that runs elsewhere.
    pub fn own_name(&self) -> Option<String> {
        if self.runs_elsewhere {
            None
        } else if !self.image.is_empty() {
            Some(format!("image {}", self.image))
        } else if !self.command.is_empty() {
            Some(self.command.join(" "))
        } else {
            None
        }
    }
}

/// One consumer process (a restart starts another).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerProcess {
    /// Its process id (real runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Which start of the consumer it was, from 0 (simulated runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<u64>,
    /// Whether it exited by itself after SIGTERM (or the sim's stop).
    pub exited_cleanly: bool,
    /// The core's counters when it last reported.
    pub stats: IngestStats,
}

/// `consumer.sim`: the simulation's own figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimSection {
    /// Virtual seconds when the run ended.
    pub virtual_end_s: f64,
    /// Happenings the simulation processed.
    pub steps: u64,
    /// Rows the simulated database lost in crashes (acknowledged, not yet synced).
    pub database_rows_lost_in_crashes: u64,
    /// The latency model the run used.
    pub latencies: serde_json::Value,
}

/// The layout version written into every report.
pub const SCHEMA_VERSION: u32 = 1;

/// Most discrepancies a report lists; the counts in `verify` cover all of them.
pub const DISCREPANCY_COUNT_MAX: usize = 20;

/// Stage key: from handing an event to the producer until the broker acknowledged it.
pub const STAGE_PRODUCE_ACK_MS: &str = "produce_ack_ms";
/// Stage key: from the producer's send (the message timestamp) until the consumer read the event.
pub const STAGE_CONSUME_MS: &str = "consume_ms";
/// Stage key: from the consumer reading the event until the database acknowledged the row.
pub const STAGE_WRITE_ACK_MS: &str = "write_ack_ms";

/// The report of one run. See the module documentation for the schema by key path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The layout version, [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Version of the roadtest that ran.
    pub roadtest_version: String,
    /// Commit roadtest was built from, when known.
    pub git_commit: Option<String>,
    /// The root seed of the run.
    pub seed: u64,
    /// What ran.
    pub scenario: ScenarioSection,
    /// Where the pipeline ran.
    pub target: TargetSection,
    /// The host that ran roadtest.
    pub machine: MachineSection,
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
    /// Wall-clock end, RFC 3339 UTC.
    pub finished_at: String,
    /// Wall-clock length of the run, in seconds.
    pub duration_s: f64,
    /// The command that replays this run.
    pub replay_command: String,
    /// Latency distributions.
    pub latency: LatencySection,
    /// Events per second through each stage.
    pub throughput: ThroughputSection,
    /// What the producer side did.
    pub producer: ProducerSection,
    /// Memory and CPU of the processes of the run.
    pub memory: MemorySection,
    /// The consumer's own statistics, as it reports them.
    pub consumer: ConsumerSection,
    /// What arrived, against what was sent.
    pub verify: VerifySection,
    /// Faults injected, as executed.
    pub faults: Vec<FaultRecord>,
    /// Rows tamper faults changed, deleted or inserted after the drain (verification must count
    /// each as corrupt, lost or unexpected).
    #[serde(default)]
    pub tampered: Vec<TamperRecord>,
    /// Containers the kernel killed for lack of memory during the run (containers target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oom_kills: Vec<OomKill>,
    /// The alerts the pipeline posted to the run's webhook against those the seed says must
    /// fire (a scenario with `[[alerts]]` on a real target; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsSection>,
    /// Outages and problems met during the run.
    pub errors: Vec<String>,
    /// Every expectation of the scenario, checked.
    pub expectations: Vec<ExpectationResult>,
    /// The verdict: every expectation held (see [`Report::finish_verdict`]).
    pub passed: bool,
}

/// What ran.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScenarioSection {
    /// Scenario name.
    pub name: String,
    /// Stable content hash of the scenario without its seed ([`Scenario::hash`]): the first 64
    /// bits of SHA-256 of its canonical JSON, as 16 hex digits. `roadtest compare` fails the gate
    /// when it differs from the baseline's.
    pub hash: String,
    /// The scenario file, as given on the command line.
    pub path: String,
    /// The full scenario after overrides, as it ran.
    pub resolved: serde_json::Value,
}

/// Where the pipeline ran.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TargetSection {
    /// `containers`, `local`, `external` or `sim`.
    pub name: String,
    /// Version of each service, by service name.
    pub service_versions: BTreeMap<String, String>,
}

/// The host that ran roadtest.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MachineSection {
    /// Logical cores available to roadtest.
    pub cores: u32,
    /// Total memory of the host, in MB; 0 when unknown.
    pub memory_mb: u64,
    /// Operating system and kernel release, like `linux 6.8.0`.
    pub os: String,
}

/// Latency distributions, in ms.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencySection {
    /// End to end: from the intended send time until the database acknowledged the row.
    pub e2e_ms: LatencySummary,
    /// Per stage, keyed by [`STAGE_PRODUCE_ACK_MS`], [`STAGE_CONSUME_MS`], [`STAGE_WRITE_ACK_MS`];
    /// a stage the target cannot observe is left out.
    pub stages: BTreeMap<String, LatencySummary>,
    /// End-to-end latency per second of the run.
    pub e2e_intervals: Vec<IntervalSummary>,
    /// The end-to-end percentile distribution ([`LatencyRecorder::percentile_curve`]); empty in
    /// reports written before it existed.
    ///
    /// [`LatencyRecorder::percentile_curve`]: crate::measure::LatencyRecorder::percentile_curve
    #[serde(default)]
    pub e2e_percentiles: Vec<PercentilePoint>,
}

/// Events per second through each stage.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThroughputSection {
    /// Mean events acknowledged by the broker per second.
    pub produced_per_s: f64,
    /// Mean events read by the consumer per second.
    pub consumed_per_s: f64,
    /// Mean rows acknowledged by the database per second.
    pub written_per_s: f64,
    /// Rows written in the busiest second.
    pub peak_written_per_s: u64,
    /// Events produced in each second of the run.
    pub produced: Vec<u64>,
    /// Events consumed in each second of the run.
    pub consumed: Vec<u64>,
    /// Rows written in each second of the run.
    pub written: Vec<u64>,
}

/// What the producer side did.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProducerSection {
    /// Events handed to the broker.
    pub sent: u64,
    /// Deliveries the broker did not acknowledge in the end.
    pub failed_deliveries: u64,
    /// How late sends were against their schedule, ms (`max`, `p99`, ...).
    pub behind_schedule_ms: LatencySummary,
}

/// Memory and CPU of the processes of the run, by process name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MemorySection {
    /// Highest resident memory of each process, MB.
    pub peak_rss_mb: BTreeMap<String, f64>,
    /// Highest CPU of each process, % of one core.
    pub peak_cpu_percent: BTreeMap<String, f64>,
    /// Every sample of each process.
    pub timelines: BTreeMap<String, Vec<ProcessPoint>>,
    /// What a JVM's GC log says, by service (`cassandra`, when roadtest started it): pauses,
    /// time in GC, the heap's limit and its use around each collection. Absent without a log.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gc: BTreeMap<String, GcSection>,
}

/// What arrived, against what was sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VerifySection {
    /// Events the seed says were sent.
    pub expected: u64,
    /// Expected events found in the database.
    pub found: u64,
    /// Expected events not found.
    pub lost: u64,
    /// Rows found whose fields differ from what was sent.
    pub corrupt: u64,
    /// Rows found that nobody sent.
    pub unexpected: u64,
    /// Writes beyond the first of one event (at-least-once redelivery; not an error).
    pub duplicates_written: u64,
    /// The first [`DISCREPANCY_COUNT_MAX`] problems, as examples.
    pub discrepancies: Vec<Discrepancy>,
}

/// One lost, corrupt or unexpected event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discrepancy {
    /// The vehicle, like `veh-000042`.
    pub vehicle_id: String,
    /// The event's sequence number within its vehicle.
    pub seq: u64,
    /// The field that differs, or `row` for a whole lost or unexpected row.
    pub field: String,
    /// What was sent (null for an unexpected row).
    pub expected: serde_json::Value,
    /// What the database holds (null for a lost row).
    pub found: serde_json::Value,
}

impl Report {
    /// A report for a run of `scenario` (loaded from `scenario_path`) on the target `target_name`,
    /// started at `started_at`: identity, scenario and machine filled in, measurements empty,
    /// `finished_at` equal to `started_at` and `passed` false until [`Report::finish_verdict`].
    pub fn new(
        scenario: &Scenario,
        scenario_path: &Path,
        target_name: &str,
        replay_command: String,
        started_at: SystemTime,
    ) -> Report {
        let started_at = format_rfc3339(started_at);
        Report {
            schema_version: SCHEMA_VERSION,
            roadtest_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: None,
            seed: scenario.seed,
            scenario: ScenarioSection {
                name: scenario.name.clone(),
                hash: scenario.hash(),
                path: scenario_path.display().to_string(),
                resolved: serde_json::to_value(scenario).unwrap_or(serde_json::Value::Null),
            },
            target: TargetSection {
                name: target_name.to_string(),
                service_versions: BTreeMap::new(),
            },
            machine: MachineSection::detect(),
            finished_at: started_at.clone(),
            started_at,
            duration_s: 0.0,
            replay_command,
            latency: LatencySection::default(),
            throughput: ThroughputSection::default(),
            producer: ProducerSection::default(),
            memory: MemorySection::default(),
            consumer: ConsumerSection::default(),
            verify: VerifySection::default(),
            faults: Vec::new(),
            tampered: Vec::new(),
            oom_kills: Vec::new(),
            alerts: None,
            errors: Vec::new(),
            expectations: Vec::new(),
            passed: false,
        }
    }
}

impl Report {
    /// Sets the stage latencies and the produced and consumed throughput (means over `span_s`
    /// seconds and the per-second series).
    pub fn set_stages_and_flow(
        &mut self,
        stages: [&LatencyRecorder; 3],
        produced: &ThroughputSeries,
        consumed: &ThroughputSeries,
        span_s: f64,
    ) {
        let [produce_ack, consume, write_ack] = stages;
        self.latency.stages = BTreeMap::from([
            (STAGE_PRODUCE_ACK_MS.to_string(), produce_ack.summary()),
            (STAGE_CONSUME_MS.to_string(), consume.summary()),
            (STAGE_WRITE_ACK_MS.to_string(), write_ack.summary()),
        ]);
        self.throughput.produced_per_s = produced.mean_per_s(span_s);
        self.throughput.consumed_per_s = consumed.mean_per_s(span_s);
        self.throughput.produced = produced.per_second();
        self.throughput.consumed = consumed.per_second();
    }
}

impl MachineSection {
    /// The host this process runs on, as far as std and /proc tell.
    pub fn detect() -> MachineSection {
        let cores = std::thread::available_parallelism()
            .map_or(0, |count| u32::try_from(count.get()).unwrap_or(u32::MAX));
        let memory_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|meminfo| {
                meminfo
                    .lines()
                    .find_map(|line| line.strip_prefix("MemTotal:"))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb / 1_024);
        let os = match std::fs::read_to_string("/proc/sys/kernel/osrelease") {
            Ok(release) => format!("{} {}", std::env::consts::OS, release.trim()),
            Err(_) => std::env::consts::OS.to_string(),
        };
        MachineSection {
            cores,
            memory_mb,
            os,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::measure::{LatencyRecorder, ProcessSampler, own_pid};

    const SCENARIO: &str = r#"
name = "unit"
seed = 42
duration_s = 10
[fleet]
vehicle_count = 3
sample_interval_ms = 500
[expectations]
latency_e2e_p99_ms_max = 500.0
throughput_written_per_s_min = 5.0
"#;

    /// Three faults: a consumer kill that recovered, a broker latency fault still on, and a
    /// pause that never fired.
    pub(crate) fn sample_faults() -> Vec<FaultRecord> {
        use crate::faults::{NetworkFault, PlannedFault, Trigger};
        use crate::scenario::{FaultAction, Service};
        let planned = |entry, action, service, at_s: f64| PlannedFault {
            entry,
            action,
            service,
            trigger: Trigger::AtS(at_s),
            duration_s: 2.0,
            network: None,
        };
        let kill = FaultRecord {
            at_s: Some(3.5),
            recovery_started_at_s: Some(5.5),
            ready_after_s: Some(1.0),
            ..FaultRecord::planned(
                &planned(0, FaultAction::Kill, Service::Consumer, 3.5),
                500.0,
            )
        };
        let mut latency = planned(1, FaultAction::Latency, Service::Broker, 7.0);
        latency.network = Some(NetworkFault::Latency {
            delay_ms: 100,
            jitter_ms: 0,
        });
        let latency = FaultRecord {
            at_s: Some(7.0),
            ..FaultRecord::planned(&latency, 500.0)
        };
        let pause = planned(2, FaultAction::Pause, Service::Cassandra, 9.0);
        vec![kill, latency, FaultRecord::planned(&pause, 500.0)]
    }

    /// Three tampered rows: two changes and an insert for a vehicle outside the fleet.
    pub(crate) fn sample_tampered() -> Vec<crate::faults::tamper::TamperRecord> {
        use crate::faults::tamper::TamperRecord;
        use crate::scenario::TamperKind;
        let record = |vehicle: &str, seq, kind, field: Option<&str>| TamperRecord {
            entry: 1,
            vehicle_id: vehicle.to_string(),
            timestamp_ms: 1_767_225_600_000 + seq as i64 * 500,
            seq,
            kind,
            field: field.map(str::to_string),
        };
        vec![
            record("veh-000001", 4, TamperKind::Change, Some("speed_mps")),
            record("veh-000002", 7, TamperKind::Change, Some("latitude")),
            record("veh-<x>", 0, TamperKind::Insert, None),
        ]
    }

    /// A report with every section filled, as a run would leave it.
    pub(crate) fn sample_report() -> Report {
        let scenario = Scenario::parse(SCENARIO, Path::new("unit.toml")).unwrap();
        let mut report = Report::new(
            &scenario,
            Path::new("scenarios/unit.toml"),
            "sim",
            "roadtest run scenarios/unit.toml --seed 42".to_string(),
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600),
        );
        let mut e2e = LatencyRecorder::new();
        for i in 1..=60u64 {
            e2e.record(i * 1_000, i * 150);
        }
        report.latency.e2e_ms = e2e.summary();
        report.latency.e2e_intervals = e2e.intervals();
        report.latency.e2e_percentiles = e2e.percentile_curve();
        for stage in [STAGE_PRODUCE_ACK_MS, STAGE_CONSUME_MS, STAGE_WRITE_ACK_MS] {
            report
                .latency
                .stages
                .insert(stage.to_string(), e2e.summary());
        }
        report.throughput = ThroughputSection {
            produced_per_s: 6.0,
            consumed_per_s: 6.0,
            written_per_s: 6.0,
            peak_written_per_s: 7,
            produced: vec![6; 10],
            consumed: vec![6; 10],
            written: vec![5, 7, 6, 6, 6, 6, 6, 6, 6, 6],
        };
        report.producer.sent = 60;
        let mut sampler = ProcessSampler::new();
        sampler.sample(&[("roadtest".to_string(), own_pid())], 0);
        report.memory = MemorySection {
            peak_rss_mb: sampler.peaks_rss_mb(),
            peak_cpu_percent: BTreeMap::from([("roadtest".to_string(), 12.5)]),
            timelines: sampler.timelines(),
            gc: BTreeMap::new(),
        };
        report.verify = VerifySection {
            expected: 60,
            found: 59,
            lost: 1,
            corrupt: 0,
            unexpected: 0,
            duplicates_written: 2,
            discrepancies: vec![Discrepancy {
                vehicle_id: "veh-000001".to_string(),
                seq: 7,
                field: "row".to_string(),
                expected: serde_json::json!({"speed": 42.0}),
                found: serde_json::Value::Null,
            }],
        };
        report
            .errors
            .push("broker unreachable for 1.2 s".to_string());
        report.check_expectations(&scenario.expectations);
        report
    }

    #[test]
    fn report_round_trips_through_json() {
        let report = sample_report();
        let json = serde_json::to_string_pretty(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn every_gate_key_path_exists() {
        let json = serde_json::to_value(sample_report()).unwrap();
        let required = [
            "/schema_version",
            "/roadtest_version",
            "/git_commit",
            "/seed",
            "/scenario/name",
            "/scenario/hash",
            "/scenario/path",
            "/scenario/resolved/fleet/vehicle_count",
            "/target/name",
            "/target/service_versions",
            "/machine/cores",
            "/machine/memory_mb",
            "/machine/os",
            "/started_at",
            "/finished_at",
            "/duration_s",
            "/replay_command",
            "/verify/expected",
            "/verify/found",
            "/verify/lost",
            "/verify/corrupt",
            "/verify/unexpected",
            "/verify/duplicates_written",
            "/verify/discrepancies/0/vehicle_id",
            "/verify/discrepancies/0/seq",
            "/verify/discrepancies/0/field",
            "/verify/discrepancies/0/expected",
            "/verify/discrepancies/0/found",
            "/latency/e2e_ms/count",
            "/latency/e2e_ms/min",
            "/latency/e2e_ms/p50",
            "/latency/e2e_ms/p90",
            "/latency/e2e_ms/p99",
            "/latency/e2e_ms/p999",
            "/latency/e2e_ms/max",
            "/latency/e2e_ms/mean",
            "/latency/stages/produce_ack_ms/p99",
            "/latency/stages/consume_ms/p99",
            "/latency/stages/write_ack_ms/p99",
            "/latency/e2e_intervals/0/start_s",
            "/latency/e2e_intervals/0/count",
            "/latency/e2e_intervals/0/p50_ms",
            "/latency/e2e_intervals/0/p99_ms",
            "/latency/e2e_intervals/0/max_ms",
            "/latency/e2e_percentiles/0/percentile",
            "/latency/e2e_percentiles/0/value_ms",
            "/throughput/produced_per_s",
            "/throughput/consumed_per_s",
            "/throughput/written_per_s",
            "/throughput/peak_written_per_s",
            "/throughput/produced",
            "/throughput/consumed",
            "/throughput/written",
            "/producer/sent",
            "/producer/failed_deliveries",
            "/producer/behind_schedule_ms/max",
            "/producer/behind_schedule_ms/p99",
            "/memory/peak_rss_mb/roadtest",
            "/memory/peak_cpu_percent/roadtest",
            "/memory/timelines/roadtest/0/at_ms",
            "/memory/timelines/roadtest/0/rss_mb",
            "/memory/timelines/roadtest/0/cpu_percent",
            "/consumer",
            "/faults",
            "/errors/0",
            "/expectations/0/name",
            "/expectations/0/threshold",
            "/expectations/0/value",
            "/expectations/0/passed",
            "/passed",
        ];
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|path| json.pointer(path).is_none())
            .collect();
        assert!(missing.is_empty(), "missing key paths: {missing:?}");
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["seed"], 42);
        assert!(json["passed"].is_boolean());
        assert!(json["memory"]["peak_rss_mb"]["roadtest"].as_f64().unwrap() > 0.0);
        assert!(json["expectations"].as_array().unwrap().len() == 5);
    }

    #[test]
    fn new_report_describes_scenario_and_machine() {
        let report = sample_report();
        assert_eq!(report.schema_version, SCHEMA_VERSION);
        assert_eq!(report.scenario.name, "unit");
        assert_eq!(report.scenario.hash.len(), 16);
        assert_eq!(report.scenario.resolved["seed"], 42);
        assert_eq!(report.started_at, "2026-01-01T00:00:00.000Z");
        assert!(report.machine.cores >= 1);
        assert!(report.machine.os.starts_with(std::env::consts::OS));
    }
}
