//! The containers target: real Kafka and Cassandra (or ScyllaDB, or PostgreSQL) in Docker containers started by testcontainers; the consumer on the host, or in a container of the user's image.
//!
//! - Kafka: testcontainers-modules' Apache Kafka image (`apache/kafka-native:3.8.0`, KRaft, one
//!   node) with the module's settings, advertising the fault proxy in front of it.
//! - Database: `cassandra:5.0.4` (a `GenericImage`, heap and memory cap set) or ScyllaDB (the
//!   module's image, one shard). Both speak CQL v4: no bridge. With `pipeline.sink = "postgres"`,
//!   `postgres:15.14-bookworm` (or `roadtest-local/postgres`, which takes the same settings) run
//!   as the local target runs its PostgreSQL.
//! - Each container's client port is bound to a port of 127.0.0.1 chosen up front, so it stays
//!   the same across a stop/start; a [`FaultProxy`] sits in front of each, as on the local target.
//! - Ready = the service's ready line in its log AND its client probe answering (Kafka metadata,
//!   a CQL query), each under a deadline; at start and after every restart. Never a sleep.
//! - Faults: kill = `docker kill`, stop = `docker stop` (grace, then SIGKILL), pause/resume =
//!   `docker pause`/`unpause`, restart = `docker start`; data survives, as on a real node.
//! - Memory and CPU per container come from the Docker stats API ([`UsageProbe`]); kills for lack
//!   of memory, and the restarts Docker's restart policy made, from its event log ([`history`]).
//! - A consumer image of the user's own (`[pipeline.consumer] image`) runs as a container on
//!   the host's network ([`consumer`]), faulted through Docker like the services and sampled
//!   through Docker's stats; any other consumer is a child process on the host.
//! - Logs: `DIR/broker.log`, `DIR/cassandra.log` (or `DIR/postgres.log`), `DIR/consumer.log`.
//! - Containers are removed when the target is dropped (inside a tokio runtime) or by
//!   [`ContainersTarget::remove`]; those of a roadtest killed with SIGKILL are removed by the next
//!   start on the same host (labels `roadtest.owner-*`).

pub mod choice;
pub mod consumer;
pub mod docker;
pub mod history;
pub mod options;
mod readiness;
pub mod spec;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use testcontainers::bollard::Docker;
use testcontainers::bollard::errors::Error as DockerError;
use testcontainers::bollard::query_parameters::{
    KillContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use testcontainers::{ContainerAsync, GenericImage, TestcontainersError};

pub use self::choice::{
    DOCKER_PING_TIMEOUT, TargetChoiceError, TargetKind, choose_target, docker_ping,
    images_available, local_installed,
};
use self::consumer::ContainerConsumer;
pub use self::docker::{ContainerUsage, UsageProbe};
use self::docker::{DOCKER_CALL_TIMEOUT, LogFollower, bounded};
pub use self::history::OomKill;
use self::options::CassandraFamily;
pub use self::options::{ContainersOptions, Database, ImageRef, KafkaFamily};
use self::readiness::{
    docker_error, is_not_running, probe, start_again, start_service, wait_for_ready_line,
};
use self::spec::ContainerSpec;
use super::consumer::{ConsumerLaunch, HostConsumer};
use super::process::{ProcessSpec, ServiceProcess, wait_accepting};
use super::proxy::{FaultProxy, NetworkCondition};
use super::{Capabilities, Endpoints, Role, TargetError, free_port, fresh_run_dir, postgres};
use crate::clients::pg::PgEndpoint;
use crate::clients::unique_suffix;
use crate::clients::{CqlConnection, KafkaConnection};

/// The containers target could not do what was asked; every variant says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ContainersError {
    #[error(
        "the containers target needs a Docker daemon: {reason}. Start Docker (or point \
         DOCKER_HOST at its socket), or use --target local after `roadtest services install`"
    )]
    NoDocker { reason: String },
    #[error("containers target setting {key}: {problem}")]
    Options { key: &'static str, problem: String },
    #[error(
        "the {role} image {image} is not on this host and could not be pulled (after {waited:?}): {problem}; check the name, the tag and the network (`docker pull {image}`), or build roadtest's local images with `ci/images build` (it writes ROADTEST_KAFKA_IMAGE, ROADTEST_CASSANDRA_IMAGE and ROADTEST_POSTGRES_IMAGE to $ROADTEST_HOME/images.env, which this target reads)"
    )]
    Pull {
        role: Role,
        image: String,
        waited: Duration,
        problem: String,
    },
    #[error("the {role} container ({image}) did not start: {source}; its log is {log}:\n{tail}")]
    Start {
        role: Role,
        image: String,
        source: Box<TestcontainersError>,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "the {role} container ({image}) was not ready within {waited:?}: {problem}; its log is {log}:\n{tail}"
    )]
    NotReady {
        role: Role,
        image: String,
        waited: Duration,
        problem: String,
        log: PathBuf,
        tail: String,
    },
    #[error("Docker could not {action} the {role} container: {source}")]
    Docker {
        role: Role,
        action: &'static str,
        source: Box<DockerError>,
    },
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// One service container and what the target knows about it.
#[derive(Debug)]
struct Service {
    spec: ContainerSpec,
    container: ContainerAsync<GenericImage>,
    log: PathBuf,
    /// Follows the output after a restart (the first start's output goes through testcontainers).
    follower: Option<LogFollower>,
}

/// Kafka and the database in containers; the consumer as a child process, or a container of
/// the user's image.
#[derive(Debug)]
pub struct ContainersTarget {
    options: ContainersOptions,
    dir: PathBuf,
    docker: Docker,
    /// In every container's name and labels.
    run_id: String,
    endpoints: Endpoints,
    services: BTreeMap<Role, Service>,
    /// The CQL bridge on the host, in front of a database that speaks CQL v3 only.
    bridge: Option<ServiceProcess>,
    consumer: HostConsumer,
    /// The consumer, when it is an image of the user's own (then `consumer` never starts).
    consumer_container: Option<ContainerConsumer>,
    proxies: BTreeMap<Role, FaultProxy>,
    ready_after: BTreeMap<Role, Duration>,
}

/// The host folder roadtest's own Cassandra image writes its logs to (the GC log among them),
/// when the database is that image: `cassandra-logs` in the run folder.
fn cassandra_logs(options: &ContainersOptions, dir: &Path) -> Option<PathBuf> {
    let local = options.database == Database::Cassandra
        && CassandraFamily::of(&options.cassandra_image) == CassandraFamily::Local;
    local.then(|| dir.join("cassandra-logs"))
}

/// Mounts [`cassandra_logs`] (created here) over the logs folder of roadtest's Cassandra image.
fn mount_cassandra_logs(
    database: &mut ContainerSpec,
    options: &ContainersOptions,
    dir: &Path,
) -> Result<(), TargetError> {
    if let Some(logs) = cassandra_logs(options, dir) {
        std::fs::create_dir_all(&logs).map_err(|source| TargetError::WorkDir {
            path: logs.clone(),
            source,
        })?;
        let host = logs.to_string_lossy().into_owned();
        database.logs_mount = Some((host, spec::CASSANDRA_NODE_LOGS.to_string()));
    }
    Ok(())
}

impl ContainersTarget {
    /// Where Cassandra's JVM writes its GC logs, when the database is roadtest's own image.
    pub fn gc_log_dir(&self) -> Option<PathBuf> {
        cassandra_logs(&self.options, &self.dir)
    }

    /// Checks the options, pings Docker (2 s), removes orphans of dead roadtest processes, pulls
    /// missing images, starts broker and database together and waits until both are ready.
    pub async fn start(options: ContainersOptions) -> Result<ContainersTarget, ContainersError> {
        options.validate()?;
        if let Some(warning) = options.memory_warning() {
            eprintln!("roadtest: warning: {warning}");
        }
        let docker = connect_docker(&choice::docker_endpoint()).await?;
        let dir = match &options.work_dir {
            Some(dir) => dir.clone(),
            None => fresh_run_dir("roadtest-containers"),
        };
        let work_dir_error = |source| TargetError::WorkDir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(work_dir_error)?;
        let ports = HostPorts::choose(options.database_needs_bridge()).map_err(work_dir_error)?;
        let (broker_proxy, database_proxy, endpoints) = front(&options, ports).await?;
        let bridge = match ports.bridge {
            Some(port) => Some(start_bridge(&options, &dir, port, ports.database).await?),
            None => None,
        };
        let run_id = unique_suffix();
        let owner_host = docker::host_name();
        let labels = |role| spec::labels(&run_id, role, std::process::id(), &owner_host);
        let kafka_spec = spec::kafka_spec(
            &options,
            &run_id,
            ports.kafka,
            broker_proxy.local_addr(),
            labels(Role::Broker),
        );
        let database_role = options.database.role();
        let mut database_spec = spec::database_spec(
            &options,
            &run_id,
            ports.database,
            ports.bridge,
            labels(database_role),
        );
        mount_cassandra_logs(&mut database_spec, &options, &dir)?;
        let (broker, database) = tokio::join!(
            start_service(&docker, &options, &dir, kafka_spec),
            start_service(&docker, &options, &dir, database_spec),
        );
        let (broker, broker_ready) = broker?;
        let (database, database_ready) = database?;
        let consumer = HostConsumer::new(options.roadtest_binary.clone(), &dir);
        Ok(ContainersTarget {
            options,
            dir,
            docker,
            run_id,
            endpoints,
            services: BTreeMap::from([(Role::Broker, broker), (database_role, database)]),
            bridge,
            consumer,
            consumer_container: None,
            proxies: BTreeMap::from([
                (Role::Broker, broker_proxy),
                (database_role, database_proxy),
            ]),
            ready_after: BTreeMap::from([
                (Role::Broker, broker_ready),
                (database_role, database_ready),
            ]),
        })
    }

    /// What this target can do: with roadtest's Tansu image the broker keeps nothing across a
    /// restart (memory storage) and takes no idempotent producer, as on the local target.
    pub fn capabilities(&self) -> Capabilities {
        let apache = self.options.kafka_family() != KafkaFamily::Tansu;
        Capabilities {
            broker_keeps_data: apache,
            idempotent_producer: apache,
            ..Capabilities::of(TargetKind::Containers)
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The run directory (the consumer's files, every container's log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long each service took to become ready at its last start (image pulls not included).
    pub fn ready_after(&self) -> &BTreeMap<Role, Duration> {
        &self.ready_after
    }

    /// The id of a service's container (for `docker logs`, `docker exec` ...).
    pub fn container_id(&self, role: Role) -> Option<&str> {
        self.services
            .get(&role)
            .map(|service| service.container.id())
    }

    /// Service name -> version, for reports.
    pub fn service_versions(&self) -> BTreeMap<String, String> {
        let mut versions = BTreeMap::new();
        if let Some(broker) = self.services.get(&Role::Broker) {
            versions.insert(
                Role::Broker.name().to_string(),
                format!(
                    "{} (container, {} MB cap)",
                    broker.spec.image, broker.spec.memory_limit_mb
                ),
            );
        }
        let role = self.options.database.role();
        if let Some(database) = self.services.get(&role) {
            let bridged = match self.bridge {
                Some(_) => ", behind cql-bridge",
                None => "",
            };
            let detail = match self.options.database {
                Database::Cassandra => format!(
                    ", heap {} MB, commitlog_sync {}{bridged}",
                    self.options.cassandra_heap_mb,
                    self.options.commitlog_sync.name()
                ),
                Database::Scylla => ", 1 shard".to_string(),
                Database::Postgres => format!(
                    ", synchronous_commit {}",
                    if self.options.postgres_synchronous_commit {
                        "on"
                    } else {
                        "off"
                    }
                ),
            };
            versions.insert(
                role.name().to_string(),
                format!(
                    "{} (container, {} MB cap{detail})",
                    database.spec.image, database.spec.memory_limit_mb
                ),
            );
        }
        versions
    }

    /// (name, pid) of the host processes of this target (the consumer, while it runs as one;
    /// the CQL bridge), for /proc sampling; the containers, the consumer's included, are
    /// measured through [`ContainersTarget::usage_probe`].
    pub fn processes(&mut self) -> Vec<(String, u32)> {
        let mut processes = self.consumer.processes();
        if let Some(bridge) = &self.bridge
            && let Some(pid) = bridge.pid()
        {
            processes.push((bridge.name().to_string(), pid));
        }
        processes
    }

    /// The consumer's pid while it runs: a child process's, or the host pid of the first
    /// process of its container.
    pub fn consumer_pid(&mut self) -> Option<u32> {
        match &self.consumer_container {
            Some(container) => container.pid(),
            None => self.consumer.processes().first().map(|(_, pid)| *pid),
        }
    }

    /// The containers' OOM kills since `since` (the run's start), with times relative to it, in
    /// time order ([`history`]).
    pub async fn oom_kills(&self, since: std::time::SystemTime) -> Vec<OomKill> {
        let since_ns = since
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
            });
        let mut kills = Vec::new();
        for (role, service) in &self.services {
            let id = service.container.id();
            let events = history::container_events(&self.docker, id, since).await;
            kills.extend(history::oom_kills(role.name(), &events, since_ns));
        }
        kills.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        kills
    }

    /// Samples memory and CPU of the containers (see [`UsageProbe::sample`]).
    pub fn usage_probe(&self) -> UsageProbe {
        let services = self
            .services
            .iter()
            .map(|(role, service)| (*role, service.container.id()));
        let consumer = self
            .consumer_container
            .iter()
            .map(|consumer| (Role::Consumer, consumer.id()));
        UsageProbe::new(
            self.docker.clone(),
            services
                .chain(consumer)
                .map(|(role, id)| (role.name().to_string(), id.to_string()))
                .collect(),
        )
    }

    /// Starts the consumer under test: an image as a container beside the services (replacing
    /// an earlier one), anything else as a process on the host.
    pub async fn start_consumer(&mut self, launch: ConsumerLaunch) -> Result<(), ContainersError> {
        let ConsumerLaunch::Image(image) = launch else {
            return Ok(self.consumer.start(launch)?);
        };
        if let Some(old) = self.consumer_container.take() {
            old.remove().await;
        }
        let labels = spec::labels(
            &self.run_id,
            Role::Consumer,
            std::process::id(),
            &docker::host_name(),
        );
        let consumer =
            ContainerConsumer::start(&self.docker, &self.options, &self.dir, image, labels).await?;
        self.consumer_container = Some(consumer);
        Ok(())
    }

    /// The consumer's exit status if it has exited (reaping it).
    pub fn consumer_exited(&mut self) -> Option<std::process::ExitStatus> {
        match &self.consumer_container {
            Some(container) => container.exited(),
            None => self.consumer.exited(),
        }
    }

    /// SIGKILL the service (`docker kill` for a container; a paused one is unpaused first).
    pub async fn kill(&mut self, role: Role) -> Result<(), ContainersError> {
        if self.is_host_consumer(role) {
            return Ok(self.consumer.kill()?);
        }
        let id = self.container_id_of(role)?;
        let _ = bounded(DOCKER_CALL_TIMEOUT, self.docker.unpause_container(&id)).await;
        let options = KillContainerOptionsBuilder::new().signal("KILL").build();
        let killed = self.docker.kill_container(&id, Some(options));
        match bounded(DOCKER_CALL_TIMEOUT, killed).await {
            Err(error) if !is_not_running(&error) => Err(docker_error(role, "kill", error)),
            _ => Ok(()),
        }
    }

    /// SIGTERM the service and wait up to `grace` for it to exit (then SIGKILL). Returns whether
    /// it exited by itself cleanly: status 0, or (the JVM's way) 143.
    pub async fn stop(&mut self, role: Role, grace: Duration) -> Result<bool, ContainersError> {
        if self.is_host_consumer(role) {
            return Ok(self.consumer.stop(grace)?);
        }
        let id = self.container_id_of(role)?;
        let _ = bounded(DOCKER_CALL_TIMEOUT, self.docker.unpause_container(&id)).await;
        let grace_s = i32::try_from(grace.as_secs().max(1)).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::new().t(grace_s).build();
        let stopped = self.docker.stop_container(&id, Some(options));
        match bounded(grace + DOCKER_CALL_TIMEOUT, stopped).await {
            Err(error) if !is_not_running(&error) => {
                return Err(docker_error(role, "stop", error));
            }
            _ => {}
        }
        let state = bounded(
            DOCKER_CALL_TIMEOUT,
            self.docker.inspect_container(&id, None),
        )
        .await
        .map_err(|error| docker_error(role, "inspect", error))?
        .state;
        let exit_code = state.as_ref().and_then(|state| state.exit_code);
        let oom_killed = state.and_then(|state| state.oom_killed) == Some(true);
        Ok(!oom_killed && matches!(exit_code, Some(0 | 143)))
    }

    /// Freezes the service (`docker pause`; SIGSTOP for the consumer).
    pub async fn pause(&mut self, role: Role) -> Result<(), ContainersError> {
        if self.is_host_consumer(role) {
            return Ok(self.consumer.pause()?);
        }
        let id = self.container_id_of(role)?;
        bounded(DOCKER_CALL_TIMEOUT, self.docker.pause_container(&id))
            .await
            .map_err(|error| docker_error(role, "pause", error))
    }

    /// Thaws the service (`docker unpause`; SIGCONT for the consumer).
    pub async fn resume(&mut self, role: Role) -> Result<(), ContainersError> {
        if self.is_host_consumer(role) {
            return Ok(self.consumer.resume()?);
        }
        let id = self.container_id_of(role)?;
        bounded(DOCKER_CALL_TIMEOUT, self.docker.unpause_container(&id))
            .await
            .map_err(|error| docker_error(role, "unpause", error))
    }

    /// Sets the network condition between the clients and the service (its fault proxy).
    pub fn set_network(
        &mut self,
        role: Role,
        condition: NetworkCondition,
    ) -> Result<(), ContainersError> {
        let proxy = self
            .proxies
            .get(&role)
            .ok_or(TargetError::NoProxy { role })?;
        proxy.set(condition);
        Ok(())
    }

    /// Starts a stopped or killed service again (same container: same port, same data) and
    /// waits until its ready line is logged and its probe answers; returns how long that took.
    pub async fn restart(&mut self, role: Role) -> Result<Duration, ContainersError> {
        let started = Instant::now();
        if role == Role::Consumer {
            match self.consumer_container.as_mut() {
                Some(container) => container.restart().await?,
                None => self.consumer.restart()?,
            }
            return Ok(started.elapsed());
        }
        let docker = self.docker.clone();
        let deadline = self.options.ready_timeout;
        let service = self
            .services
            .get_mut(&role)
            .ok_or(TargetError::NotRunning { role })?;
        let id = service.container.id().to_string();
        service.follower = None;
        let since = start_again(&docker, role, &id).await?;
        let mut follower = LogFollower::spawn(
            docker.clone(),
            id.clone(),
            since,
            service.log.clone(),
            Some(service.spec.ready_line),
        );
        let waited = wait_for_ready_line(&docker, &id, &mut follower, deadline).await;
        service.follower = Some(follower);
        let not_ready = |problem: String| ContainersError::NotReady {
            role,
            image: service.spec.image.to_string(),
            waited: started.elapsed(),
            problem,
            log: service.log.clone(),
            tail: super::process::log_tail(&service.log, 20),
        };
        waited.map_err(not_ready)?;
        let remaining = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(5));
        probe(role, service.spec.client_address, remaining)
            .await
            .map_err(|error| not_ready(error.to_string()))?;
        let elapsed = started.elapsed();
        self.ready_after.insert(role, elapsed);
        Ok(elapsed)
    }

    /// Stops the consumer (SIGTERM, 10 s) and removes the containers now (instead of on drop).
    pub async fn remove(mut self) {
        self.consumer.terminate(Duration::from_secs(10));
        if let Some(consumer) = self.consumer_container.take() {
            consumer.remove().await;
        }
        if let Some(mut bridge) = self.bridge.take() {
            bridge.kill();
        }
        for (_, service) in std::mem::take(&mut self.services) {
            if let Err(error) = service.container.rm().await {
                tracing::warn!(%error, "cannot remove a container");
            }
        }
    }

    /// Whether `role` is the consumer running as a process of this host.
    fn is_host_consumer(&self, role: Role) -> bool {
        role == Role::Consumer && self.consumer_container.is_none()
    }

    /// The container of a service, or of the consumer when it runs as one.
    fn container_id_of(&self, role: Role) -> Result<String, ContainersError> {
        let id = match (&self.consumer_container, self.services.get(&role)) {
            (Some(consumer), _) if role == Role::Consumer => Some(consumer.id()),
            (_, Some(service)) => Some(service.container.id()),
            _ => None,
        };
        Ok(id.ok_or(TargetError::NotRunning { role })?.to_string())
    }
}

impl Drop for ContainersTarget {
    /// Kills the consumer; the containers are removed by testcontainers as they drop (this
    /// needs a tokio runtime: drop the target inside one).
    fn drop(&mut self) {
        self.consumer.terminate(Duration::from_secs(10));
        if !self.options.keep_work_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The host ports of one target, chosen before anything starts.
#[derive(Debug, Clone, Copy)]
struct HostPorts {
    /// Kafka's client port, bound to the broker container's.
    kafka: u16,
    /// The database's client port (CQL or PostgreSQL), bound to its container's.
    database: u16,
    /// The CQL bridge in front of `database`, for a database that speaks CQL v3 only.
    bridge: Option<u16>,
}

impl HostPorts {
    /// Free ports for the broker, the database and, when it is needed, the bridge.
    fn choose(needs_bridge: bool) -> std::io::Result<HostPorts> {
        Ok(HostPorts {
            kafka: free_port()?,
            database: free_port()?,
            bridge: match needs_bridge {
                true => Some(free_port()?),
                false => None,
            },
        })
    }
}

/// The fault proxies in front of the broker and the database (through the bridge when there is
/// one), and the endpoints clients use.
async fn front(
    options: &ContainersOptions,
    ports: HostPorts,
) -> Result<(FaultProxy, FaultProxy, Endpoints), ContainersError> {
    let localhost = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let database_client = localhost(ports.bridge.unwrap_or(ports.database));
    let kafka = localhost(ports.kafka);
    let broker_proxy = FaultProxy::start("broker", localhost(0), kafka, options.seed)
        .await
        .map_err(TargetError::from)?;
    let role = options.database.role();
    let database_proxy =
        FaultProxy::start(role.name(), localhost(0), database_client, options.seed)
            .await
            .map_err(TargetError::from)?;
    let (cql, postgres) = match options.database {
        Database::Postgres => {
            let proxied = PgEndpoint::new(postgres::url(database_proxy.local_addr()));
            let direct = PgEndpoint::new(postgres::url(database_client));
            // No CQL database: the CQL endpoints point at PostgreSQL, where no CQL client goes.
            (database_client, Some((proxied, direct)))
        }
        Database::Cassandra | Database::Scylla => (database_proxy.local_addr(), None),
    };
    let endpoints = Endpoints {
        kafka: KafkaConnection::plaintext(broker_proxy.local_addr().to_string()),
        cql: CqlConnection::plain(cql),
        cql_direct: CqlConnection::plain(database_client),
        postgres: postgres.as_ref().map(|(proxied, _)| proxied.clone()),
        postgres_direct: postgres.map(|(_, direct)| direct),
    };
    Ok((broker_proxy, database_proxy, endpoints))
}

/// Starts `roadtest cql-bridge` on the host (CQL v4 on `port`, v3 to the container's bound
/// `upstream` port; it connects upstream per client, so the database need not be up yet) and
/// waits until it accepts connections.
async fn start_bridge(
    options: &ContainersOptions,
    dir: &Path,
    port: u16,
    upstream: u16,
) -> Result<ServiceProcess, ContainersError> {
    let role = Role::CqlBridge;
    let program = options.roadtest_binary.clone();
    let spec = ProcessSpec {
        name: role.name().to_string(),
        program: program.clone(),
        args: super::cql_bridge_args(port, upstream),
        dir: dir.join(role.name()),
        log: dir.join(format!("{}.log", role.name())),
        ..ProcessSpec::default()
    };
    let mut bridge =
        ServiceProcess::spawn(spec).map_err(|source| TargetError::spawn(role, program, source))?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Duration::from_secs(30);
    wait_accepting(&mut bridge, role, address, Instant::now(), deadline).await?;
    Ok(bridge)
}

/// Connects to the Docker daemon at `endpoint` (pinged under a timeout) and removes the
/// containers left by roadtest processes that are gone.
async fn connect_docker(endpoint: &str) -> Result<Docker, ContainersError> {
    choice::ping_endpoint(endpoint, DOCKER_PING_TIMEOUT)
        .await
        .map_err(|reason| ContainersError::NoDocker { reason })?;
    let docker = choice::connect(endpoint).map_err(|e| ContainersError::NoDocker {
        reason: format!("{endpoint}: {e}"),
    })?;
    for name in docker::remove_orphans(&docker).await {
        tracing::warn!(container = %name, "removed a container left by a roadtest that is gone");
    }
    Ok(docker)
}
