//! Validation rules of a scenario: ranges and cross-field checks, each naming the key and what is allowed.

use std::path::Path;

use crate::faults;
use crate::scenario::{
    CommitlogSync, ConsumerSettings, ContainersSettings, DURATION_S_MAX, MotionModel,
    RecordSettings, Region, Scenario, ScenarioError, Service, Sink, VEHICLE_COUNT_MAX,
};

impl Scenario {
    /// Checks every range and cross-field rule; the first problem is returned.
    ///
    /// (Defined beside the rules, so the scenario model does not import its own checks.)
    pub fn validate(&self, file: &Path) -> Result<(), ScenarioError> {
        check(self).map_err(|(key, message)| ScenarioError::Invalid {
            file: file.to_path_buf(),
            key,
            message,
        })
    }
}

/// A failed rule: the key (dotted path) and a message saying what is allowed.
type Problem = (String, String);

fn problem(key: impl Into<String>, message: impl Into<String>) -> Result<(), Problem> {
    Err((key.into(), message.into()))
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    value: T,
    low: T,
    high: T,
) -> Result<(), Problem> {
    if !(low..=high).contains(&value) {
        return problem(
            key,
            format!("{value} is out of range; allowed {low} to {high}"),
        );
    }
    Ok(())
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 40
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 24
        && text.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks every rule; returns the first problem found.
fn check(scenario: &Scenario) -> Result<(), Problem> {
    if !is_name(&scenario.name) {
        return problem(
            "name",
            format!(
                "{:?} is not a valid name; use 1 to 40 of a-z, 0-9, '-' and '_'",
                scenario.name
            ),
        );
    }
    in_range("duration_s", scenario.duration_s, 1, DURATION_S_MAX)?;
    in_range(
        "start_timestamp_ms",
        scenario.start_timestamp_ms,
        0,
        4_102_444_800_000, // 2100-01-01
    )?;
    check_fleet(scenario)?;
    check_pipeline(scenario)?;
    check_faults(scenario)?;
    check_alerts(scenario)?;
    crate::gate_settings::check_settings(&scenario.gate)?;
    check_expectations(scenario)
}

fn check_fleet(scenario: &Scenario) -> Result<(), Problem> {
    let fleet = &scenario.fleet;
    in_range(
        "fleet.vehicle_count",
        fleet.vehicle_count,
        1,
        VEHICLE_COUNT_MAX,
    )?;
    match (fleet.sample_interval_ms, fleet.rate_hz) {
        (Some(_), Some(_)) => {
            return problem(
                "fleet.rate_hz",
                "give either fleet.sample_interval_ms or fleet.rate_hz, not both",
            );
        }
        (Some(interval_ms), None) => {
            in_range("fleet.sample_interval_ms", interval_ms, 10, 3_600_000)?;
        }
        (None, Some(rate_hz)) => in_range("fleet.rate_hz", rate_hz, 1.0 / 3600.0, 100.0)?,
        (None, None) => {
            return problem(
                "fleet.sample_interval_ms",
                "missing; give fleet.sample_interval_ms (10 to 3600000) or fleet.rate_hz (0.0003 to 100)",
            );
        }
    }
    in_range(
        "fleet.interval_jitter_percent",
        fleet.interval_jitter_percent,
        0.0,
        20.0,
    )?;
    check_region(&fleet.region)?;
    in_range("fleet.speeding_share", fleet.speeding_share, 0.0, 1.0)?;
    if fleet.speeding_share > 0.0 && fleet.motion == MotionModel::Urban {
        return problem(
            "fleet.speeding_share",
            "speeding vehicles are highway vehicles and fleet.motion = \"urban\" has none: set \
             fleet.motion = \"highway\" or \"mixed\", or leave speeding_share out",
        );
    }
    if let Some(ramp) = fleet.ramp {
        in_range(
            "fleet.ramp.start_vehicle_count",
            ramp.start_vehicle_count,
            1,
            fleet.vehicle_count,
        )?;
        in_range("fleet.ramp.ramp_s", ramp.ramp_s, 1, scenario.duration_s)?;
    }
    Ok(())
}

/// The region's corners in range and its span between 0.005 and 20 degrees each way.
fn check_region(region: &Region) -> Result<(), Problem> {
    in_range(
        "fleet.region.latitude_min",
        region.latitude_min,
        -80.0,
        80.0,
    )?;
    in_range(
        "fleet.region.latitude_max",
        region.latitude_max,
        -80.0,
        80.0,
    )?;
    in_range(
        "fleet.region.longitude_min",
        region.longitude_min,
        -180.0,
        180.0,
    )?;
    in_range(
        "fleet.region.longitude_max",
        region.longitude_max,
        -180.0,
        180.0,
    )?;
    let height = region.latitude_max - region.latitude_min;
    let width = region.longitude_max - region.longitude_min;
    if !(0.005..=20.0).contains(&height) {
        return problem(
            "fleet.region.latitude_max",
            format!(
                "the region spans {height} degrees of latitude; allowed 0.005 to 20 (latitude_max must exceed latitude_min)"
            ),
        );
    }
    if !(0.005..=20.0).contains(&width) {
        return problem(
            "fleet.region.longitude_max",
            format!(
                "the region spans {width} degrees of longitude; allowed 0.005 to 20 (longitude_max must exceed longitude_min)"
            ),
        );
    }
    Ok(())
}

fn check_pipeline(scenario: &Scenario) -> Result<(), Problem> {
    let pipeline = &scenario.pipeline;
    if !is_name(&pipeline.topic) {
        return problem(
            "pipeline.topic",
            format!(
                "{:?} is not a valid topic prefix; use 1 to 40 of a-z, 0-9, '-' and '_'",
                pipeline.topic
            ),
        );
    }
    if !is_identifier(&pipeline.keyspace) {
        return problem(
            "pipeline.keyspace",
            format!(
                "{:?} is not a valid keyspace prefix; use 1 to 24 of a-z, 0-9 and '_', starting with a letter",
                pipeline.keyspace
            ),
        );
    }
    in_range("pipeline.partitions", pipeline.partitions, 1, 1024)?;
    in_range(
        "pipeline.producer_buffer_mb",
        pipeline.producer_buffer_mb,
        1,
        1024,
    )?;
    in_range("pipeline.speedup", pipeline.speedup, 0.01, 1000.0)?;
    let consumer = &pipeline.consumer;
    in_range(
        "pipeline.consumer.batch_size",
        consumer.batch_size,
        1,
        ConsumerSettings::BATCH_SIZE_MAX,
    )?;
    in_range(
        "pipeline.consumer.max_in_flight",
        consumer.max_in_flight,
        1,
        ConsumerSettings::IN_FLIGHT_MAX,
    )?;
    in_range(
        "pipeline.consumer.session_timeout_ms",
        consumer.session_timeout_ms,
        ConsumerSettings::SESSION_TIMEOUT_MS_MIN,
        ConsumerSettings::SESSION_TIMEOUT_MS_MAX,
    )?;
    check_own_consumer(consumer)?;
    check_containers(&pipeline.containers)?;
    check_record(scenario)?;
    check_table(scenario)?;
    check_sink(scenario)?;
    check_unmanaged(scenario)
}

/// What each database takes: its own durability key, its own faults; PostgreSQL with fresh names,
/// and a consumer roadtest starts (not one running elsewhere).
fn check_sink(scenario: &Scenario) -> Result<(), Problem> {
    let pipeline = &scenario.pipeline;
    let sink = pipeline.sink;
    if sink == Sink::Cassandra && !pipeline.postgres_synchronous_commit {
        return problem(
            "pipeline.postgres_synchronous_commit",
            "applies to sink = \"postgres\" only; this scenario writes Cassandra (its durability \
             key is pipeline.cassandra_commitlog_sync)",
        );
    }
    if sink == Sink::Postgres {
        if pipeline.cassandra_commitlog_sync != CommitlogSync::default() {
            return problem(
                "pipeline.cassandra_commitlog_sync",
                "applies to sink = \"cassandra\" only; with sink = \"postgres\" use \
                 pipeline.postgres_synchronous_commit",
            );
        }
        if !pipeline.consumer.managed {
            return problem(
                "pipeline.sink",
                "\"postgres\" runs a consumer that roadtest starts (the reference consumer, \
                 pipeline.consumer.command, or .image on the containers target) so far: remove \
                 pipeline.consumer.managed = false, or write Cassandra",
            );
        }
        if !pipeline.fresh_names {
            return problem(
                "pipeline.fresh_names",
                "\"postgres\" needs fresh names: each run writes a schema of its own",
            );
        }
    }
    for (index, fault) in scenario.faults.iter().enumerate() {
        let database = matches!(fault.service, Service::Cassandra | Service::Postgres);
        if database && fault.service != sink.service() {
            return problem(
                format!("faults[{index}].service"),
                format!(
                    "this scenario writes {} (pipeline.sink): its database faults name service = \"{}\"",
                    sink.name(),
                    sink.service()
                ),
            );
        }
    }
    Ok(())
}

/// The containers target's memory settings: caps and heap in range, a heap that fits its
/// container (one that leaves too little off-heap room is allowed: the target warns).
fn check_containers(settings: &ContainersSettings) -> Result<(), Problem> {
    let key = |name: &str| format!("pipeline.containers.{name}");
    for (name, value) in [
        ("broker_memory_mb", settings.broker_memory_mb),
        ("database_memory_mb", settings.database_memory_mb),
    ] {
        if let Some(value) = value {
            in_range(&key(name), value, 256, 1_048_576)?;
        }
    }
    if let Some(heap_mb) = settings.cassandra_heap_mb {
        in_range(&key("cassandra_heap_mb"), heap_mb, 128, 524_288)?;
        let database_mb = settings
            .database_memory_mb
            .unwrap_or(ContainersSettings::DATABASE_MEMORY_MB_DEFAULT);
        if heap_mb >= database_mb {
            return problem(
                key("cassandra_heap_mb"),
                format!(
                    "a {heap_mb} MB heap does not fit a {database_mb} MB container \
                     (pipeline.containers.database_memory_mb); lower the heap or raise the cap"
                ),
            );
        }
    }
    Ok(())
}

/// A consumer that runs elsewhere: nothing to start, a fixed topic to read, and no process of
/// roadtest's to fault.
fn check_unmanaged(scenario: &Scenario) -> Result<(), Problem> {
    let consumer = &scenario.pipeline.consumer;
    if consumer.managed {
        return Ok(());
    }
    if !consumer.command.is_empty() || !consumer.image.is_empty() || !consumer.env.is_empty() {
        return problem(
            "pipeline.consumer.managed",
            "is false, so roadtest starts nothing: leave out command, image and env (or set \
             managed = true to have roadtest start the command or the image)",
        );
    }
    if !consumer.restart.is_no() {
        return problem(
            "pipeline.consumer.restart",
            "the consumer runs elsewhere (pipeline.consumer.managed = false): roadtest cannot \
             restart it; leave restart out, and let what runs it restart it",
        );
    }
    if scenario.pipeline.fresh_names {
        return problem(
            "pipeline.consumer.managed",
            "is false: a consumer that runs elsewhere reads a topic and writes a keyspace of its \
             own, so set pipeline.fresh_names = false and give them as pipeline.topic and \
             pipeline.keyspace",
        );
    }
    let process_fault = scenario.faults.iter().position(|fault| {
        fault.service == crate::scenario::Service::Consumer
            && matches!(
                fault.action,
                crate::scenario::FaultAction::Kill
                    | crate::scenario::FaultAction::Stop
                    | crate::scenario::FaultAction::Pause
            )
    });
    if let Some(index) = process_fault {
        return problem(
            format!("faults[{index}].service"),
            "the consumer runs elsewhere (pipeline.consumer.managed = false): roadtest cannot \
             kill, stop or pause it",
        );
    }
    Ok(())
}

/// The table: CQL names, each column once, vehicle and timestamp columns present; a table of
/// the user's own needs a consumer of the user's own.
fn check_table(scenario: &Scenario) -> Result<(), Problem> {
    let table = &scenario.pipeline.table;
    if table.is_default() {
        return Ok(());
    }
    if scenario.pipeline.consumer.is_reference() {
        return problem(
            "pipeline.table",
            "the reference consumer writes roadtest's table only; a table of your own needs a \
             consumer of your own that writes it (pipeline.consumer.command)",
        );
    }
    if !usable_name(&table.name) {
        return problem(
            "pipeline.table.name",
            format!(
                "{:?} is not a usable table name; {USABLE_NAMES}",
                table.name
            ),
        );
    }
    let naming = Naming {
        prefix: "pipeline.table",
        usable: usable_name,
        left_out: "needs a column: rows are found by vehicle and timestamp",
        unusable: |name| {
            format!("{name:?} is not a usable column name; {USABLE_NAMES} (\"\": no column)")
        },
        twice: |name| format!("column {name:?} is given to two fields"),
    };
    check_names(&table.columns(), Vec::new(), &naming)?;
    check_write_time(scenario)
}

/// What [`usable_name`] takes, as error messages say it.
const USABLE_NAMES: &str = "use up to 48 of a-z, 0-9 and '_', starting with a letter or '_'";

/// A table or column name both databases take unquoted: up to 48 of a-z, 0-9 and '_',
/// starting with a letter or '_'.
fn usable_name(text: &str) -> bool {
    text.len() <= 48
        && text
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `pipeline.table.write_time`: PostgreSQL's only (Cassandra keeps each cell's write time), a
/// usable name of a column no field has.
fn check_write_time(scenario: &Scenario) -> Result<(), Problem> {
    let table = &scenario.pipeline.table;
    let column = table.write_time.as_str();
    if column.is_empty() {
        return Ok(());
    }
    if scenario.pipeline.sink != Sink::Postgres {
        return problem(
            "pipeline.table.write_time",
            "applies to sink = \"postgres\" only: Cassandra keeps every cell's write time \
             (WRITETIME), which roadtest reads",
        );
    }
    if !usable_name(column) {
        return problem(
            "pipeline.table.write_time",
            format!("{column:?} is not a usable column name; {USABLE_NAMES}"),
        );
    }
    if table.columns().iter().any(|(_, name)| *name == column) {
        return problem(
            "pipeline.table.write_time",
            format!("column {column:?} is a field's already; the write time needs its own"),
        );
    }
    Ok(())
}

fn first_tamper(scenario: &Scenario) -> Option<usize> {
    scenario
        .faults
        .iter()
        .position(|fault| fault.action == crate::scenario::FaultAction::Tamper)
}

/// The message format: names that JSON and a consumer can take, each once; vehicle and
/// timestamp always sent; a key that is sent; and a consumer of the user's own to read it.
fn check_record(scenario: &Scenario) -> Result<(), Problem> {
    let pipeline = &scenario.pipeline;
    let record = &pipeline.record;
    if record.is_default() {
        return Ok(());
    }
    if pipeline.consumer.is_reference() {
        return problem(
            "pipeline.record",
            "the reference consumer reads roadtest's record only; a message format of your own \
             needs a consumer of your own that reads it (pipeline.consumer.command)",
        );
    }
    check_record_names(record)?;
    if !crate::scenario::VALUE_FIELDS
        .iter()
        .any(|field| record.sends(field))
    {
        return problem(
            "pipeline.record",
            "sends nothing but vehicle_id and timestamp; verification needs at least one more \
             field (its write time is the row's)",
        );
    }
    if !RecordSettings::FIELDS.contains(&record.key.as_str()) || !record.sends(&record.key) {
        return problem(
            "pipeline.record.key",
            format!(
                "{:?} is not a field the message carries; use one of {} that is not left out",
                record.key,
                RecordSettings::FIELDS.join(", ")
            ),
        );
    }
    Ok(())
}

/// Each field's name in the message: usable in JSON without escaping, once; vehicle and
/// timestamp never left out.
fn check_record_names(record: &RecordSettings) -> Result<(), Problem> {
    let naming = Naming {
        prefix: "pipeline.record",
        usable: |name| {
            name.len() <= 64
                && name
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        },
        left_out: "cannot be left out: rows are found by vehicle and timestamp",
        unusable: |name| {
            format!(
                "{name:?} is not a usable field name; use up to 64 of A-Z, a-z, 0-9, '_', \
                 '-' and '.', starting with a letter or '_' (\"\" leaves the field out)"
            )
        },
        twice: |name| format!("{name:?} names two fields of the message"),
    };
    let taken = if record.format_version {
        vec!["format_version"]
    } else {
        Vec::new()
    };
    check_names(&record.names(), taken, &naming)
}

/// How one mapping (message fields or table columns) names roadtest's fields: the key prefix,
/// the rule a name must follow and the words of each problem.
struct Naming {
    prefix: &'static str,
    usable: fn(&str) -> bool,
    left_out: &'static str,
    unusable: fn(&str) -> String,
    twice: fn(&str) -> String,
}

/// Each (field, name) of a mapping: vehicle and timestamp named, every name usable and used once
/// (`taken`: names already in use). `""` leaves a field out.
fn check_names<'a>(
    pairs: &[(&'static str, &'a str)],
    mut taken: Vec<&'a str>,
    naming: &Naming,
) -> Result<(), Problem> {
    for &(field, name) in pairs {
        let key = format!("{}.{field}", naming.prefix);
        if name.is_empty() {
            if matches!(field, "vehicle_id" | "timestamp") {
                return problem(key, naming.left_out);
            }
            continue;
        }
        if !(naming.usable)(name) {
            return problem(key, (naming.unusable)(name));
        }
        if taken.contains(&name) {
            return problem(key, (naming.twice)(name));
        }
        taken.push(name);
    }
    Ok(())
}

/// A consumer of the user's own: a program to run, and environment variables that do not take
/// the place of roadtest's contract.
fn check_own_consumer(consumer: &ConsumerSettings) -> Result<(), Problem> {
    if consumer
        .command
        .first()
        .is_some_and(|program| program.trim().is_empty())
    {
        return problem(
            "pipeline.consumer.command",
            "the first item is the program to run and cannot be empty",
        );
    }
    if !consumer.image.is_empty() {
        if !consumer.command.is_empty() {
            return problem(
                "pipeline.consumer.image",
                "and `command` are both set; a consumer is a program (`command`) or a Docker \
                 image (`image`): keep one (the image's own entrypoint and command run)",
            );
        }
        if let Err(message) = consumer
            .image
            .parse::<crate::targets::containers::ImageRef>()
        {
            return problem("pipeline.consumer.image", message);
        }
    }
    if !consumer.env.is_empty() && consumer.is_reference() {
        return problem(
            "pipeline.consumer.env",
            "is for a consumer of your own; add `command` or `image` (the reference consumer \
             takes its settings as keys of [pipeline.consumer])",
        );
    }
    for name in consumer.env.keys() {
        let key = format!("pipeline.consumer.env.{name}");
        let valid = name.bytes().next().is_some_and(|b| !b.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return problem(
                key,
                "is not a valid variable name; use A-Z, a-z, 0-9 and '_', not starting with a digit",
            );
        }
        if name.starts_with("ROADTEST_") {
            return problem(
                key,
                "ROADTEST_* variables are roadtest's contract with the consumer (README, \"Your own consumer\") and are set by the run",
            );
        }
    }
    Ok(())
}

fn check_faults(scenario: &Scenario) -> Result<(), Problem> {
    let duration_s = scenario.duration_s as f64;
    for (index, fault) in scenario.faults.iter().enumerate() {
        faults::check_spec(fault, duration_s)
            .or_else(|(field, message)| problem(format!("faults[{index}].{field}"), message))?;
    }
    if let Some(index) = first_tamper(scenario).filter(|_| !scenario.pipeline.fresh_names) {
        return problem(
            format!("faults[{index}].action"),
            "tamper needs fresh names (pipeline.fresh_names = true): a table with fixed names \
             holds earlier runs' rows too, and the rows a tamper fault inserts before the run's \
             start would fall outside the time window verification reads",
        );
    }
    // Checked on the resolved schedule, so seeded random triggers are covered too.
    let planned = faults::resolve(scenario);
    if let Some((earlier, later)) = faults::first_overlap(&planned) {
        let key = if scenario.faults[later.entry].random.is_some() {
            format!("faults[{}].random", later.entry)
        } else {
            format!("faults[{}].at_s", later.entry)
        };
        return problem(
            key,
            format!(
                "with seed {} this {} of the {} overlaps faults[{}] ({} for {} s); one service takes one fault at a time: move it, shorten duration_s, or widen between_s",
                scenario.seed,
                later.action.name(),
                later.service,
                earlier.entry,
                earlier.action.name(),
                earlier.duration_s
            ),
        );
    }
    Ok(())
}

/// Each `[[alerts]]` rule: a name of its own, then what the evaluator needs (a numeric field,
/// exactly one finite threshold, a finite `for_s` of 0 or more: [`crate::alerts`] checks those),
/// and a field the message carries.
fn check_alerts(scenario: &Scenario) -> Result<(), Problem> {
    for (index, rule) in scenario.alerts.iter().enumerate() {
        let key = |name: &str| format!("alerts[{index}].{name}");
        if rule.name.trim().is_empty() {
            return problem(
                key("name"),
                "is empty; give the alert a name (like \"speeding\")",
            );
        }
        if let Some(first) = scenario.alerts[..index]
            .iter()
            .position(|other| other.name == rule.name)
        {
            return problem(
                key("name"),
                format!(
                    "{:?} is also the name of alerts[{first}]; give each alert a name of its own",
                    rule.name
                ),
            );
        }
        if let Err(error) = crate::alerts::Rule::compile(rule) {
            return problem(key(error.key), error.message);
        }
        if !scenario.pipeline.record.sends(&rule.field) {
            return problem(
                key("field"),
                format!(
                    "the message leaves out {0} (pipeline.record.{0} = \"\"), so the pipeline \
                     cannot alert on it; send it or alert on another field",
                    rule.field
                ),
            );
        }
    }
    Ok(())
}

fn check_expectations(scenario: &Scenario) -> Result<(), Problem> {
    let expectations = &scenario.expectations;
    if let Some(p99_ms) = expectations.latency_e2e_p99_ms_max {
        in_range(
            "expectations.latency_e2e_p99_ms_max",
            p99_ms,
            0.001,
            3_600_000.0,
        )?;
    }
    if let Some(rate) = expectations.throughput_written_per_s_min {
        in_range(
            "expectations.throughput_written_per_s_min",
            rate,
            0.0,
            10_000_000.0,
        )?;
    }
    if let Some(p99_ms) = expectations.alerts_latency_p99_ms_max {
        in_range(
            "expectations.alerts_latency_p99_ms_max",
            p99_ms,
            0.001,
            3_600_000.0,
        )?;
    }
    let on_alerts = [
        (
            "alerts_missed_max",
            expectations.alerts_missed_max.is_some(),
        ),
        (
            "alerts_spurious_max",
            expectations.alerts_spurious_max.is_some(),
        ),
        (
            "alerts_duplicated_max",
            expectations.alerts_duplicated_max.is_some(),
        ),
        (
            "alerts_latency_p99_ms_max",
            expectations.alerts_latency_p99_ms_max.is_some(),
        ),
    ];
    if let Some((name, _)) = (on_alerts.iter()).find(|(_, set)| *set && scenario.alerts.is_empty())
    {
        return problem(
            format!("expectations.{name}"),
            "the scenario has no [[alerts]] rule to judge; add one, or leave this key out",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    const MINIMAL: &str = r#"
name = "unit"
seed = 1
duration_s = 10
[fleet]
vehicle_count = 3
sample_interval_ms = 500
motion = "highway"
"#;

    const SPEEDING: &str = r#"
[[alerts]]
name = "speeding"
field = "speed"
above = 130.0
for_s = 10
"#;

    use crate::scenario::tests::{error_of, parse};

    /// The error of MINIMAL with `alerts` appended, each rule's text edited by `edit`.
    fn alert_error(alerts: &str, edit: impl Fn(String) -> String) -> String {
        error_of(&format!("{MINIMAL}{}", edit(alerts.to_string())))
    }

    fn assert_names(message: &str, parts: &[&str]) {
        for part in parts {
            assert!(message.contains(part), "{part:?} not in {message}");
        }
    }

    #[test]
    fn a_consumer_restart_policy_is_read_and_refused_for_a_consumer_run_elsewhere() {
        use crate::scenario::RestartPolicy;
        let plain = parse(MINIMAL).expect("valid");
        assert_eq!(plain.pipeline.consumer.restart, RestartPolicy::No);
        let restarting = format!("{MINIMAL}[pipeline.consumer]\nrestart = \"on-failure\"\n");
        let parsed = parse(&restarting).expect("valid");
        assert_eq!(parsed.pipeline.consumer.restart, RestartPolicy::OnFailure);
        assert_ne!(parsed.hash(), plain.hash());
        let explicit_no = format!("{MINIMAL}[pipeline.consumer]\nrestart = \"no\"\n");
        assert_eq!(parse(&explicit_no).expect("valid").hash(), plain.hash());
        let elsewhere = format!(
            "{MINIMAL}[pipeline]\ntopic = \"t\"\nkeyspace = \"k\"\nfresh_names = false\n\
             [pipeline.consumer]\nmanaged = false\nrestart = \"on-failure\"\n"
        );
        assert_names(
            &error_of(&elsewhere),
            &["pipeline.consumer.restart", "cannot restart it"],
        );
        assert_names(
            &error_of(&restarting.replace("on-failure", "always")),
            &["restart", "always"],
        );
    }

    #[test]
    fn alerts_and_speeding_are_read_and_left_out_of_the_hash_when_absent() {
        let plain = parse(MINIMAL).expect("valid");
        assert!(plain.alerts.is_empty());
        assert_eq!(plain.fleet.speeding_share, 0.0);
        let explicit = parse(&MINIMAL.replace(
            "motion = \"highway\"",
            "motion = \"highway\"\nspeeding_share = 0.0",
        ))
        .expect("valid");
        assert_eq!(plain.hash(), explicit.hash(), "0.0 is the default");
        let speeding = parse(&format!(
            "{}{SPEEDING}",
            MINIMAL.replace(
                "motion = \"highway\"",
                "motion = \"highway\"\nspeeding_share = 0.25"
            )
        ))
        .expect("valid");
        assert_eq!(speeding.fleet.speeding_share, 0.25);
        assert_eq!(
            speeding.alerts,
            [crate::scenario::AlertRule {
                name: "speeding".to_string(),
                field: "speed".to_string(),
                above: Some(130.0),
                below: None,
                for_s: 10.0,
            }]
        );
        assert_ne!(speeding.hash(), plain.hash());
        let without_for_s = parse(&format!(
            "{MINIMAL}{}",
            SPEEDING.replace("for_s = 10\n", "")
        ))
        .expect("valid");
        assert_eq!(without_for_s.alerts[0].for_s, 0.0);
    }

    /// An edit of a rule's text and the parts its error must name.
    type EditCase = (fn(String) -> String, &'static [&'static str]);

    #[test]
    fn alert_rules_are_checked_key_by_key() {
        let cases: [EditCase; 10] = [
            (
                |rule| rule.replace("field = \"speed\"", "field = \"velocity\""),
                &[
                    "unit.toml: alerts[0].field",
                    "\"velocity\" is not a numeric field",
                    "latitude, longitude, speed, temperature, humidity",
                ],
            ),
            (
                |rule| rule.replace("above = 130.0", "above = 130.0\nbelow = 5.0"),
                &["alerts[0].below", "both set", "keep `above`"],
            ),
            (
                |rule| rule.replace("above = 130.0", ""),
                &["alerts[0].above", "missing", "below = NUMBER"],
            ),
            (
                |rule| rule.replace("above = 130.0", "above = inf"),
                &["alerts[0].above", "inf is not a finite number"],
            ),
            (
                |rule| rule.replace("for_s = 10", "for_s = -1"),
                &["alerts[0].for_s", "-1 is not a duration", "0 or more"],
            ),
            (
                |rule| rule.replace("for_s = 10", "for_s = nan"),
                &["alerts[0].for_s", "NaN is not a duration"],
            ),
            (
                |rule| rule.replace("name = \"speeding\"", "name = \"\""),
                &["alerts[0].name", "is empty", "give the alert a name"],
            ),
            (
                |rule| rule.replace("name = \"speeding\"", "name = \"  \""),
                &["alerts[0].name", "is empty"],
            ),
            (
                |rule| format!("{rule}{}", rule.replace("above = 130.0", "above = 150.0")),
                &[
                    "alerts[1].name",
                    "\"speeding\" is also the name of alerts[0]",
                    "a name of its own",
                ],
            ),
            (
                |rule| rule.replace("for_s = 10", "for_s = 10\nduration = 3"),
                &["alerts[0]", "unknown field `duration`"],
            ),
        ];
        for (edit, parts) in cases {
            assert_names(&alert_error(SPEEDING, edit), parts);
        }
        let second = format!(
            "{SPEEDING}{}",
            SPEEDING
                .replace("speeding", "cold")
                .replace("field = \"speed\"", "field = \"temperature\"")
                .replace("for_s = 10", "for_s = -0.5")
        );
        assert_names(&alert_error(&second, |rule| rule), &["alerts[1].for_s"]);
        parse(&format!(
            "{MINIMAL}{}",
            SPEEDING
                .replace("field = \"speed\"", "field = \"humidity\"")
                .replace("above = 130.0", "below = 20.5")
                .replace("for_s = 10", "for_s = 0")
        ))
        .expect("a below rule on another field with for_s = 0 is valid");
    }

    #[test]
    fn an_alert_needs_its_field_in_the_message() {
        let own_record = format!(
            "{MINIMAL}[pipeline.consumer]\ncommand = [\"./consumer\"]\n\
             [pipeline.record]\nspeed = \"\"\n{SPEEDING}"
        );
        assert_names(
            &error_of(&own_record),
            &[
                "alerts[0].field",
                "leaves out speed",
                "pipeline.record.speed",
            ],
        );
        parse(&own_record.replace("speed = \"\"", "speed = \"velocity\""))
            .expect("a renamed field is still sent");
    }

    #[test]
    fn the_speeding_share_is_a_share_of_highway_vehicles() {
        let share = |value: &str, motion: &str| {
            MINIMAL.replace(
                "motion = \"highway\"",
                &format!("motion = \"{motion}\"\nspeeding_share = {value}"),
            )
        };
        assert_names(
            &error_of(&share("1.5", "highway")),
            &["fleet.speeding_share", "1.5 is out of range", "0 to 1"],
        );
        assert_names(
            &error_of(&share("-0.1", "mixed")),
            &["fleet.speeding_share", "out of range"],
        );
        assert_names(
            &error_of(&share("0.2", "urban")),
            &[
                "fleet.speeding_share",
                "motion = \"urban\" has none",
                "\"mixed\"",
            ],
        );
        parse(&share("0.0", "urban")).expect("no speeding suits any fleet");
        parse(&share("1.0", "mixed")).expect("every highway vehicle may speed");
    }
}
