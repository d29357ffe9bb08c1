//! Choosing and starting the run's target: the default choice, the local processes, the containers or the external clusters.

use super::{RunError, RunOptions};
use crate::Scenario;
use crate::scenario::Sink;
use crate::targets::containers::{docker_ping, images_available, local_installed};
use crate::targets::{StartSettings, Target, TargetKind};

/// Picks the target: the one asked for, else the default (for a run into `sink`); says which and
/// why on stderr. `None`: no real target can run here (no Docker, no local services); the reason
/// was said.
pub(super) async fn choose_target(
    options: &RunOptions,
    sink: Sink,
) -> Result<Option<TargetKind>, RunError> {
    Ok(Some(match options.target {
        Some(kind) => {
            if let Some(why) = &options.target_reason {
                eprintln!("roadtest: target {kind}: {why}");
            }
            kind
        }
        None => {
            let choice = tokio::task::spawn_blocking(move || {
                crate::targets::containers::choose_target(
                    None,
                    docker_ping,
                    || images_available(sink),
                    local_installed(),
                )
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
    let settings = StartSettings {
        scenario,
        services_dir: options.out_dir.join("services"),
        local: &options.local,
        containers: &options.containers,
        external: options.external.as_ref(),
    };
    Ok(Target::start(kind, settings).await?)
}
