//! What a run shows on stderr while it goes: events produced of the expected total and the time left, then the drain's rows to come, write rate and what it waits for.
//!
//! On a terminal (and CI not set) an indicatif bar carries the message; piped or under CI a
//! plain line every 5 s; `--quiet` shows nothing.

use std::collections::VecDeque;
use std::fmt;
use std::io::IsTerminal;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Scenario;
use crate::fleet::FleetPlan;
use crate::run::DRAIN_IDLE;

/// One plain line per this long when stderr is no terminal or CI is set.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// The write rate is measured over this much of the recent past.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Most samples the rate keeps (the watch loops sample every 50 to 200 ms).
const RATE_SAMPLES_MAX: usize = 256;

/// Where the progress goes.
#[derive(Debug)]
enum Output {
    /// `--quiet`.
    Off,
    /// Piped or under CI: a plain line every [`LINE_EVERY`].
    Lines { last: Option<Instant> },
    /// On a terminal: a bar whose message is the line's text.
    Bar(ProgressBar),
}

/// The progress of one run on stderr.
#[derive(Debug)]
pub(in crate::run) struct Progress {
    output: Output,
    expected: ExpectedTotal,
    /// Wall-clock seconds the producer runs (scenario time over the speed-up).
    run_s: f64,
    written: RateWindow,
    /// Whether the drain has begun (its first line is shown at once).
    draining: bool,
}

impl Progress {
    /// Progress for `scenario`; nothing at all unless `enabled`.
    pub(in crate::run) fn new(enabled: bool, scenario: &Scenario) -> Progress {
        let terminal = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let output = match (enabled, terminal) {
            (false, _) => Output::Off,
            (true, false) => Output::Lines { last: None },
            (true, true) => Output::Bar(bar()),
        };
        let expected = match output {
            Output::Off => ExpectedTotal::Unknown,
            _ => ExpectedTotal::count(scenario),
        };
        Progress {
            output,
            expected,
            run_s: scenario.duration_s as f64 / scenario.pipeline.speedup,
            written: RateWindow::default(),
            draining: false,
        }
    }

    /// While the producer runs: `produced` events the broker acknowledged, `written` rows.
    pub(in crate::run) fn producing(
        &mut self,
        produced: u64,
        written: u64,
        lag: i64,
        elapsed: Duration,
    ) {
        self.written.record(Instant::now(), written);
        if matches!(self.output, Output::Off) {
            return;
        }
        let expected = self.expected.get();
        let left_s = (self.run_s - elapsed.as_secs_f64()).max(0.0);
        let text = producing_text(produced, expected, written, lag, left_s);
        self.show(produced, expected, text);
    }

    /// While draining: rows still to come, the recent write rate and what the drain waits for.
    pub(in crate::run) fn draining(&mut self, acknowledged: u64, written: u64, waiting: Waiting) {
        self.written.record(Instant::now(), written);
        if !self.draining {
            self.draining = true;
            if let Output::Lines { last } = &mut self.output {
                *last = None;
            }
        }
        let text = draining_text(
            acknowledged.saturating_sub(written),
            self.written.per_s(),
            waiting,
        );
        self.show(written.min(acknowledged), Some(acknowledged), text);
    }

    /// Clears the bar (the lines stay).
    pub(in crate::run) fn finish(&mut self) {
        if let Output::Bar(bar) = &self.output {
            bar.finish_and_clear();
        }
    }

    fn show(&mut self, position: u64, length: Option<u64>, text: String) {
        match &mut self.output {
            Output::Off => {}
            Output::Lines { last } => {
                if last.is_none_or(|at| at.elapsed() >= LINE_EVERY) {
                    *last = Some(Instant::now());
                    eprintln!("roadtest: {text}");
                }
            }
            Output::Bar(bar) => {
                if let Some(length) = length {
                    bar.set_length(length);
                }
                bar.set_position(position);
                bar.set_message(text);
            }
        }
    }
}

/// The bar on stderr: `[=====>    ] producing: ...`.
fn bar() -> ProgressBar {
    let style = ProgressStyle::with_template("[{bar:30}] {msg}")
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(style);
    bar
}

/// `producing: 1234 of 3000 events (41%), 1200 written, lag 34, the scenario ends in ~18 s`
/// (wall-clock seconds: scenario time over the speed-up).
fn producing_text(
    produced: u64,
    expected: Option<u64>,
    written: u64,
    lag: i64,
    left_s: f64,
) -> String {
    let events = match expected {
        Some(total) => format!(
            "{produced} of {total} events ({:.0}%)",
            100.0 * produced as f64 / total.max(1) as f64
        ),
        None => format!("{produced} events (counting the total)"),
    };
    format!(
        "producing: {events}, {written} written, lag {lag}, the scenario ends in ~{left_s:.0} s"
    )
}

/// `draining: 36 rows to come, 0 rows/s, waiting for the consumer to write them`.
fn draining_text(to_come: u64, rows_per_s: f64, waiting: Waiting) -> String {
    format!("draining: {to_come} rows to come, {rows_per_s:.0} rows/s, {waiting}")
}

/// What the drain waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::run) enum Waiting {
    /// Rows are still to come and the consumer is at work.
    Writes,
    /// The consumer has no partitions (restarting, rejoining its group).
    Partitions,
    /// Everything is written; batches are still in flight.
    InFlight(u64),
    /// Nothing to read, nothing in flight, nothing new written: the drain waits out
    /// [`DRAIN_IDLE`] before it believes the rest will never come.
    IdleConfirm,
}

impl Waiting {
    /// What a drain waits for, from the consumers' latest stats.
    pub(in crate::run) fn of(
        written: u64,
        acknowledged: u64,
        in_flight: u64,
        consuming: bool,
        idle: bool,
    ) -> Waiting {
        if idle {
            Waiting::IdleConfirm
        } else if written >= acknowledged {
            Waiting::InFlight(in_flight)
        } else if !consuming {
            Waiting::Partitions
        } else {
            Waiting::Writes
        }
    }
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiting::Writes => f.write_str("waiting for the consumer to write them"),
            Waiting::Partitions => f.write_str("waiting for the consumer to get its partitions"),
            Waiting::InFlight(batches) => {
                write!(
                    f,
                    "waiting for {batches} batches in flight to be acknowledged"
                )
            }
            Waiting::IdleConfirm => write!(
                f,
                "waiting for an idle consumer to confirm (gives up after {} s idle)",
                DRAIN_IDLE.as_secs()
            ),
        }
    }
}

/// The fleet's expected events ([`FleetPlan::expected_events_by`]), counted on a thread of its
/// own so the run (and its fault schedule) does not wait for the count.
#[derive(Debug)]
enum ExpectedTotal {
    Counting(JoinHandle<u64>),
    Known(u64),
    Unknown,
}

impl ExpectedTotal {
    fn count(scenario: &Scenario) -> ExpectedTotal {
        let plan = FleetPlan::from_scenario(scenario);
        let duration_ms = scenario.duration_ms();
        std::thread::Builder::new()
            .name("roadtest-expected".into())
            .spawn(move || plan.expected_events_by(duration_ms))
            .map_or(ExpectedTotal::Unknown, ExpectedTotal::Counting)
    }

    /// The total once counted.
    fn get(&mut self) -> Option<u64> {
        if matches!(self, ExpectedTotal::Counting(handle) if handle.is_finished())
            && let ExpectedTotal::Counting(handle) = std::mem::replace(self, ExpectedTotal::Unknown)
        {
            *self = handle
                .join()
                .map_or(ExpectedTotal::Unknown, ExpectedTotal::Known);
        }
        match self {
            ExpectedTotal::Known(total) => Some(*total),
            _ => None,
        }
    }
}

/// Rows written per second over the last [`RATE_WINDOW`].
#[derive(Debug, Default)]
struct RateWindow {
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    fn record(&mut self, at: Instant, written: u64) {
        self.samples.push_back((at, written));
        while self.samples.len() > RATE_SAMPLES_MAX
            || self
                .samples
                .front()
                .is_some_and(|&(first, _)| at.saturating_duration_since(first) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    fn per_s(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(first, from)), Some(&(last, to))) if last > first => {
                to.saturating_sub(from) as f64 / (last - first).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_rate_covers_the_last_seconds_only() {
        let start = Instant::now();
        let mut rate = RateWindow::default();
        assert_eq!(rate.per_s(), 0.0);
        rate.record(start, 0);
        assert_eq!(rate.per_s(), 0.0);
        // 1,000 rows/s for 10 s, then nothing for 6 s.
        for tenth in 1..=100 {
            rate.record(start + Duration::from_millis(100 * tenth), 100 * tenth);
        }
        assert!((rate.per_s() - 1_000.0).abs() < 1e-6, "{}", rate.per_s());
        for tenth in 101..=160 {
            rate.record(start + Duration::from_millis(100 * tenth), 10_000);
        }
        assert_eq!(rate.per_s(), 0.0);
        assert!(rate.samples.len() <= 51);
    }

    #[test]
    fn the_drain_says_what_it_waits_for() {
        assert_eq!(Waiting::of(64, 100, 2, true, false), Waiting::Writes);
        assert_eq!(Waiting::of(64, 100, 0, false, false), Waiting::Partitions);
        assert_eq!(Waiting::of(100, 100, 3, true, false), Waiting::InFlight(3));
        assert_eq!(Waiting::of(64, 100, 0, true, true), Waiting::IdleConfirm);
        assert_eq!(
            draining_text(36, 0.2, Waiting::Writes),
            "draining: 36 rows to come, 0 rows/s, waiting for the consumer to write them"
        );
        assert!(
            Waiting::IdleConfirm
                .to_string()
                .starts_with("waiting for an idle consumer to confirm")
        );
    }

    #[test]
    fn producing_says_the_share_of_the_total_and_the_time_left() {
        assert_eq!(
            producing_text(1_234, Some(3_000), 1_200, 34, 17.6),
            "producing: 1234 of 3000 events (41%), 1200 written, lag 34, the scenario ends in ~18 s"
        );
        assert!(producing_text(5, None, 0, 5, 3.0).contains("5 events (counting the total)"));
    }

    #[test]
    fn the_expected_total_is_counted_on_the_side() {
        let text = "name = \"t\"\nseed = 3\nduration_s = 10\n[fleet]\nvehicle_count = 4\n\
                    sample_interval_ms = 500\n";
        let file = std::path::Path::new("t.toml");
        let scenario = Scenario::parse(text, file).expect("parses");
        let mut expected = ExpectedTotal::count(&scenario);
        let deadline = Instant::now() + Duration::from_secs(30);
        while expected.get().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let plan = FleetPlan::from_scenario(&scenario);
        assert_eq!(expected.get(), Some(plan.events().count() as u64));
    }
}
