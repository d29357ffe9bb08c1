//! One end-to-end run: start the target, create topic and keyspace, start the consumer, drive the fleet, drain, verify, report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::clients::security::{CqlSecurityArgs, KafkaSecurityArgs};
use crate::clients::{ClientError, cql, kafka, unique_suffix};
use crate::drive::{DriveCounters, DriveOutcome, drive};
use crate::faults::FaultExecutor;
use crate::fleet::FleetPlan;
use crate::ingest::service::{IngestArgs, METRICS_LISTEN_DEFAULT};
use crate::ingest::stats::ConsumerReport;
use crate::measure::{LatencyRecorder, RunClock, ThroughputSeries, spawn_sampler};
use crate::report::{Report, ReportError, format_rfc3339};
use crate::scenario::Scenario;
use crate::targets::{ContainersOptions, LocalOptions, Role, TargetError, TargetKind};
use crate::verify::verify;

mod start;
mod watch;

use self::watch::{
    Progress, Watched, consumer_pid, consumer_totals, drain, follow, own_and, wait_for_consumer,
};
pub use crate::targets::external::ExternalClusters;

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
    /// The external target's clusters (needed for [`TargetKind::External`]).
    pub external: Option<ExternalClusters>,
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
            external: None,
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

/// The command that replays a run (on `target`, when known; for the external target with the
/// flags that reach `external`, never a password).
pub fn replay_command(
    scenario: &Scenario,
    scenario_path: &Path,
    target: Option<TargetKind>,
    external: Option<&ExternalClusters>,
) -> String {
    let connection = match (target, external) {
        (Some(TargetKind::External), Some(clusters)) => clusters.replay_flags(),
        _ => String::new(),
    };
    let target = target
        .map(|kind| format!(" --target {kind}"))
        .unwrap_or_default();
    format!(
        "roadtest run {} --seed {} --vehicles {} --duration-s {}{target}{connection}",
        scenario_path.display(),
        scenario.seed,
        scenario.fleet.vehicle_count,
        scenario.duration_s
    )
}

async fn run(scenario: &Scenario, options: RunOptions) -> Result<Report, RunError> {
    // Before anything is created or contacted: faults the external target cannot carry out.
    if options.target == Some(TargetKind::External) {
        crate::targets::external::refuse_process_faults(scenario)
            .map_err(RunError::TargetChoice)?;
    }
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
    let (kind, mut target) = start::start_target(scenario, &options).await?;
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
    let suffix = unique_suffix();
    let pipeline = &scenario.pipeline;
    let topic = format!("{}-{suffix}", pipeline.topic);
    let dead_letter_topic = format!("{topic}-dead-letter");
    let keyspace = format!("{}_{suffix}", pipeline.keyspace);
    kafka::create_topics(
        &endpoints.kafka,
        &[(&topic, pipeline.partitions), (&dead_letter_topic, 1)],
        target.kafka_replication_factor(),
        SERVICES_WAIT,
    )
    .await?;
    // Set-up and verification bypass the fault proxy; the consumer goes through it.
    let session = Arc::new(cql::connect(&endpoints.cql_direct, SERVICES_WAIT).await?);
    cql::create_schema(
        &session,
        &endpoints.cql_direct.address(),
        &keyspace,
        target.cql_replication(),
    )
    .await?;

    let stats_dir = options.out_dir.join("consumer-stats");
    std::fs::create_dir_all(&stats_dir).map_err(|source| TargetError::WorkDir {
        path: stats_dir.clone(),
        source,
    })?;
    let consumer = &pipeline.consumer;
    let consumer_args = IngestArgs {
        bootstrap: endpoints.kafka.bootstrap.clone(),
        topic: topic.clone(),
        dead_letter_topic: dead_letter_topic.clone(),
        group: format!("roadtest-{suffix}"),
        cql: endpoints.cql.contact_points.clone(),
        // The target adds what only it knows: its address translation, its security flags.
        cql_translate: Vec::new(),
        keyspace: keyspace.clone(),
        batch_size: consumer.batch_size,
        max_in_flight: consumer.max_in_flight,
        commit: consumer.commit,
        session_timeout_ms: consumer.session_timeout_ms,
        metrics_listen: METRICS_LISTEN_DEFAULT,
        stats_dir: Some(stats_dir.clone()),
        kafka_security: KafkaSecurityArgs::default(),
        cql_security: CqlSecurityArgs::default(),
    };
    target.start_consumer(consumer_args.to_args())?;
    wait_for_consumer(&mut target, &stats_dir).await?;
    let mut faults = FaultExecutor::new(
        scenario,
        &endpoints.kafka,
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
        let (kafka, topic) = (endpoints.kafka.clone(), topic.clone());
        let (counters, stop) = (Arc::clone(&counters), Arc::clone(&stop_producer.0));
        std::thread::Builder::new()
            .name("roadtest-producer".into())
            .spawn(move || drive(&plan, &kafka, &topic, clock, counters, stop))
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
    let passed = report.check_expectations(&scenario.expectations);
    report.write(&options.out_dir)?;
    match kind {
        // On a shared cluster, a passed run leaves nothing behind; a failed one keeps its
        // topics and keyspace as evidence.
        TargetKind::External if !passed => eprintln!(
            "roadtest: kept topics {topic} and {dead_letter_topic} and keyspace {keyspace} on the \
             external clusters for inspection (the run failed); drop them when done"
        ),
        TargetKind::External => {
            kafka::delete_topic(&endpoints.kafka, &dead_letter_topic).await;
            kafka::delete_topic(&endpoints.kafka, &topic).await;
            let drop_keyspace = format!("DROP KEYSPACE IF EXISTS {keyspace}");
            if let Err(error) = session.query_unpaged(drop_keyspace, ()).await {
                eprintln!("roadtest: could not drop keyspace {keyspace}: {error}");
            }
        }
        TargetKind::Local => {
            kafka::delete_topic(&endpoints.kafka, &topic).await;
            // The services' data is large and replayable; their logs stay with the report.
            let _ = std::fs::remove_dir_all(options.out_dir.join("services/cassandra"));
        }
        TargetKind::Containers => kafka::delete_topic(&endpoints.kafka, &topic).await,
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
