//! The containers target on a real Docker daemon: Kafka and Cassandra (or ScyllaDB) start, answer Kafka and CQL clients, take faults, report usage and go away.
//!
//! Ignored by default (CI has no Docker daemon): `cargo test -p roadtest --test containers -- --ignored`.
//! The first run pulls the images (apache/kafka-native 3.8.0, cassandra 5.0.4, scylladb/scylla).
//! The tests hold `CONTAINERS`, so at most one database container runs at a time.

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use roadtest::clients::{cql, kafka, unique_suffix};
use roadtest::targets::Role;
use roadtest::targets::containers::choice::{connect, docker_endpoint};
use roadtest::targets::containers::{ContainersOptions, ContainersTarget, Database};
use scylla::client::session::Session;

static CONTAINERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bound on every client operation against a service that is up.
const CLIENT_WAIT: Duration = Duration::from_secs(60);

fn options(database: Database) -> ContainersOptions {
    let mut options = ContainersOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_roadtest")));
    options.database = database;
    options.seed = 7;
    options
}

async fn start(options: ContainersOptions) -> ContainersTarget {
    ContainersTarget::start(options)
        .await
        .unwrap_or_else(|error| panic!("the containers target did not start: {error}"))
}

/// Partitions of `topic` and the broker addresses the metadata advertises.
fn metadata(bootstrap: &str, topic: &str) -> (usize, Vec<String>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("a metadata client");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap_or_else(|error| panic!("no metadata from {bootstrap}: {error}"));
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    let brokers = metadata
        .brokers()
        .iter()
        .map(|b| format!("{}:{}", b.host(), b.port()))
        .collect();
    (partitions, brokers)
}

async fn release_version(session: &Session) -> String {
    let rows = session
        .query_unpaged("SELECT release_version FROM system.local", ())
        .await
        .expect("system.local answers")
        .into_rows_result()
        .expect("rows");
    let (version,) = rows.single_row::<(String,)>().expect("one row");
    version
}

async fn assert_removed(ids: &[String]) {
    let docker = connect(&docker_endpoint()).expect("a Docker client");
    for id in ids {
        assert!(
            docker.inspect_container(id, None).await.is_err(),
            "container {id} is still there after remove()"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker daemon: run with cargo test -- --ignored"]
async fn kafka_and_cassandra_answer_take_faults_and_go_away() {
    let _guard = CONTAINERS.lock().await;
    let mut target = start(options(Database::Cassandra)).await;
    let endpoints = target.endpoints().clone();
    for (role, after) in target.ready_after() {
        eprintln!("{role} ready after {after:?}");
    }
    let versions = target.service_versions();
    assert!(
        versions["broker"].starts_with("apache/kafka-native:3.8.0"),
        "{versions:?}"
    );
    assert!(
        versions["cassandra"].starts_with("cassandra:5.0"),
        "{versions:?}"
    );

    // Kafka through the fault proxy; the broker advertises the proxy, not its own port.
    let topic = format!("roadtest-containers-{}", unique_suffix());
    kafka::create_topics(&endpoints.kafka, &[(&topic, 3)], 1, CLIENT_WAIT)
        .await
        .expect("topic created through the proxy");
    let (partitions, brokers) = metadata(&endpoints.kafka.bootstrap, &topic);
    assert_eq!(partitions, 3);
    assert_eq!(brokers, vec![endpoints.kafka.bootstrap.clone()]);

    // CQL v4 through the proxy (the consumer's way) and direct (set-up and verification).
    let through_proxy = cql::connect(&endpoints.cql, CLIENT_WAIT)
        .await
        .expect("CQL through the proxy");
    assert!(release_version(&through_proxy).await.starts_with("5."));
    let direct = cql::connect(&endpoints.cql_direct, CLIENT_WAIT)
        .await
        .expect("CQL direct");
    let keyspace = format!("roadtest_containers_{}", unique_suffix());
    cql::create_schema(
        &direct,
        &endpoints.cql_direct.address(),
        &keyspace,
        cql::REPLICATION_ONE,
        &Default::default(),
    )
    .await
    .expect("the pipeline's schema");
    direct
        .query_unpaged(
            format!(
                "INSERT INTO {keyspace}.telemetry (vehicle_id, timestamp, seq) VALUES ('veh-000001', 1, 1)"
            ),
            (),
        )
        .await
        .expect("an insert");

    // Memory and CPU of both containers from the stats API.
    let probe = target.usage_probe();
    let first = probe.sample().await;
    assert_eq!(
        first.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["broker", "cassandra"]
    );
    assert!(
        first.iter().all(|u| u.rss_mb.is_some_and(|mb| mb > 10.0)),
        "{first:?}"
    );
    let second = probe.sample().await;
    assert!(second.iter().all(|u| u.cpu_percent.is_some()), "{second:?}");

    // Pause and resume the broker: metadata answers again.
    target.pause(Role::Broker).await.expect("docker pause");
    target.resume(Role::Broker).await.expect("docker unpause");
    assert_eq!(metadata(&endpoints.kafka.bootstrap, &topic).0, 3);

    // Kill and restart Cassandra: same port, ready again (log line and query).
    target.kill(Role::Cassandra).await.expect("docker kill");
    let ready_after = target.restart(Role::Cassandra).await.expect("restarted");
    eprintln!("cassandra ready again after {ready_after:?}");
    let again = cql::connect(&endpoints.cql_direct, CLIENT_WAIT)
        .await
        .expect("CQL after the restart");
    assert!(release_version(&again).await.starts_with("5."));

    // Stop the broker cleanly and start it again: the topic survives (data in the container).
    assert!(
        target
            .stop(Role::Broker, Duration::from_secs(20))
            .await
            .expect("docker stop"),
        "the broker did not exit cleanly on SIGTERM"
    );
    target
        .restart(Role::Broker)
        .await
        .expect("broker restarted");
    assert_eq!(metadata(&endpoints.kafka.bootstrap, &topic).0, 3);

    let ids: Vec<String> = [Role::Broker, Role::Cassandra]
        .iter()
        .filter_map(|role| target.container_id(*role).map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 2);
    target.remove().await;
    assert_removed(&ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker daemon: run with cargo test -- --ignored"]
async fn scylla_answers_cql_v4_without_a_bridge() {
    let _guard = CONTAINERS.lock().await;
    let target = start(options(Database::Scylla)).await;
    let endpoints = target.endpoints().clone();
    let session = cql::connect(&endpoints.cql, CLIENT_WAIT)
        .await
        .expect("CQL through the proxy");
    let keyspace = format!("roadtest_scylla_{}", unique_suffix());
    cql::create_schema(
        &session,
        &endpoints.cql.address(),
        &keyspace,
        cql::REPLICATION_ONE,
        &Default::default(),
    )
    .await
    .expect("the pipeline's schema");
    assert!(!release_version(&session).await.is_empty());
    let ids: Vec<String> = target
        .container_id(Role::Cassandra)
        .map(str::to_string)
        .into_iter()
        .collect();
    target.remove().await;
    assert_removed(&ids).await;
}
