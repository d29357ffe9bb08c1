//! One end-to-end run: start the target, create topic and keyspace, start the consumer, drive the fleet, drain, verify, report.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::clients::{ClientError, cql, kafka, unique_suffix};
use crate::drive::{DriveCounters, DriveOutcome, RunClock, drive};
use crate::faults::FaultExecutor;
use crate::fleet::FleetPlan;
use crate::ingest::stats::ConsumerReport;
use crate::measure::{LatencyRecorder, ThroughputSeries, spawn_sampler};
use crate::report::{Report, ReportError, format_rfc3339};
use crate::scenario::{CommitPolicy, Scenario};
use crate::targets::containers::{docker_ping, local_installed};
use crate::targets::{
    ContainersOptions, ContainersTarget, LocalOptions, LocalTarget, Role, Target, TargetError,
    TargetKind,
};
use crate::verify::verify;

/// How long the consumer may take to join its group and get partitions.
const CONSUMER_READY: Duration = Duration::from_secs(60);
/// How long a drained-looking consumer must stay idle before the drain gives up waiting (Tansu
/// under load has been seen to stall a consumer's fetches for over 10 s).
const DRAIN_IDLE: Duration = Duration::from_secs(30);
/// How long a run waits for Kafka and Cassandra clients at setup.
const SERVICES_WAIT: Duration = Duration::from_secs(60);

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
    #[error("the producer thread failed: {0}")]
    Producer(String),
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
    /// Progress lines on stderr.
    pub progress: bool,
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
            local: LocalOptions::from_env()?,
            progress: std::io::stderr().is_terminal() || std::env::var_os("CI").is_some(),
        })
    }
}

impl Scenario {
    /// Runs the scenario end to end on the local target and returns its report (also written to
    /// `options.out_dir/report.json`).
    pub async fn run(&self, options: RunOptions) -> Result<Report, RunError> {
        run(self, options).await
    }
}

/// The command that replays a run (on `target`, when known).
pub fn replay_command(
    scenario: &Scenario,
    scenario_path: &Path,
    target: Option<TargetKind>,
) -> String {
    let target = target
        .map(|kind| format!(" --target {kind}"))
        .unwrap_or_default();
    format!(
        "roadtest run {} --seed {} --vehicles {} --duration-s {}{target}",
        scenario_path.display(),
        scenario.seed,
        scenario.fleet.vehicle_count,
        scenario.duration_s
    )
}

async fn run(scenario: &Scenario, options: RunOptions) -> Result<Report, RunError> {
    let started_at = SystemTime::now();
    std::fs::create_dir_all(&options.out_dir).map_err(|source| TargetError::WorkDir {
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
    let kind = match options.target {
        Some(kind) => {
            if let Some(why) = &options.target_reason {
                eprintln!("roadtest: target {kind}: {why}");
            }
            kind
        }
        None => {
            let (kind, why) = tokio::task::spawn_blocking(|| {
                crate::targets::containers::choose_target(None, docker_ping, local_installed())
            })
            .await
            .map_err(|e| RunError::Producer(e.to_string()))?
            .map_err(|e| RunError::TargetChoice(e.to_string()))?;
            eprintln!("roadtest: target {kind}: {why}");
            kind
        }
    };
    let mut target = match kind {
        TargetKind::Local => {
            let mut local = options.local.clone();
            local.work_dir = Some(options.out_dir.join("services"));
            local.keep_work_dir = true;
            local.commitlog_sync = scenario.pipeline.cassandra_commitlog_sync;
            local.seed = scenario.seed;
            eprintln!("roadtest: starting Tansu, Cassandra and the CQL bridge (local target)...");
            Target::Local(LocalTarget::start(local).await?)
        }
        TargetKind::Containers => {
            let mut containers = options.containers.clone();
            containers.roadtest_binary = options.local.roadtest_binary.clone();
            containers.work_dir = Some(options.out_dir.join("services"));
            containers.keep_work_dir = true;
            containers.commitlog_sync = scenario.pipeline.cassandra_commitlog_sync;
            containers.seed = scenario.seed;
            eprintln!("roadtest: starting Kafka and the database in containers...");
            Target::Containers(
                ContainersTarget::start(containers)
                    .await
                    .map_err(TargetError::from)?,
            )
        }
    };
    for (role, after) in target.ready_after() {
        eprintln!("roadtest: {role} ready after {:.1} s", after.as_secs_f64());
    }
    let replay = replay_command(scenario, &options.scenario_path, Some(kind));
    eprintln!("roadtest: replay with: {replay}");
    let endpoints = target.endpoints().clone();
    let suffix = unique_suffix();
    let pipeline = &scenario.pipeline;
    let topic = format!("{}-{suffix}", pipeline.topic);
    let dead_letter_topic = format!("{topic}-dead-letter");
    let keyspace = format!("{}_{suffix}", pipeline.keyspace);
    kafka::create_topic(
        &endpoints.kafka_bootstrap,
        &topic,
        pipeline.partitions,
        SERVICES_WAIT,
    )
    .await?;
    kafka::create_topic(
        &endpoints.kafka_bootstrap,
        &dead_letter_topic,
        1,
        SERVICES_WAIT,
    )
    .await?;
    // Set-up and verification bypass the fault proxy; the consumer goes through it.
    let session = Arc::new(cql::connect(endpoints.cql_direct, SERVICES_WAIT).await?);
    cql::create_schema(&session, endpoints.cql_direct, &keyspace).await?;

    let stats_dir = options.out_dir.join("consumer-stats");
    std::fs::create_dir_all(&stats_dir).map_err(|source| TargetError::WorkDir {
        path: stats_dir.clone(),
        source,
    })?;
    let consumer = &pipeline.consumer;
    let argument = |text: String| OsString::from(text);
    target.start_consumer(vec![
        argument("--bootstrap".into()),
        argument(endpoints.kafka_bootstrap.clone()),
        argument("--topic".into()),
        argument(topic.clone()),
        argument("--dead-letter-topic".into()),
        argument(dead_letter_topic.clone()),
        argument("--group".into()),
        argument(format!("roadtest-{suffix}")),
        argument("--cql".into()),
        argument(endpoints.cql_contact.to_string()),
        argument("--keyspace".into()),
        argument(keyspace.clone()),
        argument("--batch-size".into()),
        argument(consumer.batch_size.to_string()),
        argument("--max-in-flight".into()),
        argument(consumer.max_in_flight.to_string()),
        argument("--commit".into()),
        argument(match consumer.commit {
            CommitPolicy::AfterWrite => "after-write".into(),
            CommitPolicy::BeforeWrite => "before-write".into(),
        }),
        argument("--session-timeout-ms".into()),
        argument(consumer.session_timeout_ms.to_string()),
        argument("--stats-dir".into()),
        stats_dir.clone().into_os_string(),
    ])?;
    wait_for_consumer(&mut target, &stats_dir).await?;
    let mut faults = FaultExecutor::new(
        scenario,
        &endpoints.kafka_bootstrap,
        vec![
            (topic.clone(), pipeline.partitions),
            (dead_letter_topic.clone(), 1),
        ],
    );

    // Measure: sample every process; drive the fleet on schedule in its own thread.
    let plan = FleetPlan::from_scenario(scenario);
    let clock = RunClock::now(plan.start_ms, pipeline.speedup);
    let processes = Arc::new(Mutex::new(own_and(&mut target)));
    let (stop_sampler, sampler_stopped) = tokio::sync::watch::channel(false);
    let sampler = spawn_sampler(Arc::clone(&processes), clock.start, sampler_stopped.clone());
    let container_sampler = target
        .usage_probe()
        .map(|probe| spawn_container_sampler(probe, clock.start, sampler_stopped));
    let counters = Arc::new(DriveCounters::default());
    // Set when this future is dropped (the run was cancelled), so the producer thread stops too.
    let stop_producer = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let producer = {
        let (bootstrap, topic) = (endpoints.kafka_bootstrap.clone(), topic.clone());
        let (counters, stop) = (Arc::clone(&counters), Arc::clone(&stop_producer.0));
        std::thread::Builder::new()
            .name("roadtest-producer".into())
            .spawn(move || drive(&plan, &bootstrap, &topic, clock, counters, stop))
            .map_err(|e| RunError::Producer(e.to_string()))?
    };
    let mut errors = Vec::new();
    let mut progress = Progress::new(options.progress, scenario);
    let watched = Watched {
        counters: &counters,
        stats_dir: &stats_dir,
        processes: &processes,
        clock,
    };
    follow(
        &mut target,
        watched,
        &mut progress,
        &mut faults,
        &mut errors,
    )
    .await;
    let outcome: DriveOutcome = tokio::task::spawn_blocking(move || producer.join())
        .await
        .map_err(|e| RunError::Producer(e.to_string()))?
        .map_err(|_| RunError::Producer("panicked".into()))??;
    faults
        .finish(&mut target, clock.start, |target| {
            consumer_totals(&stats_dir, consumer_pid(target)).2
        })
        .await;
    let drained = drain(&mut target, &outcome, &stats_dir, &mut progress, scenario).await;
    if let Err(problem) = drained {
        errors.push(problem);
    }
    progress.finish();
    // Stop the consumer cleanly (SIGTERM: finish in-flight writes, commit, exit 0).
    if !target.stop(Role::Consumer, Duration::from_secs(15)).await? {
        errors.push("the consumer did not exit cleanly within 15 s of SIGTERM".into());
    }
    let _ = stop_sampler.send(true);
    let sampler = sampler.await.unwrap_or_default();
    let containers_sampled = match container_sampler {
        Some(task) => task.await.unwrap_or_default(),
        None => crate::measure::ProcessSampler::new(),
    };

    eprintln!("roadtest: verifying every event against Cassandra...");
    let verified = verify(Arc::clone(&session), &keyspace, &plan, clock).await?;
    let consumers = ConsumerReport::read_all(&stats_dir);

    let mut report = Report::new(
        scenario,
        &options.scenario_path,
        kind.name(),
        replay,
        started_at,
    );
    report.git_commit = option_env!("ROADTEST_GIT_COMMIT").map(str::to_string);
    report.target.service_versions = target.service_versions();
    report.finished_at = format_rfc3339(SystemTime::now());
    report.duration_s = started_at.elapsed().map_or(0.0, |d| d.as_secs_f64());
    let mut consume = LatencyRecorder::new();
    let mut write_ack = LatencyRecorder::new();
    let mut consumed = ThroughputSeries::new();
    let mut written_by_consumer = 0;
    for (_, consumer) in &consumers {
        consumer.consume_us.add_to(&mut consume);
        consumer.write_ack_us.add_to(&mut write_ack);
        written_by_consumer += consumer.core.written;
        let start_s = clock.start_epoch_us / 1_000_000;
        for (&second, &count) in &consumer.consumed_per_epoch_second {
            consumed.add(second.saturating_sub(start_s) * 1000, count);
        }
    }
    let span_s = (scenario.duration_s as f64 / pipeline.speedup).max(1.0);
    verified.fill_report(&mut report, written_by_consumer, span_s);
    report.set_stages_and_flow(
        [&outcome.produce_ack, &consume, &write_ack],
        &series(&outcome.acknowledged_per_second),
        &consumed,
        span_s,
    );
    report.producer.sent = outcome.sent;
    report.producer.failed_deliveries = outcome.failed_deliveries;
    report.producer.behind_schedule_ms = outcome.behind_schedule.summary();
    report.memory.peak_rss_mb = sampler.peaks_rss_mb();
    report.memory.peak_cpu_percent = sampler.peak_cpu_percent();
    report.memory.timelines = sampler.timelines();
    report
        .memory
        .peak_rss_mb
        .extend(containers_sampled.peaks_rss_mb());
    report
        .memory
        .peak_cpu_percent
        .extend(containers_sampled.peak_cpu_percent());
    report
        .memory
        .timelines
        .extend(containers_sampled.timelines());
    report.consumer = serde_json::json!({
        "processes": consumers.iter().map(|(_, c)| serde_json::json!({
            "pid": c.pid, "exited_cleanly": c.exited_cleanly, "stats": c.core,
        })).collect::<Vec<_>>(),
    });
    for error in &outcome.first_errors {
        errors.push(format!("delivery failed: {error}"));
    }
    if faults.restarts_broker() && !target.broker_keeps_data() {
        errors.push(
            "the broker (Tansu, memory storage) kept nothing across its restart: \
             events it held but the consumer had not yet written were lost with it"
                .into(),
        );
    }
    let hlog = options.out_dir.join("e2e.hlog");
    if let Err(error) = verified
        .e2e
        .write_interval_log_file(&hlog, clock.start_epoch_us as f64 / 1e6)
    {
        errors.push(format!(
            "{}: cannot write the interval log: {error}",
            hlog.display()
        ));
    }
    report.errors = errors;
    report.faults = faults
        .into_records(
            &report.latency.e2e_intervals,
            &verified.lost_by_intended_second.per_second(),
        )
        .into_iter()
        .filter_map(|record| serde_json::to_value(record).ok())
        .collect();
    report.check_expectations(&scenario.expectations);
    report.write(&options.out_dir)?;
    kafka::delete_topic(&endpoints.kafka_bootstrap, &topic).await;
    if kind == TargetKind::Local {
        // The services' data is large and replayable; their logs stay with the report.
        let _ = std::fs::remove_dir_all(options.out_dir.join("services/cassandra"));
    }
    target.shutdown().await;
    Ok(report)
}

/// Samples the containers' Docker stats every 250 ms until told to stop.
fn spawn_container_sampler(
    probe: crate::targets::containers::UsageProbe,
    run_start: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<crate::measure::ProcessSampler> {
    tokio::spawn(async move {
        let mut sampler = crate::measure::ProcessSampler::new();
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

/// This process plus every process of the target.
fn own_and(target: &mut Target) -> Vec<(String, u32)> {
    let mut processes = vec![("roadtest".to_string(), std::process::id())];
    processes.extend(target.processes());
    processes
}

/// Events the broker acknowledged that no consumer has written yet (redeliveries make `written`
/// overshoot, hence the floor). Computed here because Tansu's high watermarks are not reliable.
fn pipeline_lag(acknowledged: u64, written: u64) -> i64 {
    i64::try_from(acknowledged.saturating_sub(written)).unwrap_or(i64::MAX)
}

/// The running consumer's pid.
fn consumer_pid(target: &mut Target) -> Option<u32> {
    target
        .processes()
        .into_iter()
        .find_map(|(name, pid)| (name == Role::Consumer.name()).then_some(pid))
}

/// (rows written by every consumer process so far, batches in flight, consuming, lag) — the last
/// three of the running consumer only: a killed one's last words are stale.
fn consumer_totals(stats_dir: &Path, running: Option<u32>) -> (u64, u64, bool, i64) {
    let reports = ConsumerReport::read_all(stats_dir);
    let written = reports
        .iter()
        .map(|(_, r)| r.core.written + r.core.dead_lettered)
        .sum();
    match reports.iter().find(|(_, r)| Some(r.pid) == running) {
        Some((_, current)) => (
            written,
            current.core.in_flight_batches,
            current.consuming,
            current.lag,
        ),
        None => (written, 0, false, 0),
    }
}

async fn wait_for_consumer(target: &mut Target, stats_dir: &Path) -> Result<(), RunError> {
    let started = Instant::now();
    loop {
        if let Some(status) = target.consumer_exited() {
            return Err(consumer_error(
                target,
                stats_dir,
                format!("exited while starting ({status})"),
            ));
        }
        if consumer_totals(stats_dir, consumer_pid(target)).2 {
            eprintln!(
                "roadtest: consumer joined its group after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if started.elapsed() > CONSUMER_READY {
            return Err(consumer_error(
                target,
                stats_dir,
                format!("got no partitions within {CONSUMER_READY:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn consumer_error(target: &Target, _stats_dir: &Path, problem: String) -> RunError {
    let log = target.dir().join("consumer.log");
    RunError::Consumer {
        problem,
        tail: crate::targets::process::log_tail(&log, 20),
        log,
    }
}

/// What `follow` watches while the producer runs.
#[derive(Debug, Clone, Copy)]
struct Watched<'a> {
    counters: &'a DriveCounters,
    stats_dir: &'a Path,
    processes: &'a Mutex<Vec<(String, u32)>>,
    clock: RunClock,
}

/// Follows the run until the producer is done, watching the consumer and refreshing the pids.
async fn follow(
    target: &mut Target,
    watched: Watched<'_>,
    progress: &mut Progress,
    faults: &mut FaultExecutor,
    errors: &mut Vec<String>,
) {
    let Watched {
        counters,
        stats_dir,
        processes,
        clock,
    } = watched;
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    let mut consumer_down_reported = false;
    while !counters.finished.load(Ordering::Relaxed) {
        ticker.tick().await;
        if let Ok(mut list) = processes.lock() {
            *list = own_and(target);
        }
        // One read of the consumers' stats per tick serves the faults and the progress line.
        let (written, _, consuming, _) = consumer_totals(stats_dir, consumer_pid(target));
        let lag = pipeline_lag(counters.acknowledged.load(Ordering::Relaxed), written);
        faults
            .tick(
                target,
                clock.start,
                counters.sent.load(Ordering::Relaxed),
                lag,
                consuming,
            )
            .await;
        if let Some(status) = target.consumer_exited()
            && !consumer_down_reported
            && !faults.touches(crate::scenario::Service::Consumer)
        {
            errors.push(format!("the consumer exited during the run ({status})"));
            consumer_down_reported = true;
        }
        progress.show(
            counters.acknowledged.load(Ordering::Relaxed),
            written,
            lag,
            clock.start.elapsed(),
        );
    }
}

/// Waits (bounded) until the consumer has written everything the broker acknowledged.
async fn drain(
    target: &mut Target,
    outcome: &DriveOutcome,
    stats_dir: &Path,
    progress: &mut Progress,
    scenario: &Scenario,
) -> Result<(), String> {
    let limit = Duration::from_secs(60 + scenario.duration_s / 2).min(Duration::from_secs(600));
    let started = Instant::now();
    // Idle: nothing to read, nothing in flight, nothing new written for a while. Then events the
    // broker acknowledged but no longer holds (a restart on memory storage) will never come.
    let mut idle_since: Option<(Instant, u64)> = None;
    loop {
        let (written, in_flight, consuming, consumer_lag) =
            consumer_totals(stats_dir, consumer_pid(target));
        let lag = pipeline_lag(outcome.acknowledged, written);
        progress.show(outcome.acknowledged, written, lag, started.elapsed());
        if written >= outcome.acknowledged && in_flight == 0 {
            return Ok(());
        }
        match idle_since {
            Some((since, at))
                if at == written && consuming && in_flight == 0 && consumer_lag == 0 =>
            {
                if since.elapsed() > DRAIN_IDLE {
                    return Err(format!(
                        "the drain ended on idle: the consumers reported {written} of the {} events \
                         the broker acknowledged as written, then had nothing more to do for {} s \
                         (a killed consumer may not have reported its last writes; the verification \
                         counts what arrived)",
                        outcome.acknowledged,
                        DRAIN_IDLE.as_secs()
                    ));
                }
            }
            _ => idle_since = Some((Instant::now(), written)),
        }
        if target.consumer_exited().is_some() {
            return Err("the consumer exited before it had written everything".into());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "the consumer had written {written} of {} events when the drain limit of {} s passed",
                outcome.acknowledged,
                limit.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Progress lines on stderr: one per second in a terminal, one per 5 s otherwise.
#[derive(Debug)]
struct Progress {
    enabled: bool,
    expected: f64,
    run_s: f64,
    last: Option<Instant>,
    every: Duration,
}

impl Progress {
    fn new(enabled: bool, scenario: &Scenario) -> Progress {
        let interactive = std::io::stderr().is_terminal();
        Progress {
            enabled,
            expected: f64::from(scenario.fleet.vehicle_count) * scenario.duration_s as f64 * 1000.0
                / scenario.sample_interval_ms(),
            run_s: scenario.duration_s as f64 / scenario.pipeline.speedup,
            last: None,
            every: if interactive {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(5)
            },
        }
    }

    fn show(&mut self, produced: u64, written: u64, lag: i64, elapsed: Duration) {
        if !self.enabled || self.last.is_some_and(|last| last.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
        let elapsed_s = elapsed.as_secs_f64();
        eprintln!(
            "roadtest: produced {produced} (~{:.0}%), written {written}, lag {lag}, elapsed {elapsed_s:.0} s, remaining ~{:.0} s",
            100.0 * produced as f64 / self.expected.max(1.0),
            (self.run_s - elapsed_s).max(0.0),
        );
    }

    fn finish(&mut self) {
        self.last = None;
    }
}
