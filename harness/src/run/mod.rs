//! One end-to-end run: start the target, create topic and keyspace, start the consumer, drive the fleet, drain, verify, report.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use self::alerts::AlertWatch;
use crate::alerts::AlertsSection;
use crate::assemble::RunFacts;
use crate::clients::kafka::ProducerSettings;
use crate::clients::{ClientError, unique_suffix};
use crate::drive::{Destination, DriveCounters, DriveOutcome, drive};
use crate::faults::tamper::TamperRecord;
use crate::fleet::FleetPlan;
use crate::ingest::stats::ConsumerReport;
use crate::live::RunMetrics;
use crate::measure::gc::{GcFollower, GcSection};
use crate::measure::{
    LatencyRecorder, ProcessSampler, RunClock, ThroughputSeries, epoch_us, spawn_sampler,
};
use crate::report::{
    ConsumerProcess, ConsumerSection, MemorySection, Report, ReportError, format_rfc3339,
};
use crate::scenario::{RestartPolicy, Scenario};
use crate::table::TableLayout;
use crate::targets::containers::OomKill;
use crate::targets::{
    Capabilities, ContainersOptions, Endpoints, LocalOptions, Role, Target, TargetError, TargetKind,
};
use crate::verify::VerifyOutcome;
use crate::wire::RecordFormat;

mod alerts;
mod consumer;
mod database;
mod faults;
mod start;
mod supervise;
mod tamper;
mod watch;

use self::consumer::{ConsumerWatch, RowCount};
use self::database::Database;
use self::faults::FaultExecutor;
use self::supervise::Supervisor;

use self::watch::{Progress, Watched, drain, follow, own_and};
pub use crate::targets::external::ExternalClusters;

/// How long the consumer may take to join its group and get partitions.
const CONSUMER_READY: Duration = Duration::from_secs(60);
/// How long a drained-looking consumer must stay idle before the drain gives up waiting (a
/// broker under load has been seen to stall a consumer's fetches for over 10 s).
const DRAIN_IDLE: Duration = Duration::from_secs(30);
/// How long a run waits for Kafka and Cassandra clients at setup.
const SERVICES_WAIT: Duration = Duration::from_secs(60);
/// How long verification waits for a database that was killed for lack of memory and is being
/// restarted by Docker (the containers target's readiness deadline).
const RECOVERY_WAIT: Duration = Duration::from_secs(240);
/// How long a run waits for a table the system under test creates (`create = false`).
const TABLE_WAIT: Duration = Duration::from_secs(90);

/// A run could not be carried out (exit code 2); a failed expectation is not an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("the consumer {problem}; its log is {log}:\n{tail}")]
    Consumer {
        problem: String,
        log: PathBuf,
        tail: String,
    },
    #[error("interrupted by a signal; everything this run started was stopped")]
    Interrupted,
    #[error("{0}")]
    TargetChoice(String),
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    #[error("the producer thread failed: {0}")]
    Producer(String),
    #[error("{file}: pipeline.consumer.{key}: {problem}")]
    OwnConsumer {
        file: PathBuf,
        /// `command` or `image`.
        key: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    #[error(
        "cannot listen for the pipeline's alerts on {address}: {source} (choose another \
         address with --alert-listen, or leave it out for any free port)"
    )]
    AlertWebhook {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// How to carry out a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The scenario file (for the report and the replay command).
    pub scenario_path: PathBuf,
    /// Where report.json (and the services' logs) go.
    pub out_dir: PathBuf,
    /// Where the pipeline runs; `None`: containers when a Docker daemon answers within 2 s, else
    /// local when its services are installed.
    pub target: Option<TargetKind>,
    /// Why `target` was chosen, when the caller chose it (said on stderr after the seed).
    pub target_reason: Option<String>,
    /// The local target's settings.
    pub local: LocalOptions,
    /// The containers target's settings.
    pub containers: ContainersOptions,
    /// The external target's clusters (needed for [`TargetKind::External`]).
    pub external: Option<ExternalClusters>,
    /// Progress lines on stderr.
    pub progress: bool,
    /// Live metrics to keep up to date while the run goes (`roadtest run --metrics-listen`
    /// serves them); the end-to-end histogram is filled once the rows are verified.
    pub metrics: Option<RunMetrics>,
    /// Where the alert webhook listens when the scenario has `[[alerts]]` (`None`: any free
    /// port on 127.0.0.1). A fixed address is what an Alertmanager's configuration can name.
    pub alert_listen: Option<std::net::SocketAddr>,
    /// Where the reference consumer serves its Prometheus metrics (`None`: any free port, which
    /// it logs). A fixed address is what a scrape configuration can name.
    pub consumer_metrics_listen: Option<std::net::SocketAddr>,
}

impl RunOptions {
    /// Defaults: local target from the environment, `reports/runs/<name>-<seed>-<time>` as the
    /// output directory, progress when stderr is a terminal or CI is set.
    pub fn new(
        scenario: &Scenario,
        scenario_path: impl AsRef<Path>,
    ) -> Result<RunOptions, RunError> {
        let stamp = format_rfc3339(SystemTime::now()).replace([':', '-'], "");
        Ok(RunOptions {
            scenario_path: scenario_path.as_ref().to_path_buf(),
            out_dir: PathBuf::from("reports/runs")
                .join(format!("{}-{}-{stamp}", scenario.name, scenario.seed)),
            target: None,
            target_reason: None,
            containers: ContainersOptions::from_env().map_err(TargetError::from)?,
            external: None,
            local: LocalOptions::from_env(),
            progress: std::io::stderr().is_terminal() || std::env::var_os("CI").is_some(),
            metrics: None,
            alert_listen: None,
            consumer_metrics_listen: None,
        })
    }
}

impl Scenario {
    /// Runs the scenario end to end on `options.target` and returns its report (also written to
    /// `options.out_dir/report.json`). Without a target, the default of the command line:
    /// containers when Docker answers, else the local services when installed, else the
    /// deterministic simulation (stderr says which and why).
    pub async fn run(&self, options: RunOptions) -> Result<Report, RunError> {
        run(self, options).await
    }
}

/// Checks that a consumer of the user's own can be run on `target` (nothing to check for the
/// reference consumer): its program exists, and an image runs on the containers target only.
/// [`Scenario::run`] checks it too, before anything starts.
pub fn check_consumer_program(
    scenario: &Scenario,
    scenario_path: &Path,
    target: TargetKind,
) -> Result<(), RunError> {
    consumer::resolve_program(scenario, scenario_path)?;
    consumer::check_image_target(scenario, scenario_path, target)
}

/// The command that replays a run (on `target`, when known; for the external target with the
/// flags that reach `external`, never a password).
pub fn replay_command(
    scenario: &Scenario,
    scenario_path: &Path,
    target: Option<TargetKind>,
    external: Option<&ExternalClusters>,
) -> String {
    let connection = external.map_or_else(String::new, ExternalClusters::replay_flags);
    scenario.replay_command(scenario_path, target.map(TargetKind::name), &connection)
}

async fn run(scenario: &Scenario, mut options: RunOptions) -> Result<Report, RunError> {
    let started_at = SystemTime::now();
    // Fixed names: this run's own time base, so its rows are told apart from earlier runs'.
    let now_ms = started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64);
    let scenario = &scenario.with_run_time_base(now_ms);
    // The consumer and the services run in folders of their own: a relative output folder (the
    // default, reports/runs/...) would point somewhere else for them.
    options.out_dir =
        std::path::absolute(&options.out_dir).map_err(|source| TargetError::WorkDir {
            path: options.out_dir.clone(),
            source,
        })?;
    // The seed first: whatever happens next, the run can be replayed.
    eprintln!(
        "roadtest: seed {} (scenario {}, hash {})",
        scenario.seed,
        scenario.name,
        scenario.hash()
    );
    // Before anything is started or created: a consumer program that cannot be found.
    consumer::resolve_program(scenario, &options.scenario_path)?;
    // The default, like the command line's: with no real target here, the simulation.
    let Some(kind) = start::choose_target(&options, scenario.pipeline.sink).await? else {
        let path = &options.scenario_path;
        let replay = crate::sim::replay_command(scenario, path);
        eprintln!("roadtest: replay with: {replay}");
        return Ok(crate::sim::simulate_into(scenario, path, &options.out_dir)?);
    };
    consumer::check_image_target(scenario, &options.scenario_path, kind)?;
    if let Some(live) = &options.metrics {
        live.started(&scenario.name, scenario.seed, kind.name());
    }
    let alerts = AlertWatch::start(scenario, &options.out_dir, options.alert_listen).await?;
    let mut prepared = prepare(kind, scenario, &options).await?;
    let started = start_consumer(&mut prepared, scenario, &options, alerts.as_ref()).await;
    let (watch, layout) = match started {
        Ok(started) => started,
        Err(error) => {
            // Before any load: nothing of the run is worth keeping, so nothing is left behind.
            discard(prepared).await;
            return Err(error);
        }
    };
    let (driven, samplers) = drive_and_watch(&mut prepared, scenario, &options, &watch).await?;
    let watched = (driven, samplers, &watch, &layout);
    let mut collected = collect(&mut prepared, scenario, &options, watched).await?;
    if let Some(live) = &options.metrics {
        live.e2e(collected.verified.e2e.values());
        // The reference consumer's last words, written when it stopped after the drain.
        let consumers = collected.consumers.iter();
        live.written(
            consumers
                .map(|(_, c)| c.core.written + c.core.dead_lettered)
                .sum(),
        );
    }
    if let Some(alerts) = &alerts {
        collected.alerts = Some(alerts.settle(scenario, collected.driven.clock).await);
    }
    let database = collected.database.clone();
    let report = assemble(&prepared, scenario, &options, collected, started_at);
    report.write(&options.out_dir)?;
    clean_up(prepared, database, report.passed).await;
    Ok(report)
}

/// The run's names on the target: fresh per run, so runs never see each other's data.
#[derive(Debug)]
struct RunNames {
    suffix: String,
    /// The scenario's own names (`fresh_names = false`): never deleted by roadtest.
    fixed: bool,
    topic: String,
    dead_letter_topic: String,
    keyspace: String,
}

impl RunNames {
    /// Fresh names (a unique suffix on the scenario's prefixes), or the scenario's names as
    /// written with `fresh_names = false`; the consumer group is the run's own either way.
    fn of(scenario: &Scenario) -> RunNames {
        let suffix = unique_suffix();
        let pipeline = &scenario.pipeline;
        let (topic, keyspace) = if pipeline.fresh_names {
            (
                format!("{}-{suffix}", pipeline.topic),
                format!("{}_{suffix}", pipeline.keyspace),
            )
        } else {
            (pipeline.topic.clone(), pipeline.keyspace.clone())
        };
        RunNames {
            dead_letter_topic: format!("{topic}-dead-letter"),
            keyspace,
            topic,
            fixed: !pipeline.fresh_names,
            suffix,
        }
    }
}

/// What [`prepare`] set up: the started target and the run's topics and keyspace on it.
struct Prepared {
    target: Target,
    endpoints: Endpoints,
    names: RunNames,
    replay: String,
}

/// Checks the target can carry out the scenario's faults, then starts it and creates the run's
/// topics and keyspace.
async fn prepare(
    kind: TargetKind,
    scenario: &Scenario,
    options: &RunOptions,
) -> Result<Prepared, RunError> {
    // Before anything is created or contacted: faults this target cannot carry out.
    let capabilities = Capabilities::of(kind);
    capabilities
        .refuse_unsupported_broker_storage(kind, scenario)
        .and_then(|()| capabilities.refuse_unsupported_faults(kind, scenario))
        .and_then(|()| match &options.external {
            Some(clusters) if kind == TargetKind::External => {
                clusters.refuse_other_sink(&scenario.pipeline)
            }
            _ => Ok(()),
        })
        .map_err(RunError::TargetChoice)?;
    std::fs::create_dir_all(&options.out_dir).map_err(|source| TargetError::WorkDir {
        path: options.out_dir.clone(),
        source,
    })?;
    let mut target = start::start_target(kind, scenario, options).await?;
    for (role, after) in target.ready_after() {
        eprintln!("roadtest: {role} ready after {:.1} s", after.as_secs_f64());
    }
    let replay = replay_command(
        scenario,
        &options.scenario_path,
        Some(kind),
        options.external.as_ref(),
    );
    eprintln!("roadtest: replay with: {replay}");
    let endpoints = target.endpoints().clone();
    let names = RunNames::of(scenario);
    target
        .create_topics(
            &[
                (&names.topic, scenario.pipeline.partitions),
                (&names.dead_letter_topic, 1),
            ],
            SERVICES_WAIT,
        )
        .await?;
    // Set-up and verification bypass the fault proxies; the consumer goes through them. With
    // `create = false` the system under test creates keyspace and table itself.
    let database = Database::connect(&endpoints, SERVICES_WAIT).await?;
    database
        .create_schema(&endpoints, &names.keyspace, &target, scenario)
        .await?;
    Ok(Prepared {
        target,
        endpoints,
        names,
        replay,
    })
}

/// Starts the consumer under test, checks the table it writes (waiting for it when the system
/// under test creates it) and waits until the consumer consumes; returns how to follow it and
/// how to read its table.
async fn start_consumer(
    prepared: &mut Prepared,
    scenario: &Scenario,
    options: &RunOptions,
    alerts: Option<&AlertWatch>,
) -> Result<(ConsumerWatch, TableLayout), RunError> {
    let stats_dir = options.out_dir.join("consumer-stats");
    std::fs::create_dir_all(&stats_dir).map_err(|source| TargetError::WorkDir {
        path: stats_dir.clone(),
        source,
    })?;
    let launch = consumer::launch(
        scenario,
        &options.scenario_path,
        &prepared.endpoints,
        &prepared.names,
        &stats_dir,
        alerts,
        options.consumer_metrics_listen,
    )?;
    let database = Database::connect(&prepared.endpoints, SERVICES_WAIT).await?;
    let elsewhere = launch.is_none();
    if let Some(launch) = launch {
        prepared.target.start_consumer(launch).await?;
    }
    let layout = check_table(prepared, scenario, &database).await?;
    let watch = if scenario.pipeline.consumer.is_reference() {
        ConsumerWatch::Stats(stats_dir)
    } else {
        let keyspace = &prepared.names.keyspace;
        ConsumerWatch::Rows(RowCount::start(database, keyspace, &layout, elsewhere))
    };
    let kafka = prepared.endpoints.kafka.clone();
    watch
        .wait_until_consuming(&mut prepared.target, &kafka, &prepared.names)
        .await?;
    Ok((watch, layout))
}

/// Checks the table the consumer writes (waiting for it when the system under test creates it)
/// against the message format, and returns how to read it.
async fn check_table(
    prepared: &mut Prepared,
    scenario: &Scenario,
    database: &Database,
) -> Result<TableLayout, RunError> {
    let (keyspace, table) = (&prepared.names.keyspace, &scenario.pipeline.table);
    let format = RecordFormat::new(&scenario.pipeline.record);
    let wait = if table.create {
        SERVICES_WAIT
    } else {
        TABLE_WAIT
    };
    let table = database.wait_and_check(keyspace, table, &format, wait);
    let mut layout = consumer::unless_it_exits(&mut prepared.target, table).await?;
    if prepared.names.fixed {
        // The table holds earlier runs' rows too: this run's are those of its time window.
        let plan = FleetPlan::from_scenario(scenario);
        layout.window = Some((plan.start_ms, plan.end_ms));
    }
    Ok(layout)
}

/// What the producer phase left: its outcome, the faults it carried out, the samplers still
/// running, and the problems seen so far.
struct Driven {
    plan: FleetPlan,
    clock: RunClock,
    outcome: DriveOutcome,
    faults: FaultExecutor,
    supervisor: Supervisor,
    errors: Vec<String>,
    progress: Progress,
}

/// The (name, pid) list of processes the host sampler follows; the watch loop refreshes it.
type SharedProcesses = Arc<Mutex<Vec<(String, u32)>>>;

/// The process samplers of the run (host processes; containers through Docker's stats).
struct Samplers {
    stop: tokio::sync::watch::Sender<bool>,
    host: tokio::task::JoinHandle<ProcessSampler>,
    containers: Option<tokio::task::JoinHandle<ProcessSampler>>,
    /// Cassandra's GC log, when roadtest started that Cassandra.
    gc: Option<tokio::task::JoinHandle<GcFollower>>,
}

impl Samplers {
    fn start(
        target: &mut Target,
        start: Instant,
        live: Option<&RunMetrics>,
    ) -> (Samplers, SharedProcesses) {
        let processes = Arc::new(Mutex::new(own_and(target)));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let host = spawn_sampler(
            Arc::clone(&processes),
            start,
            stopped.clone(),
            live.cloned(),
        );
        let gc = (target.gc_log_dir())
            .map(|dir| spawn_gc_follower(GcFollower::new(dir), live.cloned(), stopped.clone()));
        let containers = target
            .usage_probe()
            .map(|probe| spawn_container_sampler(probe, start, stopped, live.cloned()));
        let samplers = Samplers {
            stop,
            host,
            containers,
            gc,
        };
        (samplers, processes)
    }

    /// Stops them all and returns (host processes, containers, what Cassandra's GC log says
    /// of the run from its start until now).
    async fn finish(self, clock: RunClock) -> (ProcessSampler, ProcessSampler, Option<GcSection>) {
        let _ = self.stop.send(true);
        let host = self.host.await.unwrap_or_default();
        let containers = match self.containers {
            Some(task) => task.await.unwrap_or_default(),
            None => ProcessSampler::new(),
        };
        let gc = match self.gc {
            Some(task) => task.await.ok(),
            None => None,
        };
        let start_ms = (clock.start_epoch_us / 1_000) as i64;
        let gc = gc.and_then(|gc| gc.section(start_ms, (epoch_us() / 1_000) as i64));
        (host, containers, gc)
    }
}

/// Drives the fleet on schedule in its own thread while watching the consumer, carrying out the
/// faults and sampling every process, until the producer is done.
async fn drive_and_watch(
    prepared: &mut Prepared,
    scenario: &Scenario,
    options: &RunOptions,
    consumer: &ConsumerWatch,
) -> Result<(Driven, Samplers), RunError> {
    let target = &mut prepared.target;
    let mut faults = FaultExecutor::new(scenario);
    let plan = FleetPlan::from_scenario(scenario);
    let clock = RunClock::now(plan.start_ms, scenario.pipeline.speedup);
    let (samplers, processes) = Samplers::start(target, clock.start, options.metrics.as_ref());
    let counters = Arc::new(DriveCounters::default());
    // Set when this future is dropped (the run was cancelled), so the producer thread stops too.
    let stop_producer = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let producer = {
        let kafka = prepared.endpoints.kafka.clone();
        let settings = ProducerSettings::new(target.capabilities().idempotent_producer)
            .with_buffer_mb(scenario.pipeline.producer_buffer_mb);
        let topic = prepared.names.topic.clone();
        let format = RecordFormat::new(&scenario.pipeline.record);
        let (counters, stop) = (Arc::clone(&counters), Arc::clone(&stop_producer.0));
        std::thread::Builder::new()
            .name("roadtest-producer".into())
            .spawn(move || {
                let destination = Destination {
                    topic: &topic,
                    format: &format,
                };
                drive(&plan, &kafka, destination, settings, clock, counters, stop)
            })
            .map_err(|e| RunError::Producer(e.to_string()))?
    };
    let mut supervisor = Supervisor::new(scenario.pipeline.consumer.restart, clock.start);
    let mut progress = Progress::new(options.progress, scenario);
    let watched = Watched {
        counters: &counters,
        consumer,
        processes: &processes,
        clock,
        live: options.metrics.as_ref(),
    };
    follow(target, watched, &mut progress, &mut faults, &mut supervisor).await;
    let outcome: DriveOutcome = tokio::task::spawn_blocking(move || producer.join())
        .await
        .map_err(|e| RunError::Producer(e.to_string()))?
        .map_err(|_| RunError::Producer("panicked".into()))??;
    let driven = Driven {
        plan,
        clock,
        outcome,
        faults,
        supervisor,
        errors: Vec::new(),
        progress,
    };
    Ok((driven, samplers))
}

/// What the run measured and verified, ready to be assembled into the report; and the
/// connection that verified it (clean-up uses it too).
struct Collected {
    database: Database,
    driven: Driven,
    verified: VerifyOutcome,
    /// What the tamper faults did after the drain.
    tampered: Vec<TamperRecord>,
    oom_kills: Vec<OomKill>,
    consumers: Vec<(PathBuf, ConsumerReport)>,
    host: ProcessSampler,
    containers: ProcessSampler,
    /// `memory.gc.cassandra`, when Cassandra's GC log was read.
    gc: Option<GcSection>,
    /// The alerts the pipeline posted against those the seed says must fire (with rules).
    alerts: Option<AlertsSection>,
}

/// Finishes the faults, drains, stops the consumer cleanly and the samplers, carries out the
/// tamper faults, then verifies every event against the database.
async fn collect(
    prepared: &mut Prepared,
    scenario: &Scenario,
    options: &RunOptions,
    (mut driven, samplers, consumer, layout): (Driven, Samplers, &ConsumerWatch, &TableLayout),
) -> Result<Collected, RunError> {
    let target = &mut prepared.target;
    driven
        .faults
        .finish(target, driven.clock.start, |target| {
            consumer.totals(target.consumer_pid()).2
        })
        .await;
    let drained = drain(
        target,
        &driven.outcome,
        consumer,
        &mut driven.progress,
        scenario,
        options.metrics.as_ref().map(|live| (live, driven.clock)),
        &mut driven.supervisor,
    )
    .await;
    driven.errors.extend(driven.supervisor.take_errors());
    if let Err(problem) = drained {
        driven.errors.push(problem.to_string());
    }
    driven.progress.finish();
    stop_consumer(target, scenario, &mut driven.errors).await?;
    let (host, containers, gc) = samplers.finish(driven.clock).await;
    // A fresh connection (the set-up one may have lived through database faults, and a driver's
    // pool still reconnecting would fail the first request); the kills are read after the
    // verification, so one during it is in the report too.
    let recovery = database_recovery(scenario, target.kind());
    let mut database = Database::connect(&prepared.endpoints, recovery.1).await?;
    eprintln!(
        "roadtest: verifying every event against {}...",
        database.name()
    );
    let keyspace = &prepared.names.keyspace;
    // Tamper faults act now: nothing writes any more, so the rows they touch stay as they left them.
    let plan = &driven.plan;
    let tampered = database.tamper(keyspace, layout, scenario, plan).await?;
    let at = (&prepared.endpoints, keyspace.as_str());
    let verified = verify_events(&mut database, at, &driven, layout, recovery).await?;
    let oom_kills = oom_kills(target, &driven).await;
    let hlog = options.out_dir.join("e2e.hlog");
    let start_s = driven.clock.start_epoch_us as f64 / 1e6;
    if let Err(error) = verified.e2e.write_interval_log_file(&hlog, start_s) {
        let problem = format!("{}: cannot write the interval log: {error}", hlog.display());
        driven.errors.push(problem);
    }
    Ok(Collected {
        database,
        driven,
        verified,
        tampered,
        oom_kills,
        consumers: consumer.reports(),
        host,
        containers,
        gc,
        alerts: None,
    })
}

/// Stops the consumer cleanly (SIGTERM: finish in-flight writes, commit, exit 0); one that runs
/// elsewhere is not roadtest's to stop, and one that ended by itself was reported when the watch
/// or the drain saw it.
async fn stop_consumer(
    target: &mut Target,
    scenario: &Scenario,
    errors: &mut Vec<String>,
) -> Result<(), RunError> {
    let managed = scenario.pipeline.consumer.managed;
    let ended = target.consumer_exited().is_some();
    if managed && !ended && !target.stop(Role::Consumer, Duration::from_secs(15)).await? {
        errors.push("the consumer did not exit cleanly within 15 s of SIGTERM".into());
    }
    Ok(())
}

/// Whether Docker restarts the database by itself (`database_restart = "on-failure"`, on
/// containers), and so how long verification waits for it: it may still be on its way back from
/// an out-of-memory kill when the verification begins, even one during the drain (the restart
/// policy's delay doubles with each restart, and the start itself replays the commit log), and
/// be killed again while it is read.
fn database_recovery(scenario: &Scenario, kind: TargetKind) -> (bool, Duration) {
    let restarts_itself = scenario.pipeline.containers.database_restart == RestartPolicy::OnFailure
        && kind == TargetKind::Containers;
    match restarts_itself {
        true => (true, RECOVERY_WAIT),
        false => (false, SERVICES_WAIT),
    }
}

/// Verifies every event. A database that restarts by itself and goes away during the
/// verification is connected to afresh and read again, for as long as `wait` allows.
async fn verify_events(
    database: &mut Database,
    (endpoints, keyspace): (&Endpoints, &str),
    driven: &Driven,
    layout: &TableLayout,
    (restarts_itself, wait): (bool, Duration),
) -> Result<VerifyOutcome, RunError> {
    let started = Instant::now();
    loop {
        match database
            .verify(keyspace, &driven.plan, driven.clock, layout)
            .await
        {
            Ok(verified) => return Ok(verified),
            Err(error) if restarts_itself && started.elapsed() < wait => {
                eprintln!(
                    "roadtest: {} went away during the verification ({error}); it restarts by \
                     itself, so roadtest connects again and reads every event again",
                    database.name()
                );
                *database = Database::connect(endpoints, wait).await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Builds the report from what the run collected.
fn assemble(
    prepared: &Prepared,
    scenario: &Scenario,
    options: &RunOptions,
    collected: Collected,
    started_at: SystemTime,
) -> Report {
    let Collected {
        database: _,
        driven,
        verified,
        tampered,
        oom_kills,
        consumers,
        host,
        containers,
        gc,
        alerts,
    } = collected;
    let target = &prepared.target;
    let stages = ConsumerStages::merge(&consumers, driven.clock);
    let outcome = &driven.outcome;
    let service_versions = target.service_versions();
    let errors = run_errors(
        &driven,
        &service_versions,
        target.capabilities(),
        &consumers,
    );
    let facts = RunFacts {
        target_name: target.kind().name(),
        replay_command: prepared.replay.clone(),
        started_at,
        duration_s: started_at.elapsed().map_or(0.0, |d| d.as_secs_f64()),
        service_versions,
        stages: [&outcome.produce_ack, &stages.consume, &stages.write_ack],
        produced: &series(&outcome.acknowledged_per_second),
        consumed: &stages.consumed,
        span_s: (scenario.duration_s as f64 / scenario.pipeline.speedup).max(1.0),
        sent: outcome.sent,
        failed_deliveries: outcome.failed_deliveries,
        behind_schedule_ms: Some(outcome.behind_schedule.summary()),
        written_by_consumer: stages.written,
        consumer: ConsumerSection {
            command: scenario.pipeline.consumer.command.clone(),
            image: scenario.pipeline.consumer.image.clone(),
            runs_elsewhere: !scenario.pipeline.consumer.managed,
            processes: consumers.iter().map(consumer_process).collect(),
            sim: None,
        },
        memory: memory_section(&host, &containers, gc),
        alerts,
        faults: driven.faults.into_records(),
        tampered,
        oom_kills,
        errors,
    };
    crate::assemble::assemble(scenario, &options.scenario_path, facts, &verified)
}

/// The containers the kernel killed for lack of memory during the run, each with the events
/// the fleet was meant to have sent by then.
async fn oom_kills(target: &Target, driven: &Driven) -> Vec<OomKill> {
    let clock = driven.clock;
    let start = std::time::UNIX_EPOCH + Duration::from_micros(clock.start_epoch_us);
    let mut kills = target.oom_kills(start).await;
    for kill in &mut kills {
        let before =
            |timestamp_ms: i64| clock.intended_offset_us(timestamp_ms) as f64 / 1e6 < kill.at_s;
        let events = driven.plan.events();
        kill.events_before = events.filter(|event| before(event.timestamp_ms)).count() as u64;
    }
    kills
}

/// The problems the run met: the watch's and drain's, failed deliveries, and a broker that lost
/// its log across a restart.
fn run_errors(
    driven: &Driven,
    service_versions: &BTreeMap<String, String>,
    capabilities: Capabilities,
    consumers: &[(PathBuf, ConsumerReport)],
) -> Vec<String> {
    let mut errors = driven.errors.clone();
    let delivery = driven.outcome.first_errors.iter();
    errors.extend(delivery.map(|error| format!("delivery failed: {error}")));
    if driven.faults.restarts_broker() && !capabilities.broker_keeps_data {
        let broker = service_versions.get("broker");
        let mut noticed: Vec<i32> = consumers
            .iter()
            .flat_map(|(_, consumer)| consumer.core.logs_lost.iter().map(|lost| lost.partition))
            .collect();
        noticed.sort_unstable();
        noticed.dedup();
        let consumer = match noticed.is_empty() {
            true => String::from(
                "no consumer reported noticing it (consumer.processes[].stats.logs_lost is \
                 empty: a consumer of your own, one started again after the restart, or one \
                 that had read nothing yet), so events sent after the restart may not have \
                 been read",
            ),
            false => format!(
                "the consumer noticed on partitions {noticed:?} and read them again from their \
                 beginning (consumer.processes[].stats.logs_lost)"
            ),
        };
        errors.push(format!(
            "the broker ({}) kept nothing across its restart: events it held that the consumer \
             had not read yet were lost, and its log began again at offset 0, behind the \
             consumer's position; {consumer}",
            broker.map_or("its storage", String::as_str)
        ));
    }
    errors
}

fn consumer_process((_, consumer): &(PathBuf, ConsumerReport)) -> ConsumerProcess {
    ConsumerProcess {
        pid: Some(consumer.pid),
        incarnation: None,
        exited_cleanly: consumer.exited_cleanly,
        stats: consumer.core.clone(),
    }
}

/// The consumers' own stage latencies and counts, merged over every consumer process.
struct ConsumerStages {
    consume: LatencyRecorder,
    write_ack: LatencyRecorder,
    consumed: ThroughputSeries,
    written: u64,
}

impl ConsumerStages {
    fn merge(consumers: &[(PathBuf, ConsumerReport)], clock: RunClock) -> ConsumerStages {
        let mut stages = ConsumerStages {
            consume: LatencyRecorder::new(),
            write_ack: LatencyRecorder::new(),
            consumed: ThroughputSeries::new(),
            written: 0,
        };
        let start_s = clock.start_epoch_us / 1_000_000;
        for (_, consumer) in consumers {
            consumer.consume_us.add_to(&mut stages.consume);
            consumer.write_ack_us.add_to(&mut stages.write_ack);
            stages.written += consumer.core.written;
            for (&second, &count) in &consumer.consumed_per_epoch_second {
                let at_ms = second.saturating_sub(start_s) * 1000;
                stages.consumed.add(at_ms, count);
            }
        }
        stages
    }
}

/// Peak RSS, peak CPU and timelines of every sampled process and container.
fn memory_section(
    host: &ProcessSampler,
    containers: &ProcessSampler,
    gc: Option<GcSection>,
) -> MemorySection {
    let mut memory = MemorySection {
        peak_rss_mb: host.peaks_rss_mb(),
        peak_cpu_percent: host.peak_cpu_percent(),
        timelines: host.timelines(),
        gc: gc
            .map(|gc| BTreeMap::from([("cassandra".to_string(), gc)]))
            .unwrap_or_default(),
    };
    memory.peak_rss_mb.extend(containers.peaks_rss_mb());
    memory
        .peak_cpu_percent
        .extend(containers.peak_cpu_percent());
    memory.timelines.extend(containers.timelines());
    memory
}

/// Removes what a run that could not start created (its topics; on shared clusters its
/// keyspace) and shuts the target down; best effort.
async fn discard(prepared: Prepared) {
    match Database::connect(&prepared.endpoints, Duration::from_secs(10)).await {
        Ok(database) => clean_up(prepared, database, true).await,
        Err(_) => {
            if !prepared.names.fixed {
                prepared.target.delete_topics().await;
            }
            prepared.target.shutdown().await;
        }
    }
}

/// Removes what the run created where the clusters outlive it (a failed run keeps it there as
/// evidence), then stops the target. Clients close before the services they talk to.
async fn clean_up(prepared: Prepared, database: Database, passed: bool) {
    let Prepared { target, names, .. } = prepared;
    if names.fixed {
        eprintln!(
            "roadtest: kept topic {} and keyspace {}: fixed names (fresh_names = false) belong to \
             the pipeline",
            names.topic, names.keyspace
        );
    } else if !target.capabilities().shared_clusters {
        target.delete_topics().await;
    } else if passed {
        target.delete_topics().await;
        if let Err(error) = database.drop_keyspace(&names.keyspace).await {
            eprintln!(
                "roadtest: could not drop keyspace {}: {error}",
                names.keyspace
            );
        }
    } else {
        eprintln!(
            "roadtest: kept topics {} and {} and keyspace {} on the clusters for inspection (the \
             run failed); drop them when done",
            names.topic, names.dead_letter_topic, names.keyspace
        );
    }
    drop(database);
    target.shutdown().await;
}

/// Samples the containers' Docker stats every 250 ms until told to stop.
fn spawn_container_sampler(
    probe: crate::targets::containers::UsageProbe,
    run_start: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
    live: Option<RunMetrics>,
) -> tokio::task::JoinHandle<ProcessSampler> {
    tokio::spawn(async move {
        let mut sampler = ProcessSampler::publishing_to(live);
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        while !*stop.borrow_and_update() {
            tokio::select! {
                _ = ticker.tick() => {
                    let at_ms = run_start.elapsed().as_millis() as u64;
                    for usage in probe.sample().await {
                        sampler.record(&usage.name, usage.rss_mb, usage.cpu_percent, at_ms);
                    }
                }
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
        sampler
    })
}

/// Reads Cassandra's GC log every second until told to stop (and once more then), publishing
/// each new collection to the live metrics.
fn spawn_gc_follower(
    mut follower: GcFollower,
    live: Option<RunMetrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<GcFollower> {
    let publish = move |follower: &mut GcFollower| {
        let collections = follower.poll().to_vec();
        if let Some(live) = &live {
            for collection in collections {
                let max_mb = follower.heap_max_mb().unwrap_or(collection.capacity_mb);
                live.gc(collection.pause_ms, collection.after_mb, max_mb);
            }
        }
    };
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        while !*stop.borrow_and_update() {
            tokio::select! {
                _ = ticker.tick() => publish(&mut follower),
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
        publish(&mut follower);
        follower
    })
}

/// Raises its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn series(counts: &[u64]) -> ThroughputSeries {
    let mut series = ThroughputSeries::new();
    for (second, &count) in counts.iter().enumerate() {
        series.add(second as u64 * 1000, count);
    }
    series
}
