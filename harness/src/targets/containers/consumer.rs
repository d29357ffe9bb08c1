//! The consumer under test as a container of the user's image (`[pipeline.consumer] image`): on the host's network, so it reaches the fault proxies on 127.0.0.1 as a program on the host would, with roadtest's environment contract; its output in `DIR/consumer.log`, its exit seen through Docker's wait.
//!
//! Kill, stop, pause and resume go through the same Docker calls as the services'
//! ([`super::ContainersTarget`]); a restart is `docker start` of the same container, with no
//! ready line to wait for: the run sees the consumer back when it rejoins its group.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use testcontainers::bollard::Docker;
use testcontainers::bollard::errors::Error as DockerError;
use testcontainers::bollard::query_parameters::WaitContainerOptionsBuilder;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt, TestcontainersError};
use tokio::task::JoinHandle;

use super::ContainersError;
use super::docker::{self, DOCKER_CALL_TIMEOUT, LogFollower, bounded};
use super::options::{ContainersOptions, ImageRef};
use super::readiness::{pull_if_missing, start_again};
use crate::targets::Role;
use crate::targets::consumer::ImageConsumer;

/// The Docker network the consumer container joins: the host's own.
pub const CONSUMER_NETWORK: &str = "host";

/// The consumer's container: started, followed, started again.
#[derive(Debug)]
pub struct ContainerConsumer {
    docker: Docker,
    container: ContainerAsync<GenericImage>,
    log: PathBuf,
    /// Appends the container's output to `log` (a new one after each start).
    follower: LogFollower,
    /// Waits for the current start to end and keeps its exit code.
    waiter: ExitWaiter,
    /// The host pid of the container's first process, while it runs.
    pid: Option<u32>,
}

impl ContainerConsumer {
    /// Pulls the image if missing (bounded like the services'), then creates and starts the
    /// container; it is not waited for (the run waits until the consumer joins its group).
    pub async fn start(
        docker: &Docker,
        options: &ContainersOptions,
        dir: &Path,
        launch: ImageConsumer,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<ContainerConsumer, ContainersError> {
        let role = Role::Consumer;
        let image: ImageRef = launch
            .image
            .parse()
            .map_err(|problem| ContainersError::Options {
                key: "pipeline.consumer.image",
                problem,
            })?;
        pull_if_missing(docker, role, &image, options.pull_timeout).await?;
        let log = dir.join("consumer.log");
        let run = labels
            .get(super::spec::LABEL_RUN)
            .cloned()
            .unwrap_or_default();
        let mut request = GenericImage::new(image.name.as_str(), image.tag.as_str())
            .with_container_name(format!("roadtest-{run}-consumer"))
            .with_labels(labels)
            .with_network(CONSUMER_NETWORK);
        for (name, value) in &launch.env {
            request = request.with_env_var(name.to_string_lossy(), value.to_string_lossy());
        }
        let since = docker::unix_now_s();
        let start_error = |source: TestcontainersError| ContainersError::Start {
            role,
            image: image.to_string(),
            source: Box::new(source),
            log: log.clone(),
            tail: crate::targets::process::log_tail(&log, 20),
        };
        let container = tokio::time::timeout(DOCKER_CALL_TIMEOUT, request.start())
            .await
            .map_err(|_| start_error(TestcontainersError::other("no answer from Docker in time")))?
            .map_err(start_error)?;
        let id = container.id().to_string();
        let mut consumer = ContainerConsumer {
            docker: docker.clone(),
            follower: LogFollower::spawn(docker.clone(), id.clone(), since, log.clone(), None),
            waiter: ExitWaiter::spawn(docker.clone(), id),
            container,
            log,
            pid: None,
        };
        consumer.pid = consumer.running_pid().await;
        Ok(consumer)
    }

    /// The container's id (for the Docker calls every container shares).
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// The host pid of its first process while the current start has not exited.
    pub fn pid(&self) -> Option<u32> {
        self.pid.filter(|_| self.waiter.exit_code().is_none())
    }

    /// How the current start ended, once it has: its exit code as a process status (137 after
    /// a kill, 143 after SIGTERM to a program that does not handle it).
    pub fn exited(&self) -> Option<ExitStatus> {
        let code = self.waiter.exit_code()?;
        Some(ExitStatus::from_raw(((code & 0xff) as i32) << 8))
    }

    /// `docker start` of the same container, its output followed from now on.
    pub async fn restart(&mut self) -> Result<(), ContainersError> {
        let id = self.id().to_string();
        let since = start_again(&self.docker, Role::Consumer, &id).await?;
        self.follower = LogFollower::spawn(
            self.docker.clone(),
            id.clone(),
            since,
            self.log.clone(),
            None,
        );
        self.waiter = ExitWaiter::spawn(self.docker.clone(), id);
        self.pid = self.running_pid().await;
        Ok(())
    }

    /// Removes the container now (it is also removed when dropped inside a tokio runtime).
    pub async fn remove(self) {
        if let Err(error) = self.container.rm().await {
            tracing::warn!(%error, "cannot remove the consumer's container");
        }
    }

    async fn running_pid(&self) -> Option<u32> {
        let inspect = bounded(
            DOCKER_CALL_TIMEOUT,
            self.docker.inspect_container(self.id(), None),
        );
        let state = inspect.await.ok()?.state?;
        let pid = state.pid.filter(|_| state.running == Some(true))?;
        u32::try_from(pid).ok().filter(|pid| *pid > 0)
    }
}

/// Docker's wait on one start of a container: the exit code once it has stopped.
#[derive(Debug)]
struct ExitWaiter {
    code: Arc<Mutex<Option<i64>>>,
    task: JoinHandle<()>,
}

impl ExitWaiter {
    fn spawn(docker: Docker, id: String) -> ExitWaiter {
        let code = Arc::new(Mutex::new(None));
        let task = {
            let code = Arc::clone(&code);
            tokio::spawn(async move {
                let options = WaitContainerOptionsBuilder::new()
                    .condition("not-running")
                    .build();
                let mut waited = docker.wait_container(&id, Some(options));
                let exit = match waited.next().await {
                    Some(Ok(response)) => response.status_code,
                    Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
                    // The daemon went away or the container was removed: not an exit to report.
                    Some(Err(_)) | None => return,
                };
                *code.lock().unwrap_or_else(PoisonError::into_inner) = Some(exit);
            })
        };
        ExitWaiter { code, task }
    }

    fn exit_code(&self) -> Option<i64> {
        *self.code.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ExitWaiter {
    fn drop(&mut self) {
        self.task.abort();
    }
}
