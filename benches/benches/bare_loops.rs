//! roadtest's own cost, side by side in one run on the same services: (a) roadtest's producer against (b) the barest rdkafka loop sending the same pre-encoded records with the same settings (and against (g), that loop generating and encoding as it sends, which shows what roadtest's recording costs), (c) roadtest's reference consumer against (d) the barest scylla loop writing the same rows with the same batching and concurrency, and (e) the reference consumer writing PostgreSQL against (f) the barest tokio-postgres loop with the same upsert, batching and concurrency. Rounds alternate the order; the ratios a/b, a/g, c/d and e/f are reported per round and as medians, printed and written to reports/bench/bare-loops.json.
//!
//! Needs a broker and a CQL endpoint: `ci/services up`, then `ROADTEST_KAFKA_BOOTSTRAP` and
//! `ROADTEST_CQL_CONTACT` from `~/.cache/roadtest/services/services.env` (ci/test exports them);
//! and PostgreSQL installed (the bench starts its own, as the local target does).
//! `cargo bench -p roadtest-benches --bench bare_loops` measures (five rounds of 500,040
//! events); under `cargo test` one small round checks that all seven loops deliver everything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use roadtest::Scenario;
use roadtest::clients::kafka::{ProducerSettings, create_topics, producer_config};
use roadtest::clients::pg::{self, PgEndpoint, UpsertColumns};
use roadtest::clients::{CqlConnection, KafkaConnection, cql};
use roadtest::drive::{Destination, DriveCounters, drive};
use roadtest::fleet::FleetPlan;
use roadtest::ingest::service::IngestArgs;
use roadtest::ingest::stats::ConsumerReport;
use roadtest::measure::RunClock;
use roadtest::scenario::{Sink, TableSettings};
use roadtest::targets::{LocalOptions, LocalTarget};
use roadtest::wire::{Record, RecordFormat};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use serde::Serialize;

const PARTITIONS: u32 = 6;
/// The reference consumer's defaults: rows per batch, batches in flight.
const BATCH_SIZE: usize = 100;
const IN_FLIGHT: usize = 64;
const DEADLINE: Duration = Duration::from_secs(60);

/// Where the services are and what to send.
struct Bench {
    kafka: KafkaConnection,
    cql: CqlConnection,
    plan: FleetPlan,
    /// The plan's records, encoded once: (key, payload).
    records: Arc<Vec<(Vec<u8>, Vec<u8>)>>,
    /// A name no earlier run used, for topics, keyspaces and groups.
    stamp: String,
    /// The PostgreSQL of (e) and (f) (the local target's, started for the bench), and its URL.
    postgres: (LocalTarget, PgEndpoint),
}

/// One round's four rates (events or rows per second) and the two ratios.
#[derive(Debug, Clone, Copy, Serialize)]
struct Round {
    roadtest_producer: f64,
    bare_producer: f64,
    producer_ratio: f64,
    /// The bare loop generating and encoding each event as it sends, like roadtest.
    generating_producer: f64,
    /// roadtest's producer against that loop: what its recording costs.
    recording_ratio: f64,
    reference_consumer: f64,
    bare_writer: f64,
    consumer_ratio: f64,
    /// The reference consumer writing PostgreSQL, the bare tokio-postgres loop, their ratio.
    reference_consumer_postgres: f64,
    bare_writer_postgres: f64,
    postgres_ratio: f64,
}

fn main() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let (vehicles, rounds) = if measuring { (2_500, 5) } else { (25, 1) };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let bench = Bench::new(vehicles, runtime.block_on(start_postgres()));
    eprintln!(
        "bare_loops: {} events per loop, {rounds} round(s), broker {}, CQL {}",
        bench.records.len(),
        bench.kafka.bootstrap,
        bench.cql.address()
    );
    let results: Vec<Round> = (0..rounds)
        .map(|round| runtime.block_on(bench.round(round)))
        .collect();
    let medians = medians(&results);
    print_table(&results, &medians);
    if measuring {
        let path = write_json(&bench, &results, &medians);
        eprintln!("bare_loops: written to {}", path.display());
    }
}

impl Bench {
    fn new(vehicles: u32, postgres: (LocalTarget, PgEndpoint)) -> Bench {
        let kafka = KafkaConnection::plaintext(service_env("ROADTEST_KAFKA_BOOTSTRAP"));
        let contact: SocketAddr = service_env("ROADTEST_CQL_CONTACT")
            .parse()
            .expect("ROADTEST_CQL_CONTACT is HOST:PORT");
        let text = format!(
            "name = \"bare-loops\"\nseed = 42\nduration_s = 20\n\n\
             [fleet]\nvehicle_count = {vehicles}\nrate_hz = 10.0\n"
        );
        let scenario = Scenario::parse(&text, Path::new("bare-loops.toml")).expect("valid");
        let plan = FleetPlan::from_scenario(&scenario);
        let format = RecordFormat::default();
        let records = plan
            .events()
            .map(|event| {
                let (mut key, mut payload) = (Vec::new(), Vec::new());
                format.encode_key(&event, &mut key);
                format.encode(&event, &mut payload);
                (key, payload)
            })
            .collect::<Vec<_>>();
        let stamp = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs())
        );
        Bench {
            kafka,
            cql: CqlConnection::plain(contact),
            plan,
            records: Arc::new(records),
            stamp,
            postgres,
        }
    }

    /// The producers (in alternating order), then c and d on what a sent.
    async fn round(&self, round: usize) -> Round {
        let name = |what: &str| format!("bare_{what}_{}_{round}", self.stamp);
        let topics = [name("a"), name("b"), name("g")];
        let [roadtest_producer, bare_producer, generating_producer] =
            self.producers(round, &topics).await;
        let topic_a = &topics[0];
        let session = cql::connect(&self.cql, DEADLINE)
            .await
            .unwrap_or_else(|error| panic!("{error}\n{START_SERVICES}"));
        let (keyspace_c, keyspace_d) = (name("c"), name("d"));
        for keyspace in [&keyspace_c, &keyspace_d] {
            let table = TableSettings::default();
            cql::create_schema(
                &session,
                &self.cql.address(),
                keyspace,
                cql::REPLICATION_ONE,
                &table,
            )
            .await
            .expect("create the keyspace");
        }
        let (reference_consumer, bare_writer) = if round.is_multiple_of(2) {
            let c = self.reference_consumer(topic_a, &keyspace_c, None).await;
            (c, self.bare_writer(&session, &keyspace_d).await)
        } else {
            let d = self.bare_writer(&session, &keyspace_d).await;
            (self.reference_consumer(topic_a, &keyspace_c, None).await, d)
        };
        let (reference_consumer_postgres, bare_writer_postgres) = self
            .postgres_round(round, topic_a, [name("e"), name("f")])
            .await;
        let result = Round {
            roadtest_producer,
            bare_producer,
            producer_ratio: roadtest_producer / bare_producer,
            generating_producer,
            recording_ratio: roadtest_producer / generating_producer,
            reference_consumer,
            bare_writer,
            consumer_ratio: reference_consumer / bare_writer,
            reference_consumer_postgres,
            bare_writer_postgres,
            postgres_ratio: reference_consumer_postgres / bare_writer_postgres,
        };
        eprintln!("bare_loops: round {round}: {result:?}");
        // Tansu keeps its log in memory: the next round starts from the same footing.
        let admin: AdminClient<DefaultClientContext> = self
            .kafka
            .client_config()
            .create()
            .expect("an admin client");
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let deleted = admin.delete_topics(&topics, &AdminOptions::new());
        if let Err(error) = deleted.await {
            eprintln!("bare_loops: warning: cannot delete the round's topics: {error}");
        }
        for keyspace in [&keyspace_c, &keyspace_d] {
            let drop = format!("DROP KEYSPACE IF EXISTS {keyspace}");
            if let Err(error) = session.query_unpaged(drop, ()).await {
                eprintln!("bare_loops: warning: cannot drop {keyspace}: {error}");
            }
        }
        result
    }

    /// (a), (b) and the generating bare loop, each into its topic of `topics`, in the order
    /// a-b-g in even rounds and g-b-a in odd ones: their rates.
    async fn producers(&self, round: usize, topics: &[String; 3]) -> [f64; 3] {
        let wanted: Vec<(&str, u32)> = topics.iter().map(|t| (t.as_str(), PARTITIONS)).collect();
        create_topics(&self.kafka, &wanted, 1, DEADLINE)
            .await
            .unwrap_or_else(|error| panic!("{error}\n{START_SERVICES}"));
        let mut rates = [0.0; 3];
        let mut order = [0, 1, 2];
        if !round.is_multiple_of(2) {
            order.reverse();
        }
        for which in order {
            let topic = &topics[which];
            rates[which] = match which {
                0 => self.roadtest_producer(topic).await,
                1 => self.bare_producer(topic, false).await,
                _ => self.bare_producer(topic, true).await,
            };
        }
        rates
    }

    /// (a) roadtest's producer (generating and encoding as it sends, every delivery recorded),
    /// every event due at once: acknowledgements per second between 10% and 90% of them.
    async fn roadtest_producer(&self, topic: &str) -> f64 {
        let (plan, kafka, topic) = (self.plan, self.kafka.clone(), topic.to_string());
        let counters = Arc::new(DriveCounters::default());
        let acknowledged = Arc::clone(&counters);
        let producing = tokio::task::spawn_blocking(move || {
            let clock = RunClock::now(plan.start_ms, 1e9);
            let format = RecordFormat::default();
            let destination = Destination {
                topic: &topic,
                format: &format,
            };
            let stop = Arc::new(AtomicBool::new(false));
            let settings = ProducerSettings::new(false);
            drive(&plan, &kafka, destination, settings, clock, counters, stop)
        });
        let total = self.records.len() as u64;
        let rate = window_rate(total, || acknowledged.acknowledged.load(Ordering::Relaxed)).await;
        let outcome = producing.await.expect("the producer thread");
        let outcome = outcome.expect("the producer starts");
        assert_eq!(outcome.acknowledged, total, "{:?}", outcome.first_errors);
        rate
    }

    /// (b) the barest loop: the same records, pre-encoded (or, with `generate`, generated and
    /// encoded as it sends, as roadtest's producer does), the same producer settings, a delivery
    /// callback that only counts: acknowledgements per second between 10% and 90%.
    async fn bare_producer(&self, topic: &str, generate: bool) -> f64 {
        let acknowledged = Arc::new(AtomicU64::new(0));
        let context = AckCounter(Arc::clone(&acknowledged));
        let config = producer_config(&self.kafka, ProducerSettings::new(false));
        let producer: ThreadedProducer<AckCounter> = config
            .create_with_context(context)
            .expect("a bare producer");
        let (records, plan, topic) = (Arc::clone(&self.records), self.plan, topic.to_string());
        let producing = tokio::task::spawn_blocking(move || {
            let send = |key: &[u8], payload: &[u8]| {
                let mut record = BaseRecord::to(&topic).key(key).payload(payload);
                while let Err((error, returned)) = producer.send(record) {
                    let full = KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
                    assert_eq!(error, full, "the bare producer failed");
                    record = returned;
                    std::thread::sleep(Duration::from_millis(1));
                }
            };
            if generate {
                let (format, mut key, mut payload) = (RecordFormat::default(), vec![], vec![]);
                for event in plan.events() {
                    key.clear();
                    payload.clear();
                    format.encode_key(&event, &mut key);
                    format.encode(&event, &mut payload);
                    send(&key, &payload);
                }
            } else {
                records.iter().for_each(|(key, payload)| send(key, payload));
            }
            producer.flush(DEADLINE).expect("every record acknowledged");
        });
        let total = self.records.len() as u64;
        let rate = window_rate(total, || acknowledged.load(Ordering::Relaxed)).await;
        producing.await.expect("the bare producer's thread");
        rate
    }
}

/// The barest delivery callback: counts acknowledgements.
struct AckCounter(Arc<AtomicU64>);

impl ClientContext for AckCounter {}

impl ProducerContext for AckCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_ok() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where the services' addresses come from, and what to do when they are missing.
const START_SERVICES: &str = "bare_loops needs a broker and Cassandra: run `ci/services up` and \
     export the lines of ~/.cache/roadtest/services/services.env (ci/test does both)";

fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set. {START_SERVICES}"))
}

impl Bench {
    /// (c) roadtest's reference consumer, in this process, reading what (a) sent: rows written
    /// per second between 10% and 90% of them (group join and drain left out).
    async fn reference_consumer(&self, topic: &str, keyspace: &str, postgres: Option<&str>) -> f64 {
        let stats_dir = std::env::temp_dir().join(format!("bare-loops-{keyspace}"));
        std::fs::create_dir_all(&stats_dir).expect("a stats folder");
        let args = ingest_args(self, topic, keyspace, &stats_dir, postgres);
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = Arc::clone(&stop);
        let consumer = tokio::spawn(roadtest::ingest::service::run(args, async move {
            stopped.notified().await
        }));
        let total = self.records.len() as u64;
        let rate = window_rate(total, || {
            let reports = ConsumerReport::read_all(&stats_dir);
            reports.iter().map(|(_, report)| report.core.written).sum()
        })
        .await;
        stop.notify_one();
        consumer
            .await
            .expect("the consumer task")
            .expect("the consumer stops cleanly");
        let _ = std::fs::remove_dir_all(&stats_dir);
        rate
    }

    /// (d) the barest writer: the same rows (decoded from the same records), the consumer's
    /// prepared upsert in unlogged batches of its size, as many in flight: rows per second
    /// between 10% and 90% of them.
    async fn bare_writer(&self, session: &Session, keyspace: &str) -> f64 {
        let insert = session
            .prepare(cql::insert_statement(keyspace))
            .await
            .expect("prepare the insert");
        write_in_batches(&self.rows(), |chunk| {
            let mut batch = Batch::new(BatchType::Unlogged);
            let values: Vec<_> = chunk
                .iter()
                .map(|record| {
                    batch.append_statement(insert.clone());
                    cql::insert_values(record)
                })
                .collect();
            async move {
                session
                    .batch(&batch, values)
                    .await
                    .expect("the batch is written");
            }
        })
        .await
    }
}

impl Bench {
    /// The plan's rows, decoded from the same records the producers sent.
    fn rows(&self) -> Vec<Record> {
        self.records
            .iter()
            .map(|(_, payload)| Record::decode(payload).expect("decodes").0)
            .collect()
    }

    /// (e) and (f) into schemas of their own (named `schemas`), in alternating order; their
    /// rates. The schemas are dropped afterwards.
    async fn postgres_round(&self, round: usize, topic: &str, schemas: [String; 2]) -> (f64, f64) {
        let endpoint = &self.postgres.1;
        let url = &endpoint.url;
        let client = pg::connect(endpoint, DEADLINE)
            .await
            .expect("PostgreSQL answers");
        for schema in &schemas {
            pg::create_schema(&client, url, schema, &Default::default())
                .await
                .expect("create the schema");
        }
        let [schema_e, schema_f] = &schemas;
        let rates = if round.is_multiple_of(2) {
            let e = self.reference_consumer(topic, schema_e, Some(url)).await;
            (e, self.bare_postgres_writer(&client, schema_f).await)
        } else {
            let f = self.bare_postgres_writer(&client, schema_f).await;
            (self.reference_consumer(topic, schema_e, Some(url)).await, f)
        };
        for schema in &schemas {
            if let Err(error) = pg::drop_schema(&client, url, schema).await {
                eprintln!("bare_loops: warning: cannot drop {schema}: {error}");
            }
        }
        rates
    }

    /// (f) the barest tokio-postgres loop: the same rows, the reference consumer's upsert
    /// (prepared, every column an array) in batches of its size, as many in flight on one
    /// connection (pipelined): rows per second between 10% and 90% of them.
    async fn bare_postgres_writer(&self, client: &tokio_postgres::Client, schema: &str) -> f64 {
        let upsert = client
            .prepare(&pg::upsert_statement(schema))
            .await
            .expect("prepare the upsert");
        let upsert = &upsert;
        write_in_batches(&self.rows(), |chunk| async move {
            let columns = UpsertColumns::of(chunk.iter());
            client
                .execute(upsert, &columns.params())
                .await
                .expect("the batch is written");
        })
        .await
    }
}

/// A PostgreSQL of the bench's own, started as the local target starts it (with a broker the
/// bench does not use), and its connection string.
async fn start_postgres() -> (LocalTarget, PgEndpoint) {
    let mut options = LocalOptions::from_env();
    options.sink = Sink::Postgres;
    let target = LocalTarget::start(options)
        .await
        .unwrap_or_else(|error| panic!("bare_loops: cannot start PostgreSQL: {error}"));
    let url = target
        .endpoints()
        .postgres_direct
        .clone()
        .expect("the local target's PostgreSQL URL");
    (target, url)
}

/// The reference consumer's flags, as a run passes them (writing PostgreSQL at `postgres`, else
/// Cassandra).
fn ingest_args(
    bench: &Bench,
    topic: &str,
    keyspace: &str,
    stats_dir: &Path,
    postgres: Option<&str>,
) -> IngestArgs {
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        ingest: IngestArgs,
    }
    let flags = [
        "ingest".to_string(),
        format!("--bootstrap={}", bench.kafka.bootstrap),
        format!("--topic={topic}"),
        format!("--dead-letter-topic={topic}-dead"),
        format!("--group={keyspace}"),
        match postgres {
            Some(url) => format!("--postgres-url={url}"),
            None => format!("--cql={}", bench.cql.address()),
        },
        format!("--keyspace={keyspace}"),
        format!("--batch-size={BATCH_SIZE}"),
        format!("--max-in-flight={IN_FLIGHT}"),
        "--metrics-listen=127.0.0.1:0".to_string(),
        format!("--stats-dir={}", stats_dir.display()),
    ];
    Flags::try_parse_from(flags)
        .expect("the consumer's flags")
        .ingest
}

/// Writes `rows` in batches of [`BATCH_SIZE`], [`IN_FLIGHT`] batches at a time, each with
/// `write`: rows written per second between 10% and 90% of them (see [`window_rate`]).
async fn write_in_batches<'a, Fut: std::future::Future<Output = ()>>(
    rows: &'a [Record],
    write: impl Fn(&'a [Record]) -> Fut,
) -> f64 {
    let written = AtomicU64::new(0);
    let writing = futures_util::stream::iter(rows.chunks(BATCH_SIZE))
        .map(|chunk| {
            let (batch, written) = (write(chunk), &written);
            async move {
                batch.await;
                written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>();
    let watching = window_rate(rows.len() as u64, || written.load(Ordering::Relaxed));
    let (_, rate) = tokio::join!(writing, watching);
    rate
}

/// Samples `count` every 10 ms until it reaches `total` (every event delivered): the rate
/// between the samples where it first reached 10% and 90% of `total`, per second.
async fn window_rate(total: u64, count: impl Fn() -> u64) -> f64 {
    let started = Instant::now();
    let (low, high) = (total / 10, total * 9 / 10);
    let mut first: Option<(Instant, u64)> = None;
    let mut rate = None;
    loop {
        let (now, done) = (Instant::now(), count());
        if done >= low && first.is_none() {
            first = Some((now, done));
        }
        if done >= high && rate.is_none() {
            let (then, from) = first.unwrap_or((started, 0));
            let seconds = now.duration_since(then).as_secs_f64().max(1e-3);
            rate = Some((done - from) as f64 / seconds);
        }
        if let Some(rate) = rate.filter(|_| done >= total) {
            return rate;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {done} of {total} written after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The median of each column over the rounds (each on its own: not one round's figures).
fn medians(rounds: &[Round]) -> Round {
    let median = |pick: fn(&Round) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Round {
        roadtest_producer: median(|r| r.roadtest_producer),
        bare_producer: median(|r| r.bare_producer),
        producer_ratio: median(|r| r.producer_ratio),
        generating_producer: median(|r| r.generating_producer),
        recording_ratio: median(|r| r.recording_ratio),
        reference_consumer: median(|r| r.reference_consumer),
        bare_writer: median(|r| r.bare_writer),
        consumer_ratio: median(|r| r.consumer_ratio),
        reference_consumer_postgres: median(|r| r.reference_consumer_postgres),
        bare_writer_postgres: median(|r| r.bare_writer_postgres),
        postgres_ratio: median(|r| r.postgres_ratio),
    }
}

fn print_table(rounds: &[Round], medians: &Round) {
    println!(
        "round   roadtest (a)  bare (b)  a/b   bare generating (g)  a/g   \
         reference consumer (c)  bare writer (d)  c/d   consumer into PostgreSQL (e)  \
         bare PostgreSQL writer (f)  e/f"
    );
    let labels = (0..rounds.len()).map(|index| index.to_string());
    let rows = rounds
        .iter()
        .zip(labels)
        .chain([(medians, "median".to_string())]);
    for (r, label) in rows {
        println!(
            "{label:<6} {:>13.0} {:>9.0}  {:.2}  {:>19.0}  {:.2}  {:>22.0}  {:>15.0}  {:.2}  \
             {:>28.0}  {:>26.0}  {:.2}",
            r.roadtest_producer,
            r.bare_producer,
            r.producer_ratio,
            r.generating_producer,
            r.recording_ratio,
            r.reference_consumer,
            r.bare_writer,
            r.consumer_ratio,
            r.reference_consumer_postgres,
            r.bare_writer_postgres,
            r.postgres_ratio
        );
    }
}

fn write_json(bench: &Bench, rounds: &[Round], medians: &Round) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/bench");
    std::fs::create_dir_all(&dir).expect("reports/bench");
    let path = dir.join("bare-loops.json");
    let json = serde_json::json!({
        "events_per_loop": bench.records.len(),
        "partitions": PARTITIONS,
        "batch_size": BATCH_SIZE,
        "max_in_flight": IN_FLIGHT,
        "rounds": rounds,
        "medians": medians,
    });
    let text = serde_json::to_string_pretty(&json).expect("JSON");
    std::fs::write(&path, text).expect("write bare-loops.json");
    path
}
