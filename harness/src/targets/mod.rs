//! Where the pipeline runs: services, their endpoints and process control behind one interface.
//!
//! `local`: the real services as child processes of roadtest; `containers`: Kafka and Cassandra
//! (or ScyllaDB) in Docker via testcontainers; `external`: clusters that already run elsewhere.
//! [`Target`] drives any of them.

mod any;
mod capabilities;
mod consumer;
pub mod containers;
pub mod external;
pub mod kafka_gateway;
pub mod local;
mod ports;
mod postgres;
pub mod process;
pub mod proxy;

use std::fmt;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clients::pg::PgEndpoint;
use crate::clients::{CqlConnection, KafkaConnection};
use std::path::PathBuf;
use std::time::Duration;

pub use any::{StartSettings, Target};
pub use capabilities::Capabilities;
pub use consumer::{ConsumerLaunch, ImageConsumer, OwnConsumer};
pub use containers::{ContainersOptions, ContainersTarget, TargetKind};
pub use external::{ExternalOptions, ExternalTarget};
pub use local::{LocalOptions, LocalTarget};
pub use ports::free_port;
pub use postgres::PostgresInstall;

/// How clients reach the pipeline's services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Kafka for every client of the run (through the fault proxies, when the target has them).
    pub kafka: KafkaConnection,
    /// CQL for the pipeline's consumer (through the fault proxies, when the target has them).
    pub cql: CqlConnection,
    /// CQL that bypasses the fault proxies (set-up and verification).
    pub cql_direct: CqlConnection,
    /// PostgreSQL's connection string for the consumer (through the fault proxy), when the
    /// pipeline writes PostgreSQL (`pipeline.sink = "postgres"`).
    pub postgres: Option<PgEndpoint>,
    /// PostgreSQL's connection string bypassing the fault proxy (set-up and verification).
    pub postgres_direct: Option<PgEndpoint>,
}

/// One process of the pipeline that a target runs and can signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Broker,
    Cassandra,
    CqlBridge,
    Consumer,
    Postgres,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Broker,
        Role::Cassandra,
        Role::CqlBridge,
        Role::Consumer,
        Role::Postgres,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Broker => "broker",
            Role::Cassandra => "cassandra",
            Role::CqlBridge => "cql-bridge",
            Role::Consumer => "consumer",
            Role::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<crate::scenario::Service> for Role {
    fn from(service: crate::scenario::Service) -> Role {
        match service {
            crate::scenario::Service::Consumer => Role::Consumer,
            crate::scenario::Service::Broker => Role::Broker,
            crate::scenario::Service::Cassandra => Role::Cassandra,
            crate::scenario::Service::Postgres => Role::Postgres,
        }
    }
}

/// A target could not do what was asked; every variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "{what} is not installed (looked for {path}); install it with `roadtest services install` \
         (or set ROADTEST_HOME to where it is installed)"
    )]
    NotInstalled { what: &'static str, path: PathBuf },
    #[error(
        "cannot find the roadtest binary to run the {role} ({reason}); install it so it is on \
         PATH (`cargo install --path harness` in a clone of roadtest), or set ROADTEST_BIN to \
         its path"
    )]
    NoBinary { role: Role, reason: String },
    #[error("cannot start the {role} ({program}): {source}")]
    Spawn {
        role: Role,
        program: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the {role} did not become ready on {address} within {waited:?}; its log is {log}:\n{tail}"
    )]
    NotReady {
        role: Role,
        address: SocketAddr,
        waited: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("the {role} exited while starting ({status}); its log is {log}:\n{tail}")]
    Exited {
        role: Role,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "PostgreSQL is not installed (looked in ROADTEST_POSTGRES_BIN, /usr/lib/postgresql/*/bin \
         and `pg_config --bindir` for postgres and initdb); install it (Debian/Ubuntu: apt-get \
         install postgresql-15) or set ROADTEST_POSTGRES_BIN to the folder with its binaries"
    )]
    NoPostgres,
    #[error(
        "PostgreSQL refuses to run as root, and there is no `postgres` user to run it as; run \
         roadtest as another user, or create one (Debian's postgresql package does)"
    )]
    NoPostgresUser,
    #[error("--target external needs --kafka-bootstrap and --cql-contact")]
    NoClusters,
    #[error("the {role} is not running")]
    NotRunning { role: Role },
    #[error(
        "pipeline.consumer.image ({image}) runs the consumer as a Docker container, which only \
         the containers target does; use --target containers, or give the consumer as a \
         program with `command`"
    )]
    ConsumerImage { image: String },
    #[error("network faults need a proxy in front of the {role}, and it has none")]
    NoProxy { role: Role },
    #[error(transparent)]
    Proxy(#[from] proxy::ProxyError),
    #[error(transparent)]
    Containers(Box<containers::ContainersError>),
    #[error(transparent)]
    External(Box<external::ExternalError>),
    #[error(transparent)]
    Client(#[from] crate::clients::ClientError),
    #[error("recreating the topics after the broker's restart (it kept nothing): {0}")]
    TopicsAfterRestart(#[source] crate::clients::ClientError),
    #[error("cannot signal the {role}: {source}")]
    Signal { role: Role, source: nix::Error },
    #[error("cannot prepare the run directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl TargetError {
    /// A process could not be started; a roadtest binary that is nowhere to be found says how
    /// to get one.
    pub(crate) fn spawn(role: Role, program: PathBuf, source: std::io::Error) -> TargetError {
        let roadtest = program.file_name().is_some_and(|name| name == "roadtest");
        if roadtest && source.kind() == std::io::ErrorKind::NotFound {
            return TargetError::NoBinary {
                role,
                reason: format!("{} not found", program.display()),
            };
        }
        TargetError::Spawn {
            role,
            program,
            source,
        }
    }
}

impl From<containers::ContainersError> for TargetError {
    fn from(error: containers::ContainersError) -> TargetError {
        TargetError::Containers(Box::new(error))
    }
}

/// The arguments of the CQL bridge (`roadtest cql-bridge`) listening on 127.0.0.1:`listen`, in
/// front of a CQL v3 database on 127.0.0.1:`upstream`; the local and containers targets run it.
pub(crate) fn cql_bridge_args(listen: u16, upstream: u16) -> Vec<std::ffi::OsString> {
    [
        "cql-bridge".to_string(),
        "--listen".to_string(),
        format!("127.0.0.1:{listen}"),
        "--upstream".to_string(),
        format!("127.0.0.1:{upstream}"),
    ]
    .map(Into::into)
    .to_vec()
}

/// A new directory `PREFIX-PID-NANOS` under the system temp dir, unique per process and call.
pub(crate) fn fresh_run_dir(prefix: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()))
}
