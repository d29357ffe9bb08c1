//! The local target: Tansu and the database (Cassandra 2.1 behind the CQL bridge, or PostgreSQL) as child processes on free ports in a fresh run directory.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::consumer::ConsumerLaunch;
use super::postgres::PostgresInstall;
use super::process::{ProcessSpec, ServiceProcess};
use super::proxy::{FaultProxy, NetworkCondition};
use super::{Endpoints, Role, TargetError, free_port, fresh_run_dir};
use crate::clients::pg::PgEndpoint;
use crate::clients::{CqlConnection, KafkaConnection};
pub use crate::scenario::{BrokerStorage, CommitlogSync, Sink};

/// Versions of the services this target runs (for reports).
pub const TANSU_VERSION: &str = "0.6.0";
/// The durable broker: Tansu built with its SQLite storage by `roadtest services install`.
const TANSU_DURABLE: &str = "bin/tansu-durable";
/// Its database, relative to the broker's folder (Tansu resolves SQLite paths under its working
/// directory).
const TANSU_DURABLE_URL: &str = "sqlite://tansu.db";
pub const CASSANDRA_VERSION: &str = "2.1.0";

/// Readiness deadlines.
const BROKER_READY: Duration = Duration::from_secs(20);
const CASSANDRA_READY: Duration = Duration::from_secs(120);
const BRIDGE_READY: Duration = Duration::from_secs(10);
const POSTGRES_READY: Duration = Duration::from_secs(60);

/// How to run the local target.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Where `roadtest services install` put the services (default `~/.cache/roadtest`).
    pub home: PathBuf,
    /// The `roadtest` binary, used for the CQL bridge and the consumer.
    pub roadtest_binary: PathBuf,
    /// The run directory; a fresh one under the system temp dir by default.
    pub work_dir: Option<PathBuf>,
    /// Keep the run directory's logs when the target is dropped (the database's data goes).
    pub keep_work_dir: bool,
    pub commitlog_sync: CommitlogSync,
    pub cassandra_heap_mb: u32,
    /// The database the pipeline writes (Cassandra behind the bridge, or PostgreSQL).
    pub sink: Sink,
    /// PostgreSQL's `synchronous_commit` (on: nothing acknowledged is lost in a crash).
    pub postgres_synchronous_commit: bool,
    /// Where Tansu keeps its log: memory (a restart keeps nothing) or SQLite in the run folder.
    pub broker_storage: BrokerStorage,
    /// Root seed for the fault proxies' jitter.
    pub seed: u64,
}

impl LocalOptions {
    /// Options from the environment: `ROADTEST_HOME`, and the roadtest binary as
    /// [`find_roadtest_binary`] finds it.
    pub fn from_env() -> LocalOptions {
        LocalOptions {
            home: roadtest_home(),
            roadtest_binary: find_roadtest_binary(),
            work_dir: None,
            keep_work_dir: false,
            commitlog_sync: CommitlogSync::Periodic,
            cassandra_heap_mb: 256,
            sink: Sink::Cassandra,
            postgres_synchronous_commit: true,
            broker_storage: BrokerStorage::Memory,
            seed: 0,
        }
    }
}

/// `ROADTEST_HOME`, else `~/.cache/roadtest`.
pub fn roadtest_home() -> PathBuf {
    match std::env::var_os("ROADTEST_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => {
            let user_home = std::env::var_os("HOME").unwrap_or_else(|| OsString::from("/root"));
            PathBuf::from(user_home).join(".cache/roadtest")
        }
    }
}

/// The roadtest binary that runs the consumer and the CQL bridge: beside the running
/// executable (roadtest itself, or a test executable in cargo's `target/<profile>/deps`), else
/// `ROADTEST_BIN`, else `roadtest` as found on `PATH` when it is started (where `cargo install`
/// puts it; a missing one is reported then, saying how to get it). Only a target that starts
/// those processes needs it.
pub fn find_roadtest_binary() -> PathBuf {
    let beside = std::env::current_exe().ok().and_then(|current| {
        if current.file_stem().is_some_and(|stem| stem == "roadtest") {
            return Some(current);
        }
        // Test binaries live in target/<profile>/deps; the roadtest binary in target/<profile>.
        current
            .ancestors()
            .skip(1)
            .take(2)
            .map(|dir| dir.join("roadtest"))
            .find(|candidate| candidate.is_file())
    });
    beside
        .or_else(|| std::env::var_os("ROADTEST_BIN").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("roadtest"))
}

/// Ports of one local pipeline.
#[derive(Debug, Clone, Copy)]
struct Ports {
    /// Tansu's own listener; clients reach it through the broker proxy.
    kafka: u16,
    cassandra_native: u16,
    cassandra_storage: u16,
    cassandra_ssl_storage: u16,
    cassandra_jmx: u16,
    bridge: u16,
    postgres: u16,
}

impl Ports {
    fn free() -> std::io::Result<Ports> {
        Ok(Ports {
            kafka: free_port()?,
            cassandra_native: free_port()?,
            cassandra_storage: free_port()?,
            cassandra_ssl_storage: free_port()?,
            cassandra_jmx: free_port()?,
            bridge: free_port()?,
            postgres: free_port()?,
        })
    }
}

/// The binaries the target runs are where `roadtest services install` puts them.
fn check_installed(options: &LocalOptions) -> Result<(), TargetError> {
    let mut needed = vec![match options.broker_storage {
        BrokerStorage::Memory => ("tansu", options.home.join("bin/tansu")),
        BrokerStorage::Durable => ("tansu-durable", options.home.join(TANSU_DURABLE)),
    }];
    if options.sink == Sink::Cassandra {
        needed.push(("cassandra-node", options.home.join("bin/cassandra-node")));
    }
    match needed.into_iter().find(|(_, path)| !path.exists()) {
        Some((what, path)) => Err(TargetError::NotInstalled { what, path }),
        None => Ok(()),
    }
}

/// The fault proxies in front of the broker and the database, and the endpoints through them.
/// Every client reaches the broker through its proxy: Tansu advertises the proxy's address.
async fn start_proxies(
    options: &LocalOptions,
    ports: Ports,
) -> Result<(BTreeMap<Role, FaultProxy>, Endpoints), TargetError> {
    let localhost = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let broker = FaultProxy::start("broker", localhost(0), localhost(ports.kafka), options.seed);
    let broker = broker.await?;
    let (role, upstream) = match options.sink {
        Sink::Cassandra => (Role::Cassandra, ports.bridge),
        Sink::Postgres => (Role::Postgres, ports.postgres),
    };
    let database =
        FaultProxy::start(role.name(), localhost(0), localhost(upstream), options.seed).await?;
    let postgres = (options.sink == Sink::Postgres).then(|| {
        (
            PgEndpoint::new(super::postgres::url(database.local_addr())),
            PgEndpoint::new(super::postgres::url(localhost(ports.postgres))),
        )
    });
    // With PostgreSQL the CQL endpoints point at the unused bridge port: nothing answers there.
    let cql = match options.sink {
        Sink::Cassandra => database.local_addr(),
        Sink::Postgres => localhost(ports.bridge),
    };
    let endpoints = Endpoints {
        kafka: KafkaConnection::plaintext(broker.local_addr().to_string()),
        cql: CqlConnection::plain(cql),
        cql_direct: CqlConnection::plain(localhost(ports.bridge)),
        postgres: postgres.as_ref().map(|(proxied, _)| proxied.clone()),
        postgres_direct: postgres.map(|(_, direct)| direct),
    };
    Ok((
        BTreeMap::from([(Role::Broker, broker), (role, database)]),
        endpoints,
    ))
}

/// The real pipeline as child processes of this roadtest.
#[derive(Debug)]
pub struct LocalTarget {
    options: LocalOptions,
    dir: PathBuf,
    ports: Ports,
    endpoints: Endpoints,
    processes: BTreeMap<Role, ServiceProcess>,
    /// Fault proxies in front of the broker and Cassandra (network faults act on them).
    proxies: BTreeMap<Role, FaultProxy>,
    /// How long each service took to become ready at its last start.
    ready_after: BTreeMap<Role, Duration>,
    /// The PostgreSQL server, when the pipeline writes PostgreSQL.
    postgres: Option<PostgresInstall>,
}

impl LocalTarget {
    /// Starts the broker and the database (Cassandra and the bridge, or PostgreSQL), and waits
    /// until each accepts connections.
    pub async fn start(options: LocalOptions) -> Result<LocalTarget, TargetError> {
        let postgres = match options.sink {
            Sink::Postgres => Some(PostgresInstall::find()?),
            Sink::Cassandra => None,
        };
        check_installed(&options)?;
        let dir = match &options.work_dir {
            Some(dir) => dir.clone(),
            None => fresh_run_dir("roadtest"),
        };
        std::fs::create_dir_all(&dir).map_err(|source| TargetError::WorkDir {
            path: dir.clone(),
            source,
        })?;
        let ports = Ports::free().map_err(|source| TargetError::WorkDir {
            path: dir.clone(),
            source,
        })?;
        let (proxies, endpoints) = start_proxies(&options, ports).await?;
        let mut target = LocalTarget {
            options,
            dir,
            ports,
            endpoints,
            processes: BTreeMap::new(),
            proxies,
            ready_after: BTreeMap::new(),
            postgres,
        };
        let started = Instant::now();
        target.spawn(Role::Broker)?;
        if let Some(postgres) = target.postgres.clone() {
            let log = target.dir.join("postgres-initdb.log");
            postgres.initdb(&target.postgres_data(), &log).await?;
            target.spawn(Role::Postgres)?;
            target.wait_ready(Role::Broker, started).await?;
            target.wait_ready(Role::Postgres, started).await?;
            return Ok(target);
        }
        // Broker and Cassandra start together; the bridge needs Cassandra's port.
        target.spawn(Role::Cassandra)?;
        target.wait_ready(Role::Broker, started).await?;
        target.wait_ready(Role::Cassandra, started).await?;
        let bridge_started = Instant::now();
        target.spawn(Role::CqlBridge)?;
        target.wait_ready(Role::CqlBridge, bridge_started).await?;
        Ok(target)
    }

    fn postgres_data(&self) -> PathBuf {
        self.dir.join("postgres/data")
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The run directory (logs and data of every service).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where Cassandra's JVM writes its GC logs (`cassandra-node` puts them beside its
    /// system.log), when this target runs Cassandra.
    pub fn gc_log_dir(&self) -> Option<PathBuf> {
        (self.options.sink == Sink::Cassandra).then(|| self.dir.join("cassandra/logs"))
    }

    /// What this target can do: its broker keeps its data on durable storage.
    pub fn capabilities(&self) -> super::Capabilities {
        super::Capabilities {
            broker_keeps_data: self.options.broker_storage == BrokerStorage::Durable,
            ..super::Capabilities::of(super::TargetKind::Local)
        }
    }

    /// How long each service took to become ready at its last start.
    pub fn ready_after(&self) -> &BTreeMap<Role, Duration> {
        &self.ready_after
    }

    /// Service name -> version, for reports.
    pub fn service_versions(&self) -> BTreeMap<String, String> {
        let storage = match self.options.broker_storage {
            BrokerStorage::Memory => "memory storage",
            BrokerStorage::Durable => "durable: SQLite storage",
        };
        let broker = (
            "broker".to_string(),
            format!("tansu {TANSU_VERSION} ({storage})"),
        );
        if let Some(postgres) = &self.postgres {
            let synchronous_commit = if self.options.postgres_synchronous_commit {
                "on"
            } else {
                "off"
            };
            let version = format!(
                "{} (synchronous_commit {synchronous_commit})",
                postgres.version
            );
            return BTreeMap::from([broker, ("postgres".to_string(), version)]);
        }
        BTreeMap::from([
            broker,
            (
                "cassandra".to_string(),
                format!(
                    "apache-cassandra {CASSANDRA_VERSION} (commitlog_sync {}) behind cql-bridge",
                    self.options.commitlog_sync.name()
                ),
            ),
        ])
    }

    /// (name, pid) of every running process, for resource sampling.
    /// PostgreSQL is its server and every backend, sampled as one.
    pub fn processes(&mut self) -> Vec<(String, u32)> {
        let mut processes = Vec::new();
        for (role, process) in &mut self.processes {
            let Some(pid) = process.pid().filter(|_| process.is_running()) else {
                continue;
            };
            processes.push((role.name().to_string(), pid));
            if *role == Role::Postgres {
                let members = super::process::descendants(pid);
                processes.extend(
                    members
                        .into_iter()
                        .map(|member| (role.name().to_string(), member)),
                );
            }
        }
        processes
    }

    /// Starts the consumer under test as a service of this target.
    pub fn start_consumer(&mut self, launch: ConsumerLaunch) -> Result<(), TargetError> {
        let spec = launch.spec(&self.options.roadtest_binary, &self.dir)?;
        self.spawn_spec(Role::Consumer, spec)
    }

    /// The consumer's exit status if it ended by itself (kept until it is started again).
    pub fn consumer_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.processes.get_mut(&Role::Consumer)?.exited()
    }

    /// SIGKILL the service.
    pub fn kill(&mut self, role: Role) -> Result<(), TargetError> {
        self.process(role)?.kill();
        Ok(())
    }

    /// SIGTERM the service and wait up to `grace` for it to exit (then SIGKILL).
    /// Returns whether it exited by itself cleanly: status 0, or (the JVM's way) 143 or SIGTERM.
    pub fn stop(&mut self, role: Role, grace: Duration) -> Result<bool, TargetError> {
        use std::os::unix::process::ExitStatusExt;
        let status = self.process(role)?.terminate(grace);
        Ok(status.is_some_and(|s| {
            s.success() || s.code() == Some(143) || s.signal() == Some(Signal::SIGTERM as i32)
        }))
    }

    /// Sets the network condition between the clients and the service (its fault proxy).
    pub fn set_network(
        &mut self,
        role: Role,
        condition: NetworkCondition,
    ) -> Result<(), TargetError> {
        let proxy = self
            .proxies
            .get(&role)
            .ok_or(TargetError::NoProxy { role })?;
        proxy.set(condition);
        Ok(())
    }

    /// SIGSTOP the service.
    pub fn pause(&mut self, role: Role) -> Result<(), TargetError> {
        self.send(role, Signal::SIGSTOP)
    }

    /// SIGCONT the service.
    pub fn resume(&mut self, role: Role) -> Result<(), TargetError> {
        self.send(role, Signal::SIGCONT)
    }

    /// Starts a stopped or killed service again (same ports, same data) and waits until it is ready.
    pub async fn restart(&mut self, role: Role) -> Result<Duration, TargetError> {
        let started = Instant::now();
        let process = self.process(role)?;
        let program = process.program().to_path_buf();
        process
            .start()
            .map_err(|source| TargetError::spawn(role, program, source))?;
        if role != Role::Consumer {
            self.wait_ready(role, started).await?;
        }
        Ok(started.elapsed())
    }

    /// Stops everything (consumer first, so it can finish; then the database, the broker).
    pub fn shutdown(&mut self) {
        if let Some(consumer) = self.processes.get_mut(&Role::Consumer) {
            consumer.terminate(Duration::from_secs(10));
        }
        for role in [
            Role::CqlBridge,
            Role::Cassandra,
            Role::Postgres,
            Role::Broker,
        ] {
            if let Some(process) = self.processes.get_mut(&role) {
                process.kill();
            }
        }
    }

    fn send(&mut self, role: Role, signal: Signal) -> Result<(), TargetError> {
        self.process(role)?
            .signal(signal)
            .map_err(|source| TargetError::Signal { role, source })
    }

    fn process(&mut self, role: Role) -> Result<&mut ServiceProcess, TargetError> {
        self.processes
            .get_mut(&role)
            .ok_or(TargetError::NotRunning { role })
    }

    fn spec(&self, role: Role) -> ProcessSpec {
        let home = &self.options.home;
        let ports = self.ports;
        let arg = |text: String| OsString::from(text);
        let (program, args) = match role {
            Role::Broker => self.broker_command(),
            Role::Cassandra => (
                home.join("bin/cassandra-node"),
                vec![
                    arg("--dir".into()),
                    self.dir.join("cassandra").into_os_string(),
                    arg("--native-port".into()),
                    arg(ports.cassandra_native.to_string()),
                    arg("--storage-port".into()),
                    arg(ports.cassandra_storage.to_string()),
                    arg("--ssl-storage-port".into()),
                    arg(ports.cassandra_ssl_storage.to_string()),
                    arg("--jmx-port".into()),
                    arg(ports.cassandra_jmx.to_string()),
                    arg("--commitlog-sync".into()),
                    arg(self.options.commitlog_sync.name().into()),
                    arg("--heap-mb".into()),
                    arg(self.options.cassandra_heap_mb.to_string()),
                    arg("--cassandra-home".into()),
                    home.join("cassandra-2.1.0").into_os_string(),
                ],
            ),
            Role::CqlBridge => (
                self.options.roadtest_binary.clone(),
                super::cql_bridge_args(ports.bridge, ports.cassandra_native),
            ),
            Role::Consumer => (self.options.roadtest_binary.clone(), Vec::new()),
            Role::Postgres => {
                if let Some(postgres) = &self.postgres {
                    return postgres.spec(
                        &self.postgres_data(),
                        ports.postgres,
                        self.options.postgres_synchronous_commit,
                        self.dir.join("postgres.log"),
                    );
                }
                (PathBuf::from("postgres"), Vec::new())
            }
        };
        ProcessSpec {
            name: role.name().to_string(),
            program,
            args,
            dir: self.dir.join(role.name()),
            log: self.dir.join(format!("{}.log", role.name())),
            env: vec![(
                OsString::from("ROADTEST_HOME"),
                self.options.home.clone().into_os_string(),
            )],
            ..ProcessSpec::default()
        }
    }

    /// Tansu on the scenario's storage, listening on its own port and advertising its proxy.
    fn broker_command(&self) -> (PathBuf, Vec<OsString>) {
        let (program, storage) = match self.options.broker_storage {
            BrokerStorage::Memory => (self.options.home.join("bin/tansu"), "memory://tansu/"),
            BrokerStorage::Durable => (self.options.home.join(TANSU_DURABLE), TANSU_DURABLE_URL),
        };
        let args = [
            "broker".to_string(),
            "--listener-url".to_string(),
            format!("tcp://127.0.0.1:{}", self.ports.kafka),
            "--advertised-listener-url".to_string(),
            format!("tcp://{}", self.endpoints.kafka.bootstrap),
            "--storage-engine".to_string(),
            storage.to_string(),
        ];
        (program, args.into_iter().map(OsString::from).collect())
    }

    fn spawn(&mut self, role: Role) -> Result<(), TargetError> {
        let spec = self.spec(role);
        self.spawn_spec(role, spec)
    }

    fn spawn_spec(&mut self, role: Role, spec: ProcessSpec) -> Result<(), TargetError> {
        let program = spec.program.clone();
        if let Some(mut old) = self.processes.remove(&role) {
            old.kill();
        }
        let process = ServiceProcess::spawn(spec)
            .map_err(|source| TargetError::spawn(role, program, source))?;
        self.processes.insert(role, process);
        Ok(())
    }

    fn address(&self, role: Role) -> SocketAddr {
        let port = match role {
            Role::Broker => self.ports.kafka,
            Role::Cassandra => self.ports.cassandra_native,
            Role::CqlBridge | Role::Consumer => self.ports.bridge,
            Role::Postgres => self.ports.postgres,
        };
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// Waits until the service accepts TCP connections, retrying quietly with backoff.
    async fn wait_ready(&mut self, role: Role, started: Instant) -> Result<(), TargetError> {
        let address = self.address(role);
        let deadline = match role {
            Role::Broker => BROKER_READY,
            Role::Cassandra => CASSANDRA_READY,
            Role::CqlBridge | Role::Consumer => BRIDGE_READY,
            Role::Postgres => POSTGRES_READY,
        };
        let process = self.process(role)?;
        super::process::wait_accepting(process, role, address, started, deadline).await?;
        if let (Role::Postgres, Some(endpoint)) = (role, &self.endpoints.postgres_direct) {
            // It listens before it answers: a start after a crash replays the WAL first.
            let remaining = deadline.saturating_sub(started.elapsed());
            crate::clients::pg::connect(endpoint, remaining).await?;
        }
        self.ready_after.insert(role, started.elapsed());
        Ok(())
    }
}

impl Drop for LocalTarget {
    fn drop(&mut self) {
        self.shutdown();
        // The database's data is large and replayable; with keep_work_dir the logs stay.
        if self.options.keep_work_dir {
            let _ = std::fs::remove_dir_all(self.dir.join("cassandra"));
            let _ = std::fs::remove_dir_all(self.postgres_data());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
