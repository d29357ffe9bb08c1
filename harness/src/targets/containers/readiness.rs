//! Starting a container and knowing it is ready: pull if missing, start through testcontainers, ready line, client probe, each under a deadline.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use testcontainers::bollard::Docker;
use testcontainers::bollard::errors::Error as DockerError;
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt, TestcontainersError};

use super::docker::{self, DOCKER_CALL_TIMEOUT, LogFollower, bounded};
use super::options::{ContainersOptions, ImageRef};
use super::spec::ContainerSpec;
use super::{ContainersError, Service};
use crate::clients::pg::{self, PgEndpoint};
use crate::clients::{ClientError, CqlConnection, KafkaConnection, cql, kafka};
use crate::targets::{Role, TargetError};

/// Bound on the client probe once the ready line was logged.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a restart checks whether the container died instead of getting ready.
const STATE_POLL: Duration = Duration::from_millis(500);

/// Pulls the image if missing, starts the container, waits for its ready line and its probe.
pub(super) async fn start_service(
    docker: &Docker,
    options: &ContainersOptions,
    dir: &Path,
    spec: ContainerSpec,
) -> Result<(Service, Duration), ContainersError> {
    let role = spec.role;
    let image = spec.image.to_string();
    let log = dir.join(format!("{}.log", role.name()));
    pull_if_missing(docker, role, &spec.image, options.pull_timeout).await?;
    let started = Instant::now();
    let consumer = docker::file_log_consumer(&log).map_err(|source| TargetError::WorkDir {
        path: log.clone(),
        source,
    })?;
    let request = spec
        .request(options.ready_timeout)
        .with_log_consumer(consumer);
    let start_error = |source: TestcontainersError| ContainersError::Start {
        role,
        image: image.clone(),
        source: Box::new(source),
        log: log.clone(),
        tail: crate::targets::process::log_tail(&log, 20),
    };
    // testcontainers bounds the wait for the ready line by the startup timeout; this bounds
    // creating and starting the container too.
    let container = tokio::time::timeout(
        options.ready_timeout + Duration::from_secs(30),
        request.start(),
    )
    .await
    .map_err(|_| start_error(TestcontainersError::other("no answer from Docker in time")))?
    .map_err(start_error)?;
    probe(role, spec.client_address, PROBE_TIMEOUT)
        .await
        .map_err(|error| ContainersError::NotReady {
            role,
            image: image.clone(),
            waited: started.elapsed(),
            problem: error.to_string(),
            log: log.clone(),
            tail: crate::targets::process::log_tail(&log, 20),
        })?;
    let ready_after = started.elapsed();
    Ok((
        Service {
            spec,
            container,
            log,
            follower: None,
        },
        ready_after,
    ))
}

/// Pulls `image` unless Docker has it, bounded by `timeout`.
pub(super) async fn pull_if_missing(
    docker: &Docker,
    role: Role,
    image: &ImageRef,
    timeout: Duration,
) -> Result<(), ContainersError> {
    let name = image.to_string();
    if bounded(DOCKER_CALL_TIMEOUT, docker.inspect_image(&name))
        .await
        .is_ok()
    {
        return Ok(());
    }
    tracing::info!(%image, "pulling the image (once; later runs reuse it)");
    let started = Instant::now();
    let pull = GenericImage::new(image.name.as_str(), image.tag.as_str()).pull_image();
    let pull_error = |problem: String| ContainersError::Pull {
        role,
        image: image.to_string(),
        waited: started.elapsed(),
        problem,
    };
    tokio::time::timeout(timeout, pull)
        .await
        .map_err(|_| pull_error("the pull did not finish in time".into()))?
        .map(|_| ())
        .map_err(|error| pull_error(error.to_string()))
}

/// Waits until the follower saw the ready line, failing early if the container stopped.
pub(super) async fn wait_for_ready_line(
    docker: &Docker,
    id: &str,
    follower: &mut LogFollower,
    deadline: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if follower.is_ready() {
            return Ok(());
        }
        let state = bounded(DOCKER_CALL_TIMEOUT, docker.inspect_container(id, None))
            .await
            .ok()
            .and_then(|inspect| inspect.state);
        if let Some(state) = state
            && state.running == Some(false)
        {
            return Err(format!(
                "the container exited (code {}{})",
                state
                    .exit_code
                    .map_or("?".to_string(), |code| code.to_string()),
                if state.oom_killed == Some(true) {
                    ", killed for lack of memory: raise its memory cap"
                } else {
                    ""
                }
            ));
        }
        let remaining = deadline.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err("its ready line was not logged".to_string());
        }
        let _ = tokio::time::timeout(remaining.min(STATE_POLL), follower.ready()).await;
    }
}

/// The client probe: Kafka answers a metadata request; PostgreSQL takes a login (it refuses one
/// while it starts or replays its WAL); a CQL database answers a query.
pub(super) async fn probe(
    role: Role,
    address: SocketAddr,
    deadline: Duration,
) -> Result<(), ClientError> {
    match role {
        Role::Broker => {
            kafka::wait_for_broker(&KafkaConnection::plaintext(address.to_string()), deadline).await
        }
        Role::Postgres => {
            let endpoint = PgEndpoint::new(crate::targets::postgres::url(address));
            pg::connect(&endpoint, deadline).await.map(drop)
        }
        _ => {
            let session = cql::connect(&CqlConnection::plain(address), deadline).await?;
            session
                .query_unpaged("SELECT release_version FROM system.local", ())
                .await
                .map_err(|error| ClientError::Cql {
                    address: address.to_string(),
                    what: "the readiness query".to_string(),
                    source: error.into(),
                })?;
            Ok(())
        }
    }
}

/// Starts `role`'s stopped or killed container again (a start of one that runs, Docker's 304, is
/// not an error) and returns the Unix second from which its new log lines count.
pub(super) async fn start_again(
    docker: &Docker,
    role: Role,
    id: &str,
) -> Result<i64, ContainersError> {
    let since = docker::unix_now_s();
    match bounded(DOCKER_CALL_TIMEOUT, docker.start_container(id, None)).await {
        Err(error) if !is_not_modified(&error) => Err(docker_error(role, "start", error)),
        _ => Ok(since),
    }
}

/// Docker answers 304 to a start of a running container and to a stop of a stopped one.
pub(super) fn is_not_modified(error: &DockerError) -> bool {
    matches!(
        error,
        DockerError::DockerResponseServerError {
            status_code: 304,
            ..
        }
    )
}

/// Docker answers 409 to a kill of a container that is not running, 304 to a stop of one.
pub(super) fn is_not_running(error: &DockerError) -> bool {
    is_not_modified(error)
        || matches!(
            error,
            DockerError::DockerResponseServerError {
                status_code: 409,
                ..
            }
        )
}

pub(super) fn docker_error(
    role: Role,
    action: &'static str,
    error: DockerError,
) -> ContainersError {
    ContainersError::Docker {
        role,
        action,
        source: Box::new(error),
    }
}
