//! The local target on real services: Kafka on Tansu, CQL through the bridge, Cassandra restart, broker pause, no process left behind.
//!
//! These tests fail (never skip) when the services are not installed: run `roadtest services install`.
//! Each test that starts Cassandra holds `SERVICES`, so at most one node (~500 MB) runs at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt, stream};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use roadtest::clients::{KafkaConnection, cql, kafka, unique_suffix};
use roadtest::targets::{LocalOptions, LocalTarget, Role, TargetError};
use scylla::client::session::Session;
use scylla::response::{PagingState, PagingStateResponse};
use scylla::value::CqlTimestamp;

/// Serializes the tests that start services (Cassandra takes ~500 MB and most of 2 cores to start).
static SERVICES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bound on every wait for a client operation against a service that is up.
const CLIENT_WAIT: Duration = Duration::from_secs(60);
/// How long a process may take to disappear after it was killed.
const GONE_WAIT: Duration = Duration::from_secs(5);

const PARTITIONS: i32 = 3;
const MESSAGES: usize = 300;
const KEYS: usize = 30;

const VEHICLES: usize = 3;
const ROWS_PER_VEHICLE: i64 = 120;
const PAGE_SIZE: i32 = 50;
const BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;

/// Options for the installed services; fails (never skips) when they are missing.
fn installed_options() -> LocalOptions {
    let mut options = LocalOptions::from_env();
    options.roadtest_binary = PathBuf::from(env!("CARGO_BIN_EXE_roadtest"));
    for program in ["bin/tansu", "bin/cassandra-node"] {
        let path = options.home.join(program);
        assert!(
            path.exists(),
            "the local services are not installed ({} is missing); run `roadtest services install` \
             (or set ROADTEST_HOME to where they are installed)",
            path.display()
        );
    }
    options
}

/// A fresh, empty directory under the system temp dir.
fn fresh_temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("roadtest-local-target-{name}-{}", unique_suffix()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
    dir
}

// ---------------------------------------------------------------------------------------------
// /proc helpers
// ---------------------------------------------------------------------------------------------

/// The fields of /proc/PID/stat these tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: char,
    parent: u32,
    /// Start time in clock ticks after boot: tells a process from a later one with the same pid.
    start_ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), fields[1] field 4 (ppid), fields[19] field 22 (starttime).
    Some(Stat {
        state: fields.first()?.chars().next()?,
        parent: fields.get(1)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

fn command_line(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .unwrap_or_default()
}

/// Resident set size in MiB (VmRSS of /proc/PID/status).
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// One process, identified by pid and start time.
#[derive(Debug, Clone)]
struct Tracked {
    name: String,
    pid: u32,
    start_ticks: u64,
}

impl Tracked {
    fn new(name: &str, pid: u32) -> Tracked {
        let stat = stat(pid).unwrap_or_else(|| panic!("{name} (pid {pid}) is not running"));
        Tracked {
            name: name.to_string(),
            pid,
            start_ticks: stat.start_ticks,
        }
    }

    /// The state letter while this very process still exists (a zombie is 'Z').
    fn state(&self) -> Option<char> {
        stat(self.pid)
            .filter(|stat| stat.start_ticks == self.start_ticks)
            .map(|stat| stat.state)
    }
}

fn track_all(processes: &[(String, u32)]) -> Vec<Tracked> {
    processes
        .iter()
        .map(|(name, pid)| Tracked::new(name, *pid))
        .collect()
}

/// Waits until none of `processes` exists any more; `zombies_count_as_gone` for processes whose
/// parent is not this test (a zombie is dead, only its parent can reap it).
fn assert_all_gone(processes: &[Tracked], zombies_count_as_gone: bool, context: &str) {
    let deadline = Instant::now() + GONE_WAIT;
    loop {
        let left: Vec<(&Tracked, char)> = processes
            .iter()
            .filter_map(|process| process.state().map(|state| (process, state)))
            .filter(|(_, state)| !(zombies_count_as_gone && *state == 'Z'))
            .collect();
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let described: Vec<String> = left
                .iter()
                .map(|(process, state)| {
                    format!(
                        "{} (pid {}, state {state}, {})",
                        process.name,
                        process.pid,
                        command_line(process.pid)
                    )
                })
                .collect();
            panic!(
                "{context}: {} process(es) still there {GONE_WAIT:?} later: {}",
                left.len(),
                described.join("; ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every process below `root` (children, grandchildren, ...), found by scanning /proc.
fn descendants(root: u32) -> Vec<Tracked> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(stat) = stat(pid) {
                children.entry(stat.parent).or_default().push(pid);
            }
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for &pid in children.get(&parent).into_iter().flatten() {
            if let Some(stat) = stat(pid) {
                let name = command_line(pid);
                found.push(Tracked {
                    name: if name.is_empty() {
                        format!("pid {pid}")
                    } else {
                        name
                    },
                    pid,
                    start_ticks: stat.start_ticks,
                });
                queue.push(pid);
            }
        }
    }
    found
}

/// Polls until the state of `pid` satisfies `wanted` (bounded); returns the last state seen.
async fn wait_for_state(pid: u32, wanted: impl Fn(char) -> bool) -> Option<char> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = stat(pid).map(|stat| stat.state);
        if state.is_some_and(&wanted) || Instant::now() >= deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn pid_of(target: &mut LocalTarget, role: Role) -> Option<u32> {
    target
        .processes()
        .into_iter()
        .find(|(name, _)| name == role.name())
        .map(|(_, pid)| pid)
}

// ---------------------------------------------------------------------------------------------
// The main test: one target, every check in sequence
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_target_serves_kafka_and_cql_survives_restart_and_pause_and_cleans_up() {
    let _services = SERVICES.lock().await;
    let options = installed_options();
    let mut target = LocalTarget::start(options)
        .await
        .unwrap_or_else(|error| panic!("the local target did not start: {error}"));
    for (role, after) in target.ready_after() {
        eprintln!(
            "local_target: {role} ready after {:.2} s",
            after.as_secs_f64()
        );
    }
    let started: BTreeSet<String> = target.processes().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        started,
        BTreeSet::from(["broker", "cassandra", "cql-bridge"].map(String::from)),
        "the local target should run exactly the broker, Cassandra and the bridge"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (name, pid) in target.processes() {
        let rss = rss_mib(pid).unwrap_or_else(|| panic!("no VmRSS for {name} (pid {pid})"));
        eprintln!("local_target: {name} (pid {pid}) idle RSS {rss:.1} MiB");
        // Idle, Cassandra's JVM still holds its loaded classes and caches; the broker and the
        // bridge hold a runtime and their listeners.
        let floor = if name == "cassandra" { 150.0 } else { 3.0 };
        assert!(
            rss > floor,
            "{name} has an implausible idle RSS of {rss} MiB (floor {floor})"
        );
    }
    let endpoints = target.endpoints().clone();

    // 1. Kafka on Tansu.
    let (producer, topic, per_partition) = check_kafka_round_trip(&endpoints.kafka).await;

    // 2. CQL through the bridge.
    let keyspace = format!("local_target_{}", unique_suffix());
    let session = cql::connect(&endpoints.cql, CLIENT_WAIT)
        .await
        .unwrap_or_else(|error| panic!("cannot connect through the bridge: {error}"));
    let written = check_cql_round_trip(&session, &endpoints.cql.address(), &keyspace).await;

    // 3. A clean Cassandra restart keeps the data.
    check_cassandra_restart_keeps_data(&mut target, session, &keyspace, written).await;

    // 4. Pause and resume the broker.
    check_broker_pause_and_resume(&mut target, &producer, &topic, &per_partition).await;
    drop(producer);

    // 5a. Dropping the target leaves no process behind and removes its directory.
    let tracked = track_all(&target.processes());
    assert_eq!(
        tracked.len(),
        3,
        "expected 3 running services before the drop"
    );
    let dir = target.dir().to_path_buf();
    drop(target);
    assert_all_gone(&tracked, false, "after dropping the target");
    assert!(
        !dir.exists(),
        "the run directory {} is still there after the drop",
        dir.display()
    );
}

/// Check 1: keyed produce, group consume in per-partition order, sync commit, committed offsets
/// read back by a second consumer equal the end offsets. Returns the producer, the topic and the
/// message count per partition.
async fn check_kafka_round_trip(
    kafka: &KafkaConnection,
) -> (FutureProducer, String, BTreeMap<i32, i64>) {
    let topic = format!("local-target-{}", unique_suffix());
    kafka::create_topics(kafka, &[(&topic, PARTITIONS as u32)], 1, CLIENT_WAIT)
        .await
        .unwrap_or_else(|error| panic!("cannot create topic {topic}: {error}"));
    let producer: FutureProducer =
        kafka::producer_config(kafka, kafka::ProducerSettings::new(false))
            .create()
            .expect("cannot create the producer");

    // Message i has key k = i % KEYS and sequence number i / KEYS within its key.
    let messages: Vec<(String, String)> = (0..MESSAGES)
        .map(|i| {
            let key = format!("vehicle-{:02}", i % KEYS);
            let payload = format!("{key}:{}", i / KEYS);
            (key, payload)
        })
        .collect();
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(MESSAGES);
    for (key, payload) in &messages {
        let delivery = producer
            .send_result(FutureRecord::to(&topic).key(key).payload(payload))
            .unwrap_or_else(|(error, _)| panic!("cannot enqueue a message: {error}"));
        deliveries.push(delivery);
    }
    let mut partition_of_key: BTreeMap<String, i32> = BTreeMap::new();
    let mut last_offset_of_key: BTreeMap<String, i64> = BTreeMap::new();
    let mut end_offsets: BTreeMap<i32, i64> = BTreeMap::new();
    for (delivery, (key, _)) in deliveries.into_iter().zip(&messages) {
        let delivered = tokio::time::timeout(CLIENT_WAIT, delivery)
            .await
            .expect("no delivery report within the client wait")
            .expect("the delivery future was cancelled")
            .unwrap_or_else(|(error, _)| panic!("delivery of a {key} message failed: {error}"));
        let partition = *partition_of_key
            .entry(key.clone())
            .or_insert(delivered.partition);
        let end = end_offsets.entry(delivered.partition).or_insert(0);
        *end = (*end).max(delivered.offset + 1);
        assert_eq!(
            partition, delivered.partition,
            "key {key} went to two partitions"
        );
        if let Some(previous) = last_offset_of_key.insert(key.clone(), delivered.offset) {
            assert!(
                delivered.offset > previous,
                "key {key}: offset {} after {previous}: produce order not kept",
                delivered.offset
            );
        }
    }
    eprintln!(
        "local_target: produced {MESSAGES} keyed messages in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let used: BTreeSet<i32> = partition_of_key.values().copied().collect();
    assert_eq!(
        used.len(),
        PARTITIONS as usize,
        "{KEYS} keys should spread over all {PARTITIONS} partitions, used {used:?}"
    );

    // Consume everything with a group; offsets consecutive per partition, sequence per key in order.
    let group = format!("local-target-{}", unique_suffix());
    let consumer: StreamConsumer = kafka::consumer_config(kafka, &group, 6000)
        .create()
        .expect("cannot create the consumer");
    consumer
        .subscribe(&[&topic])
        .expect("cannot subscribe to the topic");
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + CLIENT_WAIT;
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut next_sequence: BTreeMap<String, usize> = BTreeMap::new();
    let mut first_message_after = None;
    for received in 0..MESSAGES {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("the group consumed only {received} of {MESSAGES} messages within {CLIENT_WAIT:?}")
            })
            .unwrap_or_else(|error| panic!("consume failed after {received} messages: {error}"));
        first_message_after.get_or_insert_with(|| started.elapsed());
        let partition = message.partition();
        let expected_offset = next_offset.get(&partition).copied().unwrap_or(0);
        assert_eq!(
            message.offset(),
            expected_offset,
            "partition {partition}: offsets must be consecutive from 0"
        );
        next_offset.insert(partition, message.offset() + 1);
        let key = String::from_utf8(message.key().expect("a message without key").to_vec())
            .expect("key is UTF-8");
        let payload = std::str::from_utf8(message.payload().expect("a message without payload"))
            .expect("payload is UTF-8");
        let sequence_text = payload
            .strip_prefix(&format!("{key}:"))
            .unwrap_or_else(|| panic!("payload {payload:?} does not belong to key {key}"));
        let sequence: usize = sequence_text.parse().expect("sequence is a number");
        let expected_sequence = next_sequence.entry(key.clone()).or_insert(0);
        assert_eq!(
            sequence, *expected_sequence,
            "key {key}: messages out of order within partition {partition}"
        );
        *expected_sequence += 1;
        assert_eq!(
            partition_of_key.get(&key),
            Some(&partition),
            "key {key} consumed from another partition than it was produced to"
        );
    }
    eprintln!(
        "local_target: group consumed {MESSAGES} messages in {:.2} s (first after {:.2} s: the group join)",
        started.elapsed().as_secs_f64(),
        first_message_after.unwrap_or_default().as_secs_f64()
    );
    assert!(
        next_sequence
            .values()
            .all(|&count| count == MESSAGES / KEYS),
        "every key should have {} messages: {next_sequence:?}",
        MESSAGES / KEYS
    );

    let mut to_commit = TopicPartitionList::new();
    for (&partition, &offset) in &next_offset {
        to_commit
            .add_partition_offset(&topic, partition, Offset::Offset(offset))
            .expect("valid offset");
    }
    consumer
        .commit(&to_commit, CommitMode::Sync)
        .unwrap_or_else(|error| panic!("synchronous commit failed: {error}"));
    assert_eq!(
        next_offset, end_offsets,
        "the group should have consumed up to the end offsets the producer was acknowledged"
    );
    // End offsets come from the delivery reports: Tansu 0.6.0 (memory storage) answers ListOffsets
    // (latest) with the base offset of the partition's last record batch + 1, not its last offset + 1.
    let mut watermarks = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(&topic, partition, Duration::from_secs(10))
            .unwrap_or_else(|error| panic!("no watermarks for partition {partition}: {error}"));
        watermarks.insert(partition, high);
    }
    if watermarks != end_offsets {
        eprintln!(
            "local_target: note: the broker reports high watermarks {watermarks:?}, \
             the delivery reports end offsets {end_offsets:?} (Tansu: base offset of the last batch + 1)"
        );
    }
    drop(consumer);

    // A second consumer of the same group reads the committed offsets back from the broker.
    let second: StreamConsumer = kafka::consumer_config(kafka, &group, 6000)
        .create()
        .expect("cannot create the second consumer");
    let mut asked = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        asked.add_partition(&topic, partition);
    }
    let committed = second
        .committed_offsets(asked, Duration::from_secs(10))
        .unwrap_or_else(|error| panic!("cannot read the committed offsets: {error}"));
    let committed: BTreeMap<i32, i64> = committed
        .elements()
        .iter()
        .map(|element| match element.offset() {
            Offset::Offset(offset) => (element.partition(), offset),
            other => panic!(
                "partition {} has no committed offset: {other:?}",
                element.partition()
            ),
        })
        .collect();
    assert_eq!(
        committed, end_offsets,
        "committed offsets read back by a second consumer should equal the end offsets"
    );
    (producer, topic, end_offsets)
}

/// One telemetry row as the test writes it: every value a function of (vehicle, seq).
type Row = (String, CqlTimestamp, i64, f64, f64, f64, f64, f64, i32);

fn row(vehicle: usize, seq: i64) -> Row {
    let k = seq as f64;
    (
        format!("vehicle-{vehicle}"),
        CqlTimestamp(BASE_TIMESTAMP_MS + seq * 1000 + vehicle as i64),
        seq,
        52.5 + k * 1e-4 + vehicle as f64 * 0.01,
        13.4 - k * 1e-4,
        (k * 0.37) % 90.0,
        -5.0 + k * 0.1,
        40.0 + (k * 0.5) % 50.0,
        1,
    )
}

async fn count_rows(session: &Session, keyspace: &str) -> Result<i64, String> {
    let result = session
        .query_unpaged(format!("SELECT COUNT(*) FROM {keyspace}.telemetry"), ())
        .await
        .map_err(|error| error.to_string())?;
    let rows = result.into_rows_result().map_err(|e| e.to_string())?;
    let (count,) = rows.single_row::<(i64,)>().map_err(|e| e.to_string())?;
    Ok(count)
}

/// Check 2: schema, prepared inserts, a paged select in `timestamp DESC` order, COUNT(*).
/// Returns how many rows were written.
async fn check_cql_round_trip(session: &Session, contact: &str, keyspace: &str) -> i64 {
    cql::create_schema(
        session,
        contact,
        keyspace,
        cql::REPLICATION_ONE,
        &Default::default(),
    )
    .await
    .unwrap_or_else(|error| panic!("schema init failed: {error}"));
    let insert = session
        .prepare(cql::insert_statement(keyspace))
        .await
        .unwrap_or_else(|error| panic!("cannot prepare the insert: {error}"));
    let rows: Vec<Row> = (0..VEHICLES)
        .flat_map(|vehicle| (0..ROWS_PER_VEHICLE).map(move |seq| row(vehicle, seq)))
        .collect();
    let written = rows.len() as i64;
    let started = Instant::now();
    let insert = &insert;
    stream::iter(rows)
        .map(|row| async move { session.execute_unpaged(insert, row).await })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_or_else(|error| panic!("a prepared insert failed: {error}"));
    eprintln!(
        "local_target: {written} prepared inserts in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    let mut select = session
        .prepare(format!(
            "SELECT vehicle_id, timestamp, seq, latitude, longitude, speed, temperature, \
             humidity, format_version FROM {keyspace}.telemetry WHERE vehicle_id = ?"
        ))
        .await
        .unwrap_or_else(|error| panic!("cannot prepare the select: {error}"));
    select.set_page_size(PAGE_SIZE);
    let vehicle = 1;
    let vehicle_id = format!("vehicle-{vehicle}");
    let mut found: Vec<Row> = Vec::new();
    let mut pages = 0;
    let mut paging_state = PagingState::start();
    loop {
        let (result, next) = session
            .execute_single_page(&select, (vehicle_id.as_str(),), paging_state)
            .await
            .unwrap_or_else(|error| panic!("page {pages} of the select failed: {error}"));
        pages += 1;
        let page: Vec<Row> = result
            .into_rows_result()
            .expect("the select returns rows")
            .rows::<Row>()
            .expect("rows have the selected types")
            .collect::<Result<_, _>>()
            .expect("rows deserialize");
        assert!(
            page.len() <= PAGE_SIZE as usize,
            "a page of {} rows exceeds the page size {PAGE_SIZE}",
            page.len()
        );
        found.extend(page);
        match next {
            PagingStateResponse::HasMorePages { state } => paging_state = state,
            PagingStateResponse::NoMorePages => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    let minimum_pages = (ROWS_PER_VEHICLE as usize).div_ceil(PAGE_SIZE as usize);
    assert!(
        pages >= minimum_pages,
        "{ROWS_PER_VEHICLE} rows at page size {PAGE_SIZE} came in {pages} page(s)"
    );
    let expected: Vec<Row> = (0..ROWS_PER_VEHICLE)
        .rev()
        .map(|seq| row(vehicle, seq))
        .collect();
    assert_eq!(
        found.len(),
        expected.len(),
        "rows of {vehicle_id} read back over {pages} pages"
    );
    for (index, (got, want)) in found.iter().zip(&expected).enumerate() {
        assert_eq!(
            got, want,
            "row {index} of {vehicle_id} (newest first) differs"
        );
    }
    assert!(
        found.windows(2).all(|pair| pair[0].1 > pair[1].1),
        "rows of {vehicle_id} are not in timestamp DESC order"
    );
    eprintln!(
        "local_target: read {} rows of {vehicle_id} in {pages} pages",
        found.len()
    );

    let count = count_rows(session, keyspace)
        .await
        .unwrap_or_else(|error| panic!("SELECT COUNT(*) failed: {error}"));
    assert_eq!(count, written, "SELECT COUNT(*) after the inserts");
    written
}

/// Check 3: SIGTERM Cassandra, start it again, and find every row through a new session.
async fn check_cassandra_restart_keeps_data(
    target: &mut LocalTarget,
    session: Session,
    keyspace: &str,
    written: i64,
) {
    let cassandra_before = pid_of(target, Role::Cassandra).expect("Cassandra runs");
    let bridge_before = pid_of(target, Role::CqlBridge).expect("the bridge runs");
    let started = Instant::now();
    let clean = target
        .stop(Role::Cassandra, Duration::from_secs(60))
        .unwrap_or_else(|error| panic!("cannot stop Cassandra: {error}"));
    let stop_took = started.elapsed();
    eprintln!(
        "local_target: Cassandra stopped after SIGTERM in {:.2} s (exit status 0: {clean})",
        stop_took.as_secs_f64()
    );
    assert!(
        stop_took < Duration::from_secs(60),
        "Cassandra needed the SIGKILL after the 60 s grace"
    );
    assert_eq!(
        pid_of(target, Role::Cassandra),
        None,
        "Cassandra still listed as running after stop"
    );
    let restart_took = target
        .restart(Role::Cassandra)
        .await
        .unwrap_or_else(|error| panic!("Cassandra did not come back: {error}"));
    eprintln!(
        "local_target: Cassandra ready again after {:.2} s",
        restart_took.as_secs_f64()
    );
    let cassandra_after = pid_of(target, Role::Cassandra).expect("Cassandra runs again");
    assert_ne!(
        cassandra_before, cassandra_after,
        "Cassandra was not restarted"
    );
    assert_eq!(
        pid_of(target, Role::CqlBridge),
        Some(bridge_before),
        "the bridge should stay up across a Cassandra restart"
    );

    // The old session may or may not reconnect by itself; a new one must work.
    drop(session);
    let contact = target.endpoints().cql.clone();
    let session = cql::connect(&contact, CLIENT_WAIT)
        .await
        .unwrap_or_else(|error| panic!("cannot reconnect after the restart: {error}"));
    let deadline = Instant::now() + CLIENT_WAIT;
    let count = loop {
        match count_rows(&session, keyspace).await {
            Ok(count) => break count,
            Err(error) if Instant::now() >= deadline => {
                panic!("SELECT COUNT(*) after the restart kept failing: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    assert_eq!(
        count, written,
        "rows after a clean Cassandra restart (SIGTERM, periodic commitlog)"
    );
}

/// Check 4: SIGSTOP the broker (state 'T', nothing acknowledged), SIGCONT, the send completes.
async fn check_broker_pause_and_resume(
    target: &mut LocalTarget,
    producer: &FutureProducer,
    topic: &str,
    per_partition: &BTreeMap<i32, i64>,
) {
    let broker = pid_of(target, Role::Broker).expect("the broker runs");
    target
        .pause(Role::Broker)
        .unwrap_or_else(|error| panic!("cannot pause the broker: {error}"));
    let state = wait_for_state(broker, |state| state == 'T').await;
    assert_eq!(
        state,
        Some('T'),
        "the paused broker (pid {broker}) should be stopped"
    );
    let mut delivery = producer
        .send_result(
            FutureRecord::to(topic)
                .key("vehicle-00")
                .payload("after-pause"),
        )
        .unwrap_or_else(|(error, _)| panic!("cannot enqueue a message: {error}"));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut delivery)
            .await
            .is_err(),
        "a message was acknowledged while the broker was paused"
    );
    target
        .resume(Role::Broker)
        .unwrap_or_else(|error| panic!("cannot resume the broker: {error}"));
    let state = wait_for_state(broker, |state| state != 'T').await;
    assert!(
        state.is_some_and(|state| state != 'T'),
        "the resumed broker (pid {broker}) is in state {state:?}"
    );
    let delivered = tokio::time::timeout(CLIENT_WAIT, delivery)
        .await
        .expect("no delivery report after the broker resumed")
        .expect("the delivery future was cancelled")
        .unwrap_or_else(|(error, _)| panic!("delivery after resume failed: {error}"));
    assert_eq!(
        Some(&delivered.offset),
        per_partition.get(&delivered.partition),
        "the message sent during the pause should follow the earlier ones in partition {}",
        delivered.partition
    );
}

// ---------------------------------------------------------------------------------------------
// No process left behind
// ---------------------------------------------------------------------------------------------

#[test]
fn a_panic_while_the_target_runs_leaves_no_process_behind() {
    let _services = SERVICES.blocking_lock();
    let options = installed_options();
    let (sender, receiver) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot build a runtime");
        runtime.block_on(async move {
            let mut target = LocalTarget::start(options)
                .await
                .unwrap_or_else(|error| panic!("the local target did not start: {error}"));
            let tracked = track_all(&target.processes());
            sender
                .send((tracked, target.dir().to_path_buf()))
                .expect("the test thread waits");
            panic!("deliberate panic while the target runs (expected by this test)");
        })
    });
    let joined = worker.join();
    assert!(joined.is_err(), "the worker thread was meant to panic");
    let (tracked, dir) = receiver
        .try_recv()
        .expect("the target did not start in the worker thread (see its panic above)");
    assert_eq!(tracked.len(), 3, "expected 3 running services: {tracked:?}");
    // The target's Drop kills and reaps its children while the panic unwinds: no zombies either.
    assert_all_gone(&tracked, false, "after a panic with the target running");
    assert!(
        !dir.exists(),
        "the run directory {} is still there after the panic",
        dir.display()
    );
}

/// A `roadtest run` child process: stderr forwarded line by line; SIGKILLed if the test fails.
#[derive(Debug)]
struct RunProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
    out_dir: PathBuf,
}

impl RunProcess {
    fn spawn(name: &str) -> RunProcess {
        let repository = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("harness/ has a parent");
        let out_dir = fresh_temp_dir(name);
        let mut child = Command::new(env!("CARGO_BIN_EXE_roadtest"))
            .arg("run")
            .arg(repository.join("scenarios/smoke.toml"))
            .args(["--target", "local", "--quiet"])
            .arg("--out")
            .arg(&out_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start roadtest run: {error}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  [roadtest run] {line}");
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        RunProcess {
            child,
            lines,
            stderr: Vec::new(),
            out_dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Collects stderr lines that arrived so far.
    fn collect_lines(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.stderr.push(line);
        }
    }

    /// Polls `ready` (bounded) while the run is alive; fails with its stderr if it ends first.
    fn wait_until(&mut self, what: &str, limit: Duration, mut ready: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            self.collect_lines();
            if ready(self) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.collect_lines();
                panic!(
                    "roadtest run ended ({status}) before {what}; its stderr:\n{}",
                    self.stderr.join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "roadtest run did not reach {what} within {limit:?}; its stderr:\n{}",
                self.stderr.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal)
            .unwrap_or_else(|error| panic!("cannot send {signal} to roadtest run: {error}"));
    }

    /// Waits (bounded) for the run to exit; returns its status and how long it took.
    fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("cannot wait for roadtest run") {
                // The reader thread ends at the end of stderr: take every line until then
                // (bounded, should a grandchild hold stderr open).
                let drained_by = Instant::now() + Duration::from_secs(10);
                while let Ok(line) = self
                    .lines
                    .recv_timeout(drained_by.saturating_duration_since(Instant::now()))
                {
                    self.stderr.push(line);
                }
                return (status, started.elapsed());
            }
            if started.elapsed() > limit {
                self.collect_lines();
                panic!(
                    "roadtest run did not exit within {limit:?} of the signal; its stderr:\n{}",
                    self.stderr.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunProcess {
    fn drop(&mut self) {
        // Its services die with it (PDEATHSIG).
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.out_dir);
    }
}

fn has_service(processes: &[Tracked], needle: &str) -> bool {
    processes
        .iter()
        .any(|process| process.name.contains(needle))
}

#[test]
fn ctrl_c_during_a_run_stops_it_with_exit_code_2_and_leaves_no_process_behind() {
    let _services = SERVICES.blocking_lock();
    let _ = installed_options();
    let mut run = RunProcess::spawn("sigint");
    // From "consumer joined" on, the run follows the producer and handles Ctrl-C.
    run.wait_until(
        "the consumer joining its group",
        Duration::from_secs(180),
        |run| {
            run.stderr
                .iter()
                .any(|line| line.contains("consumer joined its group"))
        },
    );
    let services = descendants(run.pid());
    for needle in ["tansu", "CassandraDaemon", "cql-bridge", " ingest "] {
        assert!(
            has_service(&services, needle),
            "no process matching {needle:?} below roadtest run: {services:?}"
        );
    }
    run.signal(Signal::SIGINT);
    let (status, took) = run.wait_exit(Duration::from_secs(30));
    eprintln!(
        "local_target: roadtest run exited {:.2} s after SIGINT with {status}",
        took.as_secs_f64()
    );
    assert_eq!(
        status.code(),
        Some(2),
        "roadtest run should exit with code 2 (interrupted) after Ctrl-C; stderr:\n{}",
        run.stderr.join("\n")
    );
    assert!(
        run.stderr.iter().any(|line| line.contains("interrupted")),
        "roadtest run should say it was interrupted; stderr:\n{}",
        run.stderr.join("\n")
    );
    assert_all_gone(&services, true, "after Ctrl-C of roadtest run");
}

#[test]
fn sigterm_while_a_run_starts_its_services_leaves_no_process_behind() {
    let _services = SERVICES.blocking_lock();
    let _ = installed_options();
    let mut run = RunProcess::spawn("sigterm-setup");
    // The bridge starts once Cassandra is ready: the run is still setting up (topic, schema, consumer).
    let mut services = Vec::new();
    run.wait_until(
        "Cassandra ready (bridge started)",
        Duration::from_secs(180),
        |run| {
            services = descendants(run.pid());
            has_service(&services, "cql-bridge")
        },
    );
    assert!(
        has_service(&services, "tansu") && has_service(&services, "CassandraDaemon"),
        "broker and Cassandra should run below roadtest run: {services:?}"
    );
    run.signal(Signal::SIGTERM);
    let (status, took) = run.wait_exit(Duration::from_secs(30));
    eprintln!(
        "local_target: roadtest run (during setup) exited {:.2} s after SIGTERM with {status}",
        took.as_secs_f64()
    );
    assert!(
        !run.stderr
            .iter()
            .any(|line| line.contains("consumer joined its group")),
        "the signal was meant to arrive during setup, before the consumer joined; stderr:\n{}",
        run.stderr.join("\n")
    );
    assert_eq!(
        status.code(),
        Some(2),
        "roadtest run should exit with code 2 (interrupted) after SIGTERM during setup; \
         stderr:\n{}",
        run.stderr.join("\n")
    );
    assert!(
        run.stderr.iter().any(|line| line.contains("interrupted")),
        "roadtest run should say it was interrupted; stderr:\n{}",
        run.stderr.join("\n")
    );
    assert_all_gone(
        &services,
        true,
        "after SIGTERM of roadtest run during setup",
    );
}

// ---------------------------------------------------------------------------------------------
// Services not installed
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn start_without_installed_services_says_how_to_install_them() {
    let empty = fresh_temp_dir("not-installed");
    let mut options = LocalOptions::from_env();
    options.roadtest_binary = PathBuf::from(env!("CARGO_BIN_EXE_roadtest"));
    options.home = empty.clone();
    let run_dir = empty.join("run");
    options.work_dir = Some(run_dir.clone());
    let error = LocalTarget::start(options)
        .await
        .expect_err("start must fail when the services are not installed");
    assert!(
        matches!(error, TargetError::NotInstalled { .. }),
        "expected NotInstalled, got {error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("roadtest services install"),
        "the message should say how to install the services: {message}"
    );
    assert!(
        message.contains(&empty.display().to_string()),
        "the message should name where it looked: {message}"
    );
    assert!(
        !run_dir.exists(),
        "start created the run directory although the services are missing"
    );
    let _ = std::fs::remove_dir_all(&empty);
}
