//! Watching a run while it goes: the consumer's progress, faults on schedule, the drain and its verdict.

mod progress;

pub(super) use self::progress::Progress;
use self::progress::Waiting;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::consumer::ConsumerWatch;
use super::faults::FaultExecutor;
use super::supervise::Supervisor;
use super::{DRAIN_IDLE, RunError};
use crate::Scenario;
use crate::drive::{DriveCounters, DriveOutcome};
use crate::ingest::stats::ConsumerReport;
use crate::live::{LiveProgress, RunMetrics};
use crate::measure::RunClock;
use crate::targets::Target;

/// This process plus every process of the target.
pub(super) fn own_and(target: &mut Target) -> Vec<(String, u32)> {
    let mut processes = vec![("roadtest".to_string(), std::process::id())];
    processes.extend(target.processes());
    processes
}

/// Events handed on (`acknowledged` by the broker; for the faults' recovery, sent and not
/// failed) that no consumer has written yet (redeliveries make `written` overshoot, hence the
/// floor). Computed from the producer's counts, not the broker's high watermarks, which not every
/// broker reports reliably.
pub(super) fn pipeline_lag(handed_on: u64, written: u64) -> i64 {
    i64::try_from(handed_on.saturating_sub(written)).unwrap_or(i64::MAX)
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

/// Whether the consumer under test is running now.
fn consumer_up(target: &mut Target) -> bool {
    target.consumer_pid().is_some() && target.consumer_exited().is_none()
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
    pub(super) consumer: &'a ConsumerWatch,
    pub(super) processes: &'a Mutex<Vec<(String, u32)>>,
    pub(super) clock: RunClock,
    /// The live metrics to keep up to date, if any.
    pub(super) live: Option<&'a RunMetrics>,
}

/// Follows the run until the producer is done, watching the consumer and refreshing the pids.
pub(super) async fn follow(
    target: &mut Target,
    watched: Watched<'_>,
    progress: &mut Progress,
    faults: &mut FaultExecutor,
    supervisor: &mut Supervisor,
) {
    let Watched {
        counters,
        consumer: watch,
        processes,
        clock,
        live,
    } = watched;
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    while !counters.finished.load(Ordering::Relaxed) {
        ticker.tick().await;
        // One look at the processes and one read of the consumers' stats per tick serve the
        // sampler, the faults and the progress line.
        let running = own_and(target);
        let consumer = target.consumer_pid();
        if let Ok(mut list) = processes.lock() {
            *list = running;
        }
        let (written, _, consuming, _) = watch.totals(consumer);
        let lag = pipeline_lag(counters.acknowledged.load(Ordering::Relaxed), written);
        // A fault's recovery counts what the producer still holds too.
        let sent = counters.sent.load(Ordering::Relaxed);
        let delivered = sent.saturating_sub(counters.failed.load(Ordering::Relaxed));
        let backlog = pipeline_lag(delivered, written);
        faults
            .tick(target, clock.start, sent, backlog, consuming)
            .await;
        // A consumer fault's own kill or stop is the fault's to report and undo.
        if !faults.touches(crate::scenario::Service::Consumer) {
            supervisor.look(target).await;
        }
        progress.producing(
            counters.acknowledged.load(Ordering::Relaxed),
            written,
            lag,
            clock.start.elapsed(),
        );
        if let Some(live) = live {
            live.faults(faults.counts());
            let now = LiveProgress {
                elapsed_s: clock.start.elapsed().as_secs_f64(),
                produced: counters.sent.load(Ordering::Relaxed),
                acknowledged: counters.acknowledged.load(Ordering::Relaxed),
                written,
                lag,
                consumer_up: consumer_up(target),
            };
            live.progress(now);
        }
    }
}

/// How long after the drain stops the consumers' stats are read once more: a consumer rewrites
/// its stats file every 500 ms (and 20 ms after a write), so this read sees its latest count.
const FINAL_READ_AFTER: Duration = Duration::from_millis(700);

/// Why the drain stopped short: the consumers' freshest count is below what the broker
/// acknowledged. Recorded as a run error; the verification then counts what arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum DrainError {
    #[error(
        "the drain ended on idle: {written} of the {acknowledged} events the broker acknowledged \
         were written ({counted}), then nothing more for {idle_s} s"
    )]
    Idle {
        written: u64,
        acknowledged: u64,
        idle_s: u64,
        counted: &'static str,
    },
    #[error(
        "the consumer exited before it had written everything ({written} of {acknowledged} events)"
    )]
    Exited { written: u64, acknowledged: u64 },
    #[error(
        "the consumer had written {written} of {acknowledged} events when the drain limit of \
         {limit_s} s passed"
    )]
    Limit {
        written: u64,
        acknowledged: u64,
        limit_s: u64,
    },
}

/// What ended a drain short of its goal, before the last look at the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrainStop {
    Idle,
    Exited,
    Limit(Duration),
}

/// Waits (bounded) until the consumer has written everything the broker acknowledged.
pub(super) async fn drain(
    target: &mut Target,
    outcome: &DriveOutcome,
    consumer: &ConsumerWatch,
    progress: &mut Progress,
    scenario: &Scenario,
    live: Option<(&RunMetrics, RunClock)>,
    supervisor: &mut Supervisor,
) -> Result<(), DrainError> {
    let limit = Duration::from_secs(60 + scenario.duration_s / 2).min(Duration::from_secs(600));
    let started = Instant::now();
    // Idle: nothing to read, nothing in flight, nothing new written for a while. Then events the
    // broker acknowledged but no longer holds (a restart on memory storage) will never come.
    let mut idle_since: Option<(Instant, u64)> = None;
    loop {
        let (written, in_flight, consuming, consumer_lag) = consumer.totals(target.consumer_pid());
        // Before the check: the count that ends the drain is the one a scraper must see.
        if let Some((live, clock)) = live {
            live.progress(LiveProgress {
                elapsed_s: clock.start.elapsed().as_secs_f64(),
                produced: outcome.sent,
                acknowledged: outcome.acknowledged,
                written,
                lag: pipeline_lag(outcome.acknowledged, written),
                consumer_up: consumer_up(target),
            });
        }
        if written >= outcome.acknowledged && in_flight == 0 {
            return Ok(());
        }
        let idle = consuming
            && in_flight == 0
            && consumer_lag == 0
            && idle_since.is_some_and(|(_, at)| at == written);
        if !idle {
            idle_since = Some((Instant::now(), written));
        }
        let waiting = Waiting::of(written, outcome.acknowledged, in_flight, consuming, idle);
        progress.draining(outcome.acknowledged, written, waiting);
        let stop = if idle && idle_since.is_some_and(|(since, _)| since.elapsed() > DRAIN_IDLE) {
            Some(DrainStop::Idle)
        } else if supervisor.look(target).await {
            Some(DrainStop::Exited)
        } else if started.elapsed() > limit {
            Some(DrainStop::Limit(limit))
        } else {
            None
        };
        if let Some(stop) = stop {
            tokio::time::sleep(FINAL_READ_AFTER).await;
            let written = consumer.written_now().await;
            return verdict(written, outcome.acknowledged, stop, consumer.how_counted());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The drain's verdict from the rows written, read once more (every consumer process, running
/// or not): a stale count never turns into an error when the consumers in fact wrote
/// everything the broker acknowledged.
fn verdict(
    written: u64,
    acknowledged: u64,
    stop: DrainStop,
    counted: &'static str,
) -> Result<(), DrainError> {
    if written >= acknowledged {
        return Ok(());
    }
    Err(match stop {
        DrainStop::Idle => DrainError::Idle {
            written,
            acknowledged,
            idle_s: DRAIN_IDLE.as_secs(),
            counted,
        },
        DrainStop::Exited => DrainError::Exited {
            written,
            acknowledged,
        },
        DrainStop::Limit(limit) => DrainError::Limit {
            written,
            acknowledged,
            limit_s: limit.as_secs(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_dir_with(written: &[u64]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "roadtest-watch-{}-{}",
            std::process::id(),
            written
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("-")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (pid, &count) in (1_u32..).zip(written) {
            let mut report = ConsumerReport {
                pid,
                ..ConsumerReport::default()
            };
            report.core.written = count;
            report
                .write(&dir.join(format!("consumer-{pid}.json")))
                .expect("writes the stats");
        }
        dir
    }

    const COUNTED: &str = "as counted";

    #[test]
    fn the_verdict_counts_every_consumer_and_forgives_a_stale_count() {
        // A killed consumer wrote 30, its successor 70: everything the broker acknowledged.
        let dir = stats_dir_with(&[30, 70]);
        let consumer = ConsumerWatch::Stats(dir.clone());
        let written = consumer.totals(None).0;
        assert_eq!(verdict(written, 100, DrainStop::Idle, COUNTED), Ok(()));
        let limit = DrainStop::Limit(Duration::from_secs(75));
        assert_eq!(verdict(written, 100, limit, COUNTED), Ok(()));
        assert_eq!(
            verdict(written, 136, limit, COUNTED),
            Err(DrainError::Limit {
                written: 100,
                acknowledged: 136,
                limit_s: 75
            })
        );
        let exited =
            verdict(written, 101, DrainStop::Exited, COUNTED).expect_err("one row missing");
        assert!(exited.to_string().contains("100 of 101"), "{exited}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
