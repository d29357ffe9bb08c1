//! The human summary of a report: a few lines for the terminal, read from the report alone.

use std::fmt::Write;

use super::Report;
use super::verdict::Comparison;
use crate::faults::tamper::TamperRecord;
use crate::targets::containers::OomKill;

impl Report {
    /// A compact summary: verdict, events, latency, throughput, peak memory, each expectation
    /// with PASS or FAIL, run errors, and the replay command. Ends with a newline.
    pub fn summary_text(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_summary(&mut text);
        text
    }

    /// The alerts against the seed's, when the scenario has rules.
    fn write_alerts(&self, out: &mut impl Write) -> std::fmt::Result {
        let Some(alerts) = &self.alerts else {
            return Ok(());
        };
        let ms = |value: Option<i64>| value.map_or("-".to_string(), |ms| format!("{ms} ms"));
        writeln!(
            out,
            "alerts: {} expected, {} received, {} missed, {} spurious, {} duplicated, {} \
             malformed posts; latency p50 {}, p99 {}",
            alerts.expected,
            alerts.received,
            alerts.missed,
            alerts.spurious,
            alerts.duplicated,
            alerts.malformed,
            ms(alerts.latency_ms.p50),
            ms(alerts.latency_ms.p99)
        )
    }

    /// Peak RSS of every process, and what each JVM's GC log says.
    fn write_memory(&self, out: &mut impl Write) -> std::fmt::Result {
        if !self.memory.peak_rss_mb.is_empty() {
            let peaks: Vec<String> = self
                .memory
                .peak_rss_mb
                .iter()
                .map(|(name, mb)| format!("{name} {mb:.1} MB"))
                .collect();
            writeln!(out, "peak RSS: {}", peaks.join(", "))?;
        }
        for (service, gc) in &self.memory.gc {
            writeln!(
                out,
                "{service} GC: {} collections ({} full), pauses p50 {:.1} ms, p99 {:.1} ms, \
                 max {:.1} ms, {:.2}% of the run in GC, heap max {:.0} MB",
                gc.collections,
                gc.full_collections,
                gc.pause_ms.p50,
                gc.pause_ms.p99,
                gc.pause_ms.max,
                gc.gc_time_percent,
                gc.heap_max_mb
            )?;
        }
        Ok(())
    }

    /// The end of the throughput line: consumed/s from the reference consumer; a consumer of
    /// the user's own reports nothing of what it consumed, so it is named instead.
    fn write_consumer(&self, out: &mut impl Write) -> std::fmt::Result {
        if self.consumer.runs_elsewhere {
            writeln!(out)?;
            writeln!(out, "consumer: runs elsewhere (managed = false)")
        } else if let Some(name) = self.consumer.own_name() {
            writeln!(out)?;
            writeln!(out, "consumer: {name}")
        } else {
            writeln!(out, ", {:.1} consumed/s", self.throughput.consumed_per_s)
        }
    }

    fn write_summary(&self, out: &mut String) -> std::fmt::Result {
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        writeln!(
            out,
            "roadtest {}: {verdict} (seed {}, scenario hash {}, target {}, {:.1} s)",
            self.scenario.name, self.seed, self.scenario.hash, self.target.name, self.duration_s
        )?;
        let verify = &self.verify;
        writeln!(
            out,
            "events: expected {}, found {}, lost {}, corrupt {}, unexpected {} (duplicates written {})",
            verify.expected,
            verify.found,
            verify.lost,
            verify.corrupt,
            verify.unexpected,
            verify.duplicates_written
        )?;
        let e2e = &self.latency.e2e_ms;
        writeln!(
            out,
            "latency e2e: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
            e2e.p50_ms, e2e.p99_ms, e2e.max_ms, e2e.count
        )?;
        let throughput = &self.throughput;
        write!(
            out,
            "throughput: {:.1} written/s (peak {}/s), {:.1} produced/s",
            throughput.written_per_s, throughput.peak_written_per_s, throughput.produced_per_s,
        )?;
        self.write_consumer(out)?;
        self.write_memory(out)?;
        self.write_alerts(out)?;
        for result in &self.expectations {
            let mark = if result.passed { "PASS" } else { "FAIL" };
            let sign = match result.comparison {
                Comparison::AtMost => "<=",
                Comparison::AtLeast => ">=",
            };
            writeln!(
                out,
                "  {mark} {}: {} (must be {sign} {})",
                result.name,
                number(result.value),
                number(result.threshold)
            )?;
        }
        if !self.tampered.is_empty() {
            writeln!(out, "tampered: {}", tampered_counts(&self.tampered))?;
        }
        for kill in &self.oom_kills {
            writeln!(out, "out of memory: {}", oom_kill_text(kill))?;
        }
        if let Some(first) = self.errors.first() {
            writeln!(out, "errors: {} (first: {first})", self.errors.len())?;
        }
        writeln!(out, "replay: {}", self.replay_command)
    }
}

/// Whole numbers without decimals, others with two.
/// "cassandra killed at 12.5 s (exit 137) after 250 events; restarted at 13.0 s; 40 events
/// lost": one OOM kill, as the summary and the page say it.
pub(super) fn oom_kill_text(kill: &OomKill) -> String {
    let exit = kill
        .exit_code
        .map_or_else(String::new, |code| format!(" (exit {code})"));
    let restart = kill.restarted_at_s.map_or_else(
        || "it stayed down".to_string(),
        |at_s| format!("restarted by Docker at {at_s:.1} s"),
    );
    format!(
        "{} killed by the kernel at {:.1} s{exit} after {} events; {restart}; {} events lost",
        kill.service, kill.at_s, kill.events_before, kill.events_lost
    )
}

/// "12 rows (change 5, delete 3, insert 4)": what tamper faults did, by kind.
pub(super) fn tampered_counts(tampered: &[TamperRecord]) -> String {
    let mut by_kind = std::collections::BTreeMap::new();
    for record in tampered {
        *by_kind.entry(record.kind).or_insert(0_usize) += 1;
    }
    let kinds: Vec<String> = by_kind
        .iter()
        .map(|(kind, count)| format!("{} {count}", kind.name()))
        .collect();
    format!("{} rows ({})", tampered.len(), kinds.join(", "))
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{sample_report, sample_tampered};
    use crate::targets::containers::OomKill;

    #[test]
    fn the_summary_says_each_oom_kill_when_there_are_some() {
        let mut report = sample_report();
        assert!(!report.summary_text().contains("out of memory"));
        report.oom_kills = vec![OomKill {
            service: "cassandra".into(),
            at_s: 12.53,
            exit_code: Some(137),
            restarted_at_s: Some(15.0),
            events_before: 250,
            events_lost: 40,
        }];
        let text = report.summary_text();
        assert!(
            text.contains(
                "out of memory: cassandra killed by the kernel at 12.5 s (exit 137) after 250 \
                 events; restarted by Docker at 15.0 s; 40 events lost"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_summary_counts_tampered_rows_by_kind_and_only_when_there_are_some() {
        let mut report = sample_report();
        assert!(!report.summary_text().contains("tampered"));
        report.tampered = sample_tampered();
        let text = report.summary_text();
        assert!(
            text.contains("\ntampered: 3 rows (change 2, insert 1)\n"),
            "{text}"
        );
    }

    #[test]
    fn summary_has_verdict_counts_expectations_and_replay() {
        let text = sample_report().summary_text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("roadtest unit: FAILED (seed 42"),
            "{text}"
        );
        assert!(
            text.contains("expected 60, found 59, lost 1, corrupt 0, unexpected 0"),
            "{text}"
        );
        assert!(text.contains("latency e2e: p50 "), "{text}");
        assert!(text.contains("6.0 written/s (peak 7/s)"), "{text}");
        assert!(text.contains("peak RSS: roadtest "), "{text}");
        assert!(text.contains("  FAIL lost_max: 1 (must be <= 0)"), "{text}");
        assert!(
            text.contains("  PASS corrupt_max: 0 (must be <= 0)"),
            "{text}"
        );
        assert!(
            text.contains("  PASS throughput_written_per_s_min: 6 (must be >= 5)"),
            "{text}"
        );
        assert!(
            text.contains("errors: 1 (first: broker unreachable"),
            "{text}"
        );
        assert!(
            text.ends_with("replay: roadtest run scenarios/unit.toml --seed 42\n"),
            "{text}"
        );
        assert!(lines.len() <= 15, "compact: {text}");
    }
}
