//! Unit tests of the containers target: container builders, options, starting without Docker (choice and stats tests sit beside their code).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testcontainers::Image;
use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::IntoContainerPort;
use testcontainers_modules::kafka::apache::KAFKA_PORT;
use testcontainers_modules::scylladb::ScyllaDB;

use super::options::{
    CassandraFamily, CommitlogSync, ContainersOptions, Database, ImageRef, KafkaFamily,
    LOCAL_CASSANDRA_IMAGE, LOCAL_KAFKA_IMAGE, parse_env_file,
};
use super::spec::{
    self, CASSANDRA_READY, CQL_CONTAINER_PORT, ContainerSpec, KAFKA_CONTAINER_PORT, KAFKA_READY,
    LABEL_OWNER_HOST, LABEL_OWNER_PID, LABEL_ROLE, LABEL_RUN, LogStream, POSTGRES_CONTAINER_PORT,
    POSTGRES_READY, SCYLLA_READY, TANSU_READY,
};
use super::{ContainersError, ContainersTarget};
use crate::targets::Role;

const MIB: i64 = 1024 * 1024;

fn options() -> ContainersOptions {
    ContainersOptions::new(PathBuf::from("/nonexistent/roadtest"))
}

fn proxy() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_002))
}

fn labels(role: Role) -> BTreeMap<String, String> {
    spec::labels("run1", role, 4242, "host-a")
}

/// The host config testcontainers would send after applying the request's modifier.
fn host_config(spec: &ContainerSpec) -> HostConfig {
    let request = spec.request(Duration::from_secs(1));
    let modifier = request
        .host_config_modifier()
        .expect("every request sets its memory cap and port binding");
    let mut host = HostConfig {
        publish_all_ports: Some(true),
        ..HostConfig::default()
    };
    modifier(&mut host);
    host
}

fn binding(host_port: u16) -> Option<Vec<PortBinding>> {
    Some(vec![PortBinding {
        host_ip: Some("127.0.0.1".into()),
        host_port: Some(host_port.to_string()),
    }])
}

// ----- container builders --------------------------------------------------------------------

#[test]
fn kafka_uses_the_modules_native_image_and_advertises_its_proxy() {
    let spec = spec::kafka_spec(&options(), "run1", 40_001, proxy(), labels(Role::Broker));
    assert_eq!(spec.image.to_string(), "apache/kafka-native:3.8.0");
    assert_eq!(spec.container_name, "roadtest-run1-broker");
    assert_eq!(spec.role, Role::Broker);
    assert_eq!(
        spec.env["KAFKA_ADVERTISED_LISTENERS"],
        "PLAINTEXT://127.0.0.1:40002,BROKER://localhost:9093"
    );
    // The module's KRaft single-node settings are kept.
    assert_eq!(spec.env["KAFKA_PROCESS_ROLES"], "broker,controller");
    assert_eq!(
        spec.env["KAFKA_CONTROLLER_QUORUM_VOTERS"],
        "1@localhost:9094"
    );
    assert_eq!(spec.env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"], "1");
    assert!(spec.env["KAFKA_LISTENERS"].contains("PLAINTEXT://0.0.0.0:9092"));
    assert_eq!(spec.env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"], "0");
    assert!(
        !spec.env.contains_key("KAFKA_HEAP_OPTS"),
        "native image: no JVM heap"
    );
    assert!(spec.cmd.is_empty());
    assert_eq!(spec.container_port, KAFKA_PORT.as_u16());
    assert_eq!(KAFKA_CONTAINER_PORT, 9092);
    assert_eq!(spec.host_port, 40_001);
    assert_eq!(
        spec.host_address(),
        SocketAddr::from(([127, 0, 0, 1], 40_001))
    );
    assert_eq!(spec.memory_limit_mb, 1024);
    assert_eq!(spec.ready_line, KAFKA_READY);
    assert_eq!(spec.labels, labels(Role::Broker));
}

#[test]
fn a_jvm_kafka_image_gets_a_heap_within_its_cap() {
    let mut options = options();
    options.kafka_image = ImageRef::new("apache/kafka", "3.8.0");
    options.broker_memory_mb = 1536;
    let spec = spec::kafka_spec(&options, "run1", 40_001, proxy(), labels(Role::Broker));
    assert_eq!(spec.image.to_string(), "apache/kafka:3.8.0");
    assert_eq!(spec.env["KAFKA_HEAP_OPTS"], "-Xms768m -Xmx768m");
    assert_eq!(spec.memory_limit_mb, 1536);
}

#[test]
fn the_request_carries_image_env_port_memory_cap_and_ready_line() {
    let spec = spec::kafka_spec(&options(), "run1", 40_001, proxy(), labels(Role::Broker));
    let request = spec.request(Duration::from_secs(123));
    assert_eq!(request.descriptor(), "apache/kafka-native:3.8.0");
    assert_eq!(
        request.container_name().as_deref(),
        Some("roadtest-run1-broker")
    );
    assert_eq!(request.startup_timeout(), Some(Duration::from_secs(123)));
    let env: BTreeMap<String, String> = request
        .env_vars()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    assert_eq!(env, spec.env);
    assert_eq!(request.expose_ports(), &[9092.tcp()]);
    assert_eq!(request.labels(), &labels(Role::Broker));
    assert_eq!(request.cmd().count(), 0);
    let ready = format!("{:?}", request.ready_conditions());
    assert!(
        ready.contains("Kafka Server started") && ready.contains("StdOut"),
        "{ready}"
    );

    let host = host_config(&spec);
    assert_eq!(host.memory, Some(1024 * MIB));
    assert_eq!(host.memory_swap, Some(1024 * MIB), "no swap beyond the cap");
    assert_eq!(host.publish_all_ports, Some(false));
    assert_eq!(
        host.port_bindings,
        Some(HashMap::from([("9092/tcp".to_string(), binding(40_001))]))
    );
}

#[test]
fn cassandra_is_pinned_with_heap_env_memory_cap_and_ready_line() {
    let options = options();
    let spec = spec::database_spec(&options, "run1", 40_003, None, labels(Role::Cassandra));
    assert_eq!(spec.image.to_string(), "cassandra:5.0.4");
    assert_ne!(spec.image.tag, "latest");
    assert_eq!(spec.container_name, "roadtest-run1-cassandra");
    assert_eq!(spec.role, Role::Cassandra);
    assert_eq!(spec.env["MAX_HEAP_SIZE"], "768M");
    assert_eq!(spec.env["HEAP_NEWSIZE"], "192M");
    assert_eq!(spec.env["CASSANDRA_NUM_TOKENS"], "1");
    assert!(spec.env["JVM_EXTRA_OPTS"].contains("skip_wait_for_gossip_to_settle=0"));
    assert!(spec.cmd.is_empty(), "periodic: the image's own command");
    assert_eq!(spec.container_port, CQL_CONTAINER_PORT);
    assert_eq!(spec.memory_limit_mb, 2048);
    assert_eq!(spec.ready_line, CASSANDRA_READY);
    assert_eq!(spec.ready_line.stream, LogStream::Stdout);

    let request = spec.request(Duration::from_secs(240));
    assert_eq!(request.descriptor(), "cassandra:5.0.4");
    assert_eq!(request.expose_ports(), &[9042.tcp()]);
    let ready = format!("{:?}", request.ready_conditions());
    assert!(
        ready.contains("Starting listening for CQL clients"),
        "{ready}"
    );
    let host = host_config(&spec);
    assert_eq!(host.memory, Some(2048 * MIB));
    assert_eq!(host.memory_swap, Some(2048 * MIB));
    assert_eq!(
        host.port_bindings,
        Some(HashMap::from([("9042/tcp".to_string(), binding(40_003))]))
    );
}

#[test]
fn cassandra_heap_follows_the_options() {
    let mut options = options();
    options.cassandra_heap_mb = 256;
    options.database_memory_mb = 1024;
    let spec = spec::database_spec(&options, "run1", 40_003, None, labels(Role::Cassandra));
    assert_eq!(spec.env["MAX_HEAP_SIZE"], "256M");
    assert_eq!(spec.env["HEAP_NEWSIZE"], "64M");
    assert_eq!(host_config(&spec).memory, Some(1024 * MIB));
}

#[test]
fn batch_commitlog_edits_cassandra_yaml_then_runs_the_entrypoint() {
    let mut options = options();
    options.commitlog_sync = CommitlogSync::Batch;
    let spec = spec::database_spec(&options, "run1", 40_003, None, labels(Role::Cassandra));
    assert_eq!(spec.cmd[..2], ["bash".to_string(), "-c".to_string()]);
    let script = &spec.cmd[2];
    assert!(script.contains("s/^commitlog_sync: periodic$/commitlog_sync: batch/"));
    assert!(script.contains("# commitlog_sync_period"));
    assert!(script.contains("/etc/cassandra/cassandra.yaml"));
    assert!(
        script.contains("exit 1"),
        "a changed yaml must fail the start loudly"
    );
    assert!(script.ends_with("exec docker-entrypoint.sh cassandra -f"));
    let request = spec.request(Duration::from_secs(1));
    assert_eq!(request.cmd().count(), 3);
}

#[test]
fn scylla_uses_the_modules_image_one_shard_and_memory_within_the_cap() {
    let mut options = options();
    options.database = Database::Scylla;
    let module = ScyllaDB::default();
    let spec = spec::database_spec(&options, "run1", 40_004, None, labels(Role::Cassandra));
    assert_eq!(spec.image, ImageRef::new(module.name(), module.tag()));
    assert_eq!(spec.image.to_string(), "scylladb/scylla:2025.1.0");
    assert_eq!(spec.container_name, "roadtest-run1-scylla");
    assert_eq!(
        spec.cmd,
        [
            "--smp",
            "1",
            "--memory",
            "1792M",
            "--overprovisioned",
            "1",
            "--developer-mode",
            "1"
        ]
    );
    assert!(spec.env.is_empty());
    assert_eq!(spec.ready_line, SCYLLA_READY);
    // The same ready line as the module's.
    let module_ready = format!("{:?}", module.ready_conditions());
    assert!(module_ready.contains(SCYLLA_READY.text) && module_ready.contains("StdErr"));
    let ready = format!(
        "{:?}",
        spec.request(Duration::from_secs(1)).ready_conditions()
    );
    assert!(
        ready.contains("init - serving") && ready.contains("StdErr"),
        "{ready}"
    );
    assert_eq!(host_config(&spec).memory, Some(2048 * MIB));
}

#[test]
fn postgres_runs_with_the_local_targets_settings_on_its_own_port() {
    let mut options = options();
    options.database = Database::Postgres;
    options.postgres_synchronous_commit = false;
    let spec = spec::database_spec(&options, "run1", 40_006, None, labels(Role::Postgres));
    assert_eq!(spec.role, Role::Postgres);
    assert_eq!(spec.image.to_string(), "postgres:15.14-bookworm");
    assert_eq!(spec.container_name, "roadtest-run1-postgres");
    assert_eq!(spec.container_port, POSTGRES_CONTAINER_PORT);
    assert_eq!(
        spec.client_address,
        SocketAddr::from(([127, 0, 0, 1], 40_006))
    );
    assert_eq!(spec.env["POSTGRES_USER"], "roadtest");
    assert_eq!(spec.env["POSTGRES_HOST_AUTH_METHOD"], "trust");
    assert_eq!(spec.cmd[0], "postgres");
    let settings: Vec<&str> = spec.cmd[1..]
        .chunks(2)
        .map(|pair| {
            assert_eq!(pair[0], "-c");
            pair[1].as_str()
        })
        .collect();
    for setting in [
        "fsync=on",
        "track_commit_timestamp=on",
        "synchronous_commit=off",
    ] {
        assert!(settings.contains(&setting), "{settings:?}");
    }
    assert_eq!(spec.ready_line, POSTGRES_READY);
    assert_eq!(spec.ready_line.stream, LogStream::Stderr);
    assert_eq!(host_config(&spec).memory, Some(2048 * MIB));
    options.postgres_synchronous_commit = true;
    let spec = spec::database_spec(&options, "run1", 40_006, None, labels(Role::Postgres));
    assert!(spec.cmd.contains(&"synchronous_commit=on".to_string()));
    // No heap to check: a cap below Cassandra's needs is fine for PostgreSQL.
    options.database_memory_mb = 256;
    options
        .validate()
        .expect("a small PostgreSQL container is valid");
}

#[test]
fn roadtests_tansu_image_runs_tansu_advertising_its_proxy() {
    let mut options = options();
    options.kafka_image = ImageRef::new(LOCAL_KAFKA_IMAGE, "tansu-0.6.0");
    assert_eq!(options.kafka_family(), KafkaFamily::Tansu);
    let spec = spec::kafka_spec(&options, "run1", 40_001, proxy(), labels(Role::Broker));
    assert_eq!(
        spec.cmd,
        [
            "/bin/tansu",
            "broker",
            "--listener-url",
            "tcp://0.0.0.0:9092",
            "--advertised-listener-url",
            "tcp://127.0.0.1:40002",
            "--storage-engine",
            "memory://tansu/"
        ]
    );
    assert!(spec.env.is_empty(), "no Kafka settings: {:?}", spec.env);
    assert_eq!(spec.ready_line, TANSU_READY);
    assert_eq!(spec.client_address, spec.host_address());
    assert_eq!(host_config(&spec).memory, Some(1024 * MIB));
}

#[test]
fn roadtests_cassandra_image_runs_cassandra_node_behind_the_bridge() {
    let mut options = options();
    options.cassandra_image = ImageRef::new(LOCAL_CASSANDRA_IMAGE, "2.1.0");
    options.commitlog_sync = CommitlogSync::Batch;
    assert!(options.database_needs_bridge());
    let spec = spec::database_spec(
        &options,
        "run1",
        40_003,
        Some(40_005),
        labels(Role::Cassandra),
    );
    assert_eq!(spec.cmd[0], "cassandra-node");
    let flag = |name: &str| {
        let at = spec.cmd.iter().position(|arg| arg == name).expect(name);
        spec.cmd[at + 1].clone()
    };
    assert_eq!(flag("--native-port"), "9042");
    assert_eq!(flag("--rpc-address"), "0.0.0.0");
    assert_eq!(flag("--heap-mb"), "768");
    assert_eq!(flag("--commitlog-sync"), "batch");
    assert_eq!(spec.ready_line, CASSANDRA_READY);
    assert_eq!(
        spec.host_address(),
        SocketAddr::from(([127, 0, 0, 1], 40_003))
    );
    assert_eq!(
        spec.client_address,
        SocketAddr::from(([127, 0, 0, 1], 40_005))
    );
    // Docker Hub images speak CQL v4: no bridge.
    assert!(!self::options().database_needs_bridge());
    let mut scylla = self::options();
    scylla.database = Database::Scylla;
    scylla.cassandra_image = options.cassandra_image.clone();
    assert!(!scylla.database_needs_bridge());
}

#[test]
fn image_families_follow_the_image_name() {
    let family = |name: &str| KafkaFamily::of(&ImageRef::new(name, "1"));
    assert_eq!(family("apache/kafka-native"), KafkaFamily::ApacheNative);
    assert_eq!(family("apache/kafka"), KafkaFamily::ApacheJvm);
    assert_eq!(family("confluentinc/cp-kafka"), KafkaFamily::ApacheJvm);
    assert_eq!(family(LOCAL_KAFKA_IMAGE), KafkaFamily::Tansu);
    let family = |name: &str| CassandraFamily::of(&ImageRef::new(name, "1"));
    assert_eq!(family("cassandra"), CassandraFamily::Official);
    assert_eq!(family(LOCAL_CASSANDRA_IMAGE), CassandraFamily::Local);
}

#[test]
fn the_images_file_is_read_as_shell_assignments() {
    let text = "# written by ci/images build\n\nROADTEST_KAFKA_IMAGE=roadtest-local/kafka:tansu-0.6.0\n\
                ROADTEST_CASSANDRA_IMAGE=\"roadtest-local/cassandra:2.1.0\"\n  ROADTEST_DATABASE = 'cassandra' \n";
    let values = parse_env_file(text);
    assert_eq!(values.len(), 3, "{values:?}");
    assert_eq!(
        values["ROADTEST_KAFKA_IMAGE"],
        "roadtest-local/kafka:tansu-0.6.0"
    );
    assert_eq!(
        values["ROADTEST_CASSANDRA_IMAGE"],
        "roadtest-local/cassandra:2.1.0"
    );
    assert_eq!(values["ROADTEST_DATABASE"], "cassandra");
}

#[test]
fn containers_are_labelled_with_run_role_and_owner() {
    let labels = labels(Role::Broker);
    assert_eq!(labels[LABEL_RUN], "run1");
    assert_eq!(labels[LABEL_ROLE], "broker");
    assert_eq!(labels[LABEL_OWNER_PID], "4242");
    assert_eq!(labels[LABEL_OWNER_HOST], "host-a");
}

// ----- options -------------------------------------------------------------------------------

#[test]
fn default_options_are_valid_and_pinned() {
    let options = options();
    options.validate().expect("defaults are valid");
    for image in [
        &options.kafka_image,
        &options.cassandra_image,
        &options.scylla_image,
    ] {
        assert_ne!(image.tag, "latest");
        image.check().expect("pinned");
    }
}

#[test]
fn image_references_parse_and_latest_is_refused() {
    let parse = |text: &str| text.parse::<ImageRef>();
    assert_eq!(
        parse("cassandra:5.0.4"),
        Ok(ImageRef::new("cassandra", "5.0.4"))
    );
    assert_eq!(
        parse("localhost:5000/cassandra:5.0.4"),
        Ok(ImageRef::new("localhost:5000/cassandra", "5.0.4"))
    );
    assert_eq!(
        parse("cassandra@sha256:0123abcd").map(|image| image.to_string()),
        Ok("cassandra@sha256:0123abcd".to_string())
    );
    assert!(parse("cassandra").unwrap_err().contains("no tag"));
    assert!(
        parse("localhost:5000/cassandra")
            .unwrap_err()
            .contains("no tag")
    );
    assert!(parse("cassandra:latest").unwrap_err().contains("latest"));
    assert!(parse("cassandra:").is_err());
}

#[test]
fn the_environment_overrides_images_and_database() {
    let mut options = options();
    let env = HashMap::from([
        ("ROADTEST_KAFKA_IMAGE", "apache/kafka:3.9.0"),
        ("ROADTEST_CASSANDRA_IMAGE", "cassandra:4.1.7"),
        ("ROADTEST_SCYLLA_IMAGE", "scylladb/scylla:6.2.3"),
        (
            "ROADTEST_POSTGRES_IMAGE",
            "roadtest-local/postgres:15-bookworm",
        ),
        ("ROADTEST_DATABASE", "scylla"),
    ]);
    options
        .apply_env(|key| env.get(key).map(|value| value.to_string()))
        .expect("valid overrides");
    assert_eq!(options.kafka_image.to_string(), "apache/kafka:3.9.0");
    assert_eq!(options.cassandra_image.to_string(), "cassandra:4.1.7");
    assert_eq!(options.database, Database::Scylla);
    assert_eq!(
        options.database_image().to_string(),
        "scylladb/scylla:6.2.3"
    );
    assert_eq!(
        options.postgres_image.to_string(),
        "roadtest-local/postgres:15-bookworm"
    );

    let error = options
        .apply_env(|key| (key == "ROADTEST_CASSANDRA_IMAGE").then(|| "cassandra:latest".into()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("ROADTEST_CASSANDRA_IMAGE") && error.contains("latest"),
        "{error}"
    );
    let error = options
        .apply_env(|key| (key == "ROADTEST_DATABASE").then(|| "postgres".into()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("ROADTEST_DATABASE")
            && error.contains("pipeline.sink = \"postgres\"")
            && error.contains("cassandra, scylla"),
        "{error}"
    );
}

#[test]
fn validation_names_the_setting_and_the_fix() {
    let mut options = options();
    options.cassandra_heap_mb = 2048;
    let error = options.validate().unwrap_err().to_string();
    assert!(
        error.contains("cassandra_heap_mb") && error.contains("2048 MB container"),
        "{error}"
    );
    // A heap that fits but leaves too little off-heap room is a warning: it may be the point.
    options.cassandra_heap_mb = 1800;
    options.validate().expect("valid, with a warning");
    let warning = options.memory_warning().expect("a warning");
    assert!(
        warning.contains("2048 MB cap") && warning.contains("1800 MB heap"),
        "{warning}"
    );
    assert_eq!(self::options().memory_warning(), None, "the defaults fit");

    let mut options = self::options();
    options.broker_memory_mb = 100;
    let error = options.validate().unwrap_err().to_string();
    assert!(
        error.contains("broker_memory_mb") && error.contains("at least 256"),
        "{error}"
    );

    let mut options = self::options();
    options.cassandra_image = ImageRef::new("cassandra", "latest");
    let error = options.validate().unwrap_err().to_string();
    assert!(
        error.contains("cassandra_image") && error.contains("pin"),
        "{error}"
    );

    let mut options = self::options();
    options.database = Database::Scylla;
    options.commitlog_sync = CommitlogSync::Batch;
    let error = options.validate().unwrap_err().to_string();
    assert!(
        error.contains("commitlog_sync") && error.contains("Cassandra only"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_checks_options_first_then_docker() {
    let mut bad = options();
    bad.cassandra_heap_mb = 4096;
    let error = ContainersTarget::start(bad).await.unwrap_err();
    assert!(
        matches!(
            error,
            ContainersError::Options {
                key: "cassandra_heap_mb",
                ..
            }
        ),
        "{error}"
    );

    // No daemon at the endpoint (a socket that cannot exist): a NoDocker error at once, naming
    // the socket and the way out. (With a daemon, tests/containers.rs starts the target.)
    let endpoint = "unix:///nonexistent/roadtest/docker.sock";
    let started = Instant::now();
    let error = super::connect_docker(endpoint).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(error, ContainersError::NoDocker { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(endpoint) && message.contains("--target local"),
        "{message}"
    );
}
