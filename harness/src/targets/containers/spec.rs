//! What each container is: image, environment, command, port binding, memory cap and ready line, as plain data and as a testcontainers request.
//!
//! Builders are pure (no Docker needed), so unit tests check exactly what would be started.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use testcontainers::bollard::models::{
    HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use testcontainers::core::{IntoContainerPort, Mount, WaitFor};
use testcontainers::{ContainerRequest, GenericImage, Image, ImageExt};
use testcontainers_modules::kafka::apache::Kafka;

use super::options::{
    CassandraFamily, CommitlogSync, ContainersOptions, Database, ImageRef, KafkaFamily,
    SCYLLA_RESERVE_MB,
};
use crate::targets::Role;

/// The Kafka listener clients use, inside the container (testcontainers-modules' `KAFKA_PORT`).
pub const KAFKA_CONTAINER_PORT: u16 = 9092;
/// The CQL native port inside the database container.
pub const CQL_CONTAINER_PORT: u16 = 9042;
/// PostgreSQL's port inside its container.
pub const POSTGRES_CONTAINER_PORT: u16 = 5432;
/// Host address every container port is bound to: nothing is published beyond this host.
pub const BIND_ADDRESS: &str = "127.0.0.1";

/// Label keys on every container roadtest starts (to find and remove orphans).
pub const LABEL_RUN: &str = "roadtest.run";
pub const LABEL_ROLE: &str = "roadtest.role";
pub const LABEL_OWNER_PID: &str = "roadtest.owner-pid";
pub const LABEL_OWNER_HOST: &str = "roadtest.owner-host";

/// Which output stream a ready line appears on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// The log line that says a service accepts clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyLine {
    pub text: &'static str,
    pub stream: LogStream,
}

impl ReadyLine {
    pub fn wait_for(self) -> WaitFor {
        match self.stream {
            LogStream::Stdout => WaitFor::message_on_stdout(self.text),
            LogStream::Stderr => WaitFor::message_on_stderr(self.text),
        }
    }
}

/// Logged by the Kafka broker once it serves (what testcontainers-modules' Kafka waits for).
pub const KAFKA_READY: ReadyLine = ReadyLine {
    text: "Kafka Server started",
    stream: LogStream::Stdout,
};
/// Logged by Tansu once it serves (`ready in 5ms`).
pub const TANSU_READY: ReadyLine = ReadyLine {
    text: "ready in",
    stream: LogStream::Stdout,
};
/// Logged by Cassandra once its native transport listens.
pub const CASSANDRA_READY: ReadyLine = ReadyLine {
    text: "Starting listening for CQL clients",
    stream: LogStream::Stdout,
};
/// Logged by PostgreSQL once it accepts connections, after a crash once it has replayed its
/// WAL. (The official image's first start logs it twice, the first time from a server that
/// listens on no TCP port while it initialises the cluster: the client probe tells them apart.)
pub const POSTGRES_READY: ReadyLine = ReadyLine {
    text: "database system is ready to accept connections",
    stream: LogStream::Stderr,
};
/// Logged by ScyllaDB once it serves (what testcontainers-modules' ScyllaDB waits for).
pub const SCYLLA_READY: ReadyLine = ReadyLine {
    text: "init - serving",
    stream: LogStream::Stderr,
};

/// One container of the target, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub role: Role,
    pub container_name: String,
    pub image: ImageRef,
    pub env: BTreeMap<String, String>,
    /// Arguments replacing the image's `CMD` (empty: the image's own).
    pub cmd: Vec<String>,
    /// The one port clients use, and the host port it is bound to on [`BIND_ADDRESS`]; fixed
    /// up front so that it stays the same across a stop/start (Docker would pick a new one).
    pub container_port: u16,
    pub host_port: u16,
    /// Where clients reach the service on the host: the bound port, or the CQL bridge in front
    /// of it (a database that speaks CQL v3 only).
    pub client_address: SocketAddr,
    /// Memory cap (swap included: no swap), MB.
    pub memory_limit_mb: u32,
    /// Docker starts the container again when it exits with an error (an OOM kill included),
    /// up to [`super::options::RestartPolicy::RETRIES_MAX`] times.
    pub restart_on_failure: bool,
    pub ready_line: ReadyLine,
    pub labels: BTreeMap<String, String>,
    /// A host folder mounted over a folder of the container (host path, container path): how
    /// roadtest's Cassandra image hands out its GC log.
    pub logs_mount: Option<(String, String)>,
}

/// Where roadtest's Cassandra image writes its logs, the GC log among them.
pub const CASSANDRA_NODE_LOGS: &str = "/var/lib/cassandra/node/logs";

impl ContainerSpec {
    /// The testcontainers request that starts this container; its ready condition is the ready
    /// line, bounded by `startup_timeout`.
    pub fn request(&self, startup_timeout: Duration) -> ContainerRequest<GenericImage> {
        let image = GenericImage::new(self.image.name.as_str(), self.image.tag.as_str())
            .with_exposed_port(self.container_port.tcp())
            .with_wait_for(self.ready_line.wait_for());
        let mut request = image
            .with_container_name(self.container_name.as_str())
            .with_labels(self.labels.clone())
            .with_startup_timeout(startup_timeout);
        for (name, value) in &self.env {
            request = request.with_env_var(name.as_str(), value.as_str());
        }
        if !self.cmd.is_empty() {
            request = request.with_cmd(self.cmd.clone());
        }
        if let Some((host, container)) = &self.logs_mount {
            request = request.with_mount(Mount::bind_mount(host.as_str(), container.as_str()));
        }
        let memory_bytes = i64::from(self.memory_limit_mb) * 1024 * 1024;
        let restart_policy = self.restart_on_failure.then_some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: Some(super::options::RestartPolicy::RETRIES_MAX),
        });
        let port_key = format!("{}/tcp", self.container_port);
        let host_port = self.host_port.to_string();
        request.with_host_config_modifier(move |host: &mut HostConfig| {
            host.memory = Some(memory_bytes);
            host.memory_swap = Some(memory_bytes);
            host.restart_policy = restart_policy.clone();
            host.publish_all_ports = Some(false);
            host.port_bindings = Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some(BIND_ADDRESS.to_string()),
                    host_port: Some(host_port.clone()),
                }]),
            )]));
        })
    }

    /// Where the host reaches the container's port.
    pub fn host_address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.host_port))
    }
}

/// Labels that tie a container to this run and this process.
pub fn labels(
    run_id: &str,
    role: Role,
    owner_pid: u32,
    owner_host: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_RUN.to_string(), run_id.to_string()),
        (LABEL_ROLE.to_string(), role.name().to_string()),
        (LABEL_OWNER_PID.to_string(), owner_pid.to_string()),
        (LABEL_OWNER_HOST.to_string(), owner_host.to_string()),
    ])
}

/// The broker, advertising `advertised` (the fault proxy in front of it) instead of its own
/// port, so every client connection goes through the proxy. Apache images: testcontainers-modules'
/// Kafka settings (KRaft, one node; the module's start-script trick is not needed because the
/// port is known before the container is created). Tansu: its own flags, memory storage.
pub fn kafka_spec(
    options: &ContainersOptions,
    run_id: &str,
    host_port: u16,
    advertised: SocketAddr,
    labels: BTreeMap<String, String>,
) -> ContainerSpec {
    let family = options.kafka_family();
    let (env, cmd, ready_line) = match family {
        KafkaFamily::Tansu => (BTreeMap::new(), tansu_cmd(advertised), TANSU_READY),
        _ => (
            apache_kafka_env(options, advertised),
            Vec::new(),
            KAFKA_READY,
        ),
    };
    ContainerSpec {
        role: Role::Broker,
        container_name: format!("roadtest-{run_id}-broker"),
        image: options.kafka_image.clone(),
        env,
        cmd,
        container_port: KAFKA_CONTAINER_PORT,
        host_port,
        client_address: SocketAddr::from(([127, 0, 0, 1], host_port)),
        memory_limit_mb: options.broker_memory_mb,
        restart_on_failure: false,
        ready_line,
        labels,
        logs_mount: None,
    }
}

/// testcontainers-modules' Apache Kafka environment, advertising `advertised`; a JVM image gets
/// a heap of half its memory cap.
fn apache_kafka_env(
    options: &ContainersOptions,
    advertised: SocketAddr,
) -> BTreeMap<String, String> {
    let module = Kafka::default();
    let mut env: BTreeMap<String, String> = module
        .env_vars()
        .into_iter()
        .map(|(name, value)| (name.into().into_owned(), value.into().into_owned()))
        .collect();
    env.insert(
        "KAFKA_ADVERTISED_LISTENERS".into(),
        format!("PLAINTEXT://{advertised},BROKER://localhost:9093"),
    );
    // The first consumer group join would otherwise wait 3 s for more members.
    env.insert("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS".into(), "0".into());
    env.insert(
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR".into(),
        "1".into(),
    );
    env.insert("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR".into(), "1".into());
    if options.kafka_family() == KafkaFamily::ApacheJvm {
        // A JVM broker defaults to a 1 GB heap whatever the cap: size it to half the cap.
        let heap_mb = options.broker_memory_mb / 2;
        env.insert(
            "KAFKA_HEAP_OPTS".into(),
            format!("-Xms{heap_mb}m -Xmx{heap_mb}m"),
        );
    }
    env
}

/// Tansu listening on every address of the container, advertising `advertised`, memory storage
/// (as on the local target).
pub fn tansu_cmd(advertised: SocketAddr) -> Vec<String> {
    [
        "/bin/tansu",
        "broker",
        "--listener-url",
        &format!("tcp://0.0.0.0:{KAFKA_CONTAINER_PORT}"),
        "--advertised-listener-url",
        &format!("tcp://{advertised}"),
        "--storage-engine",
        "memory://tansu/",
    ]
    .map(str::to_string)
    .to_vec()
}

/// The database: Cassandra (heap set, commit-log mode applied), ScyllaDB (one shard, memory
/// within the cap) or PostgreSQL (as the local target runs it), its client port bound to
/// `host_port`; `bridge`: the host port of the CQL bridge in front of a database that speaks CQL
/// v3 only.
pub fn database_spec(
    options: &ContainersOptions,
    run_id: &str,
    host_port: u16,
    bridge: Option<u16>,
    labels: BTreeMap<String, String>,
) -> ContainerSpec {
    let (env, cmd, ready_line) = match options.database {
        Database::Cassandra => match CassandraFamily::of(&options.cassandra_image) {
            CassandraFamily::Official => (
                cassandra_env(options.cassandra_heap_mb),
                cassandra_cmd(options.commitlog_sync),
                CASSANDRA_READY,
            ),
            CassandraFamily::Local => (
                BTreeMap::new(),
                cassandra_node_cmd(options.cassandra_heap_mb, options.commitlog_sync),
                CASSANDRA_READY,
            ),
        },
        Database::Scylla => (
            BTreeMap::new(),
            scylla_cmd(options.database_memory_mb),
            SCYLLA_READY,
        ),
        Database::Postgres => (
            postgres_env(),
            postgres_cmd(options.postgres_synchronous_commit),
            POSTGRES_READY,
        ),
    };
    let container_port = match options.database {
        Database::Postgres => POSTGRES_CONTAINER_PORT,
        Database::Cassandra | Database::Scylla => CQL_CONTAINER_PORT,
    };
    ContainerSpec {
        role: options.database.role(),
        container_name: format!("roadtest-{run_id}-{}", options.database.name()),
        image: options.database_image().clone(),
        env,
        cmd,
        container_port,
        host_port,
        client_address: SocketAddr::from(([127, 0, 0, 1], bridge.unwrap_or(host_port))),
        memory_limit_mb: options.database_memory_mb,
        restart_on_failure: options.database_restart == super::options::RestartPolicy::OnFailure,
        ready_line,
        labels,
        logs_mount: None,
    }
}

/// roadtest's Cassandra 2.1 image: `cassandra-node` (the local target's script) listening for
/// CQL on every address of the container, data under `/var/lib/cassandra`.
pub fn cassandra_node_cmd(heap_mb: u32, commitlog_sync: CommitlogSync) -> Vec<String> {
    [
        "cassandra-node",
        "--dir",
        "/var/lib/cassandra/node",
        "--native-port",
        &CQL_CONTAINER_PORT.to_string(),
        "--rpc-address",
        "0.0.0.0",
        // Cassandra's own ports: inside the container, nothing else takes them.
        "--storage-port",
        "7000",
        "--ssl-storage-port",
        "7001",
        "--jmx-port",
        "7199",
        "--heap-mb",
        &heap_mb.to_string(),
        "--commitlog-sync",
        commitlog_sync.name(),
        "--cassandra-home",
        "/opt/cassandra-2.1.0",
    ]
    .map(str::to_string)
    .to_vec()
}

/// Heap settings (the image's cassandra-env.sh wants both or neither), one token, no wait for
/// gossip to settle (a single node has nobody to gossip with).
pub fn cassandra_env(heap_mb: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("MAX_HEAP_SIZE".to_string(), format!("{heap_mb}M")),
        (
            "HEAP_NEWSIZE".to_string(),
            format!("{}M", (heap_mb / 4).max(64)),
        ),
        ("CASSANDRA_NUM_TOKENS".to_string(), "1".to_string()),
        (
            "JVM_EXTRA_OPTS".to_string(),
            "-Dcassandra.skip_wait_for_gossip_to_settle=0".to_string(),
        ),
    ])
}

/// `periodic` keeps the image's command; `batch` edits cassandra.yaml first (and fails loudly
/// if the file no longer has the expected line), then runs the image's entrypoint as usual.
pub fn cassandra_cmd(commitlog_sync: CommitlogSync) -> Vec<String> {
    match commitlog_sync {
        CommitlogSync::Periodic => Vec::new(),
        CommitlogSync::Batch => vec![
            "bash".to_string(),
            "-c".to_string(),
            "yaml=/etc/cassandra/cassandra.yaml; \
             sed -i -e 's/^commitlog_sync: periodic$/commitlog_sync: batch/' \
             -e 's/^commitlog_sync_period/# commitlog_sync_period/' \"$yaml\" \
             && grep -q '^commitlog_sync: batch$' \"$yaml\" \
             || { echo \"roadtest: cannot set commitlog_sync: batch in $yaml\" >&2; exit 1; }; \
             exec docker-entrypoint.sh cassandra -f"
                .to_string(),
        ],
    }
}

/// ScyllaDB on one shard, overprovisioned (shares the CPU), in developer mode (no I/O tuning),
/// with its memory inside the container's cap.
pub fn scylla_cmd(database_memory_mb: u32) -> Vec<String> {
    [
        "--smp",
        "1",
        "--memory",
        &format!("{}M", database_memory_mb.saturating_sub(SCYLLA_RESERVE_MB)),
        "--overprovisioned",
        "1",
        "--developer-mode",
        "1",
    ]
    .map(str::to_string)
    .to_vec()
}

/// The official image's settings: roadtest's superuser, no password from the bridge network (the
/// port is bound to 127.0.0.1 only), as initdb does on the local target.
pub fn postgres_env() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "POSTGRES_USER".to_string(),
            crate::targets::postgres::USER.to_string(),
        ),
        ("POSTGRES_HOST_AUTH_METHOD".to_string(), "trust".to_string()),
    ])
}

/// The server's settings, the local target's: fsync on, commit timestamps tracked (a row's
/// write time), `synchronous_commit` as the scenario says, small buffers.
pub fn postgres_cmd(synchronous_commit: bool) -> Vec<String> {
    let mut cmd = vec!["postgres".to_string()];
    for setting in crate::targets::postgres::server_settings(synchronous_commit) {
        cmd.extend(["-c".to_string(), setting]);
    }
    cmd
}
