//! The scenario model: TOML into typed structs, defaults, validation with errors naming file and key, a stable hash.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The longest run a scenario may ask for (24 h).
pub const DURATION_S_MAX: u64 = 86_400;
/// The largest fleet a scenario may ask for.
pub const VEHICLE_COUNT_MAX: u32 = 1_000_000;
/// Default scenario epoch: 2026-01-01T00:00:00Z in milliseconds.
pub const DEFAULT_START_TIMESTAMP_MS: i64 = 1_767_225_600_000;

/// A scenario that failed to load or validate; the message names the file, the key and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read the scenario file: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The TOML is malformed or a key has the wrong type or is unknown.
    #[error("{file}: {key}: {message}")]
    Parse {
        file: PathBuf,
        key: String,
        message: String,
    },
    /// A value is out of its allowed range or contradicts another.
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
    },
}

/// A whole scenario: what to simulate, how the pipeline is set up, which faults to inject and
/// what the run must show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in topic, keyspace and report names: `[a-z0-9_-]{1,40}`.
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: String,
    /// The root seed; `--seed` overrides it.
    pub seed: u64,
    /// Scenario time the fleet drives, in seconds (1..=86400); `--duration-s` overrides it.
    pub duration_s: u64,
    /// Scenario epoch: the timestamp of scenario time zero, in ms since the Unix epoch.
    #[serde(default = "default_start_timestamp_ms")]
    pub start_timestamp_ms: i64,
    pub fleet: FleetSettings,
    #[serde(default)]
    pub pipeline: PipelineSettings,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Threshold alerts the pipeline must raise (`[[alerts]]`; left out when none, so scenarios
    /// without alerts keep their hash).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertRule>,
    #[serde(default)]
    pub expectations: Expectations,
    /// How `roadtest compare --gate` judges a run of this scenario against a baseline (left out
    /// when default, so scenarios without a `[gate]` table keep their hash).
    #[serde(
        default,
        skip_serializing_if = "crate::gate_settings::GateSettings::is_default"
    )]
    pub gate: crate::gate_settings::GateSettings,
}

fn default_start_timestamp_ms() -> i64 {
    DEFAULT_START_TIMESTAMP_MS
}

/// The simulated vehicles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSettings {
    /// Number of vehicles (1..=1,000,000); `--vehicles` overrides it.
    pub vehicle_count: u32,
    /// Time between two samples of one vehicle, in ms (10..=3,600,000). Give this or `rate_hz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_interval_ms: Option<u32>,
    /// Samples per second per vehicle; the alternative to `sample_interval_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_hz: Option<f64>,
    /// Seeded jitter of the sampling interval, in percent of it (0..=20).
    #[serde(default = "default_jitter_percent")]
    pub interval_jitter_percent: f64,
    /// How vehicles move.
    #[serde(default)]
    pub motion: MotionModel,
    /// Where vehicles start and stay.
    #[serde(default)]
    pub region: Region,
    /// Optional ramp: start with fewer vehicles and add the rest evenly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    /// The share of the highway vehicles (0.0..=1.0) that speed: they draw their cruise speeds
    /// from 122-162 km/h instead of 90-130 km/h. 0 (the default, left out of the hash): no
    /// vehicle speeds and the events are those of a fleet without the key.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub speeding_share: f64,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

fn default_jitter_percent() -> f64 {
    2.0
}

/// The motion model of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MotionModel {
    /// City traffic: 30-60 km/h, frequent stops, frequent turns.
    #[default]
    Urban,
    /// Motorway: 90-130 km/h, rare stops, gentle curves.
    Highway,
    /// Each vehicle is urban or highway, drawn from the seed (70% urban).
    Mixed,
}

/// A latitude/longitude box in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub latitude_min: f64,
    pub latitude_max: f64,
    pub longitude_min: f64,
    pub longitude_max: f64,
}

impl Default for Region {
    /// A city-sized box around Berlin (about 22 km x 27 km).
    fn default() -> Self {
        Region {
            latitude_min: 52.42,
            latitude_max: 52.62,
            longitude_min: 13.20,
            longitude_max: 13.60,
        }
    }
}

/// A linear ramp of the fleet size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// Vehicles active from the start (1..=vehicle_count).
    pub start_vehicle_count: u32,
    /// Seconds over which the remaining vehicles join, evenly (1..=duration_s).
    pub ramp_s: u64,
}

/// The pipeline under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    /// Topic name prefix; each run appends a unique suffix.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Partitions of the topic (1..=1024).
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Keyspace name prefix; each run appends a unique suffix.
    #[serde(default = "default_keyspace")]
    pub keyspace: String,
    /// Scenario time runs this many times faster than wall time (0.01..=1000).
    #[serde(default = "default_speedup")]
    pub speedup: f64,
    #[serde(default)]
    pub consumer: ConsumerSettings,
    /// `true` (the default): each run appends a unique suffix to `topic` and `keyspace`. `false`:
    /// both are used as written (a real consumer listens to a fixed topic and writes a fixed
    /// table), each run gets a time base of its own, and only its rows are verified.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub fresh_names: bool,
    /// The message format the pipeline expects; the default is roadtest's record, byte for byte.
    #[serde(default, skip_serializing_if = "RecordSettings::is_default")]
    pub record: RecordSettings,
    /// The table the pipeline writes; the default is roadtest's `telemetry`, created by roadtest.
    #[serde(default, skip_serializing_if = "TableSettings::is_default")]
    pub table: TableSettings,
    /// Cassandra's commit-log durability on the local target: `periodic` (fsync every 10 s, the
    /// default: a kill -9 can lose acknowledged writes) or `batch` (fsync before acknowledging).
    #[serde(default)]
    pub cassandra_commitlog_sync: CommitlogSync,
    /// The database the pipeline writes: `cassandra` (the default) or `postgres` (PostgreSQL 15,
    /// roadtest's table in a schema; the local target only).
    #[serde(default, skip_serializing_if = "Sink::is_default")]
    pub sink: Sink,
    /// PostgreSQL's `synchronous_commit` on the local target: `true` (the default: a commit is
    /// flushed to the WAL before it is acknowledged) or `false` (acknowledged at once, flushed within
    /// about 0.6 s: a kill -9 can lose acknowledged rows).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub postgres_synchronous_commit: bool,
    /// Where the local target's broker keeps its log: `memory` (the default: a restart keeps
    /// nothing) or `durable` (Tansu's SQLite storage in the run folder: topics, log and committed
    /// offsets survive a restart). The sim target models both; other targets refuse `durable`.
    #[serde(default, skip_serializing_if = "BrokerStorage::is_default")]
    pub broker_storage: BrokerStorage,
    /// Memory caps and the database's restart policy on the containers target.
    #[serde(default, skip_serializing_if = "ContainersSettings::is_default")]
    pub containers: ContainersSettings,
    /// What roadtest's producer may hold that the broker has not acknowledged, MB of keys and
    /// payloads (1..=1024); a send waits while the buffer is full.
    #[serde(
        default = "default_producer_buffer_mb",
        skip_serializing_if = "is_default_producer_buffer_mb"
    )]
    pub producer_buffer_mb: u32,
}

/// The producer's buffer unless a scenario says otherwise: 4 MB, about 18,000 of roadtest's
/// records (docs/benchmarks.md, the harness's own footprint).
pub const PRODUCER_BUFFER_MB_DEFAULT: u32 = 4;

fn default_producer_buffer_mb() -> u32 {
    PRODUCER_BUFFER_MB_DEFAULT
}

fn is_default_producer_buffer_mb(mb: &u32) -> bool {
    *mb == PRODUCER_BUFFER_MB_DEFAULT
}

/// The containers target's memory caps (MB, swap included: none beyond them), Cassandra's heap
/// and what Docker does when the database container exits on its own. Unset: the target's
/// defaults (broker 1024 MB, database 2048 MB, heap 768 MB, no restart). Other targets ignore
/// them (and say so on stderr).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainersSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_memory_mb: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_memory_mb: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cassandra_heap_mb: Option<u32>,
    /// `no` (the default) or `on-failure`: Docker starts the database container again when it
    /// exits with an error (an OOM kill included), up to [`RestartPolicy::RETRIES_MAX`] times.
    #[serde(skip_serializing_if = "RestartPolicy::is_no")]
    pub database_restart: RestartPolicy,
}

impl ContainersSettings {
    /// The containers target's defaults, MB.
    pub const BROKER_MEMORY_MB_DEFAULT: u32 = 1024;
    pub const DATABASE_MEMORY_MB_DEFAULT: u32 = 2048;
    pub const CASSANDRA_HEAP_MB_DEFAULT: u32 = 768;

    pub fn is_default(&self) -> bool {
        *self == ContainersSettings::default()
    }
}

/// What is done when a service exits on its own (a crash, an OOM kill, an error exit): the
/// database container (Docker does it) or the consumer under test (roadtest does it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    OnFailure,
}

impl RestartPolicy {
    /// Restarts made at most with `on-failure`.
    pub const RETRIES_MAX: i64 = 10;

    pub fn is_no(&self) -> bool {
        *self == RestartPolicy::No
    }

    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
        }
    }
}

/// The database the pipeline writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sink {
    #[default]
    Cassandra,
    Postgres,
}

impl Sink {
    pub fn is_default(&self) -> bool {
        *self == Sink::Cassandra
    }

    pub fn name(self) -> &'static str {
        match self {
            Sink::Cassandra => "cassandra",
            Sink::Postgres => "postgres",
        }
    }

    /// The service that holds the table (the one `kill`, `stop` and `pause` faults name).
    pub fn service(self) -> Service {
        match self {
            Sink::Cassandra => Service::Cassandra,
            Sink::Postgres => Service::Postgres,
        }
    }
}

/// Where the broker keeps its log (`pipeline.broker_storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokerStorage {
    /// Tansu's memory storage: a restart keeps nothing.
    #[default]
    Memory,
    /// Tansu built with its SQLite (libsql) storage: a restart keeps topics, log and offsets.
    Durable,
}

impl BrokerStorage {
    pub fn is_default(&self) -> bool {
        *self == BrokerStorage::Memory
    }

    pub fn name(self) -> &'static str {
        match self {
            BrokerStorage::Memory => "memory",
            BrokerStorage::Durable => "durable",
        }
    }
}

/// Cassandra's commit-log durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitlogSync {
    /// fsync every 10 s (Cassandra's default).
    #[default]
    Periodic,
    /// fsync before acknowledging (2 ms group window).
    Batch,
}

impl CommitlogSync {
    /// The name in scenario files, in cassandra.yaml and on the command line of the Cassandra
    /// launcher (`harness/services/cassandra-node`).
    pub fn name(self) -> &'static str {
        match self {
            CommitlogSync::Periodic => "periodic",
            CommitlogSync::Batch => "batch",
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn default_topic() -> String {
    "telemetry".to_string()
}
fn default_partitions() -> u32 {
    3
}
fn default_keyspace() -> String {
    "roadtest".to_string()
}
fn default_speedup() -> f64 {
    1.0
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            topic: default_topic(),
            partitions: default_partitions(),
            keyspace: default_keyspace(),
            speedup: default_speedup(),
            consumer: ConsumerSettings::default(),
            fresh_names: true,
            record: RecordSettings::default(),
            table: TableSettings::default(),
            cassandra_commitlog_sync: CommitlogSync::default(),
            sink: Sink::default(),
            postgres_synchronous_commit: true,
            broker_storage: BrokerStorage::default(),
            containers: ContainersSettings::default(),
            producer_buffer_mb: PRODUCER_BUFFER_MB_DEFAULT,
        }
    }
}

/// The telemetry message as the pipeline under test expects it: the name of each field in the
/// message (`""`: left out), how the timestamp is written, whether `format_version` is sent, and
/// which field is the Kafka key. The default is roadtest's record (docs/report.md), byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordSettings {
    pub vehicle_id: String,
    pub seq: String,
    pub timestamp: String,
    pub latitude: String,
    pub longitude: String,
    pub speed: String,
    pub temperature: String,
    pub humidity: String,
    /// How `timestamp` is written.
    pub timestamp_encoding: TimestampEncoding,
    /// Whether `"format_version": 1` is sent (first, under that name).
    pub format_version: bool,
    /// The field (by roadtest's name, like `vehicle_id`) whose value is the Kafka message key.
    pub key: String,
}

impl RecordSettings {
    /// roadtest's names of the fields, in the order a record carries them.
    pub const FIELDS: [&'static str; 8] = [
        "vehicle_id",
        "seq",
        "timestamp",
        "latitude",
        "longitude",
        "speed",
        "temperature",
        "humidity",
    ];

    /// Each field's roadtest name and its name in the message (`""`: left out), in order.
    pub fn names(&self) -> [(&'static str, &str); 8] {
        let names = [
            &self.vehicle_id,
            &self.seq,
            &self.timestamp,
            &self.latitude,
            &self.longitude,
            &self.speed,
            &self.temperature,
            &self.humidity,
        ];
        std::array::from_fn(|i| (RecordSettings::FIELDS[i], names[i].as_str()))
    }

    /// Whether the message carries `field` (a roadtest name; `format_version` included).
    pub fn sends(&self, field: &str) -> bool {
        if field == "format_version" {
            return self.format_version;
        }
        self.names()
            .iter()
            .any(|(name, sent_as)| *name == field && !sent_as.is_empty())
    }

    pub fn is_default(&self) -> bool {
        *self == RecordSettings::default()
    }
}

impl Default for RecordSettings {
    fn default() -> Self {
        let [
            vehicle_id,
            seq,
            timestamp,
            latitude,
            longitude,
            speed,
            temperature,
            humidity,
        ] = RecordSettings::FIELDS.map(str::to_string);
        RecordSettings {
            vehicle_id,
            seq,
            timestamp,
            latitude,
            longitude,
            speed,
            temperature,
            humidity,
            timestamp_encoding: TimestampEncoding::default(),
            format_version: true,
            key: "vehicle_id".to_string(),
        }
    }
}

/// The table the pipeline writes: its name, the column of each field (`""`: no column, so the
/// field is not checked), and whether roadtest creates it (`create = false`: the system under
/// test creates keyspace and table itself, and roadtest waits for them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableSettings {
    pub name: String,
    pub create: bool,
    pub vehicle_id: String,
    pub seq: String,
    pub timestamp: String,
    pub latitude: String,
    pub longitude: String,
    pub speed: String,
    pub temperature: String,
    pub humidity: String,
    pub format_version: String,
    /// PostgreSQL only: a `timestamptz` column the system under test fills with each row's write
    /// time; end-to-end latency is measured to it. `""` (the default): to the commit time of the
    /// transaction that wrote the row.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub write_time: String,
}

/// The fields of a row besides its keys (vehicle and timestamp), in the order verification
/// compares them.
pub const VALUE_FIELDS: [&str; 7] = [
    "seq",
    "latitude",
    "longitude",
    "speed",
    "temperature",
    "humidity",
    "format_version",
];

/// The value fields that are doubles, in [`VALUE_FIELDS`] order.
pub const FLOAT_FIELDS: [&str; 5] = ["latitude", "longitude", "speed", "temperature", "humidity"];

impl TableSettings {
    /// roadtest's names of the fields a table can hold, in the order of its columns.
    pub const FIELDS: [&'static str; 9] = [
        "vehicle_id",
        "timestamp",
        "seq",
        "latitude",
        "longitude",
        "speed",
        "temperature",
        "humidity",
        "format_version",
    ];

    /// Each field's roadtest name and its column (`""`: none), in [`TableSettings::FIELDS`] order.
    pub fn columns(&self) -> [(&'static str, &str); 9] {
        let columns = [
            &self.vehicle_id,
            &self.timestamp,
            &self.seq,
            &self.latitude,
            &self.longitude,
            &self.speed,
            &self.temperature,
            &self.humidity,
            &self.format_version,
        ];
        std::array::from_fn(|i| (TableSettings::FIELDS[i], columns[i].as_str()))
    }

    /// The column of `field` (a roadtest name), if it has one.
    pub fn column(&self, field: &str) -> Option<&str> {
        self.columns()
            .into_iter()
            .find(|(name, column)| *name == field && !column.is_empty())
            .map(|(_, column)| column)
    }

    pub fn is_default(&self) -> bool {
        *self == TableSettings::default()
    }
}

impl Default for TableSettings {
    fn default() -> Self {
        let [
            vehicle_id,
            timestamp,
            seq,
            latitude,
            longitude,
            speed,
            temperature,
            humidity,
            format_version,
        ] = TableSettings::FIELDS.map(str::to_string);
        TableSettings {
            name: "telemetry".to_string(),
            create: true,
            write_time: String::new(),
            vehicle_id,
            seq,
            timestamp,
            latitude,
            longitude,
            speed,
            temperature,
            humidity,
            format_version,
        }
    }
}

/// How a record carries its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TimestampEncoding {
    /// Milliseconds since the Unix epoch, an integer (roadtest's record).
    #[default]
    #[serde(rename = "epoch_ms")]
    EpochMs,
    /// Seconds since the Unix epoch with three decimals, a number: `1767225600.123`.
    #[serde(rename = "epoch_s")]
    EpochS,
    /// An RFC 3339 string in UTC with milliseconds: `"2026-01-01T00:00:00.123Z"`.
    #[serde(rename = "rfc3339")]
    Rfc3339,
}

/// The consumer under test: the reference consumer (`roadtest ingest`, the default) with its
/// settings, or a program of the user's own (`command`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    /// A consumer of the user's own: program and arguments (no shell). A program with a `/` in
    /// it is relative to the scenario's folder, which is also its working folder; else it is
    /// looked up in PATH. Empty: the reference consumer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// A consumer of the user's own as a Docker image (`NAME:TAG`), run as a container beside
    /// the services of the containers target, on the host's network, with the same environment
    /// as `command`; its memory and CPU come from Docker's stats and its faults go through
    /// Docker. One of `command` and `image`. Empty: none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Added to the environment of `command` or `image` (roadtest's own `ROADTEST_*` variables
    /// come first and cannot be overridden here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `false`: the consumer already runs elsewhere (it reads `pipeline.topic` and writes
    /// `pipeline.keyspace` as written, so `fresh_names = false`); roadtest starts and signals
    /// nothing, and only produces, waits for the rows, verifies and measures.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub managed: bool,
    /// With `[[alerts]]` and the reference consumer: whether its alerter posts what fires to
    /// the run's webhook. It evaluates the rules and counts what fires in its metrics either way
    /// (`false`: alerting of your own, such as Prometheus rules on that count through
    /// Alertmanager, posts instead).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub alerter: bool,
    /// Rows written per batch (1..=10,000).
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Writes in flight at once (1..=1024).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// When offsets are committed.
    #[serde(default)]
    pub commit: CommitPolicy,
    /// Kafka consumer-group session timeout in ms (1,000..=300,000).
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u32,
    /// `no` (the default) or `on-failure`: roadtest starts the consumer again when it exits on
    /// its own during the run with anything but success (a crash included), as a supervisor
    /// (systemd, Kubernetes) would, up to [`RestartPolicy::RETRIES_MAX`] times. Every such exit
    /// is in the report's errors either way.
    #[serde(default, skip_serializing_if = "RestartPolicy::is_no")]
    pub restart: RestartPolicy,
}

fn default_batch_size() -> u32 {
    ConsumerSettings::BATCH_SIZE_DEFAULT
}
fn default_max_in_flight() -> u32 {
    ConsumerSettings::IN_FLIGHT_DEFAULT
}
fn default_session_timeout_ms() -> u32 {
    ConsumerSettings::SESSION_TIMEOUT_MS_DEFAULT
}

/// The reference consumer's defaults and limits, in one place: the scenario's checks, the
/// consumer's command line and its core all use these.
impl ConsumerSettings {
    pub const BATCH_SIZE_DEFAULT: u32 = 100;
    pub const BATCH_SIZE_MAX: u32 = 10_000;
    pub const IN_FLIGHT_DEFAULT: u32 = 64;
    pub const IN_FLIGHT_MAX: u32 = 1_024;
    pub const SESSION_TIMEOUT_MS_DEFAULT: u32 = 6_000;
    pub const SESSION_TIMEOUT_MS_MIN: u32 = 1_000;
    pub const SESSION_TIMEOUT_MS_MAX: u32 = 300_000;
}

impl ConsumerSettings {
    /// Whether this is roadtest's reference consumer (no `command` or `image`, and roadtest
    /// runs it).
    pub fn is_reference(&self) -> bool {
        self.command.is_empty() && self.image.is_empty() && self.managed
    }
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            command: Vec::new(),
            image: String::new(),
            env: BTreeMap::new(),
            managed: true,
            alerter: true,
            batch_size: default_batch_size(),
            max_in_flight: default_max_in_flight(),
            commit: CommitPolicy::default(),
            session_timeout_ms: default_session_timeout_ms(),
            restart: RestartPolicy::No,
        }
    }
}

/// When the consumer commits its Kafka offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitPolicy {
    /// After the rows are acknowledged by the database (at-least-once). The safe default.
    #[default]
    AfterWrite,
    /// Before writing (at-most-once): unsafe, loses events when the consumer dies; for showing that roadtest notices.
    BeforeWrite,
}

impl CommitPolicy {
    pub const ALL: [CommitPolicy; 2] = [CommitPolicy::AfterWrite, CommitPolicy::BeforeWrite];

    /// The name in scenario files and on the consumer's command line (`after-write`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CommitPolicy::AfterWrite => "after-write",
            CommitPolicy::BeforeWrite => "before-write",
        }
    }

    /// The policy of a name (see [`CommitPolicy::name`]); the error says what is allowed.
    pub fn parse(text: &str) -> Result<CommitPolicy, String> {
        CommitPolicy::ALL
            .into_iter()
            .find(|policy| policy.name() == text)
            .ok_or_else(|| format!("{text:?}: use after-write or before-write"))
    }
}

/// One fault of the schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// What happens.
    pub action: FaultAction,
    /// To which service.
    pub service: Service,
    /// Trigger: scenario time of the fault, in seconds (0 <= at_s < duration_s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_s: Option<f64>,
    /// Trigger: right after this many events were produced (1 ..= the run's events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_events: Option<u64>,
    /// Trigger: `count` faults at seeded random times within `between_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<RandomTrigger>,
    /// For `latency`: added one-way delay, ms (1..=60,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// For `latency`: uniform jitter around the delay, ms (0..=delay_ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// For `bandwidth`: the cap, bytes per second each way (1,000..=1,000,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_s: Option<u64>,
    /// For `tamper`: what to do to the stored rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TamperKind>,
    /// For `tamper`: how many rows (1..=1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u32>,
    /// For kill and stop: seconds until restart; for pause and network faults: seconds until
    /// the service or the network is healthy again (> 0; ignored by `reset` and `tamper`).
    #[serde(default = "default_fault_duration_s")]
    pub duration_s: f64,
}

fn default_fault_duration_s() -> f64 {
    2.0
}

/// A seeded random trigger: `count` faults, uniformly within `between_s`, drawn from the run's seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomTrigger {
    /// How many faults (1..=100).
    pub count: u32,
    /// [earliest, latest] scenario second (0 <= earliest < latest <= duration_s).
    pub between_s: [f64; 2],
}

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// SIGKILL, then restart after `duration_s`.
    Kill,
    /// SIGTERM, then restart after `duration_s`.
    Stop,
    /// SIGSTOP, then SIGCONT after `duration_s`.
    Pause,
    /// Network: add `delay_ms` (+- `jitter_ms`) each way between the clients and the service.
    Latency,
    /// Network: cap the bandwidth between the clients and the service at `bytes_per_s` each way.
    Bandwidth,
    /// Network: nothing passes between the clients and the service for `duration_s`.
    Blackhole,
    /// Network: reset every open connection between the clients and the service (instant).
    Reset,
    /// Data: change, delete or insert `rows` stored rows through roadtest's own session, after
    /// the drain and before verification (only `cassandra`; see [`crate::faults::tamper`]).
    Tamper,
}

/// What a `tamper` fault does to the stored rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TamperKind {
    /// Alter one field of stored rows by the smallest step (one ulp for a double, 1 for an integer).
    Change,
    /// Remove stored rows.
    Delete,
    /// Write rows nobody sent: for fleet vehicles at timestamps nobody sent, and for a vehicle
    /// outside the fleet.
    Insert,
}

impl TamperKind {
    /// The name a scenario file and a report use.
    pub fn name(self) -> &'static str {
        match self {
            TamperKind::Change => "change",
            TamperKind::Delete => "delete",
            TamperKind::Insert => "insert",
        }
    }
}

impl FaultAction {
    /// Whether the fault acts on the network path (through roadtest's proxy) rather than the process.
    pub fn is_network(self) -> bool {
        matches!(
            self,
            FaultAction::Latency
                | FaultAction::Bandwidth
                | FaultAction::Blackhole
                | FaultAction::Reset
        )
    }

    /// The action as a phrase for messages ("kill", "latency fault", ...).
    pub fn name(self) -> &'static str {
        match self {
            FaultAction::Kill => "kill",
            FaultAction::Stop => "stop",
            FaultAction::Pause => "pause",
            FaultAction::Latency => "latency fault",
            FaultAction::Bandwidth => "bandwidth fault",
            FaultAction::Blackhole => "blackhole",
            FaultAction::Reset => "reset",
            FaultAction::Tamper => "tamper",
        }
    }
}

/// The services of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Consumer,
    Broker,
    Cassandra,
    Postgres,
}

/// A threshold alert (`[[alerts]]`): it fires for a vehicle once `field` has been above (or
/// below) the threshold on its consecutive events for `for_s` seconds of their own timestamps
/// (the evaluation: [`crate::alerts`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// The alert's name (`alertname` in an Alertmanager payload); unique in the scenario.
    pub name: String,
    /// The event's field compared: one of [`AlertRule::FIELDS`].
    pub field: String,
    /// The condition holds while the field is greater than this. Give this or `below`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// The condition holds while the field is less than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// How long the condition must hold, seconds of event time (0: the first event fires).
    #[serde(default)]
    pub for_s: f64,
}

impl AlertRule {
    /// The fields a rule may compare: the event's measured values, in their record units
    /// (speed km/h, temperature degrees Celsius, humidity percent, latitude and longitude degrees).
    pub const FIELDS: [&'static str; 5] = FLOAT_FIELDS;
}

/// What the run must show; each becomes one checked expectation in the report.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Events that never arrived, at most.
    #[serde(default)]
    pub lost_max: u64,
    /// Rows whose fields differ from what was sent, at most.
    #[serde(default)]
    pub corrupt_max: u64,
    /// Rows nobody sent, at most.
    #[serde(default)]
    pub unexpected_max: u64,
    /// End-to-end p99 latency, at most (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_e2e_p99_ms_max: Option<f64>,
    /// Alerts the seed says must fire that never arrived at the webhook, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts_missed_max: Option<u64>,
    /// Alerts that arrived for a vehicle that had none due, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts_spurious_max: Option<u64>,
    /// Alerts that arrived again after their expected one was matched, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts_duplicated_max: Option<u64>,
    /// p99 from the event that completed an alert's condition to the alert's arrival, at most (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts_latency_p99_ms_max: Option<f64>,
    /// Rows written per second over the run, at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_written_per_s_min: Option<f64>,
}

/// Command-line overrides applied on top of a scenario file before validation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub seed: Option<u64>,
    pub vehicle_count: Option<u32>,
    pub duration_s: Option<u64>,
    pub start_timestamp_ms: Option<i64>,
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        Scenario::load_with(path, Overrides::default())
    }

    /// Reads and parses a scenario file, applies overrides, then validates.
    pub fn load_with(
        path: impl AsRef<Path>,
        overrides: Overrides,
    ) -> Result<Scenario, ScenarioError> {
        let file = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&file).map_err(|source| ScenarioError::Read {
            file: file.clone(),
            source,
        })?;
        let mut scenario = Scenario::parse(&text, &file)?;
        scenario.apply(overrides);
        scenario.validate(&file)?;
        Ok(scenario)
    }

    /// Parses TOML text (not yet validated); `file` only names the source in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
        let parse_error = |key: String, error: &toml::de::Error| ScenarioError::Parse {
            file: file.to_path_buf(),
            key,
            message: describe_toml_error(text, error),
        };
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| parse_error("(syntax)".into(), &e))?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = match e.path().to_string() {
                path if path == "." => "(top level)".to_string(),
                path => path,
            };
            parse_error(key, e.inner())
        })
    }

    /// Applies command-line overrides.
    pub fn apply(&mut self, overrides: Overrides) {
        if let Some(seed) = overrides.seed {
            self.seed = seed;
        }
        if let Some(count) = overrides.vehicle_count {
            self.fleet.vehicle_count = count;
        }
        if let Some(duration_s) = overrides.duration_s {
            self.duration_s = duration_s;
        }
        if let Some(start_ms) = overrides.start_timestamp_ms {
            self.start_timestamp_ms = start_ms;
        }
    }

    /// The scenario as a run with fixed names carries it out: with the default time base it gets
    /// `now_ms` (rounded down to a whole second) instead, so its rows cannot be mistaken for an
    /// earlier run's in the same table; its replay command names that time base. Unchanged with
    /// fresh names, or a time base of the file's or the command line's.
    pub fn with_run_time_base(&self, now_ms: i64) -> Scenario {
        let mut scenario = self.clone();
        if !self.pipeline.fresh_names && self.start_timestamp_ms == DEFAULT_START_TIMESTAMP_MS {
            scenario.start_timestamp_ms = now_ms - now_ms.rem_euclid(1000);
        }
        scenario
    }

    /// Returns the same scenario with another root seed.
    pub fn with_seed(mut self, seed: u64) -> Scenario {
        self.seed = seed;
        self
    }

    /// The command that replays this scenario as loaded from `path` (seed, fleet size and
    /// duration as flags), on `target` when given, with `extra_flags` (each starting with a
    /// space) appended. The one replay command of real and simulated runs.
    pub fn replay_command(&self, path: &Path, target: Option<&str>, extra_flags: &str) -> String {
        let target = target
            .map(|name| format!(" --target {name}"))
            .unwrap_or_default();
        let time_base = if self.start_timestamp_ms == DEFAULT_START_TIMESTAMP_MS {
            String::new()
        } else {
            format!(" --start-timestamp-ms {}", self.start_timestamp_ms)
        };
        format!(
            "roadtest run {} --seed {} --vehicles {} --duration-s {}{time_base}{target}{extra_flags}",
            path.display(),
            self.seed,
            self.fleet.vehicle_count,
            self.duration_s
        )
    }

    /// The resolved sampling interval of one vehicle before jitter, in ms.
    pub fn sample_interval_ms(&self) -> f64 {
        match (self.fleet.sample_interval_ms, self.fleet.rate_hz) {
            (Some(interval_ms), _) => f64::from(interval_ms),
            (None, Some(rate_hz)) => 1000.0 / rate_hz,
            (None, None) => 1000.0,
        }
    }

    /// The run's scenario time in milliseconds.
    pub fn duration_ms(&self) -> i64 {
        self.duration_s as i64 * 1000
    }

    /// A stable hash of everything but the seed (and, with fixed names, the run's time base): the
    /// same content gives the same hash whatever the key order, whitespace or comments, and runs
    /// of one scenario under many seeds share it.
    pub fn hash(&self) -> String {
        let mut without_seed = self.clone();
        without_seed.seed = 0;
        // With fixed names each run has a time base of its own, like a seed of its own.
        if !self.pipeline.fresh_names {
            without_seed.start_timestamp_ms = DEFAULT_START_TIMESTAMP_MS;
        }
        // Struct fields serialize in declaration order, so this JSON is canonical.
        let canonical = serde_json::to_vec(&without_seed).unwrap_or_default();
        let digest = Sha256::digest(&canonical);
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Scenario {
    /// The hash of the load alone: the scenario without its name, description, seed, consumer,
    /// message format, table and container settings. Two scenarios with the same load hash send
    /// the same events and faults into their pipelines (a consumer of the user's own against the
    /// reference consumer, say), so `roadtest compare` may set their runs side by side.
    pub fn load_hash(&self) -> String {
        let mut load = self.clone();
        load.name = String::new();
        load.description = String::new();
        load.pipeline.consumer = ConsumerSettings::default();
        load.pipeline.record = RecordSettings::default();
        load.pipeline.table = TableSettings::default();
        load.pipeline.containers = ContainersSettings::default();
        load.hash()
    }
}

/// Turns a toml error into one line with its position.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().to_string();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{message} (line {line}, column {column})")
        }
        None => message,
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Consumer => "consumer",
            Service::Broker => "broker",
            Service::Cassandra => "cassandra",
            Service::Postgres => "postgres",
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn commit_policy_names_are_the_scenario_files_names() {
        for policy in CommitPolicy::ALL {
            let in_files = serde_json::to_value(policy).expect("serializes");
            assert_eq!(in_files, policy.name());
            assert_eq!(CommitPolicy::parse(policy.name()), Ok(policy));
        }
        assert!(CommitPolicy::parse("sometimes").is_err());
    }

    const MINIMAL: &str = r#"
name = "unit"
seed = 1
duration_s = 10
[fleet]
vehicle_count = 3
sample_interval_ms = 500
"#;

    /// Parses and validates a scenario text as `unit.toml` (scenario_rules' tests use it too).
    pub(crate) fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let file = Path::new("unit.toml");
        let scenario = Scenario::parse(text, file)?;
        scenario.validate(file)?;
        Ok(scenario)
    }

    /// The error a scenario text is rejected with.
    pub(crate) fn error_of(text: &str) -> String {
        parse(text).expect_err("should be rejected").to_string()
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let scenario = parse(MINIMAL).unwrap();
        assert_eq!(scenario.pipeline, PipelineSettings::default());
        assert_eq!(scenario.fleet.region, Region::default());
        assert_eq!(scenario.sample_interval_ms(), 500.0);
        assert!(scenario.faults.is_empty());
    }

    #[test]
    fn hash_ignores_key_order_whitespace_comments_and_seed() {
        let reordered = r#"
# the same scenario, written differently
duration_s   = 10
seed = 99
name = "unit"

[fleet]
sample_interval_ms = 500   # twice a second
vehicle_count = 3
"#;
        let a = parse(MINIMAL).unwrap();
        let b = parse(reordered).unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 16);
        let changed = parse(&MINIMAL.replace("vehicle_count = 3", "vehicle_count = 4")).unwrap();
        assert_ne!(a.hash(), changed.hash());
    }

    #[test]
    fn the_load_hash_ignores_the_consumer_and_names_but_not_the_load() {
        let reference = parse(MINIMAL).unwrap();
        let own = parse(&format!(
            "{MINIMAL}\n[pipeline.consumer]\ncommand = [\"./consumer\"]\nbatch_size = 7\n\
             [pipeline.record]\nvehicle_id = \"vin\"\ntimestamp_encoding = \"rfc3339\"\n\
             [pipeline.table]\nname = \"readings\"\ncreate = false\n"
        ))
        .unwrap();
        let renamed = parse(&MINIMAL.replace("name = \"unit\"", "name = \"other\"")).unwrap();
        assert_ne!(
            reference.hash(),
            own.hash(),
            "another consumer is another scenario"
        );
        assert_eq!(reference.load_hash(), own.load_hash());
        assert_eq!(reference.load_hash(), renamed.load_hash());
        let more = parse(&MINIMAL.replace("vehicle_count = 3", "vehicle_count = 4")).unwrap();
        assert_ne!(reference.load_hash(), more.load_hash());
        let partitions = parse(&format!("{MINIMAL}\n[pipeline]\npartitions = 5\n")).unwrap();
        assert_ne!(reference.load_hash(), partitions.load_hash());
        // Scenarios without a consumer of their own hash as they did before it existed.
        assert_eq!(reference.hash(), parse(MINIMAL).unwrap().hash());
    }

    #[test]
    fn errors_name_the_key_and_what_is_allowed() {
        let unknown =
            error_of(&MINIMAL.replace("vehicle_count = 3", "vehicle_count = 3\ncars = 2"));
        assert!(
            unknown.contains("unit.toml") && unknown.contains("cars"),
            "{unknown}"
        );
        let wrong_type = error_of(&MINIMAL.replace("vehicle_count = 3", "vehicle_count = \"3\""));
        assert!(wrong_type.contains("fleet.vehicle_count"), "{wrong_type}");
        let too_many = error_of(&MINIMAL.replace("vehicle_count = 3", "vehicle_count = 1000001"));
        assert!(
            too_many.contains("fleet.vehicle_count") && too_many.contains("1 to 1000000"),
            "{too_many}"
        );
        let zero = error_of(&MINIMAL.replace("duration_s = 10", "duration_s = 0"));
        assert!(
            zero.contains("duration_s") && zero.contains("1 to 86400"),
            "{zero}"
        );
        let syntax = error_of("name = ");
        assert!(syntax.contains("line 1"), "{syntax}");
        let missing = error_of("name = \"x\"\nseed = 1\nduration_s = 1\n");
        assert!(missing.contains("fleet"), "{missing}");
        let both = error_of(&MINIMAL.replace(
            "sample_interval_ms = 500",
            "sample_interval_ms = 500\nrate_hz = 2.0",
        ));
        assert!(both.contains("fleet.rate_hz"), "{both}");
        let buffer = error_of(&format!("{MINIMAL}[pipeline]\nproducer_buffer_mb = 0\n"));
        assert!(
            buffer.contains("pipeline.producer_buffer_mb") && buffer.contains("1 to 1024"),
            "{buffer}"
        );
    }

    #[test]
    fn faults_are_checked_against_the_run() {
        let outside = error_of(&format!(
            "{MINIMAL}\n[[faults]]\naction = \"kill\"\nservice = \"consumer\"\nat_s = 12\n"
        ));
        assert!(outside.contains("faults[0].at_s"), "{outside}");
        let unknown_service = error_of(&format!(
            "{MINIMAL}\n[[faults]]\naction = \"kill\"\nservice = \"database\"\nat_s = 1\n"
        ));
        assert!(
            unknown_service.contains("faults[0].service"),
            "{unknown_service}"
        );
        let overlapping = error_of(&format!(
            "{MINIMAL}\n[[faults]]\naction = \"kill\"\nservice = \"broker\"\nat_s = 1\nduration_s = 3\n\
             [[faults]]\naction = \"pause\"\nservice = \"broker\"\nat_s = 2\n"
        ));
        let two_triggers = error_of(&format!(
            "{MINIMAL}\n[[faults]]\naction = \"kill\"\nservice = \"consumer\"\nat_s = 1\nafter_events = 5\n"
        ));
        assert!(
            two_triggers.contains("exactly one trigger"),
            "{two_triggers}"
        );
        let crowded = error_of(&format!(
            "{MINIMAL}\n[[faults]]\naction = \"kill\"\nservice = \"consumer\"\nduration_s = 2\n\
             random = {{ count = 20, between_s = [1.0, 9.0] }}\n"
        ));
        assert!(
            crowded.contains("faults[0].random") && crowded.contains("overlaps"),
            "{crowded}"
        );
        assert!(
            overlapping.contains("faults[1].at_s") && overlapping.contains("overlaps"),
            "{overlapping}"
        );
    }

    #[test]
    fn overrides_apply_before_validation() {
        let mut scenario = parse(MINIMAL).unwrap();
        scenario.apply(Overrides {
            seed: Some(7),
            vehicle_count: Some(0),
            duration_s: Some(60),
            start_timestamp_ms: Some(1_800_000_000_000),
        });
        assert_eq!((scenario.seed, scenario.duration_s), (7, 60));
        assert_eq!(scenario.start_timestamp_ms, 1_800_000_000_000);
        assert!(scenario.validate(Path::new("unit.toml")).is_err());
    }

    #[test]
    fn fixed_names_give_each_run_its_own_time_base_and_the_replay_names_it() {
        let fresh = parse(MINIMAL).unwrap();
        let now_ms = 1_800_000_123_456;
        assert_eq!(
            fresh.with_run_time_base(now_ms),
            fresh,
            "fresh names keep the time base"
        );
        let fixed = parse(&format!("{MINIMAL}\n[pipeline]\nfresh_names = false\n")).unwrap();
        let run = fixed.with_run_time_base(now_ms);
        assert_eq!(run.start_timestamp_ms, 1_800_000_123_000);
        let replay = run.replay_command(Path::new("x.toml"), Some("local"), "");
        assert!(
            replay.contains(" --start-timestamp-ms 1800000123000 --target local"),
            "{replay}"
        );
        // The replay's explicit time base is kept, so it sends the very same events.
        assert_eq!(run.with_run_time_base(now_ms + 60_000), run);
        assert!(
            !fresh
                .replay_command(Path::new("x.toml"), None, "")
                .contains("start")
        );
        assert_ne!(
            fixed.hash(),
            fresh.hash(),
            "fixed names are another scenario"
        );
        assert_eq!(
            run.hash(),
            fixed.hash(),
            "the time base, like the seed, is the run's"
        );
    }
}
