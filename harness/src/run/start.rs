//! Choosing and starting the run's target: the default choice, the local processes, the containers or the external clusters.

use super::{RunError, RunOptions};
use crate::Scenario;
use crate::targets::containers::{docker_ping, local_installed};
use crate::targets::{
    ContainersTarget, ExternalOptions, ExternalTarget, LocalTarget, Target, TargetError, TargetKind,
};

/// Picks the target: the one asked for, else the default; says which and why on stderr.
/// `None`: no real target can run here (no Docker, no local services); the reason was said.
pub(super) async fn choose_target(options: &RunOptions) -> Result<Option<TargetKind>, RunError> {
    Ok(Some(match options.target {
        Some(kind) => {
            if let Some(why) = &options.target_reason {
                eprintln!("roadtest: target {kind}: {why}");
            }
            kind
        }
        None => {
            let choice = tokio::task::spawn_blocking(|| {
                crate::targets::containers::choose_target(None, docker_ping, local_installed())
            })
            .await
            .map_err(|e| RunError::Producer(e.to_string()))?;
            let (kind, why) = match choice {
                Ok(choice) => choice,
                Err(error) => {
                    eprintln!(
                        "roadtest: target sim: {error}; running the deterministic simulation \
                         instead"
                    );
                    return Ok(None);
                }
            };
            eprintln!("roadtest: target {kind}: {why}");
            kind
        }
    }))
}

/// Starts the target of `kind` with the scenario's settings, its services' folder in the run's.
pub(super) async fn start_target(
    kind: TargetKind,
    scenario: &Scenario,
    options: &RunOptions,
) -> Result<Target, RunError> {
    let target: Target = match kind {
        TargetKind::Local => {
            let mut local = options.local.clone();
            local.work_dir = Some(options.out_dir.join("services"));
            local.keep_work_dir = true;
            local.commitlog_sync = scenario.pipeline.cassandra_commitlog_sync;
            local.seed = scenario.seed;
            eprintln!("roadtest: starting the local services...");
            LocalTarget::start(local).await?.into()
        }
        TargetKind::External => {
            let Some(clusters) = options.external.clone() else {
                return Err(RunError::TargetChoice(
                    "--target external needs --kafka-bootstrap and --cql-contact".into(),
                ));
            };
            eprintln!(
                "roadtest: connecting to Kafka at {} and Cassandra at {} (external target)...",
                clusters.kafka.bootstrap,
                clusters.cql.address()
            );
            ExternalTarget::start(ExternalOptions {
                clusters,
                roadtest_binary: options.local.roadtest_binary.clone(),
                work_dir: options.out_dir.join("services"),
                proxied: crate::targets::external::network_fault_roles(scenario),
                seed: scenario.seed,
            })
            .await?
            .into()
        }
        TargetKind::Containers => {
            let mut containers = options.containers.clone();
            containers.roadtest_binary = options.local.roadtest_binary.clone();
            containers.work_dir = Some(options.out_dir.join("services"));
            containers.keep_work_dir = true;
            containers.commitlog_sync = scenario.pipeline.cassandra_commitlog_sync;
            containers.seed = scenario.seed;
            eprintln!("roadtest: starting Kafka and the database in containers...");
            ContainersTarget::start(containers)
                .await
                .map_err(TargetError::from)?
                .into()
        }
    };
    Ok(target)
}
