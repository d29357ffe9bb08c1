//! Watching a run while it goes: the consumer's stats, faults on schedule, the drain, progress lines.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::faults::FaultExecutor;
use super::{CONSUMER_READY, DRAIN_IDLE, RunError};
use crate::Scenario;
use crate::drive::{DriveCounters, DriveOutcome};
use crate::ingest::stats::ConsumerReport;
use crate::measure::RunClock;
use crate::targets::{Role, Target};

/// This process plus every process of the target.
pub(super) fn own_and(target: &mut Target) -> Vec<(String, u32)> {
    let mut processes = vec![("roadtest".to_string(), std::process::id())];
    processes.extend(target.processes());
    processes
}

/// Events the broker acknowledged that no consumer has written yet (redeliveries make `written`
/// overshoot, hence the floor). Computed from the producer's acknowledgements, not the broker's
/// high watermarks, which not every broker reports reliably.
pub(super) fn pipeline_lag(acknowledged: u64, written: u64) -> i64 {
    i64::try_from(acknowledged.saturating_sub(written)).unwrap_or(i64::MAX)
}

/// The running consumer's pid.
pub(super) fn consumer_pid(target: &mut Target) -> Option<u32> {
    consumer_pid_in(&target.processes())
}

/// The consumer's pid in a list of (name, pid).
fn consumer_pid_in(processes: &[(String, u32)]) -> Option<u32> {
    processes
        .iter()
        .find_map(|(name, pid)| (name == Role::Consumer.name()).then_some(*pid))
}

/// (rows written by every consumer process so far, batches in flight, consuming, lag) — the last
/// three of the running consumer only: a killed one's last words are stale.
pub(super) fn consumer_totals(stats_dir: &Path, running: Option<u32>) -> (u64, u64, bool, i64) {
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

pub(super) async fn wait_for_consumer(
    target: &mut Target,
    stats_dir: &Path,
) -> Result<(), RunError> {
    let started = Instant::now();
    loop {
        if let Some(status) = target.consumer_exited() {
            return Err(consumer_error(
                target,
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
                format!("got no partitions within {CONSUMER_READY:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) fn consumer_error(target: &Target, problem: String) -> RunError {
    let log = target.dir().join("consumer.log");
    RunError::Consumer {
        problem,
        tail: crate::targets::process::log_tail(&log, 20),
        log,
    }
}

/// What `follow` watches while the producer runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Watched<'a> {
    pub(super) counters: &'a DriveCounters,
    pub(super) stats_dir: &'a Path,
    pub(super) processes: &'a Mutex<Vec<(String, u32)>>,
    pub(super) clock: RunClock,
}

/// Follows the run until the producer is done, watching the consumer and refreshing the pids.
pub(super) async fn follow(
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
        // One look at the processes and one read of the consumers' stats per tick serve the
        // sampler, the faults and the progress line.
        let running = own_and(target);
        let consumer = consumer_pid_in(&running);
        if let Ok(mut list) = processes.lock() {
            *list = running;
        }
        let (written, _, consuming, _) = consumer_totals(stats_dir, consumer);
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
pub(super) async fn drain(
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
pub(super) struct Progress {
    enabled: bool,
    expected: f64,
    run_s: f64,
    last: Option<Instant>,
    every: Duration,
}

impl Progress {
    pub(super) fn new(enabled: bool, scenario: &Scenario) -> Progress {
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

    pub(super) fn finish(&mut self) {
        self.last = None;
    }
}
