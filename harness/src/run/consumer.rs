//! The consumer under test: how the run launches it (the reference consumer, or a program of the user's own with roadtest's environment contract), how it sees that the consumer has joined, and how it follows what the consumer wrote.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::alerts::AlertWatch;
use super::database::Database;
use super::watch::consumer_error;
use super::{CONSUMER_READY, RunError, RunNames};
use crate::clients::kafka::GroupWatch;
use crate::clients::security::{CqlSecurityArgs, KafkaSecurityArgs};
use crate::ingest::service::{IngestArgs, METRICS_LISTEN_DEFAULT};
use crate::ingest::stats::ConsumerReport;
use crate::scenario::{ConsumerSettings, Scenario};
use crate::table::TableLayout;
use crate::targets::{ConsumerLaunch, Endpoints, ImageConsumer, OwnConsumer, Target, TargetKind};

/// How often the rows of a consumer of the user's own are counted, and how long one count may take.
const COUNT_EVERY: Duration = Duration::from_millis(500);
const COUNT_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a wait at the consumer's start looks whether it has exited.
const EXIT_CHECK_EVERY: Duration = Duration::from_millis(200);

/// A program of the user's own that cannot be run: found before anything is created.
pub(super) fn resolve_program(scenario: &Scenario, scenario_path: &Path) -> Result<(), RunError> {
    let Some(program) = scenario.pipeline.consumer.command.first() else {
        return Ok(());
    };
    find_program(program, &scenario_folder(scenario_path))
        .map(|_| ())
        .map_err(|problem| RunError::OwnConsumer {
            file: scenario_path.to_path_buf(),
            key: "command",
            problem,
        })
}

/// A consumer image runs as a container beside the services: on the containers target only.
pub(super) fn check_image_target(
    scenario: &Scenario,
    scenario_path: &Path,
    target: TargetKind,
) -> Result<(), RunError> {
    let image = &scenario.pipeline.consumer.image;
    if image.is_empty() || target == TargetKind::Containers {
        return Ok(());
    }
    Err(RunError::OwnConsumer {
        file: scenario_path.to_path_buf(),
        key: "image",
        problem: format!(
            "{image} runs the consumer as a Docker container beside the services, which only \
             the containers target does, and this run's target is {}; use --target containers \
             (a Docker daemon: `ci/docker up`; roadtest's images: `ci/images build`), or give \
             the consumer as a program with `command`",
            target.name()
        ),
    })
}

/// The folder a consumer of the user's own runs in: the scenario's.
fn scenario_folder(scenario_path: &Path) -> PathBuf {
    let folder = scenario_path.parent().unwrap_or(Path::new("."));
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf())
}

/// The program to run: a path with a `/` relative to `folder`, else the first executable of
/// that name in PATH.
fn find_program(program: &str, folder: &Path) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = folder.join(program);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "program `{program}` is not an executable file ({} does not exist or is not \
                 executable; a path with a `/` is relative to the scenario's folder)",
                path.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            format!(
                "program `{program}` was not found in PATH; install it, or give its path \
                 relative to the scenario's folder (`./{program}`)"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How the run starts the scenario's consumer on the target (`None`: it runs elsewhere).
pub(super) fn launch(
    scenario: &Scenario,
    scenario_path: &Path,
    endpoints: &Endpoints,
    names: &RunNames,
    stats_dir: &Path,
    alerts: Option<&AlertWatch>,
    metrics_listen: Option<std::net::SocketAddr>,
) -> Result<Option<ConsumerLaunch>, RunError> {
    let consumer = &scenario.pipeline.consumer;
    if !consumer.managed {
        return Ok(None);
    }
    if consumer.is_reference() {
        let mut args = consumer_args(endpoints, names, consumer, stats_dir);
        args.metrics_listen = metrics_listen.unwrap_or(args.metrics_listen);
        // It evaluates and counts the rules either way; it posts unless alerting of your own
        // (Prometheus rules on that count, through Alertmanager, say) is to post instead.
        if let Some(alerts) = alerts {
            args.alert_rules = Some(alerts.rules_file.clone());
            args.alert_webhook = consumer.alerter.then(|| alerts.url.clone());
        }
        return Ok(Some(ConsumerLaunch::reference(args.to_args())));
    }
    let mut env = contract_env(scenario, endpoints, names);
    if let Some(alerts) = alerts {
        env.push(("ROADTEST_ALERT_WEBHOOK".into(), alerts.url.clone().into()));
    }
    let Some((program, args)) = consumer.command.split_first() else {
        let image = ImageConsumer {
            image: consumer.image.clone(),
            env,
        };
        return Ok(Some(ConsumerLaunch::Image(image)));
    };
    let folder = scenario_folder(scenario_path);
    let program = find_program(program, &folder).map_err(|problem| RunError::OwnConsumer {
        file: scenario_path.to_path_buf(),
        key: "command",
        problem,
    })?;
    Ok(Some(ConsumerLaunch::Own(OwnConsumer {
        program,
        args: args.iter().map(OsString::from).collect(),
        dir: folder,
        env,
    })))
}

/// roadtest's environment contract with a consumer of the user's own (README, "Your own
/// consumer"), then the scenario's `env`.
fn contract_env(
    scenario: &Scenario,
    endpoints: &Endpoints,
    names: &RunNames,
) -> Vec<(OsString, OsString)> {
    let consumer = &scenario.pipeline.consumer;
    let contact = endpoints
        .cql
        .contact_points
        .first()
        .cloned()
        .unwrap_or_default();
    let mut env: Vec<(OsString, OsString)> = [
        (
            "ROADTEST_KAFKA_BOOTSTRAP",
            endpoints.kafka.bootstrap.clone(),
        ),
        ("ROADTEST_TOPIC", names.topic.clone()),
        ("ROADTEST_GROUP", group_name(names)),
        ("ROADTEST_CQL_CONTACT", contact),
        ("ROADTEST_KEYSPACE", names.keyspace.clone()),
        ("ROADTEST_TABLE", scenario.pipeline.table.name.clone()),
        ("ROADTEST_SINK", scenario.pipeline.sink.name().to_string()),
        // PostgreSQL's connection string (no password: that stays in ROADTEST_POSTGRES_PASSWORD
        // of roadtest's own environment, which the consumer inherits); the schema is
        // ROADTEST_KEYSPACE.
        (
            "ROADTEST_POSTGRES_URL",
            endpoints
                .postgres
                .as_ref()
                .map(|postgres| postgres.url.clone())
                .unwrap_or_default(),
        ),
        (
            "ROADTEST_SESSION_TIMEOUT_MS",
            consumer.session_timeout_ms.to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.into(), value.into()))
    .collect();
    env.extend(
        consumer
            .env
            .iter()
            .map(|(name, value)| (name.into(), value.into())),
    );
    env
}

/// The consumer group of the run (the reference consumer's and a user's consumer's alike).
fn group_name(names: &RunNames) -> String {
    format!("roadtest-{}", names.suffix)
}

/// The reference consumer's settings; the target adds what only it knows (its address
/// translation, its security flags).
fn consumer_args(
    endpoints: &Endpoints,
    names: &RunNames,
    consumer: &ConsumerSettings,
    stats_dir: &Path,
) -> IngestArgs {
    IngestArgs {
        bootstrap: endpoints.kafka.bootstrap.clone(),
        topic: names.topic.clone(),
        dead_letter_topic: names.dead_letter_topic.clone(),
        group: group_name(names),
        // The reference consumer writes PostgreSQL when the target has it, else Cassandra.
        cql: match endpoints.postgres {
            Some(_) => Vec::new(),
            None => endpoints.cql.contact_points.clone(),
        },
        postgres_url: endpoints.postgres.as_ref().map(|p| p.url.clone()),
        cql_translate: Vec::new(),
        keyspace: names.keyspace.clone(),
        batch_size: consumer.batch_size,
        max_in_flight: consumer.max_in_flight,
        commit: consumer.commit,
        session_timeout_ms: consumer.session_timeout_ms,
        metrics_listen: METRICS_LISTEN_DEFAULT,
        stats_dir: Some(stats_dir.to_path_buf()),
        kafka_security: KafkaSecurityArgs::default(),
        cql_security: CqlSecurityArgs::default(),
        alert_rules: None,
        alert_webhook: None,
    }
}

/// Awaits `step` (waiting for the table the consumer creates, say), failing at once when the
/// consumer exits meanwhile: one that dies at start would otherwise be waited for until the
/// step's own deadline, and the error would name the step instead of the consumer.
pub(super) async fn unless_it_exits<T, E: Into<RunError>>(
    target: &mut Target,
    step: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, RunError> {
    tokio::pin!(step);
    loop {
        tokio::select! {
            outcome = &mut step => return outcome.map_err(Into::into),
            () = tokio::time::sleep(EXIT_CHECK_EVERY) => {
                if let Some(status) = target.consumer_exited() {
                    let problem = format!("exited while starting ({status})");
                    return Err(consumer_error(target, problem));
                }
            }
        }
    }
}

/// What the run can know of the consumer while it works.
#[derive(Debug)]
pub(super) enum ConsumerWatch {
    /// The reference consumer writes its stats to files in this folder.
    Stats(PathBuf),
    /// A consumer of the user's own reports nothing: its rows are counted in its table.
    Rows(RowCount),
}

/// (rows written so far, batches in flight, consuming, the consumer's own lag).
pub(super) type Totals = (u64, u64, bool, i64);

impl ConsumerWatch {
    /// What the consumer has done so far; `running`: the running consumer's pid.
    pub(super) fn totals(&self, running: Option<u32>) -> Totals {
        match self {
            ConsumerWatch::Stats(dir) => super::watch::consumer_totals(dir, running),
            ConsumerWatch::Rows(count) => {
                let consuming = running.is_some() || count.elsewhere;
                (count.latest(), 0, consuming, 0)
            }
        }
    }

    /// Rows written, read afresh (for the drain's verdict, after the consumer has stopped
    /// writing): every stats file, or a count of the table.
    pub(super) async fn written_now(&self) -> u64 {
        match self {
            ConsumerWatch::Stats(dir) => super::watch::consumer_totals(dir, None).0,
            ConsumerWatch::Rows(count) => count.now().await,
        }
    }

    /// How `written` was counted, for the drain's messages.
    pub(super) fn how_counted(&self) -> &'static str {
        match self {
            ConsumerWatch::Stats(_) => {
                "as the consumers reported; a killed consumer may not have reported its last \
                 writes, and the verification counts what arrived"
            }
            ConsumerWatch::Rows(_) => {
                "rows counted in the table; the verification names the events missing"
            }
        }
    }

    /// The reference consumer's stats files (none for a consumer of the user's own).
    pub(super) fn reports(&self) -> Vec<(PathBuf, ConsumerReport)> {
        match self {
            ConsumerWatch::Stats(dir) => ConsumerReport::read_all(dir),
            ConsumerWatch::Rows(_) => Vec::new(),
        }
    }

    /// Waits until the consumer consumes: the reference consumer says so in its stats; a
    /// consumer of the user's own has joined when the broker reports its group `Stable`.
    pub(super) async fn wait_until_consuming(
        &self,
        target: &mut Target,
        kafka: &crate::clients::KafkaConnection,
        names: &RunNames,
    ) -> Result<(), RunError> {
        let group = match self {
            ConsumerWatch::Stats(_) => None,
            ConsumerWatch::Rows(count) if count.elsewhere => {
                eprintln!(
                    "roadtest: the consumer runs elsewhere (managed = false): roadtest starts \
                     nothing and sends at once"
                );
                return Ok(());
            }
            ConsumerWatch::Rows(_) => Some(GroupWatch::new(kafka, &group_name(names))?),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = target.consumer_exited() {
                let problem = format!("exited while starting ({status})");
                return Err(consumer_error(target, problem));
            }
            let consuming = match &group {
                None => self.totals(target.consumer_pid()).2,
                Some(group) => group
                    .state(Duration::from_millis(500))
                    .is_some_and(|state| state.eq_ignore_ascii_case("stable")),
            };
            if consuming {
                let waited = started.elapsed().as_secs_f64();
                eprintln!("roadtest: consumer joined its group after {waited:.1} s");
                return Ok(());
            }
            if started.elapsed() > CONSUMER_READY {
                let problem = match &group {
                    None => format!("got no partitions within {CONSUMER_READY:?}"),
                    Some(_) => format!(
                        "did not join consumer group {} within {CONSUMER_READY:?} (roadtest \
                         waits for the broker to report the group Stable; the consumer must \
                         subscribe with ROADTEST_GROUP)",
                        group_name(names)
                    ),
                };
                return Err(consumer_error(target, problem));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The rows of the run's table, counted every [`COUNT_EVERY`] by a task of its own (stopped
/// when dropped); a count that fails keeps the last one.
#[derive(Debug)]
pub(super) struct RowCount {
    database: Database,
    keyspace: String,
    layout: TableLayout,
    /// The consumer runs elsewhere (`managed = false`): it has no process here, and is taken
    /// to be consuming throughout.
    elsewhere: bool,
    latest: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RowCount {
    pub(super) fn start(
        database: Database,
        keyspace: &str,
        layout: &TableLayout,
        elsewhere: bool,
    ) -> RowCount {
        let latest = Arc::new(AtomicU64::new(0));
        let task = {
            let (database, latest) = (database.clone(), Arc::clone(&latest));
            let (keyspace, layout) = (keyspace.to_string(), layout.clone());
            tokio::spawn(async move {
                loop {
                    let count = database.count_rows(&keyspace, &layout, COUNT_TIMEOUT);
                    if let Ok(count) = count.await {
                        latest.store(count, Ordering::Relaxed);
                    }
                    tokio::time::sleep(COUNT_EVERY).await;
                }
            })
        };
        RowCount {
            database,
            keyspace: keyspace.to_string(),
            layout: layout.clone(),
            elsewhere,
            latest,
            task,
        }
    }

    fn latest(&self) -> u64 {
        self.latest.load(Ordering::Relaxed)
    }

    /// A count made now (the latest one if it fails).
    async fn now(&self) -> u64 {
        let count = self
            .database
            .count_rows(&self.keyspace, &self.layout, COUNT_TIMEOUT);
        match count.await {
            Ok(count) => count,
            Err(_) => self.latest(),
        }
    }
}

impl Drop for RowCount {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_found_in_path_or_in_the_scenario_folder_and_named_when_not() {
        let folder = std::env::temp_dir().join(format!("roadtest-program-{}", std::process::id()));
        std::fs::create_dir_all(&folder).expect("temp dir");
        let script = folder.join("consumer.sh");
        std::fs::write(&script, "#!/bin/sh\n").expect("writes");
        assert!(
            find_program("./consumer.sh", &folder).is_err(),
            "not executable yet"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(
            find_program("./consumer.sh", &folder),
            Ok(folder.join("./consumer.sh"))
        );
        assert!(find_program("sh", &folder).is_ok_and(|p| p.ends_with("sh")));
        let missing = find_program("no-such-consumer-program", &folder).expect_err("missing");
        assert!(
            missing.contains("`no-such-consumer-program` was not found in PATH"),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&folder);
    }

    #[test]
    fn a_scenario_in_the_current_folder_runs_its_consumer_there() {
        let here = std::env::current_dir().expect("cwd");
        assert_eq!(scenario_folder(Path::new("x.toml")), here);
        assert_eq!(scenario_folder(Path::new("a/x.toml")), here.join("a"));
    }
}
