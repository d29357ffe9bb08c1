//! The command line: raw arguments -> a checked plan -> the command; maps every outcome to an exit code.
//!
//! Exit codes: 0 every check held, 1 a check failed, 2 the run could not be carried out
//! (bad arguments, bad scenario, a service that could not be reached).

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod gate;
mod knee;
mod run;

use self::run::{RunFlags, TargetArg, run_scenario, write_views};

use crate::fleet::FleetPlan;
use crate::scenario::{Expectations, Overrides, Scenario, TamperKind};

/// Exit code when every check held.
pub const EXIT_PASSED: u8 = 0;
/// Exit code when a check failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the run could not be carried out.
pub const EXIT_UNUSABLE: u8 = 2;

/// `roadtest run --help`: examples and the environment it reads.
const RUN_EXAMPLES: &str = "\
Examples:
  roadtest run scenarios/smoke.toml --target sim
  roadtest run scenarios/smoke.toml --target local --seed 42 --out /tmp/smoke
  roadtest run scenarios/steady.toml --vehicles 5000 --duration-s 60 --json > report.json
  ROADTEST_CQL_PASSWORD=... roadtest run scenarios/smoke.toml --target external \\
      --kafka-bootstrap kafka1:9092 --cql-contact cass1:9042 --cql-username app

Environment:
  [env: ROADTEST_HOME]             where the local services are installed [default: ~/.cache/roadtest]
  [env: ROADTEST_BIN]              the roadtest binary that runs the consumer [default: beside this one, else on PATH]
  [env: ROADTEST_KAFKA_PASSWORD]   SASL password (external target; never a flag)
  [env: ROADTEST_CQL_PASSWORD]     CQL password (external target; never a flag)
  [env: ROADTEST_SIM_LATENCIES]    a `roadtest calibrate` file for the simulation
  [env: DOCKER_HOST]               the Docker daemon of the containers target
  [env: RUST_LOG]                  log filter, e.g. `info` to hear the Kafka and CQL drivers
  [env: CI]                        set: plain progress lines, never a progress bar";

#[derive(Debug, Parser)]
#[command(
    name = "roadtest",
    version,
    about = "Seeded simulation and load-testing harness for vehicle-telemetry pipelines",
    long_about = "Seeded simulation and load-testing harness for vehicle-telemetry pipelines.\n\n\
        A scenario (a TOML file) plus a seed drives simulated vehicles through a \
        Kafka -> consumer -> Cassandra pipeline; the same seed replays the same events.\n\n\
        Exit codes: 0 all checks held, 1 a check failed, 2 the run could not be carried out."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a scenario file and print its resolved plan and hash.
    Validate {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Print the resolved scenario as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the scenario's event stream as NDJSON on stdout, in emission-time order.
    Events {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Stop after this many events.
        #[arg(long, value_name = "M")]
        limit: Option<u64>,
    },
    /// Run a scenario end to end: fleet -> Kafka -> consumer -> Cassandra, verified and measured.
    #[command(after_long_help = RUN_EXAMPLES)]
    Run {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Where the pipeline runs [default: chosen, see --help]
        ///
        /// `containers`: Kafka and Cassandra in Docker via testcontainers. `local`: the real
        /// services as child processes (`roadtest services install`). `external`: existing clusters
        /// (--kafka-bootstrap, --cql-contact and the security flags below). `sim`: the
        /// deterministic simulation on a virtual clock.
        ///
        /// Without --target: external when --kafka-bootstrap or --cql-contact is given, else
        /// containers when a Docker daemon answers within 2 s, else local when its services are
        /// installed, else sim; stderr says which and why.
        #[arg(long, value_enum)]
        target: Option<TargetArg>,
        /// Folder for report.json, its views and the services' logs [default: reports/runs/NAME-SEED-TIME]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print the whole report.json on stdout instead of the summary
        #[arg(long)]
        json: bool,
        /// No progress on stderr
        #[arg(long)]
        quiet: bool,
        /// When the run ends, post its verdict as JSON to this http(s) URL
        ///
        /// Scenario, seed, target, "passed" / "failed" (or "error" when the run could not be
        /// carried out), events expected, found, lost, corrupt and unexpected, e2e p50/p99/max,
        /// written/s, the failed expectations, the report's path and the replay command. A post
        /// that fails is a warning on stderr and never changes the exit code.
        #[arg(long, value_name = "URL")]
        notify_webhook: Option<String>,
        /// Serve live Prometheus metrics at http://ADDR/metrics while the run goes
        ///
        /// Events produced, acknowledged and written, lag, faults, each process's memory and
        /// CPU, Cassandra's heap and GC pauses, and (once the rows are verified) end-to-end
        /// latency; all named roadtest_*. deploy/prometheus scrapes 127.0.0.1:9464. Port 0: any
        /// free port (stderr says which). Real targets only.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// With --metrics-listen: keep serving the final metrics this long after the run ends,
        /// so a scraper sees the totals
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = 0,
            requires = "metrics_listen"
        )]
        metrics_linger_s: u64,
        /// With [[alerts]] in the scenario: listen for the pipeline's alerts at
        /// http://ADDR/alerts [default: any free port on 127.0.0.1]
        ///
        /// A fixed address is what an Alertmanager webhook receiver can name. Consumers of your
        /// own get the URL as ROADTEST_ALERT_WEBHOOK.
        #[arg(long, value_name = "ADDR")]
        alert_listen: Option<std::net::SocketAddr>,
        /// Where the reference consumer serves its Prometheus metrics [default: any free port
        /// on 127.0.0.1, which it logs]; deploy/prometheus scrapes 127.0.0.1:9465
        #[arg(long, value_name = "ADDR")]
        consumer_metrics_listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        external: Box<crate::targets::external::ExternalArgs>,
    },
    /// Run many seeds of a scenario on the sim target; list every failing seed with its replay command.
    Explore {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Seeds to run: `A..B` (B excluded) or `A..=B`.
        #[arg(long, value_name = "A..B")]
        seeds: String,
        /// Threads to run seeds on.
        #[arg(long, value_name = "N", default_value_t = 1)]
        jobs: usize,
        /// Shrink the first failing seed and write it as OUT/shrunk.toml
        ///
        /// Reduces the first failing seed (fewer faults, vehicles, seconds) while it fails,
        /// writes the smallest case as a complete scenario file, OUT/shrunk.toml, and prints the
        /// command that replays it (`roadtest run OUT/shrunk.toml --seed S --target sim`).
        #[arg(long)]
        shrink: bool,
        /// With --shrink: the folder for shrunk.toml [default: reports/runs/explore-NAME-SEED]
        #[arg(long, value_name = "DIR", requires = "shrink")]
        out: Option<PathBuf>,
    },
    /// Find the highest rate (events/s) the pipeline sustains: open-loop steps, doubling, then bisection.
    ///
    /// Each step runs the scenario at one rate (its vehicles at the rate each needs; no ramp,
    /// no faults, speed-up 1) for --settle-s seconds, not judged, and --hold-s seconds, judged:
    /// the rate is sustained when the broker acknowledged 95% of it or more, 98% of that was
    /// written, the pipeline's lag did not grow (its trend at most 1% of the rate per second, or
    /// twice its standard error) and the end-to-end p99 of the hold stayed within --p99-ms.
    /// Prints the curve as it goes; writes OUT/knee.json (knee_events_per_s, steps[]),
    /// OUT/knee.svg and each step's run in OUT/steps/.
    ///
    /// Exit codes: 0 a rate was sustained; 1 not even --min-rate was; 2 the search could not
    /// run (bad flags, a step that could not be carried out).
    Knee(Box<knee::KneeArgs>),
    /// Derive the sim's latency parameters from a real run's report.json (JSON on stdout; hand
    /// the file to the sim with ROADTEST_SIM_LATENCIES=FILE).
    Calibrate {
        /// A real run's directory or report.json.
        #[arg(value_name = "REPORT")]
        report: PathBuf,
    },
    /// Write report.html and latency.png of a run again from its report.json.
    Report {
        /// The run directory (or its report.json); the files are written next to the report.
        #[arg(value_name = "RUN_DIR")]
        run_dir: PathBuf,
    },
    /// Compare a run with a baseline: every gated metric side by side, its change and a verdict.
    ///
    /// Exit codes: 0 compared (and with --gate, nothing failed); 1 with --gate, a metric
    /// regressed, is missing in the new run, or the scenario changed; 2 not compared: a report
    /// or the gate file is unreadable or invalid, or the runs come from different kinds of
    /// target without --allow-target-mismatch.
    Compare(gate::CompareArgs),
    /// Write a baseline for `roadtest compare` from a run that passed: its report.json plus the
    /// target, the machine (host name, cores, memory) and the scenario hash.
    ///
    /// Exit codes: 0 written; 2 not written: the run failed its expectations (a failed run is no
    /// baseline; this command checks nothing itself, so it never exits 1), the report cannot be
    /// read, or FILE cannot be written.
    Baseline(gate::BaselineArgs),
    /// Install, start, stop or list the local services: Tansu, Cassandra 2.1 and the CQL bridge.
    ///
    /// `install` puts them under $ROADTEST_HOME (default ~/.cache/roadtest; needs java 11+,
    /// python3 with venv, and npm); `--target local` then starts its own copies for each run.
    /// `up` starts one shared set on fixed ports (Kafka 19092, CQL 19042) for test suites and
    /// writes $ROADTEST_HOME/services/services.env; `down` stops it; `status` lists it.
    ///
    /// Exit codes: the script's (0 done; 1 a service failed, its log tail printed; 3 `status`
    /// with a service down); 2 when the script cannot be written or bash cannot run.
    Services {
        #[arg(value_enum)]
        action: crate::services::ServicesAction,
    },
    /// Run the reference consumer (Kafka -> Cassandra) until SIGTERM; `roadtest run` starts it.
    Ingest(Box<crate::ingest::service::IngestArgs>),
    /// Run the CQL v4-to-v3 bridge in the foreground (the local target starts it this way).
    #[command(hide = true)]
    CqlBridge {
        /// Address to accept CQL v4 clients on.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
        /// Address of the v3-only server (Cassandra 2.1).
        #[arg(long, value_name = "ADDR:PORT")]
        upstream: std::net::SocketAddr,
    },
}

/// A scenario file and the overrides every command accepts.
#[derive(Debug, Args)]
struct ScenarioArgs {
    /// Path to the scenario TOML file.
    #[arg(value_name = "SCENARIO")]
    path: PathBuf,
    /// Root seed (overrides the scenario's `seed`).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Number of vehicles (overrides `fleet.vehicle_count`).
    #[arg(long, value_name = "N")]
    vehicles: Option<u32>,
    /// Scenario duration in seconds (overrides `duration_s`).
    #[arg(long, value_name = "SECONDS")]
    duration_s: Option<u64>,
    /// Scenario time zero, ms since the Unix epoch (overrides `start_timestamp_ms`; the replay
    /// command of a run with `fresh_names = false` names the one it ran with).
    #[arg(long, value_name = "MS")]
    start_timestamp_ms: Option<i64>,
}

impl ScenarioArgs {
    fn load(&self) -> Result<Scenario, crate::ScenarioError> {
        Scenario::load_with(
            &self.path,
            Overrides {
                seed: self.seed,
                vehicle_count: self.vehicles,
                duration_s: self.duration_s,
                start_timestamp_ms: self.start_timestamp_ms,
            },
        )
    }
}

/// Runs the command line of this process; returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                EXIT_UNUSABLE
            } else {
                EXIT_PASSED
            });
        }
    };
    ExitCode::from(run(cli.command))
}

fn run(command: Command) -> u8 {
    let outcome = match command {
        Command::Validate { scenario, json } => validate(&scenario, json),
        Command::Events { scenario, limit } => events(&scenario, limit),
        Command::CqlBridge { listen, upstream } => cql_bridge(listen, upstream),
        Command::Services { action } => crate::services::run(action).map_err(|e| e.to_string()),
        Command::Run {
            scenario,
            target,
            out,
            json,
            quiet,
            notify_webhook,
            metrics_listen,
            metrics_linger_s,
            alert_listen,
            consumer_metrics_listen,
            external,
        } => run_scenario(
            &scenario,
            RunFlags {
                target,
                external: &external,
                out: out.as_deref(),
                json,
                quiet,
                notify_webhook: notify_webhook.as_deref(),
                metrics_listen,
                metrics_linger: std::time::Duration::from_secs(metrics_linger_s),
                alert_listen,
                consumer_metrics_listen,
            },
        ),
        Command::Explore {
            scenario,
            seeds,
            jobs,
            shrink,
            out,
        } => explore(&scenario, &seeds, jobs, shrink, out.as_deref()),
        Command::Calibrate { report } => calibrate(&report),
        Command::Knee(args) => knee::knee(&args),
        Command::Ingest(args) => ingest(*args),
        Command::Report { run_dir } => report_views(&run_dir),
        Command::Compare(args) => gate::compare(&args),
        Command::Baseline(args) => gate::baseline(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("roadtest: error: {message}");
            EXIT_UNUSABLE
        }
    }
}

fn validate(args: &ScenarioArgs, json: bool) -> Result<u8, String> {
    let scenario = args.load().map_err(|e| e.to_string())?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let written = if json {
        let resolved = serde_json::json!({
            "scenario_hash": scenario.hash(),
            "scenario": scenario,
        });
        writeln!(out, "{resolved:#}")
    } else {
        write_plan(&mut out, &args.path, &scenario)
    };
    ignore_broken_pipe(written)?;
    Ok(EXIT_PASSED)
}

fn write_plan(out: &mut impl Write, path: &std::path::Path, scenario: &Scenario) -> io::Result<()> {
    let fleet = &scenario.fleet;
    let interval_ms = scenario.sample_interval_ms();
    let events = FleetPlan::from_scenario(scenario).expected_events_by(scenario.duration_ms());
    writeln!(out, "scenario      {} ({})", scenario.name, path.display())?;
    writeln!(out, "hash          {}", scenario.hash())?;
    writeln!(out, "seed          {}", scenario.seed)?;
    writeln!(out, "duration      {} s", scenario.duration_s)?;
    writeln!(
        out,
        "fleet         {} vehicles, {} motion, one sample every {interval_ms:.0} ms (jitter {}%)",
        fleet.vehicle_count,
        kebab(&fleet.motion),
        fleet.interval_jitter_percent
    )?;
    if let Some(ramp) = fleet.ramp {
        writeln!(
            out,
            "ramp          from {} vehicles to {} over {} s",
            ramp.start_vehicle_count, fleet.vehicle_count, ramp.ramp_s
        )?;
    }
    let region = &fleet.region;
    writeln!(
        out,
        "region        latitude {} to {}, longitude {} to {}",
        region.latitude_min, region.latitude_max, region.longitude_min, region.longitude_max
    )?;
    writeln!(out, "events        {events}")?;
    let pipeline = &scenario.pipeline;
    writeln!(
        out,
        "pipeline      topic {}-*, {} partitions, keyspace {}_*, speed-up {}x",
        pipeline.topic, pipeline.partitions, pipeline.keyspace, pipeline.speedup
    )?;
    writeln!(
        out,
        "consumer      batches of {}, {} in flight, commit {}",
        pipeline.consumer.batch_size,
        pipeline.consumer.max_in_flight,
        kebab(&pipeline.consumer.commit)
    )?;
    write_faults(out, scenario)?;
    write_alerts(out, scenario)?;
    write_expectations(out, &scenario.expectations)
}

/// The expectations line: the three counts always, the optional keys when set.
fn write_expectations(out: &mut impl Write, expectations: &Expectations) -> io::Result<()> {
    let optional = [
        (expectations.latency_e2e_p99_ms_max, "e2e p99 <=", " ms"),
        (
            expectations.throughput_written_per_s_min,
            "written >=",
            "/s",
        ),
        (
            expectations.alerts_missed_max.map(|v| v as f64),
            "alerts missed <=",
            "",
        ),
        (
            expectations.alerts_spurious_max.map(|v| v as f64),
            "spurious <=",
            "",
        ),
        (
            expectations.alerts_duplicated_max.map(|v| v as f64),
            "duplicated <=",
            "",
        ),
        (
            expectations.alerts_latency_p99_ms_max,
            "alert p99 <=",
            " ms",
        ),
    ];
    let optional: String = (optional.iter())
        .filter_map(|(value, what, unit)| value.map(|v| format!(", {what} {v}{unit}")))
        .collect();
    writeln!(
        out,
        "expectations  lost <= {}, corrupt <= {}, unexpected <= {}{optional}",
        expectations.lost_max, expectations.corrupt_max, expectations.unexpected_max,
    )
}

/// The alert rules, and how many alerts the seed says they raise.
fn write_alerts(out: &mut impl Write, scenario: &Scenario) -> io::Result<()> {
    if scenario.alerts.is_empty() {
        return Ok(());
    }
    let expected = crate::alerts::expected_alerts(scenario).map_or(0, |alerts| alerts.len());
    writeln!(
        out,
        "alerts        {} rules, {expected} alerts expected with seed {}",
        scenario.alerts.len(),
        scenario.seed
    )?;
    for rule in &scenario.alerts {
        let (sign, threshold) = match (rule.above, rule.below) {
            (Some(above), _) => (">", above),
            (None, Some(below)) => ("<", below),
            (None, None) => ("?", f64::NAN),
        };
        writeln!(
            out,
            "  {}: {} {sign} {threshold} for {} s",
            rule.name, rule.field, rule.for_s
        )?;
    }
    Ok(())
}

/// The resolved fault schedule, then the tamper faults (carried out after the drain).
fn write_faults(out: &mut impl Write, scenario: &Scenario) -> io::Result<()> {
    let planned = crate::faults::resolve(scenario);
    let tampers = crate::faults::tamper::plans(scenario);
    writeln!(
        out,
        "faults        {} (resolved with seed {})",
        planned.len() + tampers.len(),
        scenario.seed
    )?;
    for fault in planned {
        let trigger = match fault.trigger {
            crate::faults::Trigger::AtS(at_s) => format!("at {at_s:.2} s"),
            crate::faults::Trigger::AfterEvents(events) => format!("after {events} events"),
        };
        writeln!(
            out,
            "  - {} the {} {trigger} for {} s",
            kebab(&fault.action),
            fault.service,
            fault.duration_s
        )?;
    }
    for tamper in tampers {
        let rows = match tamper.kind {
            TamperKind::Insert => "rows nobody sent".to_string(),
            _ => format!("stored rows with timestamps before {} ms", tamper.before_ms),
        };
        let kind = kebab(&tamper.kind);
        writeln!(
            out,
            "  - tamper: {kind} {} {rows}, after the drain",
            tamper.rows
        )?;
    }
    Ok(())
}

/// The name a value has in scenario files (`urban`, `after-write`, ...).
fn kebab(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::from("?"),
    }
}

fn events(args: &ScenarioArgs, limit: Option<u64>) -> Result<u8, String> {
    let scenario = args.load().map_err(|e| e.to_string())?;
    eprintln!(
        "roadtest: seed {} (scenario {}, hash {})",
        scenario.seed,
        scenario.name,
        scenario.hash()
    );
    let plan = FleetPlan::from_scenario(&scenario);
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut scratch = Vec::with_capacity(256);
    let limit = limit.unwrap_or(u64::MAX);
    let format = crate::wire::RecordFormat::new(&scenario.pipeline.record);
    let written: io::Result<()> = (|| {
        for event in plan
            .events()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            format.write_line(&event, &mut out, &mut scratch)?;
        }
        out.flush()
    })();
    ignore_broken_pipe(written)?;
    Ok(EXIT_PASSED)
}

/// A tokio runtime for the commands that talk to services.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Without `RUST_LOG`: roadtest and the CQL bridge at info, everything else (the drivers) off.
const DEFAULT_LOG_FILTER: &str = "off,roadtest=info,cql_bridge=info";

/// Logs on stderr: roadtest's own at info; the Kafka and CQL drivers stay quiet unless
/// `RUST_LOG` asks for them (e.g. `RUST_LOG=info` or `RUST_LOG=roadtest=debug,scylla=warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr)
        .try_init();
}

fn cql_bridge(listen: std::net::SocketAddr, upstream: std::net::SocketAddr) -> Result<u8, String> {
    init_logging();
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cql-bridge: cannot listen on {listen}: {e}"))?;
        let config = cql_bridge::BridgeConfig::new(upstream);
        tracing::info!(%listen, %upstream, "cql-bridge ready");
        cql_bridge::serve_with_shutdown(listener, config, crate::shutdown::termination())
            .await
            .map_err(|e| format!("cql-bridge: {e}"))?;
        Ok(EXIT_PASSED)
    })
}

/// `roadtest explore`; with `shrink`, the smallest failing case goes to `out` (or the default).
fn explore(
    args: &ScenarioArgs,
    seeds: &str,
    jobs: usize,
    shrink: bool,
    out: Option<&std::path::Path>,
) -> Result<u8, String> {
    let scenario = args.load().map_err(|e| e.to_string())?;
    let range = crate::sim::explore::parse_seeds(seeds)?;
    let latencies = crate::sim::calibrate::latencies_from_env().map_err(|e| e.to_string())?;
    let results =
        crate::sim::explore::explore(&scenario, &args.path, range.clone(), jobs, latencies)
            .map_err(|e| e.to_string())?;
    let mut text = crate::sim::explore::explore_text(&results, &range);
    if shrink && let Some(failing) = results.iter().find(|r| !r.passed) {
        let seeded = scenario.clone().with_seed(failing.seed);
        if let Some((small, report, runs)) =
            crate::sim::explore::shrink(&seeded, &args.path, latencies)
                .map_err(|e| e.to_string())?
        {
            let dir = out.map_or_else(
                || crate::sim::explore::shrunk_dir(&seeded),
                std::path::Path::to_path_buf,
            );
            let file = crate::sim::explore::write_shrunk(&small, &args.path, &dir)
                .map_err(|e| e.to_string())?;
            text += &crate::sim::explore::shrink_text(&small, &report, runs, &file);
        }
    }
    ignore_broken_pipe(write!(io::stdout().lock(), "{text}"))?;
    Ok(if results.iter().all(|r| r.passed) {
        EXIT_PASSED
    } else {
        EXIT_FAILED
    })
}

/// `roadtest calibrate REPORT`: the sim's latencies fitted to a real run, as JSON on stdout.
fn calibrate(report: &std::path::Path) -> Result<u8, String> {
    let report = crate::report::Report::read(report).map_err(|e| e.to_string())?;
    let latencies = crate::sim::calibrate::from_report(&report).map_err(|e| e.to_string())?;
    let text = serde_json::to_string_pretty(&latencies).map_err(|e| e.to_string())?;
    ignore_broken_pipe(writeln!(io::stdout().lock(), "{text}"))?;
    Ok(EXIT_PASSED)
}

/// `roadtest report RUN_DIR`: the run's pages from its report.json.
fn report_views(run_dir: &std::path::Path) -> Result<u8, String> {
    let report = crate::report::Report::read(run_dir).map_err(|e| e.to_string())?;
    let dir = if run_dir.is_dir() {
        run_dir.to_path_buf()
    } else {
        match run_dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        }
    };
    let html = write_views(&report, &dir)?;
    eprintln!("roadtest: wrote {}", html.display());
    Ok(EXIT_PASSED)
}

fn ingest(args: crate::ingest::service::IngestArgs) -> Result<u8, String> {
    init_logging();
    runtime()?
        .block_on(crate::ingest::service::run(
            args,
            crate::shutdown::termination(),
        ))
        .map_err(|e| format!("ingest: {e}"))?;
    Ok(EXIT_PASSED)
}

/// A closed stdout (`roadtest events ... | head`) ends the output quietly; other errors are reported.
fn ignore_broken_pipe(result: io::Result<()>) -> Result<(), String> {
    match result {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to standard output: {error}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks its own rules (unique argument ids, ...) only when a command is parsed.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
