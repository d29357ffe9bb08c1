//! The external target: Kafka and Cassandra clusters that already run elsewhere; roadtest runs only the consumer, and fault proxies where the scenario asks for network faults.
//!
//! - Connect: bootstrap servers and contact points with the security settings of
//!   [`crate::clients::security`] (TLS, SASL/username-password for Kafka and CQL).
//! - Faults: roadtest does not run the brokers or the nodes, so it cannot kill, stop or pause
//!   them: its [`Capabilities`](super::Capabilities) refuse such a scenario before anything starts. The consumer
//!   is roadtest's own process: every fault works on it. Network faults work through
//!   [`FaultProxy`]s started for the services the scenario's network faults name (and only
//!   those, so a run without network faults talks to the clusters directly):
//!   - Cassandra: one proxy per node (nodes from `system.local` and `system.peers`); the
//!     consumer's driver translates every node address to its proxy.
//!   - Kafka: one proxy per broker, in front of a [`KafkaGateway`] that rewrites the broker
//!     addresses in metadata responses to the proxies, so clients never connect around them.
//!     The gateway must read the protocol, so this needs a listener without TLS (`plaintext` or
//!     `sasl-plaintext`); with TLS, broker network faults are refused with that reason.
//! - Measurements: the clusters' memory and CPU are not visible from here; roadtest samples its
//!   own process and the consumer.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::consumer::{ConsumerLaunch, HostConsumer};
use super::kafka_gateway::{BrokerRoutes, KafkaGateway};
use super::proxy::{FaultProxy, NetworkCondition};
use super::{Endpoints, Role, TargetError, free_port};
use crate::clients::pg::{self, POSTGRES_PASSWORD_ENV, PgEndpoint};
use crate::clients::security::{
    CQL_PASSWORD_ENV, CqlSecurityArgs, KAFKA_PASSWORD_ENV, KafkaSecurityArgs,
};
use crate::clients::{ClientError, CqlConnection, KafkaConnection, cql, kafka};
use crate::scenario::{PipelineSettings, Scenario, Sink};

/// How long the clusters have to answer at start.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The external target's settings on the command line (`roadtest run --target external`).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "External target (--target external)")]
pub struct ExternalArgs {
    /// Kafka bootstrap servers of an existing cluster (external target).
    #[arg(long = "kafka-bootstrap", value_name = "HOST:PORT[,HOST:PORT]")]
    pub kafka_bootstrap: Option<String>,
    /// CQL contact points of an existing Cassandra or ScyllaDB cluster (external target).
    #[arg(
        long = "cql-contact",
        value_name = "HOST:PORT[,HOST:PORT]",
        value_delimiter = ','
    )]
    pub cql_contact: Vec<String>,
    /// Replication factor of the run's topics (external target).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=32))]
    pub kafka_replication_factor: i32,
    /// Replication of the run's keyspace, a CQL map (external target).
    #[arg(long, value_name = "MAP", default_value = cql::REPLICATION_ONE)]
    pub cql_replication: String,
    /// An existing PostgreSQL server for `pipeline.sink = "postgres"` (external target).
    ///
    /// Instead of --cql-contact; like postgresql://USER@HOST:5432/DATABASE. The password comes
    /// from ROADTEST_POSTGRES_PASSWORD, never the URL.
    #[arg(long = "postgres-url", value_name = "URL")]
    pub postgres_url: Option<String>,
    #[command(flatten)]
    pub kafka: KafkaSecurityArgs,
    #[command(flatten)]
    pub cql: CqlSecurityArgs,
}

impl ExternalArgs {
    /// Whether any flag that only the external target uses was given.
    pub fn is_set(&self) -> bool {
        self.kafka_bootstrap.is_some()
            || !self.cql_contact.is_empty()
            || self.postgres_url.is_some()
            || self.kafka.is_set()
            || self.cql.is_set()
            || self.kafka_replication_factor != 1
            || self.cql_replication != cql::REPLICATION_ONE
    }

    /// The clusters these flags describe; passwords from `lookup` (the environment).
    pub fn resolve(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ExternalClusters, String> {
        let bootstrap = self
            .kafka_bootstrap
            .clone()
            .filter(|bootstrap| !bootstrap.trim().is_empty())
            .ok_or("--target external needs --kafka-bootstrap HOST:PORT")?;
        check_host_ports("--kafka-bootstrap", bootstrap.split(','))?;
        let postgres = self.postgres(&lookup)?;
        match (self.cql_contact.is_empty(), &postgres) {
            (true, None) => {
                return Err(
                    "--target external needs --cql-contact HOST:PORT (Cassandra) or \
                            --postgres-url URL (PostgreSQL)"
                        .into(),
                );
            }
            (false, Some(_)) => {
                return Err(
                    "give --cql-contact or --postgres-url, not both: a run writes one \
                            database (the scenario's pipeline.sink)"
                        .into(),
                );
            }
            _ => {}
        }
        check_host_ports("--cql-contact", self.cql_contact.iter().map(String::as_str))?;
        if !self.cql_replication.trim_start().starts_with('{') {
            return Err(format!(
                "--cql-replication: {:?} is not a CQL map; give one like \"{}\"",
                self.cql_replication,
                cql::REPLICATION_ONE
            ));
        }
        let kafka = KafkaConnection {
            bootstrap,
            security: self.kafka.resolve(&lookup).map_err(|e| e.to_string())?,
        };
        let cql = CqlConnection {
            contact_points: self.cql_contact.clone(),
            security: self.cql.resolve(&lookup).map_err(|e| e.to_string())?,
            translation: Vec::new(),
        };
        Ok(ExternalClusters {
            kafka,
            cql,
            postgres,
            kafka_replication_factor: self.kafka_replication_factor,
            cql_replication: self.cql_replication.clone(),
        })
    }

    /// `--postgres-url`, checked, with the password from [`POSTGRES_PASSWORD_ENV`].
    fn postgres(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<PgEndpoint>, String> {
        let Some(url) = &self.postgres_url else {
            return Ok(None);
        };
        pg::check_url("--postgres-url", url)?;
        Ok(Some(PgEndpoint::with_password_from(url.clone(), lookup)))
    }
}

/// Existing clusters to run against: how to reach them and how to replicate the run's data.
#[derive(Debug, Clone)]
pub struct ExternalClusters {
    pub kafka: KafkaConnection,
    /// Cassandra or ScyllaDB (no contact points when the run writes PostgreSQL).
    pub cql: CqlConnection,
    /// PostgreSQL, when the run writes it (`--postgres-url`).
    pub postgres: Option<PgEndpoint>,
    pub kafka_replication_factor: i32,
    /// A CQL replication map for the run's keyspace.
    pub cql_replication: String,
}

impl ExternalClusters {
    /// Refuses a run whose database (`pipeline.sink`) is not the one these flags reach, or whose
    /// durability setting only a target that runs the database can make.
    pub fn refuse_other_sink(&self, pipeline: &PipelineSettings) -> Result<(), String> {
        if pipeline.sink == Sink::Postgres && !pipeline.postgres_synchronous_commit {
            return Err(
                "pipeline.postgres_synchronous_commit = false: the external target uses the \
                 server as it is configured (the report gives its synchronous_commit); remove \
                 the key, or use --target local"
                    .into(),
            );
        }
        match (pipeline.sink, &self.postgres) {
            (Sink::Postgres, None) => Err(
                "pipeline.sink = \"postgres\": the external target needs --postgres-url URL \
                 (and the password in ROADTEST_POSTGRES_PASSWORD) instead of --cql-contact; or \
                 use --target local"
                    .into(),
            ),
            (Sink::Cassandra, Some(_)) => Err(
                "--postgres-url: this scenario writes Cassandra (pipeline.sink = \"cassandra\"); \
                 give --cql-contact HOST:PORT, or set pipeline.sink = \"postgres\""
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// The flags that reach these clusters again (passwords stay in the environment).
    pub fn replay_flags(&self) -> String {
        let mut flags: Vec<OsString> = vec![
            "--kafka-bootstrap".into(),
            self.kafka.bootstrap.clone().into(),
        ];
        match &self.postgres {
            Some(postgres) if postgres.url.contains(' ') => {
                flags.extend([
                    "--postgres-url".into(),
                    format!("\"{}\"", postgres.url).into(),
                ]);
            }
            Some(postgres) => flags.extend(["--postgres-url".into(), postgres.url.clone().into()]),
            None => flags.extend(["--cql-contact".into(), self.cql.address().into()]),
        }
        flags.extend(self.kafka.security.to_args());
        flags.extend(self.cql.security.to_args());
        if self.kafka_replication_factor != 1 {
            flags.push("--kafka-replication-factor".into());
            flags.push(self.kafka_replication_factor.to_string().into());
        }
        if self.cql_replication != cql::REPLICATION_ONE {
            flags.push("--cql-replication".into());
            flags.push(format!("\"{}\"", self.cql_replication).into());
        }
        flags
            .iter()
            .map(|flag| format!(" {}", flag.to_string_lossy()))
            .collect()
    }
}

/// Every entry is `HOST:PORT` with a port number.
fn check_host_ports<'a>(flag: &str, entries: impl Iterator<Item = &'a str>) -> Result<(), String> {
    for entry in entries {
        let entry = entry.trim();
        let port = entry
            .rsplit_once(':')
            .map(|(host, port)| (host, port.parse::<u16>()));
        if !matches!(port, Some((host, Ok(port))) if !host.is_empty() && port > 0) {
            return Err(format!(
                "{flag}: {entry:?} is not HOST:PORT (like broker-1.example.com:9092)"
            ));
        }
    }
    Ok(())
}

/// What the report says of the brokers: how many, where, which security.
fn describe_brokers(clusters: &ExternalClusters, broker_count: usize) -> String {
    format!(
        "external: {} broker(s) at {}, security {}",
        broker_count,
        clusters.kafka.bootstrap,
        clusters.kafka.security.protocol.flag_name()
    )
}

/// The run's database as [`reach_database`] found it.
struct Reached {
    /// Cassandra or PostgreSQL.
    role: Role,
    ready_after: Duration,
    /// What the report says of it.
    description: String,
    /// The Cassandra nodes (none for PostgreSQL).
    nodes: Vec<IpAddr>,
}

/// Connects to the run's database (Cassandra or PostgreSQL) and says what it found.
async fn reach_database(clusters: &ExternalClusters) -> Result<Reached, TargetError> {
    let started = Instant::now();
    if let Some(postgres) = &clusters.postgres {
        let client = pg::connect(postgres, READY_TIMEOUT).await?;
        let ready_after = started.elapsed();
        let facts = pg::server_facts(&client, &postgres.url).await?;
        if !facts.commit_times {
            return Err(setup(
                format!("PostgreSQL at {}", postgres.address()),
                "track_commit_timestamp is off: roadtest measures each row's latency by when its \
                 transaction committed; turn it on (ALTER SYSTEM SET track_commit_timestamp = on, \
                 then restart the server)",
            ));
        }
        let description = format!(
            "external: PostgreSQL {} at {}, synchronous_commit {}",
            facts.version,
            postgres.address(),
            facts.synchronous_commit
        );
        return Ok(Reached {
            role: Role::Postgres,
            ready_after,
            description,
            nodes: Vec::new(),
        });
    }
    let session = cql::connect(&clusters.cql, READY_TIMEOUT).await?;
    let ready_after = started.elapsed();
    let (release, nodes) = cluster_nodes(&session, &clusters.cql).await?;
    let description = format!(
        "external: release {release}, {} node(s) at {}{}",
        nodes.len(),
        clusters.cql.address(),
        if clusters.cql.security.tls.is_some() {
            ", TLS"
        } else {
            ""
        }
    );
    Ok(Reached {
        role: Role::Cassandra,
        ready_after,
        description,
        nodes,
    })
}

fn setup(what: impl Into<String>, message: impl Into<String>) -> TargetError {
    TargetError::External(Box::new(ExternalError::Setup {
        what: what.into(),
        message: message.into(),
    }))
}

/// The fault proxy in front of the PostgreSQL server; the consumer connects through it.
async fn proxy_postgres(
    options: &ExternalOptions,
    postgres: &PgEndpoint,
) -> Result<FaultProxy, TargetError> {
    let address = postgres.address();
    let upstream = tokio::net::lookup_host(&address)
        .await
        .ok()
        .and_then(|mut found| found.next())
        .ok_or_else(|| setup("--postgres-url", format!("cannot resolve {address}")))?;
    Ok(FaultProxy::start("postgres", localhost(0), upstream, options.seed).await?)
}

/// One fault proxy per Cassandra node; the consumer's driver maps each node to its proxy.
async fn proxy_nodes(
    options: &ExternalOptions,
    nodes: &[IpAddr],
    cql: &mut CqlConnection,
) -> Result<Vec<FaultProxy>, TargetError> {
    let port = contact_port(&options.clusters.cql)?;
    let mut node_proxies = Vec::new();
    for node in nodes {
        let proxy = FaultProxy::start(
            "cassandra",
            localhost(0),
            SocketAddr::new(*node, port),
            options.seed,
        )
        .await?;
        node_proxies.push(proxy);
    }
    cql.contact_points = node_proxies
        .iter()
        .map(|proxy| proxy.local_addr().to_string())
        .collect();
    cql.translation = translation(nodes, port, &node_proxies);
    Ok(node_proxies)
}

/// The services whose network faults the scenario schedules (they get proxies).
pub fn network_fault_roles(scenario: &Scenario) -> BTreeSet<Role> {
    scenario
        .faults
        .iter()
        .filter(|fault| fault.action.is_network())
        .map(|fault| Role::from(fault.service))
        .filter(|role| *role != Role::Consumer)
        .collect()
}

/// How to run the external target.
#[derive(Debug, Clone)]
pub struct ExternalOptions {
    pub clusters: ExternalClusters,
    /// The `roadtest` binary: the consumer runs as `roadtest ingest`.
    pub roadtest_binary: PathBuf,
    /// The run directory (the consumer's files and log).
    pub work_dir: PathBuf,
    /// Services to put fault proxies in front of.
    pub proxied: BTreeSet<Role>,
    /// Root seed for the fault proxies' jitter.
    pub seed: u64,
}

/// The external target could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error(
        "network faults on the broker need a Kafka listener without TLS (security protocol \
         plaintext or sasl-plaintext): roadtest's gateway must read the metadata to keep clients \
         on its proxies, and the listener at {bootstrap} uses {protocol}"
    )]
    BrokerProxyNeedsPlaintext { bootstrap: String, protocol: String },
    #[error(
        "the external target cannot {action} the {role}: roadtest does not run it (process \
         faults work on the consumer only)"
    )]
    NoProcessControl { action: &'static str, role: Role },
    #[error("{what}: {message}")]
    Setup { what: String, message: String },
}

/// Existing clusters plus the consumer (and proxies) roadtest runs against them.
#[derive(Debug)]
pub struct ExternalTarget {
    options: ExternalOptions,
    endpoints: Endpoints,
    consumer: HostConsumer,
    /// Fault proxies per service (one per broker, one per Cassandra node).
    proxies: BTreeMap<Role, Vec<FaultProxy>>,
    /// Kept alive with the broker proxies they serve.
    gateways: Vec<KafkaGateway>,
    ready_after: BTreeMap<Role, Duration>,
    versions: BTreeMap<String, String>,
}

impl ExternalTarget {
    /// Waits until both clusters answer (each within [`READY_TIMEOUT`]), then starts the proxies
    /// of `options.proxied`.
    pub async fn start(options: ExternalOptions) -> Result<ExternalTarget, TargetError> {
        std::fs::create_dir_all(&options.work_dir).map_err(|source| TargetError::WorkDir {
            path: options.work_dir.clone(),
            source,
        })?;
        let started = Instant::now();
        let brokers = kafka::brokers(&options.clusters.kafka, READY_TIMEOUT).await?;
        let mut ready_after = BTreeMap::from([(Role::Broker, started.elapsed())]);
        let database = reach_database(&options.clusters).await?;
        ready_after.insert(database.role, database.ready_after);
        let versions = BTreeMap::from([
            (
                Role::Broker.name().to_string(),
                describe_brokers(&options.clusters, brokers.len()),
            ),
            (database.role.name().to_string(), database.description),
        ]);
        let mut endpoints = Endpoints {
            kafka: options.clusters.kafka.clone(),
            cql: options.clusters.cql.clone(),
            cql_direct: options.clusters.cql.clone(),
            postgres: options.clusters.postgres.clone(),
            postgres_direct: options.clusters.postgres.clone(),
        };
        let mut proxies = BTreeMap::new();
        let mut gateways = Vec::new();
        if options.proxied.contains(&Role::Broker) {
            let (broker_proxies, broker_gateways) = proxy_brokers(&options, &brokers).await?;
            endpoints.kafka.bootstrap = broker_proxies
                .iter()
                .map(|proxy| proxy.local_addr().to_string())
                .collect::<Vec<_>>()
                .join(",");
            proxies.insert(Role::Broker, broker_proxies);
            gateways = broker_gateways;
        }
        if options.proxied.contains(&Role::Cassandra) {
            let node_proxies = proxy_nodes(&options, &database.nodes, &mut endpoints.cql).await?;
            proxies.insert(Role::Cassandra, node_proxies);
        }
        if let (true, Some(postgres)) = (
            options.proxied.contains(&Role::Postgres),
            &options.clusters.postgres,
        ) {
            let proxy = proxy_postgres(&options, postgres).await?;
            endpoints.postgres = Some(postgres.at(proxy.local_addr()));
            proxies.insert(Role::Postgres, vec![proxy]);
        }
        let consumer = HostConsumer::new(options.roadtest_binary.clone(), &options.work_dir);
        Ok(ExternalTarget {
            options,
            endpoints,
            consumer,
            proxies,
            gateways,
            ready_after,
            versions,
        })
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The run directory (the consumer's files and log).
    pub fn dir(&self) -> &Path {
        &self.options.work_dir
    }

    /// How long each cluster took to answer.
    pub fn ready_after(&self) -> &BTreeMap<Role, Duration> {
        &self.ready_after
    }

    /// Service name -> what was found, for reports.
    pub fn service_versions(&self) -> BTreeMap<String, String> {
        self.versions.clone()
    }

    pub fn kafka_replication_factor(&self) -> i32 {
        self.options.clusters.kafka_replication_factor
    }

    pub fn cql_replication(&self) -> &str {
        &self.options.clusters.cql_replication
    }

    /// The consumer, while it runs (the clusters cannot be sampled from here).
    pub fn processes(&mut self) -> Vec<(String, u32)> {
        self.consumer.processes()
    }

    /// Starts the consumer with the clusters' security settings: flags for the reference
    /// consumer, `ROADTEST_*` variables for one of the user's own; passwords go into its
    /// environment, never its arguments.
    pub fn start_consumer(&mut self, launch: ConsumerLaunch) -> Result<(), TargetError> {
        let kafka = &self.options.clusters.kafka.security;
        let cql = &self.options.clusters.cql.security;
        let mut flags = kafka.to_args();
        flags.extend(cql.to_args());
        for (from, to) in &self.endpoints.cql.translation {
            flags.push("--cql-translate".into());
            flags.push(format!("{from}={to}").into());
        }
        let mut passwords = Vec::new();
        if let Some(password) = self
            .endpoints
            .postgres
            .as_ref()
            .and_then(|p| p.password.as_ref())
        {
            passwords.push((POSTGRES_PASSWORD_ENV.into(), password.expose().into()));
        }
        if let Some((_, login)) = &kafka.sasl {
            passwords.push((KAFKA_PASSWORD_ENV.into(), login.password.expose().into()));
        }
        if let Some(login) = &cql.login {
            passwords.push((CQL_PASSWORD_ENV.into(), login.password.expose().into()));
        }
        let mut contract = kafka.to_env();
        contract.extend(cql.to_env());
        let launch = launch.with_target_settings(flags, contract, passwords);
        self.consumer.start(launch)
    }

    pub fn consumer_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.consumer.exited()
    }

    pub fn kill(&mut self, role: Role) -> Result<(), TargetError> {
        self.consumer_only(role, "kill")?;
        self.consumer.kill()
    }

    pub fn stop(&mut self, role: Role, grace: Duration) -> Result<bool, TargetError> {
        self.consumer_only(role, "stop")?;
        self.consumer.stop(grace)
    }

    pub fn pause(&mut self, role: Role) -> Result<(), TargetError> {
        self.consumer_only(role, "pause")?;
        self.consumer.pause()
    }

    pub fn resume(&mut self, role: Role) -> Result<(), TargetError> {
        self.consumer_only(role, "resume")?;
        self.consumer.resume()
    }

    pub fn restart(&mut self, role: Role) -> Result<Duration, TargetError> {
        self.consumer_only(role, "restart")?;
        let started = Instant::now();
        self.consumer.restart()?;
        Ok(started.elapsed())
    }

    /// Sets the network condition of every proxy in front of `role`.
    pub fn set_network(
        &mut self,
        role: Role,
        condition: NetworkCondition,
    ) -> Result<(), TargetError> {
        let proxies = self
            .proxies
            .get(&role)
            .ok_or(TargetError::NoProxy { role })?;
        for proxy in proxies {
            proxy.set(condition);
        }
        Ok(())
    }

    /// Stops the consumer, then the proxies and gateways.
    pub fn shutdown(mut self) {
        self.consumer.terminate(Duration::from_secs(10));
        self.proxies.clear();
        self.gateways.clear();
    }

    fn consumer_only(&self, role: Role, action: &'static str) -> Result<(), TargetError> {
        match role {
            Role::Consumer => Ok(()),
            role => Err(TargetError::External(Box::new(
                ExternalError::NoProcessControl { action, role },
            ))),
        }
    }
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// One proxy (and gateway) per broker: client -> proxy -> gateway -> broker, with every broker's
/// advertised address routed to its proxy.
async fn proxy_brokers(
    options: &ExternalOptions,
    brokers: &[(i32, String, u16)],
) -> Result<(Vec<FaultProxy>, Vec<KafkaGateway>), TargetError> {
    let protocol = options.clusters.kafka.security.protocol;
    if protocol.uses_tls() {
        return Err(TargetError::External(Box::new(
            ExternalError::BrokerProxyNeedsPlaintext {
                bootstrap: options.clusters.kafka.bootstrap.clone(),
                protocol: protocol.flag_name().to_string(),
            },
        )));
    }
    // The routes need the proxies' ports before the gateways start, and the proxies need the
    // gateways' addresses: pick the proxies' ports first.
    let mut ports = Vec::new();
    for _ in brokers {
        ports.push(free_port().map_err(|source| TargetError::WorkDir {
            path: options.work_dir.clone(),
            source,
        })?);
    }
    let routes = Arc::new(BrokerRoutes::new(brokers.iter().zip(&ports).map(
        |((_, host, port), proxy_port)| {
            (
                (host.clone(), *port),
                ("127.0.0.1".to_string(), *proxy_port),
            )
        },
    )));
    let mut proxies = Vec::new();
    let mut gateways = Vec::new();
    for ((id, host, port), proxy_port) in brokers.iter().zip(&ports) {
        let gateway = KafkaGateway::start(
            &format!("broker-{id}"),
            localhost(0),
            (host.clone(), *port),
            Arc::clone(&routes),
        )
        .await
        .map_err(|error| {
            setup(
                format!("the Kafka gateway for broker {id} ({host}:{port})"),
                error.to_string(),
            )
        })?;
        let proxy = FaultProxy::start(
            "broker",
            localhost(*proxy_port),
            gateway.local_addr(),
            options.seed,
        )
        .await?;
        proxies.push(proxy);
        gateways.push(gateway);
    }
    Ok((proxies, gateways))
}

/// The cluster's release version and the address of every node (`system.local` and `system.peers`).
async fn cluster_nodes(
    session: &scylla::client::session::Session,
    cql: &CqlConnection,
) -> Result<(String, Vec<IpAddr>), ClientError> {
    let query_error = |what: &str| {
        let (address, what) = (cql.address(), what.to_string());
        move |error: String| ClientError::Cql {
            address,
            what,
            source: error.into(),
        }
    };
    let local = session
        .query_unpaged("SELECT release_version, rpc_address FROM system.local", ())
        .await
        .map_err(|e| e.to_string())
        .and_then(|result| result.into_rows_result().map_err(|e| e.to_string()))
        .and_then(|rows| {
            rows.first_row::<(Option<String>, Option<IpAddr>)>()
                .map_err(|e| e.to_string())
        })
        .map_err(query_error("read system.local"))?;
    let peers: Vec<IpAddr> = session
        .query_unpaged("SELECT rpc_address FROM system.peers", ())
        .await
        .map_err(|e| e.to_string())
        .and_then(|result| result.into_rows_result().map_err(|e| e.to_string()))
        .and_then(|rows| {
            rows.rows::<(Option<IpAddr>,)>()
                .map_err(|e| e.to_string())?
                .map(|row| row.map(|(address,)| address).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(query_error("read system.peers"))?
        .into_iter()
        .flatten()
        .collect();
    let (release, local_address) = local;
    let mut nodes = vec![local_address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))];
    nodes.extend(peers);
    nodes.dedup();
    Ok((release.unwrap_or_else(|| "unknown".into()), nodes))
}

/// The native port of the nodes: that of the first contact point.
fn contact_port(cql: &CqlConnection) -> Result<u16, TargetError> {
    cql.contact_points
        .first()
        .and_then(|contact| contact.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .ok_or_else(|| setup("--cql-contact", "no HOST:PORT contact point"))
}

/// The driver reports node `i` as (its address, the port it connected to), and it connects
/// through one of the proxies: map every such pair, and the node's real address, to node `i`'s
/// proxy.
fn translation(
    nodes: &[IpAddr],
    native_port: u16,
    proxies: &[FaultProxy],
) -> Vec<(SocketAddr, SocketAddr)> {
    let ports: Vec<u16> = std::iter::once(native_port)
        .chain(proxies.iter().map(|proxy| proxy.local_addr().port()))
        .collect();
    translation_pairs(
        nodes,
        &ports,
        &proxies
            .iter()
            .map(FaultProxy::local_addr)
            .collect::<Vec<_>>(),
    )
}

/// [`translation`] on plain addresses.
pub fn translation_pairs(
    nodes: &[IpAddr],
    ports: &[u16],
    proxies: &[SocketAddr],
) -> Vec<(SocketAddr, SocketAddr)> {
    let mut pairs = Vec::new();
    for (node, proxy) in nodes.iter().zip(proxies) {
        for port in ports {
            pairs.push((SocketAddr::new(*node, *port), *proxy));
        }
    }
    pairs
}

#[cfg(test)]
#[path = "external_tests.rs"]
mod tests;
