//! `report.html`: one self-contained page per run (inline CSS, charts as inline SVG, nothing
//! fetched), read from the report alone: verdict, expectations, errors, what was lost, the charts,
//! the faults and the replay command.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::charts::{
    latency_over_time_svg, memory_svg, percentiles_svg, stages_svg, throughput_svg,
};
use super::junit::escape;
use super::verdict::Comparison;
use super::{Report, ReportError};

/// The file name of the page inside a run directory.
pub const HTML_FILE_NAME: &str = "report.html";

/// Writes `dir/report.html` (creating `dir` if needed, replacing the file atomically) and returns
/// its path. A chart that cannot be drawn is replaced by a note on the page, never an error.
pub fn write_html(report: &Report, dir: &Path) -> Result<PathBuf, ReportError> {
    let file = dir.join(HTML_FILE_NAME);
    let write_error = |source: std::io::Error| ReportError::Write {
        file: file.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let temporary = dir.join(format!(".{HTML_FILE_NAME}.{}.tmp", std::process::id()));
    let written = std::fs::write(&temporary, render_html(report))
        .and_then(|()| std::fs::rename(&temporary, &file));
    if written.is_err() {
        // Best effort: the error about the real file is what matters.
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(write_error)?;
    Ok(file)
}

const STYLE: &str = r#"
:root { --pass: #1a7f37; --fail: #cf222e; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); background: #fff; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; }
header.verdict { border-left: 10px solid var(--fail); background: #fff1f0; padding: 16px 22px; border-radius: 8px; }
header.verdict.pass { border-left-color: var(--pass); background: #effaf1; }
h1 { margin: 0 0 4px; font-size: 28px; }
h2 { margin: 36px 0 6px; font-size: 20px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.simulated { background: #fff4d6; border-left: 4px solid #e0a800; padding: 6px 10px; }
.badge { display: inline-block; padding: 2px 12px; border-radius: 999px; color: #fff; font-size: 18px; vertical-align: 4px; margin-left: 8px; }
.badge.pass, .mark.pass { background: var(--pass); }
.badge.fail, .mark.fail { background: var(--fail); }
.mark { color: #fff; padding: 1px 8px; border-radius: 4px; font-weight: 600; font-size: 13px; }
.meta, .how { color: var(--muted); margin: 4px 0; }
.how { font-size: 14px; max-width: 900px; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13.5px; }
pre.replay { background: var(--ink); color: #fff; padding: 10px 14px; border-radius: 6px; white-space: pre-wrap; word-break: break-all; margin: 6px 0 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px; margin-top: 18px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: var(--soft); }
.card h3 { margin: 0 0 4px; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.card .big { font-size: 20px; font-weight: 600; }
.card .bad { color: var(--fail); font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 14px; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fff1f0; }
ul.errors li { color: var(--fail); }
figure { margin: 8px 0 0; }
.wide { overflow-x: auto; }
nav { margin: 14px 0 0; font-size: 14px; }
nav a { color: #0969da; text-decoration: none; margin-right: 14px; }
figure svg { width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 6px; }
.chart-error { color: var(--fail); }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
"#;

/// A line naming a consumer other than the reference one (which reports nothing itself: no
/// consume or write stages).
fn write_consumer(out: &mut String, report: &Report) -> std::fmt::Result {
    if report.consumer.runs_elsewhere {
        writeln!(
            out,
            "<p class=\"meta\">consumer under test: runs elsewhere (managed = false; its rows \
             were counted and verified)</p>"
        )?;
    } else if let Some(name) = report.consumer.own_name() {
        writeln!(
            out,
            "<p class=\"meta\">consumer under test: <code>{}</code> (its rows were counted and \
             verified; it reports no stages of its own)</p>",
            escape(&name)
        )?;
    }
    Ok(())
}

/// The whole page.
pub fn render_html(report: &Report) -> String {
    let mut page = String::with_capacity(256 * 1024);
    // Writing into a String cannot fail.
    let _ = write_page(&mut page, report);
    page
}

type Draw = fn(&Report) -> Result<String, String>;

/// The charts of the page, in order: section id, title, how to read it, the chart.
const CHARTS: [(&str, &str, &str, Draw); 5] = [
    (
        "latency",
        "End-to-end latency per second",
        "From each event's intended send time to the database's acknowledgement of its row, \
         per second of the run: the median (p50), the 99th percentile and the slowest event. \
         Gaps are seconds in which no row was acknowledged; dashed purple lines mark injected \
         faults, shaded until the service was back.",
        latency_over_time_svg,
    ),
    (
        "percentiles",
        "Latency percentile distribution",
        "How slow the slowest events were, over the whole run. Left to right, each grid step is \
         ten times rarer: 90% of events were at most as slow as the line at 90%, 99% at 99%, and \
         so on. A line that bends up sharply on the right is a tail worth explaining.",
        percentiles_svg,
    ),
    (
        "throughput",
        "Throughput per second",
        "Events the broker acknowledged (produced), the consumer read (consumed) and the \
         database acknowledged (written) in each second. Written should track produced; a gap \
         between them is backlog.",
        throughput_svg,
    ),
    (
        "stages",
        "Where the time goes: latency by stage",
        "p50 and p99 of each stage. The stages overlap (send -> consumer read includes time \
         in the broker), so they do not add up to end to end exactly.",
        stages_svg,
    ),
    (
        "memory",
        "Memory per process",
        "Resident memory (RSS) of every process of the run, sampled while it ran. \
         A line that only goes up is a leak suspect; breaks are times the process was not running.",
        memory_svg,
    ),
];

fn write_page(out: &mut String, report: &Report) -> std::fmt::Result {
    let verdict = if report.passed { "PASSED" } else { "FAILED" };
    let class = if report.passed { "pass" } else { "fail" };
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>roadtest {} (seed {}): {verdict}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>",
        escape(&report.scenario.name),
        report.seed
    )?;
    write_header(out, report, verdict, class)?;
    write_cards(out, report)?;
    write_nav(out, report)?;
    write_expectations(out, report)?;
    write_errors(out, report)?;
    write_verification(out, report)?;
    write_tampered(out, report)?;
    for (id, title, how, chart) in CHARTS {
        writeln!(
            out,
            "<section id=\"{id}\">\n<h2>{title}</h2>\n<p class=\"how\">{}</p>",
            escape(how)
        )?;
        match chart(report) {
            Ok(svg) => writeln!(out, "<figure>{}</figure>", inline_svg(&svg))?,
            Err(message) => writeln!(
                out,
                "<p class=\"chart-error\">This chart could not be drawn: {}</p>",
                escape(&message)
            )?,
        }
        writeln!(out, "</section>")?;
    }
    write_faults(out, report)?;
    writeln!(
        out,
        "<footer>roadtest {} &middot; report schema {} &middot; written from report.json; \
         regenerate with <code>roadtest report RUN_DIR</code></footer>\n</main>\n</body>\n</html>",
        escape(&report.roadtest_version),
        report.schema_version
    )
}

/// An SVG document as an element of the page: without its XML declaration and namespace
/// attribute (HTML does not need them, and the page then names no URL at all).
fn inline_svg(svg: &str) -> String {
    let body = match svg.find("<svg") {
        Some(start) => &svg[start..],
        None => svg,
    };
    body.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

fn write_header(out: &mut String, report: &Report, verdict: &str, class: &str) -> std::fmt::Result {
    writeln!(
        out,
        "<header class=\"verdict {class}\">\n<h1>{}<span class=\"badge {class}\">{verdict}</span></h1>",
        escape(&report.scenario.name)
    )?;
    if let Some(description) = report
        .scenario
        .resolved
        .get("description")
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
    {
        writeln!(out, "<p>{}</p>", escape(description))?;
    }
    if report.target.name == super::SIM_TARGET_NAME {
        writeln!(
            out,
            "<p class=\"simulated\"><b>Simulated run.</b> The pipeline ran in roadtest's \
             deterministic simulation on a virtual clock: its latencies and rates are modelled, \
             not measured on real services.</p>"
        )?;
    }
    let machine = &report.machine;
    writeln!(
        out,
        "<p class=\"meta\">seed <b>{}</b> &middot; scenario {} (hash {}) &middot; target {} &middot; \
         {} cores, {} MB, {} &middot; started {} &middot; {:.1} s &middot; roadtest {}{}</p>",
        report.seed,
        escape(&report.scenario.path),
        escape(&report.scenario.hash),
        escape(&report.target.name),
        machine.cores,
        machine.memory_mb,
        escape(&machine.os),
        escape(&report.started_at),
        report.duration_s,
        escape(&report.roadtest_version),
        report
            .git_commit
            .as_deref()
            .map(|commit| format!(" ({})", escape(commit)))
            .unwrap_or_default()
    )?;
    if !report.target.service_versions.is_empty() {
        let versions: Vec<String> = report
            .target
            .service_versions
            .iter()
            .map(|(service, version)| format!("{}: {}", escape(service), escape(version)))
            .collect();
        writeln!(out, "<p class=\"meta\">{}</p>", versions.join(" &middot; "))?;
    }
    write_consumer(out, report)?;
    writeln!(
        out,
        "<p class=\"meta\">Replay this run (same events, same faults; timings differ):</p>\n\
         <pre class=\"replay\">{}</pre>\n</header>",
        escape(&report.replay_command)
    )
}

fn write_cards(out: &mut String, report: &Report) -> std::fmt::Result {
    let e2e = &report.latency.e2e_ms;
    let throughput = &report.throughput;
    let verify = &report.verify;
    let count = |name: &str, value: u64| {
        let class = if value > 0 { " class=\"bad\"" } else { "" };
        format!("<span{class}>{name} {}</span>", grouped(value))
    };
    writeln!(out, "<section class=\"cards\">")?;
    writeln!(
        out,
        "<div class=\"card\"><h3>End-to-end latency</h3><div class=\"big\">p99 {:.1} ms</div>\
         p50 {:.1} ms &middot; max {:.1} ms<br>{} events measured</div>",
        e2e.p99_ms,
        e2e.p50_ms,
        e2e.max_ms,
        grouped(e2e.count)
    )?;
    writeln!(
        out,
        "<div class=\"card\"><h3>Throughput</h3><div class=\"big\">{:.1} written/s</div>\
         peak {}/s &middot; produced {:.1}/s</div>",
        throughput.written_per_s,
        grouped(throughput.peak_written_per_s),
        throughput.produced_per_s
    )?;
    writeln!(
        out,
        "<div class=\"card\"><h3>Events</h3><div class=\"big\">{} of {} found</div>{} &middot; {} \
         &middot; {}<br>duplicates written {}</div>",
        grouped(verify.found),
        grouped(verify.expected),
        count("lost", verify.lost),
        count("corrupt", verify.corrupt),
        count("unexpected", verify.unexpected),
        grouped(verify.duplicates_written)
    )?;
    if let Some((process, peak_mb)) = report
        .memory
        .peak_rss_mb
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
    {
        let others: Vec<String> = report
            .memory
            .peak_rss_mb
            .iter()
            .filter(|(name, _)| *name != process)
            .map(|(name, mb)| format!("{} {mb:.0}", escape(name)))
            .collect();
        writeln!(
            out,
            "<div class=\"card\"><h3>Peak memory (MB)</h3><div class=\"big\">{} {peak_mb:.0}</div>{}</div>",
            escape(process),
            others.join(" &middot; ")
        )?;
    }
    let behind = &report.producer.behind_schedule_ms;
    writeln!(
        out,
        "<div class=\"card\"><h3>Producer</h3><div class=\"big\">{} sent</div>behind schedule p99 \
         {:.1} ms &middot; {}</div>\n</section>",
        grouped(report.producer.sent),
        behind.p99_ms,
        count("failed deliveries", report.producer.failed_deliveries)
    )
}

/// Links to the sections of the page.
fn write_nav(out: &mut String, report: &Report) -> std::fmt::Result {
    let verify = &report.verify;
    let mut links = vec![("expectations", "Expectations".to_string())];
    if !report.errors.is_empty() {
        links.push(("errors", format!("Run errors ({})", report.errors.len())));
    }
    if verify.lost + verify.corrupt + verify.unexpected > 0 || !verify.discrepancies.is_empty() {
        links.push(("verification", "Verification".to_string()));
    }
    if !report.tampered.is_empty() {
        links.push(("tampered", format!("Tampered ({})", report.tampered.len())));
    }
    for (id, name) in [
        ("latency", "Latency over time"),
        ("percentiles", "Percentiles"),
        ("throughput", "Throughput"),
        ("stages", "Stages"),
        ("memory", "Memory"),
    ] {
        links.push((id, name.to_string()));
    }
    links.push(("faults", format!("Faults ({})", report.faults.len())));
    write!(out, "<nav>")?;
    for (id, name) in links {
        write!(out, "<a href=\"#{id}\">{name}</a>")?;
    }
    writeln!(out, "</nav>")
}

/// What an expectation key means, for people.
fn expectation_meaning(name: &str) -> &str {
    match name {
        "lost_max" => "events sent but never found",
        "corrupt_max" => "rows whose fields differ from what was sent",
        "unexpected_max" => "rows nobody sent",
        "latency_e2e_p99_ms_max" => "end-to-end p99 latency, ms",
        "throughput_written_per_s_min" => "rows written per second",
        _ => "",
    }
}

fn write_expectations(out: &mut String, report: &Report) -> std::fmt::Result {
    writeln!(
        out,
        "<section id=\"expectations\">\n<h2>Expectations</h2>\n<p class=\"how\">What the scenario says the run must \
         show. The run passes when every one holds.</p>"
    )?;
    if report.expectations.is_empty() {
        return writeln!(out, "<p>The scenario sets no expectations.</p>\n</section>");
    }
    writeln!(
        out,
        "<table>\n<tr><th>result</th><th>expectation</th><th>meaning</th><th>must be</th><th>measured</th></tr>"
    )?;
    for result in &report.expectations {
        let (mark, class, row) = if result.passed {
            ("PASS", "pass", "")
        } else {
            ("FAIL", "fail", " class=\"failed\"")
        };
        let sign = match result.comparison {
            Comparison::AtMost => "&le;",
            Comparison::AtLeast => "&ge;",
        };
        writeln!(
            out,
            "<tr{row}><td><span class=\"mark {class}\">{mark}</span></td><td><code>{}</code></td>\
             <td>{}</td><td class=\"number\">{sign} {}</td><td class=\"number\">{}</td></tr>",
            escape(&result.name),
            expectation_meaning(&result.name),
            number(result.threshold),
            number(result.value)
        )?;
    }
    writeln!(out, "</table>\n</section>")
}

fn write_errors(out: &mut String, report: &Report) -> std::fmt::Result {
    if report.errors.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<section id=\"errors\">\n<h2>Run errors ({})</h2>\n<p class=\"how\">Outages and problems met during the \
         run; the numbers above include their effects.</p>\n<ul class=\"errors\">",
        report.errors.len()
    )?;
    for error in &report.errors {
        writeln!(out, "<li><code>{}</code></li>", escape(error))?;
    }
    writeln!(out, "</ul>\n</section>")
}

fn write_verification(out: &mut String, report: &Report) -> std::fmt::Result {
    let verify = &report.verify;
    if verify.lost == 0
        && verify.corrupt == 0
        && verify.unexpected == 0
        && verify.discrepancies.is_empty()
    {
        return Ok(());
    }
    writeln!(
        out,
        "<section id=\"verification\">\n<h2>Verification: what did not arrive as sent</h2>\n<p class=\"how\">\
         Of {} events the seed says were sent, {} were found; {} lost, {} corrupt, {} unexpected \
         rows. The first {} examples:</p>",
        grouped(verify.expected),
        grouped(verify.found),
        grouped(verify.lost),
        grouped(verify.corrupt),
        grouped(verify.unexpected),
        verify.discrepancies.len()
    )?;
    if !verify.discrepancies.is_empty() {
        writeln!(
            out,
            "<table>\n<tr><th>vehicle</th><th>seq</th><th>field</th><th>expected</th><th>found</th></tr>"
        )?;
        for discrepancy in &verify.discrepancies {
            writeln!(
                out,
                "<tr><td><code>{}</code></td><td class=\"number\">{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                escape(&discrepancy.vehicle_id),
                discrepancy.seq,
                escape(&discrepancy.field),
                escape(&json_text(&discrepancy.expected)),
                escape(&json_text(&discrepancy.found))
            )?;
        }
        writeln!(out, "</table>")?;
    }
    writeln!(out, "</section>")
}

/// The rows tamper faults changed, deleted or inserted: what verification had to find.
fn write_tampered(out: &mut String, report: &Report) -> std::fmt::Result {
    if report.tampered.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<section id=\"tampered\">\n<h2>Tampered rows</h2>\n<p class=\"how\">roadtest altered \
         the stored rows through its own session after the drain: {}. Verification must count \
         each change as corrupt, each delete as lost and each insert as unexpected.</p>",
        escape(&super::text::tampered_counts(&report.tampered))
    )?;
    writeln!(
        out,
        "<table>\n<tr><th>fault</th><th>vehicle</th><th>seq</th><th>timestamp (ms)</th><th>kind</th><th>field</th></tr>"
    )?;
    for record in &report.tampered {
        writeln!(
            out,
            "<tr><td class=\"number\">{}</td><td><code>{}</code></td><td class=\"number\">{}</td><td class=\"number\">{}</td><td>{}</td><td>{}</td></tr>",
            record.entry,
            escape(&record.vehicle_id),
            record.seq,
            record.timestamp_ms,
            record.kind.name(),
            escape(record.field.as_deref().unwrap_or(""))
        )?;
    }
    writeln!(out, "</table>\n</section>")
}

/// Columns of the fault table shown first, in this order; other keys follow alphabetically,
/// except `action` and `service`, which make up the first column (the fault's name).
const FAULT_COLUMNS: &[&str] = &[
    "at_s",
    "duration_s",
    "recovery_started_at_s",
    "ready_after_s",
    "lag_recovered_after_s",
    "latency_recovered_after_s",
    "events_lost",
    "error",
];

fn write_faults(out: &mut String, report: &Report) -> std::fmt::Result {
    writeln!(
        out,
        "<section id=\"faults\">\n<h2>Faults ({})</h2>",
        report.faults.len()
    )?;
    for kill in &report.oom_kills {
        writeln!(
            out,
            "<p class=\"oom\"><strong>Out of memory:</strong> {}</p>",
            escape(&super::text::oom_kill_text(kill))
        )?;
    }
    if report.faults.is_empty() {
        return writeln!(out, "<p>No fault was injected.</p>\n</section>");
    }
    // The table shows every field any fault has: the records as JSON objects.
    let faults: Vec<Value> = report
        .faults
        .iter()
        .filter_map(|fault| serde_json::to_value(fault).ok())
        .collect();
    let mut columns: Vec<String> = FAULT_COLUMNS
        .iter()
        .filter(|key| faults.iter().any(|fault| fault.get(**key).is_some()))
        .map(|key| key.to_string())
        .collect();
    let mut others: Vec<String> = faults
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|object| object.keys().cloned())
        .filter(|key| !FAULT_COLUMNS.contains(&key.as_str()) && key != "action" && key != "service")
        .collect();
    others.sort();
    others.dedup();
    columns.extend(others);
    writeln!(
        out,
        "<p class=\"how\">As executed; times are seconds since the run started.</p>\n\
         <div class=\"wide\"><table>\n<tr><th>#</th><th>fault</th>"
    )?;
    for column in &columns {
        write!(out, "<th>{}</th>", escape(column))?;
    }
    writeln!(out, "</tr>")?;
    for (index, (record, fault)) in report.faults.iter().zip(&faults).enumerate() {
        write!(
            out,
            "<tr><td class=\"number\">{}</td><td>{}</td>",
            index + 1,
            escape(&record.label())
        )?;
        for column in &columns {
            match fault.get(column) {
                None | Some(Value::Null) => write!(out, "<td>&ndash;</td>")?,
                Some(Value::Number(value)) => write!(
                    out,
                    "<td class=\"number\">{}</td>",
                    value.as_f64().map_or_else(|| value.to_string(), number)
                )?,
                Some(Value::String(text)) => write!(out, "<td>{}</td>", escape(text))?,
                Some(other) => write!(out, "<td><code>{}</code></td>", escape(&other.to_string()))?,
            }
        }
        writeln!(out, "</tr>")?;
    }
    writeln!(out, "</table></div>\n</section>")
}

fn json_text(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_string(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Whole numbers without decimals, others with up to three decimals below 10 and one above.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    let text = if value.abs() < 10.0 {
        format!("{value:.3}")
    } else {
        format!("{value:.1}")
    };
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A count with thousands separators: 60,030.
fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with_faults() -> Report {
        let mut report = super::super::tests::sample_report();
        report.faults = super::super::tests::sample_faults();
        report
            .errors
            .push("bad <script>alert(1)</script> & more".to_string());
        report
    }

    #[test]
    fn the_page_is_self_contained_with_every_chart() {
        let report = report_with_faults();
        let html = render_html(&report);
        assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..100]);
        assert!(html.trim_end().ends_with("</html>"));
        assert_eq!(html.matches("<svg").count(), 5, "five charts");
        assert_eq!(html.matches("</svg>").count(), 5);
        assert!(!html.contains("chart-error\">"), "every chart drew");
        // Nothing is fetched: no URL at all, no external resources.
        for fetch in ["http://", "https://", "src=", "<link", "@import", "url("] {
            assert!(!html.contains(fetch), "the page contains {fetch}");
        }
    }

    #[test]
    fn the_page_tells_verdict_expectations_faults_and_replay() {
        let mut report = report_with_faults();
        let html = render_html(&report);
        assert!(
            !html.contains("consumer under test"),
            "the reference consumer is the default"
        );
        report.consumer.command = vec!["./consumer".into(), "--commit".into(), "a&b".into()];
        let own = render_html(&report);
        assert!(own.contains("consumer under test: <code>./consumer --commit a&amp;b</code>"));
        assert!(html.contains("<title>roadtest unit (seed 42): FAILED</title>"));
        assert!(html.contains("class=\"badge fail\">FAILED"));
        assert!(
            html.contains("<span class=\"mark fail\">FAIL</span></td><td><code>lost_max</code>")
        );
        assert!(
            html.contains("<span class=\"mark pass\">PASS</span></td><td><code>corrupt_max</code>")
        );
        assert!(html.contains("Verification: what did not arrive as sent"));
        assert!(html.contains("<code>veh-000001</code>"));
        assert!(
            html.contains("<pre class=\"replay\">roadtest run scenarios/unit.toml --seed 42</pre>")
        );
        assert!(html.contains("Faults (3)"));
        assert!(
            html.contains("<td>kill consumer</td><td class=\"number\">3.5</td>"),
            "{html}"
        );
        assert!(html.contains("<th>recovery_started_at_s</th>"));
        assert!(
            html.contains("<td>pause cassandra</td><td>&ndash;</td>"),
            "a fault that never fired: {html}"
        );
        assert!(!html.contains("<th>action</th>"));
        assert!(html.contains("<th>network</th>") && html.contains("<th>trigger</th>"));
        assert!(html.contains("bad &lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
        assert!(!html.contains("<script>"));
        assert!(
            html.contains("\nkill consumer\n</text>"),
            "fault marker on the charts"
        );
    }

    #[test]
    fn a_passing_run_without_losses_has_no_verification_table() {
        let report = super::super::compare::tests::steady_report();
        let html = render_html(&report);
        assert!(html.contains("class=\"badge pass\">PASSED"));
        assert!(!html.contains("Verification:"));
        assert!(!html.contains("Run errors"));
        assert!(!html.contains("id=\"tampered\""));
        assert!(html.contains("No fault was injected."));
        assert!(html.contains("60,030 of 60,030 found"));
        assert_eq!(html.matches("<svg").count(), 5);
    }

    #[test]
    fn tampered_rows_are_listed_and_linked() {
        let mut report = super::super::tests::sample_report();
        report.tampered = super::super::tests::sample_tampered();
        let html = render_html(&report);
        assert!(
            html.contains("<a href=\"#tampered\">Tampered (3)</a>"),
            "{html}"
        );
        assert!(html.contains("3 rows (change 2, insert 1)"), "{html}");
        assert!(
            html.contains("<td><code>veh-000001</code></td><td class=\"number\">4</td>"),
            "{html}"
        );
        assert!(html.contains("<td>change</td><td>speed_mps</td>"), "{html}");
        assert!(html.contains("<code>veh-&lt;x&gt;</code>"), "{html}");
        assert!(html.contains("<td>insert</td><td></td>"), "{html}");
    }

    #[test]
    fn an_empty_report_still_renders() {
        let mut report = super::super::tests::sample_report();
        report.latency = Default::default();
        report.throughput = Default::default();
        report.memory = Default::default();
        let html = render_html(&report);
        assert_eq!(html.matches("<svg").count(), 5);
        assert!(html.contains("no end-to-end latency was recorded"));
        assert!(html.contains("no process was sampled"));
    }

    #[test]
    fn write_html_and_png_into_the_run_dir() {
        let dir = std::env::temp_dir().join(format!("roadtest-html-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let report = report_with_faults();
        let file = write_html(&report, &dir).unwrap();
        assert_eq!(file, dir.join("report.html"));
        assert!(std::fs::read_to_string(&file).unwrap().contains("<svg"));
        let png = super::super::write_latency_png(&report, &dir).unwrap();
        assert_eq!(png.path, dir.join("latency.png"));
        let bytes = std::fs::read(&png.path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(60_030), "60,030");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(number(5.0), "5");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(1.4), "1.4");
        assert_eq!(number(463.103), "463.1");
    }
}
