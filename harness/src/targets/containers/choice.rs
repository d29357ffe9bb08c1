//! Which target a run uses: containers when a Docker daemon answers, else the local services, else an error saying what to do.
//!
//! [`choose_target`] is pure: it gets the Docker ping and the local install state from its caller,
//! so every branch is tested with fakes. [`docker_ping`] is the real ping: one bollard `/_ping`
//! under a timeout to the endpoint testcontainers would use ([`docker_endpoint`]: `DOCKER_HOST`,
//! else the first Docker socket that exists); with no daemon it fails in milliseconds.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testcontainers::bollard::Docker;

use super::options::ContainersOptions;
use super::readiness::pull_if_missing;
use crate::scenario::Sink;
use crate::targets::Role;

/// How long the Docker daemon has to answer the ping that picks the default target.
pub const DOCKER_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The socket Docker clients use when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_SOCKET: &str = "unix:///var/run/docker.sock";

/// Where a run's pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum TargetKind {
    /// Real Kafka and Cassandra (or ScyllaDB) in Docker containers started by testcontainers.
    Containers,
    /// Tansu, Cassandra 2.1 and the CQL bridge as child processes (`roadtest services install`).
    Local,
    /// Existing Kafka and Cassandra clusters (`--kafka-bootstrap`, `--cql-contact`).
    External,
}

impl TargetKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Containers => "containers",
            TargetKind::Local => "local",
            TargetKind::External => "external",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// No target can be used; each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetChoiceError {
    /// `--target containers` and the daemon did not answer.
    #[error(
        "--target containers needs a Docker daemon, and none answered: {reason}. Start Docker \
         (or point DOCKER_HOST at its socket, e.g. unix:///run/user/1000/docker.sock for rootless \
         Docker), or run on this host's services with --target local after `roadtest services install`"
    )]
    DockerUnavailable { reason: String },
    /// `--target local` and the services are not installed.
    #[error(
        "--target local needs the local services, and they are not installed (no bin/tansu under \
         ROADTEST_HOME, default ~/.cache/roadtest); install them with `roadtest services install`, or \
         start Docker and use --target containers"
    )]
    LocalNotInstalled,
    /// No `--target`, a daemon, but an image that cannot be had, and no local services.
    #[error(
        "no target can run the pipeline: Docker answered, but {reason}; and the local services \
         are not installed (no bin/tansu under ROADTEST_HOME, default ~/.cache/roadtest): run \
         `roadtest services install` for --target local"
    )]
    NoImages { reason: String },
    /// No `--target`, no daemon and no local services.
    #[error(
        "no target can run the pipeline: no Docker daemon answered ({docker}), and the local \
         services are not installed (no bin/tansu under ROADTEST_HOME, default ~/.cache/roadtest). \
         Start Docker (or set DOCKER_HOST) for --target containers, or run `roadtest services install` \
         for --target local"
    )]
    NothingAvailable { docker: String },
}

/// Picks the target of a run and says why.
///
/// - `requested` = `Some(Containers)`: containers if `docker_ping` succeeds, else an error naming
///   what the ping tried.
/// - `requested` = `Some(Local)`: local if installed (Docker is not asked), else an error.
/// - `requested` = `Some(External)`: external (its flags are checked by the caller).
/// - `requested` = `None`: containers when the daemon answers the ping (given
///   [`DOCKER_PING_TIMEOUT`]) and `images` says the containers' images are here (or pulled), else
///   local when installed, else an error naming what is missing.
pub fn choose_target(
    requested: Option<TargetKind>,
    docker_ping: impl FnOnce(Duration) -> Result<(), String>,
    images: impl FnOnce() -> Result<(), String>,
    local_installed: bool,
) -> Result<(TargetKind, String), TargetChoiceError> {
    match requested {
        Some(TargetKind::External) => Ok((
            TargetKind::External,
            "--target external: the clusters at --kafka-bootstrap and --cql-contact".to_string(),
        )),
        Some(TargetKind::Local) if local_installed => Ok((
            TargetKind::Local,
            "--target local: the services installed on this host".to_string(),
        )),
        Some(TargetKind::Local) => Err(TargetChoiceError::LocalNotInstalled),
        Some(TargetKind::Containers) => match docker_ping(DOCKER_PING_TIMEOUT) {
            Ok(()) => Ok((
                TargetKind::Containers,
                "--target containers: the Docker daemon answered".to_string(),
            )),
            Err(reason) => Err(TargetChoiceError::DockerUnavailable { reason }),
        },
        None => match docker_ping(DOCKER_PING_TIMEOUT).map(|()| images()) {
            Ok(Ok(())) => Ok((
                TargetKind::Containers,
                "default: a Docker daemon answered and the images are here, so the services run \
                 in containers"
                    .to_string(),
            )),
            Ok(Err(reason)) if local_installed => Ok((
                TargetKind::Local,
                format!("default: Docker answered, but {reason}; the local services are installed"),
            )),
            Ok(Err(reason)) => Err(TargetChoiceError::NoImages { reason }),
            Err(reason) if local_installed => Ok((
                TargetKind::Local,
                format!(
                    "default: no Docker daemon answered ({reason}); the local services are installed"
                ),
            )),
            Err(docker) => Err(TargetChoiceError::NothingAvailable { docker }),
        },
    }
}

/// Whether the local target's services are installed (`roadtest_home()/bin/tansu` exists).
pub fn local_installed() -> bool {
    crate::targets::local::roadtest_home()
        .join("bin/tansu")
        .exists()
}

/// The Docker endpoint testcontainers will use, resolved the same way: `DOCKER_HOST`, else the
/// first socket that exists of `/var/run/docker.sock`, `$XDG_RUNTIME_DIR/.docker/run/docker.sock`,
/// `~/.docker/run/docker.sock`, `~/.docker/desktop/docker.sock`, else [`DEFAULT_DOCKER_SOCKET`].
pub fn docker_endpoint() -> String {
    endpoint_from(
        std::env::var("DOCKER_HOST").ok(),
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
        |path| path.exists(),
    )
}

/// [`docker_endpoint`] with its inputs given (for tests).
pub fn endpoint_from(
    docker_host: Option<String>,
    runtime_dir: Option<PathBuf>,
    home: Option<PathBuf>,
    exists: impl Fn(&Path) -> bool,
) -> String {
    if let Some(host) = docker_host.filter(|host| !host.is_empty()) {
        return host;
    }
    let candidates = [
        Some(PathBuf::from("/var/run/docker.sock")),
        runtime_dir.map(|dir| dir.join(".docker/run/docker.sock")),
        home.as_ref()
            .map(|home| home.join(".docker/run/docker.sock")),
        home.map(|home| home.join(".docker/desktop/docker.sock")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|path| exists(path))
        .map_or_else(
            || DEFAULT_DOCKER_SOCKET.to_string(),
            |path| format!("unix://{}", path.display()),
        )
}

/// Pings the Docker daemon at [`docker_endpoint`] within `timeout`. Blocking; callable from
/// anywhere, inside a tokio runtime or not.
pub fn docker_ping(timeout: Duration) -> Result<(), String> {
    let endpoint = docker_endpoint();
    on_own_runtime("roadtest-docker-ping", async move {
        ping_endpoint(&endpoint, timeout).await
    })
}

/// Whether the containers target's images ([`ContainersOptions::from_env`]) for a run into
/// `sink` are on this host, pulling a missing one (bounded by the pull timeout); the error names
/// the image and what to do. Blocking, like [`docker_ping`].
pub fn images_available(sink: Sink) -> Result<(), String> {
    let mut options = ContainersOptions::from_env().map_err(|error| error.to_string())?;
    options.apply_sink(sink);
    let endpoint = docker_endpoint();
    on_own_runtime("roadtest-docker-images", async move {
        let docker = connect(&endpoint).map_err(|e| e.to_string())?;
        for (role, image) in [
            (Role::Broker, &options.kafka_image),
            (options.database.role(), options.database_image()),
        ] {
            pull_if_missing(&docker, role, image, options.pull_timeout)
                .await
                .map_err(|error| error.to_string())?;
        }
        Ok(())
    })
}

/// Runs `work` on a thread and a runtime of its own and waits for it, so that a blocking caller
/// may be inside a tokio runtime or not.
fn on_own_runtime(
    name: &str,
    work: impl Future<Output = Result<(), String>> + Send + 'static,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime to ask Docker: {e}"))?;
            runtime.block_on(work)
        })
        .map_err(|e| format!("cannot start a thread to ask Docker: {e}"))?
        .join()
        .map_err(|_| "the question to Docker panicked".to_string())?
}

/// Pings the daemon at `endpoint` (`unix:///path`, `tcp://host:port`, `http://host:port`) within
/// `timeout`; the error names the endpoint and whether it came from `DOCKER_HOST`.
pub async fn ping_endpoint(endpoint: &str, timeout: Duration) -> Result<(), String> {
    let origin = if std::env::var_os("DOCKER_HOST").is_some_and(|host| !host.is_empty()) {
        "from DOCKER_HOST"
    } else {
        "DOCKER_HOST is not set"
    };
    let fail = |what: String| format!("no Docker daemon at {endpoint} ({origin}): {what}");
    let docker = connect(endpoint).map_err(|e| fail(e.to_string()))?;
    match tokio::time::timeout(timeout, docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(fail(error.to_string())),
        Err(_) => Err(fail(format!("no answer to a ping within {timeout:?}"))),
    }
}

/// A bollard client for `endpoint` (bollard's `Docker::connect_with_host`: unix, tcp, http).
/// A missing socket fails here at once (`SocketNotFoundError`).
pub fn connect(endpoint: &str) -> Result<Docker, testcontainers::bollard::errors::Error> {
    Docker::connect_with_host(endpoint)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use super::*;

    // ----- target choice -------------------------------------------------------------------------

    fn docker_up(timeout: Duration) -> Result<(), String> {
        assert_eq!(timeout, Duration::from_secs(2), "the ping gets 2 s");
        Ok(())
    }

    fn docker_down(timeout: Duration) -> Result<(), String> {
        assert_eq!(timeout, DOCKER_PING_TIMEOUT);
        Err("no Docker daemon at unix:///var/run/docker.sock (DOCKER_HOST is not set): Socket not found: /var/run/docker.sock".into())
    }

    fn never_pinged(_: Duration) -> Result<(), String> {
        panic!("--target local must not ask Docker")
    }

    fn images_here() -> Result<(), String> {
        Ok(())
    }

    fn images_missing() -> Result<(), String> {
        Err(
            "the broker image apache/kafka-native:3.8.0 is not on this host and could not be \
             pulled: no registry"
                .into(),
        )
    }

    fn never_asked() -> Result<(), String> {
        panic!("the images are asked about only when Docker answers and no target was requested")
    }

    #[test]
    fn default_is_containers_when_docker_answers() {
        for local_installed in [false, true] {
            let (kind, why) =
                choose_target(None, docker_up, images_here, local_installed).expect("containers");
            assert_eq!(kind, TargetKind::Containers);
            assert!(why.contains("Docker daemon answered"), "{why}");
        }
    }

    #[test]
    fn default_falls_back_to_local_when_an_image_cannot_be_had_and_says_why() {
        let (kind, why) = choose_target(None, docker_up, images_missing, true).expect("local");
        assert_eq!(kind, TargetKind::Local);
        assert!(
            why.contains("Docker answered") && why.contains("apache/kafka-native:3.8.0"),
            "{why}"
        );
        let error = choose_target(None, docker_up, images_missing, false).unwrap_err();
        assert!(matches!(error, TargetChoiceError::NoImages { .. }));
        let message = error.to_string();
        for needed in ["apache/kafka-native:3.8.0", "roadtest services install"] {
            assert!(message.contains(needed), "{needed} missing from: {message}");
        }
        // Asked for by name, the images are not checked here: starting names the missing one.
        let (kind, _) =
            choose_target(Some(TargetKind::Containers), docker_up, never_asked, true).expect("ok");
        assert_eq!(kind, TargetKind::Containers);
    }

    #[test]
    fn default_falls_back_to_local_and_says_why() {
        let (kind, why) = choose_target(None, docker_down, never_asked, true).expect("local");
        assert_eq!(kind, TargetKind::Local);
        assert!(
            why.contains("/var/run/docker.sock") && why.contains("installed"),
            "{why}"
        );
    }

    #[test]
    fn default_without_docker_or_local_services_is_an_error_saying_what_to_do() {
        let error = choose_target(None, docker_down, never_asked, false).unwrap_err();
        assert!(matches!(error, TargetChoiceError::NothingAvailable { .. }));
        let message = error.to_string();
        for needed in [
            "/var/run/docker.sock",
            "DOCKER_HOST",
            "roadtest services install",
            "--target local",
        ] {
            assert!(message.contains(needed), "{needed} missing from: {message}");
        }
    }

    #[test]
    fn requested_containers_needs_docker() {
        let (kind, _) =
            choose_target(Some(TargetKind::Containers), docker_up, never_asked, false).expect("ok");
        assert_eq!(kind, TargetKind::Containers);
        let error = choose_target(Some(TargetKind::Containers), docker_down, never_asked, true)
            .unwrap_err();
        assert!(matches!(error, TargetChoiceError::DockerUnavailable { .. }));
        let message = error.to_string();
        for needed in [
            "--target containers",
            "/var/run/docker.sock",
            "DOCKER_HOST",
            "Start Docker",
            "--target local",
        ] {
            assert!(message.contains(needed), "{needed} missing from: {message}");
        }
    }

    #[test]
    fn requested_local_never_pings_docker() {
        let (kind, why) =
            choose_target(Some(TargetKind::Local), never_pinged, never_asked, true).expect("local");
        assert_eq!(kind, TargetKind::Local);
        assert!(why.contains("--target local"), "{why}");
        let error =
            choose_target(Some(TargetKind::Local), never_pinged, never_asked, false).unwrap_err();
        assert_eq!(error, TargetChoiceError::LocalNotInstalled);
        assert!(error.to_string().contains("roadtest services install"));
    }

    #[test]
    fn requested_external_needs_neither_docker_nor_local_services() {
        let (kind, why) =
            choose_target(Some(TargetKind::External), never_pinged, never_asked, false)
                .expect("external");
        assert_eq!(kind, TargetKind::External);
        assert!(why.contains("--target external"), "{why}");
    }

    #[test]
    fn target_kinds_have_their_command_line_names() {
        use clap::ValueEnum;
        assert_eq!(TargetKind::Containers.to_string(), "containers");
        assert_eq!(TargetKind::Local.to_string(), "local");
        assert_eq!(
            TargetKind::from_str("containers", false),
            Ok(TargetKind::Containers)
        );
        assert_eq!(TargetKind::from_str("local", false), Ok(TargetKind::Local));
        assert_eq!(TargetKind::External.to_string(), "external");
        assert_eq!(
            TargetKind::from_str("external", false),
            Ok(TargetKind::External)
        );
        assert!(TargetKind::from_str("sim", false).is_err());
    }

    #[test]
    fn the_endpoint_is_resolved_like_testcontainers_does() {
        let none = |_: &Path| false;
        assert_eq!(endpoint_from(None, None, None, none), DEFAULT_DOCKER_SOCKET);
        assert_eq!(
            endpoint_from(Some("tcp://127.0.0.1:2375".into()), None, None, |_| true),
            "tcp://127.0.0.1:2375"
        );
        assert_eq!(
            endpoint_from(Some(String::new()), None, None, |path| path
                == Path::new("/var/run/docker.sock")),
            "unix:///var/run/docker.sock"
        );
        let home = PathBuf::from("/home/dev");
        assert_eq!(
            endpoint_from(
                None,
                Some("/run/user/1000".into()),
                Some(home.clone()),
                |path| { path == Path::new("/home/dev/.docker/desktop/docker.sock") }
            ),
            "unix:///home/dev/.docker/desktop/docker.sock"
        );
        assert_eq!(
            endpoint_from(None, Some("/run/user/1000".into()), Some(home), |path| {
                path.starts_with("/run/user/1000") || path.starts_with("/home/dev")
            }),
            "unix:///run/user/1000/.docker/run/docker.sock"
        );
    }

    // ----- the real ping -------------------------------------------------------------------------

    #[tokio::test]
    async fn a_missing_socket_is_reported_at_once_and_named() {
        let endpoint = "unix:///nonexistent-roadtest/docker.sock";
        let started = Instant::now();
        let error = ping_endpoint(endpoint, DOCKER_PING_TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "took {:?}",
            started.elapsed()
        );
        assert!(error.contains(endpoint), "{error}");
        assert!(error.contains("Socket not found"), "{error}");
    }

    #[tokio::test]
    async fn a_daemon_that_never_answers_times_out() {
        let dir = std::env::temp_dir().join(format!("roadtest-ping-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("silent.sock");
        let _ = std::fs::remove_file(&socket);
        // Connections land in the backlog and are never answered.
        let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let endpoint = format!("unix://{}", socket.display());
        let started = Instant::now();
        let error = ping_endpoint(&endpoint, Duration::from_millis(300))
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
            "took {elapsed:?}"
        );
        assert!(
            error.contains(&endpoint) && error.contains("no answer"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// On this machine (no daemon) the real ping fails fast, naming the socket; where a daemon
    /// runs, it answers within the timeout.
    #[test]
    fn a_ping_to_a_socket_that_does_not_exist_fails_at_once_naming_it() {
        let endpoint = "unix:///nonexistent/roadtest/docker.sock";
        let started = Instant::now();
        let result = on_own_runtime("test-ping", async move {
            ping_endpoint(endpoint, DOCKER_PING_TIMEOUT).await
        });
        let elapsed = started.elapsed();
        let error = result.expect_err("no socket, no daemon");
        assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
        assert!(error.contains(endpoint), "{error}");
    }
}
