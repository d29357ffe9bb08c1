//! `roadtest ingest`: the reference consumer process; rdkafka and scylla adapters around the I/O-free core.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;

use super::core::{Action, IngestCore, IngestSettings, LogLevel, Row};
use super::stats::{ConsumerReport, HistogramPairs, prometheus_text, serve_metrics};
use crate::clients::kafka::{consumer_config, kafka_error, producer_config, wait_for_broker};
use crate::clients::security::{CqlSecurityArgs, KafkaSecurityArgs};
use crate::clients::{ClientError, CqlConnection, KafkaConnection, cql};
use crate::ingest::stats::latency_histogram;
use crate::measure::epoch_us;
use crate::scenario::{CommitPolicy, ConsumerSettings};

/// How long a SIGTERM may take to finish in-flight writes and commit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// After a write is acknowledged, stats older than this are published at once.
const PUBLISH_AFTER_WRITE: Duration = Duration::from_millis(20);
/// How long the consumer waits for Kafka and Cassandra at start.
const SERVICES_WAIT: Duration = Duration::from_secs(180);

/// Where the consumer serves metrics unless told otherwise: any free port on loopback.
pub const METRICS_LISTEN_DEFAULT: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));

/// Settings of one consumer process (`roadtest ingest --help`); [`IngestArgs::to_args`] renders
/// them back into the flags that parse to the same value.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct IngestArgs {
    /// Kafka bootstrap servers.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: String,
    /// Topic to consume.
    #[arg(long)]
    pub topic: String,
    /// Topic for records that cannot be decoded.
    #[arg(long)]
    pub dead_letter_topic: String,
    /// Consumer group id.
    #[arg(long)]
    pub group: String,
    /// CQL (protocol v4) contact points, comma-separated.
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',', required = true)]
    pub cql: Vec<String>,
    /// Connect to the node the cluster reports as FROM at TO instead (roadtest's fault proxy in
    /// front of it); repeatable.
    #[arg(long = "cql-translate", value_name = "FROM=TO", value_parser = parse_translation)]
    pub cql_translate: Vec<(SocketAddr, SocketAddr)>,
    /// Keyspace holding the `telemetry` table.
    #[arg(long)]
    pub keyspace: String,
    /// Rows per write batch.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Batches in flight at most.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_in_flight: u32,
    /// When offsets are committed: after-write (at-least-once) or before-write (at-most-once, unsafe).
    #[arg(long, default_value = "after-write", value_parser = parse_commit)]
    pub commit: CommitPolicy,
    /// Consumer-group session timeout.
    #[arg(long, default_value_t = 6000)]
    pub session_timeout_ms: u32,
    /// Where to serve Prometheus metrics (port 0: any free port; it is logged).
    #[arg(long, default_value_t = METRICS_LISTEN_DEFAULT, value_name = "HOST:PORT")]
    pub metrics_listen: SocketAddr,
    /// Directory for this process's stats file (`consumer-PID.json`).
    #[arg(long)]
    pub stats_dir: Option<PathBuf>,
    // Last: their help headings apply to the flags after them.
    #[command(flatten)]
    pub kafka_security: KafkaSecurityArgs,
    #[command(flatten)]
    pub cql_security: CqlSecurityArgs,
}

impl IngestArgs {
    /// The Kafka and CQL connections these arguments describe (passwords from the environment).
    pub fn connections(&self) -> Result<(KafkaConnection, CqlConnection), ClientError> {
        let lookup = |key: &str| std::env::var(key).ok();
        let kafka = KafkaConnection {
            bootstrap: self.bootstrap.clone(),
            security: self.kafka_security.resolve(lookup)?,
        };
        let cql = CqlConnection {
            contact_points: self.cql.clone(),
            security: self.cql_security.resolve(lookup)?,
            translation: self.cql_translate.clone(),
        };
        Ok((kafka, cql))
    }

    /// The `roadtest ingest` flags that parse back into these arguments: how a run starts the
    /// reference consumer.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        push_flag(&mut args, "--bootstrap", &self.bootstrap);
        push_flag(&mut args, "--topic", &self.topic);
        push_flag(&mut args, "--dead-letter-topic", &self.dead_letter_topic);
        push_flag(&mut args, "--group", &self.group);
        push_flag(&mut args, "--cql", self.cql.join(","));
        for (from, to) in &self.cql_translate {
            push_flag(&mut args, "--cql-translate", format!("{from}={to}"));
        }
        push_flag(&mut args, "--keyspace", &self.keyspace);
        push_flag(&mut args, "--batch-size", self.batch_size.to_string());
        push_flag(&mut args, "--max-in-flight", self.max_in_flight.to_string());
        push_flag(&mut args, "--commit", commit_flag_name(self.commit));
        let session_timeout = self.session_timeout_ms.to_string();
        push_flag(&mut args, "--session-timeout-ms", session_timeout);
        push_flag(
            &mut args,
            "--metrics-listen",
            self.metrics_listen.to_string(),
        );
        if let Some(dir) = &self.stats_dir {
            push_flag(&mut args, "--stats-dir", dir);
        }
        push_security_flags(&mut args, &self.kafka_security, &self.cql_security);
        args
    }
}

/// Appends `name value`.
fn push_flag(args: &mut Vec<OsString>, name: &str, value: impl AsRef<std::ffi::OsStr>) {
    args.push(name.into());
    args.push(value.as_ref().to_owned());
}

/// The security flags as given (unresolved: passwords never become flags).
fn push_security_flags(args: &mut Vec<OsString>, kafka: &KafkaSecurityArgs, cql: &CqlSecurityArgs) {
    if let Some(protocol) = kafka.protocol {
        push_flag(args, "--kafka-security-protocol", protocol.flag_name());
    }
    if let Some(mechanism) = kafka.mechanism {
        push_flag(args, "--kafka-sasl-mechanism", mechanism.flag_name());
    }
    if let Some(username) = &kafka.username {
        push_flag(args, "--kafka-username", username);
    }
    if let Some(username) = &cql.username {
        push_flag(args, "--cql-username", username);
    }
    if cql.tls {
        args.push("--cql-tls".into());
    }
    for (name, path) in [
        ("--kafka-ca-file", &kafka.ca_file),
        ("--kafka-cert-file", &kafka.cert_file),
        ("--kafka-key-file", &kafka.key_file),
        ("--cql-ca-file", &cql.ca_file),
        ("--cql-cert-file", &cql.cert_file),
        ("--cql-key-file", &cql.key_file),
    ] {
        if let Some(path) = path {
            push_flag(args, name, path);
        }
    }
}

/// `FROM=TO`, two socket addresses.
pub fn parse_translation(text: &str) -> Result<(SocketAddr, SocketAddr), String> {
    let parse = |part: &str| {
        part.parse::<SocketAddr>()
            .map_err(|e| format!("{text:?}: {part:?} is not an IP:PORT address ({e})"))
    };
    match text.split_once('=') {
        Some((from, to)) => Ok((parse(from)?, parse(to)?)),
        None => Err(format!(
            "{text:?}: give FROM=TO, like 10.0.0.5:9042=127.0.0.1:40001"
        )),
    }
}

fn parse_commit(text: &str) -> Result<CommitPolicy, String> {
    match text {
        "after-write" => Ok(CommitPolicy::AfterWrite),
        "before-write" => Ok(CommitPolicy::BeforeWrite),
        other => Err(format!("{other:?}: use after-write or before-write")),
    }
}

/// The `--commit` value [`parse_commit`] reads as `commit`.
fn commit_flag_name(commit: CommitPolicy) -> &'static str {
    match commit {
        CommitPolicy::AfterWrite => "after-write",
        CommitPolicy::BeforeWrite => "before-write",
    }
}

/// Why the consumer stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("invalid consumer setting: {0}")]
    Settings(String),
    #[error("cannot serve metrics on {address}: {source}")]
    Metrics {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "shutdown did not finish within {SHUTDOWN_GRACE:?}: {in_flight} batches still in flight"
    )]
    ShutdownTimeout { in_flight: u64 },
}

/// Forwards rebalances from librdkafka's thread to the main loop, in order.
struct RebalanceForwarder {
    events: Mutex<mpsc::Sender<(bool, Vec<i32>)>>,
}

impl ClientContext for RebalanceForwarder {}

impl ConsumerContext for RebalanceForwarder {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.forward(false, list);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.forward(true, list);
        }
    }
}

impl RebalanceForwarder {
    fn forward(&self, assigned: bool, list: &TopicPartitionList) {
        let partitions = list.elements().iter().map(|e| e.partition()).collect();
        if let Ok(events) = self.events.lock() {
            let _ = events.send((assigned, partitions));
        }
    }
}

/// Completions of the background work the main loop started.
enum Done {
    Write {
        batch_id: u64,
        rows: Arc<[Row]>,
        started_us: u64,
        result: Result<(), String>,
    },
    DeadLetter {
        partition: i32,
        offset: i64,
        result: Result<(), String>,
    },
}

/// Runs the consumer until `shutdown` resolves (the binary passes SIGTERM/Ctrl-C); Ok after a
/// clean shutdown.
pub async fn run(args: IngestArgs, shutdown: impl Future<Output = ()>) -> Result<(), IngestError> {
    let settings = IngestSettings::from_consumer(&ConsumerSettings {
        batch_size: args.batch_size,
        max_in_flight: args.max_in_flight,
        commit: args.commit,
        session_timeout_ms: args.session_timeout_ms,
    });
    let mut core = IngestCore::new(settings).map_err(|e| IngestError::Settings(e.to_string()))?;
    let started = Instant::now();
    let started_epoch_us = epoch_us();
    let now_ms = || started.elapsed().as_millis() as u64;
    let mut terminated = std::pin::pin!(shutdown);

    // Wait for both services (with backoff), so a consumer started early does not crash-loop.
    let (kafka, cql_connection) = args.connections()?;
    tracing::info!(bootstrap = %kafka.bootstrap, cql = %cql_connection.address(), "waiting for Kafka and Cassandra");
    let session = tokio::select! {
        ready = async {
            wait_for_broker(&kafka, SERVICES_WAIT).await?;
            cql::connect(&cql_connection, SERVICES_WAIT).await
        } => Arc::new(ready?),
        _ = &mut terminated => return Ok(()),
    };
    let insert = session
        .prepare(cql::insert_statement(&args.keyspace))
        .await
        .map_err(|e| ClientError::Cql {
            address: cql_connection.address(),
            what: "prepare the insert".into(),
            message: e.to_string(),
        })?;

    let (rebalance_tx, rebalance_rx) = mpsc::channel();
    let mut config = consumer_config(&kafka, &args.group, args.session_timeout_ms);
    config.set("queued.max.messages.kbytes", "16384");
    let consumer: StreamConsumer<RebalanceForwarder> = config
        .create_with_context(RebalanceForwarder {
            events: Mutex::new(rebalance_tx),
        })
        .map_err(|e| kafka_error(&args.bootstrap, "create the consumer", e))?;
    consumer
        .subscribe(&[&args.topic])
        .map_err(|e| kafka_error(&args.bootstrap, &format!("subscribe to {}", args.topic), e))?;
    let consumer = Arc::new(consumer);
    let dead_letters: FutureProducer = producer_config(&kafka)
        .create()
        .map_err(|e| kafka_error(&args.bootstrap, "create the dead-letter producer", e))?;

    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|source| IngestError::Metrics {
            address: args.metrics_listen,
            source,
        })?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving Prometheus metrics on http://{address}/metrics");
    }
    let metrics_text = Arc::new(Mutex::new(String::new()));
    let metrics_task = tokio::spawn(serve_metrics(listener, Arc::clone(&metrics_text)));
    let stats_path = args
        .stats_dir
        .as_ref()
        .map(|dir| dir.join(format!("consumer-{}.json", std::process::id())));

    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Done>();
    let mut telemetry = Telemetry {
        report: ConsumerReport {
            pid: std::process::id(),
            ..ConsumerReport::default()
        },
        consume_us: latency_histogram(),
        write_ack_us: latency_histogram(),
        batch_write_us: latency_histogram(),
        metrics_text,
        stats_path,
        published: Instant::now(),
    };
    let mut assigned: Vec<i32> = Vec::new();
    let mut shutdown_started: Option<Instant> = None;
    let mut publish = tokio::time::interval(Duration::from_millis(500));
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tracing::info!(topic = %args.topic, group = %args.group, "consuming");

    loop {
        while let Some(action) = core.next_action() {
            match action {
                Action::Write { batch_id, rows, .. } => {
                    spawn_write(&session, &insert, batch_id, rows, done_tx.clone());
                }
                Action::DeadLetter {
                    partition,
                    offset,
                    payload,
                    reason,
                } => {
                    tracing::warn!(partition, offset, %reason, "dead-lettering an undecodable record");
                    let (producer, topic, done) = (
                        dead_letters.clone(),
                        args.dead_letter_topic.clone(),
                        done_tx.clone(),
                    );
                    tokio::spawn(async move {
                        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&topic)
                            .payload(payload.as_slice())
                            .headers(rdkafka::message::OwnedHeaders::new().insert(
                                rdkafka::message::Header {
                                    key: "roadtest-reason",
                                    value: Some(reason.as_bytes()),
                                },
                            ));
                        let result = producer
                            .send(record, Duration::from_secs(30))
                            .await
                            .map(|_| ())
                            .map_err(|(error, _)| error.to_string());
                        let _ = done.send(Done::DeadLetter {
                            partition,
                            offset,
                            result,
                        });
                    });
                }
                Action::Commit { offsets } => {
                    commit(&consumer, &args.topic, &offsets, shutdown_started.is_some());
                }
                Action::Log { level, message } => match level {
                    LogLevel::Info => tracing::info!("{message}"),
                    LogLevel::Warn => tracing::warn!("{message}"),
                },
            }
        }
        if let Some(since) = shutdown_started {
            if core.is_drained() {
                break;
            }
            if since.elapsed() > SHUTDOWN_GRACE {
                telemetry.publish(&core);
                return Err(IngestError::ShutdownTimeout {
                    in_flight: core.stats().in_flight_batches,
                });
            }
        }
        let wake_ms = core
            .next_deadline_ms()
            .unwrap_or(u64::MAX)
            .min(now_ms() + 50)
            .max(now_ms() + 1);
        let fetching = shutdown_started.is_none() && !core.should_pause();
        tokio::select! {
            message = consumer.recv(), if fetching => {
                // Rebalances reach us before the messages of a new assignment.
                take_rebalances(&rebalance_rx, &mut core, &mut assigned, &mut telemetry.report);
                match message {
                    Ok(message) => {
                        let received_us = epoch_us();
                        if let Some(sent_ms) = message.timestamp().to_millis() {
                            let sent_us = u64::try_from(sent_ms).unwrap_or(0) * 1000;
                            let _ = telemetry.consume_us.record(received_us.saturating_sub(sent_us).max(1));
                        }
                        *telemetry.report.consumed_per_epoch_second.entry(received_us / 1_000_000).or_default() += 1;
                        core.on_record(message.partition(), message.offset(), message.payload().unwrap_or(&[]), now_ms());
                    }
                    Err(error) => {
                        tracing::warn!(%error, "Kafka receive failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            Some(done) = done_rx.recv() => match done {
                Done::Write { batch_id, rows, started_us, result: Ok(()) } => {
                    let acked_us = epoch_us();
                    let _ = telemetry.batch_write_us.record(acked_us.saturating_sub(started_us).max(1));
                    for row in rows.iter() {
                        let received_us = started_epoch_us + row.received_at_ms.saturating_mul(1000);
                        let _ = telemetry.write_ack_us.record(acked_us.saturating_sub(received_us).max(1));
                    }
                    core.on_write_ok(batch_id, now_ms());
                    // Publish soon after writes, so a consumer killed now has reported nearly
                    // everything it wrote (the run's drain reads these counts).
                    if telemetry.published.elapsed() >= PUBLISH_AFTER_WRITE {
                        telemetry.publish(&core);
                    }
                }
                Done::Write { batch_id, result: Err(error), .. } => core.on_write_failed(batch_id, &error, now_ms()),
                Done::DeadLetter { partition, offset, result: Ok(()) } => core.on_dead_letter_ok(partition, offset),
                Done::DeadLetter { partition, offset, result: Err(error) } => {
                    core.on_dead_letter_failed(partition, offset, &error, now_ms());
                }
            },
            _ = tokio::time::sleep(Duration::from_millis(wake_ms - now_ms().min(wake_ms))) => core.on_tick(now_ms()),
            _ = publish.tick() => {
                take_rebalances(&rebalance_rx, &mut core, &mut assigned, &mut telemetry.report);
                telemetry.report.lag = tokio::task::block_in_place(|| lag(&consumer));
                telemetry.publish(&core);
            }
            _ = &mut terminated, if shutdown_started.is_none() => {
                tracing::info!("termination requested: finishing in-flight writes, then committing");
                shutdown_started = Some(Instant::now());
                core.begin_shutdown(now_ms());
            }
        }
    }
    telemetry.report.exited_cleanly = true;
    telemetry.report.consuming = false;
    telemetry.publish(&core);
    metrics_task.abort();
    tracing::info!(stats = ?core.stats(), "stopped cleanly");
    Ok(())
}

/// Applies the rebalances librdkafka reported, in order.
fn take_rebalances(
    events: &mpsc::Receiver<(bool, Vec<i32>)>,
    core: &mut IngestCore,
    assigned: &mut Vec<i32>,
    report: &mut ConsumerReport,
) {
    while let Ok((is_assign, partitions)) = events.try_recv() {
        if is_assign {
            tracing::info!(?partitions, "partitions assigned");
            core.on_partitions_assigned(&partitions);
            assigned.extend(&partitions);
        } else {
            tracing::info!(?partitions, "partitions revoked");
            core.on_partitions_revoked(&partitions);
            assigned.retain(|p| !partitions.contains(p));
        }
        report.consuming = !assigned.is_empty();
    }
}

/// Writes one batch as an unlogged batch of prepared upserts, in the background.
fn spawn_write(
    session: &Arc<Session>,
    insert: &PreparedStatement,
    batch_id: u64,
    rows: Arc<[Row]>,
    done: tokio::sync::mpsc::UnboundedSender<Done>,
) {
    let (session, insert) = (Arc::clone(session), insert.clone());
    tokio::spawn(async move {
        let started_us = epoch_us();
        let mut batch = Batch::new(BatchType::Unlogged);
        let mut values = Vec::with_capacity(rows.len());
        for row in rows.iter() {
            batch.append_statement(insert.clone());
            let record = &row.record;
            values.push((
                record.vehicle_id.as_str(),
                CqlTimestamp(record.timestamp),
                record.seq as i64,
                record.latitude,
                record.longitude,
                record.speed,
                record.temperature,
                record.humidity,
                record.format_version as i32,
            ));
        }
        let result = session
            .batch(&batch, values)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        let _ = done.send(Done::Write {
            batch_id,
            rows,
            started_us,
            result,
        });
    });
}

fn commit<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    offsets: &[(i32, i64)],
    sync: bool,
) {
    let mut list = TopicPartitionList::new();
    for &(partition, offset) in offsets {
        if list
            .add_partition_offset(topic, partition, Offset::Offset(offset))
            .is_err()
        {
            tracing::warn!(partition, offset, "cannot express the commit offset");
        }
    }
    let mode = if sync {
        rdkafka::consumer::CommitMode::Sync
    } else {
        rdkafka::consumer::CommitMode::Async
    };
    if let Err(error) = consumer.commit(&list, mode) {
        // A failed commit means some records are read again: at-least-once allows it.
        tracing::warn!(%error, "commit failed");
    }
}

/// Records behind the end of the assigned partitions (asks the broker; call it from a thread that
/// may block). Partitions whose high watermark is below the position are left out (see below).
fn lag<C: ConsumerContext>(consumer: &StreamConsumer<C>) -> i64 {
    let Ok(positions) = consumer.position() else {
        return 0;
    };
    positions
        .elements()
        .iter()
        .filter_map(|element| {
            let (_, high) = consumer
                .fetch_watermarks(
                    element.topic(),
                    element.partition(),
                    Duration::from_millis(200),
                )
                .ok()?;
            let position = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => return None,
            };
            // Tansu 0.6 (memory storage) reports the first offset of the last batch + 1 as the
            // high watermark; below our position it is unknown, not "no lag".
            (high >= position).then_some(high - position)
        })
        .sum()
}

/// What the consumer measures, and where it publishes it.
struct Telemetry {
    report: ConsumerReport,
    consume_us: Histogram<u64>,
    write_ack_us: Histogram<u64>,
    batch_write_us: Histogram<u64>,
    metrics_text: Arc<Mutex<String>>,
    stats_path: Option<PathBuf>,
    /// When the stats were last published.
    published: Instant,
}

impl Telemetry {
    /// Refreshes the metrics page and rewrites the stats file.
    fn publish(&mut self, core: &IngestCore) {
        self.published = Instant::now();
        let report = &mut self.report;
        report.core = core.stats();
        report.consume_us = HistogramPairs::from_histogram(&self.consume_us);
        report.write_ack_us = HistogramPairs::from_histogram(&self.write_ack_us);
        report.batch_write_us = HistogramPairs::from_histogram(&self.batch_write_us);
        if let Ok(mut text) = self.metrics_text.lock() {
            *text = prometheus_text(report, &self.batch_write_us);
        }
        if let Some(path) = &self.stats_path
            && let Err(error) = report.write(path)
        {
            tracing::warn!(%error, path = %path.display(), "cannot write the stats file");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::Parser;

    use super::*;
    use crate::clients::security::{KafkaProtocol, SaslMechanism};

    /// `roadtest ingest`'s flags alone.
    #[derive(Debug, clap::Parser)]
    struct Ingest {
        #[command(flatten)]
        args: IngestArgs,
    }

    fn parse(args: Vec<OsString>) -> IngestArgs {
        let argv = std::iter::once(OsString::from("ingest")).chain(args);
        match Ingest::try_parse_from(argv) {
            Ok(parsed) => parsed.args,
            Err(error) => panic!("the rendered flags do not parse: {error}"),
        }
    }

    fn minimal() -> IngestArgs {
        parse(
            [
                "--bootstrap",
                "127.0.0.1:9092",
                "--topic",
                "t",
                "--dead-letter-topic",
                "t-dl",
            ]
            .into_iter()
            .chain(["--group", "g", "--cql", "127.0.0.1:9042", "--keyspace", "k"])
            .map(OsString::from)
            .collect(),
        )
    }

    #[test]
    fn defaults_render_and_parse_back_equal() {
        let args = minimal();
        assert_eq!(args.metrics_listen, METRICS_LISTEN_DEFAULT);
        assert_eq!(parse(args.to_args()), args);
    }

    #[test]
    fn every_field_renders_and_parses_back_equal() {
        let address = |text: &str| text.parse::<SocketAddr>().unwrap_or_else(|e| panic!("{e}"));
        let pem = |name: &str| Some(PathBuf::from(format!("/etc/roadtest tls/{name}.pem")));
        let args = IngestArgs {
            cql: vec!["10.0.0.5:9042".into(), "10.0.0.6:9042".into()],
            cql_translate: vec![
                (address("10.0.0.5:9042"), address("127.0.0.1:40001")),
                (address("10.0.0.6:9042"), address("127.0.0.1:40002")),
            ],
            batch_size: 250,
            max_in_flight: 3,
            commit: CommitPolicy::BeforeWrite,
            session_timeout_ms: 45_000,
            metrics_listen: address("0.0.0.0:9187"),
            stats_dir: Some(PathBuf::from("/tmp/run dir/consumer-stats")),
            kafka_security: KafkaSecurityArgs {
                protocol: Some(KafkaProtocol::SaslSsl),
                mechanism: Some(SaslMechanism::ScramSha512),
                username: Some("roadtest".into()),
                ca_file: pem("kafka-ca"),
                cert_file: pem("kafka-cert"),
                key_file: pem("kafka-key"),
            },
            cql_security: CqlSecurityArgs {
                username: Some("cassandra".into()),
                tls: true,
                ca_file: pem("cql-ca"),
                cert_file: pem("cql-cert"),
                key_file: pem("cql-key"),
            },
            ..minimal()
        };
        assert_eq!(parse(args.to_args()), args);
    }

    #[test]
    fn every_commit_policy_renders_to_its_flag() {
        for commit in [CommitPolicy::AfterWrite, CommitPolicy::BeforeWrite] {
            assert_eq!(parse_commit(commit_flag_name(commit)), Ok(commit));
        }
    }
}
