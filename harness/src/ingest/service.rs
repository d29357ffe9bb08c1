//! `roadtest ingest`: the reference consumer process; rdkafka and scylla adapters around the I/O-free core.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::alerter::Alerter;
pub use super::args::{IngestArgs, METRICS_LISTEN_DEFAULT};
use super::core::{Action, IngestCore, IngestSettings, LogLevel, Row};
use super::lag::{LagProbe, watermark_query};
use super::stats::Telemetry;
use crate::clients::kafka::{
    ProducerSettings, consumer_config, kafka_error, producer_config, wait_for_broker,
};
use crate::clients::pg::PgWriter;
use crate::clients::{ClientError, CqlConnection, cql};
use crate::live::IngestMetrics;
use crate::measure::epoch_us;

/// How long a SIGTERM may take to finish in-flight writes and commit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// After a write is acknowledged, stats older than this are published at once.
const PUBLISH_AFTER_WRITE: Duration = Duration::from_millis(20);
/// How long the consumer waits for Kafka and Cassandra at start.
const SERVICES_WAIT: Duration = Duration::from_secs(180);

/// Why the consumer stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("invalid consumer setting: {0}")]
    Settings(String),
    #[error(transparent)]
    Metrics(#[from] crate::live::MetricsError),
    #[error("cannot start the lag thread: {0}")]
    Lag(std::io::Error),
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
    let core = IngestCore::new(IngestSettings::from_consumer(&args.consumer_settings()))
        .map_err(|e| IngestError::Settings(e.to_string()))?;
    let (started, started_epoch_us) = (Instant::now(), epoch_us());
    let mut shutdown = std::pin::pin!(shutdown);
    let Some(connections) = connect(&args, shutdown.as_mut()).await? else {
        return Ok(());
    };
    let (metrics_task, metrics) = start_metrics(args.metrics_listen).await?;
    let alerter = match &args.alert_rules {
        Some(rules) => Some(
            Alerter::start(rules, args.alert_webhook.as_deref(), metrics.clone())
                .map_err(IngestError::Settings)?,
        ),
        None => None,
    };
    let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel::<Done>();
    let mut service = Service {
        core,
        telemetry: Telemetry::new(metrics, args.stats_dir.as_deref()),
        args,
        connections,
        done_tx,
        assigned: Vec::new(),
        shutdown_started: None,
        started,
        started_epoch_us,
        alerter,
    };
    let outcome = service.event_loop(done_rx, shutdown).await;
    if outcome.is_ok() {
        service.finish();
        metrics_task.abort();
    }
    outcome
}

/// Where the consumer's batches go.
enum Writer {
    /// Cassandra: an unlogged batch of prepared inserts.
    Cql {
        session: Arc<Session>,
        insert: PreparedStatement,
    },
    /// PostgreSQL: one upsert statement (one transaction) per batch.
    Postgres(Arc<PgWriter>),
}

/// What the consumer talks to once both services answered.
struct Connections {
    writer: Writer,
    consumer: Arc<StreamConsumer<RebalanceForwarder>>,
    /// Rebalances librdkafka reported, in order.
    rebalances: mpsc::Receiver<(bool, Vec<i32>)>,
    dead_letters: FutureProducer,
    lag: LagProbe,
}

/// Waits for both services (with backoff, so a consumer started early does not crash-loop), then
/// prepares the insert and subscribes. `None`: shutdown came first.
async fn connect(
    args: &IngestArgs,
    shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Result<Option<Connections>, IngestError> {
    let (kafka, cql_connection) = args.connections()?;
    let postgres = args.postgres();
    let database = match &postgres {
        Some(endpoint) => endpoint.address(),
        None => cql_connection.address(),
    };
    tracing::info!(bootstrap = %kafka.bootstrap, %database, "waiting for Kafka and the database");
    let writer = tokio::select! {
        ready = async {
            wait_for_broker(&kafka, SERVICES_WAIT).await?;
            match postgres {
                Some(endpoint) => Ok::<_, ClientError>(Writer::Postgres(Arc::new(
                    PgWriter::connect(endpoint, &args.keyspace, SERVICES_WAIT).await?,
                ))),
                None => cql_writer(&cql_connection, &args.keyspace).await,
            }
        } => ready?,
        _ = shutdown => return Ok(None),
    };
    let (rebalance_tx, rebalances) = mpsc::channel();
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
    // Idempotence off: the consumer does not know its broker, and dead letters are rare.
    let dead_letters: FutureProducer = producer_config(&kafka, ProducerSettings::new(false))
        .create()
        .map_err(|e| kafka_error(&args.bootstrap, "create the dead-letter producer", e))?;
    let lag = LagProbe::spawn(watermark_query(&kafka, &args.topic)?).map_err(IngestError::Lag)?;
    Ok(Some(Connections {
        writer,
        consumer: Arc::new(consumer),
        rebalances,
        dead_letters,
        lag,
    }))
}

/// Connects to Cassandra and prepares the insert.
async fn cql_writer(cql_connection: &CqlConnection, keyspace: &str) -> Result<Writer, ClientError> {
    let session = Arc::new(cql::connect(cql_connection, SERVICES_WAIT).await?);
    let insert = session
        .prepare(cql::insert_statement(keyspace))
        .await
        .map_err(|e| ClientError::Cql {
            address: cql_connection.address(),
            what: "prepare the insert".into(),
            source: e.into(),
        })?;
    Ok(Writer::Cql { session, insert })
}

/// Serves Prometheus metrics on `address` in a task; returns it and the metrics it serves.
async fn start_metrics(
    address: SocketAddr,
) -> Result<(tokio::task::JoinHandle<()>, IngestMetrics), IngestError> {
    let listener = crate::live::bind(address).await?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving Prometheus metrics on http://{address}/metrics");
    }
    let metrics = IngestMetrics::new();
    let task = tokio::spawn(crate::live::serve(listener, metrics.registry()));
    Ok((task, metrics))
}

/// The running consumer: the core, its adapters, and what it measures.
struct Service {
    core: IngestCore,
    telemetry: Telemetry,
    args: IngestArgs,
    connections: Connections,
    /// Where background writes and dead-letter sends report.
    done_tx: tokio::sync::mpsc::UnboundedSender<Done>,
    assigned: Vec<i32>,
    shutdown_started: Option<Instant>,
    /// The core's time zero, and the same moment as µs since the Unix epoch.
    started: Instant,
    started_epoch_us: u64,
    /// Threshold alerts on the consumed events (`--alert-rules`, `--alert-webhook`).
    alerter: Option<Alerter>,
}

impl Service {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Carries out the core's decisions and waits for the next event, until drained after a
    /// shutdown (Ok) or the shutdown grace passes (Err).
    async fn event_loop(
        &mut self,
        mut done_rx: tokio::sync::mpsc::UnboundedReceiver<Done>,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), IngestError> {
        let consumer = Arc::clone(&self.connections.consumer);
        let mut publish = tokio::time::interval(Duration::from_millis(500));
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tracing::info!(topic = %self.args.topic, group = %self.args.group, "consuming");
        loop {
            self.carry_out_actions();
            if self.drained()? {
                return Ok(());
            }
            let now_ms = self.now_ms();
            let wake_ms = self
                .core
                .next_deadline_ms()
                .unwrap_or(u64::MAX)
                .min(now_ms + 50)
                .max(now_ms + 1);
            let fetching = self.shutdown_started.is_none() && !self.core.should_pause();
            tokio::select! {
                message = consumer.recv(), if fetching => self.on_message(message).await,
                Some(done) = done_rx.recv() => self.on_done(done),
                _ = tokio::time::sleep(Duration::from_millis(wake_ms - self.now_ms().min(wake_ms))) => {
                    self.core.on_tick(self.now_ms());
                }
                _ = publish.tick() => self.on_publish_tick(),
                _ = shutdown.as_mut(), if self.shutdown_started.is_none() => self.begin_shutdown(),
            }
        }
    }

    /// Starts whatever the core decided: writes, dead letters, commits, log lines.
    fn carry_out_actions(&mut self) {
        while let Some(action) = self.core.next_action() {
            match action {
                Action::Write { batch_id, rows, .. } => {
                    if let Some(alerter) = &mut self.alerter {
                        alerter.observe(&rows);
                    }
                    spawn_write(
                        &self.connections.writer,
                        batch_id,
                        rows,
                        self.done_tx.clone(),
                    );
                }
                Action::DeadLetter {
                    partition,
                    offset,
                    payload,
                    reason,
                } => {
                    tracing::warn!(partition, offset, %reason, "dead-lettering an undecodable record");
                    let record = DeadLetter {
                        partition,
                        offset,
                        payload,
                        reason,
                    };
                    let producer = self.connections.dead_letters.clone();
                    let topic = self.args.dead_letter_topic.clone();
                    spawn_dead_letter(producer, topic, record, self.done_tx.clone());
                }
                Action::Commit { offsets } => {
                    let sync = self.shutdown_started.is_some();
                    commit(&self.connections.consumer, &self.args.topic, &offsets, sync);
                }
                Action::Log { level, message } => match level {
                    LogLevel::Info => tracing::info!("{message}"),
                    LogLevel::Warn => tracing::warn!("{message}"),
                },
            }
        }
    }

    /// After a shutdown began: whether everything is written and committed; an error once the
    /// grace has passed without.
    fn drained(&mut self) -> Result<bool, IngestError> {
        let Some(since) = self.shutdown_started else {
            return Ok(false);
        };
        if self.core.is_drained() {
            return Ok(true);
        }
        if since.elapsed() > SHUTDOWN_GRACE {
            self.telemetry.publish(&self.core);
            return Err(IngestError::ShutdownTimeout {
                in_flight: self.core.stats().in_flight_batches,
            });
        }
        Ok(false)
    }

    /// A record (or a receive error) from Kafka.
    async fn on_message(&mut self, message: KafkaResult<BorrowedMessage<'_>>) {
        // Rebalances reach us before the messages of a new assignment.
        self.take_rebalances();
        match message {
            Ok(message) => {
                let received_us = epoch_us();
                let telemetry = &mut self.telemetry;
                if let Some(sent_ms) = message.timestamp().to_millis() {
                    let sent_us = u64::try_from(sent_ms).unwrap_or(0) * 1000;
                    let consume_us = received_us.saturating_sub(sent_us).max(1);
                    let _ = telemetry.consume_us.record(consume_us);
                }
                let second = received_us / 1_000_000;
                *telemetry
                    .report
                    .consumed_per_epoch_second
                    .entry(second)
                    .or_default() += 1;
                let (partition, offset) = (message.partition(), message.offset());
                self.connections.lag.on_record(partition, offset);
                let payload = message.payload().unwrap_or(&[]);
                self.core
                    .on_record(partition, offset, payload, self.now_ms());
            }
            Err(error) => {
                tracing::warn!(%error, "Kafka receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Background work finished.
    fn on_done(&mut self, done: Done) {
        let now_ms = self.now_ms();
        match done {
            Done::Write {
                batch_id,
                rows,
                started_us,
                result: Ok(()),
            } => {
                let acked_us = epoch_us();
                let telemetry = &mut self.telemetry;
                let batch_write_us = acked_us.saturating_sub(started_us).max(1);
                telemetry.batch_written(batch_write_us);
                for row in rows.iter() {
                    let received_us =
                        self.started_epoch_us + row.received_at_ms.saturating_mul(1000);
                    let write_ack_us = acked_us.saturating_sub(received_us).max(1);
                    let _ = telemetry.write_ack_us.record(write_ack_us);
                }
                self.core.on_write_ok(batch_id, now_ms);
                // Publish soon after writes, so a consumer killed now has reported nearly
                // everything it wrote (the run's drain reads these counts).
                if self.telemetry.published.elapsed() >= PUBLISH_AFTER_WRITE {
                    self.telemetry.publish(&self.core);
                }
            }
            Done::Write {
                batch_id,
                result: Err(error),
                ..
            } => self.core.on_write_failed(batch_id, &error, now_ms),
            Done::DeadLetter {
                partition,
                offset,
                result: Ok(()),
            } => self.core.on_dead_letter_ok(partition, offset),
            Done::DeadLetter {
                partition,
                offset,
                result: Err(error),
            } => self
                .core
                .on_dead_letter_failed(partition, offset, &error, now_ms),
        }
    }

    /// Every half second: rebalances, the last lag measurement (and a request for the next; the
    /// loop never waits for the broker), then the stats.
    fn on_publish_tick(&mut self) {
        self.take_rebalances();
        self.take_lost_logs();
        self.telemetry.report.lag = self.connections.lag.lag_records();
        self.connections.lag.request();
        self.telemetry.publish(&self.core);
    }

    fn begin_shutdown(&mut self) {
        tracing::info!("termination requested: finishing in-flight writes, then committing");
        self.shutdown_started = Some(Instant::now());
        self.core.begin_shutdown(self.now_ms());
    }

    /// Partitions whose log the broker lost: the core starts each over, and the consumer reads
    /// it again from its beginning (where the broker's new log starts) instead of waiting beyond
    /// its end for records that will never come.
    fn take_lost_logs(&mut self) {
        for lost in self.connections.lag.lost_logs() {
            if !self.assigned.contains(&lost.partition) {
                continue;
            }
            self.core.on_log_lost(lost);
            self.connections.lag.on_rewound(lost.partition);
            let seek = self.connections.consumer.seek(
                &self.args.topic,
                lost.partition,
                Offset::Beginning,
                Duration::from_secs(1),
            );
            if let Err(error) = seek {
                tracing::warn!(partition = lost.partition, %error, "cannot read the partition again from its beginning");
            }
        }
    }

    /// Applies the rebalances librdkafka reported, in order.
    fn take_rebalances(&mut self) {
        while let Ok((is_assign, partitions)) = self.connections.rebalances.try_recv() {
            if is_assign {
                tracing::info!(?partitions, "partitions assigned");
                self.core.on_partitions_assigned(&partitions);
                self.connections.lag.on_assigned(&partitions);
                self.assigned.extend(&partitions);
            } else {
                tracing::info!(?partitions, "partitions revoked");
                self.core.on_partitions_revoked(&partitions);
                self.connections.lag.on_revoked(&partitions);
                self.assigned.retain(|p| !partitions.contains(p));
            }
            self.telemetry.report.consuming = !self.assigned.is_empty();
        }
    }

    /// After a clean drain: the last stats say so.
    fn finish(&mut self) {
        if let Some(alerter) = self.alerter.take() {
            alerter.finish();
        }
        self.telemetry.report.exited_cleanly = true;
        self.telemetry.report.consuming = false;
        self.telemetry.publish(&self.core);
        tracing::info!(stats = ?self.core.stats(), "stopped cleanly");
    }
}

/// Writes one batch as an unlogged batch of prepared upserts, in the background.
fn spawn_write(
    writer: &Writer,
    batch_id: u64,
    rows: Arc<[Row]>,
    done: tokio::sync::mpsc::UnboundedSender<Done>,
) {
    let written = match writer {
        Writer::Cql { session, insert } => {
            let (session, insert, rows) = (Arc::clone(session), insert.clone(), Arc::clone(&rows));
            Box::pin(async move {
                let mut batch = Batch::new(BatchType::Unlogged);
                let mut values = Vec::with_capacity(rows.len());
                for row in rows.iter() {
                    batch.append_statement(insert.clone());
                    values.push(cql::insert_values(&row.record));
                }
                session
                    .batch(&batch, values)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }) as Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        }
        Writer::Postgres(writer) => {
            let (writer, rows) = (Arc::clone(writer), Arc::clone(&rows));
            Box::pin(async move { writer.write(rows.iter().map(|row| &row.record)).await })
        }
    };
    tokio::spawn(async move {
        let started_us = epoch_us();
        let result = written.await;
        let _ = done.send(Done::Write {
            batch_id,
            rows,
            started_us,
            result,
        });
    });
}

/// An undecodable record on its way to the dead-letter topic.
struct DeadLetter {
    partition: i32,
    offset: i64,
    payload: Vec<u8>,
    reason: String,
}

/// Sends one record to the dead-letter topic (with the reason as a header), in the background.
fn spawn_dead_letter(
    producer: FutureProducer,
    topic: String,
    record: DeadLetter,
    done: tokio::sync::mpsc::UnboundedSender<Done>,
) {
    tokio::spawn(async move {
        let header = rdkafka::message::Header {
            key: "roadtest-reason",
            value: Some(record.reason.as_bytes()),
        };
        let future_record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&topic)
            .payload(record.payload.as_slice())
            .headers(rdkafka::message::OwnedHeaders::new().insert(header));
        let result = producer
            .send(future_record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(error, _)| error.to_string());
        let _ = done.send(Done::DeadLetter {
            partition: record.partition,
            offset: record.offset,
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
