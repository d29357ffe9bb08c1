//! One handle over every target a run can use (local processes, containers or external clusters), so the run and the fault executor drive any of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::consumer::ConsumerLaunch;
use super::containers::{ContainersTarget, OomKill, TargetKind, UsageProbe};
use super::external::ExternalTarget;
use super::external::{ExternalClusters, ExternalOptions};
use super::proxy::NetworkCondition;
use super::{
    Capabilities, ContainersOptions, Endpoints, LocalOptions, LocalTarget, Role, TargetError,
};
use crate::clients::kafka;
use crate::scenario::Scenario;

/// How long the topics' recreation after a broker restart waits for the broker.
const TOPICS_AFTER_RESTART_WAIT: Duration = Duration::from_secs(30);

/// A started target: the services of one kind of target, and the topics the run created on its
/// broker (recreated after a broker restart where the broker keeps nothing).
#[derive(Debug)]
pub struct Target {
    running: Running,
    topics: Vec<(String, u32)>,
}

/// The services of one kind of target (one per run, rarely moved: the size difference of the
/// variants is harmless).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Running {
    Local(LocalTarget),
    Containers(ContainersTarget),
    External(ExternalTarget),
}

impl From<Running> for Target {
    fn from(running: Running) -> Target {
        Target {
            running,
            topics: Vec::new(),
        }
    }
}

impl From<LocalTarget> for Target {
    fn from(target: LocalTarget) -> Target {
        Running::Local(target).into()
    }
}

impl From<ContainersTarget> for Target {
    fn from(target: ContainersTarget) -> Target {
        Running::Containers(target).into()
    }
}

impl From<ExternalTarget> for Target {
    fn from(target: ExternalTarget) -> Target {
        Running::External(target).into()
    }
}

/// What starting a target takes: the scenario, where the services' files go, and each kind's
/// own options (a kind takes only its part).
#[derive(Debug, Clone)]
pub struct StartSettings<'a> {
    pub scenario: &'a Scenario,
    pub services_dir: PathBuf,
    pub local: &'a LocalOptions,
    pub containers: &'a ContainersOptions,
    pub external: Option<&'a ExternalClusters>,
}

impl Target {
    /// Starts a target of `kind` for the scenario and waits until its services are ready.
    pub async fn start(
        kind: TargetKind,
        settings: StartSettings<'_>,
    ) -> Result<Target, TargetError> {
        let StartSettings {
            scenario,
            services_dir,
            ..
        } = settings;
        let binary = settings.local.roadtest_binary.clone();
        if kind != TargetKind::Containers && !scenario.pipeline.containers.is_default() {
            eprintln!(
                "roadtest: note: [pipeline.containers] (memory caps, heap, restart) applies to \
                 the containers target only; the {kind} target ignores it"
            );
        }
        Ok(match kind {
            TargetKind::Local => {
                let mut local = settings.local.clone();
                local.work_dir = Some(services_dir);
                local.keep_work_dir = true;
                local.commitlog_sync = scenario.pipeline.cassandra_commitlog_sync;
                local.sink = scenario.pipeline.sink;
                local.postgres_synchronous_commit = scenario.pipeline.postgres_synchronous_commit;
                local.broker_storage = scenario.pipeline.broker_storage;
                local.seed = scenario.seed;
                eprintln!("roadtest: starting the local services...");
                LocalTarget::start(local).await?.into()
            }
            TargetKind::External => {
                let clusters = settings.external.cloned().ok_or(TargetError::NoClusters)?;
                let database = match &clusters.postgres {
                    Some(postgres) => format!("PostgreSQL at {}", postgres.address()),
                    None => format!("Cassandra at {}", clusters.cql.address()),
                };
                eprintln!(
                    "roadtest: connecting to Kafka at {} and {database} (external target)...",
                    clusters.kafka.bootstrap,
                );
                let options = ExternalOptions {
                    clusters,
                    roadtest_binary: binary,
                    work_dir: services_dir,
                    proxied: super::external::network_fault_roles(scenario),
                    seed: scenario.seed,
                };
                ExternalTarget::start(options).await?.into()
            }
            TargetKind::Containers => {
                let mut containers = settings.containers.clone();
                containers.roadtest_binary = binary;
                containers.work_dir = Some(services_dir);
                containers.keep_work_dir = true;
                containers.commitlog_sync = scenario.pipeline.cassandra_commitlog_sync;
                containers.apply_sink(scenario.pipeline.sink);
                containers.postgres_synchronous_commit =
                    scenario.pipeline.postgres_synchronous_commit;
                containers.apply_scenario(&scenario.pipeline.containers);
                containers.seed = scenario.seed;
                eprintln!("roadtest: starting Kafka and the database in containers...");
                ContainersTarget::start(containers).await?.into()
            }
        })
    }

    pub fn kind(&self) -> TargetKind {
        match self.running {
            Running::Local(_) => TargetKind::Local,
            Running::Containers(_) => TargetKind::Containers,
            Running::External(_) => TargetKind::External,
        }
    }

    /// What this target can do.
    pub fn capabilities(&self) -> Capabilities {
        match &self.running {
            Running::Containers(target) => target.capabilities(),
            Running::Local(target) => target.capabilities(),
            Running::External(_) => Capabilities::of(self.kind()),
        }
    }

    /// Creates the run's topics `(name, partitions)` with the target's replication, waiting up
    /// to `wait` for the broker, and remembers them (see [`Target::restart`]).
    pub async fn create_topics(
        &mut self,
        topics: &[(&str, u32)],
        wait: Duration,
    ) -> Result<(), TargetError> {
        kafka::create_topics(
            &self.endpoints().kafka,
            topics,
            self.kafka_replication_factor(),
            wait,
        )
        .await?;
        self.topics.extend(
            topics
                .iter()
                .map(|&(name, partitions)| (name.to_owned(), partitions)),
        );
        Ok(())
    }

    /// Deletes the topics the run created (best effort; a failure is logged).
    pub async fn delete_topics(&self) {
        for (topic, _) in &self.topics {
            kafka::delete_topic(&self.endpoints().kafka, topic).await;
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        match &self.running {
            Running::Local(target) => target.endpoints(),
            Running::Containers(target) => target.endpoints(),
            Running::External(target) => target.endpoints(),
        }
    }

    /// The run directory (logs of every service).
    pub fn dir(&self) -> &Path {
        match &self.running {
            Running::Local(target) => target.dir(),
            Running::Containers(target) => target.dir(),
            Running::External(target) => target.dir(),
        }
    }

    pub fn ready_after(&self) -> &BTreeMap<Role, Duration> {
        match &self.running {
            Running::Local(target) => target.ready_after(),
            Running::Containers(target) => target.ready_after(),
            Running::External(target) => target.ready_after(),
        }
    }

    pub fn service_versions(&self) -> BTreeMap<String, String> {
        match &self.running {
            Running::Local(target) => target.service_versions(),
            Running::Containers(target) => target.service_versions(),
            Running::External(target) => target.service_versions(),
        }
    }

    /// (name, pid) of the host processes to sample (containers are sampled by [`Target::usage_probe`]).
    pub fn processes(&mut self) -> Vec<(String, u32)> {
        match &mut self.running {
            Running::Local(target) => target.processes(),
            Running::Containers(target) => target.processes(),
            Running::External(target) => target.processes(),
        }
    }

    /// The folder where Cassandra's JVM writes its GC logs (`gc-*.log`), when roadtest started
    /// that Cassandra with its own launcher: the local target with the Cassandra sink, and
    /// roadtest's Cassandra image on the containers target (through a mounted folder).
    pub fn gc_log_dir(&self) -> Option<std::path::PathBuf> {
        match &self.running {
            Running::Local(target) => target.gc_log_dir(),
            Running::Containers(target) => target.gc_log_dir(),
            Running::External(_) => None,
        }
    }

    /// Docker stats of the containers, for the containers target.
    pub fn usage_probe(&self) -> Option<UsageProbe> {
        match &self.running {
            Running::Local(_) | Running::External(_) => None,
            Running::Containers(target) => Some(target.usage_probe()),
        }
    }

    /// Containers the kernel killed for lack of memory since `since` (the containers target
    /// only: elsewhere nothing caps a service's memory).
    pub async fn oom_kills(&self, since: std::time::SystemTime) -> Vec<OomKill> {
        match &self.running {
            Running::Containers(target) => target.oom_kills(since).await,
            Running::Local(_) | Running::External(_) => Vec::new(),
        }
    }

    /// Replicas of each of the run's topics (1 but on external clusters, where it is a flag).
    pub fn kafka_replication_factor(&self) -> i32 {
        match &self.running {
            Running::External(target) => target.kafka_replication_factor(),
            _ => 1,
        }
    }

    /// The CQL replication map of the run's keyspace.
    pub fn cql_replication(&self) -> &str {
        match &self.running {
            Running::External(target) => target.cql_replication(),
            _ => crate::clients::cql::REPLICATION_ONE,
        }
    }

    /// Starts the consumer under test (an image only on the containers target).
    pub async fn start_consumer(&mut self, launch: ConsumerLaunch) -> Result<(), TargetError> {
        match &mut self.running {
            Running::Local(target) => target.start_consumer(launch),
            Running::Containers(target) => Ok(target.start_consumer(launch).await?),
            Running::External(target) => target.start_consumer(launch),
        }
    }

    /// The consumer's pid while it runs (on the containers target, a consumer container's
    /// first process as the host sees it).
    pub fn consumer_pid(&mut self) -> Option<u32> {
        match &mut self.running {
            Running::Containers(target) => target.consumer_pid(),
            Running::Local(_) | Running::External(_) => self
                .processes()
                .into_iter()
                .find_map(|(name, pid)| (name == Role::Consumer.name()).then_some(pid)),
        }
    }

    pub fn consumer_exited(&mut self) -> Option<std::process::ExitStatus> {
        match &mut self.running {
            Running::Local(target) => target.consumer_exited(),
            Running::Containers(target) => target.consumer_exited(),
            Running::External(target) => target.consumer_exited(),
        }
    }

    pub async fn kill(&mut self, role: Role) -> Result<(), TargetError> {
        match &mut self.running {
            Running::Local(target) => target.kill(role),
            Running::Containers(target) => Ok(target.kill(role).await?),
            Running::External(target) => target.kill(role),
        }
    }

    /// SIGTERM (or `docker stop`) and wait up to `grace`; whether it exited cleanly by itself.
    pub async fn stop(&mut self, role: Role, grace: Duration) -> Result<bool, TargetError> {
        match &mut self.running {
            Running::Local(target) => target.stop(role, grace),
            Running::Containers(target) => Ok(target.stop(role, grace).await?),
            Running::External(target) => target.stop(role, grace),
        }
    }

    pub async fn pause(&mut self, role: Role) -> Result<(), TargetError> {
        match &mut self.running {
            Running::Local(target) => target.pause(role),
            Running::Containers(target) => Ok(target.pause(role).await?),
            Running::External(target) => target.pause(role),
        }
    }

    pub async fn resume(&mut self, role: Role) -> Result<(), TargetError> {
        match &mut self.running {
            Running::Local(target) => target.resume(role),
            Running::Containers(target) => Ok(target.resume(role).await?),
            Running::External(target) => target.resume(role),
        }
    }

    /// Starts a stopped or killed service again and waits until it is ready. A broker that keeps
    /// nothing across a restart gets the run's topics created again, so the run can go on.
    pub async fn restart(&mut self, role: Role) -> Result<Duration, TargetError> {
        let ready_after = match &mut self.running {
            Running::Local(target) => target.restart(role).await?,
            Running::Containers(target) => target.restart(role).await?,
            Running::External(target) => target.restart(role)?,
        };
        if role == Role::Broker && !self.capabilities().broker_keeps_data {
            let topics: Vec<(&str, u32)> = self
                .topics
                .iter()
                .map(|(name, partitions)| (name.as_str(), *partitions))
                .collect();
            kafka::create_topics(
                &self.endpoints().kafka,
                &topics,
                self.kafka_replication_factor(),
                TOPICS_AFTER_RESTART_WAIT,
            )
            .await
            .map_err(TargetError::TopicsAfterRestart)?;
        }
        Ok(ready_after)
    }

    pub fn set_network(
        &mut self,
        role: Role,
        condition: NetworkCondition,
    ) -> Result<(), TargetError> {
        match &mut self.running {
            Running::Local(target) => target.set_network(role, condition),
            Running::Containers(target) => Ok(target.set_network(role, condition)?),
            Running::External(target) => target.set_network(role, condition),
        }
    }

    /// Stops everything (containers are removed; local processes are stopped on drop).
    pub async fn shutdown(self) {
        match self.running {
            Running::Local(target) => drop(target),
            Running::Containers(target) => target.remove().await,
            Running::External(target) => target.shutdown(),
        }
    }
}
