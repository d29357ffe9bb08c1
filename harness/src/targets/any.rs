//! One handle over every target a run can use (local processes, containers or external clusters), so the run and the fault executor drive any of them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use super::containers::{ContainersTarget, TargetKind, UsageProbe};
use super::external::ExternalTarget;
use super::proxy::NetworkCondition;
use super::{Endpoints, LocalTarget, Role, TargetError};

/// A started target (one per run, rarely moved: the size difference of the variants is harmless).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Target {
    Local(LocalTarget),
    Containers(ContainersTarget),
    External(ExternalTarget),
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Local(_) => TargetKind::Local,
            Target::Containers(_) => TargetKind::Containers,
            Target::External(_) => TargetKind::External,
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        match self {
            Target::Local(target) => target.endpoints(),
            Target::Containers(target) => target.endpoints(),
            Target::External(target) => target.endpoints(),
        }
    }

    /// The run directory (logs of every service).
    pub fn dir(&self) -> &Path {
        match self {
            Target::Local(target) => target.dir(),
            Target::Containers(target) => target.dir(),
            Target::External(target) => target.dir(),
        }
    }

    pub fn ready_after(&self) -> &BTreeMap<Role, Duration> {
        match self {
            Target::Local(target) => target.ready_after(),
            Target::Containers(target) => target.ready_after(),
            Target::External(target) => target.ready_after(),
        }
    }

    pub fn service_versions(&self) -> BTreeMap<String, String> {
        match self {
            Target::Local(target) => target.service_versions(),
            Target::Containers(target) => target.service_versions(),
            Target::External(target) => target.service_versions(),
        }
    }

    /// (name, pid) of the host processes to sample (containers are sampled by [`Target::usage_probe`]).
    pub fn processes(&mut self) -> Vec<(String, u32)> {
        match self {
            Target::Local(target) => target.processes(),
            Target::Containers(target) => target.processes(),
            Target::External(target) => target.processes(),
        }
    }

    /// Docker stats of the containers, for the containers target.
    pub fn usage_probe(&self) -> Option<UsageProbe> {
        match self {
            Target::Local(_) | Target::External(_) => None,
            Target::Containers(target) => Some(target.usage_probe()),
        }
    }

    /// Replicas of each of the run's topics (1 but on external clusters, where it is a flag).
    pub fn kafka_replication_factor(&self) -> i32 {
        match self {
            Target::External(target) => target.kafka_replication_factor(),
            _ => 1,
        }
    }

    /// The CQL replication map of the run's keyspace.
    pub fn cql_replication(&self) -> &str {
        match self {
            Target::External(target) => target.cql_replication(),
            _ => crate::clients::cql::REPLICATION_ONE,
        }
    }

    /// Whether the broker keeps its data across a restart (Tansu on memory storage does not).
    pub fn broker_keeps_data(&self) -> bool {
        matches!(self, Target::Containers(_))
    }

    pub fn start_consumer(&mut self, args: Vec<OsString>) -> Result<(), TargetError> {
        match self {
            Target::Local(target) => target.start_consumer(args),
            Target::Containers(target) => Ok(target.start_consumer(args)?),
            Target::External(target) => target.start_consumer(args),
        }
    }

    pub fn consumer_exited(&mut self) -> Option<std::process::ExitStatus> {
        match self {
            Target::Local(target) => target.consumer_exited(),
            Target::Containers(target) => target.consumer_exited(),
            Target::External(target) => target.consumer_exited(),
        }
    }

    pub async fn kill(&mut self, role: Role) -> Result<(), TargetError> {
        match self {
            Target::Local(target) => target.kill(role),
            Target::Containers(target) => Ok(target.kill(role).await?),
            Target::External(target) => target.kill(role),
        }
    }

    /// SIGTERM (or `docker stop`) and wait up to `grace`; whether it exited cleanly by itself.
    pub async fn stop(&mut self, role: Role, grace: Duration) -> Result<bool, TargetError> {
        match self {
            Target::Local(target) => target.stop(role, grace),
            Target::Containers(target) => Ok(target.stop(role, grace).await?),
            Target::External(target) => target.stop(role, grace),
        }
    }

    pub async fn pause(&mut self, role: Role) -> Result<(), TargetError> {
        match self {
            Target::Local(target) => target.pause(role),
            Target::Containers(target) => Ok(target.pause(role).await?),
            Target::External(target) => target.pause(role),
        }
    }

    pub async fn resume(&mut self, role: Role) -> Result<(), TargetError> {
        match self {
            Target::Local(target) => target.resume(role),
            Target::Containers(target) => Ok(target.resume(role).await?),
            Target::External(target) => target.resume(role),
        }
    }

    /// Starts a stopped or killed service again and waits until it is ready.
    pub async fn restart(&mut self, role: Role) -> Result<Duration, TargetError> {
        match self {
            Target::Local(target) => target.restart(role).await,
            Target::Containers(target) => Ok(target.restart(role).await?),
            Target::External(target) => target.restart(role),
        }
    }

    pub fn set_network(
        &mut self,
        role: Role,
        condition: NetworkCondition,
    ) -> Result<(), TargetError> {
        match self {
            Target::Local(target) => target.set_network(role, condition),
            Target::Containers(target) => Ok(target.set_network(role, condition)?),
            Target::External(target) => target.set_network(role, condition),
        }
    }

    /// Stops everything (containers are removed; local processes are stopped on drop).
    pub async fn shutdown(self) {
        match self {
            Target::Local(target) => drop(target),
            Target::Containers(target) => target.remove().await,
            Target::External(target) => target.shutdown(),
        }
    }
}
